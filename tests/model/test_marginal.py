"""The marginal likelihood: summary-statistics input (covariance / correlation matrix + N),
latent scores drawn after a marginal fit, and (slow) agreement of the marginal posterior with
the conditional one and with the raw-data posterior."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from fakes import group_covariances, grouped_answers
from model_points import jittered_point, value_function
from posterior_helpers import fit_posterior
from scipy import stats

from bayes_sor.cli.main import main
from bayes_sor.data.summary_statistics import load_group_summary, load_summary
from bayes_sor.errors import DataError, ModelSpecError
from bayes_sor.model.build import pymc_model
from bayes_sor.model.marginal import own_intercepts
from bayes_sor.posterior.scores import marginal_latent_scores
from bayes_sor.runs.fit import fit
from bayes_sor.sampling.samplers import SamplerSettings
from bayes_sor.spec.groups import with_groups
from bayes_sor.spec.matrices import implied_moments, representation
from bayes_sor.spec.partable import build_partable, without_mean_structure

ONE_FACTOR = "F =~ y1 + y2 + y3 + y4"
ITEMS = ["y1", "y2", "y3", "y4"]
HS_ITEMS = [f"x{i}" for i in range(1, 10)]


def _data(n: int = 50, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    f = rng.normal(size=n)
    return pd.DataFrame({f"y{i}": 2 + 0.8 * f + rng.normal(0, 0.6, n) for i in range(1, 5)})


def _summary(data: pd.DataFrame):
    return load_summary(list(data.columns), cov=data.cov(), nobs=len(data))


def _loglik_at(model, seed: int) -> tuple[np.ndarray, float]:
    return value_function(model, [model["par"], model.potentials[0]])(jittered_point(model, seed))


def _sigma(pt_, par: np.ndarray) -> np.ndarray:
    return implied_moments(representation(pt_), par).item_cov


# ---- the Wishart likelihood of a covariance matrix ----------------------------------------
def test_covariance_input_likelihood_is_the_wishart_density_of_the_sample_covariance():
    data = _data()
    pt_ = without_mean_structure(build_partable(ONE_FACTOR))
    model = pymc_model(pt_, _summary(data)).model
    n = len(data)
    scatter = (n - 1) * data.cov().to_numpy()
    values = []
    for seed in (1, 2):
        par, loglik = _loglik_at(model, seed)
        wishart = stats.wishart(df=n - 1, scale=_sigma(pt_, par)).logpdf(scatter)
        values.append((loglik, wishart))
    # equal up to a constant that does not depend on the parameters
    (l1, w1), (l2, w2) = values
    assert l1 - l2 == pytest.approx(w1 - w2, rel=1e-9)
    assert l1 != pytest.approx(l2)


def test_covariance_input_drops_the_mean_structure_and_renumbers_free_parameters():
    pt_ = without_mean_structure(build_partable(ONE_FACTOR + "\ny1 ~~ y2"))
    assert not (pt_.table.op == "~1").any()
    free = sorted(set(pt_.table.free[pt_.table.free > 0]))
    assert free == list(range(1, len(free) + 1)) and pt_.n_free == 4 + 4 + 1
    with pytest.raises(ModelSpecError, match=r"intercept label.*'m'.*no means"):
        without_mean_structure(build_partable(ONE_FACTOR + "\ny1 ~ m*1\nd := 2*m"))


def test_a_covariance_matrix_needs_the_marginal_likelihood():
    data = _data()
    moderated = build_partable("X =~ a1+a2+a3\nW =~ b1+b2+b3\nY =~ c1+c2+c3\nY ~ X + W + X:W")
    rng = np.random.default_rng(0)
    cov = pd.DataFrame(
        np.cov(rng.normal(size=(9, 40))), index=moderated.indicators, columns=moderated.indicators
    )
    summary = load_summary(moderated.indicators, cov=cov, nobs=40)
    with pytest.raises(ModelSpecError, match=r"only be analysed with the marginal.*interaction"):
        pymc_model(without_mean_structure(moderated), summary)
    with pytest.raises(ModelSpecError, match="only be analysed with the marginal"):
        pymc_model(build_partable(ONE_FACTOR), _summary(data), likelihood="conditional")


# ---- reading and checking the matrix ------------------------------------------------------
def _write(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_reads_a_labelled_full_matrix_and_a_lower_triangle(tmp_path):
    full = _write(tmp_path, "full.csv", ",a,b\na,2.0,0.5\nb,0.5,1.0\n")
    lower = _write(tmp_path, "lower.csv", "a,b\n2.0,\n0.5,1.0\n")
    for path in (full, lower):
        summary = load_summary(["b", "a"], cov=path, nobs=10)
        np.testing.assert_allclose(summary.cov.to_numpy(), [[1.0, 0.5], [0.5, 2.0]])
        assert summary.statistics()["n"] == 9  # the Wishart's N - 1 degrees of freedom


def test_correlations_with_sds_become_covariances_and_without_are_standardised(tmp_path):
    cor = _write(tmp_path, "cor.csv", "a,b\n1,0.5\n0.5,1\n")
    sd = _write(tmp_path, "sd.csv", "a,b\n2,3\n")
    summary = load_summary(["a", "b"], cor=cor, sd=sd, nobs=20)
    np.testing.assert_allclose(summary.cov.to_numpy(), [[4.0, 3.0], [3.0, 9.0]])
    assert not summary.standardized
    with pytest.warns(UserWarning, match="standardised"):
        assert load_summary(["a", "b"], cor=cor, nobs=20).standardized


@pytest.mark.parametrize(
    ("text", "kwargs", "pattern"),
    [
        (
            ",a,b\na,2,0.5\nb,0.7,1\n",
            {},
            r"not symmetric: \['a', 'b'\] = 0.5 but \['b', 'a'\] = "
            r"0.7",
        ),
        ("a,b\n1,2\n2,1\n", {}, r"not positive definite \(smallest eigenvalue -1.*items"),
        ("a,b\n1,0\n0,-1\n", {}, r"variance of \['b'\] is not positive"),
        (
            "a,b\n1,0.2\n0.2,1\n",
            {"nobs": 2},
            r"--nobs 2 is not larger than the number of items.*"
            r"\(2\)",
        ),
        ("a,b\n1,0.2\n0.2,1\n", {"nobs": None}, r"needs the sample size: give --nobs"),
        ("a,c\n1,0.2\n0.2,1\n", {}, r"no row/column for the model's item\(s\) \['b'\]"),
        ("a,b\n1,x\nx,1\n", {}, r"row 'a', column 'b' \('x'\) is not a number"),
        ("a,b,c\n1,0.2,0\n0.2,1,0\n", {}, r"2 rows and 3 columns"),
    ],
)
def test_bad_matrices_are_refused_with_where(tmp_path, text, kwargs, pattern):
    path = _write(tmp_path, "cov.csv", text)
    with pytest.raises(DataError, match=pattern):
        load_summary(["a", "b"], cov=path, **{"nobs": 10, **kwargs})


def test_a_correlation_matrix_must_look_like_one(tmp_path):
    path = _write(tmp_path, "cor.csv", "a,b\n2,0.5\n0.5,1\n")
    with pytest.raises(DataError, match=r"1 on the diagonal, but not for \['a'\].*--cov"):
        load_summary(["a", "b"], cor=path, nobs=10)
    with pytest.raises(DataError, match="either a covariance matrix"):
        load_summary(["a", "b"], cov=path, cor=path, nobs=10)


# ---- latent scores after a marginal fit ----------------------------------------------------
def test_marginal_latent_scores_follow_their_conditional_normal():
    pt_ = build_partable(ONE_FACTOR)
    rep = representation(pt_)
    data = _data(5)
    par = pt_.parameters.value.fillna(0.0).to_numpy(dtype=float, copy=True)
    names = pt_.names
    lam, theta = np.array([0.9, 0.7, 1.1, 0.5]), np.array([0.4, 0.5, 0.3, 0.6])
    par[[names.index(f"F=~{i}") for i in ITEMS]] = lam
    par[[names.index(f"{i}~~{i}") for i in ITEMS]] = theta
    par[[names.index(f"{i}~1") for i in ITEMS]] = 2.0
    draws = marginal_latent_scores(
        rep, np.broadcast_to(par, (2, 20000, len(par))), data[ITEMS].to_numpy(), seed=1
    )
    assert draws.shape == (2, 20000, 5, 1)
    # regression factor score and its posterior variance for one factor with variance 1
    precision = 1 + np.sum(lam**2 / theta)
    mean = ((data[ITEMS].to_numpy() - 2.0) @ (lam / theta)) / precision
    np.testing.assert_allclose(draws[..., 0].mean(axis=(0, 1)), mean, atol=0.02)
    np.testing.assert_allclose(draws[..., 0].var(axis=(0, 1)), 1 / precision, rtol=0.03)


def test_observed_structural_variables_score_as_their_centred_data():
    pt_ = build_partable("F =~ y1 + y2 + y3\nF ~ x\n")
    rep = representation(pt_)
    rng = np.random.default_rng(0)
    y = rng.normal(size=(6, 4))
    par = pt_.parameters.value.fillna(0.5).to_numpy(dtype=float, copy=True)
    par[pt_.names.index("x~1")] = 0.25
    draws = marginal_latent_scores(rep, par[None, None], y, seed=2)
    np.testing.assert_allclose(
        draws[0, 0, :, rep.latents.index("x")], y[:, rep.items.index("x")] - 0.25, atol=1e-9
    )


# ---- posteriors (slow) ----------------------------------------------------------------------
@pytest.mark.slow
def test_covariance_input_gives_the_raw_data_posterior(reference):
    """HS CFA from the raw data (marginal likelihood, free intercepts) and from its covariance
    matrix + N. Integrating the intercepts out of the raw-data likelihood under their flat-ish
    normal(0,32) prior leaves exactly the Wishart likelihood the matrix path uses, so the two
    posteriors are the same distribution: the means may differ only by Monte Carlo error, about
    sd * sqrt(2 / ESS) ~ 0.04 sd at ESS ~ 1500; 0.15 sd is a 3.5-sigma bound (measured max
    0.08 sd)."""
    data = pd.read_csv(reference / "lavaan" / "holzinger_swineford_1939.csv")[HS_ITEMS]
    model = "visual =~ x1 + x2 + x3\ntextual =~ x4 + x5 + x6\nspeed =~ x7 + x8 + x9\n"
    pt_ = build_partable(model)
    _, raw = fit_posterior(pt_, data, chains=4, draws=1000, seed=11)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        summary = load_summary(HS_ITEMS, cov=data.cov(), nobs=len(data))
    _, matrix = fit_posterior(without_mean_structure(pt_), summary, chains=4, draws=1000, seed=12)
    free = matrix.index[matrix.free > 0]
    gap = (raw.loc[free, "mean"] - matrix.loc[free, "mean"]).abs() / raw.loc[free, "sd"]
    assert gap.max() < 0.15, gap.sort_values().tail()
    # posterior SDs too; an SD estimate of a skewed variance's posterior carries ~4 % Monte
    # Carlo error per fit (x1~~x1 measured 0.128 vs 0.139), so 15 % is ~3 sigma for two fits
    np.testing.assert_allclose(matrix.loc[free, "sd"], raw.loc[free, "sd"], rtol=0.15)


@pytest.mark.slow
@pytest.mark.correctness
def test_marginal_and_conditional_posteriors_agree():
    """One factor, 6 items, N = 300 (simulated). The conditional likelihood samples the 300
    latent scores, the marginal integrates them out: the same posterior. Means must agree within
    0.1 posterior SD; with ESS >= 1000 in both fits (measured: 3500 and 1700 at 4 x 2500 draws)
    the Monte Carlo error of the difference is <= 0.045 SD, ~0.03 SD typically, so 0.1 SD is a
    2-3 sigma bound for the worst of the 18 parameters (measured max gap 0.04 SD) that a wrong
    likelihood term would exceed."""
    rng = np.random.default_rng(7)
    eta = rng.normal(size=300)
    lam = np.array([0.9, 0.8, 0.7, 1.0, 0.6, 0.5])
    data = pd.DataFrame(
        3 + np.outer(eta, lam) + rng.normal(0, 0.7, (300, 6)),
        columns=[f"y{i}" for i in range(1, 7)],
    )
    pt_ = build_partable("F =~ " + " + ".join(data.columns))
    _, marginal = fit_posterior(pt_, data, likelihood="marginal", chains=4, draws=2500, seed=3)
    _, conditional = fit_posterior(
        pt_, data, likelihood="conditional", chains=4, draws=2500, seed=4
    )
    free = marginal.index[marginal.free > 0]
    assert min(marginal.loc[free, "ess_bulk"].min(), conditional.loc[free, "ess_bulk"].min()) > 1000
    gap = (marginal.loc[free, "mean"] - conditional.loc[free, "mean"]).abs()
    assert (gap / marginal.loc[free, "sd"]).max() < 0.1, gap / marginal.loc[free, "sd"]


# ---- the command line ---------------------------------------------------------------------
TWO_FACTOR = "F =~ y1 + y2 + y3\nG =~ z1 + z2 + z3\nG ~ F\n"


def _two_factor_files(tmp_path, n: int = 200):
    rng = np.random.default_rng(3)
    f = rng.normal(size=n)
    g = 0.5 * f + rng.normal(size=n)
    data = pd.DataFrame(
        {
            **{f"y{i}": f + rng.normal(0, 0.6, n) for i in (1, 2, 3)},
            **{f"z{i}": g + rng.normal(0, 0.6, n) for i in (1, 2, 3)},
        }
    )
    model = _write(tmp_path, "model.lav", TWO_FACTOR)
    data_path = tmp_path / "data.csv"
    data.to_csv(data_path, index=False)
    cov_path = tmp_path / "cov.csv"
    data.cov().to_csv(cov_path)
    return model, data_path, cov_path


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--cov", "{cov}"], "needs the sample size: give --nobs"),
        (["--cov", "{cov}", "--nobs", "200", "--data", "{data}"], "not both"),
        (["--cov", "{cov}", "--nobs", "200", "--save-latent"], "--save-latent needs the raw"),
        (["--cov", "{cov}", "--nobs", "5"], "--nobs 5 is not larger than the number of items"),
        ([], "give the data"),
    ],
)
def test_cli_refuses_bad_summary_input(tmp_path, capsys, extra, message):
    from bayes_sor.cli.main import main

    model, data, cov = _two_factor_files(tmp_path)
    args = [a.format(cov=cov, data=data) for a in extra]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code = main(["fit", str(model), "--out", str(tmp_path / "run"), *args])
    assert code == 2
    assert message in capsys.readouterr().err


@pytest.mark.slow
def test_cli_fits_a_covariance_matrix_and_saves_marginal_latent_scores(tmp_path):
    import xarray as xr

    from bayes_sor.cli.main import main

    model, data, cov = _two_factor_files(tmp_path)
    quick = [
        "--chains",
        "2",
        "--draws",
        "200",
        "--tune",
        "300",
        "--no-progress",
        "--allow-warnings",
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert (
            main(
                [
                    "fit",
                    str(model),
                    "--cov",
                    str(cov),
                    "--nobs",
                    "200",
                    "--out",
                    str(tmp_path / "cov_run"),
                    *quick,
                ]
            )
            == 0
        )
        assert (
            main(
                [
                    "fit",
                    str(model),
                    "--data",
                    str(data),
                    "--save-latent",
                    "--out",
                    str(tmp_path / "raw_run"),
                    *quick,
                ]
            )
            == 0
        )
    estimates = pd.read_csv(tmp_path / "cov_run" / "estimates.csv")
    assert not (estimates.op == "~1").any()  # no means, no intercepts
    assert estimates.query("lhs == 'G' and op == '~'")["mean"].iloc[0] > 0.2
    tree = xr.open_datatree(tmp_path / "cov_run" / "posterior.nc")
    assert tree.attrs["bayes_sor_n_obs"] == "200"
    assert "sample_cov" in tree["observed_data"].to_dataset()
    scores = xr.open_datatree(tmp_path / "raw_run" / "posterior.nc")["posterior"]["latent_scores"]
    assert scores.dims == ("chain", "draw", "obs", "latent") and scores.shape[2:] == (200, 2)
    # the scores track the data: F's mean score correlates with the mean of its items
    items = pd.read_csv(data)[["y1", "y2", "y3"]].mean(axis=1)
    mean_f = scores.sel(latent="F").mean(("chain", "draw")).values
    assert np.corrcoef(mean_f, items)[0, 1] > 0.95


# ---- multiple groups ------------------------------------------------------------------------
def test_multiple_group_likelihood_sums_each_groups_normal_density():
    """Each group's answers against its own moments: nu + Lambda alpha (the second group's
    free latent mean) and Sigma from its own rows, the second group with missing answers
    (case-wise). The potentials equal the row-wise normal log-density summed over groups.
    The shared intercepts are sampled as pooled means m = nu + sum_g w_g Lambda alpha_g (flat)
    with nu's normal(0,32) prior as a Potential."""
    data = pd.concat([_data(40, 1), _data(30, 2) + 0.5], ignore_index=True)
    data.iloc[45, 1] = data.iloc[50, 2] = np.nan
    groups = np.array(["a"] * 40 + ["b"] * 30)
    pt_ = with_groups(build_partable(ONE_FACTOR), ["a", "b"], ["loadings", "intercepts"])
    model = pymc_model(pt_, data, groups=groups).model
    names = [p.name for p in model.potentials]
    assert names == ["pooled_prior_normal", "loglik", "loglik_g2"]
    outputs = [model["par"], model["intercept_centred_params"], *model.potentials]
    par, pooled, prior, *logliks = value_function(model, outputs)(jittered_point(model, 3))
    loglik = sum(logliks)
    ext = np.append(par, 0)
    nu = ext[representation(pt_, 1).nu]
    np.testing.assert_array_equal(nu, ext[representation(pt_, 2).nu])
    shift = sum(
        w * ext[representation(pt_, g).lambda_] @ ext[representation(pt_, g).alpha]
        for g, w in ((1, 40 / 70), (2, 30 / 70))
    )
    np.testing.assert_allclose(nu, pooled - shift, rtol=1e-12)
    np.testing.assert_allclose(prior, stats.norm(0, 32).logpdf(nu).sum(), rtol=1e-12)
    expected = 0.0
    for g, label in enumerate(["a", "b"], start=1):
        rep = representation(pt_, g)
        moments = implied_moments(rep, par)
        mean = moments.nu + moments.lambda_ @ np.append(par, 0)[rep.alpha]
        for y in data[groups == label].to_numpy():
            seen = ~np.isnan(y)
            expected += stats.multivariate_normal(
                mean[seen], moments.item_cov[np.ix_(seen, seen)]
            ).logpdf(y[seen])
    assert abs(np.append(par, 0)[representation(pt_, 2).alpha[0]]) > 0.01  # a latent mean
    np.testing.assert_allclose(loglik, expected, rtol=1e-9)


