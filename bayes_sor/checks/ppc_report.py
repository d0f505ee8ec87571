"""The ``ppc`` command's figures and its "Model checking" section of ``report.md``."""

from __future__ import annotations

import argparse
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from bayes_sor.checks.ppc import PPCResult, item_constructs, predictive_check
from bayes_sor.checks.reliability import reliability_check
from bayes_sor.checks.result import CheckResult, add_check_command
from bayes_sor.errors import BayesSORError
from bayes_sor.report.document import agree, markdown_table
from bayes_sor.runs.rundir import Run

if TYPE_CHECKING:
    from matplotlib.figure import Figure as MplFigure

#: One-sided predictive p below which an under-predicted pair enters the misfit patterns.
HINT_P = 0.05
#: the command's figures, linked from its section (so report.html embeds them there)
FIGURES = {
    "ppc_items.png": "Item distributions: observed vs replicated data",
    "ppc_residuals.png": "Residual correlations (observed - predicted)",
}
#: posterior predictive p below which the data show global misfit
PPP_MISFIT = 0.05
COUNT_MEASURES = ("npar", "ntotal", "ppp.draws", "pareto_k_gt_0.7")


# ---- figures -----------------------------------------------------------------------------------
def _grid(n: int, cols: int = 6) -> tuple[MplFigure, np.flatiter]:
    cols = min(cols, n)
    rows = -(-n // cols)
    # matplotlib (~0.5 s) when the command draws, not when the CLI registers it
    from matplotlib.figure import Figure as MplFigure

    fig = MplFigure(figsize=(2.6 * cols, 2.1 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, axes.flat


def _answered(values: np.ndarray) -> np.ndarray:
    """The answers given (replications miss the same answers as the data)."""
    return values[~np.isnan(values)]


def items_figure(result: PPCResult) -> MplFigure:
    """Observed item ECDFs (black) over those of replicated data sets (blue)."""
    fig, axes = _grid(len(result.item_names))
    for j, (ax, item) in enumerate(zip(axes, result.item_names, strict=False)):
        for rep in result.replicated:
            ax.ecdf(_answered(rep[:, j]), color="tab:blue", alpha=0.12, linewidth=0.8)
        ax.ecdf(_answered(result.observed[:, j]), color="black", linewidth=1.4)
        ax.set_title(item, fontsize=9)
        ax.tick_params(labelsize=7)
    fig.suptitle(
        f"Item distributions: observed (black) vs {len(result.replicated)} replicated "
        "data sets (blue)",
        fontsize=10,
    )
    fig.tight_layout()
    return fig


def residual_figure(result: PPCResult) -> MplFigure:
    """Heat map of observed minus predicted correlations; a white cross outlined in black (seen
    on the darkest and the palest cell alike) marks pairs outside the interval."""
    names = result.item_names
    pos = {n: i for i, n in enumerate(names)}
    mat = np.full((len(names), len(names)), np.nan)
    # largest first: with several groups a pair's cell shows its largest residual (drawn last)
    for r in result.residuals[::-1].itertuples():
        mat[pos[r.item2], pos[r.item1]] = r.residual
    bound = max(float(np.nanmax(np.abs(mat))) if np.isfinite(mat).any() else 0.0, 0.05)
    size = 1.2 + 0.42 * len(names)
    # matplotlib (~0.5 s) when the command draws, not when the CLI registers it
    from matplotlib.figure import Figure as MplFigure

    fig = MplFigure(figsize=(size + 1.2, size))
    ax = fig.add_subplot()
    image = ax.imshow(mat, cmap="RdBu_r", vmin=-bound, vmax=bound)
    flagged = result.residuals[result.residuals.outside]
    ax.scatter(
        [pos[i] for i in flagged.item1],
        [pos[i] for i in flagged.item2],
        marker="X",
        s=60,
        facecolor="white",
        edgecolor="black",
        linewidth=0.9,
        zorder=3,
    )
    ax.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    fig.colorbar(image, ax=ax, label="observed - predicted correlation", shrink=0.8)
    ax.set_title(
        "Residual correlations (white cross: outside the predictive interval)", fontsize=10
    )
    fig.tight_layout()
    return fig


# ---- report --------------------------------------------------------------------------------------
def _measure(result: PPCResult, name: str) -> float:
    rows = result.fit_measures[result.fit_measures.measure == name]
    return float(rows.value.iloc[0]) if len(rows) else np.nan


def _ppp_sentence(ppp: float) -> str:
    if np.isnan(ppp):
        return "No posterior predictive p-value was computed (see the notes)."
    if ppp < PPP_MISFIT:
        return (
            f"**PPP = {ppp:.3f}**: the data are further from the model than data the model "
            "itself generates, in nearly every posterior draw: the model does not reproduce "
            "the observed associations (misfit)."
        )
    if ppp > 0.95:
        return (
            f"**PPP = {ppp:.3f}**: the data fit better than the model's own replications "
            "(over-fitting or a discrepancy insensitive to this model)."
        )
    return (
        f"**PPP = {ppp:.3f}**: the observed discrepancy is typical of data the model "
        "generates: no evidence of global misfit."
    )


def _pair_sentence(r: dict) -> str:
    more = r["residual"] > 0
    verb = "more strongly" if more else "less strongly"
    flag = " (outside its interval)" if r["outside"] else ""
    group = f"[{r['group']}] " if "group" in r else ""
    return (
        f"- {group}{r['item1']} and {r['item2']} ({r['constructs']}) correlate {verb} than the "
        f"model predicts: observed {r['observed']:.2f}, predicted {r['predicted']:.2f} "
        f"{_bracket(r)}{flag}"
    )


def _bracket(r: dict) -> str:
    return f"[{r['pi.lower']:.2f}, {r['pi.upper']:.2f}]"


def _under_predicted(residuals: pd.DataFrame) -> pd.DataFrame:
    """Pairs correlated more than (nearly) every replication: one-sided p < HINT_P."""
    return residuals[(residuals.residual > 0) & (residuals.p_rep_ge_obs < HINT_P)]


def misfit_hints(residuals: pd.DataFrame, constructs: dict[str, str]) -> list[str]:
    """What under-predicted pairs suggest: a cross-loading when one item is under-predicted
    with two or more items of another construct, a residual covariance within a construct."""
    under = _under_predicted(residuals)

    def group(r) -> str:  # a multiple-group run's residuals are each group's
        return f"[{r.group}] " if hasattr(r, "group") else ""

    counts: dict[tuple[str, str, str], int] = {}
    for r in under[under.constructs.str.contains("/")].itertuples():
        for item, other in ((r.item1, r.item2), (r.item2, r.item1)):
            key = (group(r), item, constructs[other])
            counts[key] = counts.get(key, 0) + 1
    hints = [
        f"- {where}{item} is under-predicted with {n} items of {construct}: it may also "
        f"measure {construct} (a cross-loading '{construct} =~ {item}'; check the item's "
        "wording before adding it)"
        for (where, item, construct), n in sorted(counts.items())
        if n >= 2
    ]
    hints += [
        f"- {group(r)}{r.item1} and {r.item2} share more than their construct {r.constructs} "
        f"explains: a residual covariance '{r.item1} ~~ {r.item2}' (shared wording or "
        "method) or a further factor"
        for r in under[~under.constructs.str.contains("/")].itertuples()
    ]
    return hints


def _shape_sentence(items: pd.DataFrame, shown: int = 12) -> str:
    """Item statistics outside their predictive intervals, the first ``shown`` in words."""
    if items.empty:
        return "No item distributions to check (no respondent-level data)."
    shape = items[items.outside]
    if shape.empty:
        return (
            "Every item's mean, SD, skewness and kurtosis lie within their predictive "
            "intervals (`ppc_items.png`)."
        )
    words = [
        f"{r['item']} {r['statistic']} (observed {r['observed']:.2f}, predicted {_bracket(r)})"
        for r in shape.head(shown).to_dict("records")
    ]
    more = f"; and {len(shape) - shown} more" if len(shape) > shown else ""
    return (
        "Item distributions the model does not reproduce (`ppc_items.png`, "
        "`ppc_items.csv`): " + "; ".join(words) + more + "."
    )


def _misses(result: PPCResult, ci: float) -> list[str]:
    """How many item pairs' correlations fall outside their predictive intervals, and the
    largest of them (the largest residuals too when the PPP is small)."""
    residuals = result.residuals
    outside = residuals[residuals.outside]
    largest = residuals.head(6) if _measure(result, "ppp") < 0.05 else residuals.iloc[:0]
    keys = [c for c in ("group", "item1", "item2") if c in residuals.columns]
    shown = pd.concat([outside.head(10), largest]).drop_duplicates(keys)
    lines = [
        "### Where the model misses",
        "",
        f"{len(outside)} of {len(residuals)} item pairs "
        f"{agree(len(outside), 'has', 'have')} an observed correlation outside "
        f"{agree(len(outside), 'its', 'their')} {ci:.0%} posterior predictive "
        "interval (`residuals.csv`)"
        + ("; the largest residual correlations:" if len(shown) else "."),
    ]
    lines += [_pair_sentence(r) for r in shown.to_dict("records")]
    return lines


def report_section(run: Run, result: PPCResult, ci: float) -> str:
    """The "Model checking" section: fit measures and, in words, what the model misses."""
    show = result.fit_measures[~result.fit_measures.measure.str.contains(r"\.ci\.")]
    lines = [
        "## Model checking (posterior predictive)",
        "",
        _ppp_sentence(_measure(result, "ppp")),
        "",
    ]
    if not np.isnan(_measure(result, "srmr")):
        lines += [
            ", ".join(
                f"{name.upper()} {_measure(result, name):.3f} "
                f"[{_measure(result, name + '.ci.lower'):.3f}, "
                f"{_measure(result, name + '.ci.upper'):.3f}]"
                for name in ("srmr", "brmsea", "bcfi")
                if not np.isnan(_measure(result, name))
            )
            + f" ({ci:.0%} intervals; conventional cut-offs SRMR < .08, RMSEA < .06-.08, "
            "CFI > .90-.95).",
            "",
        ]
    lines += _misses(result, ci)
    hints = misfit_hints(result.residuals, item_constructs(run))
    if hints:
        lines += [
            "",
            f"Patterns (pairs correlated more than in {1 - HINT_P:.0%} of the replications):",
            *hints,
        ]
    lines += ["", _shape_sentence(result.items)]
    lines += [
        "",
        *(
            f"![{title}]({name})"
            for name, title in FIGURES.items()
            if name != "ppc_items.png" or result.observed is not None
        ),
    ]
    k_bad = _measure(result, "pareto_k_gt_0.7")
    if k_bad > 0:
        lines += [
            "",
            f"LOO: {k_bad:.0f} {agree(int(k_bad), 'respondent has', 'respondents have')}"
            " Pareto k > 0.7: their influence makes elpd_loo unreliable; inspect them or "
            "use moment matching / K-fold.",
        ]
    lines += ["", "### Fit measures", "", markdown_table(counts_as_integers(show)), ""]
    if result.notes:
        lines += ["Notes:", *[f"- {n}" for n in result.notes], ""]
    return "\n".join(lines)


def counts_as_integers(measures: pd.DataFrame) -> pd.DataFrame:
    """Counts (parameters, respondents, draws, respondents with high Pareto k) print as
    integers, the other measures with decimals."""
    counts = measures.measure.isin(COUNT_MEASURES)
    values = [
        int(v) if count and np.isfinite(v) else v
        for v, count in zip(measures.value, counts, strict=True)
    ]
    return measures.assign(value=pd.Series(values, index=measures.index, dtype=object))


def ppc_check(run: Run, draws: int = 1000, seed: int = 1, ci: float = 0.95) -> CheckResult:
    """The check as a result: fit measures, residual correlations, item distributions, their
    figures and the "Model checking" section (nothing written); passed: no evidence of misfit
    (PPP >= 0.05), None where no PPP was computed."""
    result = predictive_check(run, draws, seed, ci)
    ppp = _measure(result, "ppp")
    shown = result.fit_measures[~result.fit_measures.measure.str.contains(r"\.ci\.")]
    n_out = int(result.residuals.outside.sum())
    console = (
        counts_as_integers(shown)[["measure", "value"]].to_string(
            index=False, formatters={"value": lambda v: v if isinstance(v, int) else f"{v:.3f}"}
        )
        + f"\n\n{n_out} item {agree(n_out, 'pair', 'pairs')} outside the predictive interval; "
        "wrote fit_measures.csv, residuals.csv, ppc_items.csv/.png, ppc_residuals.png, "
        f"reliability.csv and their sections of report.md and report.html in {run.path}/"
    )
    # without the observed answers (summary statistics) there are no item distributions to draw
    items = items_figure(result) if result.observed is not None else None
    return CheckResult(
        "ppc",
        report_section(run, result, ci),
        tables={
            "fit_measures.csv": result.fit_measures,
            "residuals.csv": result.residuals,
            "ppc_items.csv": result.items,
        },
        figures={"ppc_items.png": items, "ppc_residuals.png": residual_figure(result)},
        passed=None if np.isnan(ppp) else bool(ppp >= PPP_MISFIT),
        notes=tuple(result.notes),
        console=console,
    )


# ---- command line ------------------------------------------------------------------------------
def _declare(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--draws",
        type=int,
        default=1000,
        help="posterior draws to replicate (evenly thinned; default 1000)",
    )
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--ci", type=float, default=0.95, help="interval probability (0.95)")


def _validate(args: argparse.Namespace) -> None:
    if not 0 < args.ci < 1 or args.draws < 1:
        raise BayesSORError("--ci must lie in (0, 1) and --draws be at least 1")


def _checks(run: Run, args: argparse.Namespace) -> list[CheckResult]:
    """The predictive check and, as part of it, reliability (its lines are the ppc's)."""
    return [
        ppc_check(run, args.draws, args.seed, args.ci),
        replace(reliability_check(run, args.ci), console=""),
    ]


def add_command(sub: argparse._SubParsersAction) -> None:
    """Register ``python -m bayes_sor ppc RUN_DIR``."""
    add_check_command(
        sub,
        "ppc",
        "posterior predictive checks, fit measures and LOO of a run",
        _checks,
        declare=_declare,
        validate=_validate,
    )
