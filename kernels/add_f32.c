/* add_f32.c: elementwise sum of two fp32 tensors, the forward of a residual connection and the sum of
 * the errors of a tensor that feeds two layers (contract in nn.h). Twin: mcusim/ops/elementwise.py. */
#include "nn.h"

void add_f32_forward(const float *a, const float *b, float *y, int32_t n) {
    int32_t i = 0;
    for (; i + 4 <= n; i += 4) {                        /* 8 loads before the stores: y may be a or b */
        float a0 = a[i], a1 = a[i + 1], a2 = a[i + 2], a3 = a[i + 3];
        float b0 = b[i], b1 = b[i + 1], b2 = b[i + 2], b3 = b[i + 3];
        y[i] = a0 + b0;
        y[i + 1] = a1 + b1;
        y[i + 2] = a2 + b2;
        y[i + 3] = a3 + b3;
    }
    for (; i < n; i++) y[i] = a[i] + b[i];
}
