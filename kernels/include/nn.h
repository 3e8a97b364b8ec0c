/* nn.h: the public header of the on-device training kernels (fp32 and quantised operator groups).
 *
 * Conventions shared by every operator group:
 *   - one sample at a time; gradients of a batch are accumulated by the backward_weight calls;
 *   - activations [C][H][W] row-major and contiguous; biases [OC] / [out];
 *   - Gemm weights [out][in]; Conv2D weights [OC][IC][KH][KW]; ConvTranspose2D weights [IC][OC][KH][KW]
 *     (PyTorch layouts);
 *   - all integer arguments are int32_t; no allocation, no libc;
 *   - forward OVERWRITES y, backward_input OVERWRITES dx, backward_weight ACCUMULATES into dw and db;
 *   - `active` (dynamic sparse update): NULL = every structure; otherwise one uint8 per output
 *     structure (a Gemm row = output neuron, a conv output channel). An inactive structure is skipped in
 *     BOTH backward computations: its dy counts as 0 in dx and its dw/db are left untouched.
 *
 * Every function documents its exact floating-point summation order. That order is the contract: the
 * Numba twins (modules of mcusim/ops) perform the same float32 operations in the same order, and the C is
 * built with -ffp-contract=off (no FMA), so both return identical bits. "acc += a*b" below always means
 * acc = acc + (a*b), each operation rounded to float32. Terms that fall into the zero padding are
 * skipped (never added as 0*w). */
#ifndef NN_H
#define NN_H

#include <stdint.h>
#include "nn_math.h"

/* Convolution shapes (Conv2D and ConvTranspose2D), passed by pointer. From Python: an np.int32 array
 * of these 10 values in this order. Zero padding, square stride, no dilation, no groups. */
typedef struct {
    int32_t in_c, in_h, in_w;
    int32_t out_c, out_h, out_w;
    int32_t k_h, k_w;
    int32_t stride, pad;
} nn_conv_dims;

/* ---- gemm (fully connected, fp32) ------------------------------------------------------------ */

/* y[o] = b[o] + sum_i w[o][i] * x[i], for o in [0, out).
 * Order: acc = b[o] (0.0f if b == NULL); for i = 0, 1, ..., in-1: acc += w[o][i] * x[i]; y[o] = acc. */
void gemm_f32_forward(const float *x, const float *w, const float *b, float *y, int32_t in, int32_t out);

/* dx[i] = sum_o w[o][i] * dy[o] over the active rows o.
 * Order: acc = 0.0f; for o = 0, 1, ..., out-1 (active rows only): acc += w[o][i] * dy[o]; dx[i] = acc. */
void gemm_f32_backward_input(const float *w, const float *dy, float *dx, int32_t in, int32_t out,
                             const uint8_t *active);

/* For every active row o: dw[o][i] += x[i] * dy[o] (i = 0..in-1, one rounding each), then
 * db[o] += dy[o] (skipped if db == NULL). Inactive rows are untouched. */
void gemm_f32_backward_weight(const float *x, const float *dy, float *dw, float *db, int32_t in, int32_t out,
                              const uint8_t *active);

/* ---- conv2d (fp32) --------------------------------------------------------------------------- */
/* Geometry: input row iy = oy*stride - pad + ky, column ix = ox*stride - pad + kx; positions outside
 * the input are zero padding (skipped). Shapes: x [in_c][in_h][in_w], y [out_c][out_h][out_w],
 * w [out_c][in_c][k_h][k_w]. */

/* y[oc][oy][ox]: acc = b[oc] (0.0f if b == NULL);
 *   for ic = 0..in_c-1, for ky = 0..k_h-1, for kx = 0..k_w-1 (in-bounds taps only):
 *     acc += w[oc][ic][ky][kx] * x[ic][iy][ix];
 *   y[oc][oy][ox] = acc. */
void conv2d_f32_forward(const float *x, const float *w, const float *b, float *y, const nn_conv_dims *d);

/* dx[ic][iy][ix]: acc = 0.0f;
 *   for oc = 0..out_c-1 (active only), for ky = 0..k_h-1, for kx = 0..k_w-1 such that
 *   oy = (iy + pad - ky) / stride and ox = (ix + pad - kx) / stride are exact and in range:
 *     acc += w[oc][ic][ky][kx] * dy[oc][oy][ox];
 *   dx[ic][iy][ix] = acc.
 * (This is the gather form of the transposed convolution; it shares its core with
 * convtranspose2d_f32_forward.) */
void conv2d_f32_backward_input(const float *w, const float *dy, float *dx, const nn_conv_dims *d,
                               const uint8_t *active);

/* For every active oc: for ic, ky, kx: acc = 0.0f; for oy = 0..out_h-1, for ox = 0..out_w-1 (taps
 * inside the input only): acc += x[ic][iy][ix] * dy[oc][oy][ox]; then dw[oc][ic][ky][kx] += acc.
 * Bias: acc = 0.0f; for oy, for ox: acc += dy[oc][oy][ox]; db[oc] += acc (skipped if db == NULL). */
