"""Posterior predictive checks: PPP, fit indices, residual correlations, the ppc command.

Fast tests use Laplace-approximate posteriors (tests/fakes.py); the sampled ones are slow.
"""

import numpy as np
import pandas as pd
import pytest
from fakes import (
    GROUP_CFA,
    group_answers,
    in_memory_run,
    laplace_draws,
    mixed_labels,
    truth,
    two_group_cfa,
    two_group_run,
    write_run,
)
from scipy.stats import multivariate_normal

from bayes_sor.checks.fit_indices import bayes_fit_indices, fit_indices, model_moments, null_model
from bayes_sor.checks.loglik import answer_codes
from bayes_sor.checks.ppc import group_replications, observed_scale, predictive_check
from bayes_sor.checks.predictive import (
    Implied,
    bvn_cdf,
    implied,
    ml_discrepancy,
    pair_probabilities,
    sample_moments,
    srmr,
)
from bayes_sor.cli.main import main
from bayes_sor.model.simulate import simulate
from bayes_sor.runs.rundir import load_run, read_table
from bayes_sor.spec.groups import with_groups
from bayes_sor.spec.matrices import representation
from bayes_sor.spec.partable import add_thresholds, build_partable, row_name

CFA = """
F1 =~ x1 + x2 + x3
F2 =~ x4 + x5 + x6
F3 =~ x7 + x8 + x9
"""
HS = """
visual  =~ x1 + x2 + x3
textual =~ x4 + x5 + x6
speed   =~ x7 + x8 + x9
"""


def simulate_data(values: dict[str, float], seed: int, extra: str = "", n: int = 500):
    """Data from the 3-factor CFA plus ``extra`` lines (the misspecification), at ``values``."""
    pt = build_partable(CFA + extra)
    return simulate(pt, truth(pt, values), n, seed)


def laplace_run(tmp_path, data: pd.DataFrame, model: str = CFA, name: str = "run"):
    pt = build_partable(model)
    return write_run(tmp_path / name, pt, laplace_draws(pt, data, n_draws=400), data)


# ---- numerical pieces ----------------------------------------------------------------------
def test_chisq_and_srmr_at_the_ml_estimates_equal_lavaan(reference, root):
    """The ML estimates as a one-point posterior give lavaan's chi-square and SRMR exactly."""
    pt = build_partable(HS)
    ml = pd.read_csv(
        reference / "lavaan/ref_holzinger_cfa_lavaan_ml_stdlv_meanstructure.csv",
        keep_default_na=False,
    )
    est = {row_name(r.lhs, r.op, r.rhs): float(r.est) for r in ml.itertuples()}
    par = np.array([est[n] for n in pt.names])[None]
    rep = representation(pt)
    y = pd.read_csv(root / "data/holzinger_swineford.csv")[rep.items].to_numpy()
    mean, cov = sample_moments(y)
    moments = implied(rep, par)
    assert ml_discrepancy(len(y), mean, cov, moments)[0] == pytest.approx(85.3055, abs=1e-3)
    assert srmr(cov, moments.cov)[0] == pytest.approx(0.065205, abs=1e-5)


def test_bivariate_normal_cdf_matches_scipy():
    rng = np.random.default_rng(3)
    h, k, rho = rng.normal(size=20), rng.normal(size=20), np.tanh(rng.normal(size=20))
    ours = bvn_cdf(h, k, rho)
    ref = [
        multivariate_normal([0, 0], [[1, r], [r, 1]]).cdf([a, b])
        for a, b, r in zip(h, k, rho, strict=True)
    ]
    np.testing.assert_allclose(ours, ref, atol=1e-6)
    assert bvn_cdf(np.array(0.0), np.array(0.0), np.array(0.5)) == pytest.approx(1 / 3)


def test_pair_probabilities_sum_to_one_and_match_the_margins():
    cov = np.array([[[1.5, 0.6], [0.6, 2.0]]])
    moments = Implied(np.array([[0.2, -0.1]]), cov, False)
    taus = [np.array([[-0.5, 0.7]]), np.array([[0.0, 1.0, 2.0]])]
    prob = pair_probabilities(moments, taus, 0, 1)[0]
    assert prob.shape == (3, 4) and prob.sum() == pytest.approx(1.0)
    from scipy.stats import norm

    first = np.diff(norm.cdf(np.r_[-np.inf, taus[0][0], np.inf], 0.2, np.sqrt(1.5)))
    np.testing.assert_allclose(prob.sum(axis=1), first, atol=1e-7)


