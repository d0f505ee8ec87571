"""The conditional likelihood: items given sampled latent scores (continuous items normal,
ordinal items ordered probit), with intercepts and thresholds sampled centred on the scores'
mean.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from bayes_sor.data.categories import answer_codes
from bayes_sor.data.missing import LOG_2PI, Patterns
from bayes_sor.errors import ModelSpecError
from bayes_sor.model.latent import latent_scores
from bayes_sor.model.marginal import log_diagonal, padded_cholesky
from bayes_sor.model.ordinal import (
    ordinal_logp,
    padded_thresholds,
    threshold_layout,
)
from bayes_sor.model.parameters import (
    add_coord,
    block_dim,
    free_rows,
    model_matrices,
    named_par,
    shifted_locations,
)
from bayes_sor.spec.matrices import Representation
from bayes_sor.spec.partable import ParTable


def centred_locations(partable: ParTable) -> list[int]:
    """Free ids of the intercepts and thresholds that the conditional model samples centred on
    the latent scores' mean (:func:`_uncentre`)."""
    free = free_rows(partable)
    ordinal = set(partable.ordinal_items()) | set(partable.observed_structural)
    counts = partable.parameters.free.value_counts()
    rows = free[(free.op == "~1") & ~free.lhs.isin(ordinal) & ~free.prior.str.endswith("[sd]")]
    return [f for f in rows.index if counts.get(f, 0) == 1] + free.index[free.op == "|"].tolist()


def _item_blocks(rep: Representation, partable: ParTable) -> tuple[list[int], list[int]]:
    """Positions of the continuous and of the ordinal measurement items."""
    ordinal = set(partable.ordinal_items())
    observed = set(partable.observed_structural)
    continuous = [k for k, i in enumerate(rep.items) if i not in ordinal | observed]
    ordinal_pos = [k for k, i in enumerate(rep.items) if i in ordinal]
    off_diagonal = (rep.theta != rep.zero) & ~np.eye(len(rep.items), dtype=bool)
    touched = {rep.items[k] for k in np.flatnonzero(off_diagonal.any(axis=0))}
    unsupported = sorted(touched & (ordinal | observed))
    if unsupported:
        raise ModelSpecError(
            f"residual covariances of ordinal items or observed structural variables "
            f"({unsupported}) are not supported: remove them"
        )
    return continuous, ordinal_pos


def conditional_likelihood(
    par: pt.TensorVariable,
    rep: Representation,
    partable: ParTable,
    y: np.ndarray,
    save_latent: bool = False,
    centred: list[int] | None = None,
    centred_latents: Sequence[str] = (),
) -> None:
    """Items given sampled latent scores eta: continuous items Normal(nu + eta Lambda', theta),
    ordinal items ordered probit (:mod:`bayes_sor.data.categories`). ``centred``: free ids of the
    intercepts and thresholds sampled centred (:func:`_uncentre`); ``centred_latents``:
    latents whose scores are sampled centred (:func:`bayes_sor.model.latent.latent_scores`)."""
    psi = partable.table[(partable.table.op == "~~") & (partable.table.lhs != partable.table.rhs)]
    endo_cov = psi[psi.lhs.isin(partable.endogenous) | psi.rhs.isin(partable.endogenous)]
    if len(endo_cov):
        pairs = ", ".join(endo_cov.lhs + " ~~ " + endo_cov.rhs)
        raise ModelSpecError(
            f"residual covariances between endogenous latents ({pairs}) are only supported by "
            "the marginal likelihood; remove them or drop the latent interaction"
        )
    continuous, ordinal_pos = _item_blocks(rep, partable)
    eta = latent_scores(par, rep, partable, y, centred_latents)
    par = named_par(_uncentre(par, rep, partable, eta, centred or []))
    mats = model_matrices(par, rep)
    if continuous:
        _continuous_items(mats, rep, eta, y, continuous)
    if ordinal_pos:
        _ordinal_items(par, mats, rep, partable, eta, y, ordinal_pos)
    if save_latent:
        pm.Deterministic("latent_scores", eta, dims=("obs", "latent"))
    _moderator_quantiles(eta, rep, partable)


def _uncentre(
    par: pt.TensorVariable,
    rep: Representation,
    partable: ParTable,
    eta: pt.TensorVariable,
    centred: list[int],
) -> pt.TensorVariable:
    """Intercepts and thresholds from their centred versions: nu_j = m_j - lambda_j' mean(eta),
    t_jk = s_jk + lambda_j' mean(eta).

    NUTS samples m_j (flat) instead of nu_j, and s_jk (flat, ordered) instead of t_jk, with
    their priors as Potentials (the maps are shifts, Jacobian 1, so the posterior is
    unchanged). The likelihood then reads m_j + lambda_j' (eta_i - mean(eta)), and
    s_jk - lambda_j' (eta_i - mean(eta)) for thresholds: they no longer move with the sample
    mean of the latent scores, which made the intercepts the slowest-mixing parameters of the
    S-O-R models, and each ordinal item's anchor threshold those of its ordinal fit (Study A,
    4 x 1000 draws: min ESS 467 at the CT items' anchors, R-hat 1.011, before centring).
    The scores' mean, now told only by their prior, is one sampled coordinate of its own
    (:func:`bayes_sor.model.latent.reflect`); without that the intercepts still mixed slowest
    through lambda' mean(eta) (Study A, 4 x 1000: min ESS 444, 4422 with it).
    """
    if not centred:
        return par
    params = partable.parameters.reset_index(drop=True)
    free = free_rows(partable)
    positions = np.array([int(free.loc[f, "pos"]) for f in centred])
    items = [rep.items.index(params.lhs[p]) for p in positions]
    lam = model_matrices(par, rep)["lambda"][items]
    sign = np.where(params.op[positions] == "|", 1.0, -1.0)
    return shifted_locations(par, partable, centred, sign * (lam @ eta.mean(axis=0)))


