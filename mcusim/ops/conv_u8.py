"""Numba twins of kernels/conv2d_u8.c and kernels/convtranspose2d_u8.c (contract in nn.h).

Integer sums are exact, so they are computed in any convenient order (int32 im2col / col2im matrix
products, vectorized); the output stages are integer (nn_requant) and the few float steps (multipliers,
the observed range) follow the C order exactly. qparams are
one-element record arrays of `quant_u8.QP_DTYPE`; `d` is the nn_conv_dims array (np.int32, 10 values:
in_c, in_h, in_w, out_c, out_h, out_w, k_h, k_w, stride, pad).
Empty arrays stand for NULL (`x`/`qx`: no ReLU mask, `active`: every channel). Gradient buffers are
int16 arrays with a per-tensor scale (a qparams), as on the device.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from .quant_u8 import (RANGE_EMPTY_MAX, RANGE_EMPTY_MIN, bias_units, grad_inverse, range_observe, requant_apply,
                       requant_make, requant_u8, round_scaled, sat16)

ZERO, ONE = np.float32(0.0), np.float32(1.0)

_jit = njit(cache=True, error_model="numpy")


def conv_dims(in_c, in_h, in_w, out_c, out_h, out_w, k_h, k_w, stride, pad) -> np.ndarray:
    return np.array([in_c, in_h, in_w, out_c, out_h, out_w, k_h, k_w, stride, pad], np.int32)


def swap_dims(d: np.ndarray) -> np.ndarray:
    """Input and output roles exchanged (as nn__conv_dims_swap)."""
    return np.array([d[3], d[4], d[5], d[0], d[1], d[2], d[6], d[7], d[8], d[9]], np.int32)


# ---- scratch sizes in bytes (as the C <fn>_buffer_size) -------------------------------------------
ROW_BYTES = 4096          # NN_CONV_U8_ROW_BYTES: packed weight rows a strided core keeps


def _align4(n):
    return (int(n) + 3) & ~3


def _taps(k, p, s):
    return (int(k) - p + int(s) - 1) // int(s) if p < k else 0


def _npairs(c, nj, ni):
    """Tap pairs of c channels x nj x ni taps (nn__npairs): channel pairs, else pairs along a kernel row."""
    return c * nj * ni // 2 if c % 2 == 0 else c * nj * ((ni + 1) // 2)


def _q15_bytes(c, hp, wp):
    """The centred int16 copy of the input (nn__q15_bytes), one spare halfword."""
    return _align4(2 * c * hp * wp + 2)


def _strided_work(d):
    ic, ih, iw, oc, oh, ow, kh, kw, s, p = (int(v) for v in d)
    n_pairs = _npairs(ic, kh, kw)
    group = max(1, min(oc, ROW_BYTES // (4 * n_pairs)))
    hp = ih + p + max(0, (oh - 1) * s - p + kh - ih)
    wp = iw + p + max(0, (ow - 1) * s - p + kw - iw)
    return group * (4 * n_pairs + 8 * ow) + 12 * n_pairs + _q15_bytes(ic, hp, wp)


def _transposed_work(d):
    ic, ih, iw, oc, oh, ow, kh, kw, s, p = (int(v) for v in d)
    np_max = _npairs(ic, _taps(kh, 0, s), _taps(kw, 0, s))
    hp = (kh - 1 + s - 1) // s + ih + max(0, (oh - 1 + p) // s - (ih - 1))
    wp = (kw - 1 + s - 1) // s + iw + max(0, (ow - 1 + p) // s - (iw - 1))
    return oc * (8 * ((ow + s - 1) // s) + 4 * np_max) + 12 * np_max + _q15_bytes(ic, hp, wp)


def conv2d_forward_buffer_size(d):
    return int(d[3]) * 4 + _strided_work(d)


def conv2d_backward_input_buffer_size(d):
    return _transposed_work(swap_dims(d))


REQUANT_BYTES = 8                # sizeof(nn_requant): int32 mult and shift (nn.h)


def conv2d_backward_weight_buffer_size(d):
    ic, ih, iw, oc, oh, ow, kh, kw, s, p = (int(v) for v in d)
    pe = (oh * ow + 1) & ~1
    hp = ih + p + max(0, (oh - 1) * s - p + kh - ih)
    wp = iw + p + max(0, (ow - 1) * s - p + kw - iw)
    return (oc + 2) * pe * 2 + oc * (4 + REQUANT_BYTES) + _align4(ic * hp * wp * 2)


def convtranspose2d_forward_buffer_size(d):
    return int(d[3]) * 4 + _transposed_work(d)


def convtranspose2d_backward_input_buffer_size(d):
    return _strided_work(swap_dims(d))


def convtranspose2d_backward_weight_buffer_size(d):
    ic, ih, iw, oc, oh, ow, kh, kw, s, p = (int(v) for v in d)
    pe = (ih * iw + 1) & ~1
    hp = p + oh + max(0, (ih - 1) * s - p + kh - oh)
    wp = p + ow + max(0, (iw - 1) * s - p + kw - ow)
    return (ic + 2) * pe * 2 + ic * (4 + REQUANT_BYTES) + _align4(hp * wp * 2)


# ---- integer cores -------------------------------------------------------------------------------
# Integer sums are exact, so any order gives the C's values. Both cores are written as small int32
# matrix products whose innermost loop runs over independent outputs (vectorized by LLVM):
#   strided:     cols[(c, ky, kx)][q] = x[c][iy][ix] - zx (im2col, 0 outside), acc[o] += w'[o][k] * cols[k]
#   transposed:  part[p][(o, ky, kx)] = sum_c x'[c][p] * w'[c][(o, ky, kx)], then scattered (col2im)
#                into acc[o][iy*s - pad + ky][ix*s - pad + kx] for the in-range positions.
@_jit
def _lo(k, pad, s):
    """Smallest j >= 0 with j*s - pad + k >= 0."""
    v = pad - k
    return (v + s - 1) // s if v > 0 else 0


@_jit
def _hi(k, pad, s, n_src, n_dst):
    """One past the largest j < n_dst with j*s - pad + k < n_src."""
    v = n_src - 1 + pad - k
    if v < 0:
        return 0
    j = v // s + 1
    return j if j < n_dst else n_dst


@_jit
def _im2col(x, zx, in_c, in_h, in_w, out_h, out_w, kh, kw, s, pad, active):
    """cols[(c, ky, kx)][oy * out_w + ox] = x[c][oy*s - pad + ky][ox*s - pad + kx] - zx (0 outside,
    0 for inactive channels c)."""
    plane = out_h * out_w
    cols = np.zeros((in_c * kh * kw, plane), np.int32)
    for c in range(in_c):
        if active is not None and active[c] == 0:
            continue
        for ky in range(kh):
            y0, y1 = _lo(ky, pad, s), _hi(ky, pad, s, in_h, out_h)
            for kx in range(kw):
                x0, x1 = _lo(kx, pad, s), _hi(kx, pad, s, in_w, out_w)
                row = cols[(c * kh + ky) * kw + kx]
                for oy in range(y0, y1):
                    src = (c * in_h + oy * s - pad + ky) * in_w - pad + kx
                    dst = oy * out_w
                    for ox in range(x0, x1):
                        row[np.uint64(dst + ox)] = np.int32(x[np.uint64(src + ox * s)]) - zx
    return cols


@_jit
def _centred(x, zx, n_c, plane, active):
    """x'[c][p] = x[c][p] - zx as int32 rows (0 rows for inactive channels)."""
    xc = np.zeros((n_c, plane), np.int32)
    for c in range(n_c):
        if active is not None and active[c] == 0:
            continue
        row = xc[c]
        for p in range(plane):
            row[p] = np.int32(x[c * plane + p]) - zx
    return xc