def test_bayesian_fit_indices_follow_blavaan_formulas():
    out = bayes_fit_indices(
        np.array([100.0, 40.0]), 30.0, np.array([900.0, 900.0]), 18.0, n=300, moments=54
    )
    assert out["brmsea"][0] == pytest.approx(np.sqrt((100 - 54) / (24 * 300)))
    assert out["brmsea"][1] == 0.0  # chi2 below p*: no noncentrality
    assert out["bcfi"][0] == pytest.approx(1 - 46 / (900 - 54))


def test_multiple_group_fit_indices_are_blavaans():
    """blavaan's BayesChiFit with Ngr = 2: p* of both groups (2 x 54), N of both, BRMSEA
    times sqrt(2) (R/ctr_bayes_fit.R); the chi-squares are the groups' summed."""
    out = bayes_fit_indices(
        np.array([150.0]), 50.0, np.array([1200.0]), 36.0, n=300, moments=108, groups=2
    )
    assert out["brmsea"][0] == pytest.approx(np.sqrt(42 / (58 * 300)) * np.sqrt(2))
    assert out["bcfi"][0] == pytest.approx(1 - 42 / 1092)
    null_part = (1200 - 36) / (108 - 36)
    assert out["btli"][0] == pytest.approx((null_part - 100 / 58) / (null_part - 1))


def test_a_two_group_runs_null_model_is_each_groups_independence_model():
    """fit_indices of a two-group run: the null chi-squares and pDs of the groups' own
    independence models, summed; p* counts both groups' means and covariances."""
    pt, par = two_group_cfa()
    labels = mixed_labels(200, 1)
    run = in_memory_run(pt, par[None, None], group_answers(pt, par, labels, 2), labels)
    chi2 = np.linspace(80.0, 120.0, 200)
    indices, p_d_null = fit_indices(run, chi2, 30.0, np.random.default_rng(4))
    assert model_moments(run) == 2 * (21 + 6)
    rng = np.random.default_rng(4)
    nulls = [null_model(group, 200, rng) for _, group in run.by_group()]
    assert p_d_null == pytest.approx(nulls[0][1] + nulls[1][1])
    expected = bayes_fit_indices(chi2, 30.0, nulls[0][0] + nulls[1][0], p_d_null, 200, 54, groups=2)
    for name, values in expected.items():
        np.testing.assert_allclose(indices[name], values)


# ---- PPP and residuals on Laplace posteriors -------------------------------------------------
def test_ppp_is_not_extreme_when_the_model_is_true(tmp_path):
    ppps = []
    for seed in range(4):
        data = simulate_data({}, seed, n=250)
        result = predictive_check(
            load_run(laplace_run(tmp_path, data, name=f"r{seed}")), max_draws=200
        )
        ppps.append(float(result.fit_measures.set_index("measure").value["ppp"]))
        assert result.residuals.outside.sum() <= 2
    assert sum(0.05 < p < 0.95 for p in ppps) >= 3, ppps


def test_omitted_residual_covariance_is_found(tmp_path):
    # across constructs: within a three-item construct the loadings would absorb it
    data = simulate_data({"x3~~x7": 0.25}, seed=11, extra="x3 ~~ x7\n")
    run = laplace_run(tmp_path, data)
    result = predictive_check(load_run(run), max_draws=400)
    assert result.fit_measures.set_index("measure").value["ppp"] < 0.05
    top = result.residuals.iloc[0]
    assert {top.item1, top.item2} == {"x3", "x7"} and top.outside and top.residual > 0


def test_omitted_cross_loading_is_found_and_named_in_the_report(tmp_path):
    data = simulate_data({"F1=~x9": 0.6}, seed=12, extra="F1 =~ x9\n")
    run = laplace_run(tmp_path, data)
    assert main(["ppc", str(run), "--draws", "400"]) == 0
    measures = pd.read_csv(run / "fit_measures.csv").set_index("measure").value
    assert measures["ppp"] < 0.05
    residuals = pd.read_csv(run / "residuals.csv")
    top = residuals.head(3)
    assert (top.item2 == "x9").all() and set(top.item1) == {"x1", "x2", "x3"}
    assert residuals.outside.sum() >= 2
    report = (run / "report.md").read_text()
    assert "x9 is under-predicted with 3 items of F1" in report
    for name in ("ppc_items.png", "ppc_residuals.png", "reliability.csv", "ppc_items.csv"):
        assert (run / name).is_file()


