/* conv2d_u8.c: Conv2D on uint8 tensors, forward and backward (contract in nn.h), plus the
 * strided integer core and the output stages shared with convtranspose2d_u8.c.
 * Integer sums use the Cortex-M4 DSP extension (SMLAD on tap pairs of a centred int16 copy). Twin: mcusim/ops/conv_u8.py. */
#include "nn.h"
#include "nn_simd.h"

/* ---- centred input copy, tap pairs and the pair dot products shared by both integer cores ------- */
nn__q15_layout nn__conv_u8_layout(int32_t c, int32_t hp, int32_t wp) {
    if ((c & 1) == 0) return (nn__q15_layout){.cs = 2 * hp * wp, .ys = 2 * wp, .xs = 2, .pairs = 1};
    return (nn__q15_layout){.cs = hp * wp, .ys = wp, .xs = 1, .pairs = 0};
}

void nn__conv_u8_centre(const uint8_t *x, int32_t c, int32_t h, int32_t w, int32_t top, int32_t left, int32_t hp,
                        int32_t wp, const uint8_t *in_active, int32_t zx, int16_t *xq) {
    const nn__q15_layout l = nn__conv_u8_layout(c, hp, wp);
    uint32_t *z = (uint32_t *)xq;
    for (int32_t i = 0, nw = nn__q15_bytes(c, hp, wp) >> 2; i < nw; i++) z[i] = 0;
    for (int32_t ch = 0; ch < c; ch++) {
        if (in_active && !in_active[ch]) continue;
        const uint8_t *src = x + ch * h * w;
        for (int32_t r = 0; r < h; r++) {
            int16_t *dst = xq + nn__q15_at(&l, ch, top + r, left);
#pragma GCC unroll 2
            for (int32_t i = 0; i < w; i++, dst += l.xs) *dst = (int16_t)((int32_t)src[r * w + i] - zx);
        }
    }
}

int32_t nn__conv_u8_taps(const nn__q15_layout *l, int32_t c, int32_t nj, int32_t ni, int32_t sign, int32_t wc,
                         int32_t wj, int32_t wi, int32_t *off, int32_t *wlo, int32_t *whi) {
    int32_t t = 0;
    for (int32_t ch = 0; ch < c; ch += 1 + l->pairs)
        for (int32_t j = 0; j < nj; j++)
            for (int32_t i = 0; i < ni; i += 2 - l->pairs, t++) {
                const int32_t k = ch * wc + j * wj + i * wi;           /* weight index of tap (ch, j, i) */
                if (l->pairs) {                                        /* (ch, ch + 1) side by side */
                    off[t] = 2 * nn__q15_at(l, ch, sign * j, sign * i);
                    wlo[t] = k;
                    whi[t] = k + wc;
                } else if (i + 1 == ni) {                              /* the odd tap of a row, alone */
                    off[t] = 2 * nn__q15_at(l, ch, sign * j, sign * i);
                    wlo[t] = k;
                    whi[t] = -1;
                } else {                                               /* (i, i + 1): the lower address first */
                    const int32_t lower = sign > 0 ? i : i + 1;
                    off[t] = 2 * nn__q15_at(l, ch, sign * j, sign * lower);
                    wlo[t] = sign > 0 ? k : k + wi;
                    whi[t] = sign > 0 ? k + wi : k;
                }
            }
    return t;
}

void nn__conv_u8_pack(const uint8_t *w, int32_t zw, int32_t row_stride, int32_t rows, const int32_t *wlo,
                      const int32_t *whi, int32_t np, uint32_t *wq) {
    for (int32_t o = 0; o < rows; o++, w += row_stride) {
        const int32_t paired = (o | 1) < rows, step = paired ? 2 : 1;   /* rows (2k, 2k + 1) interleaved */
        uint32_t *dst = wq + o * np - (paired ? (o & 1) * (np - 1) : 0);
        for (int32_t t = 0; t < np; t++, dst += step) {
            const int32_t lo = (int32_t)w[wlo[t]] - zw, hi = whi[t] < 0 ? 0 : (int32_t)w[whi[t]] - zw;
            *dst = ((uint32_t)lo & 0xFFFFu) | ((uint32_t)hi << 16);
        }
    }
}

