"""The PyMC model's log-density against independent scipy computations."""

import numpy as np
import pandas as pd
import pytest
from model_points import jittered_point, value_function
from scipy import stats

from bayes_sor.errors import ModelSpecError
from bayes_sor.model.build import choose_likelihood, pymc_model
from bayes_sor.model.latent import raw_latent_names, reflect
from bayes_sor.spec.matrices import extend, representation
from bayes_sor.spec.partable import build_partable

ONE_FACTOR = "F =~ y1 + y2 + y3 + y4"


def _data(n: int = 50, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    f = rng.normal(size=n)
    return pd.DataFrame({f"y{i}": 2 + 0.8 * f + rng.normal(0, 0.6, n) for i in range(1, 5)})


def _evaluate(model, outputs):
    """Values of ``outputs`` at the model's initial point jittered by a fixed seed."""
    return value_function(model, outputs)(jittered_point(model, 1))


def test_marginal_loglik_equals_scipy_multivariate_normal():
    pt = build_partable(ONE_FACTOR)
    data = _data()
    built = pymc_model(pt, data, likelihood="marginal")
    model = built.model
    par, loglik = _evaluate(model, [model["par"], model.potentials[0]])
    names = pt.names
    lam = np.array([par[names.index(f"F=~y{i}")] for i in range(1, 5)])
    theta = np.array([par[names.index(f"y{i}~~y{i}")] for i in range(1, 5)])
    nu = np.array([par[names.index(f"y{i}~1")] for i in range(1, 5)])
    sigma = np.outer(lam, lam) + np.diag(theta)
    expected = stats.multivariate_normal(nu, sigma).logpdf(data.to_numpy()).sum()
    assert loglik == pytest.approx(expected, rel=1e-9)


MEDIATION = """
X =~ x1 + x2 + x3
M =~ m1 + m2 + m3
Y =~ y1 + y2 + y3
M ~ X
Y ~ M + X
"""


def test_marginal_loglik_of_a_mediation_model_equals_scipy_with_an_explicit_inverse():
    # (I - B)^-1 is a Neumann series in the model: check it against numpy's inverse
    pt = build_partable(MEDIATION)
    rng = np.random.default_rng(2)
    data = pd.DataFrame(rng.normal(size=(40, 9)), columns=pt.indicators)
    model = pymc_model(pt, data, likelihood="marginal").model
    par, loglik = _evaluate(model, [model["par"], model.potentials[0]])
    rep = representation(pt)
    ext = extend(par)
    inv = np.linalg.inv(np.eye(3) - ext[rep.beta])
    sigma = ext[rep.lambda_] @ inv @ ext[rep.psi] @ inv.T @ ext[rep.lambda_].T + ext[rep.theta]
    expected = stats.multivariate_normal(ext[rep.nu], sigma).logpdf(data.to_numpy()).sum()
    beta = ext[rep.beta]
    assert abs((beta @ beta)[2, 0]) > 0.01  # the two-step path X -> M -> Y is in play
    assert loglik == pytest.approx(expected, rel=1e-9)


def test_conditional_item_logp_equals_scipy_normal_given_latent_scores():
    pt = build_partable(ONE_FACTOR)
    data = _data(n=20)
    model = pymc_model(pt, data, likelihood="conditional", latent_scores="non-centred").model
    items = model.observed_RVs[0]
    par, z, logp = _evaluate(model, [model["par"], model["latent_z"], model.logp(vars=[items])])
    z = reflect(z)  # the deviates are sampled reflected
    names = pt.names
    lam = np.array([par[names.index(f"F=~y{i}")] for i in range(1, 5)])
    sd = np.sqrt([par[names.index(f"y{i}~~y{i}")] for i in range(1, 5)])
    nu = np.array([par[names.index(f"y{i}~1")] for i in range(1, 5)])
    mu = nu + np.outer(z[:, 0], lam)
    assert logp == pytest.approx(stats.norm(mu, sd).logpdf(data.to_numpy()).sum(), rel=1e-9)


def test_centred_intercepts_are_an_exact_reparameterisation():
    """Sampling m = nu + lambda' mean(eta) instead of nu (Jacobian 1, nu's prior as a
    Potential) must give the same joint density at corresponding points."""
    pt = build_partable(ONE_FACTOR)
    data = _data(n=20)
    centred = pymc_model(pt, data, likelihood="conditional").model
    direct = pymc_model(pt, data, likelihood="conditional", centre_locations=False).model
    assert "intercept_centred_params" in centred.named_vars
    assert "intercept_centred_params" not in direct.named_vars
    point = jittered_point(centred, 2)
    (par,) = value_function(centred, [centred["par"]])(point)
    logp = centred.compile_logp()(point)
    nu = [par[pt.names.index(f"y{i}~1")] for i in range(1, 5)]
    moved = {k: v for k, v in point.items() if k != "intercept_centred_params"}
    members = list(direct.coords["normal_params_dim"])
    kept = list(centred.coords["normal_params_dim"])
    moved["normal_params"] = np.array(
        [
            nu[int(m[1]) - 1] if m.endswith("~1") else point["normal_params"][kept.index(m)]
            for m in members
        ]
    )
    assert direct.compile_logp()(moved) == pytest.approx(logp, rel=1e-10)
    assert not np.allclose(nu, point["intercept_centred_params"])  # the shift is not zero


def test_structural_latent_scores_follow_the_regression_and_interaction():
    model_text = """
    X =~ x1 + x2 + x3
    W =~ w1 + w2 + w3
    Y =~ y1 + y2 + y3
    Y ~ X + W + X:W
    """
    pt = build_partable(model_text)
    rng = np.random.default_rng(3)
    data = pd.DataFrame(rng.normal(size=(15, 9)), columns=pt.indicators)
    model = pymc_model(pt, data, "conditional", latent_scores="non-centred").model
    items = model.observed_RVs[0]
    par, z, logp = _evaluate(model, [model["par"], model["latent_z"], model.logp(vars=[items])])
    z = reflect(z)
    names = pt.names
    cor = par[names.index("X~~W")]
    x = z[:, 0]
    w = cor * z[:, 0] + np.sqrt(1 - cor**2) * z[:, 1]
    y = (
        par[names.index("Y~X")] * x
        + par[names.index("Y~W")] * w
        + par[names.index("Y~X:W")] * x * w
        + z[:, 2]
    )
    eta = np.column_stack([x, w, y])
    lam = np.zeros((9, 3))
    for k, item in enumerate(pt.indicators):
        lam[k, k // 3] = par[names.index(f"{'XWY'[k // 3]}=~{item}")]
    nu = np.array([par[names.index(f"{i}~1")] for i in pt.indicators])
    sd = np.sqrt([par[names.index(f"{i}~~{i}")] for i in pt.indicators])
    expected = stats.norm(nu + eta @ lam.T, sd).logpdf(data.to_numpy()).sum()
    assert logp == pytest.approx(expected, rel=1e-9)


def test_auto_likelihood_picks_marginal_only_when_valid():
    """The other cases of ``auto``: tests/model/test_quadrature.py."""
    assert choose_likelihood(build_partable(ONE_FACTOR)) == "marginal"
    moderated = build_partable("X =~ a1+a2+a3\nW =~ b1+b2+b3\nY =~ c1+c2+c3\nY ~ X + W + X:W")
    assert choose_likelihood(moderated) == "quadrature"
    assert choose_likelihood(moderated, "conditional") == "conditional"
    with pytest.raises(ModelSpecError, match="latent interaction"):
        choose_likelihood(moderated, "marginal")


def test_starting_values_put_every_loading_on_the_positive_side():
    pt = build_partable(ONE_FACTOR)
    built = pymc_model(pt, _data())
    starts = {**built.initial_values}
    assert (starts["halfnormal_params"] > 0).all()
    assert (starts["normal_params"][:3] > 0).all()


def test_cross_loadings_with_small_variance_priors_start_at_zero():
    two = "---\ncross_loadings: normal(0,0.1)\n---\nF =~ y1 + y2\nG =~ y3 + y4\n"
    built = pymc_model(build_partable(two), _data())
    dim = built.model.named_vars_to_dims["normal_params"][0]
    starts = dict(zip(built.model.coords[dim], built.initial_values["normal_params"], strict=True))
    assert {n: v for n, v in starts.items() if n in ("F=~y3", "F=~y4", "G=~y1", "G=~y2")} == {
        "F=~y3": 0.0,
        "F=~y4": 0.0,
        "G=~y1": 0.0,
        "G=~y2": 0.0,
    }
    assert starts["F=~y2"] > 0.3


def test_small_variance_residual_correlations_have_a_finite_density_at_the_start():
    # normal(0,0.1) stands for beta(49.5,49.5) on (rho + 1) / 2: read as beta(0, 0.1) the
    # density would be undefined
    text = "---\nresidual_covariances: normal(0,0.1)\ncross_loadings: normal(0,0.1)\n---\n"
    built = pymc_model(build_partable(text + "F =~ y1 + y2\nG =~ y3 + y4\n"), _data())
    model = built.model
    assert model.named_vars["residual_cor_raw"].eval().shape == (6,)

    assert np.isfinite(model.point_logps()["residual_cor_raw"])


# ---- observed variables in the structural model -----------------------------------------
PROCESS_14 = """
negtone ~ a*dysfunc
perform ~ cp*dysfunc + b*negtone + negexp + d*negtone:negexp
"""


def _observed(n: int = 25, seed: int = 2) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        rng.normal(size=(n, 4)), columns=["dysfunc", "negtone", "negexp", "perform"]
    )


def _value(pt, par, name):
    return par[pt.names.index(name)]


def test_observed_structural_variables_are_data_with_regression_likelihoods():
    pt = build_partable(PROCESS_14)
    data = _observed()
    model = pymc_model(pt, data).model
    assert "latent_z" not in model.named_vars  # nothing latent to sample
    observed = [model["exogenous_observed"], model["observed_outcomes"]]
    par, logp = _evaluate(model, [model["par"], model.logp(vars=observed)])
    v = {name: _value(pt, par, name) for name in pt.names}
    centred = {c: data[c].to_numpy() - v[f"{c}~1"] for c in data}
    cov = [
        [v["dysfunc~~dysfunc"], v["dysfunc~~negexp"]],
        [v["dysfunc~~negexp"], v["negexp~~negexp"]],
    ]
    expected = (
        stats.multivariate_normal(np.zeros(2), cov)
        .logpdf(np.column_stack([centred["dysfunc"], centred["negexp"]]))
        .sum()
    )
    m_mean = v["negtone~dysfunc"] * centred["dysfunc"]
    expected += stats.norm(m_mean, np.sqrt(v["negtone~~negtone"])).logpdf(centred["negtone"]).sum()
    y_mean = (
        v["perform~dysfunc"] * centred["dysfunc"]
        + v["perform~negtone"] * centred["negtone"]
        + v["perform~negexp"] * centred["negexp"]
        + v["perform~negtone:negexp"] * centred["negtone"] * centred["negexp"]
    )
    expected += stats.norm(y_mean, np.sqrt(v["perform~~perform"])).logpdf(centred["perform"]).sum()
    assert logp == pytest.approx(expected, rel=1e-9)


def test_observed_variables_without_interaction_use_the_marginal_likelihood():
    pt = build_partable("m ~ a*x\ny ~ b*m + x\n")
    assert pt.observed_structural == ["m", "x", "y"]
    assert pt.table.query("op == '=~'").value.eq(1.0).all()
    data = _observed().rename(columns={"dysfunc": "x", "negtone": "m", "perform": "y"})
    built = pymc_model(pt, data)
    assert built.likelihood == "marginal"
    par, loglik = _evaluate(built.model, [built.model["par"], built.model.potentials[0]])
    from bayes_sor.spec.matrices import implied_moments

    mom = implied_moments(built.representation, par)
    y = data[built.representation.items].to_numpy()
    expected = stats.multivariate_normal(mom.nu, mom.item_cov).logpdf(y).sum()
    assert loglik == pytest.approx(expected, rel=1e-9)


def test_latent_exogenous_scores_are_drawn_given_observed_exogenous_ones():
    pt = build_partable("F =~ f1 + f2 + f3\nY =~ y1 + y2 + y3\nY ~ F + x\n")
    rng = np.random.default_rng(5)
    data = pd.DataFrame(rng.normal(size=(12, 7)), columns=pt.indicators)
    model = pymc_model(
        pt, data, likelihood="conditional", save_latent=True, latent_scores="non-centred"
    ).model
    assert list(model.coords["noncentred_latent"]) == ["F", "Y"]
    par, z, eta = _evaluate(model, [model["par"], model["latent_z"], model["latent_scores"]])
    z = reflect(z)
    v = {name: _value(pt, par, name) for name in pt.names}
    x = data["x"].to_numpy() - v["x~1"]
    cov = np.array([[v["x~~x"], v["F~~x"]], [v["F~~x"], v["F~~F"]]])
    chol = np.linalg.cholesky(cov)  # ordered (observed x, latent F)
    f = chol[1, 0] * x / chol[0, 0] + chol[1, 1] * z[:, 0]
    np.testing.assert_allclose(eta[:, pt.latents.index("F")], f, rtol=1e-9)
    np.testing.assert_allclose(eta[:, pt.latents.index("x")], x, rtol=1e-9)
    y = v["Y~F"] * f + v["Y~x"] * x + np.sqrt(v["Y~~Y"]) * z[:, 1]
    np.testing.assert_allclose(eta[:, pt.latents.index("Y")], y, rtol=1e-9)


def test_prior_only_model_has_no_likelihood():
    built = pymc_model(build_partable(ONE_FACTOR), None)
    assert not built.model.observed_RVs and not built.model.potentials


# ---- centred and non-centred latent scores: one posterior in other coordinates -------------
MIXED = """
F =~ f1 + f2 + f3
G =~ g1 + g2 + g3
Y =~ y1 + y2 + y3
Y ~ F + G + x + F:G
"""


def _raw_latents(model) -> list:
    return [model[name] for name in raw_latent_names(model)]


def _joint_density(model, point: dict) -> tuple[float, np.ndarray]:
    """log p(par, eta, y) at ``point``: the model's log density (over its raw latent
    variables) minus log |d eta / d raw|, the Jacobian from them to the latent scores (finite
    differences); and the scores eta of the sampled latents (obs x latent)."""
    sampled = [f for f in model.coords["latent"] if f != "x"]
    cols = [list(model.coords["latent"]).index(f) for f in sampled]
    eta_fn = model.compile_fn(
        model.replace_rvs_by_values([model["latent_scores"]])[0],
        inputs=model.value_vars,
        on_unused_input="ignore",
    )
    raw = [v.name for v in model.value_vars if v.name in {r.name for r in _raw_latents(model)}]
    columns = []
    for name in raw:
        for k in np.ndindex(np.shape(point[name])):
            up, down = dict(point), dict(point)
            up[name], down[name] = point[name].copy(), point[name].copy()
            up[name][k] += 1e-6
            down[name][k] -= 1e-6
            # copies: a compiled function may hand back the same output buffer on each call
            rise, fall = eta_fn(up).copy(), eta_fn(down).copy()
            columns.append(((rise - fall)[:, cols] / 2e-6).ravel())
    jacobian = np.column_stack(columns)
    return (model.compile_logp()(point) - np.linalg.slogdet(jacobian)[1], eta_fn(point)[:, cols])


@pytest.mark.parametrize("other", ["non-centred", ["F", "Y"], ["G"]])
def test_every_latent_score_parameterisation_has_the_same_joint_density(other):
    """Centred, non-centred and mixed latent scores (observed exogenous x, then centred, then
    non-centred exogenous latents; centred or not endogenous ones) are the same model of
    (par, eta): the log density less the log Jacobian to eta agrees at the same point."""
    pt = build_partable(MIXED)
    rng = np.random.default_rng(6)
    data = pd.DataFrame(rng.normal(size=(8, 10)), columns=pt.indicators)
    model = pymc_model(pt, data, save_latent=True, latent_scores=other).model
    centred = pymc_model(pt, data, save_latent=True, latent_scores="centred").model
    assert set(raw_latent_names(centred)) == {"latent_exogenous", "latent_eta_Y"}
    point = jittered_point(model, 7)
    density, eta = _joint_density(model, point)
    same = {k: v for k, v in point.items() if k in centred.initial_point()}
    same["latent_exogenous"] = reflect(eta[:, :2])  # F, G, sampled reflected
    same["latent_eta_Y"] = reflect(eta[:, 2])
    assert set(same) == set(centred.initial_point())
    centred_density, centred_eta = _joint_density(centred, same)
    np.testing.assert_allclose(centred_eta, eta, rtol=1e-12)
    assert centred_density == pytest.approx(density, rel=1e-8)


def test_centred_latent_scores_have_the_structural_model_as_their_prior():
    """Against scipy: exogenous scores MvNormal given the observed exogenous variable, the
    endogenous scores Normal around their predictor with the latent product."""
    pt = build_partable(MIXED)
    rng = np.random.default_rng(7)
    data = pd.DataFrame(rng.normal(size=(9, 10)), columns=pt.indicators)
    model = pymc_model(pt, data, latent_scores="centred").model
    latent = [model["latent_exogenous"], model["latent_eta_Y"]]
    par, exo, y_eta, logp = _evaluate(model, [model["par"], *latent, model.logp(vars=latent)])
    exo, y_eta = reflect(exo), reflect(y_eta)  # the scores; H is orthogonal: the same density
    v = {name: _value(pt, par, name) for name in pt.names}
    order = ["x", "F", "G"]
    cov = np.array([[v.get(f"{a}~~{b}", v.get(f"{b}~~{a}")) for b in order] for a in order])
    x = data["x"].to_numpy() - v["x~1"]
    expected = 0.0
    for i in range(len(data)):  # (F, G) | x from the joint normal of (x, F, G)
        mean = cov[1:, :1] @ [x[i]] / cov[0, 0]
        cond = cov[1:, 1:] - cov[1:, :1] @ cov[:1, 1:] / cov[0, 0]
        expected += stats.multivariate_normal(mean, cond).logpdf(exo[i])
    f, g = exo[:, 0], exo[:, 1]
    mean_y = v["Y~F"] * f + v["Y~G"] * g + v["Y~x"] * x + v["Y~F:G"] * f * g
    expected += stats.norm(mean_y, np.sqrt(v["Y~~Y"])).logpdf(y_eta).sum()
    assert logp == pytest.approx(expected, rel=1e-9)


def test_centred_scores_start_at_the_item_scores_in_the_latent_units():
    pt = build_partable(MIXED)
    data = _data(n=30).rename(columns={"y1": "f1", "y2": "f2", "y3": "f3", "y4": "x"})
    rng = np.random.default_rng(8)
    for item in ["g1", "g2", "g3", "y1", "y2", "y3"]:
        data[item] = data["f1"] + rng.normal(0, 0.5, 30)
    built = pymc_model(pt, data, latent_scores="centred")
    start = dict(built.initial_values)
    for name in ("latent_exogenous", "latent_eta_Y"):  # sampled reflected
        start[name] = reflect(start[name])
    assert np.shape(start["latent_exogenous"]) == (30, 2)
    assert np.shape(start["latent_eta_Y"]) == (30,)
    score = data[["f1", "f2", "f3"]].apply(lambda c: (c - c.mean()) / c.std(ddof=0)).mean(axis=1)
    # std.lv: unit latent variances, so the starting scores are standardised item scores
    assert np.corrcoef(start["latent_exogenous"][:, 0], score)[0, 1] > 0.95
    assert start["latent_exogenous"][:, 0].std() == pytest.approx(0.8, abs=0.05)
    marker = pymc_model(
        build_partable(MIXED, identification="marker"), data, latent_scores="centred"
    ).initial_values
    marker["latent_exogenous"] = reflect(marker["latent_exogenous"])
    sd = np.sqrt(0.5 * data["f1"].var(ddof=0))  # the marker item's starting latent variance
    assert marker["latent_exogenous"][:, 0].std() == pytest.approx(0.8 * sd, rel=0.1)
