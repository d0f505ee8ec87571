"""The parameter vector (model/parameters.py): approximately equal parameters of a
multiple-group model drawn around their common value; priors on residual correlations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from model_points import value_function
from scipy import stats

from bayes_sor.errors import ModelSpecError
from bayes_sor.model.build import pymc_model
from bayes_sor.spec.groups import with_groups
from bayes_sor.spec.partable import build_partable

TEXT = "---\napproximate: {loadings: 0.05, intercepts: 0.1}\n---\nF =~ y1 + y2 + y3\n"


def test_group_values_are_the_common_value_plus_centred_deviations():
    """In group g a parameter is mu + z_g - mean(z), z_g ~ Normal(0, s): the groups' mean of
    the parameter is mu, the deviations sum to 0, and z has the option's prior SD."""
    pt = with_groups(build_partable(TEXT), ["a", "b", "c"])
    model = pymc_model(pt, None).model
    assert model.coords["approximate_group"] == ("a", "b", "c")
    point = model.initial_point()
    rng = np.random.default_rng(1)
    z = rng.normal(0.0, 0.1, (3, 6))
    point["approximate_deviations_raw"] = z
    common = np.r_[point["halfnormal_common_params_log__"], point["normal_common_params"]]
    (par,) = value_function(model, [model["par"]])(point)
    names = list(model.coords["param"])
    mu = np.exp(common[0])  # the first loading's common value is positive (std.lv)
    for g, suffix in enumerate(["", ".g2", ".g3"]):
        assert par[names.index("F=~y1" + suffix)] == pytest.approx(mu + z[g, 0] - z[:, 0].mean())
        assert par[names.index("y3~1" + suffix)] == pytest.approx(
            common[-1] + z[g, 5] - z[:, 5].mean()
        )
    logp = model.compile_logp(vars=[model["approximate_deviations_raw"]])(point)
    sd = np.r_[[0.05] * 3, [0.1] * 3]
    assert logp == pytest.approx(stats.norm(0, sd).logpdf(z).sum())


def _items(n: int = 60, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    f = rng.normal(size=n)
    return pd.DataFrame({f"y{i}": 0.8 * f + rng.normal(0, 0.6, n) for i in range(1, 5)})


def test_a_normal_prior_on_a_residual_covariance_is_on_the_correlation():
    """``prior("normal(0,0.1)")*y2`` on ``~~`` is a normal on the residual correlation (it was
    read as beta(0, 0.1): log density -inf), and the covariance is rho times the two SDs."""
    text = 'F =~ y1 + y2 + y3 + y4\ny1 ~~ prior("normal(0,0.1)")*y2\ny3 ~~ y4\n'
    model = pymc_model(build_partable(text), _items()).model
    point = model.initial_point()
    point["residual_cor_normal_interval__"] = np.array([0.3])
    rho = -1 + 2 / (1 + np.exp(-0.3))  # the interval transform's inverse
    logp = model.compile_logp(vars=[model["residual_cor_normal"]], jacobian=False)(point)
    mass = stats.norm(0, 0.1).cdf(1) - stats.norm(0, 0.1).cdf(-1)
    assert logp == pytest.approx(stats.norm(0, 0.1).logpdf(rho) - np.log(mass))
    assert model["residual_cor_raw"].eval().shape == (1,)  # y3 ~~ y4 keeps its beta(1,1)
    (par,) = value_function(model, [model["par"]])(point)
    names = list(model.coords["param"])
    sd = np.sqrt(par[names.index("y1~~y1")] * par[names.index("y2~~y2")])
    assert par[names.index("y1~~y2")] == pytest.approx(rho * sd)


def test_a_residual_covariance_prior_of_another_family_is_refused():
    text = 'F =~ y1 + y2 + y3 + y4\ny1 ~~ prior("gamma(1,1)")*y2\n'
    with pytest.raises(ModelSpecError, match=r"sampled as a correlation.*normal"):
        pymc_model(build_partable(text), _items())