@_jit
def _strided(x, zx, w, zw, d, active):
    """acc[o][oy][ox] = sum over in-range taps of (w[o][c][ky][kx] - zw) * (x[c][iy][ix] - zx)."""
    in_c, in_h, in_w, out_c, out_h, out_w, kh, kw, s, pad = d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7], \
        d[8], d[9]
    plane = out_h * out_w
    n_k = in_c * kh * kw
    cols = _im2col(x, zx, in_c, in_h, in_w, out_h, out_w, kh, kw, s, pad, active)
    acc = np.zeros((out_c, plane), np.int32)
    if n_k >= 48:                       # long taps: dot products over k
        cols_t = np.ascontiguousarray(cols.T)
        wr = np.empty(n_k, np.int32)
        for o in range(out_c):
            for k in range(n_k):
                wr[k] = np.int32(w[np.uint64(o * n_k + k)]) - zw
            for q in range(plane):
                row = cols_t[q]
                a = np.int32(0)
                for k in range(n_k):
                    a = np.int32(a + wr[k] * row[k])        # int32 sums, as the C (and vectorizable)
                acc[o, q] = a
    else:                               # few taps: the innermost loop over the output positions q
        for o in range(out_c):
            a = acc[o]
            for k in range(n_k):
                wv = np.int32(w[o * n_k + k]) - zw
                if wv == 0:
                    continue
                row = cols[k]
                for q in range(plane):
                    a[q] += wv * row[q]
    return acc.reshape(out_c * plane)


