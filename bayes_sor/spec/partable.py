"""The parameter table: the one central structure every later stage reads.

Built from the parsed syntax the way lavaan's ``lavaanify`` does it: user rows first, then the
default rows the identification rules imply (residual variances, intercepts, latent variances,
exogenous covariances, marker loadings). One row per parameter; rows that share a label share one
free parameter (an equality constraint). Roles (latent, indicator, exogenous, moderator, ...) are
derived by the functions below each time they are needed, never stored in the table.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from itertools import product
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from bayes_sor.errors import ModelSpecError
from bayes_sor.spec.prior_text import parse_prior, positive_version, widen
from bayes_sor.spec.syntax import IDENTIFICATIONS, Hypothesis, ModelSpec, Statement, parse

COLUMNS = ["lhs", "op", "rhs", "label", "free", "value", "prior", "user", "line"]

#: blavaan's default priors (``dpriors()``), so posteriors compare with blavaan's published
#: ones; ``[sd]`` means the prior is on the standard deviation, as in blavaan.
DEFAULT_PRIORS = {
    "loadings": "normal(0,10)",
    "regressions": "normal(0,10)",
    "intercepts": "normal(0,32)",
    "variances": "gamma(1,0.5)[sd]",
    "residual_covariances": "beta(1,1)",
    "latent_correlations": "lkj(1)",
    "thresholds": "normal(0,1.5)",
}


def kind_of(op: str, lhs: str, rhs: str) -> str:
    """The parameter kind of a row (the key of :data:`DEFAULT_PRIORS`)."""
    if op == "=~":
        return "loadings"
    if op == "~":
        return "regressions"
    if op == "~1":
        return "intercepts"
    if op == "|":
        return "thresholds"
    if op == "~~":
        return "variances" if lhs == rhs else "covariances"
    return "defined"


@dataclass
class ParTable:
    """A lavaan-style parameter table plus the model's options and hypotheses."""

    table: pd.DataFrame
    options: dict = field(default_factory=dict)
    hypotheses: list[Hypothesis] = field(default_factory=list)
    text: str = ""

    # ---- groups -------------------------------------------------------------------------
    @property
    def groups(self) -> list[str]:
        """The group labels of a multiple-group table (its ``group`` column numbers them from
        1 in this order); empty for one group."""
        return list(self.options.get("group_labels") or [])

    @cached_property
    def structure(self) -> pd.DataFrame:
        """The rows of the first group: every group has the same structure (roles below)."""
        if "group" not in self.table.columns:
            return self.table
        return self.table[self.table.group == 1]

    # ---- roles (derived, never stored) -------------------------------------------------
    @cached_property
    def latents(self) -> list[str]:
        """Latent variables in order of first appearance."""
        return list(dict.fromkeys(self.structure.loc[self.structure.op == "=~", "lhs"]))

    @cached_property
    def indicators(self) -> list[str]:
        """Observed items (right-hand side of ``=~``) in order of first appearance."""
        return list(dict.fromkeys(self.structure.loc[self.structure.op == "=~", "rhs"]))

    @cached_property
    def regressions(self) -> pd.DataFrame:
        return self.structure[self.structure.op == "~"]

    @cached_property
    def interactions(self) -> list[tuple[str, str, str]]:
        """``(outcome, first, second)`` for every ``y ~ X:W`` term."""
        rows = self.regressions[self.regressions.rhs.str.contains(":")]
        return [(r.lhs, *r.rhs.split(":")) for r in rows.itertuples()]

    @cached_property
    def exogenous(self) -> list[str]:
        """Latents with no incoming regression."""
        outcomes = set(self.regressions.lhs)
        return [f for f in self.latents if f not in outcomes]

    @cached_property
    def endogenous(self) -> list[str]:
        outcomes = set(self.regressions.lhs)
        return [f for f in self.latents if f in outcomes]

    @cached_property
    def moderators(self) -> list[str]:
        """The second component of each interaction term (W in ``Y ~ M:W``)."""
        return list(dict.fromkeys(w for _, _, w in self.interactions))

    @cached_property
    def order(self) -> list[str]:
        """Latents in causal (topological) order; the table was checked to be acyclic."""
        return _topological_order(self.latents, self.regressions)

    @property
    def parameters(self) -> pd.DataFrame:
        """All rows except defined (``:=``) quantities."""
        return self.table[self.table.op != ":="]

    @property
    def defined(self) -> pd.DataFrame:
        return self.table[self.table.op == ":="]

    @cached_property  # read per draw and per parameter downstream: built once
    def names(self) -> list[str]:
        """Row names ``lhs op rhs`` (``CT=~ct1``, ``IB~CT:IT``, ``ct1~1``) of the parameters;
        in a multiple-group table those of group g > 1 end in ``.g<g>`` (lavaan's names)."""
        rows = self.parameters
        groups = rows.group if "group" in rows.columns else np.ones(len(rows), dtype=int)
        return [
            row_name(r.lhs, r.op, r.rhs) + (f".g{g}" if g > 1 else "")
            for r, g in zip(rows.itertuples(), groups, strict=True)
        ]

    @property
    def n_free(self) -> int:
        return int(self.table.free.max()) if len(self.table) else 0

    def ordinal_items(self) -> list[str]:
        """Items declared ordinal (option ``ordinal``) or carrying thresholds (``x | t1``)."""
        declared = self.options.get("ordinal")
        declared = declared if isinstance(declared, list) else []
        return list(dict.fromkeys([*declared, *self.table.loc[self.table.op == "|", "lhs"]]))

    @cached_property
    def observed_structural(self) -> list[str]:
        """Observed variables of the structural model (not indicators, not latents).

        Each is its own single indicator: a row ``v =~ v`` fixed to 1 and no residual
        variance, so ``v ~~ v`` is its (residual) variance in the structural model and
        ``v ~ 1`` its intercept (lavaan's treatment of observed variables in regressions).
        """
        loads = self.structure[self.structure.op == "=~"]
        own = loads[loads.lhs == loads.rhs]
        return [f for f in own.lhs if (loads.lhs == f).sum() == 1]


