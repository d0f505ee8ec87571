"""Hostile and malformed input through the command line.

Every bad input exits 2 with one ``error: ...`` message on stderr that names the problem (the
model's syntax errors add the offending line and a caret under it), no traceback unless
``--debug``, and nothing is sampled or written: the fit stage is replaced by one that fails the
test if bad input ever reaches it.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bayes_sor.cli.main import main

MODEL = "F =~ x1 + x2 + x3\n"
#: sampling options small enough that nothing would take long even if sampling were reached
TINY = ["--chains", "1", "--draws", "1", "--tune", "1", "--no-progress", "--no-report"]
FIT = ["fit", "{model}", "--data", "{data}", "--out", "{out}", *TINY]
SUMMARY = ["fit", "{model}", "--out", "{out}", *TINY]
COV = "x1,x2,x3\n1,0.5,0.4\n0.5,1,0.3\n0.4,0.3,1\n"


def _answers() -> str:
    """20 respondents, four 1-5 items (x4 is not in the model)."""
    rows = np.random.default_rng(0).integers(1, 6, size=(20, 4))
    return "x1,x2,x3,x4\n" + "".join(",".join(map(str, r)) + "\n" for r in rows)


GOOD = _answers()
FIRST = GOOD.splitlines()[1].split(",")[0]  # x1 of line 2, replaced by the bad answers below


def _with_first_answer(text: str) -> str:
    return GOOD.replace(f"\n{FIRST},", f"\n{text},", 1)


def _constant_x1() -> str:
    lines = GOOD.splitlines()
    return "\n".join([lines[0], *("3," + line.split(",", 1)[1] for line in lines[1:])]) + "\n"


def _grouped(levels: list[str], constant_x1_in: str = "") -> str:
    """GOOD with a group column ``g`` (one level per respondent); x1 answered 3 throughout
    the group ``constant_x1_in``."""
    lines = GOOD.splitlines()
    rows = [
        ("3," + line.split(",", 1)[1] if level == constant_x1_in else line) + f",{level}"
        for line, level in zip(lines[1:], levels, strict=True)
    ]
    return "\n".join([lines[0] + ",g", *rows]) + "\n"


GROUPED = [*FIT, "--group", "g"]


def case(name: str, argv: list[str], message: str, **files: str | bytes):
    """One bad input: the command line (``{name}`` placeholders are files in the test folder),
    a fragment of the expected message, and files that replace the good defaults."""
    return pytest.param(argv, message, files, id=name)


CASES = [
    # ---- the data file
    case("empty file", FIT, "is empty; export the survey answers", **{"data.csv": ""}),
    case("header only", FIT, "has a header but no data rows", **{"data.csv": "x1,x2,x3\n"}),
    case(
        "duplicated columns",
        FIT,
        "the header repeats column names ('x2' in columns 2 (B), 3",
        **{"data.csv": GOOD.replace("x3", "x2", 1)},
    ),
    case(
        "answer label",
        FIT,
        "answers that are not numbers: column 'x1' (line 2: 'agree')",
        **{"data.csv": _with_first_answer("agree")},
    ),
    case(
        "answer with a letter",
        FIT,
        "column 'x1' (line 2: '3a')",
        **{"data.csv": _with_first_answer("3a")},
    ),
    case(
        "outside the scale",
        [*FIT, "--scale", "1-5"],
        "outside the declared scale 1-5 or not whole numbers: column 'x1' (line 2: 9)",
        **{"data.csv": _with_first_answer("9")},
    ),
    case(
        "missing-value code",
        [*FIT, "--scale", "1-5"],
        "recode missing-value codes such as -99",
        **{"data.csv": _with_first_answer("-99")},
    ),
    case(
        "constant item",
        FIT,
        "without variation: 'x1' (every answer is 3)",
        **{"data.csv": _constant_x1()},
    ),
    case(
        "one ordinal category",
        [*FIT, "--ordinal", "x1"],
        "'x1' (ordinal: only category 3 observed; it needs at least two)",
        **{"data.csv": _constant_x1()},
    ),
    case(
        "infinite value",
        FIT,
        "infinite values: column 'x1' (line 2: inf)",
        **{"data.csv": _with_first_answer("inf")},
    ),
    case("overflowing number", FIT, "infinite values", **{"data.csv": _with_first_answer("1e999")}),
    case(
        "excel workbook",
        FIT,
        "is an Excel workbook (.xlsx)",
        **{"data.csv": b"PK\x03\x04\x14\x00\x06\x00"},
    ),
    case("utf-16 text", FIT, "is UTF-16 text", **{"data.csv": GOOD.encode("utf-16")}),
    case(
        "row too long",
        FIT,
        "line 2 has 6 values",
        **{"data.csv": _with_first_answer(f"{FIRST},1,2")},
    ),
    case("unclosed quote", FIT, "unclosed double quote", **{"data.csv": _with_first_answer('"3')}),
    case("data is a folder", [*FIT[:3], "{folder}", *FIT[4:]], "is a folder, not a file"),
    case("missing data file", [*FIT[:3], "{folder}/nowhere.csv", *FIT[4:]], "does not exist"),
    case(
        "unknown column",
        FIT,
        "has no column for the model's item(s) 'x9'",
        **{"model.lav": "F =~ x1 + x2 + x9\n"},
    ),
    case(
        "too few respondents",
        FIT,
        "only 2 rows, fewer than the 4 needed",
        **{"data.csv": "x1,x2,x3\n1,2,3\n3,1,2\n"},
    ),
    case(
        "copied item",
        FIT,
        "perfectly correlated: 'x1' and 'x2'",
        **{
            "data.csv": "x1,x2,x3\n"
            + "".join(f"{k % 5 + 1},{k % 5 + 1},{k * 7 % 5}\n" for k in range(10))
        },
    ),
    case(
        "misspelt latent in a regression",
        FIT,
        "'AXX' (did you mean the latent 'AX'?) in a "
        "regression of the model is neither a latent of the model (AX, PU) nor a column",
        **{"model.lav": "AX =~ x1 + x2\nPU =~ x3 + x4\nPU ~ AXX\n"},
    ),
    # ---- the model file
    case(
        "unknown header option",
        FIT,
        "unknown header option 'identificaton' (did you mean "
        "'identification'?); the options are scale,",
        **{"model.lav": "---\nidentificaton: marker\n---\n" + MODEL},
    ),
    case(
        "unknown header value",
        FIT,
        "unknown identification 'markr' (did you mean 'marker'?)",
        **{"model.lav": "---\nidentification: markr\n---\n" + MODEL},
    ),
    case("binary model", FIT, "is binary, not lavaan text", **{"model.lav": b"\x7fELF\x00\x01"}),
    case(
        "10 MB model",
        FIT,
        "far too long for a model",
        **{"model.lav": MODEL + "# padding\n" * 1_000_000},
    ),
    case("model is a folder", [FIT[0], "{folder}", *FIT[2:]], "is a folder; give the path"),
    case("missing model", [FIT[0], "{folder}/nowhere.lav", *FIT[2:]], "does not exist"),
    case(
        "unclosed modifier",
        FIT,
        "line 1, column 15: expected ')' to close the modifier",
        **{"model.lav": 'F =~ label("a"*x1 + x2 + x3\n'},
    ),
    case(
        "unbalanced parentheses",
        FIT,
        "line 2, column 6: the definition of 'd' is not a valid",
        **{"model.lav": "F =~ a*x1 + b*x2 + x3\nd := (a + b\n"},
    ),
    case(
        "composite operator",
        FIT,
        "unknown operator '<~' (lavaan's composite",
        **{"model.lav": "F <~ x1 + x2 + x3\n"},
    ),
    case(
        "unknown operator",
        FIT,
        "line 1, column 3: unknown operator '=>'",
        **{"model.lav": "F => x1 + x2 + x3\n"},
    ),
    case(
        "missing plus",
        FIT,
        "line 1, column 9: expected '+' between terms",
        **{"model.lav": "F =~ x1 x2 x3\n"},
    ),
    case(
        "unclosed header",
        FIT,
        "YAML header opened with '---' is never closed",
        **{"model.lav": "---\nscale: 1-5\n" + MODEL},
    ),
    case("no statements", FIT, "the model has no statements", **{"model.lav": "# F =~ x1\n"}),
    case(
        "cycle",
        FIT,
        "non-recursive models are out of scope",
        **{"model.lav": "F =~ x1 + x2\nG =~ x3 + x4\nF ~ G\nG ~ F\n"},
    ),
    case("unidentified", FIT, "it is not identified", **{"model.lav": "F =~ x1 + x2\n"}),
    case(
        "regression onto an item",
        FIT,
        "the outcome 'x1' of a regression is an indicator",
        **{"model.lav": MODEL + "x1 ~ F\n"},
    ),
    case(
        "unreadable prior",
        FIT,
        "cannot read the prior 'foo(1)'",
        **{"model.lav": 'F =~ prior("foo(1)")*x1 + x2 + x3\n'},
    ),
    case(
        "hypothesis on a missing path",
        FIT,
        "the model has no path 'G~F'",
        **{"model.lav": MODEL + "# H1: G ~ F > 0\n"},
    ),
    case(
        "hypothesis without direction",
        FIT,
        "hypothesis H1 must read",
        **{"model.lav": MODEL + "# H1: F =~ x1\n"},
    ),
    case("unknown ordinal item", [*FIT, "--ordinal", "x7"], "ordinal item(s) ['x7'] are not"),
    case(
        "bad header scale",
        FIT,
        "cannot read the scale 'abc'",
        **{"model.lav": "---\nscale: abc\n---\n" + MODEL},
    ),
    # ---- covariance input
    case(
        "non-PD covariance",
        [*SUMMARY, "--cov", "{cov}", "--nobs", "100"],
        "not positive definite",
        **{"cov.csv": "x1,x2,x3\n1,2,0\n2,1,0\n0,0,1\n"},
    ),
    case(
        "asymmetric covariance",
        [*SUMMARY, "--cov", "{cov}", "--nobs", "100"],
        "not symmetric: ['x1', 'x2'] = 0.5 but ['x2', 'x1'] = 0.2",
        **{"cov.csv": "x1,x2,x3\n1,0.5,0\n0.2,1,0\n0,0,1\n"},
    ),
    case(
        "N below the number of items",
        [*SUMMARY, "--cov", "{cov}", "--nobs", "3"],
        "--nobs 3 is not larger than the number of items in the model (3)",
    ),
    case("covariance without N", [*SUMMARY, "--cov", "{cov}"], "give --nobs"),
    case(
        "empty covariance file",
        [*SUMMARY, "--cov", "{cov}", "--nobs", "100"],
        "covariance file '",
        **{"cov.csv": ""},
    ),
    case("covariance and data", [*FIT, "--cov", "{cov}", "--nobs", "100"], "not both"),
    # ---- options
    case("unreadable scale", [*FIT, "--scale", "1-x"], "cannot read the scale '1-x'"),
    case("reversed scale", [*FIT, "--scale", "7-1"], "the lowest answer must be below"),
    case("ci above 1", [*FIT, "--ci", "1.5"], "--ci must lie between 0 and 1"),
    case("ci not a number", [*FIT, "--ci", "abc"], "argument --ci: invalid float value: 'abc'"),
    case("no chains", [*FIT, "--chains", "0"], "--chains and --draws must be at least 1"),
    case("no tuning for nutpie", [*FIT, "--tune", "0"], "nutpie needs at least one tuning step"),
    case("negative seed", [*FIT, "--seed", "-1"], "--seed must be a whole number from 0"),
    case("target accept", [*FIT, "--target-accept", "1"], "--target-accept must lie between"),
    case("unknown likelihood", [*FIT, "--likelihood", "exact"], "invalid choice: 'exact'"),
    case("zero prior scale", [*FIT, "--prior-scale", "0"], "--prior-scale must be a positive"),
    case("negative rope", [*FIT, "--rope", "-1"], "argument --rope: must be a half-width"),
    case("no data at all", SUMMARY, "give the data (--data)"),
    # ---- the output location
    case("out is a file", [*FIT[:5], "{model}", *FIT[6:]], "is a file, not a folder"),
    case(
        "out inside a file",
        [*FIT[:5], "{model}/run", *FIT[6:]],
        "is a file, so --out cannot be inside it",
    ),
    case(
        "out holds other files",
        [*FIT[:5], "{folder}", *FIT[6:]],
        "holds files but not a bayes_sor run",
    ),
    case("out not writable", [*FIT[:5], "{locked}/run", *FIT[6:]], "is not writable"),
    # ---- multiple groups
    case("group column missing", [*FIT, "--group", "school"], "has no column 'school' to split"),
    case(
        "one group",
        GROUPED,
        "the group column 'g' has one group only ('a'); a multiple-group model needs two",
        **{"data.csv": _grouped(["a"] * 20)},
    ),
    case(
        "small group",
        GROUPED,
        "group(s) with too few respondents ('b': 3); each group needs at least 4 (the model's "
        "3 items + 1)",
        **{"data.csv": _grouped(["a"] * 17 + ["b"] * 3)},
    ),
    case(
        "item constant in a group",
        GROUPED,
        "group 'b' of 'g': item(s) without variation: 'x1' (every answer is 3)",
        **{"data.csv": _grouped(["a", "b"] * 10, constant_x1_in="b")},
    ),
    case(
        "c() with too many values",
        GROUPED,
        "c(...) on 'F =~ x2' gives 3 values, but the model is fitted to 2 groups",
        **{"model.lav": "F =~ x1 + c(a, b, c)*x2 + x3\n", "data.csv": _grouped(["a", "b"] * 10)},
    ),
    case(
        "c() without groups",
        FIT,
        "gives 2 values, but the model is fitted to one group (no group column was given)",
        **{"model.lav": "F =~ x1 + c(a, b)*x2 + x3\n"},
    ),
    case(
        "unknown group.equal kind",
        [*GROUPED, "--group-equal", "loadings,intercept"],
        "group.equal names unknown kind(s) ['intercept']; the kinds are loadings, intercepts",
    ),
    case(
        "group.partial not in the model",
        [*GROUPED, "--group-equal", "loadings", "--group-partial", "F=~x9"],
        "group.partial names ['F=~x9'], which are not parameters of the model",
    ),
    case(
        "group.equal without a group",
        [*FIT, "--group-equal", "loadings"],
        "group.equal and group.partial need a group column",
    ),
    case(
        "invariance: unknown step",
        ["invariance", "{model}", "--data", "{data}", "--group", "g", "--steps", "metric,weak"],
        "unknown invariance step(s) ['weak']; the steps are",
        **{"data.csv": _grouped(["a", "b"] * 10)},
    ),
    case(
        "invariance: group column missing",
        ["invariance", "{model}", "--data", "{data}", "--group", "school", "--draws", "1"],
        "has no column 'school' to split",
    ),
    # ---- the other commands
    case(
        "simulate nobody",
        ["simulate", "{model}", "--nobs", "0", "--out", "{out}"],
        "--nobs must be at least 1",
    ),
    case(
        "simulate into a folder",
        ["simulate", "{model}", "--nobs", "5", "--out", "{folder}"],
        "is a folder; give the name of the file",
    ),
    case("report of a non-run", ["report", "{folder}"], "is not a bayes_sor run folder"),
]


class Sampled(Exception):
    """Raised instead of sampling: the input got through every check."""


@pytest.fixture
def stop_before_sampling(monkeypatch) -> list[pd.DataFrame]:
    """Replace sampling by a stop; returns the data each built model received."""
    # The attribute `bayes_sor.fit` is the function; the module is in sys.modules.
    fit_module = importlib.import_module("bayes_sor.runs.fit")
    build = fit_module._build
    seen: list[pd.DataFrame] = []

    def recording_build(partable, data, options):
        seen.append(data)
        return build(partable, data, options)

    def stop(built, settings, stage, **sampling):
        raise Sampled

    monkeypatch.setattr(fit_module, "recorded_build", lambda *args: None)  # always built
    monkeypatch.setattr(fit_module, "_build", recording_build)
    monkeypatch.setattr(fit_module, "sample", stop)
    return seen


def _files(folder: Path, files: dict[str, str | bytes]) -> dict[str, str]:
    """Write the case's files over the good defaults; the placeholders of the command line."""
    defaults = {"model.lav": MODEL, "data.csv": GOOD, "cov.csv": COV}
    for name, content in {**defaults, **files}.items():
        path = folder / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    locked = folder / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    return {
        "model": str(folder / "model.lav"),
        "data": str(folder / "data.csv"),
        "cov": str(folder / "cov.csv"),
        "out": str(folder / "out"),
        "folder": str(folder),
        "locked": str(locked),
    }


