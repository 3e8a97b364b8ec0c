"""Cycles per function (exclusive and inclusive), per source line and per instruction of one call.

The native hook counts executions per instruction while profiling is on; static costs come from the
cycle model and dynamic extras (taken branches, flash stalls) are charged where they occur.
Inclusive time follows gprof: a callee's cycles are split among its call sites by call count.
Source lines come from the firmware's DWARF line programme. `annotate` lists one function as
`objdump -dS` would, with costs; `callgrind` writes the profile for KCachegrind / QCachegrind.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path

from .emulator import CallResult, Machine

_BL_TARGET = re.compile(r"^bl(?:x)?\s+#(0x[0-9a-f]+)$")
_TAIL_CALL = re.compile(r"^b(?:\.w)?\s+#(0x[0-9a-f]+)$")          # unconditional only: its count is its takens


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
    function: str = "?"
    source: tuple[str, int] | None = None      # (file, line) from DWARF


@dataclass(frozen=True)
class Profile:
    result: CallResult
    functions: list[FunctionProfile]
    hottest: list[HotInstruction]
    instructions: list[HotInstruction]         # every executed instruction, in address order
    sites: list[tuple[str, str, int, int]]      # (caller, callee, calls, address of the call)


def profile_call(machine: Machine, symbol: str, *args, max_cycles: int | None = None, top: int = 15) -> Profile:
    return profile_calls(machine, [(symbol, args)], max_cycles=max_cycles, top=top)


def profile_calls(machine: Machine, calls, max_cycles: int | None = None, top: int = 15) -> Profile:
    """One profile over several calls (symbol, args) made in order on the machine's state; its result
    sums their cycles and instructions and is named `A+B+...`."""
    model = machine.model
    model.set_profiling(True)
    try:
        results = [machine.call(symbol, *args, max_cycles=max_cycles) for symbol, args in calls]
    finally:
        counts, extra = (t.copy() for t in model.profile_tables())
        model.set_profiling(False)
    result = results[0] if len(results) == 1 else dataclasses.replace(
        results[-1], symbol="+".join(r.symbol for r in results), return_value=results[-1].return_value,
        cycles=sum(r.cycles for r in results), instructions=sum(r.instructions for r in results),
        stack_peak_bytes=max(r.stack_peak_bytes for r in results),
        flash_stall_cycles=sum(r.flash_stall_cycles for r in results),
        taken_branches=sum(r.taken_branches for r in results))
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
        per_insn.append(HotInstruction(d.address, fw.describe(d.address), d.text, n, cycles, fname,
                                       fw.source_line(d.address)))
        m = _BL_TARGET.match(d.text) or _TAIL_CALL.match(d.text)
        if m and n:
            target = int(m.group(1), 16)
            callee = fw.function_at(target)
            tail_call = callee is not None and callee.addr == target and callee.name != fname
            if callee is not None and (m.re is _BL_TARGET or tail_call):   # B to another function's entry
                calls_to[callee.name] = calls_to.get(callee.name, 0) + n
                sites.append((fname, callee.name, n, d.address))
    for symbol, _ in calls:
        calls_to[symbol] = calls_to.get(symbol, 0) + 1

    inclusive: dict[str, int] = {}

    def incl(name: str, active: frozenset) -> int:
        if name in inclusive:
            return inclusive[name]
        total = excl.get(name, 0)
        for caller, callee, n, _ in sites:
            if caller == name and callee not in active:
                total += n * incl(callee, active | {callee}) // max(calls_to.get(callee, 1), 1)
        inclusive[name] = total
        return total

    funcs = [FunctionProfile(name, calls_to.get(name, 0), excl[name], incl(name, frozenset({name})))
             for name in excl]
    funcs.sort(key=lambda f: -f.inclusive)
    hottest = sorted(per_insn, key=lambda i: -i.cycles)[:top]
    return Profile(result, funcs, hottest, per_insn, sites)


def format_profile(p: Profile) -> str:
    total = max(p.result.cycles, 1)
    lines = [f"{p.result.symbol}: {p.result.cycles} cycles, {p.result.instructions} instructions "
             f"({p.result.cycles / max(p.result.instructions, 1):.2f} cycles/instruction)", "",
             f"{'function':<32} {'calls':>8} {'exclusive':>12} {'%':>6} {'inclusive':>12} {'%':>6}"]
    for f in p.functions:
        lines.append(f"{f.name:<32} {f.calls:>8} {f.exclusive:>12} {100 * f.exclusive / total:>5.1f}% "
                     f"{f.inclusive:>12} {100 * f.inclusive / total:>5.1f}%")
    lines += ["", f"{'hottest instructions':<40} {'count':>10} {'cycles':>12} {'%':>6}  source"]
    for i in p.hottest:
        src = f"{Path(i.source[0]).name}:{i.source[1]}" if i.source else ""
        lines.append(f"{i.where:<24} {i.text:<28} {i.count:>10} {i.cycles:>12} {100 * i.cycles / total:>5.1f}%  {src}")
    return "\n".join(lines)


def _source_text(path: str, line: int, cache: dict) -> str:
    if path not in cache:
        try:
            cache[path] = Path(path).read_text(errors="replace").splitlines()
        except OSError:
            cache[path] = []
    lines = cache[path]
    return lines[line - 1].strip() if 0 < line <= len(lines) else "(source not found)"


def annotate(machine: Machine, p: Profile, function: str) -> str:
    """One function's instructions in address order, each source line before its instructions (as
    `objdump -dS`), with execution counts and cycles; unexecuted instructions show 0."""
    fw, model = machine.fw, machine.model
    f = fw.symbol(function)
    executed = {i.address: i for i in p.instructions}
    cache: dict = {}
    total = sum(i.cycles for i in executed.values() if f.addr <= i.address < f.addr + f.size)
    out = [f"{function}: {total} cycles of {p.result.cycles} ({100 * total / max(p.result.cycles, 1):.1f}%)",
           f"{'address':<10} {'count':>10} {'cycles':>10}  instruction"]
    previous = None
    for d in model.insns:
        if not f.addr <= d.address < f.addr + f.size:
            continue
        src = fw.source_line(d.address)
        if src and src != previous:
            out.append(f"  {Path(src[0]).name}:{src[1]}: {_source_text(src[0], src[1], cache)}")
            previous = src
        i = executed.get(d.address)
        out.append(f"{d.address:#010x} {i.count if i else 0:>10} {i.cycles if i else 0:>10}  {d.text}")
    return "\n".join(out)


def callgrind(p: Profile) -> str:
    """The profile in the callgrind format (KCachegrind, QCachegrind): cycles and instructions per
    source line of each function, and the calls between functions with their inclusive cycles."""
    incl = {f.name: f.inclusive for f in p.functions}
    calls = {f.name: max(f.calls, 1) for f in p.functions}
    out = ["# callgrind format", "version: 1", "creator: mcusim", f"cmd: {p.result.symbol}", "positions: line",
           "events: Cycles Instructions", f"summary: {p.result.cycles} {p.result.instructions}"]
    by_function: dict[str, list[HotInstruction]] = {}
    for i in p.instructions:
        by_function.setdefault(i.function, []).append(i)
    for name, insns in by_function.items():
        home = next((i.source[0] for i in insns if i.source), "???")
        out += ["", f"fl={home}", f"fn={name}"]
        current = home

        def in_file(source: tuple[str, int] | None) -> int:
            """The line of `source`, after switching the cost lines' file (fi=) to its file: an inlined
            header function's lines belong to the header, not to the function's own file."""
            nonlocal current
            file = source[0] if source else home
            if file != current:
                out.append(f"fi={file}")
                current = file
            return source[1] if source else 0

        for i in insns:
            out.append(f"{in_file(i.source)} {i.cycles} {i.count}")
        for caller, callee, n, addr in p.sites:
            if caller != name:
                continue
            line = in_file(next((i.source for i in insns if i.address == addr and i.source), None))
            out += [f"cfn={callee}", f"calls={n} 0", f"{line} {incl.get(callee, 0) * n // calls.get(callee, 1)} 0"]
    return "\n".join(out) + "\n"
