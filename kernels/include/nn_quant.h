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
#include "nn.h"

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

/* floor() of a float in int32 range: truncation (vcvt.s32.f32) corrected for negative values. */
static inline int32_t nn_floor_i32(float v) {
    int32_t i = (int32_t)v;
    return ((float)i > v) ? i - 1 : i;
}

/* Gradient buffers of the u8 kernels hold IEEE half floats (uint16_t storage): weights 1 byte plus
 * gradient 2 bytes per parameter. The FPv4-SP unit converts with VCVTB (round to nearest even). */
static inline float nn_half_to_float(uint16_t h) {
    __fp16 v;
    __builtin_memcpy(&v, &h, 2);
    return (float)v;
}

static inline uint16_t nn_float_to_half(float f) {
    __fp16 v = (__fp16)f;
    uint16_t h;
    __builtin_memcpy(&h, &v, 2);
    return h;
}

/* The rounding rule above, for one value; inv_scale = 1.0f / scale. Inline: every kernel's inner
 * loop uses it. |v| is clamped to 1e6 first (NaN too), so the conversion is always defined. */
static inline uint8_t nn_quantize(float t, float inv_scale, int32_t zero_point) {
    float v = t * inv_scale;
    v = v + 0.5f;
    if (!(v >= -1.0e6f)) v = -1.0e6f;
    if (v > 1.0e6f) v = 1.0e6f;
    int32_t r = zero_point + nn_floor_i32(v);
    return (uint8_t)(r < 0 ? 0 : (r > 255 ? 255 : r));
}

/* Float tensor -> uint8: observe the tensor's min/max (moving average with alpha), then quantize
 * with the updated scale and zero point. */
void quantize_f32_u8(const float *x, uint8_t *y, int32_t n, nn_qparams *q, float alpha);

/* uint8 -> float: y = scale * (float)(q - zero_point). */
void dequantize_u8_f32(const uint8_t *x, float *y, int32_t n, const nn_qparams *q);

/* int32 accumulators -> uint8: y = rounding rule applied to t = (float)acc * multiplier, with
 * inv_scale 1 (the multiplier already folds s_in * s_w / s_out). */
void requantize_u8(const int32_t *acc, uint8_t *y, int32_t n, float multiplier, int32_t zero_point);



/* ---- gemm, uint8 ---------------------------------------------------------------------------
 * Weights [out][in] uint8 with one qparams for the tensor, bias [out] uint8 with its own; inputs,
 * outputs and errors uint8 with their qparams. Integer sums are exact int32 (any order), so the C
 * may use the M4's SIMD instructions freely; the float steps follow the order written here.
 *
 * forward: acc[o] = sum_i (w[o][i] - zw) * (x[i] - zx)
 *          t = (float)acc * (sw * sx);  t = t + sb * (float)(b[o] - zb);  if relu and !(t > 0): t = 0
 *          y[o] = nn_quantize(t, 1.0f / sy, zy) with y's CURRENT qparams; the min and max of t over
 *          all o are tracked and, after the layer, nn_qparams_observe(qy, tmin, tmax, alpha). */
void gemm_u8_forward(const uint8_t *x, const nn_qparams *qx, const uint8_t *w, const nn_qparams *qw,
                     const uint8_t *b, const nn_qparams *qb, uint8_t *y, nn_qparams *qy,
                     int32_t in, int32_t out, int32_t relu, float alpha);

/* backward_input (error propagation): acc[i] = sum over active o of (w[o][i] - zw) * (e[o] - ze)
 *          t = (float)acc * (sw * se);  if x is given and x[i] <= zx (the ReLU that produced x was
 *          off): t = 0;  ex[i] = nn_quantize(t, 1.0f / s_ex, z_ex), tracked and observed as in forward.
 * Inactive rows (active[o] == 0) are skipped (dynamic sparse update); active == NULL: all rows.
 * scratch: gemm_u8_backward_input_buffer_size(in) bytes, 4-byte aligned. */
int32_t gemm_u8_backward_input_buffer_size(int32_t in);
void gemm_u8_backward_input(const uint8_t *w, const nn_qparams *qw, const uint8_t *e, const nn_qparams *qe,
                            uint8_t *ex, nn_qparams *qex, const uint8_t *x, const nn_qparams *qx,
                            int32_t in, int32_t out, const uint8_t *active, float alpha, int32_t *scratch);

/* backward_weight: accumulates gradients (in real units) over a batch into half-float buffers.
 * For each active row o with de = e[o] - ze != 0: gr = (se * sx) * (float)de;
 *          gw[o][i] = half(float(gw[o][i]) + gr * (float)(x[i] - zx))   for i ascending;
 *          gb[o] = half(float(gb[o]) + se * (float)de).
 * scratch: gemm_u8_backward_weight_buffer_size(in) bytes (the (float)(x[i] - zx), computed once). */
