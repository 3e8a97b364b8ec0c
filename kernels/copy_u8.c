/* copy_u8.c: y = x with its qparams (the residual add's error passed to an input). Contract:
 * kernels/include/nn.h; twin: mcusim/ops/copy.py. */
#include "nn.h"

void copy_u8(const uint8_t *x, const nn_qparams *qx, uint8_t *y, nn_qparams *qy, int32_t n) {
    int32_t i = 0;
    if ((((uintptr_t)x | (uintptr_t)y) & 3u) == 0)
        for (; i + 4 <= n; i += 4) *(uint32_t *)(y + i) = *(const uint32_t *)(x + i);
    for (; i < n; i++) y[i] = x[i];
    *qy = *qx;
}
