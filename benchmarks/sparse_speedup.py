"""Speed-up of dynamic sparse updates against the update rate, u8 on the emulated Cortex-M4, next to the
paper's figures (1.2x at 60% of the structures updated, 2.0x at 10%).

Each rate r runs one real training sample of the model (as `benchmarks/kernel_cycles.py`) with
lambda_min = lambda_max = r, so every layer updates k = floor(r * structures) structures (at least 1)
whatever its error; the dense u8 step of the same run is the reference. The cycles are the backward
pass's and the whole step's per sample (the sample's own update mask; over a batch the update's mask is
the union of the samples' selections, so the amortised update can only grow).

Usage: python benchmarks/sparse_speedup.py [--model baseline] [--rates 0.6,0.3,0.1,0.05]
"""
from __future__ import annotations

import argparse

from mcusim.graph import load_model
from mcusim.plan import make_plan

PAPER = {0.6: 1.2, 0.1: 2.0}        # the paper's reported speed-ups of the training step


def backward_cycles(plan: dict) -> float:
    """The backward pass of one sample: every layer's backward_input and backward_weight."""
    return sum(r["cycles"]["backward_input"] + r["cycles"]["backward_weight"] for r in plan["layers"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="baseline")
    ap.add_argument("--rates", default="0.6,0.3,0.1,0.05")
    opts = ap.parse_args()
    model = load_model(opts.model)
    dense = make_plan(model, precision="u8")
    step0, back0 = dense["step"]["cycles_per_sample"], backward_cycles(dense)
    print("| update rate | u8 step cycles | step speed-up | backward cycles | backward speed-up | paper (step) |")
    print("| --- | --- | --- | --- | --- | --- |")
    print(f"| dense | {step0:.0f} | 1.00x | {back0:.0f} | 1.00x | 1.0x |")
    for rate in (float(r) for r in opts.rates.split(",")):
        plan = make_plan(model, precision="u8", sparse=[rate, rate])
        step, back = plan["step"]["cycles_per_sample"], backward_cycles(plan)
        paper = f"{PAPER[rate]:.1f}x" if rate in PAPER else "-"
        print(f"| {rate:.0%} | {step:.0f} | {step0 / step:.2f}x | {back:.0f} | {back0 / back:.2f}x | {paper} |")


if __name__ == "__main__":
    main()
