"""Control variables: text columns dummy-coded against a reference level, numbers kept, and
each bad control one DataError naming the problem and the fix."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bayes_sor.data.controls import MAX_LEVELS, code_controls, coded_names
from bayes_sor.data.load import load_data
from bayes_sor.errors import DataError


def _frame(n: int = 12) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    return pd.DataFrame(
        {
            "q1": rng.integers(1, 8, n).astype(float),
            "q2": rng.integers(1, 8, n).astype(float),
            "gender": ["male", "female", "female"] * (n // 3),
            "age": np.arange(n) % 4 + 1,
            "edu": ["college", "other", "undergraduate", "college"] * (n // 4),
        }
    )


def _code(frame, reference=None, policy="model", controls=("gender", "age", "edu")):
    return code_controls(frame, list(controls), reference, "the data frame", False, policy)


def test_text_columns_become_dummies_against_the_first_sorted_level():
    frame = _frame()
    coded, codings = _code(frame)
    assert [c.column for c in codings] == ["gender", "edu"]  # age is a number: kept
    gender, edu = codings
    assert (gender.reference, gender.dummies) == ("female", ["gender[male]"])
    assert (edu.reference, edu.dummies) == ("college", ["edu[other]", "edu[undergraduate]"])
    assert list(coded.columns) == [
        "q1",
        "q2",
        "age",
        "gender[male]",
        "edu[other]",
        "edu[undergraduate]",
    ]
    np.testing.assert_array_equal(coded["gender[male]"], (frame.gender == "male").astype(float))
    np.testing.assert_array_equal(coded["edu[other]"], (frame.edu == "other").astype(float))
    assert (
        coded[["edu[other]", "edu[undergraduate]"]].sum(axis=1) == (frame.edu != "college")
    ).all()
    assert gender.counts == {"female": 8, "male": 4}
    assert gender.describe() == (
        "gender: text, 2 levels, dummy-coded gender[male] (4); reference 'female' "
        "(8, first in sorted order)"
    )
    assert coded_names(["q1", "gender", "age", "edu"], codings) == [
        "q1",
        "gender[male]",
        "age",
        "edu[other]",
        "edu[undergraduate]",
    ]


def test_a_named_reference_is_used_and_a_numeric_column_named_is_coded_as_categories():
    _, codings = _code(_frame(), reference={"gender": "male", "age": 1})
    by = {c.column: c for c in codings}
    assert (
        by["gender"].dummies == ["gender[female]"]
        and "named in the header" in by["gender"].describe()
    )
    assert by["age"].dummies == ["age[2]", "age[3]", "age[4]"]


def test_too_many_levels_say_the_count_and_the_limit():
    frame = _frame(24).assign(gender=[f"id{k:02d}" for k in range(24)])
    with pytest.raises(DataError, match=rf"'gender' has 24 different texts .* {MAX_LEVELS} levels"):
        _code(frame)


def test_missing_control_values_are_refused_unless_listwise():
    frame = _frame()
    frame.loc[[2, 5], "gender"] = np.nan
    with pytest.raises(
        DataError,
        match=r"'gender' has 2 missing value\(s\) \(rows 2, 5\).*"
        r"fill them in, or drop those respondents \(--missing listwise\)",
    ):
        _code(frame)
    coded, _ = _code(frame, policy="listwise")
    assert coded["gender[male]"].isna().tolist() == [k in (2, 5) for k in range(12)]


@pytest.mark.parametrize(
    ("reference", "change", "message"),
    [
        ({"gender": "other"}, {}, r"reference level 'other' of 'gender' is not one of its levels"),
        ({"gendr": "male"}, {}, r"'gendr', which is not a control of the model"),
        ("male", {}, r"maps each control to its reference level"),
        (None, {"gender": "male"}, r"'gender' has one level only .* drop it"),
    ],
)
def test_bad_controls_are_one_clear_error(reference, change, message):
    frame = _frame().assign(**change)
    with pytest.raises(DataError, match=message):
        _code(frame, reference=reference)


def test_load_data_codes_controls_and_keeps_the_scale_for_the_items(tmp_path):
    frame = _frame().assign(age=np.arange(12) + 20)  # years: outside the 1-7 scale, and fine
    path = tmp_path / "survey.csv"
    frame.to_csv(path, index=False)
    data = load_data(path, ["q1", "q2", "gender", "age"], scale="1-7", observed=["gender", "age"])
    assert data.items == ["q1", "q2", "gender[male]", "age"]
    assert list(data.frame.columns) == data.items
    assert [c.column for c in data.controls] == ["gender"]
    with pytest.raises(DataError, match="outside the declared scale"):
        load_data(path, ["q1", "age"], scale="1-7")  # age as an item is on the scale
    frame.loc[3, "gender"] = ""
    frame.to_csv(path, index=False)
    with pytest.raises(DataError, match=r"missing value\(s\) \(line 5\)"):
        load_data(path, ["q1", "q2", "gender"], observed=["gender"])
    dropped = load_data(path, ["q1", "q2", "gender"], observed=["gender"], missing="listwise")
    assert dropped.n_dropped == 1 and 3 not in dropped.frame.index


def test_fit_refuses_a_control_with_too_many_levels_before_sampling(tmp_path, capsys):
    from bayes_sor.cli.main import main

    frame = _frame(24).assign(gender=[f"id{k:02d}" for k in range(24)], q3=np.arange(24) % 7 + 1)
    frame.to_csv(tmp_path / "survey.csv", index=False)
    (tmp_path / "m.lav").write_text("F =~ q1 + q2 + q3\nF ~ gender\n")
    args = ["fit", str(tmp_path / "m.lav"), "--data", str(tmp_path / "survey.csv")]
    assert main([*args, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "'gender' has 24 different texts" in err and f"the {MAX_LEVELS} levels" in err
    assert not (tmp_path / "run").exists()
