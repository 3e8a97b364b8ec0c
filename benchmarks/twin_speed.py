"""Speed of the Numba fp32 layer twins (mcusim/ops/layers_f32.py) at the VAE layer sizes.

Times every op and direction (forward, backward_input, backward_weight), best of several repeats,
and prints us per call, GMAC/s and the total per training sample (all layers, all three directions).

    python benchmarks/twin_speed.py [--repeats 7] [--min-time 0.05]
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from mcusim.ops import layers_f32 as L

GEMMS = [(1568, 64), (64, 10), (10, 1568)]                       # (n_in, n_out)
CONVS = [("conv2d", (1, 28, 28, 16, 14, 14, 3, 3, 2, 1)),
         ("conv2d", (16, 14, 14, 32, 7, 7, 3, 3, 2, 1)),
         ("convtranspose2d", (32, 7, 7, 16, 14, 14, 4, 4, 2, 1)),
         ("convtranspose2d", (16, 14, 14, 1, 28, 28, 4, 4, 2, 1))]


def best_us(fn, repeats: int, min_time: float) -> float:
    """Best-of-`repeats` time of one call, in microseconds; each repeat loops for >= min_time s."""
    fn()                                                        # compile / warm up
    n = 1
    while True:                                                 # calibrate the loop count
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        dt = time.perf_counter() - t0
        if dt >= min_time:
            break
        n *= 2
    best = dt / n
    for _ in range(repeats - 1):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - t0) / n)
    return best * 1e6


def conv_macs(op, d) -> int:
    """Exact count of in-bounds multiply-adds (same for all three directions)."""
    ic, ih, iw, oc, oh, ow, kh, kw, s, p = d
    if op == "convtranspose2d":                                  # a transposed conv is the adjoint
        ic, ih, iw, oc, oh, ow = oc, oh, ow, ic, ih, iw
    ys = np.arange(oh)[:, None] * s - p + np.arange(kh)[None, :]
    xs = np.arange(ow)[:, None] * s - p + np.arange(kw)[None, :]
    taps = int(((ys >= 0) & (ys < ih)).sum()) * int(((xs >= 0) & (xs < iw)).sum())
    return taps * ic * oc


def cases(rng):
    """(name, macs, {direction: thunk})."""
    f = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731
    for n_in, n_out in GEMMS:
        x, w, b, y, dy, dx = f(n_in), f(n_out, n_in), f(n_out), f(n_out), f(n_out), f(n_in)
        dw, db = np.zeros_like(w), np.zeros_like(b)
        yield f"gemm {n_in}->{n_out}", n_in * n_out, {
            "fwd": lambda x=x, w=w, b=b, y=y, i=n_in, o=n_out: L.gemm_f32_forward(x, w, b, y, i, o),
            "bwd_in": lambda w=w, dy=dy, dx=dx, i=n_in, o=n_out: L.gemm_f32_backward_input(w, dy, dx, i, o, None),
            "bwd_w": lambda x=x, dy=dy, dw=dw, db=db, i=n_in, o=n_out:
                L.gemm_f32_backward_weight(x, dy, dw, db, i, o, None),
        }
    for op, dims in CONVS:
        d = np.array(dims, np.int32)
        ic, ih, iw, oc, oh, ow, kh, kw = dims[:8]
        ws = (oc, ic, kh, kw) if op == "conv2d" else (ic, oc, kh, kw)
        x, w, b, y, dy, dx = f(ic, ih, iw), f(*ws), f(oc), f(oc, oh, ow), f(oc, oh, ow), f(ic, ih, iw)
        dw, db = np.zeros_like(w), np.zeros_like(b)
        fw, bi, bw = (getattr(L, f"{op}_f32_{k}") for k in ("forward", "backward_input", "backward_weight"))
        name = f"{op} {ic}x{ih}x{iw}->{oc}x{oh}x{ow} k{kh}s{dims[8]}p{dims[9]}"
        yield name, conv_macs(op, dims), {
            "fwd": lambda x=x, w=w, b=b, y=y, d=d, fw=fw: fw(x, w, b, y, d),
            "bwd_in": lambda w=w, dy=dy, dx=dx, d=d, bi=bi: bi(w, dy, dx, d, None),
            "bwd_w": lambda x=x, dy=dy, dw=dw, db=db, d=d, bw=bw: bw(x, dy, dw, db, d, None),
        }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--min-time", type=float, default=0.05, help="seconds per repeat")
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    total = 0.0
    print(f"{'layer':44s} {'dir':7s} {'us/call':>10s} {'GMAC/s':>8s}")
    for name, macs, fns in cases(rng):
        for k, fn in fns.items():
            us = best_us(fn, a.repeats, a.min_time)
            total += us
            print(f"{name:44s} {k:7s} {us:10.2f} {macs / us / 1e3:8.2f}")
    print(f"total per training sample (fwd + bwd_in + bwd_w, all layers): {total:.1f} us")


if __name__ == "__main__":
    main()
