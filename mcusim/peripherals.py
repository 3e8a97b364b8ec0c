"""The parts of the Cortex-M System Control Space that firmware commonly touches, which Unicorn leaves
unmapped: ITM stimulus port 0 (character output), the DWT cycle counter, SysTick, and the SCB registers
CPUID, CCR, CPACR and DEMCR. Accesses are rare, so these are plain Python MMIO callbacks; they are not on
the hot path. Reset values come from the board's core (mcusim/boards/cores/*.toml).

Register behaviour follows the ARMv7-M Architecture Reference Manual (DDI 0403), sections "SysTick",
"The Data Watchpoint and Trace unit" and "Configuration and Control Register".
"""
from __future__ import annotations

import sys
from typing import Callable

ITM_BASE, DWT_BASE, SCS_BASE, PAGE = 0xE000_0000, 0xE000_1000, 0xE000_E000, 0x1000
DWT_CTRL, DWT_CYCCNT = 0x000, 0x004
SYST_CSR, SYST_RVR, SYST_CVR, SYST_CALIB = 0x010, 0x014, 0x018, 0x01C
SCB_CPUID, SCB_CCR, SCB_CPACR, DEMCR = 0xD00, 0xD14, 0xD88, 0xDFC
MASK32, MASK24 = 0xFFFF_FFFF, 0xFF_FFFF
CYCCNTENA = 1 << 0               # DWT_CTRL
DWT_CTRL_READ_ONLY = 0xFF00_0000  # NUMCOMP, NOTRCPKT, NOEXTTRIG, NOCYCCNT, NOPRFCNT
TRCENA = 1 << 24                 # DEMCR: the DWT (and ITM) are enabled only with it
SYST_ENABLE, SYST_CLKSOURCE, SYST_COUNTFLAG = 1 << 0, 1 << 2, 1 << 16
DIV_0_TRP = 1 << 4               # CCR


class CycleCounter:
    """DWT CYCCNT: counts core cycles only while DEMCR.TRCENA and DWT_CTRL.CYCCNTENA are both set."""

    def __init__(self):
        self.value = 0              # the count at `since`
        self.since: int | None = None   # the cycle at which counting (re)started; None when stopped

    def read(self, now: int) -> int:
        return (self.value + (now - self.since if self.since is not None else 0)) & MASK32

    def write(self, now: int, value: int) -> None:
        self.value = value & MASK32
        if self.since is not None:
            self.since = now

    def set_running(self, now: int, running: bool) -> None:
        self.value = self.read(now)
        self.since = now if running else None


class SysTick:
    """The 24-bit SysTick down-counter: from its value it counts to 0, then reloads SYST_RVR on the next
    tick; the 1 -> 0 step sets COUNTFLAG, which a read of SYST_CSR clears, as does any write to SYST_CVR
    (which also clears the counter). A new RVR takes effect at the next reload. It ticks with the core
    clock (CLKSOURCE = 1) or with the chip's reference clock, core clock / `reference_divider`; a chip
    without one (None) keeps CLKSOURCE at 1."""

    def __init__(self, reference_divider: int | None):
        self.reference_divider = reference_divider
        self.csr = 0 if reference_divider else SYST_CLKSOURCE   # ENABLE, TICKINT, CLKSOURCE
        self.reload = 0
        self.value = 0               # the counter at `since`
        self.since = 0
        self.countflag = False

    def _advance(self, now: int) -> None:
        divider = 1 if self.csr & SYST_CLKSOURCE else self.reference_divider
        elapsed = now // divider - self.since // divider
        if self.csr & SYST_ENABLE and elapsed > 0:
            v, r = self.value, self.reload
            if elapsed <= v:
                self.value = v - elapsed
                hit_zero = elapsed == v
            else:
                into_cycle = elapsed - v - 1              # ticks after the first reload
                self.value = r - into_cycle % (r + 1)
                hit_zero = v > 0 or (r > 0 and into_cycle >= r)
            self.countflag |= hit_zero
        self.since = now

    def read(self, now: int, offset: int) -> int:
        self._advance(now)
        if offset == SYST_CSR:
            value = self.csr | (SYST_COUNTFLAG if self.countflag else 0)
            self.countflag = False
            return value
        if offset == SYST_RVR:
            return self.reload
        return self.value                                 # SYST_CVR

    def write(self, now: int, offset: int, value: int) -> None:
        self._advance(now)
        if offset == SYST_CSR:
            self.csr = value & 0x7 | (0 if self.reference_divider else SYST_CLKSOURCE)
        elif offset == SYST_RVR:
            self.reload = value & MASK24
        else:                                             # SYST_CVR: any write clears it and COUNTFLAG
            self.value, self.countflag = 0, False


