/* copy_f32.c: y = x (the residual add's error passed to an input). Contract: kernels/include/nn.h;
 * twin: mcusim/ops/copy.py. */
#include "nn.h"

void copy_f32(const float *x, float *y, int32_t n) {
    const uint32_t *xb = (const uint32_t *)x;              /* bits, not floats: -0.0 and NaNs kept */
    uint32_t *yb = (uint32_t *)y;
    for (int32_t i = 0; i < n; i++) yb[i] = xb[i];
}
