"""Tests for bayes_sor.data.load: every bad input is one DataError naming where and the fix."""

from __future__ import annotations

import hashlib
import re

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bayes_sor.data.csv_reader import read_csv
from bayes_sor.data.load import Dataset, load_data
from bayes_sor.data.scale import Scale, parse_scale
from bayes_sor.errors import BayesSORError, DataError

ITEMS = ["q1", "q2", "q3"]
HEADER = ["q1", "q2", "q3", "group"]
# Eight respondents on a 1-7 scale; the items are neither constant nor collinear.
ROWS = [
    ["1", "2", "3", "a"],
    ["2", "2", "4", "b"],
    ["3", "1", "4", "a"],
    ["4", "3", "5", "b"],
    ["5", "5", "2", "a"],
    ["2", "4", "1", "b"],
    ["6", "6", "7", "a"],
    ["7", "5", "6", "b"],
]


def csv_bytes(
    rows: list[list[str]] | None = None,
    header: list[str] | None = None,
    sep: str = ",",
    encoding: str = "utf-8",
) -> bytes:
    rows = ROWS if rows is None else rows
    header = HEADER if header is None else header
    lines = [sep.join(header)] + [sep.join(r) for r in rows]
    return ("\n".join(lines) + "\n").encode(encoding)


def edited(**cells: str) -> bytes:
    """The base file with cells replaced: ``q2_3="agree"`` sets q2 in data row 3 (line 4)."""
    rows = [list(r) for r in ROWS]
    for key, value in cells.items():
        column, row = key.rsplit("_", 1)
        rows[int(row)][HEADER.index(column)] = value
    return csv_bytes(rows)


def base_frame() -> pd.DataFrame:
    frame = pd.DataFrame([r[:3] for r in ROWS], columns=ITEMS).astype(float)
    frame.index = [f"r{k}" for k in range(len(frame))]
    return frame


def frame_with(**cells: object) -> pd.DataFrame:
    frame = base_frame().astype(object)
    for key, value in cells.items():
        column, row = key.rsplit("_", 1)
        frame.loc[f"r{row}", column] = value
    return frame


