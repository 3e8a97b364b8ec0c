"""Cycles per function (exclusive and inclusive) and the hottest instructions of one call.

The native hook counts executions per instruction while profiling is on; static costs come from the
cycle model and dynamic extras (taken branches, flash stalls) are charged where they occur.
Inclusive time follows gprof: a callee's cycles are split among its call sites by call count.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from .emulator import CallResult, Machine

_BL_TARGET = re.compile(r"^bl(?:x)?\s+#(0x[0-9a-f]+)$")


@dataclass(frozen=True)
class FunctionProfile:
    name: str
    calls: int
    exclusive: int
    inclusive: int


@dataclass(frozen=True)
class HotInstruction:
    address: int
    where: str
    text: str
    count: int
    cycles: int


@dataclass(frozen=True)
class Profile:
    result: CallResult
    functions: list[FunctionProfile]
    hottest: list[HotInstruction]


def profile_call(machine: Machine, symbol: str, *args, max_cycles: int | None = None, top: int = 15) -> Profile:
    model = machine.model
    model.set_profiling(True)
    try:
        result = machine.call(symbol, *args, max_cycles=max_cycles)
    finally:
        counts, extra = (t.copy() for t in model.profile_tables())
        model.set_profiling(False)
    fw = machine.fw
    per_insn, excl, calls_to, sites = [], {}, {}, []
    for d in model.insns:
        h = (d.address - model.code_lo) // 2
        n = int(counts[h])
        cycles = n * d.static + int(extra[h])
        if not n and not cycles:
            continue
        func = fw.function_at(d.address)
        fname = func.name if func else "?"
        excl[fname] = excl.get(fname, 0) + cycles
        per_insn.append(HotInstruction(d.address, fw.describe(d.address), d.text, n, cycles))
        m = _BL_TARGET.match(d.text)
        if m and n:
            callee = fw.function_at(int(m.group(1), 16))
            if callee is not None:
                calls_to[callee.name] = calls_to.get(callee.name, 0) + n
                sites.append((fname, callee.name, n))
    calls_to.setdefault(symbol, 1)

    inclusive: dict[str, int] = {}

    def incl(name: str, active: frozenset) -> int:
        if name in inclusive:
            return inclusive[name]
        total = excl.get(name, 0)
        for caller, callee, n in sites:
            if caller == name and callee not in active:
                total += n * incl(callee, active | {callee}) // max(calls_to.get(callee, 1), 1)
        inclusive[name] = total
        return total

    funcs = [FunctionProfile(name, calls_to.get(name, 0), excl[name], incl(name, frozenset({name})))
             for name in excl]
    funcs.sort(key=lambda f: -f.inclusive)
    per_insn.sort(key=lambda i: -i.cycles)
    return Profile(result, funcs, per_insn[:top])


def format_profile(p: Profile) -> str:
    total = max(p.result.cycles, 1)
    lines = [f"{p.result.symbol}: {p.result.cycles} cycles, {p.result.instructions} instructions "
             f"({p.result.cycles / max(p.result.instructions, 1):.2f} cycles/instruction)", "",
             f"{'function':<32} {'calls':>8} {'exclusive':>12} {'%':>6} {'inclusive':>12} {'%':>6}"]
    for f in p.functions:
        lines.append(f"{f.name:<32} {f.calls:>8} {f.exclusive:>12} {100 * f.exclusive / total:>5.1f}% "
                     f"{f.inclusive:>12} {100 * f.inclusive / total:>5.1f}%")
    lines += ["", f"{'hottest instructions':<40} {'count':>10} {'cycles':>12} {'%':>6}"]
    for i in p.hottest:
        lines.append(f"{i.where:<24} {i.text:<28} {i.count:>10} {i.cycles:>12} {100 * i.cycles / total:>5.1f}%")
    return "\n".join(lines)
