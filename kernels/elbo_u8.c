/* elbo_u8.c: the negative ELBO and its gradient on the decoder's uint8 logits, so the u8 step keeps
 * no float copy of the logits or of their error (contract in nn.h). Twin: mcusim/ops/elbo_u8.py.
 * The exp/log of a logit depends on its code only: each code's value is computed at its first pixel and
 * kept in a 256-entry table (a per-code flag says which are filled), so a 784-pixel image costs one
 * nn_expf/nn_logf per distinct code instead of per pixel. */
#include "nn.h"

#define NN__CODES 256

int32_t elbo_u8_buffer_size(void) { return NN__CODES * (int32_t)sizeof(float) + NN__CODES; }

/* The table (float [256]) and its flags (uint8 [256], cleared here) in scratch. */
static uint8_t *nn__code_table(int32_t *scratch, float **table) {
    uint8_t *known = (uint8_t *)(scratch + NN__CODES);
    uint32_t *flags = (uint32_t *)known;
    for (int32_t i = 0; i < NN__CODES / 4; i++) flags[i] = 0;
    *table = (float *)scratch;
    return known;
}

float elbo_u8_forward(const uint8_t *y, const nn_qparams *qy, const uint8_t *pixels, const float *mu,
                      const float *log_sigma, int32_t n_pixels, int32_t n_latent, int32_t *scratch) {
    const float s = qy->scale;
    const int32_t zp = qy->zero_point;
    float *lse;
    uint8_t *known = nn__code_table(scratch, &lse);
    float rec = 0.0f;
    for (int32_t i = 0; i < n_pixels; i++) {
        const uint8_t c = y[i];
        const float z = s * (float)((int32_t)c - zp);
        if (!known[c]) {
            lse[c] = nn_log1p_exp_neg_abs(z);
            known[c] = 1;
        }
        rec = rec + nn_bce_logit_with(z, (float)pixels[i] * NN_INV255, lse[c]);
    }
    return rec + 0.5f * nn_kl_normal(mu, log_sigma, n_latent);
}

void elbo_u8_backward(const uint8_t *y, const nn_qparams *qy, const uint8_t *pixels, const float *mu,
                      const float *log_sigma, uint8_t *e, const nn_qparams *qe, float *dmu, float *dlog_sigma,
                      int32_t n_pixels, int32_t n_latent, int32_t *scratch) {
    const float s = qy->scale, inv = 1.0f / qe->scale;
    const int32_t zp = qy->zero_point, ze = qe->zero_point;
    float *sig;
    uint8_t *known = nn__code_table(scratch, &sig);
    for (int32_t i = 0; i < n_pixels; i++) {
        const uint8_t c = y[i];
        if (!known[c]) {
            sig[c] = nn_sigmoid(s * (float)((int32_t)c - zp));
            known[c] = 1;
        }
        e[i] = nn_quantize(sig[c] - (float)pixels[i] * NN_INV255, inv, ze);
    }
    nn_kl_normal_backward(mu, log_sigma, dmu, dlog_sigma, n_latent);
}
