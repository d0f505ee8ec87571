"""LOO comparison of runs fitted to the same data: ``python -m bayes_sor compare-models A B ...``.

PSIS-LOO per run from the pointwise log-likelihood (:mod:`bayes_sor.checks.loglik`), compared
through ArviZ (``az.compare``): ELPD differences with their standard errors, the probability that a
model predicts worse than the best one, Pareto-k diagnostics and stacking weights. Runs must
share the data (the stored data SHA-256 and the item list) and the kind of log-likelihood.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from bayes_sor.checks.loglik import loglik_kind, loglik_tree, loo, pointwise_loglik
from bayes_sor.checks.result import CheckResult, write_result
from bayes_sor.errors import BayesSORError, DataError
from bayes_sor.files import write_atomic
from bayes_sor.report.document import markdown_table
from bayes_sor.runs.rundir import Run, load_run

K_BAD = 0.7
COLUMNS = [
    "model",
    "rank",
    "elpd_loo",
    "se",
    "elpd_diff",
    "dse",
    "p_worse",
    "p_loo",
    "weight",
    "pareto_k_gt_0.7",
    "diagnostic",
    "loglik",
    "run",
]


def check_same_data(runs: dict[str, Run]) -> None:
    """Refuse runs whose data differ: LOO compares predictions of the same observations."""
    (first, ref), *rest = runs.items()
    for name, run in rest:
        sha_a, sha_b = ref.attrs["bayes_sor_data_sha256"], run.attrs["bayes_sor_data_sha256"]
        if sha_a != sha_b:
            raise DataError(
                f"runs {first!r} and {name!r} were fitted to different data (sha256 "
                f"{sha_a[:12]}... vs {sha_b[:12]}...); LOO compares models of the same "
                "observations: refit both to one data file"
            )
        if ref.items != run.items or ref.n_obs != run.n_obs:
            only = sorted(set(ref.items) ^ set(run.items))
            what = (
                f"items {only} are in one model only"
                if only
                else (
                    "the items are in a different order"
                    if ref.n_obs == run.n_obs
                    else f"N = {ref.n_obs} vs {run.n_obs} respondents"
                )
            )
            raise DataError(
                f"runs {first!r} and {name!r} model different data from the same file: {what}; "
                "LOO compares models of the same items and respondents"
            )


def _loglik_kinds(runs: dict[str, Run]) -> dict[str, str]:
    kinds = {}
    for name, run in runs.items():
        kind, why = loglik_kind(run)
        if kind is None:
            raise BayesSORError(f"run {name!r} cannot enter a LOO comparison: {why}")
        kinds[name] = kind
    marginal = {k for k in kinds.values() if k != "conditional"}
    if marginal and len(marginal) != len(set(kinds.values())):
        raise BayesSORError(
            "the runs' log-likelihoods are of different kinds (given the latent scores for "
            f"{[n for n, k in kinds.items() if k == 'conditional']}, marginal for the others), "
            "whose ELPDs are not on one scale; refit without --save-latent"
        )
    return kinds


def _names(paths: list[Path]) -> list[str]:
    names = [p.resolve().name for p in paths]
    if len(set(names)) < len(names):
        names = [str(p) for p in paths]
    if len(set(names)) < len(names):
        raise BayesSORError("the same run folder is given twice; compare different runs")
    return names


def compare(paths: list[str | Path]) -> pd.DataFrame:
    """The comparison table, best model first."""
    # arviz_stats imports scipy.stats (~0.6 s): loaded where used, not by every command
    import arviz_stats as azs

    paths = [Path(p) for p in paths]
    if len(paths) < 2:
        raise BayesSORError("compare-models needs at least two run folders")
    runs = dict(zip(_names(paths), (load_run(p) for p in paths), strict=True))
    check_same_data(runs)
    kinds = _loglik_kinds(runs)
    elpds = {
        name: loo(loglik_tree(run, pointwise_loglik(run, kinds[name])))
        for name, run in runs.items()
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        table = azs.compare(elpds, method="stacking", round_to="none")
    table = table.rename(columns={"elpd": "elpd_loo", "p": "p_loo"})
    table["pareto_k_gt_0.7"] = [
        int(np.sum(np.asarray(elpds[n].pareto_k) > K_BAD)) for n in table.index
    ]
    table["diagnostic"] = (
        table["diag_elpd"].astype(str) + " " + table["diag_diff"].astype(str)
    ).str.strip()
    table["loglik"] = [kinds[n] for n in table.index]
    table["run"] = [str(runs[n].path) for n in table.index]
    return table.rename_axis("model").reset_index()[COLUMNS]


def summary_text(table: pd.DataFrame) -> str:
    """A Markdown report: the table and what it says."""
    best = table.iloc[0]
    lines = [
        "# Model comparison (PSIS-LOO)",
        "",
        markdown_table(table.drop(columns=["run"]), digits=2),
        "",
    ]
    for r in table.iloc[1:].itertuples():
        diff, dse = -r.elpd_diff, r.dse
        if diff < 4:
            verdict = "the two predict about equally well (|elpd_diff| < 4)"
        elif diff > 2 * dse:
            verdict = f"{best.model} predicts clearly better ({diff:.1f} > 2 x SE {dse:.1f})"
        else:
            verdict = f"{best.model} predicts better, but within 2 SE ({dse:.1f})"
        lines.append(
            f"- {best.model} vs {r.model}: elpd_diff {diff:.1f} (SE {dse:.1f}): {verdict}."
        )
    bad = table[table["pareto_k_gt_0.7"] > 0]
    if len(bad):
        lines.append(
            "- Pareto k > 0.7 for "
            + ", ".join(
                f"{r['model']} ({r['pareto_k_gt_0.7']} respondents)" for r in bad.to_dict("records")
            )
            + ": their ELPD is unreliable for those respondents."
        )
    lines += [
        "",
        "Stacking weights (`weight`) give the combination of models that predicts "
        "best; ELPD is on the log-density scale of the item answers ("
        + ", ".join(sorted(set(table.loglik)))
        + " log-likelihood).",
        "",
    ]
    return "\n".join(lines)


def loo_comparison_check(paths: list[str | Path]) -> CheckResult:
    """The comparison as a result: ``model_comparison.csv`` and its text (nothing written);
    the text is also the command's output and, in a run folder, a section of its report."""
    table = compare(paths)
    text = summary_text(table)
    return CheckResult("compare-models", text, tables={"model_comparison.csv": table}, console=text)


def add_command(sub: argparse._SubParsersAction) -> None:
    """Register ``python -m bayes_sor compare-models RUN ...`` (several runs, not one: its own
    wiring, with the results' writer of every check)."""
    p = sub.add_parser("compare-models", help="LOO comparison of runs fitted to the same data")
    p.add_argument("runs", nargs="+", type=Path, help="two or more run folders")
    p.add_argument(
        "--out",
        type=Path,
        help="folder for model_comparison.csv and model_comparison.md (a run "
        "folder also gets the comparison as a section of its report)",
    )
    p.set_defaults(handler=_handler)


def _handler(args: argparse.Namespace) -> int:
    result = loo_comparison_check(args.runs)
    written = []
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        in_run = (args.out / "posterior.nc").is_file()  # a run folder: a section of its report
        write_result(result, args.out, section=in_run)
        write_atomic(args.out / "model_comparison.md", lambda p: p.write_text(result.text))
        written = ["model_comparison.csv", "model_comparison.md"]
        if in_run:
            written.append("a section of report.md and report.html")
    print(result.console)
    if written:
        print(f"wrote {args.out}/" + ", ".join(written))
    return 0
