"""The lavaan syntax parser: golden parses of the bundled models, every modifier form, every
error path (with its line and column), and fuzzing that only ModelSyntaxError ever escapes."""

from __future__ import annotations

import re
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from paths import MODELS

from bayes_sor.errors import BayesSORError, ModelSyntaxError
from bayes_sor.spec.partable import ParTable, build_partable
from bayes_sor.spec.syntax import ModelSpec, Statement, parse

MODEL_TEXTS = {p.name: p.read_text() for p in sorted(MODELS.glob("*.lav"))}


def ops(spec: ModelSpec) -> Counter:
    return Counter(s.op for s in spec.statements)


def one(text: str) -> Statement:
    (statement,) = parse(text).statements
    return statement


def syntax_error(text: str) -> ModelSyntaxError:
    with pytest.raises(ModelSyntaxError) as info:
        parse(text)
    return info.value


def assert_error_at(text: str, line: int, column: int | None, pattern: str) -> ModelSyntaxError:
    """``text`` fails to parse at ``line`` and ``column`` (None: any column) with a message
    matching ``pattern``; the error, for further checks."""
    error = syntax_error(text)
    assert error.line == line, str(error)
    if column is not None:
        assert error.column == column, str(error)
    assert re.search(pattern, str(error)), str(error)
    return error


# ---- golden parses of the bundled models -------------------------------------------------


def test_impulse_buying_golden():
    spec = parse(MODEL_TEXTS["impulse_buying.lav"])
    assert ops(spec) == {"=~": 33, "~": 11}
    assert spec.options == {"scale": "1-7", "identification": "std.lv"}
    latents = list(dict.fromkeys(s.lhs for s in spec.statements if s.op == "=~"))
    assert latents == ["PI", "AI", "MI", "SI", "CT", "IT", "IB"]
    first = spec.statements[0]
    assert (first.lhs, first.op, first.rhs, first.line) == ("PI", "=~", "pi1", 7)
    (interaction,) = [s for s in spec.statements if ":" in s.rhs]
    assert (interaction.lhs, interaction.op, interaction.rhs) == ("IB", "~", "CT:IT")
    assert interaction.label == "d" and interaction.line == 18
    labels = {s.rhs: s.label for s in spec.statements if s.op == "~" and s.lhs == "IB"}
    assert labels == {
        "CT": "b",
        "PI": "c1",
        "AI": "c2",
        "MI": "c3",
        "SI": "c4",
        "IT": "",
        "CT:IT": "d",
    }
    assert [s.label for s in spec.statements if s.op == "~" and s.lhs == "CT"] == [
        "a1",
        "a2",
        "a3",
        "a4",
    ]
    assert [h.name for h in spec.hypotheses] == [f"H{i}" for i in range(1, 11)]
    assert spec.hypotheses[0].text == "CT ~ PI > 0"
    assert spec.hypotheses[0].line == 21
    assert spec.hypotheses[-1].text == "IB ~ CT:IT > 0"
    assert spec.hypotheses[5].text == "indirect(PI -> CT -> IB) > 0"
    assert spec.text == MODEL_TEXTS["impulse_buying.lav"]


def test_purchase_intention_golden():
    spec = parse(MODEL_TEXTS["purchase_intention.lav"])
    assert ops(spec) == {"=~": 29, "~": 11}
    assert spec.options == {"scale": "1-7", "identification": "std.lv"}
    assert not any(":" in s.rhs for s in spec.statements)
    assert [h.name for h in spec.hypotheses] == [
        "H1a",
        "H1b",
        "H2a",
        "H2b",
        "H3a",
        "H3b",
        "H4a",
        "H4b",
        "H5",
        "H6",
        "H7",
    ]
    assert spec.hypotheses[-1].text == "PIN ~ AF > 0"
    assert {s.rhs for s in spec.statements if s.lhs == "PIN" and s.op == "~"} == {
        "PU",
        "SP",
        "AF",
    }


