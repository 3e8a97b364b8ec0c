"""Cross-checks of the uint8 Conv2D and ConvTranspose2D (kernels/conv2d_u8.c, convtranspose2d_u8.c vs
mcusim/ops/conv_u8.py): forward, backward_input, backward_weight."""
from __future__ import annotations

import numpy as np

from ..crosscheck import CaseOutput, Check
from ..ops import conv_u8 as C
from .gemm_u8 import _qp, _raw, _u8
from .quant_u8 import random_grad

# (in_c, in_h, in_w, out_c, out_h, out_w, k, stride, pad) of the VAE
VAE_CONV2D = [(1, 28, 28, 16, 14, 14, 3, 2, 1), (16, 14, 14, 32, 7, 7, 3, 2, 1)]
VAE_CONVT = [(32, 7, 7, 16, 14, 14, 4, 2, 1), (16, 14, 14, 1, 28, 28, 4, 2, 1)]


def _taps(n_src: int, n_dst: int, k: int, s: int, p: int) -> int:
    """(dst index, tap) pairs whose src index dst*s - p + k lies in [0, n_src)."""
    i = np.arange(n_dst)[:, None] * s - p + np.arange(k)[None, :]
    return int(((i >= 0) & (i < n_src)).sum())


def macs(d: np.ndarray, transposed: bool) -> int:
    ic, ih, iw, oc, oh, ow, kh, kw, s, p = (int(v) for v in d)
    if transposed:
        return ic * oc * _taps(oh, ih, kh, s, p) * _taps(ow, iw, kw, s, p)
    return ic * oc * _taps(ih, oh, kh, s, p) * _taps(iw, ow, kw, s, p)


