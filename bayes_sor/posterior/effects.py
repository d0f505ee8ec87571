"""Direct, indirect, total, conditional indirect and user-defined effects, per posterior draw.

Every specific indirect path is enumerated from the structural model (the ``beta`` matrix), so
users get all of them, not only those written with ``:=``. A path whose edge ``M -> Y`` is
moderated (``Y ~ M:W``) has coefficient ``b + d w`` on that edge: its indirect effect is
reported at the moderator's mean (w = 0), as conditional indirect effects at -1/0/+1 SD of the
latent W and at its 16th/50th/84th percentiles, and as the index of moderated mediation
(the product of the path's other coefficients and d).

Explicit moderator values (the header option ``moderator_values: {W: [v1, v2]}`` or
``fit(moderator_values=...)``) add conditional indirect effects at exactly those values, labelled
``W=0.600``. They are in the moderator's own units: raw data units for an observed moderator
(the structural model uses its deviation from its intercept, so ``w = v - nu_W`` per draw, as
PROCESS probes W), the latent's scale for a latent moderator (mean 0; variance 1 under std.lv,
the marker item's units under marker identification).
"""

from __future__ import annotations

import ast
import itertools
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import xarray as xr

from bayes_sor.errors import ModelSpecError
from bayes_sor.posterior.summary import summarize
from bayes_sor.spec.matrices import (
    Moments,
    Representation,
    extend,
    implied_moments,
    representation,
)
from bayes_sor.spec.partable import ParTable

KINDS = (
    "direct",
    "indirect",
    "total_indirect",
    "total",
    "conditional_indirect",
    "index_moderated_mediation",
    "defined",
)
EFFECT_COLUMNS = [
    "effect",
    "kind",
    "moderator_value",
    "mean",
    "median",
    "sd",
    "ci.lower",
    "ci.upper",
    "p_positive",
]
SD_POINTS = {"-1SD": -1.0, "0SD": 0.0, "+1SD": 1.0}


@dataclass(frozen=True)
class Effect:
    """One effect's draws (leading axes = chain, draw)."""

    effect: str
    kind: str
    moderator_value: str
    draws: np.ndarray
    #: a multiple-group model's group label, or ``"B - A"`` for the difference between groups
    group: str = ""


def _paths(rep: Representation, start: int, end: int) -> list[list[int]]:
    """All directed paths start -> ... -> end through the structural graph (a DAG)."""
    children = {
        j: [i for i in range(len(rep.latents)) if rep.beta[i, j] != rep.zero]
        for j in range(len(rep.latents))
    }
    found: list[list[int]] = []
    stack = [[start]]
    while stack:
        path = stack.pop()
        for child in children[path[-1]]:
            if child == end:
                found.append([*path, child])
            elif child not in path:
                stack.append([*path, child])
    return sorted(found, key=lambda p: (len(p), p))


def _moderation(rep: Representation) -> dict[tuple[int, int], list]:
    """(cause, outcome) edge -> interaction terms that moderate it (moderator = second)."""
    out: dict[tuple[int, int], list] = {}
    for t in rep.interactions:
        out.setdefault((t.first, t.outcome), []).append(t)
    return out


def named_moderator_values(partable: ParTable) -> dict[str, list[float]]:
    """The explicit moderator values of the model's options, checked against its moderators."""
    given = partable.options.get("moderator_values") or {}
    unknown = [w for w in given if w not in partable.moderators]
    if unknown:
        have = (
            f"its moderators are {partable.moderators}"
            if partable.moderators
            else "it has no moderated path ('Y ~ M:W')"
        )
        raise ModelSpecError(
            f"moderator_values names {unknown}, which moderate no path of the model; {have}"
        )
    return given


def parse_moderator_values(texts: list[str]) -> dict[str, list[float]]:
    """Command-line ``W=-0.531,-0.060,0.600`` (one text per moderator) -> ``{W: [...]}``."""
    out: dict[str, list[float]] = {}
    for text in texts:
        name, sep, values = text.partition("=")
        try:
            numbers = [float(v) for v in values.split(",")]
        except ValueError:
            numbers = []
        if not sep or not name.strip() or not numbers:
            raise ModelSpecError(
                f"cannot read --moderator-values {text!r}; give the moderator and its values "
                "as W=-0.5,0,0.5 (repeat the option for another moderator)"
            )
        out[name.strip()] = numbers
    return out


def value_label(moderator: str, value: float) -> str:
    """``W=0.600``: three decimals, more only when they would change the value."""
    text = f"{value:.3f}"
    return f"{moderator}={text if float(text) == value else f'{value:.6g}'}"


def _edge(ext: np.ndarray, rep: Representation, cause: int, outcome: int) -> np.ndarray:
    return ext[..., rep.beta[outcome, cause]]