def row_name(lhs: str, op: str, rhs: str) -> str:
    """The canonical name of a row, used as the ``param`` coordinate in the posterior."""
    return f"{lhs}{op}{rhs}"


def _topological_order(latents: list[str], regressions: pd.DataFrame) -> list[str]:
    parents: dict[str, set[str]] = {f: set() for f in latents}
    for r in regressions.itertuples():
        for cause in r.rhs.split(":"):
            if cause in parents and r.lhs in parents:
                parents[r.lhs].add(cause)
    order: list[str] = []
    remaining = dict(parents)
    while remaining:
        ready = [f for f, ps in remaining.items() if not ps - set(order)]
        if not ready:
            cycle = " -> ".join(sorted(remaining))
            lines = sorted({int(r.line) for r in regressions.itertuples() if r.lhs in remaining})
            raise ModelSpecError(
                f"the structural model has a cycle among {cycle} (regressions on model lines "
                f"{', '.join(map(str, lines))}); non-recursive models are out of scope: remove "
                "one of the paths that closes the loop"
            )
        order.extend(ready)
        for f in ready:
            del remaining[f]
    return order


def _user_rows(statements: list[Statement]) -> list[dict]:
    rows: list[dict] = []
    seen: dict[tuple[str, str, str], int] = {}
    for s in statements:
        key = (s.lhs, s.op, s.rhs)
        if s.op == "~~" and (s.rhs, s.op, s.lhs) in seen:
            key = (s.rhs, s.op, s.lhs)
        if key in seen:
            raise ModelSpecError(
                f"model line {s.line}: '{s.lhs} {s.op} {s.rhs}' repeats line {seen[key]}; "
                "state each parameter once"
            )
        seen[key] = s.line
        label, fixed, na = s.label, s.fixed, getattr(s, "na", False)
        if s.per_group:  # c(...): the first group's (the table of one group is the first's)
            label, fixed, na = group_modifier(s.per_group[0])
        rows.append(
            {
                "lhs": s.lhs,
                "op": s.op,
                "rhs": s.rhs,
                "label": label,
                "fixed": fixed,
                "start": s.start,
                "prior": s.prior,
                "user": 1,
                "line": s.line,
                "na": na,
            }
        )
    return rows


def group_modifier(value: str | float | None) -> tuple[str, float | None, bool]:
    """(label, fixed value, explicitly free) of one group's entry of ``c(...)``."""
    if isinstance(value, str):
        return value, None, False
    return "", value, value is None


def _structural_observed(rows: list[dict], latents: set[str], indicators: set[str]) -> list[str]:
    """Names in regressions that are neither latents nor indicators: observed variables."""
    names = []
    for r in rows:
        if r["op"] == "~":
            names += [r["lhs"], *r["rhs"].split(":")]
    return [n for n in dict.fromkeys(names) if n not in latents | indicators]


def _observed_rows(names: list[str]) -> list[dict]:
    """``v =~ 1*v`` for each observed structural variable (its own error-free indicator)."""
    return [
        {
            "lhs": v,
            "op": "=~",
            "rhs": v,
            "label": "",
            "fixed": 1.0,
            "start": None,
            "prior": "",
            "user": 0,
            "line": 0,
        }
        for v in names
    ]


