"""PyMC distributions of the prior families (the text is :mod:`bayes_sor.spec.prior_text`)."""

from __future__ import annotations

import numpy as np
import pymc as pm

from bayes_sor.spec.prior_text import ARGUMENTS

#: family -> PyMC distribution (``lkj`` is built with the latent correlation matrix)
DISTRIBUTIONS: dict[str, type[pm.Distribution]] = {
    "normal": pm.Normal,
    "halfnormal": pm.HalfNormal,
    "gamma": pm.Gamma,
    "lognormal": pm.LogNormal,
    "exponential": pm.Exponential,
    "student_t": pm.StudentT,
    "beta": pm.Beta,
    "uniform": pm.Uniform,
}


def group_rv(name: str, family: str, args: np.ndarray, dims: str) -> pm.Distribution:
    """One vector random variable for all free parameters that share a prior family.

    ``args`` has one row per parameter and one column per distribution argument, so each
    parameter keeps its own prior while the model graph stays small (one node per family).
    """
    dist, names = DISTRIBUTIONS[family], ARGUMENTS[family]
    kwargs = {n: args[:, i] for i, n in enumerate(names)}
    return dist(name, **kwargs, dims=dims)