def test_holzinger_swineford_golden():
    spec = parse(MODEL_TEXTS["holzinger_swineford.lav"])
    assert ops(spec) == {"=~": 9}
    assert spec.options == {} and spec.hypotheses == []
    assert [(s.lhs, s.rhs, s.line) for s in spec.statements[::3]] == [
        ("visual", "x1", 2),
        ("textual", "x4", 3),
        ("speed", "x7", 4),
    ]
    assert all(s.label == "" and s.fixed is None and s.prior == "" for s in spec.statements)


@pytest.mark.parametrize("name", sorted(MODEL_TEXTS))
def test_every_bundled_model_parses(name):
    assert parse(MODEL_TEXTS[name]).statements


# ---- modifiers -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("F =~ a1*x", {"label": "a1"}),
        ("F =~ 1*x", {"fixed": 1.0}),
        ("F =~ 0.5*x", {"fixed": 0.5}),
        ("F =~ -2.5e-1*x", {"fixed": -0.25}),
        ("F =~ .5*x", {"fixed": 0.5}),
        ("F =~ NA*x", {"fixed": None, "na": True}),
        ("F =~ start(0.7)*x", {"start": 0.7}),
        ("F =~ start(-1)*x", {"start": -1.0}),
        ('F =~ label("lam")*x', {"label": "lam"}),
        ("F =~ label('lam')*x", {"label": "lam"}),
        ('F =~ equal("lam")*x', {"label": "lam"}),
        ('F =~ prior("normal(0,1)")*x', {"prior": "normal(0,1)"}),
        ('F =~ prior("gamma(1,0.5)[sd]")*x', {"prior": "gamma(1,0.5)[sd]"}),
        ("F =~ 2*a*x", {"fixed": 2.0, "label": "a"}),
        (
            'F =~ a*start(1)*prior("normal(1,2)")*x',
            {"label": "a", "start": 1.0, "prior": "normal(1,2)"},
        ),
        ("F =~ a * x", {"label": "a"}),
    ],
)
def test_modifiers(text, expected):
    statement = one(text)
    assert (statement.lhs, statement.op, statement.rhs) == ("F", "=~", "x")
    defaults = {"label": "", "fixed": None, "start": None, "prior": "", "na": False}
    for key, value in {**defaults, **expected}.items():
        assert getattr(statement, key) == value, key


def test_intercepts_and_labelled_intercepts():
    assert (one("y ~ 1").op, one("y ~ 1").rhs) == ("~1", "")
    labelled = one("y ~ m*1")
    assert (labelled.op, labelled.label) == ("~1", "m")
    assert one("y ~ 0*1").fixed == 0.0


def test_interaction_terms_only_in_regressions():
    statements = parse("Y ~ X + W + X:W + b*M:W").statements
    assert [s.rhs for s in statements] == ["X", "W", "X:W", "M:W"]
    assert statements[-1].label == "b"
    assert syntax_error("Y ~~ X:W").column == 7
    assert syntax_error("F =~ x:y").column == 7


def test_variances_covariances_thresholds_and_multiple_lhs():
    statements = parse("x1 ~~ x2 + 0*x3\ny1 + y2 ~ X\nu | t1 + -0.5*t2").statements
    assert [(s.lhs, s.op, s.rhs, s.line) for s in statements] == [
        ("x1", "~~", "x2", 1),
        ("x1", "~~", "x3", 1),
        ("y1", "~", "X", 2),
        ("y2", "~", "X", 2),
        ("u", "|", "t1", 3),
        ("u", "|", "t2", 3),
    ]
    assert statements[-1].fixed == -0.5


def test_signs_after_a_term_are_separators():
    statements = parse("y ~ a +1*b + -1*c").statements
    assert [(s.rhs, s.fixed) for s in statements] == [("a", None), ("b", 1.0), ("c", -1.0)]


def test_names_with_dots_and_underscores():
    assert one("my.factor =~ item_1.a").rhs == "item_1.a"