def effect_draws(
    partable: ParTable,
    rep: Representation,
    par: np.ndarray,
    moderator_quantiles: np.ndarray | None = None,
) -> list[Effect]:
    """All effects for parameter draws ``par`` (chain, draw, param).

    ``moderator_quantiles`` (chain, draw, moderator, 3): the 16th/50th/84th percentiles of each
    moderator's latent scores per draw; without them (marginal fits) the normal quantiles
    -0.994/0/+0.994 SD are used. A multiple-group table: :func:`grouped_effect_draws`, with
    ``moderator_quantiles`` (chain, draw, group, moderator, 3) per group.
    """
    if partable.groups:
        return grouped_effect_draws(partable, par, moderator_quantiles)
    return structural_effects(partable, rep, par, moderator_quantiles) + defined_draws(
        partable, par
    )


def grouped_effect_draws(
    partable: ParTable, par: np.ndarray, moderator_quantiles: np.ndarray | None = None
) -> list[Effect]:
    """The effects of every group (each from its own rows; conditional effects at its own
    moderator percentiles, ``moderator_quantiles[..., g, :, :]``, or its own mean +-1 SD) and,
    for every effect of the first group, its difference in each later group (``"B - A"``, B
    minus the first group A; its ``p_positive`` in effects.csv is P(B's effect > A's)); then
    the ``:=`` definitions, which may use the groups' own labels (``c(a1, a2)*X``)."""
    labels = partable.groups
    per_group = [
        [
            replace(e, group=label)
            for e in structural_effects(
                partable,
                representation(partable, g),
                par,
                None if moderator_quantiles is None else moderator_quantiles[..., g - 1, :, :],
            )
        ]
        for g, label in enumerate(labels, start=1)
    ]
    first = {(e.effect, e.kind, e.moderator_value): e for e in per_group[0]}
    differences = [
        Effect(
            e.effect, e.kind, e.moderator_value, e.draws - before.draws, f"{e.group} - {labels[0]}"
        )
        for effects in per_group[1:]
        for e in effects
        if (before := first.get((e.effect, e.kind, e.moderator_value))) is not None
    ]
    return [*itertools.chain.from_iterable(per_group), *differences, *defined_draws(partable, par)]


def structural_effects(
    partable: ParTable,
    rep: Representation,
    par: np.ndarray,
    moderator_quantiles: np.ndarray | None = None,
) -> list[Effect]:
    """Direct, indirect, total and conditional indirect effects of the structural model
    ``rep`` (:func:`effect_draws` without the ``:=`` definitions)."""
    ext = extend(par)
    names = rep.latents
    moderated = _moderation(rep)
    points = (
        _moderator_points(partable, rep, ext, implied_moments(rep, par), moderator_quantiles)
        if moderated
        else {}
    )
    effects: list[Effect] = []
    for x in range(len(names)):
        for y in range(len(names)):
            if x == y:
                continue
            paths = _paths(rep, x, y)
            if not paths:
                continue
            label = f"{names[x]} -> {names[y]}"
            direct = [p for p in paths if len(p) == 2]
            indirect = [p for p in paths if len(p) > 2]
            total = np.zeros(par.shape[:-1])
            if direct:
                d = _edge(ext, rep, x, y)
                effects.append(Effect(label, "direct", "", d))
                total = total + d
            if not indirect:
                continue
            total_ind = np.zeros(par.shape[:-1])
            for path in indirect:
                path_name = " -> ".join(names[i] for i in path)
                edges = itertools.pairwise(path)
                value = np.prod([_edge(ext, rep, a, b) for a, b in edges], axis=0)
                effects.append(Effect(path_name, "indirect", "", value))
                total_ind = total_ind + value
                effects += _conditional(path, path_name, ext, rep, moderated, points)
            effects.append(Effect(label, "total_indirect", "", total_ind))
            effects.append(Effect(label, "total", "", total + total_ind))
    return effects


def _moderator_points(
    partable: ParTable,
    rep: Representation,
    ext: np.ndarray,
    mom: Moments,
    moderator_quantiles: np.ndarray | None,
) -> dict[str, dict[str, np.ndarray]]:
    """Moderator -> {label: its value w in the structural model, per draw}.

    ``w`` is the moderator's deviation from its mean (an observed moderator: from its
    intercept), the scale on which ``b + d w`` holds; a later group's latent moderator has its
    own mean (multiple groups), around which its SD points lie.
    """
    explicit = named_moderator_values(partable)
    out: dict[str, dict[str, np.ndarray]] = {}
    means = _latent_means(rep, ext)
    for w_name in partable.moderators:
        k = rep.latents.index(w_name)
        w_sd = np.sqrt(mom.latent_cov[..., k, k])
        w_mean = 0.0 if means is None else means[..., k]
        points = {f"{w_name}={lab}": w_mean + z * w_sd for lab, z in SD_POINTS.items()}
        if moderator_quantiles is not None:
            q = moderator_quantiles[..., partable.moderators.index(w_name), :]
            points.update(
                {f"{w_name}={lab}": q[..., i] for i, lab in enumerate(("p16", "p50", "p84"))}
            )
        else:
            points.update(
                {
                    f"{w_name}=p{p}": w_mean + z * w_sd
                    for p, z in ((16, -0.9945), (50, 0.0), (84, 0.9945))
                }
            )
        origin = (
            ext[..., rep.nu[rep.items.index(w_name)]]
            if w_name in partable.observed_structural
            else 0.0
        )
        points.update({value_label(w_name, v): v - origin for v in explicit.get(w_name, [])})
        out[w_name] = points
    return out