def _check_roles(
    rows: list[dict], latents: set[str], observed: set[str], structural: set[str] = frozenset()
) -> None:
    latents = latents | structural  # observed structural variables play the latents' role
    for r in rows:
        if r["op"] == "=~" and r["rhs"] in latents:
            raise ModelSpecError(
                f"model line {r['line']}: {r['rhs']!r} is a latent variable used as an indicator "
                f"of {r['lhs']!r}; higher-order factors are not supported: regress it instead "
                f"('{r['rhs']} ~ {r['lhs']}')"
            )
        if r["op"] == "~":
            _check_regression(r, latents)
        if r["op"] in ("~~", "~1", "|") and r["lhs"] not in latents | observed:
            raise ModelSpecError(
                f"model line {r['line']}: {r['lhs']!r} is not a variable of the model; "
                "check the spelling against the '=~' lines"
            )
        if r["op"] == "~~" and r["rhs"] not in latents | observed:
            raise ModelSpecError(
                f"model line {r['line']}: {r['rhs']!r} is not a variable of the model; "
                "check the spelling against the '=~' lines"
            )
        if r["op"] == ":=" and r["lhs"] in latents | observed:
            raise ModelSpecError(
                f"model line {r['line']}: the defined name {r['lhs']!r} is already a variable; "
                "give the definition another name"
            )
    _check_defined_once(rows)


def _check_regression(r: dict, latents: set[str]) -> None:
    """A regression row: outcome and predictors are latents (or observed structural
    variables), products of two at most."""
    if r["lhs"] not in latents:
        raise ModelSpecError(
            f"model line {r['line']}: the outcome {r['lhs']!r} of a regression is an "
            "indicator; regressions in bayes_sor are among latent variables and observed "
            "variables that are not indicators: define it with "
            f"'{r['lhs']} =~ item1 + item2 + item3'"
        )
    for part in r["rhs"].split(":"):
        if part not in latents:
            raise ModelSpecError(
                f"model line {r['line']}: the predictor {part!r} in '{r['lhs']} ~ "
                f"{r['rhs']}' is an indicator, not a latent variable of the model; "
                f"define it with '{part} =~ ...' or correct the name"
            )
    if r["rhs"].count(":") > 1:
        raise ModelSpecError(
            f"model line {r['line']}: only two-way interactions are supported "
            f"('{r['rhs']}'); use products of two latents such as "
            f"'{r['lhs']} ~ {':'.join(r['rhs'].split(':')[:2])}'"
        )


def _check_defined_once(rows: list[dict]) -> None:
    """Every ':=' name is defined on one line only."""
    lines: dict[str, list[int]] = {}
    for r in rows:
        if r["op"] == ":=":
            lines.setdefault(r["lhs"], []).append(r["line"])
    twice = next(((n, ls) for n, ls in lines.items() if len(ls) > 1), None)
    if twice:
        name, where = twice
        raise ModelSpecError(
            f"model lines {', '.join(map(str, where))}: the ':=' name {name!r} is defined twice; "
            "give each definition its own name"
        )


def _default_rows(
    rows: list[dict],
    latents: list[str],
    indicators: list[str],
    identification: str,
    ordinal: list[str],
) -> list[dict]:
    have = {(r["lhs"], r["op"], r["rhs"]) for r in rows} | {
        (r["rhs"], r["op"], r["lhs"]) for r in rows if r["op"] == "~~"
    }
    outcomes = {r["lhs"] for r in rows if r["op"] == "~"}
    added: list[dict] = []

    def add(lhs: str, op: str, rhs: str, fixed: float | None = None) -> None:
        if (lhs, op, rhs) not in have:
            have.add((lhs, op, rhs))
            added.append(
                {
                    "lhs": lhs,
                    "op": op,
                    "rhs": rhs,
                    "label": "",
                    "fixed": fixed,
                    "start": None,
                    "prior": "",
                    "user": 0,
                    "line": 0,
                }
            )

    if identification == "marker":
        for f in latents:
            first = next(r for r in rows if r["op"] == "=~" and r["lhs"] == f)
            user_scaled = any(
                r["op"] == "=~" and r["lhs"] == f and r["fixed"] is not None for r in rows
            )
            if not user_scaled and not first["label"] and not first.get("na"):
                first["fixed"] = 1.0
    for item in indicators:
        add(item, "~~", item, 1.0 if item in ordinal else None)
        add(item, "~1", "", 0.0 if item in ordinal else None)
    for f in latents:
        add(f, "~~", f, 1.0 if identification == "std.lv" else None)
    exogenous = [f for f in latents if f not in outcomes]
    for i, a in enumerate(exogenous):
        for b in exogenous[i + 1 :]:
            add(a, "~~", b)
    return added