# ---- lines, separators, comments ---------------------------------------------------------


def test_multiline_trailing_plus():
    spec = parse("F =~ x1 +\n     x2 +\n\n  # a comment in between\n  x3\nG =~ y1")
    assert [(s.lhs, s.rhs, s.line) for s in spec.statements] == [
        ("F", "x1", 1),
        ("F", "x2", 1),
        ("F", "x3", 1),
        ("G", "y1", 6),
    ]


def test_multiline_leading_plus_and_operator_on_next_line():
    spec = parse("F =~ x1\n   + x2\n   + a*x3\nG\n  =~ y1\nH =~\n  z1")
    assert [(s.lhs, s.rhs) for s in spec.statements] == [
        ("F", "x1"),
        ("F", "x2"),
        ("F", "x3"),
        ("G", "y1"),
        ("H", "z1"),
    ]
    assert spec.statements[2].label == "a"


def test_semicolon_separators():
    spec = parse("F =~ x1 + x2; G =~ y1;; H ~ F ; d := a*b")
    assert [(s.lhs, s.op, s.rhs) for s in spec.statements] == [
        ("F", "=~", "x1"),
        ("F", "=~", "x2"),
        ("G", "=~", "y1"),
        ("H", "~", "F"),
        ("d", ":=", "a*b"),
    ]
    assert {s.line for s in spec.statements} == {1}


def test_comments():
    spec = parse(
        "# leading comment\n"
        "F =~ x1 + x2  # trailing\n"
        "! bang comment\n"
        "G =~ y1 ! trailing bang\n"
        'H =~ prior("normal(0,1) # not a comment")*z1 + z2 # but this is\n'
        "H =~ prior('normal(0,2) ! nor this')*z3\n"
    )
    assert [s.rhs for s in spec.statements] == ["x1", "x2", "y1", "z1", "z2", "z3"]
    assert spec.statements[3].prior == "normal(0,1) # not a comment"
    assert spec.statements[5].prior == "normal(0,2) ! nor this"
    assert [s.line for s in spec.statements] == [2, 2, 4, 5, 5, 6]


def test_hypothesis_comments():
    spec = parse("F =~ x\n# H1: F ~ G > 0\n#H2b:  indirect(A -> B -> C) > 0  \n# H: no\n#  H3 : x")
    assert [(h.name, h.text, h.line) for h in spec.hypotheses] == [
        ("H1", "F ~ G > 0", 2),
        ("H2b", "indirect(A -> B -> C) > 0", 3),
        ("H3", "x", 5),
    ]


def test_yaml_header_and_line_numbers():
    spec = parse("---\nidentification: marker\nordinal: [x1, x2]\n---\nF =~ x1 + x2\n# H1: a")
    assert spec.options == {"identification": "marker", "ordinal": ["x1", "x2"]}
    assert spec.statements[0].line == 5
    assert spec.hypotheses[0].line == 6
    assert parse("---\n---\nF =~ x").options == {}


def test_crlf_tabs_and_bom():
    spec = parse("\ufeffF =~\tx1 +\r\n\tx2\r\nG =~ y\r\n")
    assert [(s.rhs, s.line) for s in spec.statements] == [("x1", 1), ("x2", 1), ("y", 3)]


# ---- defined parameters ------------------------------------------------------------------


@pytest.mark.parametrize(
    "expression",
    ["a*b", "a^2", "a - b", "a/b", "(a + b)*c", "-a*(b - c)/(1 + d^2)", "2.5*a", "a*b*(c)"],
)
def test_definitions(expression):
    statement = one(f"ind := {expression}")
    assert (statement.lhs, statement.op, statement.rhs) == ("ind", ":=", expression)


def test_definition_over_several_lines():
    spec = parse("tot := a*b +\n   c\nratio := (a\n  + b) / c\n  - d\nF =~ x")
    assert [(s.lhs, s.rhs, s.line) for s in spec.statements] == [
        ("tot", "a*b + c", 1),
        ("ratio", "(a + b) / c - d", 3),
        ("F", "x", 6),
    ]


