"""`mcusim run --gdb PORT`: a gdb server (remote serial protocol) on the emulated core, from the
udbserver package, so `gdb-multiarch FIRMWARE.elf -ex "target remote :PORT"` can set breakpoints, step,
and read registers and memory while the call runs (cycles are counted as in any run).

udbserver 0.3.0 cannot attach to a Unicorn engine opened in UC_MODE_MCLASS: its Emu::new (src/emu.rs)
converts the engine's mode with `Mode::try_from(..).unwrap()`, which fails with UC_ERR_MODE for 0x20 and
panics. A debuggable Machine therefore opens the engine in plain UC_MODE_THUMB with the core's CPU model
set explicitly, which is the same M-profile core (the emulator, cycle-model and peripheral tests pass
unchanged in that mode).
"""
from __future__ import annotations

import socket

from .errors import McusimError


class GdbError(McusimError):
    """The gdb server cannot start."""


def check_port(port: int) -> None:
    """Fail now, with a clear message, rather than inside the emulation when the server binds."""
    if not 1 <= port <= 65535:
        raise GdbError(f"--gdb takes a TCP port from 1 to 65535, not {port}")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("0.0.0.0", port))
        except OSError as exc:
            raise GdbError(f"--gdb {port}: the port cannot be opened ({exc.strerror}); choose a free port") from None


def serve(machine, port: int, symbol: str) -> None:
    """Make the next call of `symbol` wait at its first instruction for gdb to connect on `port`."""
    try:
        from udbserver import udbserver
    except ImportError:
        raise GdbError("--gdb needs the udbserver package: pip install udbserver "
                       "(or pip install 'mcusim[gdb]')") from None
    check_port(port)
    udbserver(machine.uc, port, machine.fw.address(symbol))