int32_t gemm_u8_backward_weight_buffer_size(int32_t in);
void gemm_u8_backward_weight(const uint8_t *x, const nn_qparams *qx, const uint8_t *e, const nn_qparams *qe,
                             uint16_t *gw, uint16_t *gb, int32_t in, int32_t out, const uint8_t *active,
                             float *scratch);

/* ---- update, uint8 -------------------------------------------------------------------------
 * Gradient-standardized SGD on a uint8 tensor of `rows` structures (Gemm rows, Conv filters) of
 * `cols` weights, without any float copy of the weights:
 *   g is the half-float gradient buffer; every g below means float(g).
 *   per active row r:  mean = (sum_c g) / cols;  var = (sum_c (g - mean)^2) / cols   (sums ascending)
 *                      norm[2r] += alpha_norm * (mean - norm[2r]);  norm[2r+1] += alpha_norm * (var - norm[2r+1])
 *                      inv_std = 1.0f / (nn_sqrtf(norm[2r+1]) + 1e-8f)
 *                      w_new = sw * (float)(w - zw) - lr * ((g - norm[2r]) * inv_std)
 *   inactive rows keep w_new = sw * (float)(w - zw).
 *   pass 1 tracks min/max of w_new over the tensor -> nn_qparams_observe(qw, min, max, alpha_w);
 *   pass 2 recomputes w_new (with the old scale and zero point) and quantizes it with the new ones.
 *   Finally every g is set to 0. */
void sgd_u8_update(uint8_t *w, nn_qparams *qw, uint16_t *g, float *norm, int32_t rows, int32_t cols,
                   float lr, float alpha_norm, float alpha_w, const uint8_t *active);

/* ---- conv2d / convtranspose2d, uint8 ----------------------------------------------------------
 * Shapes and index conventions as the fp32 convolutions in nn.h (nn_conv_dims; activations [C][H][W];
 * Conv2D w [out_c][in_c][k_h][k_w]; ConvTranspose2D w [in_c][out_c][k_h][k_w]; Conv2D input index
 * i = o*stride - pad + k, ConvTranspose2D output index o = i*stride - pad + k, out-of-range positions
 * skipped / dropped). One qparams per tensor, as the uint8 Gemm. Zero padding is the REAL zero:
 * padded taps contribute nothing. Integer sums are exact int32 (any order: the C uses the M4's SIMD);
 * the float steps follow the order written here. `active` (NULL = all) holds one uint8 per output
 * channel oc. Every scratch is 4-byte aligned, of <fn>_buffer_size(d) BYTES.
 *
 * forward:  acc[oc][p] = sum over the taps (ic, kh, kw) of output position p of (w - zw) * (x - zx)
 *           t = (float)acc * (sw * sx);  t = t + sb * (float)(b[oc] - zb);  if relu and !(t > 0): t = 0
 *           y = nn_quantize(t, 1.0f / sy, zy) with y's CURRENT qparams; min/max of t tracked over all
 *           outputs (oc ascending, then position ascending), then nn_qparams_observe(qy, tmin, tmax, alpha).
 * backward_input: acc[ic][p] = sum over the active oc and taps (kh, kw) linking input position p to an
 *           output position q of (w - zw) * (e[oc][q] - ze)
 *           t = (float)acc * (sw * se);  if x is given and x[ic][p] <= zx: t = 0;
 *           ex = nn_quantize(t, 1.0f / s_ex, z_ex), tracked and observed as forward.
 * backward_weight: accumulates into half-float gradient buffers (uint16_t, as the Gemm's; the input of
 *           sgd_u8_update). DIFFERENT float form from the Gemm's: the spatial sum is exact int32 first,
 *           then ONE float multiply-add per weight. For every active oc (every one, even if its error is 0):
 *           isum = sum over the positions of (e[oc][q] - ze) * (x[ic][p] - zx) for the tap (ic, kh, kw)
 *           m = se * sx (once);  gw = half(float(gw) + m * (float)isum)
 *           gb[oc] = half(float(gb[oc]) + se * (float)(sum over all output positions q of (e[oc][q] - ze))).
 *           Inactive channels are untouched. */
int32_t conv2d_u8_forward_buffer_size(const nn_conv_dims *d);
void conv2d_u8_forward(const uint8_t *x, const nn_qparams *qx, const uint8_t *w, const nn_qparams *qw,
                       const uint8_t *b, const nn_qparams *qb, uint8_t *y, nn_qparams *qy,
                       const nn_conv_dims *d, int32_t relu, float alpha, int32_t *scratch);
int32_t conv2d_u8_backward_input_buffer_size(const nn_conv_dims *d);
void conv2d_u8_backward_input(const uint8_t *w, const nn_qparams *qw, const uint8_t *e, const nn_qparams *qe,
                              uint8_t *ex, nn_qparams *qex, const uint8_t *x, const nn_qparams *qx,
                              const nn_conv_dims *d, const uint8_t *active, float alpha, int32_t *scratch);
int32_t conv2d_u8_backward_weight_buffer_size(const nn_conv_dims *d);
void conv2d_u8_backward_weight(const uint8_t *x, const nn_qparams *qx, const uint8_t *e, const nn_qparams *qe,
                               uint16_t *gw, uint16_t *gb, const nn_conv_dims *d, const uint8_t *active,
                               int32_t *scratch);

