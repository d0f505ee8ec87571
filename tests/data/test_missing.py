"""Missing answers (``--missing model``, the default): pattern statistics, the case-wise (FIML)
and masked likelihoods against scipy, EM, loading, every check downstream of a fit, and the
issue's check that the posterior under the model is closer to the complete-data one than
listwise deletion's (fast: posterior modes; slow: sampled posteriors through ``fit``).

Decided: a respondent who answered none of the model's items carries no information (under
MAR their row contributes a constant) and is left out with a warning, as lavaan does; an item
nobody answered is refused.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pymc as pm
import pytest
from fakes import laplace_draws, truth, write_run
from model_points import jittered_point, value_function
from pymc.initial_point import make_initial_point_fn
from scipy import stats
from scipy.optimize import minimize

from bayes_sor.checks.loglik import conditional_loglik, marginal_loglik
from bayes_sor.checks.ppc import predictive_check
from bayes_sor.checks.predictive import CaseWise, Implied, pair_table
from bayes_sor.checks.reliability import cronbach_alpha, reliability, report_section
from bayes_sor.cli.main import _parser
from bayes_sor.data.categories import add_ordinal_thresholds
from bayes_sor.data.load import load_data
from bayes_sor.data.missing import PatternStatistics, casewise_loglik, saturated_moments
from bayes_sor.errors import DataError
from bayes_sor.model.build import pymc_model
from bayes_sor.model.simulate import simulate
from bayes_sor.posterior.scores import marginal_latent_scores
from bayes_sor.report.run_report import _missingness
from bayes_sor.runs.rundir import load_run
from bayes_sor.spec.matrices import implied_moments, representation
from bayes_sor.spec.partable import add_thresholds, build_partable

ONE_FACTOR = "F =~ y1 + y2 + y3 + y4"
TWO_FACTORS = "F =~ y1 + y2 + y3 + y4\nG =~ y5 + y6 + y7 + y8\nG ~ F"
CFA = "F1 =~ x1 + x2 + x3\nF2 =~ x4 + x5 + x6\nF3 =~ x7 + x8 + x9"


def _remove(data: pd.DataFrame, share: float, seed: int) -> pd.DataFrame:
    """``data`` with a share of answers removed completely at random (no row left empty)."""
    rng = np.random.default_rng(seed)
    out = data.astype(float).mask(rng.random(data.shape) < share)
    empty = out.isna().all(axis=1).to_numpy()
    out.iloc[np.flatnonzero(empty), 0] = data.iloc[np.flatnonzero(empty), 0]
    return out


def _one_factor_data(n: int = 60, share: float = 0.2, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    f = rng.normal(size=n)
    data = pd.DataFrame({f"y{i}": 2 + 0.8 * f + rng.normal(0, 0.6, n) for i in range(1, 5)})
    return _remove(data, share, seed + 1)


def _evaluate(model: pm.Model, names: list, seed: int = 1) -> list[np.ndarray]:
    """Variables (by name) or expressions at the model's initial point jittered by a fixed seed
    (compiled without optimisation: one evaluation is all a test needs)."""
    outputs = [model[n] if isinstance(n, str) else n for n in names]
    return value_function(model, outputs, mode="FAST_COMPILE")(jittered_point(model, seed))


def _casewise_scipy(y: np.ndarray, mean: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """Per respondent: scipy's MvNormal log-density of the answered items."""
    return np.array(
        [
            stats.multivariate_normal(mean[o], cov[np.ix_(o, o)]).logpdf(row[o])
            for row in y
            for o in [~np.isnan(row)]
        ]
    )


# ---- patterns, the case-wise likelihood and EM (NumPy) --------------------------------------
def test_pattern_statistics_are_each_patterns_n_mean_and_scatter():
    y = np.array([[1.0, 2, np.nan], [3, 5, np.nan], [4, np.nan, 1], [2, 2, 2], [0, 1, 3]])
    stats_ = PatternStatistics.of(y)
    mask = stats_.patterns.mask.tolist()
    assert sorted(mask) == [[True, False, True], [True, True, False], [True, True, True]]
    two = mask.index([True, True, False])
    assert stats_.patterns.n[two] == 2
    np.testing.assert_allclose(stats_.mean[two], [2.0, 3.5, 0.0])
    np.testing.assert_allclose(stats_.scatter[two], [[1, 1.5, 0], [1.5, 2.25, 0], [0, 0, 0]])
    assert stats_.patterns.n.sum() == 5


