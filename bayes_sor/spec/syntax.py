"""lavaan model syntax -> flat list of statements (one per left-hand/right-hand pair).

Written by hand (not semopy's regex parser) because errors must name the line and column,
and because the syntax carries blavaan's ``prior("...")`` modifier and an optional YAML header
that no maintained Python parser of lavaan syntax understands.

Supported: ``=~ ~ ~~ := |``, ``label*x``, ``1*x`` (fixed), ``NA*x`` (free), ``start(v)*x``,
``label("a")*x``, ``prior("normal(0,1)")*x``, group-specific ``c(a1, a2)*x`` / ``c(1, NA)*x``,
``y ~ 1`` intercepts, ``X:W`` interaction terms,
``#``/``!`` comments, ``;`` separators, statements continued over lines (a line that ends in, or
a next line that starts with, ``+`` or an operator; a ``:=`` expression that ends in an arithmetic
operator or has an open parenthesis), ``# H1: ...`` hypothesis comments, and a YAML header between
two ``---`` lines. Every error is a :class:`ModelSyntaxError` whose line and column point at the
offending character of the physical line, also inside continued statements and after ``;``.
"""

from __future__ import annotations

import ast
import difflib
import math
import numbers
import re
from dataclasses import dataclass, field, replace

import yaml

from bayes_sor.errors import ModelSpecError, ModelSyntaxError

OPERATORS = ("=~", "~~", ":=", "~", "|")
_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<string>"[^"\n]*"|'[^'\n]*')
  | (?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?(?![A-Za-z_]))
  | (?P<op>=~|~~|:=|~|\|)
  | (?P<ident>[A-Za-z_.][A-Za-z0-9_.]*)
  | (?P<punct>[*+:(),])
    """,
    re.VERBOSE,
)
#: what a mistyped or unsupported operator looks like ('=>', '<~', '==', '->')
_OPERATOR_LIKE = re.compile(r"[<>=!]+[~=>]*|-+>")
_UNSUPPORTED_OPERATORS = {
    "<~": " (lavaan's composite/formative operator, which bayes_sor does not support)",
    "==": " (lavaan's equality constraint; give both terms the same label instead)",
    "<": " (lavaan's inequality constraint, which bayes_sor does not support)",
    ">": " (lavaan's inequality constraint, which bayes_sor does not support)",
}
_OPERATOR_WORDS = (
    "=~ (measured by), ~ (regressed on), ~~ (variance/covariance), := (defined as) or | (threshold)"
)
#: line breaks as editors count them (not str.splitlines, which also breaks at \x0c, \x85 ...)
_NEWLINE = re.compile(r"\r\n|\r|\n")
IDENTIFICATIONS = ("std.lv", "marker")
LATENT_SCORES = ("auto", "centred", "non-centred")
#: The YAML header's options; for those with a fixed set of values, the values. Anything else
#: is refused: an ignored line (a misspelt key, a feature bayes_sor lacks) would fit another
#: model than the one the user wrote.
HEADER_OPTIONS: dict[str, tuple[str, ...] | None] = {
    "scale": None,
    "identification": IDENTIFICATIONS,
    "ordinal": None,
    "priors": None,
    "moderator_values": None,
    "latent_scores": LATENT_SCORES,
    "group": None,
    "group.equal": None,
    "group.partial": None,
    "approximate": None,
    "cross_loadings": None,
    "residual_covariances": None,
    "reference": None,
}
_HYPOTHESIS = re.compile(r"^\s*#\s*(H\d+[A-Za-z]?)\s*:\s*(.+?)\s*$")
_MODIFIER_FUNCTIONS = ("label", "start", "prior", "equal", "c")
_DEFINITION = re.compile(r"^\s*([A-Za-z_.][A-Za-z0-9_.]*)\s*:=(.*)$")


@dataclass(frozen=True)
class Statement:
    """One lavaan relation ``lhs op rhs`` with its modifiers, as written by the user."""

    lhs: str
    op: str
    rhs: str
    line: int
    label: str = ""
    fixed: float | None = None
    start: float | None = None
    prior: str = ""
    #: True for ``NA*x``: explicitly free (lavaan: overrides a marker's fixed first loading)
    na: bool = False
    #: ``c(...)*x``: one modifier per group, each a label (str), a fixed value (float) or
    #: ``None`` (``NA``: free)
    per_group: tuple[str | float | None, ...] = ()


@dataclass(frozen=True)
class Hypothesis:
    """A hypothesis declared in a comment, e.g. ``# H1: CT ~ PI > 0``."""

    name: str
    text: str
    line: int