void conv2d_f32_backward_weight(const float *x, const float *dy, float *dw, float *db, const nn_conv_dims *d,
                                const uint8_t *active);

/* ---- convtranspose2d (fp32) ------------------------------------------------------------------ */
/* Geometry: input (iy, ix) and kernel tap (ky, kx) feed output oy = iy*stride - pad + ky,
 * ox = ix*stride - pad + kx; outputs outside [0, out_h) x [0, out_w) are dropped (so out_h / out_w,
 * given explicitly, also express output_padding). Shapes: x [in_c][in_h][in_w],
 * y [out_c][out_h][out_w], w [in_c][out_c][k_h][k_w]. */

/* y[oc][oy][ox] (gather form): acc = b[oc] (0.0f if b == NULL);
 *   for ic = 0..in_c-1, for ky = 0..k_h-1, for kx = 0..k_w-1 such that iy = (oy + pad - ky) / stride and
 *   ix = (ox + pad - kx) / stride are exact and in range:
 *     acc += w[ic][oc][ky][kx] * x[ic][iy][ix];
 *   y[oc][oy][ox] = acc. */
void convtranspose2d_f32_forward(const float *x, const float *w, const float *b, float *y, const nn_conv_dims *d);

/* dx[ic][iy][ix]: acc = 0.0f;
 *   for oc = 0..out_c-1 (active only), for ky = 0..k_h-1, for kx = 0..k_w-1 (oy, ox inside the output):
 *     acc += w[ic][oc][ky][kx] * dy[oc][oy][ox];
 *   dx[ic][iy][ix] = acc.
 * (A strided convolution of dy; it shares its core with conv2d_f32_forward.) */
void convtranspose2d_f32_backward_input(const float *w, const float *dy, float *dx, const nn_conv_dims *d,
                                        const uint8_t *active);

/* For every active oc: for ic, ky, kx: acc = 0.0f; for iy = 0..in_h-1, for ix = 0..in_w-1 (outputs
 * inside [0, out) only): acc += x[ic][iy][ix] * dy[oc][oy][ox]; then dw[ic][oc][ky][kx] += acc.
 * (The C forms each product as dy * x; float multiplication is commutative, so the bits are the same.)
 * Bias: acc = 0.0f; for oy, for ox: acc += dy[oc][oy][ox]; db[oc] += acc (skipped if db == NULL). */
void convtranspose2d_f32_backward_weight(const float *x, const float *dy, float *dw, float *db,
                                         const nn_conv_dims *d, const uint8_t *active);

/* ---- internal cores shared by the conv files (not part of the operator API) ------------------ */

/* Strided convolution (gather), the conv2d_f32_forward order, with input channels skipped where
 * in_active[ic] == 0 (in_active may be NULL). w [out_c][in_c][k_h][k_w]. */
void nn__conv2d_f32_gather(const float *x, const float *w, const float *b, float *y, const nn_conv_dims *d,
                           const uint8_t *in_active);

/* Transposed convolution (gather), the convtranspose2d_f32_forward order, with input channels skipped
 * where in_active[ic] == 0 (in_active may be NULL). w [in_c][out_c][k_h][k_w]. */
void nn__convtranspose2d_f32_gather(const float *x, const float *w, const float *b, float *y,
                                    const nn_conv_dims *d, const uint8_t *in_active);

/* Weight-gradient planes of a strided convolution for one strided input plane xc and one or two
 * gradient maps g0, g1 (g1 may be NULL):
 *   for ky, kx: acc = 0.0f; for oy = 0..OH-1, ox = 0..OW-1 with iy = oy*S - P + ky, ix = ox*S - P + kx
 *   inside [0, IH) x [0, IW): acc += xc[iy][ix] * g[oy][ox]; then dw[ky][kx] += acc  (dw0 with g0, dw1 with g1).
 * Serves conv2d (xc = x[ic], g = dy[oc]) and convtranspose2d (xc = dy[oc], g = x[ic]). */
void nn__conv2d_f32_weight_plane(const float *xc, int32_t IH, int32_t IW, const float *g0, const float *g1,
                                 int32_t OH, int32_t OW, int32_t KH, int32_t KW, int32_t S, int32_t P,
                                 float *dw0, float *dw1);

/* Swap the roles of input and output in a geometry (conv2d <-> convtranspose2d adjoint). */
static inline nn_conv_dims nn__conv_dims_swap(const nn_conv_dims *d) {
    nn_conv_dims t;
    t.in_c = d->out_c; t.in_h = d->out_h; t.in_w = d->out_w;
    t.out_c = d->in_c; t.out_h = d->in_h; t.out_w = d->in_w;
    t.k_h = d->k_h; t.k_w = d->k_w; t.stride = d->stride; t.pad = d->pad;
    return t;
}

#endif /* NN_H */