/* R (1 or 2) rows x P (1 or 2) positions: s[r][p] = sum_t SMLAD(weight pair t of row r, word at
 * xb + p * step + off[t]), written to acc[r * stride + p]; w: the rows' pairs (two rows interleaved).
 * Constant R and P after inlining; one pair per pass, not unrolled, so that the sums, the pointers and
 * the loaded words stay in registers. */
static inline __attribute__((always_inline)) void nn__pairs_block(const uint8_t *xb, int32_t step,
                                                                  const int32_t *off, int32_t np,
                                                                  const uint32_t *w, const int32_t R,
                                                                  const int32_t P, int32_t *acc,
                                                                  int32_t stride) {
    const uint8_t *xb1 = xb + step;
    int32_t s00 = 0, s01 = 0, s10 = 0, s11 = 0;
    const int32_t *end = off + np;
#pragma clang loop unroll(disable)
    while (off < end) {
        const int32_t o = *off++;
        const uint32_t a = *w++;
        const uint32_t x0 = nn__ld32(xb + o);
        s00 = __smlad(a, x0, s00);
        if (P == 2) {
            const uint32_t x1 = nn__ld32(xb1 + o);
            s01 = __smlad(a, x1, s01);
            if (R == 2) {
                const uint32_t b = *w++;
                s10 = __smlad(b, x0, s10);
                s11 = __smlad(b, x1, s11);
            }
        } else if (R == 2) {
            const uint32_t b = *w++;
            s10 = __smlad(b, x0, s10);
        }
    }
    acc[0] = s00;
    if (P == 2) acc[1] = s01;
    if (R == 2) acc[stride] = s10;
    if (R == 2 && P == 2) acc[stride + 1] = s11;
}

void nn__conv_u8_pairs_row(const int16_t *xb, int32_t step, int32_t npos, const int32_t *off, int32_t np,
                           const uint32_t *wq, int32_t rows, int32_t *acc) {
    const uint8_t *xp = (const uint8_t *)xb;
    const int32_t sb = 2 * step;
    int32_t k = 0;
    for (; k + 2 <= npos; k += 2, xp += 2 * sb) {
        int32_t o = 0;
        for (; o + 2 <= rows; o += 2) nn__pairs_block(xp, sb, off, np, wq + o * np, 2, 2, acc + o * npos + k, npos);
        if (o < rows) nn__pairs_block(xp, sb, off, np, wq + o * np, 1, 2, acc + o * npos + k, npos);
    }
    if (k < npos) {
        int32_t o = 0;
        for (; o + 2 <= rows; o += 2) nn__pairs_block(xp, sb, off, np, wq + o * np, 2, 1, acc + o * npos + k, npos);
        if (o < rows) nn__pairs_block(xp, sb, off, np, wq + o * np, 1, 1, acc + o * npos + k, npos);
    }
}

/* ---- strided integer core ------------------------------------------------------------------- */
/* Output channels are taken in groups of G (all of them unless their packed rows would pass
 * NN_CONV_U8_ROW_BYTES). work: the sums of one output row acc [G][out_w] int32, the group's packed
 * weight pairs [G][np] words, the tap pairs' offsets and weight indices [3][np] int32, then the
 * centred copy of the input with a border of 0 (nn__conv_u8_centre; rows in_h + pad + bottom, columns
 * in_w + pad + right), so that the taps need no bounds checks. Two output positions by two channels
 * per pass (nn__conv_u8_pairs_row). */
static inline int32_t nn__strided_far(int32_t out, int32_t s, int32_t pad, int32_t k, int32_t in) {
    const int32_t m = (out - 1) * s - pad + k - in;             /* rows / columns beyond the input */
    return m > 0 ? m : 0;
}

