"""Benchmark the CLI's fits: wall time (import + compile + sample), min bulk ESS, ESS/s, RSS;
then SBC throughput (the rows of issue 9's table).

    python benchmarks/run.py            # fits: 4 chains x 1000 draws after 1000 tuning; SBC of
                                        # the small model, 200 simulations, 2 workers
    python benchmarks/run.py --quick    # 4 fits of 2 chains x 300 draws, SBC of 30 simulations:
                                        # a 2-minute smoke version
    python benchmarks/run.py --slow     # adds SBC of the Study A model, 200 simulations (~25 min)
    python benchmarks/run.py --only hs  # rows whose name contains 'hs' (hs,pd: either)
    python benchmarks/run.py --only stan --repeat 5   # bayes_sor against Stan, 5 interleaved
                                        # rounds, medians
    python benchmarks/run.py --only stan --hide dask,distributed   # as installed without the
                                        # test extra (no dask)

Each row runs ``python -m bayes_sor fit`` in a fresh process, as a user would, so the wall time
includes import and compilation. The naive baseline is the PyMC-notebook approach: latent scores
sampled (conditional likelihood) with PyMC's own NUTS.

The Stan rows (blavaan's engine on the same posterior, ``stan_peer.py``) run in their own
virtual environment, never bayes_sor's nor CI's; without it they are skipped with a line
saying so. Create it once (the first run of each Stan model then compiles it, ~1.5 minutes):

    python3.12 -m venv /work/stanvenv && /work/stanvenv/bin/pip install pystan "arviz<1" pandas

(``BAYES_SOR_STAN_PYTHON`` names another interpreter.) Each Stan row follows its bayes_sor
peer, ``fit --no-report``, in the same round; both are whole processes, both give the minimum
bulk ESS over the same free parameters, and ``mean_z`` is the largest difference of a posterior
mean between the two in Monte Carlo standard errors (about 3 or less when the posteriors agree).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

ROOT = Path(__file__).resolve().parents[1]
STAN_PYTHON = Path(os.environ.get("BAYES_SOR_STAN_PYTHON", "/work/stanvenv/bin/python"))

#: the extra arguments of a Stan row: its model is stan_peer.py's name, run by STAN_PYTHON
STAN = ["stan"]

#: (model, data) of the bundled studies; the continuous items' likelihood and scale
HS = ("holzinger_swineford", "holzinger_swineford")
PD = ("political_democracy", "political_democracy")
STUDY_A = ("impulse_buying", "impulse_buying")
MARGINAL = ["--likelihood", "marginal", "--scale", "none"]
CONDITIONAL = ["--likelihood", "conditional", "--scale", "none"]


def metric_by(column: str) -> list[str]:
    """The metric model (loadings equal across groups) with the groups of ``column``."""
    return ["--group", column, "--group-equal", "loadings"]


#: name -> (model, data, extra CLI arguments)
WORKLOADS = {
    "hs_cfa_marginal_nutpie": (*HS, MARGINAL),
    # Same command again: PyTensor's numba cache now holds the compiled kernels.
    "hs_cfa_marginal_nutpie_cached": (*HS, MARGINAL),
    "hs_cfa_marginal_pymc": (*HS, [*MARGINAL, "--sampler", "pymc"]),
    "hs_cfa_conditional_nutpie": (*HS, CONDITIONAL),
    "hs_cfa_naive_pymc_latent_scores": (*HS, [*CONDITIONAL, "--sampler", "pymc"]),
    "pd_sem_marginal_nutpie": (*PD, MARGINAL),
    "pd_sem_marginal_nutpie_cached": (*PD, MARGINAL),
    "study_a_conditional_nutpie": (*STUDY_A, []),
    # The CLI's default draws (2000 per chain): what the ESS >= 400 gate needs for Study A.
    "study_a_conditional_nutpie_default_draws": (*STUDY_A, ["--draws", "2000"]),
    "study_a_conditional_pymc": (*STUDY_A, ["--sampler", "pymc"]),
    "study_a_ordinal_nutpie": (*STUDY_A, ["--ordinal", "all"]),
    # The command as a user runs it: each checkout's own default draws, tuning and target
    # acceptance (issue 22 item 4's A/B: --only study_a_ordinal --baseline OLD_CHECKOUT).
    "study_a_ordinal_nutpie_cli_defaults": (*STUDY_A, ["--ordinal", "all"]),
    # Issue 20: a two-group fit against its one-group peer (run them together: --only
    # study_a_marginal); Study A without its latent interaction (benchmarks/study_a_marginal.lav)
    # by the bundled gender column, the metric model (loadings equal across the groups).
    "study_a_marginal_nutpie": ("benchmarks/study_a_marginal", "impulse_buying", []),
    "study_a_marginal_two_group_nutpie": (
        "benchmarks/study_a_marginal",
        "impulse_buying",
        metric_by("gender"),
    ),
    # The same pair for Study A with its latent interaction (conditional likelihood) at the
    # CLI's default draws (2000 per chain); all four rows: --only study_a_marginal,interaction
    "study_a_interaction_one_group_nutpie": (*STUDY_A, ["--draws", "2000"]),
    "study_a_interaction_two_group_nutpie": (*STUDY_A, ["--draws", "2000", *metric_by("gender")]),
    # Issue 20's other pair: Holzinger-Swineford's metric model by school against the one-group
    # CFA (--only hs_cfa_groups)
    "hs_cfa_groups_one_group_nutpie": (*HS, MARGINAL),
    "hs_cfa_groups_metric_nutpie": (*HS, [*MARGINAL, *metric_by("school")]),
    # bayes_sor against Stan: the command without the report, then stan_peer.py's peer model
    "hs_cfa_no_report_vs_stan": (*HS, [*MARGINAL, "--no-report"]),
    "hs_cfa_stan": ("hs", "holzinger_swineford", STAN),
    "pd_sem_no_report_vs_stan": (*PD, [*MARGINAL, "--no-report"]),
    "pd_sem_stan": ("pd", "political_democracy", STAN),
}

#: rows run without the benchmark's sampling options, at the command's own defaults
OWN_DEFAULTS = {"study_a_ordinal_nutpie_cli_defaults"}

#: The rows of ``--quick``: one of each kind of model, each well under a minute.
QUICK = (
    "hs_cfa_marginal_nutpie",
    "hs_cfa_marginal_nutpie_cached",
    "pd_sem_marginal_nutpie",
    "study_a_conditional_nutpie",
)


def bayes_sor_command(hidden: Sequence[str] = ()) -> list[str]:
    """``python -m bayes_sor``; with ``hidden`` modules, the same with those modules absent as
    if not installed (``sys.modules[name] = None``: ``import`` and ``find_spec`` both say so).

    The development environment has the test extra's dask, which a user's install lacks and
    xarray imports whenever it can (``dask.array`` for the first DataArray, ``distributed``
    when writing NetCDF); hiding it measures what the user's command costs.
    """
    if not hidden:
        return [sys.executable, "-m", "bayes_sor"]
    # ``-c`` puts the working folder first on sys.path, as ``-m`` does
    code = (
        f"import runpy, sys; sys.modules.update(dict.fromkeys({list(hidden)!r})); "
        "runpy.run_module('bayes_sor', run_name='__main__', alter_sys=True)"
    )
    return [sys.executable, "-c", code]


#: where a benchmarked command keeps its modules' compiled bytecode. This VM sets
#: PYTHONDONTWRITEBYTECODE=1, under which every run compiled each of bayes_sor's modules from
#: source (~0.4 CPU s of an HS fit; benchmarks/RESULTS.md, "The fit command without
#: scipy.stats"), where an installed package has its bytecode (pip compiles it on install)
#: and the Stan peer's libraries had theirs. A folder of its own: nothing is written into a
#: checkout; the first run after a change compiles what changed.
PYCACHE = Path(tempfile.gettempdir()) / "bayes_sor-benchmark-pycache"


def command_env(code: Path) -> dict[str, str]:
    """The environment of a benchmarked command: ``code``'s bayes_sor first on ``PYTHONPATH``,
    compiled bytecode read from and written to :data:`PYCACHE`."""
    env = {**os.environ, "PYTHONPATH": str(code), "PYTHONPYCACHEPREFIX": str(PYCACHE)}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def model_file(model: str) -> Path:
    """A bundled model by name (``models/<name>.lav``) or a path from the root without
    ``.lav`` (``benchmarks/study_a_marginal``: a benchmark's own variant)."""
    return ROOT / f"{model}.lav" if "/" in model else ROOT / "models" / f"{model}.lav"


def run_one(
    name: str,
    model: str,
    data: str,
    extra: list[str],
    sampling: list[str],
    limit: float,
    code: Path = ROOT,
    hidden: Sequence[str] = (),
) -> dict:
    """Fit one workload in a child process and read its figures back from the run folder (or,
    for a Stan row, from stan_peer.py's table). ``code``: the checkout whose bayes_sor runs;
    ``hidden``: modules its process runs without (:func:`bayes_sor_command`)."""
    folder = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
    if extra == STAN:
        out = folder / "estimates.csv"
        settings = dict(zip(sampling[::2], sampling[1::2], strict=True))
        command = [
            str(STAN_PYTHON),
            str(ROOT / "benchmarks" / "stan_peer.py"),
            model,
            str(ROOT / "data" / f"{data}.csv"),
            str(out),
            *(settings[f"--{k}"] for k in ("chains", "draws", "tune")),
        ]
    else:
        out = folder / "run"
        command = [
            *bayes_sor_command(hidden),
            "fit",
            str(model_file(model)),
            "--data",
            str(ROOT / "data" / f"{data}.csv"),
            "--out",
            str(out),
            "--allow-warnings",
            "--no-progress",
            *sampling,
            *extra,
        ]
    load = os.getloadavg()[0]
    status, wall, cpu, peak_mb, message = _timed(command, limit, command_env(code), code)
    if status != 0:
        status = f"killed after {limit:.0f} s" if wall >= limit else message
        return {"workload": name, "wall_s": round(wall, 1), "status": status}
    if extra == STAN:
        est = pd.read_csv(out)
        figures = {"divergences": None, "posterior_mb": None}
    else:
        est = pd.read_csv(out / "estimates.csv")
        est = est[est.free > 0]
        figures = {
            "divergences": _divergences(out),
            "posterior_mb": round((out / "posterior.nc").stat().st_size / 2**20, 1),
        }
    min_ess = float(est.ess_bulk.min())
    return {
        "workload": name,
        "wall_s": round(wall, 1),
        "min_ess_bulk": round(min_ess),
        "ess_per_s": round(min_ess / wall, 1),
        "cpu_s": round(cpu, 1),
        "ess_per_cpu_s": round(min_ess / cpu, 1),
        "max_r_hat": round(float(est.r_hat.max()), 3) if "r_hat" in est else None,
        **figures,
        "peak_rss_mb": round(peak_mb),
        "load": round(load, 1),
        "mean_z": None,
        "status": "ok",
        "_estimates": est,
    }


def _timed(
    command: list[str], limit: float, env: dict, cwd: Path
) -> tuple[int, float, float, float, str]:
    """Run ``command`` in ``cwd`` (``python -m`` imports from there first, before PYTHONPATH);
    its exit code, wall seconds, CPU seconds (user + system, its waited-for child processes
    included: Stan's chains), peak RSS (MB) and the end of its stderr.

    On a machine shared with other work the wall time follows the load and CPU seconds much
    less: both are reported."""
    start = time.perf_counter()
    with tempfile.TemporaryFile() as stderr:
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr, cwd=cwd, env=env)
        timer = threading.Timer(limit, proc.kill)
        timer.start()
        # wait4 gives this child's own peak RSS (RUSAGE_CHILDREN would be the maximum so far).
        _, status, usage = os.wait4(proc.pid, 0)
        timer.cancel()
        wall = time.perf_counter() - start
        stderr.seek(0)
        message = stderr.read().decode(errors="replace").strip()[-200:]
    cpu = usage.ru_utime + usage.ru_stime
    return os.waitstatus_to_exitcode(status), wall, cpu, usage.ru_maxrss / 1024, message


