"""Frequentist comparison side by side: ``python -m bayes_sor compare MODEL --data CSV``.

Four methods estimate the same quantities of one model, and one table sets them side by side:

* **Bayesian**: a finished run (``--run``) or a fit made here: posterior means and credible
  intervals, read from its ``estimates.csv`` / ``effects.csv`` (model metric) and, standardised,
  from its posterior draws.
* **ML SEM** (:func:`bayes_sor.comparison.ml_sem.ml_sem_fit`): the same parameter table by
  maximum likelihood, every interval a percentile bootstrap; a latent interaction by
  double-mean-centred product indicators.
* **the study's approach**: composite scores (item means), standardised OLS of each model
  equation with the mean-centred product term and the controls, Baron-Kenny steps, the study's
  moderation regression, and a PROCESS-style percentile bootstrap of the effects.
* **published** values (:mod:`bayes_sor.comparison.published`).

Rows are keyed by ``(quantity, kind, moderator_value, scale)``: every structural path (``CT ~
PI``, kind ``path``) and every effect of ``effects.csv`` except direct effects (the paths
themselves) and total indirect effects made of a single path (which repeat it). ``scale`` is
``std`` (std.all: both ends standardised, latent SDs implied by the model for Bayes and ML,
composite sample SDs for OLS) or ``raw`` (the model's own metric, so only Bayes, ML and
published values fitted under the same identification). The methods live in
:mod:`bayes_sor.comparison.compare_methods`, the table and its flags in
:mod:`bayes_sor.comparison.table`, the report and figure in
:mod:`bayes_sor.comparison.compare_report`; this module is the command on top of them.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from bayes_sor.checks.result import Outcome, add_result_command
from bayes_sor.comparison.compare_report import comparison_result
from bayes_sor.comparison.published import Published, read_published
from bayes_sor.comparison.table import OUTPUT_FILES, MethodEstimates, comparison_table
from bayes_sor.data.controls import code_controls, coded_names, dummies_of
from bayes_sor.data.csv_reader import read_csv
from bayes_sor.data.load import Dataset
from bayes_sor.errors import BayesSORError, DataError, ModelSpecError
from bayes_sor.report.run_report import write_run
from bayes_sor.runs.fit import fit, load_answers, read_model
from bayes_sor.runs.output import check_destination
from bayes_sor.runs.rundir import load_run
from bayes_sor.sampling.samplers import SamplerSettings
from bayes_sor.spec.partable import build_partable

if TYPE_CHECKING:
    from bayes_sor.runs.rundir import Run
    from bayes_sor.spec.partable import ParTable


# ---- inputs ----------------------------------------------------------------------------------
def regression_controls(
    data: pd.DataFrame, names: list[str], reference: Mapping[str, object] | None = None
) -> pd.DataFrame:
    """Control variables of the study's regressions (``compare --controls``): numeric columns
    as they are, text ones dummy-coded as a fit codes the model's own controls
    (:func:`~bayes_sor.data.controls.code_controls`: ``gender[female]`` against the header's
    reference level, else the first in sorted order)."""
    missing = [c for c in names if c not in data.columns]
    if missing:
        raise DataError(
            f"control variable(s) {missing} are not columns of the data; it has "
            f"{[c for c in data.columns][:20]}"
        )
    named = {k: v for k, v in (reference or {}).items() if k in names}
    frame, codings = code_controls(data, names, named, "the data", False, "listwise")
    return frame[coded_names(names, codings)].apply(pd.to_numeric, errors="coerce")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _check_run(run: Run, partable: ParTable, data_path: Path) -> None:
    """The run must be of this model; a different data file is worth a warning."""
    if set(run.partable.names) != set(partable.names):
        extra = sorted(set(run.partable.names) ^ set(partable.names))[:6]
        raise ModelSpecError(
            f"run {str(run.path)!r} was fitted to another model than the one "
            f"given (parameters differ: {extra}); pass the run's model"
        )
    if run.attrs.get("bayes_sor_data_sha256") not in (None, _sha256(data_path)):
        print(
            f"warning: run {run.path} was fitted to other data than {data_path} (the "
            "SHA-256 differs); the methods are compared on different data",
            file=sys.stderr,
        )


def check_counts(boot: int, process_boot: int, workers: int) -> None:
    """Refuse bootstrap and worker counts that cannot work, before any input is read."""
    for option, value, least in (
        ("--boot", boot, 2),
        ("--process-boot", process_boot, 2),
        ("--workers", workers, 1),
    ):
        if value < least:
            raise BayesSORError(f"{option} must be at least {least}, got {value}")


def _controls(text: str | None) -> list[str]:
    return [c.strip() for c in (text or "").split(",") if c.strip()]


def _fit_bayes(args: argparse.Namespace, partable: ParTable, out: Path) -> tuple[Path, bool]:
    """Fit the Bayesian model and write its run folder; returns the folder and whether the
    convergence checks passed (failures are printed, and reported in the run's report)."""

    settings = SamplerSettings(
        chains=args.chains,
        draws=args.draws,
        tune=args.tune,
        seed=args.seed,
        progressbar=not args.no_progress,
    )
    result = fit(partable, args.data, settings=settings, missing=args.missing)
    write_run(result, out, force=args.force)
    for problem in result.diagnostics.problems:
        print(f"WARNING: {problem}", file=sys.stderr)
    return out, result.diagnostics.ok


@dataclass(frozen=True)
class ComparisonData:
    """The inputs of the frequentist methods, checked before any fit: the model's items
    (validated, for ML SEM), the whole rows (composites; the model's text controls with their
    dummies added), the controls as regressors, the published values, and the model's table
    with its text controls dummy-coded as a fit codes them."""

    dataset: Dataset
    frame: pd.DataFrame
    controls: pd.DataFrame
    published: Published | None
    partable: ParTable

    @property
    def dummies(self) -> dict[str, list[str]]:
        """Each dummy-coded control of the model and its dummies."""
        return dummies_of(self.dataset.controls)


def comparison_data(
    partable: ParTable,
    data: Path | pd.DataFrame,
    controls: list[str],
    published: Path | None = None,
    missing: str = "model",
) -> ComparisonData:
    """Read and check the answers (a CSV path or a DataFrame), controls and published values.

    ``partable``: the model's table, built from its file or a fitted run's (whose text
    controls are already coded: the answers are read against its model text)."""
    if not isinstance(data, pd.DataFrame) and not Path(data).is_file():
        raise DataError(f"data file {str(data)!r} does not exist")
    model = build_partable(partable.text, identification=partable.options.get("identification"))
    dataset, coded = load_answers(model, data, model.options.get("scale"), missing)
    rows = (data if isinstance(data, pd.DataFrame) else read_csv(data)).loc[dataset.frame.index]
    dummies = coded_names([c.column for c in dataset.controls], dataset.controls)
    frame = rows.join(dataset.frame[dummies])
    return ComparisonData(
        dataset,
        frame,
        regression_controls(frame, controls, model.options.get("reference")),
        read_published(published) if published else None,
        coded,
    )


def method_table(
    run: Run, data: ComparisonData, boot: int, process_boot: int, seed: int, workers: int
) -> tuple[pd.DataFrame, list[MethodEstimates]]:
    """The four methods' rows for a finished run, and their comparison table."""
    # semopy (ML SEM) takes 0.7 s to import: only a comparison itself loads it, not every CLI call
    from bayes_sor.comparison.compare_methods import (
        bayes_estimates,
        ml_estimates,
        published_estimates,
        study_estimates,
    )

    bayes = bayes_estimates(run)
    level = bayes.info["level"]
    methods = [
        bayes,
        ml_estimates(run.partable, data.dataset.frame, boot, seed, workers, level),
        study_estimates(
            run.partable, data.frame, data.controls, process_boot, seed, level, data.dummies
        ),
    ]
    if data.published is not None:
        methods.append(published_estimates(data.published, bayes.info["identification"]))
    return comparison_table(methods), methods


def run_comparison(args: argparse.Namespace) -> tuple[pd.DataFrame, list[MethodEstimates], bool]:
    """The four methods and their table; whether a fit made here passed its convergence
    checks (the options are checked first: :func:`check_counts`)."""
    partable = build_partable(read_model(args.model), identification=args.identification)
    # Every input is checked before the (long) fits, so a bad one costs seconds.
    data = comparison_data(
        partable, args.data, _controls(args.controls), args.published, args.missing
    )
    ok = True
    if args.run is None:
        check_destination(args.out / "bayes", args.force)
        run_dir, ok = _fit_bayes(args, partable, args.out / "bayes")
        run = load_run(run_dir)
    else:
        run = load_run(args.run)
        _check_run(run, data.partable, args.data)
    table, methods = method_table(run, data, args.boot, args.process_boot, args.seed, args.workers)
    return table, methods, ok


def comparison(args: argparse.Namespace) -> Outcome:
    """``compare``'s result (:func:`~bayes_sor.comparison.compare_report.comparison_result`) for
    ``--out``, its section for the Bayesian run's report, and the exit code: 1 when a fit made
    here failed its convergence checks (unless ``--allow-warnings``)."""
    table, methods, ok = run_comparison(args)
    result = comparison_result(table, methods, model_name=args.model.stem)
    run_dir = Path(methods[0].info["run"])
    written = [args.out / name for name in OUTPUT_FILES]
    written += [run_dir / "report.md", run_dir / "report.html"]
    flagged = table[table.flag != ""]
    lines = [
        f"{len(table)} rows, {len(flagged)} flagged (methods disagree in sign or in whether "
        "the interval excludes zero)"
    ]
    lines += [
        f"  {r.scale:>3}  {r.kind:<26} {r.quantity} {r.moderator_value}: {r.flag}"
        for r in flagged.itertuples()
    ]
    lines.append("wrote " + ", ".join(str(p) for p in written))
    return Outcome(
        [replace(result, console="\n".join(lines))],
        args.out,
        run_dir,
        0 if ok or args.allow_warnings else 1,
    )


# ---- command line ----------------------------------------------------------------------------
def add_command(sub: argparse._SubParsersAction) -> None:
    """Register ``python -m bayes_sor compare`` (its results go to ``--out``, its section to
    the Bayesian run's report)."""
    add_result_command(
        sub,
        "compare",
        "Bayesian vs ML SEM vs the study's composite OLS vs published values, side by side",
        comparison,
        _declare,
        lambda args: check_counts(args.boot, args.process_boot, args.workers),
    )


def _declare(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", type=Path, help="lavaan-syntax model file (.lav)")
    p.add_argument("--data", type=Path, required=True, help="CSV of item answers (+ controls)")
    p.add_argument(
        "--run",
        type=Path,
        help="a finished run folder of this model to reuse (default: fit one into OUT/bayes)",
    )
    p.add_argument("--published", type=Path, help="published values (YAML or CSV)")
    p.add_argument("--out", type=Path, required=True, help="folder for comparison.csv/.md/.png")
    p.add_argument(
        "--controls",
        help="comma-separated control columns for the study's "
        "regressions (categorical ones are dummy-coded)",
    )
    p.add_argument("--boot", type=int, default=1000, help="ML bootstrap resamples (1000)")
    p.add_argument(
        "--process-boot",
        type=int,
        default=5000,
        help="PROCESS-style bootstrap resamples of the composite effects (5000)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=min(4, os.cpu_count() or 1),
        help="processes for the ML bootstrap (results do not depend on it)",
    )
    p.add_argument("--seed", type=int, default=20261124, help="seed of sampler and bootstraps")
    p.add_argument(
        "--identification",
        choices=["std.lv", "marker"],
        help="latent scaling when fitting (default: the model file's, else std.lv)",
    )
    p.add_argument("--missing", default="model", choices=["model", "listwise", "refuse"])
    p.add_argument("--chains", type=int, default=4)
    p.add_argument("--draws", type=int, default=1000)
    p.add_argument("--tune", type=int, default=1000)
    p.add_argument("--force", action="store_true", help="replace an existing OUT/bayes run")
    p.add_argument(
        "--allow-warnings",
        action="store_true",
        help="exit 0 even when the new fit fails its convergence checks",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
