"""Posterior summaries of (chain, draw, X) DataArrays through ArviZ: one table layout for all."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import xarray as xr

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
    # arviz_stats imports scipy.stats (~0.6 s): loaded where used (see check_convergence)
    import arviz_stats as azs

    (dim,) = [d for d in draws.dims if d not in ("chain", "draw")]
    sample = ("chain", "draw")
    interval = (azs.hdi if hdi else azs.eti)(draws, prob=ci_prob)
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        r_hat = azs.rhat(draws)
        ess_bulk = azs.ess(draws, method="bulk")
        ess_tail = azs.ess(draws, method="tail")
    constant = draws.std(sample) == 0
    table = pd.DataFrame(
        {
            "mean": draws.mean(sample).values,
            "median": draws.median(sample).values,
            "sd": draws.std(sample).values,
            "ci.lower": interval.sel(ci_bound="lower").values,
            "ci.upper": interval.sel(ci_bound="upper").values,
            "r_hat": r_hat.where(~constant).values,
            "ess_bulk": ess_bulk.where(~constant).values,
            "ess_tail": ess_tail.where(~constant).values,
            "p_positive": (draws > 0).mean(sample).values,
        },
        index=pd.Index(draws[dim].values, name=dim),
    )
    return table
