"""One result type for the checks (bayes_sor.checks.result): each check's compute returns a
CheckResult and writes nothing; one writer puts it into a run folder; one helper builds the
commands."""

import argparse
import os
from dataclasses import replace
from pathlib import Path

import matplotlib
import pandas as pd
import pytest
from fakes import laplace_draws, truth, write_run
from matplotlib.figure import Figure

from bayes_sor.checks.ppc_report import ppc_check
from bayes_sor.checks.reliability import reliability_check
from bayes_sor.checks.result import (
    CheckResult,
    FigureSettings,
    Outcome,
    add_check_command,
    add_result_command,
    write_result,
)
from bayes_sor.checks.sensitivity import sensitivity_check
from bayes_sor.errors import BayesSORError
from bayes_sor.model.simulate import simulate
from bayes_sor.report.document import section_markers
from bayes_sor.report.figures import save_png
from bayes_sor.runs.rundir import load_run
from bayes_sor.spec.partable import build_partable

matplotlib.use("Agg")

CFA = """
F1 =~ x1 + x2 + x3
F2 =~ x4 + x5 + x6
"""


def folder_state(folder) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    pt = build_partable(CFA)
    data = simulate(pt, truth(pt), 300, 3)
    return write_run(
        tmp_path_factory.mktemp("check") / "run", pt, laplace_draws(pt, data, n_draws=400), data
    )


CHECKS = {
    "ppc": lambda run: ppc_check(run, draws=100, seed=1),
    "reliability": lambda run: reliability_check(run),
    "sensitivity": lambda run: sensitivity_check(run),
}
FILES = {
    "ppc": {
        "fit_measures.csv",
        "residuals.csv",
        "ppc_items.csv",
        "ppc_items.png",
        "ppc_residuals.png",
    },
    "reliability": {"reliability.csv"},
    "sensitivity": {"sensitivity.csv"},
}


@pytest.mark.parametrize("name", CHECKS)
def test_a_check_returns_one_result_and_writes_nothing(name, run_dir):
    before = folder_state(run_dir)
    result = CHECKS[name](load_run(run_dir))
    assert folder_state(run_dir) == before
    assert isinstance(result, CheckResult) and result.name == name
    assert (
        set(result.tables) | {n for n, f in result.figures.items() if f is not None} == FILES[name]
    )
    assert result.text.startswith("## ") and result.console
    assert result.passed in (True, False, None)


@pytest.mark.parametrize("name", CHECKS)
def test_writing_a_result_writes_its_files_and_its_section(name, run_dir):
    result = CHECKS[name](load_run(run_dir))
    written = write_result(result, run_dir)
    assert {p.name for p in written} == FILES[name] | {"report.md"}
    for file, table in result.tables.items():
        assert (run_dir / file).read_text() == table.to_csv(index=False)
    for file in result.figures:
        assert (run_dir / file).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    begin, end = section_markers(name)
    report = (run_dir / "report.md").read_text()
    assert f"{begin}\n{result.text.strip()}\n{end}" in report