def _continuous_items(
    mats: dict, rep: Representation, eta: pt.TensorVariable, y: np.ndarray, block: list[int]
) -> None:
    names = [rep.items[k] for k in block]
    dim = block_dim("continuous_item", names, rep.items, "item")
    mu = mats["nu"][block] + eta @ mats["lambda"][block].T
    theta = mats["theta"][np.ix_(block, block)]
    correlated = np.any(
        (rep.theta[np.ix_(block, block)] != rep.zero) & ~np.eye(len(block), dtype=bool)
    )
    if np.isnan(y[:, block]).any():
        _masked_items(mu, theta, y[:, block], correlated, dim)
        return
    data = pm.Data("y", y[:, block], dims=("obs", dim))
    if correlated:
        pm.MvNormal(
            "items", mu=mu, chol=pt.linalg.cholesky(theta), observed=data, dims=("obs", dim)
        )
    else:
        pm.Normal("items", mu=mu, sigma=pt.sqrt(pt.diag(theta)), observed=data, dims=("obs", dim))


def _masked_items(
    mu: pt.TensorVariable, theta: pt.TensorVariable, answers: np.ndarray, correlated: bool, dim: str
) -> None:
    """Continuous items with missing answers: only the answered cells enter the likelihood
    (no imputed values are sampled). Uncorrelated residuals: one Normal over the answered
    cells; correlated ones: per respondent, MvNormal of the answered items, with Theta's
    Cholesky factor per missingness pattern."""
    answered = ~np.isnan(answers)
    if not correlated:
        rows, cols = np.nonzero(answered)
        dim = add_coord("answered_cell", list(range(len(rows))))
        data = pm.Data("y", answers[rows, cols], dims=dim)
        pm.Normal(
            "items", mu=mu[rows, cols], sigma=pt.sqrt(pt.diag(theta))[cols], observed=data, dims=dim
        )
        return
    patterns = Patterns.of(answers)
    chol = padded_cholesky(theta, patterns)[patterns.index]
    data = pm.Data("y", np.where(answered, answers, 0.0), dims=("obs", dim))
    resid = pt.where(answered, data - mu, 0.0)
    z = pt.linalg.solve_triangular(chol, resid[..., None], lower=True)
    logp = pt.sum(z**2, axis=(-2, -1)) + log_diagonal(chol) + answered.sum(axis=1) * LOG_2PI
    pm.Potential("items_loglik", -0.5 * pt.sum(logp))


def _ordinal_items(
    par: pt.TensorVariable,
    mats: dict,
    rep: Representation,
    partable: ParTable,
    eta: pt.TensorVariable,
    y: np.ndarray,
    block: list[int],
) -> None:
    """Ordered probit per answer: only the interval of the observed category is evaluated."""
    names = [rep.items[k] for k in block]
    positions, offsets = threshold_layout(partable, names)
    codes = np.column_stack(
        [answer_codes(y[:, k], name, partable) for k, name in zip(block, names, strict=True)]
    )
    dim = block_dim("ordinal_item", names, rep.items, "item")
    answered = ~np.isnan(y[:, block])
    codes = np.where(answered, codes, 0)  # a valid placeholder; unanswered cells are left out
    data = pm.Data("y_ordinal", codes, dims=("obs", dim))
    mu = mats["nu"][block] + eta @ mats["lambda"][block].T
    sigma = pt.sqrt(pt.diag(mats["theta"])[block])
    tau = padded_thresholds(par, positions)
    logp = ordinal_logp(data, mu, sigma, tau, offsets)
    # A Potential, not a CustomDist: the padded thresholds of all items form one vector that
    # CustomDist would try to broadcast against the answers.
    pm.Potential(
        "ordinal_loglik", logp.sum() if answered.all() else logp[np.nonzero(answered)].sum()
    )


def _moderator_quantiles(eta: pt.TensorVariable, rep: Representation, partable: ParTable) -> None:
    """16th/50th/84th percentiles of each moderator's latent scores, per draw."""
    if not partable.moderators:
        return
    n = eta.shape[0]
    pos = [rep.latents.index(w) for w in partable.moderators]
    ranked = pt.sort(eta[:, pos], axis=0)
    rows = [pt.cast(pt.floor(q * (n - 1)), "int64") for q in (0.16, 0.50, 0.84)]
    pm.Deterministic(
        "moderator_quantiles",
        pt.stack([ranked[r] for r in rows], axis=1),
        dims=("moderator", "quantile"),
    )
