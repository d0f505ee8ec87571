"""Reliability and validity: omega, AVE, HTMT, Fornell-Larcker, Cronbach's alpha."""

import numpy as np
import pandas as pd
import pytest
from fakes import truth, two_group_run, write_run

from bayes_sor.checks.reliability import cronbach_alpha, reliability
from bayes_sor.cli.main import main
from bayes_sor.model.simulate import simulate
from bayes_sor.runs.rundir import load_run, read_table
from bayes_sor.spec.partable import build_partable

TWO = """
A =~ a1 + a2 + a3
B =~ b1 + b2 + b3
"""


def point_run(tmp_path, model: str, values: dict, name: str = "run"):
    """A run whose posterior sits at ``values`` (with a little noise), data simulated there."""
    pt = build_partable(model)
    par = truth(pt, values)
    data = simulate(pt, par, 400, seed=1)
    draws = par + np.random.default_rng(0).normal(0, 1e-4, (2, 100, len(par)))
    fixed = (pt.parameters.free == 0).to_numpy()
    draws[..., fixed] = par[fixed]
    return write_run(tmp_path / name, pt, draws, data)


def test_omega_and_ave_of_one_factor(tmp_path):
    lam = np.array([0.8, 0.7, 0.6, 0.5])
    values = {f"F=~y{i + 1}": v for i, v in enumerate(lam)}
    values |= {f"y{i + 1}~~y{i + 1}": 1 - v**2 for i, v in enumerate(lam)}
    run = load_run(point_run(tmp_path, "F =~ y1 + y2 + y3 + y4", values))
    table = reliability(run).set_index(["measure", "construct"])
    omega = lam.sum() ** 2 / (lam.sum() ** 2 + (1 - lam**2).sum())
    assert table.loc[("omega", "F"), "mean"] == pytest.approx(omega, abs=1e-3)
    assert table.loc[("ave", "F"), "mean"] == pytest.approx(np.mean(lam**2), abs=1e-3)
    assert table.loc[("alpha", "F"), "sample"] == pytest.approx(
        cronbach_alpha(np.cov(run.y, rowvar=False)), abs=1e-12
    )


def test_htmt_equals_the_factor_correlation_for_equal_loadings(tmp_path):
    run = load_run(point_run(tmp_path, TWO, {"A~~B": 0.5}))
    table = reliability(run).set_index(["measure", "construct", "with"])
    htmt = table.loc[("htmt", "A", "B")]
    assert htmt["mean"] == pytest.approx(0.5, abs=1e-3)
    assert htmt["p_criterion"] == 1.0 and htmt["criterion"] == "HTMT < 0.85"
    assert abs(htmt["sample"] - 0.5) < 0.1  # from the simulated data
    assert table.loc[("latent_r2", "A", "B"), "p_criterion"] == 1.0


def test_discriminant_validity_failure_is_reported(tmp_path):
    run_dir = point_run(tmp_path, TWO, {"A~~B": 0.95})
    assert main(["reliability", str(run_dir)]) == 0
    table = pd.read_csv(run_dir / "reliability.csv", keep_default_na=False, na_values=[""])
    htmt = table[(table.measure == "htmt")].iloc[0]
    assert htmt["mean"] == pytest.approx(0.95, abs=1e-3) and htmt["p_criterion"] == 0.0
    fornell = table[table.measure == "latent_r2"].iloc[0]
    assert fornell["p_criterion"] == 0.0
    report = (run_dir / "report.md").read_text()
    assert "## Reliability and validity" in report
    assert "Discriminant validity is uncertain" in report and "A / B" in report


def test_cronbach_alpha_formula():
    y = np.random.default_rng(2).normal(size=(200, 3)) + np.random.default_rng(3).normal(
        size=(200, 1)
    )
    cov = np.cov(y, rowvar=False)
    expected = 3 / 2 * (1 - np.trace(cov) / cov.sum())
    assert cronbach_alpha(cov) == pytest.approx(expected)
    assert np.isnan(cronbach_alpha(cov[:1, :1]))


@pytest.fixture(scope="module")
def group_run(tmp_path_factory):
    return two_group_run(tmp_path_factory.mktemp("groups") / "run")


def test_reliability_of_a_two_group_run_is_each_groups(group_run):
    """Omega per group from the group's own moments: group b's larger F1 variance gives F1 a
    larger omega there; the sample alpha is that of the group's own answers."""
    assert main(["reliability", str(group_run)]) == 0
    table = read_table(group_run / "reliability.csv").set_index(["group", "measure", "construct"])
    assert table.loc[("b", "omega", "F1"), "mean"] > table.loc[("a", "omega", "F1"), "mean"]
    run = load_run(group_run)
    y = run.y[run.labels == "b"][:, :3]
    cov = np.cov(y.T)
    alpha = 3 / 2 * (1 - np.trace(cov) / cov.sum())
    assert table.loc[("b", "alpha", "F1"), "sample"] == pytest.approx(alpha)
    section = (group_run / "report.md").read_text().split("## Reliability and validity")[1]
    rows = [line for line in section.splitlines() if line.startswith("| ")]
    assert rows[0].split("|")[1].strip() == "group"
    assert [r.split("|")[1].strip() for r in rows[1:]] == ["a", "a", "b", "b"]