def _one_clear_message(err: str, message: str) -> None:
    assert "Traceback" not in err
    assert err.startswith("error: ") and err.count("error:") == 1, err
    assert message in err, err
    lines = err.rstrip("\n").split("\n")
    # one line; a model syntax error adds the offending line and a caret under the problem
    assert len(lines) == 1 or (len(lines) == 3 and lines[2].strip() == "^"), err


def test_the_table_covers_at_least_30_bad_inputs():
    assert len(CASES) >= 30


@pytest.mark.parametrize(("argv", "message", "files"), CASES)
def test_bad_input_exits_2_with_one_clear_message(
    tmp_path, capsys, monkeypatch, stop_before_sampling, argv, message, files
):
    names = _files(tmp_path, files)
    if "{locked}" in " ".join(argv) and os.geteuid() == 0:
        # Root passes every permission check (CI runs as root): os.access gives the answer the
        # kernel gives any other user about the 0500 folder, so the check still runs.
        locked, access = Path(names["locked"]).resolve(), os.access
        monkeypatch.setattr(
            os,
            "access",
            lambda path, mode, **kw: (
                not mode & os.W_OK if Path(path).resolve() == locked else access(path, mode, **kw)
            ),
        )
    code = main([a.format(**names) for a in argv])
    assert code == 2
    _one_clear_message(capsys.readouterr().err, message)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b"\xef\xbb\xbf" + GOOD.encode(), id="UTF-8 with BOM"),
        pytest.param(GOOD.replace("x4", "Größe").encode("latin-1"), id="Latin-1 header"),
        pytest.param(GOOD.replace(",", ";").encode(), id="semicolons"),
        pytest.param(GOOD.replace(",", "\t").encode(), id="tabs"),
        pytest.param(GOOD.replace("\n", "\r\n").encode(), id="Windows line ends"),
    ],
)
def test_other_encodings_and_delimiters_are_read_like_plain_csv(
    tmp_path, stop_before_sampling, content
):
    """Decided: such files are read (the encoding and delimiter are detected), not refused."""
    names = _files(tmp_path, {"plain.csv": GOOD, "data.csv": content})
    for data in (tmp_path / "plain.csv", names["data"]):
        with pytest.raises(Sampled):
            main([a.format(**{**names, "data": data}) for a in FIT])
    plain, other = stop_before_sampling
    pd.testing.assert_frame_equal(other, plain)