def test_casewise_loglik_equals_scipy_summed_over_the_answered_items():
    y = _one_factor_data().to_numpy()
    rng = np.random.default_rng(3)
    a = rng.normal(size=(4, 4))
    covs = np.stack([a @ a.T + np.eye(4), np.eye(4) * 2])
    means = np.stack([np.full(4, 2.0), np.zeros(4)])
    ours = casewise_loglik(PatternStatistics.of(y), means, covs)
    expected = [_casewise_scipy(y, m, c).sum() for m, c in zip(means, covs, strict=True)]
    np.testing.assert_allclose(ours, expected, rtol=1e-10)
    pointwise = marginal_loglik(y, Implied(means, covs, False))
    np.testing.assert_allclose(pointwise[0], _casewise_scipy(y, means[0], covs[0]), rtol=1e-10)


def test_saturated_moments_by_em_are_the_ml_estimates():
    complete = _one_factor_data(share=0.0).to_numpy()
    mean, cov = saturated_moments(PatternStatistics.of(complete))
    np.testing.assert_allclose(mean, complete.mean(axis=0), atol=1e-12)
    np.testing.assert_allclose(cov, np.cov(complete.T, bias=True), atol=1e-12)

    incomplete = _one_factor_data(share=0.25).to_numpy()
    stats_ = PatternStatistics.of(incomplete)
    mean, cov = saturated_moments(stats_)
    lower = np.tril_indices(4)

    def negative(x: np.ndarray) -> float:
        chol = np.zeros((4, 4))
        chol[lower] = x[4:]
        return -casewise_loglik(stats_, x[:4], chol @ chol.T)

    found = minimize(negative, np.r_[mean, np.linalg.cholesky(cov)[lower]], method="BFGS")
    assert -found.fun == pytest.approx(casewise_loglik(stats_, mean, cov), abs=1e-6)
    # the chi-square of the saturated model against itself is 0
    casewise = CaseWise.of(incomplete)
    at_optimum = Implied(casewise.mean[None], casewise.cov[None], False)
    assert casewise.chisq(at_optimum)[0] == pytest.approx(0.0, abs=1e-8)


# ---- the PyMC likelihoods -------------------------------------------------------------------
@pytest.mark.parametrize("extra", ["", "\ny1 ~~ y2"])
def test_marginal_likelihood_of_incomplete_data_is_the_casewise_density(extra):
    pt = build_partable(ONE_FACTOR + extra)
    data = _one_factor_data()
    model = pymc_model(pt, data, likelihood="marginal").model
    assert "pattern_n" in model.named_vars and "item_cov_chol" not in model.named_vars
    par, loglik = _evaluate(model, ["par", "loglik"])
    m = implied_moments(representation(pt), par)
    assert loglik == pytest.approx(
        _casewise_scipy(data.to_numpy(), m.nu, m.item_cov).sum(), rel=1e-10
    )


def test_complete_data_keep_the_sufficient_statistics_likelihood():
    model = pymc_model(
        build_partable(ONE_FACTOR), _one_factor_data(share=0.0), likelihood="marginal"
    ).model
    assert "item_cov_chol" in model.named_vars and "pattern_n" not in model.named_vars


@pytest.mark.parametrize(("extra", "term"), [("", "items"), ("\ny1 ~~ y2", "items_loglik")])
def test_conditional_likelihood_sums_over_the_answered_cells_only(extra, term):
    pt = build_partable(ONE_FACTOR + extra)
    data = _one_factor_data(n=30)
    model = pymc_model(pt, data, likelihood="conditional", save_latent=True).model
    logp = model.logp(vars=[model[term]]) if term == "items" else model[term]
    par, z, value = _evaluate(model, ["par", "latent_scores", logp])
    m = implied_moments(representation(pt), par)
    y = data.to_numpy()
    mu = m.nu + np.outer(z[:, 0], m.lambda_[:, 0])
    expected = sum(
        stats.multivariate_normal(mu[i][o], m.theta[np.ix_(o, o)]).logpdf(y[i][o])
        for i in range(len(y))
        for o in [~np.isnan(y[i])]
    )
    assert value == pytest.approx(expected, rel=1e-10)


