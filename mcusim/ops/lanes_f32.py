"""Batch-lane Numba twins of the fp32 training step: the kernels of mcusim/ops/layers_f32.py and
train_f32.py run on m samples side by side, bit for bit as m calls of the one-sample twin in sample
order (so, as the C on the MCU).

Layout: a per-sample tensor of n elements holds its m lanes as n rows of m, x[i * m + s] (sample s,
element i); weights, gradients and the other tensors shared by the samples are laid out as in C.
Every lane twin has its one-sample twin's name plus "_lanes", the same arguments and `m` last.

Why the bits stay the same: each output element of one sample is summed in the order nn.h documents,
one lane per sample, and the lanes are independent; every step is one float32 multiply and one float32
add, never fused (mcusim/ops/simd.py), as in mcusim/ops/nn_math.py. Gradients are the one place where
samples meet: the C adds each sample's term to a gradient element in sample order, so the lane twins
form every sample's term first (a product, or a whole per-sample partial sum) and then add the terms to
the element for s = 0, 1, ..., m - 1, exactly as m calls would.

Why it is fast: the sums are register-blocked. A block of eight lanes of four outputs that share their
inputs (four output channels at one position, four gemm rows) keeps its four sums in SIMD registers
over all of the outputs' terms, so one load of the inputs serves four outputs and no sum goes to memory
between terms; the weight gradients do the same with four channels' planes against one shared plane,
or four rows of dw, eight columns wide, over all m samples. Below WIDTH lanes the one-sample twins run
lane by lane. The lane twins are serial: several threads each run a part of the batch's lanes
(mcusim/host_threads.py).
"""
from __future__ import annotations

import numpy as np
from numba import njit

from .layers_f32 import _swap, _tap_range, _transpose_planes, _valid_range, conv2d_f32_backward_input, \
    conv2d_f32_backward_weight, conv2d_f32_forward, convtranspose2d_f32_backward_input, \
    convtranspose2d_f32_backward_weight, convtranspose2d_f32_forward, gemm_f32_backward_input, \
    gemm_f32_backward_weight, gemm_f32_forward
from .nn_math import expf, logf_normal
from .simd import WIDTH, load8, madd8, relu8, relu_backward8, splat8, splat_at, store8
from .train_f32 import HALF, INV255, ONE, ZERO, bce_combine, elbo_f32_backward, kl_normal, neg_abs, \
    pixels_f32_forward, relu_f32_backward, relu_f32_forward, reparameterize_f32_backward, \
    reparameterize_f32_forward, sigmoid_f32_forward

__all__ = ["gemm_f32_forward_lanes", "gemm_f32_backward_input_lanes", "gemm_f32_backward_weight_lanes",
           "conv2d_f32_forward_lanes", "conv2d_f32_backward_input_lanes", "conv2d_f32_backward_weight_lanes",
           "convtranspose2d_f32_forward_lanes", "convtranspose2d_f32_backward_input_lanes",
           "convtranspose2d_f32_backward_weight_lanes", "relu_f32_forward_lanes", "relu_f32_backward_lanes",
           "sigmoid_f32_forward_lanes", "pixels_f32_forward_lanes", "reparameterize_f32_forward_lanes",
           "reparameterize_f32_backward_lanes", "elbo_f32_forward_lanes", "elbo_f32_backward_lanes"]

_jit = njit(cache=True, error_model="numpy")


@_jit
def _n_blocks(m):
    return (m + WIDTH - 1) // WIDTH


@_jit
def _block(k, m):
    """First lane of lane block k (m >= WIDTH). The last block ends at lane m - 1 and may overlap the
    one before; it computes those lanes again, to the same bits, so only kernels that write their
    results (never add to them) use it."""
    return min(k * WIDTH, m - WIDTH)


@_jit
def _fill(row, v, m):
    for s in range(m):
        row[s] = v


@_jit
def _add_lanes_in_order(g, k, terms, m):
    """g[k] = (((g[k] + terms[0]) + terms[1]) + ...): sample s's term added as its call would."""
    acc = g[k]
    for s in range(m):
        acc = acc + terms[s]
    g[k] = acc


@_jit
def _add_rows_in_order(g, ga, k, terms, nr, m):
    """_add_lanes_in_order for nr <= 4 gradient elements g[ga[j] + k] and their terms[j * m:(j + 1) * m]:
    four chains of adds side by side, so that their latencies overlap."""
    if nr < 4:
        for j in range(nr):
            _add_lanes_in_order(g, ga[j] + k, terms[j * m:(j + 1) * m], m)
        return
    a0, a1, a2, a3 = g[ga[0] + k], g[ga[1] + k], g[ga[2] + k], g[ga[3] + k]
    for s in range(m):
        a0 = a0 + terms[s]
        a1 = a1 + terms[m + s]
        a2 = a2 + terms[2 * m + s]
        a3 = a3 + terms[3 * m + s]
    g[ga[0] + k], g[ga[1] + k], g[ga[2] + k], g[ga[3] + k] = a0, a1, a2, a3


