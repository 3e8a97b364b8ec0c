/* grouped_conv2d_f32.c: grouped and depthwise 2-D convolution, fp32, forward and backward.
 * Contracts and summation orders: kernels/include/nn.h; Numba twin: mcusim/ops/grouped_conv.py.
 *
 * Group g is an ordinary convolution of its in_c/groups input channels into its out_c/groups output
 * channels, and its weights [out_c/groups][in_c/groups][k_h][k_w] are one contiguous block, so every
 * direction runs the conv2d cores of conv2d_f32.c / convtranspose2d_f32.c on the group's slices (the
 * same per-output order, hence groups == 1 gives conv2d_f32_*'s bits). The depthwise forward (one input
 * channel per group) has its own plane loop: the generic gather pays a call and a dispatch per output
 * pixel, which for 9 taps costs as much as the taps. */
#include "nn.h"

/* acc + the taps (ky0..ky1-1, kx0..kx1-1) of one output, ky then kx ascending; xr: x at (iy0, ix0). */
static inline float nn__dw_f32_taps(const float *xr, const float *wk, float acc, int32_t IW, int32_t KW, int32_t ky0,
                                    int32_t ky1, int32_t kx0, int32_t kx1) {
#pragma clang loop unroll(disable)
    for (int32_t ky = ky0; ky < ky1; ++ky)
#pragma clang loop unroll(disable)
        for (int32_t kx = kx0; kx < kx1; ++kx) acc = acc + wk[ky * KW + kx] * xr[ky * IW + kx];
    return acc;
}

/* One depthwise output plane: yc[oy][ox] = b0 + sum over the in-bounds taps, ky then kx ascending, of
 * wk[ky][kx] * xc[iy][ix] (the conv2d order for a single input channel). Rows and columns whose 3x3
 * window lies inside the input run an unrolled loop with the filter in registers. */
static __attribute__((noinline)) void nn__dw_f32_plane(const float *xc, const float *wk, float b0, float *yc,
                                                       const nn_conv_dims *d) {
    const int32_t IH = d->in_h, IW = d->in_w, OH = d->out_h, OW = d->out_w;
    const int32_t KH = d->k_h, KW = d->k_w, S = d->stride, P = d->pad;
    int32_t oxa = 0, oxb = OW;                       /* columns whose whole window is inside the input */
    while (oxa < OW && oxa * S - P < 0) ++oxa;
    while (oxb > oxa && (oxb - 1) * S - P + KW > IW) --oxb;
    if (KH != 3 || KW != 3) oxb = oxa;
#pragma clang loop unroll(disable)
    for (int32_t oy = 0; oy < OH; ++oy) {
        const int32_t iy0 = oy * S - P;
        const int32_t ky0 = iy0 < 0 ? -iy0 : 0;
        const int32_t ky1 = (IH - iy0 < KH) ? IH - iy0 : KH;
        const int32_t a = (ky0 == 0 && ky1 == KH) ? oxa : OW, b = (ky0 == 0 && ky1 == KH) ? oxb : OW;
        float *yr = yc + oy * OW;
        for (int32_t ox = 0; ox < OW; ++ox) {
            if (ox == a && a < b) {
                const float w0 = wk[0], w1 = wk[1], w2 = wk[2], w3 = wk[3], w4 = wk[4], w5 = wk[5], w6 = wk[6],
                            w7 = wk[7], w8 = wk[8];
                const float *r0 = xc + iy0 * IW + ox * S - P, *r1 = r0 + IW, *r2 = r1 + IW;
#pragma clang loop unroll(disable)
                for (; ox < b; ++ox, r0 += S, r1 += S, r2 += S) {
                    float acc = b0;
                    acc = acc + w0 * r0[0]; acc = acc + w1 * r0[1]; acc = acc + w2 * r0[2];
                    acc = acc + w3 * r1[0]; acc = acc + w4 * r1[1]; acc = acc + w5 * r1[2];
                    acc = acc + w6 * r2[0]; acc = acc + w7 * r2[1]; acc = acc + w8 * r2[2];
                    yr[ox] = acc;
                }
                if (ox >= OW) break;
            }
            const int32_t ix0 = ox * S - P;
            const int32_t kx0 = ix0 < 0 ? -ix0 : 0;
            const int32_t kx1 = (IW - ix0 < KW) ? IW - ix0 : KW;
            yr[ox] = nn__dw_f32_taps(xc + iy0 * IW + ix0, wk, b0, IW, KW, ky0, ky1, kx0, kx1);
        }
    }
}

void grouped_conv2d_f32_forward(const float *x, const float *w, const float *b, float *y, const nn_conv_dims *d,
                                int32_t groups) {
    const nn_conv_dims g = nn__conv_dims_group(d, groups);
    const int32_t xs = g.in_c * g.in_h * g.in_w, ys = g.out_c * g.out_h * g.out_w;
    const int32_t ws = g.out_c * g.in_c * g.k_h * g.k_w;
    if (groups > 1 && g.in_c == 1) {                 /* depthwise: output channel oc reads input oc / mult */
        const int32_t kk = g.k_h * g.k_w, plane = g.out_h * g.out_w;
        for (int32_t oc = 0; oc < d->out_c; ++oc)
            nn__dw_f32_plane(x + (oc / g.out_c) * xs, w + oc * kk, b ? b[oc] : 0.0f, y + oc * plane, d);
        return;
    }
    for (int32_t k = 0; k < groups; ++k)
        nn__conv2d_f32_gather(x + k * xs, w + k * ws, b ? b + k * g.out_c : (const float *)0, y + k * ys, &g,
                              (const uint8_t *)0);
}

void grouped_conv2d_f32_backward_input(const float *w, const float *dy, float *dx, const nn_conv_dims *d,
                                       int32_t groups, const uint8_t *active) {
    const nn_conv_dims g = nn__conv_dims_group(d, groups), t = nn__conv_dims_swap(&g);
    const int32_t xs = g.in_c * g.in_h * g.in_w, ys = g.out_c * g.out_h * g.out_w;
    const int32_t ws = g.out_c * g.in_c * g.k_h * g.k_w;
    for (int32_t k = 0; k < groups; ++k)
        nn__convtranspose2d_f32_gather(dy + k * ys, w + k * ws, (const float *)0, dx + k * xs, &t,
                                       active ? active + k * g.out_c : (const uint8_t *)0);
}

void grouped_conv2d_f32_backward_weight(const float *x, const float *dy, float *dw, float *db,
                                        const nn_conv_dims *d, int32_t groups, const uint8_t *active) {
    const nn_conv_dims g = nn__conv_dims_group(d, groups);
    const int32_t xs = g.in_c * g.in_h * g.in_w, ys = g.out_c * g.out_h * g.out_w;
    const int32_t ws = g.out_c * g.in_c * g.k_h * g.k_w;
    for (int32_t k = 0; k < groups; ++k)
        conv2d_f32_backward_weight(x + k * xs, dy + k * ys, dw + k * ws, db ? db + k * g.out_c : (float *)0, &g,
                                   active ? active + k * g.out_c : (const uint8_t *)0);
}
