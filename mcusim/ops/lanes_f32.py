"""Batch-lane Numba twins of the fp32 training step: the kernels of mcusim/ops/layers_f32.py and
train_f32.py run on m samples side by side, bit for bit as m calls of the one-sample twin in sample
order (so, as the C on the MCU).

Layout: a per-sample tensor of n elements holds its m lanes as n rows of m, x[i * m + s] (sample s,
element i); weights, gradients and the other tensors shared by the samples are laid out as in C.
Every lane twin has its one-sample twin's name plus "_lanes", the same arguments and `m` last.

Why the bits stay the same: each output element of one sample is summed in the order nn.h documents,
one lane per sample, and the innermost loops run over the lanes, which are independent (LLVM
vectorizes them; no fastmath, no FMA, float32 throughout, as in mcusim/ops/nn_math.py). Gradients
are the one place where samples meet: the C adds each sample's term to a gradient element in sample
order, so the lane twins form every sample's term first (a product, or a whole per-sample partial sum)
and then add the terms to the element for s = 0, 1, ..., m - 1, exactly as m calls would.
The lane twins are serial: several threads each run a part of the batch's lanes (mcusim/host_threads.py).
"""
from __future__ import annotations

import numpy as np
from numba import njit

from .layers_f32 import _swap, _tap_range, _transpose_planes, _valid_range
from .nn_math import expf, logf_normal
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
def _fill(row, v, m):
    for s in range(m):
        row[s] = v


@_jit
def _axpy(acc, a, x, m):
    """acc[s] = acc[s] + a * x[s], lane by lane (one multiply, one add each: the kernels' step)."""
    for s in range(m):
        acc[s] = acc[s] + a * x[s]


@_jit
def _axpy4(acc, a0, o0, a1, o1, a2, o2, a3, o3, x, m):
    """Four _axpy steps in one pass over the lanes, acc[s] += a_j * x[o_j + s] for j = 0..3 in turn.
    Offsets and m are unsigned, so the indexing needs no negative-index check and the loop vectorizes."""
    for s in range(m):
        acc[s] = (((acc[s] + a0 * x[o0 + s]) + a1 * x[o1 + s]) + a2 * x[o2 + s]) + a3 * x[o3 + s]


@_jit
def _axpy8(acc, ws, offs, k, base, x, m):
    """Eight _axpy steps in one pass over the lanes: acc[s] += ws[k + j] * x[base + offs[k + j] + s] for
    j = 0..7 in turn (base, offs, m unsigned: no negative-index check, the loop vectorizes)."""
    a0, a1, a2, a3, a4, a5, a6, a7 = ws[k], ws[k + 1], ws[k + 2], ws[k + 3], ws[k + 4], ws[k + 5], ws[k + 6], ws[k + 7]
    o0, o1, o2, o3 = base + offs[k], base + offs[k + 1], base + offs[k + 2], base + offs[k + 3]
    o4, o5, o6, o7 = base + offs[k + 4], base + offs[k + 5], base + offs[k + 6], base + offs[k + 7]
    for s in range(m):
        acc[s] = (((((((acc[s] + a0 * x[o0 + s]) + a1 * x[o1 + s]) + a2 * x[o2 + s]) + a3 * x[o3 + s])
                    + a4 * x[o4 + s]) + a5 * x[o5 + s]) + a6 * x[o6 + s]) + a7 * x[o7 + s]


@_jit
def _gather(acc, ws, offs, n, x, m, base=0):
    """acc[s] = acc[s] + ws[k] * x[base + offs[k] + s] for k = 0..n-1 in turn (offs: uint64), eight, then
    four taps per pass over the lanes: a pass costs about as much for eight terms as for one."""
    mu, b = np.uint64(m), np.uint64(base)
    k = 0
    while k + 8 <= n:
        _axpy8(acc, ws, offs, k, b, x, mu)
        k += 8
    if k + 4 <= n:
        _axpy4(acc, ws[k], b + offs[k], ws[k + 1], b + offs[k + 1], ws[k + 2], b + offs[k + 2], ws[k + 3],
               b + offs[k + 3], x, mu)
        k += 4
    while k < n:
        o = b + offs[k]
        _axpy(acc, ws[k], x[o:o + mu], m)
        k += 1


