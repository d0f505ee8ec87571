"""Hypotheses declared in the model file (``# H1: CT ~ PI > 0``) judged from the posterior.

A hypothesis names a quantity and a direction: a path (``CT ~ PI``, ``IB ~ CT:IT``), a label
(``b``), a defined parameter, or an effect (``indirect(PI -> CT -> IB)``, ``total(PI -> IB)``,
``direct(...)``, ``total_indirect(...)``), followed by ``> 0`` or ``< 0``.

Besides P(direction), each hypothesis gets the probability of practical equivalence: the
posterior mass inside a region of practical equivalence (ROPE, default +/- 0.05) around zero.
The ROPE is read on the fully standardised (``std.all``) scale, so one width fits every path:
parameters through :func:`bayes_sor.posterior.estimates.standardized_draws`, effects of X on Y by
sd(X) / sd(Y) (model-implied, per draw). Defined (``:=``) quantities have no standard scale;
their ROPE is read on the raw scale and the table says so.
"""

from __future__ import annotations

import argparse
import re
from functools import cached_property

import numpy as np
import pandas as pd
import xarray as xr

from bayes_sor.errors import ModelSpecError
from bayes_sor.posterior.effects import effect_draws, effects_dataarray
from bayes_sor.posterior.estimates import standardized_draws
from bayes_sor.spec.matrices import implied_moments, representation
from bayes_sor.spec.partable import ParTable, row_name

_FORM = re.compile(r"^(?P<quantity>.+?)\s*(?P<direction>[<>])\s*0\s*$")
_EFFECT = re.compile(r"^(?P<kind>indirect|direct|total|total_indirect)\((?P<path>.+)\)$")

#: (minimum posterior probability of the stated direction, verdict in words)
VERDICTS = (
    (0.99, "strong support"),
    (0.95, "support"),
    (0.90, "weak support"),
    (0.10, "inconclusive"),
    (0.0, "evidence against"),
)
#: half-width of the default region of practical equivalence, on the std.all scale
DEFAULT_ROPE = 0.05
#: P(inside the ROPE) from which an effect is called practically zero
ROPE_EQUIVALENT = 0.95
#: P(inside the ROPE) from which a supported direction is flagged as probably negligible
ROPE_NEGLIGIBLE = 0.5
HYPOTHESIS_COLUMNS = [
    "hypothesis",
    "statement",
    "mean",
    "ci.lower",
    "ci.upper",
    "std.mean",
    "std.ci.lower",
    "std.ci.upper",
    "p_direction",
    "rope",
    "rope_scale",
    "p_rope",
    "verdict",
]


def verdict(p_direction: float, p_rope: float | None = None) -> str:
    """Words for P(stated direction), qualified by P(inside the ROPE) when given."""
    if p_rope is not None and p_rope >= ROPE_EQUIVALENT:
        return "practically zero"
    words = next(text for bound, text in VERDICTS if p_direction >= bound)
    if p_rope is not None and p_rope >= ROPE_NEGLIGIBLE and "support" in words:
        words += ", probably negligible"
    return words


def rope_width(text: str) -> float:
    """argparse type of ``--rope``: a finite half-width >= 0."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not np.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a half-width >= 0 such as 0.05, got {text!r}")
    return value


def verdict_rules(rope: float) -> str:
    """The verdict thresholds in words, for reports."""
    steps = ", ".join(f">= {bound:.2f} {text}" for bound, text in VERDICTS[:3])
    return (
        f"P(direction) {steps}, <= {VERDICTS[-2][0]:.2f} {VERDICTS[-1][1]}, otherwise "
        f"{VERDICTS[-2][1]}; P(ROPE) is the posterior mass within +/- {rope:g} "
        f"(std.all scale unless the table says raw): >= {ROPE_EQUIVALENT:.2f} overrides the "
        f"verdict with 'practically zero', >= {ROPE_NEGLIGIBLE:.2f} adds 'probably "
        "negligible' to a supported direction"
    )


class _Standardizer:
    """std.all draws of parameters and effects, computed once and only when needed."""

    def __init__(self, partable: ParTable, par: np.ndarray) -> None:
        self.partable, self.par = partable, par

    @cached_property
    def _rep(self):

        return representation(self.partable)

    @cached_property
    def parameters(self) -> np.ndarray:

        return standardized_draws(self.partable, self._rep, self.par)

    @cached_property
    def latent_sd(self) -> dict[str, np.ndarray]:

        cov = implied_moments(self._rep, self.par).latent_cov
        sd = np.sqrt(np.diagonal(cov, axis1=-2, axis2=-1))
        return dict(zip(self._rep.latents, np.moveaxis(sd, -1, 0), strict=True))

    def effect(self, path: str, draws: np.ndarray) -> np.ndarray:
        """An effect of the path's first on its last variable, in SDs of both."""
        nodes = [n.strip() for n in path.split("->")]
        return draws * self.latent_sd[nodes[0]] / self.latent_sd[nodes[-1]]


