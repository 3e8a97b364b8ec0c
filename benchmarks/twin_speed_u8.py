"""Speed of the Numba uint8 twins (mcusim/ops/gemm_u8.py, conv_u8.py) at the VAE layer sizes.

Times every op and direction (forward, backward_input, backward_weight) plus sgd_u8_update, best of
several repeats, in us per call, for the working-tree twins ("after") and, unless --no-baseline, for
the twins of a git revision ("before", default 7c27955 = the last commit with the original plain-loop
twins, loaded from `git show` into a scratch module).
Also prints the total per training sample: every layer forward + backward_weight, every layer but the
first backward_input (as mcusim/tasks.py generates it); sgd_u8_update runs once per batch, so it is
listed but not in the per-sample total.

    python benchmarks/twin_speed_u8.py [--repeats 7] [--min-time 0.05] [--baseline REV] [--no-baseline]
"""
from __future__ import annotations

import argparse
import importlib.util
import inspect
import os
import subprocess
import sys
import tempfile

import numpy as np

from mcusim.ops import conv_u8, gemm_u8
from mcusim.ops.quant_u8 import QP_DTYPE, grad_scales, make_qparams
from twin_speed import best_us                          # benchmarks/ is the script's directory

BASELINE = "7c27955"                 # plain-loop twins, before the speed-up
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The baseline VAE (models/vae_baseline.toml): conv 8, conv 16, gemm 60, heads 20, gemm 784, convT 8, convT 1.
GEMMS = [(784, 60), (60, 20), (10, 784)]                                     # (n_in, n_out)
CONVS = [("conv2d", (1, 28, 28, 8, 14, 14, 3, 3, 2, 1)),
         ("conv2d", (8, 14, 14, 16, 7, 7, 3, 3, 2, 1)),
         ("convtranspose2d", (16, 7, 7, 8, 14, 14, 4, 4, 2, 1)),
         ("convtranspose2d", (8, 14, 14, 1, 28, 28, 4, 4, 2, 1))]
FIRST_LAYER = "conv2d 1x28x28->8x14x14 k3s2p1"       # no backward_input in training


def load_revision(rev: str, tmpdir: str):
    """(gemm_u8, conv_u8) of git revision `rev`, as modules inside the mcusim.ops package (with that
    revision's quant_u8, which they import)."""
    mods = []
    for name in ("quant_u8", "gemm_u8", "conv_u8"):
        src = subprocess.run(["git", "show", f"{rev}:mcusim/ops/{name}.py"], cwd=ROOT, check=True,
                             capture_output=True, text=True).stdout
        for dep in ("quant_u8", "gemm_u8"):
            src = src.replace(f"from .{dep} import", f"from ._before_{dep} import")
        path = os.path.join(tmpdir, f"_before_{name}.py")
        with open(path, "w") as f:
            f.write(src)
        full = f"mcusim.ops._before_{name}"
        spec = importlib.util.spec_from_file_location(full, path)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[full] = mod
        spec.loader.exec_module(mod)
        mods.append(mod)
    return mods[1:]


def _qp(rng, positive=False):
    lo = np.float32(0.0 if positive else -rng.uniform(0.05, 1.0))
    return make_qparams(lo, np.float32(rng.uniform(0.05, 1.0)))


def _mirrored(rng, qe, n):
    """Two error tensors with opposite deviations from qe's zero point: backward_weight thunks alternate
    between them, so the accumulated half-float gradients stay bounded (no overflow to inf/NaN, which
    would time the twins' exact fallback path instead of the normal one) however often they run."""
    ze = int(qe["zero_point"][0])
    lo, hi = max(0, 2 * ze - 255), min(255, 2 * ze)
    e = rng.integers(lo, hi + 1, int(n)).astype(np.uint8)
    return e, (2 * ze - e.astype(np.int32)).astype(np.uint8)


def _alternate(fn, e_pair):
    state = [0]

    def run():
        state[0] ^= 1
        fn(e_pair[state[0]])
    return run


