"""Numba twins of the fp32 layer kernels: kernels/gemm_f32.c, kernels/conv2d_f32.c and
kernels/convtranspose2d_f32.c (contracts in kernels/include/nn.h).

Each function has the C name and argument order and performs, for every output element, the same
float32 operations in the same order as the C (the summation orders documented in nn.h), so it returns
the same bits as the firmware. Only the order WITHIN each element fixes the result, so the twins are
free to nest loops differently from the C: the innermost loops run over INDEPENDENT outputs (output
channels, positions, gemm rows), which LLVM vectorizes while every lane keeps its own sequential order.
Padding taps are skipped (never added as 0*w: +0.0 added to an acc of -0.0 would change its bits), by
looping only over precomputed valid ranges. Rules (see mcusim.ops.nn_math):
float32 module-global constants only, no float64 promotion, no fastmath, arrays are float32.

Arguments: arrays are 1-D (or any contiguous shape, indexed flat) float32; `d` is the np.int32 array of
the 10 nn_conv_dims values (in_c, in_h, in_w, out_c, out_h, out_w, k_h, k_w, stride, pad); `b`, `db` and
`active` may be None (NULL); `active` is a uint8 array.
"""
from __future__ import annotations

import numpy as np
from numba import config, njit, prange

__all__ = ["gemm_f32_forward", "gemm_f32_backward_input", "gemm_f32_backward_weight",
           "conv2d_f32_forward", "conv2d_f32_backward_input", "conv2d_f32_backward_weight",
           "convtranspose2d_f32_forward", "convtranspose2d_f32_backward_input",
           "convtranspose2d_f32_backward_weight", "conv_dims", "DIMS_FIELDS"]

ZERO = np.float32(0.0)
DIMS_FIELDS = ("in_c", "in_h", "in_w", "out_c", "out_h", "out_w", "k_h", "k_w", "stride", "pad")

# Thread-parallel cores (numba.prange over independent output rows / channels) for layers with at
# least PAR_MIN_MACS multiply-adds. OFF by default: on this 2-core machine, when idle, they take the
# VAE step from ~354 to ~314 us, but when another process keeps a core busy an OpenMP barrier waits for
# a descheduled thread and one call can stall for ~7.5 ms (measured), so serial is the safe default.
# These are frozen into the cached compiled code: edit here (not at runtime) to change them.
PARALLEL = False
PAR_MIN_MACS = 150_000
_N_THREADS = int(config.NUMBA_NUM_THREADS)

_jit = njit(cache=True, error_model="numpy")
_pjit = njit(cache=True, error_model="numpy", parallel=True)


def conv_dims(in_c, in_h, in_w, out_c, out_h, out_w, k_h, k_w, stride, pad) -> np.ndarray:
    """The nn_conv_dims struct as the np.int32 array passed to both twins."""
    return np.array([in_c, in_h, in_w, out_c, out_h, out_w, k_h, k_w, stride, pad], np.int32)


# ---- helpers ------------------------------------------------------------------------------------
@_jit
def _valid_range(base, S, N):
    """[lo, hi) of the j >= 0 with j*S + base inside [0, N) (base may be negative); lo >= hi when
    empty. Used to visit only the in-bounds taps, never the padding."""
    lo = 0
    if base < 0:
        lo = (-base + S - 1) // S
    hi = (N - 1 - base) // S + 1            # floor division: hi <= 0 when base >= N
    return lo, hi


@_jit
def _tap_range(p, S, P, K, N):
    """Taps k in [lo, hi) with p*S - P + k inside [0, N) (the valid kernel taps of position p)."""
    o = p * S - P
    lo = max(0, -o)
    hi = min(K, N - o)
    return lo, hi


@_jit
def _n_chunks(macs, n):
    """Number of parallel chunks for n independent items (1 = run serially): a thread launch only
    pays for the big layers, and only on an otherwise idle machine (see PARALLEL)."""
    if not PARALLEL or macs < PAR_MIN_MACS or n < 2:
        return 1
    return min(n, _N_THREADS)


