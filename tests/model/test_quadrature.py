"""The quadrature likelihood (the integrated latents of product terms integrated out by
Gauss-Hermite quadrature) against brute-force numerical integration, its node count, when
when it applies, and the latent scores drawn after a quadrature fit."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from fakes import truth
from model_points import value_function
from paths import ROOT
from scipy import integrate, stats
from scipy.special import logsumexp

from bayes_sor.errors import ModelSpecError
from bayes_sor.model.build import choose_likelihood, pymc_model
from bayes_sor.model.quadrature import (
    ADAPTED_NODES,
    ADAPTED_NODES_SQUARED,
    NODES,
    Layout,
    adapted_nodes,
    affine_terms,
    gauss_hermite,
    integrated_latents,
    node_loglik,
    respondent_loglik,
)
from bayes_sor.model.simulate import simulate, truth_vector
from bayes_sor.posterior.scores import moderator_quantiles, quadrature_latent_scores
from bayes_sor.spec.groups import with_groups
from bayes_sor.spec.matrices import extend, representation
from bayes_sor.spec.partable import build_partable

#: an endogenous x exogenous product (Study A's CT:IT), the moderator correlated with X
MODERATED_MEDIATION = """
X =~ x1 + x2 + x3
Z =~ z1 + z2 + z3
M =~ m1 + m2 + m3
Y =~ y1 + y2 + y3
M ~ X
Y ~ M + Z + M:Z + X
X ~~ Z
"""
#: a quadratic term, with a residual covariance (Theta not diagonal)
QUADRATIC = """
X =~ x1 + x2 + x3
Y =~ y1 + y2 + y3
Y ~ X + X:X
y1 ~~ y2
"""
#: a quadratic term without a residual covariance (the likelihood's fused table op,
#: bayes_sor/model/affine_kernel.py; QUADRATIC keeps PyTensor's graph before the nodes)
SQUARED = """
X =~ x1 + x2 + x3
Y =~ y1 + y2 + y3
Y ~ X + X:X
"""
#: two integrated latents (Z, W), one product of both (a constant given them)
TWO_MODERATORS = """
X =~ x1 + x2 + x3
Z =~ z1 + z2 + z3
W =~ w1 + w2 + w3
Y =~ y1 + y2 + y3
Y ~ X + Z + W + X:Z + X:W + Z:W
"""
#: Study A (models/impulse_buying.lav): CT:IT with CT endogenous, IT the exogenous moderator
STUDY_A = (ROOT / "models" / "impulse_buying.lav").read_text()
#: a product of two endogenous latents: no exogenous factor to integrate out
ENDOGENOUS_PRODUCT = """
X =~ x1 + x2 + x3
M =~ m1 + m2 + m3
W =~ w1 + w2 + w3
Y =~ y1 + y2 + y3
M ~ X
W ~ X
Y ~ M + W + M:W
"""
#: one moderator Z, but M is moderated and then moderates Y's path from it: not affine in Z
CHAINED_PRODUCTS = """
X =~ x1 + x2 + x3
Z =~ z1 + z2 + z3
M =~ m1 + m2 + m3
Y =~ y1 + y2 + y3
M ~ X + Z + X:Z
Y ~ M + M:Z
"""
#: an observed structural variable (a single-item construct) beside the latent product
OBSERVED_STRUCTURAL = """
X =~ x1 + x2 + x3
Z =~ z1 + z2 + z3
Y =~ y1 + y2 + y3
Y ~ X + Z + X:Z + age
"""
INTEGRATED = {MODERATED_MEDIATION: ["Z"], QUADRATIC: ["X"], TWO_MODERATORS: ["Z", "W"]}


def _case(model: str, n: int, seed: int, missing: bool = True):
    tab = build_partable(model)
    par = truth(tab, {name: 0.35 for name in tab.names if ":" in name}, intercept=3.0)
    data = simulate(tab, par, n, seed, scale=None)
    y = data[representation(tab).items].to_numpy(dtype=float, copy=True)
    if missing:
        y[0, 1] = y[3, 4] = y[4, 4] = y[5, 0] = np.nan
    return tab, par, y


def _brute_density(tab, par: np.ndarray, integrated: list[str]):
    """p(w) p(y_i | w) at values w (G, q), with explicit inverses: zeta given zeta_W = w by
    normal conditioning, eta = (I - B(w))^-1 (zeta + products of w), every product term
    evaluated at w."""
    rep = representation(tab)
    ext = extend(par)
    lam, beta, psi, theta, nu = (
        ext[i] for i in (rep.lambda_, rep.beta, rep.psi, rep.theta, rep.nu)
    )
    m = len(rep.latents)
    w_pos = [rep.latents.index(f) for f in integrated]
    rest = [i for i in range(m) if i not in w_pos]
    gain = psi[np.ix_(rest, w_pos)] @ np.linalg.inv(psi[np.ix_(w_pos, w_pos)])
    cond = np.zeros((m, m))
    cond[np.ix_(rest, rest)] = psi[np.ix_(rest, rest)] - gain @ psi[np.ix_(w_pos, rest)]
    prior = stats.multivariate_normal(np.zeros(len(w_pos)), psi[np.ix_(w_pos, w_pos)])

    def density(w: np.ndarray, yi: np.ndarray) -> np.ndarray:
        value = {pos: w[:, k] for k, pos in enumerate(w_pos)}
        b, const = np.repeat(beta[None], len(w), axis=0), np.zeros((len(w), m))
        for t in rep.interactions:
            if t.first in value and t.second in value:
                const[:, t.outcome] += ext[t.param] * value[t.first] * value[t.second]
            elif t.second in value:
                b[:, t.outcome, t.first] += ext[t.param] * value[t.second]
            else:
                b[:, t.outcome, t.second] += ext[t.param] * value[t.first]
        inv = np.linalg.inv(np.eye(m) - b)
        zeta = np.zeros((len(w), m))
        zeta[:, w_pos] = w
        zeta[:, rest] = w @ gain.T
        o = ~np.isnan(yi)
        mu = nu[o] + ((lam[o] @ inv) @ (zeta + const)[..., None])[..., 0]
        cov = lam[o] @ inv @ cond @ inv.swapaxes(1, 2) @ lam[o].T + theta[np.ix_(o, o)]
        diff = yi[o] - mu
        quad = (diff * np.linalg.solve(cov, diff[..., None])[..., 0]).sum(axis=1)
        logpdf = -0.5 * (quad + np.linalg.slogdet(cov)[1] + o.sum() * np.log(2 * np.pi))
        return prior.pdf(w).reshape(len(w)) * np.exp(logpdf)

    return density


def _quadrature(tab, par, y, nodes: int) -> np.ndarray:
    rep = representation(tab)
    layout = Layout.of(tab, rep)
    z, log_weight = gauss_hermite(nodes, len(layout.integrated))
    return logsumexp(node_loglik(np, par, rep, layout, y, z) + log_weight, axis=1)


@pytest.mark.parametrize("model", [MODERATED_MEDIATION, QUADRATIC])
def test_loglik_equals_brute_force_integration_over_the_moderator(model):
    tab, par, y = _case(model, n=12, seed=3)
    assert [tab.latents[i] for i in Layout.of(tab, representation(tab)).integrated] == (
        INTEGRATED[model]
    )
    density = _brute_density(tab, par, INTEGRATED[model])
    brute = [
        np.log(
            integrate.quad(
                lambda w, yi=yi: density(np.array([[w]]), yi)[0],
                -10,
                10,
                epsabs=0,
                epsrel=1e-11,
                limit=200,
            )[0]
        )
        for yi in y
    ]
    # 128 nodes: exact to rounding here, even for a respondent 3.5 SD out on X
    np.testing.assert_allclose(_quadrature(tab, par, y, 128), brute, rtol=0, atol=1e-8)
    # the rank-2 Woodbury form on the same fixed nodes, and on nodes adapted to each respondent
    rep = representation(tab)
    layout = Layout.of(tab, rep)
    assert layout.affine
    fixed = respondent_loglik(np, par, rep, layout, y, 128, adapt=False)
    np.testing.assert_allclose(fixed, _quadrature(tab, par, y, 128), rtol=0, atol=1e-10)
    adapted = respondent_loglik(np, par, rep, layout, y, 32)
    np.testing.assert_allclose(adapted, brute, rtol=0, atol=1e-8)


def test_loglik_with_two_integrated_latents_equals_a_two_dimensional_integral():
    tab, par, y = _case(TWO_MODERATORS, n=2, seed=4, missing=False)
    density = _brute_density(tab, par, INTEGRATED[TWO_MODERATORS])
    grid = np.linspace(-7, 7, 401)
    pairs = np.stack(np.meshgrid(grid, grid, indexing="ij"), axis=-1).reshape(-1, 2)
    brute = [
        np.log(
            integrate.simpson(
                integrate.simpson(density(pairs, yi).reshape(401, 401), x=grid), x=grid
            )
        )
        for yi in y
    ]
    np.testing.assert_allclose(_quadrature(tab, par, y, 64), brute, rtol=0, atol=1e-6)


def test_the_pymc_model_sums_the_same_loglik_with_its_data_as_a_container():
    tab, _, y = _case(QUADRATIC, n=15, seed=5)
    built = pymc_model(
        tab, pd.DataFrame(y, columns=representation(tab).items), likelihood="quadrature", nodes=24
    )
    assert built.likelihood == "quadrature"
    model = built.model
    values = value_function(model, [model["par"], model.potentials[0]])(model.initial_point())
    rep = representation(tab)
    expected = respondent_loglik(np, values[0], rep, Layout.of(tab, rep), y, 24).sum()
    assert values[1] == pytest.approx(expected, rel=1e-10)
    assert "y" in {v.name for v in model.data_vars}  # swappable answers (SBC)


def test_node_count_on_study_a():
    """Fixed nodes on the moderator's prior, Study A at its generating values: 40 nodes are the
    fewest of the ladder within 1e-3 of 64 nodes' log-likelihood (16: 0.05, 24: 0.18, 32:
    1.5e-3 off); the default NODES is within 1e-4."""
    tab, par, y = _study_a()
    reference = _quadrature(tab, par, y, 64).sum()
    error = {n: abs(_quadrature(tab, par, y, n).sum() - reference) for n in (16, 24, 32, 40, 48)}
    assert min(n for n, e in error.items() if e < 1e-3) == 40
    assert abs(_quadrature(tab, par, y, NODES).sum() - reference) < 1e-4


def _study_a():
    tab = build_partable(STUDY_A)
    par = truth_vector(tab, pd.read_csv(ROOT / "data" / "impulse_buying_truth.csv"))
    y = pd.read_csv(ROOT / "data" / "impulse_buying.csv")[tab.indicators].to_numpy(dtype=float)
    return tab, par, y


def test_affine_terms_equal_the_items_normal_given_the_moderator_on_study_a():
    """log p(y_i | w) of the rank-2 form (Sigma0^-1 by Woodbury from r x r matrices, the data
    projected onto Theta^-1 [V, E, U0]) against the items' normal density given w with its
    covariance built and inverted explicitly (32 x 32), on Study A with missing answers."""
    tab, par, y = _study_a()
    y = y[:30].copy()
    y[0, 3] = y[1, 3] = y[2, 10] = y[2, 11] = np.nan
    rep = representation(tab)
    layout = Layout.of(tab, rep)
    terms = affine_terms(np, par, rep, layout, y)
    w = terms.sd * np.array([-1.5, 0.0, 0.7])
    ours = terms.at(np, np.broadcast_to(w, (len(y), 3)))
    density = _brute_density(tab, par, integrated_latents(tab))
    prior = stats.norm(0, terms.sd).logpdf(w)
    expected = np.array([np.log(density(w[:, None], yi)) - prior for yi in y])
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-9)


def test_adapted_nodes_match_64_fixed_nodes_on_study_a():
    """Nodes centred and scaled per respondent: without products of the moderator the layout
    takes ADAPTED_NODES (4), the fewest within 2e-5 of 64 fixed nodes' log-likelihood on Study
    A (measured: 3 nodes 4e-5 off, 4 nodes 9e-6, 5 and more 8e-6: 64 fixed nodes' own error),
    where 4 fixed nodes are far off."""
    tab, par, y = _study_a()
    rep = representation(tab)
    layout = Layout.of(tab, rep)
    assert adapted_nodes(layout) == ADAPTED_NODES == 4
    reference = _quadrature(tab, par, y, 64).sum()
    error = {
        k: abs(respondent_loglik(np, par, rep, layout, y, k).sum() - reference)
        for k in (2, 3, 4, 5)
    }
    assert min(k for k, e in error.items() if e < 2e-5) == ADAPTED_NODES
    assert abs(respondent_loglik(np, par, rep, layout, y).sum() - reference) < 2e-5
    assert abs(_quadrature(tab, par, y, ADAPTED_NODES).sum() - reference) > 1.0


@pytest.mark.parametrize(
    ("model", "count", "tolerance", "too_few"),
    [(MODERATED_MEDIATION, 4, 1e-4, 3), (QUADRATIC, ADAPTED_NODES_SQUARED, 1e-3, 4)],
)
def test_adapted_nodes_follow_a_respondent_far_out_on_the_moderator(
    model, count, tolerance, too_few
):
    """Respondents 4 SD out on the moderator's items, where fixed nodes on its prior need
    many more: the layout's adapted nodes stay within ``tolerance`` of 64 fixed nodes (measured:
    moderated mediation 2e-5 at 4, 3e-4 at 3; X:X 2e-4 at 6, 2e-3 at 4). For X:X the centre
    from the model linearised at w = 0 is not enough (6 nodes off by 1.2): the Newton steps on
    the exact density bring it to 2e-4."""
    tab, par, y = _case(model, n=40, seed=3)
    rep = representation(tab)
    layout = Layout.of(tab, rep)
    assert adapted_nodes(layout) == count
    moderator = {MODERATED_MEDIATION: "z", QUADRATIC: "x"}[model]
    columns = [i for i, item in enumerate(rep.items) if item.startswith(moderator)]
    y[:5, columns] += 4 * np.nanstd(y[:, columns], axis=0)
    reference = _quadrature(tab, par, y, 64)
    adapted = respondent_loglik(np, par, rep, layout, y)
    np.testing.assert_allclose(adapted, reference, rtol=0, atol=tolerance)
    fewer = respondent_loglik(np, par, rep, layout, y, too_few)
    assert np.abs(fewer - reference).max() > tolerance
    assert np.abs(_quadrature(tab, par, y, 6) - reference)[:5].min() > 0.05


def test_layout_is_affine_in_one_moderator_with_a_rank_one_product_matrix():
    """The rank-2 form needs A(w) affine: one integrated latent whose moderated paths share an
    outcome or a cause, none leading into another's cause."""

    def affine(model: str) -> bool:
        tab = build_partable(model)
        return Layout.of(tab, representation(tab)).affine

    assert affine(MODERATED_MEDIATION) and affine(QUADRATIC)
    assert affine(STUDY_A)
    assert not affine(TWO_MODERATORS)
    chained = "X =~ x1 + x2 + x3\nZ =~ z1 + z2 + z3\nM =~ m1 + m2 + m3\nY =~ y1 + y2 + y3\n"
    assert affine(chained + "M ~ X + Z + X:Z\nY ~ M + X:Z\n")  # a shared cause X
    assert not affine(CHAINED_PRODUCTS)  # M moderated, then M's
    assert not affine(
        chained + "W =~ w1 + w2 + w3\nM ~ X + Z + X:Z\nY ~ M + W + W:Z\n"
    )  # two outcomes, two causes: Gamma of rank 2


