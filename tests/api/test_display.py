"""A fitted model's summary (bayes_sor/api/display.py)."""

import pandas as pd

from bayes_sor.api.display import main_effects, summary_html, summary_text
from bayes_sor.posterior.diagnostics import Diagnostics

EFFECTS = pd.DataFrame(
    {
        "effect": ["X -> Y", "X -> M -> Y", "X -> Y"],
        "kind": ["direct", "indirect", "total"],
        "moderator_value": ["", "", ""],
        "mean": [0.1, 0.3, 0.4],
        "ci.lower": [0.0, 0.2, 0.3],
        "ci.upper": [0.2, 0.4, 0.5],
        "p_positive": [0.97, 1.0, 1.0],
    }
)
FAILED = Diagnostics(1.2, 50.0, 40.0, 3, 1000, 0.5, ["R-hat above 1.01 for Y ~ X", "3 divergences"])


def test_main_effects_are_the_mediation_effects_else_the_direct_ones():
    assert main_effects(EFFECTS).kind.tolist() == ["indirect", "total"]
    assert main_effects(EFFECTS[EFFECTS.kind == "direct"]).kind.tolist() == ["direct"]


def test_a_failed_verdict_names_every_problem_in_text_and_html():
    hypotheses = pd.DataFrame(
        columns=["hypothesis", "statement", "std.mean", "p_direction", "p_rope", "verdict"]
    )
    text = summary_text("model", FAILED, hypotheses, EFFECTS, "95% interval")
    assert "convergence: FAILED (2 check(s))" in text
    assert "  - R-hat above 1.01 for Y ~ X\n  - 3 divergences" in text
    assert "hypotheses: none declared" in text and "X -> M -> Y" in text
    html = summary_html("model <a>", FAILED, hypotheses, EFFECTS, "95% interval")
    assert "<li>3 divergences</li>" in html and "model &lt;a&gt;" in html
    assert "none declared" in html