def test_every_group_equal_kind_builds_a_model_with_a_finite_start():
    """Every kind of equality at once (regressions, residual covariances, latent variances,
    residual variances) gives a model whose starting point has a finite log-density and whose
    equal rows hold one value."""
    text = "F =~ y1 + y2\nG =~ y3 + y4\nG ~ F\ny1 ~~ y3\n"
    data = pd.concat([_data(40, 1), _data(30, 2) + 0.5], ignore_index=True)
    groups = np.array(["a"] * 40 + ["b"] * 30)
    kinds = ["loadings", "intercepts", "regressions", "residual.covariances", "lv.variances"]
    pt_ = with_groups(
        build_partable(text, identification="marker"), ["a", "b"], [*kinds, "residuals"]
    )
    model = pymc_model(pt_, data, groups=groups).model
    par, logp = model.compile_fn(
        [*model.replace_rvs_by_values([model["par"]]), model.logp()],
        inputs=model.value_vars,
        point_fn=True,
        on_unused_input="ignore",
    )(model.initial_point())
    assert np.isfinite(logp)
    t = pt_.parameters.reset_index(drop=True)
    later = t[(t.group == 2) & ~((t.op == "~1") & t.lhs.isin(["F", "G"]))]
    assert later.free.isin(t.free[t.group == 1]).all()  # all but the latent means are shared
    for f in t.free[t.free > 0].unique():
        assert np.ptp(par[(t.free == f).to_numpy()]) == 0, f


