"""Numba twins of kernels/conv2d_u8.c and kernels/convtranspose2d_u8.c (contract in nn.h).

Integer sums are exact, so they are written plainly (direct loops over the taps); the float steps
follow the C order exactly. qparams are one-element record arrays of `quant_u8.QP_DTYPE`; `d` is the
nn_conv_dims array (np.int32, 10 values: in_c, in_h, in_w, out_c, out_h, out_w, k_h, k_w, stride, pad).
Empty arrays stand for NULL (`x`/`qx`: no ReLU mask, `active`: every channel). Gradient buffers are
uint16 arrays of IEEE half floats, as on the device.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from .quant_u8 import f16_to_f32, f32_to_f16, observe, quantize

ZERO, ONE = np.float32(0.0), np.float32(1.0)
BIG = np.float32(3.0e38)

_jit = njit(cache=True, error_model="numpy")


def conv_dims(in_c, in_h, in_w, out_c, out_h, out_w, k_h, k_w, stride, pad) -> np.ndarray:
    return np.array([in_c, in_h, in_w, out_c, out_h, out_w, k_h, k_w, stride, pad], np.int32)


def swap_dims(d: np.ndarray) -> np.ndarray:
    """Input and output roles exchanged (as nn__conv_dims_swap)."""
    return np.array([d[3], d[4], d[5], d[0], d[1], d[2], d[6], d[7], d[8], d[9]], np.int32)


# ---- scratch sizes in bytes (as the C <fn>_buffer_size) -------------------------------------------
def _align4(n):
    return (int(n) + 3) & ~3


def _taps(k, p, s):
    return (int(k) - p + int(s) - 1) // int(s) if p < k else 0


def _strided_work(d):
    ic, ih, iw, oc, oh, ow, kh, kw, s, p = (int(v) for v in d)
    n4 = _align4(ic * kh * kw)
    hp = ih + p + max(0, (oh - 1) * s - p + kh - ih)
    wp = iw + p + max(0, (ow - 1) * s - p + kw - iw)
    return oc * (2 * n4 + 4) + 7 * n4 + _align4(ic * hp * wp)


def _transposed_work(d):
    ic, ih, iw, oc, oh, ow, kh, kw, s, p = (int(v) for v in d)
    rows = sum(_align4(ic * _taps(kh, py, s) * _taps(kw, px, s)) * oc * 2 for py in range(s) for px in range(s))
    n4max = _align4(ic * _taps(kh, 0, s) * _taps(kw, 0, s))
    hp = (kh - 1 + s - 1) // s + ih + max(0, (oh - 1 + p) // s - (ih - 1))
    wp = (kw - 1 + s - 1) // s + iw + max(0, (ow - 1 + p) // s - (iw - 1))
    return s * s * 4 * (2 + oc) + rows + 7 * n4max + 4 * ic * kh * kw + _align4(ic * hp * wp)


def conv2d_forward_buffer_size(d):
    return int(d[3] * d[4] * d[5]) * 4 + _strided_work(d)


def conv2d_backward_input_buffer_size(d):
    return int(d[0] * d[1] * d[2]) * 4 + _transposed_work(swap_dims(d))


def conv2d_backward_weight_buffer_size(d):
    ic, ih, iw, oc, oh, ow, kh, kw, s, p = (int(v) for v in d)
    pe = (oh * ow + 1) & ~1
    hp = ih + p + max(0, (oh - 1) * s - p + kh - ih)
    wp = iw + p + max(0, (ow - 1) * s - p + kw - iw)
    return (oc + 1) * pe * 2 + oc * 4 + pe * 4 + _align4(ic * hp * wp * 2)


def convtranspose2d_forward_buffer_size(d):
    return int(d[3] * d[4] * d[5]) * 4 + _transposed_work(d)


def convtranspose2d_backward_input_buffer_size(d):
    return int(d[0] * d[1] * d[2]) * 4 + _strided_work(swap_dims(d))


def convtranspose2d_backward_weight_buffer_size(d):
    ic, ih, iw, oc, oh, ow, kh, kw, s, p = (int(v) for v in d)
    pe = (ih * iw + 1) & ~1
    hp = p + oh + max(0, (ih - 1) * s - p + kh - oh)
    wp = p + ow + max(0, (iw - 1) * s - p + kw - ow)
    return (ic + 1) * pe * 2 + pe * 4 + _align4(hp * wp * 2)


# ---- integer cores -------------------------------------------------------------------------------
@_jit
def _strided(x, zx, w, zw, d, active):
    """acc[o][oy][ox] = sum over in-range taps of (w[o][c][ky][kx] - zw) * (x[c][iy][ix] - zx)."""
    in_c, in_h, in_w, out_c, out_h, out_w, kh, kw, s, pad = d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7], \
        d[8], d[9]
    acc = np.zeros(out_c * out_h * out_w, np.int32)
    for o in range(out_c):
        for oy in range(out_h):
            for ox in range(out_w):
                a = np.int32(0)
                for c in range(in_c):
                    if active is not None and active[c] == 0:
                        continue
                    for ky in range(kh):
                        iy = oy * s - pad + ky
                        if iy < 0 or iy >= in_h:
                            continue
                        for kx in range(kw):
                            ix = ox * s - pad + kx
                            if ix < 0 or ix >= in_w:
                                continue
                            a += (np.int32(w[((o * in_c + c) * kh + ky) * kw + kx]) - zw) * \
                                (np.int32(x[(c * in_h + iy) * in_w + ix]) - zx)
                acc[(o * out_h + oy) * out_w + ox] = a
    return acc


@_jit
def _transposed(x, zx, w, zw, d, active):
    """acc[o][oy][ox] = sum over (c, iy, ix, ky, kx) with oy = iy*s - pad + ky, ox = ix*s - pad + kx in
    range of (w[c][o][ky][kx] - zw) * (x[c][iy][ix] - zx)."""
    in_c, in_h, in_w, out_c, out_h, out_w, kh, kw, s, pad = d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7], \
        d[8], d[9]
    acc = np.zeros(out_c * out_h * out_w, np.int32)
    for c in range(in_c):
        if active is not None and active[c] == 0:
            continue
        for iy in range(in_h):
            for ix in range(in_w):
                dv = np.int32(x[(c * in_h + iy) * in_w + ix]) - zx
                for o in range(out_c):
                    for ky in range(kh):
                        oy = iy * s - pad + ky
                        if oy < 0 or oy >= out_h:
                            continue
                        for kx in range(kw):
                            ox = ix * s - pad + kx
                            if ox < 0 or ox >= out_w:
                                continue
                            acc[(o * out_h + oy) * out_w + ox] += \
                                (np.int32(w[((c * out_c + o) * kh + ky) * kw + kx]) - zw) * dv
    return acc


# ---- float epilogues -----------------------------------------------------------------------------
@_jit
def _set(q, scale, zp, mn, mx):
    q[0].scale, q[0].zero_point, q[0].min, q[0].max = scale, zp, mn, mx


@_jit
def _epilogue_forward(acc, m, b, qb, y, qy, out_c, plane, relu, alpha):
    zb, zy = np.int32(qb[0].zero_point), np.int32(qy[0].zero_point)
    sb = qb[0].scale
    inv = ONE / qy[0].scale
    tmin, tmax = BIG, -BIG
    for o in range(out_c):
        bias = sb * np.float32(np.int32(b[o]) - zb)
        for p in range(plane):
            t = np.float32(acc[o * plane + p]) * m
            t = t + bias
            if relu and not t > ZERO:
                t = ZERO
            if t < tmin:
                tmin = t
            if t > tmax:
                tmax = t
            y[o * plane + p] = quantize(t, inv, zy)
    if out_c > 0 and plane > 0:
        s, z, mn, mx = observe(qy[0].min, qy[0].max, tmin, tmax, alpha)
        _set(qy, s, z, mn, mx)


@_jit
def _epilogue_error(acc, m, ex, qex, x, qx, n, alpha):
    zex = np.int32(qex[0].zero_point)
    zx = np.int32(qx[0].zero_point) if x is not None else np.int32(0)
    inv = ONE / qex[0].scale
    tmin, tmax = BIG, -BIG
    for i in range(n):
        t = np.float32(acc[i]) * m
        if x is not None and np.int32(x[i]) <= zx:
            t = ZERO
        if t < tmin:
            tmin = t
        if t > tmax:
            tmax = t
        ex[i] = quantize(t, inv, zex)
    if n > 0:
        s, z, mn, mx = observe(qex[0].min, qex[0].max, tmin, tmax, alpha)
        _set(qex, s, z, mn, mx)


@_jit
def _swap(d):
    return np.array([d[3], d[4], d[5], d[0], d[1], d[2], d[6], d[7], d[8], d[9]], np.int32)


_NONE = np.zeros(0, np.uint8)


# ---- conv2d --------------------------------------------------------------------------------------
@_jit
def conv2d_u8_forward(x, qx, w, qw, b, qb, y, qy, d, relu, alpha):
    acc = _strided(x, np.int32(qx[0].zero_point), w, np.int32(qw[0].zero_point), d, None)
    _epilogue_forward(acc, qw[0].scale * qx[0].scale, b, qb, y, qy, d[3], d[4] * d[5], relu, np.float32(alpha))


@_jit
def conv2d_u8_backward_input(w, qw, e, qe, ex, qex, x, qx, d, active, alpha):
    acc = _transposed(e, np.int32(qe[0].zero_point), w, np.int32(qw[0].zero_point), _swap(d), active)
    _epilogue_error(acc, qw[0].scale * qe[0].scale, ex, qex, x, qx, d[0] * d[1] * d[2], np.float32(alpha))


@_jit
def conv2d_u8_backward_weight(x, qx, e, qe, gw, gb, d, active):
    in_c, in_h, in_w, out_c, out_h, out_w, kh, kw, s, pad = d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7], \
        d[8], d[9]
    zx, ze = np.int32(qx[0].zero_point), np.int32(qe[0].zero_point)
    m = qe[0].scale * qx[0].scale
    se = qe[0].scale
    plane = out_h * out_w
    for o in range(out_c):
        if active is not None and active[o] == 0:
            continue
        sd = np.int32(0)
        for p in range(plane):
            sd += np.int32(e[o * plane + p]) - ze
        gb[o] = f32_to_f16(f16_to_f32(gb[o]) + se * np.float32(sd))
        for c in range(in_c):
            for ky in range(kh):
                for kx in range(kw):
                    isum = np.int32(0)
                    for oy in range(out_h):
                        iy = oy * s - pad + ky
                        if iy < 0 or iy >= in_h:
                            continue
                        for ox in range(out_w):
                            ix = ox * s - pad + kx
                            if ix < 0 or ix >= in_w:
                                continue
                            isum += (np.int32(e[o * plane + oy * out_w + ox]) - ze) * \
                                (np.int32(x[(c * in_h + iy) * in_w + ix]) - zx)
                    k = ((o * in_c + c) * kh + ky) * kw + kx
                    gw[k] = f32_to_f16(f16_to_f32(gw[k]) + m * np.float32(isum))


# ---- convtranspose2d -----------------------------------------------------------------------------
@_jit
def convtranspose2d_u8_forward(x, qx, w, qw, b, qb, y, qy, d, relu, alpha):
    acc = _transposed(x, np.int32(qx[0].zero_point), w, np.int32(qw[0].zero_point), d, None)
    _epilogue_forward(acc, qw[0].scale * qx[0].scale, b, qb, y, qy, d[3], d[4] * d[5], relu, np.float32(alpha))


@_jit
def convtranspose2d_u8_backward_input(w, qw, e, qe, ex, qex, x, qx, d, active, alpha):
    acc = _strided(e, np.int32(qe[0].zero_point), w, np.int32(qw[0].zero_point), _swap(d), active)
    _epilogue_error(acc, qw[0].scale * qe[0].scale, ex, qex, x, qx, d[0] * d[1] * d[2], np.float32(alpha))


@_jit
def convtranspose2d_u8_backward_weight(x, qx, e, qe, gw, gb, d, active):
    in_c, in_h, in_w, out_c, out_h, out_w, kh, kw, s, pad = d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7], \
        d[8], d[9]
    zx, ze = np.int32(qx[0].zero_point), np.int32(qe[0].zero_point)
    m = qe[0].scale * qx[0].scale
    se = qe[0].scale
    plane = out_h * out_w
    for o in range(out_c):
        if active is not None and active[o] == 0:
            continue
        sd = np.int32(0)
        for p in range(plane):
            sd += np.int32(e[o * plane + p]) - ze
        gb[o] = f32_to_f16(f16_to_f32(gb[o]) + se * np.float32(sd))
        for c in range(in_c):
            for ky in range(kh):
                for kx in range(kw):
                    isum = np.int32(0)
                    for iy in range(in_h):
                        oy = iy * s - pad + ky
                        if oy < 0 or oy >= out_h:
                            continue
                        for ix in range(in_w):
                            ox = ix * s - pad + kx
                            if ox < 0 or ox >= out_w:
                                continue
                            isum += (np.int32(x[(c * in_h + iy) * in_w + ix]) - zx) * \
                                (np.int32(e[o * plane + oy * out_w + ox]) - ze)
                    k = ((c * out_c + o) * kh + ky) * kw + kx
                    gw[k] = f32_to_f16(f16_to_f32(gw[k]) + m * np.float32(isum))
