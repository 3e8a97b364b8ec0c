/* convtranspose2d_u8.c: ConvTranspose2D on uint8 tensors, forward and backward (contract in
 * nn.h), plus the transposed integer core shared with conv2d_u8.c (its backward_input).
 * Integer sums use the Cortex-M4 DSP extension (UXTB16 / SMLAD / USADA8). Twin: mcusim/ops/conv_u8.py. */
#include "nn.h"
#include "nn_simd.h"

/* ---- transposed integer core ---------------------------------------------------------------- */
/* Gather form, split by stride phase: output row oy only receives the taps ky = py, py + s, ... with
 * py = (oy + pad) mod s (from input row iy = (oy + pad - ky) / s), and the same for columns. The s*s
 * phases (py, px) are taken one after the other: the phase's weights are packed into rows [out_c][n4]
 * (n4 = align4 of in_c * #ky * #kx, padded with zw; widened to halfword pairs, 2*n4 bytes a row, when
 * out_c > 2) with their sums, then every output position of the phase gathers its column from a copy of
 * the input with a border of zx (zx also in inactive channels), so taps outside the input contribute
 * (zx - zx) = 0, and runs the same column dot product as the strided core. Packing one phase at a time
 * keeps one phase's rows in the scratch instead of all s*s (each output is still one exact dot product).
 * work: the sums of one output row of a phase acc [out_c][ceil(out_w/s)] int32, sum_w [out_c] int32,
 * the phase's tap offsets in the padded input and in the weights [n4max] int32 each, the packed rows
 * [2 * n4max * out_c] bytes, the column [n4max] bytes and its widened copy [n4max/2] words
 * (n4max = align4(in_c * ceil(k_h/s) * ceil(k_w/s)), the largest phase), then the padded input
 * [in_c][top + in_h + bottom][left + in_w + right]. */
static inline int32_t nn__taps(int32_t k, int32_t p, int32_t s) { return p < k ? (k - p + s - 1) / s : 0; }

/* Border of the padded input: taps reach input rows down to -near and up to in - 1 + far. */
static inline int32_t nn__t_near(int32_t k, int32_t s) { return (k - 1 + s - 1) / s; }
static inline int32_t nn__t_far(int32_t out, int32_t s, int32_t pad, int32_t in) {
    const int32_t m = (out - 1 + pad) / s - (in - 1);
    return m > 0 ? m : 0;
}

static inline int32_t nn__t_n4max(const nn_conv_dims *d) {
    return nn__align4(d->in_c * nn__taps(d->k_h, 0, d->stride) * nn__taps(d->k_w, 0, d->stride));
}

int32_t nn__conv_u8_transposed_work_size(const nn_conv_dims *d) {
    const int32_t s = d->stride, n4max = nn__t_n4max(d);
    const int32_t hp = nn__t_near(d->k_h, s) + d->in_h + nn__t_far(d->out_h, s, d->pad, d->in_h);
    const int32_t wp = nn__t_near(d->k_w, s) + d->in_w + nn__t_far(d->out_w, s, d->pad, d->in_w);
    const int32_t row = (d->out_w + s - 1) / s;
    return d->out_c * (8 + 4 * row) + 11 * n4max + 2 * n4max * d->out_c + nn__align4(d->in_c * hp * wp);
}

