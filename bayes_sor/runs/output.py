"""Writing a run directory atomically: a failed or interrupted run never replaces a good one."""

from __future__ import annotations

import glob
import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from bayes_sor.errors import OutputError
from bayes_sor.files import process_umask, writable_folder


def check_destination(out: Path, force: bool) -> None:
    """Refuse early (before any sampling) if ``out`` cannot receive a run.

    What an earlier, killed run left beside ``out`` is cleaned up first (see
    :func:`_recover_interrupted`), so a rerun starts from the last complete run.
    """
    out = Path(out)
    if out.resolve() in (Path.cwd(), *Path.cwd().parents):
        raise OutputError(
            f"--out {str(out)!r} is the current folder or holds it; a run is "
            "written to a folder of its own: choose e.g. reports/<name>"
        )
    _recover_interrupted(out)
    if out.exists() and not out.is_dir():
        raise OutputError(f"--out {str(out)!r} is a file, not a folder; choose another path")
    if out.exists() and any(out.iterdir()):
        # A replaced folder is deleted: only ever a run, never the user's other files.
        if not is_run_folder(out):
            raise OutputError(
                f"--out {str(out)!r} holds files but not a bayes_sor run (neither "
                f"posterior.nc nor a run's tables {', '.join(RUN_TABLES)}), which "
                "a run would delete; choose a new or empty folder"
            )
        if not force:
            raise OutputError(
                f"--out {str(out)!r} already holds a run; pass --force to replace "
                "it (the old run is kept until the new one is complete)"
            )
    writable_folder(out.resolve().parent, "--out")


#: The tables ``fit`` writes into every run folder, with the start of their header. They mark a
#: folder as a run also without its ``posterior.nc``, which git does not keep (a committed
#: example run such as ``reports/impulse_buying``), so ``--force`` can replace it.
RUN_TABLES = {
    "estimates.csv": "lhs,op,rhs,label,mean,",
    "effects.csv": "effect,kind,",
    "partable.csv": "lhs,op,rhs,label,free,",
}


def is_run_folder(folder: Path) -> bool:
    """True if ``folder`` holds a bayes_sor run: its ``posterior.nc``, or all its tables."""
    folder = Path(folder)
    if (folder / "posterior.nc").is_file():
        return True
    for name, header in RUN_TABLES.items():
        try:
            with open(folder / name, encoding="utf-8") as table:
                if not table.readline().startswith(header):
                    return False
        except (OSError, UnicodeDecodeError):
            return False
    return True


def refit_command(folder: Path) -> str:
    """The command that (re)makes the run in ``folder``: the one its ``README.md`` gives (a
    committed example says how it was made), else the general form with ``--force``."""
    folder = Path(folder)
    readme = folder / "README.md"
    text = readme.read_text(encoding="utf-8", errors="replace") if readme.is_file() else ""
    for line in text.splitlines():
        line = line.strip().strip("`")
        if line.startswith("python -m bayes_sor fit ") and " --out " in line:
            return line
    return f"python -m bayes_sor fit MODEL --data DATA --out {folder} --force"


def _staging_name(out: Path, kind: str) -> str:
    """Name (prefix) of a folder beside ``out`` while it is written: ``.NAME.tmp-PID``."""
    return f".{out.name}.{kind}-{os.getpid()}"


def _recover_interrupted(out: Path) -> None:
    """Clear up after a run that was killed while writing ``out``.

    Its staging folder (``.NAME.tmp-PID-...``) is removed; the previous run it had moved
    aside (``.NAME.old-PID``, killed between the two renames) is put back if ``out`` is
    missing, else removed. Folders of processes still running are left alone.
    """
    parent = out.resolve().parent
    if not parent.is_dir():
        return
    pattern = re.compile(rf"\.{re.escape(out.name)}\.(tmp|old)-(\d+)(-.*)?")
    # only the names this run could have left: a crowded parent folder (/tmp) costs nothing
    leftovers = parent.glob(glob.escape(f".{out.name}.") + "*")
    for path in sorted(leftovers):  # 'old' sorts first: restore before clearing
        match = pattern.fullmatch(path.name)
        if match is None or not path.is_dir() or _running(int(match.group(2))):
            continue
        if match.group(1) == "old" and not out.exists():
            path.rename(out)
        else:
            shutil.rmtree(path, ignore_errors=True)


def _running(pid: int) -> bool:
    # os.kill(pid, 0) probes on POSIX but terminates the process on Windows.
    if pid == os.getpid() or os.name != "posix":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, but belongs to someone else
        return True
    return True


@contextmanager
def staging(out: Path, force: bool):
    """Yield a temporary folder beside ``out``; on success it replaces ``out`` by rename."""
    check_destination(out, force)
    out = Path(out).resolve()
    parent = out.parent
    tmp = Path(tempfile.mkdtemp(prefix=_staging_name(out, "tmp") + "-", dir=parent))
    # mkdtemp makes a private (0700) folder; a run folder is shared like any other output.
    tmp.chmod(0o777 & ~process_umask())
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    backup = None
    if out.exists():
        backup = parent / _staging_name(out, "old")
        out.rename(backup)
    tmp.rename(out)
    if backup is not None:
        shutil.rmtree(backup, ignore_errors=True)