class SystemControlSpace:
    """MMIO model; `clock(uc, address)` is the timing model's cycle count as seen by the load or store
    at `address`; `core` gives the reset values, `systick_reference_divider` the board's SysTick reference
    clock; `on_div0_trap(enabled)` is told when firmware turns CCR.DIV_0_TRP on or off."""

    def __init__(self, clock: Callable[[object, int], int], core, systick_reference_divider: int | None = None,
                 write_char: Callable[[str], None] | None = None, on_div0_trap: Callable[[bool], None] | None = None):
        self.clock = clock
        self.write_char = write_char or (lambda c: (sys.stdout.write(c), sys.stdout.flush()))
        self.on_div0_trap = on_div0_trap or (lambda enabled: None)
        self.cpuid = core.cpuid
        self.regs: dict[int, int] = {DWT_BASE + DWT_CTRL: core.dwt_ctrl_reset, SCS_BASE + SCB_CCR: core.ccr_reset}
        self.cyccnt = CycleCounter()
        self.systick = SysTick(systick_reference_divider)

    @property
    def div0_trap(self) -> bool:
        return bool(self.regs[SCS_BASE + SCB_CCR] & DIV_0_TRP)

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
            return self.cyccnt.read(self._now(uc, DWT_BASE + offset))
        return self.regs.get(DWT_BASE + offset, 0)

    def _dwt_write(self, uc, offset, size, value, user_data):
        now = self._now(uc, DWT_BASE + offset)
        if offset == DWT_CYCCNT:
            self.cyccnt.write(now, value)
            return
        if offset == DWT_CTRL:
            ctrl = self.regs[DWT_BASE + DWT_CTRL]
            value = (ctrl & DWT_CTRL_READ_ONLY) | (value & ~DWT_CTRL_READ_ONLY)
        self.regs[DWT_BASE + offset] = value & MASK32
        self._update_cyccnt(now)

    def _update_cyccnt(self, now: int) -> None:
        running = bool(self.regs[DWT_BASE + DWT_CTRL] & CYCCNTENA and self.regs.get(SCS_BASE + DEMCR, 0) & TRCENA)
        if running != (self.cyccnt.since is not None):
            self.cyccnt.set_running(now, running)

    def _scs_read(self, uc, offset, size, user_data):
        if offset == SCB_CPUID:
            return self.cpuid
        if offset in (SYST_CSR, SYST_RVR, SYST_CVR):
            return self.systick.read(self._now(uc, SCS_BASE + offset), offset)
        return self.regs.get(SCS_BASE + offset, 0)

    def _scs_write(self, uc, offset, size, value, user_data):
        now = self._now(uc, SCS_BASE + offset)
        if offset in (SYST_CSR, SYST_RVR, SYST_CVR):
            self.systick.write(now, offset, value)
            return
        trap_before = self.div0_trap
        self.regs[SCS_BASE + offset] = value & MASK32
        if offset == DEMCR:
            self._update_cyccnt(now)
        if self.div0_trap != trap_before:
            self.on_div0_trap(self.div0_trap)
