"""Numba twins of the fp32 layer kernels: kernels/gemm_f32.c, kernels/conv2d_f32.c and
kernels/convtranspose2d_f32.c (contracts in kernels/include/nn.h).

Each function has the C name and argument order and performs, for every output element, the same
float32 operations in the same order as the C (the summation orders documented in nn.h), so it returns
the same bits as the firmware. The C blocks channels / rows for speed; the twin does not need to,
because the order within each element is what fixes the result. Rules (see mcusim.ops.nn_math):
float32 module-global constants only, no float64 promotion, no fastmath, arrays are float32.

Arguments: arrays are 1-D (or any contiguous shape, indexed flat) float32; `d` is the np.int32 array of
the 10 nn_conv_dims values (in_c, in_h, in_w, out_c, out_h, out_w, k_h, k_w, stride, pad); `b`, `db` and
`active` may be None (NULL); `active` is a uint8 array.
"""
from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["gemm_f32_forward", "gemm_f32_backward_input", "gemm_f32_backward_weight",
           "conv2d_f32_forward", "conv2d_f32_backward_input", "conv2d_f32_backward_weight",
           "convtranspose2d_f32_forward", "convtranspose2d_f32_backward_input",
           "convtranspose2d_f32_backward_weight", "conv_dims", "DIMS_FIELDS"]

ZERO = np.float32(0.0)
DIMS_FIELDS = ("in_c", "in_h", "in_w", "out_c", "out_h", "out_w", "k_h", "k_w", "stride", "pad")

_jit = njit(cache=True, error_model="numpy")


def conv_dims(in_c, in_h, in_w, out_c, out_h, out_w, k_h, k_w, stride, pad) -> np.ndarray:
    """The nn_conv_dims struct as the np.int32 array passed to both twins."""
    return np.array([in_c, in_h, in_w, out_c, out_h, out_w, k_h, k_w, stride, pad], np.int32)


# ---- gemm -------------------------------------------------------------------------------------
@_jit
def gemm_f32_forward(x, w, b, y, n_in, n_out):
    x = x.reshape(-1)
    w = w.reshape(-1)
    y = y.reshape(-1)
    for o in range(n_out):
        acc = ZERO
        if b is not None:
            acc = b.reshape(-1)[o]
        base = o * n_in
        for i in range(n_in):
            acc = acc + w[base + i] * x[i]
        y[o] = acc


@_jit
def gemm_f32_backward_input(w, dy, dx, n_in, n_out, active):
    w = w.reshape(-1)
    dy = dy.reshape(-1)
    dx = dx.reshape(-1)
    for i in range(n_in):
        dx[i] = ZERO
    for o in range(n_out):
        if active is not None:
            if active[o] == 0:
                continue
        g = dy[o]
        base = o * n_in
        for i in range(n_in):
            dx[i] = dx[i] + w[base + i] * g


@_jit
def gemm_f32_backward_weight(x, dy, dw, db, n_in, n_out, active):
    x = x.reshape(-1)
    dy = dy.reshape(-1)
    dw = dw.reshape(-1)
    for o in range(n_out):
        if active is not None:
            if active[o] == 0:
                continue
        g = dy[o]
        base = o * n_in
        for i in range(n_in):
            dw[base + i] = dw[base + i] + x[i] * g
        if db is not None:
            dbf = db.reshape(-1)
            dbf[o] = dbf[o] + g


# ---- cores --------------------------------------------------------------------------------------
@_jit
def _conv_gather(x, w, b, y, d, in_active):
    """conv2d forward order: acc = b; ic asc, ky asc, kx asc (in-bounds taps); w [OC][IC][KH][KW]."""
    IC, IH, IW, OC, OH, OW, KH, KW, S, P = d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7], d[8], d[9]
    x = x.reshape(-1)
    w = w.reshape(-1)
    y = y.reshape(-1)
    for oc in range(OC):
        for oy in range(OH):
            for ox in range(OW):
                acc = ZERO
                if b is not None:
                    acc = b.reshape(-1)[oc]
                for ic in range(IC):
                    if in_active is not None:
                        if in_active[ic] == 0:
                            continue
                    for ky in range(KH):
                        iy = oy * S - P + ky
                        if iy < 0 or iy >= IH:
                            continue
                        for kx in range(KW):
                            ix = ox * S - P + kx
                            if ix < 0 or ix >= IW:
                                continue
                            acc = acc + w[((oc * IC + ic) * KH + ky) * KW + kx] * x[(ic * IH + iy) * IW + ix]
                y[(oc * OH + oy) * OW + ox] = acc