void nn__conv_u8_transposed(const uint8_t *x, int32_t zx, const uint8_t *w, int32_t zw, const nn_conv_dims *d,
                            const uint8_t *in_active, nn__conv_u8_out *out, int32_t *work) {
    const int32_t in_c = d->in_c, in_h = d->in_h, in_w = d->in_w, out_c = d->out_c, out_h = d->out_h,
                  out_w = d->out_w, kh = d->k_h, kw = d->k_w, s = d->stride, pad = d->pad;
    const int32_t plane = out_h * out_w, per_c = out_c * kh * kw, n4max = nn__t_n4max(d);
    const int32_t top = nn__t_near(kh, s), left = nn__t_near(kw, s);
    const int32_t hp = top + in_h + nn__t_far(out_h, s, pad, in_h), wp = left + in_w + nn__t_far(out_w, s, pad, in_w);
    const int32_t cstep = hp * wp;
    const int32_t row = (out_w + s - 1) / s;                  /* positions of one output row in a phase */
    int32_t *acc = work, *sum_w = work + out_c * row, *offs = sum_w + out_c, *wo = offs + n4max;
    uint8_t *rows = (uint8_t *)(wo + n4max);
    uint8_t *col = rows + 2 * n4max * out_c;
    uint32_t *cw = (uint32_t *)(col + n4max);
    uint8_t *xp = (uint8_t *)(cw + n4max / 2);
    const uint8_t zx8 = (uint8_t)zx, zw8 = (uint8_t)zw;
    nn__conv_u8_pad(x, in_c, in_h, in_w, top, hp - top - in_h, left, wp - left - in_w, in_active, zx8, xp);
    for (int32_t py = 0; py < s; py++) {
        const int32_t nky = nn__taps(kh, py, s), oy0 = ((py - pad) % s + s) % s;
        for (int32_t px = 0; px < s; px++) {
            const int32_t nkx = nn__taps(kw, px, s), n = in_c * nky * nkx, n4 = nn__align4(n);
            const int32_t ox0 = ((px - pad) % s + s) % s, nk = ox0 < out_w ? (out_w - ox0 + s - 1) / s : 0;
            int32_t t = 0;                                     /* tap j, i reads input (iy0 - j, ix0 - i) */
            for (int32_t c = 0; c < in_c; c++)
                for (int32_t j = 0; j < nky; j++)
                    for (int32_t i = 0; i < nkx; i++, t++) {
                        offs[t] = c * cstep - j * wp - i;
                        wo[t] = c * per_c + (py + j * s) * kw + px + i * s;
                    }
            for (int32_t o = 0; o < out_c; o++) {
                uint8_t *r = out_c <= 2 ? rows + o * n4 : col;
                const uint8_t *wb = w + o * kh * kw;
                for (t = 0; t < n; t++) r[t] = wb[wo[t]];
                for (t = n; t < n4; t++) r[t] = zw8;
                sum_w[o] = out_c <= 2 ? nn__sum_u8(r, n4) : nn__conv_u8_widen(r, n4, (uint32_t *)rows + o * (n4 >> 1));
            }
            for (int32_t oy = oy0; oy < out_h; oy += s) {
                const int32_t iy0 = (oy + pad - py) / s;       /* input row of tap ky = py; tap j: iy0 - j */
                for (int32_t k = 0, ox = ox0; k < nk; k++, ox += s) {
                    const uint8_t *xb = xp + (iy0 + top) * wp + (ox + pad - px) / s + left;
                    if (out_c <= 2) {
                        nn__conv_u8_direct(xb, offs, n, rows, n4, sum_w, out_c, zx, zw, acc + k, nk);
                        continue;
                    }
                    for (t = 0; t < n; t++) col[t] = xb[offs[t]];
                    for (t = n; t < n4; t++) col[t] = zx8;
                    nn__conv_u8_column(col, n4, (const uint32_t *)rows, sum_w, out_c, zx, zw, acc + k, nk, cw);
                }
                nn__conv_u8_emit(out, acc, 0, out_c, nk, oy * out_w + ox0, s, plane);
            }
        }
    }
}

/* ---- convtranspose2d ------------------------------------------------------------------------ */
int32_t convtranspose2d_u8_forward_buffer_size(const nn_conv_dims *d) {
    return d->out_c * 4 + nn__conv_u8_transposed_work_size(d);        /* the integer biases, the core */
}

void convtranspose2d_u8_forward(const uint8_t *x, const nn_qparams *qx, const uint8_t *w, const nn_qparams *qw,
                                const uint8_t *b, const nn_qparams *qb, uint8_t *y, nn_qparams *qy,
                                const nn_conv_dims *d, int32_t relu, float alpha, int32_t *scratch) {
    nn__conv_u8_out out;
    nn__conv_u8_out_forward(&out, qw->scale * qx->scale, b, qb, y, qy, d->out_c, relu, scratch);
    nn__conv_u8_transposed(x, qx->zero_point, w, qw->zero_point, d, 0, &out, scratch + d->out_c);
    nn__conv_u8_finish(&out, qy, alpha);
}

/* The adjoint is the strided convolution of e on the swapped geometry; the weights [ic][oc][kh][kw]
 * are exactly its [out][in][kh][kw] layout. Inactive oc count as zero error. */
int32_t convtranspose2d_u8_backward_input_buffer_size(const nn_conv_dims *d) {
    const nn_conv_dims t = nn__conv_dims_swap(d);
    return nn__conv_u8_strided_work_size(&t);
}

void convtranspose2d_u8_backward_input(const uint8_t *w, const nn_qparams *qw, const uint8_t *e,
                                       const nn_qparams *qe, uint8_t *ex, nn_qparams *qex, const uint8_t *x,
                                       const nn_qparams *qx, const nn_conv_dims *d, const uint8_t *active,
                                       float alpha, int32_t *scratch) {
    const nn_conv_dims t = nn__conv_dims_swap(d);
    nn__conv_u8_out out;
    nn__conv_u8_out_error(&out, qw->scale * qe->scale, ex, qex, x, qx);
    nn__conv_u8_strided(e, qe->zero_point, w, qw->zero_point, &t, active, &out, scratch);
    nn__conv_u8_finish(&out, qex, alpha);
}

/* work: the inputs (x - zx) as int16 [in_c][P] (P = in_h*in_w rounded up to even), one gathered error
 * plane int16 [P], the offsets of the input positions in the padded errors [P] int32, then the errors of
 * one output channel as int16 (e - ze) with a border of 0 [pad + out_h + bottom][pad + out_w + right].
 * Per (oc, kh, kw) the plane of errors the inputs feed (0 where dropped) is gathered once and dotted
 * with every ic (two per pass). */
