/* convtranspose2d_u8.c: ConvTranspose2D on uint8 tensors, forward and backward (contract in
 * nn.h), plus the transposed integer core shared with conv2d_u8.c (its backward_input).
 * Integer sums use the Cortex-M4 DSP extension (SMLAD on tap pairs of a centred int16 copy).
 * Twin: mcusim/ops/conv_u8.py. */
#include "nn.h"
#include "nn_simd.h"

/* ---- transposed integer core ---------------------------------------------------------------- */
/* Gather form, split by stride phase: output row oy only receives the taps ky = py, py + s, ... with
 * py = (oy + pad) mod s (from input row iy = (oy + pad - ky) / s), and the same for columns. The s*s
 * phases (py, px) are taken one after the other: the phase's taps are paired and its weights packed
 * [out_c][np] (as the strided core; one phase's rows in the scratch instead of all s*s), then every two
 * output rows of the phase run nn__conv_u8_pairs_rows on the centred copy of the input, whose border of
 * 0 makes taps outside the input contribute nothing (the copy holds the active channels only).
 * work: the sums of two output rows of a phase acc [2][out_c][ceil(out_w/s)] int32, the packed weight
 * pairs [out_c][npmax] words, the tap pairs' offsets and weight indices [3][npmax] int32 (npmax: the largest
 * phase's pairs), then the centred copy [near + in_h + far rows][near + in_w + far columns]. */
static inline int32_t nn__taps(int32_t k, int32_t p, int32_t s) { return p < k ? (k - p + s - 1) / s : 0; }

/* Border of the padded input: taps reach input rows down to -near and up to in - 1 + far. */
static inline int32_t nn__t_near(int32_t k, int32_t s) { return (k - 1 + s - 1) / s; }
static inline int32_t nn__t_far(int32_t out, int32_t s, int32_t pad, int32_t in) {
    const int32_t m = (out - 1 + pad) / s - (in - 1);
    return m > 0 ? m : 0;
}

static inline int32_t nn__t_npmax(const nn_conv_dims *d) {
    return nn__npairs(d->in_c, nn__taps(d->k_h, 0, d->stride), nn__taps(d->k_w, 0, d->stride));
}

int32_t nn__conv_u8_transposed_work_size(const nn_conv_dims *d) {
    const int32_t s = d->stride, npmax = nn__t_npmax(d);
    const int32_t hp = nn__t_near(d->k_h, s) + d->in_h + nn__t_far(d->out_h, s, d->pad, d->in_h);
    const int32_t wp = nn__t_near(d->k_w, s) + d->in_w + nn__t_far(d->out_w, s, d->pad, d->in_w);
    const int32_t row = (d->out_w + s - 1) / s;
    return d->out_c * (8 * row + 4 * npmax) + 12 * npmax + nn__q15_bytes(d->in_c, hp, wp);
}

