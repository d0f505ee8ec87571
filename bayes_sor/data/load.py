"""Reading and checking survey data before any model sees it.

Every problem found here is one :class:`~bayes_sor.errors.DataError` whose message says what is
wrong, where (column names and the line numbers a spreadsheet user sees: the header is line 1,
so data row ``i`` is line ``i + 1``) and how to fix it. The messages are read by methodologists,
not programmers, so they name answers and lines rather than dtypes and indices.

A file is tokenised with :mod:`csv` rather than :func:`pandas.read_csv` because the checks need
exact line numbers (pandas silently skips blank lines and renames duplicated columns) and the raw
text of each bad answer.
"""

from __future__ import annotations

import csv
import difflib
import hashlib
import io
import re
import warnings
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

import numpy as np
import pandas as pd

from bayes_sor.errors import DataError

__all__ = ["Dataset", "Scale", "load_data", "parse_scale", "read_csv"]

MISSING_POLICIES = ("model", "refuse", "listwise")
DELIMITERS = (",", ";", "\t")
#: Cell texts read as a missing answer (besides an empty cell), as SPSS, R and Excel write them.
NA_TOKENS = frozenset({"na", "n/a", "nan", "-nan", "null", "none", "#n/a", "<na>"})
#: How many offending lines / columns a message shows before summarising the rest.
SHOW_LINES = 5
SHOW_COLUMNS = 8
SHOW_AVAILABLE = 20
SHOW_TEXT = 40
#: File signatures of formats people save instead of CSV, to name them in the message.
SIGNATURES = {
    b"PK\x03\x04": "an Excel workbook (.xlsx) or another zip archive",
    b"\xd0\xcf\x11\xe0": "an old Excel workbook (.xls)",
    b"$FL2": "an SPSS data file (.sav)",
    b"$FL3": "an SPSS data file (.zsav)",
    b"PAR1": "a Parquet file",
    b"\x1f\x8b": "a gzip-compressed file",
    b"%PDF": "a PDF document",
}
SAVE_AS_CSV = "save the data as 'CSV UTF-8 (comma delimited)' (Excel: File > Save As) and use that"


@dataclass(frozen=True)
class Scale:
    """A declared Likert range, e.g. ``Scale(1, 7)``: every answer must be a whole number in it."""

    low: int
    high: int

    def __post_init__(self) -> None:
        whole = all(
            isinstance(v, int | np.integer) and not isinstance(v, bool)
            for v in (self.low, self.high)
        )
        if not whole:
            raise DataError(
                f"scale {self.low!r}-{self.high!r}: the lowest and highest answers must be "
                "whole numbers; declare it as e.g. --scale 1-7"
            )
        if self.low >= self.high:
            raise DataError(
                f"scale {self.low}-{self.high}: the lowest answer must be below the highest; "
                "declare it as e.g. --scale 1-7"
            )

    def __str__(self) -> str:
        return f"{self.low}-{self.high}"


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


def parse_scale(text: str | None) -> Scale | None:
    """``"1-7"``, ``"1..7"`` or ``"1,7"`` -> ``Scale(1, 7)``; ``None``, blank, ``"none"`` or
    ``"continuous"`` (the user's explicit "no Likert range") -> ``None``."""
    if text is None or str(text).strip().lower() in ("", "none", "continuous"):
        return None
    # The en dash is what word processors turn a typed "1-7" into.
    match = re.fullmatch(r"\s*([+-]?\d+)\s*(?:\.\.|-|–|,)\s*([+-]?\d+)\s*", str(text))
    if match is None:
        raise DataError(
            f"cannot read the scale {text!r}; give the lowest and highest answer as whole "
            "numbers, e.g. --scale 1-7 (or 1..7)"
        )
    return Scale(int(match.group(1)), int(match.group(2)))