@_jit
def _add_lanes_in_order(g, k, terms, m):
    """g[k] = (((g[k] + terms[0]) + terms[1]) + ...): sample s's term added as its call would."""
    acc = g[k]
    for s in range(m):
        acc = acc + terms[s]
    g[k] = acc


# ---- gemm ---------------------------------------------------------------------------------------
@_jit
def gemm_f32_forward_lanes(x, w, b, y, n_in, n_out, m):
    """Row o of every lane: acc = b[o]; i ascending: acc += w[o][i] * x[i]."""
    x, w, y = x.reshape(-1), w.reshape(-1), y.reshape(-1)
    offs = (np.arange(n_in) * m).astype(np.uint64)
    for o in range(n_out):
        acc = y[o * m:(o + 1) * m]
        b0 = ZERO
        if b is not None:
            b0 = b.reshape(-1)[o]
        _fill(acc, b0, m)
        _gather(acc, w[o * n_in:(o + 1) * n_in], offs, n_in, x, m)


@_jit
def gemm_f32_backward_input_lanes(w, dy, dx, n_in, n_out, active, m):
    """dx[i] of every lane: acc = 0; active rows o ascending: acc += w[o][i] * dy[o]."""
    w, dy, dx = w.reshape(-1), dy.reshape(-1), dx.reshape(-1)
    ws = np.empty(n_out, np.float32)
    offs = np.empty(n_out, np.uint64)
    for i in range(n_in):
        acc = dx[i * m:(i + 1) * m]
        _fill(acc, ZERO, m)
        n = 0
        for o in range(n_out):
            if active is not None:
                if active[o] == 0:
                    continue
            ws[n], offs[n] = w[o * n_in + i], o * m
            n += 1
        _gather(acc, ws, offs, n, dy, m)


@_jit
def gemm_f32_backward_weight_lanes(x, dy, dw, db, n_in, n_out, active, m):
    """dw[o][i] += x[i] * dy[o] for s = 0..m-1 in turn (one rounding each), vectorized over the longer
    of i and o (the other operand transposed to [s][...]); then db[o] += dy[o] in sample order."""
    x, dy, dw = x.reshape(-1), dy.reshape(-1), dw.reshape(-1)
    if n_in >= n_out:                  # rows of dw, i innermost
        xT = _transpose_planes(x, n_in, m)
        for o in range(n_out):
            if active is not None:
                if active[o] == 0:
                    continue
            row = dw[o * n_in:(o + 1) * n_in]
            for s in range(m):
                _axpy(row, dy[o * m + s], xT[s * n_in:(s + 1) * n_in], n_in)
    else:                              # columns of dw, o innermost (inactive rows keep their values)
        dyT = _transpose_planes(dy, n_out, m)
        dwT = _transpose_planes(dw, n_out, n_in)
        for i in range(n_in):
            col = dwT[i * n_out:(i + 1) * n_out]
            for s in range(m):
                xv = x[i * m + s]
                g = dyT[s * n_out:(s + 1) * n_out]
                if active is None:
                    _axpy(col, xv, g, n_out)
                else:
                    for o in range(n_out):
                        if active[o] != 0:
                            col[o] = col[o] + g[o] * xv
        for o in range(n_out):
            for i in range(n_in):
                dw[o * n_in + i] = dwT[i * n_out + o]
    if db is not None:
        for o in range(n_out):
            if active is not None:
                if active[o] == 0:
                    continue
            _add_lanes_in_order(db.reshape(-1), o, dy[o * m:(o + 1) * m], m)