/* Output channels per pass: all of them, unless their packed rows would pass NN_CONV_U8_ROW_BYTES. */
static inline int32_t nn__strided_group(int32_t out_c, int32_t np) {
    const int32_t g = NN_CONV_U8_ROW_BYTES / (4 * np);
    return g < 1 ? 1 : (g < out_c ? g : out_c);
}

int32_t nn__conv_u8_strided_work_size(const nn_conv_dims *d) {
    const int32_t np = nn__npairs(d->in_c, d->k_h, d->k_w), g = nn__strided_group(d->out_c, np);
    const int32_t hp = d->in_h + d->pad + nn__strided_far(d->out_h, d->stride, d->pad, d->k_h, d->in_h);
    const int32_t wp = d->in_w + d->pad + nn__strided_far(d->out_w, d->stride, d->pad, d->k_w, d->in_w);
    return g * (4 * np + 4 * d->out_w) + 12 * np + nn__q15_bytes(d->in_c, hp, wp);
}

void nn__conv_u8_strided(const uint8_t *x, int32_t zx, const uint8_t *w, int32_t zw, const nn_conv_dims *d,
                         const uint8_t *in_active, nn__conv_u8_out *out, int32_t *work) {
    const int32_t in_c = d->in_c, out_c = d->out_c, out_h = d->out_h, out_w = d->out_w, kh = d->k_h,
                  kw = d->k_w, s = d->stride, pad = d->pad;
    const int32_t n = in_c * kh * kw, np = nn__npairs(in_c, kh, kw), plane = out_h * out_w;
    const int32_t group = nn__strided_group(out_c, np);
    const int32_t hp = d->in_h + pad + nn__strided_far(out_h, s, pad, kh, d->in_h);
    const int32_t wp = d->in_w + pad + nn__strided_far(out_w, s, pad, kw, d->in_w);
    int32_t *acc = work;
    uint32_t *wq = (uint32_t *)(acc + group * out_w);
    int32_t *off = (int32_t *)(wq + group * np), *wlo = off + np, *whi = wlo + np;
    int16_t *xq = (int16_t *)(whi + np);
    const nn__q15_layout l = nn__conv_u8_layout(in_c, hp, wp);
    nn__conv_u8_centre(x, in_c, d->in_h, d->in_w, pad, pad, hp, wp, in_active, zx, xq);
    nn__conv_u8_taps(&l, in_c, kh, kw, 1, kh * kw, kw, 1, off, wlo, whi);
    for (int32_t o0 = 0; o0 < out_c; o0 += group) {
        const int32_t g = out_c - o0 < group ? out_c - o0 : group;
        nn__conv_u8_pack(w + o0 * n, zw, n, g, wlo, whi, np, wq);
        for (int32_t oy = 0; oy < out_h; oy++) {
            nn__conv_u8_pairs_row(xq + oy * s * l.ys, s * l.xs, out_w, off, np, wq, g, acc);
            nn__conv_u8_emit(out, acc, o0, g, out_w, oy * out_w, 1, plane);
        }
    }
}

/* ---- output stages ---------------------------------------------------------------------------- */
void nn__conv_u8_emit(nn__conv_u8_out *out, const int32_t *acc, int32_t o0, int32_t rows, int32_t npos,
                      int32_t pos0, int32_t step, int32_t plane) {
    const nn_requant rq = out->rq;                                 /* locals: the uint8 stores may alias out */
    const int32_t zy = out->zy, zmask = out->zmask;
    int32_t imin = out->imin, imax = out->imax;
    for (int32_t o = o0; o < o0 + rows; o++) {
        const int32_t *a = acc + (o - o0) * npos;
        const int32_t base = o * plane + pos0;
        uint8_t *y = out->y + base;
        if (out->bias) {                                           /* forward: bias, ReLU */
            const int32_t b = out->bias[o], lo = out->relu ? 0 : NN_RANGE_EMPTY_MAX;
#pragma GCC unroll 1
            for (int32_t k = 0; k < npos; k++, y += step) {
                int32_t t = a[k] + b;
                t = t < lo ? lo : t;
                imin = t < imin ? t : imin;
                imax = t > imax ? t : imax;
                *y = nn_requant_u8(t, rq, zy);
            }
        } else if (out->mask) {                                    /* error: the x mask */
            const uint8_t *x = out->mask + base;
#pragma GCC unroll 1
            for (int32_t k = 0; k < npos; k++, y += step, x += step) {
                const int32_t t = *x <= zmask ? 0 : a[k];
                imin = t < imin ? t : imin;
                imax = t > imax ? t : imax;
                *y = nn_requant_u8(t, rq, zy);
            }
        } else {                                                   /* error, no mask */
#pragma GCC unroll 1
            for (int32_t k = 0; k < npos; k++, y += step) {
                const int32_t t = a[k];
                imin = t < imin ? t : imin;
                imax = t > imax ? t : imax;
                *y = nn_requant_u8(t, rq, zy);
            }
        }
    }
    out->imin = imin;
    out->imax = imax;
}

