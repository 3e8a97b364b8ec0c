/* nn_quant.h: per-tensor uint8 quantization shared by every u8 training kernel (to be merged into
 * the single public header nn.h). Twin: mcusim/ops/quant_u8.py, bit-exact.
 *
 * A tensor holds uint8 q with real value r = scale * (q - zero_point). The range [min, max] is a
 * moving average of the ranges observed; scale and zero point follow it:
 *     lo = min(min, 0), hi = max(max, 0), scale = (hi - lo) / 255 (at least NN_MIN_SCALE),
 *     zero_point = floor(-lo / scale), clamped to 0..255.
 * Rounding rule (every float -> uint8 conversion, on both sides):
 *     q = clamp(zero_point + floor(t * inv_scale + 0.5), 0, 255)   (round half up)
 * computed in float32 as v = t * inv_scale; v = v + 0.5f; then floor by truncation and correction;
 * NaN quantizes like a very negative value (to 0). */
#ifndef NN_QUANT_H
#define NN_QUANT_H

#include <stdint.h>

typedef struct {
    float scale;
    int32_t zero_point;
    float min;          /* moving-average range the scale and zero point come from */
    float max;
} nn_qparams;

#define NN_MIN_SCALE 1.0e-8f

/* Set the range exactly and derive scale and zero point. */
void nn_qparams_set(nn_qparams *q, float min, float max);

/* Move the range towards an observed one: min += alpha * (obs_min - min), the same for max; then
 * derive scale and zero point. alpha = 0 keeps a fixed range (e.g. [-1, 1] for loss errors). */
void nn_qparams_observe(nn_qparams *q, float obs_min, float obs_max, float alpha);

/* The rounding rule above, for one value; inv_scale = 1.0f / scale. */
uint8_t nn_quantize(float t, float inv_scale, int32_t zero_point);

/* Float tensor -> uint8: observe the tensor's min/max (moving average with alpha), then quantize
 * with the updated scale and zero point. */
void quantize_f32_u8(const float *x, uint8_t *y, int32_t n, nn_qparams *q, float alpha);

/* uint8 -> float: y = scale * (float)(q - zero_point). */
void dequantize_u8_f32(const uint8_t *x, float *y, int32_t n, const nn_qparams *q);

/* int32 accumulators -> uint8: y = rounding rule applied to t = (float)acc * multiplier, with
 * inv_scale 1 (the multiplier already folds s_in * s_w / s_out). */
void requantize_u8(const int32_t *acc, uint8_t *y, int32_t n, float multiplier, int32_t zero_point);

#endif /* NN_QUANT_H */