@_jit
def _biases(b, n):
    """Each output's starting sum: its bias, or +0.0 without one."""
    if b is None:
        return np.zeros(n, np.float32)
    return b.reshape(-1).copy()


# ---- m < WIDTH: the one-sample twins lane by lane -------------------------------------------------
@_jit
def _lane(a, n, m, s):
    """Sample s's n values out of the lane layout."""
    a, v = a.reshape(-1), np.empty(n, np.float32)
    for i in range(n):
        v[i] = a[i * m + s]
    return v


@_jit
def _set_lane(a, n, m, s, v):
    a = a.reshape(-1)
    for i in range(n):
        a[i * m + s] = v[i]


# ---- register-blocked sums: four outputs' taps over a block of lanes ------------------------------
@_jit
def _gather4(y, ya, yst, b0, b1, b2, b3, W, wa, wst, offs, n, x, base, m):
    """Four outputs that share their taps' inputs, for every lane s: y[ya + j * yst + s] = b_j, then
    + W[wa + j * wst + k] * x[base + offs[k] + s] for k = 0..n-1 in turn (j = 0..3). Two lane blocks at a
    time (one when m < 2 * WIDTH): the eight sums stay in registers over all n taps, each weight broadcast
    serves two blocks and each load of x four outputs."""
    w0, w1, w2, w3 = wa, wa + wst, wa + 2 * wst, wa + 3 * wst
    if m < 2 * WIDTH:
        for blk in range(_n_blocks(m)):
            s = _block(blk, m)
            a0, a1, a2, a3 = splat8(b0), splat8(b1), splat8(b2), splat8(b3)
            for k in range(n):
                xv = load8(x, base + offs[k] + s)
                a0 = madd8(a0, splat_at(W, w0 + k), xv)
                a1 = madd8(a1, splat_at(W, w1 + k), xv)
                a2 = madd8(a2, splat_at(W, w2 + k), xv)
                a3 = madd8(a3, splat_at(W, w3 + k), xv)
            store8(y, ya + s, a0)
            store8(y, ya + yst + s, a1)
            store8(y, ya + 2 * yst + s, a2)
            store8(y, ya + 3 * yst + s, a3)
        return
    for pair in range((m + 2 * WIDTH - 1) // (2 * WIDTH)):
        s = min(pair * 2 * WIDTH, m - 2 * WIDTH)
        t = s + WIDTH
        a0, a1, a2, a3 = splat8(b0), splat8(b1), splat8(b2), splat8(b3)
        c0, c1, c2, c3 = a0, a1, a2, a3
        for k in range(n):
            o = base + offs[k]
            xv, xw = load8(x, o + s), load8(x, o + t)
            v0, v1, v2, v3 = splat_at(W, w0 + k), splat_at(W, w1 + k), splat_at(W, w2 + k), splat_at(W, w3 + k)
            a0, c0 = madd8(a0, v0, xv), madd8(c0, v0, xw)
            a1, c1 = madd8(a1, v1, xv), madd8(c1, v1, xw)
            a2, c2 = madd8(a2, v2, xv), madd8(c2, v2, xw)
            a3, c3 = madd8(a3, v3, xv), madd8(c3, v3, xw)
        store8(y, ya + s, a0)
        store8(y, ya + yst + s, a1)
        store8(y, ya + 2 * yst + s, a2)
        store8(y, ya + 3 * yst + s, a3)
        store8(y, ya + t, c0)
        store8(y, ya + yst + t, c1)
        store8(y, ya + 2 * yst + t, c2)
        store8(y, ya + 3 * yst + t, c3)


@_jit
def _gather1(y, ya, b0, W, wa, offs, n, x, base, m):
    """One output as _gather4 sums it: four lane blocks at a time (four sums in registers), then the
    remaining blocks one by one."""
    nb, blk = _n_blocks(m), 0
    while blk + 4 <= nb:
        s0, s1, s2, s3 = _block(blk, m), _block(blk + 1, m), _block(blk + 2, m), _block(blk + 3, m)
        a0 = a1 = a2 = a3 = splat8(b0)
        for k in range(n):
            o, wk = base + offs[k], splat_at(W, wa + k)
            a0 = madd8(a0, wk, load8(x, o + s0))
            a1 = madd8(a1, wk, load8(x, o + s1))
            a2 = madd8(a2, wk, load8(x, o + s2))
            a3 = madd8(a3, wk, load8(x, o + s3))
        store8(y, ya + s0, a0)
        store8(y, ya + s1, a1)
        store8(y, ya + s2, a2)
        store8(y, ya + s3, a3)
        blk += 4
    for blk in range(blk, nb):
        s = _block(blk, m)
        a = splat8(b0)
        for k in range(n):
            a = madd8(a, splat_at(W, wa + k), load8(x, base + offs[k] + s))
        store8(y, ya + s, a)


@_jit
def _gather(y, ya, yst, nr, init, W, wa, wst, offs, n, x, base, m):
    """Outputs r = 0..nr-1 sharing one tap list: y[ya + r * yst + s] = init[r], then + W[wa + r * wst + k]
    * x[base + offs[k] + s] for k = 0..n-1 in turn; in fours (_gather4), the rest one by one."""
    r = 0
    while r + 4 <= nr:
        _gather4(y, ya + r * yst, yst, init[r], init[r + 1], init[r + 2], init[r + 3], W, wa + r * wst, wst,
                 offs, n, x, base, m)
        r += 4
    for r in range(r, nr):
        _gather1(y, ya + r * yst, init[r], W, wa + r * wst, offs, n, x, base, m)


@_jit
def _outer_add(D, dst, rows, A, B, nb, m):
    """D[r * dst + c] += A[r * m + s] * B[s * nb + c] for s = 0..m-1 in turn, for the rows r listed and
    every column c < nb: eight columns of four rows held in registers over all m samples, the rest of
    the rows one by one, the last nb % WIDTH columns as scalars."""
    nr, nv = rows.size, nb - nb % WIDTH
    for c in range(0, nv, WIDTH):
        q = 0
        while q + 4 <= nr:
            r0, r1, r2, r3 = rows[q], rows[q + 1], rows[q + 2], rows[q + 3]
            d0, d1, d2, d3 = r0 * dst + c, r1 * dst + c, r2 * dst + c, r3 * dst + c
            a0, a1, a2, a3 = load8(D, d0), load8(D, d1), load8(D, d2), load8(D, d3)
            for s in range(m):
                bv = load8(B, s * nb + c)
                a0 = madd8(a0, splat_at(A, r0 * m + s), bv)
                a1 = madd8(a1, splat_at(A, r1 * m + s), bv)
                a2 = madd8(a2, splat_at(A, r2 * m + s), bv)
                a3 = madd8(a3, splat_at(A, r3 * m + s), bv)
            store8(D, d0, a0)
            store8(D, d1, a1)
            store8(D, d2, a2)
            store8(D, d3, a3)
            q += 4
        for q in range(q, nr):
            r = rows[q]
            a = load8(D, r * dst + c)
            for s in range(m):
                a = madd8(a, splat_at(A, r * m + s), load8(B, s * nb + c))
            store8(D, r * dst + c, a)
    for r in rows:
        for c in range(nv, nb):
            acc = D[r * dst + c]
            for s in range(m):
                acc = acc + A[r * m + s] * B[s * nb + c]
            D[r * dst + c] = acc


@_jit
def _active_rows(active, n):
    """The indices o < n with active[o] != 0 (all of them when active is None), ascending."""
    rows = np.empty(n, np.int64)
    k = 0
    for o in range(n):
        if active is not None:
            if active[o] == 0:
                continue
        rows[k] = o
        k += 1
    return rows[:k]


# ---- gemm ---------------------------------------------------------------------------------------
@_jit
def gemm_f32_forward_lanes(x, w, b, y, n_in, n_out, m):
    """Row o of every lane: acc = b[o]; i ascending: acc += w[o][i] * x[i]."""
    if m < WIDTH:
        for s in range(m):
            ys = np.empty(n_out, np.float32)
            gemm_f32_forward(_lane(x, n_in, m, s), w, b, ys, n_in, n_out)
            _set_lane(y, n_out, m, s, ys)
        return
    x, w, y = x.reshape(-1), w.reshape(-1), y.reshape(-1)
    offs = np.arange(n_in) * m
    _gather(y, 0, m, n_out, _biases(b, n_out), w, 0, n_in, offs, n_in, x, 0, m)


@_jit
def gemm_f32_backward_input_lanes(w, dy, dx, n_in, n_out, active, m):
    """dx[i] of every lane: acc = 0; active rows o ascending: acc += w[o][i] * dy[o]."""
    if m < WIDTH:
        for s in range(m):
            dxs = np.empty(n_in, np.float32)
            gemm_f32_backward_input(w, _lane(dy, n_out, m, s), dxs, n_in, n_out, active)
            _set_lane(dx, n_in, m, s, dxs)
        return
    w, dy, dx = w.reshape(-1), dy.reshape(-1), dx.reshape(-1)
    rows = _active_rows(active, n_out)
    n = rows.size
    wT = np.empty(n_in * n, np.float32)            # the active rows' column i as row i
    for k in range(n):
        for i in range(n_in):
            wT[i * n + k] = w[rows[k] * n_in + i]
    _gather(dx, 0, m, n_in, np.zeros(n_in, np.float32), wT, 0, n, rows * m, n, dy, 0, m)


@_jit
def gemm_f32_backward_weight_lanes(x, dy, dw, db, n_in, n_out, active, m):
    """dw[o][i] += x[i] * dy[o] for s = 0..m-1 in turn (one rounding each), vectorized over the longer
    of i and o (the other operand transposed to [s][...]); then db[o] += dy[o] in sample order."""
    if m < WIDTH:
        for s in range(m):
            gemm_f32_backward_weight(_lane(x, n_in, m, s), _lane(dy, n_out, m, s), dw, db, n_in, n_out, active)
        return
    x, dy, dw = x.reshape(-1), dy.reshape(-1), dw.reshape(-1)
    rows = _active_rows(active, n_out)
    if n_in >= n_out:                  # rows of dw, i innermost
        _outer_add(dw, n_in, rows, dy, _transpose_planes(x, n_in, m), n_in, m)
    else:                              # columns of dw, o innermost (inactive rows are not copied back)
        dwT = _transpose_planes(dw, n_out, n_in)
        _outer_add(dwT, n_out, np.arange(n_in), x, _transpose_planes(dy, n_out, m), n_out, m)
        for o in rows:
            for i in range(n_in):
                dw[o * n_in + i] = dwT[i * n_out + o]
    if db is not None:
        for o in rows:
            _add_lanes_in_order(db.reshape(-1), o, dy[o * m:(o + 1) * m], m)


# ---- convolution cores ----------------------------------------------------------------------------
@_jit
def _conv_taps(w, oc0, nr, d, ky0, ky1, kx0, kx1, iy0, ix0, in_active, W, cap, offs, m):
    """Output channels oc0..oc0+nr-1's taps ic, ky in [ky0, ky1), kx in [kx0, kx1) ascending (the conv2d
    order): channel oc0 + j's weights in W[j * cap + k], the input offsets ((ic * IH + iy0 + ky) * IW
    + ix0 + kx) * m in offs; returns the count."""
    IC, IH, IW, KH, KW = d[0], d[1], d[2], d[6], d[7]
    n = 0
    for ic in range(IC):
        if in_active is not None:
            if in_active[ic] == 0:
                continue
        for ky in range(ky0, ky1):
            for kx in range(kx0, kx1):
                for j in range(nr):
                    W[j * cap + n] = w[(((oc0 + j) * IC + ic) * KH + ky) * KW + kx]
                offs[n] = ((ic * IH + iy0 + ky) * IW + ix0 + kx) * m
                n += 1
    return n


@_jit
def _conv_gather_lanes(x, w, b, y, d, in_active, m):
    """conv2d forward order per lane: acc = b[oc]; ic, ky, kx ascending over the in-bounds taps;
    w [OC][IC][KH][KW]. Four output channels at a time; per row oy the taps of the outputs whose every
    kx is in the input are listed once, as offsets from the output's first input column."""
    IC, IH, IW, OC, OH, OW, KH, KW, S, P = d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7], d[8], d[9]
    x, w, y = x.reshape(-1), w.reshape(-1), y.reshape(-1)
    cap = IC * KH * KW
    W, offs = np.empty(4 * cap, np.float32), np.empty(cap, np.int64)
    Wi, offs_i = np.empty(4 * cap, np.float32), np.empty(cap, np.int64)
    init = _biases(b, OC)
    for oc0 in range(0, OC, 4):
        nr = min(4, OC - oc0)
        for oy in range(OH):
            ky0, ky1 = _tap_range(oy, S, P, KH, IH)
            ni = _conv_taps(w, oc0, nr, d, ky0, ky1, 0, KW, oy * S - P, 0, in_active, Wi, cap, offs_i, m)
            for ox in range(OW):
                kx0, kx1 = _tap_range(ox, S, P, KW, IW)
                a = ((oc0 * OH + oy) * OW + ox) * m
                if kx0 == 0 and kx1 == KW:             # the same taps in the same order, shifted
                    _gather(y, a, OH * OW * m, nr, init[oc0:], Wi, 0, cap, offs_i, ni, x, (ox * S - P) * m, m)
                else:
                    n = _conv_taps(w, oc0, nr, d, ky0, ky1, kx0, kx1, oy * S - P, ox * S - P, in_active, W, cap,
                                   offs, m)
                    _gather(y, a, OH * OW * m, nr, init[oc0:], W, 0, cap, offs, n, x, 0, m)