def test_quadrature_applies_to_continuous_items_and_an_exogenous_moderator():
    """Asked for, it is used on continuous items with an exogenous moderator (a product or a
    square), in one group; ``auto`` takes it there when the moderator is one and the layout
    affine (test_auto_likelihood_integrates_one_exogenous_moderator_out)."""
    for model in (MODERATED_MEDIATION, QUADRATIC, TWO_MODERATORS):
        assert choose_likelihood(build_partable(model), "quadrature") == "quadrature"
    with pytest.raises(ModelSpecError, match=r"quadrature likelihood cannot be used.*ordinal"):
        choose_likelihood(build_partable(MODERATED_MEDIATION, ordinal=["y1"]), "quadrature")
    with pytest.raises(ModelSpecError, match=r"Y ~ M:W.*no exogenous latent factor"):
        choose_likelihood(build_partable(ENDOGENOUS_PRODUCT), "quadrature")
    with pytest.raises(ModelSpecError, match="no latent interaction"):
        choose_likelihood(build_partable("F =~ y1 + y2 + y3"), "quadrature")
    with pytest.raises(
        ModelSpecError,
        match=r"quadrature likelihood cannot be used: the model has several groups.*"
        r"--likelihood conditional",
    ):
        choose_likelihood(with_groups(build_partable(QUADRATIC), ["a", "b"]), "quadrature")


