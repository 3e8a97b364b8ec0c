"""Profiler: functions without `.size` are named from the symbol table, tail calls count as calls with
the callee's cycles in the caller's inclusive time, and several calls make one profile."""
import pytest

from mcusim.emulator import Machine
from mcusim.profile import profile_call, profile_calls
from mcusim.toolchain import build

# Hand-written assembly as assemblers often leave it: function symbols without .size; inner tail-calls leaf.
ASSEMBLY = """
.syntax unified
.thumb
.text
.global outer, inner, leaf
.type outer, %function
.thumb_func
outer:
    push {r4, lr}
    movs r4, #3
1:  bl inner
    subs r4, r4, #1
    bne 1b
    pop {r4, pc}
.type inner, %function
.thumb_func
inner:
    adds r0, r0, #1
    b.w leaf
.type leaf, %function
.thumb_func
leaf:
    adds r0, r0, #2
    bx lr
"""


@pytest.fixture(scope="module")
def machine(tmp_path_factory):
    src = tmp_path_factory.mktemp("prof") / "tail.S"
    src.write_text(ASSEMBLY)
    return Machine(build([src]))


def test_sizeless_functions_and_tail_calls(machine):
    p = profile_call(machine, "outer", 0)
    assert p.result.return_value == 9
    funcs = {f.name: f for f in p.functions}
    assert "?" not in funcs and {"outer", "inner", "leaf"} <= set(funcs)
    assert funcs["inner"].calls == 3 and funcs["leaf"].calls == 3          # leaf is only ever tail-called
    assert funcs["inner"].inclusive == funcs["inner"].exclusive + funcs["leaf"].exclusive
    assert funcs["outer"].inclusive == sum(f.exclusive for f in p.functions) == p.result.cycles
    assert machine.fw.describe(machine.fw.address("leaf") + 2) == "leaf+0x2"


def test_several_calls_make_one_profile(machine):
    one = profile_call(machine, "outer", 0)
    both = profile_calls(machine, [("outer", (0,)), ("outer", (1,))])
    assert both.result.symbol == "outer+outer" and both.result.return_value == 10
    assert both.result.cycles == 2 * one.result.cycles
    assert {f.name: f.calls for f in both.functions}["outer"] == 2
    assert {f.name: f.calls for f in both.functions}["leaf"] == 6


def test_every_cycle_is_attributed_taken_branch_penalties_to_the_branch():
    import numpy as np
    from pathlib import Path
    m = Machine(build([Path(__file__).parent / "firmware" / "basics.c"]))
    w, x, y = m.put(np.ones((5, 7), np.float32)), m.put(np.ones(7, np.float32)), m.alloc((5,), np.float32)
    p = profile_call(m, "matvec_f32", w, x, y, 5, 7)
    assert p.result.taken_branches > 0
    assert sum(f.exclusive for f in p.functions) == sum(i.cycles for i in p.instructions) == p.result.cycles
    branches = [i for i in p.instructions if i.text.startswith(("b", "cb"))]
    assert any(i.cycles > i.count for i in branches)         # a branch carries its refill