# ---- convolution cores ----------------------------------------------------------------------------
@_jit
def _conv_tap_list(w, oc, d, ky0, ky1, kx0, kx1, iy0, ix0, in_active, ws, offs, m):
    """Output channel oc's taps ic, ky in [ky0, ky1), kx in [kx0, kx1) ascending (the conv2d order): their
    weights in ws, their input offsets ((ic * IH + iy0 + ky) * IW + ix0 + kx) * m in offs; returns the count."""
    IC, IH, IW, KH, KW = d[0], d[1], d[2], d[6], d[7]
    n = 0
    for ic in range(IC):
        if in_active is not None:
            if in_active[ic] == 0:
                continue
        for ky in range(ky0, ky1):
            for kx in range(kx0, kx1):
                ws[n] = w[((oc * IC + ic) * KH + ky) * KW + kx]
                offs[n] = ((ic * IH + iy0 + ky) * IW + ix0 + kx) * m
                n += 1
    return n


@_jit
def _conv_gather_lanes(x, w, b, y, d, in_active, m):
    """conv2d forward order per lane: acc = b[oc]; ic, ky, kx ascending over the in-bounds taps;
    w [OC][IC][KH][KW]. Per (oc, oy) the taps of the outputs whose every kx is in the input are listed
    once, as offsets from the output's first input column."""
    IC, IH, IW, OC, OH, OW, KH, KW, S, P = d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7], d[8], d[9]
    x, w, y = x.reshape(-1), w.reshape(-1), y.reshape(-1)
    ws = np.empty(IC * KH * KW, np.float32)
    offs = np.empty(IC * KH * KW, np.uint64)
    wi = np.empty(IC * KH * KW, np.float32)
    ri = np.empty(IC * KH * KW, np.uint64)
    for oc in range(OC):
        b0 = ZERO
        if b is not None:
            b0 = b.reshape(-1)[oc]
        for oy in range(OH):
            ky0, ky1 = _tap_range(oy, S, P, KH, IH)
            ni = _conv_tap_list(w, oc, d, ky0, ky1, 0, KW, oy * S - P, 0, in_active, wi, ri, m)
            for ox in range(OW):
                kx0, kx1 = _tap_range(ox, S, P, KW, IW)
                a = ((oc * OH + oy) * OW + ox) * m
                acc = y[a:a + m]
                _fill(acc, b0, m)
                if kx0 == 0 and kx1 == KW:             # the same taps in the same order, shifted
                    _gather(acc, wi, ri, ni, x, m, (ox * S - P) * m)
                else:
                    n = _conv_tap_list(w, oc, d, ky0, ky1, kx0, kx1, oy * S - P, ox * S - P, in_active, ws, offs, m)
                    _gather(acc, ws, offs, n, x, m)


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
    Per (oc, oy) the tap list is made once per column class (_convt_classes), not once per output."""
    IC, IH, IW, OC, OH, OW, KH, KW, S, P = d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7], d[8], d[9]
    x, w, y = x.reshape(-1), w.reshape(-1), y.reshape(-1)
    ty, ny = _convt_taps(OH, IH, KH, S, P)
    tx, nx = _convt_taps(OW, IW, KW, S, P)
    cls, rep, dmin = _convt_classes(tx, nx, OW, S)
    ncls = rep.size
    ws = np.empty((ncls, IC * KH * KW), np.float32)
    offs = np.empty((ncls, IC * KH * KW), np.uint64)
    nt = np.empty(ncls, np.int64)
    for oc in range(OC):
        b0 = ZERO
        if b is not None:
            b0 = b.reshape(-1)[oc]
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
                            ws[c, n] = w[((ic * OC + oc) * KH + ky) * KW + kx]
                            offs[c, n] = ((ic * IH + iy) * IW + ix - r // S - dmin[c]) * m
                            n += 1
                nt[c] = n
            for ox in range(OW):
                c = cls[ox]
                a = ((oc * OH + oy) * OW + ox) * m
                acc = y[a:a + m]
                _fill(acc, b0, m)
                _gather(acc, ws[c], offs[c], nt[c], x, m, (ox // S + dmin[c]) * m)


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
def _weight_plane_lanes(xc, g, IH, IW, OH, OW, KH, KW, S, P, dw, dw0, m):
    """The nn.h weight-plane order per lane: for ky, kx: acc = 0; for oy, ox with iy = oy*S - P + ky,
    ix = ox*S - P + kx in the input: acc += xc[iy][ix] * g[oy][ox]; then dw[dw0 + ky*KW + kx] += acc
    in sample order. xc, g: one channel's plane, [pos][m]."""
    acc = np.empty(m, np.float32)
    for ky in range(KH):
        oy0, oy1 = _valid_range(ky - P, S, IH)
        oy1 = min(oy1, OH)
        for kx in range(KW):
            ox0, ox1 = _valid_range(kx - P, S, IW)
            ox1 = min(ox1, OW)
            _fill(acc, ZERO, m)
            for oy in range(oy0, oy1):
                for ox in range(ox0, ox1):
                    xi = ((oy * S - P + ky) * IW + ox * S - P + kx) * m
                    gi = (oy * OW + ox) * m
                    xr = xc[xi:xi + m]
                    gr = g[gi:gi + m]
                    for s in range(m):
                        acc[s] = acc[s] + xr[s] * gr[s]
            _add_lanes_in_order(dw, dw0 + ky * KW + kx, acc, m)


