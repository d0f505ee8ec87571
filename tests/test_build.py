"""The PyMC model's log-density against independent scipy computations."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from bayes_sor.build import choose_likelihood, pymc_model
from bayes_sor.errors import ModelSpecError
from bayes_sor.partable import build_partable

ONE_FACTOR = "F =~ y1 + y2 + y3 + y4"


def _data(n: int = 50, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    f = rng.normal(size=n)
    return pd.DataFrame({f"y{i}": 2 + 0.8 * f + rng.normal(0, 0.6, n) for i in range(1, 5)})


def _evaluate(model, outputs):
    """Values of ``outputs`` at the model's initial point jittered by a fixed seed."""
    rng = np.random.default_rng(1)
    point = {k: v + rng.uniform(-0.3, 0.3, np.shape(v))
             for k, v in model.initial_point().items()}
    outputs = model.replace_rvs_by_values(outputs)
    fn = model.compile_fn(outputs, inputs=model.value_vars, point_fn=True,
                          on_unused_input="ignore")
    return fn(point)


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


def test_conditional_item_logp_equals_scipy_normal_given_latent_scores():
    pt = build_partable(ONE_FACTOR)
    data = _data(n=20)
    model = pymc_model(pt, data, likelihood="conditional").model
    items = model.observed_RVs[0]
    par, z, logp = _evaluate(model, [model["par"], model["latent_z"], model.logp(vars=[items])])
    names = pt.names
    lam = np.array([par[names.index(f"F=~y{i}")] for i in range(1, 5)])
    sd = np.sqrt([par[names.index(f"y{i}~~y{i}")] for i in range(1, 5)])
    nu = np.array([par[names.index(f"y{i}~1")] for i in range(1, 5)])
    mu = nu + np.outer(z[:, 0], lam)
    assert logp == pytest.approx(stats.norm(mu, sd).logpdf(data.to_numpy()).sum(), rel=1e-9)


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
    model = pymc_model(pt, data).model
    items = model.observed_RVs[0]
    par, z, logp = _evaluate(model, [model["par"], model["latent_z"], model.logp(vars=[items])])
    names = pt.names
    cor = par[names.index("X~~W")]
    x = z[:, 0]
    w = cor * z[:, 0] + np.sqrt(1 - cor**2) * z[:, 1]
    y = (par[names.index("Y~X")] * x + par[names.index("Y~W")] * w
         + par[names.index("Y~X:W")] * x * w + z[:, 2])
    eta = np.column_stack([x, w, y])
    lam = np.zeros((9, 3))
    for k, item in enumerate(pt.indicators):
        lam[k, k // 3] = par[names.index(f"{'XWY'[k // 3]}=~{item}")]
    nu = np.array([par[names.index(f"{i}~1")] for i in pt.indicators])
    sd = np.sqrt([par[names.index(f"{i}~~{i}")] for i in pt.indicators])
    expected = stats.norm(nu + eta @ lam.T, sd).logpdf(data.to_numpy()).sum()
    assert logp == pytest.approx(expected, rel=1e-9)


def test_auto_likelihood_picks_marginal_only_when_valid():
    assert choose_likelihood(build_partable(ONE_FACTOR)) == "marginal"
    moderated = build_partable("X =~ a1+a2+a3\nW =~ b1+b2+b3\nY =~ c1+c2+c3\nY ~ X + W + X:W")
    assert choose_likelihood(moderated) == "conditional"
    with pytest.raises(ModelSpecError, match="latent interaction"):
        choose_likelihood(moderated, "marginal")


def test_starting_values_put_every_loading_on_the_positive_side():
    pt = build_partable(ONE_FACTOR)
    built = pymc_model(pt, _data())
    starts = {**built.initial_values}
    assert (starts["halfnormal_params"] > 0).all()
    assert (starts["normal_params"][:3] > 0).all()
