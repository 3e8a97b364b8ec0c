"""Cross-checks of the pooling kernels (kernels/maxpool2d_*.c, avgpool2d_*.c vs mcusim/ops/pool.py):
maxpool2d and avgpool2d, fp32 and u8, forward and backward, and the scratch size of the u8 maxpool
backward. Geometries mix overlapping windows (k3 s2), padding, strides larger than the window, 1x1
maps and global pooling; size 1 is a realistic layer (maxpool 16x28x28 k2 s2, global avgpool 64x7x7).
`macs` counts the in-bounds taps (comparisons or additions)."""
from __future__ import annotations

import numpy as np

from ..crosscheck import CaseOutput, Check
from ..ops import pool as P
from .gemm_u8 import _qp, _raw, _u8

LAYERS = {"maxpool2d": P.pool_dims(16, 28, 28, 2, 2, 2, 0), "avgpool2d": P.global_pool_dims(64, 7, 7)}


def random_dims(rng: np.random.Generator, size: float, op: str) -> np.ndarray:
    if size >= 1:
        return LAYERS[op]
    c = int(rng.integers(1, 2 + int(12 * size)))
    h, w = (int(rng.integers(1, 3 + int(14 * size))) for _ in range(2))
    kind = rng.random()
    if kind < 0.15:
        return P.global_pool_dims(c, h, w)
    if kind < 0.25:                                             # 1x1 maps
        k = int(rng.integers(1, 3))
        return P.pool_dims(c, 1, 1, k, k, int(rng.integers(1, 3)), k - 1)
    if kind < 0.45:                                             # overlapping 3x3 stride 2
        kh = kw = 3
        s, p = 2, int(rng.integers(0, 2))
    else:
        kh, kw, s = int(rng.integers(1, 5)), int(rng.integers(1, 5)), int(rng.integers(1, 4))
        p = int(rng.integers(0, min(kh, kw)))
    return P.pool_dims(c, max(h, kh - 2 * p), max(w, kw - 2 * p), kh, kw, s, p)


def taps(d: np.ndarray) -> int:
    c, ih, iw, _, oh, ow, kh, kw, s, p = (int(v) for v in d)
    rows = np.clip(np.arange(oh) * s - p + kh, 0, ih) - np.clip(np.arange(oh) * s - p, 0, ih)
    cols = np.clip(np.arange(ow) * s - p + kw, 0, iw) - np.clip(np.arange(ow) * s - p, 0, iw)
    return c * int(rows.sum()) * int(cols.sum())


def _sizes(d):
    return int(d[0] * d[1] * d[2]), int(d[0] * d[4] * d[5])


def _f32(rng, n, ties: bool):
    """Normal values; for maxpool also ties (small integers, +-0.0) and a rare NaN."""
    x = rng.standard_normal(n).astype(np.float32)
    if ties:
        few = rng.random(n) < 0.4
        x[few] = rng.integers(-2, 3, int(few.sum())).astype(np.float32)
        x[rng.random(n) < 0.05] = np.float32(-0.0)
        x[rng.random(n) < 0.01] = np.float32(np.nan)
    return x


def _codes(rng, n):
    """uint8 codes, sometimes from a narrow range (many ties)."""
    return _u8(rng, n) if rng.random() < 0.5 else rng.integers(100, 104, int(n)).astype(np.uint8)


def _scratch(nbytes: int) -> np.ndarray:
    return np.zeros(max(nbytes, 4) // 4, np.int32)


def _fp32(op: str, direction: str):
    def run(rng, size, kernels):
        d = random_dims(rng, size, op)
        n_in, n_out = _sizes(d)
        ties = op == "maxpool2d"
        if direction == "forward":
            x, y = _f32(rng, n_in, ties), np.zeros(n_out, np.float32)
            call = kernels.call(f"{op}_f32_forward", x, y, d, warm=size >= 1)
            getattr(P, f"{op}_f32_forward")(x, y, d)
            return CaseOutput([call.outputs[1]], [y], call.cycles, taps(d))
        dy, dx = _f32(rng, n_out, False), _f32(rng, n_in, False)
        if ties:
            x = _f32(rng, n_in, True)
            call = kernels.call("maxpool2d_f32_backward", x, dy, dx, d, warm=size >= 1)
            P.maxpool2d_f32_backward(x, dy, dx, d)
            return CaseOutput([call.outputs[2]], [dx], call.cycles, taps(d))
        call = kernels.call("avgpool2d_f32_backward", dy, dx, d, warm=size >= 1)
        P.avgpool2d_f32_backward(dy, dx, d)
        return CaseOutput([call.outputs[1]], [dx], call.cycles, taps(d))
    return run


def _u8_case(op: str, direction: str):
    def run(rng, size, kernels):
        d = random_dims(rng, size, op)
        n_in, n_out = _sizes(d)
        x, qx, qy, alpha = _codes(rng, n_in), _qp(rng), _qp(rng), np.float32(0.1)
        fwd = direction == "forward"
        y = np.zeros(n_out if fwd else n_in, np.uint8)          # y / ex, qy / qex
        if fwd and op == "maxpool2d":
            call = kernels.call("maxpool2d_u8_forward", x, _raw(qx), y, _raw(qy), d, warm=size >= 1)
            P.maxpool2d_u8_forward(x, qx, y, qy, d)
        elif fwd:
            call = kernels.call("avgpool2d_u8_forward", x, _raw(qx), y, _raw(qy), d, float(alpha), warm=size >= 1)
            P.avgpool2d_u8_forward(x, qx, y, qy, d, alpha)
        elif op == "maxpool2d":
            e, qe = _codes(rng, n_out), _qp(rng)
            scratch = _scratch(P.maxpool2d_u8_backward_buffer_size(d))
            call = kernels.call("maxpool2d_u8_backward", x, _raw(qx), e, _raw(qe), y, _raw(qy), d, float(alpha),
                                scratch, warm=size >= 1)
            P.maxpool2d_u8_backward(x, qx, e, qe, y, qy, d, alpha)
        else:
            e, qe = _codes(rng, n_out), _qp(rng)
            call = kernels.call("avgpool2d_u8_backward", e, _raw(qe), y, _raw(qy), d, float(alpha), warm=size >= 1)
            P.avgpool2d_u8_backward(e, qe, y, qy, d, alpha)
        at = 2 if fwd or op == "avgpool2d" else 4                # the output and its qparams, in argument order
        return CaseOutput(call.outputs[at:at + 2], [y, _raw(qy)], call.cycles, taps(d))
    return run


def _buffer_size(rng, size, kernels):
    d = random_dims(rng, size, "maxpool2d")
    call = kernels.call("maxpool2d_u8_backward_buffer_size", d)
    return CaseOutput([np.array([call.result.return_value], np.int64)],
                      [np.array([P.maxpool2d_u8_backward_buffer_size(d)], np.int64)], call.cycles)


CHECKS = [
    *(Check(op, "fp32", direction, _fp32(op, direction))
      for op in ("maxpool2d", "avgpool2d") for direction in ("forward", "backward")),
    *(Check(op, "u8", direction, _u8_case(op, direction))
      for op in ("maxpool2d", "avgpool2d") for direction in ("forward", "backward")),
    Check("maxpool2d", "u8", "buffer_size", _buffer_size),
]
