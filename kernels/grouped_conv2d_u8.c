/* grouped_conv2d_u8.c: grouped and depthwise Conv2D on uint8 tensors, forward and backward (contract in
 * nn.h). Twin: mcusim/ops/grouped_conv.py.
 *
 * Group g is a conv2d_u8 of its channel slices (its weights are one contiguous block), so the integer
 * cores and output stages of conv2d_u8.c / convtranspose2d_u8.c run group by group with ONE output stage
 * for the whole layer: the range of every group's outputs is tracked together and observed once.
 * Depthwise layers (one input channel per group) have their own core: a column gather and a packed
 * weight row per group and output position cost more than the 9 taps themselves, so the input plane is
 * widened once to int16 (x - zx) with a zero border and each output sums k_h * ceil(k_w/2) SMLAD of
 * (two neighbouring inputs) x (two filter taps). */
#include "nn.h"
#include "nn_simd.h"

static inline int32_t nn__is_depthwise(const nn_conv_dims *g, int32_t groups) { return groups > 1 && g->in_c == 1; }

/* ---- depthwise core ------------------------------------------------------------------------------
 * A source plane of h x w placed into a zeroed int16 plane dst [hp][wp] as dst[i*step + top][j*step + left]
 * = src[i][j] - z (positions outside dst dropped). The forward places x with step 1 and top = left = pad;
 * the backward input places e dilated by the stride (zeros between), so the transposed convolution becomes
 * a stride-1 correlation with the flipped filter. The same cells are written for every channel, so the
 * zeros survive from one channel to the next. */
static __attribute__((noinline)) void nn__dw_place(const uint8_t *src, int32_t h, int32_t w, int32_t z, int32_t step, int32_t top, int32_t left,
                         int16_t *dst, int32_t hp, int32_t wp) {
    int32_t j0 = 0, j1 = w;                                     /* the columns that land inside dst */
    while (j0 < w && j0 * step + left < 0) j0++;
    while (j1 > j0 && (j1 - 1) * step + left >= wp) j1--;
    for (int32_t i = 0; i < h; i++) {
        const int32_t r = i * step + top;
        if (r < 0 || r >= hp) continue;
        int16_t *dr = dst + r * wp + left;
        const uint8_t *sr = src + i * w;
        for (int32_t j = j0; j < j1; j++) dr[j * step] = (int16_t)((int32_t)sr[j] - z);
    }
}

/* Filter taps (w - zw) as halfword pairs [kh][ceil(kw/2)], the odd tail paired with 0; flipped in both
 * directions for the backward input. */
static __attribute__((noinline)) void nn__dw_pairs(const uint8_t *w, int32_t zw, int32_t kh, int32_t kw, int32_t flip, uint32_t *pairs) {
    const int32_t h2 = (kw + 1) >> 1;
    for (int32_t ky = 0; ky < kh; ky++)
        for (int32_t j = 0; j < h2; j++) {
            int32_t v[2];
            for (int32_t t = 0; t < 2; t++) {
                const int32_t kx = 2 * j + t;
                const int32_t idx = flip ? (kh - 1 - ky) * kw + (kw - 1 - kx) : ky * kw + kx;
                v[t] = kx < kw ? (int32_t)w[idx] - zw : 0;
            }
            pairs[ky * h2 + j] = ((uint32_t)v[0] & 0xFFFFu) | ((uint32_t)v[1] << 16);
        }
}

/* acc[oy][ox] (+)= sum over ky, pairs j of SMLAD(xp[oy*s + ky][ox*s + 2j .. +1], pairs[ky][j]). */
static __attribute__((noinline)) void nn__dw_sum(const int16_t *xp, int32_t wp, const uint32_t *pairs, int32_t s, int32_t oh, int32_t ow,
                       int32_t *acc, int32_t add, int32_t KH, int32_t H2) {
#pragma clang loop unroll(disable)
    for (int32_t oy = 0; oy < oh; oy++) {
        const int16_t *xr = xp + oy * s * wp;
        int32_t *ar = acc + oy * ow;
        for (int32_t ox = 0; ox < ow; ox++, xr += s) {
            int32_t a = ar[ox] & -add;
            for (int32_t ky = 0; ky < KH; ky++)
                for (int32_t j = 0; j < H2; j++) a = __smlad(nn__ld32(xr + ky * wp + 2 * j), pairs[ky * H2 + j], a);
            ar[ox] = a;
        }
    }
}

