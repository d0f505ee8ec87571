"""Control variables end to end (slow: each test compiles and samples a model): a simulated
effect of a dummy-coded text control and of a numeric one is recovered, and the bundled Study A
model with its controls fits the bundled data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bayes_sor.cli.main import main

pytestmark = pytest.mark.slow

#: G on F, a three-level text control (reference 'a') and age in years
TRUTH = {"G~F": 0.5, "G~group[b]": 0.8, "G~group[c]": -0.6, "G~age": 0.04}


def _simulated(n: int = 300, seed: int = 8) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    group = rng.choice(["a", "b", "c"], n, p=[0.4, 0.35, 0.25])
    age = rng.integers(18, 65, n)
    f = rng.normal(size=n)
    g = (
        TRUTH["G~F"] * f
        + TRUTH["G~group[b]"] * (group == "b")
        + TRUTH["G~group[c]"] * (group == "c")
        + TRUTH["G~age"] * (age - 40)
        + rng.normal(size=n)
    )
    items = {f"x{i}": 3 + 0.8 * f + rng.normal(0, 0.5, n) for i in (1, 2, 3)}
    items |= {f"y{i}": 3 + 0.8 * g + rng.normal(0, 0.5, n) for i in (1, 2, 3)}
    return pd.DataFrame({**items, "group": group, "age": age})


def test_a_simulated_control_effect_is_recovered(tmp_path, capsys):
    data = tmp_path / "survey.csv"
    _simulated().to_csv(data, index=False)
    model = tmp_path / "controls.lav"
    model.write_text(
        "---\nscale: none\n---\nF =~ x1 + x2 + x3\nG =~ y1 + y2 + y3\nG ~ F + group + age\n"
    )
    out = tmp_path / "run"
    args = ["fit", str(model), "--data", str(data), "--out", str(out), "--seed", "4"]
    assert (
        main([*args, "--chains", "4", "--draws", "500", "--tune", "500", "--allow-warnings"]) == 0
    )
    printed = capsys.readouterr().out
    assert "control group: text, 3 levels, dummy-coded group[b] (" in printed
    assert "reference 'a' (" in printed and "first in sorted order" in printed
    est = pd.read_csv(out / "estimates.csv")
    est.index = est.lhs + est.op + est.rhs
    for name, value in TRUTH.items():
        row = est.loc[name]
        assert abs(row["mean"] - value) < 3 * row["sd"], (name, row["mean"], row["sd"])
        assert row["ci.lower"] > 0 or row["ci.upper"] < 0, name
    assert est.loc[list(TRUTH), "r_hat"].max() < 1.01
    assert "control group: text" in (out / "report.md").read_text(encoding="utf-8")


def test_study_a_with_its_controls_fits_the_bundled_data(root, tmp_path, capsys):
    """The bundled controls were drawn independently of the model: their effects are near 0."""
    out = tmp_path / "run"
    args = [
        "fit",
        str(root / "models" / "impulse_buying_controls.lav"),
        "--data",
        str(root / "data" / "impulse_buying.csv"),
        "--out",
        str(out),
        "--no-report",
    ]
    assert (
        main([*args, "--chains", "2", "--draws", "300", "--tune", "300", "--allow-warnings"]) == 0
    )
    printed = capsys.readouterr().out
    assert (
        "control gender: text, 2 levels, dummy-coded gender[female] (201); reference 'male' "
        "(156, named in the header)" in printed
    )
    est = pd.read_csv(out / "estimates.csv")
    controls = est[(est.lhs == "IB") & (est.op == "~") & est.rhs.str.match(r"gender|age|educ|freq")]
    assert sorted(controls.rhs) == [
        "age",
        "education[other]",
        "education[undergraduate]",
        "frequency[almost daily]",
        "frequency[several per week]",
        "gender[female]",
    ]
    assert (controls["mean"].abs() < 3.5 * controls["sd"]).all(), controls
    b = est[(est.lhs == "IB") & (est.op == "~") & (est.rhs == "CT")].iloc[0]
    assert b["ci.lower"] > 0  # trust's effect survives the controls