def test_a_figure_the_check_cannot_draw_removes_an_earlier_one(tmp_path):
    (tmp_path / "old.png").write_bytes(b"an earlier run's figure")
    fig = Figure()
    fig.add_subplot().plot([0, 1])
    result = CheckResult(
        "demo",
        "## Demo\n\ntext",
        tables={"t.csv": pd.DataFrame({"a": [1]})},
        figures={"old.png": None, "new.png": fig},
    )
    written = write_result(result, tmp_path)
    assert not (tmp_path / "old.png").exists()
    assert (tmp_path / "new.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in written] == ["t.csv", "new.png", "report.md"]
    assert "## Demo" in (tmp_path / "report.md").read_text()


def test_outside_a_run_folder_no_section_is_written(tmp_path):
    write_result(
        CheckResult("demo", "## Demo", tables={"t.csv": pd.DataFrame({"a": [1]})}),
        tmp_path,
        section=False,
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.csv"]


def test_a_registered_check_validates_first_then_loads_writes_and_prints(run_dir, capsys, tmp_path):
    calls = []

    def check(run, args):
        calls.append((run.path, args.level))
        return [
            CheckResult(
                "demo",
                "## Demo check",
                tables={"demo.csv": pd.DataFrame({"level": [args.level]})},
                console="demo printed",
            ),
            CheckResult("quiet", "## Q"),
        ]

    def validate(args):
        if args.level > 1:
            raise BayesSORError("--level must be at most 1")

    parser = argparse.ArgumentParser()
    add_check_command(
        parser.add_subparsers(),
        "demo",
        "a demo check",
        check,
        declare=lambda p: p.add_argument("--level", type=float, default=0.5),
        validate=validate,
    )
    args = parser.parse_args(["demo", str(run_dir)])
    assert args.handler(args) == 0
    assert calls == [(run_dir, 0.5)]
    assert pd.read_csv(run_dir / "demo.csv").level.tolist() == [0.5]
    assert capsys.readouterr().out == "demo printed\n"
    report = (run_dir / "report.md").read_text()
    assert "## Demo check" in report and "## Q" in report
    # bad options are refused before the run folder is read (here: a folder without a run)
    bad = parser.parse_args(["demo", str(tmp_path / "missing"), "--level", "2"])
    with pytest.raises(BayesSORError, match="--level"):
        bad.handler(bad)


def png_size(path) -> tuple[int, int]:
    """Width and height of a PNG, from its header."""
    header = path.read_bytes()[16:24]
    return int.from_bytes(header[:4], "big"), int.from_bytes(header[4:], "big")


def test_each_figure_is_saved_with_its_own_settings(tmp_path):
    """The default: 110 dpi, the whole canvas; a figure's own settings: its dpi, cropped to
    what is drawn, exactly as report/figures.save_png writes it."""
    figures = {}
    for name in ("plain.png", "tight.png", "reference.png"):
        figures[name] = Figure(figsize=(4, 3))
        figures[name].add_subplot().plot([0, 1])
    result = CheckResult(
        "demo",
        "## Demo",
        figures={"plain.png": figures["plain.png"], "tight.png": figures["tight.png"]},
        figure_settings={"tight.png": FigureSettings(dpi=130, tight=True)},
    )
    write_result(result, tmp_path, section=False)
    save_png(figures["reference.png"], tmp_path / "reference.png", dpi=130)
    assert png_size(tmp_path / "plain.png") == (440, 330)
    assert (tmp_path / "tight.png").read_bytes() == (tmp_path / "reference.png").read_bytes()
    width, height = png_size(tmp_path / "tight.png")
    assert width < 4 * 130 and height < 3 * 130


def test_a_result_for_another_folder_links_its_figures_from_the_runs_report(run_dir, tmp_path):
    """Files and documents go to the result's own folder; its section to the run's report,
    with the figure links relative to the run folder."""
    fig = Figure()
    fig.add_subplot().plot([0, 1])
    result = CheckResult(
        "elsewhere",
        "## Elsewhere\n\n![the figure](elsewhere.png)",
        tables={"elsewhere.csv": pd.DataFrame({"a": [1]})},
        figures={"elsewhere.png": fig},
        documents={"elsewhere.md": "# Elsewhere\n"},
    )
    out = tmp_path / "out"
    written = write_result(result, out, run_dir=run_dir)
    names = ["elsewhere.csv", "elsewhere.png", "elsewhere.md", "report.md"]
    assert [p.name for p in written] == names
    assert written[-1] == run_dir / "report.md"
    assert (out / "elsewhere.md").read_text() == "# Elsewhere\n"
    link = os.path.relpath(out / "elsewhere.png", run_dir)
    assert f"![the figure]({link})" in (run_dir / "report.md").read_text()
    assert not (out / "report.md").exists() and not (run_dir / "elsewhere.csv").exists()


def test_a_result_command_writes_to_its_folder_and_exits_with_its_code(run_dir, tmp_path, capsys):
    def compute(args):
        result = CheckResult("made", "## Made", tables={"made.csv": pd.DataFrame({"a": [1]})})
        return Outcome([replace(result, console="made it")], args.out, run_dir, exit_code=1)

    parser = argparse.ArgumentParser()
    add_result_command(
        parser.add_subparsers(),
        "make",
        "a command with a folder of its own",
        compute,
        declare=lambda p: p.add_argument("--out", type=Path),
    )
    args = parser.parse_args(["make", "--out", str(tmp_path / "made")])
    assert args.handler(args) == 1
    assert (tmp_path / "made" / "made.csv").is_file()
    assert "## Made" in (run_dir / "report.md").read_text()
    assert capsys.readouterr().out == "made it\n"