# ---- errors: every path, with line and column ----------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "column", "message"),
    [
        ("F =~ x1 $ x2", 1, 9, r"unexpected character '\$'; expected a variable name"),
        ("F =~ x1\nG =~ y1 + y2 @", 2, 14, r"unexpected character '@'"),
        ("F =~ x1; G =~ é", 1, 15, r"unexpected character 'é'"),
        ('F =~ label("a)*x', 1, 12, r"string is never closed; expected a closing \""),
        ("F x1 x2", 1, 3, r"expected an operator \(=~, ~, ~~, := or \|\), found 'x1'"),
        ("F", 1, 2, r"expected an operator .* found the end of the statement"),
        ("F =~ x1 +", 1, 10, r"expected a variable name after '\+', found the end"),
        ("F =~ x1 +\nG =~ y1", 1, 10, r"expected a variable name after '\+'"),
        ("a =~", 1, 5, r"expected a variable name after '=~', found the end"),
        ("F =~ x1 x2", 1, 9, r"expected '\+' between terms or the end of the statement"),
        ("F =~ foo(1)*x", 1, 6, r"unknown modifier foo\(\); expected label\(\), start\(\)"),
        ("F =~ label(1)*x", 1, 12, r'expected a quoted string in label\("..."\), found \'1\''),
        ("F =~ prior(normal)*x", 1, 12, r"expected a quoted string in prior"),
        ('F =~ start("a")*x', 1, 12, r"expected a number in start\(...\)"),
        ('F =~ label("a") x', 1, 17, r"expected '\*' after the modifier, found 'x'"),
        ('F =~ label("a"*x', 1, 15, r"expected '\)' to close the modifier"),
        ("F =~ a*b*x", 1, 8, r"the label of this term is given twice; expected each"),
        ("F =~ 1*2*x", 1, 8, r"the fixed of this term is given twice"),
        ("F =~ NA*1*x", 1, 9, r"the fixed of this term is given twice"),
        ("F =~ start(1)*start(2)*x", 1, 21, r"the start of this term is given twice"),
        ('F =~ prior("a")*prior("b")*x', 1, 23, r"the prior of this term is given twice"),
        ('F =~ a*label("b")*x', 1, 14, r"the label of this term is given twice"),
        ("F =~ x*", 1, 8, r"expected a variable name after '\*'"),
        ("F =~ +*x", 1, 6, r"expected a number, label or modifier before '\*', found '\+'"),
        ("u | t1 + tau2", 1, 10, r"expected a threshold name t1, t2, \.\.\. after '\|'"),
        ("u | a*x", 1, 7, r"expected a threshold name .* found 'x'"),
        ("F =~ (x1 + x2)", 1, 6, r"expected a variable name, found '\('"),
        ("F =~ x1)", 1, 8, r"expected '\+' between terms or the end of the statement, found '\)'"),
        ("Y ~ X:", 1, 7, r"expected a variable name after ':'"),
        ("a + b := c", 1, 7, r"expected a definition as 'name := expression'"),
        ("d\n  := a*b", 2, 3, r"expected a definition as 'name := expression'"),
        ("F =~ x1\n  + =~ x2", 2, 3, r"expected a variable name, found '\+'"),
    ],
)
def test_syntax_errors(text, line, column, message):
    error = assert_error_at(text, line, column, message)
    assert str(error).startswith(f"model line {line}, column {column}: ")


def test_error_shows_the_line_with_a_caret():
    error = syntax_error("F =~ x1\nG =~ y1 $")
    assert error.text == "G =~ y1 $"
    assert str(error).endswith("    G =~ y1 $\n            ^")


def test_errors_in_continued_statements_point_at_the_right_line():
    error = syntax_error("F =~ x1 +\n  x2 +\n  x3 x4")
    assert (error.line, error.column, error.text) == (3, 6, "  x3 x4")
    error = syntax_error("F =~ x1 +\n  foo(2)*x2")
    assert (error.line, error.column) == (2, 3)


