/* maxpool2d_f32.c: max pooling, fp32, forward and backward (contract and tie / NaN rule in nn.h;
 * twin: mcusim/ops/pool.py). Work goes output row by output row: the windows that lie wholly inside
 * the input row-wise run without bounds checks (2x2 and 3x3 fully unrolled), only the edge outputs clip
 * their span. */
#include "nn.h"

/* The chosen tap of a window of rows x cols taps at p (row pitch w): first maximum, strict >. */
static inline __attribute__((always_inline)) const float *nn__max_tap_f32(const float *p, int32_t rows,
                                                                          int32_t cols, int32_t w) {
    const float *best = p;
    float m = *p;
    for (int32_t r = 0; r < rows; r++, p += w)
        for (int32_t k = 0; k < cols; k++)
            if (p[k] > m) {
                m = p[k];
                best = p + k;
            }
    return best;
}

/* The chosen tap's value only (the forward: no pointer to carry). */
static inline __attribute__((always_inline)) float nn__max_val_f32(const float *p, int32_t rows, int32_t cols,
                                                                   int32_t w) {
    float m = *p;
    for (int32_t r = 0; r < rows; r++, p += w)
        for (int32_t k = 0; k < cols; k++) m = p[k] > m ? p[k] : m;
    return m;
}

/* Outputs [o0, o1) of one output row, windows of `rows` x `cols` taps starting at xr + o*stride - pad
 * (cols < 0: clip each window's columns to the input). Forward: y[o] = max; backward (dy given): the
 * chosen tap's dx element (at the same offset from dx as the tap from x) gets dx = dx + dy[o]. */
static inline __attribute__((always_inline)) void nn__max_outputs_f32(
        const float *x, const float *xr, int32_t rows, int32_t cols, int32_t o0, int32_t o1,
        const nn_conv_dims *d, float *y, const float *dy) {
#pragma clang loop unroll(disable)                              /* keeps the loop in the ART cache */
    for (int32_t o = o0; o < o1; o++) {
        int32_t x0 = o * d->stride - d->pad, n = cols;
        if (cols < 0) {
            int32_t x1;
            nn__pool_span(o, d->stride, d->pad, d->k_w, d->in_w, &x0, &x1);
            n = x1 - x0;
        }
        if (dy) {
            float *g = y + (nn__max_tap_f32(xr + x0, rows, n, d->in_w) - x);
            *g = *g + dy[o];
        } else {
            y[o] = nn__max_val_f32(xr + x0, rows, n, d->in_w);
        }
    }
}

/* Small separate functions, so each hot loop fits the 1 KB ART instruction cache; the direction is
 * tested once per call, not per output. */
static __attribute__((noinline)) void nn__max_2x2_f32(const float *x, const float *xr, int32_t o0, int32_t o1,
                                                      const nn_conv_dims *d, float *y, const float *dy) {
    if (dy) nn__max_outputs_f32(x, xr, 2, 2, o0, o1, d, y, dy);
    else nn__max_outputs_f32(x, xr, 2, 2, o0, o1, d, y, 0);
}

static __attribute__((noinline)) void nn__max_3x3_f32(const float *x, const float *xr, int32_t o0, int32_t o1,
                                                      const nn_conv_dims *d, float *y, const float *dy) {
    if (dy) nn__max_outputs_f32(x, xr, 3, 3, o0, o1, d, y, dy);
    else nn__max_outputs_f32(x, xr, 3, 3, o0, o1, d, y, 0);
}

static __attribute__((noinline)) void nn__max_any_f32(const float *x, const float *xr, int32_t rows, int32_t cols,
                                                      int32_t o0, int32_t o1, const nn_conv_dims *d, float *y,
                                                      const float *dy) {
    nn__max_outputs_f32(x, xr, rows, cols, o0, o1, d, y, dy);
}

/* One output row: the clipped edges, and the inner windows with a constant shape where it is common. */
static void nn__max_row_f32(const float *x, const float *xr, int32_t rows, int32_t a, int32_t b,
                            const nn_conv_dims *d, float *y, const float *dy) {
    const int32_t kw = d->k_w;
    if (a > 0) nn__max_any_f32(x, xr, rows, -1, 0, a, d, y, dy);
    if (rows == 2 && kw == 2) nn__max_2x2_f32(x, xr, a, b, d, y, dy);
    else if (rows == 3 && kw == 3) nn__max_3x3_f32(x, xr, a, b, d, y, dy);
    else nn__max_any_f32(x, xr, rows, kw, a, b, d, y, dy);
    if (b < d->out_w) nn__max_any_f32(x, xr, rows, -1, b, d->out_w, d, y, dy);
}

/* Both directions (dy given: backward, which zeroes dx first), output rows in (c, oy) order. */
static void nn__maxpool_f32(const float *x, const float *dy, float *out, const nn_conv_dims *d) {
    if (dy)
        for (int32_t i = 0; i < d->in_c * d->in_h * d->in_w; i++) out[i] = 0.0f;
    int32_t a, b;
    nn__pool_inner(d->out_w, d->stride, d->pad, d->k_w, d->in_w, &a, &b);
    for (int32_t c = 0, row = 0; c < d->in_c; c++)
        for (int32_t oy = 0; oy < d->out_h; oy++, row += d->out_w) {
            int32_t y0, y1;
            nn__pool_span(oy, d->stride, d->pad, d->k_h, d->in_h, &y0, &y1);
            nn__max_row_f32(x, x + (c * d->in_h + y0) * d->in_w, y1 - y0, a, b, d, dy ? out : out + row,
                            dy ? dy + row : 0);
        }
}

void maxpool2d_f32_forward(const float *x, float *y, const nn_conv_dims *d) { nn__maxpool_f32(x, 0, y, d); }

void maxpool2d_f32_backward(const float *x, const float *dy, float *dx, const nn_conv_dims *d) {
    nn__maxpool_f32(x, dy, dx, d);
}