# ---- gemm -------------------------------------------------------------------------------------
@_jit
def gemm_f32_forward(x, w, b, y, n_in, n_out):
    """Rows are processed 8 at a time: 8 independent scalar accumulators (one per row, each summing
    over i ascending) hide the add latency and share the x[i] load; a row's own order is unchanged.
    (Vectorizing across rows would need a transposed w, which costs as much as the product.)"""
    x = x.reshape(-1)
    w = w.reshape(-1)
    y = y.reshape(-1)
    n8 = n_out - n_out % 8
    for o0 in range(0, n8, 8):
        w0 = w[(o0 + 0) * n_in:(o0 + 1) * n_in]
        w1 = w[(o0 + 1) * n_in:(o0 + 2) * n_in]
        w2 = w[(o0 + 2) * n_in:(o0 + 3) * n_in]
        w3 = w[(o0 + 3) * n_in:(o0 + 4) * n_in]
        w4 = w[(o0 + 4) * n_in:(o0 + 5) * n_in]
        w5 = w[(o0 + 5) * n_in:(o0 + 6) * n_in]
        w6 = w[(o0 + 6) * n_in:(o0 + 7) * n_in]
        w7 = w[(o0 + 7) * n_in:(o0 + 8) * n_in]
        a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = ZERO
        if b is not None:
            bf = b.reshape(-1)
            a0, a1, a2, a3 = bf[o0], bf[o0 + 1], bf[o0 + 2], bf[o0 + 3]
            a4, a5, a6, a7 = bf[o0 + 4], bf[o0 + 5], bf[o0 + 6], bf[o0 + 7]
        for i in range(n_in):
            xi = x[i]
            a0 = a0 + w0[i] * xi
            a1 = a1 + w1[i] * xi
            a2 = a2 + w2[i] * xi
            a3 = a3 + w3[i] * xi
            a4 = a4 + w4[i] * xi
            a5 = a5 + w5[i] * xi
            a6 = a6 + w6[i] * xi
            a7 = a7 + w7[i] * xi
        y[o0], y[o0 + 1], y[o0 + 2], y[o0 + 3] = a0, a1, a2, a3
        y[o0 + 4], y[o0 + 5], y[o0 + 6], y[o0 + 7] = a4, a5, a6, a7
    for o in range(n8, n_out):                     # leftover rows, one chain each
        acc = ZERO
        if b is not None:
            acc = b.reshape(-1)[o]
        wr = w[o * n_in:(o + 1) * n_in]
        for i in range(n_in):
            acc = acc + wr[i] * x[i]
        y[o] = acc


@_jit
def gemm_f32_backward_input(w, dy, dx, n_in, n_out, active):
    """dx is the accumulator array (one lane per i), rows o added in ascending order."""
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
    """One rounding per element, any order; rows of dw are vectorized over i."""
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
        for o in range(n_out):
            if active is not None:
                if active[o] == 0:
                    continue
            dbf[o] = dbf[o] + dy[o]


# ---- cores --------------------------------------------------------------------------------------
@_jit
def _init_acc(b, n_pos, OC):
    """acc[p][oc] = b[oc] (0.0 if b is None): the starting value of every output's sum."""
    acc = np.empty(n_pos * OC, np.float32)
    if b is None:
        for k in range(n_pos * OC):
            acc[k] = ZERO
    else:
        bf = b.reshape(-1)
        for p in range(n_pos):
            for oc in range(OC):
                acc[p * OC + oc] = bf[oc]
    return acc


@_jit
def _store_planes(acc, y, n_pos, OC):
    """y[oc][p] = acc[p][oc]."""
    for oc in range(OC):
        for p in range(n_pos):
            y[oc * n_pos + p] = acc[p * OC + oc]


