"""The marginal likelihood: items ~ MvNormal(nu, Sigma(theta)) from sufficient statistics, per
missingness pattern for incomplete answers (FIML), or the Wishart likelihood of a covariance
matrix.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pymc as pm
import pytensor.tensor as pt

from bayes_sor.data.missing import LOG_2PI, Patterns, PatternStatistics, psd_root, unanswered_blocks
from bayes_sor.model.parameters import add_coord, free_rows, model_matrices, shifted_locations
from bayes_sor.spec.groups import approximate_rows
from bayes_sor.spec.matrices import Representation, path_depth, representation
from bayes_sor.spec.partable import ParTable


def sufficient_statistics(y: np.ndarray) -> dict[str, np.ndarray]:
    """N, mean and the Cholesky factor of the (biased) sample covariance of complete data."""
    n = y.shape[0]
    mean = y.mean(axis=0)
    cov = (y - mean).T @ (y - mean) / n
    return {"n": np.array(n, dtype=float), "mean": mean, "cov_chol": np.linalg.cholesky(cov)}


def marginal_likelihood(
    par: pt.TensorVariable, rep: Representation, stats: dict, suffix: str = ""
) -> None:
    """Items ~ MvNormal(nu, Sigma(theta)) from sufficient statistics (cost independent of N).

    logL = -N/2 [log|Sigma| + tr(Sigma^-1 S) + (ybar - nu)' Sigma^-1 (ybar - nu) + p log 2 pi],
    evaluated through the Cholesky factor of Sigma: no explicit inverse. Without ``mean`` in
    ``stats`` (a covariance matrix as data) the mean term is absent and ``n`` is N - 1 with the
    unbiased S: the Wishart likelihood of S. ``suffix`` ends the names of the data and the
    potential (one group of a multiple-group model: ``_g2``).
    """
    mats = model_matrices(par, rep)
    chol = pt.linalg.cholesky(_implied_cov(mats, rep))
    n = pm.Data(f"n_obs{suffix}", stats["n"])
    cov_chol = pm.Data(f"item_cov_chol{suffix}", stats["cov_chol"], dims=("item", "item_"))
    scatter = cov_chol
    if stats.get("mean") is not None:
        mean = pm.Data(f"item_mean{suffix}", stats["mean"], dims="item")
        scatter = pt.concatenate([cov_chol, (mean - _implied_mean(mats, rep))[:, None]], axis=1)
    # tr(Sigma^-1 S) + quad = ||L^-1 [chol(S), ybar - nu]||^2: one triangular solve for both
    mahalanobis = pt.sum(pt.linalg.solve_triangular(chol, scatter, lower=True) ** 2)
    p = len(rep.items)
    pm.Potential(
        f"loglik{suffix}", -0.5 * n * (log_diagonal(chol) + mahalanobis + p * np.log(2 * np.pi))
    )


def _total_effects(mats: dict, rep: Representation) -> pt.TensorVariable | None:
    """(I - B)^-1, or ``None`` for a model without paths among the latents (the identity).

    The structural model is recursive (the parameter table refuses cycles), so B is nilpotent
    and (I - B)^-1 = I + B + ... + B^d, d the longest path: a few small products in Horner
    form instead of an LU factorisation (whose LAPACK call, and its gradient's, numba links
    anew in every process), and for a CFA (d = 0) nothing at all.
    """
    if not (depth := path_depth(rep)):
        return None
    eye = pt.eye(len(rep.latents))
    total = eye
    for _ in range(depth):
        total = eye + mats["beta"] @ total
    return total


def _implied_cov(mats: dict, rep: Representation) -> pt.TensorVariable:
    """Sigma = Lambda (I - B)^-1 Psi (I - B)^-T Lambda' + Theta."""
    latent_cov = mats["psi"]
    if (total := _total_effects(mats, rep)) is not None:
        latent_cov = total @ latent_cov @ total.T
    return mats["lambda"] @ latent_cov @ mats["lambda"].T + mats["theta"]


def _implied_mean(mats: dict, rep: Representation) -> pt.TensorVariable:
    """mu = nu + Lambda (I - B)^-1 alpha; nu alone where the model has no latent means."""
    if "alpha" not in mats:
        return mats["nu"]
    means = mats["alpha"]
    if (total := _total_effects(mats, rep)) is not None:
        means = total @ means
    return mats["nu"] + mats["lambda"] @ means


def padded_cholesky(sigma: pt.TensorVariable, patterns: Patterns) -> pt.TensorVariable:
    """Cholesky factor of Sigma per missingness pattern (K, p, p), one batched factorisation:
    the answered block, and the identity on unanswered items, which leaves the log-determinant
    and the solves against the answered items (zero elsewhere) unchanged. (For residual
    covariances given the latent scores; the marginal Sigma uses the precision identities of
    :func:`casewise_likelihood`.)"""
    eye = np.eye(patterns.mask.shape[1])
    return pt.linalg.cholesky(pt.where(patterns.pairs, sigma[None], eye))


def log_diagonal(chol: pt.TensorVariable) -> pt.TensorVariable:
    """log|Sigma| per matrix of a batch of Cholesky factors."""
    return 2 * pt.sum(pt.log(pt.diagonal(chol, axis1=-2, axis2=-1)), axis=-1)


def casewise_likelihood(
    par: pt.TensorVariable, rep: Representation, stats: PatternStatistics, suffix: str = ""
) -> None:
    """The marginal likelihood of incomplete answers (FIML): per missingness pattern, the
    answered items ~ MvNormal(nu_o, Sigma_oo), from the pattern's n, mean and scatter.

    logL = -1/2 sum_k n_k [log|Sigma_oo| + tr(Sigma_oo^-1 S_k) + d_k' Sigma_oo^-1 d_k
    + p_k log 2 pi]; the cost grows with the number of patterns, not with N. As in
    :func:`bayes_sor.data.missing.casewise_loglik`, through the precision matrix P = Sigma^-1 (one
    p x p factorisation): with m a pattern's unanswered items, Sigma_oo^-1 = P_oo - P_om
    P_mm^-1 P_mo and log|Sigma_oo| = log|Sigma| + log|P_mm|, so per pattern only the small
    block P_mm is factorised, batched over the patterns with as many unanswered items (measured
    5x faster per gradient than factorising each Sigma_oo on 20 items with 15 % missing).
    ``suffix`` as in :func:`marginal_likelihood`.
    """
    mats = model_matrices(par, rep)
    patterns = stats.patterns
    k = len(patterns.mask)
    chol = pt.linalg.cholesky(_implied_cov(mats, rep))
    precision = pt.linalg.cho_solve((chol, True), pt.eye(len(rep.items)))
    pattern = add_coord(f"pattern{suffix}", list(range(k)))
    n = pm.Data(f"pattern_n{suffix}", patterns.n, dims=pattern)
    mean = pm.Data(f"pattern_mean{suffix}", stats.mean, dims=(pattern, "item"))
    diff = pt.where(patterns.mask, mean - _implied_mean(mats, rep), 0.0)
    solved = diff @ precision
    quad = pt.sum(solved * diff, axis=-1)
    logdet = pt.zeros(k) + log_diagonal(chol)
    # the scatter term only for patterns of two or more respondents (a single one's is 0)
    spread = patterns.n > 1
    trace = pt.zeros(k)
    if spread.any():
        spread_pattern = add_coord(f"spread_pattern{suffix}", np.flatnonzero(spread).tolist())
        scatter = pm.Data(
            f"pattern_scatter{suffix}",
            stats.scatter[spread],
            dims=(spread_pattern, "item", "item_"),
        )
        trace = pt.set_subtensor(trace[spread], pt.sum(precision * scatter, axis=(-2, -1)))
    root = psd_root(stats.scatter)
    solve = pt.linalg.solve_triangular
    for rows, missing in unanswered_blocks(patterns):
        block = pt.linalg.cholesky(precision[missing[:, :, None], missing[:, None, :]])
        w = solve(block, solved[rows[:, None], missing][..., None], lower=True)
        quad = pt.inc_subtensor(quad[rows], -pt.sum(w**2, axis=(-2, -1)))
        logdet = pt.inc_subtensor(logdet[rows], log_diagonal(block))
        wide = spread[rows]
        if wide.any():
            z = solve(block[wide], precision[missing[wide]] @ root[rows[wide]], lower=True)
            trace = pt.inc_subtensor(trace[rows[wide]], -pt.sum(z**2, axis=(-2, -1)))
    answered = patterns.mask.sum(axis=1)
    pm.Potential(f"loglik{suffix}", -0.5 * pt.sum(n * (logdet + quad + trace + answered * LOG_2PI)))


def pooled_intercepts(partable: ParTable) -> list[int]:
    """Free ids of the item intercepts one across all groups, in a multiple-group model with
    free latent means (scalar invariance): :func:`uncentred_intercepts` samples them as the
    pooled item means."""
    if not partable.groups:
        return []
    params = partable.parameters
    latent_means = params[(params.op == "~1") & ~params.lhs.isin(partable.indicators)]
    if not (latent_means.free > 0).any():
        return []
    free = free_rows(partable)
    counts = params.free.value_counts()
    rows = free[(free.op == "~1") & free.lhs.isin(partable.indicators)]
    return [f for f in rows.index if counts.get(f, 0) == len(partable.groups)]


def uncentred_intercepts(
    par: pt.TensorVariable, partable: ParTable, centred: list[int], weights: np.ndarray
) -> pt.TensorVariable:
    """Shared intercepts from their pooled versions: nu_j = m_j - sum_g w_g (Lambda_g
    alpha_g)_j, w_g the groups' shares of the respondents.

    NUTS samples m_j (flat; the intercept's prior a Potential), the pooled model-implied mean
    of item j, instead of nu_j: nu_j and the later groups' latent means trade off (a group's
    item means are nu + Lambda alpha_g), which made the shared intercepts of a two-group
    Study A scalar model mix slowly (4 x 1000 draws: R-hat 1.022, bulk ESS 250).
    """
    if not centred:
        return par
    params = partable.parameters.reset_index(drop=True)
    free = free_rows(partable)
    items = [partable.indicators.index(params.lhs[int(free.loc[f, "pos"])]) for f in centred]
    shift = 0.0
    for g, weight in enumerate(weights, start=1):
        mats = model_matrices(par, representation(partable, g))
        shift = shift + weight * (mats["lambda"] @ mats["alpha"])[items]
    return shifted_locations(par, partable, centred, -shift, name="pooled_prior")


def own_intercepts(partable: ParTable) -> list[int]:
    """Free ids of the item intercepts of a multiple-group model that each belong to one row,
    of one group (intercepts not equal across groups, nor drawn around a common value by
    approximate invariance): :func:`whitened_intercepts` samples them."""
    if not partable.groups:
        return []
    free = free_rows(partable)
    counts = partable.parameters.free.value_counts()
    approximate = {f for ids in approximate_rows(partable).free for f in ids}
    rows = free[(free.op == "~1") & free.lhs.isin(partable.indicators)]
    return [f for f in rows.index if counts.get(f, 0) == 1 and f not in approximate]


def whitened_intercepts(
    par: pt.TensorVariable, partable: ParTable, own: list[int], y: np.ndarray, groups: np.ndarray
) -> pt.TensorVariable:
    """A group's own intercepts from whitened coordinates: nu_J = ybar_J + C (m_J - ybar_J),
    J the group's items with an own intercept, ybar and C C' = S_JJ / N its answers' means and
    covariance over N (the intercepts' posterior covariance, nearly).

    NUTS samples m_J (flat; the intercepts' priors a Potential): the map is linear with a
    constant Jacobian, so the posterior is the one of nu, in coordinates about uncorrelated
    with unit scale. Sampled directly, the intercepts of a group's items are correlated as its
    answers are (0.5-0.7 within a factor of Study A), which a diagonal mass matrix does not
    see: a two-group Study A (metric) mixed slowest in them (4 x 1000 draws: R-hat 1.011 in
    the first group's intercepts, bulk ESS 570).
    """
    if not own:
        return par
    params = partable.parameters.reset_index(drop=True)
    free = free_rows(partable)
    positions = np.array([int(free.loc[f, "pos"]) for f in own])
    group_of = params.group.to_numpy()[positions]
    items = np.array([partable.indicators.index(params.lhs[p]) for p in positions])
    shift = pt.zeros(len(own))
    for g, label in enumerate(partable.groups, start=1):
        which = np.flatnonzero(group_of == g)
        if not len(which):
            continue
        answers = y[groups == label][:, items[which]]
        mean = np.nanmean(answers, axis=0)
        scale = _mean_chol(answers)
        offset = par[positions[which]] - mean
        shift = pt.set_subtensor(shift[which], (scale - np.eye(len(which))) @ offset)
    return shifted_locations(par, partable, own, shift, name="whitened_prior")


def _mean_chol(answers: np.ndarray) -> np.ndarray:
    """The Cholesky factor of the answers' covariance over N (pairwise over answered cells), or
    its diagonal where that covariance is not positive definite (pairwise with few answers)."""
    cov = pd.DataFrame(answers).cov().to_numpy() / len(answers)
    try:
        return np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        return np.diag(np.sqrt(np.diag(cov)))