# ---- one matrix per group ---------------------------------------------------------------
def test_grouped_covariance_likelihood_is_the_sum_of_each_groups_wishart_density():
    """Each group's matrix against its own implied covariance: the model's log-likelihood
    differs between two parameter points by the sum of the groups' Wishart log-densities'
    difference (before: refused)."""
    a, b = grouped_answers(80, 0.8, 1), grouped_answers(60, 1.2, 2)
    data = load_group_summary(ITEMS, "g", cov=group_covariances(("a", a), ("b", b)), nobs=[80, 60])
    pt = without_mean_structure(with_groups(build_partable(ONE_FACTOR), ["a", "b"], ["loadings"]))
    model = pymc_model(pt, data).model
    fn = value_function(model, [model["par"], sum(model.potentials)])
    values = []
    for seed in (1, 2):
        par, loglik = fn(jittered_point(model, seed))
        wishart = sum(
            stats.wishart(
                df=len(y) - 1, scale=implied_moments(representation(pt, g), par).item_cov
            ).logpdf((len(y) - 1) * y.cov().to_numpy())
            for g, y in ((1, a), (2, b))
        )
        values.append((loglik, wishart))
    (l1, w1), (l2, w2) = values
    assert l1 - l2 == pytest.approx(w1 - w2, rel=1e-9)
    assert l1 != pytest.approx(l2)