/* 3x3: the six filter pairs stay in registers. */
static __attribute__((noinline)) void nn__dw_sum_3x3(const int16_t *xp, int32_t wp, const uint32_t *pairs, int32_t s,
                                                     int32_t oh, int32_t ow, int32_t *acc, int32_t add) {
    const uint32_t p0 = pairs[0], p1 = pairs[1], p2 = pairs[2], p3 = pairs[3], p4 = pairs[4], p5 = pairs[5];
    const int32_t keep = -add;                              /* branch-free (+)= */
#pragma clang loop unroll(disable)
    for (int32_t oy = 0; oy < oh; oy++) {
        const int16_t *r0 = xp + oy * s * wp, *r1 = r0 + wp, *r2 = r1 + wp;
        int32_t *ar = acc + oy * ow;
#pragma clang loop unroll(disable)
        for (int32_t ox = 0; ox < ow; ox++, r0 += s, r1 += s, r2 += s) {
            int32_t a = ar[ox] & keep;
            a = __smlad(nn__ld32(r0), p0, a);
            a = __smlad(nn__ld32(r0 + 2), p1, a);
            a = __smlad(nn__ld32(r1), p2, a);
            a = __smlad(nn__ld32(r1 + 2), p3, a);
            a = __smlad(nn__ld32(r2), p4, a);
            a = __smlad(nn__ld32(r2 + 2), p5, a);
            ar[ox] = a;
        }
    }
}

static __attribute__((noinline)) void nn__dw_conv(const int16_t *xp, int32_t wp, const uint32_t *pairs, int32_t kh, int32_t kw, int32_t s,
                        int32_t oh, int32_t ow, int32_t *acc, int32_t add) {
    if (kh == 3 && kw == 3) nn__dw_sum_3x3(xp, wp, pairs, s, oh, ow, acc, add);
    else nn__dw_sum(xp, wp, pairs, s, oh, ow, acc, add, kh, (kw + 1) >> 1);
}

/* The plane the core reads for an oh x ow output: rows (oh - 1)*s + kh, columns (ow - 1)*s + kw rounded
 * up to even (the odd tail's partner column). work: acc [oh*ow] int32, pairs [kh][ceil(kw/2)], plane. */
static inline int32_t nn__dw_hp(int32_t oh, int32_t s, int32_t kh) { return (oh - 1) * s + kh; }
static inline int32_t nn__dw_wp(int32_t ow, int32_t s, int32_t kw) { return (ow - 1) * s + kw + (kw & 1); }

static int32_t nn__dw_work_size(int32_t oh, int32_t ow, int32_t s, int32_t kh, int32_t kw) {
    return 4 * oh * ow + 4 * kh * ((kw + 1) >> 1) + nn__align4(2 * nn__dw_hp(oh, s, kh) * nn__dw_wp(ow, s, kw));
}

/* ---- forward ------------------------------------------------------------------------------------- */
int32_t grouped_conv2d_u8_forward_buffer_size(const nn_conv_dims *d, int32_t groups) {
    const nn_conv_dims g = nn__conv_dims_group(d, groups);
    if (nn__is_depthwise(&g, groups))
        return d->out_c * 4 + nn__dw_work_size(d->out_h, d->out_w, d->stride, d->k_h, d->k_w);
    return d->out_c * 4 + nn__conv_u8_strided_work_size(&g);
}

void grouped_conv2d_u8_forward(const uint8_t *x, const nn_qparams *qx, const uint8_t *w, const nn_qparams *qw,
                               const uint8_t *b, const nn_qparams *qb, uint8_t *y, nn_qparams *qy,
                               const nn_conv_dims *d, int32_t groups, int32_t relu, float alpha, int32_t *scratch) {
    const nn_conv_dims g = nn__conv_dims_group(d, groups);
    const int32_t in_plane = d->in_h * d->in_w, plane = d->out_h * d->out_w, kk = d->k_h * d->k_w;
    const int32_t xs = g.in_c * in_plane, ys = g.out_c * plane, ws = g.out_c * g.in_c * kk;
    const int32_t zx = qx->zero_point, zw = qw->zero_point;
    int32_t *bias = scratch;
    int32_t *work = scratch + d->out_c;
    nn__conv_u8_out out;
    nn__conv_u8_out_forward(&out, qw->scale * qx->scale, b, qb, y, qy, d->out_c, relu, bias);
    if (nn__is_depthwise(&g, groups)) {
        const int32_t s = d->stride, hp = nn__dw_hp(d->out_h, s, d->k_h), wp = nn__dw_wp(d->out_w, s, d->k_w);
        uint32_t *pairs = (uint32_t *)(work + plane);
        int16_t *xp = (int16_t *)(pairs + d->k_h * ((d->k_w + 1) >> 1));
        for (int32_t i = 0; i < hp * wp; i++) xp[i] = 0;
        for (int32_t c = 0; c < d->in_c; c++) {
            nn__dw_place(x + c * in_plane, d->in_h, d->in_w, zx, 1, d->pad, d->pad, xp, hp, wp);
            for (int32_t o = c * g.out_c; o < (c + 1) * g.out_c; o++) {
                nn__dw_pairs(w + o * kk, zw, d->k_h, d->k_w, 0, pairs);
                nn__dw_conv(xp, wp, pairs, d->k_h, d->k_w, s, d->out_h, d->out_w, work, 0);
                nn__conv_u8_emit(&out, work, o, 1, plane, 0, 1, plane);
            }
        }
    } else {
        for (int32_t k = 0; k < groups; k++) {
            out.y = y + k * ys;
            out.bias = bias + k * g.out_c;
            nn__conv_u8_strided(x + k * xs, zx, w + k * ws, zw, &g, 0, &out, work);
        }
    }
    nn__conv_u8_finish(&out, qy, alpha);
}

