"""The training kernels as one firmware, called from the host with numpy arrays.

Every `kernels/*.c` (except the start-up and C-library glue) is built into one ELF; `KernelLibrary.call` copies the
array arguments into SRAM buffers, runs the kernel on the emulator with the cycle model, and returns
the arrays as the kernel left them, with the call's cycles. Used by the cross-checks, the tests and
the on-MCU measurements.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from .boards import Board, load_board
from .emulator import CallResult, Machine
from .toolchain import KERNEL_DIR, RUNTIME_SOURCES, build


def kernel_sources() -> list[Path]:
    runtime = {p.resolve() for p in RUNTIME_SOURCES}
    return sorted(p for p in KERNEL_DIR.glob("*.c") if p.resolve() not in runtime)


@lru_cache(maxsize=None)
def kernel_firmware(opt: str = "-O2", toolchain: str = "zig", board: Board | None = None) -> Path:
    return build(kernel_sources(), opt=opt, toolchain=toolchain, stack_size=8 * 1024, board=board)


@dataclass(frozen=True)
class KernelCall:
    outputs: list[np.ndarray]      # every array argument, as the kernel left it, in argument order
    result: CallResult

    @property
    def cycles(self) -> int:
        return self.result.cycles


class KernelLibrary:
    """One emulated board with all training kernels loaded."""

    def __init__(self, opt: str = "-O2", hclk_mhz: float | None = None, toolchain: str = "zig",
                 board: Board | None = None):
        board = board or load_board()
        self.machine = Machine(kernel_firmware(opt, toolchain, board), board=board, hclk_mhz=hclk_mhz)

    def call(self, symbol: str, *args, warm: bool = False) -> KernelCall:
        """Run `symbol`; numpy arrays are passed as pointers to SRAM copies. `None` passes NULL.
        With `warm`, the call is made twice on fresh copies and the second is reported (caches warm)."""
        m = self.machine
        try:
            for attempt in range(2 if warm else 1):
                m.free_all()
                buffers, values = [], []
                for i, a in enumerate(args):
                    if isinstance(a, np.ndarray):
                        buf = m.put(a, name=f"{symbol}.arg{i}")
                        buffers.append(buf)
                        values.append(buf)
                    else:
                        values.append(0 if a is None else a)
                result = m.call(symbol, *values)
            return KernelCall([b.array.copy() for b in buffers], result)
        finally:
            m.free_all()
