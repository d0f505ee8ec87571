"""Pointwise log-likelihoods (marginal, by importance sampling, normal approximation, given
latent scores)."""

import numpy as np
import pytest
from fakes import group_answers, group_moments, mixed_labels, truth, two_group_cfa, write_run
from ordinal_fakes import posterior_scores, probit_loglik
from scipy import stats
from scipy.stats import multivariate_normal, norm
from sem_models import INTERACTION

from bayes_sor.checks import loglik as loglik_module
from bayes_sor.checks.loglik import (
    conditional_loglik,
    loglik_kind,
    loglik_tree,
    loo,
    marginal_loglik,
    pointwise_loglik,
)
from bayes_sor.checks.predictive import implied
from bayes_sor.model.quadrature import Layout, respondent_loglik
from bayes_sor.model.simulate import latent_draws, simulate
from bayes_sor.runs.rundir import load_run
from bayes_sor.spec.matrices import extend, representation
from bayes_sor.spec.partable import add_thresholds, build_partable

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
    assert loglik_kind(run)[0] == "marginal_is"
    ours = conditional_loglik(run, run.draws, eta.reshape(2, 30, 3))
    mu = np.repeat(eta[0, 0], 3, axis=1) * 0.8 + np.array([3.0] + [0.0] * 8)
    ref = norm.logpdf(data.to_numpy(), mu, np.sqrt(0.4)).sum(axis=1)
    np.testing.assert_allclose(ours[0], ref)


def test_ordinal_loglik_given_latent_scores_is_the_probit_interval(tmp_path):
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
    assert loglik_kind(run)[0] == "marginal_is"
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


# ---- marginal_is: the latent scores integrated out by importance sampling ----------------------
def _posterior_scores(rep, draws: np.ndarray, y: np.ndarray, rng) -> np.ndarray:
    """Draws of p(eta_i | y_i, theta_s) of a linear model with continuous items, given the
    answered ones (normal: precision Phi^-1 + Lambda' Theta^-1 Lambda): (S, N, m), as
    fit --save-latent stores them."""
    out = np.empty((len(draws), len(y), len(rep.latents)))
    patterns, which = np.unique(~np.isnan(y), axis=0, return_inverse=True)
    for s, e in enumerate(extend(draws)):
        inv = np.linalg.inv(np.eye(len(rep.latents)) - e[rep.beta])
        phi = inv @ e[rep.psi] @ inv.T
        mean = inv @ (np.zeros(len(rep.latents)) if rep.alpha is None else e[rep.alpha])
        for k, o in enumerate(patterns):
            rows = which.ravel() == k
            lam, theta = e[rep.lambda_][o], e[rep.theta][np.ix_(o, o)]
            cov = np.linalg.inv(np.linalg.inv(phi) + lam.T @ np.linalg.solve(theta, lam))
            resid = (y[rows][:, o] - e[rep.nu][o]).T
            centre = (
                cov @ (np.linalg.solve(phi, mean)[:, None] + lam.T @ np.linalg.solve(theta, resid))
            ).T
            out[s, rows] = centre + rng.standard_normal(centre.shape) @ np.linalg.cholesky(cov).T
    return out


def test_importance_sampled_marginal_equals_the_closed_form_of_a_linear_model(tmp_path):
    """On a two-group CFA (latent means in group b, respondents interleaved) the importance
    sampler, its proposals fitted to exact posterior latent scores, gives each respondent's
    closed-form marginal log-likelihood under their own group's parameters within 0.02 nats
    (measured: at most 0.008 with 128 points), with a missing answer the answered items'."""
    pt, par = two_group_cfa()
    labels = mixed_labels(160, 1)
    data = group_answers(pt, par, labels, 2)
    data.iloc[3, 1] = data.iloc[10, 4] = np.nan
    rng = np.random.default_rng(1)
    draws = par * (1 + 0.03 * rng.standard_normal((100, len(par))))
    y = data.to_numpy()
    scores = np.empty((len(draws), len(y), 2))
    for g, label in enumerate(pt.groups, start=1):
        rows = labels == label
        scores[:, rows] = _posterior_scores(representation(pt, g), draws, y[rows], rng)
    run = load_run(
        write_run(
            tmp_path / "run", pt, draws[None], data, latent_scores=scores[None], groups=labels
        )
    )
    ours = pointwise_loglik(run, "marginal_is")
    exact = pointwise_loglik(run, "marginal")
    np.testing.assert_allclose(ours.values, exact.values, atol=0.02)
    assert 0 < ours.attrs["mc_se_mean"] < ours.attrs["mc_se_max"] < 0.1