def _assign_free(table: pd.DataFrame) -> pd.DataFrame:
    """Number the free parameters 1..K (0 = fixed); rows sharing a label share a number."""
    free = np.zeros(len(table), dtype=int)
    by_label: dict[str, int] = {}
    count = 0
    for i, r in enumerate(table.itertuples()):
        if r.op == ":=" or r.fixed_flag:
            continue
        if r.label and r.label in by_label:
            free[i] = by_label[r.label]
            continue
        count += 1
        free[i] = count
        if r.label:
            by_label[r.label] = count
    table["free"] = free
    return table


def _prior_for(
    row, priors: dict[str, str], first_loadings: set[tuple[str, str]], identification: str
) -> str:
    kind = kind_of(row.op, row.lhs, row.rhs)
    if row.op == ":=" or row.fixed_flag:
        return ""
    if row.prior:
        return row.prior
    if kind == "covariances":
        return priors["latent_correlations"] if row.exo_pair else priors["residual_covariances"]
    text = priors[kind]
    if kind == "loadings" and identification == "std.lv" and (row.lhs, row.rhs) in first_loadings:
        # A sign constraint: the first loading of each factor is positive so chains cannot
        # flip a factor's sign (the posterior is otherwise bimodal under std.lv).
        return positive_version(text)
    return text


def build_partable(
    spec: ModelSpec | str,
    identification: str | None = None,
    ordinal: list[str] | str | None = None,
    priors: dict[str, str] | None = None,
    prior_scale: float = 1.0,
) -> ParTable:
    """Turn parsed syntax (or model text) into the full parameter table.

    ``identification``: ``"std.lv"`` (default; latent (residual) variances fixed to 1, all
    loadings free, first loading positive) or ``"marker"`` (first loading fixed to 1).
    ``ordinal``: items to model as ordered categories (``"all"`` for every item); their
    intercepts are fixed to 0 and residual variances to 1 (theta parameterisation).
    ``priors``: overrides of :data:`DEFAULT_PRIORS` by kind. Arguments override the model
    file's header options. ``prior_scale``: every prior chosen by kind (the defaults and the
    ``priors`` overrides, not a statement's own ``prior()``) widened by this factor
    (:func:`bayes_sor.spec.prior_text.widen`), for a direct check of prior sensitivity.
    """
    if isinstance(spec, str):
        spec = parse(spec)
    options = dict(spec.options)
    identification = identification or options.get("identification", "std.lv")
    if identification not in IDENTIFICATIONS:
        raise ModelSpecError(f"unknown identification {identification!r}; use 'std.lv' or 'marker'")
    merged_priors = _merged_priors(options.get("priors"), priors, prior_scale)
    rows, latents, indicators, measured = _model_rows(spec)
    rows += small_variance_rows(options, rows, latents, measured, prior_scale)
    ordinal = options.get("ordinal") if ordinal is None else ordinal
    ordinal_items = _resolve_ordinal(ordinal, measured)
    ordinal_items += [r["lhs"] for r in rows if r["op"] == "|" and r["lhs"] not in ordinal_items]
    rows += _default_rows(rows, latents, indicators, identification, ordinal_items)
    table = _full_table(rows, latents, identification, merged_priors)
    options.update(
        identification=identification,
        ordinal=list(dict.fromkeys(ordinal_items)),
        priors=merged_priors,
        prior_scale=prior_scale,
    )
    partable = ParTable(table, options, spec.hypotheses, spec.text)
    partable.order  # noqa: B018 -- raises ModelSpecError on a cycle, before anything is built
    later = {v for s in spec.statements for v in s.per_group[1:] if isinstance(v, str)}
    _check_identification(partable, later)
    return partable


def _merged_priors(
    header: object, priors: dict[str, str] | None, prior_scale: float
) -> dict[str, str]:
    """The prior of each kind: the defaults, overridden by the header's ``priors`` and then by
    the ``priors`` argument, widened by ``prior_scale``."""
    for source, given in (("the header's 'priors'", header), ("priors", priors)):
        if given and (
            not isinstance(given, dict) or not all(isinstance(v, str) for v in given.values())
        ):
            raise ModelSpecError(
                f"{source} must map parameter kinds to prior text, e.g. "
                f"{{loadings: 'normal(0,5)'}}; got {given!r}"
            )
    merged_priors = {**DEFAULT_PRIORS, **(header or {}), **(priors or {})}
    unknown = set(merged_priors) - set(DEFAULT_PRIORS)
    if unknown:
        raise ModelSpecError(
            f"unknown prior kind(s) {sorted(unknown)}; the kinds are {sorted(DEFAULT_PRIORS)}"
        )
    if prior_scale != 1:
        merged_priors = {kind: widen(text, prior_scale) for kind, text in merged_priors.items()}
    return merged_priors


