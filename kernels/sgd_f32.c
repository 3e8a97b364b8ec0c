/* sgd_f32.c: plain SGD step with gradient reset. Contract: kernels/include/nn.h; Numba
 * twin in mcusim/ops/train_f32.py. */
#include "nn.h"

void sgd_f32_update(float *w, float *g, int32_t n, float scale) {
    int32_t i = 0;
    for (; i + 4 <= n; i += 4) {
        float g0 = g[i], g1 = g[i + 1], g2 = g[i + 2], g3 = g[i + 3];
        float w0 = w[i], w1 = w[i + 1], w2 = w[i + 2], w3 = w[i + 3];
        w[i] = w0 - scale * g0;
        w[i + 1] = w1 - scale * g1;
        w[i + 2] = w2 - scale * g2;
        w[i + 3] = w3 - scale * g3;
        g[i] = 0.0f;
        g[i + 1] = 0.0f;
        g[i + 2] = 0.0f;
        g[i + 3] = 0.0f;
    }
    for (; i < n; i++) {
        float t = scale * g[i];
        w[i] = w[i] - t;
        g[i] = 0.0f;
    }
}
