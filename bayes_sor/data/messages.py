"""How data problems are shown in messages: a few offending cells per column, a few columns, the
rest counted.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable

import numpy as np

#: How many offending lines / columns a message shows before summarising the rest.
SHOW_LINES = 5
SHOW_COLUMNS = 8
SHOW_AVAILABLE = 20
SHOW_TEXT = 40


def shown_value(value: object) -> str:
    """A cell as a message shows it: whole floats without '.0', long texts cut."""
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    if isinstance(value, str):
        # An unclosed quote swallows the rest of the file into one cell; show its start only.
        return repr(value if len(value) <= SHOW_TEXT else value[:SHOW_TEXT] + "...")
    return str(value)


def column_problem(item: str, where: list[str], values: Iterable[object]) -> str:
    """'column 'x1' (line 4: 9, ...)': the first offending cells of one column."""
    values = list(values)
    shown = ", ".join(
        f"{w}: {shown_value(v)}" for w, v in zip(where[:SHOW_LINES], values, strict=False)
    )
    more = f", and {len(where) - SHOW_LINES} more" if len(where) > SHOW_LINES else ""
    return f"column {item!r} ({shown}{more})"


def summarised(problems: list[str]) -> str:
    """The first problems, joined, and how many more."""
    shown = "; ".join(problems[:SHOW_COLUMNS])
    more = len(problems) - SHOW_COLUMNS
    return shown + (f"; and {more} more" if more > 0 else "")


def listed_rows(labels: Iterable[Hashable], in_file: bool) -> str:
    """'lines 4, 9 and 3 more' (a file) or 'rows 'a', 'b'' (a DataFrame's index labels)."""
    labels = list(labels)
    shown = [str(label + 2) if in_file else repr(label) for label in labels[:SHOW_LINES]]
    noun = ("line" if in_file else "row") + ("s" if len(labels) > 1 else "")
    more = len(labels) - SHOW_LINES
    return f"{noun} {', '.join(shown)}" + (f" and {more} more" if more > 0 else "")


def quoted(names: Iterable[object], last: str = "and") -> str:
    """'a', 'b' and 'c' (or ``last``)."""
    names = [repr(str(n)) for n in names]
    if len(names) <= 1:
        return "".join(names)
    return f"{', '.join(names[:-1])} {last} {names[-1]}"
