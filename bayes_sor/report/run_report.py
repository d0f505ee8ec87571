"""A run folder and its report.

:func:`write_run` saves a fit (``posterior.nc``, ``estimates.csv``, ``effects.csv``,
``hypotheses.csv``, ``partable.csv``) atomically and then calls :func:`write_report`, which
works from those files alone (so ``python -m bayes_sor report RUN_DIR`` can redo it at any time):
it writes ``report.html`` (one self-contained page to hand to a co-author), ``report.md`` (the
same content, for diffs) and the figures as PNG files beside them. :func:`report_run` writes
the same report from a run still in memory (a fit just saved), without reading it back.
"""

from __future__ import annotations

import json
import re
import shutil
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from bayes_sor.posterior.diagnostics import BFMI_MIN, ESS_MIN, RHAT_MAX
from bayes_sor.posterior.estimates import ESTIMATE_COLUMNS
from bayes_sor.posterior.hypotheses import DEFAULT_ROPE, evaluate, verdict_rules
from bayes_sor.report.document import (
    Block,
    Bullets,
    Code,
    Document,
    Figure,
    Markdown,
    Paragraph,
    Section,
    Table,
    appended_sections,
    format_frame,
    image_links,
    to_html,
    to_markdown,
)
from bayes_sor.report.figures import (
    JN_PROB,
    conditional_curves,
    conditional_plot,
    describe_regions,
    forest_plot,
    group_differences_plot,
    moderated_paths,
    rank_plot,
    save_png,
    worst_parameters,
    worst_rows,
    write_readable,
)
from bayes_sor.runs.output import staging
from bayes_sor.runs.rundir import RUN_FILES, Run, load_run, read_table
from bayes_sor.spec.partable import ParTable, kind_of, row_name, small_variance_parameters

if TYPE_CHECKING:
    from bayes_sor.report.figures import ConditionalCurve
    from bayes_sor.runs.fit import FitResult

FIGURE_FILES = {
    "diagram": "path_diagram.png",
    "forest": "effects_forest.png",
    "conditional": "conditional_effects.png",
    "rank": "rank_plots.png",
    "differences": "group_differences.png",
}
#: approximate invariance's deviations from the common values (written by :func:`write_run`)
DEVIATIONS_FILE = "invariance_deviations.csv"
#: the invariance ladder's table, written by ``invariance --out`` (into a run's folder: its
#: Groups section shows it)
LADDER_FILE = "invariance.csv"
#: the invariance ladder's columns the Groups section shows
LADDER_COLUMNS = ["step", "group.equal", "ppp", "brmsea", "bcfi", "elpd_loo", "elpd_diff", "dse"]
#: files of a replaced run (``fit --force``) carried into the new one: the user's notes
KEPT_FILES = ("README.md",)
#: rows shown of a table another stage wrote (residual matrices can be large)
MAX_EXTRA_ROWS = 60


# ---- small formatting helpers --------------------------------------------------------------


def _interval(mean: float, lower: float, upper: float) -> str:
    if pd.isna(mean):
        return ""
    return f"{mean:.3f} [{lower:.3f}, {upper:.3f}]"


def _json_attr(attrs: dict, key: str) -> dict:
    try:
        return json.loads(attrs.get(key, "{}"))
    except json.JSONDecodeError:
        return {}


def _roles(partable: ParTable) -> dict[str, str]:
    """S-O-R role of each construct, as derived from the structural model."""
    causes = {c for r in partable.regressions.itertuples() for c in r.rhs.split(":")}
    roles = {}
    for f in partable.latents:
        if f in partable.moderators:
            roles[f] = "moderator"
        elif f in partable.exogenous:
            roles[f] = "stimulus (exogenous)" if f in causes else "measured only"
        else:
            roles[f] = "organism (mediator)" if f in causes else "response (outcome)"
    return roles


# ---- sections ------------------------------------------------------------------------------