int32_t convtranspose2d_u8_forward_buffer_size(const nn_conv_dims *d);
void convtranspose2d_u8_forward(const uint8_t *x, const nn_qparams *qx, const uint8_t *w, const nn_qparams *qw,
                                const uint8_t *b, const nn_qparams *qb, uint8_t *y, nn_qparams *qy,
                                const nn_conv_dims *d, int32_t relu, float alpha, int32_t *scratch);
int32_t convtranspose2d_u8_backward_input_buffer_size(const nn_conv_dims *d);
void convtranspose2d_u8_backward_input(const uint8_t *w, const nn_qparams *qw, const uint8_t *e,
                                       const nn_qparams *qe, uint8_t *ex, nn_qparams *qex, const uint8_t *x,
                                       const nn_qparams *qx, const nn_conv_dims *d, const uint8_t *active,
                                       float alpha, int32_t *scratch);
int32_t convtranspose2d_u8_backward_weight_buffer_size(const nn_conv_dims *d);
void convtranspose2d_u8_backward_weight(const uint8_t *x, const nn_qparams *qx, const uint8_t *e,
                                        const nn_qparams *qe, uint16_t *gw, uint16_t *gb, const nn_conv_dims *d,
                                        const uint8_t *active, int32_t *scratch);

/* Internal integer cores shared by conv2d_u8.c and convtranspose2d_u8.c (not operator API). Both
 * write acc[o][oy][ox] (int32, exact) for the geometry d, with input channels c where
 * in_active[c] == 0 counting as zero (in_active may be NULL), weights indexed as noted.
 * Strided (conv2d geometry), w [out_c][in_c][k_h][k_w]; work: nn__conv_u8_strided_work_size(d) bytes. */
int32_t nn__conv_u8_strided_work_size(const nn_conv_dims *d);
void nn__conv_u8_strided(const uint8_t *x, int32_t zx, const uint8_t *w, int32_t zw, const nn_conv_dims *d,
                         const uint8_t *in_active, int32_t *acc, int32_t *work);
/* Transposed (convtranspose2d geometry), w [in_c][out_c][k_h][k_w]; work: nn__conv_u8_transposed_work_size(d). */
int32_t nn__conv_u8_transposed_work_size(const nn_conv_dims *d);
void nn__conv_u8_transposed(const uint8_t *x, int32_t zx, const uint8_t *w, int32_t zw, const nn_conv_dims *d,
                            const uint8_t *in_active, int32_t *acc, int32_t *work);

/* Copy x [c][h][w] into xp [c][top + h + bottom][left + w + right] with zx in the border and in the
 * channels where in_active[ch] == 0 (in_active may be NULL). */
void nn__conv_u8_pad(const uint8_t *x, int32_t c, int32_t h, int32_t w, int32_t top, int32_t bottom,
                     int32_t left, int32_t right, const uint8_t *in_active, uint8_t zx, uint8_t *xp);

/* n4 bytes (a multiple of 4) -> n4/2 words of halfword pairs (b0,b2), (b1,b3) per 4 bytes; returns the sum. */
int32_t nn__conv_u8_widen(const uint8_t *b, int32_t n4, uint32_t *out);

/* Column dot product of both cores: acc[o * acc_stride] = sum_i (w[o][i] - zw) * (col[i] - zx) for
 * o < rows, over n4 (a multiple of 4) bytes; ww: the rows widened by nn__conv_u8_widen [rows][n4/2];
 * cw: n4/2 words of scratch. */
void nn__conv_u8_column(const uint8_t *col, int32_t n4, const uint32_t *ww, const int32_t *sum_w, int32_t rows,
                        int32_t zx, int32_t zw, int32_t *acc, int32_t acc_stride, uint32_t *cw);

/* The same sums read straight from the padded input xb through offs (n taps), for rows <= 2; rows
 * padded to n4 with zw, sum_w over the n4 bytes. */
void nn__conv_u8_direct(const uint8_t *xb, const int32_t *offs, int32_t n, const uint8_t *w, int32_t n4,
                        const int32_t *sum_w, int32_t rows, int32_t zx, int32_t zw, int32_t *acc,
                        int32_t acc_stride);

/* Epilogues: forward over acc [out_c][plane] (bias, ReLU, quantize, observe) and error over acc [n]
 * (x mask, quantize, observe), in the float order documented above. */
void nn__conv_u8_epilogue_forward(const int32_t *acc, float m, const uint8_t *b, const nn_qparams *qb, uint8_t *y,
                                  nn_qparams *qy, int32_t out_c, int32_t plane, int32_t relu, float alpha);
void nn__conv_u8_epilogue_error(const int32_t *acc, float m, uint8_t *ex, nn_qparams *qex, const uint8_t *x,
                                const nn_qparams *qx, int32_t n, float alpha);

#endif /* NN_QUANT_H */