@dataclass
class ModelSpec:
    """A parsed model file: statements, header options and declared hypotheses."""

    statements: list[Statement]
    options: dict = field(default_factory=dict)
    hypotheses: list[Hypothesis] = field(default_factory=list)
    text: str = ""


@dataclass(frozen=True)
class _Token:
    kind: str
    value: str
    column: int
    line: int = 0
    text: str = ""


@dataclass
class _Piece:
    """A ';'-separated part of one physical line, with where it sits in that line."""

    code: str
    line: int
    column: int  # 1-based column of the piece's first character in ``raw``
    raw: str


def _strip_comment(line: str) -> str:
    """Cut a ``#`` or ``!`` comment, ignoring those inside quotes."""
    quote = ""
    for i, char in enumerate(line):
        if quote:
            if char == quote:
                quote = ""
        elif char in "\"'":
            quote = char
        elif char in "#!":
            return line[:i]
    return line


def _split_parts(code: str) -> list[tuple[int, str]]:
    """Split on ``;`` outside quotes; returns ``(0-based start, part)`` pairs."""
    parts: list[tuple[int, str]] = []
    quote, start = "", 0
    for i, char in enumerate(code):
        if quote:
            if char == quote:
                quote = ""
        elif char in "\"'":
            quote = char
        elif char == ";":
            parts.append((start, code[start:i]))
            start = i + 1
    parts.append((start, code[start:]))
    return parts


def _tokenize(piece: _Piece) -> list[_Token]:
    text, tokens, pos = piece.code, [], 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        column = piece.column + pos
        if match is None:
            char = text[pos]
            operator = _OPERATOR_LIKE.match(text, pos)
            if char in "\"'":
                message = (
                    f"this {char} string is never closed; expected a closing {char} on the same "
                    "line"
                )
            elif operator is not None:
                unsupported = _UNSUPPORTED_OPERATORS.get(operator.group(), "")
                message = (
                    f"unknown operator {operator.group()!r}{unsupported}; expected one of "
                    f"{_OPERATOR_WORDS}"
                )
            else:
                message = (
                    f"unexpected character {char!r}; expected a variable name (letters, digits, "
                    "'_' and '.'), a number, an operator (=~ ~ ~~ := |) or one of * + : ( ) ,"
                )
            raise ModelSyntaxError(message, piece.line, column, piece.raw)
        kind = match.lastgroup or ""
        value = match.group()
        if (
            kind == "number"
            and value[0] in "+-"
            and tokens
            and (tokens[-1].kind in ("ident", "number", "string") or tokens[-1].value == ")")
        ):
            # ``a +1*x`` is ``a + 1*x``, not ``a`` followed by the number ``+1``.
            tokens.append(_Token("punct", value[0], column, piece.line, piece.raw))
            value, column = value[1:], column + 1
        if kind != "space":
            tokens.append(_Token(kind, value, column, piece.line, piece.raw))
        pos = match.end()
    return tokens


def _split_header(text: str) -> tuple[dict, list[str], int]:
    """Split an optional YAML header (between two ``---`` lines) from the model body."""
    lines = _NEWLINE.split(text)
    if not lines or lines[0].strip() != "---":
        return {}, lines, 0
    for end in range(1, len(lines)):
        if lines[end].strip() == "---":
            try:
                options = yaml.safe_load("\n".join(lines[1:end])) or {}
            except yaml.YAMLError as exc:
                mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
                line = min(mark.line + 2, end) if mark is not None else 2
                column = mark.column + 1 if mark is not None else 1
                problem = getattr(exc, "problem", None) or exc.__class__.__name__
                raise ModelSyntaxError(
                    f"the YAML header is not valid YAML ({problem}); expected 'key: value' lines",
                    line,
                    column,
                    lines[line - 1],
                ) from None
            except RecursionError:
                raise ModelSyntaxError(
                    "the YAML header is nested too deeply; expected 'key: value' lines", 2, 1
                ) from None
            if not isinstance(options, dict):
                raise ModelSyntaxError(
                    "the YAML header must be 'key: value' lines", 2, 1, lines[1] if end > 1 else ""
                )
            _check_header(options, lines, end)
            return options, lines[end + 1 :], end + 1
    raise ModelSyntaxError(
        "the YAML header opened with '---' is never closed; end it with a second '---' line",
        1,
        1,
        lines[0],
    )


