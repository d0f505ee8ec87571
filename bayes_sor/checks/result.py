"""One result type for every check of a run, one writer of it into a run folder, and one
registration of the commands that run a check.

A check computes a :class:`CheckResult` without writing anything (so it can be tested, shown
or combined with others); :func:`write_result` puts it into the run folder (its CSV tables,
its PNG figures, its section of ``report.md`` and ``report.html``, each written atomically);
:func:`add_check_command` builds the subcommand around it: load the run, compute, write, print.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from bayes_sor.report.figures import write_readable
from bayes_sor.report.sections import append_report_section
from bayes_sor.runs.rundir import Run, load_run, write_csv

if TYPE_CHECKING:
    from matplotlib.figure import Figure as MplFigure

#: resolution of a check's figures
FIGURE_DPI = 110


@dataclass(frozen=True)
class CheckResult:
    """What a check found.

    ``name`` is the key of its section of ``report.md``; ``text`` that section (Markdown);
    ``tables`` and ``figures`` map the run folder's file names to their content (a figure of
    ``None`` is one this run of the check cannot draw: an earlier run's file of that name is
    removed, so that it is not shown as this one's); ``passed`` the verdict where the check
    has one; ``notes`` what was approximated or left out; ``console`` what the command prints.
    """

    name: str
    text: str
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    figures: dict[str, MplFigure | None] = field(default_factory=dict)
    passed: bool | None = None
    notes: tuple[str, ...] = ()
    console: str = ""


def write_result(result: CheckResult, folder: Path, section: bool = True) -> list[Path]:
    """Write ``result`` into the run folder ``folder``: tables, figures, then its report
    section (which links the figures, so they are in place first; ``section=False`` for a
    folder that holds no run). Returns the files written."""
    folder = Path(folder)
    written = []
    for name, table in result.tables.items():
        write_csv(table, folder / name)
        written.append(folder / name)
    for name, figure in result.figures.items():
        if figure is None:
            (folder / name).unlink(missing_ok=True)
            continue
        write_readable(
            folder / name, lambda tmp, fig=figure: fig.savefig(tmp, format="png", dpi=FIGURE_DPI)
        )
        written.append(folder / name)
    if section:
        written.append(append_report_section(folder, result.name, result.text))
    return written


#: a check as a command runs it: the run and the parsed options -> its results
Check = Callable[[Run, argparse.Namespace], Sequence[CheckResult]]


def add_check_command(
    subparsers: argparse._SubParsersAction,
    name: str,
    help: str,
    check: Check,
    declare: Callable[[argparse.ArgumentParser], None] | None = None,
    validate: Callable[[argparse.Namespace], None] | None = None,
) -> None:
    """Register ``python -m bayes_sor NAME RUN_DIR [options]``: ``declare`` adds the command's
    options, ``validate`` refuses bad ones (before the run is read); the command then runs
    ``check`` on the run, writes each result into the run folder and prints each result's
    ``console`` text; its exit code is 0 (a check's verdict is reported, not an error)."""
    parser = subparsers.add_parser(name, help=help)
    parser.add_argument("run_dir", type=Path, help="a run folder written by 'fit'")
    if declare is not None:
        declare(parser)

    def handler(args: argparse.Namespace) -> int:
        if validate is not None:
            validate(args)
        run = load_run(args.run_dir)
        results = check(run, args)
        for result in results:
            write_result(result, run.path)
        for result in results:
            if result.console:
                print(result.console)
        return 0

    parser.set_defaults(handler=handler)