def test_cli_refuses_one_n_for_two_groups(tmp_path, capsys):
    a, b = grouped_answers(80, 0.8, 1), grouped_answers(60, 1.2, 2)
    group_covariances(("a", a), ("b", b)).to_csv(tmp_path / "covs.csv", index=False)
    (tmp_path / "m.lav").write_text(ONE_FACTOR)
    args = ["fit", str(tmp_path / "m.lav"), "--cov", str(tmp_path / "covs.csv")]
    args += ["--group", "g", "--out", str(tmp_path / "run")]
    assert main([*args, "--nobs", "80"]) == 2
    assert "but --nobs gives 1 sample size(s)" in capsys.readouterr().err
    assert main([*args, "--nobs", "80,x"]) == 2
    assert "is not a sample size" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_a_two_group_covariance_fit_is_checked_per_group(tmp_path):
    """``fit --cov covs.csv --group g --nobs 300,300``, then ``ppc`` and ``reliability``
    per group from each group's matrix."""
    a, b = grouped_answers(300, 0.8, 1), grouped_answers(300, 1.2, 2)
    group_covariances(("a", a), ("b", b)).to_csv(tmp_path / "covs.csv", index=False)
    (tmp_path / "m.lav").write_text(ONE_FACTOR)
    out = tmp_path / "run"
    args = ["fit", str(tmp_path / "m.lav"), "--cov", str(tmp_path / "covs.csv")]
    args += ["--group", "g", "--nobs", "300,300", "--out", str(out), "--no-progress"]
    args += ["--chains", "2", "--draws", "200", "--tune", "300", "--allow-warnings"]
    assert main(args) == 0
    estimates = pd.read_csv(out / "estimates.csv")
    loadings = estimates[(estimates.op == "=~") & (estimates.rhs == "y1")]
    by_group = loadings.set_index("group")["mean"]
    assert by_group["b"] > by_group["a"]
    assert main(["ppc", str(out), "--draws", "100"]) == 0
    measures = pd.read_csv(out / "fit_measures.csv").set_index(["group", "measure"]).value
    assert measures["a", "ppp"] > 0.05
    assert measures["b", "ppp"] > 0.05
    assert main(["reliability", str(out)]) == 0
    table = pd.read_csv(out / "reliability.csv").set_index(["group", "measure", "construct"])
    assert table.loc[("b", "omega", "F"), "mean"] > table.loc[("a", "omega", "F"), "mean"]


