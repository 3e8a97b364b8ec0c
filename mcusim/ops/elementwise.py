"""Numba twins of kernels/add_f32.c, add_u8.c, relu6_f32.c and relu_u8.c: the residual add (fp32 and
uint8), relu6 and the standalone uint8 relu / relu6.

Same names, arguments and float32 operation order as the C (contracts in kernels/include/nn.h), so
they return the same bits; mcusim/checks/elementwise.py checks this on the emulator. The rules of
mcusim/ops/nn_math.py apply (float32 module constants only, no float64, no fastmath). qparams are
one-element record arrays of `quant_u8.QP_DTYPE`; arrays are written in place, as in C.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from .gemm_u8 import BIG, _set
from .nn_math import bits_f32, f32_bits
from .quant_u8 import observe, quantize

__all__ = ["add_f32_forward", "add_u8_forward", "relu6_f32_forward", "relu6_f32_backward", "relu_u8_forward",
           "relu_u8_backward", "relu_u8_hi"]

ZERO, ONE, SIX = np.float32(0.0), np.float32(1.0), np.float32(6.0)
SIX_BITS = 0x40C00000                                  # bits(6.0f), NN_SIX_BITS
SIGN = 0x80000000

_jit = njit(cache=True, error_model="numpy")


@_jit
def add_f32_forward(a, b, y, n):
    """y = a + b (y may be a or b)."""
    for i in range(n):
        y[i] = a[i] + b[i]


@_jit
def add_u8_forward(a, qa, b, qb, y, qy, n, relu, alpha):
    """y = quantize(sa (a - za) + sb (b - zb)) with y's current qparams, optional ReLU; then the range of
    the sums is observed into qy (float steps in the order of add_u8.c)."""
    za, zb, zy = np.int32(qa[0].zero_point), np.int32(qb[0].zero_point), np.int32(qy[0].zero_point)
    sa, sb = qa[0].scale, qb[0].scale
    inv = ONE / qy[0].scale
    tmin, tmax = BIG, -BIG
    for i in range(n):
        t = sa * np.float32(np.int32(a[i]) - za)
        t = t + sb * np.float32(np.int32(b[i]) - zb)
        if relu and not t > ZERO:
            t = ZERO
        if t < tmin:
            tmin = t
        if t > tmax:
            tmax = t
        y[i] = quantize(t, inv, zy)
    if n > 0:
        s, z, mn, mx = observe(qy[0].min, qy[0].max, tmin, tmax, alpha)
        _set(qy, s, z, mn, mx)


@_jit
def relu6_f32_forward(x, y, n):
    """Bits clamped as int32 to [0, bits(6)]: x > 0 ? min(x, 6) : +0 (a NaN: +0 if its sign is set, else 6)."""
    for i in range(n):
        v = np.int64(f32_bits(x[i]))
        if v >= SIGN:
            v = 0
        elif v > SIX_BITS:
            v = SIX_BITS
        y[i] = bits_f32(np.uint32(v))


@_jit
def relu6_f32_backward(y, dy, dx, n):
    """dx = 0 < y < 6 ? dy : +0, tested on the bits of the forward output y."""
    for i in range(n):
        g = dy[i]
        v = np.int64(f32_bits(y[i]))
        dx[i] = g if 0 < v < SIX_BITS else ZERO


@_jit
def relu_u8_hi(q, six):
    """The upper clamp: 6 quantized with q, or 255 without the 6."""
    return np.int32(quantize(SIX, ONE / q[0].scale, np.int32(q[0].zero_point))) if six else np.int32(255)


@_jit
def relu_u8_forward(x, qx, y, qy, n, six):
    """y = clamp(x, zx, hi); qy = qx (y may be x, qy may be qx)."""
    lo = np.int32(qx[0].zero_point)
    hi = relu_u8_hi(qx, six)
    _set(qy, qx[0].scale, qx[0].zero_point, qx[0].min, qx[0].max)
    for i in range(n):
        v = np.int32(x[i])
        v = lo if v < lo else v
        y[i] = np.uint8(hi if v > hi else v)


@_jit
def relu_u8_backward(y, qy, e, qe, ex, n, six):
    """ex = e where zy < y (and y < hi with six), else ze; ex keeps qe."""
    zy = np.int32(qy[0].zero_point)
    ze = np.uint8(qe[0].zero_point)
    hi = relu_u8_hi(qy, six)
    for i in range(n):
        v = np.int32(y[i])
        ex[i] = e[i] if (v > zy and (not six or v < hi)) else ze