# ---- the table of bad inputs ---------------------------------------------------------------
# (content, items, load_data keyword arguments, regex the message must match). Content is the
# file's bytes, None (no file), "dir" (a folder), or a DataFrame.
BAD = {
    "missing file": (None, ITEMS, {}, r"data\.csv' does not exist; check the path$"),
    "directory": ("dir", ITEMS, {}, r"is a folder, not a file; give the path of the CSV"),
    "empty file": (b"", ITEMS, {}, r"data\.csv' is empty; export the survey answers"),
    "whitespace only": (b" \n\n\t \r\n", ITEMS, {}, r"is empty; export"),
    "BOM only": (b"\xef\xbb\xbf\n", ITEMS, {}, r"is empty; export"),
    "header only": (b"q1,q2,q3\n", ITEMS, {}, r"has a header but no data rows; export the answers"),
    "header and blank lines": (b"q1,q2,q3\n\n\n", ITEMS, {}, r"header but no data rows"),
    "binary NUL": (b"q1,q2\n1,\x002\n", ITEMS, {}, r"binary file \(it contains NUL.*CSV UTF-8"),
    "xlsx": (b"PK\x03\x04\x14\x00\x06\x00", ITEMS, {}, r"Excel workbook \(\.xlsx\).*Save As"),
    "utf-16": (csv_bytes(encoding="utf-16"), ITEMS, {}, r"UTF-16 text.*'CSV UTF-8"),
    "duplicate header": (
        csv_bytes(header=["q1", "q2", "q1", "group"]),
        ITEMS,
        {},
        r"repeats column names \('q1' in columns 1 \(A\), 3 \(C\)\); give every column a unique",
    ),
    "duplicate after strip": (
        csv_bytes(header=["q1", "q2", " q2 ", "q3"]),
        ITEMS,
        {},
        r"'q2' in columns 2 \(B\), 3 \(C\)",
    ),
    "row too long": (
        csv_bytes([*ROWS[:3], ["4", "3", "5", "b", "9"], *ROWS[4:]]),
        ITEMS,
        {},
        r"columns \(4\): line 5 has 5 values; .*separator ','.*double quotes",
    ),
    "unknown column with case hint": (
        csv_bytes(),
        ["Q1", "q2", "q3"],
        {},
        r"no column for the model's item\(s\) 'Q1' \(did you mean 'q1'\?\); rename.*"
        r"columns are: q1, q2, q3, group$",
    ),
    "unknown columns, typo and none": (
        csv_bytes(),
        ["q1", "qq2", "zzz"],
        {},
        r"no columns .* 'qq2' \(did you mean 'q2'\?\), 'zzz'; rename",
    ),
    "unknown column, many available": (
        csv_bytes([[str(k % 7 + 1) for k in range(30)]], header=[f"v{k}" for k in range(30)]),
        ["nothing_like_it"],
        {},
        r"'nothing_like_it'; rename.*v0, v1, .*v19 \.\.\. and 10 more$",
    ),
    "text answer": (
        edited(q2_3="agree"),
        ITEMS,
        {},
        r"not numbers: column 'q2' \(line 5: 'agree'\); recode them to numbers",
    ),
    "number with letters": (
        edited(q1_0="3a", q1_6="x", q3_7="4 "),
        ITEMS,
        {},
        r"column 'q1' \(line 2: '3a', line 8: 'x'\); recode",
    ),
    "decimal comma in a comma file": (
        edited(q3_1='"3,5"'),
        ITEMS,
        {},
        r"column 'q3' \(line 3: '3,5'\).*decimal comma.*';'-separated",
    ),
    "unclosed quote": (
        edited(q1_6='"6'),
        ITEMS,
        {},
        r"column 'q1' \(line 8: .*unclosed double quote",
    ),
    "empty string in a DataFrame": (
        frame_with(q2_2=""),
        ITEMS,
        {},
        r"the data frame has answers that are not numbers: column 'q2' \(row 'r2': ''\).*NaN",
    ),
    "infinite value": (
        edited(q1_2="inf", q3_5="-Infinity"),
        ITEMS,
        {},
        r"infinite values: column 'q1' \(line 4: inf\); column 'q3' \(line 7: -inf\); replace",
    ),
    "above the scale": (
        edited(q2_1="8"),
        ITEMS,
        {"scale": Scale(1, 7)},
        r"outside the declared scale 1-7 .*column 'q2' \(line 3: 8\); check .*--scale 1-7",
    ),
    "missing-value code": (
        edited(q3_4="-99", q3_5="99"),
        ITEMS,
        {"scale": Scale(1, 7)},
        r"column 'q3' \(line 6: -99, line 7: 99\).*-99",
    ),
    "not a whole number on a scale": (
        edited(q1_0="2.5"),
        ITEMS,
        {"scale": Scale(1, 7)},
        r"not whole numbers: column 'q1' \(line 2: 2\.5\); check the declared scale",
    ),
    "constant item": (
        edited(**{f"q2_{k}": "3" for k in range(8)}),
        ITEMS,
        {},
        r"without variation: 'q2' \(every answer is 3\); .*singular: drop it from the model",
    ),
    "no answers at all": (
        edited(**{f"q3_{k}": "" for k in range(8)}),
        ITEMS,
        {"missing": "listwise"},
        r"'q3' have no answers at all .* drop the item from the model",
    ),
    "ordinal with one category": (
        edited(**{f"q2_{k}": "4" for k in range(8)}),
        ITEMS,
        {"ordinal": ["q2"]},
        r"'q2' \(ordinal: only category 4 observed; it needs at least two\).*drop it",
    ),
    "ordinal not whole": (
        edited(q2_3="1.5"),
        ITEMS,
        {"ordinal": ["q1", "q2"]},
        r"ordinal items must be whole-number .*column 'q2' \(line 5: 1\.5\); recode",
    ),
    "ordinal not an item": (csv_bytes(), ITEMS, {"ordinal": ["q9"]}, r"'q9' are not items"),
    "missing answers refused": (
        edited(q1_2="", q3_2="NA", q3_6="N/A"),
        ITEMS,
        {"missing": "refuse"},
        r"missing answers in 'q1' \(1 missing\), 'q3' \(2 missing\); incomplete rows: 2 of 8 "
        r"\(lines 4, 8\); use --missing model .* or --missing listwise",
    ),
    "too few rows after listwise": (
        edited(**{f"q1_{k}": "" for k in range(5)}),
        ITEMS,
        {"missing": "listwise"},
        r"after dropping the 5 incomplete rows only 3 complete rows remain, fewer than the 4 "
        r"needed .* 3 items .*'q1': 5 missing",
    ),
    "too few rows": (csv_bytes(ROWS[:3]), ITEMS, {}, r"only 3 rows, fewer than the 4 needed"),
    "constant after listwise": (
        edited(q1_0="", q1_1="", **{f"q2_{k}": "5" for k in range(2, 8)}),
        ["q1", "q2"],
        {"missing": "listwise"},
        r"without variation after dropping the incomplete rows: 'q2' \(every answer is 5\)",
    ),
    "answer labels instead of numbers": (
        edited(**{f"q3_{k}": ["agree", "disagree", "neutral"][k % 3] for k in range(8)}),
        ITEMS,
        {},
        r"column 'q3' \(line 2: 'agree', .* and 3 more\) with the texts 'agree', 'disagree' "
        r"and 'neutral'; recode them to numbers",
    ),
    "unknown missing policy": (
        csv_bytes(),
        ITEMS,
        {"missing": "pairwise"},
        r"unknown missing-data handling 'pairwise'; use one of 'model', 'refuse' and 'listwise'",
    ),
    "copied column": (
        csv_bytes([[*r[:3], r[0]] for r in ROWS], header=["q1", "q2", "q3", "q1copy"]),
        ["q1", "q2", "q3", "q1copy"],
        {},
        r"perfectly correlated: 'q1' and 'q1copy' \(r = \+1\.000\).*drop one",
    ),
    "sum score": (
        csv_bytes(
            [[*r[:3], str(sum(map(int, r[:3])))] for r in ROWS],
            header=["q1", "q2", "q3", "total"],
        ),
        ["q1", "q2", "q3", "total"],
        {},
        r"'q1', 'q2', 'q3' and 'total' are linearly dependent.*drop the derived item",
    ),
    "duplicate DataFrame columns": (
        pd.concat([base_frame(), base_frame()[["q1"]]], axis=1),
        ITEMS,
        {},
        r"the data frame has repeated column names 'q1'; give every column a unique name",
    ),
    "DataFrame without rows": (base_frame().iloc[:0], ITEMS, {}, r"has no rows of data"),
    "no items": (csv_bytes(), [], {}, r"names no observed items"),
    "scale reversed": (csv_bytes(), ITEMS, {"scale": "7-1"}, r"lowest answer must be below"),
}


