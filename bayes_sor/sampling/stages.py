"""One console line per stage of a long command, stamped with the time since it began.

A first fit spends minutes compiling before the progress bar appears; a line naming what runs
(and how long it usually takes) keeps the user from taking it for a hang. Lines go to stdout and
are flushed at once, so they arrive also when stdout is a pipe (a log file, ``tee``, CI).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

#: what a caller gives a function that reports stages; ``None`` reports nothing
StageReporter = Callable[[str], None]


class Stages:
    """Print ``[  12.3 s] text`` for each stage: the seconds since this object was made."""

    def __init__(self) -> None:
        self.start = time.perf_counter()

    def __call__(self, text: str) -> None:
        elapsed = time.perf_counter() - self.start
        print(f"[{elapsed:6.1f} s] {text}", file=sys.stdout, flush=True)


def quiet(text: str) -> None:
    """The reporter of API calls: stages are not printed."""