# ---- reading a file ------------------------------------------------------------------------
def read_csv(path: str | Path, what: str = "data file") -> pd.DataFrame:
    """Read a survey CSV: encoding and delimiter detected, every problem a :class:`DataError`.

    Fully numeric columns are float; other columns hold floats where a cell is a number and the
    cell's text where it is not, so :func:`load_data` can quote the bad answers. Empty cells and
    ``NA``-like texts are missing. The index is the data row number from 0 (line = index + 2);
    blank lines are skipped but still counted, so line numbers match the file. ``what`` names
    the file in messages (e.g. "covariance file").
    """
    return read_csv_bytes(path, what)[0]


def read_csv_bytes(path: str | Path, what: str = "data file") -> tuple[pd.DataFrame, bytes]:
    """:func:`read_csv`, plus the file's bytes (to hash them: which data a run saw)."""
    path = Path(path).expanduser()
    where = f"{what} '{path}'"
    raw = _read_bytes(path, where, what)
    text, encoding = _decode(raw, where)
    if not text.strip():
        raise _empty(where, what)
    delimiter = _sniff(text)
    records = _records(text, delimiter, where)
    first = next((i for i, r in enumerate(records) if r), None)
    if first is None:  # unreachable after the check above; keeps `first` an int
        raise _empty(where, what)
    header = _column_names(records[first], where)
    rows, lines = _data_rows(records, first, len(header), delimiter, where)
    if not rows:
        rows_wanted = "the answers too, one row a respondent" if what == "data file" else "its rows"
        raise DataError(f"{where} has a header but no data rows; export {rows_wanted}")
    decimal_comma = delimiter == ";"
    columns = zip(*rows, strict=True)
    frame = pd.DataFrame(
        {name: _from_text(col, decimal_comma) for name, col in zip(header, columns, strict=True)}
    )
    frame.index = pd.Index([line - 2 for line in lines])
    frame.attrs.update(encoding=encoding, delimiter=delimiter)
    return frame, raw


def _empty(where: str, what: str) -> DataError:
    content = "the survey answers (one row a respondent)" if what == "data file" else "the table"
    return DataError(f"{where} is empty; export {content} to it")


