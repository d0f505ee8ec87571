"""One result type for every check of a run, one writer of it into a folder, and one
registration of the commands that run a check.

A check computes a :class:`CheckResult` without writing anything (so it can be tested, shown
or combined with others); :func:`write_result` puts it into a folder (its CSV tables, its PNG
figures, its Markdown documents) and its section into the run's ``report.md`` and
``report.html``, each written atomically. :func:`add_check_command` builds the subcommand of a
check of one run folder (load the run, compute, write, print); :func:`add_result_command` that
of a command whose results go to a folder of their own (``compare``).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from bayes_sor.files import write_atomic
from bayes_sor.report.figures import save_png, write_readable
from bayes_sor.report.sections import append_report_section
from bayes_sor.runs.rundir import Run, load_run, write_csv

if TYPE_CHECKING:
    from matplotlib.figure import Figure as MplFigure

#: resolution of a check's figures
FIGURE_DPI = 110


@dataclass(frozen=True)
class FigureSettings:
    """How one figure is saved: its resolution, and whether it is cropped to what is drawn
    (with a white background)."""

    dpi: int = FIGURE_DPI
    tight: bool = False


@dataclass(frozen=True)
class CheckResult:
    """What a check found.

    ``name`` is the key of its section of ``report.md``; ``text`` that section (Markdown);
    ``tables`` and ``figures`` map the run folder's file names to their content (a figure of
    ``None`` is one this run of the check cannot draw: an earlier run's file of that name is
    removed, so that it is not shown as this one's); ``passed`` the verdict where the check
    has one; ``notes`` what was approximated or left out; ``console`` what the command prints.
    ``figure_settings`` saves a figure otherwise than :class:`FigureSettings`' defaults;
    ``documents`` are Markdown files written beside the tables (a result written outside the
    run folder is read there).
    """

    name: str
    text: str
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    figures: dict[str, MplFigure | None] = field(default_factory=dict)
    passed: bool | None = None
    notes: tuple[str, ...] = ()
    console: str = ""
    figure_settings: dict[str, FigureSettings] = field(default_factory=dict)
    documents: dict[str, str] = field(default_factory=dict)


def write_result(
    result: CheckResult, folder: Path, section: bool = True, run_dir: Path | None = None
) -> list[Path]:
    """Write ``result`` into ``folder``: tables, figures, documents, then its report section
    (which links the figures, so they are in place first) into ``run_dir``'s report, by
    default ``folder``'s (``section=False`` for a folder that holds no run). A section
    written into another folder's report links the figures relative to that folder. Returns
    the files written."""
    folder = Path(folder)
    written = []
    for name, table in result.tables.items():
        write_csv(table, folder / name)
        written.append(folder / name)
    for name, figure in result.figures.items():
        if figure is None:
            (folder / name).unlink(missing_ok=True)
            continue
        _save_figure(figure, folder / name, result.figure_settings.get(name, FigureSettings()))
        written.append(folder / name)
    for name, text in result.documents.items():
        write_atomic(folder / name, lambda p, text=text: p.write_text(text, encoding="utf-8"))
        written.append(folder / name)
    if section:
        report_dir = folder if run_dir is None else Path(run_dir)
        text = _link_figures(result.text, result.figures, folder, report_dir)
        written.append(append_report_section(report_dir, result.name, text))
    return written


def _save_figure(figure: MplFigure, path: Path, settings: FigureSettings) -> None:
    if settings.tight:
        save_png(figure, path, dpi=settings.dpi)
    else:
        write_readable(path, lambda tmp: figure.savefig(tmp, format="png", dpi=settings.dpi))


def _link_figures(text: str, figures: dict, folder: Path, report_dir: Path) -> str:
    """``text`` with its links to ``folder``'s figures made relative to ``report_dir``."""
    if folder.resolve() == report_dir.resolve():
        return text
    for name in figures:
        link = Path(os.path.relpath((folder / name).resolve(), report_dir.resolve())).as_posix()
        text = text.replace(f"]({name})", f"]({link})")
    return text


#: a check as a command runs it: the run and the parsed options -> its results
Check = Callable[[Run, argparse.Namespace], Sequence[CheckResult]]


@dataclass(frozen=True)
class Outcome:
    """What a command computed: its results, the folder for their files, the run whose report
    gets their sections (default: that folder) and the exit code."""

    results: Sequence[CheckResult]
    folder: Path
    run_dir: Path | None = None
    exit_code: int = 0


def add_result_command(
    subparsers: argparse._SubParsersAction,
    name: str,
    help: str,
    compute: Callable[[argparse.Namespace], Outcome],
    declare: Callable[[argparse.ArgumentParser], None],
    validate: Callable[[argparse.Namespace], None] | None = None,
) -> None:
    """Register ``python -m bayes_sor NAME [options]``: ``declare`` adds the command's
    arguments, ``validate`` refuses bad ones (before any input is read); the command then runs
    ``compute``, writes each result (:func:`write_result`), prints each result's ``console``
    text and exits with the outcome's code."""
    parser = subparsers.add_parser(name, help=help)
    declare(parser)

    def handler(args: argparse.Namespace) -> int:
        if validate is not None:
            validate(args)
        outcome = compute(args)
        for result in outcome.results:
            write_result(result, outcome.folder, run_dir=outcome.run_dir)
        for result in outcome.results:
            if result.console:
                print(result.console)
        return outcome.exit_code

    parser.set_defaults(handler=handler)


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

    def declare_run(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("run_dir", type=Path, help="a run folder written by 'fit'")
        if declare is not None:
            declare(parser)

    def compute(args: argparse.Namespace) -> Outcome:
        run = load_run(args.run_dir)
        return Outcome(check(run, args), run.path)

    add_result_command(subparsers, name, help, compute, declare_run, validate)