def test_report_sections_are_replaced_not_duplicated(tmp_path):
    from bayes_sor.report.sections import append_report_section

    (tmp_path / "report.md").write_text("# bayes_sor run report\n\nbody\n")
    for text in ("## Checks\nfirst", "## Checks\nsecond"):
        append_report_section(tmp_path, "ppc", text)
    append_report_section(tmp_path, "reliability", "## Reliability\nthird")
    report = (tmp_path / "report.md").read_text()
    assert report.count("## Checks") == 1 and "second" in report and "first" not in report
    assert report.startswith("# bayes_sor run report\n\nbody")
    assert report.index("## Checks") < report.index("## Reliability")


def test_fit_measures_layout_and_loo(tmp_path):
    result = predictive_check(load_run(laplace_run(tmp_path, simulate_data({}, 6))), max_draws=200)
    m = result.fit_measures.set_index("measure").value
    for name in (
        "ppp",
        "srmr",
        "srmr.ci.lower",
        "srmr.ci.upper",
        "brmsea",
        "bcfi",
        "elpd_loo",
        "se_elpd_loo",
        "p_loo",
        "pareto_k_gt_0.7",
    ):
        assert np.isfinite(m[name]), name
    assert 20 < m["p_loo"] < 40  # 30 free parameters
    assert m["srmr.ci.lower"] <= m["srmr"] <= m["srmr.ci.upper"]


def test_ppc_refuses_a_folder_that_is_not_a_run(tmp_path, capsys):
    assert main(["ppc", str(tmp_path)]) == 2
    assert "not a bayes_sor run folder" in capsys.readouterr().err


def test_covariance_matrix_runs_get_ppp_and_residuals_without_loo(tmp_path):
    from bayes_sor.spec.partable import without_mean_structure

    data = simulate_data({"F1=~x9": 0.6}, seed=12, extra="F1 =~ x9\n")
    full = build_partable(CFA)
    draws = laplace_draws(full, data, n_draws=200)
    pt = without_mean_structure(full)
    keep = [full.names.index(n) for n in pt.names]
    run = write_run(tmp_path / "cov", pt, draws[..., keep], data, summary=True)
    assert main(["ppc", str(run), "--draws", "200"]) == 0
    m = pd.read_csv(run / "fit_measures.csv").set_index("measure")
    assert m.value["ppp"] < 0.05 and "covariances only" in m.note["ppp"]
    assert np.isnan(m.value["elpd_loo"]) and "DIC" in m.note["pd"]
    assert 0 < m.value["brmsea"] < 1
    top = pd.read_csv(run / "residuals.csv").head(3)
    assert (top.item2 == "x9").all()
    assert not (run / "ppc_items.png").exists() and (run / "reliability.csv").is_file()


# ---- ordinal items ---------------------------------------------------------------------------
def ordinal_run(tmp_path, extra_truth: str = "", name: str = "ord"):
    """Three-category items (simulate cuts the latent responses); posterior = truth + noise."""
    from bayes_sor.spec.partable import add_thresholds

    gen = add_thresholds(
        build_partable(CFA + extra_truth, ordinal="all"), {f"x{i}": 3 for i in range(1, 10)}
    )
    values = {f"x{i}|t1": -0.5 for i in range(1, 10)} | {f"x{i}|t2": 0.8 for i in range(1, 10)}
    par = truth(gen, values | {"F1=~x9": 0.8})
    data = simulate(gen, par, 600, seed=4)
    assert set(np.unique(data)) == {1, 2, 3}
    pt = add_thresholds(build_partable(CFA, ordinal="all"), {f"x{i}": 3 for i in range(1, 10)})
    centre = truth(pt, values)
    draws = centre + np.random.default_rng(0).normal(0, 0.01, (2, 200, len(centre)))
    fixed = (pt.parameters.free == 0).to_numpy()
    draws[..., fixed] = centre[fixed]
    return write_run(tmp_path / name, pt, draws, data, likelihood="conditional")


def test_ordinal_ppp_uses_pairwise_tables(tmp_path):
    good = predictive_check(load_run(ordinal_run(tmp_path)), max_draws=200)
    m = good.fit_measures.set_index("measure")
    assert 0.05 < m.value["ppp"] < 0.95
    assert "G^2" in m.note["ppp"]
    assert np.isnan(m.value["elpd_loo"])  # no latent scores stored: no LOO, said so
    bad = predictive_check(load_run(ordinal_run(tmp_path, "F1 =~ x9\n", "bad")), max_draws=200)
    assert bad.fit_measures.set_index("measure").value["ppp"] < 0.05


