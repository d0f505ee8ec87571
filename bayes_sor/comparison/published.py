"""Published estimates to set beside a reanalysis: a YAML file, or a CSV in either of two layouts.

Every published number becomes one row of the comparison table's key ``(quantity, kind,
moderator_value, scale)``: model paths are ``CT ~ PI`` (kind ``path``), effects carry the names of
``effects.csv`` (``PI -> CT -> IB``, kind ``indirect``, ``total``, ...), and the studies' own
regressions get the names made by :func:`baron_kenny_quantity` (kind ``baron_kenny``) and
:func:`moderation_quantity` (kind ``moderation``). ``scale`` is ``std`` (fully standardised) or
``raw`` (the model's metric, meaningful only under the same identification).

YAML layout (``models/impulse_buying.published.yaml`` is an example)::

    source: where the numbers come from
    scale: std                 # default scale of every value below
    identification: std.lv     # only matters for raw values
    paths: {"CT ~ PI": 0.244, "IB ~ CT:IT": {estimate: 0.024, significant: true, note: ...}}
    effects: [{effect: PI -> IB, kind: total, estimate: 0.249}]
    baron_kenny: [{x: PI, m: CT, y: IB, a: 0.244, b: 0.272, c: 0.249, c': 0.182}]
    moderation: [{y: IB, terms: {CT: 0.235, IT: 0.38, "CT:IT": 0.024}}]

A value is a number or a mapping with ``estimate`` and optionally ``lower``, ``upper``,
``significant`` (the paper's verdict where it gives no interval) and ``note``.

CSV layouts: the long one (columns :data:`COLUMNS`), or lavaan's ``parameterEstimates()``
(``lhs, op, rhs, est[, ci.lower, ci.upper, pvalue, std.all]``), whose regressions become path
rows on both scales and whose ``:=`` rows become defined effects.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from bayes_sor.errors import DataError

KEY = ["quantity", "kind", "moderator_value", "scale"]
COLUMNS = [*KEY, "estimate", "lower", "upper", "significant", "note"]
SCALES = ("std", "raw")
BARON_KENNY_STEPS = ("a", "b", "c", "c'", "a*b")
#: p-value below which a lavaan table's estimate counts as significant (no interval given for
#: the standardised values).
ALPHA = 0.05


@dataclass(frozen=True)
class Published:
    """Published values (:data:`COLUMNS`), their source and the identification of raw values."""

    table: pd.DataFrame
    source: str
    identification: str | None


def baron_kenny_quantity(step: str, x: str, m: str, y: str) -> str:
    """Row name of one Baron-Kenny step for the simple mediation x -> m -> y."""
    names = {
        "a": f"{m} ~ {x}",
        "c": f"{y} ~ {x}",
        "c'": f"{y} ~ {x} (with {m})",
        "b": f"{y} ~ {m} (with {x})",
        "a*b": f"{x} -> {m} -> {y}",
    }
    return f"{step}: {names[step]}"


def moderation_quantity(y: str, term: str) -> str:
    """Row name of one term of the studies' moderation regression of ``y``."""
    return f"{y} ~ {term}"


