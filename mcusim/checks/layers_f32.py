"""Cross-checks of the fp32 layer kernels (gemm, conv2d, convtranspose2d; forward, backward_input,
backward_weight): C on the emulated Cortex-M4F against the Numba twins in mcusim.ops.layers_f32.

size = 1 is a real layer of the VAE (picked at random among the layers of that operator); smaller
sizes scale channels and feature maps down (minimum 1) and draw kernel / stride / padding edge cases.
Backward cases use a random `active` mask about half of the time (NULL otherwise)."""
from __future__ import annotations

import numpy as np

from ..crosscheck import CaseOutput, Check
from ..ops import layers_f32 as L

# (in, out) of the VAE's fully connected layers: encoder hidden, heads, decoder.
GEMM_LAYERS = [(1568, 64), (64, 10), (10, 1568)]
# (in_c, in_h, in_w, out_c, out_h, out_w, k, stride, pad)
CONV2D_LAYERS = [(1, 28, 28, 16, 14, 14, 3, 2, 1), (16, 14, 14, 32, 7, 7, 3, 2, 1)]
CONVT_LAYERS = [(32, 7, 7, 16, 14, 14, 4, 2, 1), (16, 14, 14, 1, 28, 28, 4, 2, 1)]


def _f32(rng: np.random.Generator, *shape) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


def _scaled(rng: np.random.Generator, n: int, size: float) -> int:
    return int(rng.integers(1, max(1, round(n * size)) + 1))


def _mask(rng: np.random.Generator, n: int) -> np.ndarray | None:
    if rng.random() < 0.5:
        return None
    return (rng.random(n) < rng.uniform(0.2, 0.8)).astype(np.uint8)


def _n_active(active: np.ndarray | None, n: int) -> int:
    return n if active is None else int(np.count_nonzero(active))


# ---- geometry ----------------------------------------------------------------------------------
def _taps_conv(n_in: int, n_out: int, k: int, s: int, p: int) -> int:
    """(output index, kernel tap) pairs whose input index o*s - p + k is in [0, n_in)."""
    o = np.arange(n_out)[:, None] * s - p + np.arange(k)[None, :]
    return int(((o >= 0) & (o < n_in)).sum())


def conv_macs(d: np.ndarray) -> int:
    ic, ih, iw, oc, oh, ow, kh, kw, s, p = (int(v) for v in d)
    return ic * oc * _taps_conv(ih, oh, kh, s, p) * _taps_conv(iw, ow, kw, s, p)


def convt_macs(d: np.ndarray) -> int:
    ic, ih, iw, oc, oh, ow, kh, kw, s, p = (int(v) for v in d)
    return ic * oc * _taps_conv(oh, ih, kh, s, p) * _taps_conv(ow, iw, kw, s, p)


def _conv_dims(rng: np.random.Generator, size: float, transposed: bool) -> np.ndarray:
    layers = CONVT_LAYERS if transposed else CONV2D_LAYERS
    if size >= 1.0:
        ic, ih, iw, oc, oh, ow, k, s, p = layers[int(rng.integers(len(layers)))]
        return L.conv_dims(ic, ih, iw, oc, oh, ow, k, k, s, p)
    ic0, ih0, _, oc0, oh0, _, _, _, _ = layers[int(rng.integers(len(layers)))]
    ic, oc = _scaled(rng, ic0, size), _scaled(rng, oc0, size)
    kh, kw = int(rng.integers(1, 5)), int(rng.integers(1, 5))
    s = int(rng.integers(1, 4))
    p = int(rng.integers(0, max(kh, kw)))
    if not transposed:
        ih = max(_scaled(rng, ih0, size), kh - 2 * p, 1)
        iw = max(_scaled(rng, ih0, size), kw - 2 * p, 1)
        oh, ow = (ih + 2 * p - kh) // s + 1, (iw + 2 * p - kw) // s + 1
        oh, ow = max(oh, 1), max(ow, 1)
    else:
        ih, iw = _scaled(rng, ih0, size), _scaled(rng, ih0, size)
        oh = max((ih - 1) * s - 2 * p + kh + int(rng.integers(0, s)), 1)
        ow = max((iw - 1) * s - 2 * p + kw + int(rng.integers(0, s)), 1)
    return L.conv_dims(ic, ih, iw, oc, oh, ow, kh, kw, s, p)


# ---- gemm ----------------------------------------------------------------------------------------
def _gemm_shape(rng: np.random.Generator, size: float) -> tuple[int, int]:
    n_in, n_out = GEMM_LAYERS[int(rng.integers(len(GEMM_LAYERS)))]
    if size >= 1.0:
        return n_in, n_out
    return _scaled(rng, n_in, size), _scaled(rng, n_out, size)


def _gemm_forward(rng, size, kernels) -> CaseOutput:
    n_in, n_out = _gemm_shape(rng, size)
    x, w, b, y = _f32(rng, n_in), _f32(rng, n_out, n_in), _f32(rng, n_out), _f32(rng, n_out)
    r = kernels.call("gemm_f32_forward", x, w, b, y, n_in, n_out)
    yn = y.copy()
    L.gemm_f32_forward(x, w, b, yn, n_in, n_out)
    return CaseOutput([r.outputs[3]], [yn], r.cycles, n_in * n_out)


