"""The declared Likert range of the answers (``--scale 1-7``)."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from bayes_sor.errors import DataError


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
