"""Reading and checking survey data before any model sees it: :func:`load_data` reads the file
(:mod:`~bayes_sor.data.csv_reader`), checks the answers against the model's items
(:mod:`~bayes_sor.data.validate`) and applies the missing-data handling.

Every problem found here is one :class:`~bayes_sor.errors.DataError` whose message says what is
wrong, where (column names and the line numbers a spreadsheet user sees: the header is line 1,
so data row ``i`` is line ``i + 1``) and how to fix it. The messages are read by methodologists,
not programmers, so they name answers and lines rather than dtypes and indices.

A file is tokenised with :mod:`csv` rather than :func:`pandas.read_csv` because the checks need
exact line numbers (pandas silently skips blank lines and renames duplicated columns) and the raw
text of each bad answer.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from bayes_sor.data.controls import ControlCoding, code_controls, coded_names
from bayes_sor.data.csv_reader import read_csv_bytes
from bayes_sor.data.messages import listed_rows, quoted
from bayes_sor.data.scale import Scale, parse_scale
from bayes_sor.data.validate import (
    check_columns,
    check_finite,
    check_groups,
    check_ordinal_whole,
    check_present,
    check_regression_names,
    check_scale,
    check_singular,
    check_unique_columns,
    check_variation,
    group_labels,
    numeric_answers,
    resolve_ordinal,
)
from bayes_sor.errors import DataError

MISSING_POLICIES = ("model", "refuse", "listwise")


@dataclass
class Dataset:
    """Checked item data, ready for a model, plus what a run must record about them."""

    frame: pd.DataFrame
    """The item columns (float, in model order); rows kept after missing-data handling, with
    the original index (for a file: data row number from 0, so line = index + 2)."""
    items: list[str]
    n_dropped: int
    """Rows dropped: incomplete ones under listwise deletion, under the missing-data model the
    respondents who answered none of the items (they carry no information)."""
    missing: dict[str, int]
    """Missing answers per item in the data as read (before any rows were dropped)."""
    sha256: str
    """Hash of the file bytes (of the frame's CSV text for a DataFrame): which data a run saw."""
    source: str
    """The path as given, or ``"<DataFrame>"``."""
    policy: str = "refuse"
    """The missing-data handling that produced ``frame`` (:data:`MISSING_POLICIES`)."""
    groups: pd.Series | None = None
    """Each kept row's group label (a multiple-group model), else ``None``."""
    group_levels: list[str] | None = None
    """The groups in order of first appearance (lavaan's group order)."""
    controls: list[ControlCoding] = field(default_factory=list)
    """The control columns dummy-coded (:mod:`~bayes_sor.data.controls`); ``items`` and
    ``frame`` hold their dummies in their place."""


def load_data(
    source: str | Path | pd.DataFrame,
    items: list[str],
    scale: Scale | None = None,
    missing: str = "model",
    ordinal: list[str] | None = None,
    observed: Sequence[str] = (),
    latents: Sequence[str] = (),
    group: str | None = None,
    reference: Mapping[str, object] | None = None,
) -> Dataset:
    """Read (a path) or take (a DataFrame) the data and check the model's ``items`` in it.

    ``scale``: the declared answer range (answers outside it or not whole numbers are refused);
    ``None`` for continuous items. ``missing``: ``"model"`` (missing answers stay NaN and the
    likelihood uses the answered items only; respondents without any answer are dropped with a
    warning), ``"refuse"`` (incomplete rows are an error) or ``"listwise"`` (incomplete rows are
    dropped). ``ordinal``: items modelled as ordered
    categories (``"all"`` for every item), which must be whole numbers with two or more
    categories. Columns other than the items are left out of the result. ``observed``: the
    items that are observed variables of the structural model (named in a regression, not
    measured by ``=~``), and ``latents`` the model's constructs: such a name missing from the
    data is most often a misspelt latent, and is reported as one. ``group``: the column that
    splits the respondents into groups (a multiple-group model): every group needs enough
    respondents and every item answered and varying within it.
    data is most often a misspelt latent, and is reported as one. An observed variable whose
    column is text (or that ``reference`` names: ``{gender: male}``) is a control, dummy-coded
    (:func:`~bayes_sor.data.controls.code_controls`); the declared scale is the items', not the
    observed variables'.
    """
    policy = str(missing).strip().lower()
    if policy not in MISSING_POLICIES:
        raise DataError(
            f"unknown missing-data handling {missing!r}; use one of {quoted(MISSING_POLICIES)}"
        )
    items = list(dict.fromkeys(items))
    if not items:
        raise DataError("the model names no observed items; list the survey items with '=~'")
    if scale is not None and not isinstance(scale, Scale):
        scale = parse_scale(str(scale))
    answers = _Source.read(source)
    frame, controls = code_controls(
        answers.frame, list(observed), reference, answers.where, answers.in_file, policy
    )
    if controls:
        answers = replace(answers, frame=frame)
        items, observed = coded_names(items, controls), coded_names(observed, controls)
    ordinal = resolve_ordinal(ordinal, items)
    values = _checked_values(answers, items, scale, ordinal, list(observed), list(latents))
    counts = {item: int(values[item].isna().sum()) for item in items}
    dropped = _dropped_rows(values, answers, counts, policy)
    kept = values[~dropped]
    n_dropped = int(dropped.sum())
    _check_enough_rows(kept, items, counts, n_dropped, answers.where)
    _check_kept(kept, items, ordinal, n_dropped, answers.where)
    groups, levels = None, None
    if group is not None:
        labels = group_labels(answers.frame, group, answers.where, answers.rows)
        groups = labels.loc[kept.index]
        levels = check_groups(kept, groups, group, ordinal, answers.where)
    return Dataset(
        frame=kept.copy(),
        items=items,
        n_dropped=n_dropped,
        missing=counts,
        sha256=answers.sha,
        source=answers.name,
        policy=policy,
        groups=groups,
        group_levels=levels,
        controls=controls,
    )


@dataclass(frozen=True)
class _Source:
    """The data as read, and how messages name it and its rows."""

    frame: pd.DataFrame
    where: str
    in_file: bool
    sha: str
    name: str

    @classmethod
    def read(cls, source: str | Path | pd.DataFrame) -> _Source:
        if isinstance(source, pd.DataFrame):
            where = "the data frame"
            sha = hashlib.sha256(source.to_csv(lineterminator="\n").encode("utf-8")).hexdigest()
            check_unique_columns(source, where)
            if not source.index.is_unique:
                # rows are matched by their index label (groups, dropped rows) and named by it
                # in messages: a repeated label (say after pd.concat) names rows by position
                where = "the data frame (rows by position: its index repeats labels)"
                source = source.reset_index(drop=True)
            return cls(source, where, False, sha, "<DataFrame>")
        if isinstance(source, str | Path):
            frame, raw = read_csv_bytes(source)
            return cls(
                frame,
                f"data file '{Path(source).expanduser()}'",
                True,
                hashlib.sha256(raw).hexdigest(),
                str(source),
            )
        raise DataError(
            f"cannot read data from a {type(source).__name__}; give the path of a CSV file "
            "or a pandas DataFrame"
        )

    def rows(self, labels: Iterable[Hashable]) -> list[str]:
        # File rows by the line a spreadsheet shows; DataFrame rows by their index label.
        return [f"line {label + 2}" if self.in_file else f"row {label!r}" for label in labels]


def _checked_values(
    answers: _Source,
    items: list[str],
    scale: Scale | None,
    ordinal: list[str],
    observed: list[str],
    latents: list[str],
) -> pd.DataFrame:
    """The items' answers as numbers, each check of :mod:`bayes_sor.data.validate` passed."""
    frame, where, rows = answers.frame, answers.where, answers.rows
    check_regression_names(frame, observed, latents, where)
    check_columns(frame, items, where)
    if frame.empty:
        raise DataError(f"{where} has no rows of data; give the data with one row a respondent")
    values = numeric_answers(frame, items, where, rows, answers.in_file)
    check_finite(values, where, rows)
    check_present(values, where)
    if scale is not None:  # the Likert items', not the controls' (age, 0/1 dummies)
        check_scale(values.drop(columns=observed), scale, where, rows)
    check_ordinal_whole(values, ordinal, where, rows)
    check_variation(values, ordinal, where, after_drop=False)
    return values


def _dropped_rows(
    values: pd.DataFrame, answers: _Source, counts: dict[str, int], policy: str
) -> np.ndarray:
    """The rows the missing-data handling leaves out (``refuse``: an incomplete row is an
    error)."""
    where, in_file = answers.where, answers.in_file
    incomplete = values.isna().any(axis=1).to_numpy()
    if incomplete.any() and policy == "refuse":
        per_item = ", ".join(f"{item!r} ({n} missing)" for item, n in counts.items() if n)
        lines = listed_rows(values.index[incomplete], in_file)
        raise DataError(
            f"{where} has missing answers in {per_item}; incomplete rows: "
            f"{int(incomplete.sum())} of {len(values)} ({lines})"
            "; use --missing model to model them (every respondent kept) or --missing listwise "
            "to drop incomplete rows, or fill in the answers"
        )
    dropped = values.isna().all(axis=1).to_numpy() if policy == "model" else incomplete
    if policy == "model" and dropped.any():
        # stacklevel 3: the warning names the caller of load_data
        warnings.warn(
            f"{where}: {int(dropped.sum())} respondent(s) answered none of the model's items "
            f"({listed_rows(values.index[dropped], in_file)}); they carry no information and "
            "are left out",
            stacklevel=3,
        )
    return dropped


def _check_enough_rows(
    kept: pd.DataFrame, items: list[str], counts: dict[str, int], n_dropped: int, where: str
) -> None:
    needed = len(items) + 1
    if len(kept) >= needed:
        return
    have = (
        f"after dropping the {n_dropped} incomplete rows only {len(kept)} complete rows remain"
        if n_dropped
        else f"it has only {len(kept)} rows"
    )
    worst = sorted((n, item) for item, n in counts.items() if n)[::-1][:3]
    listed = ", ".join(f"{item!r}: {n} missing" for n, item in worst)
    hint = f" or drop items with many missing answers ({listed})" if worst else ""
    raise DataError(
        f"{where}: {have}, fewer than the {needed} needed to estimate a model of "
        f"{len(items)} items (items + 1); collect more responses{hint}"
    )


def _check_kept(
    kept: pd.DataFrame, items: list[str], ordinal: list[str], n_dropped: int, where: str
) -> None:
    """Variation and exact dependence of the rows that remain."""
    if n_dropped:
        check_variation(kept, ordinal, where, after_drop=True)
    complete = kept.dropna()
    continuous = [i for i in items if i not in ordinal]
    # Under the missing-data model only the complete rows can show an exact dependence; too
    # few of them, or one that leaves an item constant, are singular for other reasons.
    if len(complete) > len(continuous) and (complete[continuous].nunique() > 1).all():
        check_singular(complete, continuous, where, dropped=n_dropped)
