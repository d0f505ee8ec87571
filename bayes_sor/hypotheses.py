"""Hypotheses declared in the model file (``# H1: CT ~ PI > 0``) judged from the posterior.

A hypothesis names a quantity and a direction: a path (``CT ~ PI``, ``IB ~ CT:IT``), a label
(``b``), a defined parameter, or an effect (``indirect(PI -> CT -> IB)``, ``total(PI -> IB)``,
``direct(...)``, ``total_indirect(...)``), followed by ``> 0`` or ``< 0``.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import xarray as xr

from bayes_sor.errors import ModelSpecError
from bayes_sor.partable import ParTable, row_name

_FORM = re.compile(r"^(?P<quantity>.+?)\s*(?P<direction>[<>])\s*0\s*$")
_EFFECT = re.compile(r"^(?P<kind>indirect|direct|total|total_indirect)\((?P<path>.+)\)$")

#: (minimum posterior probability of the stated direction, verdict in words)
VERDICTS = ((0.99, "strong support"), (0.95, "support"), (0.90, "weak support"),
            (0.10, "inconclusive"), (0.0, "evidence against"))
HYPOTHESIS_COLUMNS = ["hypothesis", "statement", "mean", "ci.lower", "ci.upper",
                      "p_direction", "verdict"]


def verdict(p_direction: float) -> str:
    """Words for the posterior probability that the hypothesised direction holds."""
    return next(text for bound, text in VERDICTS if p_direction >= bound)


def _draws(quantity: str, partable: ParTable, posterior: xr.Dataset) -> xr.DataArray:
    quantity = re.sub(r"\s+", " ", quantity.strip())
    effect = _EFFECT.match(quantity)
    effects = posterior["effects"]
    if effect:
        path = " -> ".join(p.strip() for p in effect.group("path").split("->"))
        kind = effect.group("kind")
        mask = (effects.kind == kind) & (effects.effect == path) & (effects.moderator_value == "")
        if not mask.any():
            raise ModelSpecError(f"hypothesis quantity {quantity!r}: no {kind} effect "
                                 f"{path!r} in the model")
        return effects.isel(effect_id=int(np.flatnonzero(mask.values)[0]))
    names = partable.names
    if "~" in quantity:
        lhs, rhs = (s.strip().replace(" ", "") for s in quantity.split("~", 1))
        name = row_name(lhs, "~", rhs)
        if name in names:
            return posterior["par"].sel(param=name)
        raise ModelSpecError(f"hypothesis quantity {quantity!r}: the model has no path {name!r}")
    params = partable.parameters.reset_index(drop=True)
    labelled = params.index[params.label == quantity]
    if len(labelled):
        return posterior["par"].sel(param=names[labelled[0]])
    defined = (effects.kind == "defined") & (effects.effect == quantity)
    if defined.any():
        return effects.isel(effect_id=int(np.flatnonzero(defined.values)[0]))
    raise ModelSpecError(f"hypothesis quantity {quantity!r} is not a path, label, defined "
                         "parameter or effect of the model")


def evaluate(partable: ParTable, posterior: xr.Dataset, ci_prob: float = 0.95) -> pd.DataFrame:
    """One row per declared hypothesis: posterior mean, interval, P(direction), verdict."""
    rows = []
    for h in partable.hypotheses:
        form = _FORM.match(h.text)
        if form is None:
            raise ModelSpecError(f"model line {h.line}: hypothesis {h.name} must read "
                                 "'<quantity> > 0' or '<quantity> < 0', e.g. 'CT ~ PI > 0'")
        draws = _draws(form.group("quantity"), partable, posterior).values.ravel()
        sign = 1 if form.group("direction") == ">" else -1
        p_direction = float(np.mean(sign * draws > 0))
        tail = (1 - ci_prob) / 2
        rows.append({
            "hypothesis": h.name,
            "statement": h.text,
            "mean": float(draws.mean()),
            "ci.lower": float(np.quantile(draws, tail)),
            "ci.upper": float(np.quantile(draws, 1 - tail)),
            "p_direction": p_direction,
            "verdict": verdict(p_direction),
        })
    return pd.DataFrame(rows, columns=HYPOTHESIS_COLUMNS)