def _model_rows(spec: ModelSpec) -> tuple[list[dict], list[str], list[str], list[str]]:
    """The user's rows plus those of observed structural variables, with the latents (observed
    structural variables included), the indicators (likewise) and the measured items."""
    rows = _user_rows(spec.statements)
    latents = list(dict.fromkeys(r["lhs"] for r in rows if r["op"] == "=~"))
    indicators = list(dict.fromkeys(r["rhs"] for r in rows if r["op"] == "=~"))
    structural = _structural_observed(rows, set(latents), set(indicators))
    if not latents and not structural:
        raise ModelSpecError(
            "the model has no measurement part; define each construct with "
            "'name =~ item1 + item2 + item3'"
        )
    _check_roles(rows, set(latents), set(indicators), set(structural))
    rows += _observed_rows(structural)
    return rows, latents + structural, indicators + structural, indicators


def _full_table(
    rows: list[dict], latents: list[str], identification: str, merged_priors: dict[str, str]
) -> pd.DataFrame:
    """Rows -> the table: fixed values, exogenous pairs, free numbers and priors."""
    table = pd.DataFrame(rows)
    table["fixed_flag"] = table.fixed.notna()
    value = table.fixed.where(table.fixed_flag, table.start)
    table["value"] = pd.to_numeric(value, errors="coerce")
    exogenous = [f for f in latents if f not in set(table.loc[table.op == "~", "lhs"])]
    table["exo_pair"] = (
        (table.op == "~~")
        & (table.lhs != table.rhs)
        & table.lhs.isin(exogenous)
        & table.rhs.isin(exogenous)
    )
    table = _assign_free(table)
    first_loadings = {
        (f, next(r["rhs"] for r in rows if r["op"] == "=~" and r["lhs"] == f)) for f in latents
    }
    table["prior"] = [
        _prior_for(r, merged_priors, first_loadings, identification) for r in table.itertuples()
    ]
    table = table[COLUMNS].reset_index(drop=True)
    table["label"] = table["label"].fillna("")
    return table


def _resolve_ordinal(ordinal: list[str] | str | None, indicators: list[str]) -> list[str]:
    if not ordinal:
        return []
    if isinstance(ordinal, str):
        ordinal = indicators if ordinal == "all" else [s.strip() for s in ordinal.split(",")]
    if (
        isinstance(ordinal, dict)
        or not hasattr(ordinal, "__iter__")
        or not all(isinstance(i, str) for i in ordinal)
    ):
        raise ModelSpecError(
            f"ordinal must be 'all', a comma-separated string or a list of item names; "
            f"got {ordinal!r}"
        )
    ordinal = list(ordinal)
    unknown = [i for i in ordinal if i not in indicators]
    if unknown:
        raise ModelSpecError(
            f"ordinal item(s) {unknown} are not indicators of the model; the items are {indicators}"
        )
    return list(ordinal)


def _check_identification(pt: ParTable, later_labels: set[str] = frozenset()) -> None:
    """Counting rules and scale checks that catch unidentified models before sampling, then the
    labels and ':=' definitions (which may use ``later_labels``, the later groups' labels of
    ``c(...)`` modifiers)."""
    _check_scales(pt)
    _check_labels(pt)
    _check_definitions(pt, later_labels)


def _check_scales(pt: ParTable) -> None:
    """No more free parameters than moments; every latent scaled, none by a lone item with a
    free residual variance."""
    t = pt.table
    p = len(pt.indicators)
    moments = p * (p + 1) // 2 + p
    # parameters with small-variance priors are identified by their priors (BSEM), not the data
    n_free = pt.n_free - small_variance_parameters(pt).free.nunique()
    if n_free > moments:
        raise ModelSpecError(
            f"the model has {n_free} free parameters but the {p} items give only {moments} "
            "moments (variances, covariances, means): it is not identified; fix parameters or "
            "add items"
        )
    for f in pt.latents:
        loads = t[(t.op == "=~") & (t.lhs == f)]
        variance = t[(t.op == "~~") & (t.lhs == f) & (t.rhs == f)]
        scaled = (loads.free == 0).any() or (variance.free == 0).any()
        if not scaled:
            raise ModelSpecError(
                f"latent {f!r} has no scale: fix its variance ('{f} ~~ 1*{f}') or one loading "
                f"('{f} =~ 1*{loads.rhs.iloc[0]}'), or use identification std.lv"
            )
        single = len(loads) == 1 and f not in pt.observed_structural
        if single and (t[(t.op == "~~") & (t.lhs == loads.rhs.iloc[0])].free > 0).all():
            raise ModelSpecError(
                f"latent {f!r} has a single indicator {loads.rhs.iloc[0]!r} with a free residual "
                f"variance: fix it ('{loads.rhs.iloc[0]} ~~ 0*{loads.rhs.iloc[0]}') or add items"
            )


