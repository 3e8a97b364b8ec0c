"""Shared fixtures: firmware built once per session (the build cache makes rebuilds cheap), and a file
made unreadable."""
import os
from pathlib import Path

import pytest

from mcusim.toolchain import build

FIRMWARE = Path(__file__).parent / "firmware"
os.environ.pop("MCUSIM_BOARD", None)      # the tests expect the default board unless they choose one


@pytest.fixture(scope="session")
def basics_elf() -> Path:
    return build([FIRMWARE / "basics.c"], opt="-O2")


@pytest.fixture(scope="session")
def faults_elf() -> Path:
    return build([FIRMWARE / "faults.c"], opt="-O1", stack_size=4096)


def no_read_permission(monkeypatch, path: Path) -> None:
    """Opening `path` fails as after chmod 000 (which does not stop root, so open itself says no)."""
    import builtins
    import io
    real_open = builtins.open

    def guarded(file, *args, **kw):
        if isinstance(file, (str, Path)) and Path(file).resolve() == Path(path).resolve():
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kw)
    monkeypatch.setattr(builtins, "open", guarded)
    monkeypatch.setattr(io, "open", guarded)


def interruptible() -> None:
    """preexec_fn for a child that a test stops with SIGINT: a shell's background job (e.g. `cmd &` without job
    control, as CI jobs are often started) inherits SIGINT ignored, and Python then never raises
    KeyboardInterrupt; a user's terminal gives the default, which this restores."""
    import signal
    signal.signal(signal.SIGINT, signal.SIG_DFL)
