"""Cycle-model mechanisms beyond single-instruction rules: flash data reads, profiling, budgets."""
import numpy as np

from mcusim.emulator import Machine
from mcusim.profile import profile_call
from mcusim.toolchain import build
from conftest import FIRMWARE


def test_literal_loads_miss_the_data_cache_once():
    elf = build([FIRMWARE / "literals.S"])
    cold = Machine(elf, hclk_mhz=120)
    first, second = cold.call("literals"), cold.call("literals")
    assert first.return_value == 0x12345678 + 0x1111 + 0x2222
    assert cold.model.counter("LITERAL_STALLS") == 0          # second call: literals are cached
    zero_ws = Machine(elf, hclk_mhz=20).call("literals")
    assert second.cycles == zero_ws.cycles                    # warm caches hide all 5 wait states
    # cold: the one literal line misses (5 WS) on top of the instruction-fetch misses
    assert first.flash_stall_cycles >= 5 and first.cycles == zero_ws.cycles + first.flash_stall_cycles


def test_profile_accounts_for_every_cycle(basics_elf):
    m = Machine(basics_elf)
    m.call("time_work", 200)                                   # warm the caches
    p = profile_call(m, "time_work", 200)
    by_name = {f.name: f for f in p.functions}
    assert sum(f.exclusive for f in p.functions) == p.result.cycles
    assert by_name["time_work"].inclusive == p.result.cycles
    assert by_name["work"].calls == 1 and by_name["work"].inclusive == by_name["work"].exclusive > 0
    assert by_name["time_work"].exclusive + by_name["work"].exclusive == p.result.cycles
    plain = m.call("time_work", 200)
    assert plain.cycles == p.result.cycles                     # profiling does not change the count


def _dot_cycles(machine, n):
    x = machine.put(np.ones(n, np.int8))
    machine.call("dot_s8", x, x, n)                             # warm the caches
    cycles = machine.call("dot_s8", x, x, n).cycles
    machine.free_all()
    return cycles


def test_cycles_scale_with_work_and_clock_only_changes_wait_states(basics_elf):
    fast, slow = Machine(basics_elf, hclk_mhz=120), Machine(basics_elf, hclk_mhz=20)
    a = [_dot_cycles(fast, n) for n in (400, 800, 1600)]
    b = [_dot_cycles(slow, n) for n in (400, 800, 1600)]
    assert a[2] - a[1] == 2 * (a[1] - a[0]) > 0                # linear in n
    assert a == b                                              # warm caches hide the wait states


def test_repeated_calls_are_deterministic_once_warm(basics_elf):
    m = Machine(basics_elf)
    x = m.put(np.arange(64, dtype=np.int8))
    cold = m.call("dot_s8", x, x, 64).cycles
    warm = {m.call("dot_s8", x, x, 64).cycles for _ in range(3)}
    assert len(warm) == 1 and cold > warm.pop()                # the first call pays the flash misses
