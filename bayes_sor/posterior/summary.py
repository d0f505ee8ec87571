"""Posterior summaries of (chain, draw, X) DataArrays, with ArviZ's statistics
(:mod:`bayes_sor.posterior.chain_stats`): one table layout for all."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import xarray as xr

from bayes_sor.posterior import chain_stats

SUMMARY_COLUMNS = [
    "mean",
    "median",
    "sd",
    "ci.lower",
    "ci.upper",
    "r_hat",
    "ess_bulk",
    "ess_tail",
    "p_positive",
]


def summarize(draws: xr.DataArray, ci_prob: float = 0.95, hdi: bool = False) -> pd.DataFrame:
    """Mean, median, SD, interval, R-hat, bulk/tail ESS and P(> 0) per entry of the last dim.

    ``ci.*`` is the equal-tailed interval, or the highest-density interval with ``hdi=True``.
    Constant entries (fixed parameters) get R-hat and ESS as NaN rather than a warning.
    """
    (dim,) = [d for d in draws.dims if d not in ("chain", "draw")]
    sample = ("chain", "draw")
    # (entry, chain, draw): every statistic of every entry in one call
    entries = draws.transpose(dim, "chain", "draw").values
    interval = chain_stats.hdi if hdi else chain_stats.eti
    bounds = interval(entries, ci_prob)
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        convergence = chain_stats.convergence(entries)
    sd = draws.std(sample).values
    convergence[sd == 0] = np.nan
    table = pd.DataFrame(
        {
            "mean": draws.mean(sample).values,
            "median": draws.median(sample).values,
            "sd": sd,
            "ci.lower": bounds[:, 0],
            "ci.upper": bounds[:, 1],
            "r_hat": convergence[:, 0],
            "ess_bulk": convergence[:, 1],
            "ess_tail": convergence[:, 2],
            "p_positive": (draws > 0).mean(sample).values,
        },
        index=pd.Index(draws[dim].values, name=dim),
    )
    return table
