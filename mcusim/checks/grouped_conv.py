"""Cross-checks of the grouped / depthwise Conv2D (kernels/grouped_conv2d_f32.c, grouped_conv2d_u8.c vs
mcusim/ops/grouped_conv.py): fp32 and u8 forward, backward_input, backward_weight, and the u8 scratch sizes.

Random geometries draw groups from {1, 2, 4, in_c (depthwise)}, 1-3 channels per group and channel
multipliers, kernels 1-4, strides 1-2, padding 0-2 and sparse `active` masks about half of the time;
size 1 is a depthwise 3x3 layer 32x14x14 (stride 1, pad 1) or a grouped 16->32 3x3 layer with 4 groups."""
from __future__ import annotations

import numpy as np

from ..crosscheck import CaseOutput, Check
from ..ops import grouped_conv as G
from ..ops.conv_u8 import conv_dims
from .conv_u8 import _mask, _scratch, macs
from .gemm_u8 import _qp, _raw, _u8
from .quant_u8 import random_grad

# (in_c, out_c, groups) of the size-1 layers, 14x14 -> 14x14, k3 s1 p1
LAYERS = [(32, 32, 32), (16, 32, 4)]


def random_case(rng: np.random.Generator, size: float) -> tuple[np.ndarray, int]:
    """(d, groups)."""
    if size >= 1:
        ic, oc, groups = LAYERS[int(rng.integers(len(LAYERS)))]
        return conv_dims(ic, 14, 14, oc, 14, 14, 3, 3, 1, 1), groups
    kind = int(rng.integers(4))
    if kind == 3:                                       # depthwise, channel multiplier 1-3
        groups = int(rng.integers(2, 3 + int(14 * size)))
        icg = 1
    else:
        groups, icg = (1, 2, 4)[kind], int(rng.integers(1, 4))
    ocg = int(rng.integers(1, 4))
    kh, kw = int(rng.integers(1, 5)), int(rng.integers(1, 5))
    s, p = int(rng.integers(1, 3)), int(rng.integers(0, 3))
    ih, iw = (int(rng.integers(1, 3 + int(12 * size))) for _ in range(2))
    ih, iw = max(ih, kh - 2 * p), max(iw, kw - 2 * p)
    oh, ow = max((ih + 2 * p - kh) // s + 1, 1), max((iw + 2 * p - kw) // s + 1, 1)
    return conv_dims(groups * icg, ih, iw, groups * ocg, oh, ow, kh, kw, s, p), groups


def group_macs(d: np.ndarray, groups: int) -> int:
    return macs(G.group_dims(d, groups), False) * groups


def _sizes(d, groups):
    return int(d[0] * d[1] * d[2]), int(d[3] * d[4] * d[5]), int(d[3] * (d[0] // groups) * d[6] * d[7])


def _f32(rng, n):
    return rng.standard_normal(int(n)).astype(np.float32)


# ---- fp32 -------------------------------------------------------------------------------------------
def _f32_forward(rng, size, kernels):
    d, groups = random_case(rng, size)
    n_x, n_y, n_w = _sizes(d, groups)
    x, w, y = _f32(rng, n_x), _f32(rng, n_w), _f32(rng, n_y)
    b = _f32(rng, d[3]) if rng.random() < 0.8 else None
    r = kernels.call("grouped_conv2d_f32_forward", x, w, b, y, d, groups, warm=size >= 1)
    G.grouped_conv2d_f32_forward(x, w, b, y, d, groups)
    return CaseOutput([r.outputs[2 if b is None else 3]], [y], r.cycles, group_macs(d, groups))


def _f32_backward_input(rng, size, kernels):
    d, groups = random_case(rng, size)
    n_x, n_y, n_w = _sizes(d, groups)
    w, dy, dx = _f32(rng, n_w), _f32(rng, n_y), _f32(rng, n_x)
    active = _mask(rng, d[3])
    r = kernels.call("grouped_conv2d_f32_backward_input", w, dy, dx, d, groups, active, warm=size >= 1)
    G.grouped_conv2d_f32_backward_input(w, dy, dx, d, groups, active)
    return CaseOutput([r.outputs[2]], [dx], r.cycles, group_macs(d, groups))


def _f32_backward_weight(rng, size, kernels):
    d, groups = random_case(rng, size)
    n_x, n_y, n_w = _sizes(d, groups)
    x, dy, dw = _f32(rng, n_x), _f32(rng, n_y), _f32(rng, n_w)
    db = _f32(rng, d[3]) if rng.random() < 0.8 else None
    active = _mask(rng, d[3])
    r = kernels.call("grouped_conv2d_f32_backward_weight", x, dy, dw, db, d, groups, active, warm=size >= 1)
    G.grouped_conv2d_f32_backward_weight(x, dy, dw, db, d, groups, active)
    c, n = [r.outputs[2]], [dw]
    if db is not None:
        c.append(r.outputs[3])
        n.append(db)
    return CaseOutput(c, n, r.cycles, group_macs(d, groups))


# ---- u8 ---------------------------------------------------------------------------------------------
def _u8_forward(rng, size, kernels):
    d, groups = random_case(rng, size)
    n_x, n_y, n_w = _sizes(d, groups)
    x, w, b = _u8(rng, n_x), _u8(rng, n_w), _u8(rng, d[3])
    qx, qw, qb, qy = _qp(rng), _qp(rng), _qp(rng), _qp(rng, positive=True)
    relu, alpha = int(rng.integers(2)), np.float32(0.1)
    y = np.zeros(n_y, np.uint8)
    call = kernels.call("grouped_conv2d_u8_forward", x, _raw(qx), w, _raw(qw), b, _raw(qb), y, _raw(qy), d, groups,
                        relu, float(alpha), _scratch(G.grouped_conv2d_forward_buffer_size(d, groups)),
                        warm=size >= 1)
    G.grouped_conv2d_u8_forward(x, qx, w, qw, b, qb, y, qy, d, groups, relu, alpha)
    return CaseOutput([call.outputs[6], call.outputs[7]], [y, _raw(qy)], call.cycles, group_macs(d, groups))


def _u8_backward_input(rng, size, kernels):
    d, groups = random_case(rng, size)
    n_x, n_y, n_w = _sizes(d, groups)
    w, e = _u8(rng, n_w), _u8(rng, n_y)
    qw, qe, qex = _qp(rng), _qp(rng), _qp(rng)
    x, qx = (_u8(rng, n_x), _qp(rng, positive=True)) if rng.random() < 0.5 else (None, None)
    active = _mask(rng, d[3])
    alpha = np.float32(0.1)
    ex = np.zeros(n_x, np.uint8)
    call = kernels.call("grouped_conv2d_u8_backward_input", w, _raw(qw), e, _raw(qe), ex, _raw(qex), x,
                        None if qx is None else _raw(qx), d, groups, active, float(alpha),
                        _scratch(G.grouped_conv2d_backward_input_buffer_size(d, groups)), warm=size >= 1)
    G.grouped_conv2d_u8_backward_input(w, qw, e, qe, ex, qex, x, qx, d, groups, active, alpha)
    return CaseOutput([call.outputs[4], call.outputs[5]], [ex, _raw(qex)], call.cycles, group_macs(d, groups))


def _u8_backward_weight(rng, size, kernels):
    d, groups = random_case(rng, size)
    n_x, n_y, n_w = _sizes(d, groups)
    x, e = _u8(rng, n_x), _u8(rng, n_y)
    qx, qe = _qp(rng), _qp(rng)
    (gw, sgw), (gb, sgb) = random_grad(rng, n_w, d[3]), random_grad(rng, d[3], d[3])
    active = _mask(rng, d[3])
    call = kernels.call("grouped_conv2d_u8_backward_weight", x, _raw(qx), e, _raw(qe), gw, sgw, gb, sgb,
                        d, groups, active, _scratch(G.grouped_conv2d_backward_weight_buffer_size(d, groups)),
                        warm=size >= 1)
    G.grouped_conv2d_u8_backward_weight(x, qx, e, qe, gw, sgw, gb, sgb, d, groups, active)
    return CaseOutput([call.outputs[4], call.outputs[6]], [gw, gb], call.cycles, group_macs(d, groups))


DIRECTIONS = ("forward", "backward_input", "backward_weight")


def _buffer_size(rng, size, kernels):
    d, groups = random_case(rng, size)
    c = [kernels.call(f"grouped_conv2d_u8_{k}_buffer_size", d, groups).result.return_value for k in DIRECTIONS]
    py = [getattr(G, f"grouped_conv2d_{k}_buffer_size")(d, groups) for k in DIRECTIONS]
    return CaseOutput([np.array(c, np.int32)], [np.array(py, np.int32)], 0)


CHECKS = [
    Check("grouped_conv2d", "fp32", "forward", _f32_forward),
    Check("grouped_conv2d", "fp32", "backward_input", _f32_backward_input),
    Check("grouped_conv2d", "fp32", "backward_weight", _f32_backward_weight),
    Check("grouped_conv2d", "u8", "forward", _u8_forward),
    Check("grouped_conv2d", "u8", "backward_input", _u8_backward_input),
    Check("grouped_conv2d", "u8", "backward_weight", _u8_backward_weight),
    Check("grouped_conv2d", "u8", "buffer_size", _buffer_size),
]