def _source(content: object, tmp_path) -> object:
    if isinstance(content, pd.DataFrame):
        return content
    path = tmp_path / "data.csv"
    if content == "dir":
        path.mkdir()
    elif content is not None:
        path.write_bytes(content)
    return path


@pytest.mark.parametrize(("content", "items", "kwargs", "pattern"), BAD.values(), ids=BAD.keys())
def test_bad_input_is_one_data_error(tmp_path, content, items, kwargs, pattern):
    with pytest.raises(DataError) as info:
        load_data(_source(content, tmp_path), items, **kwargs)
    message = str(info.value)
    assert re.search(pattern, message), message
    # One line for the CLI's stderr; the value reprs keep line breaks escaped.
    assert "\n" not in message


@pytest.mark.parametrize(("content", "items", "kwargs", "pattern"), BAD.values(), ids=BAD.keys())
def test_no_other_exception_escapes(tmp_path, content, items, kwargs, pattern):
    try:
        load_data(_source(content, tmp_path), items, **kwargs)
    except Exception as exc:
        assert type(exc) is DataError, f"{type(exc).__name__}: {exc}"
        assert isinstance(exc, BayesSORError)
    else:
        pytest.fail("no error raised")


def test_the_table_is_large_enough():
    assert len(BAD) >= 20


# ---- happy paths ---------------------------------------------------------------------------
def test_reads_the_items_only_as_float(tmp_path):
    path = tmp_path / "data.csv"
    path.write_bytes(csv_bytes())
    data = load_data(path, ITEMS, scale=Scale(1, 7))
    assert isinstance(data, Dataset)
    assert list(data.frame.columns) == ITEMS
    assert all(dtype == np.float64 for dtype in data.frame.dtypes)
    assert data.frame.to_numpy().tolist() == [[float(v) for v in r[:3]] for r in ROWS]
    assert data.n_dropped == 0
    assert data.missing == {"q1": 0, "q2": 0, "q3": 0}
    assert data.source == str(path)


def test_items_are_deduplicated_in_order(tmp_path):
    path = tmp_path / "data.csv"
    path.write_bytes(csv_bytes())
    data = load_data(path, ["q3", "q1", "q3"])
    assert data.items == ["q3", "q1"]
    assert list(data.frame.columns) == ["q3", "q1"]


