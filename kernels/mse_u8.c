/* mse_u8.c: the squared-error loss on the decoder's uint8 output, with no float copy of it or of its
 * error (contract in nn.h; the float steps are mse_f32's on the dequantized output). Twin:
 * mcusim/ops/losses.py. */
#include "nn.h"

float mse_u8_forward(const uint8_t *y, const nn_qparams *qy, const uint8_t *pixels, int32_t n) {
    const float sy = qy->scale;
    const int32_t zy = qy->zero_point;
    float s = 0.0f;
    for (int32_t i = 0; i < n; i++) s = s + nn_sq_err(nn_dequantize(y[i], sy, zy), pixels[i]);
    return 0.5f * s;
}

void mse_u8_backward(const uint8_t *y, const nn_qparams *qy, const uint8_t *pixels, uint8_t *e, const nn_qparams *qe,
                     int32_t n) {
    const float sy = qy->scale, inv = 1.0f / qe->scale;
    const int32_t zy = qy->zero_point, ze = qe->zero_point;
    for (int32_t i = 0; i < n; i++) e[i] = nn_quantize(nn_pixel_err(nn_dequantize(y[i], sy, zy), pixels[i]), inv, ze);
}
