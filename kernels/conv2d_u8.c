/* conv2d_u8.c: Conv2D on uint8 tensors, forward and backward (contract in nn.h), plus the
 * strided integer core and the output stages shared with convtranspose2d_u8.c.
 * Integer sums use the Cortex-M4 DSP extension (UXTB16 / SMLAD / USADA8). Twin: mcusim/ops/conv_u8.py. */
#include "nn.h"
#include "nn_simd.h"

/* ---- column dot product shared by both integer cores ----------------------------------------- */
int32_t nn__conv_u8_widen(const uint8_t *b, int32_t n4, uint32_t *out) {
    uint32_t sum = 0;
    for (int32_t i = 0; i < n4; i += 4) {
        const uint32_t v = nn__ld32(b + i);
        out[i >> 1] = __uxtb16(v);
        out[(i >> 1) + 1] = __uxtb16(__ror(v, 8));
        sum = __usada8(v, 0, sum);
    }
    return (int32_t)sum;
}

/* col: n4 bytes (n4 a multiple of 4; padding entries hold zx); ww: rows x n4/2 words, the weight rows
 * (padding entries zw) widened once per call like the column: per 4 bytes (b0,b2) and (b1,b3) as
 * halfword pairs; sum_w[o] = sum of row o. The column is widened once here, so every row costs two
 * word loads and two SMLAD per 4 bytes:
 *     acc[o * acc_stride] = sum_i (w[o][i] - zw) * (col[i] - zx)
 *                         = sum w*col - zx * sum_w[o] - zw * sum_col + n4 * zw * zx. */
void nn__conv_u8_column(const uint8_t *col, int32_t n4, const uint32_t *ww, const int32_t *sum_w, int32_t rows,
                        int32_t zx, int32_t zw, int32_t *acc, int32_t acc_stride, uint32_t *cw) {
    const int32_t off = n4 * zw * zx - zw * nn__conv_u8_widen(col, n4, cw);
    const int32_t h = n4 >> 1;
    int32_t o = 0;
    for (; o + 2 <= rows; o += 2) {
        const uint32_t *w0 = ww + o * h, *w1 = w0 + h;
        int32_t s0 = 0, s1 = 0;
        for (int32_t i = 0; i < h; i += 2) {
            const uint32_t c02 = cw[i], c13 = cw[i + 1];
            s0 = __smlad(w0[i], c02, s0);
            s1 = __smlad(w1[i], c02, s1);
            s0 = __smlad(w0[i + 1], c13, s0);
            s1 = __smlad(w1[i + 1], c13, s1);
        }
        acc[o * acc_stride] = s0 - zx * sum_w[o] + off;
        acc[(o + 1) * acc_stride] = s1 - zx * sum_w[o + 1] + off;
    }
    if (o < rows) {
        const uint32_t *w0 = ww + o * h;
        int32_t s0 = 0;
        for (int32_t i = 0; i < h; i++) s0 = __smlad(w0[i], cw[i], s0);
        acc[o * acc_stride] = s0 - zx * sum_w[o] + off;
    }
}

/* The same sums for very few rows (out_c <= 2), where a column cannot pay for itself: the taps are read
 * straight from the padded input through the offset table, n taps (the rows' zw padding beyond n is
 * left out, so sum_w is corrected for it). */
void nn__conv_u8_direct(const uint8_t *xb, const int32_t *offs, int32_t n, const uint8_t *w, int32_t n4,
                        const int32_t *sum_w, int32_t rows, int32_t zx, int32_t zw, int32_t *acc,
                        int32_t acc_stride) {
    const int32_t tail = (n4 - n) * zw;
    int32_t sx = 0, s0 = 0, s1 = 0;
    if (rows == 2) {
        const uint8_t *w0 = w, *w1 = w + n4;
        for (int32_t t = 0; t < n; t++) {
            const int32_t v = xb[offs[t]];
            sx += v;
            s0 += (int32_t)w0[t] * v;
            s1 += (int32_t)w1[t] * v;
        }
    } else {
        for (int32_t t = 0; t < n; t++) {
            const int32_t v = xb[offs[t]];
            sx += v;
            s0 += (int32_t)w[t] * v;
        }
    }
    const int32_t off = n * zw * zx - zw * sx;
    acc[0] = s0 - zx * (sum_w[0] - tail) + off;
    if (rows == 2) acc[acc_stride] = s1 - zx * (sum_w[1] - tail) + off;
}

