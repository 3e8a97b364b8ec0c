"""Cycles per call and MACs per cycle of every training kernel on the emulated Cortex-M4, for the
layers of a VAE model, fp32 next to u8 (the table in the README).

Usage: python benchmarks/kernel_cycles.py [--model baseline] [--opt -O2]
"""
from __future__ import annotations

import argparse

import numpy as np

from mcusim.kernel_lib import KernelLibrary
from mcusim.graph import load_model
from mcusim.ops.quant_u8 import make_qparams

DIRECTIONS = ("forward", "backward_input", "backward_weight")


def _qp(lo=-1.0, hi=1.0):
    return make_qparams(lo, hi).view(np.uint8).copy()


def fp32_call(k: KernelLibrary, layer, direction: str, rng) -> int:
    f = lambda n: rng.standard_normal(n).astype(np.float32)  # noqa: E731
    shape = (layer.n_in, layer.n_out) if layer.op == "gemm" else (np.array(layer.operator.dims(layer), np.int32),)
    if direction == "forward":
        args = (f(layer.n_in), f(layer.n_weights), f(layer.n_bias), f(layer.n_out), *shape)
    elif direction == "backward_input":
        args = (f(layer.n_weights), f(layer.n_out), f(layer.n_in), *shape, None)
    else:
        args = (f(layer.n_in), f(layer.n_out), f(layer.n_weights), f(layer.n_bias), *shape, None)
    return k.call(f"{layer.op}_f32_{direction}", *args, warm=True).cycles


def u8_call(k: KernelLibrary, layer, direction: str, rng) -> int:
    u = lambda n: rng.integers(0, 256, n).astype(np.uint8)  # noqa: E731
    conv = layer.op != "gemm"
    shape = (np.array(layer.operator.dims(layer), np.int32),) if conv else (layer.n_in, layer.n_out)
    scratch = np.zeros(20000, np.int32)
    if direction == "forward":
        args = (u(layer.n_in), _qp(), u(layer.n_weights), _qp(), u(layer.n_bias), _qp(), u(layer.n_out), _qp(0, 1),
                *shape, 1, 0.1) + ((scratch,) if conv else ())
    elif direction == "backward_input":
        args = (u(layer.n_weights), _qp(), u(layer.n_out), _qp(), u(layer.n_in), _qp(), u(layer.n_in), _qp(0, 1),
                *shape, None, 0.1, scratch)
    else:
        g = np.zeros(layer.n_weights, np.uint16)
        args = (u(layer.n_in), _qp(), u(layer.n_out), _qp(), g, np.zeros(layer.n_bias, np.uint16), *shape, None,
                scratch if conv else scratch.view(np.float32))
    return k.call(f"{layer.op}_u8_{direction}", *args, warm=True).cycles


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="baseline")
    ap.add_argument("--opt", default="-O2")
    opts = ap.parse_args()
    model = load_model(opts.model)
    k = KernelLibrary(opt=opts.opt)
    rng = np.random.default_rng(0)
    print(f"| layer | direction | MACs | fp32 cycles | fp32 MAC/cycle | u8 cycles | u8 MAC/cycle | u8 speed-up |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    totals = {"fp32": 0, "u8": 0}
    for layer in model.trainable:
        for direction in DIRECTIONS:
            if layer is model.encoder[0] and direction == "backward_input":
                continue                                   # no error is propagated into the image
            f, q = fp32_call(k, layer, direction, rng), u8_call(k, layer, direction, rng)
            totals["fp32"] += f
            totals["u8"] += q
            shape = f"{layer.op} {'x'.join(map(str, layer.in_shapes[0]))}->{'x'.join(map(str, layer.out_shape))}"
            print(f"| {shape} | {direction} | {layer.macs.forward} | {f} | {layer.macs.forward / f:.3f} | {q} | "
                  f"{layer.macs.forward / q:.3f} | {f / q:.2f}x |")
    print(f"| all layers | all | | {totals['fp32']} | | {totals['u8']} | | {totals['fp32'] / totals['u8']:.2f}x |")


if __name__ == "__main__":
    main()
