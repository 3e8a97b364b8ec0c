"""Numba twins of kernels/gemm_u8.c and kernels/sgd_u8.c (contracts in kernels/include/nn.h).
Gradient buffers are int16 arrays with a float32 gradient scale per row (see nn.h), as on the device.

Integer sums are exact (int32 loops); the output stage is integer (nn_requant) and the few float steps
follow the C order exactly. qparams arguments are one-element record arrays of `quant_u8.QP_DTYPE`.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from .nn_math import f32_bits
from .quant_u8 import (RANGE_EMPTY_MAX, RANGE_EMPTY_MIN, bias_units, dither, grad_inverse, grad_next_scale, mix32,
                       observe, quantize_dithered, range_observe, requant_make, requant_u8, round_scaled, sat16)
from .train_f32 import inv_rms, row_sum_squares, rms_track, standardized_step

ZERO, ONE = np.float32(0.0), np.float32(1.0)
BIG = np.float32(3.0e38)

_jit = njit(cache=True, error_model="numpy")


@_jit
def _set(q, scale, zp, mn, mx):
    q[0].scale, q[0].zero_point, q[0].min, q[0].max = scale, zp, mn, mx


@_jit
def gemm_u8_forward(x, qx, w, qw, b, qb, y, qy, n_in, n_out, relu, alpha):
    zx, zw, zb, zy = np.int32(qx[0].zero_point), np.int32(qw[0].zero_point), np.int32(qb[0].zero_point), \
        np.int32(qy[0].zero_point)
    unit = qw[0].scale * qx[0].scale
    ratio = qb[0].scale / unit
    mult, shift = requant_make(unit / qy[0].scale)
    xc = np.empty(n_in, np.int32)
    for i in range(n_in):
        xc[i] = np.int32(x[i]) - zx
    imin, imax = RANGE_EMPTY_MIN, RANGE_EMPTY_MAX
    for o in range(n_out):
        wr = w[o * n_in:(o + 1) * n_in]
        t = np.int32(0)
        for i in range(n_in):              # int32 sums, as the C: Numba's int64 promotion would not vectorize
            t = np.int32(t + (np.int32(wr[i]) - zw) * xc[i])
        t = np.int32(t + bias_units(b[o], zb, ratio))
        if relu and t < 0:
            t = np.int32(0)
        imin = min(imin, t)
        imax = max(imax, t)
        y[o] = requant_u8(t, mult, shift, zy)
    range_observe(qy, imin, imax, unit, alpha)


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
    unit = qw[0].scale * qe[0].scale
    mult, shift = requant_make(unit / qex[0].scale)
    zex = np.int32(qex[0].zero_point)
    zx = np.int32(qx[0].zero_point) if qx is not None else np.int32(0)
    imin, imax = RANGE_EMPTY_MIN, RANGE_EMPTY_MAX
    for i in range(n_in):
        t = acc[i]
        if x is not None and np.int32(x[i]) <= zx:
            t = np.int32(0)
        imin = min(imin, t)
        imax = max(imax, t)
        ex[i] = requant_u8(t, mult, shift, zex)
    range_observe(qex, imin, imax, unit, alpha)


@_jit
def gemm_u8_backward_weight(x, qx, e, qe, gw, sgw, gb, sgb, n_in, n_out, active):
    zx, ze = np.int32(qx[0].zero_point), np.int32(qe[0].zero_point)
    unit = qe[0].scale * qx[0].scale
    xs = np.empty(n_in, np.int32)
    for i in range(n_in):
        xs[i] = (np.int32(x[i]) - zx) * 128
    for o in range(n_out):
        de = np.int32(e[o]) - ze
        if (active is not None and active[o] == 0) or de == 0:
            continue
        c = round_scaled(de, (unit * grad_inverse(sgw[o])) * np.float32(512.0))
        c = np.int32(-32767 if c < -32767 else (32767 if c > 32767 else c))
        base = o * n_in
        for i in range(n_in):                 # int32 throughout, as the C (|c * xs| < 2^30): vectorizes
            g = np.uint64(base + i)
            step = np.int32(np.int32(c * xs[i]) + np.int32(0x8000)) >> np.int32(16)
            gw[g] = sat16(np.int32(np.int32(gw[g]) + step))
        gb[o] = sat16(np.int32(gb[o]) + round_scaled(de, qe[0].scale * grad_inverse(sgb[o])))


@_jit
def sgd_u8_update(w, qw, g, sg, norm, rows, cols, run, lr, alpha_norm, alpha_w, active):
    """Row r holds the elements (c // run) * rows * run + r * run + c % run (see nn.h)."""
    lr, alpha_norm = np.float32(lr), np.float32(alpha_norm)
    inv_cols = ONE / np.float32(cols)
    stride = rows * run
    n = rows * cols
    runs = cols // run
    gf = np.empty(n, np.float32)                 # the real gradient, converted once (same values, same order below)
    for r in range(rows):
        for j in range(runs):
            for k in range(j * stride + r * run, j * stride + r * run + run):
                gf[k] = sg[r] * np.float32(g[k])
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
        range_seed = mix32(f32_bits(qw[0].max))
        for r in range(rows):
            on = active is None or active[r] != 0
            scale = inv_rms(norm[r])
            seed = mix32(f32_bits(norm[r]) ^ range_seed)
            for j in range(runs):
                for k in range(j * stride + r * run, j * stride + r * run + run):
                    v = s_old * np.float32(np.int32(w[k]) - z_old)
                    if on:
                        v = v - lr * standardized_step(gf[k], scale)
                    if pass_ == 0:
                        if v < tmin:
                            tmin = v
                        if v > tmax:
                            tmax = v
                    else:
                        w[k] = quantize_dithered(v, inv, z_new, dither(seed, k))
        if pass_ == 0 and rows > 0 and cols > 0:
            s, z, mn, mx = observe(qw[0].min, qw[0].max, tmin, tmax, alpha_w)
            _set(qw, s, z, mn, mx)
    for r in range(rows):
        maxabs = np.int32(0)
        for j in range(runs):
            for k in range(j * stride + r * run, j * stride + r * run + run):
                maxabs = max(maxabs, abs(np.int32(g[k])))
                g[k] = 0
        if active is None or active[r] != 0:
            sg[r] = grad_next_scale(sg[r], maxabs)


BIAS_CODES = 256


def gemm_u8_forward_buffer_size(n_in, n_out):
    """Bytes of scratch of gemm_u8_forward (as the C): x - zx widened to int16, padded to 4, the int32 sums of
    the rows, then for more outputs than bias codes the table of each code's bias in units of the sums."""
    return 2 * ((int(n_in) + 3) & ~3) + 4 * int(n_out) + (4 * BIAS_CODES if n_out > BIAS_CODES else 0)


def gemm_u8_backward_input_buffer_size(n_in, n_out):
    """Bytes of scratch of gemm_u8_backward_input (as the C): the active rows in pairs, 12 bytes a pair."""
    return 12 * ((int(n_out) + 1) // 2)


def gemm_u8_backward_weight_buffer_size(n_in):
    """Bytes of scratch of gemm_u8_backward_weight (as the C): the int16 (x - zx) of one input vector."""
    return (2 * int(n_in) + 3) & ~3
