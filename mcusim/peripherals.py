"""The parts of the Cortex-M4 System Control Space that firmware commonly touches, which Unicorn
leaves unmapped: ITM stimulus port 0 (character output), DWT CYCCNT (returns the cycle model's
count), SysTick, and the SCB registers CPUID, CPACR and DEMCR. Accesses are rare, so these are
plain Python MMIO callbacks; they are not on the hot path.
"""
from __future__ import annotations

import sys
from typing import Callable

ITM_BASE, DWT_BASE, SCS_BASE, PAGE = 0xE000_0000, 0xE000_1000, 0xE000_E000, 0x1000
DWT_CTRL, DWT_CYCCNT = 0x000, 0x004
SYST_CSR, SYST_RVR, SYST_CVR, SYST_CALIB = 0x010, 0x014, 0x018, 0x01C
SCB_CPUID, SCB_CPACR, DEMCR = 0xD00, 0xD88, 0xDFC
CPUID_CORTEX_M4_R0P1 = 0x410F_C241
MASK32 = 0xFFFF_FFFF


class SystemControlSpace:
    """MMIO model; `clock(uc, address)` is the timing model's cycle count as seen by the load that
    reads `address`."""

    def __init__(self, clock: Callable[[object, int], int], write_char: Callable[[str], None] | None = None):
        self.clock = clock
        self.write_char = write_char or (lambda c: (sys.stdout.write(c), sys.stdout.flush()))
        self.regs: dict[int, int] = {}
        self.cyccnt_base = 0         # CYCCNT = (cycles - cyccnt_base) mod 2^32; a write moves the base
        self.systick_base = 0

    def map(self, uc) -> None:
        uc.mmio_map(ITM_BASE, PAGE, self._itm_read, None, self._itm_write, None)
        uc.mmio_map(DWT_BASE, PAGE, self._dwt_read, None, self._dwt_write, None)
        uc.mmio_map(SCS_BASE, PAGE, self._scs_read, None, self._scs_write, None)

    def _now(self, uc, address: int) -> int:
        return self.clock(uc, address)

    # ITM: port 0 reads 1 (FIFO ready); a byte written to it is one character of output.
    def _itm_read(self, uc, offset, size, user_data):
        return 1 if offset == 0 else 0

    def _itm_write(self, uc, offset, size, value, user_data):
        if offset == 0:
            self.write_char(chr(value & 0xFF))

    def _dwt_read(self, uc, offset, size, user_data):
        if offset == DWT_CYCCNT:
            return (self._now(uc, DWT_BASE + offset) - self.cyccnt_base) & MASK32
        return self.regs.get(DWT_BASE + offset, 0)

    def _dwt_write(self, uc, offset, size, value, user_data):
        if offset == DWT_CYCCNT:
            self.cyccnt_base = self._now(uc, DWT_BASE + offset) - value
        else:
            self.regs[DWT_BASE + offset] = value & MASK32

    def _scs_read(self, uc, offset, size, user_data):
        if offset == SCB_CPUID:
            return CPUID_CORTEX_M4_R0P1
        if offset == SYST_CVR:
            reload = self.regs.get(SCS_BASE + SYST_RVR, 0) & 0xFF_FFFF
            if not self.regs.get(SCS_BASE + SYST_CSR, 0) & 1 or reload == 0:
                return self.regs.get(SCS_BASE + SYST_CVR, 0)
            return reload - (self._now(uc, SCS_BASE + offset) - self.systick_base) % (reload + 1)
        return self.regs.get(SCS_BASE + offset, 0)

    def _scs_write(self, uc, offset, size, value, user_data):
        if offset in (SYST_CSR, SYST_CVR):
            self.systick_base = self._now(uc, SCS_BASE + offset)
        self.regs[SCS_BASE + offset] = value & MASK32