def _check_labels(pt: ParTable) -> None:
    """A label names one kind of parameter, all free or all fixed to one value, and no ':='."""
    labels = pt.table[pt.table.label != ""]
    for label, group in labels.groupby("label"):
        kinds = {kind_of(r.op, r.lhs, r.rhs) for r in group.itertuples()}
        if len(kinds) > 1:
            raise ModelSpecError(
                f"label {label!r} is used for different kinds of parameter ({sorted(kinds)}) on "
                f"model lines {sorted(set(group.line))}; use distinct labels"
            )
        if group.free.nunique() > 1 or ((group.free == 0).any() and group.value.nunique() > 1):
            raise ModelSpecError(
                f"label {label!r} (model lines {sorted(set(group.line))}) is shared by fixed and "
                "free parameters or by different fixed values, so the equality it implies cannot "
                "hold; fix all of them to one value, free all of them, or use distinct labels"
            )
    clash = sorted(set(labels.label) & set(pt.defined.lhs))
    if clash:
        raise ModelSpecError(
            f"the defined name(s) {clash} are also parameter labels; give each ':=' its own name"
        )


def _check_definitions(pt: ParTable, later_labels: set[str] = frozenset()) -> None:
    """Each ':=' uses only labels (``later_labels`` too) and names defined on earlier lines."""
    t = pt.table
    # and the names defined on earlier lines (added below)
    known = set(t.label[t.label != ""]) | set(later_labels)
    for r in pt.defined.itertuples():
        names = {
            n.id
            for n in ast.walk(ast.parse(r.rhs.replace("^", "**"), mode="eval"))
            if isinstance(n, ast.Name)
        }
        missing = sorted(names - known)
        if missing:
            later = sorted(set(missing) & set(pt.defined.lhs))
            hint = f" (define {later} before this line)" if later else ""
            raise ModelSpecError(
                f"model line {r.line}: the definition of {r.lhs!r} uses unknown label(s) "
                f"{missing}{hint}; label the paths first, e.g. 'CT ~ a1*PI'"
            )
        known.add(r.lhs)


# ---- small-variance priors (BSEM) ---------------------------------------------------------
def small_variance_rows(
    options: dict, rows: list[dict], latents: list[str], measured: list[str], prior_scale: float
) -> list[dict]:
    """Every cross-loading (header option ``cross_loadings``) and every residual covariance of
    two items (``residual_covariances``) the model does not state, each with the option's
    small-variance prior: Bayesian SEM as Muthen & Asparouhov (2012), where the priors, not the
    data, identify them.

    Cross-loadings are on the loadings' scale (latent variance 1 under std.lv). Residual
    covariances are sampled as correlations times the two residual SDs
    (:mod:`bayes_sor.model.parameters`), so their prior is on the residual correlation:
    ``beta(a,b)`` on (rho + 1) / 2 as for any residual covariance, or ``normal(0,s)``, the
    beta(a,a) with the same SD s, a = (1/s^2 - 1) / 2 (``normal(0,0.1)``: beta(49.5,49.5)).
    Observed structural variables get neither (they have no residual). Rows follow the user's,
    so each factor's first (marker or sign-constrained) loading stays the user's first.
    """
    cross = options.get("cross_loadings")
    residual = options.get("residual_covariances")
    if cross is None and residual is None:
        return []
    have = {(r["lhs"], r["op"], r["rhs"]) for r in rows}
    have |= {(r["rhs"], r["op"], r["lhs"]) for r in rows if r["op"] == "~~"}
    factors = [f for f in latents if f not in _own_indicator(rows)]
    pairs: list[tuple[str, str, str, str]] = []
    if cross is not None:
        prior = _small_variance_prior("cross_loadings", cross, prior_scale)
        pairs += [(f, "=~", x, prior) for f in factors for x in measured]
    if residual is not None:
        prior = _residual_correlation_prior(residual, prior_scale)
        pairs += [(a, "~~", b, prior) for i, a in enumerate(measured) for b in measured[i + 1 :]]
    return [
        {
            "lhs": lhs,
            "op": op,
            "rhs": rhs,
            "label": "",
            "fixed": None,
            "start": None,
            "prior": prior,
            "user": 0,
            "line": 0,
        }
        for lhs, op, rhs, prior in pairs
        if (lhs, op, rhs) not in have
    ]


def _own_indicator(rows: list[dict]) -> set[str]:
    """Observed structural variables (``v =~ v``)."""
    return {r["lhs"] for r in rows if r["op"] == "=~" and r["lhs"] == r["rhs"]}


def _small_variance_prior(option: str, text: object, prior_scale: float) -> str:
    """The header option's prior text, checked, widened by ``prior_scale`` as priors by kind."""
    if not isinstance(text, str):
        raise ModelSpecError(
            f"the header option {option!r} takes one prior, e.g. '{option}: normal(0,0.1)'; "
            f"got {text!r}"
        )
    parse_prior(text, f"the header option {option!r}")
    return widen(text, prior_scale) if prior_scale != 1 else text


