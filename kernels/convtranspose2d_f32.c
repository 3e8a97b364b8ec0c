/* convtranspose2d_f32.c: 2-D transposed convolution, fp32, forward and backward, one sample at a time.
 * Contracts and summation orders: kernels/include/nn.h; Numba twin: mcusim/ops/layers_f32.py.
 *
 * The forward is computed in gather form (each output pixel sums its contributing taps), which needs no
 * zeroing pass and no read-modify-write of y; the same core is conv2d_f32_backward_input. The backward
 * input is a strided convolution of dy (the conv2d gather core).
 * Speed: for each output row / column the contributing taps are one residue class of ky (kx) modulo
 * the stride, computed once per row / column; four output channels share each activation load. */
#include "nn.h"

/* Taps of output index o: ky = k0, k0 + S, ..., (n taps) with input index i0, i0 - 1, ... in range. */
static inline int32_t nn__taps(int32_t o, int32_t S, int32_t P, int32_t K, int32_t n_in, int32_t *k0, int32_t *i0) {
    const int32_t t = o + P;                 /* = i*S + k */
    int32_t lo = t % S;
    const int32_t lim = t - S * (n_in - 1);  /* i <= n_in - 1  <=>  k >= lim (same residue as t) */
    if (lim > lo) lo = lim;
    const int32_t hi = (K - 1 < t) ? K - 1 : t;
    *k0 = lo;
    *i0 = (t - lo) / S;
    return hi >= lo ? (hi - lo) / S + 1 : 0;
}

/* One output pixel of NB (4 or 1) output channels: for ic (active), for the NKY x NKX contributing
 * taps (ky = ky0 + a*S, iy = iy0 - a; kx = kx0 + c*S, ix = ix0 - c; a, c ascending):
 * acc_j += w[ic][oc + j][ky][kx] * x[ic][iy][ix]. xb points at x[0][iy0][ix0], wb at
 * w[0][oc][ky0][kx0]. Always inlined: called with constant tap counts / strides / kernel sizes for the
 * common cases (fully unrolled, immediate offsets) and with run-time values as the fallback. */
static inline __attribute__((always_inline)) void nn__convt_pixel(
        const float *xb, const float *wb, float *acc, const uint8_t *in_active, int32_t IC, int32_t XPLANE,
        int32_t IW, int32_t WI, const int32_t NB, const int32_t NKY, const int32_t NKX, const int32_t S,
        const int32_t KW, const int32_t KK) {
    float a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
    for (int32_t ic = 0; ic < IC; ++ic, xb += XPLANE, wb += WI) {
        if (in_active && !in_active[ic]) continue;
        const float *xr = xb;
        for (int32_t a = 0; a < NKY; ++a, xr -= IW) {
            for (int32_t c = 0; c < NKX; ++c) {
                const float xv = xr[-c];
                const int32_t o = a * S * KW + c * S;
                a0 = a0 + wb[o] * xv;
                if (NB == 4) {
                    a1 = a1 + wb[KK + o] * xv;
                    a2 = a2 + wb[2 * KK + o] * xv;
                    a3 = a3 + wb[3 * KK + o] * xv;
                }
            }
        }
    }
    acc[0] = a0; acc[1] = a1; acc[2] = a2; acc[3] = a3;
}

/* Constant-shape instances, each its own small function: clean register allocation and a hot loop
 * that fits the 1 KB ART instruction cache. Name: nn__ct<NB>_s<S>k<KH>x<KW>_<NKY>x<NKX>. */
#define NN__CT_INST(NB_, S_, KH_, KW_, NKY_, NKX_)                                                   \
    static __attribute__((noinline)) void nn__ct##NB_##_s##S_##k##KH_##x##KW_##_##NKY_##x##NKX_(     \
            const float *xb, const float *wb, float *acc, const uint8_t *in_active, int32_t IC,       \
            int32_t XPLANE, int32_t IW, int32_t WI) {                                                 \
        nn__convt_pixel(xb, wb, acc, in_active, IC, XPLANE, IW, WI, NB_, NKY_, NKX_, S_, KW_,        \
                        (KH_) * (KW_));                                                               \
    }
