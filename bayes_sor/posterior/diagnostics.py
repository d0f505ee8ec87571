"""Convergence diagnostics: R-hat, bulk/tail ESS, divergences and E-BFMI, never hidden.

Thresholds follow ArviZ / Vehtari et al. (2021): R-hat <= 1.01, bulk and tail ESS >= 400 (100
per chain for 4 chains), no divergent transitions, E-BFMI >= 0.3. Two checks for empirical
under-identification are added: chains whose loadings sit in sign-flipped modes, and parameters
whose posterior SD is still more than half their prior SD (the data say little about them).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import xarray as xr

from bayes_sor.errors import BayesSORError
from bayes_sor.posterior.chain_stats import bfmi
from bayes_sor.posterior.estimates import posterior_names
from bayes_sor.spec.prior_text import parse_prior

RHAT_MAX = 1.01
ESS_MIN = 400
BFMI_MIN = 0.3
PRIOR_SD_RATIO = 0.5


@dataclass
class Diagnostics:
    """The convergence verdict of one fit, with the problems named."""

    max_r_hat: float
    min_ess_bulk: float
    min_ess_tail: float
    divergences: int
    n_draws: int
    min_bfmi: float
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict:
        return {
            "max_r_hat": self.max_r_hat,
            "min_ess_bulk": self.min_ess_bulk,
            "min_ess_tail": self.min_ess_tail,
            "divergences": self.divergences,
            "n_draws": self.n_draws,
            "min_bfmi": self.min_bfmi,
            "ok": self.ok,
        }


def _names(frame: pd.DataFrame, mask: pd.Series, limit: int = 6) -> str:
    names = list(frame.index[mask])
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def _prior_sd(text: str) -> float:
    """SD of a location-scale prior on the parameter itself (NaN where not simple)."""
    try:
        prior = parse_prior(text)
    except BayesSORError:
        return float("nan")
    if prior.on_sd:
        return float("nan")
    if prior.family == "normal":
        return prior.args[1]
    if prior.family == "halfnormal":
        return prior.args[0] * float(np.sqrt(1 - 2 / np.pi))
    return float("nan")


def _identification_problems(
    idata: xr.DataTree, free: pd.DataFrame, prior_identified: Collection[str]
) -> list[str]:
    """Empirical under-identification: chains in sign-flipped modes, posteriors equal priors
    (except for the ``prior_identified`` parameters, whose prior is meant to dominate)."""
    problems = []
    par = idata["posterior"]["par"]
    chain_means = par.mean("draw")
    within_sd = par.std("draw").mean("chain")
    loadings = free[free.op == "=~"]
    flipped = []
    for name in loadings.param:
        means = chain_means.sel(param=name).values
        if means.max() > 2 * within_sd.sel(param=name) and means.min() < -2 * within_sd.sel(
            param=name
        ):
            flipped.append(name)
    if flipped:
        problems.append(
            f"chains sit in sign-flipped modes for {', '.join(flipped[:6])}: the "
            "factor's sign is not identified; use std.lv (first loading positive) "
            "or fix a loading"
        )
    ratio = free["sd"] / free["prior"].map(_prior_sd)
    vague = (ratio > PRIOR_SD_RATIO) & ~free.index.isin(list(prior_identified))
    if vague.any():
        problems.append(
            f"the posterior is nearly the prior for {_names(free, vague)} (posterior "
            f"SD > {PRIOR_SD_RATIO:.0%} of the prior SD): the data barely inform "
            "these parameters; the model may be empirically under-identified"
        )
    return problems


def check_convergence(
    idata: xr.DataTree, estimates: pd.DataFrame, prior_identified: Collection[str] = ()
) -> Diagnostics:
    """Judge a fit from its sampler statistics and the free parameters' R-hat and ESS.

    ``prior_identified``: parameters (``lhs op rhs``) identified by a small-variance prior
    (BSEM), which the check for posteriors that equal their priors leaves out."""
    free = estimates[estimates.free > 0].copy()
    free["param"] = pd.Series(posterior_names(estimates), index=estimates.index)[free.index]
    free.index = (free.lhs + " " + free.op + " " + free.rhs).str.strip()  # an intercept: rhs ""
    if "group" in free.columns:  # multiple groups: each parameter once, named with its group
        free = free.drop_duplicates("free")
        free.index = free.index + " [" + free.group.astype(str) + "]"
    stats = idata["sample_stats"]
    divergences = int(stats["diverging"].sum()) if "diverging" in stats else 0
    n_draws = int(stats.sizes["chain"] * stats.sizes["draw"])
    energy = stats["energy"].transpose("chain", "draw").values if "energy" in stats else None
    min_bfmi = float(np.min(bfmi(energy))) if energy is not None else float("nan")
    diag = Diagnostics(
        max_r_hat=float(free.r_hat.max()),
        min_ess_bulk=float(free.ess_bulk.min()),
        min_ess_tail=float(free.ess_tail.min()),
        divergences=divergences,
        n_draws=n_draws,
        min_bfmi=min_bfmi,
    )
    high = free.r_hat > RHAT_MAX
    if high.any():
        diag.problems.append(
            f"R-hat above {RHAT_MAX} for {_names(free, high)} (max "
            f"{diag.max_r_hat:.3f}): the chains disagree; run longer (--tune, "
            "--draws) or check the model's identification"
        )
    for kind in ("bulk", "tail"):
        low = free[f"ess_{kind}"] < ESS_MIN
        if low.any():
            diag.problems.append(
                f"{kind} ESS below {ESS_MIN} for {_names(free, low)} (min "
                f"{free[f'ess_{kind}'].min():.0f}): increase --draws"
            )
    if divergences:
        diag.problems.append(
            f"{divergences} divergent transitions of {n_draws} draws: the "
            "posterior may be biased; raise --target-accept (e.g. 0.95) or "
            "reparameterise"
        )
    diag.problems += _identification_problems(idata, free, prior_identified)
    if min_bfmi < BFMI_MIN:
        diag.problems.append(
            f"E-BFMI {min_bfmi:.2f} below {BFMI_MIN} in a chain: the sampler "
            "explores the energy distribution poorly"
        )
    return diag
