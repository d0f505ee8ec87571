"""Frequentist comparison side by side: ``python -m bayes_sor compare MODEL --data CSV``.

Four methods estimate the same quantities of one model, and one table sets them side by side:

* **Bayesian**: a finished run (``--run``) or a fit made here: posterior means and credible
  intervals, read from its ``estimates.csv`` / ``effects.csv`` (model metric) and, standardised,
  from its posterior draws.
* **ML SEM** (:func:`bayes_sor.frequentist.ml_sem_fit`): the same parameter table by maximum
  likelihood, every interval a percentile bootstrap; a latent interaction by double-mean-centred
  product indicators.
* **the study's approach**: composite scores (item means), standardised OLS of each model
  equation with the mean-centred product term and the controls, Baron-Kenny steps, the study's
  moderation regression, and a PROCESS-style percentile bootstrap of the effects.
* **published** values (:mod:`bayes_sor.published`).

Rows are keyed by ``(quantity, kind, moderator_value, scale)``: every structural path (``CT ~
PI``, kind ``path``) and every effect of ``effects.csv`` except direct effects (the paths
themselves) and total indirect effects made of a single path (which repeat it). ``scale`` is
``std`` (std.all: both ends standardised, latent SDs implied by the model for Bayes and ML,
composite sample SDs for OLS) or ``raw`` (the model's own metric, so only Bayes, ML and
published values fitted under the same identification). The methods live in
:mod:`bayes_sor.compare_methods`, the report and figure in :mod:`bayes_sor.compare_report`;
this module holds the table, the flags and the command line (and imports only light modules,
since every CLI call loads it).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from bayes_sor.errors import BayesSORError, DataError, ModelSpecError
from bayes_sor.published import KEY, read_published

if TYPE_CHECKING:
    from bayes_sor.partable import ParTable
    from bayes_sor.rundir import Run

LABELS = {"bayes": "Bayesian", "ml": "ML SEM", "study": "study (composite OLS)",
          "published": "published"}
#: in flag texts, which are read row by row
SHORT = {"bayes": "Bayes", "ml": "ML", "study": "study", "published": "published"}
VALUE_COLUMNS = ["est", "se", "lower", "upper", "significant"]
KIND_ORDER = ("path", "indirect", "total_indirect", "total", "conditional_indirect",
              "index_moderated_mediation", "defined", "moderation", "baron_kenny")
OUTPUT_FILES = ("comparison.csv", "comparison.md", "comparison.png")


@dataclass
class MethodEstimates:
    """One method's rows (:data:`KEY` + :data:`VALUE_COLUMNS` + ``note``) and how it got them."""

    name: str
    table: pd.DataFrame
    description: str
    info: dict = field(default_factory=dict)


# ---- the table -------------------------------------------------------------------------------
def comparison_table(methods: list[MethodEstimates]) -> pd.DataFrame:
    """One row per quantity and scale; per method ``<name>_est/_se/_lower/_upper``; flags."""
    keys = pd.concat([m.table[KEY] for m in methods]).drop_duplicates(ignore_index=True)
    table = keys
    for m in methods:
        part = m.table[[*KEY, *VALUE_COLUMNS]].rename(
            columns={c: f"{m.name}_{c}" for c in VALUE_COLUMNS})
        table = table.merge(part, on=KEY, how="left", validate="1:1")
    notes = []
    for m in methods:
        noted = m.table[m.table.note.astype(str) != ""]
        notes.append(noted[KEY].assign(note=LABELS[m.name] + ": " + noted.note.astype(str)))
    notes = pd.concat(notes).groupby(KEY, sort=False).note.agg("; ".join)
    table = table.merge(notes.rename("note").reset_index(), on=KEY, how="left")
    table["note"] = table["note"].fillna("")
    names = [m.name for m in methods]
    flags = [_flags(row, names) for row in table.to_dict("records")]
    table["sign_disagree"] = [f[0] for f in flags]
    table["zero_disagree"] = [f[1] for f in flags]
    table["flag"] = [f[2] for f in flags]
    order = {k: i for i, k in enumerate(KIND_ORDER)}
    table["_scale"] = table.scale.map({"std": 0, "raw": 1})
    table["_kind"] = table.kind.map(order).fillna(len(order))
    table = table.sort_values(["_scale", "_kind"], kind="stable").drop(columns=["_scale",
                                                                                "_kind"])
    columns = [*KEY] + [f"{n}_{c}" for n in names for c in VALUE_COLUMNS]
    columns = [c for c in columns if not c.endswith("_significant") or c.startswith("published")]
    return table[[*columns, "sign_disagree", "zero_disagree", "flag", "note"]].reset_index(
        drop=True)