def test_ordinal_likelihood_leaves_unanswered_cells_out():
    rng = np.random.default_rng(0)
    latent = 0.9 * rng.normal(size=(40, 1)) + rng.normal(size=(40, 4))
    answers = pd.DataFrame(
        1 + np.digitize(latent, [-0.8, 0.0, 0.9]), columns=["y1", "y2", "y3", "y4"]
    )
    data = _remove(answers, 0.2, 1)
    with warnings.catch_warnings():  # sparse categories of 40 answers
        warnings.simplefilter("ignore", UserWarning)
        pt = add_ordinal_thresholds(build_partable(ONE_FACTOR, ordinal="all"), data)
    par, z, loglik = _evaluate(
        pymc_model(pt, data, save_latent=True).model, ["par", "latent_scores", "ordinal_loglik"]
    )
    expected = 0.0
    for item in pt.indicators:
        answered = data[item].notna().to_numpy()
        mu = par[pt.names.index(f"F=~{item}")] * z[answered, 0]
        cuts = np.r_[-np.inf, [par[pt.names.index(f"{item}|t{j}")] for j in (1, 2, 3)], np.inf]
        code = data[item].to_numpy()[answered].astype(int) - 1
        expected += np.log(
            stats.norm.cdf(cuts[code + 1] - mu) - stats.norm.cdf(cuts[code] - mu)
        ).sum()
    assert loglik == pytest.approx(expected, rel=1e-9)


def test_starting_values_are_finite_when_a_respondent_skipped_a_whole_factor():
    pt = build_partable(TWO_FACTORS)
    data = simulate(pt, truth(pt), 50, seed=0)
    data.loc[3, ["y1", "y2", "y3", "y4"]] = np.nan
    built = pymc_model(pt, data, likelihood="conditional")
    assert all(np.isfinite(v).all() for v in built.initial_values.values())
    start = make_initial_point_fn(model=built.model, overrides=built.initial_values)(0)
    assert np.isfinite(built.model.compile_logp(mode="FAST_COMPILE")(start))


def test_missing_observed_variables_are_refused_by_the_conditional_likelihood():
    text = "X =~ x1 + x2 + x3\nW =~ w1 + w2 + w3\nY =~ y1 + y2 + y3\nY ~ X + W + X:W + age"
    pt = build_partable(text)
    data = simulate(pt, truth(pt), 40, seed=0)
    data.loc[5, "age"] = np.nan
    with pytest.raises(
        DataError,
        match=r"observed variable\(s\) \['age'\] have missing.*"
        "--missing listwise",
    ):
        pymc_model(pt, data)


# ---- loading the data -----------------------------------------------------------------------
def test_the_model_keeps_every_respondent_who_answered_an_item():
    frame = pd.DataFrame(
        {
            "q1": [1, np.nan, 3, 4, 5, 2, np.nan],
            "q2": [2, 3, np.nan, 5, 1, 4, np.nan],
            "q3": [3, 1, 2, np.nan, 4, 5, np.nan],
        },
        index=list("abcdefg"),
    )
    with pytest.warns(UserWarning, match=r"1 respondent\(s\) answered none .*row 'g'"):
        data = load_data(frame, ["q1", "q2", "q3"])
    assert data.policy == "model" and data.n_dropped == 1
    assert data.frame.index.tolist() == list("abcdef")
    assert data.frame.isna().sum().tolist() == [1, 1, 1]
    assert data.missing == {"q1": 2, "q2": 2, "q3": 2}  # as read, the empty row included
    with pytest.raises(DataError, match="use --missing model"):
        load_data(frame, ["q1", "q2", "q3"], missing="refuse")
    frame["q3"] = np.nan
    with pytest.raises(DataError, match=r"'q3' have no answers at all"):
        load_data(frame, ["q1", "q2", "q3"])


def test_cli_and_api_default_to_the_missing_data_model():
    import inspect

    from bayes_sor.runs.fit import fit

    args = _parser().parse_args(["fit", "m.lav", "--data", "d.csv", "--out", "o"])
    assert args.missing == "model"
    assert inspect.signature(fit).parameters["missing"].default == "model"
    assert inspect.signature(load_data).parameters["missing"].default == "model"


def test_the_report_names_the_method_and_the_missing_answers_per_item():
    attrs = {
        "bayes_sor_missing": '{"y1": 3, "y2": 0}',
        "bayes_sor_n_dropped": "1",
        "bayes_sor_missing_method": "model",
        "bayes_sor_likelihood": "marginal",
    }
    text = _missingness(attrs)
    assert text.startswith("missing answers per item: y1 3; handling: missing-data model")
    assert "case-wise (FIML)" in text and "without any answer left out: 1" in text
    conditional = _missingness(attrs | {"bayes_sor_likelihood": "conditional"})
    assert "only the answered items enter the likelihood" in conditional
    # the quadrature likelihood sums over missingness patterns as the marginal one does
    quadrature = _missingness(attrs | {"bayes_sor_likelihood": "quadrature"})
    assert "case-wise (FIML)" in quadrature
    listwise = _missingness(attrs | {"bayes_sor_missing_method": "listwise"})
    assert listwise.endswith("listwise deletion (1 incomplete respondents dropped)")


