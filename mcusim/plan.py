"""The training-feasibility plan of a model on a board: SRAM by layer and kind, MACs, and the cycles of
one training sample measured per layer and direction on the emulated board, with a fit verdict.

Nothing is trained and no Numba code is compiled: the plan builds the training step's firmware, runs
one real sample call by call (and the update), and reads the memory plan. A model that does not fit is
measured on the same core with the SRAM (or flash) enlarged for that measurement only, and says so.
Every figure carries where it comes from (PROVENANCE).
"""
from __future__ import annotations

import dataclasses
from collections import defaultdict

import numpy as np

from .boards import Board, load_board
from .graph import Graph
from .ir import KINDS
from .memory import MemoryBudgetError
from .runtime import DeviceStep, initial_state
from .tasks import build
from .timeline import live_timeline

DIRECTIONS = ("forward", "backward_input", "backward_weight")
PROVENANCE = {
    "sram": "analytic: the memory plan (every buffer of the training step, sizes from the shapes)",
    "macs": "analytic: counted from the shapes (padding taps excluded)",
    "cycles": "emulated: one training sample run call by call on the emulated board",
    "stack": "emulated: stack painting during that sample",
}
NO_POWER = "none: the board file gives no [power] figures, so no energy is estimated"
SAMPLE_SCALARS = {"alpha_a": 0.1, "alpha_e": 0.1}
UPDATE_SCALARS = {"lr": 0.001, "alpha_norm": 0.15, "alpha_w": 0.001}


def _sample_pixels(shape) -> np.ndarray:
    """A real image where the embedded data sets have one of this shape, else fixed random pixels."""
    from .datasets import DatasetError, load_dataset
    for name in ("fashion-mnist", "digits"):
        try:
            data = load_dataset(name)
        except DatasetError:         # an unreadable data set only means random pixels
            continue
        if tuple(data.shape) == tuple(shape):
            return data.train_x[0].reshape(-1)
    return np.random.default_rng(0).integers(0, 256, int(np.prod(shape)), dtype=np.uint8)