def random_dims(rng: np.random.Generator, size: float, transposed: bool) -> np.ndarray:
    layers = VAE_CONVT if transposed else VAE_CONV2D
    if size >= 1:
        ic, ih, iw, oc, oh, ow, k, s, p = layers[int(rng.integers(len(layers)))]
        return C.conv_dims(ic, ih, iw, oc, oh, ow, k, k, s, p)
    ic, oc = (int(rng.integers(1, 2 + int(12 * size))) for _ in range(2))
    kh, kw = int(rng.integers(1, 5)), int(rng.integers(1, 5))
    s, p = int(rng.integers(1, 3)), int(rng.integers(0, 3))
    ih, iw = (int(rng.integers(1, 3 + int(14 * size))) for _ in range(2))
    if transposed:
        oh = max((ih - 1) * s - 2 * p + kh + int(rng.integers(0, s)), 1)
        ow = max((iw - 1) * s - 2 * p + kw + int(rng.integers(0, s)), 1)
    else:
        ih, iw = max(ih, kh - 2 * p), max(iw, kw - 2 * p)
        oh, ow = max((ih + 2 * p - kh) // s + 1, 1), max((iw + 2 * p - kw) // s + 1, 1)
    return C.conv_dims(ic, ih, iw, oc, oh, ow, kh, kw, s, p)


def _mask(rng, n):
    return (rng.random(int(n)) < rng.uniform(0.1, 0.9)).astype(np.uint8) if rng.random() < 0.5 else None


def _scratch(nbytes: int) -> np.ndarray:
    return np.zeros(max(nbytes, 4) // 4, np.int32)


def _sizes(d):
    return int(d[0] * d[1] * d[2]), int(d[3] * d[4] * d[5]), int(d[0] * d[3] * d[6] * d[7])


def _forward(op: str, transposed: bool):
    twin = getattr(C, f"{op}_u8_forward")
    bufsize = getattr(C, f"{op}_forward_buffer_size")

    def run(rng, size, kernels):
        d = random_dims(rng, size, transposed)
        n_x, n_y, n_w = _sizes(d)
        x, w, b = _u8(rng, n_x), _u8(rng, n_w), _u8(rng, d[3])
        qx, qw, qb, qy = _qp(rng), _qp(rng), _qp(rng), _qp(rng, positive=True)
        relu, alpha = int(rng.integers(2)), np.float32(0.1)
        y = np.zeros(n_y, np.uint8)
        call = kernels.call(f"{op}_u8_forward", x, _raw(qx), w, _raw(qw), b, _raw(qb), y, _raw(qy), d, relu,
                            float(alpha), _scratch(bufsize(d)), warm=size >= 1)
        twin(x, qx, w, qw, b, qb, y, qy, d, relu, alpha)
        return CaseOutput([call.outputs[6], call.outputs[7]], [y, _raw(qy)], call.cycles, macs(d, transposed))
    return run


def _backward_input(op: str, transposed: bool):
    twin = getattr(C, f"{op}_u8_backward_input")
    bufsize = getattr(C, f"{op}_backward_input_buffer_size")

    def run(rng, size, kernels):
        d = random_dims(rng, size, transposed)
        n_x, n_y, n_w = _sizes(d)
        w, e = _u8(rng, n_w), _u8(rng, n_y)
        qw, qe, qex = _qp(rng), _qp(rng), _qp(rng)
        x, qx = (_u8(rng, n_x), _qp(rng, positive=True)) if rng.random() < 0.5 else (None, None)
        active = _mask(rng, d[3])
        alpha = np.float32(0.1)
        ex = np.zeros(n_x, np.uint8)
        call = kernels.call(f"{op}_u8_backward_input", w, _raw(qw), e, _raw(qe), ex, _raw(qex), x,
                            None if qx is None else _raw(qx), d, active, float(alpha), _scratch(bufsize(d)),
                            warm=size >= 1)
        twin(w, qw, e, qe, ex, qex, x, qx, d, active, alpha)
        return CaseOutput([call.outputs[4], call.outputs[5]], [ex, _raw(qex)], call.cycles, macs(d, transposed))
    return run


def _backward_weight(op: str, transposed: bool):
    twin = getattr(C, f"{op}_u8_backward_weight")
    bufsize = getattr(C, f"{op}_backward_weight_buffer_size")

    def run(rng, size, kernels):
        d = random_dims(rng, size, transposed)
        n_x, n_y, n_w = _sizes(d)
        x, e = _u8(rng, n_x), _u8(rng, n_y)
        qx, qe = _qp(rng), _qp(rng)
        (gw, sgw), (gb, sgb) = random_grad(rng, n_w, d[3]), random_grad(rng, d[3], d[3])
        active = _mask(rng, d[3])
        call = kernels.call(f"{op}_u8_backward_weight", x, _raw(qx), e, _raw(qe), gw, sgw, gb, sgb, d,
                            active, _scratch(bufsize(d)), warm=size >= 1)
        twin(x, qx, e, qe, gw, sgw, gb, sgb, d, active)
        return CaseOutput([call.outputs[4], call.outputs[6]], [gw, gb], call.cycles, macs(d, transposed))
    return run


def _buffer_size(op: str, transposed: bool):
    """The Python mirrors of the C *_buffer_size functions (the memory plan asks them) against the C."""
    def run(rng, size, kernels):
        d = random_dims(rng, size, transposed)
        directions = ("forward", "backward_input", "backward_weight")
        c = [kernels.call(f"{op}_u8_{k}_buffer_size", d).result.return_value for k in directions]
        py = [getattr(C, f"{op}_{k}_buffer_size")(d) for k in directions]
        return CaseOutput([np.array(c, np.int64)], [np.array(py, np.int64)], 0)
    return run


CHECKS = [
    Check(op, "u8", direction, make(op, transposed))
    for op, transposed in (("conv2d", False), ("convtranspose2d", True))
    for direction, make in (("forward", _forward), ("backward_input", _backward_input),
                            ("backward_weight", _backward_weight), ("buffer_size", _buffer_size))
]