def _model_section(run: Run) -> Section:
    attrs, pt = run.attrs, run.partable
    loads = pt.table[pt.table.op == "=~"]
    roles = _roles(pt)
    constructs = pd.DataFrame(
        [
            {
                "construct": f,
                "role": roles[f],
                "items": int((loads.lhs == f).sum()),
                "indicators": ", ".join(loads.rhs[loads.lhs == f]),
            }
            for f in pt.latents
        ]
    )
    settings = _json_attr(attrs, "bayes_sor_sampler_settings")
    versions = _json_attr(attrs, "bayes_sor_versions")
    return Section(
        "1. Model and data",
        [
            Code(pt.text),
            Bullets(
                [
                    f"N = {attrs.get('bayes_sor_n_obs', '?')} respondents; data "
                    f"`{attrs.get('bayes_sor_data_source', '?')}`, sha256 "
                    f"`{attrs.get('bayes_sor_data_sha256', '?')}`",
                    _missingness(attrs),
                    *_category_notes(attrs),
                    *(
                        f"control {line}"
                        for line in json.loads(attrs.get("bayes_sor_controls", "[]"))
                    ),
                    f"identification: {attrs.get('bayes_sor_identification', '?')}; likelihood: "
                    f"{attrs.get('bayes_sor_likelihood', '?')}; intervals: {run.interval}",
                    "sampler: "
                    + ", ".join(
                        f"{k} = {v}"
                        for k, v in settings.items()
                        if k != "progressbar" and v is not None
                    ),
                    f"seed: {attrs.get('bayes_sor_seed', settings.get('seed', '?'))}; sampled "
                    f"{run.tree['posterior'].attrs.get('created_at') or _written(run.path)}",
                    "software: " + ", ".join(f"{k} {v}" for k, v in versions.items()),
                ]
            ),
            _titled(format_frame(constructs), "Constructs and their items"),
            _titled(
                format_frame(_priors(run.estimates)),
                "Priors of the free parameters "
                "(blavaan notation; [sd]: the prior is on the standard deviation)",
            ),
        ],
    )


def _written(folder: Path) -> str:
    """When posterior.nc was written (the file keeps no timestamp, so that runs of the same
    seed are byte-identical)."""
    stamp = (Path(folder) / "posterior.nc").stat().st_mtime
    return datetime.fromtimestamp(stamp, UTC).isoformat(timespec="seconds")


def _missingness(attrs: dict) -> str:
    if "bayes_sor_missing" not in attrs:
        return "missing answers: not recorded in this run folder"
    missing = {k: v for k, v in _json_attr(attrs, "bayes_sor_missing").items() if v}
    dropped = attrs.get("bayes_sor_n_dropped", "0")
    listed = ", ".join(f"{k} {v}" for k, v in missing.items()) or "none"
    method = attrs.get("bayes_sor_missing_method")
    if method == "model":
        how = (
            "case-wise (FIML) likelihood over the missingness patterns"
            if attrs.get("bayes_sor_likelihood") in ("marginal", "quadrature")
            else "only the answered items enter the likelihood (no values imputed)"
        )
        handled = f"missing-data model, {how}; respondents without any answer left out: {dropped}"
    elif method == "listwise":
        handled = f"listwise deletion ({dropped} incomplete respondents dropped)"
    elif method == "refuse":
        handled = "none needed (incomplete data would have been refused)"
    elif method is None:  # a run written before the method was recorded
        return f"missing answers per item: {listed}; respondents dropped (listwise): {dropped}"
    else:
        handled = method  # e.g. "none (summary statistics)"
    return f"missing answers per item: {listed}; handling: {handled}"


def _category_notes(attrs: dict) -> list[str]:
    """The fit's warning about ordinal items with empty or sparse categories, if any."""
    notes = json.loads(attrs.get("bayes_sor_category_notes", "[]"))
    return (
        [
            "ordinal items with empty or sparse categories (thresholds lie between observed "
            "categories only): " + "; ".join(notes)
        ]
        if notes
        else []
    )


def _priors(estimates: pd.DataFrame) -> pd.DataFrame:
    free = estimates[estimates.free > 0].drop_duplicates("free")
    kinds = [kind_of(r.op, r.lhs, r.rhs) for r in free.itertuples()]
    names = [row_name(r.lhs, r.op, r.rhs) for r in free.itertuples()]
    frame = pd.DataFrame({"kind": kinds, "prior": free.prior.to_numpy(), "name": names})
    rows = []
    for (kind, prior), group in frame.groupby(["kind", "prior"], sort=False):
        shown = ", ".join(group.name.head(4)) + (" ..." if len(group) > 4 else "")
        rows.append({"parameters": kind, "prior": prior, "count": len(group), "examples": shown})
    return pd.DataFrame(rows)


def _titled(table: Table, caption: str) -> Table:
    return Table(table.frame, caption, table.numeric)


