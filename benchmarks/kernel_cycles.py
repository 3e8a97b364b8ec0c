"""Cycles per layer and direction of one training sample on the emulated Cortex-M4, fp32 next to u8
(the table in the README), for any model, and the whole training step per sample (the update amortised
over the batch) of u8 against fp32.

The training step is built as firmware with one function per kernel call (`mcusim plan`), and one real sample
(the first image of the embedded Fashion-MNIST subset, or random pixels for other input shapes) runs
call by call, so each layer's forward, backward_input and backward_weight are measured where they
really run: with the caches, data and ranges of the step, not on a synthetic call.

MAC/cycle is given against the Cortex-M4's peak for 16-bit dual MAC (SMLAD: two multiply-accumulates per
cycle); the fp32 kernels' own peak is one (VMLA/VFMA issue one per cycle, more with result latency).

Usage: python benchmarks/kernel_cycles.py [--model baseline] [--opt -O2]
"""
from __future__ import annotations

import argparse

from mcusim.graph import INPUT, load_model
from mcusim.plan import make_plan

DIRECTIONS = ("forward", "backward_input", "backward_weight")
M4_PEAK_MACS_PER_CYCLE = 2.0          # SMLAD: two 16x16 multiply-accumulates per cycle (ARM Cortex-M4 TRM)


def layer_cycles(model, precision: str, opt: str) -> tuple[dict[tuple[str, str], float], float]:
    """(layer, direction) -> cycles of one training sample (measured by `mcusim plan`); the task's own
    calls under ('task', '-'), each layer's update amortised over the batch under (layer, 'update');
    and the whole training step per sample as the plan reports it (update included)."""
    plan = make_plan(model, precision=precision, opt=opt)
    cycles = {(r["name"], d): r["cycles"][d] for r in plan["layers"] for d in DIRECTIONS}
    cycles.update({(r["name"], "update"): r["cycles"]["update_per_sample"] for r in plan["layers"]})
    cycles[("task", "-")] = plan["task_cycles"]
    return cycles, plan["step"]["cycles_per_sample"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="baseline")
    ap.add_argument("--opt", default="-O2")
    opts = ap.parse_args()
    model = load_model(opts.model)
    (f32, step_f32), (u8, step_u8) = (layer_cycles(model, p, opts.opt) for p in ("fp32", "u8"))
    print("| layer | direction | MACs | fp32 cycles | fp32 MAC/cycle | u8 cycles | u8 MAC/cycle | u8 % of M4 peak "
          "| u8 speed-up |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for node in model.nodes:
        for direction in DIRECTIONS:
            f, q = f32.get((node.name, direction), 0), u8.get((node.name, direction), 0)
            if not f and not q:
                continue
            macs = getattr(node.macs, direction)
            if direction == "backward_input" and set(node.inputs) == {INPUT}:
                macs = 0                          # no error into the image: only the activation's mask runs
            shape = f"{node.name} {'x'.join(map(str, node.in_shapes[0]))}->{'x'.join(map(str, node.out_shape))}"
            rate = lambda c: f"{macs / c:.3f}" if macs and c else "-"       # noqa: E731
            peak = f"{100 * macs / q / M4_PEAK_MACS_PER_CYCLE:.1f}%" if macs and q else "-"
            ratio = f"{f / q:.2f}x" if f and q else "-"
            print(f"| {shape} | {direction} | {macs} | {f} | {rate(f)} | {q} | {rate(q)} | {peak} | {ratio} |")
    upd = lambda c: sum(v for (_, d), v in c.items() if d == "update")        # noqa: E731
    print(f"| task (input, loss, latent) | all | | {f32.get(('task', '-'), 0)} | | {u8.get(('task', '-'), 0)} | | | |")
    print(f"| update, amortised over the batch | all | | {upd(f32):.0f} | | {upd(u8):.0f} | | | |")
    print(f"| whole training step per sample | all | | {step_f32:.0f} | | {step_u8:.0f} | | | "
          f"{step_f32 / step_u8:.2f}x |")
    print(f"\nu8 / fp32, whole training step of {opts.model} (update included): {step_f32 / step_u8:.2f}x faster")


if __name__ == "__main__":
    main()
