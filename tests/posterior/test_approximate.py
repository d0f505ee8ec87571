"""Deviations from the common value under approximate invariance (posterior/approximate.py),
from draws of ``par`` made up so that the answer is known."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from bayes_sor.posterior.approximate import DEVIATION_COLUMNS, invariance_deviations
from bayes_sor.spec.groups import with_groups
from bayes_sor.spec.partable import build_partable

TEXT = "---\napproximate: {intercepts: 0.1}\n---\nF =~ y1 + y2 + y3\n"


def _posterior(pt, values: dict[tuple[str, int], float], seed: int = 0) -> xr.Dataset:
    """``par`` draws: the given row (name, group) at its value plus N(0, 0.02) noise, others 1."""
    rng = np.random.default_rng(seed)
    draws = 1.0 + rng.normal(0.0, 0.02, (2, 500, len(pt.names)))
    params = pt.parameters.reset_index(drop=True)
    for k, r in enumerate(params.itertuples()):
        draws[:, :, k] += values.get((f"{r.lhs}{r.op}{r.rhs}", r.group), 1.0) - 1.0
    return xr.Dataset({"par": (("chain", "draw", "param"), draws)}, coords={"param": pt.names})


def test_a_group_apart_is_flagged_with_its_deviation_from_the_groups_mean():
    pt = with_groups(build_partable(TEXT), ["a", "b", "c"])
    out = invariance_deviations(pt, _posterior(pt, {("y2~1", 3): 1.6}))
    assert list(out.columns) == DEVIATION_COLUMNS and len(out) == 3 * 3
    y2 = out[out.lhs == "y2"].set_index("group")
    # common value (1 + 1 + 1.6) / 3 = 1.2: deviations -0.2, -0.2, +0.4
    assert y2.common.iloc[0] == pytest.approx(1.2, abs=0.005)
    assert y2["mean"].to_numpy() == pytest.approx([-0.2, -0.2, 0.4], abs=0.005)
    assert y2.flagged.all() and not out[out.lhs != "y2"].flagged.any()
    assert (out.prior_sd == 0.1).all() and (out.kind == "intercepts").all()


def test_no_approximate_invariance_no_rows():
    pt = with_groups(build_partable("F =~ y1 + y2 + y3\n"), ["a", "b"])
    out = invariance_deviations(pt, _posterior(pt, {}))
    assert out.empty and list(out.columns) == DEVIATION_COLUMNS