def read_published(path: str | Path) -> Published:
    """Published values from a YAML or CSV file (layouts in the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"published-values file {str(path)!r} does not exist")
    if path.suffix.lower() in (".yaml", ".yml"):
        return _from_yaml(path)
    if path.suffix.lower() == ".csv":
        return _from_csv(path)
    raise DataError(f"published-values file {str(path)!r}: give a .yaml or .csv file")


# ---- YAML ------------------------------------------------------------------------------------
def _from_yaml(path: Path) -> Published:
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise DataError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(doc, dict):
        raise DataError(f"{path}: expected a mapping with 'paths', 'effects', ... at the top")
    scale = _scale(doc.get("scale", "std"), path)
    rows: list[dict] = []
    for quantity, value in (doc.get("paths") or {}).items():
        rows.append(_row(quantity, "path", "", scale, value, path))
    for entry in doc.get("effects") or []:
        rows.append(
            _row(
                entry["effect"],
                entry["kind"],
                entry.get("moderator_value", ""),
                entry.get("scale", scale),
                entry,
                path,
            )
        )
    for entry in doc.get("baron_kenny") or []:
        x, m, y = (entry[k] for k in ("x", "m", "y"))
        rows += [
            _row(baron_kenny_quantity(step, x, m, y), "baron_kenny", "", scale, entry[step], path)
            for step in BARON_KENNY_STEPS
            if step in entry
        ]
    for entry in doc.get("moderation") or []:
        rows += [
            _row(moderation_quantity(entry["y"], term), "moderation", "", scale, value, path)
            for term, value in entry["terms"].items()
        ]
    unknown = set(doc) - {
        "source",
        "scale",
        "identification",
        "paths",
        "effects",
        "baron_kenny",
        "moderation",
    }
    if unknown:
        raise DataError(f"{path}: unknown section(s) {sorted(unknown)}")
    return Published(
        _frame(rows), str(doc.get("source", path.name)).strip(), doc.get("identification")
    )


def _scale(value: str, path: Path) -> str:
    if value not in SCALES:
        raise DataError(f"{path}: scale must be one of {SCALES}, got {value!r}")
    return value


def _row(quantity: str, kind: str, moderator_value: str, scale: str, value, path: Path) -> dict:
    """One published value: a number, or a mapping with ``estimate`` and more."""
    spec = value if isinstance(value, dict) else {"estimate": value}
    if not isinstance(spec.get("estimate"), int | float):
        raise DataError(f"{path}: {quantity!r} needs a numeric estimate, got {value!r}")
    return {
        "quantity": str(quantity),
        "kind": kind,
        "moderator_value": moderator_value,
        "scale": _scale(spec.get("scale", scale), path),
        "estimate": float(spec["estimate"]),
        "lower": spec.get("lower", np.nan),
        "upper": spec.get("upper", np.nan),
        "significant": spec.get("significant"),
        "note": str(spec.get("note", "")).strip(),
    }


def _frame(rows: list[dict]) -> pd.DataFrame:
    table = pd.DataFrame(rows, columns=COLUMNS)
    table[["lower", "upper"]] = table[["lower", "upper"]].astype(float)
    duplicated = table.duplicated(KEY)
    if duplicated.any():
        raise DataError(f"published values given twice: {table[duplicated].quantity.tolist()}")
    return table


# ---- CSV -------------------------------------------------------------------------------------
def _from_csv(path: Path) -> Published:
    table = pd.read_csv(
        path, keep_default_na=False, na_values={c: [""] for c in ("estimate", "lower", "upper")}
    )
    if {"lhs", "op", "rhs", "est"} <= set(table.columns):
        return _from_lavaan(table, path)
    missing = [c for c in ("quantity", "kind", "estimate") if c not in table.columns]
    if missing:
        raise DataError(
            f"{path}: a published-values CSV needs the columns {COLUMNS[:5]} "
            f"(or lavaan's lhs, op, rhs, est); {missing} are missing"
        )
    for column, default in (
        ("moderator_value", ""),
        ("scale", "std"),
        ("lower", np.nan),
        ("upper", np.nan),
        ("significant", None),
        ("note", ""),
    ):
        if column not in table.columns:
            table[column] = default
    table["significant"] = table["significant"].map(_flag)
    return Published(_frame(table[COLUMNS].to_dict("records")), path.name, None)


def _flag(value) -> bool | None:
    text = str(value).strip().lower()
    return {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}.get(text)


def _from_lavaan(table: pd.DataFrame, path: Path) -> Published:
    """Regressions (raw, and ``std.all`` when present) and ``:=`` rows of a lavaan table."""
    table = table.copy()
    table["rhs"] = table["rhs"].astype(str)
    numeric = [
        c for c in ("est", "ci.lower", "ci.upper", "pvalue", "std.all", "se") if c in table.columns
    ]
    table[numeric] = table[numeric].apply(pd.to_numeric, errors="coerce")
    rows = []
    for r in table[table.op.isin(["~", ":="])].to_dict("records"):
        quantity, kind = (
            (f"{r['lhs']} ~ {r['rhs']}", "path") if r["op"] == "~" else (r["lhs"], "defined")
        )
        p = r.get("pvalue", np.nan)
        significant = bool(p < ALPHA) if np.isfinite(p) else None
        rows.append(
            {
                "quantity": quantity,
                "kind": kind,
                "moderator_value": "",
                "scale": "raw",
                "estimate": r["est"],
                "lower": r.get("ci.lower", np.nan),
                "upper": r.get("ci.upper", np.nan),
                "significant": significant,
                "note": "",
            }
        )
        if "std.all" in r:
            rows.append(
                {
                    **rows[-1],
                    "scale": "std",
                    "estimate": r["std.all"],
                    "lower": np.nan,
                    "upper": np.nan,
                }
            )
    source = (
        f"{path.name}: lavaan parameterEstimates() (estimates with their intervals; "
        f"std.all without; significance at p < {ALPHA})"
    )
    return Published(_frame(rows), source, _lavaan_identification(table))


def _lavaan_identification(table: pd.DataFrame) -> str | None:
    """``marker`` when every factor's first loading is fixed to 1 (SE 0), ``std.lv`` when every
    factor variance is fixed to 1, else unknown."""
    if "se" not in table.columns:
        return None
    loadings = table[table.op == "=~"].groupby("lhs", sort=False).head(1)
    if len(loadings) and ((loadings.est == 1) & (loadings.se == 0)).all():
        return "marker"
    variances = table[(table.op == "~~") & (table.lhs == table.rhs) & table.lhs.isin(loadings.lhs)]
    if len(variances) and ((variances.est == 1) & (variances.se == 0)).all():
        return "std.lv"
    return None
