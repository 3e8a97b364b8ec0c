/* elbo_f32.c: negative ELBO of one image (Bernoulli likelihood on logits + Gaussian KL) and its
 * gradient. Contracts and operation order: kernels/include/nn.h; Numba twins in
 * mcusim/ops/train_f32.py. */
#include "nn.h"

float elbo_f32_forward(const float *logits, const uint8_t *pixels, const float *mu, const float *log_sigma,
                       int32_t n_pixels, int32_t n_latent) {
    float rec = 0.0f;
    for (int32_t i = 0; i < n_pixels; i++) {
        float z = logits[i];
        float t = (float)pixels[i] * NN_INV255;
        float a = z > 0.0f ? z : 0.0f;
        float b = z * t;
        float e = nn_expf(-__builtin_fabsf(z));
        float l = nn_logf(1.0f + e);
        rec = rec + ((a - b) + l);
    }
    float kl = 0.0f;
    for (int32_t j = 0; j < n_latent; j++) {
        float m = mu[j];
        float ls = log_sigma[j];
        float l2 = ls + ls;
        float s2 = nn_expf(l2);
        kl = kl + (((m * m + s2) - 1.0f) - l2);
    }
    return rec + 0.5f * kl;
}

void elbo_f32_backward(const float *logits, const uint8_t *pixels, const float *mu, const float *log_sigma,
                       float *dlogits, float *dmu, float *dlog_sigma, int32_t n_pixels, int32_t n_latent) {
    for (int32_t i = 0; i < n_pixels; i++) {
        float z = logits[i];
        float t = (float)pixels[i] * NN_INV255;
        float e = nn_expf(-__builtin_fabsf(z));
        float d = 1.0f + e;
        float s = (z >= 0.0f ? 1.0f : e) / d;
        dlogits[i] = s - t;
    }
    for (int32_t j = 0; j < n_latent; j++) {
        float m = mu[j];
        float ls = log_sigma[j];
        dmu[j] = m;
        dlog_sigma[j] = nn_expf(ls + ls) - 1.0f;
    }
}
