"""Numba twins of kernels/gemm_u8.c and kernels/sgd_u8.c (contracts in kernels/include/nn.h).
Gradient buffers are uint16 arrays of IEEE half floats, as on the device.

Integer sums are exact (int32 loops, vectorized); the float steps follow the C order exactly, element by
element. The half-float gradient loops use vectorizable conversions (h2f / f2h, bit-identical to
quant_u8's on every input they are used for; the exact references otherwise).
qparams arguments are one-element record arrays of `quant_u8.QP_DTYPE`.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from .nn_math import bits_f32, f32_bits
from .quant_u8 import f16_to_f32, f32_to_f16, observe, quantize
from .train_f32 import inv_rms, row_sum_squares, rms_track, standardized_step

ZERO, ONE = np.float32(0.0), np.float32(1.0)
BIG = np.float32(3.0e38)

_jit = njit(cache=True, error_model="numpy")


# ---- vectorizable IEEE half conversions ----------------------------------------------------------
# quant_u8.f16_to_f32 / f32_to_f16 are the exact references (every input, NaN payloads included) but
# branchy, so loops over them run scalar. h2f / f2h below are bit-identical to them (checked
# exhaustively) on the inputs that occur in practice -- h2f: every half whose exponent field is not 31
# (not inf/NaN); f2h: every float32 that is not NaN (overflow to inf included) -- and vectorize.
# Callers take the fast path only when no inf/NaN half is read and the float factor is finite (then
# no NaN can arise: finite + finite * finite is never NaN), else the exact references.
_U = np.uint32
TWO_M24 = np.float32(2.0 ** -24)
TWO_P24 = np.float32(2.0 ** 24)
TWO_P23 = np.float32(2.0 ** 23)


@njit(cache=True, error_model="numpy", inline="always")
def h2f(h):
    """f16_to_f32(h) for every half h that is not inf/NaN."""
    h = _U(h)
    exp = (h >> _U(10)) & _U(0x1F)
    normal = _U(((h & _U(0x7FFF)) << _U(13)) + _U(112 << 23))               # rebias 15 -> 127
    sub = f32_bits(np.float32(np.int32(h & _U(0x3FF))) * TWO_M24)           # exact: man * 2^-24
    bits = sub if exp == _U(0) else normal
    return bits_f32(_U(bits | _U(_U(h & _U(0x8000)) << _U(16))))


@njit(cache=True, error_model="numpy", inline="always")
def f2h(x):
    """f32_to_f16(x) for every float32 x that is not NaN (round to nearest even, overflow to inf)."""
    b = f32_bits(x)
    a = _U(b & _U(0x7FFFFFFF))
    normal = _U(_U(a + _U(0xFFF) + _U(_U(a >> _U(13)) & _U(1)) - _U(112 << 23)) >> _U(13))
    normal = normal if normal < _U(0x7C00) else _U(0x7C00)
    sub = _U(f32_bits(bits_f32(a) * TWO_P24 + TWO_P23) & _U(0x7FFFFF))      # round(|x| * 2^24), even
    h = normal if a >= _U(113 << 23) else sub
    return np.uint16(h | _U(_U(b >> _U(16)) & _U(0x8000)))


@njit(cache=True, error_model="numpy", inline="always")
def finite(v):
    return v - v == ZERO


@_jit
def has_special(g, start, n):
    """Any inf/NaN half among g[start:start + n]?"""
    acc = 0
    for i in range(n):
        acc |= (np.int32(g[np.uint64(start + i)]) & 0x7C00) == 0x7C00
    return acc != 0


@_jit
def _set(q, scale, zp, mn, mx):
    q[0].scale, q[0].zero_point, q[0].min, q[0].max = scale, zp, mn, mx


@_jit
def gemm_u8_forward(x, qx, w, qw, b, qb, y, qy, n_in, n_out, relu, alpha):
    zx, zw, zb, zy = np.int32(qx[0].zero_point), np.int32(qw[0].zero_point), np.int32(qb[0].zero_point), \
        np.int32(qy[0].zero_point)
    m = qw[0].scale * qx[0].scale
    sb = qb[0].scale
    inv = ONE / qy[0].scale
    xc = np.empty(n_in, np.int32)
    for i in range(n_in):
        xc[i] = np.int32(x[i]) - zx
    tmin, tmax = BIG, -BIG
    for o in range(n_out):
        base = o * n_in
        acc = np.int32(0)
        for i in range(n_in):
            acc += (np.int32(w[np.uint64(base + i)]) - zw) * xc[i]
        t = np.float32(acc) * m
        t = t + sb * np.float32(np.int32(b[o]) - zb)
        if relu and not t > ZERO:
            t = ZERO
        if t < tmin:
            tmin = t
        if t > tmax:
            tmax = t
        y[o] = quantize(t, inv, zy)
    if n_out > 0:
        s, z, mn, mx = observe(qy[0].min, qy[0].max, tmin, tmax, alpha)
        _set(qy, s, z, mn, mx)


@_jit
def gemm_u8_backward_input(w, qw, e, qe, ex, qex, x, qx, n_in, n_out, active, alpha):
    """`x`/`qx` None: no ReLU mask; `active` None: all rows (the C's NULL)."""
    ze, zw = np.int32(qe[0].zero_point), np.int32(qw[0].zero_point)
    acc = np.zeros(n_in, np.int32)
    for o in range(n_out):
        de = np.int32(e[o]) - ze
        if (active is not None and active[o] == 0) or de == 0:
            continue
        base = o * n_in
        for i in range(n_in):
            acc[i] += (np.int32(w[np.uint64(base + i)]) - zw) * de
    m = qw[0].scale * qe[0].scale
    inv = ONE / qex[0].scale
    zex = np.int32(qex[0].zero_point)
    zx = np.int32(qx[0].zero_point) if qx is not None else np.int32(0)
    tmin, tmax = BIG, -BIG
    for i in range(n_in):
        t = np.float32(acc[i]) * m
        if x is not None and np.int32(x[i]) <= zx:
            t = ZERO
        if t < tmin:
            tmin = t
        if t > tmax:
            tmax = t
        ex[i] = quantize(t, inv, zex)
    if n_in > 0:
        s, z, mn, mx = observe(qex[0].min, qex[0].max, tmin, tmax, alpha)
        _set(qex, s, z, mn, mx)


@_jit
def gemm_u8_backward_weight(x, qx, e, qe, gw, gb, n_in, n_out, active):
    zx, ze = np.int32(qx[0].zero_point), np.int32(qe[0].zero_point)
    m = qe[0].scale * qx[0].scale
    se = qe[0].scale
    xr = np.empty(n_in, np.float32)
    for i in range(n_in):
        xr[i] = np.float32(np.int32(x[i]) - zx)
    fast = not has_special(gw, 0, n_in * n_out)
    for o in range(n_out):
        de = np.int32(e[o]) - ze
        if (active is not None and active[o] == 0) or de == 0:
            continue
        gr = m * np.float32(de)
        base = o * n_in
        if fast and finite(gr):
            for i in range(n_in):
                k = np.uint64(base + i)
                gw[k] = f2h(h2f(gw[k]) + gr * xr[i])
        else:
            for i in range(n_in):
                gw[base + i] = f32_to_f16(f16_to_f32(gw[base + i]) + gr * xr[i])
        gb[o] = f32_to_f16(f16_to_f32(gb[o]) + se * np.float32(de))


@_jit
def sgd_u8_update(w, qw, g, norm, rows, cols, run, lr, alpha_norm, alpha_w, active):
    """Row r holds the elements (c // run) * rows * run + r * run + c % run (see nn.h)."""
    lr, alpha_norm = np.float32(lr), np.float32(alpha_norm)
    inv_cols = ONE / np.float32(cols)
    stride = rows * run
    n = rows * cols
    gf = np.empty(n, np.float32)                 # float(g), converted once (same values, same order below)
    if has_special(g, 0, n):
        for k in range(n):
            gf[k] = f16_to_f32(g[k])
    else:
        for k in range(n):
            gf[k] = h2f(g[k])
    for r in range(rows):
        if active is not None and active[r] == 0:
            continue
        rms_track(norm, r, row_sum_squares(gf, r, cols, run, stride), inv_cols, alpha_norm)
    s_old = qw[0].scale
    z_old = np.int32(qw[0].zero_point)
    tmin, tmax = BIG, -BIG
    for pass_ in range(2):
        inv = ONE / qw[0].scale
        z_new = np.int32(qw[0].zero_point)
        for r in range(rows):
            on = active is None or active[r] != 0
            scale = inv_rms(norm[r])
            for c in range(cols):
                k = (c // run) * stride + r * run + c % run
                v = s_old * np.float32(np.int32(w[k]) - z_old)
                if on:
                    v = v - lr * standardized_step(gf[k], scale)
                if pass_ == 0:
                    if v < tmin:
                        tmin = v
                    if v > tmax:
                        tmax = v
                else:
                    w[k] = quantize(v, inv, z_new)
        if pass_ == 0 and rows > 0 and cols > 0:
            s, z, mn, mx = observe(qw[0].min, qw[0].max, tmin, tmax, alpha_w)
            _set(qw, s, z, mn, mx)
    for k in range(rows * cols):
        g[k] = 0


def gemm_u8_backward_input_buffer_size(n_in):
    """Bytes of scratch of gemm_u8_backward_input (as the C): the int32 sums of one input vector."""
    return 4 * int(n_in)


def gemm_u8_backward_weight_buffer_size(n_in):
    """Bytes of scratch of gemm_u8_backward_weight (as the C): the float (x - zx) of one input vector."""
    return 4 * int(n_in)