def enlarged(board: Board, sram_bytes: int, flash_bytes: int) -> Board:
    """The board with its last SRAM region (and its flash) grown to hold the given sizes."""
    srams = sorted(board.srams, key=lambda m: m.origin)
    page = 1 << 16                                   # the emulator maps whole pages
    grow_sram = -(-max(0, sram_bytes - board.sram_block[1]) // page) * page
    grow_flash = -(-max(0, flash_bytes - board.flash.size) // page) * page
    memories = []
    for m in board.memories:
        if m is srams[-1]:
            m = dataclasses.replace(m, size=m.size + grow_sram)
        elif m.kind == "flash":
            m = dataclasses.replace(m, size=m.size + grow_flash)
        memories.append(m)
    return dataclasses.replace(board, name=f"{board.name} (memory enlarged)", memories=tuple(memories))


def make_plan(model: Graph, board: Board | None = None, precision: str = "u8", sparse: list[float] | None = None,
              batch: int = 100, hclk_mhz: float | None = None, profile=None, opt: str = "-O2") -> dict:
    """The plan as a dict (mcusim.plan_format renders it). `profile(machine, symbol, *args)`, if given, is
    called once on the loaded step to profile one more training sample (`plan --profile`)."""
    board = board or load_board()
    hclk = float(hclk_mhz or board.default_hclk_mhz)
    program = build(model, precision, sparse is not None)
    planned = sum(t.nbytes for t in program.tensors.values())
    try:
        device, measured_on = DeviceStep(program, opt, hclk, board=board, per_call=("sample", "update")), board
    except MemoryBudgetError:
        measured_on = enlarged(board, 2 * planned + (1 << 16), 4 * board.flash.size)
        device = DeviceStep(program, opt, hclk, board=measured_on, per_call=("sample", "update"))
    device.load_state(initial_state(program, seed=0, weights=model.weights))
    device.write("pixels", _sample_pixels(model.input_shape))
    if "label" in program.tensors:
        device.write("label", np.zeros(1, np.int32))
    scalars = dict(SAMPLE_SCALARS) if precision == "u8" else {}
    if sparse is not None:
        scalars.update(lambda_min=sparse[0], lambda_max=sparse[1])
    cycles: dict[tuple[str, str], int] = defaultdict(int)
    stack = 0
    for call, result in device.run_calls("sample", **scalars):
        cycles[(call.layer or "task", call.direction or "task")] += result.cycles
        stack = max(stack, result.stack_peak_bytes)
    update = {"lr": UPDATE_SCALARS["lr"], "alpha_norm": UPDATE_SCALARS["alpha_norm"]}
    if precision == "u8":
        update["alpha_w"] = UPDATE_SCALARS["alpha_w"]
    for call, result in device.run_calls("update", **update):
        cycles[(call.layer, "update")] += result.cycles
    whole = device.run("sample", **scalars)                 # the step in one call: the per-call sum's check
    stack = max(stack, whole.stack_peak_bytes)
    if profile is not None:
        from .ir import phase_symbol
        profile(device.machine, phase_symbol("sample"), *[scalars[v.name] for v in program.scalars("sample")])
    power = None if board.power is None else board.power.at(hclk)      # None: the board file has no [power]
    power_mw = None if power is None else power.power_mw

    def energy_uj(cycles: float) -> float | None:
        return None if power is None else power.energy_uj(cycles)

    rows = []
    for node in model.nodes:
        sram = {k: 0 for k in KINDS[:-2]}
        for t in program.tensors.values():
            if t.layer == node.name:
                sram[t.kind] += t.nbytes
        c = {d: cycles.get((node.name, d), 0) for d in DIRECTIONS}
        c["update_per_sample"] = cycles.get((node.name, "update"), 0) / batch
        total = sum(c.values())
        macs = dataclasses.asdict(node.macs)
        rows.append({"name": node.name, "op": node.op, "in": list(node.in_shapes[0]), "out": list(node.out_shape),
                     "params": node.n_weights + node.n_bias if node.trainable else 0, "sram": sram, "macs": macs,
                     "cycles": c, "cycles_total": total, "ms": 1e3 * total / (hclk * 1e6),
                     "uj": energy_uj(total),
                     "mac_per_cycle": sum(macs.values()) / total if total else None})
    task_cycles = cycles.get(("task", "task"), 0)
    per_sample = sum(r["cycles_total"] for r in rows) + task_cycles
    update_batch = sum(v for (layer, d), v in cycles.items() if d == "update")
    for r in rows:
        r["share"] = r["cycles_total"] / per_sample if per_sample else 0.0
    by_kind = {k: sum(t.nbytes for t in program.tensors.values() if t.kind == k) for k in KINDS}
    static = device.machine.static
    startup = static.static_sram_bytes - planned
    sram_terms = {"planned buffers": planned, "start-up data and alignment": startup, "stack peak (measured)": stack}
    sram_total, sram_limit = sum(sram_terms.values()), board.sram_block[1]
    flash_total, flash_limit = static.flash_bytes, board.flash.size
    return {
        "model": model.name, "task": model.task, "precision": precision, "sparse": sparse, "batch": batch,
        "board": board.name, "hclk_mhz": hclk,
        "provenance": {**PROVENANCE, "energy": board.power.describe(hclk) if board.power else NO_POWER},
        "timing_memory_enlarged": measured_on is not board,
        "layers": rows,
        "task_cycles": task_cycles,
        "sram_by_kind": by_kind,
        "timeline": live_timeline(program),
        "step": {"cycles_per_sample": per_sample, "ms_per_sample": 1e3 * per_sample / (hclk * 1e6),
                 "uj_per_sample": energy_uj(per_sample), "power_mw": power_mw,
                 "update_cycles_per_batch": update_batch,
                 "cycles_per_sample_batch1": per_sample - update_batch / batch + update_batch,
                 "whole_step_cycles": whole.cycles,
                 "per_call_sum_cycles": per_sample - update_batch / batch,
                 "macs_per_sample": sum(sum(r["macs"].values()) for r in rows)},
        "fit": {"sram": {"terms": sram_terms, "total": sram_total, "limit": sram_limit,
                         "fits": sram_total <= sram_limit, "over_by": max(0, sram_total - sram_limit)},
                "flash": {"terms": dict(static.flash), "total": flash_total, "limit": flash_limit,
                          "fits": flash_total <= flash_limit, "over_by": max(0, flash_total - flash_limit)}},
    }