@pytest.mark.parametrize(
    ("text", "line", "column", "message"),
    [
        ("d := a +", 1, 9, r"definition of 'd' is not a valid arithmetic expression; expected"),
        ("d := (a + b", 1, 6, r"not a valid arithmetic expression"),
        ("d := a + b)", 1, 11, r"not a valid arithmetic expression"),
        ("d := a b", 1, 8, r"not a valid arithmetic expression"),
        ("d := 2^^a", 1, 8, r"not a valid arithmetic expression"),
        ("d :=", 1, 5, r"expected an expression \(labels, numbers, .*\) after ':='"),
        ("F =~ x\nd :=   ", 2, 8, r"expected an expression"),
        ("d := __import__('os')", 1, 6, r"contains a function call; expected only labels"),
        ("d := a.b()", 1, 6, r"contains a function call"),
        ("d := a.b", 1, 6, r"contains attribute access"),
        ("d := exp(a)", 1, 6, r"contains a function call"),
        ("d := a % b", 1, 6, r"contains the operator Mod"),
        ("d := a // b", 1, 6, r"contains the operator FloorDiv"),
        ("d := a < b", 1, 6, r"contains an unsupported construct \(Compare\)"),
        ("d := True", 1, 6, r"contains the constant True"),
        ("d := 'text'", 1, 6, r"contains the constant 'text'"),
        ("d := 1j", 1, 6, r"contains the constant 1j"),
        ("d := [a]", 1, 6, r"unsupported construct \(List\)"),
        ("d := lambda: a", 1, 6, r"unsupported construct \(Lambda\)"),
        ("F =~ x; e := b + c*", 1, 20, r"definition of 'e' is not a valid"),
        ("d := a +\nF =~ x", 1, 9, r"not a valid arithmetic expression"),
        ("d := (a\n + b", 1, 6, r"not a valid arithmetic expression"),
        ("d := " + "(" * 300 + "a" + ")" * 300, 1, None, r"not a valid arithmetic expression"),
    ],
)
def test_definition_errors(text, line, column, message):
    assert_error_at(text, line, column, message)


@pytest.mark.parametrize(
    ("text", "line", "column", "message"),
    [
        ("---\nidentification: marker\nF =~ x", 1, 1, r"YAML header .* is never closed; end it"),
        ("---", 1, 1, r"never closed"),
        ("---\nscale: [1, 7\n---\nF =~ x", 2, 13, r"not valid YAML .*expected 'key: value'"),
        ("---\na: b: c\n---\nF =~ x", 2, 5, r"not valid YAML"),
        ("---\n- a\n- b\n---\nF =~ x", 2, 1, r"must be 'key: value' lines"),
        ("---\njust text\n---\nF =~ x", 2, 1, r"must be 'key: value' lines"),
        # an unknown option or value is refused, not ignored (it would fit another model)
        (
            "---\nfoo: bar\n---\nF =~ x",
            2,
            1,
            r"unknown header option 'foo'; the options are scale, identification, ordinal, priors",
        ),
        (
            "---\nscale: 1-7\nidentificaton: marker\n---\nF =~ x",
            3,
            1,
            r"unknown header option 'identificaton' \(did you mean 'identification'\?\)",
        ),
        ("---\nclusters: school\n---\nF =~ x", 2, 1, r"unknown header option 'clusters'; the"),
        (
            "---\nidentification: markr\n---\nF =~ x",
            2,
            17,
            r"unknown identification 'markr' \(did you mean 'marker'\?\); "
            r"use one of std.lv, marker",
        ),
        (
            "---\nlatent_scores: centered\n---\nF =~ x",
            2,
            16,
            r"unknown latent_scores 'centered' \(did you mean 'centred'\?\)",
        ),
    ],
)
def test_header_errors(text, line, column, message):
    assert_error_at(text, line, column, message)


