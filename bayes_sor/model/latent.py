"""Latent scores for the conditional likelihood, built in causal order: centred or non-centred
(:mod:`bayes_sor.model.parameterisation`), latent products, observed structural variables as
data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from bayes_sor.errors import DataError
from bayes_sor.model.parameters import add_coord, block_dim, model_matrices
from bayes_sor.spec.matrices import Representation
from bayes_sor.spec.partable import ParTable

#: the centred latent-score variables: the exogenous block, and one per endogenous latent
CENTRED_EXOGENOUS, CENTRED_PREFIX = "latent_exogenous", "latent_eta_"


def reflect(
    x: np.ndarray | pt.TensorVariable, n: int | None = None
) -> np.ndarray | pt.TensorVariable:
    """The Householder reflection H x along the respondents' axis (axis 0), NumPy or PyTensor:
    H swaps the first unit vector e_1 and u = (1, ..., 1) / sqrt(N) and is its own inverse.

    Every latent-score variable is sampled reflected (the scores are H times it). Once the
    intercepts and thresholds are centred on the scores' mean (:mod:`.conditional`), the items
    no longer say where that mean lies; only the prior does, which leaves the mean direction
    u sqrt(1 + r) times wider than each single score's (r: the items' information over the
    prior's, 5-10 on Study A). A diagonal mass matrix cannot see a direction shared by N
    coordinates, so the mean wandered slowly from draw to draw, and with it the intercepts
    and thresholds (through lambda' mean(eta)), the slowest-mixing parameters (Study A: min
    ESS 444 -> 4422 over the intercepts, benchmarks/RESULTS.md). Reflected, the mean is the
    first row of the sampled variable, one coordinate whose own scale the diagonal adapts.
    H is orthogonal, so the density of the reflected variable is the scores' density at H x
    (Jacobian 1): iid rows stay iid with the same covariance, their means reflected too.
    ``n``: the number of respondents (a PyTensor variable's is not known before sampling).
    """
    n = x.shape[0] if n is None else n
    v = np.full(n, -1 / np.sqrt(n))  # e_1 - u
    v[0] += 1.0
    dot = np.dot if isinstance(x, np.ndarray) else pt.dot
    # H x = x - v (2 v'x / v'v) with v a constant: a BLAS product and one fused update (+16 %
    # per gradient at N = 2000; row sums and a row-0 update instead: +50 %, RESULTS.md)
    coef = (2.0 / (v @ v)) * dot(v, x)
    return x - (v[:, None] * coef[None, :] if x.ndim == 2 else v * coef)


def is_reflected(name: str, grouped: bool) -> bool:
    """Whether the latent-score variable ``name`` is sampled reflected (:func:`reflect`): every
    one of a one-group model; in a multiple-group model only the standard normal ``latent_z``,
    since H keeps the density of iid rows only, not of rows with each group's covariance."""
    return name == "latent_z" or not grouped


@dataclass
class _ObservedBlock:
    """Observed structural variables: their data (constant) and intercepts (parameters)."""

    names: list[str]
    data: pt.TensorVariable
    nu: pt.TensorVariable

    def take(self, names: list[str]) -> tuple[pt.TensorVariable, pt.TensorVariable]:
        """(data, intercepts) of some of the variables."""
        idx = [self.names.index(v) for v in names]
        return self.data[:, idx], self.nu[..., idx]

    def centred(self, name: str) -> pt.TensorVariable:
        """The variable's score in the structural model: data minus intercept."""
        k = self.names.index(name)
        return self.data[:, k] - self.nu[..., k]


def _observed_block(
    mats: dict, rep: Representation, partable: ParTable, y: np.ndarray
) -> _ObservedBlock | None:
    names = partable.observed_structural
    if not names:
        return None
    idx = [rep.items.index(v) for v in names]
    incomplete = [v for v, k in zip(names, idx, strict=True) if np.isnan(y[:, k]).any()]
    if incomplete:
        raise DataError(
            f"the observed variable(s) {incomplete} have missing values, which the conditional "
            "likelihood cannot model (they enter the structural model as data); use --missing "
            "listwise, or the marginal likelihood if the model has no latent interaction"
        )
    data = pm.Data("y_observed", y[:, idx], dims=("obs", add_coord("observed_variable", names)))
    return _ObservedBlock(names, data, mats["nu"][..., idx])


def latent_scores(
    par: pt.TensorVariable,
    rep: Representation,
    partable: ParTable,
    y: np.ndarray,
    centred: Sequence[str] = (),
) -> pt.TensorVariable:
    """Latent scores (obs x latent), built in causal order.

    The latents in ``centred`` have their scores sampled themselves (exogenous ones as the
    MvNormal ``latent_exogenous``, an endogenous one ``f`` as the Normal ``latent_eta_f``
    around its linear predictor); the others are non-centred, standard normal deviates
    ``latent_z`` scaled by the Cholesky factor of the exogenous covariance or by the
    disturbance SD (:mod:`bayes_sor.model.parameterisation` says which, and why). Latent products
    enter the predictors of interactions. Observed structural variables
    (:attr:`~bayes_sor.spec.partable.ParTable.observed_structural`) enter as data, ``y - nu``, with
    their structural equations as likelihood terms (as indicators their residual variance is
    0, which a Normal cannot carry).
    """
    ext = pt.concatenate([par, pt.zeros(1)])
    products = [ext[t.param] for t in rep.interactions]
    return scores_from(model_matrices(par, rep), products, rep, partable, y, centred)


def scores_from(
    mats: dict,
    products: list[pt.TensorVariable],
    rep: Representation,
    partable: ParTable,
    y: np.ndarray,
    centred: Sequence[str] = (),
) -> pt.TensorVariable:
    """:func:`latent_scores` from the model matrices and the coefficients of the latent
    products (one per ``rep.interactions``). The matrices may carry a leading respondent axis
    (a multiple-group model's parameters gathered per respondent,
    :func:`bayes_sor.model.conditional.grouped_conditional_likelihood`; then ``mats`` also has
    ``exo_factor``, the exogenous covariance's Cholesky factors, :class:`GroupFactors`), and
    latent means ``alpha`` (a multiple-group table's) shift the scores."""
    pos = {f: i for i, f in enumerate(rep.latents)}
    block = _observed_block(mats, rep, partable, y)
    observed = block.names if block else []
    deviates = [f for f in rep.latents if f not in observed and f not in centred]
    z_dim = block_dim("noncentred_latent", deviates, rep.latents, "latent")
    n = y.shape[0]
    z = reflect(pm.Normal("latent_z", 0.0, 1.0, dims=("obs", z_dim)), n) if deviates else None
    z_of = {f: z[:, k] for k, f in enumerate(deviates)}
    columns = _exogenous_scores(mats, pos, partable, block, z_of, centred, n)
    outcomes: dict[str, pt.TensorVariable] = {}
    for f in partable.order:
        i = pos[f]
        if i in columns:
            continue
        mean = pt.zeros(y.shape[0])
        if "alpha" in mats and rep.alpha[i] != rep.zero:
            mean = mean + mats["alpha"][..., i]
        for j in columns:
            if rep.beta[i, j] != rep.zero:
                mean = mean + mats["beta"][..., i, j] * columns[j]
        for t, gamma in zip(rep.interactions, products, strict=True):
            if t.outcome == i:
                mean = mean + gamma * columns[t.first] * columns[t.second]
        if f in observed:
            outcomes[f] = mean
            columns[i] = block.centred(f)
        elif f in centred:
            sd = pt.sqrt(mats["psi"][..., i, i])
            if "exo_factor" in mats:  # each group's own variance: H would mix the groups'
                columns[i] = pm.Normal(f"{CENTRED_PREFIX}{f}", mean, sd, dims="obs")
            else:
                columns[i] = reflect(
                    pm.Normal(f"{CENTRED_PREFIX}{f}", reflect(mean, n), sd, dims="obs"), n
                )
        else:
            columns[i] = mean + pt.sqrt(mats["psi"][..., i, i]) * z_of[f]
    if outcomes:
        names = list(outcomes)
        data, nu = block.take(names)
        idx = [pos[f] for f in names]
        pm.Normal(
            "observed_outcomes",
            mu=nu + pt.stack(list(outcomes.values()), axis=1),
            sigma=pt.sqrt(mats["psi"][..., idx, idx]),
            observed=data,
            dims=("obs", add_coord("observed_outcome", names)),
        )
    return pt.stack([columns[i] for i in range(len(rep.latents))], axis=1)


def _exogenous_scores(
    mats: dict,
    pos: dict[str, int],
    partable: ParTable,
    block: _ObservedBlock | None,
    z_of: dict[str, pt.TensorVariable],
    centred: Sequence[str],
    n: int,
) -> dict[int, pt.TensorVariable]:
    """Exogenous scores, in three blocks: observed variables O, centred latents C, non-centred
    latents N. Psi is ordered (O, C, N) and factored L L'; each block is drawn given the
    standardised scores of the blocks before it: the data of O are MvNormal(nu_O, L_OO L_OO'),
    ``latent_exogenous`` (C) is MvNormal(L_CO z_O, L_CC L_CC'), and eta_N = L_NO z_O + L_NC z_C
    + L_NN z_N, with z_B = L_BB^-1 (scores_B - mean_B)."""
    observed = block.names if block else []
    exo_obs = [f for f in partable.exogenous if f in observed]
    exo_centred = [f for f in partable.exogenous if f in centred]
    exo_lat = [f for f in partable.exogenous if f not in observed and f not in centred]
    idx = [pos[f] for f in exo_obs + exo_centred + exo_lat]
    if not idx:
        return {}
    if "exo_factor" in mats:
        chol = mats["exo_factor"](idx)
    else:
        chol = pt.linalg.cholesky(mats["psi"][np.ix_(idx, idx)])
    columns: dict[int, pt.TensorVariable] = {pos[f]: block.centred(f) for f in exo_obs}
    standardised: list[pt.TensorVariable] = []  # z of the blocks drawn so far, in order

    def given(lo: int, hi: int) -> pt.TensorVariable:
        """The mean of rows lo:hi of the factor given the blocks before them (lo > 0)."""
        return _times(chol[lo:hi, :lo], pt.concatenate(standardised, axis=1))

    def standardise(lo: int, hi: int, scores, mean) -> None:
        if hi < len(idx):  # a later block is drawn given these
            standardised.append(_solve(chol[lo:hi, lo:hi], scores - mean))

    def location(names: list[str]) -> pt.TensorVariable:
        """The latent means of ``names`` (a multiple-group table has them)."""
        return mats["alpha"][..., [pos[f] for f in names]]

    k = len(exo_obs)
    if exo_obs:
        data, nu = block.take(exo_obs)
        dims = ("obs", add_coord("observed_exogenous", exo_obs))
        if isinstance(chol, GroupFactors):
            pm.Potential("exogenous_observed", chol[:k, :k].logp(data, nu))
        else:
            pm.MvNormal("exogenous_observed", mu=nu, chol=chol[:k, :k], observed=data, dims=dims)
        standardise(0, k, data, nu)
    if exo_centred:
        hi = k + len(exo_centred)
        mean = given(k, hi) if k else pt.zeros(len(exo_centred))
        if "alpha" in mats:
            mean = mean + location(exo_centred)
        dims = ("obs", add_coord("centred_exogenous", exo_centred))
        if isinstance(chol, GroupFactors):  # the same density, each group's factor dense
            # not reflected: H keeps iid rows' density only, not rows of several covariances
            scores = pm.Flat(CENTRED_EXOGENOUS, dims=dims)
            pm.Potential(f"{CENTRED_EXOGENOUS}_prior", chol[k:hi, k:hi].logp(scores, mean))
        else:
            if k:
                mu = reflect(mean, n)
            elif "alpha" in mats:  # rows alike reflect to sqrt(N) e_1 mean': not alike
                mu = reflect(pt.broadcast_to(mean, (n, hi)), n)
            else:
                mu = mean  # zero means reflect to zero
            scores = reflect(
                pm.MvNormal(CENTRED_EXOGENOUS, mu=mu, chol=chol[k:hi, k:hi], dims=dims), n
            )
        columns.update({pos[f]: scores[:, j] for j, f in enumerate(exo_centred)})
        standardise(k, hi, scores, mean)
        k = hi
    if exo_lat:
        scores = _times(chol[k:, k:], pt.stack([z_of[f] for f in exo_lat], axis=1))
        if k:
            scores = scores + given(k, len(idx))
        if "alpha" in mats:
            scores = scores + location(exo_lat)
        columns.update({pos[f]: scores[:, j] for j, f in enumerate(exo_lat)})
    return columns


def by_group(index: np.ndarray, values: list[pt.TensorVariable]) -> pt.TensorVariable:
    """Row i of ``values[index[i]]`` (each obs x ...): every group's value computed for all
    respondents, each respondent's own kept."""
    out = values[0]
    for g in range(1, len(values)):
        mask = (index == g).reshape(-1, *([1] * (values[g].ndim - 1)))
        out = pt.switch(mask, values[g], out)
    return out


@dataclass(frozen=True)
class GroupFactors:
    """The exogenous covariance's Cholesky factor of each group of a multiple-group model and
    each respondent's group (``index``). Products, solves and the normal density are each
    group's dense ones, each respondent's own kept (:func:`by_group`): a batch of one small
    solve per respondent was many times slower."""

    factors: list[pt.TensorVariable]
    index: np.ndarray

    def __getitem__(self, key) -> GroupFactors:
        return GroupFactors([f[key] for f in self.factors], self.index)

    def times(self, z: pt.TensorVariable) -> pt.TensorVariable:
        return by_group(self.index, [z @ f.T for f in self.factors])

    def solve(self, x: pt.TensorVariable) -> pt.TensorVariable:
        return by_group(
            self.index, [pt.linalg.solve_triangular(f, x.T, lower=True).T for f in self.factors]
        )

    def logp(self, x: pt.TensorVariable, mu: pt.TensorVariable) -> pt.TensorVariable:
        """Sum over respondents of log MvNormal(x_i | mu_i, L_g L_g'), g the respondent's."""
        z = self.solve(x - mu)
        log_det = pt.stack([pt.sum(pt.log(pt.diag(f))) for f in self.factors])[self.index]
        return -0.5 * pt.sum(z**2) - pt.sum(log_det) - 0.5 * z.size * np.log(2 * np.pi)


def _times(factor, z: pt.TensorVariable) -> pt.TensorVariable:
    """Each respondent's ``factor @ z_i`` (one factor, or one per group)."""
    return factor.times(z) if isinstance(factor, GroupFactors) else z @ factor.T


def _solve(factor, x: pt.TensorVariable) -> pt.TensorVariable:
    """Each respondent's ``factor^-1 x_i`` (``factor`` lower triangular, one or one per group)."""
    if isinstance(factor, GroupFactors):
        return factor.solve(x)
    return pt.linalg.solve_triangular(factor, x.T, lower=True).T


def raw_latent_names(model: pm.Model) -> list[str]:
    """The sampler's latent-score variables (``latent_z`` and the centred ones): what a run
    folder leaves out unless latent scores are asked for."""
    return [
        rv.name
        for rv in model.free_RVs
        if rv.name in ("latent_z", CENTRED_EXOGENOUS) or rv.name.startswith(CENTRED_PREFIX)
    ]
