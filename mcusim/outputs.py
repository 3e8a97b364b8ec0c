"""Writing what the user asked for, and nothing else: outputs are written atomically (a temporary file
in the same folder, then a rename, so no reader ever sees half a file) and never over a folder, a
device or through a symlink; an existing file is replaced only when the user said so."""
from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from .errors import McusimError


class OutputError(McusimError):
    """An output cannot be written where the user asked."""


def check_target(target: Path, overwrite: bool = True) -> None:
    """Refuse a target in a missing folder, a non-regular file, or (without `overwrite`) any existing one."""
    if not target.parent.is_dir():
        raise OutputError(f"cannot write {target}: the folder {target.parent} does not exist")
    if not os.path.lexists(target):
        return
    try:
        regular = not target.is_symlink() and stat.S_ISREG(os.stat(target).st_mode)
    except OSError:
        regular = False
    if not regular:
        raise OutputError(f"cannot write {target}: it exists and is not a regular file; choose another path")
    if not overwrite:
        raise OutputError(f"{target} exists; pass --force to overwrite it")


def write_atomic(target: Path, data: bytes, overwrite: bool = True) -> None:
    check_target(target, overwrite)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