def test_a_groups_own_intercepts_are_sampled_whitened_with_the_same_density():
    """A metric two-group model samples each group's own intercepts as m with
    nu = ybar_g + C_g (m - ybar_g), C_g C_g' = S_g / N_g (pairwise over the answered cells):
    at any point, the model's log density is the one of the model sampling nu directly at
    the same nu (the map's Jacobian, |C_1||C_2|, is a constant), so the posterior is the same
    (before: the intercepts were sampled directly, correlated as the answers)."""
    data = pd.concat([_data(40, 1), _data(30, 2) + 0.5], ignore_index=True)
    data.iloc[45, 1] = np.nan
    groups = np.array(["a"] * 40 + ["b"] * 30)
    pt_ = with_groups(build_partable(ONE_FACTOR), ["a", "b"], ["loadings"])
    whitened = pymc_model(pt_, data, groups=groups).model
    direct = pymc_model(pt_, data, groups=groups, centre_locations=False).model
    assert "whitened_prior_normal" in [p.name for p in whitened.potentials]
    assert "intercept_centred_params" not in direct.named_vars
    scales = [
        np.linalg.cholesky(data[groups == g].cov().to_numpy() / (groups == g).sum()) for g in "ab"
    ]
    par_of = value_function(whitened, [whitened["par"], whitened.logp()])
    logp_direct = direct.compile_fn(direct.logp(), point_fn=True)
    names = list(whitened.coords["param"])
    for seed in (1, 2):
        point = jittered_point(whitened, seed)
        par, logp = par_of(point)
        sampled = whitened.coords["intercept_centred_params_dim"]
        m = dict(zip(sampled, point["intercept_centred_params"], strict=True))
        for g, label in enumerate("ab"):
            items = [n for n in m if n.endswith("~1" if g == 0 else "~1.g2")]
            assert len(items) == 4, list(m)
            ybar = data[groups == label].mean().to_numpy()
            expected = ybar + scales[g] @ (np.array([m[n] for n in items]) - ybar)
            np.testing.assert_allclose(par[[names.index(n) for n in items]], expected, rtol=1e-12)
        moved = {k: point[k] for k in direct.initial_point() if k != "normal_params"}
        moved["normal_params"] = par[[names.index(n) for n in direct.coords["normal_params_dim"]]]
        assert logp == pytest.approx(logp_direct(moved), rel=1e-12)


