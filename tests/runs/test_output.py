"""Nothing is lost: a run folder is replaced only by a complete run, whatever stops the fit.

Fast tests drive :mod:`bayes_sor.runs.output` directly and interrupt an in-process fit; the slow
ones kill ``python -m bayes_sor fit`` (SIGKILL, and SIGINT as Ctrl-C sends it) while it samples.
"""

from __future__ import annotations

import importlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import xarray as xr
from paths import ROOT

from bayes_sor.cli.main import main
from bayes_sor.errors import OutputError
from bayes_sor.runs.output import check_destination, staging

HS_FIT = [
    "fit",
    str(ROOT / "models/holzinger_swineford.lav"),
    "--data",
    str(ROOT / "data/holzinger_swineford.csv"),
    "--scale",
    "none",
    "--likelihood",
    "marginal",
    "--chains",
    "2",
    "--tune",
    "100",
    "--no-report",
    "--no-progress",
    "--allow-warnings",
    "--force",
]


def _snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (relative path -> bytes)."""
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def _old_run(folder: Path) -> Path:
    """A stand-in for a finished run folder."""
    folder.mkdir(parents=True)
    (folder / "posterior.nc").write_bytes(b"old posterior")
    (folder / "estimates.csv").write_text("lhs,op,rhs\n")
    return folder


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


# ---- staging and what a killed run leaves behind -------------------------------------------
def test_a_failed_write_keeps_the_old_run_and_leaves_no_temporary_folder(tmp_path):
    old = _old_run(tmp_path / "run")
    before = _snapshot(tmp_path)
    with pytest.raises(RuntimeError), staging(old, force=True) as tmp:
        (tmp / "posterior.nc").write_bytes(b"half")
        raise RuntimeError("disk full")
    assert _snapshot(tmp_path) == before


def test_a_complete_write_replaces_the_run_and_leaves_nothing_beside_it(tmp_path):
    old = _old_run(tmp_path / "run")
    with staging(old, force=True) as tmp:
        (tmp / "posterior.nc").write_bytes(b"new posterior")
    assert _snapshot(tmp_path) == {"run/posterior.nc": b"new posterior"}


@pytest.mark.parametrize("name", ["run", "run[1]*"])
def test_a_rerun_removes_the_staging_folder_of_a_killed_run(tmp_path, name):
    old = _old_run(tmp_path / name)
    other = tmp_path / f".{name}2.tmp-{_dead_pid()}-x1y2"  # another run's: not ours to clear
    other.mkdir()
    (other / "posterior.nc").write_bytes(b"theirs")
    before = _snapshot(tmp_path)
    stale = tmp_path / f".{name}.tmp-{_dead_pid()}-x1y2"
    stale.mkdir()
    (stale / "posterior.nc").write_bytes(b"half written")
    check_destination(old, force=True)
    assert _snapshot(tmp_path) == before


def test_a_run_killed_between_its_renames_gets_the_old_run_back(tmp_path):
    """Killed after moving the old run aside and before renaming the new one into place."""
    pid = _dead_pid()
    moved = _old_run(tmp_path / f".run.old-{pid}")
    before = _snapshot(moved)
    (tmp_path / f".run.tmp-{pid}-abcd").mkdir()
    check_destination(tmp_path / "run", force=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    assert _snapshot(tmp_path / "run") == before


def test_folders_of_a_running_process_are_left_alone(tmp_path):
    """Another fit writing beside the same --out right now (this process stands in for it)."""
    busy = tmp_path / f".run.tmp-{os.getpid()}-busy"
    busy.mkdir()
    check_destination(tmp_path / "run", force=False)
    assert busy.is_dir()


def test_force_replaces_only_a_run_folder(tmp_path):
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "thesis.docx").write_bytes(b"years of work")
    with pytest.raises(OutputError, match=r"not a bayes_sor run .* choose a new or empty folder"):
        check_destination(notes, force=True)
    with pytest.raises(OutputError, match="current folder"):
        check_destination(Path("."), force=True)


def _committed_example(folder: Path) -> Path:
    """reports/impulse_buying as git has it: a run's files without posterior.nc."""
    source = ROOT / "reports/impulse_buying"
    folder.mkdir(parents=True)
    tracked = subprocess.run(
        ["git", "ls-files", "."], cwd=source, capture_output=True, text=True, check=True
    ).stdout.split()
    for name in tracked:
        (folder / name).write_bytes((source / name).read_bytes())
    assert not (folder / "posterior.nc").exists() and (folder / "estimates.csv").is_file()
    return folder