def _draws(
    quantity: str, partable: ParTable, posterior: xr.Dataset, std: _Standardizer
) -> tuple[np.ndarray, np.ndarray | None]:
    """The quantity's raw draws and its std.all draws (None where it has no standard scale)."""
    quantity = re.sub(r"\s+", " ", quantity.strip())
    effect = _EFFECT.match(quantity)
    effects = posterior["effects"]
    if effect:
        path = " -> ".join(p.strip() for p in effect.group("path").split("->"))
        kind = effect.group("kind")
        mask = (effects.kind == kind) & (effects.effect == path) & (effects.moderator_value == "")
        if not mask.any():
            raise ModelSpecError(
                f"hypothesis quantity {quantity!r}: no {kind} effect {path!r} in the model"
            )
        draws = effects.isel(effect_id=int(np.flatnonzero(mask.values)[0])).values
        return draws, std.effect(path, draws)
    names = partable.names
    if "~" in quantity:
        lhs, rhs = (s.strip().replace(" ", "") for s in quantity.split("~", 1))
        name = row_name(lhs, "~", rhs)
        if name not in names:
            raise ModelSpecError(
                f"hypothesis quantity {quantity!r}: the model has no path {name!r}"
            )
        return _parameter(names.index(name), posterior, std)
    params = partable.parameters.reset_index(drop=True)
    labelled = params.index[params.label == quantity]
    if len(labelled):
        return _parameter(int(labelled[0]), posterior, std)
    defined = (effects.kind == "defined") & (effects.effect == quantity)
    if defined.any():
        return effects.isel(effect_id=int(np.flatnonzero(defined.values)[0])).values, None
    raise ModelSpecError(
        f"hypothesis quantity {quantity!r} is not a path, label, defined "
        "parameter or effect of the model"
    )


def _parameter(
    k: int, posterior: xr.Dataset, std: _Standardizer
) -> tuple[np.ndarray, np.ndarray | None]:
    return posterior["par"].isel(param=k).values, std.parameters[..., k]


def check_hypotheses(partable: ParTable) -> None:
    """Raise :class:`ModelSpecError` for a hypothesis that cannot be read or names nothing in
    the model, before any sampling: :func:`evaluate` on one placeholder draw (every free
    parameter 0.5), which finds every quantity exactly as a fit's posterior would."""
    if not partable.hypotheses:
        return

    values = partable.parameters.value.to_numpy(dtype=float)
    par = np.where(np.isnan(values), 0.5, values)[None, None, :]
    effects = effect_draws(partable, representation(partable), par)
    posterior = xr.Dataset(
        {
            "par": (("chain", "draw", "param"), par),
            "effects": effects_dataarray(effects, sample_shape=(1, 1)),
        }
    )
    with np.errstate(all="ignore"):
        evaluate(partable, posterior)


def evaluate(
    partable: ParTable, posterior: xr.Dataset, ci_prob: float = 0.95, rope: float = DEFAULT_ROPE
) -> pd.DataFrame:
    """One row per declared hypothesis: mean, interval, P(direction), P(ROPE), verdict.

    ``mean`` and ``ci.*`` are on the model's (raw) scale, ``std.*`` on the std.all scale.
    """
    if not rope >= 0:
        raise ModelSpecError(f"--rope must be a half-width >= 0 (e.g. 0.05), got {rope}")
    std = _Standardizer(partable, posterior["par"].values)
    tail = (1 - ci_prob) / 2
    rows = []
    for h in partable.hypotheses:
        form = _FORM.match(h.text)
        if form is None:
            raise ModelSpecError(
                f"model line {h.line}: hypothesis {h.name} must read "
                "'<quantity> > 0' or '<quantity> < 0', e.g. 'CT ~ PI > 0'"
            )
        raw, standard = _draws(form.group("quantity"), partable, posterior, std)
        raw = raw.ravel()
        standard = standard.ravel() if standard is not None else None
        sign = 1 if form.group("direction") == ">" else -1
        p_direction = float(np.mean(sign * raw > 0))
        scaled = raw if standard is None else standard
        p_rope = float(np.mean(np.abs(scaled) <= rope))
        std_summary = (
            (np.nan,) * 3
            if standard is None
            else (
                float(standard.mean()),
                *(float(np.quantile(standard, q)) for q in (tail, 1 - tail)),
            )
        )
        rows.append(
            {
                "hypothesis": h.name,
                "statement": h.text,
                "mean": float(raw.mean()),
                "ci.lower": float(np.quantile(raw, tail)),
                "ci.upper": float(np.quantile(raw, 1 - tail)),
                "std.mean": std_summary[0],
                "std.ci.lower": std_summary[1],
                "std.ci.upper": std_summary[2],
                "p_direction": p_direction,
                "rope": rope,
                "rope_scale": "raw" if standard is None else "std.all",
                "p_rope": p_rope,
                "verdict": verdict(p_direction, p_rope),
            }
        )
    return pd.DataFrame(rows, columns=HYPOTHESIS_COLUMNS)


def console_table(table: pd.DataFrame) -> str:
    """The verdicts of a :func:`evaluate` table as the console shows them after a fit: the
    statement, the standardised (std.all, else raw) mean and interval, P(direction), P(ROPE)."""
    if table.empty:
        return "hypotheses: none declared (# H1: ... comments in the model file)"
    standard = table["std.mean"].notna()
    shown = pd.DataFrame(
        {
            "hypothesis": table["hypothesis"],
            "statement": table["statement"],
            "scale": np.where(standard, "std.all", "raw"),
            "mean": table["std.mean"].where(standard, table["mean"]),
            "ci.lower": table["std.ci.lower"].where(standard, table["ci.lower"]),
            "ci.upper": table["std.ci.upper"].where(standard, table["ci.upper"]),
            "p_direction": table["p_direction"],
            "p_rope": table["p_rope"],
            "verdict": table["verdict"],
        }
    )
    rope = float(table["rope"].iloc[0])
    return f"hypotheses (ROPE +/- {rope:g}):\n" + shown.round(3).to_string(index=False)