def _gemm_backward_input(rng, size, kernels) -> CaseOutput:
    n_in, n_out = _gemm_shape(rng, size)
    w, dy, dx, act = _f32(rng, n_out, n_in), _f32(rng, n_out), _f32(rng, n_in), _mask(rng, n_out)
    r = kernels.call("gemm_f32_backward_input", w, dy, dx, n_in, n_out, act)
    dxn = dx.copy()
    L.gemm_f32_backward_input(w, dy, dxn, n_in, n_out, act)
    return CaseOutput([r.outputs[2]], [dxn], r.cycles, n_in * _n_active(act, n_out))


def _gemm_backward_weight(rng, size, kernels) -> CaseOutput:
    n_in, n_out = _gemm_shape(rng, size)
    x, dy, dw, db = _f32(rng, n_in), _f32(rng, n_out), _f32(rng, n_out, n_in), _f32(rng, n_out)
    act = _mask(rng, n_out)
    r = kernels.call("gemm_f32_backward_weight", x, dy, dw, db, n_in, n_out, act)
    dwn, dbn = dw.copy(), db.copy()
    L.gemm_f32_backward_weight(x, dy, dwn, dbn, n_in, n_out, act)
    return CaseOutput([r.outputs[2], r.outputs[3]], [dwn, dbn], r.cycles, n_in * _n_active(act, n_out))


# ---- conv2d / convtranspose2d ------------------------------------------------------------------
def _wshape(d: np.ndarray, transposed: bool) -> tuple[int, ...]:
    ic, oc, kh, kw = int(d[0]), int(d[3]), int(d[6]), int(d[7])
    return (ic, oc, kh, kw) if transposed else (oc, ic, kh, kw)


def _conv_forward(op: str, transposed: bool):
    twin = getattr(L, f"{op}_f32_forward")
    macs_of = convt_macs if transposed else conv_macs

    def run(rng, size, kernels) -> CaseOutput:
        d = _conv_dims(rng, size, transposed)
        x, w, b = _f32(rng, *d[0:3]), _f32(rng, *_wshape(d, transposed)), _f32(rng, int(d[3]))
        y = _f32(rng, *d[3:6])
        r = kernels.call(f"{op}_f32_forward", x, w, b, y, d)
        yn = y.copy()
        twin(x, w, b, yn, d)
        return CaseOutput([r.outputs[3]], [yn], r.cycles, macs_of(d))
    return run


def _conv_backward_input(op: str, transposed: bool):
    twin = getattr(L, f"{op}_f32_backward_input")
    macs_of = convt_macs if transposed else conv_macs

    def run(rng, size, kernels) -> CaseOutput:
        d = _conv_dims(rng, size, transposed)
        w, dy, dx = _f32(rng, *_wshape(d, transposed)), _f32(rng, *d[3:6]), _f32(rng, *d[0:3])
        act = _mask(rng, int(d[3]))
        r = kernels.call(f"{op}_f32_backward_input", w, dy, dx, d, act)
        dxn = dx.copy()
        twin(w, dy, dxn, d, act)
        macs = macs_of(d) * _n_active(act, int(d[3])) // int(d[3])
        return CaseOutput([r.outputs[2]], [dxn], r.cycles, macs)
    return run


def _conv_backward_weight(op: str, transposed: bool):
    twin = getattr(L, f"{op}_f32_backward_weight")
    macs_of = convt_macs if transposed else conv_macs

    def run(rng, size, kernels) -> CaseOutput:
        d = _conv_dims(rng, size, transposed)
        x, dy, dw = _f32(rng, *d[0:3]), _f32(rng, *d[3:6]), _f32(rng, *_wshape(d, transposed))
        db = _f32(rng, int(d[3])) if rng.random() < 0.8 else None
        act = _mask(rng, int(d[3]))
        r = kernels.call(f"{op}_f32_backward_weight", x, dy, dw, db, d, act)
        dwn = dw.copy()
        dbn = None if db is None else db.copy()
        twin(x, dy, dwn, dbn, d, act)
        c_out, n_out = [r.outputs[2]], [dwn]
        if db is not None:
            c_out.append(r.outputs[3])
            n_out.append(dbn)
        macs = macs_of(d) * _n_active(act, int(d[3])) // int(d[3])
        return CaseOutput(c_out, n_out, r.cycles, macs)
    return run


CHECKS: list[Check] = [
    Check("gemm", "fp32", "forward", _gemm_forward),
    Check("gemm", "fp32", "backward_input", _gemm_backward_input),
    Check("gemm", "fp32", "backward_weight", _gemm_backward_weight),
    Check("conv2d", "fp32", "forward", _conv_forward("conv2d", False)),
    Check("conv2d", "fp32", "backward_input", _conv_backward_input("conv2d", False)),
    Check("conv2d", "fp32", "backward_weight", _conv_backward_weight("conv2d", False)),
    Check("convtranspose2d", "fp32", "forward", _conv_forward("convtranspose2d", True)),
    Check("convtranspose2d", "fp32", "backward_input", _conv_backward_input("convtranspose2d", True)),
    Check("convtranspose2d", "fp32", "backward_weight", _conv_backward_weight("convtranspose2d", True)),
]
