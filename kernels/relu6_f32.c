/* relu6_f32.c: fp32 relu6 forward and backward (contract in nn.h), on the IEEE bits through the
 * band cores of nn.h (nn__clamp_bits_f32, nn__band_pass_f32). Twin: mcusim/ops/elementwise.py. */
#include "nn.h"

void relu6_f32_forward(const float *x, float *y, int32_t n) { nn__clamp_bits_f32(x, y, n, NN_SIX_BITS); }

void relu6_f32_backward(const float *y, const float *dy, float *dx, int32_t n) {
    nn__band_pass_f32(y, dy, dx, n, NN_SIX_BITS);
}
