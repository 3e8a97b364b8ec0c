/* reparameterize_f32.c: z = mu + exp(log_sigma) * eps and its backward pass (accumulating).
 * Contracts and operation order: kernels/include/nn.h; Numba twins in
 * mcusim/ops/train_f32.py. */
#include "nn.h"

void reparameterize_f32_forward(const float *mu, const float *log_sigma, const float *eps, float *z,
                                int32_t n) {
    for (int32_t i = 0; i < n; i++) {
        float m = mu[i], e = eps[i];
        float s = nn_expf(log_sigma[i]);
        float t = s * e;
        z[i] = m + t;
    }
}

void reparameterize_f32_backward(const float *log_sigma, const float *eps, const float *dz, float *dmu,
                                 float *dlog_sigma, int32_t n) {
    for (int32_t i = 0; i < n; i++) {
        float g = dz[i], e = eps[i];
        float s = nn_expf(log_sigma[i]);
        dmu[i] = dmu[i] + g;
        float t = s * e;
        t = g * t;
        dlog_sigma[i] = dlog_sigma[i] + t;
    }
}