@_jit
def _convt_taps(O, I, K, S, P):
    """Per output index o: the taps k ascending whose input (o + P - k) / S is exact and in [0, I),
    as n[o] pairs (k, i) in taps[o]."""
    taps = np.zeros((O, K, 2), np.int64)
    n = np.zeros(O, np.int64)
    for o in range(O):
        for k in range(K):
            t = o + P - k
            if t >= 0 and t % S == 0 and t // S < I:
                taps[o, n[o], 0] = k
                taps[o, n[o], 1] = t // S
                n[o] += 1
    return taps, n


@_jit
def _convt_classes(tx, nx, OW, S):
    """Output columns with the same taps shifted: ox and ox' share a class when their kx lists are equal
    and ix - ox // S is the same per tap. Per ox its class; per class its first ox and its least
    ix - ox // S (so every tap's offset from the column's base is >= 0)."""
    cls = np.empty(OW, np.int64)
    rep = np.empty(OW, np.int64)
    dmin = np.empty(OW, np.int64)
    n = 0
    for ox in range(OW):
        cls[ox] = -1
        for c in range(n):
            r = rep[c]
            same = nx[r] == nx[ox]
            for k in range(nx[ox]):
                if same and (tx[r, k, 0] != tx[ox, k, 0] or tx[r, k, 1] - r // S != tx[ox, k, 1] - ox // S):
                    same = False
            if same:
                cls[ox] = c
                break
        if cls[ox] < 0:
            cls[ox], rep[n], dmin[n] = n, ox, 0
            for k in range(nx[ox]):
                dmin[n] = min(dmin[n], tx[ox, k, 1] - ox // S)
            n += 1
    return cls, rep[:n], dmin[:n]


@_jit
def _convt_gather_lanes(x, w, b, y, d, in_active, m):
    """convtranspose2d forward order per lane: acc = b[oc]; ic, ky, kx ascending over the taps whose
    input iy = (oy + P - ky) / S, ix = (ox + P - kx) / S is exact and in range; w [IC][OC][KH][KW].
    Four output channels at a time; per row oy the tap list is made once per column class
    (_convt_classes), not once per output."""
    IC, IH, IW, OC, OH, OW, KH, KW, S, P = d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7], d[8], d[9]
    x, w, y = x.reshape(-1), w.reshape(-1), y.reshape(-1)
    ty, ny = _convt_taps(OH, IH, KH, S, P)
    tx, nx = _convt_taps(OW, IW, KW, S, P)
    cls, rep, dmin = _convt_classes(tx, nx, OW, S)
    ncls, cap = rep.size, IC * KH * KW
    W = np.empty((ncls, 4 * cap), np.float32)
    offs = np.empty((ncls, cap), np.int64)
    nt = np.empty(ncls, np.int64)
    init = _biases(b, OC)
    for oc0 in range(0, OC, 4):
        nr = min(4, OC - oc0)
        for oy in range(OH):
            for c in range(ncls):
                r = rep[c]
                n = 0
                for ic in range(IC):
                    if in_active is not None:
                        if in_active[ic] == 0:
                            continue
                    for j in range(ny[oy]):
                        ky, iy = ty[oy, j, 0], ty[oy, j, 1]
                        for k in range(nx[r]):
                            kx, ix = tx[r, k, 0], tx[r, k, 1]
                            for q in range(nr):
                                W[c, q * cap + n] = w[((ic * OC + oc0 + q) * KH + ky) * KW + kx]
                            offs[c, n] = ((ic * IH + iy) * IW + ix - r // S - dmin[c]) * m
                            n += 1
                nt[c] = n
            for ox in range(OW):
                c = cls[ox]
                a = ((oc0 * OH + oy) * OW + ox) * m
                _gather(y, a, OH * OW * m, nr, init[oc0:], W[c], 0, cap, offs[c], nt[c], x,
                        (ox // S + dmin[c]) * m, m)


# ---- weight gradients -----------------------------------------------------------------------------
@_jit
def _bias_grad_lanes(dy, db, OC, n_pos, active, m):
    """Per lane acc = 0; positions ascending: acc += dy[oc][p]; then db[oc] += acc in sample order."""
    if db is None:
        return
    dbf = db.reshape(-1)
    acc = np.empty(m, np.float32)
    for oc in range(OC):
        if active is not None:
            if active[oc] == 0:
                continue
        _fill(acc, ZERO, m)
        for p in range(n_pos):
            a = (oc * n_pos + p) * m
            g = dy[a:a + m]
            for s in range(m):
                acc[s] = acc[s] + g[s]
        _add_lanes_in_order(dbf, oc, acc, m)


@_jit
def _plane_sums(T, nsh, nr, X, xa0, xa1, xcy, xcx, R, ra, rcy, rcx, oy0, oy1, ox0, ox1, m):
    """One tap's per-lane sums of nr <= 4 planes against nsh <= 2 shared planes: for h < nsh, j < nr and each
    lane s, T[(4 * h + j) * m + s] = sum over oy in [oy0, oy1), ox in [ox0, ox1) ascending of
    X[(xa_h + oy * xcy + ox * xcx) * m + s] * R[(ra[j] + oy * rcy + ox * rcx) * m + s] (from +0.0). Two
    shared planes against four keep eight sums in registers (six loads for eight multiply-adds); fewer
    planes are summed four, or one, at a time."""
    for blk in range(_n_blocks(m)):
        s = _block(blk, m)
        if nr == 4:
            r0, r1, r2, r3 = ra[0] * m + s, ra[1] * m + s, ra[2] * m + s, ra[3] * m + s
            a0 = a1 = a2 = a3 = splat8(ZERO)
            if nsh == 2:
                c0 = c1 = c2 = c3 = a0
                for oy in range(oy0, oy1):
                    for ox in range(ox0, ox1):
                        o = (oy * xcy + ox * xcx) * m + s
                        xv, xw = load8(X, xa0 * m + o), load8(X, xa1 * m + o)
                        p = (oy * rcy + ox * rcx) * m
                        q0, q1, q2, q3 = load8(R, r0 + p), load8(R, r1 + p), load8(R, r2 + p), load8(R, r3 + p)
                        a0, c0 = madd8(a0, xv, q0), madd8(c0, xw, q0)
                        a1, c1 = madd8(a1, xv, q1), madd8(c1, xw, q1)
                        a2, c2 = madd8(a2, xv, q2), madd8(c2, xw, q2)
                        a3, c3 = madd8(a3, xv, q3), madd8(c3, xw, q3)
                store8(T, 4 * m + s, c0)
                store8(T, 5 * m + s, c1)
                store8(T, 6 * m + s, c2)
                store8(T, 7 * m + s, c3)
            else:
                for oy in range(oy0, oy1):
                    for ox in range(ox0, ox1):
                        xv = load8(X, (xa0 + oy * xcy + ox * xcx) * m + s)
                        p = (oy * rcy + ox * rcx) * m
                        a0 = madd8(a0, xv, load8(R, r0 + p))
                        a1 = madd8(a1, xv, load8(R, r1 + p))
                        a2 = madd8(a2, xv, load8(R, r2 + p))
                        a3 = madd8(a3, xv, load8(R, r3 + p))
            store8(T, s, a0)
            store8(T, m + s, a1)
            store8(T, 2 * m + s, a2)
            store8(T, 3 * m + s, a3)
        else:
            for h in range(nsh):
                xa = xa1 if h else xa0
                for j in range(nr):
                    a = splat8(ZERO)
                    for oy in range(oy0, oy1):
                        for ox in range(ox0, ox1):
                            a = madd8(a, load8(X, (xa + oy * xcy + ox * xcx) * m + s),
                                      load8(R, (ra[j] + oy * rcy + ox * rcx) * m + s))
                    store8(T, (4 * h + j) * m + s, a)


@_jit
def _weight_grad_lanes(x, dy, dw, db, d, active, m, transposed):
    """dw += (per lane: the nn.h weight-plane sum), in sample order, for every (oc, ic) pair. The plane
    sum of tap (ky, kx): for oy, ox ascending with iy = oy*S - P + ky, ix = ox*S - P + kx inside the
    strided plane, acc += strided[iy][ix] * map[oy][ox]. conv2d: the strided plane is x[ic], the map
    dy[oc], w [OC][IC][KH][KW], four output channels against two x[ic]; convtranspose2d (`transposed`):
    the strided plane is dy[oc], the map x[ic], w [IC][OC][KH][KW] (as the C), four input channels'
    maps against two dy[oc]."""
    IC, IH, IW, OC, OH, OW, KH, KW, S, P = d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7], d[8], d[9]
    x, dy, dw = x.reshape(-1), dy.reshape(-1), dw.reshape(-1)
    _bias_grad_lanes(dy, db, OC, OH * OW, active, m)
    if transposed:      # shared: dy[oc] (strided, OH x OW); blocked: x[ic] (maps, IH x IW)
        shared, nsh, blocked = _active_rows(active, OC), OC, np.arange(IC)
        X, SH, SW, R, MH, MW = dy, OH, OW, x, IH, IW
    else:               # shared: x[ic] (strided, IH x IW); blocked: dy[oc] (maps, OH x OW)
        shared, nsh, blocked = np.arange(IC), IC, _active_rows(active, OC)
        X, SH, SW, R, MH, MW = x, IH, IW, dy, OH, OW
    T = np.empty(8 * m, np.float32)
    ra = np.empty(4, np.int64)
    dwa = np.empty(8, np.int64)
    for h0 in range(0, shared.size, 2):
        ns = min(2, shared.size - h0)
        c0, c1 = shared[h0], shared[h0 + ns - 1]
        for q0 in range(0, blocked.size, 4):
            nr = min(4, blocked.size - q0)
            for j in range(nr):
                cb = blocked[q0 + j]
                ra[j] = cb * MH * MW
                dwa[j] = (cb * nsh + c0) * KH * KW       # [oc][ic] (conv2d) or [ic][oc] (transposed)
                dwa[4 + j] = (cb * nsh + c1) * KH * KW
            for ky in range(KH):
                oy0, oy1 = _valid_range(ky - P, S, SH)
                oy1 = min(oy1, MH)
                for kx in range(KW):
                    ox0, ox1 = _valid_range(kx - P, S, SW)
                    ox1 = min(ox1, MW)
                    tap = (ky - P) * SW + kx - P
                    _plane_sums(T, ns, nr, X, c0 * SH * SW + tap, c1 * SH * SW + tap, S * SW, S, R, ra, MW, 1,
                                oy0, oy1, ox0, ox1, m)
                    for h in range(ns):
                        _add_rows_in_order(dw, dwa[4 * h:4 * h + 4], ky * KW + kx, T[4 * h * m:(4 * h + 4) * m], nr, m)


@_jit
def _conv_forward_by_sample(x, w, b, y, d, m, transposed):
    """Below WIDTH lanes: the one-sample conv2d (or convtranspose2d) forward twin lane by lane."""
    for s in range(m):
        ys = np.empty(d[3] * d[4] * d[5], np.float32)
        if transposed:
            convtranspose2d_f32_forward(_lane(x, d[0] * d[1] * d[2], m, s), w, b, ys, d)
        else:
            conv2d_f32_forward(_lane(x, d[0] * d[1] * d[2], m, s), w, b, ys, d)
        _set_lane(y, d[3] * d[4] * d[5], m, s, ys)


@_jit
def _conv_backward_input_by_sample(w, dy, dx, d, active, m, transposed):
    for s in range(m):
        dxs = np.empty(d[0] * d[1] * d[2], np.float32)
        if transposed:
            convtranspose2d_f32_backward_input(w, _lane(dy, d[3] * d[4] * d[5], m, s), dxs, d, active)
        else:
            conv2d_f32_backward_input(w, _lane(dy, d[3] * d[4] * d[5], m, s), dxs, d, active)
        _set_lane(dx, d[0] * d[1] * d[2], m, s, dxs)


@_jit
def _conv_backward_weight_by_sample(x, dy, dw, db, d, active, m, transposed):
    for s in range(m):
        xs, dys = _lane(x, d[0] * d[1] * d[2], m, s), _lane(dy, d[3] * d[4] * d[5], m, s)
        if transposed:
            convtranspose2d_f32_backward_weight(xs, dys, dw, db, d, active)
        else:
            conv2d_f32_backward_weight(xs, dys, dw, db, d, active)


# ---- conv2d -------------------------------------------------------------------------------------
@_jit
def conv2d_f32_forward_lanes(x, w, b, y, d, m):
    if m < WIDTH:
        _conv_forward_by_sample(x, w, b, y, d, m, False)
        return
    _conv_gather_lanes(x, w, b, y, d, None, m)


@_jit
def conv2d_f32_backward_input_lanes(w, dy, dx, d, active, m):
    if m < WIDTH:
        _conv_backward_input_by_sample(w, dy, dx, d, active, m, False)
        return
    _convt_gather_lanes(dy, w, None, dx, _swap(d), active, m)


@_jit
def conv2d_f32_backward_weight_lanes(x, dy, dw, db, d, active, m):
    """dw[oc][ic][ky][kx] += (per lane: sum over output positions ascending of x * dy), in sample order."""
    if m < WIDTH:
        _conv_backward_weight_by_sample(x, dy, dw, db, d, active, m, False)
        return
    _weight_grad_lanes(x, dy, dw, db, d, active, m, False)


# ---- convtranspose2d ----------------------------------------------------------------------------
@_jit
def convtranspose2d_f32_forward_lanes(x, w, b, y, d, m):
    if m < WIDTH:
        _conv_forward_by_sample(x, w, b, y, d, m, True)
        return
    _convt_gather_lanes(x, w, b, y, d, None, m)


@_jit
def convtranspose2d_f32_backward_input_lanes(w, dy, dx, d, active, m):
    if m < WIDTH:
        _conv_backward_input_by_sample(w, dy, dx, d, active, m, True)
        return
    _conv_gather_lanes(dy, w, None, dx, _swap(d), active, m)


@_jit
def convtranspose2d_f32_backward_weight_lanes(x, dy, dw, db, d, active, m):
    """dw[ic][oc][ky][kx] += (per lane: sum over input positions ascending of x * dy), in sample order."""
    if m < WIDTH:
        _conv_backward_weight_by_sample(x, dy, dw, db, d, active, m, True)
        return
    _weight_grad_lanes(x, dy, dw, db, d, active, m, True)


# ---- elementwise: the one-sample twins over all n * m values ------------------------------------
@_jit
def relu_f32_forward_lanes(x, y, n, m):
    """relu_f32_forward over the n * m values, eight at a time (x may be y: each block is read, then written)."""
    x, y = x.reshape(-1), y.reshape(-1)
    nv = n * m - n * m % WIDTH
    for i in range(0, nv, WIDTH):
        store8(y, i, relu8(load8(x, i)))
    relu_f32_forward(x[nv:], y[nv:], n * m - nv)


@_jit
def relu_f32_backward_lanes(y, dy, dx, n, m):
    """relu_f32_backward over the n * m values, eight at a time (dx may be dy)."""
    y, dy, dx = y.reshape(-1), dy.reshape(-1), dx.reshape(-1)
    nv = n * m - n * m % WIDTH
    for i in range(0, nv, WIDTH):
        store8(dx, i, relu_backward8(load8(y, i), load8(dy, i)))
    relu_f32_backward(y[nv:], dy[nv:], dx[nv:], n * m - nv)


@_jit
def sigmoid_f32_forward_lanes(x, y, n, m):
    sigmoid_f32_forward(x, y, n * m)


@_jit
def pixels_f32_forward_lanes(pixels, x, n, m):
    pixels_f32_forward(pixels, x, n * m)


@_jit
def reparameterize_f32_forward_lanes(mu, log_sigma, eps, z, n, m):
    reparameterize_f32_forward(mu, log_sigma, eps, z, n * m)


@_jit
def reparameterize_f32_backward_lanes(log_sigma, eps, dz, dmu, dlog_sigma, n, m):
    reparameterize_f32_backward(log_sigma, eps, dz, dmu, dlog_sigma, n * m)


@_jit
def elbo_f32_backward_lanes(logits, pixels, mu, log_sigma, dlogits, dmu, dlog_sigma, n_pixels, n_latent, m):
    elbo_f32_backward(logits, pixels, mu, log_sigma, dlogits, dmu, dlog_sigma, n_pixels * m, n_latent * m)


@_jit
def elbo_f32_forward_lanes(logits, pixels, mu, log_sigma, n_pixels, n_latent, m):
    """The per-sample negative ELBOs, [m]: each lane's sums in pixel order, then its KL. The pixel terms
    are formed for all lanes at once and then added pixel by pixel into every lane's sum (vectorized over
    the lanes; per lane the same additions in the same order as a loop over its pixels)."""
    rec = np.zeros(m, np.float32)
    e = np.empty(m, np.float32)
    for i in range(n_pixels):
        z, t = logits[i * m:(i + 1) * m], pixels[i * m:(i + 1) * m]
        for s in range(m):                     # bce_logit's steps, one loop each so that each vectorizes
            e[s] = expf(neg_abs(z[s]))
        for s in range(m):
            e[s] = logf_normal(ONE + e[s])
        for s in range(m):
            rec[s] = rec[s] + bce_combine(z[s], np.float32(t[s]) * INV255, e[s])
    losses = np.empty(m, np.float32)
    for s in range(m):
        mu_s = np.empty(n_latent, np.float32)
        ls_s = np.empty(n_latent, np.float32)
        for j in range(n_latent):
            mu_s[j] = mu[j * m + s]
            ls_s[j] = log_sigma[j * m + s]
        losses[s] = rec[s] + HALF * kl_normal(mu_s, ls_s, n_latent)
    return losses