# ---- sampled posteriors (slow) ------------------------------------------------------------------
def _fit_run(model: str, data: pd.DataFrame, out, seed: int = 1):
    from bayes_sor.report.run_report import write_run as write_fit
    from bayes_sor.runs.fit import fit
    from bayes_sor.sampling.samplers import SamplerSettings

    settings = SamplerSettings(chains=2, draws=500, tune=500, seed=seed, progressbar=False)
    result = fit(_with_effect(model), data, scale="none", settings=settings)
    write_fit(result, out)
    return out


def _with_effect(model: str) -> str:
    """A CFA with its first loading labelled and a ':=' copy of it: the same model (std.lv keeps
    the first loading positive either way), but fit() gets one effect to report. fit() currently
    fails on a model with no structural paths and no definitions (no effects to stack)."""
    return model.replace("=~ x1", "=~ l1*x1", 1) + "l1_copy := l1\n"


@pytest.mark.slow
def test_holzinger_swineford_misfit_is_found(tmp_path, reference):
    data = pd.read_csv(reference / "lavaan/holzinger_swineford_1939.csv")
    run = _fit_run(HS, data, tmp_path / "hs")
    assert main(["ppc", str(run)]) == 0
    m = pd.read_csv(run / "fit_measures.csv").set_index("measure").value
    assert m["ppp"] < 0.01  # blavaan: 0.000
    assert m["brmsea"] == pytest.approx(0.099, abs=0.01)  # blavaan: 0.099
    assert m["bcfi"] == pytest.approx(0.930, abs=0.015)  # blavaan: 0.930
    residuals = pd.read_csv(run / "residuals.csv")
    top = {frozenset(p) for p in zip(residuals.item1.head(8), residuals.item2.head(8), strict=True)}
    assert {frozenset({"x1", "x9"}), frozenset({"x3", "x9"}), frozenset({"x7", "x8"})} <= top
    assert "x9 is under-predicted with 2 items of visual" in (run / "report.md").read_text()


@pytest.mark.slow
def test_sampled_ppp_true_vs_omitted_cross_loading(tmp_path):
    good = _fit_run(CFA, simulate_data({}, 21, n=400), tmp_path / "good")
    bad = _fit_run(CFA, simulate_data({"F1=~x9": 0.6}, 22, "F1 =~ x9\n", n=400), tmp_path / "bad")
    ppp = [
        predictive_check(load_run(r)).fit_measures.set_index("measure").value["ppp"]
        for r in (good, bad)
    ]
    assert 0.05 < ppp[0] < 0.95 and ppp[1] < 0.05, ppp


def test_mixed_ordinal_and_continuous_items_get_residuals_but_no_ppp(tmp_path):
    from bayes_sor.spec.partable import add_thresholds

    pt = add_thresholds(
        build_partable(CFA, ordinal="x1,x2,x3"), dict.fromkeys(["x1", "x2", "x3"], 3)
    )
    par = truth(pt, {f"x{i}|t1": -0.5 for i in (1, 2, 3)} | {f"x{i}|t2": 0.8 for i in (1, 2, 3)})
    data = simulate(pt, par, 300, seed=5)
    draws = np.tile(par, (2, 100, 1))
    result = predictive_check(
        load_run(write_run(tmp_path / "mixed", pt, draws, data)), max_draws=100
    )
    m = result.fit_measures.set_index("measure").value
    assert np.isnan(m["ppp"]) and len(result.residuals) == 36
    assert result.residuals.outside.sum() <= 3


def test_report_counts_read_as_counts_in_words_and_tables(tmp_path):
    from dataclasses import replace

    from matplotlib.collections import PathCollection
    from matplotlib.colors import to_rgba

    from bayes_sor.checks.ppc_report import report_section, residual_figure

    pt = build_partable(CFA)
    data = simulate_data({}, 6)
    # 2 x 1100 draws: ArviZ's Pareto-k threshold is then 0.7 itself, which gets one row
    run = load_run(write_run(tmp_path / "run", pt, laplace_draws(pt, data, n_draws=1100), data))
    result = predictive_check(run, max_draws=200)
    assert [m for m in result.fit_measures.measure if m.startswith("pareto_k")] == [
        "pareto_k_gt_0.7"
    ]
    one = result.residuals.assign(outside=[True] + [False] * (len(result.residuals) - 1))
    text = report_section(run, replace(result, residuals=one), 0.95)
    assert f"1 of {len(one)} item pairs has an observed correlation outside its 95%" in text
    assert "| npar | 30 |" in text and "| ntotal | 500 |" in text and "| ppp.draws | 200 |" in text
    assert "30.000" not in text
    # the flagged pair's marker: white, outlined in black, so it shows on a near-black cell too
    ax = residual_figure(replace(result, residuals=one)).axes[0]
    assert not [t for t in ax.texts if t.get_text() == "x"]
    (marker,) = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert len(marker.get_offsets()) == 1
    assert tuple(marker.get_facecolor()[0]) == to_rgba("white")
    assert tuple(marker.get_edgecolor()[0]) == to_rgba("black")