def _hypotheses_section(run: Run) -> Section:
    h = run.hypotheses
    if h.empty:
        return Section(
            "2. Hypotheses",
            [
                Paragraph(
                    "The model file declares no hypotheses. Declare them as comments, e.g. "
                    "`# H1: CT ~ PI > 0`, `# H6: indirect(PI -> CT -> IB) > 0`, "
                    "`# H10: IB ~ CT:IT > 0`."
                )
            ],
        )
    ci = f"{run.ci_prob:.0%}"
    table = pd.DataFrame(
        {
            "hypothesis": h.hypothesis,
            "statement": h.statement,
            f"mean [{ci} ETI]": [
                _interval(*v)
                for v in h[["mean", "ci.lower", "ci.upper"]].itertuples(index=False, name=None)
            ],
            f"std.all mean [{ci} ETI]": [
                _interval(*v)
                for v in h[["std.mean", "std.ci.lower", "std.ci.upper"]].itertuples(
                    index=False, name=None
                )
            ],
            "P(direction)": h.p_direction,
            f"P(ROPE ±{run.rope:g})": h.p_rope,
            "ROPE scale": h.rope_scale,
            "verdict": h.verdict,
        }
    )
    return Section(
        "2. Hypotheses",
        [
            Paragraph(
                "Each hypothesis declared in the model file, judged from the posterior. "
                "P(direction) is the posterior probability that the stated sign holds; "
                "P(ROPE) the probability that the effect lies within the region of practical "
                f"equivalence ±{run.rope:g} around zero. Paths are standardised as lavaan's "
                "`std.all`; an effect of X on Y is scaled by sd(X)/sd(Y); defined "
                "parameters stay on their own (raw) scale. **Verdicts:** "
                f"{verdict_rules(run.rope)}."
            ),
            format_frame(table),
        ],
    )


def _diagram_section(run: Run, figure: Path | None) -> Section:
    scale = f"on the model's ({run.attrs.get('bayes_sor_identification', 'std.lv')}) scale"
    if not run.partable.endogenous:
        if figure is None:
            return Section(
                "3. Path diagram",
                [Paragraph("The model has no latent variables and no structural paths to draw.")],
            )
        return Section(
            "3. Measurement model",
            [
                Figure(
                    figure,
                    (
                        "The model has no structural paths: its factors and their items. Arrow "
                        f"labels: the loadings' posterior means {scale}; arcs: factor "
                        f"covariances, posterior mean [{run.interval}]. Solid: the interval "
                        "excludes zero; dashed grey: it includes zero. Intervals of every loading "
                        "are in section 7."
                    ),
                )
            ],
        )
    r2 = run.r2.assign(
        **{
            "R²": [
                _interval(*v)
                for v in run.r2[["mean", "ci.lower", "ci.upper"]].itertuples(index=False, name=None)
            ]
        }
    )
    return Section(
        "3. Path diagram",
        [
            Figure(
                figure,
                (
                    f"Structural model. Labels: posterior mean [{run.interval}] {scale}. Solid "
                    "arrows: the interval excludes zero; dashed grey arrows: it includes zero. An "
                    "arrow from a moderator onto a path is the latent interaction (moderator × "
                    "cause). Under each endogenous construct: its R² (explained variance). "
                    "Covariances among exogenous constructs are estimated but not drawn."
                ),
            ),
            Paragraph(
                "R² of each endogenous construct: 1 − its residual variance / its total "
                "variance implied by the model (the latent interaction's share included), "
                f"per posterior draw; posterior mean [{run.ci_prob:.0%} equal-tailed "
                "interval]."
            ),
            _titled(format_frame(r2[["construct", "R²"]]), "Explained variance (R²)"),
        ],
    )


def _effects_section(run: Run, figures: dict[str, Path], curves: list[ConditionalCurve]) -> Section:
    e = run.effects
    if e.empty:
        return Section(
            "4. Effects",
            [
                Paragraph(
                    "The model has no structural paths, so there are no direct, indirect or total "
                    "effects to report."
                )
            ],
        )
    table = pd.DataFrame(
        {
            "effect": e.effect,
            "kind": e.kind.str.replace("_", " "),
            "at": e.moderator_value,
            **({"group": e.group} if "group" in e.columns else {}),
            "mean": e["mean"],
            "sd": e["sd"],
            "lower": e["ci.lower"],
            "upper": e["ci.upper"],
            "P(> 0)": e.p_positive,
        }
    )
    moderated = (
        " Conditional indirect effects are at -1/0/+1 SD of the latent moderator "
        "and at the 16th/50th/84th percentiles of its latent scores; the index of "
        "moderated mediation is a·d."
        if run.partable.interactions
        else ""
    )
    return Section(
        "4. Effects",
        [
            *_effects_figures(run, figures, curves),
            Paragraph(f"All effects ({run.interval}).{moderated}"),
            _titled(format_frame(table), "Effects (effects.csv)"),
        ],
    )