# ---- checks downstream of a fit -------------------------------------------------------------
def _incomplete_run(
    tmp_path,
    model: str = CFA,
    extra: str = "",
    name: str = "run",
    share: float = 0.15,
    n: int = 500,
):
    """A Laplace-approximate run fitted to complete data, stored with answers removed."""
    pt = build_partable(model + extra)
    values = {"F1=~x9": 0.6} if extra else {}
    complete = simulate(pt, truth(pt, values), n, seed=12)
    fitted = build_partable(model)
    draws = laplace_draws(fitted, complete, n_draws=300)
    return load_run(write_run(tmp_path / name, fitted, draws, _remove(complete, share, 4)))


def test_pointwise_loglik_of_incomplete_data_given_latent_scores(tmp_path):
    pt = build_partable(ONE_FACTOR)
    par = truth(pt)
    data = _remove(simulate(pt, par, 30, seed=2), 0.2, 3)
    eta = np.random.default_rng(3).normal(size=(1, 1, 30, 1))
    run = load_run(
        write_run(
            tmp_path / "c", pt, par[None, None], data, latent_scores=eta, likelihood="conditional"
        )
    )
    ours = conditional_loglik(run, run.draws, eta[0])[0]
    mu = 0.8 * eta[0, 0]
    expected = np.nansum(stats.norm.logpdf(data.to_numpy(), mu, np.sqrt(0.4)), axis=1)
    np.testing.assert_allclose(ours, expected)

    ordinal = add_thresholds(
        build_partable(ONE_FACTOR, ordinal="all"), dict.fromkeys(pt.indicators, 3)
    )
    par = truth(
        ordinal, {f"y{i}|t1": -0.5 for i in range(1, 5)} | {f"y{i}|t2": 0.8 for i in range(1, 5)}
    )
    answers = _remove(simulate(ordinal, par, 30, seed=4), 0.2, 5)
    run = load_run(
        write_run(
            tmp_path / "o",
            ordinal,
            par[None, None],
            answers,
            latent_scores=eta,
            likelihood="conditional",
        )
    )
    ours = conditional_loglik(run, run.draws, eta[0])[0]
    cuts = np.array([-np.inf, -0.5, 0.8, np.inf])
    y = answers.to_numpy()
    code = np.nan_to_num(y, nan=1).astype(int) - 1
    terms = np.log(stats.norm.cdf(cuts[code + 1] - mu) - stats.norm.cdf(cuts[code] - mu))
    np.testing.assert_allclose(ours, np.where(np.isnan(y), 0.0, terms).sum(axis=1))


def test_ppc_of_incomplete_data_uses_the_casewise_chi_square(tmp_path):
    run = _incomplete_run(tmp_path)
    assert np.isnan(run.y).any() and np.isfinite(run.cov).all()
    result = predictive_check(run, max_draws=200)
    m = result.fit_measures.set_index("measure").value
    assert 0.05 < m["ppp"] < 0.95
    assert m[["chisq", "srmr", "bcfi", "brmsea", "elpd_loo", "baseline.chisq"]].notna().all()
    assert np.isfinite(result.residuals[["observed", "predicted"]].to_numpy()).all()
    assert np.isfinite(result.items[["observed", "predicted"]].to_numpy()).all()
    # replications miss the answers the data miss
    assert (np.isnan(result.replicated) == np.isnan(run.y)).all()
    misfit = predictive_check(
        _incomplete_run(tmp_path, extra="\nF1 =~ x9", name="bad"), max_draws=200
    )
    assert misfit.fit_measures.set_index("measure").value["ppp"] < 0.05


def test_ordinal_ppc_of_incomplete_data(tmp_path):
    pt = add_thresholds(build_partable(CFA, ordinal="all"), {f"x{i}": 3 for i in range(1, 10)})
    par = truth(
        pt, {f"x{i}|t1": -0.5 for i in range(1, 10)} | {f"x{i}|t2": 0.8 for i in range(1, 10)}
    )
    data = _remove(simulate(pt, par, 600, seed=4), 0.1, 5)
    draws = par + np.random.default_rng(0).normal(0, 0.01, (2, 100, len(par)))
    fixed = (pt.parameters.free == 0).to_numpy()
    draws[..., fixed] = par[fixed]
    run = load_run(write_run(tmp_path / "ord", pt, draws, data, likelihood="conditional"))
    result = predictive_check(run, max_draws=200)
    assert 0.05 < result.fit_measures.set_index("measure").value["ppp"] < 0.95
    assert np.isfinite(result.residuals[["observed", "predicted"]].to_numpy()).all()


