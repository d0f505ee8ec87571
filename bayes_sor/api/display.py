"""A fitted model's summary, as text (``repr``, ``print``) and as HTML (Jupyter): the
convergence verdict, the hypotheses with their verdicts and the main effects with intervals."""

from __future__ import annotations

import html

import pandas as pd

from bayes_sor.posterior.diagnostics import Diagnostics
from bayes_sor.posterior.effects import EFFECT_COLUMNS, KINDS
from bayes_sor.posterior.hypotheses import console_table

#: the effects a summary shows (direct paths are in ``effects`` and the report; a total
#: indirect effect adds the specific ones shown)
MAIN_EFFECTS = tuple(k for k in KINDS if k not in ("direct", "total_indirect"))
SUMMARY_COLUMNS = [c for c in EFFECT_COLUMNS if c not in ("median", "sd")]
HYPOTHESIS_COLUMNS = ["hypothesis", "statement", "std.mean", "p_direction", "p_rope", "verdict"]


def summary_columns(effects: pd.DataFrame) -> list[str]:
    """:data:`SUMMARY_COLUMNS`, with the group after the moderator's value in a
    multiple-group fit."""
    if "group" not in effects.columns:
        return SUMMARY_COLUMNS
    return [*SUMMARY_COLUMNS[:3], "group", *SUMMARY_COLUMNS[3:]]


def main_effects(effects: pd.DataFrame) -> pd.DataFrame:
    """The indirect, total, conditional indirect, moderated-mediation and defined effects, or
    the direct ones in a model without mediation."""
    shown = effects[effects.kind.isin(MAIN_EFFECTS)]
    if shown.empty:
        shown = effects[effects.kind == "direct"]
    return shown[summary_columns(shown)].reset_index(drop=True)


def verdict_text(diagnostics: Diagnostics) -> str:
    """``passed``, or the failed checks, one per line."""
    if diagnostics.ok:
        return "passed"
    problems = "\n".join(f"  - {p}" for p in diagnostics.problems)
    return f"FAILED ({len(diagnostics.problems)} check(s)):\n{problems}"


def summary_text(
    title: str,
    diagnostics: Diagnostics,
    hypotheses: pd.DataFrame,
    effects: pd.DataFrame,
    interval: str,
) -> str:
    """The plain-text summary: title, convergence verdict, hypotheses, main effects."""
    shown = main_effects(effects)
    with pd.option_context("display.width", 120, "display.max_rows", 200):
        table = shown.round(3).to_string(index=False) if len(shown) else "(none)"
        parts = [
            title,
            f"convergence: {verdict_text(diagnostics)}",
            console_table(hypotheses),
            f"effects ({interval}):\n{table}",
        ]
    return "\n\n".join(parts)


def summary_html(
    title: str,
    diagnostics: Diagnostics,
    hypotheses: pd.DataFrame,
    effects: pd.DataFrame,
    interval: str,
) -> str:
    """The same summary as one HTML fragment (Jupyter's rich display)."""
    colour = "#1e8449" if diagnostics.ok else "#c0392b"
    verdict = "passed" if diagnostics.ok else f"FAILED ({len(diagnostics.problems)} check(s))"
    problems = "".join(f"<li>{html.escape(p)}</li>" for p in diagnostics.problems)
    parts = [
        f"<h4>{html.escape(title)}</h4>",
        f'<p>convergence: <b style="color:{colour}">{verdict}</b></p>',
        f"<ul>{problems}</ul>" if problems else "",
        "<p><b>hypotheses</b> (std.all scale where it has one)</p>",
        _table(hypotheses[HYPOTHESIS_COLUMNS]) if len(hypotheses) else "<p>none declared</p>",
        f"<p><b>effects</b> ({html.escape(interval)})</p>",
        _table(main_effects(effects)),
    ]
    return "<div>" + "".join(parts) + "</div>"


def _table(frame: pd.DataFrame) -> str:
    return frame.to_html(index=False, float_format=lambda v: f"{v:.3f}", na_rep="", border=0)