void nn__conv_u8_out_forward(nn__conv_u8_out *out, float unit, const uint8_t *b, const nn_qparams *qb, uint8_t *y,
                             const nn_qparams *qy, int32_t out_c, int32_t relu, int32_t *bias_out) {
    const float ratio = qb->scale / unit;
    for (int32_t o = 0; o < out_c; o++) bias_out[o] = nn_bias_units(b[o], qb->zero_point, ratio);
    *out = (nn__conv_u8_out){.rq = nn_requant_make(unit / qy->scale), .zy = qy->zero_point, .relu = relu,
                             .unit = unit, .bias = bias_out, .y = y, .imin = NN_RANGE_EMPTY_MIN,
                             .imax = NN_RANGE_EMPTY_MAX};
}

void nn__conv_u8_out_error(nn__conv_u8_out *out, float unit, uint8_t *ex, const nn_qparams *qex, const uint8_t *x,
                           const nn_qparams *qx) {
    *out = (nn__conv_u8_out){.rq = nn_requant_make(unit / qex->scale), .zy = qex->zero_point,
                             .zmask = (x && qx) ? qx->zero_point : 0, .unit = unit, .mask = x, .y = ex,
                             .imin = NN_RANGE_EMPTY_MIN, .imax = NN_RANGE_EMPTY_MAX};
}

void nn__conv_u8_finish(const nn__conv_u8_out *out, nn_qparams *q, float alpha) {
    nn_range_observe(q, out->imin, out->imax, out->unit, alpha);
}

/* ---- conv2d --------------------------------------------------------------------------------- */
int32_t conv2d_u8_forward_buffer_size(const nn_conv_dims *d) {
    return d->out_c * 4 + nn__conv_u8_strided_work_size(d);           /* the integer biases, the core */
}

void conv2d_u8_forward(const uint8_t *x, const nn_qparams *qx, const uint8_t *w, const nn_qparams *qw,
                       const uint8_t *b, const nn_qparams *qb, uint8_t *y, nn_qparams *qy,
                       const nn_conv_dims *d, int32_t relu, float alpha, int32_t *scratch) {
    nn__conv_u8_out out;
    nn__conv_u8_out_forward(&out, qw->scale * qx->scale, b, qb, y, qy, d->out_c, relu, scratch);
    nn__conv_u8_strided(x, qx->zero_point, w, qw->zero_point, d, 0, &out, scratch + d->out_c);
    nn__conv_u8_finish(&out, qy, alpha);
}

/* The adjoint of the strided convolution is the transposed one on the swapped geometry; the weights
 * [oc][ic][kh][kw] are exactly its [in][out][kh][kw] layout. Inactive oc count as zero error. */
int32_t conv2d_u8_backward_input_buffer_size(const nn_conv_dims *d) {
    const nn_conv_dims t = nn__conv_dims_swap(d);
    return nn__conv_u8_transposed_work_size(&t);
}