def _latent_means(rep: Representation, ext: np.ndarray) -> np.ndarray | None:
    """The latents' means (I - B)^-1 alpha per draw; ``None`` without latent means."""
    if rep.alpha is None:
        return None
    total = np.linalg.inv(np.eye(len(rep.latents)) - ext[..., rep.beta])
    return (total @ ext[..., rep.alpha][..., None])[..., 0]


def _conditional(
    path: list[int],
    path_name: str,
    ext: np.ndarray,
    rep: Representation,
    moderated: dict,
    points: dict[str, dict[str, np.ndarray]],
) -> list[Effect]:
    out: list[Effect] = []
    for k, (a, b) in enumerate(itertools.pairwise(path)):
        for t in moderated.get((a, b), []):
            others = [
                _edge(ext, rep, c, d) for j, (c, d) in enumerate(itertools.pairwise(path)) if j != k
            ]
            rest = np.prod(others, axis=0)
            slope, d = _edge(ext, rep, a, b), ext[..., t.param]
            w_name = rep.latents[t.second]
            for lab, w in points[w_name].items():
                out.append(Effect(path_name, "conditional_indirect", lab, rest * (slope + d * w)))
            out.append(Effect(path_name, "index_moderated_mediation", w_name, rest * d))
    return out


def defined_draws(partable: ParTable, par: np.ndarray) -> list[Effect]:
    """Evaluate each ``name := expression`` on the draws of the labelled parameters."""
    params = partable.parameters.reset_index(drop=True)
    labelled = {r.label: par[..., k] for k, r in enumerate(params.itertuples()) if r.label}
    out = []
    for r in partable.defined.itertuples():
        tree = ast.parse(r.rhs.replace("^", "**"), mode="eval")
        # The parser allowed only arithmetic on names and numbers, so this eval is safe.
        value = eval(compile(tree, "<definition>", "eval"), {"__builtins__": {}}, labelled)
        value = np.broadcast_to(value, par.shape[:-1])
        labelled[r.lhs] = value  # later definitions may use earlier ones, as in lavaan
        out.append(Effect(r.lhs, "defined", "", value))
    return out


def effects_dataarray(
    effects: list[Effect], sample_shape: tuple[int, int] = (1, 0)
) -> xr.DataArray:
    """Stack effects into one (chain, draw, effect_id) DataArray with descriptive coords.

    A model without paths or definitions (a pure CFA) has no effects: the array is then empty
    along ``effect_id`` with the given ``(chain, draw)`` shape.
    """
    keys = [
        f"{e.kind}: {e.effect}"
        + (f" @ {e.moderator_value}" if e.moderator_value else "")
        + (f" [{e.group}]" if e.group else "")
        for e in effects
    ]
    values = (
        np.stack([e.draws for e in effects], axis=-1) if effects else np.zeros((*sample_shape, 0))
    )
    coords = {
        "effect_id": keys,
        "effect": ("effect_id", [e.effect for e in effects]),
        "kind": ("effect_id", [e.kind for e in effects]),
        "moderator_value": ("effect_id", [e.moderator_value for e in effects]),
    }
    if any(e.group for e in effects):  # a multiple-group model's effects
        coords["group"] = ("effect_id", [e.group for e in effects])
    return xr.DataArray(values, dims=("chain", "draw", "effect_id"), coords=coords, name="effects")


def effects_table(effects: xr.DataArray, ci_prob: float = 0.95, hdi: bool = False) -> pd.DataFrame:
    """One row per effect: the ``effects.csv`` layout (a multiple-group model's adds
    ``group`` after ``moderator_value``: the group's label, or ``B - A`` for a difference)."""
    grouped = "group" in effects.coords
    described = ["effect", "kind", "moderator_value", *(["group"] if grouped else [])]
    table = summarize(effects.drop_vars(described), ci_prob, hdi)
    for column in described[::-1]:
        table.insert(0, column, effects[column].values)
    columns = [*EFFECT_COLUMNS[:3], "group", *EFFECT_COLUMNS[3:]] if grouped else EFFECT_COLUMNS
    return table.reset_index(drop=True)[columns]
