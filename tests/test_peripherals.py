"""Peripherals that firmware reads: SysTick COUNTFLAG and reload past 2^24 cycles, DWT CYCCNTENA,
CCR.DIV_0_TRP, with small C firmware (tests/firmware/peripherals.c)."""
import pytest

from mcusim.boards import load_board
from mcusim.emulator import Fault, Machine
from mcusim.toolchain import build
from conftest import FIRMWARE


@pytest.fixture(scope="module")
def elf():
    return build([FIRMWARE / "peripherals.c"], opt="-O2")


def test_systick_timer_counts_past_2_to_the_24_cycles(elf):
    """12 chunks of ~1.6M cycles: the 24-bit counter wraps once, COUNTFLAG says so, and the timer built
    on it agrees with the cycle model's count of the call."""
    r = Machine(elf).call("systick_elapsed", 12, 400_000)
    assert r.cycles > 1 << 24
    assert abs(r.return_value - r.cycles) < 100


def test_countflag_is_set_by_the_wrap_and_cleared_by_reading_csr(elf):
    assert Machine(elf).call("countflag_clears_on_read").return_value == 0b01


def test_cyccnt_counts_only_when_enabled(elf):
    m = Machine(elf)
    assert m.call("dwt_ctrl").return_value == 0x4000_0000          # reset: 4 comparators, CYCCNTENA off
    assert m.call("cyccnt_disabled_delta").return_value == 0         # from reset it does not count
    assert 300 < m.call("cyccnt_enabled_delta").return_value < 600  # TRCENA + CYCCNTENA: ~4 cycles x 100
    assert m.call("cyccnt_disabled_delta").return_value == 0         # CYCCNTENA cleared again: it stops


def test_divide_by_zero_returns_0_unless_ccr_traps_it(elf):
    m = Machine(elf)
    assert m.call("ccr").return_value == 0x200                       # STKALIGN only
    assert m.call("divide", 7, 0).return_value == 0
    m.call("set_div0_trap", 1)
    assert m.call("divide", -9, 2).return_value == -4
    with pytest.raises(Fault, match=r"division by zero \(r\d+ = 0\) with CCR.DIV_0_TRP") as info:
        m.call("divide", 7, 0)
    assert info.value.kind == "usage-fault" and info.value.where.startswith("divide")
    m.call("set_div0_trap", 0)
    assert m.call("divide", 7, 0).return_value == 0


def test_systick_reference_clock_is_the_boards(elf):
    """STM32: the reference clock is HCLK/8; a chip without one (the nRF52840 file) keeps CLKSOURCE at 1."""
    m = Machine(elf)
    r = m.call("systick_reference_ticks", 10_000)
    assert abs(r.return_value - r.cycles / 8) < 20
    assert m.call("systick_csr_after_writing", 0x1).return_value & 0x4 == 0
    nrf = load_board("nrf52840")
    m = Machine(build([FIRMWARE / "peripherals.c"], board=nrf), board=nrf)
    assert m.call("systick_csr_after_writing", 0x1).return_value & 0x4 == 0x4
    r = m.call("systick_reference_ticks", 10_000)
    assert abs(r.return_value - r.cycles) < 60