def test_utf8_bom_is_stripped(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbf" + csv_bytes())
    frame = read_csv(path)
    assert list(frame.columns) == HEADER
    assert not any("\ufeff" in c for c in frame.columns)
    assert load_data(path, ITEMS).frame.shape == (8, 3)


def test_latin1_fallback(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes(csv_bytes(header=["qualité", "q2", "q3", "group"], encoding="latin-1"))
    frame = read_csv(path)
    assert frame.columns[0] == "qualité"
    data = load_data(path, ["qualité", "q2"])
    assert data.frame["qualité"].tolist() == [float(r[0]) for r in ROWS]


def test_semicolon_with_decimal_comma(tmp_path):
    rows = [[r[0] + ",5", r[1], r[2], r[3]] for r in ROWS]
    path = tmp_path / "european.csv"
    path.write_bytes(csv_bytes(rows, sep=";"))
    data = load_data(path, ITEMS)
    assert data.frame["q1"].tolist() == [int(r[0]) + 0.5 for r in ROWS]
    assert data.frame["q2"].tolist() == [float(r[1]) for r in ROWS]


def test_tab_separated_and_stripped_names(tmp_path):
    path = tmp_path / "tabs.tsv"
    path.write_bytes(csv_bytes(header=[" q1", "q2 ", "q3", "group"], sep="\t"))
    frame = read_csv(path)
    assert list(frame.columns) == HEADER
    assert frame.attrs["delimiter"] == "\t"


def test_listwise_drops_incomplete_rows_and_counts_them(tmp_path):
    path = tmp_path / "data.csv"
    path.write_bytes(edited(q1_1="", q3_1="", q2_4="NA", group_6=""))
    data = load_data(path, ITEMS, missing="listwise")
    assert data.n_dropped == 2
    assert data.missing == {"q1": 1, "q2": 1, "q3": 1}
    # The original index (data row number) survives: rows 1 and 4 are gone, the gap stays.
    assert data.frame.index.tolist() == [0, 2, 3, 5, 6, 7]
    # A missing control column is no reason to drop a row.
    assert 6 in data.frame.index


def test_blank_lines_keep_line_numbers(tmp_path):
    lines = csv_bytes().decode().splitlines()
    path = tmp_path / "data.csv"
    path.write_text("\n".join([*lines[:3], "", *lines[3:5], "x,2,3,a", *lines[5:]]) + "\n")
    frame = read_csv(path)
    assert frame.index.tolist() == [0, 1, 3, 4, 5, 6, 7, 8, 9]
    with pytest.raises(DataError, match=r"column 'q1' \(line 7: 'x'\)"):
        load_data(path, ITEMS)


def test_dataframe_index_is_preserved():
    frame = frame_with(q2_5=np.nan)
    frame["q2"] = frame["q2"].astype(float)
    data = load_data(frame, ITEMS, missing="listwise")
    assert data.frame.index.tolist() == ["r0", "r1", "r2", "r3", "r4", "r6", "r7"]
    assert data.source == "<DataFrame>"
    assert data.n_dropped == 1


def test_dataframe_numeric_strings_are_accepted():
    frame = base_frame().astype(str)
    data = load_data(frame, ITEMS)
    assert data.frame.to_numpy().tolist() == base_frame().to_numpy().tolist()


def test_file_hash_is_of_the_bytes_and_stable(tmp_path):
    content = csv_bytes()
    path = tmp_path / "data.csv"
    path.write_bytes(content)
    first = load_data(path, ITEMS).sha256
    assert first == hashlib.sha256(content).hexdigest()
    assert load_data(str(path), ["q1", "q2"]).sha256 == first
    path.write_bytes(edited(q1_0="2"))
    assert load_data(path, ITEMS).sha256 != first


def test_dataframe_hash_is_stable_and_sensitive():
    first = load_data(base_frame(), ITEMS).sha256
    assert load_data(base_frame(), ITEMS).sha256 == first
    assert re.fullmatch(r"[0-9a-f]{64}", first)
    changed = base_frame()
    changed.iloc[0, 0] = 2.0
    assert load_data(changed, ITEMS).sha256 != first


def test_trailing_separators_are_harmless(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text(csv_bytes().decode().replace("\n", ",,\n").replace("group,,", "group", 1))
    assert load_data(path, ITEMS).frame.shape == (8, 3)


def test_ordinal_items_pass_when_whole(tmp_path):
    path = tmp_path / "data.csv"
    path.write_bytes(csv_bytes())
    data = load_data(path, ITEMS, scale=Scale(1, 7), ordinal="all")
    assert data.frame.shape == (8, 3)


def test_text_columns_outside_the_model_are_ignored(tmp_path):
    path = tmp_path / "data.csv"
    path.write_bytes(edited(group_0='"no answer, really"'))
    assert "group" not in load_data(path, ITEMS).frame


# ---- scales --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1-7", Scale(1, 7)),
        ("1..7", Scale(1, 7)),
        ("1,7", Scale(1, 7)),
        (" 0 - 10 ", Scale(0, 10)),
        ("-3-3", Scale(-3, 3)),
        ("1–5", Scale(1, 5)),
        (None, None),
        ("", None),
        ("  ", None),
        ("none", None),
        ("Continuous", None),
    ],
)
def test_parse_scale(text, expected):
    assert parse_scale(text) == expected


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("7", r"cannot read the scale '7'.*--scale 1-7"),
        ("1-7-9", r"cannot read the scale"),
        ("one to seven", r"cannot read the scale"),
        ("1.5-7", r"cannot read the scale"),
        ("7-1", r"scale 7-1: the lowest answer must be below the highest"),
        ("3..3", r"must be below"),
    ],
)
def test_parse_scale_refuses(text, pattern):
    with pytest.raises(DataError, match=pattern):
        parse_scale(text)


