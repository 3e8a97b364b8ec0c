"""Numba twins of the pooling kernels: kernels/maxpool2d_f32.c, maxpool2d_u8.c, avgpool2d_f32.c and
avgpool2d_u8.c (contract, tie / NaN rule and float order in kernels/include/nn.h).

Same names and arguments as the C; `d` is the nn_conv_dims array of `conv_u8.conv_dims` with
out_c == in_c (see `pool_dims`). The float steps are the C's, element by element; the loop orders may
differ where nn.h allows it (sums into one element are always added in the documented order: a
scatter over windows in (oy, ox) order gives each input exactly the gather order). The rules of
mcusim/ops/nn_math.py apply: float32 constants only, no float64, no fastmath. qparams are one-element
record arrays of `quant_u8.QP_DTYPE`.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from .conv_u8 import conv_dims
from .quant_u8 import observe, quantize

ZERO, ONE = np.float32(0.0), np.float32(1.0)
BIG = np.float32(3.0e38)

_jit = njit(cache=True, error_model="numpy")


def pool_dims(c: int, in_h: int, in_w: int, k_h: int, k_w: int, stride: int, pad: int) -> np.ndarray:
    """nn_conv_dims of a pooling layer with the ONNX floor-mode output size."""
    return conv_dims(c, in_h, in_w, c, (in_h + 2 * pad - k_h) // stride + 1, (in_w + 2 * pad - k_w) // stride + 1,
                     k_h, k_w, stride, pad)


def global_pool_dims(c: int, h: int, w: int) -> np.ndarray:
    """Global average pooling: one window of the whole map per channel."""
    return pool_dims(c, h, w, h, w, 1, 0)


def maxpool2d_u8_backward_buffer_size(d) -> int:
    return int(d[1]) * int(d[2]) * 4


@_jit
def _span(o, s, pad, k, n):
    a = o * s - pad
    return max(a, 0), min(a + k, n)


@_jit
def _argmax(x, base, d, oy, ox):
    """Index of the chosen tap of window (oy, ox) of the plane at x[base]: first maximum, strict >."""
    in_w = d[2]
    y0, y1 = _span(oy, d[8], d[9], d[6], d[1])
    x0, x1 = _span(ox, d[8], d[9], d[7], in_w)
    best = base + y0 * in_w + x0
    m = x[best]
    for iy in range(y0, y1):
        for ix in range(x0, x1):
            i = base + iy * in_w + ix
            if x[i] > m:
                m = x[i]
                best = i
    return best


@_jit
def _rcp(d, oy, ox):
    y0, y1 = _span(oy, d[8], d[9], d[6], d[1])
    x0, x1 = _span(ox, d[8], d[9], d[7], d[2])
    return ONE / np.float32((y1 - y0) * (x1 - x0))


@_jit
def _set(q, scale, zp, mn, mx):
    q[0].scale, q[0].zero_point, q[0].min, q[0].max = scale, zp, mn, mx


@_jit
def _emit(t, y, q, alpha):
    """y = quantize(t) with q's current qparams, then q observes the range of t with alpha."""
    inv = ONE / q[0].scale
    zp = np.int32(q[0].zero_point)
    tmin, tmax = BIG, -BIG
    for i in range(t.size):
        v = t[i]
        if v < tmin:
            tmin = v
        if v > tmax:
            tmax = v
        y[i] = quantize(v, inv, zp)
    if t.size > 0:
        _set(q, *observe(q[0].min, q[0].max, tmin, tmax, np.float32(alpha)))


# ---- maxpool2d -----------------------------------------------------------------------------------
@_jit
def _maxpool(x, y, d):
    """y = the chosen tap of every window, for float32 values or uint8 codes."""
    plane = d[1] * d[2]
    o = 0
    for c in range(d[0]):
        for oy in range(d[4]):
            for ox in range(d[5]):
                y[o] = x[_argmax(x, c * plane, d, oy, ox)]
                o += 1


@_jit
def maxpool2d_f32_forward(x, y, d):
    _maxpool(x, y, d)


@_jit
def maxpool2d_f32_backward(x, dy, dx, d):
    plane = d[1] * d[2]
    dx[:d[0] * plane] = ZERO
    o = 0
    for c in range(d[0]):
        for oy in range(d[4]):
            for ox in range(d[5]):
                i = _argmax(x, c * plane, d, oy, ox)
                dx[i] = dx[i] + dy[o]
                o += 1