@pytest.mark.parametrize(
    ("text", "line", "column"),
    [("\x00\x01\x02", 1, 1), ("F =~ x\nG =~\x00y", 2, 5), ("F =~ x\n\x00", 2, 1)],
)
def test_binary_text(text, line, column):
    error = assert_error_at(text, line, column, "binary")
    assert "expected lavaan model syntax" in str(error)


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("", 1),
        ("   \n\n\t\n", 1),
        ("# only\n! comments\n# H1: a > 0", 1),
        (";;;", 1),
        ("---\nscale: 1-7\n---\n# nothing", 4),
    ],
)
def test_empty_models(text, line):
    assert_error_at(text, line, 1, r"no statements; expected at least one 'factor =~ item1")


def test_syntax_errors_are_bayes_sor_errors():
    assert issubclass(ModelSyntaxError, BayesSORError)


# ---- fuzzing ---------------------------------------------------------------------------------

ALPHABET = st.sampled_from([*"Fxy12 \t\n=~:|*+-/^().,;#!\"'_a-\x00$", "---\n", "NA"])
FUZZ = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def _parse_or_syntax_error(text: str) -> None:
    try:
        spec = parse(text)
    except ModelSyntaxError as error:
        assert error.line >= 1 and error.column >= 1
        assert error.line <= len(re.split(r"\r\n|\r|\n", text))
        return
    assert isinstance(spec, ModelSpec) and spec.statements


@st.composite
def mutated_model(draw) -> str:
    """A bundled model with a few character- and line-level edits."""
    text = draw(st.sampled_from(sorted(MODEL_TEXTS.values())))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(
            st.sampled_from(
                ["insert", "delete", "replace", "drop_line", "dup_line", "swap_lines", "swap_word"]
            )
        )
        position = draw(st.integers(0, max(len(text) - 1, 0)))
        if kind == "insert":
            text = text[:position] + draw(ALPHABET) + text[position:]
        elif kind == "delete":
            length = draw(st.integers(1, 8))
            text = text[:position] + text[position + length :]
        elif kind == "replace":
            text = text[:position] + draw(ALPHABET) + text[position + 1 :]
        else:
            lines = text.splitlines()
            if not lines:
                continue
            index = draw(st.integers(0, len(lines) - 1))
            if kind == "drop_line":
                del lines[index]
            elif kind == "dup_line":
                lines.insert(index, lines[index])
            elif kind == "swap_lines":
                other = draw(st.integers(0, len(lines) - 1))
                lines[index], lines[other] = lines[other], lines[index]
            else:
                words = re.findall(r"[A-Za-z_][A-Za-z0-9_]*", text)
                if words:
                    old, new = draw(st.sampled_from(words)), draw(st.sampled_from(words))
                    lines[index] = lines[index].replace(old, new, 1)
            text = "\n".join(lines)
    return text


@FUZZ
@given(st.text(max_size=200))
def test_fuzz_random_text(text):
    _parse_or_syntax_error(text)


@FUZZ
@given(st.lists(ALPHABET, max_size=60).map("".join))
def test_fuzz_lavaan_like_text(text):
    _parse_or_syntax_error(text)


@FUZZ
@given(mutated_model())
def test_fuzz_mutated_models_parse(text):
    _parse_or_syntax_error(text)


def _partable_or_own_error(text: str, identification: str | None = None) -> None:
    try:
        table = build_partable(text, identification=identification)
    except BayesSORError:
        return
    assert isinstance(table, ParTable)


BUILD_FUZZ = settings(
    max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)


@BUILD_FUZZ
@given(mutated_model(), st.sampled_from([None, "std.lv", "marker"]))
def test_fuzz_mutated_models_build(text, identification):
    _partable_or_own_error(text, identification)


@BUILD_FUZZ
@given(st.one_of(st.text(max_size=200), st.lists(ALPHABET, max_size=60).map("".join)))
def test_fuzz_random_text_build(text):
    _partable_or_own_error(text)
