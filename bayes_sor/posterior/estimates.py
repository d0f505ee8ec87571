"""Posterior -> lavaan ``parameterEstimates()``-style table, with fully standardised values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from bayes_sor.posterior.summary import summarize
from bayes_sor.spec.matrices import Moments, Representation, implied_moments, representation
from bayes_sor.spec.partable import ParTable, row_name

ESTIMATE_COLUMNS = [
    "lhs",
    "op",
    "rhs",
    "label",
    "mean",
    "median",
    "sd",
    "ci.lower",
    "ci.upper",
    "r_hat",
    "ess_bulk",
    "ess_tail",
    "std.all",
    "prior",
    "free",
]


def posterior_names(estimates: pd.DataFrame) -> list[str]:
    """The posterior's ``param`` name of each row of ``estimates``: ``lhs op rhs`` without
    spaces, ending in ``.g<k>`` for the k-th group (k > 1, groups in the order they appear)
    of a multiple-group fit."""
    names = [row_name(r.lhs, r.op, r.rhs) for r in estimates.itertuples()]
    if "group" not in estimates.columns:
        return names
    number = {g: k for k, g in enumerate(dict.fromkeys(estimates.group), start=1)}
    return [
        name + (f".g{number[g]}" if number[g] > 1 else "")
        for name, g in zip(names, estimates.group, strict=True)
    ]


def standardized_draws(
    partable: ParTable,
    rep: Representation,
    par: np.ndarray,
    group: int = 1,
    moments: Moments | None = None,
) -> np.ndarray:
    """``std.all`` of every parameter, per draw (lavaan's definition).

    Loadings and paths are scaled by sd(cause) / sd(effect) with model-implied SDs (a latent
    product term by the SD of the product); (residual) variances are divided by the total
    variance, covariances by the two variances they connect, intercepts by the item SD. In a
    multiple-group table only the rows of ``group`` (``rep`` is that group's), NaN elsewhere.
    ``moments``: :func:`~bayes_sor.spec.matrices.implied_moments` of ``rep`` and ``par``, where
    the caller has them.
    """
    mom = implied_moments(rep, par) if moments is None else moments
    item_sd = np.sqrt(mom.item_var)
    lat_sd = np.sqrt(np.diagonal(mom.latent_cov, axis1=-2, axis2=-1))
    sd = {
        **dict(zip(rep.items, np.moveaxis(item_sd, -1, 0), strict=True)),
        **dict(zip(rep.latents, np.moveaxis(lat_sd, -1, 0), strict=True)),
    }
    for k, t in enumerate(rep.interactions):
        sd[f"{rep.latents[t.first]}:{rep.latents[t.second]}"] = np.sqrt(mom.product_var[..., k])
    out = np.full(par.shape, np.nan)
    params = partable.parameters.reset_index(drop=True)
    rows = [
        (k, r)
        for k, r in enumerate(params.itertuples())
        if "group" not in params.columns or r.group == group
    ]
    variance_rows = {r.lhs: k for k, r in rows if r.op == "~~" and r.lhs == r.rhs}
    for k, r in rows:
        value = par[..., k]
        if r.op in ("=~",):
            out[..., k] = value * sd[r.lhs] / sd[r.rhs]
        elif r.op == "~":
            out[..., k] = value * sd[r.rhs] / sd[r.lhs]
        elif r.op in ("~1", "|"):
            out[..., k] = value / sd[r.lhs]
        elif r.op == "~~":
            if r.lhs == r.rhs:
                out[..., k] = value / sd[r.lhs] ** 2
            else:
                out[..., k] = value / np.sqrt(
                    par[..., variance_rows[r.lhs]] * par[..., variance_rows[r.rhs]]
                )
    return out


class Standardizer:
    """std.all draws of a posterior's parameters and its latents' SDs, per group, each computed
    once and only when first asked for, from one set of implied moments per group: ``fit``
    hands one to both the estimates (their std.all column) and the hypotheses."""

    def __init__(self, partable: ParTable, par: np.ndarray) -> None:
        self.partable, self.par = partable, par
        self._moments: dict[int, tuple[Representation, Moments]] = {}
        self._parameters: dict[int, np.ndarray] = {}
        self._latent_sd: dict[int, dict[str, np.ndarray]] = {}

    def moments(self, group: int = 1) -> tuple[Representation, Moments]:
        """The group's representation and the moments its draws imply."""
        if group not in self._moments:
            rep = representation(self.partable, group)
            self._moments[group] = rep, implied_moments(rep, self.par)
        return self._moments[group]

    def parameters(self, group: int = 1) -> np.ndarray:
        """:func:`standardized_draws` of the group."""
        if group not in self._parameters:
            rep, moments = self.moments(group)
            self._parameters[group] = standardized_draws(
                self.partable, rep, self.par, group, moments
            )
        return self._parameters[group]

    def latent_sd(self, group: int = 1) -> dict[str, np.ndarray]:
        """Each latent's model-implied SD per draw, in the group."""
        if group not in self._latent_sd:
            rep, moments = self.moments(group)
            sd = np.sqrt(np.diagonal(moments.latent_cov, axis1=-2, axis2=-1))
            self._latent_sd[group] = dict(zip(rep.latents, np.moveaxis(sd, -1, 0), strict=True))
        return self._latent_sd[group]

    def effect(self, path: str, draws: np.ndarray, group: int = 1) -> np.ndarray:
        """An effect of the path's first on its last variable, in SDs of both."""
        nodes = [n.strip() for n in path.split("->")]
        sd = self.latent_sd(group)
        return draws * sd[nodes[0]] / sd[nodes[-1]]


def parameter_estimates(
    partable: ParTable,
    posterior: xr.Dataset,
    ci_prob: float = 0.95,
    hdi: bool = False,
    standardizer: Standardizer | None = None,
) -> pd.DataFrame:
    """One row per parameter: posterior summary, diagnostics, ``std.all`` and the prior used;
    a multiple-group table adds the ``group`` (its label) after ``label``. ``standardizer``:
    the posterior's, where the caller shares one (:class:`Standardizer`)."""
    par = posterior["par"]
    table = summarize(par, ci_prob, hdi)
    params = partable.parameters.reset_index(drop=True)
    standardizer = standardizer or Standardizer(partable, par.values)
    if partable.groups:  # each group standardised by its own moments
        std = np.full(par.shape, np.nan)
        for g in range(1, len(partable.groups) + 1):
            own = (params.group == g).to_numpy()
            std[..., own] = standardizer.parameters(g)[..., own]
    else:
        std = standardizer.parameters()
    out = params[["lhs", "op", "rhs", "label", "prior", "free"]].copy()
    for column in ("mean", "median", "sd", "ci.lower", "ci.upper", "r_hat", "ess_bulk", "ess_tail"):
        out[column] = table[column].to_numpy()
    out["std.all"] = np.nanmean(std, axis=(0, 1)) if std.size else np.nan
    if not partable.groups:
        return out[ESTIMATE_COLUMNS]
    out["group"] = [partable.groups[g - 1] for g in params.group]
    columns = [*ESTIMATE_COLUMNS[:4], "group", *ESTIMATE_COLUMNS[4:]]
    return out[columns]
