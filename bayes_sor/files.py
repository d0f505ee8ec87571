"""Writing one file atomically: a reader never sees it half-written.

The base layer's file helpers, below everything that writes (the compiled-model cache, run
folders, reports, SBC outputs).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from bayes_sor.errors import OutputError


def process_umask() -> int:
    """The process's file-creation mask (read without changing it)."""
    umask = os.umask(0)
    os.umask(umask)
    return umask


def writable_folder(folder: Path, option: str) -> None:
    """Make ``folder`` (and its parents) if needed; refuse one that cannot take new files."""
    if folder.exists() and not folder.is_dir():
        raise OutputError(
            f"{str(folder)!r} is a file, so {option} cannot be inside it; choose another {option}"
        )
    if not folder.exists():
        try:
            folder.mkdir(parents=True, exist_ok=True)  # exist_ok: parallel writers race here
        except OSError as exc:
            raise OutputError(
                f"cannot create the folder {str(folder)!r} ({exc.strerror}); "
                f"choose another {option}"
            ) from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"the folder {str(folder)!r} is not writable; choose another {option}")


def check_file_destination(path: Path) -> None:
    """Refuse early if the file ``path`` cannot be written (its folder is made if missing)."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{str(path)!r} is a folder; give the name of the file to write")
    writable_folder(path.resolve().parent, "the output file")


def write_atomic(path: Path, writer: Callable[[Path], None]) -> None:
    """Write one file through a temporary name in the same folder, then rename it.

    The folder is made if it does not exist; an unwritable place is an :class:`OutputError`.
    """
    path = Path(path)
    check_file_destination(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~process_umask())  # mkstemp's files are private (0600)
    try:
        writer(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
