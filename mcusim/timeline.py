"""Which buffers a training step needs when: the live-tensor timeline of one sample and its update.

A tensor of a persistent kind (weights, gradients, optimiser statistics, qparams, sparse masks) is needed
from the start to the end; any other (activations, errors, scratch, the task's buffers) from the first
call that touches it to the last. mcusim's firmware keeps every buffer as a static array, so the SRAM it
takes is the plan's total; the timeline's peak is what an allocator that reuses dead buffers would need.
Counted from the program (analytic), no emulation.
"""
from __future__ import annotations

from .ir import KINDS, Cast, Element, Program, Tensor, View

PERSISTENT = ("weights", "gradients", "optimiser", "qparams", "sparse")
PHASES = ("sample", "update")


def _tensors_of(call) -> set[str]:
    names = set()
    for a in call.args:
        t = a if isinstance(a, Tensor) else a.tensor if isinstance(a, (View, Element, Cast)) else None
        if t is not None:
            names.add(t.name)
    return names


def live_timeline(p: Program) -> dict:
    calls = [(phase, c) for phase in PHASES for c in p.phases[phase]]
    first, last = {}, {}
    for i, (_, c) in enumerate(calls):
        for name in _tensors_of(c):
            first.setdefault(name, i)
            last[name] = i
    live = {k: [0] * len(calls) for k in KINDS}
    for t in p.tensors.values():
        if t.group == "decode" or t.name not in first:
            continue
        span = range(len(calls)) if t.kind in PERSISTENT else range(first[t.name], last[t.name] + 1)
        for i in span:
            live[t.kind][i] += t.nbytes
    totals = [sum(live[k][i] for k in KINDS) for i in range(len(calls))]
    peak = max(totals, default=0)
    return {"calls": [{"phase": ph, "kernel": c.kernel, "layer": c.layer, "direction": c.direction} for ph, c in calls],
            "live_bytes_by_kind": live, "live_bytes": totals, "peak_bytes": peak,
            "peak_call": totals.index(peak) if totals else None,
            "static_bytes": sum(t.nbytes for t in p.tensors.values())}
