"""Parameter table + data -> PyMC model.

One small function per piece, as bambi does: :func:`parameter_vector` turns the free parameters
and their priors into the full parameter vector ``par`` (one entry per table row, stored in the
posterior as ``par`` with dim ``param``); :func:`marginal_likelihood` and
:func:`conditional_likelihood` add the data. Every later stage reads ``par`` through the
:mod:`bayes_sor.matrices` indices, so both likelihoods produce the same posterior names.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pymc as pm
import pytensor.tensor as pt

from bayes_sor.errors import ModelSpecError
from bayes_sor.matrices import Representation, representation
from bayes_sor.partable import ParTable
from bayes_sor.priors import POSITIVE, group_rv, parse_prior

LIKELIHOODS = ("auto", "marginal", "conditional")


def marginal_reason(partable: ParTable) -> str:
    """Why the marginal likelihood cannot be used for this model ('' when it can)."""
    if partable.interactions:
        return "the model has a latent interaction, whose likelihood has no closed form"
    if partable.ordinal_items():
        return "the model has ordinal items, whose likelihood is not multivariate normal"
    return ""


def choose_likelihood(partable: ParTable, likelihood: str = "auto") -> str:
    """Resolve ``auto``: marginal whenever it is valid, conditional otherwise."""
    if likelihood not in LIKELIHOODS:
        raise ModelSpecError(f"unknown likelihood {likelihood!r}; use one of {LIKELIHOODS}")
    reason = marginal_reason(partable)
    if likelihood == "marginal" and reason:
        raise ModelSpecError(
            f"the marginal likelihood cannot be used: {reason}; use --likelihood conditional "
            "(or auto)"
        )
    if likelihood == "auto":
        return "conditional" if reason else "marginal"
    return likelihood


def _free_rows(partable: ParTable) -> pd.DataFrame:
    """One row per free parameter (the first table row carrying each free index)."""
    params = partable.parameters.reset_index(drop=True)
    params["pos"] = np.arange(len(params))
    return params[params.free > 0].drop_duplicates("free").set_index("free", drop=False)


def parameter_vector(partable: ParTable, rep: Representation) -> pt.TensorVariable:
    """Free parameters with their priors -> the full parameter vector (Deterministic ``par``).

    Free parameters sharing a prior family form one vector random variable named
    ``<family>_params`` (``[sd]`` priors: ``<family>_sd_params``), so the graph stays small.
    Covariances are built from correlations: an LKJ matrix for the exogenous latents,
    ``beta`` priors on (rho + 1) / 2 for residual covariances.
    """
    params = partable.parameters.reset_index(drop=True)
    free = _free_rows(partable)
    exo = partable.exogenous
    exo_cov = free[free.prior.str.startswith("lkj")]
    res_cov = free[(free.lhs != free.rhs) & (free.op == "~~") & ~free.index.isin(exo_cov.index)]
    ordinary = free.drop(exo_cov.index).drop(res_cov.index)

    groups: dict[tuple[str, bool], list[int]] = defaultdict(list)
    priors = {}
    for f, r in ordinary.iterrows():
        prior = parse_prior(r.prior, f"'{r.lhs} {r.op} {r.rhs}'")
        if r.op == "~~" and prior.family not in POSITIVE:
            raise ModelSpecError(
                f"the variance '{r.lhs} ~~ {r.rhs}' needs a positive prior (e.g. "
                f"gamma(1,0.5)[sd]); {r.prior!r} is not"
            )
        priors[f] = prior
        groups[(prior.family, prior.on_sd)].append(f)
    # Vectorised assembly: one concatenation and one gather build the whole vector, since a
    # graph with one indexing node per parameter takes far longer to compile.
    pieces, offset, free_pos = [], 0, {}
    for (family, on_sd), members in groups.items():
        name = f"{family}{'_sd' if on_sd else ''}_params"
        args = np.array([priors[f].args for f in members])
        dim = f"{name}_dim"
        pm.modelcontext(None).add_coord(dim, [partable.names[free.loc[f, "pos"]] for f in members])
        rv = group_rv(name, family, args, dim)
        pieces.append(rv**2 if on_sd else rv)
        free_pos.update({f: offset + k for k, f in enumerate(members)})
        offset += len(members)
    fixed = params.value.fillna(0.0).to_numpy(dtype=float)
    gather = np.array([free_pos.get(f, offset + k) for k, f in enumerate(params.free)])
    stage = pt.concatenate([*pieces, pt.as_tensor_variable(fixed)])[gather]

    correlations, cov_rows = [], []
    if len(exo_cov):
        etas = {parse_prior(p).args[0] for p in exo_cov.prior}
        if len(etas) > 1:
            raise ModelSpecError("all exogenous latent correlations must share one lkj() prior")
        if len(exo_cov) != len(exo) * (len(exo) - 1) // 2:
            raise ModelSpecError(
                "the exogenous latents' correlations must all be free (an LKJ prior covers the "
                "whole matrix); to fix one, regress instead or use residual covariances"
            )
        chol = pm.LKJCorr("latent_cor_chol", n=len(exo), eta=etas.pop())
        corr = chol @ chol.T
        pos = {f: i for i, f in enumerate(exo)}
        correlations.append(corr[[pos[v] for v in exo_cov.lhs], [pos[v] for v in exo_cov.rhs]])
        cov_rows += list(exo_cov.index)
    if len(res_cov):
        args = np.array([parse_prior(p, "a residual covariance").args for p in res_cov.prior])
        raw = pm.Beta("residual_cor_raw", alpha=args[:, 0], beta=args[:, 1],
                      shape=len(res_cov))
        correlations.append(2 * raw - 1)
        cov_rows += list(res_cov.index)
    if correlations:
        var_pos = {
            v: int(np.flatnonzero((params.op == "~~") & (params.lhs == v) & (params.rhs == v))[0])
            for v in rep.items + rep.latents
        }
        rho = pt.concatenate(correlations)
        covs = free.loc[cov_rows]
        left, right = [var_pos[v] for v in covs.lhs], [var_pos[v] for v in covs.rhs]
        scale = pt.sqrt(stage[left] * stage[right])
        source = {f: k for k, f in enumerate(cov_rows)}
        rows = np.flatnonzero(params.free.isin(cov_rows))
        stage = pt.set_subtensor(stage[rows], (rho * scale)[[source[f] for f in params.free[rows]]])
    return pm.Deterministic("par", stage, dims="param")


def _matrices(par: pt.TensorVariable, rep: Representation) -> dict[str, pt.TensorVariable]:
    ext = pt.concatenate([par, pt.zeros(1)])
    return {
        "lambda": ext[rep.lambda_],
        "beta": ext[rep.beta],
        "psi": ext[rep.psi],
        "theta": ext[rep.theta],
        "nu": ext[rep.nu],
    }


def sufficient_statistics(y: np.ndarray) -> dict[str, np.ndarray]:
    """N, mean and the Cholesky factor of the (biased) sample covariance of complete data."""
    n = y.shape[0]
    mean = y.mean(axis=0)
    cov = (y - mean).T @ (y - mean) / n
    return {"n": np.array(n, dtype=float), "mean": mean, "cov_chol": np.linalg.cholesky(cov)}


def marginal_likelihood(par: pt.TensorVariable, rep: Representation, stats: dict) -> None:
    """Items ~ MvNormal(nu, Sigma(theta)) from sufficient statistics (cost independent of N).

    logL = -N/2 [log|Sigma| + tr(Sigma^-1 S) + (ybar - nu)' Sigma^-1 (ybar - nu) + p log 2 pi],
    evaluated through the Cholesky factor of Sigma: no explicit inverse.
    """
    mats = _matrices(par, rep)
    m = len(rep.latents)
    inv = pt.linalg.inv(pt.eye(m) - mats["beta"])
    sigma = mats["lambda"] @ inv @ mats["psi"] @ inv.T @ mats["lambda"].T + mats["theta"]
    chol = pt.linalg.cholesky(sigma)
    n = pm.Data("n_obs", stats["n"])
    mean = pm.Data("item_mean", stats["mean"], dims="item")
    cov_chol = pm.Data("item_cov_chol", stats["cov_chol"], dims=("item", "item_"))
    solve = pt.linalg.solve_triangular
    trace = pt.sum(solve(chol, cov_chol, lower=True) ** 2)
    quad = pt.sum(solve(chol, mean - mats["nu"], lower=True) ** 2)
    logdet = 2 * pt.sum(pt.log(pt.diag(chol)))
    p = len(rep.items)
    pm.Potential("loglik", -0.5 * n * (logdet + trace + quad + p * np.log(2 * np.pi)))


def latent_scores(par: pt.TensorVariable, rep: Representation, order: list[str],
                  exogenous: list[str], n_obs: int) -> pt.TensorVariable:
    """Non-centred latent scores (obs x latent), built in causal order.

    Exogenous latents: standard normal scores times the Cholesky factor of their covariance.
    Endogenous latents: linear predictors, latent products for interactions, plus a scaled
    standard normal disturbance.
    """
    mats = _matrices(par, rep)
    pos = {f: i for i, f in enumerate(rep.latents)}
    z = pm.Normal("latent_z", 0.0, 1.0, dims=("obs", "latent"))
    exo_idx = [pos[f] for f in exogenous]
    psi_exo = mats["psi"][np.ix_(exo_idx, exo_idx)]
    exo_scores = z[:, exo_idx] @ pt.linalg.cholesky(psi_exo).T
    columns: dict[int, pt.TensorVariable] = {i: exo_scores[:, k] for k, i in enumerate(exo_idx)}
    for f in order:
        i = pos[f]
        if i in columns:
            continue
        mean = pt.zeros(n_obs)
        for j in columns:
            if rep.beta[i, j] != rep.zero:
                mean = mean + mats["beta"][i, j] * columns[j]
        ext = pt.concatenate([par, pt.zeros(1)])
        for t in rep.interactions:
            if t.outcome == i:
                mean = mean + ext[t.param] * columns[t.first] * columns[t.second]
        columns[i] = mean + pt.sqrt(mats["psi"][i, i]) * z[:, i]
    return pt.stack([columns[i] for i in range(len(rep.latents))], axis=1)


def conditional_likelihood(par: pt.TensorVariable, rep: Representation, partable: ParTable,
                           y: np.ndarray) -> None:
    """Items ~ Normal(nu + eta Lambda', theta) given sampled latent scores eta."""
    psi = partable.table[(partable.table.op == "~~") & (partable.table.lhs != partable.table.rhs)]
    endo_cov = psi[psi.lhs.isin(partable.endogenous) | psi.rhs.isin(partable.endogenous)]
    if len(endo_cov):
        pairs = ", ".join(endo_cov.lhs + " ~~ " + endo_cov.rhs)
        raise ModelSpecError(
            f"residual covariances between endogenous latents ({pairs}) are only supported by "
            "the marginal likelihood; remove them or drop the latent interaction"
        )
    mats = _matrices(par, rep)
    eta = latent_scores(par, rep, partable.order, partable.exogenous, y.shape[0])
    data = pm.Data("y", y, dims=("obs", "item"))
    mu = mats["nu"] + eta @ mats["lambda"].T
    if np.any((rep.theta != rep.zero) & ~np.eye(len(rep.items), dtype=bool)):
        pm.MvNormal("items", mu=mu, chol=pt.linalg.cholesky(mats["theta"]), observed=data,
                    dims=("obs", "item"))
    else:
        pm.Normal("items", mu=mu, sigma=pt.sqrt(pt.diag(mats["theta"])), observed=data,
                  dims=("obs", "item"))
    _moderator_quantiles(eta, rep, partable)


def _moderator_quantiles(eta: pt.TensorVariable, rep: Representation,
                         partable: ParTable) -> None:
    """16th/50th/84th percentiles of each moderator's latent scores, per draw."""
    if not partable.moderators:
        return
    n = eta.shape[0]
    pos = [rep.latents.index(w) for w in partable.moderators]
    ranked = pt.sort(eta[:, pos], axis=0)
    rows = [pt.cast(pt.floor(q * (n - 1)), "int64") for q in (0.16, 0.50, 0.84)]
    pm.Deterministic("moderator_quantiles", pt.stack([ranked[r] for r in rows], axis=1),
                     dims=("moderator", "quantile"))


@dataclass
class BuiltModel:
    """A PyMC model with what sampling and later stages need to know about it."""

    model: pm.Model
    likelihood: str
    representation: Representation
    initial_values: dict[str, np.ndarray]


def initial_values(model: pm.Model, partable: ParTable, y: np.ndarray) -> dict[str, np.ndarray]:
    """Data-based starting values, as lavaan's "simple" starts.

    Loadings start positive (0.7 item SD, or 1 for marker-scaled ones) so that no chain starts
    on the symmetric saddle at zero loadings and drifts into a sign-flipped mode; intercepts
    start at item means, residual variances at half the item variance, paths at zero.
    """
    item_var = dict(zip(partable.indicators, y.var(axis=0) + 1e-6, strict=True))
    params = partable.parameters.reset_index(drop=True)
    start: dict[str, float] = {}
    for name, r in zip(partable.names, params.itertuples(), strict=True):
        if r.op == "=~":
            start[name] = 0.7 * np.sqrt(item_var[r.rhs])
        elif r.op == "~1":
            start[name] = float(np.nan_to_num(np.mean(y[:, partable.indicators.index(r.lhs)])))
        elif r.op == "~~" and r.lhs == r.rhs:
            base = item_var.get(r.lhs) or item_var[_first_indicator(partable, r.lhs)]
            start[name] = 0.5 * base
        else:
            start[name] = 0.0 if pd.isna(r.value) else float(r.value)
    values: dict[str, np.ndarray] = {}
    for rv in model.free_RVs:
        dims = model.named_vars_to_dims.get(rv.name, ())
        if rv.name.endswith("_params"):
            members = model.coords[dims[0]]
            vals = np.array([start[m] for m in members])
            values[rv.name] = np.sqrt(vals) if rv.name.endswith("_sd_params") else vals
            if rv.name.startswith(("halfnormal", "gamma", "lognormal", "exponential")):
                values[rv.name] = np.abs(values[rv.name]) + 1e-3
    if "latent_cor_chol" in model.named_vars:
        values["latent_cor_chol"] = np.eye(len(partable.exogenous))
    if "residual_cor_raw" in model.named_vars:
        values["residual_cor_raw"] = np.full(
            model.named_vars["residual_cor_raw"].eval().shape, 0.5)
    if "latent_z" in model.named_vars:
        # Small distinct scores: an all-zero start makes every respondent tie, and nutpie
        # rejects that point (its gradient is not finite there).
        rng = np.random.default_rng(0)
        values["latent_z"] = rng.normal(0.0, 0.1, (y.shape[0], len(partable.latents)))
    return values


def _first_indicator(partable: ParTable, latent: str) -> str:
    t = partable.table
    return t.loc[(t.op == "=~") & (t.lhs == latent), "rhs"].iloc[0]


def pymc_model(partable: ParTable, data: pd.DataFrame, likelihood: str = "auto") -> BuiltModel:
    """Build the PyMC model for ``partable`` and complete-case ``data`` (items as columns)."""
    kind = choose_likelihood(partable, likelihood)
    rep = representation(partable)
    y = data[rep.items].to_numpy(dtype=float)
    coords = {
        "param": partable.names,
        "item": rep.items,
        "item_": rep.items,
        "latent": rep.latents,
        "obs": np.arange(y.shape[0]),
        "moderator": partable.moderators,
        "quantile": ["p16", "p50", "p84"],
    }
    with pm.Model(coords=coords) as model:
        par = parameter_vector(partable, rep)
        if kind == "marginal":
            marginal_likelihood(par, rep, sufficient_statistics(y))
        else:
            conditional_likelihood(par, rep, partable, y)
    return BuiltModel(model, kind, rep, initial_values(model, partable, y))