@pytest.mark.parametrize(
    ("model", "options", "expected"),
    [
        (STUDY_A, {}, "quadrature"),  # CT:IT, CT endogenous: IT integrated out
        (MODERATED_MEDIATION, {}, "quadrature"),
        (QUADRATIC, {}, "quadrature"),  # X:X
        (MODERATED_MEDIATION, {"ordinal": ["y1"]}, "conditional"),
        (ENDOGENOUS_PRODUCT, {}, "conditional"),  # nothing exogenous to integrate out
        (TWO_MODERATORS, {}, "conditional"),  # a product grid: 850x the cost per gradient
        (CHAINED_PRODUCTS, {}, "quadrature"),  # one moderator, not affine: 48 fixed nodes
        (OBSERVED_STRUCTURAL, {}, "conditional"),
        (QUADRATIC, {"groups": ["a", "b"]}, "conditional"),  # no multiple-group quadrature
        ("F =~ y1 + y2 + y3\nG =~ y4 + y5 + y6\nG ~ F\n", {}, "marginal"),
    ],
    ids=[
        "study_a",
        "moderated_mediation",
        "squared",
        "ordinal",
        "endogenous_product",
        "two_moderators",
        "chained_products",
        "observed_structural",
        "groups",
        "no_interaction",
    ],
)
def test_auto_likelihood_integrates_one_exogenous_moderator_out(model, options, expected):
    """``auto``: marginal when valid; quadrature for a latent interaction with one exogenous
    moderator, continuous items and one group; conditional otherwise."""
    groups = options.pop("groups", None)
    tab = build_partable(model, **options)
    tab = with_groups(tab, groups) if groups else tab
    assert choose_likelihood(tab) == expected


