"""Writing a run directory atomically: a failed or interrupted run never replaces a good one."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

from bayes_sor.errors import OutputError


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def check_destination(out: Path, force: bool) -> None:
    """Refuse early (before any sampling) if ``out`` cannot receive a run."""
    if out.exists() and not out.is_dir():
        raise OutputError(f"--out {str(out)!r} is a file, not a folder; choose another path")
    if out.exists() and any(out.iterdir()) and not force:
        raise OutputError(f"--out {str(out)!r} already holds a run; pass --force to replace "
                          "it (the old run is kept until the new one is complete)")
    parent = out.resolve().parent
    if not parent.exists():
        try:
            parent.mkdir(parents=True)
        except OSError as exc:
            raise OutputError(f"cannot create the folder {str(parent)!r}: {exc.strerror}") from None
    if not os.access(parent, os.W_OK):
        raise OutputError(f"the folder {str(parent)!r} is not writable; choose another --out")


@contextmanager
def staging(out: Path, force: bool):
    """Yield a temporary folder beside ``out``; on success it replaces ``out`` by rename."""
    check_destination(out, force)
    parent = out.resolve().parent
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=parent))
    # mkdtemp makes a private (0700) folder; a run folder is shared like any other output.
    tmp.chmod(0o777 & ~_umask())
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    backup = None
    if out.exists():
        backup = parent / f".{out.name}.old-{os.getpid()}"
        out.rename(backup)
    tmp.rename(out)
    if backup is not None:
        shutil.rmtree(backup, ignore_errors=True)


def write_atomic(path: Path, writer: Callable[[Path], None]) -> None:
    """Write one file through a temporary name in the same folder, then rename it."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's files are private (0600)
    try:
        writer(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