def test_group_ppp_is_uniform_at_the_true_moments():
    """With the posterior a point mass at the truth, each group's PPP (and the overall one of
    the summed chi-square) is uniform over data sets: mean near 1/2, few small values."""
    pt, par = two_group_cfa()
    draws = np.broadcast_to(par, (100, len(par)))
    labels = np.repeat(["a", "b"], 80)
    ppps = {"a": [], "b": [], "all": []}
    for seed in range(40):
        run = in_memory_run(pt, draws[None], group_answers(pt, par, labels, seed), labels)
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
    pt, par = two_group_cfa()
    wrong = par.copy()
    wrong[pt.names.index("F1=~x1.g2")], wrong[pt.names.index("F2=~x6.g2")] = 0.1, 1.6
    labels = np.repeat(["a", "b"], 150)
    data = group_answers(pt, par, labels, 3, data_par=wrong)
    draws = np.broadcast_to(par, (200, len(par)))
    run = in_memory_run(pt, draws[None], data, labels)
    groups = group_replications(run, draws, np.random.default_rng(0))
    ppp = {label: np.mean(reps.d_rep >= reps.d_obs) for label, _, reps in groups}
    assert ppp["b"] < 0.01
    assert ppp["a"] > 0.05
    d_obs = sum(r.d_obs for _, _, r in groups)
    assert np.mean(sum(r.d_rep for _, _, r in groups) >= d_obs) < 0.01


@pytest.fixture(scope="module")
def group_run(tmp_path_factory):
    return two_group_run(tmp_path_factory.mktemp("groups") / "run")


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
    # BRMSEA / BCFI of the chi-square summed over the groups (not computed before)
    assert 0 <= value["(all)", "brmsea"] < 0.1 and 0.9 < value["(all)", "bcfi"] <= 1.01
    residuals = read_table(group_run / "residuals.csv")
    assert residuals.groupby("group").size().to_dict() == {"a": 15, "b": 15}
    items = read_table(group_run / "ppc_items.csv")
    assert items.groupby("group").size().to_dict() == {"a": 24, "b": 24}
    reliability = read_table(group_run / "reliability.csv")
    assert set(reliability.group) == {"a", "b"}
    assert "## Model checking" in (group_run / "report.md").read_text()


@pytest.mark.slow
def test_a_fitted_two_group_run_is_checked_per_group(tmp_path):
    """``fit --group`` stores each respondent's group; ``ppc`` and ``reliability`` then check
    each group of the real fit (a small one: 2 chains x 200 draws)."""
    pt, par = two_group_cfa()
    labels = mixed_labels(300, 7)
    data = group_answers(pt, par, labels, 8).assign(g=labels)
    data.to_csv(tmp_path / "data.csv", index=False)
    (tmp_path / "model.lav").write_text(GROUP_CFA)
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


def test_a_groups_ordinal_answers_are_coded_among_every_groups_categories(tmp_path):
    """Group b never answers 1 to u1: its answers 2..4 are still codes 1..3 (the thresholds
    were estimated from every group's answers), in the G^2 tables and the log-likelihood.
    (Before: coded 0..2 among group b's own answers.)"""
    items = ["u1", "u2", "u3"]
    base = build_partable("F =~ u1 + u2 + u3", ordinal="all")
    pt = with_groups(add_thresholds(base, dict.fromkeys(items, 4)), ["a", "b"])
    rng = np.random.default_rng(5)
    labels = np.repeat(["a", "b"], 40)
    data = pd.DataFrame(rng.integers(1, 5, size=(80, 3)).astype(float), columns=items)
    data.loc[labels == "b", "u1"] = rng.integers(2, 5, size=40)
    par = np.tile(truth(pt, loading=1.0, variance=1.0), (1, 4, 1))
    run = load_run(write_run(tmp_path / "run", pt, par, data, groups=labels))
    _, b = run.by_group()[1]
    observed, kind = observed_scale(b)
    assert kind == "ordinal"
    np.testing.assert_array_equal(observed[:, 0], data.u1[labels == "b"] - 1)
    np.testing.assert_array_equal(answer_codes(run)[labels == "b", 0], data.u1[labels == "b"] - 1)