def _effects_figures(
    run: Run, figures: dict[str, Path], curves: list[ConditionalCurve]
) -> list[Block]:
    """The effects forest and the conditional effects along the moderator, with their
    Johnson-Neyman regions in words."""
    blocks: list[Block] = []
    if "forest" in figures:
        blocks.append(
            Figure(
                figures["forest"],
                (
                    "Direct, specific indirect, total indirect and total effects: posterior mean "
                    f"and {run.interval}. With a moderator on a path, effects through it are at "
                    "the moderator's mean."
                ),
            )
        )
    if "conditional" in figures:
        blocks += [
            Figure(
                figures["conditional"],
                (
                    f"Conditional effects along the moderator (the moderated path b + d·w and "
                    f"each conditional indirect effect a·(b + d·w)), computed per posterior draw "
                    f"over a grid of w in SDs of the latent moderator: mean and {run.ci_prob:.0%} "
                    f"equal-tailed band. Shaded green: the Johnson-Neyman-style region where "
                    f"P(effect > 0) > {JN_PROB}; red: P(effect < 0) > {JN_PROB}. The region is "
                    "one-sided, so it can reach where the two-sided band touches zero."
                ),
            ),
            Bullets([f"{c.kind} {c.path}: {describe_regions(c)}" for c in curves]),
        ]
    return blocks


def _diagnostics_section(run: Run, figures: dict[str, Path]) -> Section:
    diag = run.diagnostics
    status = (
        "**All checks passed.**"
        if diag.ok
        else "**Checks FAILED**: "
        + "; ".join(diag.problems)
        + ". Do not interpret the estimates before fixing this."
    )
    summary = pd.DataFrame(
        [
            {
                "max R-hat": diag.max_r_hat,
                "min bulk ESS": round(diag.min_ess_bulk),
                "min tail ESS": round(diag.min_ess_tail),
                "divergences": diag.divergences,
                "draws": diag.n_draws,
                "min E-BFMI": diag.min_bfmi,
            }
        ]
    )
    worst = _worst_table(run.estimates)
    blocks: list[Block] = [
        Paragraph(
            f"Thresholds: R-hat <= {RHAT_MAX}, bulk and tail ESS >= {ESS_MIN}, no "
            f"divergent transitions, E-BFMI >= {BFMI_MIN}. {status}"
        ),
        format_frame(summary),
        _titled(format_frame(worst), "The free parameters with the highest R-hat"),
    ]
    if "rank" in figures:
        blocks.append(
            Figure(
                figures["rank"],
                (
                    "Rank plots of the six worst-mixing free parameters (highest R-hat): with "
                    "converged chains each chain's ranks are uniform."
                ),
            )
        )
    return Section("5. Diagnostics", blocks)


def _worst_table(estimates: pd.DataFrame, n: int = 10) -> pd.DataFrame:

    free = worst_rows(estimates, n)
    return pd.DataFrame(
        {
            "parameter": [f"{r.lhs} {r.op} {r.rhs}".strip() for r in free.itertuples()],
            "mean": free["mean"].to_numpy(),
            "R-hat": free.r_hat.to_numpy(),
            "bulk ESS": free.ess_bulk.round().astype("Int64").to_numpy(),
            "tail ESS": free.ess_tail.round().astype("Int64").to_numpy(),
        }
    )


@dataclass(frozen=True)
class Extra:
    """Results another stage may add to the run folder, shown when present: its section of
    ``report.md`` (``key``) when it wrote one, else its tables; its figures in any case."""

    key: str
    title: str
    tables: tuple[str, ...]
    images: tuple[str, ...]  # glob patterns


EXTRAS = (
    Extra(
        "ppc", "Posterior predictive checks", ("fit_measures.csv", "residuals.csv"), ("ppc_*.png",)
    ),
    Extra("reliability", "Reliability", ("reliability.csv",), ()),
    Extra("sensitivity", "Prior sensitivity", ("sensitivity.csv",), ("sensitivity*.png",)),
    Extra("compare", "Frequentist comparison", ("comparison.csv",), ("comparison*.png",)),
    Extra("compare-models", "Model comparison (PSIS-LOO)", ("model_comparison.csv",), ()),
)