/* ---- backward input ------------------------------------------------------------------------------- */
int32_t grouped_conv2d_u8_backward_input_buffer_size(const nn_conv_dims *d, int32_t groups) {
    const nn_conv_dims g = nn__conv_dims_group(d, groups), t = nn__conv_dims_swap(&g);
    if (nn__is_depthwise(&g, groups)) return nn__dw_work_size(d->in_h, d->in_w, 1, d->k_h, d->k_w);
    return nn__conv_u8_transposed_work_size(&t);
}

void grouped_conv2d_u8_backward_input(const uint8_t *w, const nn_qparams *qw, const uint8_t *e, const nn_qparams *qe,
                                      uint8_t *ex, nn_qparams *qex, const uint8_t *x, const nn_qparams *qx,
                                      const nn_conv_dims *d, int32_t groups, const uint8_t *active, float alpha,
                                      int32_t *scratch) {
    const nn_conv_dims g = nn__conv_dims_group(d, groups), t = nn__conv_dims_swap(&g);
    const int32_t in_plane = d->in_h * d->in_w, plane = d->out_h * d->out_w, kk = d->k_h * d->k_w;
    const int32_t xs = g.in_c * in_plane, ys = g.out_c * plane, ws = g.out_c * g.in_c * kk;
    const int32_t ze = qe->zero_point, zw = qw->zero_point;
    nn__conv_u8_out out;
    nn__conv_u8_out_error(&out, qw->scale * qe->scale, ex, qex, x, qx);
    if (nn__is_depthwise(&g, groups)) {
        const int32_t kh = d->k_h, kw = d->k_w, hp = nn__dw_hp(d->in_h, 1, kh), wp = nn__dw_wp(d->in_w, 1, kw);
        int32_t *acc = scratch;
        uint32_t *pairs = (uint32_t *)(acc + in_plane);
        int16_t *ep = (int16_t *)(pairs + kh * ((kw + 1) >> 1));
        for (int32_t i = 0; i < hp * wp; i++) ep[i] = 0;
        for (int32_t c = 0; c < d->in_c; c++) {
            int32_t add = 0;
            for (int32_t o = c * g.out_c; o < (c + 1) * g.out_c; o++) {
                if (active && !active[o]) continue;
                nn__dw_place(e + o * plane, d->out_h, d->out_w, ze, d->stride, kh - 1 - d->pad, kw - 1 - d->pad,
                             ep, hp, wp);
                nn__dw_pairs(w + o * kk, zw, kh, kw, 1, pairs);
                nn__dw_conv(ep, wp, pairs, kh, kw, 1, d->in_h, d->in_w, acc, add);
                add = 1;
            }
            if (!add)
                for (int32_t i = 0; i < in_plane; i++) acc[i] = 0;
            nn__conv_u8_emit(&out, acc, c, 1, in_plane, 0, 1, in_plane);
        }
    } else {
        for (int32_t k = 0; k < groups; k++) {
            out.y = ex + k * xs;
            if (x) out.mask = x + k * xs;
            nn__conv_u8_transposed(e + k * ys, ze, w + k * ws, zw, &t, active ? active + k * g.out_c : 0, &out,
                                   scratch);
        }
    }
    nn__conv_u8_finish(&out, qex, alpha);
}

/* ---- backward weight: conv2d_u8_backward_weight of each group ---------------------------------------- */
int32_t grouped_conv2d_u8_backward_weight_buffer_size(const nn_conv_dims *d, int32_t groups) {
    const nn_conv_dims g = nn__conv_dims_group(d, groups);
    return conv2d_u8_backward_weight_buffer_size(&g);
}

void grouped_conv2d_u8_backward_weight(const uint8_t *x, const nn_qparams *qx, const uint8_t *e,
                                       const nn_qparams *qe, int16_t *gw, const float *sgw, int16_t *gb,
                                       const float *sgb, const nn_conv_dims *d, int32_t groups,
                                       const uint8_t *active, int32_t *scratch) {
    const nn_conv_dims g = nn__conv_dims_group(d, groups);
    const int32_t xs = g.in_c * d->in_h * d->in_w, ys = g.out_c * d->out_h * d->out_w;
    const int32_t ws = g.out_c * g.in_c * d->k_h * d->k_w;
    for (int32_t k = 0; k < groups; k++)
        conv2d_u8_backward_weight(x + k * xs, qx, e + k * ys, qe, gw + k * ws, sgw + k * g.out_c, gb + k * g.out_c,
                                  sgb + k * g.out_c, &g,
                                  active ? active + k * g.out_c : 0, scratch);
}