def _residual_correlation_prior(text: object, prior_scale: float) -> str:
    """``beta(a,b)`` as given, ``normal(0,s)`` as the beta(a,a) whose correlation has SD s."""
    text = _small_variance_prior("residual_covariances", text, 1.0)
    prior = parse_prior(text)
    if prior.family == "normal" and prior.args[0] == 0 and prior.args[1] < 1:
        # (rho + 1) / 2 ~ beta(a, a) gives var(rho) = 1 / (2a + 1)
        text = f"beta({(1 / prior.args[1] ** 2 - 1) / 2:g},{(1 / prior.args[1] ** 2 - 1) / 2:g})"
    elif prior.family != "beta":
        raise ModelSpecError(
            f"residual_covariances: {text!r} is not a prior of a residual correlation; give "
            "'normal(0,s)' with s < 1 (the SD of the correlation, e.g. normal(0,0.1)) or "
            "'beta(a,b)' on (rho + 1) / 2"
        )
    return widen(text, prior_scale) if prior_scale != 1 else text


def small_variance_parameters(partable: ParTable) -> pd.DataFrame:
    """The rows :func:`small_variance_rows` added: cross-loadings and item residual
    covariances that the user did not state (no default row is one of these)."""
    t = partable.parameters
    items = set(partable.indicators) - set(partable.observed_structural)
    added = t.user == 0
    cross = (t.op == "=~") & (t.lhs != t.rhs)
    residual = (t.op == "~~") & (t.lhs != t.rhs) & t.lhs.isin(items) & t.rhs.isin(items)
    return t[added & (cross | residual)]


def small_variance_names(partable: ParTable) -> list[str]:
    """The :func:`small_variance_parameters` as ``lhs op rhs`` (the diagnostics' names)."""
    rows = small_variance_parameters(partable)
    return (rows.lhs + " " + rows.op + " " + rows.rhs).tolist()


# ---- dummy-coded controls -----------------------------------------------------------------
def with_dummy_controls(partable: ParTable, dummies: Mapping[str, list[str]]) -> ParTable:
    """The table with each dummy-coded control ``v`` (an observed structural variable whose
    column is text, :mod:`bayes_sor.data.controls`) replaced by its dummies ``v[level]``.

    ``Y ~ v`` becomes ``Y ~ v[level]`` for each dummy, and so do the control's own rows (its
    single indicator, variance, intercept, covariances with the other exogenous variables),
    with the covariances among its dummies added (the exogenous correlations form one LKJ
    matrix). Free parameters are renumbered.
    """
    if not dummies:
        return partable
    _check_controls(partable, dummies)
    table, pairs = [], []
    for r in partable.table.to_dict("records"):
        if r["op"] == ":=":
            table.append(r)
            continue
        lhs = dummies.get(r["lhs"], [r["lhs"]])
        rhs = dummies.get(r["rhs"], [r["rhs"]])
        own = r["op"] == "=~" or (r["op"] == "~~" and r["lhs"] == r["rhs"])
        pairs_of_row = zip(lhs, rhs, strict=True) if own else product(lhs, rhs)
        table += [{**r, "lhs": a, "rhs": b} for a, b in pairs_of_row]
        if r["op"] == "~~" and r["lhs"] == r["rhs"] and len(lhs) > 1:
            prior = partable.options["priors"]["latent_correlations"]
            pairs += [
                {**r, "lhs": a, "rhs": b, "prior": prior}
                for i, a in enumerate(lhs)
                for b in lhs[i + 1 :]
            ]
    table = pd.DataFrame(table + pairs)
    table = _assign_free(table.assign(fixed_flag=(table.free == 0) & (table.op != ":=")))
    coded = _with_rows(partable, table)
    _check_identification(coded)
    return coded


def _check_controls(partable: ParTable, dummies: Mapping[str, list[str]]) -> None:
    """A dummy-coded control is a predictor only, in no interaction, labelled only when it
    has one dummy (a label shared by several dummies would make their effects equal)."""
    for r in partable.regressions.itertuples():
        parts = r.rhs.split(":")
        if r.lhs in dummies:
            raise ModelSpecError(
                f"model line {r.line}: the control {r.lhs!r} is text, dummy-coded, so it can "
                f"only predict, not be the outcome of '{r.lhs} ~ {r.rhs}'; recode it into a "
                "number if it is an outcome"
            )
        if len(parts) > 1 and set(parts) & set(dummies):
            raise ModelSpecError(
                f"model line {r.line}: '{r.rhs}' multiplies a text control, which bayes_sor "
                "dummy-codes; interactions with a dummy-coded control are not supported: "
                "recode it into a number (0/1 for two levels)"
            )
        if r.label and len(dummies.get(r.rhs, [])) > 1:
            raise ModelSpecError(
                f"model line {r.line}: the label {r.label!r} on the control {r.rhs!r} would "
                f"be shared by its {len(dummies[r.rhs])} dummies {dummies[r.rhs]}, making "
                "their effects equal; remove the label"
            )


