"""The conditional likelihood: items given sampled latent scores (continuous items normal,
ordinal items ordered probit), with intercepts and thresholds sampled centred on the scores'
mean (one group's thresholds also standardised by the item's latent-response SD).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from bayes_sor.data.categories import answer_codes
from bayes_sor.data.missing import LOG_2PI, Patterns
from bayes_sor.errors import ModelSpecError
from bayes_sor.model.latent import GroupFactors, by_group, latent_scores, scores_from
from bayes_sor.model.marginal import log_diagonal, padded_cholesky
from bayes_sor.model.ordinal import (
    ordinal_logp,
    padded_thresholds,
    response_sd,
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
from bayes_sor.spec.matrices import Representation, representation
from bayes_sor.spec.partable import ParTable


def centred_locations(partable: ParTable) -> list[int]:
    """Free ids of the intercepts and thresholds that the conditional model samples centred on
    the latent scores' mean (:func:`_uncentre`)."""
    free = free_rows(partable)
    ordinal = set(partable.ordinal_items()) | set(partable.observed_structural)
    rows = free[(free.op == "~1") & ~free.lhs.isin(ordinal) & ~free.prior.str.endswith("[sd]")]
    rows = rows[rows.lhs.isin(partable.indicators)]  # not the latent means of later groups
    # one item's intercept, in one row per group (a label shared by items is left direct)
    params = partable.parameters
    carriers = params.assign(g=params.group if "group" in params.columns else 1).groupby("free")
    single = (carriers.lhs.nunique() == 1) & (carriers.size() == carriers.g.nunique())
    return [f for f in rows.index if single[f]] + free.index[free.op == "|"].tolist()


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
    _refuse_endogenous_covariances(partable)
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


def grouped_conditional_likelihood(
    par: pt.TensorVariable,
    partable: ParTable,
    y: np.ndarray,
    groups: Sequence[str],
    save_latent: bool = False,
    centred: list[int] | None = None,
    centred_latents: Sequence[str] = (),
) -> None:
    """:func:`conditional_likelihood` of a multiple-group table: each respondent's items and
    latent scores under its own group's parameters (the groups' matrices gathered per
    respondent: Lambda, nu, the residual SDs, B, Psi's Cholesky factor, the latent means and
    the product terms' coefficients), so the log density is the sum of each group's
    one-group conditional log density. The latent-score variables are the one-group model's,
    over all respondents in the data's order. ``centred``: intercepts and thresholds sampled
    centred on their group's mean latent scores (:func:`_grouped_uncentre`); the moderator
    percentiles are per group (dims ``moderator_group``, ``moderator``, ``quantile``)."""
    _refuse_endogenous_covariances(partable)
    labels = np.asarray(groups, dtype=str)
    index = np.array([partable.groups.index(label) for label in labels])
    reps = [representation(partable, g) for g in range(1, len(partable.groups) + 1)]
    rep = reps[0]
    off_diagonal = (rep.theta != rep.zero) & ~np.eye(len(rep.items), dtype=bool)
    if off_diagonal.any():
        raise ModelSpecError(
            "residual covariances of items in a multiple-group model with a latent interaction "
            "or ordinal items are not supported yet; remove them, or fit each group separately"
        )
    continuous, ordinal_pos = _item_blocks(rep, partable)
    eta = scores_from(*_gathered(par, reps, index), rep, partable, y, centred_latents)
    par = named_par(_grouped_uncentre(par, reps, partable, eta, index, centred or []))
    mats, _ = _gathered(par, reps, index)
    if continuous:
        _continuous_items(mats, rep, eta, y, continuous)
    if ordinal_pos:
        _ordinal_items(par, mats, rep, partable, eta, y, ordinal_pos, index)
    if save_latent:
        pm.Deterministic("latent_scores", eta, dims=("obs", "latent"))
    if partable.moderators:
        add_coord("moderator_group", list(partable.groups))
        pm.Deterministic(
            "moderator_quantiles",
            pt.stack([_quantiles(eta[index == g], rep, partable) for g in range(len(reps))]),
            dims=("moderator_group", "moderator", "quantile"),
        )