def test_pairwise_tables_count_respondents_who_answered_both_items():
    codes = np.array([[0, 1, 0], [1, np.nan, 1], [np.nan, 0, 1], [1, 1, 1.0]])
    np.testing.assert_array_equal(pair_table(codes, 2, 2, 0, 1), [[0, 1], [0, 1]])
    np.testing.assert_array_equal(pair_table(codes, 2, 2, 1, 2), [[0, 1], [1, 1]])


def test_reliability_of_incomplete_data_uses_the_em_covariance(tmp_path):
    run = _incomplete_run(tmp_path, share=0.1, n=600)
    table = reliability(run)
    alphas = table[table.measure == "alpha"].set_index("construct")["sample"]
    np.testing.assert_allclose(run.cov, saturated_moments(PatternStatistics.of(run.y))[1])
    for f, idx in {"F1": [0, 1, 2], "F2": [3, 4, 5], "F3": [6, 7, 8]}.items():
        assert alphas[f] == pytest.approx(cronbach_alpha(run.cov[np.ix_(idx, idx)]))
        assert 0.7 < alphas[f] < 0.9  # loadings .8, residual variances .4
    assert "saturated model's ML (EM) covariance" in report_section(table, 0.95, False, True)


def test_latent_scores_of_a_respondent_use_the_items_they_answered():
    pt = build_partable(TWO_FACTORS)
    rep = representation(pt)
    par = truth(pt)
    y = simulate(pt, par, 3, seed=1).to_numpy(copy=True)
    y[0, :4] = np.nan  # skipped F's items: F is scored from G's answers alone
    draws = marginal_latent_scores(rep, np.tile(par, (1, 4000, 1)), y, seed=2)
    m = implied_moments(rep, par)
    o = ~np.isnan(y[0])
    gain = m.latent_cov @ m.lambda_[o].T @ np.linalg.inv(m.item_cov[np.ix_(o, o)])
    expected = gain @ (y[0, o] - m.nu[o])
    np.testing.assert_allclose(draws[0, :, 0].mean(axis=0), expected, atol=0.05)
    assert np.isfinite(draws).all()


# ---- the check: closer to the complete-data posterior than listwise deletion --------
def _three_data_sets() -> dict[str, pd.DataFrame]:
    pt = build_partable(TWO_FACTORS)
    complete = simulate(pt, truth(pt), 300, seed=1)
    incomplete = _remove(complete, 0.15, 2)
    return {"complete": complete, "model": incomplete, "listwise": incomplete.dropna()}


def _loadings(pt) -> list[int]:
    return [k for k, name in enumerate(pt.names) if "=~" in name]


def test_posterior_modes_under_the_model_are_closer_to_complete_data_than_listwise():
    pt = build_partable(TWO_FACTORS)
    data_sets = _three_data_sets()
    assert len(data_sets["listwise"]) < 150  # most respondents skipped an item
    modes = {}
    for name, data in data_sets.items():
        built = pymc_model(pt, data, likelihood="marginal")
        with built.model, warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            point = pm.find_MAP(
                initvals=built.initial_values,
                progressbar=False,
                jitter=False,
                compile_kwargs={"mode": "FAST_COMPILE"},
            )
        modes[name] = point["par"][_loadings(pt)]
    distance = {k: np.abs(modes[k] - modes["complete"]).sum() for k in ("model", "listwise")}
    assert distance["model"] < 0.5 * distance["listwise"], distance


@pytest.mark.slow
def test_posterior_under_the_model_is_closer_to_complete_data_than_listwise(tmp_path):
    from bayes_sor.report.run_report import write_run as write_fit
    from bayes_sor.runs.fit import fit
    from bayes_sor.sampling.samplers import SamplerSettings

    settings = SamplerSettings(chains=2, draws=500, tune=500, seed=1, progressbar=False)
    estimates = {}
    for name, data in _three_data_sets().items():
        result = fit(
            TWO_FACTORS,
            data,
            scale="none",
            settings=settings,
            missing="listwise" if name == "listwise" else "model",
        )
        table = result.estimates
        estimates[name] = table[table.op == "=~"].set_index("rhs")
        assert (estimates[name]["r_hat"] < 1.02).all()
        if name == "model":
            out = write_fit(result, tmp_path / "run")
            assert (
                "handling: missing-data model, case-wise (FIML)" in (out / "report.md").read_text()
            )
    reference = estimates["complete"]
    distance = {
        k: ((estimates[k]["mean"] - reference["mean"]).abs() / reference["sd"]).sum()
        for k in ("model", "listwise")
    }
    assert distance["model"] < 0.5 * distance["listwise"]
