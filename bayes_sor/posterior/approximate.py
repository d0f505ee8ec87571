"""Approximate measurement invariance (Muthen & Asparouhov 2013): each group's deviation of an
approximately equal loading or intercept from its common value, and the non-invariant ones.

The common value is the groups' mean of the parameter, mu in
:func:`bayes_sor.model.parameters._approximate_values`; a deviation is a group's value minus
it, per draw. A deviation is flagged when its credible interval (the run's, 95 % by default)
excludes 0, as Mplus flags a group's parameter that differs significantly from the average
across groups. With two groups the deviations are mirror images, so an item is flagged in
both.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from bayes_sor.posterior.summary import summarize
from bayes_sor.spec.groups import approximate_rows
from bayes_sor.spec.partable import ParTable

DEVIATION_COLUMNS = [
    "lhs",
    "op",
    "rhs",
    "kind",
    "group",
    "prior_sd",
    "common",
    "mean",
    "sd",
    "ci.lower",
    "ci.upper",
    "r_hat",
    "ess_bulk",
    "flagged",
]


def invariance_deviations(
    partable: ParTable, posterior: xr.Dataset, ci_prob: float = 0.95, hdi: bool = False
) -> pd.DataFrame:
    """One row per approximately equal parameter and group: the posterior of its deviation
    from the common value (``common``: that value's posterior mean), ``flagged`` when the
    interval excludes 0. Empty (with the columns) for a model without approximate
    invariance."""
    rows = approximate_rows(partable)
    if not len(rows):
        return pd.DataFrame(columns=DEVIATION_COLUMNS)
    free = partable.parameters.free.to_numpy()
    first_row = {f: int(np.flatnonzero(free == f)[0]) for ids in rows.free for f in ids}
    n_groups = len(partable.groups)
    positions = [first_row[ids[g]] for g in range(n_groups) for ids in rows.free]
    values = posterior["par"].isel(param=positions).values
    values = values.reshape(*values.shape[:2], n_groups, len(rows))
    common = values.mean(axis=2, keepdims=True)
    deviations = (values - common).reshape(*values.shape[:2], -1)
    table = summarize(
        xr.DataArray(deviations, dims=("chain", "draw", "entry")), ci_prob, hdi
    ).reset_index(drop=True)
    out = pd.DataFrame(
        {
            "lhs": np.tile(rows.lhs, n_groups),
            "op": np.tile(rows.op, n_groups),
            "rhs": np.tile(rows.rhs, n_groups),
            "kind": np.tile(rows.kind, n_groups),
            "group": np.repeat(partable.groups, len(rows)),
            "prior_sd": np.tile(rows.sd, n_groups),
            "common": np.tile(common.mean(axis=(0, 1, 2)), n_groups),
        }
    )
    out = pd.concat([out, table], axis=1)
    out["flagged"] = (out["ci.lower"] > 0) | (out["ci.upper"] < 0)
    return out[DEVIATION_COLUMNS]