def mean_z(ours: pd.DataFrame, stan: pd.DataFrame) -> float:
    """The largest difference of a posterior mean between two fits, in Monte Carlo standard
    errors of the difference (sd / sqrt(ESS) of each)."""
    both = ours.merge(stan, on=["lhs", "op", "rhs"], suffixes=("", "_stan"), validate="1:1")
    if len(both) != len(stan):
        raise ValueError(f"stan_peer's {len(stan)} parameters, {len(both)} of them in our run")
    mcse = np.sqrt(both.sd**2 / both.ess_bulk + both.sd_stan**2 / both.ess_bulk_stan)
    return float((abs(both["mean"] - both.mean_stan) / mcse).max())


def _divergences(out: Path) -> int:
    with xr.open_datatree(out / "posterior.nc") as tree:
        return int(tree["sample_stats"]["diverging"].sum())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--slow", action="store_true", help="also the 200-simulation SBC of the Study A model"
    )
    parser.add_argument("--only", default="")
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="rounds of the chosen rows, interleaved; the table gives each row's medians",
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        help="a checkout of earlier code (e.g. /work/main): each bayes_sor row runs with it "
        "too, just before the current code's, in the same round (an interleaved A/B)",
    )
    parser.add_argument(
        "--hide",
        default="",
        help="comma-separated modules bayes_sor's processes run without, as if not installed "
        "(e.g. dask,distributed: a user's install has no dask)",
    )
    parser.add_argument(
        "--limit",
        type=float,
        default=1200,
        help="seconds after which a workload is killed and reported as such",
    )
    args = parser.parse_args()
    sampling = (
        ["--chains", "2", "--draws", "300", "--tune", "300"]
        if args.quick
        else ["--chains", "4", "--draws", "1000", "--tune", "1000"]
    )
    print(
        f"# {time.strftime('%Y-%m-%d %H:%M')} {platform.node()} {platform.processor() or ''} "
        f"Python {platform.python_version()}; sampling: {' '.join(sampling)}; "
        f"hidden: {args.hide or 'none'}; load " + " ".join(f"{x:.1f}" for x in os.getloadavg())
    )
    chosen = {
        name: spec
        for name, spec in WORKLOADS.items()
        if any(part in name for part in args.only.split(",")) and (name in QUICK or not args.quick)
    }
    if any(extra == STAN for _, _, extra in chosen.values()) and not STAN_PYTHON.exists():
        print(
            f"# Stan rows skipped: no {STAN_PYTHON}; create it with: python3.12 -m venv "
            f'{STAN_PYTHON.parents[1]} && {STAN_PYTHON.parent}/pip install pystan "arviz<1" pandas'
        )
        chosen = {name: spec for name, spec in chosen.items() if spec[2] != STAN}
    runs = [
        (label, name, code)
        for name, (_, _, extra) in chosen.items()
        for label, code in (
            [(f"{name} [baseline]", args.baseline)] if args.baseline and extra != STAN else []
        )
        + [(name, ROOT)]
    ]
    hidden = [name for name in args.hide.split(",") if name]
    rounds: dict[str, list[dict]] = {label: [] for label, _, _ in runs}
    header = True
    for _ in range(args.repeat):
        peer = None
        for label, name, code in runs:
            model, data, extra = chosen[name]
            own = [] if name in OWN_DEFAULTS else sampling
            row = run_one(label, model, data, extra, own, args.limit, code, hidden)
            estimates = row.pop("_estimates", None)
            if extra == STAN and estimates is not None and peer is not None:
                row["mean_z"] = round(mean_z(peer, estimates), 1)
            elif extra != STAN:
                peer = estimates
            rounds[label].append(row)
            print(pd.DataFrame([row]).to_string(index=False, header=header), flush=True)
            header = False
    rows = [_median(rows_of) for rows_of in rounds.values()]
    if rows:
        print()
        with pd.option_context("display.width", 200, "display.max_columns", 20):
            print(pd.DataFrame(rows).to_string(index=False))
    sbc_rows = sbc_benchmarks(args.only, args.quick, args.slow)
    if sbc_rows:
        print()
        with pd.option_context("display.width", 200, "display.max_columns", 20):
            print(pd.DataFrame(sbc_rows).to_string(index=False))