def _csv_blocks(folder: Path, names: tuple[str, ...]) -> list[Block]:
    blocks: list[Block] = []
    for path in (folder / n for n in names):
        if path.is_file():
            frame = pd.read_csv(path)
            note = (
                f" (first {MAX_EXTRA_ROWS} of {len(frame)} rows)"
                if len(frame) > MAX_EXTRA_ROWS
                else ""
            )
            blocks.append(_titled(format_frame(frame.head(MAX_EXTRA_ROWS)), f"{path.name}{note}"))
    return blocks


def _linked(folder: Path, markdown: str) -> set[Path]:
    """The local figures a stage's section links (shown there, so not again)."""
    return {(folder / target).resolve() for target in image_links(markdown)}


def _checks_section(run: Run, appended: dict[str, str]) -> Section:
    blocks: list[Block] = []
    shown = {(run.path / name).resolve() for name in FIGURE_FILES.values()}
    for extra in EXTRAS:
        tables = [] if extra.key in appended else _csv_blocks(run.path, extra.tables)
        own = appended.get(extra.key, "")
        shown |= _linked(run.path, own)
        images = sorted(
            p
            for pattern in extra.images
            for p in run.path.glob(pattern)
            if p.resolve() not in shown
        )
        shown |= {p.resolve() for p in images}
        if own:  # the stage's own words, headed by itself
            blocks.append(Markdown(own, extra.key, run.path))
        elif tables or images:
            blocks.append(Paragraph(f"**{extra.title}** (from the files in the run folder)"))
        blocks += [*tables, *(Figure(p, f"`{p.name}`") for p in images)]
    known = {e.key for e in EXTRAS}
    for key, text in appended.items():
        if key not in known:
            blocks.append(Markdown(text, key, run.path))
            shown |= _linked(run.path, text)
    # Whatever else a stage drew into the folder: a co-author with report.html alone sees it.
    others = sorted(
        p
        for suffix in ("png", "svg")
        for p in run.path.glob(f"*.{suffix}")
        if p.resolve() not in shown
    )
    if others:
        blocks += [
            Paragraph("**Other figures in the run folder**"),
            *(Figure(p, f"`{p.name}`") for p in others),
        ]
    if not blocks:
        files = ", ".join(f"`{f}`" for e in EXTRAS for f in (*e.tables, *e.images))
        blocks.append(
            Paragraph(
                "No posterior predictive, reliability, sensitivity or comparison results in this "
                f"run folder yet ({files} and the sections that `python -m bayes_sor ppc`, "
                "`reliability`, `sensitivity`, `compare` and `compare-models` add to report.md "
                "are shown here when present)."
            )
        )
    return Section("6. Checks and comparison", blocks)


def _estimates_section(run: Run) -> Section:
    e = run.estimates
    # a multiple-group run's later groups repeat every row: the group tells them apart
    group = ["group"] if "group" in e.columns else []
    shown = [c for c in ESTIMATE_COLUMNS if c not in ("median", "free")]
    table = e[[*group, *shown]].copy()
    table[["ess_bulk", "ess_tail"]] = table[["ess_bulk", "ess_tail"]].round().astype("Int64")
    return Section(
        "7. Parameter estimates",
        [
            *_small_variance_blocks(run),
            Paragraph(f"Every parameter ({run.interval}); fixed parameters have no R-hat or ESS."),
            _titled(format_frame(table), "Parameter estimates (estimates.csv)"),
        ],
    )


def _small_variance_blocks(run: Run) -> list[Block]:
    """The cross-loadings and residual covariances added with small-variance priors (header
    options ``cross_loadings``, ``residual_covariances``) whose interval excludes 0: where the
    model as written misses something (BSEM, Muthen & Asparouhov 2012)."""
    added = small_variance_parameters(run.partable)[["lhs", "op", "rhs"]]
    if added.empty:
        return []
    e = run.estimates.merge(added, on=["lhs", "op", "rhs"])
    flagged = e[(e["ci.lower"] > 0) | (e["ci.upper"] < 0)]
    text = (
        f"The model adds {len(e)} cross-loadings and residual covariances with small-variance "
        f"priors ({', '.join(sorted(set(e.prior)))}); {len(flagged)} of them "
        f"{'has' if len(flagged) == 1 else 'have'} a {run.interval} that excludes 0"
    )
    if flagged.empty:
        return [Paragraph(text + ": the data ask for none of them.")]
    shown = flagged[["lhs", "op", "rhs", "mean", "sd", "ci.lower", "ci.upper", "std.all", "prior"]]
    return [
        Paragraph(
            text + ", listed below: candidates to state in the model (or evidence against "
            "it), to judge by their size and by theory, as modification indices are."
        ),
        _titled(format_frame(shown), "Small-variance parameters whose interval excludes 0"),
    ]


