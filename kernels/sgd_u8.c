/* sgd_u8.c: gradient-standardized SGD on a uint8 tensor, no float copy of the weights (see nn.h); int16
 * gradients with a scale per row, weights requantized with stochastic rounding.
 * Twin: mcusim/ops/gemm_u8.py (sgd_u8_update). */
#include "nn.h"

#define NN_BIG 3.0e38f

/* Element k's value after the step: its old real value, minus the standardized step if its row is on. */
static inline float nn__sgd_u8_value(const uint8_t *w, const int16_t *g, int32_t k, float s_old, int32_t z_old,
                                     int on, float s, float inv_rms, float lr) {
    float v = s_old * (float)((int32_t)w[k] - z_old);
    if (on) v = v - lr * nn_standardized_step(s * (float)g[k], inv_rms);
    return v;
}

void sgd_u8_update(uint8_t *w, nn_qparams *qw, int16_t *g, float *sg, float *norm, int32_t rows, int32_t cols,
                   int32_t run, float lr, float alpha_norm, float alpha_w, const uint8_t *active) {
    const float inv_cols = 1.0f / (float)cols;
    const int32_t runs = cols / run, stride = rows * run;
    /* Row statistics and their moving averages (active rows only). */
    for (int32_t r = 0; r < rows; r++) {
        if (active && !active[r]) continue;
        const float s = sg[r];
        float sq = 0.0f;
        for (int32_t j = 0; j < runs; j++)
            for (int32_t t = 0; t < run; t++) {
                const float v = s * (float)g[j * stride + r * run + t];
                sq = sq + v * v;
            }
        nn_rms_track(&norm[r], sq, inv_cols, alpha_norm);
    }
    const float s_old = qw->scale;
    const int32_t z_old = qw->zero_point;
    /* Pass 0 tracks the range of the updated values, pass 1 requantizes them into it. A row's elements
     * are visited in column order c = j * run + t (at k = j * stride + r * run + t), two at a time so the
     * FPU works on one while the other's result is pending; each value is the same float operations. */
    float tmin = NN_BIG, tmax = -NN_BIG;
    for (int32_t r = 0; r < rows; r++) {
        const int on = !active || active[r];
        const float inv_rms = nn_inv_rms(norm[r]), s = sg[r];
        for (int32_t j = 0, kj = r * run; j < runs; j++, kj += stride) {
            int32_t k = kj;
            for (; k + 1 < kj + run; k += 2) {
                const float v0 = nn__sgd_u8_value(w, g, k, s_old, z_old, on, s, inv_rms, lr);
                const float v1 = nn__sgd_u8_value(w, g, k + 1, s_old, z_old, on, s, inv_rms, lr);
                if (v0 < tmin) tmin = v0;
                if (v0 > tmax) tmax = v0;
                if (v1 < tmin) tmin = v1;
                if (v1 > tmax) tmax = v1;
            }
            if (k < kj + run) {
                const float v = nn__sgd_u8_value(w, g, k, s_old, z_old, on, s, inv_rms, lr);
                if (v < tmin) tmin = v;
                if (v > tmax) tmax = v;
            }
        }
    }
    if (rows > 0 && cols > 0) nn_qparams_observe(qw, tmin, tmax, alpha_w);
    const float inv = 1.0f / qw->scale;
    const int32_t z_new = qw->zero_point;
    const uint32_t range_seed = nn_mix32(nn_f32_bits(qw->max));
    for (int32_t r = 0; r < rows; r++) {
        const int on = !active || active[r];
        const float inv_rms = nn_inv_rms(norm[r]), s = sg[r];
        const uint32_t seed = nn_mix32(nn_f32_bits(norm[r]) ^ range_seed);
        for (int32_t j = 0, kj = r * run; j < runs; j++, kj += stride) {
            int32_t k = kj;
            for (; k + 1 < kj + run; k += 2) {
                const float v0 = nn__sgd_u8_value(w, g, k, s_old, z_old, on, s, inv_rms, lr);
                const float v1 = nn__sgd_u8_value(w, g, k + 1, s_old, z_old, on, s, inv_rms, lr);
                w[k] = nn_quantize_dithered(v0, inv, z_new, nn_dither(seed, (uint32_t)k));
                w[k + 1] = nn_quantize_dithered(v1, inv, z_new, nn_dither(seed, (uint32_t)(k + 1)));
            }
            if (k < kj + run)
                w[k] = nn_quantize_dithered(nn__sgd_u8_value(w, g, k, s_old, z_old, on, s, inv_rms, lr), inv, z_new,
                                            nn_dither(seed, (uint32_t)k));
        }
    }
    for (int32_t r = 0; r < rows; r++) {
        int32_t maxabs = 0;
        for (int32_t j = 0; j < runs; j++)
            for (int32_t t = 0; t < run; t++) {
                int16_t *gk = &g[j * stride + r * run + t];
                const int32_t a = *gk < 0 ? -*gk : *gk;
                maxabs = a > maxabs ? a : maxabs;
                *gk = 0;
            }
        if (!active || active[r]) sg[r] = nn_grad_next_scale(sg[r], maxabs);
    }
}
