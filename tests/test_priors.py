"""Prior text: parsing, the sign-constrained first loading, and widening (``--prior-scale``)."""

import numpy as np
import pytest
from scipy import stats

from bayes_sor.errors import ModelSpecError
from bayes_sor.priors import parse_prior, positive_version, widen


@pytest.mark.parametrize(("text", "factor", "widened"), [
    ("normal(0,10)", 2, "normal(0,20)"),
    ("halfnormal(10)", 2, "halfnormal(20)"),
    ("student_t(3,0,2.5)", 2, "student_t(3,0,5)"),
    ("gamma(1,0.5)[sd]", 2, "gamma(1,0.25)[sd]"),
    ("exponential(1)", 4, "exponential(0.25)"),
    ("beta(3,5)", 2, "beta(2,3)"),
    ("beta(1,1)", 2, "beta(1,1)"),
    ("lkj(2)", 2, "lkj(1.5)"),
    ("lkj(1)", 3, "lkj(1)"),
    ("uniform(-1,1)", 2, "uniform(-1,1)"),
    ("normal(0,10)", 0.5, "normal(0,5)"),
])
def test_widen_multiplies_the_scale(text, factor, widened):
    assert widen(text, factor) == widened


@pytest.mark.parametrize(("text", "dist"), [
    ("gamma(2,0.5)", lambda a: stats.gamma(a[0], scale=1 / a[1])),
    ("lognormal(0.3,0.8)", lambda a: stats.lognorm(a[1], scale=np.exp(a[0]))),
    ("exponential(2)", lambda a: stats.expon(scale=1 / a[0])),
])
def test_widened_positive_priors_are_the_same_law_of_the_scaled_variable(text, dist):
    """Widening by K must give the law of K * X, for every family with a scale."""
    base, wide = parse_prior(text), parse_prior(widen(text, 3))
    quantiles = [0.05, 0.5, 0.95]
    np.testing.assert_allclose(dist(wide.args).ppf(quantiles), 3 * dist(base.args).ppf(quantiles),
                               rtol=1e-5)


def test_widen_refuses_a_non_positive_factor():
    with pytest.raises(ModelSpecError, match="positive"):
        widen("normal(0,1)", 0)


def test_positive_version_of_a_centred_normal():
    assert positive_version("normal(0,10)") == "halfnormal(10)"
    with pytest.raises(ModelSpecError, match="centred at 0"):
        positive_version("normal(1,10)")