# ---- figures and the whole report ----------------------------------------------------------


def make_figures(run: Run, redraw: bool = True) -> tuple[dict[str, Path], list[ConditionalCurve]]:
    """Draw and save the report's figures; returns {name: path} and the conditional curves.
    ``redraw=False`` keeps the figures already in the folder (they depend on the posterior
    alone, which a model check does not change)."""
    # the diagram is drawn with matplotlib (~0.5 s to import): only when figures are made
    from bayes_sor.report.diagram import path_diagram

    par = run.posterior["par"].values
    curves = conditional_curves(
        run.partable, par, moderated_paths(run.partable, run.effects), run.ci_prob
    )
    estimates, effects = _first_group(run.estimates), _first_group(run.effects)
    drawers = {
        "diagram": lambda: path_diagram(run.partable, estimates, run.interval, run.r2),
        "forest": lambda: forest_plot(effects, run.interval),
        "differences": lambda: group_differences_plot(run.effects, run.interval),
        "conditional": lambda: conditional_plot(curves, f"{run.ci_prob:.0%} interval"),
        "rank": lambda: rank_plot(run.tree, worst_parameters(run.estimates)),
    }
    saved = {}
    for name, draw in drawers.items():
        path = run.path / FIGURE_FILES[name]
        if not redraw and path.is_file():
            saved[name] = path
            continue
        fig = draw()
        if fig is None:
            path.unlink(missing_ok=True)  # a figure of an earlier report must not linger
            continue
        saved[name] = save_png(fig, path)
    return saved, curves


def group_labels(estimates: pd.DataFrame) -> list[str]:
    """A multiple-group run's groups in their order (the first is the reference of every
    difference); empty for one group."""
    return list(dict.fromkeys(estimates.group)) if "group" in estimates.columns else []


