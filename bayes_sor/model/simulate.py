"""Simulate survey data from a model at given parameter values (a truth table) or prior draws.

The generative story is the conditional model's: exogenous latents ~ MvNormal(0, Psi_exo),
endogenous latents in causal order (linear paths, latent products, normal disturbances), items
~ MvNormal(nu + Lambda eta, Theta). Likert answers are the continuous scores rounded to the
nearest category and clipped to the scale (equally spaced thresholds at k + 1/2). Ordinal
items (theta parameterisation) are cut at their thresholds: category ``low + k`` when
``t_k <= y* < t_{k+1}``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pymc as pm

from bayes_sor.data.categories import declared_scale
from bayes_sor.data.scale import Scale
from bayes_sor.errors import DataError
from bayes_sor.model.build import pymc_model
from bayes_sor.model.ordinal import sort_thresholds
from bayes_sor.spec.matrices import Representation, extend, representation
from bayes_sor.spec.partable import ParTable, add_thresholds, row_name

TRUTH_COLUMNS = ["lhs", "op", "rhs", "value"]


def truth_vector(partable: ParTable, truth: pd.DataFrame) -> np.ndarray:
    """Parameter values in table order from a truth table (``lhs, op, rhs, value``)."""
    missing_cols = set(TRUTH_COLUMNS) - set(truth.columns)
    if missing_cols:
        raise DataError(
            f"the truth file lacks column(s) {sorted(missing_cols)}; it needs {TRUTH_COLUMNS}"
        )
    given = {
        row_name(r.lhs, r.op, "" if pd.isna(r.rhs) else r.rhs): float(r.value)
        for r in truth.itertuples()
    }
    params = partable.parameters.reset_index(drop=True)
    values = []
    absent = []
    for name, r in zip(partable.names, params.itertuples(), strict=True):
        if r.free == 0:
            values.append(float(r.value))
        elif name in given:
            values.append(given[name])
        else:
            absent.append(name)
    if absent:
        raise DataError(
            f"the truth file has no value for {absent[:8]}"
            f"{' ...' if len(absent) > 8 else ''}; give one row per free parameter"
        )
    return np.array(values)


def truth_table(partable: ParTable, par: np.ndarray) -> pd.DataFrame:
    """The inverse of :func:`truth_vector`: a truth table for parameter values ``par``."""
    params = partable.parameters.reset_index(drop=True)
    out = params[["lhs", "op", "rhs"]].copy()
    out["value"] = par
    return out


def scale_thresholds(partable: ParTable, scale: Scale | None) -> ParTable:
    """Thresholds for every ordinal item: one fewer than the scale's categories."""
    items = partable.ordinal_items()
    if not items:
        return partable
    if scale is None:
        raise DataError(
            f"the ordinal items {items} need a Likert scale (--scale 1-7) to know "
            "how many categories to simulate"
        )
    return add_thresholds(partable, dict.fromkeys(items, scale.high - scale.low + 1))


def prior_draw(partable: ParTable, seed: int) -> np.ndarray:
    """One draw of the parameter vector from the model's prior (PyMC forward sampling).

    Forward sampling ignores the ordering transform, so thresholds are sorted afterwards (the
    ordered prior is the distribution of the sorted values).
    """

    built = pymc_model(partable, None)
    return sort_thresholds(partable, np.asarray(pm.draw(built.model["par"], random_seed=seed)))


def latent_draws(
    rep: Representation, partable: ParTable, par: np.ndarray, nobs: int, rng: np.random.Generator
) -> np.ndarray:
    """Latent scores (nobs x latents) at parameter values ``par``."""
    ext = extend(par)
    psi, beta = ext[rep.psi], ext[rep.beta]
    pos = {f: i for i, f in enumerate(rep.latents)}
    exo = [pos[f] for f in partable.exogenous]
    eta = np.zeros((nobs, len(rep.latents)))
    eta[:, exo] = rng.multivariate_normal(np.zeros(len(exo)), psi[np.ix_(exo, exo)], nobs)
    for f in partable.order:
        i = pos[f]
        if i in exo:
            continue
        eta[:, i] = eta @ beta[i] + rng.normal(0.0, np.sqrt(psi[i, i]), nobs)
        for t in rep.interactions:
            if t.outcome == i:
                eta[:, i] += ext[t.param] * eta[:, t.first] * eta[:, t.second]
    return eta


def simulate(
    partable: ParTable, par: np.ndarray, nobs: int, seed: int, scale: Scale | None = None
) -> pd.DataFrame:
    """Simulate ``nobs`` respondents' item answers at parameter values ``par``."""
    rng = np.random.default_rng(seed)
    rep = representation(partable)
    ext = extend(par)
    eta = latent_draws(rep, partable, par, nobs, rng)
    theta = ext[rep.theta]
    errors = rng.multivariate_normal(np.zeros(len(rep.items)), theta, nobs)
    scores = ext[rep.nu] + eta @ ext[rep.lambda_].T + errors
    if scale is not None:
        scores = np.clip(np.rint(scores), scale.low, scale.high)
    ordinal = partable.ordinal_items()
    if ordinal:
        latent_response = ext[rep.nu] + eta @ ext[rep.lambda_].T + errors
        params = partable.parameters.reset_index(drop=True)
        # continuous scores (scale=None, as SBC simulates) keep ordinal answers on the scale
        # the model declares, where the fitted model codes them
        declared = scale or declared_scale(partable)
        low = declared.low if declared is not None else 1
        for item in ordinal:
            cuts = np.sort(par[params.index[(params.op == "|") & (params.lhs == item)]])
            k = rep.items.index(item)
            scores[:, k] = low + np.searchsorted(cuts, latent_response[:, k], side="right")
    return pd.DataFrame(scores, columns=rep.items)