def _gathered(
    par: pt.TensorVariable, reps: list[Representation], index: np.ndarray
) -> tuple[dict, list[pt.TensorVariable]]:
    """Each group's model matrices and product coefficients, gathered per respondent
    (respondent i gets group ``index[i]``'s): the matrices for
    :func:`~bayes_sor.model.latent.scores_from` and the items (``theta_sd``: residual SDs;
    ``exo_factor``: the exogenous covariance's Cholesky factor, one per group, gathered)."""
    per_group = [model_matrices(par, r) for r in reps]
    mats: dict = {
        key: PerRespondent(pt.stack([m[key] for m in per_group]), index)
        for key in ("beta", "psi", "nu", "alpha")
        if key in per_group[0]
    }
    mats["theta_sd"] = pt.sqrt(pt.stack([pt.diag(m["theta"]) for m in per_group]))[index]
    mats["groups"] = per_group, index

    def exo_factor(idx: list[int]) -> GroupFactors:
        return GroupFactors(
            [pt.linalg.cholesky(m["psi"][np.ix_(idx, idx)]) for m in per_group], index
        )

    mats["exo_factor"] = exo_factor
    ext = pt.concatenate([par, pt.zeros(1)])
    products = [
        pt.stack([ext[r.interactions[k].param] for r in reps])[index]
        for k in range(len(reps[0].interactions))
    ]
    return mats, products


@dataclass(frozen=True)
class PerRespondent:
    """Each group's matrix, stacked (group first), read per respondent: ``x[..., i, j]`` is
    the (i, j) entry of each respondent's group's matrix (N,).

    The entries are taken from the small stack before they are gathered by respondent, so
    the latent scores gather (and their gradient scatters back) only the entries they use;
    whole matrices gathered by respondent (N x 7 x 7 for Study A) left every path
    coefficient's gradient a zero-filled N x 7 x 7 array to add into."""

    stacked: pt.TensorVariable
    index: np.ndarray

    def __getitem__(self, key: tuple) -> pt.TensorVariable:
        if not (isinstance(key, tuple) and key and key[0] is Ellipsis):
            raise TypeError("read a PerRespondent as x[..., entries]")
        return self.stacked[(slice(None), *key[1:])][self.index]


def _grouped_uncentre(
    par: pt.TensorVariable,
    reps: list[Representation],
    partable: ParTable,
    eta: pt.TensorVariable,
    index: np.ndarray,
    centred: list[int],
) -> pt.TensorVariable:
    """:func:`_uncentre` per group: a location carried by the rows of several groups (an
    intercept or threshold equal across groups) moves by the respondent-weighted mean of its
    groups' lambda_j' mean_g(eta) (any shift by other parameters has Jacobian 1).

    All shifts are one constant matrix times the groups' Lambda_g mean_g(eta), stacked: one
    product per group, where a product per location and group (66 on a two-group Study A)
    made a third of the gradient's graph."""
    if not centred:
        return par
    params = partable.parameters.reset_index(drop=True)
    shares = np.bincount(index, minlength=len(reps)) / len(index)
    n_items = len(reps[0].items)
    implied = pt.concatenate(
        [
            model_matrices(par, r)["lambda"] @ eta[index == g].mean(axis=0)
            for g, r in enumerate(reps)
        ]
    )
    weights = np.zeros((len(centred), len(reps) * n_items))
    for k, f in enumerate(centred):
        rows = params[params.free == f]
        share = shares[rows.group.to_numpy() - 1]
        sign = 1.0 if rows.op.iloc[0] == "|" else -1.0
        for w, g, item in zip(share / share.sum(), rows.group, rows.lhs, strict=True):
            weights[k, (g - 1) * n_items + reps[0].items.index(item)] += sign * w
    return shifted_locations(par, partable, centred, pt.dot(weights, implied))


