/* quant_u8.c: scale/zero-point tracking and the rounding rule of the u8 kernels (see nn.h).
 * Twin: mcusim/ops/quant_u8.py. */
#include "nn.h"

#define NN_QMAX 255.0f
#define NN_INV_QMAX 3.92156886e-03f      /* 0x3B808081, float32 nearest 1/255 */
void nn_qparams_set(nn_qparams *q, float min, float max) {
    q->min = min;
    q->max = max;
    float lo = min < 0.0f ? min : 0.0f;
    float hi = max > 0.0f ? max : 0.0f;
    float scale = (hi - lo) * NN_INV_QMAX;
    if (!(scale >= NN_MIN_SCALE)) scale = NN_MIN_SCALE;
    int32_t zp = nn_floor_i32((0.0f - lo) / scale);
    q->scale = scale;
    q->zero_point = zp < 0 ? 0 : (zp > 255 ? 255 : zp);
}

void nn_qparams_observe(nn_qparams *q, float obs_min, float obs_max, float alpha) {
    float min = q->min + alpha * (obs_min - q->min);
    float max = q->max + alpha * (obs_max - q->max);
    nn_qparams_set(q, min, max);
}

void quantize_f32_u8(const float *x, uint8_t *y, int32_t n, nn_qparams *q, float alpha) {
    if (n <= 0) return;
    float lo = x[0], hi = x[0];
    for (int32_t i = 1; i < n; i++) {
        if (x[i] < lo) lo = x[i];
        if (x[i] > hi) hi = x[i];
    }
    nn_qparams_observe(q, lo, hi, alpha);
    float inv = 1.0f / q->scale;
    int32_t zp = q->zero_point;
    for (int32_t i = 0; i < n; i++) y[i] = nn_quantize(x[i], inv, zp);
}

void dequantize_u8_f32(const uint8_t *x, float *y, int32_t n, const nn_qparams *q) {
    float s = q->scale;
    int32_t zp = q->zero_point;
    for (int32_t i = 0; i < n; i++) y[i] = s * (float)((int32_t)x[i] - zp);
}

nn_requant nn_requant_make(float m) {
    nn_requant r = {0, 0};
    if (!(m > 0.0f)) return r;                                  /* 0, negative, NaN */
    uint32_t bits;
    __builtin_memcpy(&bits, &m, 4);
    const int32_t e = (int32_t)(bits >> 23) - 127;             /* m = 1.f * 2^e */
    if (e >= -1) {                                              /* m >= 0.5 (inf too): the largest held */
        r.mult = 0x7FFFFFFF;
        return r;
    }
    int32_t mult = (int32_t)(((bits & 0x7FFFFFu) | 0x800000u) << 7), shift = -2 - e;
    if (shift > 30) {                                           /* below 2^-32: fewer mantissa bits */
        const int32_t extra = shift - 30;
        mult = extra >= 31 ? 0 : mult >> extra;
        shift = 30;
    }
    r.mult = mult;
    r.shift = shift;
    return r;
}

void nn_range_observe(nn_qparams *q, int32_t imin, int32_t imax, float unit, float alpha) {
    if (imin > imax) return;
    nn_qparams_observe(q, (float)imin * unit, (float)imax * unit, alpha);
}

float nn_grad_next_scale(float s, int32_t maxabs) {
    float next;
    if (maxabs >= 32767)
        next = s * NN_GRAD_GROW;
    else if (maxabs == 0)
        next = s * (1.0f / NN_GRAD_GROW);
    else
        next = s * ((float)maxabs * (1.0f / NN_GRAD_TARGET));
    if (!(next >= NN_GRAD_MIN_SCALE)) next = NN_GRAD_MIN_SCALE;
    if (next > NN_GRAD_MAX_SCALE) next = NN_GRAD_MAX_SCALE;
    uint32_t b = nn_f32_bits(next);
    if (b & 0x7FFFFFu) b = (b & 0x7F800000u) + 0x800000u;       /* up to the next power of two */
    return nn_bits_f32(b);
}

void requantize_u8(const int32_t *acc, uint8_t *y, int32_t n, float multiplier, int32_t zero_point) {
    const nn_requant r = nn_requant_make(multiplier);
    for (int32_t i = 0; i < n; i++) y[i] = nn_requant_u8(acc[i], r, zero_point);
}