def read_comparison(path: str | Path) -> pd.DataFrame:
    """``comparison.csv`` back: empty numbers NaN, empty texts '' (names like 'NA' kept)."""
    table = pd.read_csv(path, keep_default_na=False, na_values=[""])
    text = [*KEY, "flag", "note"]
    table[text] = table[text].astype(object).fillna("").astype(str)
    return table


def excludes_zero(row: dict, method: str) -> bool | None:
    """Whether a method's interval excludes zero (a published verdict where no interval)."""
    lower, upper = row.get(f"{method}_lower"), row.get(f"{method}_upper")
    if pd.notna(lower) and pd.notna(upper):
        return bool(lower > 0 or upper < 0)
    verdict = row.get(f"{method}_significant")
    return None if verdict is None or pd.isna(verdict) else bool(verdict)


def _flags(row: dict, methods: list[str]) -> tuple[bool, bool, str]:
    present = [m for m in methods if pd.notna(row.get(f"{m}_est"))]
    signs = {m: np.sign(row[f"{m}_est"]) for m in present}
    sign = len({s for s in signs.values() if s != 0}) > 1
    verdicts = {m: v for m in present if (v := excludes_zero(row, m)) is not None}
    zero = len(set(verdicts.values())) > 1
    parts = []
    if sign:
        plus = [SHORT[m] for m, s in signs.items() if s > 0]
        minus = [SHORT[m] for m, s in signs.items() if s < 0]
        parts.append(f"sign (+ {', '.join(plus)}; - {', '.join(minus)})")
    if zero:
        yes = [SHORT[m] for m, v in verdicts.items() if v]
        no = [SHORT[m] for m, v in verdicts.items() if not v]
        parts.append(f"zero excluded by {', '.join(yes)}, not by {', '.join(no)}")
    return sign, zero, "; ".join(parts)