def _refuse_endogenous_covariances(partable: ParTable) -> None:
    psi = partable.table[(partable.table.op == "~~") & (partable.table.lhs != partable.table.rhs)]
    endo_cov = psi[psi.lhs.isin(partable.endogenous) | psi.rhs.isin(partable.endogenous)]
    if len(endo_cov):
        pairs = ", ".join(dict.fromkeys(endo_cov.lhs + " ~~ " + endo_cov.rhs))
        raise ModelSpecError(
            f"residual covariances between endogenous latents ({pairs}) are only supported by "
            "the marginal likelihood; remove them or drop the latent interaction"
        )


def _uncentre(
    par: pt.TensorVariable,
    rep: Representation,
    partable: ParTable,
    eta: pt.TensorVariable,
    centred: list[int],
) -> pt.TensorVariable:
    """Intercepts and thresholds from their centred versions: nu_j = m_j - lambda_j' mean(eta),
    t_jk = sd_j u_jk + lambda_j' mean(eta), sd_j the item's latent-response SD over the
    respondents (:func:`~bayes_sor.model.ordinal.response_sd`).

    NUTS samples m_j (flat) instead of nu_j, and u_jk (flat, ordered) instead of t_jk, with
    their priors as Potentials (the maps are shifts, Jacobian 1, and for the thresholds a
    scaling whose Jacobian, the product of the sd_j, is a Potential too: the posterior is
    unchanged). The likelihood then reads m_j + lambda_j' (eta_i - mean(eta)), and
    sd_j u_jk - lambda_j' (eta_i - mean(eta)) for thresholds. The data fix u_jk, the probit of
    a cumulative proportion, whatever the loading; t_jk itself grows with the loading, which
    left the upper thresholds the slowest parameters of Study A ordinal (4 x 500 after 400:
    min bulk ESS 451 -> 590, tail 546 -> 885, R-hat 1.018 -> 1.010 standardised). Centred,
    intercepts and thresholds no longer move with the sample
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
    items = np.array([rep.items.index(params.lhs[p]) for p in positions])
    mats = model_matrices(par, rep)
    lam = mats["lambda"][items]
    is_threshold = (params.op[positions] == "|").to_numpy()
    shift = np.where(is_threshold, 1.0, -1.0) * (lam @ eta.mean(axis=0))
    if is_threshold.any():
        # t = sd_j u + lambda_j' mean(eta), written as a shift of u by (sd_j - 1) u so that
        # the priors land on t; the Jacobian of u -> t is the product of the SDs.
        k = np.flatnonzero(is_threshold)
        sd = response_sd(lam[k], pt.diag(mats["theta"])[items[k]], eta)
        shift = pt.inc_subtensor(shift[k], (sd - 1.0) * par[positions[k]])
        pm.Potential("thresholds_standardised_jacobian", pt.log(sd).sum())
    return shifted_locations(par, partable, centred, shift)


def _continuous_items(
    mats: dict, rep: Representation, eta: pt.TensorVariable, y: np.ndarray, block: list[int]
) -> None:
    names = [rep.items[k] for k in block]
    dim = block_dim("continuous_item", names, rep.items, "item")
    mu = _item_means(mats, eta, block)
    theta = None if "theta_sd" in mats else mats["theta"][np.ix_(block, block)]
    sigma = mats["theta_sd"][..., block] if theta is None else pt.sqrt(pt.diag(theta))
    correlated = np.any(
        (rep.theta[np.ix_(block, block)] != rep.zero) & ~np.eye(len(block), dtype=bool)
    )
    if np.isnan(y[:, block]).any():
        _masked_items(mu, theta, y[:, block], correlated, dim, sigma)
        return
    data = pm.Data("y", y[:, block], dims=("obs", dim))
    if correlated:
        pm.MvNormal(
            "items", mu=mu, chol=pt.linalg.cholesky(theta), observed=data, dims=("obs", dim)
        )
    else:
        pm.Normal("items", mu=mu, sigma=sigma, observed=data, dims=("obs", dim))


def _masked_items(
    mu: pt.TensorVariable,
    theta: pt.TensorVariable | None,
    answers: np.ndarray,
    correlated: bool,
    dim: str,
    sigma: pt.TensorVariable,
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
        sd = sigma[cols] if sigma.ndim == 1 else sigma[rows, cols]
        pm.Normal("items", mu=mu[rows, cols], sigma=sd, observed=data, dims=dim)
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
    group_index: np.ndarray | None = None,
) -> None:
    """Ordered probit per answer: only the interval of the observed category is evaluated.
    ``group_index``: each respondent's group (0, 1, ...) in a multiple-group model, whose
    groups' padded thresholds lie one after the other (a respondent's offsets moved by its
    group's)."""
    names = [rep.items[k] for k in block]
    positions, offsets = threshold_layout(partable, names)
    if group_index is not None:
        layouts = [threshold_layout(partable, names, g) for g in range(1, len(partable.groups) + 1)]
        positions = np.concatenate([p for p, _ in layouts])
        offsets = group_index[:, None] * len(layouts[0][0]) + layouts[0][1][None, :]
    codes = np.column_stack(
        [answer_codes(y[:, k], name, partable) for k, name in zip(block, names, strict=True)]
    )
    dim = block_dim("ordinal_item", names, rep.items, "item")
    answered = ~np.isnan(y[:, block])
    codes = np.where(answered, codes, 0)  # a valid placeholder; unanswered cells are left out
    data = pm.Data("y_ordinal", codes, dims=("obs", dim))
    mu = _item_means(mats, eta, block)
    if "theta_sd" in mats:
        sigma = mats["theta_sd"][..., block]
    else:
        sigma = pt.sqrt(pt.diag(mats["theta"])[block])
    tau = padded_thresholds(par, positions)
    logp = ordinal_logp(data, mu, sigma, tau, offsets)
    # A Potential, not a CustomDist: the padded thresholds of all items form one vector that
    # CustomDist would try to broadcast against the answers.
    pm.Potential(
        "ordinal_loglik", logp.sum() if answered.all() else logp[np.nonzero(answered)].sum()
    )


