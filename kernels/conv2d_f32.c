/* conv2d_f32.c: 2-D convolution, fp32, forward and backward, one sample at a time.
 * Contracts and summation orders: kernels/include/nn.h; Numba twin: mcusim/ops/layers_f32.py.
 *
 * The strided gather core here also serves convtranspose2d_f32_backward_input, and the backward input
 * of this operator is the transposed-convolution core of convtranspose2d_f32.c.
 * Speed: the valid kernel window (padding) is computed once per output row / column, so the inner
 * loops carry no bounds checks; four output channels (gather) or four input channels (weight
 * gradient) share each activation load. The float order of every element is the documented one. */
#include "nn.h"

/* One output pixel of NB (4 or 1) output channels: for ic (active), ky < NKY, kx < NKX,
 * acc_j += w[oc + j][ic][ky0 + ky][kx0 + kx] * x[ic][iy0 + ky0 + ky][ix0 + kx0 + kx], in that order.
 * xb points at the first tap of channel 0, wb at the first tap of output channel oc, input channel 0.
 * Always inlined: called with constant NKY / NKX / KW / KK (fully unrolled taps, immediate offsets)
 * for the common windows, and with run-time values as the general fallback. */
static inline __attribute__((always_inline)) void nn__conv_pixel(
        const float *xb, const float *wb, float *acc, const uint8_t *in_active, int32_t IC, int32_t XPLANE,
        int32_t IW, int32_t WO, const int32_t NB, const int32_t NKY, const int32_t NKX, const int32_t KW,
        const int32_t KK) {
    float a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
    for (int32_t ic = 0; ic < IC; ++ic, xb += XPLANE, wb += KK) {
        if (in_active && !in_active[ic]) continue;
        const float *w1 = wb + WO;
        const float *w2 = w1 + WO;
        const float *w3 = w2 + WO;
        const float *xr = xb;
        for (int32_t ky = 0; ky < NKY; ++ky, xr += IW) {
            for (int32_t kx = 0; kx < NKX; ++kx) {
                const float xv = xr[kx];
                const int32_t o = ky * KW + kx;
                a0 = a0 + wb[o] * xv;
                if (NB == 4) {
                    a1 = a1 + w1[o] * xv;
                    a2 = a2 + w2[o] * xv;
                    a3 = a3 + w3[o] * xv;
                }
            }
        }
    }
    acc[0] = a0; acc[1] = a1; acc[2] = a2; acc[3] = a3;
}

/* Constant-window instances, each its own small function: clean register allocation and a hot loop
 * that fits the 1 KB ART instruction cache. Name: nn__cv<NB>_k<KH>x<KW>_<NKY>x<NKX>. */
#define NN__CONV_INST(NB_, KH_, KW_, NKY_, NKX_)                                                     \
    static __attribute__((noinline)) void nn__cv##NB_##_k##KH_##x##KW_##_##NKY_##x##NKX_(            \
            const float *xb, const float *wb, float *acc, const uint8_t *in_active, int32_t IC,       \
            int32_t XPLANE, int32_t IW, int32_t WO) {                                                 \
        nn__conv_pixel(xb, wb, acc, in_active, IC, XPLANE, IW, WO, NB_, NKY_, NKX_, KW_, (KH_) * (KW_)); \
    }
#define NN__CONV_INSTS(NB_)                                                                          \
    NN__CONV_INST(NB_, 3, 3, 3, 3) NN__CONV_INST(NB_, 3, 3, 2, 3)                                    \
    NN__CONV_INST(NB_, 3, 3, 3, 2) NN__CONV_INST(NB_, 3, 3, 2, 2)                                    \
    NN__CONV_INST(NB_, 4, 4, 4, 4) NN__CONV_INST(NB_, 4, 4, 3, 4)                                    \
    NN__CONV_INST(NB_, 4, 4, 4, 3) NN__CONV_INST(NB_, 4, 4, 3, 3)
NN__CONV_INSTS(4)
NN__CONV_INSTS(1)

static __attribute__((noinline)) void nn__cv_any(const float *xb, const float *wb, float *acc,
        const uint8_t *in_active, int32_t IC, int32_t XPLANE, int32_t IW, int32_t WO, int32_t nb, int32_t nky,
        int32_t nkx, int32_t KW, int32_t KK) {
    if (nb == 4) nn__conv_pixel(xb, wb, acc, in_active, IC, XPLANE, IW, WO, 4, nky, nkx, KW, KK);
    else nn__conv_pixel(xb, wb, acc, in_active, IC, XPLANE, IW, WO, 1, nky, nkx, KW, KK);
}

