/* cross_entropy_u8.c: softmax cross-entropy on the classifier's uint8 logits, with no float copy of
 * them: the steps of cross_entropy_f32 on the dequantized logits (contract in nn.h), and the error
 * softmax - onehot written as uint8 in the fixed range of qe. Twin: mcusim/ops/losses.py. */
#include "nn.h"

float cross_entropy_u8(const uint8_t *y, const nn_qparams *qy, int32_t n, int32_t label, uint8_t *e,
                       const nn_qparams *qe) {
    const float sy = qy->scale;
    const int32_t zy = qy->zero_point;
    float m = nn_dequantize(y[0], sy, zy);
    for (int32_t i = 1; i < n; i++) {
        float v = nn_dequantize(y[i], sy, zy);
        if (v > m) m = v;
    }
    float zl = nn_dequantize(y[label], sy, zy) - m;     /* read before e (may be y) */
    float s = 0.0f;
    for (int32_t i = 0; i < n; i++) s = s + nn_expf(nn_dequantize(y[i], sy, zy) - m);
    float loss = nn_logf(s) - zl;
    if (e) {                                            /* e_i again (same bits): no float scratch */
        const float r = 1.0f / s, inv = 1.0f / qe->scale;
        const int32_t ze = qe->zero_point;
        for (int32_t i = 0; i < n; i++) {
            float g = nn_expf(nn_dequantize(y[i], sy, zy) - m) * r;
            if (i == label) g = g - 1.0f;
            e[i] = nn_quantize(g, inv, ze);
        }
    }
    return loss;
}
