"""The invariance ladder's pieces (checks/invariance.py): log-likelihood per group, the
chi-square discrepancy and its PPP, the verdict; the ladder itself on HS is in
tests/correctness/test_agreement_groups.py (slow)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from bayes_sor.checks.invariance import (
    GroupData,
    _discrepancy,
    pointwise_loglik,
    ppp,
    run_ladder,
    verdict,
)
from bayes_sor.errors import ModelSpecError
from bayes_sor.sampling.samplers import SamplerSettings

COV = np.array([[1.0, 0.5, 0.3], [0.5, 1.0, 0.4], [0.3, 0.4, 1.0]])
MEAN = np.array([1.0, 2.0, 3.0])


def _groups(seed: int = 0) -> GroupData:
    rng = np.random.default_rng(seed)
    return GroupData(
        [
            rng.multivariate_normal(MEAN, COV, size=80),
            rng.multivariate_normal(MEAN + 0.5, 2 * COV, size=60),
        ]
    )


def _moments(draws: int, shift: float = 0.0) -> list:
    return [
        (np.tile(MEAN + shift, (draws, 1)), np.tile(COV, (draws, 1, 1))),
        (np.tile(MEAN + 0.5, (draws, 1)), np.tile(2 * COV, (draws, 1, 1))),
    ]


def test_pointwise_loglik_is_each_respondents_density_under_its_groups_moments():
    data = _groups()
    data.answers[1][3, 1] = np.nan  # case-wise in the second group
    ll = pointwise_loglik(_moments(2), data)
    assert ll.shape == (2, 140)
    assert ll[0, 5] == pytest.approx(
        stats.multivariate_normal(MEAN, COV).logpdf(data.answers[0][5])
    )
    seen = [0, 2]
    expected = stats.multivariate_normal(MEAN[seen] + 0.5, 2 * COV[np.ix_(seen, seen)])
    assert ll[1, 83] == pytest.approx(expected.logpdf(data.answers[1][3, seen]))


def test_discrepancy_is_zero_at_the_sample_moments_and_the_ml_chi_square_elsewhere():
    y = _groups().answers[0]
    n, ybar = len(y), y.mean(axis=0)
    scatter = (y - ybar).T @ (y - ybar)
    assert _discrepancy(n, ybar, scatter, ybar[None], scatter[None] / n)[0] == pytest.approx(
        0.0, abs=1e-9
    )
    s = scatter / n
    f_ml = (
        np.linalg.slogdet(COV)[1]
        + np.trace(np.linalg.solve(COV, s))
        + (ybar - MEAN) @ np.linalg.solve(COV, ybar - MEAN)
        - np.linalg.slogdet(s)[1]
        - 3
    )
    assert _discrepancy(n, ybar, scatter, MEAN[None], COV[None])[0] == pytest.approx(n * f_ml)


def test_ppp_is_uniform_at_the_true_moments_and_zero_at_wrong_ones():
    """At the generating moments the PPP of a data set is uniform: over 20 data sets its mean
    is 0.5 (SD of the mean 0.065); moments off by 0.6 SD give 0."""
    rng = np.random.default_rng(2)
    values = [ppp(_moments(200), _groups(seed), rng) for seed in range(20)]
    assert 0.35 < np.mean(values) < 0.65
    data = _groups(1)
    assert ppp(_moments(200, shift=0.6), data, rng) == 0.0
    data.answers[0][0, 0] = np.nan
    assert np.isnan(ppp(_moments(10), data, rng))


def test_verdict_a_step_fails_only_beyond_two_standard_errors():
    assert verdict(5.0, 3.6) == "holds"
    assert verdict(-7.0, 3.6) == "holds"
    assert verdict(-13.7, 6.0).startswith("fails: the constraints cost 13.7 ELPD (> 2 x SE 6.0)")


@pytest.mark.parametrize(
    "model",
    [
        "---\nordinal: all\n---\nF =~ y1 + y2 + y3\n",
        "X =~ x1 + x2 + x3\nW =~ w1 + w2 + w3\nY =~ y1 + y2 + y3\nY ~ X + W + X:W\n",
    ],
)
def test_the_ladder_refuses_ordinal_items_and_latent_interactions_before_fitting(model):
    """Its PPP and LOO are the groups' normal moments', which neither model has."""
    with pytest.raises(ModelSpecError, match="invariance ladder needs continuous items"):
        run_ladder(model, pd.DataFrame(), "g", SamplerSettings())
