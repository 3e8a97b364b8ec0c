/* avgpool2d_u8.c: average pooling on uint8 tensors, forward and backward (contract and float order in
 * nn.h; twin: mcusim/ops/pool.py). The forward sums each window's codes with USADA8 (four bytes per
 * instruction; global pooling is one run per channel) and subtracts count * zx once; the window and
 * its multiplier sx * rc are computed once per position for all channels. The backward writes one code
 * per window when the windows are disjoint (each input then has a single term; global pooling
 * included) and otherwise gathers each input's windows in (oy, ox) order. */
#include "nn.h"
#include "nn_simd.h"

#define NN_BIG 3.0e38f

typedef struct {
    float inv, tmin, tmax;
    int32_t z;
} nn__pool_out;

/* The rounding rule with the output's current qparams, tracking the range of t. */
static inline uint8_t nn__pool_emit(nn__pool_out *q, float t) {
    if (t < q->tmin) q->tmin = t;
    if (t > q->tmax) q->tmax = t;
    return nn_quantize(t, q->inv, q->z);
}

void avgpool2d_u8_forward(const uint8_t *x, const nn_qparams *qx, uint8_t *y, nn_qparams *qy,
                          const nn_conv_dims *d, float alpha) {
    const int32_t in_w = d->in_w, plane = d->in_h * in_w, out_plane = d->out_h * d->out_w, zx = qx->zero_point;
    const float sx = qx->scale;
    nn__pool_out q = {1.0f / qy->scale, NN_BIG, -NN_BIG, qy->zero_point};
    int32_t last = 0;
    float rc = 0.0f;
    for (int32_t oy = 0, o = 0; oy < d->out_h; oy++)
        for (int32_t ox = 0; ox < d->out_w; ox++, o++) {
            const nn__pool_window w = nn__pool_win(d, oy, ox);
            const float m = sx * nn__pool_rcp(w.count, &last, &rc);
            const int32_t off = w.count * zx;
            const uint8_t *xc = x + w.at;
            for (int32_t c = 0; c < d->in_c; c++, xc += plane) {
                int32_t acc = -off;
                for (int32_t ky = 0; ky < w.rows; ky++) acc += nn__sum_u8(xc + ky * in_w, w.cols);
                y[c * out_plane + o] = nn__pool_emit(&q, (float)acc * m);
            }
        }
    if (d->in_c > 0 && out_plane > 0) nn_qparams_observe(qy, q.tmin, q.tmax, alpha);
}

/* Inputs covered by the windows along one axis (of n), when they are disjoint. */
static int32_t nn__pool_covered(int32_t n_out, int32_t stride, int32_t pad, int32_t k, int32_t n) {
    int32_t covered = 0;
    for (int32_t o = 0; o < n_out; o++) {
        int32_t lo, hi;
        nn__pool_span(o, stride, pad, k, n, &lo, &hi);
        covered += hi - lo;
    }
    return covered;
}

/* The windows [*lo, *hi) (of n_out) along one axis that contain input i. */
static inline void nn__pool_windows_of(int32_t i, int32_t stride, int32_t pad, int32_t k, int32_t n_out,
                                       int32_t *lo, int32_t *hi) {
    const int32_t a = i + pad - k, b = (i + pad) / stride + 1;
    *lo = a < 0 ? 0 : a / stride + 1;
    *hi = b < n_out ? b : n_out;
}

void avgpool2d_u8_backward(const uint8_t *e, const nn_qparams *qe, uint8_t *ex, nn_qparams *qex,
                           const nn_conv_dims *d, float alpha) {
    const int32_t in_h = d->in_h, in_w = d->in_w, plane = in_h * in_w, out_h = d->out_h, out_w = d->out_w,
                  out_plane = out_h * out_w, s = d->stride, pad = d->pad, ze = qe->zero_point;
    const float se = qe->scale;
    nn__pool_out q = {1.0f / qex->scale, NN_BIG, -NN_BIG, qex->zero_point};
    int32_t last = 0;
    float rc = 0.0f;
    if ((d->k_h <= s || out_h == 1) && (d->k_w <= s || out_w == 1)) {        /* disjoint windows */
        if (nn__pool_covered(out_h, s, pad, d->k_h, in_h) < in_h || nn__pool_covered(out_w, s, pad, d->k_w, in_w) < in_w) {
            const uint8_t q0 = nn__pool_emit(&q, 0.0f);                       /* inputs in no window */
            for (int32_t i = 0; i < d->in_c * plane; i++) ex[i] = q0;
        }
        for (int32_t oy = 0, o = 0; oy < out_h; oy++)
            for (int32_t ox = 0; ox < out_w; ox++, o++) {
                const nn__pool_window w = nn__pool_win(d, oy, ox);
                const float r = nn__pool_rcp(w.count, &last, &rc);
                for (int32_t c = 0; c < d->in_c; c++) {
                    float t = 0.0f + (float)((int32_t)e[c * out_plane + o] - ze) * r;
                    const uint8_t v = nn__pool_emit(&q, t * se);
                    uint8_t *p = ex + c * plane + w.at;
                    for (int32_t ky = 0; ky < w.rows; ky++, p += in_w)
                        for (int32_t k = 0; k < w.cols; k++) p[k] = v;
                }
            }
    } else {
        for (int32_t c = 0; c < d->in_c; c++, e += out_plane)
            for (int32_t iy = 0; iy < in_h; iy++) {
                int32_t oy0, oy1;
                nn__pool_windows_of(iy, s, pad, d->k_h, out_h, &oy0, &oy1);
                for (int32_t ix = 0; ix < in_w; ix++) {
                    int32_t ox0, ox1;
                    nn__pool_windows_of(ix, s, pad, d->k_w, out_w, &ox0, &ox1);
                    float t = 0.0f;
                    for (int32_t oy = oy0; oy < oy1; oy++)
                        for (int32_t ox = ox0; ox < ox1; ox++) {
                            const float r = nn__pool_rcp(nn__pool_win(d, oy, ox).count, &last, &rc);
                            t = t + (float)((int32_t)e[oy * out_w + ox] - ze) * r;
                        }
                    *ex++ = nn__pool_emit(&q, t * se);
                }
            }
    }
    if (d->in_c > 0 && plane > 0) nn_qparams_observe(qex, q.tmin, q.tmax, alpha);
}