def _median(runs: list[dict]) -> dict:
    """One row of several rounds: the median of each figure, and how many rounds went well."""
    ok = [r for r in runs if r["status"] == "ok"] or runs
    row = {"workload": runs[0]["workload"], "rounds": f"{len(ok)}/{len(runs)}"}
    for key in ok[0]:
        values = [r[key] for r in ok if isinstance(r.get(key), int | float)]
        if key not in row and key != "status":
            row[key] = statistics.median(values) if values else ok[0][key]
    row["status"] = ok[0]["status"]
    return row


def sbc_benchmarks(only: str, quick: bool, slow: bool) -> list[dict]:
    """SBC rows, each a fresh run on 2 workers (compilation included in the wall time): the
    small model at sbc_throughput's simulation counts; with ``slow``, 200 of Study A."""
    from sbc_throughput import WORKLOADS as SBC
    from sbc_throughput import measure

    rows = []
    for name, (model, nobs, settings, sims) in SBC.items():
        n_sims = (
            sims[quick]
            if name.startswith("two_factor")
            else 200
            if slow and name.startswith("study_a ")
            else 0
        )
        if n_sims and only in f"sbc {name}":
            rows.append({"workload": f"sbc {name}", **measure(model, nobs, settings, n_sims, 2)})
            print(rows[-1], flush=True)
    return rows


if __name__ == "__main__":
    main()
