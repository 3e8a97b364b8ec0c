/* maxpool2d_u8.c: max pooling on uint8 codes, forward and backward (contract in nn.h; twin:
 * mcusim/ops/pool.py). The common 2x2 stride-2 window takes two outputs per pair of 32-bit loads with
 * the SIMD byte maximum (USUB8 + SEL); the backward keeps one int32 plane of error sums per channel. */
#include "nn.h"
#include "nn_simd.h"

#define NN_BIG 3.0e38f

/* Bytewise max of four lanes: USUB8 sets a GE flag per byte where a >= b, SEL takes those bytes of a. */
static inline uint32_t nn__max4_u8(uint32_t a, uint32_t b) {
    (void)__usub8(a, b);
    return __sel(a, b);
}

/* Offset (from p) of the chosen tap of a window of rows x cols codes at p, row pitch w: first max. */
static inline __attribute__((always_inline)) int32_t nn__argmax_u8(const uint8_t *p, int32_t rows, int32_t cols, int32_t w) {
    int32_t best = 0, m = p[0];
    for (int32_t r = 0; r < rows; r++)
        for (int32_t k = 0; k < cols; k++)
            if (p[r * w + k] > m) {
                m = p[r * w + k];
                best = r * w + k;
            }
    return best;
}

static inline uint8_t nn__max_u8(const uint8_t *p, int32_t rows, int32_t cols, int32_t w) {
    uint8_t m = 0;
    for (int32_t r = 0; r < rows; r++, p += w)
        for (int32_t k = 0; k < cols; k++) m = p[k] > m ? p[k] : m;
    return m;
}

/* Outputs o0 <= o < o1 of one output row whose windows cover the `rows` input rows at xr. */
static void nn__max_row_u8(const uint8_t *xr, int32_t rows, uint8_t *y, int32_t o0, int32_t o1,
                           const nn_conv_dims *d) {
    for (int32_t o = o0; o < o1; o++) {
        int32_t x0, x1;
        nn__pool_span(o, d->stride, d->pad, d->k_w, d->in_w, &x0, &x1);
        y[o] = nn__max_u8(xr + x0, rows, x1 - x0, d->in_w);
    }
}

void maxpool2d_u8_forward(const uint8_t *x, const nn_qparams *qx, uint8_t *y, nn_qparams *qy,
                          const nn_conv_dims *d) {
    const int32_t in_h = d->in_h, in_w = d->in_w, out_h = d->out_h, out_w = d->out_w, pad = d->pad;
    /* 2x2 stride 2: outputs [pa, pa + pairs) have both columns inside the input; taken two at a time */
    const int32_t pa = (pad + 1) / 2, lim = in_w + pad - 2;
    const int32_t pb = lim < 0 ? 0 : (lim / 2 + 1 < out_w ? lim / 2 + 1 : out_w);
    const int32_t pairs = (d->k_w == 2 && d->stride == 2 && pb > pa) ? (pb - pa) & ~1 : 0;
    for (int32_t c = 0; c < d->in_c; c++, x += in_h * in_w) {
        for (int32_t oy = 0; oy < out_h; oy++, y += out_w) {
            int32_t y0, y1;
            nn__pool_span(oy, d->stride, pad, d->k_h, in_h, &y0, &y1);
            const uint8_t *xr = x + y0 * in_w;
            if (!pairs || y1 - y0 != 2) {
                nn__max_row_u8(xr, y1 - y0, y, 0, out_w, d);
                continue;
            }
            nn__max_row_u8(xr, 2, y, 0, pa, d);
            for (int32_t o = pa; o < pa + pairs; o += 2) {
                const uint8_t *p = xr + 2 * o - pad;
                uint32_t v = nn__max4_u8(nn__ld32(p), nn__ld32(p + in_w));
                v = nn__max4_u8(v, v >> 8);                   /* bytes 0 and 2: the two windows' maxima */
                y[o] = (uint8_t)v;
                y[o + 1] = (uint8_t)(v >> 16);
            }
            nn__max_row_u8(xr, 2, y, pa + pairs, out_w, d);
        }
    }
    *qy = *qx;
}

int32_t maxpool2d_u8_backward_buffer_size(const nn_conv_dims *d) { return d->in_h * d->in_w * 4; }

void maxpool2d_u8_backward(const uint8_t *x, const nn_qparams *qx, const uint8_t *e, const nn_qparams *qe,
                           uint8_t *ex, nn_qparams *qex, const nn_conv_dims *d, float alpha, int32_t *scratch) {
    (void)qx;
    const int32_t in_w = d->in_w, plane = d->in_h * in_w, ze = qe->zero_point, zex = qex->zero_point;
    const float se = qe->scale, inv = 1.0f / qex->scale;
    const uint8_t q0 = nn_quantize(0.0f, inv, zex);
    float tmin = NN_BIG, tmax = -NN_BIG;
    int32_t zero = 0;
    for (int32_t c = 0; c < d->in_c; c++, x += plane, ex += plane) {
        for (int32_t i = 0; i < plane; i++) scratch[i] = 0;
        for (int32_t oy = 0; oy < d->out_h; oy++)
            for (int32_t ox = 0; ox < d->out_w; ox++, e++) {
                const nn__pool_window w = nn__pool_win(d, oy, ox);
                const int32_t at = w.at + (w.rows == 2 && w.cols == 2 ? nn__argmax_u8(x + w.at, 2, 2, in_w)
                                                                      : nn__argmax_u8(x + w.at, w.rows, w.cols, in_w));
                scratch[at] += (int32_t)*e - ze;
            }
        for (int32_t i = 0; i < plane; i++) {
            if (!scratch[i]) {                 /* most inputs: chosen by no window (or the sum is 0) */
                ex[i] = q0;
                zero = 1;
                continue;
            }
            const float t = (float)scratch[i] * se;
            if (t < tmin) tmin = t;
            if (t > tmax) tmax = t;
            ex[i] = nn_quantize(t, inv, zex);
        }
    }
    if (zero) {                                /* t = (float)0 * se = 0.0f */
        if (0.0f < tmin) tmin = 0.0f;
        if (0.0f > tmax) tmax = 0.0f;
    }
    if (d->in_c > 0 && plane > 0) nn_qparams_observe(qex, tmin, tmax, alpha);
}
