/* mse_f32.c: squared-error reconstruction loss of one image against its pixels, and its gradient
 * (contract in nn.h). Twin: mcusim/ops/losses.py. */
#include "nn.h"

float mse_f32_forward(const float *y, const uint8_t *pixels, int32_t n) {
    float s = 0.0f;
    for (int32_t i = 0; i < n; i++) s = s + nn_sq_err(y[i], pixels[i]);
    return 0.5f * s;
}

void mse_f32_backward(const float *y, const uint8_t *pixels, float *dy, int32_t n) {
    for (int32_t i = 0; i < n; i++) dy[i] = nn_pixel_err(y[i], pixels[i]);
}
