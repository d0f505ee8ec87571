"""Latent scores for marginal fits, drawn after sampling.

The marginal likelihood integrates the latent variables out, so NUTS never sees them. Given the
parameters, (eta, y) are jointly normal, and each respondent's scores have the conditional
normal distribution

    eta | y ~ N(K (y - nu), Phi - K Lambda Phi),   K = Phi Lambda' Sigma^-1,

with Phi the latents' implied covariance and Sigma the items'. One draw per posterior draw gives
scores whose spread includes both parameter and score uncertainty (the Bayesian analogue of
regression factor scores, which are the mean K (y - nu) at one parameter value). A respondent
with missing answers is scored from the items they answered (Lambda, Sigma and nu restricted to
them), one missingness pattern at a time. A quadrature fit (latent interactions) is scored the
same way given its integrated latents, which are drawn first on a grid
(:func:`quadrature_latent_scores`).
"""

from __future__ import annotations

import itertools

import numpy as np

from bayes_sor.data.missing import Patterns, psd_root
from bayes_sor.model.quadrature import (
    Layout,
    conditioned_psi,
    given_integrated,
    matrices,
    node_loglik,
    project,
    table_function,
)
from bayes_sor.model.quadrature_kernel import draw_on_cells
from bayes_sor.spec.matrices import Representation, implied_moments
from bayes_sor.spec.partable import ParTable


def marginal_latent_scores(
    rep: Representation, par: np.ndarray, y: np.ndarray, seed: int
) -> np.ndarray:
    """One draw of every respondent's latent scores per parameter draw.

    ``par``: (chain, draw, param); ``y``: (obs, item) in ``rep.items`` order, NaN where an
    answer is missing. Returns (chain, draw, obs, latent). Valid for models without latent
    interactions (the only ones the marginal likelihood fits). The conditional covariance is
    factored by :func:`~bayes_sor.data.missing.psd_root`, not Cholesky: observed structural
    variables are known exactly given y, so their conditional variance is 0.
    """
    rng = np.random.default_rng(seed)
    out = np.empty((*par.shape[:2], y.shape[0], len(rep.latents)))
    patterns = Patterns.of(y)
    for chain in range(par.shape[0]):  # one chain at a time bounds the temporaries' memory
        mom = implied_moments(rep, par[chain])
        phi = mom.latent_cov
        for rows, answered in zip(patterns.members(), patterns.mask, strict=True):
            lam = mom.lambda_[:, answered]
            sigma = mom.item_cov[:, answered][:, :, answered]
            gain = np.linalg.solve(sigma, lam @ phi).swapaxes(-1, -2)  # Phi Lam' Sigma^-1
            mean = (y[rows][:, answered][None] - mom.nu[:, None, answered]) @ gain.swapaxes(-1, -2)
            root = psd_root(phi - gain @ lam @ phi)
            noise = rng.standard_normal(mean.shape)
            out[chain][:, rows] = mean + noise @ root.swapaxes(-1, -2)
    return out


#: cells per integrated latent of the grid that a quadrature fit's moderator scores are drawn
#: on (over +-6 SD): 1/5 SD wide for one moderator. The uniform draw within a cell adds
#: width^2 / 12 = 0.0033 to a score's variance given the answers (about 0.1 for Study A's IT):
#: the moderator's percentiles, set by the spread between respondents (variance 1), move by
#: less than 0.2 %.
SCORE_CELLS = {1: 61, 2: 31}
#: an affine layout's one moderator (:attr:`~bayes_sor.model.quadrature.Layout.affine`) is
#: drawn on cells placed per respondent instead, as its adapted nodes are: over +-ADAPTED_SPAN
#: SD of its distribution given y_i (the Laplace approximation's, beyond which a normal has 2e-9
#: of its mass), ADAPTED_CELLS cells 1/2 SD wide (the uniform draw within a cell adds 1/48 of
#: that variance; the fixed grid's cells add about 1/30 on Study A)
ADAPTED_CELLS = 24
ADAPTED_SPAN = 6.0