#define NN__CT_INSTS(NB_)                                                                            \
    NN__CT_INST(NB_, 2, 4, 4, 2, 2) NN__CT_INST(NB_, 2, 4, 4, 1, 2)                                  \
    NN__CT_INST(NB_, 2, 4, 4, 2, 1) NN__CT_INST(NB_, 2, 4, 4, 1, 1)                                  \
    NN__CT_INST(NB_, 2, 3, 3, 2, 2) NN__CT_INST(NB_, 2, 3, 3, 1, 2)                                  \
    NN__CT_INST(NB_, 2, 3, 3, 2, 1) NN__CT_INST(NB_, 2, 3, 3, 1, 1)
NN__CT_INSTS(4)
NN__CT_INSTS(1)

static __attribute__((noinline)) void nn__ct_any(const float *xb, const float *wb, float *acc,
        const uint8_t *in_active, int32_t IC, int32_t XPLANE, int32_t IW, int32_t WI, int32_t nb, int32_t nky,
        int32_t nkx, int32_t S, int32_t KW, int32_t KK) {
    if (nb == 4) nn__convt_pixel(xb, wb, acc, in_active, IC, XPLANE, IW, WI, 4, nky, nkx, S, KW, KK);
    else nn__convt_pixel(xb, wb, acc, in_active, IC, XPLANE, IW, WI, 1, nky, nkx, S, KW, KK);
}

/* Two output pixels (oy, ox) and (oy, ox + S) of one output channel with the same taps: they share
 * every weight load; the second reads the input one column to the right. Same order as above. */
static inline __attribute__((always_inline)) void nn__convt_pixel_pair(
        const float *xb, const float *wb, float *acc, const uint8_t *in_active, int32_t IC, int32_t XPLANE,
        int32_t IW, int32_t WI, const int32_t NKY, const int32_t NKX, const int32_t S, const int32_t KW) {
    float a0 = acc[0], a1 = acc[1];
    for (int32_t ic = 0; ic < IC; ++ic, xb += XPLANE, wb += WI) {
        if (in_active && !in_active[ic]) continue;
        const float *xr = xb;
        for (int32_t a = 0; a < NKY; ++a, xr -= IW) {
            for (int32_t c = 0; c < NKX; ++c) {
                const float wv = wb[a * S * KW + c * S];
                a0 = a0 + wv * xr[-c];
                a1 = a1 + wv * xr[1 - c];
            }
        }
    }
    acc[0] = a0; acc[1] = a1;
}

#define NN__CT_PAIR_INST(S_, KW_, NKY_, NKX_)                                                        \
    static __attribute__((noinline)) void nn__ctp_s##S_##k##KW_##_##NKY_##x##NKX_(                     \
            const float *xb, const float *wb, float *acc, const uint8_t *in_active, int32_t IC,       \
            int32_t XPLANE, int32_t IW, int32_t WI) {                                                 \
        nn__convt_pixel_pair(xb, wb, acc, in_active, IC, XPLANE, IW, WI, NKY_, NKX_, S_, KW_);       \
    }
NN__CT_PAIR_INST(2, 4, 2, 2) NN__CT_PAIR_INST(2, 4, 1, 2) NN__CT_PAIR_INST(2, 4, 2, 1) NN__CT_PAIR_INST(2, 4, 1, 1)
NN__CT_PAIR_INST(2, 3, 2, 2) NN__CT_PAIR_INST(2, 3, 1, 2) NN__CT_PAIR_INST(2, 3, 2, 1) NN__CT_PAIR_INST(2, 3, 1, 1)

static __attribute__((noinline)) void nn__ctp_any(const float *xb, const float *wb, float *acc,
        const uint8_t *in_active, int32_t IC, int32_t XPLANE, int32_t IW, int32_t WI, int32_t nky, int32_t nkx,
        int32_t S, int32_t KW) {
    nn__convt_pixel_pair(xb, wb, acc, in_active, IC, XPLANE, IW, WI, nky, nkx, S, KW);
}

