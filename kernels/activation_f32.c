/* activation_f32.c: fp32 relu forward/backward and sigmoid forward.
 * Contracts and operation order: kernels/include/nn.h; Numba twins in
 * mcusim/ops/train_f32.py (bit exact, checked by mcusim/checks/train_f32.py). */
#include "nn.h"

/* The relu works on the IEEE bits (a sign-bit test), which is the same as x > 0 ? x : +0 for every
 * non-NaN input and about twice as fast on the M4 as vcmp/vmrs/it per element. Only 32-bit integer
 * loads and stores touch the buffers here, so reading float arrays through uint32_t is safe. */
static inline uint32_t relu_bits(uint32_t u) {
    return u & ~(uint32_t)((int32_t)u >> 31);           /* sign set -> 0, else unchanged */
}

static inline uint32_t relu_mask(uint32_t yb) {
    return (int32_t)yb > 0 ? 0xFFFFFFFFu : 0u;          /* y > 0 (as a signed integer) */
}

void relu_f32_forward(const float *x, float *y, int32_t n) {
    const uint32_t *xb = (const uint32_t *)x;
    uint32_t *yb = (uint32_t *)y;
    int32_t i = 0;
    for (; i + 4 <= n; i += 4) {                        /* 4 loads before the stores: y may be x */
        uint32_t a = xb[i], b = xb[i + 1], c = xb[i + 2], d = xb[i + 3];
        yb[i] = relu_bits(a);
        yb[i + 1] = relu_bits(b);
        yb[i + 2] = relu_bits(c);
        yb[i + 3] = relu_bits(d);
    }
    for (; i < n; i++) yb[i] = relu_bits(xb[i]);
}

void relu_f32_backward(const float *y, const float *dy, float *dx, int32_t n) {
    const uint32_t *ybits = (const uint32_t *)y;
    const uint32_t *gb = (const uint32_t *)dy;
    uint32_t *db = (uint32_t *)dx;
    int32_t i = 0;
    for (; i + 4 <= n; i += 4) {
        uint32_t y0 = ybits[i], y1 = ybits[i + 1], y2 = ybits[i + 2], y3 = ybits[i + 3];
        uint32_t g0 = gb[i], g1 = gb[i + 1], g2 = gb[i + 2], g3 = gb[i + 3];
        db[i] = g0 & relu_mask(y0);
        db[i + 1] = g1 & relu_mask(y1);
        db[i + 2] = g2 & relu_mask(y2);
        db[i + 3] = g3 & relu_mask(y3);
    }
    for (; i < n; i++) {
        uint32_t g = gb[i];
        db[i] = g & relu_mask(ybits[i]);
    }
}

void sigmoid_f32_forward(const float *x, float *y, int32_t n) {
    for (int32_t i = 0; i < n; i++) y[i] = nn_sigmoid(x[i]);
}

void pixels_f32_forward(const uint8_t *pixels, float *x, int32_t n) {
    for (int32_t i = 0; i < n; i++) x[i] = (float)pixels[i] * NN_INV255;
}