def _ordinal_factor():
    items = ["u1", "u2", "u3", "u4"]
    pt = add_thresholds(
        build_partable("F =~ u1 + u2 + u3 + u4", ordinal="all"), dict.fromkeys(items, 4)
    )
    cuts = {}
    for i, item in enumerate(items):
        cuts |= {f"{item}|t1": -1.0, f"{item}|t2": 0.1 * i, f"{item}|t3": 1.2}
    return pt, truth(pt, cuts, loading=1.2, variance=1.0)


def test_importance_sampled_marginal_of_ordinal_items_equals_gauss_hermite(tmp_path):
    """One factor, four 4-category items: the importance sampler against 80-node Gauss-Hermite
    quadrature over the factor, per respondent and draw, within 0.02 nats (measured: at most
    0.01); its proposals fitted to exact posterior scores (inverse CDF on a fine grid)."""
    pt, par = _ordinal_factor()
    data = simulate(pt, par, 120, seed=4)
    rep = representation(pt)
    codes = data.to_numpy().astype(int) - 1
    rng = np.random.default_rng(2)
    draws = par * (1 + 0.03 * rng.standard_normal((40, len(par))))
    x, w = np.polynomial.hermite_e.hermegauss(80)
    exact = np.empty((len(draws), len(data)))
    for s, e in enumerate(extend(draws)):
        sd = np.sqrt(e[rep.psi][0, 0])
        exact[s] = np.log(np.exp(probit_loglik(rep, e, codes, sd * x)) @ w / np.sqrt(2 * np.pi))
    scores = posterior_scores(rep, draws, codes, rng)
    run = load_run(write_run(tmp_path / "o", pt, draws[None], data, latent_scores=scores[None]))
    assert loglik_kind(run)[0] == "marginal_is"
    ours = pointwise_loglik(run).values.reshape(len(draws), -1)
    np.testing.assert_allclose(ours, exact, atol=0.02)


def test_an_importance_sampled_loglik_integrates_at_most_is_max_draws_by_default(
    tmp_path, monkeypatch
):
    """An integral per respondent and draw: by default every k-th draw of each chain up to
    IS_MAX_DRAWS (ppc, compare-models, sensitivity and the ladder all call it), the closed
    forms every draw."""
    pt, par = _ordinal_factor()
    data = simulate(pt, par, 30, seed=5)
    rep = representation(pt)
    draws = par * (1 + 0.03 * np.random.default_rng(3).standard_normal((2, 20, len(par))))
    codes = data.to_numpy().astype(int) - 1
    scores = posterior_scores(rep, draws.reshape(40, -1), codes, np.random.default_rng(4))
    run = load_run(
        write_run(tmp_path / "o", pt, draws, data, latent_scores=scores.reshape(2, 20, 30, 1))
    )
    monkeypatch.setattr(loglik_module, "IS_MAX_DRAWS", 15)
    ll = pointwise_loglik(run)
    assert ll.attrs["every"] == 3 and ll.sizes == {"chain": 2, "draw": 7, "obs": 30}
    assert pointwise_loglik(run, "conditional").sizes["draw"] == 20
    tree = loglik_tree(run, ll)
    np.testing.assert_array_equal(tree["posterior"]["par"].values, draws[:, ::3])