def quadrature_latent_scores(
    partable: ParTable,
    rep: Representation,
    par: np.ndarray,
    y: np.ndarray,
    seed: int,
    integrated_only: bool = False,
) -> np.ndarray:
    """One draw of every respondent's latent scores per parameter draw of a quadrature fit.

    The integrated latents w first, from p(w | y_i) on a fine grid of cells (the density at
    each cell's centre, uniform within the cell; an affine layout's moderator on cells placed
    per respondent, :func:`affine_moderator_draws`), then the others from their normal
    distribution given w and y_i: with eta = mu(w) + G(w) u and u ~ N(0, I) a priori,
    u | y, w ~ N(H^-1 G' (P_i - M mu), H^-1), H = I + G' M G
    (:mod:`bayes_sor.model.quadrature`). ``integrated_only``: the other latents are left NaN
    (the moderator percentiles need only w). Returns (chain, draw, obs, latent).
    """
    rng = np.random.default_rng(seed)
    layout = Layout.of(partable, rep)
    q = len(layout.integrated)
    cells = SCORE_CELLS.get(q, 21)
    edges = np.linspace(-6.0, 6.0, cells + 1)
    centres = (edges[1:] + edges[:-1]) / 2
    grid = np.array(list(itertools.product(centres, repeat=q)))
    log_prior = -0.5 * (grid**2).sum(axis=1)
    width = edges[1] - edges[0]
    out = np.full((*par.shape[:2], y.shape[0], len(rep.latents)), np.nan)
    patterns = Patterns.of(y)
    if layout.affine:
        moderator = affine_moderator_draws(rep, layout, par, y, patterns, rng)
        out[..., layout.integrated[0]] = moderator
        if integrated_only:
            return out
    for chain, draw in np.ndindex(*par.shape[:2]):
        theta = par[chain, draw]
        ext, mats = matrices(np, theta, rep)
        chol_w, coef, chol_rest = conditioned_psi(np, mats["psi"], layout)
        if layout.affine:
            w = moderator[chain, draw][:, None]
        else:
            logp = node_loglik(np, theta, rep, layout, y, grid, patterns=patterns) + log_prior
            cdf = np.cumsum(np.exp(logp - logp.max(axis=1, keepdims=True)), axis=1)
            u = rng.uniform(size=(y.shape[0], 1)) * cdf[:, -1:]
            cell = np.minimum((cdf < u).sum(axis=1), len(grid) - 1)
            w = (grid[cell] + width * (rng.uniform(size=(y.shape[0], q)) - 0.5)) @ chol_w.T
        if integrated_only:
            out[chain, draw][:, layout.integrated] = w
            continue
        mean, loading = given_integrated(ext, mats, layout, w, coef, chol_rest)
        data = project(np, mats, rep, y, patterns=patterns)
        m = data.m[data.index]
        gt = loading.swapaxes(-1, -2)
        chol = np.linalg.cholesky(gt @ m @ loading + np.eye(len(layout.rest)))
        rhs = (gt @ (data.p - (m @ mean[..., None])[..., 0])[..., None])[..., 0]
        centre = np.linalg.solve(chol.swapaxes(-1, -2), np.linalg.solve(chol, rhs[..., None]))
        noise = np.linalg.solve(chol.swapaxes(-1, -2), rng.standard_normal(centre.shape))
        out[chain, draw] = mean + (loading @ (centre + noise))[..., 0]
    return out


def affine_moderator_draws(
    rep: Representation,
    layout: Layout,
    par: np.ndarray,
    y: np.ndarray,
    patterns: Patterns,
    rng: np.random.Generator,
) -> np.ndarray:
    """One draw of the moderator's score per respondent and parameter draw ``par`` (chain, draw,
    param) of an affine layout: from p(w | y_i) on ADAPTED_CELLS cells centred and scaled per
    respondent as the likelihood's adapted nodes (the density at each cell's centre, uniform
    within the cell). Per draw, the likelihood's own coefficients of log p(y_i | w)
    (:func:`~bayes_sor.model.quadrature.table_function`, the operations the fit compiled) and
    one numba loop over respondents and cells
    (:func:`~bayes_sor.model.quadrature_kernel.draw_on_cells`). Returns (chain, draw, obs)."""
    edges = np.linspace(-ADAPTED_SPAN, ADAPTED_SPAN, ADAPTED_CELLS + 1)
    cells = (edges[1:] + edges[:-1]) / 2
    table = table_function(rep, layout, y, patterns)
    flat = par.reshape(-1, par.shape[-1])
    out = np.empty((len(flat), y.shape[0]))
    for d, theta in enumerate(flat):
        uniforms = rng.uniform(size=(y.shape[0], 2))
        out[d] = draw_on_cells(table(theta), cells, edges[1] - edges[0], uniforms, layout.degree)
    return out.reshape(*par.shape[:2], y.shape[0])


def moderator_quantiles(scores: np.ndarray, rep: Representation, partable: ParTable) -> np.ndarray:
    """16th/50th/84th percentiles of each moderator's scores (..., obs, latent) ->
    (..., moderator, 3): the order statistic floor(q (n - 1)) that the conditional likelihood
    records (``moderator_quantiles``), so both likelihoods place W=p16/p50/p84 alike."""
    columns = scores[..., [rep.latents.index(w) for w in partable.moderators]]
    ranked = np.sort(columns, axis=-2)
    rows = [int(np.floor(q * (scores.shape[-2] - 1))) for q in (0.16, 0.50, 0.84)]
    return np.stack([ranked[..., r, :] for r in rows], axis=-1)