@_jit
def _convt_gather(x, w, b, y, d, in_active):
    """convtranspose2d forward order: acc = b; ic asc, ky asc, kx asc (taps whose input index
    (o + P - k) / S is exact and in range); w [IC][OC][KH][KW]."""
    IC, IH, IW, OC, OH, OW, KH, KW, S, P = d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7], d[8], d[9]
    x = x.reshape(-1)
    w = w.reshape(-1)
    y = y.reshape(-1)
    for oc in range(OC):
        for oy in range(OH):
            for ox in range(OW):
                acc = ZERO
                if b is not None:
                    acc = b.reshape(-1)[oc]
                for ic in range(IC):
                    if in_active is not None:
                        if in_active[ic] == 0:
                            continue
                    for ky in range(KH):
                        ty = oy + P - ky
                        if ty < 0 or ty % S != 0 or ty // S >= IH:
                            continue
                        iy = ty // S
                        for kx in range(KW):
                            tx = ox + P - kx
                            if tx < 0 or tx % S != 0 or tx // S >= IW:
                                continue
                            ix = tx // S
                            acc = acc + w[((ic * OC + oc) * KH + ky) * KW + kx] * x[(ic * IH + iy) * IW + ix]
                y[(oc * OH + oy) * OW + ox] = acc


@_jit
def _swap(d):
    t = np.empty(10, np.int32)
    t[0], t[1], t[2], t[3], t[4], t[5] = d[3], d[4], d[5], d[0], d[1], d[2]
    t[6], t[7], t[8], t[9] = d[6], d[7], d[8], d[9]
    return t


# ---- conv2d ----------------------------------------------------------------------------------------
@_jit
def conv2d_f32_forward(x, w, b, y, d):
    _conv_gather(x, w, b, y, d, None)


@_jit
def conv2d_f32_backward_input(w, dy, dx, d, active):
    _convt_gather(dy, w, None, dx, _swap(d), active)


@_jit
def conv2d_f32_backward_weight(x, dy, dw, db, d, active):
    IC, IH, IW, OC, OH, OW, KH, KW, S, P = d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7], d[8], d[9]
    x = x.reshape(-1)
    dy = dy.reshape(-1)
    dw = dw.reshape(-1)
    for oc in range(OC):
        if active is not None:
            if active[oc] == 0:
                continue
        if db is not None:
            dbf = db.reshape(-1)
            acc = ZERO
            for k in range(OH * OW):
                acc = acc + dy[oc * OH * OW + k]
            dbf[oc] = dbf[oc] + acc
        for ic in range(IC):
            for ky in range(KH):
                for kx in range(KW):
                    acc = ZERO
                    for oy in range(OH):
                        iy = oy * S - P + ky
                        if iy < 0 or iy >= IH:
                            continue
                        for ox in range(OW):
                            ix = ox * S - P + kx
                            if ix < 0 or ix >= IW:
                                continue
                            acc = acc + x[(ic * IH + iy) * IW + ix] * dy[(oc * OH + oy) * OW + ox]
                    k = ((oc * IC + ic) * KH + ky) * KW + kx
                    dw[k] = dw[k] + acc


# ---- convtranspose2d -------------------------------------------------------------------------------
@_jit
def convtranspose2d_f32_forward(x, w, b, y, d):
    _convt_gather(x, w, b, y, d, None)


@_jit
def convtranspose2d_f32_backward_input(w, dy, dx, d, active):
    _conv_gather(dy, w, None, dx, _swap(d), active)


@_jit
def convtranspose2d_f32_backward_weight(x, dy, dw, db, d, active):
    IC, IH, IW, OC, OH, OW, KH, KW, S, P = d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7], d[8], d[9]
    x = x.reshape(-1)
    dy = dy.reshape(-1)
    dw = dw.reshape(-1)
    for oc in range(OC):
        if active is not None:
            if active[oc] == 0:
                continue
        if db is not None:
            dbf = db.reshape(-1)
            acc = ZERO
            for k in range(OH * OW):
                acc = acc + dy[oc * OH * OW + k]
            dbf[oc] = dbf[oc] + acc
        for ic in range(IC):
            for ky in range(KH):
                for kx in range(KW):
                    acc = ZERO
                    for iy in range(IH):
                        oy = iy * S - P + ky
                        if oy < 0 or oy >= OH:
                            continue
                        for ix in range(IW):
                            ox = ix * S - P + kx
                            if ox < 0 or ox >= OW:
                                continue
                            acc = acc + x[(ic * IH + iy) * IW + ix] * dy[(oc * OH + oy) * OW + ox]
                    k = ((ic * OC + oc) * KH + ky) * KW + kx
                    dw[k] = dw[k] + acc