# ---- conv2d -------------------------------------------------------------------------------------
@_jit
def conv2d_f32_forward_lanes(x, w, b, y, d, m):
    _conv_gather_lanes(x, w, b, y, d, None, m)


@_jit
def conv2d_f32_backward_input_lanes(w, dy, dx, d, active, m):
    _convt_gather_lanes(dy, w, None, dx, _swap(d), active, m)


@_jit
def _weight_grad_lanes(x, dy, dw, db, d, active, m, transposed):
    """dw += (per lane: the nn.h weight-plane sum), in sample order, for every (oc, ic) pair. conv2d:
    the strided plane is x[ic], the gradient map dy[oc], w [OC][IC][KH][KW]; convtranspose2d
    (`transposed`): the strided plane is dy[oc], the map x[ic], w [IC][OC][KH][KW] (as the C)."""
    IC, IH, IW, OC, OH, OW, KH, KW, S, P = d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7], d[8], d[9]
    x, dy, dw = x.reshape(-1), dy.reshape(-1), dw.reshape(-1)
    _bias_grad_lanes(dy, db, OC, OH * OW, active, m)
    for j in range(OC * IC):
        oc, ic = j // IC, j % IC
        if active is not None:
            if active[oc] == 0:
                continue
        xp = x[ic * IH * IW * m:(ic + 1) * IH * IW * m]
        gp = dy[oc * OH * OW * m:(oc + 1) * OH * OW * m]
        if transposed:
            _weight_plane_lanes(gp, xp, OH, OW, IH, IW, KH, KW, S, P, dw, (ic * OC + oc) * KH * KW, m)
        else:
            _weight_plane_lanes(xp, gp, IH, IW, OH, OW, KH, KW, S, P, dw, (oc * IC + ic) * KH * KW, m)


@_jit
def conv2d_f32_backward_weight_lanes(x, dy, dw, db, d, active, m):
    """dw[oc][ic][ky][kx] += (per lane: sum over output positions ascending of x * dy), in sample order."""
    _weight_grad_lanes(x, dy, dw, db, d, active, m, False)


# ---- convtranspose2d ----------------------------------------------------------------------------
@_jit
def convtranspose2d_f32_forward_lanes(x, w, b, y, d, m):
    _convt_gather_lanes(x, w, b, y, d, None, m)


@_jit
def convtranspose2d_f32_backward_input_lanes(w, dy, dx, d, active, m):
    _conv_gather_lanes(dy, w, None, dx, _swap(d), active, m)


@_jit
def convtranspose2d_f32_backward_weight_lanes(x, dy, dw, db, d, active, m):
    """dw[ic][oc][ky][kx] += (per lane: sum over input positions ascending of x * dy), in sample order."""
    _weight_grad_lanes(x, dy, dw, db, d, active, m, True)


# ---- elementwise: the one-sample twins over all n * m values ------------------------------------
@_jit
def relu_f32_forward_lanes(x, y, n, m):
    relu_f32_forward(x, y, n * m)


@_jit
def relu_f32_backward_lanes(y, dy, dx, n, m):
    relu_f32_backward(y, dy, dx, n * m)


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
