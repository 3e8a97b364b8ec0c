/* cross_entropy_f32.c: softmax cross-entropy of one sample and its gradient softmax - onehot.
 * Contract and operation order: kernels/include/nn.h; Numba twin in
 * mcusim/ops/train_f32.py. */
#include "nn.h"

float cross_entropy_f32(const float *logits, int32_t n, int32_t label, float *dlogits) {
    float m = logits[0];
    for (int32_t i = 1; i < n; i++) {
        float v = logits[i];
        if (v > m) m = v;
    }
    float zl = logits[label] - m;                       /* read before dlogits (may be logits) */
    float s = 0.0f;
    if (dlogits) {
        for (int32_t i = 0; i < n; i++) {
            float e = nn_expf(logits[i] - m);
            dlogits[i] = e;                             /* kept for the gradient */
            s = s + e;
        }
    } else {
        for (int32_t i = 0; i < n; i++) s = s + nn_expf(logits[i] - m);
    }
    float loss = nn_logf(s) - zl;
    if (dlogits) {
        float r = 1.0f / s;
        for (int32_t i = 0; i < n; i++) dlogits[i] = dlogits[i] * r;
        dlogits[label] = dlogits[label] - 1.0f;
    }
    return loss;
}