@_jit
def _transposed(x, zx, w, zw, d, active):
    """acc[o][oy][ox] = sum over (c, iy, ix, ky, kx) with oy = iy*s - pad + ky, ox = ix*s - pad + kx in
    range of (w[c][o][ky][kx] - zw) * (x[c][iy][ix] - zx)."""
    in_c, in_h, in_w, out_c, out_h, out_w, kh, kw, s, pad = d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7], \
        d[8], d[9]
    in_plane = in_h * in_w
    n_r = out_c * kh * kw
    # part[p][r]: w'[c] = w[c][(o, ky, kx)] - zw is a contiguous row, the innermost loop runs over r
    # (long when out_c * kh * kw is); else part[r][p] with the innermost loop over the input positions p.
    by_r = n_r >= 32
    part = np.zeros((in_plane, n_r), np.int32) if by_r else np.zeros((n_r, in_plane), np.int32)
    if by_r:
        wc = np.empty(n_r, np.int32)
        for c in range(in_c):
            if active is not None and active[c] == 0:
                continue
            for r in range(n_r):
                wc[r] = np.int32(w[np.uint64(c * n_r + r)]) - zw
            for p in range(in_plane):
                xv = np.int32(x[np.uint64(c * in_plane + p)]) - zx
                if xv == 0:
                    continue
                a = part[p]
                for r in range(n_r):
                    a[r] += wc[r] * xv
    else:
        xc = _centred(x, zx, in_c, in_plane, active)
        for r in range(n_r):
            a = part[r]
            for c in range(in_c):
                if active is not None and active[c] == 0:
                    continue
                wv = np.int32(w[np.uint64(c * n_r + r)]) - zw
                if wv == 0:
                    continue
                row = xc[c]
                for p in range(in_plane):
                    a[p] += wv * row[p]
    acc = np.zeros(out_c * out_h * out_w, np.int32)
    for o in range(out_c):
        for ky in range(kh):
            y0, y1 = _lo(ky, pad, s), _hi(ky, pad, s, out_h, in_h)
            for kx in range(kw):
                x0, x1 = _lo(kx, pad, s), _hi(kx, pad, s, out_w, in_w)
                r = (o * kh + ky) * kw + kx
                for iy in range(y0, y1):
                    dst = (o * out_h + iy * s - pad + ky) * out_w - pad + kx
                    src = iy * in_w
                    if by_r:
                        for ix in range(x0, x1):
                            acc[np.uint64(dst + ix * s)] += part[src + ix, r]
                    else:
                        for ix in range(x0, x1):
                            acc[np.uint64(dst + ix * s)] += part[r, src + ix]
    return acc


# ---- integer output stages (nn__conv_u8_emit) -----------------------------------------------------
@_jit
def _epilogue_forward(acc, unit, b, qb, y, qy, out_c, plane, relu, alpha):
    zb, zy = np.int32(qb[0].zero_point), np.int32(qy[0].zero_point)
    ratio = qb[0].scale / unit
    mult, shift = requant_make(unit / qy[0].scale)
    imin, imax = RANGE_EMPTY_MIN, RANGE_EMPTY_MAX
    for o in range(out_c):
        bias = bias_units(b[o], zb, ratio)
        for p in range(plane):
            t = acc[o * plane + p] + bias
            if relu and t < 0:
                t = np.int32(0)
            imin = min(imin, t)
            imax = max(imax, t)
            y[o * plane + p] = requant_u8(t, mult, shift, zy)
    range_observe(qy, imin, imax, unit, alpha)


@_jit
def _epilogue_error(acc, unit, ex, qex, x, qx, n, alpha):
    zex = np.int32(qex[0].zero_point)
    zx = np.int32(qx[0].zero_point) if x is not None else np.int32(0)
    mult, shift = requant_make(unit / qex[0].scale)
    imin, imax = RANGE_EMPTY_MIN, RANGE_EMPTY_MAX
    for i in range(n):
        t = acc[i]
        if x is not None and np.int32(x[i]) <= zx:
            t = np.int32(0)
        imin = min(imin, t)
        imax = max(imax, t)
        ex[i] = requant_u8(t, mult, shift, zex)
    range_observe(qex, imin, imax, unit, alpha)