#define NN__CTP_TRY(S_, K_, NKY_, NKX_)                                                              \
    else if (S == (S_) && KH == (K_) && KW == (K_) && nky == (NKY_) && nkx == (NKX_))               \
        nn__ctp_s##S_##k##K_##_##NKY_##x##NKX_(xb, wb, acc, in_active, IC, XPLANE, IW, WI)

#define NN__CT_TRY(NB_, S_, KH_, KW_, NKY_, NKX_)                                                   \
    else if (S == (S_) && KH == (KH_) && KW == (KW_) && nky == (NKY_) && nkx == (NKX_))             \
        nn__ct##NB_##_s##S_##k##KH_##x##KW_##_##NKY_##x##NKX_(xb, wb, acc, in_active, IC, XPLANE, IW, WI)

#define NN__CT_DISPATCH(NB_)                                                                         \
    if (0) {}                                                                                        \
    NN__CT_TRY(NB_, 2, 4, 4, 2, 2); NN__CT_TRY(NB_, 2, 4, 4, 1, 2);                                  \
    NN__CT_TRY(NB_, 2, 4, 4, 2, 1); NN__CT_TRY(NB_, 2, 4, 4, 1, 1);                                  \
    NN__CT_TRY(NB_, 2, 3, 3, 2, 2); NN__CT_TRY(NB_, 2, 3, 3, 1, 2);                                  \
    NN__CT_TRY(NB_, 2, 3, 3, 2, 1); NN__CT_TRY(NB_, 2, 3, 3, 1, 1);                                  \
    else nn__ct_any(xb, wb, acc, in_active, IC, XPLANE, IW, WI, NB_, nky, nkx, S, KW, KK)