def _nearest(word: str, choices: tuple[str, ...] | list[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``choices``, or nothing."""
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.5)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _check_header(options: dict, lines: list[str], end: int) -> None:
    """Refuse a header key or value that bayes_sor does not know, naming the known ones."""

    def located(key: str) -> tuple[int, str]:
        line = next((k + 1 for k in range(1, end) if lines[k].lstrip().startswith(key)), 2)
        return line, lines[line - 1]

    known = list(HEADER_OPTIONS)
    for key, value in options.items():
        key = str(key)
        if key not in HEADER_OPTIONS:
            line, raw = located(key)
            raise ModelSyntaxError(
                f"unknown header option {key!r}{_nearest(key, known)}; the options are "
                f"{', '.join(known)}",
                line,
                1,
                raw,
            )
        values = HEADER_OPTIONS[key]
        if values is not None and str(value) not in values:
            line, raw = located(key)
            raise ModelSyntaxError(
                f"unknown {key} {str(value)!r}{_nearest(str(value), values)}; use one of "
                f"{', '.join(values)}",
                line,
                len(raw) - len(raw.partition(":")[2].lstrip()) + 1,
                raw,
            )


def check_moderator_values(value: object) -> dict[str, list[float]]:
    """The ``moderator_values`` option (``{W: [-0.5, 0, 0.5]}``) as finite floats per moderator.

    The header option and ``fit(moderator_values=...)`` share this check; a problem is a
    :class:`ModelSpecError` naming it (:func:`parse` reports it at the header line).
    """
    example = "e.g. 'moderator_values: {W: [-0.5, 0, 0.5]}'"
    if not isinstance(value, dict) or not value:
        raise ModelSpecError(
            f"moderator_values must map each moderator to a list of its values, {example}; "
            f"got {value!r}"
        )
    out = {}
    for name, values in value.items():
        values = list(values) if isinstance(values, list | tuple) else [values]
        bad = [
            v
            for v in values
            if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v)
        ]
        if bad or not values:
            raise ModelSpecError(
                f"moderator_values of {name!r} must be a list of finite numbers, {example}; "
                f"got {bad[0] if bad else values!r}"
            )
        out[str(name)] = [float(v) for v in values]
    return out


def _header_moderator_values(value: object, text: str) -> dict[str, list[float]]:
    try:
        return check_moderator_values(value)
    except ModelSpecError as exc:
        lines = _NEWLINE.split(text)
        line = next(
            (k + 1 for k, raw in enumerate(lines) if raw.lstrip().startswith("moderator_values")), 2
        )
        raise ModelSyntaxError(f"in the YAML header, {exc}", line, 1, lines[line - 1]) from None


_ARITHMETIC = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow, ast.USub, ast.UAdd)
_EXPRESSION_NODES = (
    ast.Expression,
    ast.BinOp,
    ast.UnaryOp,
    ast.Name,
    ast.Constant,
    ast.Load,
    *_ARITHMETIC,
)
_EXPECTED_EXPRESSION = "labels, numbers, + - * / ^ and parentheses"


class _Definition:
    """A ``name := expression`` statement, possibly continued over several lines."""

    def __init__(self, name: str, pieces: list[_Piece]) -> None:
        self.name = name
        self.pieces = pieces

    def needs_more(self) -> bool:
        """True when the expression so far cannot end here (trailing operator, open '(')."""
        expression = " ".join(p.code for p in self.pieces).strip()
        if not expression or expression.endswith(("+", "-", "*", "/", "^", "(")):
            return True
        return expression.count("(") > expression.count(")")

    def _locate(self, index: int) -> tuple[int, int, str]:
        """(line, column, raw) of character ``index`` of the joined expression."""
        position = 0
        for piece in self.pieces:
            if index < position + len(piece.code) + 1:
                offset = min(index - position, len(piece.code))
                return piece.line, piece.column + offset, piece.raw
            position += len(piece.code) + 1
        last = self.pieces[-1]
        return last.line, last.column + len(last.code.rstrip()), last.raw

    def statement(self) -> Statement:
        joined = " ".join(p.code for p in self.pieces)
        if not joined.strip():
            line, column, raw = self._locate(0)
            raise ModelSyntaxError(
                f"expected an expression ({_EXPECTED_EXPRESSION}) after ':='", line, column, raw
            )
        # '^' is lavaan's power; map each character of the Python text back to the original.
        python, origin = [], []
        lead = len(joined) - len(joined.lstrip())
        for i, char in enumerate(joined[lead:], start=lead):
            python.append("**" if char == "^" else char)
            origin.extend([i, i] if char == "^" else [i])
        source = "".join(python)
        try:
            tree = ast.parse(source, mode="eval")
        except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
            offset = getattr(exc, "offset", None) or 0
            index = origin[offset - 1] if 0 < offset <= len(origin) else len(joined.rstrip())
            line, column, raw = self._locate(index)
            raise ModelSyntaxError(
                f"the definition of {self.name!r} is not a valid arithmetic expression; "
                f"expected {_EXPECTED_EXPRESSION}",
                line,
                column,
                raw,
            ) from None
        for node in ast.walk(tree):
            allowed = isinstance(node, _EXPRESSION_NODES) and not (
                isinstance(node, ast.Constant)
                and (isinstance(node.value, bool) or not isinstance(node.value, (int, float)))
            )
            if not allowed:
                at = getattr(node, "col_offset", 0)
                index = origin[at] if at < len(origin) else 0
                line, column, raw = self._locate(index)
                raise ModelSyntaxError(
                    f"the definition of {self.name!r} contains {_describe(node)}; expected only "
                    f"{_EXPECTED_EXPRESSION}",
                    line,
                    column,
                    raw,
                )
        return Statement(self.name, ":=", " ".join(joined.split()), self.pieces[0].line)


def _describe(node: ast.AST) -> str:
    """What a disallowed node of a ``:=`` expression is, in words."""
    if isinstance(node, ast.Call):
        return "a function call"
    if isinstance(node, ast.Attribute):
        return "attribute access ('.')"
    if isinstance(node, ast.Constant):
        return f"the constant {node.value!r}"
    if isinstance(node, ast.operator | ast.unaryop | ast.cmpop | ast.boolop):
        return f"the operator {type(node).__name__}"
    return f"an unsupported construct ({type(node).__name__})"


def _definition_start(piece: _Piece) -> _Definition | None:
    match = _DEFINITION.match(piece.code)
    if match is None:
        return None
    expression = match.group(2)
    skip = match.start(2) + len(expression) - len(expression.lstrip())
    rest = _Piece(piece.code[skip:], piece.line, piece.column + skip, piece.raw)
    return _Definition(match.group(1), [rest])


def _has_operator(tokens: list[_Token]) -> bool:
    return any(t.kind == "op" for t in tokens)


def _logical_lines(lines: list[str], offset: int) -> list[list[_Token] | Statement]:
    """Join continued lines and split on ';' into statements (token lists or definitions).

    Definitions (``:=``) are parsed on the spot, since their right-hand side is an arithmetic
    expression, not a list of terms. A line continues the statement before it when that one
    ends in ``+ * : ( ,`` or an operator, or when the line starts with ``+``/``*`` (or with an
    operator and the statement so far has none); a line that is itself a complete
    ``lhs op rhs`` never continues the one before.
    """
    statements: list[list[_Token] | Statement] = []
    current: list[_Token] = []
    definition: _Definition | None = None
    for index, raw in enumerate(lines):
        line_no = index + 1 + offset
        code = _strip_comment(raw)
        for part_no, (start, part) in enumerate(_split_parts(code)):
            piece = _Piece(part, line_no, start + 1, raw)
            if definition is not None:
                stripped = part.strip()
                if (
                    part_no == 0
                    and stripped
                    and not re.search(r"~|:=|\|", part)
                    and (definition.needs_more() or stripped[0] in "+-*/^)")
                ):
                    definition.pieces.append(piece)
                    continue
                if not stripped and part_no == 0 and definition.needs_more():
                    continue
                statements.append(definition.statement())
                definition = None
            started = _definition_start(piece)
            if started is not None:
                if current:
                    statements.append(current)
                    current = []
                definition = started
                continue
            tokens = _tokenize(piece)
            if not tokens:
                continue
            new_statement = _has_operator(tokens) and _has_operator(current)
            continues = (
                current
                and not new_statement
                and (
                    current[-1].value in ("+", "*", ":", "(", ",")
                    or current[-1].kind == "op"
                    or tokens[0].value in ("+", "*")
                    or (tokens[0].kind == "op" and not _has_operator(current))
                )
            )
            if continues and part_no == 0:
                current.extend(tokens)
                continue
            if current:
                statements.append(current)
            current = tokens
    if definition is not None:
        statements.append(definition.statement())
    if current:
        statements.append(current)
    return statements


class _Parser:
    """Recursive-descent parser over one statement's tokens."""

    def __init__(self, tokens: list[_Token]) -> None:
        self.tokens = tokens
        self.pos = 0
        self.line = tokens[0].line

    def fail(self, message: str, token: _Token) -> ModelSyntaxError:
        return ModelSyntaxError(message, token.line, token.column, token.text)

    def error(self, expected: str, token: _Token | None = None) -> ModelSyntaxError:
        token = token or self.peek()
        if token is None:
            last = self.tokens[-1]
            return ModelSyntaxError(
                f"expected {expected} after {last.value!r}, found the end of the statement",
                last.line,
                last.column + len(last.value),
                last.text,
            )
        return self.fail(f"expected {expected}, found {token.value!r}", token)

    def peek(self) -> _Token | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, kind: str | None = None, value: str | None = None, expected: str = "") -> _Token:
        token = self.peek()
        if token is None or (kind and token.kind != kind) or (value and token.value != value):
            raise self.error(expected or (value and repr(value)) or kind or "more")
        self.pos += 1
        return token

    def statement(self) -> list[Statement]:
        lhs = [self.variable(allow_interaction=False)]
        while self.peek() is not None and self.peek().value == "+":
            self.pos += 1
            lhs.append(self.variable(allow_interaction=False))
        op_token = self.take("op", expected="an operator (=~, ~, ~~, := or |)")
        op = op_token.value
        if op == ":=":
            raise self.fail(
                "expected a definition as 'name := expression', with a single name before ':='",
                op_token,
            )
        out: list[Statement] = []
        while True:
            term = self.term(lhs[0], op)
            out.extend(replace(term, lhs=name) for name in lhs)
            token = self.peek()
            if token is None:
                return out
            if token.value != "+":
                raise self.error("'+' between terms or the end of the statement")
            self.pos += 1

    def variable(self, allow_interaction: bool) -> str:
        token = self.take("ident", expected="a variable name")
        name = token.value
        if allow_interaction:
            while self.peek() is not None and self.peek().value == ":":
                self.pos += 1
                name += ":" + self.take("ident", expected="a variable name after ':'").value
        return name

    def term(self, lhs: str, op: str) -> Statement:
        mods: dict = {}
        start_pos = self.pos
        while True:
            token = self.peek()
            following = self.tokens[self.pos + 1] if self.pos + 1 < len(self.tokens) else None
            if token is None:
                raise self.error("a variable name")
            if following is not None and following.value == "*":
                self.modifier(token, mods)
                self.pos += 2
                continue
            if following is not None and following.value == "(" and token.kind == "ident":
                self.function_modifier(mods)
                self.take(value="*", expected="'*' after the modifier")
                continue
            break
        if op == "~" and token.kind == "number" and token.value == "1":
            self.pos += 1
            return Statement(lhs, "~1", "", self.line, **mods)
        name = self.variable(allow_interaction=op == "~")
        if op == "|" and not re.fullmatch(r"t\d+", name):
            raise self.fail(
                f"expected a threshold name t1, t2, ... after '|', found {name!r}", token
            )
        if mods.get("na") and "fixed" in mods and mods["fixed"] is not None:
            raise self.fail(
                "this term is both fixed and freed (NA*); expected one of them",
                self.tokens[start_pos],
            )
        return Statement(lhs, op, name, self.line, **mods)

    def modifier(self, token: _Token, mods: dict) -> None:
        if token.kind == "number":
            self.set_modifier(mods, "fixed", float(token.value), token)
        elif token.kind == "ident" and token.value == "NA":
            self.set_modifier(mods, "fixed", None, token)
            mods["na"] = True
        elif token.kind == "ident":
            self.set_modifier(mods, "label", token.value, token)
        else:
            raise self.error("a number, label or modifier before '*'", token)

    def function_modifier(self, mods: dict) -> None:
        name_token = self.take("ident")
        if name_token.value not in _MODIFIER_FUNCTIONS:
            raise self.fail(
                f"unknown modifier {name_token.value}(); expected label(), start(), prior(), "
                "equal() or c()",
                name_token,
            )
        self.take(value="(")
        if name_token.value == "c":
            self.set_modifier(mods, "per_group", self.group_values(), name_token)
            return
        arg = self.take(expected="the modifier's argument")
        self.take(value=")", expected="')' to close the modifier")
        name = name_token.value
        if name in ("label", "equal", "prior"):
            if arg.kind != "string":
                raise self.error(f'a quoted string in {name}("...")', arg)
            key = "prior" if name == "prior" else "label"
            self.set_modifier(mods, key, arg.value[1:-1], arg)
        else:
            if arg.kind != "number":
                raise self.error("a number in start(...)", arg)
            self.set_modifier(mods, "start", float(arg.value), arg)

    def group_values(self) -> tuple[str | float | None, ...]:
        """The values of ``c(...)`` after its '(' up to and including its ')': one per group,
        each a label, a number (fixed) or ``NA`` (free)."""
        values: list[str | float | None] = []
        while True:
            token = self.take(expected="a label, a number or NA in c(...)")
            if token.kind == "number":
                values.append(float(token.value))
            elif token.kind == "ident":
                values.append(None if token.value == "NA" else token.value)
            elif token.kind == "string":
                values.append(token.value[1:-1])
            else:
                raise self.error("a label, a number or NA in c(...)", token)
            if self.take(expected="',' or ')' in c(...)").value == ")":
                return tuple(values)
            if self.tokens[self.pos - 1].value != ",":
                raise self.error("',' or ')' in c(...)", self.tokens[self.pos - 1])

    def set_modifier(self, mods: dict, key: str, value, token: _Token) -> None:
        if key in mods:
            raise self.fail(
                f"the {key} of this term is given twice; expected each modifier once", token
            )
        clash = {"per_group": ("label", "fixed"), "label": ("per_group",), "fixed": ("per_group",)}
        if any(other in mods for other in clash.get(key, ())):
            raise self.fail(
                "this term has both c(...) and a single label or value; expected one of them "
                "(c() gives one per group)",
                token,
            )
        mods[key] = value


def parse(text: str) -> ModelSpec:
    """Parse lavaan model text into a :class:`ModelSpec`.

    Raises :class:`ModelSyntaxError` naming line and column on any error.
    """
    if "\x00" in text:
        before = text[: text.index("\x00")]
        previous = _NEWLINE.split(before)
        line = len(previous)
        raise ModelSyntaxError(
            "the model file is binary (it holds NUL bytes), not text; expected lavaan model syntax",
            line,
            len(previous[-1]) + 1,
        )
    text = text.removeprefix("\ufeff")
    options, body, offset = _split_header(text)
    if "moderator_values" in options:
        options["moderator_values"] = _header_moderator_values(options["moderator_values"], text)
    hypotheses = [
        Hypothesis(m.group(1), m.group(2), i + 1 + offset)
        for i, raw in enumerate(body)
        if (m := _HYPOTHESIS.match(raw))
    ]
    statements: list[Statement] = []
    for item in _logical_lines(body, offset):
        if isinstance(item, Statement):
            statements.append(item)
        else:
            statements.extend(_Parser(item).statement())
    if not statements:
        raise ModelSyntaxError(
            "the model has no statements; expected at least one 'factor =~ item1 + item2 + item3'",
            offset + 1 if body else 1,
            1,
        )
    return ModelSpec(statements, options, hypotheses, text)