static inline int32_t nn__ct_far(int32_t in, int32_t s, int32_t pad, int32_t k, int32_t out) {
    const int32_t m = (in - 1) * s - pad + k - out;            /* rows / columns beyond the output */
    return m > 0 ? m : 0;
}

int32_t convtranspose2d_u8_backward_weight_buffer_size(const nn_conv_dims *d) {
    const int32_t pe = (d->in_h * d->in_w + 1) & ~1;
    const int32_t hp = d->pad + d->out_h + nn__ct_far(d->in_h, d->stride, d->pad, d->k_h, d->out_h);
    const int32_t wp = d->pad + d->out_w + nn__ct_far(d->in_w, d->stride, d->pad, d->k_w, d->out_w);
    return (d->in_c + 1) * pe * 2 + pe * 4 + ((hp * wp * 2 + 3) & ~3);
}

void convtranspose2d_u8_backward_weight(const uint8_t *x, const nn_qparams *qx, const uint8_t *e,
                                        const nn_qparams *qe, int16_t *gw, const float *sgw, int16_t *gb,
                                        const float *sgb, const nn_conv_dims *d, const uint8_t *active,
                                        int32_t *scratch) {
    const int32_t in_c = d->in_c, in_h = d->in_h, in_w = d->in_w, out_c = d->out_c, out_h = d->out_h,
                  out_w = d->out_w, kh = d->k_h, kw = d->k_w, s = d->stride, pad = d->pad;
    const int32_t in_plane = in_h * in_w, pe = (in_plane + 1) & ~1, plane = out_h * out_w, kk = kh * kw;
    const int32_t hp = pad + out_h + nn__ct_far(in_h, s, pad, kh, out_h);
    const int32_t wp = pad + out_w + nn__ct_far(in_w, s, pad, kw, out_w);
    const int32_t zx = qx->zero_point, ze = qe->zero_point;
    const float unit = qe->scale * qx->scale;
    int16_t *xs = (int16_t *)scratch, *ec = xs + in_c * pe;
    int32_t *poff = (int32_t *)(ec + pe);
    int16_t *ep = (int16_t *)(poff + pe);
    for (int32_t c = 0; c < in_c; c++) {
        int16_t *r = xs + c * pe;
        const uint8_t *xp = x + c * in_plane;
        for (int32_t p = 0; p < in_plane; p++) r[p] = (int16_t)((int32_t)xp[p] - zx);
        if (pe > in_plane) r[in_plane] = 0;
    }
    if (pe > in_plane) ec[in_plane] = 0;
    for (int32_t iy = 0, p = 0; iy < in_h; iy++)
        for (int32_t ix = 0; ix < in_w; ix++) poff[p++] = iy * s * wp + ix * s;
    for (int32_t i = 0; i < hp * wp; i++) ep[i] = 0;
    for (int32_t o = 0; o < out_c; o++) {
        if (active && !active[o]) continue;
        const uint8_t *eo = e + o * plane;
        int32_t sum = 0;
        for (int32_t oy = 0; oy < out_h; oy++) {
            int16_t *dst = ep + (oy + pad) * wp + pad;
            const uint8_t *src = eo + oy * out_w;
            for (int32_t ox = 0; ox < out_w; ox++) {
                const int32_t v = (int32_t)src[ox] - ze;
                dst[ox] = (int16_t)v;
                sum += v;
            }
        }
        gb[o] = (int16_t)nn_sat16(gb[o] + nn_round_scaled(sum, qe->scale / sgb[o]));
        const nn_requant rq = nn_requant_make(unit / sgw[o]);
        for (int32_t ky = 0; ky < kh; ky++) {
            for (int32_t kx = 0; kx < kw; kx++) {
                const int16_t *eb = ep + ky * wp + kx;      /* padded error of tap (ky, kx) at input (0, 0) */
                for (int32_t p = 0; p < in_plane; p++) ec[p] = eb[poff[p]];
                const int32_t k = o * kk + ky * kw + kx, stride_c = out_c * kk;
                int32_t c = 0;
                for (; c + 2 <= in_c; c += 2) {
                    int32_t i0, i1;
                    nn__dot2_i16(xs + c * pe, xs + (c + 1) * pe, ec, pe, &i0, &i1);
                    int16_t *g0 = gw + c * stride_c + k, *g1 = g0 + stride_c;
                    *g0 = (int16_t)nn_sat16(*g0 + nn_requant_apply(i0, rq));
                    *g1 = (int16_t)nn_sat16(*g1 + nn_requant_apply(i1, rq));
                }
                if (c < in_c) {
                    int16_t *g = gw + c * stride_c + k;
                    *g = (int16_t)nn_sat16(*g + nn_requant_apply(nn__dot_i16(xs + c * pe, ec, pe), rq));
                }
            }
        }
    }
}