/* ---- zero-point padded input copy -------------------------------------------------------------- */
void nn__conv_u8_pad(const uint8_t *x, int32_t c, int32_t h, int32_t w, int32_t top, int32_t bottom,
                     int32_t left, int32_t right, const uint8_t *in_active, uint8_t zx, uint8_t *xp) {
    const int32_t wp = w + left + right, hp = h + top + bottom;
    for (int32_t ch = 0; ch < c; ch++) {
        uint8_t *dst = xp + ch * hp * wp;
        if (in_active && !in_active[ch]) {
            for (int32_t i = 0; i < hp * wp; i++) dst[i] = zx;
            continue;
        }
        for (int32_t i = 0; i < top * wp; i++) dst[i] = zx;
        dst += top * wp;
        const uint8_t *src = x + ch * h * w;
        for (int32_t r = 0; r < h; r++, dst += wp, src += w) {
            for (int32_t i = 0; i < left; i++) dst[i] = zx;
            for (int32_t i = 0; i < w; i++) dst[left + i] = src[i];
            for (int32_t i = left + w; i < wp; i++) dst[i] = zx;
        }
        for (int32_t i = 0; i < bottom * wp; i++) dst[i] = zx;
    }
}

/* ---- strided integer core ------------------------------------------------------------------- */
/* Output channels are taken in groups of G (all of them unless their widened rows would pass
 * NN_CONV_U8_ROW_BYTES). work: the sums of one output row acc [G][out_w] int32, the group's weights
 * re-packed as rows of n4 = align4(in_c*k_h*k_w) bytes padded with zw, widened to halfword pairs
 * [G][n4/2] words (kept as bytes [G][n4] when out_c <= 2), sum_w [G] int32, the receptive-field column
 * [n4] bytes and its widened copy [n4/2] words, the offset of every tap in the padded input [n4] int32
 * (position independent), then the input copied with a border of zx (and zx in inactive channels)
 * [in_c][in_h + pad + bottom][in_w + pad + right], so that the gather needs no bounds checks. Per output
 * position the column is gathered once per group (padding, inactive channels and the tail hold zx, so
 * their (x - zx) is 0) and dotted with every row of the group. */
static inline int32_t nn__strided_far(int32_t out, int32_t s, int32_t pad, int32_t k, int32_t in) {
    const int32_t m = (out - 1) * s - pad + k - in;             /* rows / columns beyond the input */
    return m > 0 ? m : 0;
}

/* Output channels per pass: all of them, unless their widened rows would pass NN_CONV_U8_ROW_BYTES. */
static inline int32_t nn__strided_group(int32_t out_c, int32_t n4) {
    if (out_c <= 2) return out_c;
    const int32_t g = NN_CONV_U8_ROW_BYTES / (2 * n4);
    return g < 1 ? 1 : (g < out_c ? g : out_c);
}

int32_t nn__conv_u8_strided_work_size(const nn_conv_dims *d) {
    const int32_t n4 = nn__align4(d->in_c * d->k_h * d->k_w), g = nn__strided_group(d->out_c, n4);
    const int32_t hp = d->in_h + d->pad + nn__strided_far(d->out_h, d->stride, d->pad, d->k_h, d->in_h);
    const int32_t wp = d->in_w + d->pad + nn__strided_far(d->out_w, d->stride, d->pad, d->k_w, d->in_w);
    return g * (2 * n4 + 4 + 4 * d->out_w) + 7 * n4 + nn__align4(d->in_c * hp * wp);
}

