"""The outputs of ``compare`` as one :class:`~bayes_sor.checks.result.CheckResult`:
``comparison.csv``, ``comparison.md``, ``comparison.png`` and a section of the Bayesian run's
``report.md``.

The explanation is generated from the table (attenuation ratios, posterior-vs-ML distances,
interval widths, the interaction on each scale, distances to the published values), so it says
what these numbers show rather than what such comparisons usually show.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from bayes_sor.checks.result import CheckResult, FigureSettings
from bayes_sor.comparison.table import (
    LABELS,
    MODEL_KINDS,
    OUTPUT_FILES,
    STUDY_KINDS,
    MethodEstimates,
    excludes_zero,
)
from bayes_sor.report.document import (
    Bullets,
    Document,
    Figure,
    Paragraph,
    Section,
    Table,
    agree,
    nest_headings,
    to_markdown,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure as MplFigure

SHORT_KIND = {
    "path": "path",
    "indirect": "indirect",
    "total_indirect": "total indirect",
    "total": "total",
    "conditional_indirect": "conditional indirect",
    "index_moderated_mediation": "IMM",
    "defined": "defined",
    "moderation": "moderation",
    "baron_kenny": "Baron-Kenny",
}
COLORS = {"bayes": "#1f77b4", "ml": "#ff7f0e", "study": "#2ca02c", "published": "#111111"}
MARKERS = {"bayes": "o", "ml": "s", "study": "^", "published": "D"}
#: |Bayesian std.all| below which a path is left out of the attenuation ratio (ratios of
#: near-zero paths are noise).
MIN_PATH = 0.05
SHOW_FLAGS = 8


# ---- rows for display --------------------------------------------------------------------------
def display_name(row: dict) -> str:
    """``PI -> CT -> IB @ IT=-1SD``; an IMM names its moderator."""
    if row["kind"] == "conditional_indirect":
        return f"{row['quantity']} @ {row['moderator_value']}"
    if row["kind"] == "index_moderated_mediation":
        return f"{row['quantity']} (IMM, W = {row['moderator_value']})"
    return row["quantity"]


def _shown(table: pd.DataFrame, scale: str, kinds: tuple[str, ...]) -> pd.DataFrame:
    """Rows for a Markdown table or the figure: conditional effects at -1/0/+1 SD and at the
    moderator values the model names (``W=0.600``); the percentile rows (``W=p16``) are in
    comparison.csv only."""
    rows = table[(table.scale == scale) & table.kind.isin(kinds)]
    percentile = (rows.kind == "conditional_indirect") & rows.moderator_value.str.fullmatch(
        r".+=p\d+"
    )
    return rows[~percentile]


def _cell(row: dict, method: str) -> str:
    est = row.get(f"{method}_est")
    if est is None or pd.isna(est):
        return ""
    lower, upper = row.get(f"{method}_lower"), row.get(f"{method}_upper")
    if pd.notna(lower) and pd.notna(upper):
        return f"{est:.3f} [{lower:.3f}, {upper:.3f}]"
    verdict = excludes_zero(row, method)
    return f"{est:.3f}" + {True: " (sig.)", False: " (n.s.)", None: ""}[verdict]


def _markdown_table(rows: pd.DataFrame, methods: list[str], caption: str) -> Table:
    records = rows.to_dict("records")
    frame = pd.DataFrame(
        {
            "quantity": [display_name(r) for r in records],
            "kind": [SHORT_KIND.get(r["kind"], r["kind"]) for r in records],
            **{LABELS[m]: [_cell(r, m) for r in records] for m in methods},
            "flag": [r["flag"] for r in records],
        }
    )
    return Table(frame, caption=caption)


# ---- the explanation ---------------------------------------------------------------------------
def _both(rows: pd.DataFrame, a: str, b: str) -> pd.DataFrame:
    return (
        rows[rows[f"{a}_est"].notna() & rows[f"{b}_est"].notna()]
        if (f"{a}_est" in rows and f"{b}_est" in rows)
        else rows.iloc[:0]
    )


def _flags_text(table: pd.DataFrame) -> str:
    flagged = table[table.flag != ""]
    if flagged.empty:
        return (
            "**Agreement.** No row has methods disagreeing in sign or in whether the "
            "interval excludes zero."
        )
    listed = "; ".join(
        f"`{display_name(r)}` ({r['scale']}): {r['flag']}"
        for r in flagged.head(SHOW_FLAGS).to_dict("records")
    )
    more = f"; and {len(flagged) - SHOW_FLAGS} more" if len(flagged) > SHOW_FLAGS else ""
    sign = int(table.sign_disagree.sum())
    return (
        f"**Disagreements.** {sign} {agree(sign, 'row differs', 'rows differ')} in sign "
        f"and {int(table.zero_disagree.sum())} in whether the interval excludes zero: "
        f"{listed}{more}."
    )


def _attenuation_text(std: pd.DataFrame, alphas: dict[str, float]) -> str:
    paths = _both(std[(std.kind == "path") & ~std.quantity.str.contains(":")], "bayes", "study")
    paths = paths[paths.bayes_est.abs() >= MIN_PATH]
    if paths.empty:
        return ""
    ratio = (paths.study_est.abs() / paths.bayes_est.abs()).to_numpy()
    median = float(np.median(ratio))
    size = (
        "smaller than"
        if median < 0.95
        else "larger than"
        if median > 1.05
        else "about the same size as"
    )
    factors = [
        np.sqrt(alphas[y] * alphas[x])
        for x, y in (q.split(" ~ ")[::-1] for q in paths.quantity)
        if x in alphas and y in alphas
    ]
    text = (
        f"**Measurement error.** On the standardised scale the composite OLS paths are "
        f"{size} the latent Bayesian ones: a median {median:.2f} times their size "
        f"(range {ratio.min():.2f}-{ratio.max():.2f}; {len(paths)} paths with "
        f"|Bayesian std.all| >= {MIN_PATH})."
    )
    if factors:
        text += (
            f" Composite scores keep their items' measurement error (Cronbach's alpha "
            f"{min(alphas.values()):.2f}-{max(alphas.values()):.2f}), which alone shrinks "
            f"a correlation between two composites by sqrt(alpha_X alpha_Y) = "
            f"{min(factors):.2f}-{max(factors):.2f}; in a multiple regression the "
            "attenuation of one predictor also shifts weight to correlated predictors, so "
            "single paths can move either way. The latent models (Bayesian and ML) "
            "estimate the paths free of that error."
        )
    return text


def _width(rows: pd.DataFrame, method: str) -> pd.Series:
    return rows[f"{method}_upper"] - rows[f"{method}_lower"]


def _skew_text(row: dict) -> str:
    """Whether a Bayesian interval is lopsided enough to move the mean off the mode."""
    above, below = row["bayes_upper"] - row["bayes_est"], row["bayes_est"] - row["bayes_lower"]
    if below <= 0 or above <= 0 or 0.8 <= above / below <= 1.25:
        return ""
    return (
        f"; its credible interval reaches {above / below:.1f} times as far above the mean "
        "as below, and the mean of a skewed posterior sits away from its mode, which is "
        "where the ML estimate lies"
    )


def _bayes_ml_text(table: pd.DataFrame, level: float, n_obs: int) -> str:
    rows = _both(table, "bayes", "ml")
    rows = rows[rows.bayes_se > 0]
    if rows.empty:
        return ""
    z = ((rows.bayes_est - rows.ml_est).abs() / rows.bayes_se).to_numpy()
    worst = rows.iloc[int(np.argmax(z))].to_dict()
    ratio = (_width(rows, "bayes") / _width(rows, "ml")).replace([np.inf, -np.inf], np.nan)
    ratio = float(np.nanmedian(ratio))
    wide = "wider than" if ratio > 1.1 else "narrower than" if ratio < 0.9 else "about as wide as"
    text = (
        f"**Bayesian vs ML.** Posterior means and ML estimates differ by a median "
        f"{np.median(z):.2f} posterior SDs over {len(rows)} rows (largest: "
        f"`{display_name(worst)}` on the {worst['scale']} scale, {z.max():.2f} SD"
        f"{_skew_text(worst)}) with N = {n_obs}. The {level:.0%} credible intervals are "
        f"{wide} the ML percentile-bootstrap intervals (median width ratio {ratio:.2f}): "
        "the bootstrap refits resampled respondents around one optimum, the posterior "
        "averages over the parameters given these respondents and the priors."
    )
    if rows.kind.isin(["indirect", "conditional_indirect"]).any():
        text += (
            " For products of paths (indirect and conditional effects) both intervals "
            "are skewed, unlike the symmetric Sobel interval of the Baron-Kenny a*b."
        )
    return text


def _values(row: dict, methods: list[str]) -> str:
    parts = []
    for m in methods:
        cell = _cell(row, m)
        if cell:
            parts.append(f"{LABELS[m]} {cell}")
    return ", ".join(parts)


def _interaction_text(table: pd.DataFrame, alphas: dict[str, float], methods: list[str]) -> str:
    rows = table[(table.kind == "path") & table.quantity.str.contains(":")]
    texts = []
    for q in dict.fromkeys(rows.quantity):
        std = rows[(rows.quantity == q) & (rows.scale == "std")].to_dict("records")
        raw = rows[(rows.quantity == q) & (rows.scale == "raw")].to_dict("records")
        if not std:
            continue
        first, second = q.split(" ~ ")[1].split(":")
        verdicts = {m: excludes_zero(std[0], m) for m in methods}
        yes = [LABELS[m] for m, v in verdicts.items() if v]
        no = [LABELS[m] for m, v in verdicts.items() if v is False]
        text = f"**The interaction's scale.** `{q}` standardised: {_values(std[0], methods)}."
        if raw:
            text += (
                f" In the model metric (per unit of the latent product): "
                f"{_values(raw[0], [m for m in methods if m != 'study'])}."
            )
        if first in alphas and second in alphas:
            text += (
                f" A composite product term multiplies two error-laden scores, so its "
                f"reliability is roughly alpha_{first} x alpha_{second} = "
                f"{alphas[first] * alphas[second]:.2f} and its coefficient is attenuated "
                "more than a main effect's."
            )
        text += (
            " A standardised product coefficient is scaled by the SD of the product, not "
            "by how much W changes the slope, so the conditional indirect effects at -1/+1 "
            "SD of W and the index of moderated mediation are the readable comparison."
        )
        if yes and no:
            text += f" Zero is excluded by {', '.join(yes)} but not by {', '.join(no)}."
        elif yes:
            text += f" Every method with a verdict excludes zero ({', '.join(yes)})."
        elif no:
            text += f" No method's interval excludes zero ({', '.join(no)})."
        texts.append(text)
    return " ".join(texts)


def _published_text(table: pd.DataFrame, methods: list[str]) -> str:
    if "published" not in methods:
        return ""
    medians, parts, largest = {}, [], []
    for m in methods:
        rows = _both(table, m, "published")
        if m == "published" or rows.empty:
            continue
        diff = (rows[f"{m}_est"] - rows.published_est).abs()
        medians[m] = float(diff.median())
        parts.append(f"{LABELS[m]} {medians[m]:.3f} ({len(rows)} rows)")
        worst = rows.loc[diff.idxmax()].to_dict()
        largest.append(
            f"{LABELS[m]} at `{display_name(worst)}` ({worst['scale']}: "
            f"{worst[f'{m}_est']:.3f} vs {worst['published_est']:.3f})"
        )
    if not parts:
        return (
            "**Published values.** None of the published values matches a row of this "
            "model; check the quantity names in the published file."
        )
    closest = min(medians, key=medians.get)
    return (
        f"**Published values.** Median |difference| from the published values: "
        f"{'; '.join(parts)}. Largest: {'; '.join(largest)}. The closest is "
        f"{LABELS[closest]}: where the published numbers come from the same method on "
        "the same data, that column reproduces them and the others differ by what their "
        "method changes (measurement error, design, priors)."
    )


def explanation(table: pd.DataFrame, methods: list[MethodEstimates]) -> list[str]:
    """Paragraphs on where the methods differ and why, computed from the table."""
    info = {m.name: m.info for m in methods}
    names = [m.name for m in methods]
    alphas = info.get("study", {}).get("alphas", {})
    std = table[table.scale == "std"]
    bayes = info["bayes"]
    texts = [
        _flags_text(table),
        _attenuation_text(std, alphas),
        _bayes_ml_text(table, bayes["level"], bayes["n_obs"]),
        _interaction_text(table, alphas, names),
        _published_text(table, names),
    ]
    return [t for t in texts if t]


# ---- the figure --------------------------------------------------------------------------------
def forest_figure(table: pd.DataFrame, methods: list[str]) -> MplFigure:
    """One row per standardised path / effect, one marker and interval per method."""
    rows = _shown(table, "std", MODEL_KINDS).to_dict("records")[::-1]
    # matplotlib (~0.5 s) when the comparison draws, not when the CLI registers the command
    from matplotlib.figure import Figure as MplFigure

    fig = MplFigure(figsize=(9.0, 0.34 * len(rows) + 1.6))
    ax = fig.add_subplot()
    step = 0.8 / max(len(methods), 1)
    for i, m in enumerate(methods):
        # the first method on top within each row
        y = np.arange(len(rows)) - (i - (len(methods) - 1) / 2) * step
        est = np.array([r.get(f"{m}_est", np.nan) for r in rows], dtype=float)
        lower = np.array([r.get(f"{m}_lower", np.nan) for r in rows], dtype=float)
        upper = np.array([r.get(f"{m}_upper", np.nan) for r in rows], dtype=float)
        has = np.isfinite(lower) & np.isfinite(upper)
        ax.errorbar(
            est[has],
            y[has],
            xerr=[est[has] - lower[has], upper[has] - est[has]],
            fmt="none",
            ecolor=COLORS[m],
            elinewidth=1.2,
            capsize=0,
        )
        ax.plot(
            est, y, MARKERS[m], color=COLORS[m], markersize=4.5, label=LABELS[m], linestyle="none"
        )
    ax.axvline(0, color="#888", linewidth=0.8)
    ax.set_yticks(np.arange(len(rows)))
    labels = ax.set_yticklabels(
        [display_name(r) + (" *" if r["flag"] else "") for r in rows], fontsize=7.5
    )
    for label, r in zip(labels, rows, strict=True):
        if r["flag"]:
            label.set_color("#c0392b")
    kinds = [r["kind"] for r in rows]
    for k in range(1, len(rows)):
        if kinds[k] != kinds[k - 1]:
            ax.axhline(k - 0.5, color="#ddd", linewidth=0.8)
    ax.set_ylim(-0.6, len(rows) - 0.4)
    ax.set_xlabel("standardised estimate (std.all) with interval")
    fig.suptitle("Bayesian vs frequentist estimates (* = methods disagree)", fontsize=10)
    ax.legend(
        loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=len(methods), fontsize=8, frameon=False
    )
    fig.tight_layout()
    return fig


# ---- the document and the result -------------------------------------------------------------
def _legend(methods: list[MethodEstimates]) -> Bullets:
    """What each method is, what the two scales mean and when a row is flagged."""
    identification = methods[0].info["identification"]
    legend = [f"**{LABELS[m.name]}**: {m.description}" for m in methods]
    legend += [
        "**Scales**: `std` rows are std.all (both ends standardised: latent SDs implied by the "
        "model for Bayesian and ML, composite sample SDs for the study's OLS), the common "
        "scale of all four methods; `raw` rows are the model's own metric "
        f"({identification} identification), where only Bayesian, ML and published "
        "values of the same metric meet. Effects are standardised per SD of cause and outcome "
        "(the IMM also per SD of W).",
        "**Flags**: a row is flagged when methods disagree in sign, or in whether the interval "
        "excludes zero (for published values without interval: the paper's verdict).",
    ]
    return Bullets(legend)


def _estimate_sections(table: pd.DataFrame, names: list[str]) -> list[Section]:
    """The standardised model rows, the study's own regressions (where it has any) and the
    model metric, each a table of every method that reports it."""
    sections = [
        Section(
            "Standardised estimates (std.all)",
            [
                _markdown_table(
                    _shown(table, "std", MODEL_KINDS),
                    names,
                    "estimate [interval]; conditional effects "
                    "at -1/0/+1 SD of W and at any values the model names "
                    "(percentile rows in comparison.csv)",
                )
            ],
        )
    ]
    study_rows = _shown(table, "std", STUDY_KINDS)
    if len(study_rows):
        sections.append(
            Section(
                "The study's own regressions (composites)",
                [
                    _markdown_table(
                        study_rows,
                        [n for n in names if n in ("study", "published")],
                        "Baron-Kenny steps (one simple mediation per cause) and the moderation "
                        "regression, as the study ran them",
                    )
                ],
            )
        )
    raw = _shown(table, "raw", MODEL_KINDS)
    sections.append(
        Section(
            "Model metric (raw)",
            [
                _markdown_table(
                    raw,
                    [n for n in names if n != "study"],
                    "Bayesian vs ML in the model's own metric",
                )
            ],
        )
    )
    return sections


def build_document(
    table: pd.DataFrame, methods: list[MethodEstimates], model_name: str, figure: Path
) -> Document:
    """``comparison.md``: the methods, where they differ and why, the tables, the figure."""
    bayes = methods[0].info
    sections = [
        Section("Methods", [_legend(methods)]),
        Section(
            "Where the methods differ, and why", [Paragraph(t) for t in explanation(table, methods)]
        ),
        *_estimate_sections(table, [m.name for m in methods]),
        Section("Figure", [Figure(figure, "Standardised estimates by method")]),
    ]
    subtitle = (
        f"N = {bayes['n_obs']}; {bayes['level']:.0%} intervals; "
        "made by `python -m bayes_sor compare`"
    )
    return Document(f"Method comparison: {model_name}", subtitle, sections)


#: comparison.png is read on its own, beside comparison.md: a finer, cropped image
FIGURE_SETTINGS = FigureSettings(dpi=130, tight=True)


def comparison_result(
    table: pd.DataFrame, methods: list[MethodEstimates], model_name: str
) -> CheckResult:
    """The comparison as a result (nothing written): comparison.csv / .md / .png and, for the
    Bayesian run's report, ``comparison.md`` with its headings nested under the report's."""
    csv, md, png = OUTPUT_FILES
    text = to_markdown(build_document(table, methods, model_name, Path(png)))
    return CheckResult(
        "compare",
        nest_headings(text),
        tables={csv: table},
        figures={png: forest_figure(table, [m.name for m in methods])},
        passed=bool((table.flag == "").all()),
        figure_settings={png: FIGURE_SETTINGS},
        documents={md: text},
    )
