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

void sgd_f32_standardized_update(float *w, float *g, float *norm, int32_t rows, int32_t cols, int32_t run,
                                 float lr, float alpha_norm, const uint8_t *active) {
    const float inv_cols = 1.0f / (float)cols;
    const int32_t runs = cols / run, stride = rows * run;
    for (int32_t r = 0; r < rows; r++) {
        if (active && !active[r]) continue;
        float sq = 0.0f;
        for (int32_t j = 0; j < runs; j++)
            for (int32_t t = 0; t < run; t++) {
                const float v = g[j * stride + r * run + t];
                sq = sq + v * v;
            }
        nn_rms_track(&norm[r], sq, inv_cols, alpha_norm);
        const float inv_rms = nn_inv_rms(norm[r]);
        for (int32_t j = 0; j < runs; j++) {
            float *wr = w + j * stride + r * run, *gr = g + j * stride + r * run;
            for (int32_t t = 0; t < run; t++) {
                wr[t] = wr[t] - lr * nn_standardized_step(gr[t], inv_rms);
                gr[t] = 0.0f;
            }
        }
    }
}