@_jit
def _conv_gather_rows(x, wT, acc, d, in_active, r0, r1):
    """Output rows [r0, r1) of _conv_gather: tap-major, output channels innermost."""
    IC, IH, IW, OC, OH, OW, KH, KW, S, P = d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7], d[8], d[9]
    for ic in range(IC):
        if in_active is not None:
            if in_active[ic] == 0:
                continue
        for ky in range(KH):
            oy0, oy1 = _valid_range(ky - P, S, IH)
            oy0, oy1 = max(oy0, r0), min(oy1, r1)
            for kx in range(KW):
                ox0, ox1 = _valid_range(kx - P, S, IW)
                ox1 = min(ox1, OW)
                wb = ((ic * KH + ky) * KW + kx) * OC
                wr = wT[wb:wb + OC]
                for oy in range(oy0, oy1):
                    xrow = (ic * IH + oy * S - P + ky) * IW - P + kx
                    for ox in range(ox0, ox1):
                        xv = x[xrow + ox * S]
                        a = (oy * OW + ox) * OC
                        ar = acc[a:a + OC]          # slice: a plain 0-based index vectorizes
                        for oc in range(OC):
                            ar[oc] = ar[oc] + wr[oc] * xv


@_pjit
def _conv_gather_par(x, wT, acc, d, in_active, n):
    """_conv_gather_rows on n disjoint row bands, one per thread (outputs are independent)."""
    OH = d[4]
    for t in prange(n):
        _conv_gather_rows(x, wT, acc, d, in_active, t * OH // n, (t + 1) * OH // n)


@_jit
def _conv_gather(x, w, b, y, d, in_active):
    """conv2d forward order: acc = b; ic asc, ky asc, kx asc (in-bounds taps); w [OC][IC][KH][KW].

    Tap-major with output channels innermost: for each tap (ic, ky, kx) we visit only the output
    positions where it is in bounds and update acc[pos][0..OC) with the transposed weights
    wT[ic][ky][kx][oc] (contiguous, vectorized over oc). Each output still sees its taps in
    (ic, ky, kx) ascending order."""
    IC, OC, OH, OW, KH, KW = d[0], d[3], d[4], d[5], d[6], d[7]
    x = x.reshape(-1)
    w = w.reshape(-1)
    y = y.reshape(-1)
    T = IC * KH * KW
    wT = np.empty(T * OC, np.float32)
    for oc in range(OC):
        for t in range(T):
            wT[t * OC + oc] = w[oc * T + t]
    acc = _init_acc(b, OH * OW, OC)
    n = _n_chunks(T * OC * OH * OW, OH)
    if n == 1:
        _conv_gather_rows(x, wT, acc, d, in_active, 0, OH)
    else:
        _conv_gather_par(x, wT, acc, d, in_active, n)
    _store_planes(acc, y, OH * OW, OC)


@_jit
def _convt_gather_rows(x, wT, acc, d, in_active, r0, r1):
    """Output rows [r0, r1) of _convt_gather_wide: tap-major, output channels innermost."""
    IC, IH, IW, OC, OH, OW, KH, KW, S, P = d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7], d[8], d[9]
    for ic in range(IC):
        if in_active is not None:
            if in_active[ic] == 0:
                continue
        for ky in range(KH):
            iy0, iy1 = _valid_range(ky - P - r0, S, r1 - r0)    # oy = iy*S - P + ky in [r0, r1)
            iy1 = min(iy1, IH)
            for kx in range(KW):
                ix0, ix1 = _valid_range(kx - P, S, OW)
                ix1 = min(ix1, IW)
                wb = ((ic * KH + ky) * KW + kx) * OC
                wr = wT[wb:wb + OC]
                for iy in range(iy0, iy1):
                    arow = (iy * S - P + ky) * OW - P + kx
                    xrow = (ic * IH + iy) * IW
                    for ix in range(ix0, ix1):
                        xv = x[xrow + ix]
                        a = (arow + ix * S) * OC
                        ar = acc[a:a + OC]
                        for oc in range(OC):
                            ar[oc] = ar[oc] + wr[oc] * xv