def _first_group(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of the first group of a multiple-group run's table (all rows of one group)."""
    if "group" not in frame.columns:
        return frame
    return frame[frame.group == frame.group.iloc[0]] if len(frame) else frame


def _groups_section(run: Run, figures: dict[str, Path]) -> Section | None:
    """A multiple-group run: each path per group, the effects' differences between groups
    and, under approximate invariance, the parameters flagged as non-invariant."""
    labels = group_labels(run.estimates)
    if not labels:
        return None
    blocks: list[Block] = [
        Paragraph(
            f"The model is fitted in {len(labels)} groups ({', '.join(labels)}). The path "
            f"diagram, the effects forest and the hypotheses show the first group ({labels[0]}); "
            "the tables of effects and estimates have every group."
        )
    ]
    paths = per_group_table(run.estimates[run.estimates.op == "~"], labels)
    if len(paths):
        blocks.append(_titled(format_frame(paths), f"Paths per group, mean [{run.interval}]"))
    if "differences" in figures:
        blocks.append(
            Figure(
                figures["differences"],
                f"Each effect's difference between groups (a later group minus {labels[0]}): "
                f"posterior mean and {run.interval}; P(difference > 0) is in effects.csv.",
            )
        )
    ladder = run.path / LADDER_FILE
    if ladder.is_file():
        blocks += ladder_blocks(read_table(ladder))
    deviations = run.path / DEVIATIONS_FILE
    if deviations.is_file():
        blocks += deviation_blocks(read_table(deviations), run.interval)
    return Section("8. Groups", blocks)


def ladder_blocks(ladder: pd.DataFrame) -> list[Block]:
    """The measurement-invariance ladder that ``invariance --out`` wrote into this run's
    folder: each step's fit and its verdict against the step before."""
    shown = ladder[[c for c in LADDER_COLUMNS if c in ladder.columns]]
    return [
        Paragraph(
            "Measurement invariance (the `invariance` command): the model refitted with more "
            "parameters equal across the groups at each step. PPP near 0.5 and BRMSEA / BCFI "
            "judge each step's fit; a step holds when its ELPD difference to the step before "
            "is above -2 SE."
        ),
        _titled(format_frame(shown), f"The invariance ladder ({LADDER_FILE})"),
        *[Paragraph(note) for note in ladder_notes(ladder)],
        Bullets(step_verdicts(ladder)),
    ]


def ladder_notes(ladder: pd.DataFrame) -> list[str]:
    """Why a measure of the ladder is empty (its ``notes`` column), each reason once."""
    notes = ladder["notes"].fillna("") if "notes" in ladder.columns else []
    return [f"Not available: {note}." for note in dict.fromkeys(notes) if note]


def per_group_table(estimates: pd.DataFrame, labels: list[str]) -> pd.DataFrame:
    """One row per parameter (``lhs op rhs``), one column per group: mean [interval]."""
    cells = estimates.assign(
        parameter=estimates.lhs + " " + estimates.op + " " + estimates.rhs,
        cell=[
            _interval(*v)
            for v in estimates[["mean", "ci.lower", "ci.upper"]].itertuples(index=False)
        ],
    )
    table = cells.pivot(index="parameter", columns="group", values="cell")
    order = list(dict.fromkeys(cells.parameter))
    return table.reindex(index=order, columns=labels).reset_index().rename_axis(columns=None)


def step_verdicts(ladder: pd.DataFrame) -> list[str]:
    """One sentence per invariance step after the first: its ELPD difference and verdict."""
    return [
        f"{r['step']} ({r['group.equal']} equal): ELPD difference {r['elpd_diff']:.1f} "
        f"(SE {r['dse']:.1f}) to the step before: {r['verdict']}."
        for r in ladder.iloc[1:].to_dict("records")
    ]


def deviation_blocks(deviations: pd.DataFrame, interval: str) -> list[Block]:
    """Approximate invariance: the parameters whose deviation from the common value has an
    interval that excludes 0, and every deviation."""
    flagged = deviations[deviations.flagged.astype(str) == "True"]
    names = list(dict.fromkeys((flagged.lhs + " " + flagged.op + " " + flagged.rhs).str.strip()))
    found = f"flagged as non-invariant: {', '.join(names)}" if names else "none is flagged"
    shown = deviations[
        [
            "lhs",
            "op",
            "rhs",
            "group",
            "prior_sd",
            "common",
            "mean",
            "ci.lower",
            "ci.upper",
            "flagged",
        ]
    ]
    return [
        Paragraph(
            "Approximate invariance: each group's loadings / intercepts drawn around a common "
            "value with a small prior SD (prior_sd). A parameter is flagged in a group when the "
            f"{interval} of its deviation from the common value (the groups' mean) excludes "
            f"0; {found}."
        ),
        _titled(format_frame(shown), f"Deviations from the common value ({DEVIATIONS_FILE})"),
    ]


def _title(run: Run) -> str:
    """The model file's first comment (its description), or ''."""
    for line in run.partable.text.splitlines():
        match = re.match(r"^\s*#\s*(.+)$", line)
        if match and not re.match(r"H\d+[A-Za-z]?\s*:", match.group(1)):
            return match.group(1).strip().rstrip(".")
    return ""


def build_document(
    run: Run,
    figures: dict[str, Path],
    curves: list[ConditionalCurve],
    appended: dict[str, str] | None = None,
) -> Document:
    """The report as blocks (rendered to both Markdown and HTML); ``appended``: sections other
    stages added to ``report.md``, kept in section 6."""
    diag = run.diagnostics
    status = "diagnostics passed" if diag.ok else "**diagnostics FAILED** (section 5)"
    description = f": {_title(run)}" if _title(run) else ""
    subtitle = (
        f"bayes_sor run `{run.path.name}`{description}. N = "
        f"{run.attrs.get('bayes_sor_n_obs', '?')}; {status}."
    )
    return Document(
        "Bayesian S-O-R model report",
        subtitle,
        [
            _model_section(run),
            _hypotheses_section(run),
            _diagram_section(run, figures.get("diagram")),
            _effects_section(run, figures, curves),
            _diagnostics_section(run, figures),
            _checks_section(run, appended or {}),
            _estimates_section(run),
            *filter(None, [_groups_section(run, figures)]),
        ],
    )


def write_report(folder: Path, rope: float | None = None, redraw: bool = True) -> list[Path]:
    """(Re)write ``report.html``, ``report.md``, the figures and ``hypotheses.csv`` (with the
    ROPE used) of a finished run folder, from its files alone; ``redraw=False`` keeps the
    figures already drawn (see :func:`make_figures`)."""
    return report_run(load_run(folder, rope), redraw)


def report_run(run: Run, redraw: bool = True) -> list[Path]:
    """:func:`write_report` of a run whose folder (``run.path``) is written and whose posterior
    is still in memory, as the folder reads back (a fit just saved: ``posterior.nc`` is not read
    again, nor are the hypotheses and diagnostics the run has computed)."""
    run.require_tables()
    folder = run.path
    old = folder / "report.md"
    appended = appended_sections(old.read_text(encoding="utf-8")) if old.is_file() else {}
    figures, curves = make_figures(run, redraw)
    doc = build_document(run, figures, curves, appended)
    written = [folder / "hypotheses.csv", folder / "report.md", folder / "report.html"]
    write_readable(written[0], lambda p: run.hypotheses.to_csv(p, index=False))
    write_readable(written[1], lambda p: p.write_text(to_markdown(doc), encoding="utf-8"))
    write_readable(written[2], lambda p: p.write_text(to_html(doc), encoding="utf-8"))
    return [*written, *figures.values()]


def refresh_report(folder: Path) -> bool:
    """Rewrite ``report.md`` and ``report.html`` after a stage added its section, keeping the
    figures; False (and ``report.md`` as the stage left it) where the folder holds no complete
    run for a report (``estimates.csv`` and ``effects.csv`` beside ``posterior.nc``) or the
    report fails, which is a warning: the stage's results are saved, and ``python -m bayes_sor
    report`` can redo the report."""
    if not all((Path(folder) / name).is_file() for name in RUN_FILES):
        return False
    try:
        write_report(folder, redraw=False)
    except Exception as exc:  # as in write_run: the results on disk are what counts
        warnings.warn(
            f"report.html could not be rewritten ({type(exc).__name__}: {exc}); the "
            f"section is in report.md: run 'python -m bayes_sor report {folder}'",
            stacklevel=2,
        )
        return False
    return True


# ---- writing a fit -------------------------------------------------------------------------


def report_attrs(result: FitResult, rope: float) -> dict[str, str]:
    """What the report needs beyond the fit's provenance: interval, ROPE, missingness."""
    data = result.dataset
    return {
        "bayes_sor_ci_prob": str(result.ci_prob),
        "bayes_sor_hdi": "true" if result.hdi else "false",
        "bayes_sor_rope": str(rope),
        "bayes_sor_missing": json.dumps(
            {k: int(v) for k, v in getattr(data, "missing", {}).items()}
        ),
        "bayes_sor_n_dropped": str(getattr(data, "n_dropped", 0)),
    }


def write_run(
    result: FitResult,
    out: Path,
    force: bool = False,
    report: bool = True,
    rope: float = DEFAULT_ROPE,
) -> Path:
    """Write all outputs of ``result`` into ``out`` atomically (temporary folder, rename; a
    ``README.md`` of the run it replaces is kept), then the report. A failing report never
    costs the fit: it is a warning, and ``python -m bayes_sor report OUT`` can make it later."""
    out = Path(out)
    result.idata.attrs.update(report_attrs(result, rope))
    # the fit judged its hypotheses already; again only for another ROPE
    hypotheses = (
        result.hypotheses
        if rope == result.rope
        else evaluate(result.partable, result.idata["posterior"].to_dataset(), result.ci_prob, rope)
    )
    with staging(out, force) as tmp:
        result.idata.to_netcdf(tmp / "posterior.nc")
        result.estimates.to_csv(tmp / "estimates.csv", index=False)
        result.effects.to_csv(tmp / "effects.csv", index=False)
        hypotheses.to_csv(tmp / "hypotheses.csv", index=False)
        result.partable.table.to_csv(tmp / "partable.csv", index=False)
        if len(result.deviations):
            result.deviations.to_csv(tmp / "invariance_deviations.csv", index=False)
        for name in KEPT_FILES:
            if (out / name).is_file():
                shutil.copy2(out / name, tmp / name)
    if report:
        try:
            write_report(out, rope)
        except Exception as exc:  # the posterior is safe on disk; the report can be redone
            message = (
                f"the report could not be written ({type(exc).__name__}: {exc}); the "
                f"fit is saved: run 'python -m bayes_sor report {out}'"
            )
            warnings.warn(message, stacklevel=2)
    return out
