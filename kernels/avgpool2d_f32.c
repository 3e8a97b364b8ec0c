/* avgpool2d_f32.c: average pooling, fp32, forward and backward (contract and float order in nn.h;
 * twin: mcusim/ops/pool.py). Windows are visited position-major with the channels innermost, so the
 * clipped window and the reciprocal of its tap count are computed once per position for all channels
 * (1.0f / count is divided only when the count changes). A window of whole input rows is one run, so
 * global pooling sums each channel in a single unrolled loop. */
#include "nn.h"

/* acc + p[0] + p[1] + ... + p[n-1], left to right. */
static inline float nn__sum_run_f32(float acc, const float *p, int32_t n) {
    int32_t k = 0;
    for (; k + 4 <= n; k += 4) {
        acc = acc + p[k];
        acc = acc + p[k + 1];
        acc = acc + p[k + 2];
        acc = acc + p[k + 3];
    }
    for (; k < n; k++) acc = acc + p[k];
    return acc;
}

/* Both directions (dy given: backward): window by window in (oy, ox) order, channels innermost. The
 * backward scatters g = dy * rc into the zeroed dx, so every input receives its windows' terms in that
 * order (the documented sum). */
static inline __attribute__((always_inline)) void nn__avgpool_f32(const float *x, const float *dy, float *out,
                                                                  const nn_conv_dims *d) {
    const int32_t in_w = d->in_w, plane = d->in_h * in_w, out_plane = d->out_h * d->out_w;
    if (dy)
        for (int32_t i = 0; i < d->in_c * plane; i++) out[i] = 0.0f;
    int32_t last = 0;
    float rc = 0.0f;
    for (int32_t oy = 0, o = 0; oy < d->out_h; oy++)
        for (int32_t ox = 0; ox < d->out_w; ox++, o++) {
            const nn__pool_window w = nn__pool_win(d, oy, ox);
            const float r = nn__pool_rcp(w.count, &last, &rc);
            for (int32_t c = 0; c < d->in_c; c++) {
                if (dy) {
                    const float g = dy[c * out_plane + o] * r;
                    for (int32_t ky = 0; ky < w.rows; ky++) {
                        float *p = out + c * plane + w.at + ky * in_w;
                        for (int32_t k = 0; k < w.cols; k++) p[k] = p[k] + g;
                    }
                } else {
                    float acc = 0.0f;
                    for (int32_t ky = 0; ky < w.rows; ky++)
                        acc = nn__sum_run_f32(acc, x + c * plane + w.at + ky * in_w, w.cols);
                    out[c * out_plane + o] = acc * r;
                }
            }
        }
}

void avgpool2d_f32_forward(const float *x, float *y, const nn_conv_dims *d) { nn__avgpool_f32(x, 0, y, d); }

void avgpool2d_f32_backward(const float *dy, float *dx, const nn_conv_dims *d) { nn__avgpool_f32(0, dy, dx, d); }