def _item_means(mats: dict, eta: pt.TensorVariable, block: list[int]) -> pt.TensorVariable:
    """nu + eta Lambda' of the items ``block`` (obs x items); in a multiple-group model
    (``mats["groups"]``: each group's matrices, each respondent's group) each respondent's
    group's."""
    if "groups" not in mats:
        return mats["nu"][block] + eta @ mats["lambda"][block].T
    per_group, index = mats["groups"]
    return by_group(index, [m["nu"][block] + eta @ m["lambda"][block].T for m in per_group])


def _moderator_quantiles(eta: pt.TensorVariable, rep: Representation, partable: ParTable) -> None:
    """16th/50th/84th percentiles of each moderator's latent scores, per draw."""
    if not partable.moderators:
        return
    pm.Deterministic(
        "moderator_quantiles", _quantiles(eta, rep, partable), dims=("moderator", "quantile")
    )


def _quantiles(eta: pt.TensorVariable, rep: Representation, partable: ParTable):
    """(moderator x 3) percentiles of the moderators' scores ``eta`` (obs x latent)."""
    n = eta.shape[0]
    pos = [rep.latents.index(w) for w in partable.moderators]
    ranked = pt.sort(eta[:, pos], axis=0)
    rows = [pt.cast(pt.floor(q * (n - 1)), "int64") for q in (0.16, 0.50, 0.84)]
    return pt.stack([ranked[r] for r in rows], axis=1)