def test_scores_without_interaction_effect_match_the_marginal_conditional_normal():
    """With the product's slope at 0 the latents are jointly normal given y: the scores drawn
    after a quadrature fit (moderator on a grid, then the rest given it) have the marginal
    fit's conditional mean and SD."""
    tab, par, y = _case(MODERATED_MEDIATION, n=6, seed=6)
    par[tab.names.index("Y~M:Z")] = 0.0
    rep = representation(tab)
    draws = np.broadcast_to(par, (1, 3000, len(par)))
    ours = quadrature_latent_scores(tab, rep, draws, y, seed=1)[0]
    sd = ours.std(axis=0)
    for i in (0, 1):  # respondent 0 left an item unanswered
        mean, cov = _conditional_moments(rep, par, y[i])
        assert np.all(np.abs(ours[:, i].mean(axis=0) - mean) < 4 * sd[i] / np.sqrt(3000))
        np.testing.assert_allclose(sd[i], np.sqrt(np.diag(cov)), rtol=0.08)


def _conditional_moments(rep, par, yi):
    ext = extend(par)
    lam, beta, psi, theta, nu = (
        ext[i] for i in (rep.lambda_, rep.beta, rep.psi, rep.theta, rep.nu)
    )
    inv = np.linalg.inv(np.eye(len(rep.latents)) - beta)
    phi = inv @ psi @ inv.T
    o = ~np.isnan(yi)
    sigma = (lam @ phi @ lam.T + theta)[np.ix_(o, o)]
    gain = phi @ lam[o].T @ np.linalg.inv(sigma)
    return gain @ (yi[o] - nu[o]), phi - gain @ lam[o] @ phi


