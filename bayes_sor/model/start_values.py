"""Data-based starting values, as lavaan's "simple" starts: item moments -> a start for every
free random variable of the model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pymc as pm

from bayes_sor.data.categories import answer_codes
from bayes_sor.data.summary_statistics import SummaryData
from bayes_sor.model.latent import CENTRED_PREFIX, is_reflected, raw_latent_names, reflect
from bayes_sor.model.ordinal import (
    STANDARDISED_THRESHOLDS,
    standardised_start,
    start_thresholds,
)
from bayes_sor.spec.partable import ParTable, row_name, small_variance_parameters

#: what a model is built from: answers, a covariance matrix with N, or nothing (the prior)
Data = pd.DataFrame | SummaryData | None


@dataclass(frozen=True)
class ItemMoments:
    """Item means, variances, (ordinal items) category codes and standardised answers
    (obs x item, raw data only), for starting values."""

    mean: dict[str, float]
    var: dict[str, float]
    codes: dict[str, np.ndarray]
    standardized: pd.DataFrame | None = None

    @classmethod
    def of(cls, partable: ParTable, data: Data) -> ItemMoments:
        items = partable.indicators
        if isinstance(data, SummaryData):
            var = np.diag(data.cov.to_numpy())
            return cls(dict.fromkeys(items, 0.0), dict(zip(items, var, strict=True)), {})
        if data is None:
            return cls(dict.fromkeys(items, 0.0), dict.fromkeys(items, 1.0), {})
        y = data[items].to_numpy(dtype=float)
        codes = {i: answer_codes(data[i].dropna(), i, partable) for i in partable.ordinal_items()}
        # over the answered cells: missing answers (NaN) stay missing in the scores
        mean, var = np.nanmean(y, axis=0), np.nanvar(y, axis=0) + 1e-6
        z = pd.DataFrame((y - mean) / np.sqrt(var), columns=items)
        return cls(
            dict(zip(items, np.nan_to_num(mean), strict=True)),
            dict(zip(items, var, strict=True)),
            codes,
            z,
        )


def initial_values(
    model: pm.Model, partable: ParTable, moments: ItemMoments
) -> dict[str, np.ndarray]:
    """Data-based starting values, as lavaan's "simple" starts.

    Loadings start positive (0.7 item SD, 1 for ordinal items, or 1 for marker-scaled ones) so
    that no chain starts on the symmetric saddle at zero loadings and drifts into a sign-flipped
    mode; intercepts start at item means, residual variances at half the item variance, paths
    at zero, thresholds at the probits of the cumulative proportions.
    """
    start = _start_by_name(partable, moments)
    values: dict[str, np.ndarray] = {}
    for rv in model.free_RVs:
        dims = model.named_vars_to_dims.get(rv.name, ())
        if rv.name.endswith("_params") or rv.name.startswith("thresholds"):
            members = model.coords[dims[0]]
            vals = np.array([start[m] for m in members])
            if rv.name == STANDARDISED_THRESHOLDS:
                vals = standardised_start(vals)
            values[rv.name] = np.sqrt(vals) if rv.name.endswith("_sd_params") else vals
            if rv.name.startswith(("halfnormal", "gamma", "lognormal", "exponential")):
                values[rv.name] = np.abs(values[rv.name]) + 1e-3
    for rv in model.free_RVs:  # one LKJ factor per group in a multiple-group model
        if rv.name == "latent_cor_chol" or rv.name.startswith("latent_cor_chol_g"):
            values[rv.name] = np.eye(len(partable.exogenous))
    if "residual_cor_raw" in model.named_vars:
        # its static shape: evaluating a draw to learn it compiled a function (0.5 s per fit)
        values["residual_cor_raw"] = np.full(model.named_vars["residual_cor_raw"].type.shape, 0.5)
    for name in raw_latent_names(model):
        values[name] = _start_scores(model, partable, moments, name, start)
    return values


def _start_scores(
    model: pm.Model, partable: ParTable, moments: ItemMoments, name: str, start: dict[str, float]
) -> np.ndarray:
    """Starting values of one latent-score variable: each factor's standardised mean item
    score, shrunk by 0.8 (times the factor's starting SD for centred scores).

    Together with the positive starting loadings this puts every chain in the orientation the
    sign constraint selects; from random scores a chain can settle in the sign-flipped mode
    (the other loadings negative, the constrained first one pinned near 0). A little noise
    keeps respondents with equal answers apart: exact ties make nutpie reject the start (its
    gradient is not finite there).
    """
    single = name.startswith(CENTRED_PREFIX)  # one endogenous latent: a vector over obs
    latents = (
        [name.removeprefix(CENTRED_PREFIX)]
        if single
        else list(model.coords[model.named_vars_to_dims[name][1]])
    )
    n = len(model.coords["obs"])
    rng = np.random.default_rng(0)
    noise = rng.normal(0.0, 0.1, (n, len(latents)))
    if moments.standardized is not None:
        t = partable.table
        for k, f in enumerate(latents):
            score = moments.standardized[t.loc[(t.op == "=~") & (t.lhs == f), "rhs"]].mean(axis=1)
            score = (score - score.mean()) / max(score.std(), 1e-6)
            noise[:, k] += 0.8 * score.fillna(0.0).to_numpy()  # 0: no answer to any of its items
    if name != "latent_z":
        noise *= np.sqrt([start[f"{f}~~{f}"] for f in latents])
    noise = noise[:, 0] if single else noise
    return reflect(noise) if is_reflected(name, bool(partable.groups)) else noise


def _start_by_name(partable: ParTable, moments: ItemMoments) -> dict[str, float]:
    params = partable.parameters.reset_index(drop=True)
    ordinal = set(partable.ordinal_items())
    small = {row_name(r.lhs, r.op, r.rhs) for r in small_variance_parameters(partable).itertuples()}
    start: dict[str, float] = {}
    for name, r in zip(partable.names, params.itertuples(), strict=True):
        if name in small:
            start[name] = 0.0  # a cross-loading with a small-variance prior: its prior mean
        elif r.op == "=~":
            start[name] = 1.0 if r.rhs in ordinal else 0.7 * np.sqrt(moments.var[r.rhs])
        elif r.op == "~1":  # an item's mean; a latent mean (multiple groups) starts at 0
            start[name] = float(moments.mean.get(r.lhs, 0.0))
        elif r.op == "~~" and r.lhs == r.rhs and r.free == 0 and not pd.isna(r.value):
            start[name] = float(r.value)  # std.lv's unit variance: centred scores' start SD
        elif r.op == "~~" and r.lhs == r.rhs:
            base = moments.var.get(r.lhs) or moments.var[_first_indicator(partable, r.lhs)]
            start[name] = 0.5 * base
        else:
            start[name] = 0.0 if pd.isna(r.value) else float(r.value)
    for item in ordinal:
        rows = params.index[(params.op == "|") & (params.lhs == item)]
        if item in moments.codes:
            values = start_thresholds(moments.codes[item], len(rows), 1.0)
        else:
            values = np.linspace(-1.0, 1.0, len(rows)) if len(rows) > 1 else np.zeros(1)
        order = np.argsort([int(params.rhs[k][1:]) for k in rows])
        for k, v in zip(np.asarray(rows)[order], values, strict=True):
            start[partable.names[k]] = float(v)
    return start


def _first_indicator(partable: ParTable, latent: str) -> str:
    t = partable.table
    return t.loc[(t.op == "=~") & (t.lhs == latent), "rhs"].iloc[0]
