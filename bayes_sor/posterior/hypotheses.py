"""Hypotheses declared in the model file (``# H1: CT ~ PI > 0``) judged from the posterior.

A hypothesis names a quantity and a direction: a path (``CT ~ PI``, ``IB ~ CT:IT``), a label
(``b``), a defined parameter, or an effect (``indirect(PI -> CT -> IB)``, ``total(PI -> IB)``,
``direct(...)``, ``total_indirect(...)``), followed by ``> 0`` or ``< 0``. In a multiple-group
model a quantity may name its group in brackets (``CT ~ PI [women]``; without one it is the
first group's), and two quantities may be compared (``CT ~ PI [women] > CT ~ PI [men]``,
``a2 > a1`` with ``c(a1, a2)`` labels): the hypothesis is then about their difference, left
minus right, on the raw and on the std.all scale (each side standardised in its own group).

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

import numpy as np
import pandas as pd
import xarray as xr

from bayes_sor.errors import ModelSpecError
from bayes_sor.posterior.effects import effect_draws, effects_dataarray
from bayes_sor.posterior.estimates import Standardizer
from bayes_sor.spec.matrices import representation
from bayes_sor.spec.partable import ParTable, row_name

#: a comparison sign; a '>' after '-' is a path's arrow
_SIGN = re.compile(r"(?<!-)[<>]")
#: a quantity's group: ``[women]`` after a space (``gender[female]`` is a coded control)
_GROUP = re.compile(r"^(?P<quantity>.+?)\s+\[(?P<group>[^\[\]]+)\]$")
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


def _group(quantity: str, partable: ParTable) -> tuple[str, int | None]:
    """The quantity without its ``[group]`` and that group's number (None: not named)."""
    tagged = _GROUP.match(quantity)
    if tagged is None:
        return quantity, None
    label = tagged.group("group").strip()
    if label not in partable.groups:
        known = (
            f"the groups are {', '.join(partable.groups)}"
            if partable.groups
            else "the model is fitted to one group (no group column)"
        )
        raise ModelSpecError(
            f"hypothesis quantity {quantity!r} names the group {label!r}; {known} (a "
            "dummy-coded control is written without a space: gender[female])"
        )
    return tagged.group("quantity"), partable.groups.index(label) + 1


def _draws(
    quantity: str, partable: ParTable, posterior: xr.Dataset, std: Standardizer
) -> tuple[np.ndarray, np.ndarray | None]:
    """The quantity's raw draws and its std.all draws (None where it has no standard scale)."""
    quantity, group = _group(re.sub(r"\s+", " ", quantity.strip()), partable)
    effect = _EFFECT.match(quantity)
    effects = posterior["effects"]
    if effect:
        path = " -> ".join(p.strip() for p in effect.group("path").split("->"))
        kind = effect.group("kind")
        mask = (effects.kind == kind) & (effects.effect == path) & (effects.moderator_value == "")
        if partable.groups:
            mask = mask & (effects.group == partable.groups[(group or 1) - 1])
        if not mask.any():
            raise ModelSpecError(
                f"hypothesis quantity {quantity!r}: no {kind} effect {path!r} in the model"
            )
        draws = effects.isel(effect_id=int(np.flatnonzero(mask.values)[0])).values
        return draws, std.effect(path, draws, group or 1)
    names = partable.names
    if "~" in quantity:
        lhs, rhs = (s.strip().replace(" ", "") for s in quantity.split("~", 1))
        name = row_name(lhs, "~", rhs)
        if name not in names:
            raise ModelSpecError(
                f"hypothesis quantity {quantity!r}: the model has no path {name!r}"
            )
        suffix = f".g{group}" if group and group > 1 else ""
        return _parameter(names.index(name + suffix), partable, posterior, std)
    params = partable.parameters.reset_index(drop=True)
    chosen = params.label == quantity
    if group is not None:
        chosen &= params.group == group
    labelled = params.index[chosen]
    if len(labelled):
        return _parameter(int(labelled[0]), partable, posterior, std)
    defined = (effects.kind == "defined") & (effects.effect == quantity)
    if defined.any() and group is None:
        return effects.isel(effect_id=int(np.flatnonzero(defined.values)[0])).values, None
    if defined.any():
        raise ModelSpecError(
            f"hypothesis quantity {quantity!r}: a defined parameter (:=) belongs to no group; "
            "drop the [group], or define one per group from the groups' labels"
        )
    raise ModelSpecError(
        f"hypothesis quantity {quantity!r} is not a path, label, defined "
        "parameter or effect of the model"
    )