@_jit
def maxpool2d_u8_forward(x, qx, y, qy, d):
    _maxpool(x, y, d)
    qy[0] = qx[0]


@_jit
def maxpool2d_u8_backward(x, qx, e, qe, ex, qex, d, alpha):
    """qx is not read (as in the C)."""
    plane = d[1] * d[2]
    ze = np.int32(qe[0].zero_point)
    acc = np.zeros(d[0] * plane, np.int32)
    o = 0
    for c in range(d[0]):
        for oy in range(d[4]):
            for ox in range(d[5]):
                acc[_argmax(x, c * plane, d, oy, ox)] += np.int32(e[o]) - ze
                o += 1
    t = np.empty(acc.size, np.float32)
    for i in range(acc.size):
        t[i] = np.float32(acc[i]) * qe[0].scale
    _emit(t, ex, qex, alpha)


# ---- avgpool2d -----------------------------------------------------------------------------------
@_jit
def _window_sum(v, acc, d, c, oy, ox):
    """acc + the in-bounds taps of window (oy, ox) of channel c of v, in (ky, kx) order."""
    in_w = d[2]
    y0, y1 = _span(oy, d[8], d[9], d[6], d[1])
    x0, x1 = _span(ox, d[8], d[9], d[7], in_w)
    base = c * d[1] * in_w
    for iy in range(y0, y1):
        for ix in range(x0, x1):
            acc = acc + v[base + iy * in_w + ix]
    return acc


@_jit
def avgpool2d_f32_forward(x, y, d):
    o = 0
    for c in range(d[0]):
        for oy in range(d[4]):
            for ox in range(d[5]):
                y[o] = _window_sum(x, ZERO, d, c, oy, ox) * _rcp(d, oy, ox)
                o += 1


@_jit
def _scatter(g, d):
    """dx[i] = 0.0f + the g of every window containing i, in (oy, ox) order (g [c][oy][ox] float32)."""
    in_w, plane = d[2], d[1] * d[2]
    dx = np.zeros(d[0] * plane, np.float32)
    o = 0
    for c in range(d[0]):
        for oy in range(d[4]):
            y0, y1 = _span(oy, d[8], d[9], d[6], d[1])
            for ox in range(d[5]):
                x0, x1 = _span(ox, d[8], d[9], d[7], in_w)
                for iy in range(y0, y1):
                    for ix in range(x0, x1):
                        i = c * plane + iy * in_w + ix
                        dx[i] = dx[i] + g[o]
                o += 1
    return dx


@_jit
def _window_terms(v, d):
    """g[c][oy][ox] = v * rc of the window (v float32 per output)."""
    out_plane = d[4] * d[5]
    g = np.empty(d[0] * out_plane, np.float32)
    for c in range(d[0]):
        for oy in range(d[4]):
            for ox in range(d[5]):
                o = c * out_plane + oy * d[5] + ox
                g[o] = v[o] * _rcp(d, oy, ox)
    return g


@_jit
def avgpool2d_f32_backward(dy, dx, d):
    dx[:d[0] * d[1] * d[2]] = _scatter(_window_terms(dy[:d[0] * d[4] * d[5]], d), d)


@_jit
def avgpool2d_u8_forward(x, qx, y, qy, d, alpha):
    xc = x.astype(np.int32) - np.int32(qx[0].zero_point)          # exact: the sums are int32
    t = np.empty(d[0] * d[4] * d[5], np.float32)
    o = 0
    for c in range(d[0]):
        for oy in range(d[4]):
            for ox in range(d[5]):
                acc = _window_sum(xc, np.int32(0), d, c, oy, ox)
                t[o] = np.float32(acc) * (qx[0].scale * _rcp(d, oy, ox))
                o += 1
    _emit(t, y, qy, alpha)


@_jit
def avgpool2d_u8_backward(e, qe, ex, qex, d, alpha):
    n_out = d[0] * d[4] * d[5]
    ze = np.int32(qe[0].zero_point)
    de = np.empty(n_out, np.float32)
    for o in range(n_out):
        de[o] = np.float32(np.int32(e[o]) - ze)
    t = _scatter(_window_terms(de, d), d)
    for i in range(t.size):
        t[i] = t[i] * qe[0].scale
    _emit(t, ex, qex, alpha)