def _read_bytes(path: Path, where: str, what: str) -> bytes:
    if path.is_dir():
        raise DataError(f"{where} is a folder, not a file; give the path of the CSV file in it")
    if not path.exists():
        raise DataError(f"{where} does not exist; {_nearby_files(path)}")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(
            f"{where} cannot be read ({exc.strerror or exc}); check its permissions, or close "
            "the program that has it open"
        ) from exc
    if raw[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise DataError(
            f"{where} is UTF-16 text (Excel's 'Unicode Text'), which bayes_sor does not read; "
            f"{SAVE_AS_CSV}"
        )
    if b"\x00" in raw:
        kind = next((name for sig, name in SIGNATURES.items() if raw.startswith(sig)), None)
        what = kind or "a binary file (it contains NUL bytes)"
        raise DataError(f"{where} is {what}, not a CSV text file; {SAVE_AS_CSV}")
    if not raw.strip():
        raise _empty(where, what)
    return raw


def _nearby_files(path: Path) -> str:
    folder = path.parent
    if not folder.is_dir():
        return f"the folder '{folder}' does not exist either: check the path"
    names = sorted(p.name for p in folder.iterdir() if p.is_file())
    close = difflib.get_close_matches(path.name, names, n=3, cutoff=0.6)
    if close:
        return f"did you mean {_quoted(close, 'or')} (in '{folder.resolve()}')?"
    if path.is_absolute():
        return "check the path"
    return f"check the path (it is relative to the folder '{Path.cwd()}')"


def _decode(raw: bytes, where: str) -> tuple[str, str]:
    # Excel writes a BOM with "CSV UTF-8"; a file that is not UTF-8 is almost always from a
    # Windows program, hence cp1252 (a superset of Latin-1 for printable text) before Latin-1.
    bom = raw.startswith(b"\xef\xbb\xbf")
    body = raw[3:] if bom else raw
    for encoding in ("utf-8", "cp1252", "latin-1"):
        try:
            return body.decode(encoding), encoding + ("-sig" if bom else "")
        except UnicodeDecodeError:
            continue
    raise DataError(f"{where}: cannot decode the text; {SAVE_AS_CSV}")  # pragma: no cover


def _sniff(text: str) -> str:
    """The delimiter that splits the header into most columns and the rows consistently."""
    best, best_score = ",", (False, -1.0, 0)
    for delimiter in DELIMITERS:
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
        try:
            sample = [r for r in islice(reader, 50) if r]
        except csv.Error:
            continue
        if not sample:
            continue
        n = len(sample[0])
        consistent = sum(len(r) == n for r in sample) / len(sample)
        score = (n > 1, consistent, n)
        if score > best_score:
            best, best_score = delimiter, score
    return best


def _records(text: str, delimiter: str, where: str) -> list[list[str]]:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        return list(reader)
    except csv.Error as exc:
        raise DataError(
            f"{where}, near line {reader.line_num}: the CSV is malformed ({exc}); open it in a "
            f"spreadsheet program and {SAVE_AS_CSV}"
        ) from exc


def _column_names(record: list[str], where: str) -> list[str]:
    names = [name.strip() for name in record]
    names = [name or f"Unnamed: {k}" for k, name in enumerate(names)]
    positions: dict[str, list[int]] = {}
    for k, name in enumerate(names):
        positions.setdefault(name, []).append(k)
    duplicated = {name: ks for name, ks in positions.items() if len(ks) > 1}
    if duplicated:
        shown = "; ".join(
            f"{name!r} in columns {', '.join(_column_label(k) for k in ks)}"
            for name, ks in duplicated.items()
        )
        raise DataError(
            f"{where}: the header repeats column names ({shown}); give every column a unique "
            "name, so it is clear which one the model uses"
        )
    return names


def _column_label(k: int) -> str:
    """Column position as a spreadsheet shows it: 3 (C)."""
    letters, n = "", k + 1
    while n:
        n, rest = divmod(n - 1, 26)
        letters = chr(ord("A") + rest) + letters
    return f"{k + 1} ({letters})"


def _data_rows(
    records: list[list[str]], first: int, width: int, delimiter: str, where: str
) -> tuple[list[list[str]], list[int]]:
    """Data records padded to the header's width, with their line numbers (header = line 1)."""
    rows, lines, too_long = [], [], []
    for position in range(first + 1, len(records)):
        record = records[position]
        if not record:  # a blank line: no respondent, but it still counts for line numbers
            continue
        if len(record) > width:
            if any(cell.strip() for cell in record[width:]):
                too_long.append((position + 1, len(record)))
                continue
            record = record[:width]  # trailing separators some exporters add: harmless
        rows.append(record + [""] * (width - len(record)))
        lines.append(position + 1)
    if too_long:
        shown = ", ".join(f"line {line} has {n} values" for line, n in too_long[:SHOW_LINES])
        more = f" and {len(too_long) - SHOW_LINES} more lines" if len(too_long) > SHOW_LINES else ""
        sep = {",": "','", ";": "';'", "\t": "tab"}[delimiter]
        raise DataError(
            f"{where}: some rows have more values than the header has columns ({width}): "
            f"{shown}{more}; a value probably contains the separator {sep} (a decimal comma, "
            "or text with commas): put such values in double quotes or remove the extra "
            "separators"
        )
    return rows, lines


def _from_text(values: Iterable[str], decimal_comma: bool) -> pd.Series:
    """Column of cell texts -> float column, or floats mixed with the texts that are not numbers."""
    cells = pd.Series(list(values), dtype=object)
    stripped = cells.str.strip()
    blank = (stripped == "") | stripped.str.lower().isin(NA_TOKENS)
    cells = cells.mask(blank, None)
    numbers, bad = _coerce(cells, decimal_comma)
    if not bad.any():
        return numbers
    return cells.where(bad, numbers).astype(object)


def _coerce(column: pd.Series, decimal_comma: bool = False) -> tuple[pd.Series, np.ndarray]:
    """Float version of ``column`` and a mask of the cells that are present but not numbers."""
    if pd.api.types.is_numeric_dtype(column.dtype):  # bool included: 0/1 answers
        return column.astype(float), np.zeros(len(column), dtype=bool)
    values = column.astype(object)
    absent = values.isna()
    text = values.where(absent, values.astype(str)).astype(object)
    text = text.where(absent, text.str.strip())
    if decimal_comma:
        text = text.where(absent, text.str.replace(",", ".", regex=False))
    numbers = pd.to_numeric(text.where(~absent, np.nan), errors="coerce").astype(float)
    # A string "nan" converts to NaN yet is an answer somebody typed, hence "not absent".
    return numbers, (~absent & numbers.isna()).to_numpy()


# ---- checking the data against the model ---------------------------------------------------
def load_data(
    source: str | Path | pd.DataFrame,
    items: list[str],
    scale: Scale | None = None,
    missing: str = "model",
    ordinal: list[str] | None = None,
    observed: Sequence[str] = (),
    latents: Sequence[str] = (),
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
    data is most often a misspelt latent, and is reported as one.
    """
    policy = str(missing).strip().lower()
    if policy not in MISSING_POLICIES:
        raise DataError(
            f"unknown missing-data handling {missing!r}; use one of {_quoted(MISSING_POLICIES)}"
        )
    items = list(dict.fromkeys(items))
    if not items:
        raise DataError("the model names no observed items; list the survey items with '=~'")
    if scale is not None and not isinstance(scale, Scale):
        scale = parse_scale(str(scale))

    if isinstance(source, pd.DataFrame):
        frame, where, in_file = source, "the data frame", False
        sha = hashlib.sha256(frame.to_csv(lineterminator="\n").encode("utf-8")).hexdigest()
        name = "<DataFrame>"
        _check_unique_columns(frame, where)
    elif isinstance(source, str | Path):
        frame, raw = read_csv_bytes(source)
        where, in_file = f"data file '{Path(source).expanduser()}'", True
        sha, name = hashlib.sha256(raw).hexdigest(), str(source)
    else:
        raise DataError(
            f"cannot read data from a {type(source).__name__}; give the path of a CSV file "
            "or a pandas DataFrame"
        )
    ordinal = _resolve_ordinal(ordinal, items)
    _check_regression_names(frame, list(observed), list(latents), where)
    _check_columns(frame, items, where)
    if frame.empty:
        raise DataError(f"{where} has no rows of data; give the data with one row a respondent")

    def rows(labels: Iterable[Hashable]) -> list[str]:
        # File rows by the line a spreadsheet shows; DataFrame rows by their index label.
        return [f"line {label + 2}" if in_file else f"row {label!r}" for label in labels]

    values = _numeric(frame, items, where, rows, in_file)
    _check_finite(values, where, rows)
    _check_present(values, where)
    if scale is not None:
        _check_scale(values, scale, where, rows)
    _check_ordinal_whole(values, ordinal, where, rows)
    _check_variation(values, ordinal, where, after_drop=False)

    counts = {item: int(values[item].isna().sum()) for item in items}
    incomplete = values.isna().any(axis=1).to_numpy()
    if incomplete.any() and policy == "refuse":
        per_item = ", ".join(f"{item!r} ({n} missing)" for item, n in counts.items() if n)
        lines = _listed(values.index[incomplete], in_file)
        raise DataError(
            f"{where} has missing answers in {per_item}; incomplete rows: "
            f"{int(incomplete.sum())} of {len(values)} ({lines})"
            "; use --missing model to model them (every respondent kept) or --missing listwise "
            "to drop incomplete rows, or fill in the answers"
        )
    dropped = values.isna().all(axis=1).to_numpy() if policy == "model" else incomplete
    if policy == "model" and dropped.any():
        warnings.warn(
            f"{where}: {int(dropped.sum())} respondent(s) answered none of the model's items "
            f"({_listed(values.index[dropped], in_file)}); they carry no information and are "
            "left out", stacklevel=2)
    kept = values[~dropped]
    n_dropped = int(dropped.sum())
    needed = len(items) + 1
    if len(kept) < needed:
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
    if n_dropped:
        _check_variation(kept, ordinal, where, after_drop=True)
    complete = kept.dropna()
    continuous = [i for i in items if i not in ordinal]
    # Under the missing-data model only the complete rows can show an exact dependence; too
    # few of them, or one that leaves an item constant, are singular for other reasons.
    if len(complete) > len(continuous) and (complete[continuous].nunique() > 1).all():
        _check_singular(complete, continuous, where, dropped=n_dropped)
    return Dataset(
        frame=kept.copy(), items=items, n_dropped=n_dropped, missing=counts, sha256=sha,
        source=name, policy=policy,
    )


def _resolve_ordinal(ordinal: list[str] | str | None, items: list[str]) -> list[str]:
    if not ordinal:
        return []
    if isinstance(ordinal, str):
        ordinal = items if ordinal == "all" else [s.strip() for s in ordinal.split(",")]
    unknown = [name for name in ordinal if name not in items]
    if unknown:
        raise DataError(
            f"ordinal item(s) {_quoted(unknown)} are not items of the model; the items are "
            f"{_quoted(items)}"
        )
    return list(dict.fromkeys(ordinal))


def _check_unique_columns(frame: pd.DataFrame, where: str) -> None:
    duplicated = list(dict.fromkeys(frame.columns[frame.columns.duplicated()]))
    if duplicated:
        raise DataError(
            f"{where} has repeated column names {_quoted(duplicated)}; give every column a "
            "unique name, so it is clear which one the model uses"
        )


def _check_regression_names(frame: pd.DataFrame, observed: list[str], latents: list[str],
                            where: str) -> None:
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


def _check_columns(frame: pd.DataFrame, items: list[str], where: str) -> None:
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
        guess = f" (did you mean {_quoted(close[:3], 'or')}?)" if close else ""
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


def _numeric(
    frame: pd.DataFrame, items: list[str], where: str, rows: Callable, in_file: bool
) -> pd.DataFrame:
    columns, problems, hints = {}, [], set()
    for item in items:
        numbers, bad = _coerce(frame[item])
        columns[item] = numbers
        if bad.any():
            offending = frame[item][bad]
            problem = _column_problem(item, rows(offending.index), offending.tolist())
            texts = [str(v) for v in offending]
            distinct = list(dict.fromkeys(texts))
            if len(texts) > SHOW_LINES and len(distinct) < len(texts):
                # A column of answer labels ("agree", ...): list what there is to recode.
                n_more = len(distinct) - SHOW_LINES
                more = f" and {n_more} more" if n_more > 0 else ""
                problem += f" with the texts {_quoted(distinct[:SHOW_LINES])}{more}"
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
            f"{where} has answers that are not numbers: {_summary(problems)}; recode them "
            f"to numbers ({empty}){''.join(sorted(hints))}"
        )
    return pd.DataFrame(columns, index=frame.index)


def _check_finite(values: pd.DataFrame, where: str, rows: Callable) -> None:
    problems = []
    for item in values:
        bad = np.isinf(values[item].to_numpy())
        if bad.any():
            problems.append(_column_problem(item, rows(values.index[bad]), values[item][bad]))
    if problems:
        raise DataError(
            f"{where} has infinite values: {_summary(problems)}; replace them with the "
            "actual answers (or empty cells if the answer is missing)"
        )


def _check_present(values: pd.DataFrame, where: str) -> None:
    empty = [item for item in values if values[item].isna().all()]
    if empty:
        raise DataError(
            f"{where}: the item(s) {_quoted(empty)} have no answers at all (every cell is "
            "empty); check that the right column was exported, or drop the item from the model"
        )


def _check_scale(values: pd.DataFrame, scale: Scale, where: str, rows: Callable) -> None:
    problems = []
    for item in values:
        column = values[item]
        bad = (
            column.notna() & ((column < scale.low) | (column > scale.high) | ~_whole(column))
        ).to_numpy()
        if bad.any():
            problems.append(_column_problem(item, rows(values.index[bad]), column[bad]))
    if problems:
        raise DataError(
            f"{where} has answers outside the declared scale {scale} or not whole numbers: "
            f"{_summary(problems)}; check the declared scale (--scale {scale}), and recode "
            "missing-value codes such as -99 or 99 to empty cells"
        )


def _check_ordinal_whole(
    values: pd.DataFrame, ordinal: list[str], where: str, rows: Callable
) -> None:
    problems = []
    for item in ordinal:
        column = values[item]
        bad = (column.notna() & ~_whole(column)).to_numpy()
        if bad.any():
            problems.append(_column_problem(item, rows(values.index[bad]), column[bad]))
    if problems:
        raise DataError(
            f"{where}: ordinal items must be whole-number categories, but some answers are "
            f"not: {_summary(problems)}; recode them to categories (1, 2, 3, ...), or model "
            "the item as continuous (leave it out of the ordinal items)"
        )


def _check_variation(
    values: pd.DataFrame, ordinal: list[str], where: str, after_drop: bool
) -> None:
    problems = []
    for item in values:
        observed = values[item].dropna().unique()
        if len(observed) == 1:
            answer = _number(observed[0])
            problems.append(
                f"{item!r} (ordinal: only category {answer} observed; it needs at least two)"
                if item in ordinal
                else f"{item!r} (every answer is {answer})"
            )
    if problems:
        when = " after dropping the incomplete rows" if after_drop else ""
        raise DataError(
            f"{where}: item(s) without variation{when}: {_summary(problems)}; an item that never "
            "varies carries no information and makes the covariance matrix singular: drop it "
            "from the model"
        )


def _check_singular(values: pd.DataFrame, items: list[str], where: str, dropped: int) -> None:
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
            f"{where}: items are perfectly correlated{after}: {_summary(pairs)}; one is a copy "
            "(or a reversed copy) of the other: drop one of each pair from the model"
        )
    involved = [items[k] for k in np.flatnonzero(np.abs(eigvec[:, 0]) > 1e-3)]
    raise DataError(
        f"{where}: the items {_quoted(involved)} are linearly dependent{after} (one is an exact "
        "combination of the others, e.g. a sum or mean score); drop the derived item from the "
        "model"
    )


# ---- message helpers -----------------------------------------------------------------------
def _whole(column: pd.Series) -> pd.Series:
    return (column - column.round()).abs() <= 1e-9


def _number(value: object) -> str:
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    if isinstance(value, str):
        # An unclosed quote swallows the rest of the file into one cell; show its start only.
        return repr(value if len(value) <= SHOW_TEXT else value[:SHOW_TEXT] + "...")
    return str(value)


def _column_problem(item: str, where: list[str], values: Iterable[object]) -> str:
    values = list(values)
    shown = ", ".join(
        f"{w}: {_number(v)}" for w, v in zip(where[:SHOW_LINES], values, strict=False)
    )
    more = f", and {len(where) - SHOW_LINES} more" if len(where) > SHOW_LINES else ""
    return f"column {item!r} ({shown}{more})"


def _summary(problems: list[str]) -> str:
    shown = "; ".join(problems[:SHOW_COLUMNS])
    more = len(problems) - SHOW_COLUMNS
    return shown + (f"; and {more} more" if more > 0 else "")


def _listed(labels: Iterable[Hashable], in_file: bool) -> str:
    """'lines 4, 9 and 3 more' (a file) or 'rows 'a', 'b'' (a DataFrame's index labels)."""
    labels = list(labels)
    shown = [str(label + 2) if in_file else repr(label) for label in labels[:SHOW_LINES]]
    noun = ("line" if in_file else "row") + ("s" if len(labels) > 1 else "")
    more = len(labels) - SHOW_LINES
    return f"{noun} {', '.join(shown)}" + (f" and {more} more" if more > 0 else "")


def _quoted(names: Iterable[object], last: str = "and") -> str:
    names = [repr(str(n)) for n in names]
    if len(names) <= 1:
        return "".join(names)
    return f"{', '.join(names[:-1])} {last} {names[-1]}"