def _parameter(
    k: int, partable: ParTable, posterior: xr.Dataset, std: Standardizer
) -> tuple[np.ndarray, np.ndarray | None]:
    """Table row ``k``'s draws, standardised in its own group."""
    params = partable.parameters
    group = int(params.group.iloc[k]) if "group" in params.columns else 1
    return posterior["par"].isel(param=k).values, std.parameters(group)[..., k]


def names_groups(text: str, partable: ParTable) -> bool:
    """Whether every quantity of a hypothesis names its group: ``[women]``, or a label of one
    group's row (``a2`` of ``c(a1, a2)``)."""
    params = partable.parameters
    own = set()
    if "group" in params.columns:
        labelled = params[params.label != ""]
        groups = labelled.groupby("label").group.nunique()
        own = set(groups.index[groups == 1])
    sides = [side.strip() for side in _SIGN.split(text)]
    return all(side == "0" or side in own or _GROUP.match(side) for side in sides)


def _comparison(
    text: str, partable: ParTable, posterior: xr.Dataset, std: Standardizer
) -> tuple[str, np.ndarray, np.ndarray | None] | None:
    """(direction, raw draws, std.all draws) of ``<quantity> > 0``, ``<quantity> < 0`` or
    ``<quantity> > <quantity>`` (their difference); None when the text has no single sign."""
    signs = list(_SIGN.finditer(text))
    if len(signs) != 1:
        return None
    sign = signs[0]
    left, right = text[: sign.start()].strip(), text[sign.end() :].strip()
    if not left or not right:
        return None
    raw, standard = _draws(left, partable, posterior, std)
    if right != "0":
        other, other_std = _draws(right, partable, posterior, std)
        raw = raw - other
        standard = None if standard is None or other_std is None else standard - other_std
    return sign.group(), raw, standard


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
    partable: ParTable,
    posterior: xr.Dataset,
    ci_prob: float = 0.95,
    rope: float = DEFAULT_ROPE,
    standardizer: Standardizer | None = None,
) -> pd.DataFrame:
    """One row per declared hypothesis: mean, interval, P(direction), P(ROPE), verdict.

    ``mean`` and ``ci.*`` are on the model's (raw) scale, ``std.*`` on the std.all scale.
    ``standardizer``: the :class:`~bayes_sor.posterior.estimates.Standardizer` of the
    posterior's ``par`` that the estimates used, where the caller shares one.
    """
    if not rope >= 0:
        raise ModelSpecError(f"--rope must be a half-width >= 0 (e.g. 0.05), got {rope}")
    std = standardizer or Standardizer(partable, posterior["par"].values)
    tail = (1 - ci_prob) / 2
    rows = []
    for h in partable.hypotheses:
        form = _comparison(h.text, partable, posterior, std)
        if form is None:
            raise ModelSpecError(
                f"model line {h.line}: hypothesis {h.name} must read "
                "'<quantity> > 0', '<quantity> < 0' or, between groups, "
                "'<quantity> [B] > <quantity> [A]', e.g. 'CT ~ PI > 0'"
            )
        direction, raw, standard = form
        raw = raw.ravel()
        standard = standard.ravel() if standard is not None else None
        sign = 1 if direction == ">" else -1
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
