"""Multiple-group parameter tables, with lavaan's semantics (``group=``, ``group.equal``,
``group.partial``).

The table of one group (:func:`bayes_sor.spec.partable.build_partable`) is the first group's;
:func:`with_groups` repeats it once per group (a ``group`` column numbers them from 1) and then

- applies each group's entry of ``c(...)`` modifiers (a label, a fixed value or ``NA``);
- adds the latent means (``f ~ 1``), fixed to 0;
- makes the rows of every kind named in ``group.equal`` (except those in ``group.partial``)
  share the first group's free parameter (an equality constraint is a shared free number);
- identifies each group as lavaan does: when the loadings are equal, latent variances fixed
  by std.lv are free in all but the first group; when the intercepts or the thresholds are
  equal, the latent means are free in all but the first group; when the thresholds are
  equal, the residual variances of ordinal items with three or more categories (1 in the theta
  parameterisation) are free in all but the first group (lavaan's theta parameterisation;
  bayes_sor has no delta one); a binary item's stays 1 (Wu & Estabrook 2016).

A plain label (``a*x``) is the same label in every group, hence one parameter for all groups;
``c(a1, a2)*x`` gives each group its own.

Approximate invariance (Muthen & Asparouhov 2013; header ``approximate: {loadings: 0.05}``)
keeps each group's row its own free number, as configural, but identifies the later groups as
``group.equal`` would (latent variances free when the loadings are approximate, latent means
when the intercepts are); :func:`approximate_rows` names the rows whose group values
:mod:`bayes_sor.model.parameters` draws around a common value with that prior SD.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bayes_sor.errors import ModelSpecError
from bayes_sor.spec.partable import (
    COLUMNS,
    ParTable,
    _check_labels,
    _prior_for,
    group_modifier,
    kind_of,
    row_name,
)
from bayes_sor.spec.syntax import parse

#: lavaan's ``group.equal`` kinds
EQUAL_KINDS = (
    "loadings",
    "intercepts",
    "means",
    "thresholds",
    "regressions",
    "residuals",
    "residual.covariances",
    "lv.variances",
    "lv.covariances",
)

#: the kinds whose group values approximate invariance draws around a common value
APPROXIMATE_KINDS = ("loadings", "intercepts")


def equal_kind(pt: ParTable, lhs: str, op: str, rhs: str) -> str:
    """The ``group.equal`` kind of a row (``""`` for rows no kind covers): the parameter kind
    of :func:`~bayes_sor.spec.partable.kind_of`, told apart for observed variables (items and
    observed structural variables) and latents."""
    kind = kind_of(op, lhs, rhs)
    observed = lhs in pt.indicators
    if kind == "intercepts":
        return kind if observed else "means"
    if kind in ("variances", "covariances"):
        if observed:
            return "residuals" if kind == "variances" else "residual.covariances"
        return f"lv.{kind}"
    return "" if kind == "defined" else kind


def parse_group_list(value: object, what: str) -> list[str]:
    """A header/CLI list (``[a, b]`` or ``"a, b"``) as a list of stripped texts."""
    if value is None:
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return [v.strip() for v in value]
    raise ModelSpecError(
        f"{what} must be a list of names or a comma-separated text, e.g. "
        f"'loadings, intercepts'; got {value!r}"
    )


def check_group_equal(value: object) -> list[str]:
    """The ``group.equal`` kinds, each one of :data:`EQUAL_KINDS`."""
    kinds = parse_group_list(value, "group.equal")
    unknown = [k for k in kinds if k not in EQUAL_KINDS]
    if unknown:
        raise ModelSpecError(
            f"group.equal names unknown kind(s) {unknown}; the kinds are {', '.join(EQUAL_KINDS)}"
        )
    return list(dict.fromkeys(kinds))


def check_approximate(value: object) -> dict[str, float]:
    """The ``approximate`` option (``{loadings: 0.05, intercepts: 0.1}``): a positive prior SD
    per kind of :data:`APPROXIMATE_KINDS` (``{}`` or none: no approximate invariance)."""
    if value is None or value == {}:
        return {}
    example = "e.g. 'approximate: {loadings: 0.05, intercepts: 0.1}'"
    if not isinstance(value, dict):
        raise ModelSpecError(f"approximate must map kinds to prior SDs, {example}; got {value!r}")
    out = {}
    for kind, sd in value.items():
        if kind not in APPROXIMATE_KINDS:
            raise ModelSpecError(
                f"approximate names the kind {kind!r}; the kinds are "
                f"{', '.join(APPROXIMATE_KINDS)} ({example})"
            )
        if isinstance(sd, bool) or not isinstance(sd, int | float) or not 0 < sd < np.inf:
            raise ModelSpecError(
                f"approximate {kind}: the prior SD must be a positive number, {example}; got {sd!r}"
            )
        out[str(kind)] = float(sd)
    return out


def approximate_rows(partable: ParTable) -> pd.DataFrame:
    """The rows whose group values are drawn around a common value: one row per parameter
    (``name`` as ``visual=~x2``, ``kind``, prior ``sd``) with ``free``, its free number in each
    group (a list, in group order). Rows of an approximate kind that are fixed in some group,
    named in ``group.partial`` or shared by a label are left out."""
    columns = ["name", "lhs", "op", "rhs", "kind", "sd", "free"]
    approximate = check_approximate(partable.options.get("approximate"))
    if not approximate or "group" not in partable.table.columns:
        return pd.DataFrame(columns=columns)
    params = partable.parameters
    partial = set(partable.options.get("group.partial", []))
    out = []
    for (lhs, op, rhs), rows in params.groupby(["lhs", "op", "rhs"], sort=False):
        kind = equal_kind(partable, lhs, op, rhs)
        name = row_name(lhs, op, rhs)
        free = rows.sort_values("group").free.tolist()
        if kind not in approximate or name in partial:
            continue
        if len(free) == len(partable.groups) and min(free) > 0 and len(set(free)) == len(free):
            out.append([name, lhs, op, rhs, kind, approximate[kind], free])
    return pd.DataFrame(out, columns=columns)


def check_group_values(partable: ParTable, n_groups: int) -> None:
    """Every ``c(...)`` modifier gives one value per group."""
    for s in parse(partable.text).statements if partable.text else []:
        if s.per_group and len(s.per_group) != n_groups:
            fitted = (
                f"{n_groups} groups" if n_groups > 1 else "one group (no group column was given)"
            )
            raise ModelSpecError(
                f"model line {s.line}: c(...) on '{s.lhs} {s.op} {s.rhs}' gives "
                f"{len(s.per_group)} values, but the model is fitted to {fitted}; give one "
                "value per group"
            )


def check_groupable(partable: ParTable) -> None:
    """A model that multiple groups support (every likelihood but the quadrature one, which
    the fit refuses by name), and valid ``group.equal`` / ``group.partial`` options."""
    _check_kinds(
        check_group_equal(partable.options.get("group.equal")),
        check_approximate(partable.options.get("approximate")),
    )
    _checked_partial(partable, partable.options.get("group.partial"))


def _check_kinds(equal: list[str], approximate: dict[str, float]) -> None:
    """A kind is either equal across groups or approximately so."""
    both = [k for k in approximate if k in equal]
    if both:
        raise ModelSpecError(
            f"{', '.join(both)} cannot be both in group.equal and in approximate; keep "
            "exactly equal kinds in group.equal and approximately equal ones in approximate"
        )


def with_groups(
    partable: ParTable,
    labels: list[str],
    equal: object = None,
    partial: object = None,
) -> ParTable:
    """The table of one group repeated for the groups ``labels`` (in this order), with the
    ``c(...)`` modifiers, ``group.equal`` kinds and ``group.partial`` rows applied."""
    if len(labels) < 2:
        raise ModelSpecError("a multiple-group model needs two or more groups")
    if "group" in partable.table.columns:
        raise ModelSpecError("the parameter table already has groups")
    equal = check_group_equal(partable.options.get("group.equal") if equal is None else equal)
    partial = _checked_partial(
        partable, partable.options.get("group.partial") if partial is None else partial
    )
    approximate = check_approximate(partable.options.get("approximate"))
    _check_kinds(equal, approximate)
    check_group_values(partable, len(labels))
    per_group = _per_group_modifiers(partable)
    base = pd.concat([partable.parameters, _latent_means(partable)], ignore_index=True)
    base["kind"] = [equal_kind(partable, r.lhs, r.op, r.rhs) for r in base.itertuples()]
    base["equal"] = base.kind.isin(equal) & ~base.apply(
        lambda r: row_name(r.lhs, r.op, r.rhs) in partial, axis=1
    )
    # approximately equal kinds identify the later groups as equal ones do
    identified = [*equal, *approximate]
    groups = [
        _group_rows(partable, base, g, per_group, identified) for g in range(1, len(labels) + 1)
    ]
    table = pd.concat(groups, ignore_index=True)
    table["free"] = _free_numbers(table)
    defined = partable.defined.assign(group=0)
    table = pd.concat([table[[*COLUMNS, "group"]], defined], ignore_index=True)
    options = {
        **partable.options,
        "group_labels": list(labels),
        "group.equal": equal,
        "group.partial": sorted(partial),
        "approximate": approximate,
    }
    out = ParTable(table, options, list(partable.hypotheses), partable.text)
    _check_counts(out)
    _check_labels(out)
    return out


def shared_labels(grouped: ParTable) -> list[str]:
    """The plain labels (``a*x``, not ``c(...)``) of free rows in a multiple-group table whose
    kind ``group.equal`` leaves free: each names one parameter shared by every group, so its
    paths are equal across groups where the user may expect each group its own."""
    per_group = _per_group_modifiers(grouped)
    equal = set(grouped.options.get("group.equal") or [])
    t = grouped.parameters
    plain = t[(t.label != "") & (t.free > 0)]
    keep = [
        row_name(r.lhs, r.op, r.rhs) not in per_group
        and equal_kind(grouped, r.lhs, r.op, r.rhs) not in equal
        for r in plain.itertuples()
    ]
    plain = plain[np.array(keep, dtype=bool)]
    return sorted(label for label, g in plain.groupby("label").group if g.nunique() > 1)


def _checked_partial(partable: ParTable, value: object) -> set[str]:
    """``group.partial`` rows as canonical names (``visual=~x2``, ``x3~1``), each a row."""
    names = {row_name(r.lhs, r.op, r.rhs) for r in partable.parameters.itertuples()}
    names |= {row_name(f, "~1", "") for f in _real_latents(partable)}
    given = ["".join(v.split()) for v in parse_group_list(value, "group.partial")]
    unknown = [v for v in given if v not in names and _swapped(v) not in names]
    if unknown:
        raise ModelSpecError(
            f"group.partial names {unknown}, which are not parameters of the model; name rows "
            "as 'visual=~x2', 'x3~1' or 'x1~~x1'"
        )
    return {v if v in names else _swapped(v) for v in given}


def _swapped(name: str) -> str:
    """``b~~a`` for ``a~~b`` (a covariance named either way round)."""
    lhs, sep, rhs = name.partition("~~")
    return f"{rhs}~~{lhs}" if sep else name


def _real_latents(partable: ParTable) -> list[str]:
    return [f for f in partable.latents if f not in partable.observed_structural]


def _latent_means(partable: ParTable) -> pd.DataFrame:
    """``f ~ 1`` fixed to 0 for each latent the model gives no mean."""
    t = partable.table
    stated = set(t.loc[t.op == "~1", "lhs"])
    rows = [
        {
            "lhs": f,
            "op": "~1",
            "rhs": "",
            "label": "",
            "free": 0,
            "value": 0.0,
            "prior": "",
            "user": 0,
            "line": 0,
        }
        for f in _real_latents(partable)
        if f not in stated
    ]
    return pd.DataFrame(rows, columns=COLUMNS)


def _per_group_modifiers(partable: ParTable) -> dict[str, tuple]:
    """Row name -> the ``c(...)`` values of its statement."""
    out = {}
    for s in parse(partable.text).statements if partable.text else []:
        if s.per_group:
            out[row_name(s.lhs, s.op, s.rhs)] = s.per_group
            if s.op == "~~":
                out[row_name(s.rhs, s.op, s.lhs)] = s.per_group
    return out


def _group_rows(
    partable: ParTable, base: pd.DataFrame, g: int, per_group: dict[str, tuple], equal: list[str]
) -> pd.DataFrame:
    """Group ``g``'s rows: its ``c(...)`` entries and lavaan's identification of later groups."""
    rows = base.copy()
    rows["group"] = g
    names = [row_name(r.lhs, r.op, r.rhs) for r in rows.itertuples()]
    std_lv = partable.options.get("identification", "std.lv") == "std.lv"
    thresholds = base.loc[base.op == "|", "lhs"].value_counts()
    # a binary item's one threshold cannot set both a later group's location and scale (Wu &
    # Estabrook 2016): its residual variance stays 1 in every group
    scaled = {item for item in partable.ordinal_items() if thresholds.get(item, 0) > 1}
    for k, (name, r) in enumerate(zip(names, rows.itertuples(), strict=True)):
        if name in per_group:
            label, fixed, _ = group_modifier(per_group[name][g - 1])
            rows.loc[k, ["label", "value"]] = [label, np.nan if fixed is None else fixed]
            rows.loc[k, "free"] = 0 if fixed is not None else 1
        elif g > 1 and not r.user and not r.equal and _freed_later(r, std_lv, equal, scaled):
            rows.loc[k, ["free", "value"]] = [1, np.nan]
    freed = (rows.free > 0) & (rows.prior == "")
    rows.loc[freed, "prior"] = [_default_prior(partable, r) for r in rows[freed].itertuples()]
    rows.loc[rows.free == 0, "prior"] = ""
    return rows


def _freed_later(row, std_lv: bool, equal: list[str], scaled: set[str]) -> bool:
    """lavaan's identification of groups 2+: std.lv's unit latent variances are free when the
    loadings are equal; the latent means when the intercepts or the thresholds are; and, theta
    parameterisation, the unit residual variances of the ordinal items in ``scaled`` (three or
    more categories) when the thresholds are (lavaan's ``lav_partable_flat``: with thresholds
    equal, a later group's latent responses may differ in location and scale)."""
    if row.kind == "lv.variances" and std_lv and row.value == 1.0:
        return "loadings" in equal
    if row.kind == "means" and row.value == 0.0:
        return "intercepts" in equal or "thresholds" in equal
    if row.kind == "residuals" and row.lhs in scaled and row.value == 1.0:
        return "thresholds" in equal
    return False


def _default_prior(partable: ParTable, r) -> str:
    """The prior by kind of a row that is free in this group but fixed in the first."""
    priors = partable.options["priors"]
    exogenous = set(partable.exogenous)
    row = pd.Series(
        {
            "op": r.op,
            "lhs": r.lhs,
            "rhs": r.rhs,
            "prior": "",
            "fixed_flag": False,
            "exo_pair": r.lhs != r.rhs and {r.lhs, r.rhs} <= exogenous,
        }
    )
    return _prior_for(row, priors, set(), partable.options.get("identification", "std.lv"))


def _free_numbers(table: pd.DataFrame) -> np.ndarray:
    """Free numbers 1..K: rows sharing a label, or a row of an equal kind in every group,
    share one."""
    keys = {}
    free = np.zeros(len(table), dtype=int)
    for i, r in enumerate(table.itertuples()):
        if r.free == 0:
            continue
        name = row_name(r.lhs, r.op, r.rhs)
        key = ("label", r.label) if r.label else ("equal", name) if r.equal else (r.group, name)
        free[i] = keys.setdefault(key, len(keys) + 1)
    return free


def _check_counts(pt: ParTable) -> None:
    """No more free parameters than the groups' moments together; an approximately equal
    parameter counts once (its groups' deviations are identified by their prior). As lavaan
    counts them, a group's moments are the items' covariances (correlations between ordinal
    ones), each continuous item's mean and variance and each ordinal item's thresholds."""
    p = len(pt.indicators)
    params = pt.parameters
    thresholds = int(((params.op == "|") & (params.group == 1)).sum())
    continuous = p - len(pt.ordinal_items())
    moments = len(pt.groups) * (p * (p - 1) // 2 + 2 * continuous + thresholds)
    n_free = pt.n_free - sum(len(free) - 1 for free in approximate_rows(pt).free)
    if n_free > moments:
        raise ModelSpecError(
            f"the model has {n_free} free parameters but the {p} items in "
            f"{len(pt.groups)} groups give only {moments} moments: it is not identified; "
            "constrain parameters across groups (group.equal) or fix parameters"
        )
