"""Explained variance (R^2) of each endogenous construct, per posterior draw.

R^2 = 1 - Var(zeta) / Var(eta): the construct's residual variance (``psi``) over its total
variance implied by the model (``latent_cov``, which counts a latent interaction's
contribution), so it is the share of the construct's variance its causes explain, as lavaan's
``inspect(fit, "r2")`` for latent outcomes.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bayes_sor.spec.matrices import implied_moments, representation
from bayes_sor.spec.partable import ParTable


def r_squared_draws(partable: ParTable, par: np.ndarray) -> dict[str, np.ndarray]:
    """R^2 per draw of every endogenous construct; ``par`` is (..., param)."""
    rep = representation(partable)
    draws = np.asarray(par, dtype=float).reshape(-1, np.shape(par)[-1])
    moments = implied_moments(rep, draws)
    out = {}
    for name in partable.endogenous:
        j = rep.latents.index(name)
        out[name] = 1.0 - moments.psi[:, j, j] / moments.latent_cov[:, j, j]
    return out


def r_squared(partable: ParTable, par: np.ndarray, ci_prob: float = 0.95) -> pd.DataFrame:
    """Posterior mean and equal-tailed ``ci_prob`` interval of each endogenous construct's R^2
    (columns construct, mean, ci.lower, ci.upper; no rows for a model without paths)."""
    tail = (1 - ci_prob) / 2
    rows = [
        {
            "construct": name,
            "mean": float(values.mean()),
            "ci.lower": float(np.quantile(values, tail)),
            "ci.upper": float(np.quantile(values, 1 - tail)),
        }
        for name, values in r_squared_draws(partable, par).items()
    ]
    return pd.DataFrame(rows, columns=["construct", "mean", "ci.lower", "ci.upper"])