@pytest.mark.slow
def test_two_group_study_a_passes_the_gate_at_the_default_adaptation(root):
    """Study A without its interaction, by gender with equal loadings (203 sampled
    coordinates), 4 x 1000 draws at the default adaptation: R-hat <= 1.01, bulk and tail ESS
    >= 1000 (the gate's 400 with room), no divergences (before: the diagonal mass matrix and
    directly sampled intercepts, R-hat 1.011 in the first group's intercepts, bulk ESS 570)."""
    result = fit(
        root / "benchmarks" / "study_a_marginal.lav",
        root / "data" / "impulse_buying.csv",
        settings=SamplerSettings(draws=1000, progressbar=False),
        group="gender",
        group_equal="loadings",
    )
    diagnostics = result.diagnostics
    assert diagnostics.max_r_hat <= 1.01
    assert min(diagnostics.min_ess_bulk, diagnostics.min_ess_tail) >= 1000
    assert diagnostics.divergences == 0


def test_approximately_equal_intercepts_are_not_whitened():
    """Intercepts drawn around a common value (approximate invariance) keep that sampling;
    only the others of a group's own are whitened, each sampled once (before the rule: both,
    the same intercept placed twice)."""
    data = pd.concat([_data(40, 1), _data(30, 2) + 0.5], ignore_index=True)
    groups = np.array(["a"] * 40 + ["b"] * 30)
    text = "---\napproximate: {intercepts: 0.1}\n---\n" + ONE_FACTOR
    pt_ = with_groups(build_partable(text), ["a", "b"], ["loadings"])
    assert own_intercepts(pt_) == []
    model = pymc_model(pt_, data, groups=groups).model
    assert "intercept_centred_params" not in model.named_vars
    assert np.isfinite(model.compile_logp()(model.initial_point()))
