"""The checks of a multiple-group run, per group: the log-likelihood of each respondent under
their own group's moments, each group's PPP from its own replications, and the ``ppc`` and
``reliability`` commands' tables with a group column."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from fakes import truth, write_run
from scipy import stats

from bayes_sor.checks.loglik import pointwise_loglik
from bayes_sor.checks.ppc import group_replications
from bayes_sor.cli.main import main
from bayes_sor.runs.rundir import Run, load_run, read_table
from bayes_sor.spec.groups import with_groups
from bayes_sor.spec.matrices import implied_mean, implied_moments, representation
from bayes_sor.spec.partable import build_partable

CFA = """
F1 =~ x1 + x2 + x3
F2 =~ x4 + x5 + x6
"""
ITEMS = ["x1", "x2", "x3", "x4", "x5", "x6"]


def two_groups(**values: float):
    """A scalar two-group CFA (groups a, b) and parameters in which group b differs: its
    latent means, a larger F1 variance and its own residual variances."""
    pt = with_groups(build_partable(CFA), ["a", "b"], ["loadings", "intercepts"])
    b = {"F1~1.g2": 0.6, "F2~1.g2": -0.4, "F1~~F1.g2": 1.8, "x4~~x4.g2": 0.9}
    return pt, truth(pt, {"x1~1": 3.0, "x1~1.g2": 3.0, **b, **values})


def moments(pt, par: np.ndarray, group: int) -> tuple[np.ndarray, np.ndarray]:
    rep = representation(pt, group)
    return implied_mean(rep, par), implied_moments(rep, par).item_cov


def answers(pt, par, labels: np.ndarray, seed: int, data_par=None) -> pd.DataFrame:
    """Each respondent's answers from their group's moments (``data_par``: other values)."""
    rng = np.random.default_rng(seed)
    y = np.empty((len(labels), len(ITEMS)))
    for g, label in enumerate(pt.groups, start=1):
        mean, cov = moments(pt, par if data_par is None else data_par, g)
        rows = labels == label
        y[rows] = rng.multivariate_normal(mean, cov, size=rows.sum())
    return pd.DataFrame(y, columns=ITEMS)


def mixed_labels(n: int, seed: int) -> np.ndarray:
    """Group labels in no particular order (a group's respondents are not one block)."""
    return np.random.default_rng(seed).permutation(np.repeat(["a", "b"], n // 2))


def in_memory(pt, par: np.ndarray, data: pd.DataFrame, labels: np.ndarray) -> Run:
    y = data[ITEMS].to_numpy()
    return Run("mem", None, pt, par, y, np.cov(y.T), y.mean(0), len(y), labels=labels)


def test_each_respondents_loglik_is_their_groups_normal_density(tmp_path):
    """LOO's pointwise log-likelihood: each row the scipy MvNormal density under the implied
    moments of the row's own group (latent means included), the rows in the data's order.
    (Before: every respondent under the first group's moments without its latent means.)"""
    pt, par = two_groups()
    labels = mixed_labels(40, 1)
    data = answers(pt, par, labels, 2)
    draws = np.stack([par, par * 1.05])[None]
    run = load_run(write_run(tmp_path / "run", pt, draws, data, groups=labels))
    ll = pointwise_loglik(run).values.reshape(2, -1)
    for s in range(2):
        for g, label in enumerate(pt.groups, start=1):
            mean, cov = moments(pt, draws[0, s], g)
            rows = labels == label
            want = stats.multivariate_normal(mean, cov).logpdf(data.to_numpy()[rows])
            np.testing.assert_allclose(ll[s, rows], want, rtol=1e-10)


def test_group_ppp_is_uniform_at_the_true_moments():
    """With the posterior a point mass at the truth, each group's PPP (and the overall one of
    the summed chi-square) is uniform over data sets: mean near 1/2, few small values."""
    pt, par = two_groups()
    draws = np.broadcast_to(par, (100, len(par)))
    labels = np.repeat(["a", "b"], 80)
    ppps = {"a": [], "b": [], "all": []}
    for seed in range(40):
        run = in_memory(pt, draws[None], answers(pt, par, labels, seed), labels)
        groups = group_replications(run, draws, np.random.default_rng(seed))
        for label, _, reps in groups:
            ppps[label].append(np.mean(reps.d_rep >= reps.d_obs))
        d_obs = sum(r.d_obs for _, _, r in groups)
        ppps["all"].append(np.mean(sum(r.d_rep for _, _, r in groups) >= d_obs))
    for label, values in ppps.items():
        values = np.array(values)
        assert abs(values.mean() - 0.5) < 0.12, (label, values.mean())
        assert np.mean(values < 0.05) <= 0.15, (label, values)


def test_group_ppp_is_small_only_in_the_group_the_model_misses():
    """Group b's data have loadings the model does not have: b's PPP and the overall PPP are
    small, a's is not (each group is replicated from its own moments)."""
    pt, par = two_groups()
    wrong = par.copy()
    wrong[pt.names.index("F1=~x1.g2")], wrong[pt.names.index("F2=~x6.g2")] = 0.1, 1.6
    labels = np.repeat(["a", "b"], 150)
    data = answers(pt, par, labels, 3, data_par=wrong)
    draws = np.broadcast_to(par, (200, len(par)))
    run = in_memory(pt, draws[None], data, labels)
    groups = group_replications(run, draws, np.random.default_rng(0))
    ppp = {label: np.mean(reps.d_rep >= reps.d_obs) for label, _, reps in groups}
    assert ppp["b"] < 0.01
    assert ppp["a"] > 0.05
    d_obs = sum(r.d_obs for _, _, r in groups)
    assert np.mean(sum(r.d_rep for _, _, r in groups) >= d_obs) < 0.01


@pytest.fixture(scope="module")
def group_run(tmp_path_factory):
    """A two-group run folder: draws around the truth, answers from each group's moments."""
    pt, par = two_groups()
    labels = mixed_labels(160, 4)
    data = answers(pt, par, labels, 5)
    rng = np.random.default_rng(6)
    draws = par * (1 + 0.02 * rng.standard_normal((2, 50, len(par))))
    return write_run(tmp_path_factory.mktemp("groups") / "run", pt, draws, data, groups=labels)


def test_ppc_of_a_two_group_run_writes_group_rows(group_run, capsys):
    """``ppc`` on a multiple-group run (refused before): fit measures overall and per group,
    residual correlations and item checks per group, reliability per group."""
    assert main(["ppc", str(group_run), "--draws", "60"]) == 0
    measures = read_table(group_run / "fit_measures.csv")
    assert list(measures.columns[:2]) == ["group", "measure"]
    assert set(measures.group) == {"(all)", "a", "b"}
    value = measures.set_index(["group", "measure"]).value
    assert value["(all)", "ntotal"] == 160
    assert value["a", "ntotal"] == value["b", "ntotal"] == 80
    assert value["(all)", "chisq"] == pytest.approx(value["a", "chisq"] + value["b", "chisq"])
    assert np.isfinite(value["(all)", "elpd_loo"])
    residuals = read_table(group_run / "residuals.csv")
    assert residuals.groupby("group").size().to_dict() == {"a": 15, "b": 15}
    items = read_table(group_run / "ppc_items.csv")
    assert items.groupby("group").size().to_dict() == {"a": 24, "b": 24}
    reliability = read_table(group_run / "reliability.csv")
    assert set(reliability.group) == {"a", "b"}
    assert "## Model checking" in (group_run / "report.md").read_text()


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


@pytest.mark.slow
def test_a_fitted_two_group_run_is_checked_per_group(tmp_path):
    """``fit --group`` stores each respondent's group; ``ppc`` and ``reliability`` then check
    each group of the real fit (a small one: 2 chains x 200 draws)."""
    pt, par = two_groups()
    labels = mixed_labels(300, 7)
    data = answers(pt, par, labels, 8).assign(g=labels)
    data.to_csv(tmp_path / "data.csv", index=False)
    (tmp_path / "model.lav").write_text(CFA)
    out = tmp_path / "run"
    fit = ["fit", str(tmp_path / "model.lav"), "--data", str(tmp_path / "data.csv")]
    fit += ["--group", "g", "--group-equal", "loadings,intercepts", "--out", str(out)]
    fit += ["--chains", "2", "--draws", "200", "--tune", "300", "--no-progress"]
    assert main([*fit, "--allow-warnings"]) == 0
    assert list(load_run(out).labels) == list(labels)
    assert main(["ppc", str(out), "--draws", "100"]) == 0
    measures = read_table(out / "fit_measures.csv").set_index(["group", "measure"]).value
    assert measures["a", "ppp"] > 0.05
    assert measures["b", "ppp"] > 0.05
    assert main(["reliability", str(out)]) == 0
    table = read_table(out / "reliability.csv").set_index(["group", "measure", "construct"])
    assert table.loc[("b", "omega", "F1"), "mean"] > table.loc[("a", "omega", "F1"), "mean"]