void conv2d_u8_backward_input(const uint8_t *w, const nn_qparams *qw, const uint8_t *e, const nn_qparams *qe,
                              uint8_t *ex, nn_qparams *qex, const uint8_t *x, const nn_qparams *qx,
                              const nn_conv_dims *d, const uint8_t *active, float alpha, int32_t *scratch) {
    const nn_conv_dims t = nn__conv_dims_swap(d);
    nn__conv_u8_out out;
    nn__conv_u8_out_error(&out, qw->scale * qe->scale, ex, qex, x, qx);
    nn__conv_u8_transposed(e, qe->zero_point, w, qw->zero_point, &t, active, &out, scratch);
    nn__conv_u8_finish(&out, qex, alpha);
}

/* ---- weight gradients shared by both backward_weight kernels ----------------------------------- */
/* s[r][j] = sum over n (even) int16 of a_r * b_j, two rows by two planes per pass (one pair of each per
 * step, not unrolled, so that the sums, pointers and loaded words stay in registers). */
static inline void nn__dot22_i16(const int16_t *a0, const int16_t *a1, const int16_t *b0, const int16_t *b1,
                                 int32_t n, int32_t *s) {
    const uint32_t *p0 = (const uint32_t *)a0, *p1 = (const uint32_t *)a1, *q0 = (const uint32_t *)b0,
                   *q1 = (const uint32_t *)b1, *end = p0 + (n >> 1);
    int32_t s00 = 0, s01 = 0, s10 = 0, s11 = 0;
#pragma clang loop unroll(disable)
    while (p0 < end) {
        const uint32_t x = *p0++, y = *p1++, u = *q0++, v = *q1++;
        s00 = __smlad(x, u, s00);
        s01 = __smlad(x, v, s01);
        s10 = __smlad(y, u, s10);
        s11 = __smlad(y, v, s11);
    }
    s[0] = s00;
    s[1] = s01;
    s[2] = s10;
    s[3] = s11;
}

/* The plane of tap offset src (gh x gw positions, stride s, row pitch wp) into dst. */
static void nn__gather_plane(const int16_t *src, int32_t gh, int32_t gw, int32_t s, int32_t wp, int16_t *dst) {
    for (int32_t y = 0; y < gh; y++, src += s * wp) {
        const int16_t *p = src;
#pragma GCC unroll 2
        for (int32_t x = 0; x < gw; x++, p += s) *dst++ = *p;
    }
}

void nn__conv_u8_grad(const int16_t *rows, int32_t nrows, int32_t pe, const int16_t *src, int32_t nc,
                      int32_t cstep, int32_t kh, int32_t kw, int32_t gh, int32_t gw, int32_t s, int32_t wp,
                      const int32_t *rbase, const nn_requant *rq, int16_t *g, int16_t *planes) {
    const int32_t kk = kh * kw, ntaps = nc * kk;
    int16_t *b0 = planes, *b1 = planes + pe;
    if (pe > gh * gw) b0[gh * gw] = b1[gh * gw] = 0;
    for (int32_t t = 0; t < ntaps; t += 2) {
        const int32_t pair = t + 1 < ntaps;                     /* an odd last tap runs against itself */
        for (int32_t j = 0; j <= pair; j++) {
            const int32_t u = t + j, r = u % kk;
            nn__gather_plane(src + (u / kk) * cstep + (r / kw) * wp + r % kw, gh, gw, s, wp, j ? b1 : b0);
        }
        for (int32_t k = 0; k < nrows; k += 2) {
            const int32_t k1 = k + 1 < nrows ? k + 1 : k;       /* an odd last row runs against itself */
            int32_t i[4];
            nn__dot22_i16(rows + k * pe, rows + k1 * pe, b0, pair ? b1 : b0, pe, i);
            for (int32_t rr = 0; rr <= k1 - k; rr++)
                for (int32_t j = 0; j <= pair; j++) {
                    int16_t *gk = g + rbase[k + rr] + t + j;
                    *gk = (int16_t)nn_sat16(*gk + nn_requant_apply(i[2 * rr + j], rq[k + rr]));
                }
        }
    }
}