void nn__convtranspose2d_f32_gather(const float *x, const float *w, const float *b, float *y,
                                    const nn_conv_dims *d, const uint8_t *in_active) {
    const int32_t IC = d->in_c, IH = d->in_h, IW = d->in_w;
    const int32_t OC = d->out_c, OH = d->out_h, OW = d->out_w;
    const int32_t KH = d->k_h, KW = d->k_w, S = d->stride, P = d->pad;
    const int32_t KK = KH * KW, WI = OC * KK, XPLANE = IH * IW, YPLANE = OH * OW;

    int32_t oc = 0;
    while (oc < OC) {
        const int32_t nb = (OC - oc >= 4) ? 4 : 1;
        float bias[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        if (b) {
            for (int32_t j = 0; j < nb; ++j) bias[j] = b[oc + j];
        }
        float *y0 = y + oc * YPLANE;
        for (int32_t oy = 0; oy < OH; ++oy) {
            int32_t ky0, iy0;
            const int32_t nky = nn__taps(oy, S, P, KH, IH, &ky0, &iy0);
            if (nb == 4) {
                for (int32_t ox = 0; ox < OW; ++ox) {
                    int32_t kx0, ix0;
                    const int32_t nkx = nn__taps(ox, S, P, KW, IW, &kx0, &ix0);
                    const float *xb = x + iy0 * IW + ix0;
                    const float *wb = w + oc * KK + ky0 * KW + kx0;
                    float acc[4] = {bias[0], bias[1], bias[2], bias[3]};
                    if (nky > 0 && nkx > 0) {
                        NN__CT_DISPATCH(4);
                    }
                    float *yp = y0 + oy * OW + ox;
                    yp[0] = acc[0];
                    yp[YPLANE] = acc[1];
                    yp[2 * YPLANE] = acc[2];
                    yp[3 * YPLANE] = acc[3];
                }
                continue;
            }
            /* one channel: pixels ox and ox + S (same column residue) in pairs that share the weights */
            for (int32_t r = 0; r < S && r < OW; ++r) {
                for (int32_t ox = r; ox < OW; ox += S) {
                    int32_t kx0, ix0, kx0b = -1, ix0b = -1, nkxb = -1;
                    const int32_t nkx = nn__taps(ox, S, P, KW, IW, &kx0, &ix0);
                    if (ox + S < OW) nkxb = nn__taps(ox + S, S, P, KW, IW, &kx0b, &ix0b);
                    const float *xb = x + iy0 * IW + ix0;
                    const float *wb = w + oc * KK + ky0 * KW + kx0;
                    float *yp = y0 + oy * OW + ox;
                    if (nky > 0 && nkx > 0 && nkxb == nkx && kx0b == kx0 && ix0b == ix0 + 1) {
                        float acc[2] = {bias[0], bias[0]};
                        if (0) {}
                        NN__CTP_TRY(2, 4, 2, 2); NN__CTP_TRY(2, 4, 1, 2);
                        NN__CTP_TRY(2, 4, 2, 1); NN__CTP_TRY(2, 4, 1, 1);
                        NN__CTP_TRY(2, 3, 2, 2); NN__CTP_TRY(2, 3, 1, 2);
                        NN__CTP_TRY(2, 3, 2, 1); NN__CTP_TRY(2, 3, 1, 1);
                        else nn__ctp_any(xb, wb, acc, in_active, IC, XPLANE, IW, WI, nky, nkx, S, KW);
                        yp[0] = acc[0];
                        yp[S] = acc[1];
                        ox += S;
                        continue;
                    }
                    float acc[4] = {bias[0], 0.0f, 0.0f, 0.0f};
                    if (nky > 0 && nkx > 0) {
                        NN__CT_DISPATCH(1);
                    }
                    yp[0] = acc[0];
                }
            }
        }
        oc += nb;
    }
}

#undef NN__CT_TRY
#undef NN__CT_DISPATCH
#undef NN__CT_INST
#undef NN__CT_INSTS
#undef NN__CT_PAIR_INST
#undef NN__CTP_TRY

void convtranspose2d_f32_forward(const float *x, const float *w, const float *b, float *y, const nn_conv_dims *d) {
    nn__convtranspose2d_f32_gather(x, w, b, y, d, (const uint8_t *)0);
}

void convtranspose2d_f32_backward_input(const float *w, const float *dy, float *dx, const nn_conv_dims *d,
                                        const uint8_t *active) {
    /* dx = strided convolution of dy: convT weights [IC][OC] are conv weights [out=IC][in=OC]. */
    nn_conv_dims t = nn__conv_dims_swap(d);
    nn__conv2d_f32_gather(dy, w, (const float *)0, dx, &t, active);
}

void convtranspose2d_f32_backward_weight(const float *x, const float *dy, float *dw, float *db,
                                         const nn_conv_dims *d, const uint8_t *active) {
    /* dw[ic][oc][ky][kx] += sum over (iy, ix) ascending of x[ic][iy][ix] * dy[oc][iy*S - P + ky][ix*S - P + kx]:
     * the conv2d weight-gradient plane with dy[oc] as the strided input and x[ic] as the gradient map
     * (the product is formed as dy * x; float multiplication is commutative). */
    const int32_t IC = d->in_c, IH = d->in_h, IW = d->in_w;
    const int32_t OC = d->out_c, OH = d->out_h, OW = d->out_w;
    const int32_t KH = d->k_h, KW = d->k_w, S = d->stride, P = d->pad;
    const int32_t KK = KH * KW, XPLANE = IH * IW, YPLANE = OH * OW;

    for (int32_t oc = 0; oc < OC; ++oc) {
        if (active && !active[oc]) continue;
        const float *g = dy + oc * YPLANE;
        if (db) {
            float a = 0.0f;
            for (int32_t k = 0; k < YPLANE; ++k) a = a + g[k];
            db[oc] = db[oc] + a;
        }
        int32_t ic = 0;
        for (; ic + 2 <= IC; ic += 2)               /* two input channels share every dy load */
            nn__conv2d_f32_weight_plane(g, OH, OW, x + ic * XPLANE, x + (ic + 1) * XPLANE, IH, IW, KH, KW, S, P,
                                        dw + (ic * OC + oc) * KK, dw + ((ic + 1) * OC + oc) * KK);
        if (ic < IC)
            nn__conv2d_f32_weight_plane(g, OH, OW, x + ic * XPLANE, (const float *)0, IH, IW, KH, KW, S, P,
                                        dw + (ic * OC + oc) * KK, (float *)0);
    }
}