def test_importance_sampled_marginal_of_a_latent_interaction_equals_quadrature(tmp_path):
    """X, W, Y with Y ~ X:W: against the quadrature likelihood's product rule (40 nodes per
    exogenous latent, the rest normal given them): every respondent-draw within 0.08 nats, 90%
    within 0.015 and 99% within 0.04, no mean bias beyond 0.005 (three latents, 512 points:
    measured 0.047, 0.008, 0.026 and -0.001; 128 points missed with 99% within 0.06). The
    proposals are fitted to 40 draws of posterior scores, drawn by importance resampling of
    prior draws (with 20 such draws one respondent's proposal was too narrow: 0.19 off)."""
    pt = build_partable(INTERACTION)
    par = truth(pt, VALUES)
    data = simulate(pt, par, 100, seed=2)
    rep, y = representation(pt), data.to_numpy()
    rng = np.random.default_rng(0)
    draws = par * (1 + 0.03 * rng.standard_normal((40, len(par))))
    layout = Layout.of(pt, rep)
    exact = np.stack(
        [respondent_loglik(np, e, rep, layout, y, 40, adapt=False) for e in extend(draws)]
    )
    scores = np.empty((len(draws), len(y), 3))
    for s, e in enumerate(extend(draws)):
        prior = latent_draws(rep, pt, draws[s], 3000, rng)
        mu = e[rep.nu] + prior @ e[rep.lambda_].T
        log_w = norm.logpdf(y[:, None, :], mu[None], np.sqrt(np.diag(e[rep.theta]))).sum(-1)
        w = np.exp(log_w - log_w.max(axis=1, keepdims=True))
        cdf = np.cumsum(w, axis=1)
        scores[s] = prior[(cdf < rng.uniform(size=(len(y), 1)) * cdf[:, -1:]).sum(axis=1)]
    run = load_run(
        write_run(tmp_path / "i", pt, draws[None], data, scores[None], likelihood="conditional")
    )
    diff = pointwise_loglik(run).values.reshape(len(draws), -1) - exact
    assert np.abs(diff).max() < 0.08
    assert np.all(np.quantile(np.abs(diff), [0.9, 0.99]) < [0.015, 0.04])
    assert abs(diff.mean()) < 0.005


def test_loglik_given_scores_uses_each_respondents_own_group(tmp_path):
    """A two-group run's items given stored scores: each row's normal density under its own
    group's loadings, intercepts and residual variances (group b's x4 residual variance is
    0.9). (Before: every respondent under the first group's parameters.)"""
    pt, par = two_group_cfa()
    labels = mixed_labels(40, 1)
    data = group_answers(pt, par, labels, 2)
    eta = np.random.default_rng(3).normal(size=(1, 1, 40, 2))
    run = load_run(
        write_run(tmp_path / "r", pt, par[None, None], data, latent_scores=eta, groups=labels)
    )
    ours = conditional_loglik(run, run.draws, eta[0])[0]
    for g, label in enumerate(pt.groups, start=1):
        rep, e = representation(pt, g), extend(par)
        rows = labels == label
        mu = e[rep.nu] + eta[0, 0, rows] @ e[rep.lambda_].T
        sd = np.sqrt(np.diag(e[rep.theta]))
        want = norm.logpdf(data.to_numpy()[rows], mu, sd).sum(axis=1)
        np.testing.assert_allclose(ours[rows], want)


def test_a_thinned_loglik_keeps_every_kth_draw_of_each_chain_and_its_tree_follows(tmp_path):
    """``every=2``: each chain's even draws, and LOO's tree thins the posterior alike (ArviZ
    refuses a posterior and a log-likelihood of different draws)."""
    pt, par = two_group_cfa()
    labels = mixed_labels(40, 1)
    draws = par * (1 + 0.02 * np.random.default_rng(0).standard_normal((2, 30, len(par))))
    data = group_answers(pt, par, labels, 2)
    run = load_run(write_run(tmp_path / "run", pt, draws, data, groups=labels))
    full, thinned = pointwise_loglik(run, "marginal"), pointwise_loglik(run, "marginal", 2)
    np.testing.assert_array_equal(thinned.values, full.values[:, ::2])
    tree = loglik_tree(run, thinned)
    np.testing.assert_array_equal(tree["posterior"]["par"].values, draws[:, ::2])
    assert np.isfinite(float(loo(tree).elpd))
