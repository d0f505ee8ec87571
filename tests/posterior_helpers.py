"""Shared helpers for the slow agreement tests: sample a model without the effects layer.

The checks here are about the likelihoods, so they stop at the parameter vector and its
summary (``estimates.csv``'s columns), which also works for models without structural paths.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from bayes_sor.model.build import pymc_model
from bayes_sor.posterior.estimates import parameter_estimates
from bayes_sor.sampling.samplers import SamplerSettings, sample
from bayes_sor.spec.partable import ParTable


def fit_posterior(
    partable: ParTable,
    data,
    likelihood: str = "auto",
    chains: int = 4,
    draws: int = 1000,
    seed: int = 1,
) -> tuple[xr.Dataset, pd.DataFrame]:
    """(posterior, estimates) of ``partable`` on ``data`` (a DataFrame or SummaryData)."""
    built = pymc_model(partable, data, likelihood=likelihood)
    settings = SamplerSettings(chains=chains, draws=draws, tune=draws, seed=seed, progressbar=False)
    posterior = sample(built, settings)["posterior"].to_dataset()
    estimates = parameter_estimates(partable, posterior)
    estimates.index = estimates.lhs + estimates.op + estimates.rhs
    return posterior, estimates


def reference_table(path, column: str = "est") -> pd.Series:
    """A lavaan / blavaan parameter table as a Series indexed like ``estimates``."""
    ref = pd.read_csv(path).fillna({"rhs": ""})
    return pd.Series(ref[column].to_numpy(dtype=float), index=ref.lhs + ref.op + ref.rhs)


def z_distance(estimates: pd.DataFrame, reference: pd.Series, rows: list[str]) -> pd.Series:
    """|posterior mean - reference| in posterior SDs."""
    est = estimates.loc[rows]
    return (est["mean"] - reference[rows]).abs() / est["sd"]


def draws_of(posterior: xr.Dataset, name: str) -> np.ndarray:
    """Flattened draws of one ``par`` entry (``lhs op rhs`` without spaces)."""
    return posterior["par"].sel(param=name).values.ravel()
