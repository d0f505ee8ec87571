"""The project's exception types: every user-facing failure is one of these.

The CLI turns them into one line on stderr and exit code 2; anything else is a bug and keeps
its traceback (with ``--debug`` the traceback is shown for these too).
"""

from __future__ import annotations


class BayesSORError(Exception):
    """Base class: a problem with the user's input that has a fix the message names."""


class ModelSyntaxError(BayesSORError):
    """The model text is not valid lavaan syntax."""

    def __init__(self, message: str, line: int, column: int, text: str = "") -> None:
        self.line = line
        self.column = column
        self.text = text
        where = f"model line {line}, column {column}"
        shown = f"\n    {text}\n    {' ' * max(column - 1, 0)}^" if text else ""
        super().__init__(f"{where}: {message}{shown}")


class ModelSpecError(BayesSORError):
    """The model is syntactically valid but cannot be fitted (unidentified, cyclic, ...)."""


class DataError(BayesSORError):
    """The data do not fit the model (missing columns, non-numeric answers, ...)."""


class OutputError(BayesSORError):
    """The output location cannot be written, or would overwrite a result."""
