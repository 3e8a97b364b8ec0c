/* add_u8.c: elementwise sum of two uint8 tensors with their own qparams into a third, with the output
 * stage of the u8 layers in float (optional ReLU, range tracked while writing, observed once after); contract in
 * nn.h. Twin: mcusim/ops/elementwise.py. */
#include "nn.h"

#define NN_BIG 3.0e38f                  /* the initial range of t */

void add_u8_forward(const uint8_t *a, const nn_qparams *qa, const uint8_t *b, const nn_qparams *qb, uint8_t *y,
                    nn_qparams *qy, int32_t n, int32_t relu, float alpha) {
    const float sa = qa->scale, sb = qb->scale, inv = 1.0f / qy->scale;
    const int32_t za = qa->zero_point, zb = qb->zero_point, zy = qy->zero_point;
    float tmin = NN_BIG, tmax = -NN_BIG;
    for (int32_t i = 0; i < n; i++) {
        float t = nn_dequantize(a[i], sa, za);
        float u = nn_dequantize(b[i], sb, zb);
        t = t + u;
        if (relu && !(t > 0.0f)) t = 0.0f;
        if (t < tmin) tmin = t;
        if (t > tmax) tmax = t;
        y[i] = nn_quantize(t, inv, zy);
    }
    if (n > 0) nn_qparams_observe(qy, tmin, tmax, alpha);
}