# ---- inputs ----------------------------------------------------------------------------------
def dummy_controls(data: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    """Control variables as regressors: numeric columns as they are, categorical ones as
    dummies against their first level (alphabetically)."""
    missing = [c for c in names if c not in data.columns]
    if missing:
        raise DataError(f"control variable(s) {missing} are not columns of the data; it has "
                        f"{[c for c in data.columns][:20]}")
    parts = []
    for name in names:
        numeric = pd.to_numeric(data[name], errors="coerce")
        if numeric.notna().sum() == data[name].notna().sum():
            parts.append(numeric.rename(name))
        else:
            dummies = pd.get_dummies(data[name].astype("string"), prefix=name, drop_first=True,
                                     dtype=float)
            parts.append(dummies.where(data[name].notna()))
    return pd.concat(parts, axis=1) if parts else pd.DataFrame(index=data.index)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _check_run(run: Run, partable: ParTable, data_path: Path) -> None:
    """The run must be of this model; a different data file is worth a warning."""
    if set(run.partable.names) != set(partable.names):
        extra = sorted(set(run.partable.names) ^ set(partable.names))[:6]
        raise ModelSpecError(f"run {str(run.path)!r} was fitted to another model than the one "
                             f"given (parameters differ: {extra}); pass the run's model")
    if run.attrs.get("bayes_sor_data_sha256") not in (None, _sha256(data_path)):
        print(f"warning: run {run.path} was fitted to other data than {data_path} (the "
              "SHA-256 differs); the methods are compared on different data", file=sys.stderr)


def _check_counts(args: argparse.Namespace) -> None:
    for option, value, least in (("--boot", args.boot, 2), ("--process-boot",
                                                            args.process_boot, 2),
                                 ("--workers", args.workers, 1)):
        if value < least:
            raise BayesSORError(f"{option} must be at least {least}, got {value}")


def _controls(text: str | None) -> list[str]:
    return [c.strip() for c in (text or "").split(",") if c.strip()]


def _fit_bayes(args: argparse.Namespace, partable: ParTable, out: Path) -> tuple[Path, bool]:
    """Fit the Bayesian model and write its run folder; returns the folder and whether the
    convergence checks passed (failures are printed, and reported in the run's report)."""
    from bayes_sor.fit import fit
    from bayes_sor.report import write_run
    from bayes_sor.sampling import SamplerSettings

    settings = SamplerSettings(chains=args.chains, draws=args.draws, tune=args.tune,
                               seed=args.seed, progressbar=not args.no_progress)
    result = fit(partable, args.data, settings=settings, missing=args.missing)
    write_run(result, out, force=args.force)
    for problem in result.diagnostics.problems:
        print(f"WARNING: {problem}", file=sys.stderr)
    return out, result.diagnostics.ok


def run_comparison(args: argparse.Namespace) -> tuple[pd.DataFrame, list[MethodEstimates], bool]:
    """Everything ``compare`` does before writing: the four methods and their table."""
    from bayes_sor.compare_methods import (
        bayes_estimates,
        ml_estimates,
        published_estimates,
        study_estimates,
    )
    from bayes_sor.data import load_data, read_csv
    from bayes_sor.fit import read_model
    from bayes_sor.output import check_destination
    from bayes_sor.partable import build_partable
    from bayes_sor.rundir import load_run

    _check_counts(args)
    partable = build_partable(read_model(args.model), identification=args.identification)
    if not args.data.is_file():
        raise DataError(f"data file {str(args.data)!r} does not exist")
    # Every input is checked before the (long) fits, so a bad one costs seconds.
    dataset = load_data(args.data, partable.indicators, scale=partable.options.get("scale"),
                        missing=args.missing)
    frame = read_csv(args.data).loc[dataset.frame.index]
    controls = dummy_controls(frame, _controls(args.controls))
    published = read_published(args.published) if args.published else None
    ok = True
    if args.run is None:
        check_destination(args.out / "bayes", args.force)
        run_dir, ok = _fit_bayes(args, partable, args.out / "bayes")
        run = load_run(run_dir)
    else:
        run = load_run(args.run)
        _check_run(run, partable, args.data)
    bayes = bayes_estimates(run)
    partable = run.partable
    level = bayes.info["level"]
    methods = [bayes,
               ml_estimates(partable, dataset.frame, args.boot, args.seed, args.workers, level),
               study_estimates(partable, frame, controls, args.process_boot, args.seed, level)]
    if published is not None:
        methods.append(published_estimates(published, bayes.info["identification"]))
    return comparison_table(methods), methods, ok


# ---- command line ----------------------------------------------------------------------------
def add_command(sub: argparse._SubParsersAction) -> None:
    """Register ``python -m bayes_sor compare``."""
    p = sub.add_parser("compare", help="Bayesian vs ML SEM vs the study's composite OLS vs "
                       "published values, side by side")
    p.add_argument("model", type=Path, help="lavaan-syntax model file (.lav)")
    p.add_argument("--data", type=Path, required=True, help="CSV of item answers (+ controls)")
    p.add_argument("--run", type=Path, help="a finished run folder of this model to reuse "
                   "(default: fit one into OUT/bayes)")
    p.add_argument("--published", type=Path, help="published values (YAML or CSV)")
    p.add_argument("--out", type=Path, required=True, help="folder for comparison.csv/.md/.png")
    p.add_argument("--controls", help="comma-separated control columns for the study's "
                   "regressions (categorical ones are dummy-coded)")
    p.add_argument("--boot", type=int, default=1000, help="ML bootstrap resamples (1000)")
    p.add_argument("--process-boot", type=int, default=5000,
                   help="PROCESS-style bootstrap resamples of the composite effects (5000)")
    p.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1),
                   help="processes for the ML bootstrap (results do not depend on it)")
    p.add_argument("--seed", type=int, default=20261124, help="seed of sampler and bootstraps")
    p.add_argument("--identification", choices=["std.lv", "marker"],
                   help="latent scaling when fitting (default: the model file's, else std.lv)")
    p.add_argument("--missing", default="model", choices=["model", "listwise", "refuse"])
    p.add_argument("--chains", type=int, default=4)
    p.add_argument("--draws", type=int, default=1000)
    p.add_argument("--tune", type=int, default=1000)
    p.add_argument("--force", action="store_true", help="replace an existing OUT/bayes run")
    p.add_argument("--allow-warnings", action="store_true",
                   help="exit 0 even when the new fit fails its convergence checks")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(handler=_handler)


def _handler(args: argparse.Namespace) -> int:
    from bayes_sor.compare_report import write_outputs

    table, methods, ok = run_comparison(args)
    args.out.mkdir(parents=True, exist_ok=True)
    written = write_outputs(table, methods, args.out, model_name=args.model.stem)
    flagged = table[table.flag != ""]
    print(f"{len(table)} rows, {len(flagged)} flagged (methods disagree in sign or in whether "
          "the interval excludes zero)")
    for r in flagged.itertuples():
        print(f"  {r.scale:>3}  {r.kind:<26} {r.quantity} {r.moderator_value}: {r.flag}")
    print("wrote " + ", ".join(str(p) for p in written))
    return 0 if ok or args.allow_warnings else 1
