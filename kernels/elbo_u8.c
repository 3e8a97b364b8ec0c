/* elbo_u8.c: the negative ELBO and its gradient on the decoder's uint8 logits, so the u8 step keeps
 * no float copy of the logits or of their error (contract in nn.h). Twin: mcusim/ops/elbo_u8.py. */
#include "nn.h"

float elbo_u8_forward(const uint8_t *y, const nn_qparams *qy, const uint8_t *pixels, const float *mu,
                      const float *log_sigma, int32_t n_pixels, int32_t n_latent) {
    const float s = qy->scale;
    const int32_t zp = qy->zero_point;
    float rec = 0.0f;
    for (int32_t i = 0; i < n_pixels; i++)
        rec = rec + nn_bce_logit(s * (float)((int32_t)y[i] - zp), (float)pixels[i] * NN_INV255);
    return rec + 0.5f * nn_kl_normal(mu, log_sigma, n_latent);
}

void elbo_u8_backward(const uint8_t *y, const nn_qparams *qy, const uint8_t *pixels, const float *mu,
                      const float *log_sigma, uint8_t *e, const nn_qparams *qe, float *dmu, float *dlog_sigma,
                      int32_t n_pixels, int32_t n_latent) {
    const float s = qy->scale, inv = 1.0f / qe->scale;
    const int32_t zp = qy->zero_point, ze = qe->zero_point;
    for (int32_t i = 0; i < n_pixels; i++) {
        float d = nn_sigmoid(s * (float)((int32_t)y[i] - zp)) - (float)pixels[i] * NN_INV255;
        e[i] = nn_quantize(d, inv, ze);
    }
    nn_kl_normal_backward(mu, log_sigma, dmu, dlog_sigma, n_latent);
}