# ---- tables completed from the data -------------------------------------------------------
def _with_rows(partable: ParTable, table: pd.DataFrame) -> ParTable:
    """A copy of ``partable`` with another table (parameters first, ``:=`` rows last)."""
    table = pd.concat([table[table.op != ":="], table[table.op == ":="]], ignore_index=True)
    columns = [*COLUMNS, "group"] if "group" in table.columns else COLUMNS
    return ParTable(
        table[columns], dict(partable.options), list(partable.hypotheses), partable.text
    )


def add_thresholds(partable: ParTable, categories: dict[str, int]) -> ParTable:
    """Threshold rows ``item | t1 .. t{K-1}`` for ordinal items with K observed categories.

    Thresholds the model file states are kept (their number must match the data); the others
    are added as free parameters with the ``thresholds`` prior, numbered after the existing
    free parameters.
    """
    t = partable.table
    prior = {**DEFAULT_PRIORS, **(partable.options.get("priors") or {})}["thresholds"]
    new, free = [], partable.n_free
    for item, k in categories.items():
        stated = t[(t.op == "|") & (t.lhs == item)]
        if len(stated) and len(stated) != k - 1:
            raise ModelSpecError(
                f"the model states {len(stated)} threshold(s) for {item!r} (model lines "
                f"{sorted(set(stated.line))}) but the data have {k} categories of it, which "
                f"need {k - 1}; state t1..t{k - 1} or leave the thresholds out"
            )
        if len(stated):
            continue
        for j in range(1, k):
            free += 1
            new.append(
                {
                    "lhs": item,
                    "op": "|",
                    "rhs": f"t{j}",
                    "label": "",
                    "free": free,
                    "value": np.nan,
                    "prior": prior,
                    "user": 0,
                    "line": 0,
                }
            )
    if not new:
        return partable
    return _with_rows(partable, pd.concat([t, pd.DataFrame(new)], ignore_index=True))


def without_mean_structure(partable: ParTable) -> ParTable:
    """The table without item intercepts, for data that are a covariance matrix only.

    Without sample means the intercepts are not identified (lavaan drops the mean structure
    in that case too); the remaining free parameters are renumbered 1..K.
    """
    t = partable.table
    dropped = t[t.op == "~1"]
    used = {r.label for r in dropped.itertuples() if r.label} & {
        n for expr in partable.defined.rhs for n in re.findall(r"[A-Za-z_.][\w.]*", expr)
    }
    if used:
        raise ModelSpecError(
            f"the definitions use intercept label(s) {sorted(used)}, but a covariance matrix "
            "has no means: give raw data, or drop those definitions"
        )
    kept = t[t.op != "~1"].reset_index(drop=True)
    numbers = {f: k + 1 for k, f in enumerate(dict.fromkeys(kept.free[kept.free > 0]))}
    kept["free"] = [numbers.get(f, 0) for f in kept.free]
    return _with_rows(partable, kept)


def read_prior_file(path: str | Path) -> dict[str, str]:
    """Priors by parameter kind from a YAML file holding ``priors: {kind: text, ...}``."""
    path = Path(path)
    example = 'priors: {loadings: "gamma(4,5)", intercepts: "normal(4,1)"}'
    try:
        content = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ModelSpecError(
            f"prior file {str(path)!r} cannot be read ({exc.strerror}); give "
            "a YAML file such as models/holzinger_swineford.sbc_priors.yaml"
        ) from None
    except (yaml.YAMLError, UnicodeDecodeError):
        raise ModelSpecError(
            f"prior file {str(path)!r} is not valid YAML; write one line such as {example}"
        ) from None
    if (
        not isinstance(content, dict)
        or set(content) != {"priors"}
        or not isinstance(content["priors"], dict)
    ):
        raise ModelSpecError(
            f"prior file {str(path)!r} must hold one key, 'priors', mapping "
            f"parameter kinds to prior text, e.g. {example}"
        )
    priors = content["priors"]
    unknown = sorted(str(k) for k in set(priors) - set(DEFAULT_PRIORS))
    if unknown:
        raise ModelSpecError(
            f"prior file {str(path)!r}: unknown parameter kind(s) {unknown}; "
            f"the kinds are {sorted(DEFAULT_PRIORS)}"
        )
    for kind, text in priors.items():
        parse_prior(str(text), f"{kind} in {path}")
    return {kind: str(text) for kind, text in priors.items()}