def test_scale_must_be_whole_numbers():
    with pytest.raises(DataError, match="whole numbers"):
        Scale(1.5, 7)
    assert str(Scale(1, 5)) == "1-5"


# ---- robustness ----------------------------------------------------------------------------
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.lists(
            st.sampled_from(["1", "2", "7", "", "x", "3,5", '"', "inf", " ", "q1"]),
            min_size=0,
            max_size=5,
        ),
        max_size=6,
    ),
    st.sampled_from([",", ";", "\t"]),
)
def test_arbitrary_small_files_raise_only_data_errors(tmp_path_factory, rows, sep):
    path = tmp_path_factory.mktemp("fuzz") / "data.csv"
    path.write_text("\n".join(sep.join(r) for r in [["q1", "q2"], *rows]))
    try:
        data = load_data(path, ["q1", "q2"], missing="listwise", scale=Scale(1, 7))
    except DataError:
        return
    assert data.frame.notna().all().all()
    assert len(data.frame) >= 3


@pytest.mark.parametrize(
    ("observed", "pattern"),
    [
        (
            "AXX",
            r"'AXX' \(did you mean the latent 'AX'\?\) in a regression of the model is neither "
            r"a latent of the model \(AX, PU\) nor a column of the data frame",
        ),
        ("agee", r"'agee' \(did you mean the column 'age'\?\)"),
        ("zzz", r"'zzz' in a regression"),
    ],
)
def test_a_regression_name_neither_latent_nor_column_suggests_the_nearest_of_both(
    observed, pattern
):
    """``PU ~ AXX``: a misspelt latent, not a missing item column with items suggested."""
    frame = pd.DataFrame({"x1": [1.0, 2.0], "x2": [2.0, 1.0], "age": [30.0, 40.0]})
    with pytest.raises(DataError, match=pattern):
        load_data(frame, ["x1", "x2", observed], observed=[observed], latents=["AX", "PU"])


def test_groups_in_order_of_first_appearance_aligned_with_the_kept_rows():
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(rng.normal(size=(12, 3)), columns=["a", "b", "c"])
    frame["g"] = [" y", "x"] * 6  # labels are stripped
    frame.loc[2, "a"] = np.nan
    data = load_data(frame, ["a", "b", "c"], missing="listwise", group="g")
    assert data.group_levels == ["y", "x"]
    assert list(data.groups.index) == list(data.frame.index) and 2 not in data.groups.index
    assert list(data.groups[:3]) == ["y", "x", "x"]
    assert load_data(frame, ["a", "b", "c"]).groups is None


def test_a_repeated_index_keeps_each_row_its_group():
    """A frame from ``pd.concat`` repeats index labels: rows are then taken by position (the
    groups were once matched by label, one row per label pair)."""
    rng = np.random.default_rng(3)
    frame = pd.DataFrame(rng.normal(size=(12, 3)), columns=["a", "b", "c"])
    frame["g"] = ["y"] * 6 + ["x"] * 6
    frame.index = [0] * 12
    data = load_data(frame, ["a", "b", "c"], group="g")
    assert len(data.groups) == 12 and list(data.groups) == list(frame["g"])
    frame["a"] = frame["a"].astype(object)
    frame.iloc[4, 0] = "seven"
    with pytest.raises(DataError, match=r"rows by position: its index repeats.*row 4"):
        load_data(frame, ["a", "b", "c"], group="g")


def test_rows_without_a_group_are_refused():
    frame = pd.DataFrame(np.random.default_rng(2).normal(size=(8, 2)), columns=["a", "b"])
    frame["g"] = ["u", "v", "", "u", "v", "u", None, "v"]
    with pytest.raises(
        DataError, match=r"2 row\(s\) have no group in the column 'g' \(row 2, row 6\)"
    ):
        load_data(frame, ["a", "b"], group="g")