def cases(G, C, seed=0):
    """[(layer name, {direction: thunk})]; buffers are fresh per call of cases() (same seed, same data)."""
    rng = np.random.default_rng(seed)
    u8 = lambda n: rng.integers(0, 256, int(n)).astype(np.uint8)  # noqa: E731
    params = inspect.signature(G.gemm_u8_backward_weight.py_func).parameters
    if "sgw" in params or "qgw" in params:    # int16 gradients (after 2026-11-30), scales after each buffer
        grad = lambda n: rng.integers(-2000, 2000, int(n)).astype(np.int16)  # noqa: E731
    else:                                     # half-float gradients (the baseline revision)
        grad = lambda n: (rng.standard_normal(int(n)) * 0.01).astype(np.float16).view(np.uint16)  # noqa: E731
    if "sgw" in params:                       # a scale per row
        gq = lambda g, rows: (g, grad_scales(rows))  # noqa: E731
    elif "qgw" in params:                     # one qparams record per tensor
        gq = lambda g, rows: (g, np.array([(2.0 ** -16, 0, 0.0, 0.0)], QP_DTYPE))  # noqa: E731
    else:
        gq = lambda g, rows: (g,)  # noqa: E731
    out = []
    a = np.float32(0.01)
    for n_in, n_out in GEMMS:
        x, w, b, e = u8(n_in), u8(n_in * n_out), u8(n_out), u8(n_out)
        qx, qw, qb, qy, qe, qex = _qp(rng, True), _qp(rng), _qp(rng), _qp(rng, True), _qp(rng), _qp(rng)
        y, ex = np.zeros(n_out, np.uint8), np.zeros(n_in, np.uint8)
        gw, gb, norm = grad(n_in * n_out), grad(n_out), np.full(n_out, 1e-4, np.float32)
        gs = grad(n_in * n_out)                                 # sgd's own gradient (it zeroes it)
        out.append((f"gemm {n_in}->{n_out}", {
            "fwd": lambda x=x, qx=qx, w=w, qw=qw, b=b, qb=qb, y=y, qy=qy, i=n_in, o=n_out:
                G.gemm_u8_forward(x, qx, w, qw, b, qb, y, qy, i, o, 1, a),
            "bwd_in": lambda w=w, qw=qw, e=e, qe=qe, ex=ex, qex=qex, x=x, qx=qx, i=n_in, o=n_out:
                G.gemm_u8_backward_input(w, qw, e, qe, ex, qex, x, qx, i, o, None, a),
            "bwd_w": _alternate(lambda e, x=x, qx=qx, qe=qe, gw=gq(gw, n_out), gb=gq(gb, n_out), i=n_in, o=n_out:
                                G.gemm_u8_backward_weight(x, qx, e, qe, *gw, *gb, i, o, None),
                                _mirrored(rng, qe, n_out)),
            "sgd": lambda w=w, qw=qw, gw=gq(gs, n_out), norm=norm, i=n_in, o=n_out:
                G.sgd_u8_update(w, qw, *gw, norm, o, i, i, np.float32(1e-3), np.float32(0.01),
                                np.float32(0.01), None),
        }))
    for op, dims in CONVS:
        d = np.array(dims, np.int32)
        ic, ih, iw, oc, oh, ow, kh, kw, s, p = dims
        n_x, n_y, n_w = ic * ih * iw, oc * oh * ow, ic * oc * kh * kw
        x, w, b, e = u8(n_x), u8(n_w), u8(oc), u8(n_y)
        qx, qw, qb, qy, qe, qex = _qp(rng, True), _qp(rng), _qp(rng), _qp(rng, True), _qp(rng), _qp(rng)
        y, ex = np.zeros(n_y, np.uint8), np.zeros(n_x, np.uint8)
        gw, gb, gs = grad(n_w), grad(oc), grad(n_w)
        rows = oc if op == "conv2d" else ic
        norm = np.full(rows, 1e-4, np.float32)
        fw, bi, bw = (getattr(C, f"{op}_u8_{k}") for k in ("forward", "backward_input", "backward_weight"))
        out.append((f"{op} {ic}x{ih}x{iw}->{oc}x{oh}x{ow} k{kh}s{s}p{p}", {
            "fwd": lambda x=x, qx=qx, w=w, qw=qw, b=b, qb=qb, y=y, qy=qy, d=d, fw=fw:
                fw(x, qx, w, qw, b, qb, y, qy, d, 1, a),
            "bwd_in": lambda w=w, qw=qw, e=e, qe=qe, ex=ex, qex=qex, x=x, qx=qx, d=d, bi=bi:
                bi(w, qw, e, qe, ex, qex, x, qx, d, None, a),
            "bwd_w": _alternate(lambda e, x=x, qx=qx, qe=qe, gw=gq(gw, oc), gb=gq(gb, oc), d=d, bw=bw:
                                bw(x, qx, e, qe, *gw, *gb, d, None), _mirrored(rng, qe, n_y)),
            "sgd": lambda w=w, qw=qw, gw=gq(gs, rows), norm=norm, r=rows, c=n_w // rows:
                G.sgd_u8_update(w, qw, *gw, norm, r, c, c, np.float32(1e-3), np.float32(0.01),
                                np.float32(0.01), None),
        }))
    return out