void nn__conv_u8_transposed(const uint8_t *x, int32_t zx, const uint8_t *w, int32_t zw, const nn_conv_dims *d,
                            const uint8_t *in_active, nn__conv_u8_out *out, int32_t *work) {
    const int32_t in_c = d->in_c, in_h = d->in_h, in_w = d->in_w, out_c = d->out_c, out_h = d->out_h,
                  out_w = d->out_w, kh = d->k_h, kw = d->k_w, s = d->stride, pad = d->pad;
    const int32_t plane = out_h * out_w, per_c = out_c * kh * kw, npmax = nn__t_npmax(d);
    const int32_t top = nn__t_near(kh, s), left = nn__t_near(kw, s);
    const int32_t hp = top + in_h + nn__t_far(out_h, s, pad, in_h), wp = left + in_w + nn__t_far(out_w, s, pad, in_w);
    const int32_t row = (out_w + s - 1) / s;                  /* positions of one output row in a phase */
    int32_t *acc = work;
    uint32_t *wq = (uint32_t *)(acc + 2 * out_c * row);
    int32_t *off = (int32_t *)(wq + out_c * npmax), *wlo = off + npmax, *whi = wlo + npmax;
    int16_t *xq = (int16_t *)(whi + npmax);
    const nn__conv_u8_sel sel = nn__conv_u8_select(in_active, in_c, nn__taps(kh, 0, s), nn__taps(kw, 0, s));
    const nn__q15_layout l = nn__conv_u8_layout(sel.n, hp, wp);
    nn__conv_u8_centre(x, &sel, in_h, in_w, top, left, hp, wp, zx, xq);
    for (int32_t py = 0; py < s; py++) {
        const int32_t nky = nn__taps(kh, py, s), oy0 = ((py - pad) % s + s) % s;
        for (int32_t px = 0; px < s; px++) {
            const int32_t nkx = nn__taps(kw, px, s);
            const int32_t ox0 = ((px - pad) % s + s) % s, nk = ox0 < out_w ? (out_w - ox0 + s - 1) / s : 0;
            if (nk == 0) continue;
            /* tap (c, j, i) reads input (iy0 - j, ix0 - i) and weight [c][o][py + j*s][px + i*s] */
            const int32_t np = nn__conv_u8_taps(&l, &sel, nky, nkx, -1, per_c, s * kw, s, off, wlo, whi);
            nn__conv_u8_pack(w + py * kw + px, zw, kh * kw, out_c, wlo, whi, np, wq);
            for (int32_t oy = oy0; oy < out_h; oy += 2 * s) {         /* two output rows of the phase per pass */
                const int32_t nr = oy + s < out_h ? 2 : 1, iy0 = (oy + pad - py) / s, ix0 = (ox0 + pad - px) / s;
                const int16_t *xa = xq + nn__q15_at(&l, 0, iy0 + top, ix0 + left);
                nn__conv_u8_pairs_rows(xa, xa + l.ys, nr, l.xs, nk, off, np, wq, out_c, acc);
                for (int32_t i = 0; i < nr; i++) {
                    const int32_t pos0 = (oy + i * s) * out_w + ox0;
                    nn__conv_u8_emit(out, acc + i * out_c * nk, 0, out_c, nk, pos0, s, plane);
                }
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

/* work: the inputs (x - zx) as int16 [in_c][P] (P = in_h*in_w rounded up to even), two gathered error
 * planes int16 [2][P], the gradient offset [in_c] int32 and the requantization [in_c] of each row, then the
 * errors of one output channel as int16 (e - ze) with a border of 0 [pad + out_h + bottom][pad + out_w +
 * right]. Per (oc, two taps (kh, kw)) the planes of errors the inputs feed (0 where dropped) are gathered
 * once and dotted with every ic, two by two (nn__conv_u8_grad). */
static inline int32_t nn__ct_far(int32_t in, int32_t s, int32_t pad, int32_t k, int32_t out) {
    const int32_t m = (in - 1) * s - pad + k - out;            /* rows / columns beyond the output */
    return m > 0 ? m : 0;
}

int32_t convtranspose2d_u8_backward_weight_buffer_size(const nn_conv_dims *d) {
    const int32_t pe = (d->in_h * d->in_w + 1) & ~1;
    const int32_t hp = d->pad + d->out_h + nn__ct_far(d->in_h, d->stride, d->pad, d->k_h, d->out_h);
    const int32_t wp = d->pad + d->out_w + nn__ct_far(d->in_w, d->stride, d->pad, d->k_w, d->out_w);
    return (d->in_c + 2) * pe * 2 + d->in_c * (4 + (int32_t)sizeof(nn_requant)) + nn__align4(hp * wp * 2);
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
    const int32_t zx = qx->zero_point, ze = qe->zero_point, stride_c = out_c * kk;
    const float unit = qe->scale * qx->scale;
    int16_t *xs = (int16_t *)scratch, *planes = xs + in_c * pe;
    int32_t *rbase = (int32_t *)(planes + 2 * pe);
    nn_requant *rq = (nn_requant *)(rbase + in_c);
    int16_t *ep = (int16_t *)(rq + in_c);
    for (int32_t c = 0; c < in_c; c++) {
        int16_t *r = xs + c * pe;
        const uint8_t *xc = x + c * in_plane;
        for (int32_t p = 0; p < in_plane; p++) r[p] = (int16_t)((int32_t)xc[p] - zx);
        if (pe > in_plane) r[in_plane] = 0;
    }
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
        gb[o] = (int16_t)nn_sat16(gb[o] + nn_round_scaled(sum, qe->scale * nn_grad_inverse(sgb[o])));
        const nn_requant r = nn_requant_make(unit * nn_grad_inverse(sgw[o]));
        for (int32_t c = 0; c < in_c; c++) {
            rbase[c] = c * stride_c + o * kk;
            rq[c] = r;
        }
        nn__conv_u8_grad(xs, in_c, pe, ep, 1, 0, kh, kw, in_h, in_w, s, wp, rbase, rq, gw, planes);
    }
}