@_pjit
def _convt_gather_par(x, wT, acc, d, in_active, n):
    """_convt_gather_rows on n disjoint output row bands, one per thread."""
    OH = d[4]
    for t in prange(n):
        _convt_gather_rows(x, wT, acc, d, in_active, t * OH // n, (t + 1) * OH // n)


@_jit
def _convt_gather_wide(x, w, b, y, d, in_active):
    """Transposed-conv gather for OC >= 8: tap-major, output channels innermost (see _conv_gather).
    Output (oy, ox) receives tap (ic, ky, kx) from the single input iy = (oy + P - ky) / S, so we
    walk the valid inputs iy, ix and land on oy = iy*S - P + ky; per output the taps still come in
    (ic, ky, kx) ascending order."""
    IC, IH, IW, OC, OH, OW, KH, KW = d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]
    x = x.reshape(-1)
    w = w.reshape(-1)
    y = y.reshape(-1)
    K2 = KH * KW
    wT = np.empty(IC * K2 * OC, np.float32)           # [ic][ky][kx][oc]
    for ic in range(IC):
        for oc in range(OC):
            for t in range(K2):
                wT[(ic * K2 + t) * OC + oc] = w[(ic * OC + oc) * K2 + t]
    acc = _init_acc(b, OH * OW, OC)
    n = _n_chunks(IC * K2 * OC * IH * IW, OH)
    if n == 1:
        _convt_gather_rows(x, wT, acc, d, in_active, 0, OH)
    else:
        _convt_gather_par(x, wT, acc, d, in_active, n)
    _store_planes(acc, y, OH * OW, OC)


