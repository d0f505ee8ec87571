"""Ordinal items, the data side: observed categories and the thresholds they imply (the
ordered-probit likelihood is :mod:`bayes_sor.model.ordinal`).

Categories come from the data (lavaan's rule, what ``fit`` does): the observed answers of each
item are recoded to consecutive codes 0..K-1, so an item has K - 1 thresholds, defined between
observed categories only; ``item | t1`` is the threshold above the lowest observed category.
Categories never chosen, or chosen fewer than :data:`SPARSE` times, are reported by item.

A model whose thresholds were made from the declared scale instead (SBC and simulation: the
data come from a model with one threshold fewer than the scale has categories) codes an answer
by its place on the scale, ``answer - low``; a category nobody chose keeps its thresholds, which
then rest on their prior and the order constraint (the posterior stays proper), so the fitted
model is the simulating one even when a simulated data set misses a category.
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pandas as pd

from bayes_sor.data.scale import Scale, parse_scale
from bayes_sor.errors import DataError, ModelSpecError
from bayes_sor.spec.partable import ParTable, add_thresholds

#: Categories with fewer answers than this are reported as sparse.
SPARSE = 5


def observed_categories(frame: pd.DataFrame, items: list[str]) -> dict[str, np.ndarray]:
    """The sorted distinct answers of each ordinal item (missing answers ignored)."""
    return {item: np.sort(frame[item].dropna().unique()) for item in items}


def codes(column: pd.Series | np.ndarray, categories: np.ndarray) -> np.ndarray:
    """Answers -> consecutive codes 0..K-1 (the rank of each answer among the categories)."""
    return np.searchsorted(categories, np.asarray(column, dtype=float)).astype("int64")


def declared_scale(partable: ParTable) -> Scale | None:
    """The answers' range declared in the model header (``scale: 1-7``), if any."""
    return parse_scale(partable.options.get("scale"))


def answer_codes(column: pd.Series | np.ndarray, item: str, partable: ParTable) -> np.ndarray:
    """An ordinal item's answers -> codes 0..K-1 for the item's K - 1 thresholds in the table.

    Categories from the data when the item has one threshold fewer than observed categories
    (the rank among them); otherwise the declared scale's categories when the thresholds
    match it (``answer - low``; unchosen categories keep their thresholds). The two agree
    whenever every category of the scale was chosen.
    """
    params = partable.parameters
    if "group" in params.columns:  # every group has the first group's thresholds
        params = params[params.group == 1]
    n_thresholds = int(((params.op == "|") & (params.lhs == item)).sum())
    answers = np.asarray(column, dtype=float)
    observed = np.unique(answers[~np.isnan(answers)])
    if len(observed) == n_thresholds + 1:
        return codes(answers, observed)
    scale = declared_scale(partable)
    if scale is not None and scale.high - scale.low == n_thresholds:
        declared = np.arange(scale.low, scale.high + 1, dtype=float)
        if np.isin(observed, declared).all():
            return codes(answers, declared)
    declared_text = (
        f"nor the declared scale {scale.low}-{scale.high}"
        if scale is not None
        else "and the model declares no scale"
    )
    raise ModelSpecError(
        f"the ordinal item {item!r} has {len(observed)} observed categories "
        f"({', '.join(map(_fmt, observed))}), which match neither its {n_thresholds} "
        f"thresholds in the model {declared_text}; add thresholds from the data with "
        "bayes_sor.data.categories.add_ordinal_thresholds(partable, data), or declare the "
        "answers' range in the model header ('scale: 1-7') to keep thresholds of categories "
        "nobody chose"
    )


def category_notes(
    frame: pd.DataFrame, items: list[str], scale_range: tuple[int, int] | None = None
) -> list[str]:
    """Items whose categories are empty (never chosen) or sparse (< :data:`SPARSE` answers).

    With empty categories the note says which observed categories the thresholds separate,
    since ``t1`` is then not the threshold above the scale's lowest category.
    """
    notes = []
    for item, cats in observed_categories(frame, items).items():
        counts = frame[item].value_counts()
        low, high = scale_range or (int(cats.min()), int(cats.max()))
        whole = np.all(cats == np.round(cats))
        empty = [k for k in range(low, high + 1) if k not in set(cats)] if whole else []
        sparse = [f"{_fmt(c)} ({int(counts[c])}x)" for c in cats if counts[c] < SPARSE]
        parts = []
        if empty:
            parts.append(f"categories {', '.join(map(str, empty))} never chosen")
        if sparse:
            parts.append(f"sparse categories {', '.join(sparse)}")
        if parts:
            between = ", ".join(
                f"t{k + 1} {_fmt(a)}|{_fmt(b)}" for k, (a, b) in enumerate(itertools.pairwise(cats))
            )
            notes.append(
                f"{item!r}: {'; '.join(parts)} -> modelled with {len(cats)} observed "
                f"categories ({len(cats) - 1} thresholds"
                f"{f': {between}' if empty else ''})"
            )
    return notes


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def add_ordinal_thresholds(
    partable: ParTable, frame: pd.DataFrame, scale_range: tuple[int, int] | None = None
) -> ParTable:
    """Add the thresholds the data imply (observed categories - 1 per ordinal item).

    Warns, naming the items, when categories are empty or sparse: thresholds are defined
    between observed categories only, and a threshold next to a sparse category rests largely
    on its prior.
    """
    items = partable.ordinal_items()
    if not items:
        return partable
    single = {
        item: cats for item, cats in observed_categories(frame, items).items() if len(cats) < 2
    }
    if single:
        listed = ", ".join(
            f"{item!r} (only {', '.join(map(_fmt, cats)) or 'no answers'})"
            for item, cats in single.items()
        )
        raise DataError(
            f"the ordinal item(s) {listed} have fewer than two observed categories, so they "
            "carry no information about their construct; drop them from the model"
        )
    notes = category_notes(frame, items, scale_range)
    if notes:
        warnings.warn(
            "ordinal items with empty or sparse categories: " + "; ".join(notes), stacklevel=2
        )
    counts = {item: len(cats) for item, cats in observed_categories(frame, items).items()}
    return add_thresholds(partable, counts)
