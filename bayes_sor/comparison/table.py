"""The comparison table: one row per quantity and scale, each method's estimate and interval
side by side, and flags where the methods disagree in sign or on excluding zero."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from bayes_sor.comparison.published import KEY
from bayes_sor.posterior.effects import KINDS

LABELS = {
    "bayes": "Bayesian",
    "ml": "ML SEM",
    "study": "study (composite OLS)",
    "published": "published",
}
#: in flag texts, which are read row by row
SHORT = {"bayes": "Bayes", "ml": "ML", "study": "study", "published": "published"}
VALUE_COLUMNS = ["est", "se", "lower", "upper", "significant"]
#: rows of the structural model's quantities, then the study's own regression steps
#: (a direct effect is its path's row)
MODEL_KINDS = ("path", *(k for k in KINDS if k != "direct"))
STUDY_KINDS = ("moderation", "baron_kenny")
KIND_ORDER = MODEL_KINDS + STUDY_KINDS
OUTPUT_FILES = ("comparison.csv", "comparison.md", "comparison.png")


@dataclass
class MethodEstimates:
    """One method's rows (:data:`KEY` + :data:`VALUE_COLUMNS` + ``note``) and how it got them."""

    name: str
    table: pd.DataFrame
    description: str
    info: dict = field(default_factory=dict)


# ---- the table -------------------------------------------------------------------------------
def comparison_table(methods: list[MethodEstimates]) -> pd.DataFrame:
    """One row per quantity and scale; per method ``<name>_est/_se/_lower/_upper``; flags."""
    keys = pd.concat([m.table[KEY] for m in methods]).drop_duplicates(ignore_index=True)
    table = keys
    for m in methods:
        part = m.table[[*KEY, *VALUE_COLUMNS]].rename(
            columns={c: f"{m.name}_{c}" for c in VALUE_COLUMNS}
        )
        table = table.merge(part, on=KEY, how="left", validate="1:1")
    notes = []
    for m in methods:
        noted = m.table[m.table.note.astype(str) != ""]
        notes.append(noted[KEY].assign(note=LABELS[m.name] + ": " + noted.note.astype(str)))
    notes = pd.concat(notes).groupby(KEY, sort=False).note.agg("; ".join)
    table = table.merge(notes.rename("note").reset_index(), on=KEY, how="left")
    table["note"] = table["note"].fillna("")
    names = [m.name for m in methods]
    flags = [_flags(row, names) for row in table.to_dict("records")]
    table["sign_disagree"] = [f[0] for f in flags]
    table["zero_disagree"] = [f[1] for f in flags]
    table["flag"] = [f[2] for f in flags]
    order = {k: i for i, k in enumerate(KIND_ORDER)}
    table["_scale"] = table.scale.map({"std": 0, "raw": 1})
    table["_kind"] = table.kind.map(order).fillna(len(order))
    table = table.sort_values(["_scale", "_kind"], kind="stable").drop(columns=["_scale", "_kind"])
    columns = [*KEY] + [f"{n}_{c}" for n in names for c in VALUE_COLUMNS]
    columns = [c for c in columns if not c.endswith("_significant") or c.startswith("published")]
    return table[[*columns, "sign_disagree", "zero_disagree", "flag", "note"]].reset_index(
        drop=True
    )


def read_comparison(path: str | Path) -> pd.DataFrame:
    """``comparison.csv`` back: empty numbers NaN, empty texts '' (names like 'NA' kept)."""
    table = pd.read_csv(path, keep_default_na=False, na_values=[""])
    text = [*KEY, "flag", "note"]
    table[text] = table[text].astype(object).fillna("").astype(str)
    return table


def excludes_zero(row: dict, method: str) -> bool | None:
    """Whether a method's interval excludes zero (a published verdict where no interval)."""
    lower, upper = row.get(f"{method}_lower"), row.get(f"{method}_upper")
    if pd.notna(lower) and pd.notna(upper):
        return bool(lower > 0 or upper < 0)
    verdict = row.get(f"{method}_significant")
    return None if verdict is None or pd.isna(verdict) else bool(verdict)


def _flags(row: dict, methods: list[str]) -> tuple[bool, bool, str]:
    present = [m for m in methods if pd.notna(row.get(f"{m}_est"))]
    signs = {m: np.sign(row[f"{m}_est"]) for m in present}
    sign = len({s for s in signs.values() if s != 0}) > 1
    verdicts = {m: v for m in present if (v := excludes_zero(row, m)) is not None}
    zero = len(set(verdicts.values())) > 1
    parts = []
    if sign:
        plus = [SHORT[m] for m, s in signs.items() if s > 0]
        minus = [SHORT[m] for m, s in signs.items() if s < 0]
        parts.append(f"sign (+ {', '.join(plus)}; - {', '.join(minus)})")
    if zero:
        yes = [SHORT[m] for m, v in verdicts.items() if v]
        no = [SHORT[m] for m, v in verdicts.items() if not v]
        parts.append(f"zero excluded by {', '.join(yes)}, not by {', '.join(no)}")
    return sign, zero, "; ".join(parts)
