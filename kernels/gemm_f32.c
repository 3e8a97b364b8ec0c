/* gemm_f32.c: fully connected layer, fp32, forward and backward, one sample at a time.
 * Contracts and summation orders: kernels/include/nn.h; Numba twin: mcusim/ops/layers_f32.py.
 * Speed: rows are processed four at a time so each x (or dx) element is loaded once per four rows;
 * every output element still accumulates in the documented order. */
#include "nn.h"

void gemm_f32_forward(const float *x, const float *w, const float *b, float *y, int32_t in, int32_t out) {
    int32_t o = 0;
    for (; o + 4 <= out; o += 4) {
        const float *w0 = w + o * in;
        const float *w1 = w0 + in;
        const float *w2 = w1 + in;
        const float *w3 = w2 + in;
        float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;
        if (b) {
            a0 = b[o]; a1 = b[o + 1]; a2 = b[o + 2]; a3 = b[o + 3];
        }
        const float *xp = x;
        for (int32_t i = in; i > 0; --i) {
            float xv = *xp++;
            a0 = a0 + *w0++ * xv;
            a1 = a1 + *w1++ * xv;
            a2 = a2 + *w2++ * xv;
            a3 = a3 + *w3++ * xv;
        }
        y[o] = a0; y[o + 1] = a1; y[o + 2] = a2; y[o + 3] = a3;
    }
    for (; o < out; ++o) {
        const float *wr = w + o * in;
        const float *xp = x;
        float a = b ? b[o] : 0.0f;
        int32_t i = in;
        for (; i >= 4; i -= 4) {
            a = a + wr[0] * xp[0];
            a = a + wr[1] * xp[1];
            a = a + wr[2] * xp[2];
            a = a + wr[3] * xp[3];
            wr += 4; xp += 4;
        }
        for (; i > 0; --i) a = a + *wr++ * *xp++;
        y[o] = a;
    }
}

void gemm_f32_backward_input(const float *w, const float *dy, float *dx, int32_t in, int32_t out,
                             const uint8_t *active) {
    for (int32_t i = 0; i < in; ++i) dx[i] = 0.0f;
    const float *r[4];
    float g[4];
    int32_t n = 0;
    for (int32_t o = 0; o < out; ++o) {
        if (active && !active[o]) continue;
        r[n] = w + o * in;
        g[n] = dy[o];
        if (++n == 4) {                       /* four active rows: one pass over dx */
            const float *w0 = r[0], *w1 = r[1], *w2 = r[2], *w3 = r[3];
            float g0 = g[0], g1 = g[1], g2 = g[2], g3 = g[3];
            float *p = dx;
            for (int32_t i = in; i > 0; --i) {
                float a = *p;
                a = a + *w0++ * g0;
                a = a + *w1++ * g1;
                a = a + *w2++ * g2;
                a = a + *w3++ * g3;
                *p++ = a;
            }
            n = 0;
        }
    }
    for (int32_t k = 0; k < n; ++k) {         /* the last 1..3 active rows, in ascending order */
        const float *w0 = r[k];
        float g0 = g[k];
        float *p = dx;
        for (int32_t i = in; i > 0; --i) {
            *p = *p + *w0++ * g0;
            ++p;
        }
    }
}

static inline void nn__gemm_row_update(const float *x, float g, float *p, int32_t in) {
    const float *xp = x;
    int32_t i = in;
    for (; i >= 4; i -= 4) {
        p[0] = p[0] + xp[0] * g;
        p[1] = p[1] + xp[1] * g;
        p[2] = p[2] + xp[2] * g;
        p[3] = p[3] + xp[3] * g;
        p += 4; xp += 4;
    }
    for (; i > 0; --i) {
        *p = *p + *xp++ * g;
        ++p;
    }
}

void gemm_f32_backward_weight(const float *x, const float *dy, float *dw, float *db, int32_t in, int32_t out,
                              const uint8_t *active) {
    /* Active rows two at a time: both rows share every x load. */
    int32_t o = 0;
    for (;;) {
        while (o < out && active && !active[o]) ++o;
        if (o >= out) break;
        int32_t o2 = o + 1;
        while (o2 < out && active && !active[o2]) ++o2;
        const float g0 = dy[o];
        if (db) db[o] = db[o] + g0;
        if (o2 >= out) {
            nn__gemm_row_update(x, g0, dw + o * in, in);
            break;
        }
        const float g1 = dy[o2];
        if (db) db[o2] = db[o2] + g1;
        float *p0 = dw + o * in;
        float *p1 = dw + o2 * in;
        const float *xp = x;
        int32_t i = in;
        for (; i >= 2; i -= 2) {
            const float xa = xp[0], xb = xp[1];
            p0[0] = p0[0] + xa * g0;
            p0[1] = p0[1] + xb * g0;
            p1[0] = p1[0] + xa * g1;
            p1[1] = p1[1] + xb * g1;
            p0 += 2; p1 += 2; xp += 2;
        }
        if (i) {
            p0[0] = p0[0] + xp[0] * g0;
            p1[0] = p1[0] + xp[0] * g1;
        }
        o = o2 + 1;
    }
}
