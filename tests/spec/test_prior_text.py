"""Prior text: parsing, the sign-constrained first loading, widening (``--prior-scale``) and
prior files (``sbc --priors FILE``)."""

import numpy as np
import pytest
from scipy import stats

from bayes_sor.errors import ModelSpecError
from bayes_sor.spec.partable import read_prior_file
from bayes_sor.spec.prior_text import parse_prior, positive_version, widen


@pytest.mark.parametrize(
    ("text", "factor", "widened"),
    [
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
    ],
)
def test_widen_multiplies_the_scale(text, factor, widened):
    assert widen(text, factor) == widened


@pytest.mark.parametrize(
    ("text", "dist"),
    [
        ("gamma(2,0.5)", lambda a: stats.gamma(a[0], scale=1 / a[1])),
        ("lognormal(0.3,0.8)", lambda a: stats.lognorm(a[1], scale=np.exp(a[0]))),
        ("exponential(2)", lambda a: stats.expon(scale=1 / a[0])),
    ],
)
def test_widened_positive_priors_are_the_same_law_of_the_scaled_variable(text, dist):
    """Widening by K must give the law of K * X, for every family with a scale."""
    base, wide = parse_prior(text), parse_prior(widen(text, 3))
    quantiles = [0.05, 0.5, 0.95]
    np.testing.assert_allclose(
        dist(wide.args).ppf(quantiles), 3 * dist(base.args).ppf(quantiles), rtol=1e-5
    )


def test_widen_refuses_a_non_positive_factor():
    with pytest.raises(ModelSpecError, match="positive"):
        widen("normal(0,1)", 0)


def test_positive_version_of_a_centred_normal():
    assert positive_version("normal(0,10)") == "halfnormal(10)"
    with pytest.raises(ModelSpecError, match="centred at 0"):
        positive_version("normal(1,10)")


def test_prior_file_holds_the_header_option(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text('# why\npriors: {loadings: "gamma(5,5)", variances: "gamma(10,16)[sd]"}\n')
    assert read_prior_file(path) == {"loadings": "gamma(5,5)", "variances": "gamma(10,16)[sd]"}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            'priors: {loading: "gamma(5,5)"}',
            r"unknown parameter kind\(s\) \['loading'\].*'loadings'",
        ),
        ('priors: {loadings: "gama(5,5)"}', r"cannot read the prior 'gama\(5,5\)' for loadings in"),
        ('loadings: "gamma(5,5)"', "must hold one key, 'priors'"),
        ("priors: normal(0,1)", "must hold one key, 'priors'"),
        ("priors: {loadings: [", "is not valid YAML"),
    ],
)
def test_bad_prior_file_is_one_clear_error(tmp_path, content, message):
    path = tmp_path / "p.yaml"
    path.write_text(content)
    with pytest.raises(ModelSpecError, match=message):
        read_prior_file(path)


def test_missing_prior_file_names_the_path(tmp_path):
    with pytest.raises(ModelSpecError, match=r"nope\.yaml' cannot be read"):
        read_prior_file(tmp_path / "nope.yaml")