#define NN__CONV_TRY(NB_, KH_, KW_, NKY_, NKX_)                                                    \
    else if (KH == (KH_) && KW == (KW_) && nky == (NKY_) && nkx == (NKX_))                         \
        nn__cv##NB_##_k##KH_##x##KW_##_##NKY_##x##NKX_(xb, wb, acc, in_active, IC, XPLANE, IW, WO)

#define NN__CONV_DISPATCH(NB_)                                                                       \
    if (0) {}                                                                                        \
    NN__CONV_TRY(NB_, 3, 3, 3, 3); NN__CONV_TRY(NB_, 3, 3, 2, 3);                                    \
    NN__CONV_TRY(NB_, 3, 3, 3, 2); NN__CONV_TRY(NB_, 3, 3, 2, 2);                                    \
    NN__CONV_TRY(NB_, 4, 4, 4, 4); NN__CONV_TRY(NB_, 4, 4, 3, 4);                                    \
    NN__CONV_TRY(NB_, 4, 4, 4, 3); NN__CONV_TRY(NB_, 4, 4, 3, 3);                                    \
    else nn__cv_any(xb, wb, acc, in_active, IC, XPLANE, IW, WO, NB_, nky, nkx, KW, KK)

void nn__conv2d_f32_gather(const float *x, const float *w, const float *b, float *y, const nn_conv_dims *d,
                           const uint8_t *in_active) {
    const int32_t IC = d->in_c, IH = d->in_h, IW = d->in_w;
    const int32_t OC = d->out_c, OH = d->out_h, OW = d->out_w;
    const int32_t KH = d->k_h, KW = d->k_w, S = d->stride, P = d->pad;
    const int32_t KK = KH * KW, WO = IC * KK, XPLANE = IH * IW, YPLANE = OH * OW;

    int32_t oc = 0;
    while (oc < OC) {
        const int32_t nb = (OC - oc >= 4) ? 4 : 1;       /* channels in this block */
        float bias[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        if (b) {
            for (int32_t j = 0; j < nb; ++j) bias[j] = b[oc + j];
        }
        float *y0 = y + oc * YPLANE;
        for (int32_t oy = 0; oy < OH; ++oy) {
            const int32_t iy0 = oy * S - P;
            const int32_t ky0 = iy0 < 0 ? -iy0 : 0;
            const int32_t ky1 = (IH - iy0 < KH) ? IH - iy0 : KH;
            const int32_t nky = ky1 - ky0;
            for (int32_t ox = 0; ox < OW; ++ox) {
                const int32_t ix0 = ox * S - P;
                const int32_t kx0 = ix0 < 0 ? -ix0 : 0;
                const int32_t kx1 = (IW - ix0 < KW) ? IW - ix0 : KW;
                const int32_t nkx = kx1 - kx0;
                const float *xb = x + (iy0 + ky0) * IW + ix0 + kx0;
                const float *wb = w + oc * WO + ky0 * KW + kx0;
                float acc[4] = {bias[0], bias[1], bias[2], bias[3]};
                if (nky > 0 && nkx > 0) {
                    if (nb == 4) {
                        NN__CONV_DISPATCH(4);
                    } else {
                        NN__CONV_DISPATCH(1);
                    }
                }
                float *yp = y0 + oy * OW + ox;
                yp[0] = acc[0];
                for (int32_t j = 1; j < nb; ++j) yp[j * YPLANE] = acc[j];
            }
        }
        oc += nb;
    }
}

#undef NN__CONV_TRY
#undef NN__CONV_DISPATCH
#undef NN__CONV_INST
#undef NN__CONV_INSTS

void conv2d_f32_forward(const float *x, const float *w, const float *b, float *y, const nn_conv_dims *d) {
    nn__conv2d_f32_gather(x, w, b, y, d, (const uint8_t *)0);
}

void conv2d_f32_backward_input(const float *w, const float *dy, float *dx, const nn_conv_dims *d,
                               const uint8_t *active) {
    /* dx = transposed convolution of dy with the same weights: conv [OC][IC] is convT [in][out]. */
    nn_conv_dims t = nn__conv_dims_swap(d);
    nn__convtranspose2d_f32_gather(dy, w, (const float *)0, dx, &t, active);
}

/* Range of output indices o in [0, n_out) whose input index o*S - P + k lies in [0, n_in):
 * [*lo, *hi). */
static inline void nn__valid_range(int32_t k, int32_t S, int32_t P, int32_t n_in, int32_t n_out,
                                   int32_t *lo, int32_t *hi) {
    int32_t a = 0;
    while (a < n_out && a * S - P + k < 0) ++a;
    int32_t e = n_out;
    while (e > a && (e - 1) * S - P + k >= n_in) --e;
    *lo = a;
    *hi = e;
}

/* Weight-gradient rows ky = r0 .. r0+R_-1 (all kx < KW_) of NG_ (1 or 2) gradient maps sharing the same
 * strided input plane xc: NG_ * R_ * KW_ accumulators in registers, one pass over the output pixels
 * (oy, ox ascending); each pixel adds its in-bounds taps, acc_j[ky][kx] += xc[iy][ix] * g_j[oy][ox].
 * Interior pixels take the unrolled path without checks; border pixels test each tap against bit masks
 * of the valid rows / columns. Splitting the rows into passes does not change any accumulator's order. */
static inline __attribute__((always_inline)) void nn__weight_rows(
        const float *xc, int32_t IH, int32_t IW, const float *g0, const float *g1, int32_t OH, int32_t OW,
        int32_t S, int32_t P, float *dw0, float *dw1, int32_t r0, const int32_t NG_, const int32_t R_,
        const int32_t KW_) {
    float acc0[16], acc1[16];
    for (int32_t k = 0; k < R_ * KW_; ++k) { acc0[k] = 0.0f; acc1[k] = 0.0f; }
    const uint32_t full_r = (1u << R_) - 1u, full_c = (1u << KW_) - 1u;
    for (int32_t oy = 0; oy < OH; ++oy) {
        const int32_t iy0 = oy * S - P + r0;              /* input row of tap row r0 */
        const int32_t lo = iy0 < 0 ? -iy0 : 0;
        const int32_t hi = (IH - iy0 < R_) ? IH - iy0 : R_;
        const uint32_t rv = hi > lo ? (1u << hi) - (1u << lo) : 0u;         /* valid rows */
        if (!rv) continue;
        const float *gr0 = g0 + oy * OW;
        const float *gr1 = g1 + oy * OW;
        const float *xr = xc + iy0 * IW - P;              /* x[iy0][ox*S - P] = xr[ox*S] */
        for (int32_t ox = 0; ox < OW; ++ox, xr += S) {
            const int32_t ix0 = ox * S - P;
            const int32_t kx0 = ix0 < 0 ? -ix0 : 0;
            const int32_t kx1 = (IW - ix0 < KW_) ? IW - ix0 : KW_;
            const uint32_t cv = kx1 > kx0 ? (1u << kx1) - (1u << kx0) : 0u;  /* valid columns */
            const float gv0 = gr0[ox];
            const float gv1 = NG_ == 2 ? gr1[ox] : 0.0f;
            const float *xp = xr;
            if (rv == full_r && cv == full_c) {
                for (int32_t r = 0; r < R_; ++r, xp += IW)
                    for (int32_t kx = 0; kx < KW_; ++kx) {
                        const float xv = xp[kx];
                        acc0[r * KW_ + kx] = acc0[r * KW_ + kx] + xv * gv0;
                        if (NG_ == 2) acc1[r * KW_ + kx] = acc1[r * KW_ + kx] + xv * gv1;
                    }
            } else {
                for (int32_t r = 0; r < R_; ++r, xp += IW) {
                    if (!(rv & (1u << r))) continue;
                    for (int32_t kx = 0; kx < KW_; ++kx)
                        if (cv & (1u << kx)) {
                            const float xv = xp[kx];
                            acc0[r * KW_ + kx] = acc0[r * KW_ + kx] + xv * gv0;
                            if (NG_ == 2) acc1[r * KW_ + kx] = acc1[r * KW_ + kx] + xv * gv1;
                        }
                }
            }
        }
    }
    float *p0 = dw0 + r0 * KW_;
    for (int32_t k = 0; k < R_ * KW_; ++k) p0[k] = p0[k] + acc0[k];
    if (NG_ == 2) {
        float *p1 = dw1 + r0 * KW_;
        for (int32_t k = 0; k < R_ * KW_; ++k) p1[k] = p1[k] + acc1[k];
    }
}

/* General kernel size: one tap at a time (accumulator order as above). */
static void nn__weight_plane_any(const float *xc, int32_t IH, int32_t IW, const float *g, int32_t OH, int32_t OW,
                                 int32_t KH, int32_t KW, int32_t S, int32_t P, float *dwp) {
    for (int32_t ky = 0; ky < KH; ++ky) {
        int32_t oy0, oy1;
        nn__valid_range(ky, S, P, IH, OH, &oy0, &oy1);
        for (int32_t kx = 0; kx < KW; ++kx) {
            int32_t ox0, ox1;
            nn__valid_range(kx, S, P, IW, OW, &ox0, &ox1);
            float a = 0.0f;
            for (int32_t oy = oy0; oy < oy1; ++oy) {
                const float *xp = xc + (oy * S - P + ky) * IW + ox0 * S - P + kx;
                const float *gp = g + oy * OW + ox0;
                for (int32_t ox = ox0; ox < ox1; ++ox, xp += S) a = a + *xp * *gp++;
            }
            dwp[ky * KW + kx] = dwp[ky * KW + kx] + a;
        }
    }
}

void nn__conv2d_f32_weight_plane(const float *xc, int32_t IH, int32_t IW, const float *g0, const float *g1,
                                 int32_t OH, int32_t OW, int32_t KH, int32_t KW, int32_t S, int32_t P,
                                 float *dw0, float *dw1) {
    if (KH == 3 && KW == 3) {
        if (g1) nn__weight_rows(xc, IH, IW, g0, g1, OH, OW, S, P, dw0, dw1, 0, 2, 3, 3);
        else nn__weight_rows(xc, IH, IW, g0, g0, OH, OW, S, P, dw0, dw0, 0, 1, 3, 3);
    } else if (KH == 4 && KW == 4) {
        if (g1) {
            nn__weight_rows(xc, IH, IW, g0, g1, OH, OW, S, P, dw0, dw1, 0, 2, 2, 4);
            nn__weight_rows(xc, IH, IW, g0, g1, OH, OW, S, P, dw0, dw1, 2, 2, 2, 4);
        } else {
            nn__weight_rows(xc, IH, IW, g0, g0, OH, OW, S, P, dw0, dw0, 0, 1, 4, 4);
        }
    } else {
        nn__weight_plane_any(xc, IH, IW, g0, OH, OW, KH, KW, S, P, dw0);
        if (g1) nn__weight_plane_any(xc, IH, IW, g1, OH, OW, KH, KW, S, P, dw1);
    }
}

void conv2d_f32_backward_weight(const float *x, const float *dy, float *dw, float *db, const nn_conv_dims *d,
                                const uint8_t *active) {
    const int32_t IC = d->in_c, IH = d->in_h, IW = d->in_w;
    const int32_t OC = d->out_c, OH = d->out_h, OW = d->out_w;
    const int32_t KH = d->k_h, KW = d->k_w, S = d->stride, P = d->pad;
    const int32_t KK = KH * KW, XPLANE = IH * IW, YPLANE = OH * OW;

    if (db) {
        for (int32_t oc = 0; oc < OC; ++oc) {
            if (active && !active[oc]) continue;
            const float *g = dy + oc * YPLANE;
            float a = 0.0f;
            for (int32_t k = 0; k < YPLANE; ++k) a = a + g[k];
            db[oc] = db[oc] + a;
        }
    }
    /* Active output channels two at a time: both gradient maps share every input load. */
    int32_t oc = 0;
    for (;;) {
        while (oc < OC && active && !active[oc]) ++oc;
        if (oc >= OC) break;
        int32_t oc2 = oc + 1;
        while (oc2 < OC && active && !active[oc2]) ++oc2;
        const float *g0 = dy + oc * YPLANE;
        const float *g1 = oc2 < OC ? dy + oc2 * YPLANE : (const float *)0;
        for (int32_t ic = 0; ic < IC; ++ic)
            nn__conv2d_f32_weight_plane(x + ic * XPLANE, IH, IW, g0, g1, OH, OW, KH, KW, S, P,
                                        dw + (oc * IC + ic) * KK, dw + (oc2 * IC + ic) * KK);
        oc = oc2 + 1;
    }
}