@_jit
def _isum(a, cols):
    """isum[r][k] = sum_p a[r][p] * cols[k][p] (exact int32): for many k as outer products with the
    innermost loop over k, else as dot products over p."""
    n_rows, n_p = a.shape
    n_k = cols.shape[0]
    isum = np.zeros((n_rows, n_k), np.int32)
    if n_k >= 32:
        cols_t = np.ascontiguousarray(cols.T)
        for r in range(n_rows):
            out = isum[r]
            for p in range(n_p):
                v = a[r, p]
                if v == 0:
                    continue
                row = cols_t[p]
                for k in range(n_k):
                    out[k] += v * row[k]
    else:
        for r in range(n_rows):
            ar = a[r]
            for k in range(n_k):
                row = cols[k]
                acc = np.int32(0)
                for p in range(n_p):
                    acc = np.int32(acc + ar[p] * row[p])
                isum[r, k] = acc
    return isum


@_jit
def _row_requants(unit, sgw, out_c):
    """The requantization (mult, shift) of each output channel's gradient: unit * grad_inverse(sgw[o])."""
    mults, shifts = np.empty(out_c, np.int32), np.empty(out_c, np.int32)
    for o in range(out_c):
        mults[o], shifts[o] = requant_make(unit * grad_inverse(sgw[o]))
    return mults, shifts


@_jit
def _update_grad(gw, isum, mults, shifts, n_rows, n_k, active, per_row, per_channel):
    """gw[r][k] = sat16(gw[r][k] + requant(isum[r][k])) for every weight whose output channel o is active
    (o = r if per_row, else k // per_channel), with o's requantization: walked channel by channel, so that
    o's (mult, shift) are constants of the inner loop (no division per weight)."""
    n_o = 1 if per_row else n_k // per_channel
    for r in range(n_rows):
        if per_row and active is not None and active[r] == 0:
            continue
        a = isum[r]
        base = r * n_k
        for j in range(n_o):
            o = r if per_row else j
            if not per_row and active is not None and active[o] == 0:
                continue
            k0 = 0 if per_row else j * per_channel
            mult, shift = mults[o], shifts[o]
            for k in range(k0, n_k if per_row else k0 + per_channel):
                g = np.uint64(base + k)
                gw[g] = sat16(np.int32(gw[g]) + requant_apply(a[k], mult, shift))


@_jit
def _bias_grad(gb, o, sd, ratio):
    gb[o] = sat16(np.int32(gb[o]) + round_scaled(sd, ratio))


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
def conv2d_u8_backward_weight(x, qx, e, qe, gw, sgw, gb, sgb, d, active):
    in_c, in_h, in_w, out_c, out_h, out_w, kh, kw, s, pad = d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7], \
        d[8], d[9]
    zx, ze = np.int32(qx[0].zero_point), np.int32(qe[0].zero_point)
    mults, shifts = _row_requants(qe[0].scale * qx[0].scale, sgw, out_c)
    plane = out_h * out_w
    n_k = in_c * kh * kw
    # isum[o][k] = sum_p e'[o][p] * cols[k][p] (inactive channels: zero rows, not written back)
    ec = _centred(e, ze, out_c, plane, active)
    isum = _isum(ec, _im2col(x, zx, in_c, in_h, in_w, out_h, out_w, kh, kw, s, pad, None))
    for o in range(out_c):
        if active is not None and active[o] == 0:
            continue
        sd = np.int32(0)
        for p in range(plane):
            sd += ec[o, p]
        _bias_grad(gb, o, sd, qe[0].scale * grad_inverse(sgb[o]))
    _update_grad(gw, isum, mults, shifts, out_c, n_k, active, True, 1)


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
def convtranspose2d_u8_backward_weight(x, qx, e, qe, gw, sgw, gb, sgb, d, active):
    in_c, in_h, in_w, out_c, out_h, out_w, kh, kw, s, pad = d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7], \
        d[8], d[9]
    zx, ze = np.int32(qx[0].zero_point), np.int32(qe[0].zero_point)
    mults, shifts = _row_requants(qe[0].scale * qx[0].scale, sgw, out_c)
    plane = out_h * out_w
    in_plane = in_h * in_w
    kk = kh * kw
    n_k = out_c * kk
    # isum[c][(o, ky, kx)] = sum_p x'[c][p] * cols[(o, ky, kx)][p] with cols[.][iy * in_w + ix] =
    # e[o][iy*s - pad + ky][ix*s - pad + kx] - ze (0 outside and for inactive o, not written back)
    for o in range(out_c):
        if active is not None and active[o] == 0:
            continue
        sd = np.int32(0)
        for p in range(plane):
            sd += np.int32(e[o * plane + p]) - ze
        _bias_grad(gb, o, sd, qe[0].scale * grad_inverse(sgb[o]))
    isum = _isum(_centred(x, zx, in_c, in_plane, None),
                 _im2col(e, ze, out_c, out_h, out_w, in_h, in_w, kh, kw, s, pad, active))
    _update_grad(gw, isum, mults, shifts, in_c, n_k, active, False, kk)
