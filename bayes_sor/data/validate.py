"""The answers checked against a model's items: columns present, numbers, finite, inside the
declared scale, ordinal items whole categories, every item varying, no exact dependence; every
problem one :class:`~bayes_sor.errors.DataError` naming the cells and the fix.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable

import numpy as np
import pandas as pd

from bayes_sor.data.csv_reader import coerce
from bayes_sor.data.messages import (
    SHOW_AVAILABLE,
    SHOW_LINES,
    column_problem,
    quoted,
    shown_value,
    summarised,
)
from bayes_sor.data.scale import Scale
from bayes_sor.errors import DataError


def resolve_ordinal(ordinal: list[str] | str | None, items: list[str]) -> list[str]:
    """``ordinal`` (``"all"``, comma-separated text or a list) as item names of the model."""
    if not ordinal:
        return []
    if isinstance(ordinal, str):
        ordinal = items if ordinal == "all" else [s.strip() for s in ordinal.split(",")]
    unknown = [name for name in ordinal if name not in items]
    if unknown:
        raise DataError(
            f"ordinal item(s) {quoted(unknown)} are not items of the model; the items are "
            f"{quoted(items)}"
        )
    return list(dict.fromkeys(ordinal))


def check_unique_columns(frame: pd.DataFrame, where: str) -> None:
    """A DataFrame repeats no column name (a file's header is checked when read)."""
    duplicated = list(dict.fromkeys(frame.columns[frame.columns.duplicated()]))
    if duplicated:
        raise DataError(
            f"{where} has repeated column names {quoted(duplicated)}; give every column a "
            "unique name, so it is clear which one the model uses"
        )


def check_regression_names(
    frame: pd.DataFrame, observed: list[str], latents: list[str], where: str
) -> None:
    """A name in a regression that is neither a latent nor a column: suggest the nearest of
    both (``PU ~ AXX`` for the latent ``AX``)."""
    absent = [name for name in observed if name not in frame.columns]
    if not absent:
        return
    columns = [str(c) for c in frame.columns if str(c) not in latents]
    described = []
    for name in absent:
        close = difflib.get_close_matches(name, [*latents, *columns], n=3, cutoff=0.6)
        roles = [f"the {'latent' if c in latents else 'column'} {c!r}" for c in close]
        guess = f" (did you mean {' or '.join(roles)}?)" if roles else ""
        described.append(f"{name!r}{guess}")
    raise DataError(
        f"{', '.join(described)} in a regression of the model is neither a latent of the model "
        f"({', '.join(latents) or 'none'}) nor a column of {where}; correct the name in the "
        "model, or add the observed variable to the data"
    )


def check_columns(frame: pd.DataFrame, items: list[str], where: str) -> None:
    """Every item of the model is a column; the nearest names are suggested."""
    available = [str(c) for c in frame.columns]
    absent = [item for item in items if item not in frame.columns]
    if not absent:
        return
    folded = {name.strip().lower(): name for name in available}
    described = []
    for item in absent:
        # Case and stray spaces are the usual mismatch, which difflib's ratio ranks poorly.
        close = [folded[item.strip().lower()]] if item.strip().lower() in folded else []
        close += [
            folded[m]
            for m in difflib.get_close_matches(item.strip().lower(), list(folded), n=3, cutoff=0.6)
            if folded[m] not in close
        ]
        guess = f" (did you mean {quoted(close[:3], 'or')}?)" if close else ""
        described.append(f"{item!r}{guess}")
    shown = ", ".join(available[:SHOW_AVAILABLE])
    n_more = len(available) - SHOW_AVAILABLE
    more = f" ... and {n_more} more" if n_more > 0 else ""
    noun = "column" if len(absent) == 1 else "columns"
    raise DataError(
        f"{where} has no {noun} for the model's item(s) {', '.join(described)}; rename the "
        "column in the data or the item in the model so they match exactly (case and spaces "
        f"count); the data's columns are: {shown}{more}"
    )


def numeric_answers(
    frame: pd.DataFrame, items: list[str], where: str, rows: Callable, in_file: bool
) -> pd.DataFrame:
    """The items' answers as floats; texts that are not numbers are refused, quoted."""
    columns, problems, hints = {}, [], set()
    for item in items:
        numbers, bad = coerce(frame[item])
        columns[item] = numbers
        if bad.any():
            offending = frame[item][bad]
            problem = column_problem(item, rows(offending.index), offending.tolist())
            texts = [str(v) for v in offending]
            distinct = list(dict.fromkeys(texts))
            if len(texts) > SHOW_LINES and len(distinct) < len(texts):
                # A column of answer labels ("agree", ...): list what there is to recode.
                n_more = len(distinct) - SHOW_LINES
                more = f" and {n_more} more" if n_more > 0 else ""
                problem += f" with the texts {quoted(distinct[:SHOW_LINES])}{more}"
            problems.append(problem)
            if any(re.fullmatch(r"\s*[+-]?\d+,\d+\s*", t) for t in texts):
                hints.add(
                    "; numbers like '3,5' use a decimal comma: bayes_sor reads decimal commas "
                    "only in ';'-separated files, so use '.' decimals or save with ';'"
                )
            if any("\n" in t or '"' in t for t in texts):
                hints.add(
                    "; a value holding a line break or a quote usually means an unclosed "
                    'double quote (") swallowed the lines after it'
                )
    if problems:
        empty = "leave a missing answer empty" if in_file else "use NaN for a missing answer"
        raise DataError(
            f"{where} has answers that are not numbers: {summarised(problems)}; recode them "
            f"to numbers ({empty}){''.join(sorted(hints))}"
        )
    return pd.DataFrame(columns, index=frame.index)


def check_finite(values: pd.DataFrame, where: str, rows: Callable) -> None:
    """No infinite answer."""
    problems = _offending_cells(values, list(values), rows, np.isinf)
    if problems:
        raise DataError(
            f"{where} has infinite values: {summarised(problems)}; replace them with the "
            "actual answers (or empty cells if the answer is missing)"
        )


def _offending_cells(
    values: pd.DataFrame,
    items: list[str],
    rows: Callable,
    offending: Callable[[pd.Series], pd.Series],
) -> list[str]:
    """One :func:`~bayes_sor.data.messages.column_problem` per item with offending cells."""
    problems = []
    for item in items:
        column = values[item]
        bad = np.asarray(offending(column))
        if bad.any():
            problems.append(column_problem(item, rows(values.index[bad]), column[bad]))
    return problems


def check_present(values: pd.DataFrame, where: str) -> None:
    """Every item has at least one answer."""
    empty = [item for item in values if values[item].isna().all()]
    if empty:
        raise DataError(
            f"{where}: the item(s) {quoted(empty)} have no answers at all (every cell is "
            "empty); check that the right column was exported, or drop the item from the model"
        )


def check_scale(values: pd.DataFrame, scale: Scale, where: str, rows: Callable) -> None:
    """Every answer is a whole number inside the declared scale."""
    problems = _offending_cells(
        values,
        list(values),
        rows,
        lambda column: (
            column.notna() & ((column < scale.low) | (column > scale.high) | ~_whole(column))
        ),
    )
    if problems:
        raise DataError(
            f"{where} has answers outside the declared scale {scale} or not whole numbers: "
            f"{summarised(problems)}; check the declared scale (--scale {scale}), and recode "
            "missing-value codes such as -99 or 99 to empty cells"
        )


def check_ordinal_whole(
    values: pd.DataFrame, ordinal: list[str], where: str, rows: Callable
) -> None:
    """Every answer of an ordinal item is a whole-number category."""
    problems = _offending_cells(
        values, ordinal, rows, lambda column: column.notna() & ~_whole(column)
    )
    if problems:
        raise DataError(
            f"{where}: ordinal items must be whole-number categories, but some answers are "
            f"not: {summarised(problems)}; recode them to categories (1, 2, 3, ...), or model "
            "the item as continuous (leave it out of the ordinal items)"
        )


def check_variation(values: pd.DataFrame, ordinal: list[str], where: str, after_drop: bool) -> None:
    """Every item has two or more distinct answers."""
    problems = []
    for item in values:
        observed = values[item].dropna().unique()
        if len(observed) == 1:
            answer = shown_value(observed[0])
            problems.append(
                f"{item!r} (ordinal: only category {answer} observed; it needs at least two)"
                if item in ordinal
                else f"{item!r} (every answer is {answer})"
            )
    if problems:
        when = " after dropping the incomplete rows" if after_drop else ""
        raise DataError(
            f"{where}: item(s) without variation{when}: {summarised(problems)}; an item that never "
            "varies carries no information and makes the covariance matrix singular: drop it "
            "from the model"
        )


def check_singular(values: pd.DataFrame, items: list[str], where: str, dropped: int) -> None:
    """Refuse perfectly dependent continuous items (a copied column, a sum score of others).

    Their sample covariance has no Cholesky factor, which the normal likelihood needs.
    """
    if len(items) < 2:
        return
    y = values[items].to_numpy(dtype=float)
    z = (y - y.mean(axis=0)) / y.std(axis=0)
    corr = z.T @ z / len(z)
    eigval, eigvec = np.linalg.eigh(corr)
    if eigval[0] > 1e-10 * len(items):
        return
    after = " (after dropping the incomplete rows)" if dropped else ""
    pairs = [
        f"{items[a]!r} and {items[b]!r} (r = {corr[a, b]:+.3f})"
        for a in range(len(items))
        for b in range(a + 1, len(items))
        if abs(corr[a, b]) > 1 - 1e-9
    ]
    if pairs:
        raise DataError(
            f"{where}: items are perfectly correlated{after}: {summarised(pairs)}; one is a copy "
            "(or a reversed copy) of the other: drop one of each pair from the model"
        )
    involved = [items[k] for k in np.flatnonzero(np.abs(eigvec[:, 0]) > 1e-3)]
    raise DataError(
        f"{where}: the items {quoted(involved)} are linearly dependent{after} (one is an exact "
        "combination of the others, e.g. a sum or mean score); drop the derived item from the "
        "model"
    )


def _whole(column: pd.Series) -> pd.Series:
    return (column - column.round()).abs() <= 1e-9


def group_labels(frame: pd.DataFrame, column: str, where: str, rows: Callable) -> pd.Series:
    """The group column as text labels (``--group``); every row must name its group."""
    if column not in frame.columns:
        available = [str(c) for c in frame.columns]
        close = difflib.get_close_matches(column, available, n=1, cutoff=0.6)
        guess = f" (did you mean {close[0]!r}?)" if close else ""
        raise DataError(
            f"{where} has no column {column!r}{guess} to split the respondents into groups; "
            f"give the name of the group column (--group or the header's 'group'); the "
            f"columns are {quoted(available[:SHOW_AVAILABLE])}"
        )
    labels = frame[column].astype("string").str.strip()
    empty = labels.isna() | (labels == "")
    if empty.any():
        raise DataError(
            f"{where}: {int(empty.sum())} row(s) have no group in the column {column!r} "
            f"({', '.join(rows(frame.index[empty.to_numpy()][:SHOW_LINES]))}); fill in their "
            "group or remove the rows"
        )
    return labels.astype(str)


def check_groups(
    values: pd.DataFrame, labels: pd.Series, column: str, ordinal: list[str], where: str
) -> list[str]:
    """The groups (in order of first appearance) after the missing-data handling: two or
    more, each with enough respondents (items + 1), and every item answered and varying in
    each group."""
    levels = list(dict.fromkeys(labels))
    if len(levels) < 2:
        raise DataError(
            f"{where}: the group column {column!r} has one group only ({levels[0]!r}); a "
            "multiple-group model needs two or more: check the column, or fit without --group"
        )
    needed = values.shape[1] + 1
    counts = labels.value_counts()
    small = [f"{level!r}: {int(counts[level])}" for level in levels if counts[level] < needed]
    if small:
        raise DataError(
            f"{where}: group(s) with too few respondents ({', '.join(small)}); each group needs "
            f"at least {needed} (the model's {needed - 1} items + 1): merge small groups or "
            "collect more responses"
        )
    for level in levels:
        part = values[(labels == level).to_numpy()]
        check_present(part, f"{where}, group {level!r} of {column!r}")
        check_variation(part, ordinal, f"{where}, group {level!r} of {column!r}", after_drop=False)
    return levels