@_jit
def _convt_gather_narrow(x, w, b, y, d, in_active):
    """Transposed-conv gather for few output channels: one output plane at a time, vectorized over
    input columns ix. The plane is kept split into S x S phase planes (oy = jy*S + py) so that the
    outputs hit by consecutive ix are contiguous. Per output the taps come in (ic, ky, kx) order."""
    IC, IH, IW, OC, OH, OW, KH, KW, S, P = d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7], d[8], d[9]
    x = x.reshape(-1)
    w = w.reshape(-1)
    y = y.reshape(-1)
    QH = (OH + S - 1) // S
    QW = (OW + S - 1) // S
    accp = np.empty(S * S * QH * QW, np.float32)
    for oc in range(OC):
        b0 = ZERO
        if b is not None:
            b0 = b.reshape(-1)[oc]
        for k in range(S * S * QH * QW):
            accp[k] = b0
        for ic in range(IC):
            if in_active is not None:
                if in_active[ic] == 0:
                    continue
            for ky in range(KH):
                iy0, iy1 = _valid_range(ky - P, S, OH)
                iy1 = min(iy1, IH)
                py = (ky - P) % S
                sy = (ky - P - py) // S                 # oy = (iy + sy) * S + py
                for kx in range(KW):
                    ix0, ix1 = _valid_range(kx - P, S, OW)
                    ix1 = min(ix1, IW)
                    px = (kx - P) % S
                    sx = (kx - P - px) // S
                    wv = w[((ic * OC + oc) * KH + ky) * KW + kx]
                    n = ix1 - ix0
                    if iy1 <= iy0 or n <= 0:
                        continue
                    if n == IW and QW == IW and sx == 0:
                        # whole input rows land on whole phase rows: one long contiguous loop
                        a = ((py * S + px) * QH + iy0 + sy) * QW
                        m = (iy1 - iy0) * IW
                        ar = accp[a:a + m]
                        xr = x[(ic * IH + iy0) * IW:(ic * IH + iy0) * IW + m]
                        for j in range(m):
                            ar[j] = ar[j] + wv * xr[j]
                        continue
                    for iy in range(iy0, iy1):
                        a = ((py * S + px) * QH + iy + sy) * QW + sx + ix0
                        ar = accp[a:a + n]
                        xr = x[(ic * IH + iy) * IW + ix0:(ic * IH + iy) * IW + ix0 + n]
                        for j in range(n):
                            ar[j] = ar[j] + wv * xr[j]
        for oy in range(OH):
            for ox in range(OW):
                y[(oc * OH + oy) * OW + ox] = accp[(((oy % S) * S + ox % S) * QH + oy // S) * QW + ox // S]


@_jit
def _convt_gather(x, w, b, y, d, in_active):
    """convtranspose2d forward order: acc = b; ic asc, ky asc, kx asc (taps whose input index
    (o + P - k) / S is exact and in range); w [IC][OC][KH][KW]."""
    if d[3] >= 8:
        _convt_gather_wide(x, w, b, y, d, in_active)
    else:
        _convt_gather_narrow(x, w, b, y, d, in_active)


@_jit
def _swap(d):
    t = np.empty(10, np.int32)
    t[0], t[1], t[2], t[3], t[4], t[5] = d[3], d[4], d[5], d[0], d[1], d[2]
    t[6], t[7], t[8], t[9] = d[6], d[7], d[8], d[9]
    return t


@_jit
def _bias_grad(dyT, db, n_pos, OC, active):
    """db[oc] += (sum over positions ascending of dy[oc][p]), vectorized over oc (dyT is [p][oc])."""
    if db is None:
        return
    dbf = db.reshape(-1)
    s = np.zeros(OC, np.float32)
    for p in range(n_pos):
        gr = dyT[p * OC:(p + 1) * OC]
        for oc in range(OC):
            s[oc] = s[oc] + gr[oc]
    for oc in range(OC):
        if active is not None:
            if active[oc] == 0:
                continue
        dbf[oc] = dbf[oc] + s[oc]


@_jit
def _transpose_planes(a, C, n_pos):
    """[C][n_pos] -> [n_pos][C]."""
    t = np.empty(C * n_pos, np.float32)
    for c in range(C):
        for p in range(n_pos):
            t[p * C + c] = a[c * n_pos + p]
    return t


# ---- conv2d ----------------------------------------------------------------------------------------
@_jit
def conv2d_f32_forward(x, w, b, y, d):
    _conv_gather(x, w, b, y, d, None)


@_jit
def conv2d_f32_backward_input(w, dy, dx, d, active):
    _convt_gather(dy, w, None, dx, _swap(d), active)


@_jit
def _conv_weight_chans(x, dyT, dw, d, active, c0, c1):
    """conv2d dw for input channels [c0, c1): positions ascending, then their valid taps, updating
    acc[ky][kx][0..OC) vectorized over oc; consecutive updates hit different accumulators."""
    IC, IH, IW, OC, OH, OW, KH, KW, S, P = d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7], d[8], d[9]
    acc = np.empty(KH * KW * OC, np.float32)
    for ic in range(c0, c1):
        for k in range(KH * KW * OC):
            acc[k] = ZERO
        for oy in range(OH):
            ky0, ky1 = _tap_range(oy, S, P, KH, IH)
            for ox in range(OW):
                kx0, kx1 = _tap_range(ox, S, P, KW, IW)
                g = (oy * OW + ox) * OC
                gr = dyT[g:g + OC]
                for ky in range(ky0, ky1):
                    xrow = (ic * IH + oy * S - P + ky) * IW + ox * S - P
                    for kx in range(kx0, kx1):
                        xv = x[xrow + kx]
                        a = (ky * KW + kx) * OC
                        ar = acc[a:a + OC]
                        for oc in range(OC):
                            ar[oc] = ar[oc] + xv * gr[oc]
        for oc in range(OC):
            if active is not None:
                if active[oc] == 0:
                    continue
            for t in range(KH * KW):
                k = (oc * IC + ic) * KH * KW + t
                dw[k] = dw[k] + acc[t * OC + oc]


@_pjit
def _conv_weight_par(x, dyT, dw, d, active, n):
    """_conv_weight_chans on n disjoint input-channel bands, one per thread."""
    IC = d[0]
    for t in prange(n):
        _conv_weight_chans(x, dyT, dw, d, active, t * IC // n, (t + 1) * IC // n)


@_jit
def conv2d_f32_backward_weight(x, dy, dw, db, d, active):
    """Per dw element the sum runs over output positions (oy, ox) ascending (x * dy each), kept
    as is; the work is vectorized over oc with dy transposed to [pos][oc]."""
    IC, OC, OH, OW, KH, KW = d[0], d[3], d[4], d[5], d[6], d[7]
    x = x.reshape(-1)
    dy = dy.reshape(-1)
    dw = dw.reshape(-1)
    NP = OH * OW
    dyT = _transpose_planes(dy, OC, NP)
    _bias_grad(dyT, db, NP, OC, active)
    n = _n_chunks(IC * OC * KH * KW * NP, IC)
    if n == 1:
        _conv_weight_chans(x, dyT, dw, d, active, 0, IC)
    else:
        _conv_weight_par(x, dyT, dw, d, active, n)


# ---- convtranspose2d -------------------------------------------------------------------------------
@_jit
def convtranspose2d_f32_forward(x, w, b, y, d):
    _convt_gather(x, w, b, y, d, None)


@_jit
def convtranspose2d_f32_backward_input(w, dy, dx, d, active):
    _conv_gather(dy, w, None, dx, _swap(d), active)


@_jit
def _convt_weight_chans(xT, dy, dw, d, active, c0, c1):
    """convtranspose2d dw for output channels [c0, c1): input positions ascending, then their valid
    taps, updating acc[ky][kx][0..IC) vectorized over ic (x transposed to [pos][ic])."""
    IC, IH, IW, OC, OH, OW, KH, KW, S, P = d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7], d[8], d[9]
    acc = np.empty(KH * KW * IC, np.float32)
    for oc in range(c0, c1):
        if active is not None:
            if active[oc] == 0:
                continue
        for k in range(KH * KW * IC):
            acc[k] = ZERO
        for iy in range(IH):
            ky0, ky1 = _tap_range(iy, S, P, KH, OH)
            for ix in range(IW):
                kx0, kx1 = _tap_range(ix, S, P, KW, OW)
                g = (iy * IW + ix) * IC
                xr = xT[g:g + IC]
                for ky in range(ky0, ky1):
                    dyrow = (oc * OH + iy * S - P + ky) * OW + ix * S - P
                    for kx in range(kx0, kx1):
                        gv = dy[dyrow + kx]
                        a = (ky * KW + kx) * IC
                        ar = acc[a:a + IC]
                        for ic in range(IC):
                            ar[ic] = ar[ic] + xr[ic] * gv
        for ic in range(IC):
            for t in range(KH * KW):
                k = (ic * OC + oc) * KH * KW + t
                dw[k] = dw[k] + acc[t * IC + ic]


@_pjit
def _convt_weight_par(xT, dy, dw, d, active, n):
    """_convt_weight_chans on n disjoint output-channel bands, one per thread."""
    OC = d[3]
    for t in prange(n):
        _convt_weight_chans(xT, dy, dw, d, active, t * OC // n, (t + 1) * OC // n)


@_jit
def convtranspose2d_f32_backward_weight(x, dy, dw, db, d, active):
    """Per dw element the sum runs over input positions (iy, ix) ascending (x * dy each; the
    product is commutative, so computing it as dy * x-lane is the same bits), vectorized over ic."""
    IC, IH, IW, OC, OH, OW, KH, KW = d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]
    x = x.reshape(-1)
    dy = dy.reshape(-1)
    dw = dw.reshape(-1)
    xT = _transpose_planes(x, IC, IH * IW)
    if db is not None:
        _bias_grad(_transpose_planes(dy, OC, OH * OW), db, OH * OW, OC, active)
    n = _n_chunks(IC * OC * KH * KW * IH * IW, OC)
    if n == 1:
        _convt_weight_chans(xT, dy, dw, d, active, 0, OC)
    else:
        _convt_weight_par(xT, dy, dw, d, active, n)