def _python_m(*argv: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bayes_sor", *argv],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
    )


@pytest.mark.parametrize(
    ("files", "extra", "message"),
    [
        ({"data.csv": _with_first_answer("agree")}, [], "(line 2: 'agree')"),
        ({"model.lav": "F =~ x1 x2 x3\n"}, [], "model line 1, column 9"),
        ({}, ["--ci", "abc"], "invalid float value"),
    ],
    ids=["data", "model", "option"],
)
def test_no_traceback_reaches_the_user(tmp_path, files, extra, message):
    names = _files(tmp_path, files)
    result = _python_m(*[a.format(**names) for a in FIT], *extra, cwd=tmp_path)
    assert result.returncode == 2
    _one_clear_message(result.stderr, message)


def test_debug_shows_the_traceback(tmp_path):
    names = _files(tmp_path, {"data.csv": _with_first_answer("agree")})
    result = _python_m("--debug", *[a.format(**names) for a in FIT], cwd=tmp_path)
    assert result.returncode == 1  # Python's own exit code for an uncaught exception
    assert "Traceback (most recent call last)" in result.stderr
    assert "bayes_sor.errors.DataError: " in result.stderr and "'agree'" in result.stderr


def test_a_warning_is_printed_once_as_one_line_without_python_source(
    tmp_path, capsys, stop_before_sampling
):
    """A respondent who answered nothing is dropped with a warning: the console shows one
    ``WARNING:`` line, not Python's ``file:line: UserWarning`` with the warning's source."""
    names = _files(tmp_path, {"data.csv": GOOD + ",,,1\n"})
    with pytest.raises(Sampled):
        main([a.format(**names) for a in FIT])
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("WARNING: data file"), err
    assert "1 respondent(s) answered none of the model's items (line 22)" in err[0]
