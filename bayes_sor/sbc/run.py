"""Simulation-based calibration (Talts et al. 2018; Modrak et al. 2023): ``bayes_sor sbc``.

Each simulation draws every parameter from the prior, simulates a data set from it, fits the
model and records the rank of the truth among the (thinned) posterior draws, for every free
parameter and every effect users read (:mod:`bayes_sor.sbc.simulations`). With calibrated inference
the ranks are uniform; :mod:`bayes_sor.sbc.report` tests that and writes the run folder.

Runs are reproducible (one master seed spawns every simulation's seed), resumable (each
finished simulation is saved at once under ``DIR/sims/``; rerunning the same command skips
them) and parallel: local worker processes, or the workers of an existing Dask cluster, each
compiling the model once. A failed fit is recorded with its error and never stops the others.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import time
from collections.abc import Iterator
from concurrent.futures import Executor, ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import pandas as pd

from bayes_sor.errors import BayesSORError, ModelSpecError, OutputError
from bayes_sor.files import write_atomic
from bayes_sor.model.build import LIKELIHOODS, choose_likelihood
from bayes_sor.runs.fit import read_model
from bayes_sor.sampling.samplers import SAMPLERS
from bayes_sor.sbc.report import Verdict, write_outputs
from bayes_sor.sbc.simulations import (
    SBCConfig,
    error_record,
    partables,
    pin_blas_threads,
    run_simulation,
    simulation_seeds,
)
from bayes_sor.spec.partable import DEFAULT_PRIORS, IDENTIFICATIONS, kind_of, read_prior_file
from bayes_sor.spec.prior_text import positive_version

CONFIG_FILE = "sbc_config.json"
SIMS_DIR = "sims"
EXECUTORS = ("local", "dask")

CLI_DESCRIPTION = (
    "Simulation-based calibration: draw every parameter from the prior, simulate a data set "
    "(continuous scores; ordinal items cut at their thresholds), fit the model, and rank the "
    "truth among the thinned posterior draws, for every free parameter and every indirect, "
    "conditional, total and defined effect. Writes ranks.csv, sbc_summary.csv, sbc_ecdf.png "
    "and sbc.md to --out; rerunning the same command resumes the run. Exit code 0: calibrated; "
    "1: quantities flagged or fits failed. Give the model priors on the answers' scale "
    "(--priors FILE, e.g. the bundled models/<name>.sbc_priors.yaml, or the header's "
    "'priors:'): blavaan's vague defaults simulate implausible surveys."
)
#: blavaan's defaults that simulate no real survey: loadings and paths of +-20, item means of
#: +-60, residual SDs up to 6 on items whose answers span a few points
VAGUE_KINDS = ("loadings", "regressions", "intercepts", "variances")

__all__ = ["SBCConfig", "SBCResult", "add_command", "make_config", "run_sbc"]


@dataclass
class SBCResult:
    """What :func:`run_sbc` wrote, in memory."""

    out: Path
    ranks: pd.DataFrame
    summary: pd.DataFrame
    verdict: Verdict
    sims_per_minute: float | None


def make_config(model: str | Path, nobs: int, **options) -> SBCConfig:
    """An :class:`SBCConfig` from a model file (or model text), checked before any work."""

    config = SBCConfig(read_model(model), nobs, **options)
    validate(config)
    return config


def vague_default_priors(config: SBCConfig) -> dict[str, str]:
    """The kinds of free parameters whose truths SBC would draw from blavaan's vague default
    priors (:data:`VAGUE_KINDS`), with that prior."""

    simulating, _ = partables(config)
    t = simulating.table
    vague = {}
    for row in t[t.free > 0].itertuples():
        kind = kind_of(row.op, row.lhs, row.rhs)
        default = DEFAULT_PRIORS.get(kind)
        if kind in VAGUE_KINDS and row.prior in (default, positive_version(default)):
            vague[kind] = default
    return {kind: vague[kind] for kind in VAGUE_KINDS if kind in vague}


def vague_prior_warning(config: SBCConfig, model: Path | None = None) -> str:
    """What to tell a user before an SBC run whose truths come from the vague defaults ("" when
    none do); ``model``: the model file, beside which a bundled prior file is looked for."""
    vague = vague_default_priors(config)
    if not vague:
        return ""
    listed = ", ".join(f"{kind} {text}" for kind, text in vague.items())
    bundled = model.with_name(f"{model.stem}.sbc_priors.yaml") if model else None
    fix = (
        f"--priors {bundled} (bundled with the model)"
        if bundled and bundled.is_file()
        else "--priors FILE (a YAML file like models/holzinger_swineford.sbc_priors.yaml)"
    )
    return (
        f"the model uses blavaan's vague default priors for {listed}. SBC draws every "
        "truth from the priors, so it would simulate surveys unlike any real one (loadings "
        "and paths of +-20, item means of +-60) and flag the sampler's trouble there, not "
        "a problem of fits to real answers: expect 'miscalibrated'. Give priors on the "
        f"answers' scale: {fix}, or the model header's 'priors:'."
    )


def validate(config: SBCConfig) -> None:
    """Raise a :class:`BayesSORError` for settings that cannot work, before any sampling."""

    config.settings(config.seed).validate()
    _, fit_table = partables(config)
    likelihood = choose_likelihood(fit_table, config.likelihood)
    minimum = len(fit_table.indicators) + 1 if likelihood == "marginal" else 2
    if config.nobs < minimum:
        raise ModelSpecError(
            f"--nobs must be at least {minimum} for this model "
            f"({len(fit_table.indicators)} items, {likelihood} likelihood)"
        )


# ---- the run folder -----------------------------------------------------------------------------
def prepare_folder(out: Path, config: SBCConfig) -> dict[int, dict]:
    """Create or reopen ``out``; return the simulations already saved there."""
    config_path = out / CONFIG_FILE
    if out.exists() and not out.is_dir():
        raise OutputError(f"--out {str(out)!r} is a file, not a folder; choose another path")
    if config_path.exists():
        saved = json.loads(config_path.read_text())
        if saved.get("key") != config.key():
            changed = sorted(k for k, v in asdict(config).items() if saved.get(k) != v)
            raise OutputError(
                f"--out {str(out)!r} holds an SBC run with other settings ({', '.join(changed)}"
                "); resume it with the same settings, or choose another folder"
            )
    elif out.exists() and any(out.iterdir()):
        raise OutputError(
            f"--out {str(out)!r} is not empty and holds no SBC run; choose another folder"
        )
    (out / SIMS_DIR).mkdir(parents=True, exist_ok=True)
    if not config_path.exists():
        text = json.dumps({**asdict(config), "key": config.key()}, indent=1)
        write_atomic(config_path, lambda p: p.write_text(text))
    return load_records(out)


def load_records(out: Path) -> dict[int, dict]:
    """The saved simulations of a run folder, by index."""
    records = {}
    for path in sorted((out / SIMS_DIR).glob("sim_*.json")):
        record = json.loads(path.read_text())
        records[int(record["sim"])] = record
    return records


def save_record(out: Path, record: dict) -> None:
    path = out / SIMS_DIR / f"sim_{record['sim']:06d}.json"
    write_atomic(path, lambda p: p.write_text(json.dumps(record)))


# ---- executing simulations -------------------------------------------------------------------
def available_cores() -> int:
    """Cores this process may use (its CPU affinity where the OS reports one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _from_executor(
    executor: Executor, config: SBCConfig, jobs: list[tuple[int, int]]
) -> Iterator[dict]:
    """Submit every job and yield records as they finish (in completion order)."""
    futures = {executor.submit(run_simulation, config, i, s): (i, s) for i, s in jobs}
    try:
        for future in as_completed(futures):
            index, seed = futures[future]
            try:
                record = future.result()
            except Exception as exc:  # the worker died: report it now, retry on resume
                record = {**error_record(index, seed, f"worker failed: {exc!r}"), "persist": False}
            yield record
    finally:
        for future in futures:
            future.cancel()


def _local(config: SBCConfig, jobs: list[tuple[int, int]], workers: int) -> Iterator[dict]:
    if workers == 1:  # in this process: no start-up cost, and its compiled models are reused
        pin_blas_threads()
        for index, seed in jobs:
            yield run_simulation(config, index, seed)
        return
    # spawn, not fork: forking a process that has started numba/nutpie threads can deadlock.
    pool = ProcessPoolExecutor(
        workers, mp_context=multiprocessing.get_context("spawn"), initializer=pin_blas_threads
    )
    try:
        yield from _from_executor(pool, config, jobs)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def _check_executor(executor: str, scheduler: str | None, workers: int | None) -> None:
    if executor not in EXECUTORS:
        raise BayesSORError(f"unknown executor {executor!r}; use one of {EXECUTORS}")
    if workers is not None and workers < 1:
        raise BayesSORError("--workers must be at least 1")
    if executor != "dask":
        return
    # Dask is optional (pip install 'bayes_sor[dask]')
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise BayesSORError("--executor dask needs Dask: pip install 'bayes_sor[dask]'") from None
    if not scheduler:
        raise BayesSORError(
            "--executor dask needs --scheduler ADDRESS of a running Dask "
            "scheduler, e.g. tcp://10.0.0.5:8786"
        )


def _dask(config: SBCConfig, jobs: list[tuple[int, int]], scheduler: str) -> Iterator[dict]:
    # Dask is optional (pip install 'bayes_sor[dask]')
    from distributed import Client

    with Client(scheduler) as client:
        yield from _from_executor(client.get_executor(pure=False), config, jobs)


def _dispatch(
    config: SBCConfig,
    jobs: list[tuple[int, int]],
    workers: int | None,
    executor: str,
    scheduler: str | None,
    pool: object | None,
) -> Iterator[dict]:
    if not jobs:
        return
    if pool is not None:  # an executor the caller owns: a process pool or a Dask client
        if hasattr(pool, "get_executor"):
            pool = pool.get_executor(pure=False)
        yield from _from_executor(pool, config, jobs)
    elif executor == "dask":
        yield from _dask(config, jobs, scheduler)
    else:
        yield from _local(config, jobs, max(1, min(workers or available_cores(), len(jobs))))


def run_sbc(
    config: SBCConfig,
    out: str | Path,
    n_sims: int = 200,
    *,
    workers: int | None = None,
    executor: str = "local",
    scheduler: str | None = None,
    pool: object | None = None,
    progress: bool = True,
) -> SBCResult:
    """Run (or resume, or extend) an SBC study and write its folder.

    ``workers``: local processes (default: all cores; 1 runs in this process). ``executor``:
    ``"local"`` or ``"dask"`` (with ``scheduler``, the address of a running cluster).
    ``pool``: an executor the caller keeps (a ``concurrent.futures`` pool or a Dask
    ``Client``), whose workers keep their compiled models between runs.
    """
    validate(config)
    if n_sims < 1:
        raise BayesSORError("--sims must be at least 1")
    if pool is None:
        _check_executor(executor, scheduler, workers)
    out = Path(out)
    records = prepare_folder(out, config)
    jobs = [(i, s) for i, s in enumerate(simulation_seeds(config.seed, n_sims)) if i not in records]
    start, finished = time.perf_counter(), 0
    try:
        for record in _dispatch(config, jobs, workers, executor, scheduler, pool):
            if record.pop("persist", True):
                save_record(out, record)
            records[record["sim"]] = record
            finished += 1
            if progress:
                _report_progress(record, len(records), n_sims)
    except BaseException:
        if finished:  # interrupted: the folder still shows everything finished so far
            _finish(out, config, records, n_sims, None)
        raise
    minutes = (time.perf_counter() - start) / 60
    return _finish(out, config, records, n_sims, finished / minutes if finished else None)


def _finish(
    out: Path, config: SBCConfig, records: dict[int, dict], n_sims: int, rate: float | None
) -> SBCResult:
    chosen = [r for i, r in records.items() if i < n_sims]
    priors = partables(config)[0].options["priors"]
    ranks, summary, verdict = write_outputs(
        out, asdict(config), chosen, n_sims, rate, priors, vague_prior_warning(config)
    )
    return SBCResult(out, ranks, summary, verdict, rate)


def _report_progress(record: dict, done: int, total: int) -> None:
    what = (
        f"error: {record['error'][:100]}"
        if record["error"]
        else f"L={record['L']} ESS={record['ess_min']:.0f} divergences={record['divergences']} "
        f"fit {record['fit_seconds']:.1f} s"
    )
    print(
        f"sbc {done}/{total}: simulation {record['sim']} (seed {record['seed']}) {what}", flush=True
    )


# ---- command line ---------------------------------------------------------------------------
def add_command(subparsers: argparse._SubParsersAction) -> None:
    """Register ``python -m bayes_sor sbc``.

    Its own wiring, not :func:`~bayes_sor.checks.result.add_result_command`: an SBC study is
    no result computed and then written, but a folder written while it runs (each simulation
    saved as it finishes, so that the same command resumes it, and the summary rewritten when
    it is interrupted), and it checks no run, so it has no report section to add.
    """

    p = subparsers.add_parser(
        "sbc",
        help="simulation-based calibration: prior draws -> data -> fits -> rank tests",
        description=CLI_DESCRIPTION,
    )
    p.add_argument("model", type=Path, help="lavaan-syntax model file (.lav)")
    p.add_argument("--sims", type=int, default=200, help="number of simulations (200)")
    p.add_argument("--nobs", type=int, required=True, help="respondents per simulated data set")
    p.add_argument(
        "--out", type=Path, required=True, help="run folder; rerunning the same command resumes it"
    )
    p.add_argument("--workers", type=int, help="local worker processes (default: all cores)")
    p.add_argument("--executor", choices=EXECUTORS, default="local")
    p.add_argument("--scheduler", help="Dask scheduler address (with --executor dask)")
    p.add_argument("--likelihood", default="auto", choices=LIKELIHOODS)
    p.add_argument("--sampler", default="nutpie", choices=SAMPLERS)
    p.add_argument("--identification", choices=IDENTIFICATIONS)
    p.add_argument("--ordinal", help="'all' or comma-separated items to model as ordinal")
    p.add_argument("--draws", type=int, default=1000)
    p.add_argument("--tune", type=int, default=1000)
    p.add_argument("--chains", type=int, default=1, help="chains per fit (1)")
    p.add_argument("--target-accept", type=float, default=0.9)
    p.add_argument("--seed", type=int, default=20261124, help="master seed")
    p.add_argument(
        "--prior-scale-fit",
        type=float,
        default=1.0,
        help="multiply the fitting model's loading-prior scales by this factor (a "
        "deliberately wrong prior, to see SBC flag it)",
    )
    p.add_argument(
        "--priors",
        type=Path,
        metavar="FILE",
        help="YAML file 'priors: {kind: prior, ...}' over the model header's priors "
        "(the bundled models have models/<name>.sbc_priors.yaml)",
    )
    p.add_argument("--no-progress", action="store_true", help="no line per simulation")
    p.set_defaults(handler=_command)


def _command(args: argparse.Namespace) -> int:

    names = {f.name for f in fields(SBCConfig)} - {"model_text", "nobs", "priors"}
    options = {k: v for k, v in vars(args).items() if k in names and v is not None}
    priors = read_prior_file(args.priors) if args.priors else None
    config = make_config(args.model, args.nobs, priors=priors, **options)
    warning = vague_prior_warning(config, args.model)
    if warning:
        print(f"WARNING: {warning}", file=sys.stderr, flush=True)
    try:
        result = run_sbc(
            config,
            args.out,
            args.sims,
            workers=args.workers,
            executor=args.executor,
            scheduler=args.scheduler,
            progress=not args.no_progress,
        )
    except KeyboardInterrupt:
        print(
            f"interrupted: finished simulations are saved in {args.out}/; rerun the same "
            "command to continue",
            file=sys.stderr,
        )
        return 130
    return _conclude(result, bool(warning))


def _conclude(result: SBCResult, vague_priors: bool) -> int:
    verdict = result.verdict
    print(
        f"\nSBC verdict: {verdict.text} ({verdict.n_flagged} quantities flagged; "
        f"{verdict.n_done} simulations, {verdict.n_failed} failed)"
    )
    flagged = result.summary[result.summary.verdict == "miscalibrated"]
    for row in flagged.head(10).itertuples():
        print(f"  {row.quantity}: p = {row.p_value:.3g}")
    if vague_priors and len(flagged):
        print(
            "  (the truths came from blavaan's vague default priors: see the warning before "
            "the run)"
        )
    if result.sims_per_minute:
        print(f"throughput: {result.sims_per_minute:.1f} simulations per minute")
    print(f"wrote {result.out}/ (ranks.csv, sbc_summary.csv, sbc_ecdf.png, sbc.md)")
    if verdict.n_failed:
        print(f"WARNING: {verdict.n_failed} simulation(s) failed; see ranks.csv", file=sys.stderr)
    return 0 if verdict.calibrated and not verdict.n_failed else 1