def test_force_replaces_a_run_whose_posterior_git_did_not_keep(tmp_path):
    """The README's first command (--force) on a fresh clone's committed example run."""
    example = _committed_example(tmp_path / "impulse_buying")
    with pytest.raises(OutputError, match="already holds a run; pass --force"):
        check_destination(example, force=False)
    check_destination(example, force=True)


@pytest.mark.parametrize("table", ["estimates.csv", "effects.csv", "partable.csv"])
def test_force_refuses_a_folder_with_a_run_table_missing_or_foreign(tmp_path, table):
    folder = _committed_example(tmp_path / "notes")
    (folder / table).write_text("name,value\nmy own table,1\n")
    with pytest.raises(OutputError, match=r"not a bayes_sor run .* choose a new or empty folder"):
        check_destination(folder, force=True)
    (folder / table).unlink()
    with pytest.raises(OutputError, match="not a bayes_sor run"):
        check_destination(folder, force=True)


def test_a_check_on_the_committed_example_names_the_command_that_recreates_it(tmp_path, capsys):
    example = _committed_example(tmp_path / "impulse_buying")
    assert main(["ppc", str(example)]) == 2
    err = capsys.readouterr().err
    assert "holds a run's tables but not its posterior.nc" in err
    assert (
        "'python -m bayes_sor fit models/impulse_buying.lav --data data/impulse_buying.csv "
        "--out reports/impulse_buying --force'"
    ) in err


def test_ctrl_c_during_sampling_keeps_the_old_run(tmp_path, monkeypatch, capsys):
    old = _old_run(tmp_path / "run")
    before = _snapshot(tmp_path)

    def interrupted(built, settings, stage, **sampling):
        raise KeyboardInterrupt

    monkeypatch.setattr(importlib.import_module("bayes_sor.runs.fit"), "sample", interrupted)
    code = main([*HS_FIT, "--draws", "10", "--out", str(old)])
    assert code == 130
    assert "earlier results are untouched" in capsys.readouterr().err
    assert _snapshot(tmp_path) == before


# ---- killing the command line while it samples ---------------------------------------------
def _sampling(pid: int) -> bool:
    """True once nutpie's worker threads run in process ``pid`` (Linux: thread names)."""
    tasks = Path(f"/proc/{pid}/task")
    try:
        return any("nutpie-worker" in (t / "comm").read_text() for t in tasks.iterdir())
    except OSError:  # the process or one of its threads has just ended
        return False


def _interrupt_while_sampling(argv: list[str], sig: signal.Signals, logs: Path) -> int:
    with open(logs / "stdout", "w") as out, open(logs / "stderr", "w") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "bayes_sor", *argv], stdout=out, stderr=err, cwd=ROOT
        )
        deadline = time.monotonic() + 240
        while not _sampling(process.pid):
            assert process.poll() is None, (logs / "stderr").read_text()
            assert time.monotonic() < deadline, "sampling never started"
            time.sleep(0.02)
        time.sleep(0.5)
        assert process.poll() is None, "sampling finished before it could be interrupted"
        process.send_signal(sig)
        return process.wait(timeout=120)


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc")
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "SIGINT"])
def test_a_fit_killed_while_sampling_loses_nothing_and_reruns(tmp_path, sig):
    out = tmp_path / "runs" / "hs"
    assert main([*HS_FIT, "--draws", "100", "--out", str(out)]) == 0
    before = _snapshot(tmp_path / "runs")
    command = [*HS_FIT, "--draws", "20000", "--out", str(out)]

    code = _interrupt_while_sampling(command, sig, tmp_path)
    assert code == (-signal.SIGKILL if sig == signal.SIGKILL else 130)
    if sig == signal.SIGINT:
        assert "earlier results are untouched" in (tmp_path / "stderr").read_text()
    assert _snapshot(tmp_path / "runs") == before  # no file changed, no folder left beside

    rerun = subprocess.run(
        [sys.executable, "-m", "bayes_sor", *command],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    assert rerun.returncode == 0, rerun.stderr
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["hs"]
    posterior = xr.open_datatree(out / "posterior.nc")["posterior"]
    assert dict(posterior.sizes)["draw"] == 20000 and dict(posterior.sizes)["chain"] == 2
    assert {"estimates.csv", "effects.csv", "hypotheses.csv", "partable.csv"} <= {
        p.name for p in out.iterdir()
    }
