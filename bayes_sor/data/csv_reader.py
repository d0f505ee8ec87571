"""Survey CSV files -> a DataFrame: encoding and delimiter detected, rows checked against the
header, cells that are not numbers kept as text so that validation can quote them; every
problem one :class:`~bayes_sor.errors.DataError` naming the file, line and fix.
"""

from __future__ import annotations

import csv
import difflib
import io
from collections.abc import Iterable
from itertools import islice
from pathlib import Path

import numpy as np
import pandas as pd

from bayes_sor.data.messages import SHOW_LINES, quoted
from bayes_sor.errors import DataError

DELIMITERS = (",", ";", "\t")
#: Cell texts read as a missing answer (besides an empty cell), as SPSS, R and Excel write them.
NA_TOKENS = frozenset({"na", "n/a", "nan", "-nan", "null", "none", "#n/a", "<na>"})
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


def read_csv(path: str | Path, what: str = "data file") -> pd.DataFrame:
    """Read a survey CSV: encoding and delimiter detected, every problem a :class:`DataError`.

    Fully numeric columns are float; other columns hold floats where a cell is a number and the
    cell's text where it is not, so :func:`~bayes_sor.data.load.load_data` can quote the bad
    answers. Empty cells and ``NA``-like texts are missing. The index is the data row number
    from 0 (line = index + 2); blank lines are skipped but still counted, so line numbers match
    the file. ``what`` names the file in messages (e.g. "covariance file").
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
        return f"did you mean {quoted(close, 'or')} (in '{folder.resolve()}')?"
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
    numbers, bad = coerce(cells, decimal_comma)
    if not bad.any():
        return numbers
    return cells.where(bad, numbers).astype(object)


def coerce(column: pd.Series, decimal_comma: bool = False) -> tuple[pd.Series, np.ndarray]:
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
