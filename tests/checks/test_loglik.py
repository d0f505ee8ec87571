"""Pointwise log-likelihoods (marginal, normal approximation, given latent scores)."""

import numpy as np
import pytest
from fakes import group_answers, group_moments, mixed_labels, truth, two_group_cfa, write_run
from scipy import stats
from scipy.stats import multivariate_normal, norm
from sem_models import INTERACTION

from bayes_sor.checks.loglik import (
    conditional_loglik,
    loglik_kind,
    marginal_loglik,
    pointwise_loglik,
)
from bayes_sor.checks.predictive import implied
from bayes_sor.model.simulate import simulate
from bayes_sor.runs.rundir import load_run
from bayes_sor.spec.matrices import representation
from bayes_sor.spec.partable import build_partable

VALUES = {"Y~X": 0.4, "Y~W": 0.2, "Y~X:W": 0.3, "X~~W": 0.5, "x1~1": 3.0}


def test_marginal_loglik_matches_scipy():
    pt = build_partable(INTERACTION.replace(" + X:W", ""))
    par = truth(pt, VALUES)
    data = simulate(pt, par, 20, seed=0)
    moments = implied(representation(pt), par[None])
    ours = marginal_loglik(data.to_numpy(), moments)[0]
    ref = multivariate_normal(moments.mean[0], moments.cov[0]).logpdf(data.to_numpy())
    np.testing.assert_allclose(ours, ref)


def test_implied_mean_of_an_interaction_model_includes_the_product_mean():
    """E[Y] = gamma Cov(X, W): the normal approximation keeps the product term's mean."""
    pt = build_partable(INTERACTION)
    par = truth(pt, VALUES)
    mean = implied(representation(pt), par[None]).mean[0]
    data = simulate(pt, par, 200_000, seed=1)
    np.testing.assert_allclose(mean, data.mean().to_numpy(), atol=0.01)
    assert mean[-1] == pytest.approx(0.8 * 0.3 * 0.5)  # loading x gamma x Cov(X, W)


def test_loglik_given_stored_latent_scores(tmp_path):
    pt = build_partable(INTERACTION)
    par = truth(pt, VALUES)
    data = simulate(pt, par, 30, seed=2)
    eta = np.random.default_rng(3).normal(size=(1, 2, 30, 3))
    draws = np.tile(par, (1, 2, 1))
    plain = load_run(write_run(tmp_path / "a", pt, draws, data))
    assert loglik_kind(plain)[0] == "marginal_approx"
    stored = write_run(tmp_path / "b", pt, draws, data, latent_scores=eta, likelihood="conditional")
    run = load_run(stored)
    assert loglik_kind(run)[0] == "conditional"
    ours = conditional_loglik(run, run.draws, eta.reshape(2, 30, 3))
    mu = np.repeat(eta[0, 0], 3, axis=1) * 0.8 + np.array([3.0] + [0.0] * 8)
    ref = norm.logpdf(data.to_numpy(), mu, np.sqrt(0.4)).sum(axis=1)
    np.testing.assert_allclose(ours[0], ref)


def test_ordinal_loglik_given_latent_scores_is_the_probit_interval(tmp_path):
    from bayes_sor.spec.partable import add_thresholds

    pt = add_thresholds(
        build_partable("F =~ u1 + u2 + u3", ordinal="all"), dict.fromkeys(["u1", "u2", "u3"], 3)
    )
    par = truth(pt, {f"u{i}|t1": -0.5 for i in (1, 2, 3)} | {f"u{i}|t2": 0.8 for i in (1, 2, 3)})
    data = simulate(pt, par, 40, seed=4)
    eta = np.random.default_rng(5).normal(size=(1, 1, 40, 1))
    run = load_run(
        write_run(
            tmp_path / "o", pt, par[None, None], data, latent_scores=eta, likelihood="conditional"
        )
    )
    assert loglik_kind(run)[0] == "conditional"
    ours = conditional_loglik(run, run.draws, eta[0])[0]
    cuts = np.array([-np.inf, -0.5, 0.8, np.inf])
    code = data.to_numpy().astype(int) - 1  # answers 1..3
    mu = 0.8 * eta[0, 0]
    ref = np.log(norm.cdf(cuts[code + 1] - mu) - norm.cdf(cuts[code] - mu)).sum(axis=1)
    np.testing.assert_allclose(ours, ref)


def test_each_respondents_loglik_is_their_groups_normal_density(tmp_path):
    """LOO's pointwise log-likelihood: each row the scipy MvNormal density under the implied
    moments of the row's own group (latent means included), the rows in the data's order.
    (Before: every respondent under the first group's moments without its latent means.)"""
    pt, par = two_group_cfa()
    labels = mixed_labels(40, 1)
    data = group_answers(pt, par, labels, 2)
    draws = np.stack([par, par * 1.05])[None]
    run = load_run(write_run(tmp_path / "run", pt, draws, data, groups=labels))
    ll = pointwise_loglik(run).values.reshape(2, -1)
    for s in range(2):
        for g, label in enumerate(pt.groups, start=1):
            mean, cov = group_moments(pt, draws[0, s], g)
            rows = labels == label
            want = stats.multivariate_normal(mean, cov).logpdf(data.to_numpy()[rows])
            np.testing.assert_allclose(ll[s, rows], want, rtol=1e-10)