void nn__conv_u8_strided(const uint8_t *x, int32_t zx, const uint8_t *w, int32_t zw, const nn_conv_dims *d,
                         const uint8_t *in_active, nn__conv_u8_out *out, int32_t *work) {
    const int32_t in_c = d->in_c, out_c = d->out_c, out_h = d->out_h, out_w = d->out_w, kh = d->k_h,
                  kw = d->k_w, s = d->stride, pad = d->pad;
    const int32_t n = in_c * kh * kw, n4 = nn__align4(n), plane = out_h * out_w, group = nn__strided_group(out_c, n4);
    const int32_t hp = d->in_h + pad + nn__strided_far(out_h, s, pad, kh, d->in_h);
    const int32_t wp = d->in_w + pad + nn__strided_far(out_w, s, pad, kw, d->in_w), cstep = hp * wp;
    int32_t *acc = work;
    uint8_t *wr = (uint8_t *)(acc + group * out_w);
    int32_t *sum_w = (int32_t *)(wr + 2 * group * n4);
    uint8_t *col = (uint8_t *)(sum_w + group);
    uint32_t *cw = (uint32_t *)(col + n4);
    int32_t *offs = (int32_t *)(cw + n4 / 2);
    uint8_t *xp = (uint8_t *)(offs + n4);
    const uint8_t zx8 = (uint8_t)zx, zw8 = (uint8_t)zw;
    nn__conv_u8_pad(x, in_c, d->in_h, d->in_w, pad, hp - d->in_h - pad, pad, wp - d->in_w - pad, in_active, zx8, xp);
    {
        int32_t t = 0;
        for (int32_t c = 0; c < in_c; c++)
            for (int32_t ky = 0; ky < kh; ky++)
                for (int32_t kx = 0; kx < kw; kx++) offs[t++] = c * cstep + ky * wp + kx;
    }
    for (int32_t o0 = 0; o0 < out_c; o0 += group) {
        const int32_t g = out_c - o0 < group ? out_c - o0 : group;
        for (int32_t o = 0; o < g; o++) {
            uint8_t *r = out_c <= 2 ? wr + o * n4 : col;
            const uint8_t *src = w + (o0 + o) * n;
            for (int32_t i = 0; i < n; i++) r[i] = src[i];
            for (int32_t i = n; i < n4; i++) r[i] = zw8;
            sum_w[o] = out_c <= 2 ? nn__sum_u8(r, n4) : nn__conv_u8_widen(r, n4, (uint32_t *)wr + o * (n4 >> 1));
        }
        for (int32_t i = n; i < n4; i++) col[i] = zx8;
        for (int32_t oy = 0; oy < out_h; oy++) {
            for (int32_t ox = 0; ox < out_w; ox++) {
                const uint8_t *xb = xp + oy * s * wp + ox * s;     /* padded (iy, ix) of tap (0, 0, 0) */
                if (out_c <= 2) {
                    nn__conv_u8_direct(xb, offs, n, wr, n4, sum_w, g, zx, zw, acc + ox, out_w);
                    continue;
                }
                for (int32_t t = 0; t < n; t++) col[t] = xb[offs[t]];
                nn__conv_u8_column(col, n4, (const uint32_t *)wr, sum_w, g, zx, zw, acc + ox, out_w, cw);
            }
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

/* work: the errors (e - ze) of the active channels as int16 rows [n_active][P] (P = out_h*out_w rounded
 * up to even), their channel numbers [out_c] int32, one gathered input plane int16 [P], the offsets of
 * the output positions in the padded input [P] int32, then the input as int16 (x - zx) with a border of
 * 0 [in_c][in_h + pad + bottom][in_w + pad + right]. Per tap (ic, kh, kw) the plane of inputs it meets
 * (x - zx, 0 at padding) is gathered once and dotted with every active oc (two rows per pass). */
int32_t conv2d_u8_backward_weight_buffer_size(const nn_conv_dims *d) {
    const int32_t pe = (d->out_h * d->out_w + 1) & ~1;
    const int32_t hp = d->in_h + d->pad + nn__strided_far(d->out_h, d->stride, d->pad, d->k_h, d->in_h);
    const int32_t wp = d->in_w + d->pad + nn__strided_far(d->out_w, d->stride, d->pad, d->k_w, d->in_w);
    return (d->out_c + 1) * pe * 2 + d->out_c * (4 + (int32_t)sizeof(nn_requant)) + pe * 4 +
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
    int32_t *idx = scratch;
    nn_requant *rq = (nn_requant *)(scratch + out_c);     /* the requantization of each active row */
    int16_t *de = (int16_t *)(rq + out_c), *xc = de + out_c * pe;
    int32_t *poff = (int32_t *)(xc + pe);
    int16_t *xp = (int16_t *)(poff + pe);
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
        idx[na++] = o;
    }
    if (na == 0) return;
    for (int32_t i = 0; i < in_c * cstep; i++) xp[i] = 0;
    for (int32_t c = 0; c < in_c; c++)
        for (int32_t iy = 0; iy < in_h; iy++) {
            int16_t *dst = xp + c * cstep + (iy + pad) * wp + pad;
            const uint8_t *src = x + c * in_plane + iy * in_w;
            for (int32_t ix = 0; ix < in_w; ix++) dst[ix] = (int16_t)((int32_t)src[ix] - zx);
        }
    for (int32_t oy = 0, p = 0; oy < out_h; oy++)
        for (int32_t ox = 0; ox < out_w; ox++) poff[p++] = oy * s * wp + ox * s;
    if (pe > plane) xc[plane] = 0;
    for (int32_t c = 0; c < in_c; c++) {
        for (int32_t ky = 0; ky < kh; ky++) {
            for (int32_t kx = 0; kx < kw; kx++) {
                const int16_t *xb = xp + c * cstep + ky * wp + kx;   /* padded input of tap (ky, kx) at (0, 0) */
                for (int32_t p = 0; p < plane; p++) xc[p] = xb[poff[p]];
                int16_t *gk = gw + (c * kh + ky) * kw + kx;
                int32_t k = 0;
                for (; k + 2 <= na; k += 2) {
                    int32_t i0, i1;
                    nn__dot2_i16(de + k * pe, de + (k + 1) * pe, xc, pe, &i0, &i1);
                    int16_t *g0 = gk + idx[k] * stride_o, *g1 = gk + idx[k + 1] * stride_o;
                    *g0 = (int16_t)nn_sat16(*g0 + nn_requant_apply(i0, rq[k]));
                    *g1 = (int16_t)nn_sat16(*g1 + nn_requant_apply(i1, rq[k + 1]));
                }
                if (k < na) {
                    int16_t *g0 = gk + idx[k] * stride_o;
                    *g0 = (int16_t)nn_sat16(*g0 + nn_requant_apply(nn__dot_i16(de + k * pe, xc, pe), rq[k]));
                }
            }
        }
    }
}
