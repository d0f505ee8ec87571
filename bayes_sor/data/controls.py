"""Control variables of the structural model (``IB ~ CT + gender + age``): a column of text
(``male``/``female``) is dummy-coded against a reference level, one 0/1 column per other level
named ``gender[female]``; a numeric column stays a number (an observed structural variable).

The reference level is the header's ``reference: {gender: male}`` where given, else the first
level in sorted order (R's and lavaan's convention for a factor: the same data give the same
reference, whatever the sample's proportions). Naming a reference for a numeric column codes
its values as categories too (``reference: {age: 1}`` for age bands coded 1-4).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from bayes_sor.data.csv_reader import coerce
from bayes_sor.data.messages import listed_rows, quoted
from bayes_sor.errors import DataError

#: most levels a dummy-coded control may have: more is an identifier or free text, not a factor
MAX_LEVELS = 10


@dataclass(frozen=True)
class ControlCoding:
    """How one control column was dummy-coded."""

    column: str
    reference: str
    #: the coded levels, sorted; one dummy each
    levels: tuple[str, ...]
    #: respondents per level, the reference's included
    counts: Mapping[str, int]
    #: whether the header named the reference (else: first in sorted order)
    named: bool

    @property
    def dummies(self) -> list[str]:
        return [dummy_name(self.column, level) for level in self.levels]

    def describe(self) -> str:
        """One line for the console and the report."""
        how = "named in the header" if self.named else "first in sorted order"
        dummies = ", ".join(
            f"{d} ({self.counts[lv]})" for d, lv in zip(self.dummies, self.levels, strict=True)
        )
        return (
            f"{self.column}: text, {len(self.levels) + 1} levels, dummy-coded {dummies}; "
            f"reference {self.reference!r} ({self.counts[self.reference]}, {how})"
        )


def dummy_name(column: str, level: str) -> str:
    """The dummy variable of one level: ``gender[female]``."""
    return f"{column}[{level}]"


def code_controls(
    frame: pd.DataFrame,
    controls: Sequence[str],
    reference: Mapping[str, object] | None,
    where: str,
    in_file: bool,
    policy: str,
) -> tuple[pd.DataFrame, list[ControlCoding]]:
    """``frame`` with each text control column (or one the header names a reference for)
    replaced by its dummies, and how each was coded.

    ``controls``: the model's observed structural variables (names in regressions that are
    neither latents nor items); those absent from ``frame`` are left for the column checks.
    ``where`` names the data in messages, ``in_file`` whether its rows are file lines.
    A respondent without a value of a coded control is refused unless ``policy`` is
    ``"listwise"`` (their dummies are then missing and the row is dropped).
    """
    if reference is not None and not isinstance(reference, Mapping):
        raise DataError(
            "the header option 'reference' maps each control to its reference level, e.g. "
            f"'reference: {{gender: male}}'; got {reference!r}"
        )
    reference = {str(k): str(v) for k, v in (reference or {}).items()}
    unknown = sorted(set(reference) - set(controls))
    if unknown:
        raise DataError(
            f"the header's 'reference' names {quoted(unknown)}, which "
            f"{'is' if len(unknown) == 1 else 'are'} not a control of the model (observed "
            f"variables in its regressions: {quoted(list(controls)) or 'none'}); correct the "
            "name or add the variable to a regression"
        )
    codings = []
    for column in controls:
        if column not in frame.columns:
            continue
        present = frame[column].notna()
        _, text = coerce(frame[column])
        if column in reference or (present.any() and text[present.to_numpy()].all()):
            named = reference.get(column)
            codings.append(_coding(frame[column], column, named, where, in_file, policy))
    if not codings:
        return frame, []
    dummies = [_dummies(frame[c.column], c) for c in codings]
    return pd.concat([frame.drop(columns=[c.column for c in codings]), *dummies], axis=1), codings


def dummies_of(codings: Sequence[ControlCoding]) -> dict[str, list[str]]:
    """Each coded control column and its dummies (``{"gender": ["gender[female]"]}``)."""
    return {c.column: c.dummies for c in codings}


def coded_names(names: Sequence[str], codings: Sequence[ControlCoding]) -> list[str]:
    """``names`` with each coded control replaced by its dummies."""
    by_column = dummies_of(codings)
    return [d for n in names for d in by_column.get(n, [n])]


def _levels(column: pd.Series) -> pd.Series:
    """The values as level texts (stripped; numbers as written, ``2.0`` as ``2``)."""
    present = column.dropna()
    if pd.api.types.is_float_dtype(present) and (present == present.round()).all():
        present = present.astype(int)
    return present.astype(str).str.strip()


def _coding(
    column: pd.Series, name: str, reference: str | None, where: str, in_file: bool, policy: str
) -> ControlCoding:
    missing = column.isna()
    if missing.any() and policy != "listwise":
        raise DataError(
            f"{where}: the control {name!r} has {int(missing.sum())} missing value(s) "
            f"({listed_rows(column.index[missing], in_file)}); a dummy-coded control needs "
            "a value for every respondent: fill them in, or drop those respondents "
            "(--missing listwise)"
        )
    counts = _levels(column).value_counts().sort_index()
    levels = list(counts.index)
    if len(levels) > MAX_LEVELS:
        raise DataError(
            f"{where}: the control {name!r} has {len(levels)} different texts (e.g. "
            f"{quoted(levels[:3])}), more than the {MAX_LEVELS} levels a dummy-coded control "
            "may have; it looks like an identifier or free text: recode it into at most "
            f"{MAX_LEVELS} categories, or into a number"
        )
    if len(levels) < 2:
        raise DataError(
            f"{where}: the control {name!r} has one level only ({quoted(levels)}), so it cannot "
            "explain any difference; drop it from the model"
        )
    if reference is not None and reference not in levels:
        raise DataError(
            f"the header's reference level {reference!r} of {name!r} is not one of its levels "
            f"in {where} ({quoted(levels)}); name one of them"
        )
    chosen = reference if reference is not None else levels[0]
    return ControlCoding(
        name,
        chosen,
        tuple(lv for lv in levels if lv != chosen),
        {lv: int(n) for lv, n in counts.items()},
        reference is not None,
    )


def _dummies(column: pd.Series, coding: ControlCoding) -> pd.DataFrame:
    """One 0/1 column per coded level; missing where the control is missing."""
    text = _levels(column).reindex(column.index)
    return pd.DataFrame(
        {
            dummy: (text == level).astype(float).where(text.notna())
            for dummy, level in zip(coding.dummies, coding.levels, strict=True)
        },
        index=column.index,
    )