DIRS = ("fwd", "bwd_in", "bwd_w", "sgd")


def measure(G, C, repeats, min_time):
    res = {}
    for name, fns in cases(G, C):
        for k in DIRS:
            res[(name, k)] = best_us(fns[k], repeats, min_time)
    return res


def sample_total(res):
    tot = 0.0
    for (name, k), us in res.items():
        if k == "sgd" or (k == "bwd_in" and name == FIRST_LAYER):
            continue
        tot += us
    return tot


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--min-time", type=float, default=0.05)
    ap.add_argument("--baseline", default=BASELINE, help="git revision of the 'before' twins")
    ap.add_argument("--no-baseline", action="store_true")
    args = ap.parse_args(argv)

    after = measure(gemm_u8, conv_u8, args.repeats, args.min_time)
    before = None
    if not args.no_baseline:
        with tempfile.TemporaryDirectory() as tmp:
            G0, C0 = load_revision(args.baseline, tmp)
            before = measure(G0, C0, args.repeats, args.min_time)

    names = [n for n, _ in cases(gemm_u8, conv_u8)]
    w = max(len(n) for n in names) + 2
    head = f"{'layer':<{w}}{'dir':<8}" + (f"{'before us':>11}" if before else "") + f"{'after us':>11}" + \
        (f"{'speedup':>9}" if before else "")
    print(head)
    print("-" * len(head))
    for n in names:
        for k in DIRS:
            line = f"{n:<{w}}{k:<8}"
            if before:
                line += f"{before[(n, k)]:>11.2f}"
            line += f"{after[(n, k)]:>11.2f}"
            if before:
                line += f"{before[(n, k)] / after[(n, k)]:>8.1f}x"
            if k == "bwd_in" and n == FIRST_LAYER:
                line += "   (not used in training)"
            print(line)
    print("-" * len(head))
    ta = sample_total(after)
    if before:
        tb = sample_total(before)
        print(f"{'per training sample':<{w}}{'total':<8}{tb:>11.2f}{ta:>11.2f}{tb / ta:>8.1f}x")
    else:
        print(f"{'per training sample':<{w}}{'total':<8}{ta:>11.2f}")
    sgd_a = sum(v for (n, k), v in after.items() if k == "sgd")
    if before:
        sgd_b = sum(v for (n, k), v in before.items() if k == "sgd")
        print(f"{'sgd_u8_update, all layers':<{w}}{'batch':<8}{sgd_b:>11.2f}{sgd_a:>11.2f}{sgd_b / sgd_a:>8.1f}x")
    else:
        print(f"{'sgd_u8_update, all layers':<{w}}{'batch':<8}{sgd_a:>11.2f}")


if __name__ == "__main__":
    main()
