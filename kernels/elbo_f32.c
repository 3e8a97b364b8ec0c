/* elbo_f32.c: negative ELBO of one image (Bernoulli likelihood on logits + Gaussian KL) and its
 * gradient. Contracts and operation order: kernels/include/nn.h; Numba twins in
 * mcusim/ops/train_f32.py. */
#include "nn.h"

float elbo_f32_forward(const float *logits, const uint8_t *pixels, const float *mu, const float *log_sigma,
                       int32_t n_pixels, int32_t n_latent) {
    float rec = 0.0f;
    for (int32_t i = 0; i < n_pixels; i++) rec = rec + nn_bce_logit(logits[i], (float)pixels[i] * NN_INV255);
    return rec + 0.5f * nn_kl_normal(mu, log_sigma, n_latent);
}

void elbo_f32_backward(const float *logits, const uint8_t *pixels, const float *mu, const float *log_sigma,
                       float *dlogits, float *dmu, float *dlog_sigma, int32_t n_pixels, int32_t n_latent) {
    for (int32_t i = 0; i < n_pixels; i++) dlogits[i] = nn_sigmoid(logits[i]) - (float)pixels[i] * NN_INV255;
    nn_kl_normal_backward(mu, log_sigma, dmu, dlog_sigma, n_latent);
}