/* work: the errors (e - ze) of the active channels as int16 rows [n_active][P] (P = out_h*out_w rounded
 * up to even), two gathered input planes int16 [2][P], the gradient offset [out_c] int32 and the
 * requantization [out_c] of each active row, then the input as int16 (x - zx) with a border of 0
 * [in_c][in_h + pad + bottom][in_w + pad + right]. Per two taps (ic, kh, kw) the planes of inputs they
 * meet (x - zx, 0 at padding) are gathered once and dotted with every active oc, two by two
 * (nn__conv_u8_grad). */
int32_t conv2d_u8_backward_weight_buffer_size(const nn_conv_dims *d) {
    const int32_t pe = (d->out_h * d->out_w + 1) & ~1;
    const int32_t hp = d->in_h + d->pad + nn__strided_far(d->out_h, d->stride, d->pad, d->k_h, d->in_h);
    const int32_t wp = d->in_w + d->pad + nn__strided_far(d->out_w, d->stride, d->pad, d->k_w, d->in_w);
    return (d->out_c + 2) * pe * 2 + d->out_c * (4 + (int32_t)sizeof(nn_requant)) +
           nn__align4(d->in_c * hp * wp * 2);
}

void conv2d_u8_backward_weight(const uint8_t *x, const nn_qparams *qx, const uint8_t *e, const nn_qparams *qe,
                               int16_t *gw, const float *sgw, int16_t *gb, const float *sgb,
                               const nn_conv_dims *d, const uint8_t *active, int32_t *scratch) {
    const int32_t in_c = d->in_c, in_h = d->in_h, in_w = d->in_w, out_c = d->out_c, out_h = d->out_h,
                  out_w = d->out_w, kh = d->k_h, kw = d->k_w, s = d->stride, pad = d->pad;
    const int32_t plane = out_h * out_w, pe = (plane + 1) & ~1, in_plane = in_h * in_w;
    const int32_t zx = qx->zero_point, ze = qe->zero_point, stride_o = in_c * kh * kw;
    const int32_t hp = in_h + pad + nn__strided_far(out_h, s, pad, kh, in_h);
    const int32_t wp = in_w + pad + nn__strided_far(out_w, s, pad, kw, in_w), cstep = hp * wp;
    const float unit = qe->scale * qx->scale;
    int16_t *de = (int16_t *)scratch, *planes = de + out_c * pe;
    int32_t *rbase = (int32_t *)(planes + 2 * pe);
    nn_requant *rq = (nn_requant *)(rbase + out_c);       /* the requantization of each active row */
    int16_t *xp = (int16_t *)(rq + out_c);
    int32_t na = 0;
    for (int32_t o = 0; o < out_c; o++) {
        if (active && !active[o]) continue;
        int16_t *r = de + na * pe;
        const uint8_t *eo = e + o * plane;
        int32_t sum = 0;
        for (int32_t p = 0; p < plane; p++) {
            const int32_t v = (int32_t)eo[p] - ze;
            r[p] = (int16_t)v;
            sum += v;
        }
        if (pe > plane) r[plane] = 0;
        gb[o] = (int16_t)nn_sat16(gb[o] + nn_round_scaled(sum, qe->scale / sgb[o]));
        rq[na] = nn_requant_make(unit / sgw[o]);
        rbase[na++] = o * stride_o;
    }
    if (na == 0) return;
    for (int32_t i = 0; i < in_c * cstep; i++) xp[i] = 0;
    for (int32_t c = 0; c < in_c; c++)
        for (int32_t iy = 0; iy < in_h; iy++) {
            int16_t *dst = xp + c * cstep + (iy + pad) * wp + pad;
            const uint8_t *src = x + c * in_plane + iy * in_w;
            for (int32_t ix = 0; ix < in_w; ix++) dst[ix] = (int16_t)((int32_t)src[ix] - zx);
        }
    nn__conv_u8_grad(de, na, pe, xp, in_c, cstep, kh, kw, out_h, out_w, s, wp, rbase, rq, gw, planes);
}
