"""Numba twins of kernels/grouped_conv2d_f32.c and kernels/grouped_conv2d_u8.c (contract in nn.h).

A grouped convolution is, per group, the conv2d of the group's channel slices with the group's contiguous
weight block, so each twin runs the conv2d twins (mcusim/ops/layers_f32.py, conv_u8.py) on slices of the
arrays (views: the outputs are written in place). uint8: the integer sums of all groups are gathered into
one accumulator and go through ONE output stage, which tracks the range over every group's outputs and
observes it once (the C's depthwise core computes the same exact sums in another order). `d` is the
nn_conv_dims array of the whole layer; `b`, `db`, `active`, `x`/`qx` (no ReLU mask) may be None.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from .conv_u8 import (_align4, _epilogue_error, _epilogue_forward, _strided, _strided_work, _swap, _transposed,
                      _transposed_work, conv2d_backward_weight_buffer_size, conv2d_u8_backward_weight, swap_dims)
from .layers_f32 import conv2d_f32_backward_input, conv2d_f32_backward_weight, conv2d_f32_forward

_jit = njit(cache=True, error_model="numpy")


def group_dims(d, groups):
    """The geometry of one group (as nn__conv_dims_group)."""
    g = d.astype(np.int32)
    g[0] //= groups
    g[3] //= groups
    return g


_group = _jit(group_dims)


@_jit
def _spans(d, groups):
    """Elements per group of x, y and w."""
    g = _group(d, groups)
    return g, g[0] * g[1] * g[2], g[3] * g[4] * g[5], g[3] * g[0] * g[6] * g[7]


# ---- fp32 ------------------------------------------------------------------------------------------
@_jit
def grouped_conv2d_f32_forward(x, w, b, y, d, groups):
    g, xs, ys, ws = _spans(d, groups)
    x, w, y = x.reshape(-1), w.reshape(-1), y.reshape(-1)
    for k in range(groups):
        if b is None:
            conv2d_f32_forward(x[k * xs:(k + 1) * xs], w[k * ws:(k + 1) * ws], None, y[k * ys:(k + 1) * ys], g)
        else:
            conv2d_f32_forward(x[k * xs:(k + 1) * xs], w[k * ws:(k + 1) * ws], b.reshape(-1)[k * g[3]:(k + 1) * g[3]],
                               y[k * ys:(k + 1) * ys], g)


@_jit
def grouped_conv2d_f32_backward_input(w, dy, dx, d, groups, active):
    g, xs, ys, ws = _spans(d, groups)
    w, dy, dx = w.reshape(-1), dy.reshape(-1), dx.reshape(-1)
    for k in range(groups):
        if active is None:
            conv2d_f32_backward_input(w[k * ws:(k + 1) * ws], dy[k * ys:(k + 1) * ys], dx[k * xs:(k + 1) * xs], g,
                                      None)
        else:
            conv2d_f32_backward_input(w[k * ws:(k + 1) * ws], dy[k * ys:(k + 1) * ys], dx[k * xs:(k + 1) * xs], g,
                                      active[k * g[3]:(k + 1) * g[3]])


@_jit
def grouped_conv2d_f32_backward_weight(x, dy, dw, db, d, groups, active):
    g, xs, ys, ws = _spans(d, groups)
    x, dy, dw = x.reshape(-1), dy.reshape(-1), dw.reshape(-1)
    oc = g[3]
    for k in range(groups):
        xk, dyk, dwk = x[k * xs:(k + 1) * xs], dy[k * ys:(k + 1) * ys], dw[k * ws:(k + 1) * ws]
        if db is None:
            if active is None:
                conv2d_f32_backward_weight(xk, dyk, dwk, None, g, None)
            else:
                conv2d_f32_backward_weight(xk, dyk, dwk, None, g, active[k * oc:(k + 1) * oc])
        else:
            dbk = db.reshape(-1)[k * oc:(k + 1) * oc]
            if active is None:
                conv2d_f32_backward_weight(xk, dyk, dwk, dbk, g, None)
            else:
                conv2d_f32_backward_weight(xk, dyk, dwk, dbk, g, active[k * oc:(k + 1) * oc])


# ---- uint8 -----------------------------------------------------------------------------------------
@_jit
def grouped_conv2d_u8_forward(x, qx, w, qw, b, qb, y, qy, d, groups, relu, alpha):
    g, xs, ys, ws = _spans(d, groups)
    zx, zw = np.int32(qx[0].zero_point), np.int32(qw[0].zero_point)
    acc = np.empty(groups * ys, np.int32)
    for k in range(groups):
        acc[k * ys:(k + 1) * ys] = _strided(x[k * xs:(k + 1) * xs], zx, w[k * ws:(k + 1) * ws], zw, g, None)
    _epilogue_forward(acc, qw[0].scale * qx[0].scale, b, qb, y, qy, d[3], d[4] * d[5], relu, np.float32(alpha))


@_jit
def grouped_conv2d_u8_backward_input(w, qw, e, qe, ex, qex, x, qx, d, groups, active, alpha):
    g, xs, ys, ws = _spans(d, groups)
    t = _swap(g)
    ze, zw = np.int32(qe[0].zero_point), np.int32(qw[0].zero_point)
    acc = np.empty(groups * xs, np.int32)
    for k in range(groups):
        ek, wk = e[k * ys:(k + 1) * ys], w[k * ws:(k + 1) * ws]
        if active is None:
            acc[k * xs:(k + 1) * xs] = _transposed(ek, ze, wk, zw, t, None)
        else:
            acc[k * xs:(k + 1) * xs] = _transposed(ek, ze, wk, zw, t, active[k * g[3]:(k + 1) * g[3]])
    _epilogue_error(acc, qw[0].scale * qe[0].scale, ex, qex, x, qx, d[0] * d[1] * d[2], np.float32(alpha))


@_jit
def grouped_conv2d_u8_backward_weight(x, qx, e, qe, gw, sgw, gb, sgb, d, groups, active):
    g, xs, ys, ws = _spans(d, groups)
    oc = g[3]
    for k in range(groups):
        xk, ek, gwk, gbk = x[k * xs:(k + 1) * xs], e[k * ys:(k + 1) * ys], gw[k * ws:(k + 1) * ws], gb[k * oc:(k + 1) * oc]
        sgwk, sgbk = sgw[k * oc:(k + 1) * oc], sgb[k * oc:(k + 1) * oc]
        if active is None:
            conv2d_u8_backward_weight(xk, qx, ek, qe, gwk, sgwk, gbk, sgbk, g, None)
        else:
            conv2d_u8_backward_weight(xk, qx, ek, qe, gwk, sgwk, gbk, sgbk, g, active[k * oc:(k + 1) * oc])


# ---- scratch sizes in bytes (as the C <fn>_buffer_size) ----------------------------------------------
def _depthwise(g, groups):
    return groups > 1 and int(g[0]) == 1


def _dw_work(oh, ow, s, kh, kw):
    """The depthwise core: acc [oh*ow] int32, filter pairs, the int16 plane it reads."""
    hp, wp = (oh - 1) * s + kh, (ow - 1) * s + kw + (kw & 1)
    return 4 * oh * ow + 4 * kh * ((kw + 1) // 2) + _align4(2 * hp * wp)


def grouped_conv2d_forward_buffer_size(d, groups):
    g = group_dims(d, groups)
    ic, ih, iw, oc, oh, ow, kh, kw, s, p = (int(v) for v in d)
    return oc * 4 + (_dw_work(oh, ow, s, kh, kw) if _depthwise(g, groups) else _strided_work(g))


def grouped_conv2d_backward_input_buffer_size(d, groups):
    g = group_dims(d, groups)
    ic, ih, iw, oc, oh, ow, kh, kw, s, p = (int(v) for v in d)
    return _dw_work(ih, iw, 1, kh, kw) if _depthwise(g, groups) else _transposed_work(swap_dims(g))


def grouped_conv2d_backward_weight_buffer_size(d, groups):
    return conv2d_backward_weight_buffer_size(group_dims(d, groups))