@pytest.mark.parametrize("model", [MODERATED_MEDIATION, QUADRATIC])
def test_moderator_draws_follow_their_posterior_given_the_answers(model):
    """An affine layout's moderator is drawn on cells placed per respondent (centred by the
    Newton steps with X:X), also for a respondent 4 SD out on the moderator's items."""
    tab, par, y = _case(model, n=6, seed=7)
    rep = representation(tab)
    moderator = INTEGRATED[model][0]
    columns = [i for i, item in enumerate(rep.items) if item.startswith(moderator.lower())]
    y[5, columns] += 4 * np.nanstd(y[:, columns], axis=0)
    draws = np.broadcast_to(par, (1, 2000, len(par)))
    w = quadrature_latent_scores(tab, rep, draws, y, seed=2, integrated_only=True)[0]
    other = next(f for f in ("M", "Y") if f in rep.latents and f != moderator)
    assert np.isnan(w[..., rep.latents.index(other)]).all()
    density = _brute_density(tab, par, [moderator])
    grid = np.linspace(-8, 8, 4001)
    for i in range(len(y)):
        pdf = density(grid[:, None], y[i])
        cdf = np.cumsum(pdf) / pdf.sum()
        result = stats.kstest(
            w[:, i, rep.latents.index(moderator)], lambda v, c=cdf: np.interp(v, grid, c)
        )
        assert result.pvalue > 0.01


def test_moderator_quantiles_are_order_statistics():
    tab = build_partable(MODERATED_MEDIATION)
    rep = representation(tab)
    scores = np.random.default_rng(0).normal(size=(2, 3, 101, len(rep.latents)))
    out = moderator_quantiles(scores, rep, tab)
    assert out.shape == (2, 3, 1, 3)
    ranked = np.sort(scores[1, 2, :, rep.latents.index("Z")])
    np.testing.assert_array_equal(out[1, 2, 0], ranked[[16, 50, 84]])


def test_gauss_hermite_product_rule_integrates_normal_moments():
    z, log_weight = gauss_hermite(5, 2)
    weight = np.exp(log_weight)
    assert z.shape == (25, 2)
    moments = {
        (a, b): (weight * z[:, 0] ** a * z[:, 1] ** b).sum()
        for a, b in itertools.product(range(5), repeat=2)
    }
    assert moments[(0, 0)] == pytest.approx(1.0)
    assert moments[(2, 2)] == pytest.approx(1.0)
    assert moments[(4, 0)] == pytest.approx(3.0)
    assert abs(moments[(1, 3)]) < 1e-12
