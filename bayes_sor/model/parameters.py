"""The full parameter vector ``par`` (one entry per table row, stored in the posterior as ``par``
with dim ``param``) from the free parameters and their priors, and the model matrices read from
it through the :mod:`bayes_sor.spec.matrices` indices, so both likelihoods produce the same
posterior names.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pymc as pm
import pytensor.tensor as pt

from bayes_sor.errors import ModelSpecError
from bayes_sor.model.ordinal import STANDARDISED_THRESHOLDS, GroupedOrdered
from bayes_sor.model.prior_families import DISTRIBUTIONS, group_rv
from bayes_sor.spec.groups import approximate_rows
from bayes_sor.spec.matrices import Representation
from bayes_sor.spec.partable import ParTable
from bayes_sor.spec.prior_text import ARGUMENTS, POSITIVE, Prior, parse_prior


def free_rows(partable: ParTable) -> pd.DataFrame:
    """One row per free parameter (the first table row carrying each free index)."""
    params = partable.parameters.reset_index(drop=True)
    params["pos"] = np.arange(len(params))
    return params[params.free > 0].drop_duplicates("free").set_index("free", drop=False)


def threshold_vector(
    partable: ParTable, centred: bool = False
) -> tuple[pt.TensorVariable, list[int]]:
    """All thresholds as one ``thresholds`` random variable, increasing within each item.

    Returns the variable and the free-parameter numbers of its elements. Each threshold keeps
    its own normal prior; the grouped ordered transform makes them increase within an item.
    ``centred``: the flat, ordered ``thresholds_standardised`` (one group) or
    ``thresholds_centred`` (multiple groups) instead, whose priors
    :func:`bayes_sor.model.conditional._uncentre` adds once they are mapped back.
    """
    rows = _threshold_rows(partable)
    priors = [
        parse_prior(p, f"the threshold '{r.lhs} | {r.rhs}'")
        for p, r in zip(rows.prior, rows.itertuples(), strict=True)
    ]
    if any(p.family != "normal" or p.on_sd for p in priors):
        raise ModelSpecError("thresholds need normal priors, e.g. 'normal(0,1.5)'")
    first = ((rows.lhs != rows.lhs.shift()) | (rows.group != rows.group.shift())).to_numpy()
    names = [partable.names[i] for i in rows.index]
    add_coord("thresholds_dim", names)
    args = np.array([p.args for p in priors])
    # An ordered initval: the default (every prior mean, 0) is not strictly increasing, and
    # the transform's log(t_k - t_{k-1}) would start at -inf.
    rank = np.arange(len(rows)) - np.maximum.accumulate(np.where(first, np.arange(len(rows)), 0))
    ordered = {
        "dims": "thresholds_dim",
        "transform": GroupedOrdered(first),
        "initval": 0.5 * rank - 0.5,
    }
    # one group: standardised by each item's response SD too (conditional._uncentre)
    flat = "thresholds_centred" if partable.groups else STANDARDISED_THRESHOLDS
    rv = (
        pm.Flat(flat, **ordered)
        if centred
        else pm.Normal("thresholds", mu=args[:, 0], sigma=args[:, 1], **ordered)
    )
    return rv, rows.free.tolist()


def _threshold_rows(partable: ParTable) -> pd.DataFrame:
    """The rows of the free thresholds, one per free number, by group, item and rank.

    In a multiple-group table the thresholds of an item are either all the first group's
    (``group.equal: thresholds``) or all the group's own: the ordered transform keeps each
    item's thresholds increasing within one vector, which a mix of shared and own thresholds
    would leave unordered."""
    params = partable.parameters.reset_index(drop=True)
    rows = params[params.op == "|"]
    if "group" not in rows.columns:
        rows = rows.assign(group=1)
    groups = rows.groupby("free").group.transform("nunique")
    shared = rows.free.duplicated(keep=False) & (groups > 1)
    if (rows.free == 0).any() or rows.free[~shared].duplicated().any():
        raise ModelSpecError(
            "fixed thresholds and thresholds shared by a label are not supported; leave the "
            "thresholds free (each item gets its own)"
        )
    mixed = sorted(set(rows.lhs[shared]) & set(rows.lhs[~shared & (rows.group > 1)]))
    if mixed:
        raise ModelSpecError(
            f"group.partial frees some but not all thresholds of {mixed} in a later group; "
            "name all of an item's thresholds in group.partial (e.g. 'x1|t1, x1|t2') or none"
        )
    items = partable.ordinal_items()
    rows = rows.drop_duplicates("free")
    rows = rows.assign(item=rows.lhs.map(items.index), k=rows.rhs.str[1:].astype(int))
    return rows.sort_values(["group", "item", "k"])


def parameter_vector(
    partable: ParTable, rep: Representation, centred: list[int] | None = None
) -> pt.TensorVariable:
    """Free parameters with their priors -> the full parameter vector (named ``par`` by
    :func:`bayes_sor.model.build.pymc_model` once the centred intercepts, if any, are shifted back).

    Free parameters sharing a prior family form one vector random variable named
    ``<family>_params`` (``[sd]`` priors: ``<family>_sd_params``), so the graph stays small.
    Covariances are built from correlations: an LKJ matrix for the exogenous latents,
    ``beta`` priors on (rho + 1) / 2 (or normal priors on rho) for residual covariances.
    Thresholds form one ordered vector ``thresholds``. ``centred``: free ids of intercepts
    sampled as the flat ``intercept_centred_params`` and of thresholds sampled as
    ``thresholds_standardised`` (one group) or ``thresholds_centred`` (multiple groups)
    (:func:`bayes_sor.model.conditional._uncentre`).
    """
    params = partable.parameters.reset_index(drop=True)
    kinds = _FreeKinds.of(partable, centred or [])
    groups = _sampled_groups(partable, kinds, centred or [])
    stage = pt.as_tensor_variable(params.value.fillna(0.0).to_numpy(dtype=float))
    if groups:
        stage = _place(
            stage,
            params,
            [f for ids, _ in groups for f in ids],
            pt.concatenate([values for _, values in groups]),
        )
    return _covariances(partable, rep, kinds, stage)


@dataclass(frozen=True)
class _FreeKinds:
    """The free parameters by how they are sampled."""

    free: pd.DataFrame
    #: correlations of the exogenous latents (one LKJ matrix)
    exo_cov: pd.DataFrame
    #: residual covariances (beta or normal priors on the correlations)
    res_cov: pd.DataFrame
    thresholds: pd.DataFrame
    #: free ids of the intercepts sampled centred
    intercepts: list[int]
    #: rows approximately equal across groups (:func:`~bayes_sor.spec.groups.approximate_rows`)
    approximate: pd.DataFrame
    #: the rest: one random variable per prior group
    ordinary: pd.DataFrame

    @classmethod
    def of(cls, partable: ParTable, centred: list[int]) -> _FreeKinds:
        free = free_rows(partable)
        exo_cov = free[free.prior.str.startswith("lkj")]
        res_cov = free[(free.lhs != free.rhs) & (free.op == "~~") & ~free.index.isin(exo_cov.index)]
        thresholds = free[free.op == "|"]
        ordinary = free.drop(exo_cov.index).drop(res_cov.index).drop(thresholds.index)
        intercepts = [f for f in centred if f not in thresholds.index]
        approximate = approximate_rows(partable)
        ordinary = ordinary.drop([*intercepts, *(f for ids in approximate.free for f in ids)])
        return cls(free, exo_cov, res_cov, thresholds, intercepts, approximate, ordinary)


def _sampled_groups(
    partable: ParTable, kinds: _FreeKinds, centred: list[int]
) -> list[tuple[list[int], pt.TensorVariable]]:
    """(free ids, values) of each vector random variable: prior groups, centred intercepts,
    thresholds."""
    free = kinds.free
    # One vector per prior group, gathered into ``par`` by index arrays: per-parameter scalar
    # nodes made graphs of ~1000 nodes whose rewriting dominated compilation (Study A: 16.8 s of
    # PyTensor rewrites).
    groups: list[tuple[list[int], pt.TensorVariable]] = []
    for (family, on_sd), members in prior_groups(kinds.ordinary).items():
        name = f"{family}{'_sd' if on_sd else ''}_params"
        args = np.array([p.args for p in members.values()])
        dim = f"{name}_dim"
        pm.modelcontext(None).add_coord(dim, [partable.names[free.loc[f, "pos"]] for f in members])
        rv = group_rv(name, family, args, dim)
        # a product, not rv**2: two compilations of the same graph (compile-once SBC, fresh
        # fit) evaluated the vectorised power an ulp apart; a product rounds the same way
        groups.append((list(members), rv * rv if on_sd else rv))
    if kinds.intercepts:
        dim = "intercept_centred_params_dim"
        pm.modelcontext(None).add_coord(
            dim, [partable.names[free.loc[f, "pos"]] for f in kinds.intercepts]
        )
        groups.append((kinds.intercepts, pm.Flat("intercept_centred_params", dims=dim)))
    if len(kinds.approximate):
        groups.append(_approximate_values(partable, kinds))
    if len(kinds.thresholds):
        rv, numbers = threshold_vector(
            partable, centred=bool(set(centred) & set(kinds.thresholds.index))
        )
        groups.append((numbers, rv))
    return groups


def _approximate_values(
    partable: ParTable, kinds: _FreeKinds
) -> tuple[list[int], pt.TensorVariable]:
    """(free ids, values) of the approximately equal parameters: in group g, mu + z_g - mean(z).

    mu, the common value (the groups' mean), has the first group's prior (vectors
    ``<family>_common_params``); z_g ~ Normal(0, s) (``approximate_deviations_raw``, groups x
    parameters), so the deviations from the mean have the density of values drawn from
    Normal(mu, s) around it. Centring z on its mean leaves mu and the deviations uncoupled:
    drawn as mu + z_g, mu and z trade off (one direction identified by the prior alone).
    """
    approx = kinds.approximate
    first = [ids[0] for ids in approx.free]
    order, common = [], []
    for (family, _), members in prior_groups(kinds.free.loc[first]).items():
        name = f"{family}_common_params"
        dim = add_coord(f"{name}_dim", [partable.names[kinds.free.loc[f, "pos"]] for f in members])
        common.append(group_rv(name, family, np.array([p.args for p in members.values()]), dim))
        order += list(members)
    mu = pt.concatenate(common)[np.array([order.index(f) for f in first])]
    add_coord("approximate_group", list(partable.groups))
    add_coord("approximate_param", approx.name.tolist())
    z = pm.Normal(
        "approximate_deviations_raw",
        mu=0.0,
        sigma=approx.sd.to_numpy(dtype=float),
        dims=("approximate_group", "approximate_param"),
    )
    values = mu[None, :] + z - z.mean(axis=0, keepdims=True)
    ids = [ids[g] for g in range(len(partable.groups)) for ids in approx.free]
    return ids, values.flatten()


def _covariances(
    partable: ParTable, rep: Representation, kinds: _FreeKinds, stage: pt.TensorVariable
) -> pt.TensorVariable:
    """``stage`` with the covariance rows set to correlation times the two SDs."""
    params = partable.parameters.reset_index(drop=True)
    res_cov = kinds.res_cov
    cov_rows, correlations = [], []
    for name, exo_cov in _by_group(kinds.exo_cov, "latent_cor_chol"):
        cov_rows.append(exo_cov)
        correlations.append(_latent_correlations(partable.exogenous, exo_cov, name))
    for rows, correlation in _residual_correlations(res_cov):
        cov_rows.append(rows)
        correlations.append(correlation)
    if not cov_rows:
        return stage
    rows = pd.concat(cov_rows)
    groups = params.group if "group" in params.columns else pd.Series(1, index=params.index)
    variances = params[(params.op == "~~") & (params.lhs == params.rhs)]
    variance = {
        (v, g): k
        for k, v, g in zip(variances.index, variances.lhs, groups[variances.index], strict=True)
    }
    row_groups = groups[rows.pos].to_numpy()
    scale = pt.sqrt(
        stage[np.array([variance[(v, g)] for v, g in zip(rows.lhs, row_groups, strict=True)])]
        * stage[np.array([variance[(v, g)] for v, g in zip(rows.rhs, row_groups, strict=True)])]
    )
    return _place(stage, params, rows.index.tolist(), pt.concatenate(correlations) * scale)


def _residual_correlations(res_cov: pd.DataFrame) -> list[tuple[pd.DataFrame, pt.TensorVariable]]:
    """(rows, correlations) of the residual covariances, one random variable per prior family.

    A covariance is sampled as its correlation (times the two SDs), so its prior is on the
    correlation: ``beta(a,b)`` on (rho + 1) / 2 as blavaan (``residual_cor_raw``), or
    ``normal(m,s)`` on rho itself, truncated to (-1, 1) (``residual_cor_normal``; a BSEM
    small-variance prior written on the covariance row, e.g. ``prior("normal(0,0.1)")*x2``).
    """
    priors = [
        parse_prior(p, f"the residual covariance '{r.lhs} ~~ {r.rhs}'")
        for p, r in zip(res_cov.prior, res_cov.itertuples(), strict=True)
    ]
    for prior, r in zip(priors, res_cov.itertuples(), strict=True):
        if prior.family not in ("beta", "normal") or prior.on_sd:
            raise ModelSpecError(
                f"the residual covariance '{r.lhs} ~~ {r.rhs}' is sampled as a correlation: its "
                f"prior {r.prior!r} must be 'beta(a,b)' on (rho + 1) / 2 or 'normal(m,s)' on "
                "the correlation (e.g. normal(0,0.1))"
            )
    families = np.array([p.family for p in priors])
    args = {f: np.array([p.args for p in priors if p.family == f]) for f in ("beta", "normal")}
    out = []
    if (families == "beta").any():
        a = args["beta"]
        raw = pm.Beta("residual_cor_raw", alpha=a[:, 0], beta=a[:, 1], shape=len(a))
        out.append((res_cov[families == "beta"], 2 * raw - 1))
    if (families == "normal").any():
        a = args["normal"]
        rho = pm.TruncatedNormal(
            "residual_cor_normal",
            mu=a[:, 0],
            sigma=a[:, 1],
            lower=-1.0,
            upper=1.0,
            shape=len(a),
            initval=np.zeros(len(a)),
        )
        out.append((res_cov[families == "normal"], rho))
    return out


def _by_group(rows: pd.DataFrame, name: str) -> list[tuple[str, pd.DataFrame]]:
    """``rows`` per group with a variable name for each (``name``, ``name_g2``, ...); one
    group: ``[(name, rows)]``, none when ``rows`` is empty."""
    if not len(rows):
        return []
    if "group" not in rows.columns:
        return [(name, rows)]
    return [
        (name if g == 1 else f"{name}_g{g}", part) for g, part in rows.groupby("group", sort=True)
    ]


def _latent_correlations(exo: list[str], exo_cov: pd.DataFrame, name: str) -> pt.TensorVariable:
    """The exogenous latents' correlations of one group from an LKJ Cholesky factor."""
    etas = {parse_prior(p).args[0] for p in exo_cov.prior}
    if len(etas) > 1:
        raise ModelSpecError("all exogenous latent correlations must share one lkj() prior")
    if len(exo_cov) != len(exo) * (len(exo) - 1) // 2:
        raise ModelSpecError(
            "the exogenous latents' correlations must all be free (an LKJ prior covers the "
            "whole matrix); to fix one, regress instead or use residual covariances; in a "
            "multiple-group model, make all or none of them equal across groups"
        )
    chol = pm.LKJCorr(name, n=len(exo), eta=etas.pop())
    pos = {f: i for i, f in enumerate(exo)}
    return (chol @ chol.T)[exo_cov.lhs.map(pos).to_numpy(), exo_cov.rhs.map(pos).to_numpy()]


def _place(
    stage: pt.TensorVariable, params: pd.DataFrame, ids: list[int], values: pt.TensorVariable
) -> pt.TensorVariable:
    """``stage`` with every row whose free id is ``ids[k]`` set to ``values[k]`` (a label shared
    by several rows, an equality constraint, fills them all)."""
    where = {f: k for k, f in enumerate(ids)}
    free = params.free.to_numpy()
    rows = np.flatnonzero(np.isin(free, ids))
    return pt.set_subtensor(stage[rows], values[np.array([where[f] for f in free[rows]])])


def shifted_locations(
    par: pt.TensorVariable,
    partable: ParTable,
    centred: list[int],
    shift: pt.TensorVariable,
    name: str = "centred_prior",
) -> pt.TensorVariable:
    """``par`` with the parameters ``centred`` (free ids sampled flat, each in every row that
    carries it) moved by ``shift`` (one per id), and their priors added as Potentials
    ``<name>_<family>``: a shift has Jacobian 1, so the posterior is the one of the unshifted
    parameters, sampled in coordinates that move less with the others."""
    free = free_rows(partable)
    positions = np.array([int(free.loc[f, "pos"]) for f in centred])
    located = par[positions] + shift
    for (family, _), members in prior_groups(free.loc[centred]).items():
        args = np.array([p.args for p in members.values()])
        which = [centred.index(f) for f in members]
        prior = DISTRIBUTIONS[family].dist(
            **{n: args[:, i] for i, n in enumerate(ARGUMENTS[family])}
        )
        pm.Potential(f"{name}_{family}", pm.logp(prior, located[which]).sum())
    numbers = partable.parameters.free.to_numpy()
    rows = np.flatnonzero(np.isin(numbers, centred))
    if len(rows) == len(positions):  # each in one row: the graph of the conditional model
        return pt.set_subtensor(par[positions], located)
    return pt.set_subtensor(par[rows], located[[centred.index(f) for f in numbers[rows]]])


def named_par(par: pt.TensorVariable) -> pt.TensorVariable:
    """``par`` as the deterministic the posterior stores (dim ``param``)."""
    return pm.Deterministic("par", par, dims="param")


def model_matrices(par: pt.TensorVariable, rep: Representation) -> dict[str, pt.TensorVariable]:
    """Lambda, B, Psi, Theta, nu (and alpha, where the table has latent means) read from
    ``par`` (0 where the table has no row)."""
    ext = pt.concatenate([par, pt.zeros(1)])
    mats = {
        "lambda": ext[rep.lambda_],
        "beta": ext[rep.beta],
        "psi": ext[rep.psi],
        "theta": ext[rep.theta],
        "nu": ext[rep.nu],
    }
    if rep.alpha is not None:  # latent means (multiple groups)
        mats["alpha"] = ext[rep.alpha]
    return mats


def prior_groups(rows: pd.DataFrame) -> dict[tuple[str, bool], dict[int, Prior]]:
    """Free parameters by (prior family, on the SD scale): one random variable per group."""
    groups: dict[tuple[str, bool], dict[int, Prior]] = defaultdict(dict)
    for f, r in rows.iterrows():
        prior = parse_prior(r.prior, f"'{r.lhs} {r.op} {r.rhs}'")
        if r.op == "~~" and prior.family not in POSITIVE:
            raise ModelSpecError(
                f"the variance '{r.lhs} ~~ {r.rhs}' needs a positive prior (e.g. "
                f"gamma(1,0.5)[sd]); {r.prior!r} is not"
            )
        groups[(prior.family, prior.on_sd)][f] = prior
    return groups


def add_coord(name: str, labels: list[str]) -> str:
    """Register a coordinate in the current model; returns its name (for ``dims``)."""
    pm.modelcontext(None).add_coord(name, labels)
    return name


def block_dim(name: str, labels: list[str], everything: list[str], full: str) -> str:
    """The dim for a block of variables: ``full`` when it is all of them, else its own."""
    return full if labels == everything else add_coord(name, labels)
