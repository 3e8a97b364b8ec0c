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

#include <stddef.h>
#include <stdint.h>


/* ======== portable float32 math and random numbers (nn_math.c) ==================================== */
/*  portable float32 math primitives shared by the Cortex-M4F training kernels and their
 * Numba twins in mcusim/ops/nn_math.py.
 *
 * Every function is written with float32 +, -, *, /, comparisons, int<->float conversions, bit
 * casts and the IEEE square root only, each operation rounded to float32 in a fixed order, so the
 * C build (-ffp-contract=off, FPv4-SP) and the Numba twin return the same bits for every input.
 * Do not change an operation here without changing the twin the same way (tests/test_nn_math.py
 * checks bit equality on the emulator).
 *
 * Real (not inline) functions so the emulator can call them by symbol. */
/* e^x. Range reduction x = k*ln2 + r with ln2 split into hi/lo float32 constants, |r| <= ~ln2/2,
 * exp(r) = 1 + r + r^2*P(r) with a degree-4 minimax P, then scaling by 2^k through the exponent bits.
 *   NaN       -> the same NaN (input bits returned unchanged)
 *   x >= 88.72283935546875 (first float32 whose e^x exceeds FLT_MAX; includes +inf) -> +inf
 *   x <  -87.33654022216797 (below the last float32 whose e^x is a normal float; includes -inf) -> +0.0f
 *   (so the result is never a denormal). Measured against float64 exp: max relative error 7.9e-8,
 *   under 1 ulp (0.96), over a dense grid of [-87.33, 88.72]. */
float nn_expf(float x);

/* Natural logarithm. x = m*2^e with m in [sqrt(1/2), sqrt(2)), s = (m-1)/(m+1),
 * log(m) = 2s + s^3*Q(s^2) with a degree-2 minimax Q, result = e*ln2_hi + (e*ln2_lo + log(m)).
 *   NaN -> the same NaN;  x < 0 (incl. -inf) -> quiet NaN 0x7FC00000;  +-0 -> -inf;  +inf -> +inf;
 *   denormal inputs are scaled by 2^23 first (exact). Measured against float64 log: max relative
 *   error 1.7e-7, under 2 ulp (1.96), over [1e-38, 3e38] and denormals. */
float nn_logf(float x);

/* IEEE correctly rounded square root: one `vsqrt.f32` on the M4 (inline assembly, never a libm
 * call), the same bits as numpy's float32 sqrt. */
float nn_sqrtf(float x);

/* Deterministic random numbers. Generator: 32-bit PCG, "RXS M XS" output (state s, every uint32 is a
 * valid seed including 0; period 2^32):
 *     s = s * 747796405 + 2891336453                         (mod 2^32, state advanced first)
 *     w = ((s >> ((s >> 28) + 4)) ^ s) * 277803737;  return (w >> 22) ^ w
 * nn_rng_next returns that 32-bit output. */
uint32_t nn_rng_next(uint32_t *state);

/* Uniform in the open interval (0, 1): the top 24 bits of nn_rng_next times 2^-24, so multiples of
 * 2^-24 in [2^-24, 1 - 2^-24]; a draw whose 24 bits are all zero is rejected and drawn again. */
float nn_rng_uniform(uint32_t *state);

/* Standard normal by the Marsaglia polar method (no sin/cos): u = 2*U1 - 1, v = 2*U2 - 1,
 * s = u*u + v*v, retried until 0 < s < 1, then f = sqrt((-2*log(s)) / s) and the pair (u*f, v*f).
 * nn_rng_normal returns u*f and discards v*f (the 32-bit state cannot hold it). */
float nn_rng_normal(uint32_t *state);

/* n standard normals into out[0..n-1], using BOTH values of each polar pair (out[i] = u*f,
 * out[i+1] = v*f; for odd n the last element takes u*f of one more pair). This is therefore NOT the
 * same stream as n calls of nn_rng_normal, but is about half the cost per value. */
void nn_rng_fill_normal(uint32_t *state, float *out, int n);

/* ======== fp32 layers (gemm_f32.c, conv2d_f32.c, convtranspose2d_f32.c) =========================== */
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

/* ======== fp32 activations, losses, optimizer ===================================================== */
/*  fp32 elementwise operators, losses and the SGD update of the on-device VAE
 * training step (section of prototypes; to be merged into nn.h).
 *
 * Each function is bit exact with its Numba twin of the same name in mcusim/ops/train_f32.py:
 * every operation below is one float32 operation rounded to nearest, performed in exactly the order
 * written (built with -ffp-contract=off, so no fused multiply-add). exp and log are nn_expf and
 * nn_logf from its section of nn.h. Sums are sequential float32 sums starting from +0.0f, in index order.
 * |x| is a sign-bit clear and -|x| a sign-bit set (exact). Sizes n <= 0 do nothing (a loss then
 * sums nothing). Unless stated otherwise, an output may be the same buffer as an input of the same
 * length (each element is read before it is written), but different outputs must not overlap. */
/* 1/255 rounded to float32 (bits 0x3B808081 = 0.0039215688593685627): a pixel p in 0..255 is the
 * target t = (float)p * NN_INV255 (the conversion is exact, the product is one rounding). */
#define NN_INV255 3.92156886e-03f

/* ---- input ---------------------------------------------------------------------------------- */

/* x[i] = (float)pixels[i] * NN_INV255: the image as the fp32 network's input, in [0, 1]. */
void pixels_f32_forward(const uint8_t *pixels, float *x, int32_t n);

/* ---- activations --------------------------------------------------------------------------- */

/* y[i] = x[i] > 0 ? x[i] : +0.0f, computed on the IEEE bits: a sign bit set gives +0.0f, a clear one
 * keeps x[i] (identical for every non-NaN x; -0.0 -> +0.0; a NaN with a clear sign propagates).
 * y may be x. */
void relu_f32_forward(const float *x, float *y, int32_t n);

/* dx[i] = y[i] > 0 ? dy[i] : +0.0f, with y the relu OUTPUT of the forward pass; the test is on the
 * IEEE bits, (int32_t)bits(y[i]) > 0 (identical for every non-NaN y; a NaN y with a clear sign passes
 * dy). dy[i] is copied bit for bit. dx may be dy (or y). */
void relu_f32_backward(const float *y, const float *dy, float *dx, int32_t n);

/* Numerically stable logistic function:
 *     e = nn_expf(-|x|);  d = 1.0f + e;  y = (x >= 0 ? 1.0f : e) / d
 * (one division; never overflows; NaN -> NaN). y may be x. */
void sigmoid_f32_forward(const float *x, float *y, int32_t n);

/* ---- reparameterization z = mu + sigma * eps, sigma = exp(log_sigma) ------------------------- */

/* s = nn_expf(log_sigma[i]);  t = s * eps[i];  z[i] = mu[i] + t.
 * eps comes from nn_rng_fill_normal (drawn by the caller). z may be mu, log_sigma or eps. */
void reparameterize_f32_forward(const float *mu, const float *log_sigma, const float *eps, float *z,
                                int32_t n);

/* ACCUMULATES the gradients of z into those of mu and log_sigma:
 *     dmu[i] = dmu[i] + dz[i];
 *     s = nn_expf(log_sigma[i]);  t = s * eps[i];  t = dz[i] * t;  dlog_sigma[i] = dlog_sigma[i] + t.
 * (dz/dlog_sigma = sigma * eps.) Call it after elbo_f32_backward has written the KL gradient. */
void reparameterize_f32_backward(const float *log_sigma, const float *eps, const float *dz, float *dmu,
                                 float *dlog_sigma, int32_t n);

/* ---- ELBO with a Bernoulli likelihood on logits ---------------------------------------------
 * The decoder outputs logits z_i, the probability of pixel i being "on" is sigmoid(z_i), and the
 * target is the grey level t_i = (float)pixels[i] * NN_INV255 in [0, 1] (continuous Bernoulli-style
 * targets, the usual binary cross-entropy with logits). The posterior is N(mu, sigma^2) with
 * sigma = exp(log_sigma), the prior N(0, 1). The loss of one image is the negative ELBO
 *     L = sum_i [max(z_i,0) - z_i*t_i + log(1 + exp(-|z_i|))]
 *       + 0.5 * sum_j [mu_j^2 + exp(2*ls_j) - 1 - 2*ls_j]
 * (binary cross-entropy of the logits + KL(N(mu, sigma^2) || N(0, 1))). */

/* Returns L computed as:
 *   rec = 0.0f; for i in 0..n_pixels-1 (in order):
 *       z = logits[i];  t = (float)pixels[i] * NN_INV255;
 *       a = z > 0 ? z : 0.0f;  b = z * t;  e = nn_expf(-|z|);  l = nn_logf(1.0f + e);
 *       rec = rec + ((a - b) + l)
 *   kl = 0.0f; for j in 0..n_latent-1 (in order):
 *       m = mu[j];  l2 = log_sigma[j] + log_sigma[j];  s2 = nn_expf(l2);
 *       kl = kl + (((m * m + s2) - 1.0f) - l2)
 *   return rec + 0.5f * kl */
float elbo_f32_forward(const float *logits, const uint8_t *pixels, const float *mu, const float *log_sigma,
                       int32_t n_pixels, int32_t n_latent);

/* Gradient of L. OVERWRITES all three outputs:
 *   dlogits[i]    = sigmoid(z) - t, with z = logits[i], t = (float)pixels[i] * NN_INV255 and
 *                   sigmoid(z) computed exactly as in sigmoid_f32_forward;
 *   dmu[j]        = mu[j];
 *   dlog_sigma[j] = nn_expf(log_sigma[j] + log_sigma[j]) - 1.0f.
 * reparameterize_f32_backward then accumulates the decoder's path into dmu, dlog_sigma.
 * dlogits may be logits, dmu may be mu, dlog_sigma may be log_sigma. */
void elbo_f32_backward(const float *logits, const uint8_t *pixels, const float *mu, const float *log_sigma,
                       float *dlogits, float *dmu, float *dlog_sigma, int32_t n_pixels, int32_t n_latent);

/* The per-pixel and latent steps of the two functions above, shared with elbo_u8 (inline: hot loops). */
static inline float nn_sigmoid(float z) {
    float e = nn_expf(-__builtin_fabsf(z));
    return (z >= 0.0f ? 1.0f : e) / (1.0f + e);
}

/* log(1 + exp(-|z|)), the part of nn_bce_logit that depends on the logit only. */
static inline float nn_log1p_exp_neg_abs(float z) { return nn_logf(1.0f + nn_expf(-__builtin_fabsf(z))); }

/* nn_bce_logit with l = nn_log1p_exp_neg_abs(z) given (the u8 ELBO computes it once per logit code). */
static inline float nn_bce_logit_with(float z, float t, float l) {
    float a = z > 0.0f ? z : 0.0f;
    float b = z * t;
    return (a - b) + l;
}

static inline float nn_bce_logit(float z, float t) {
    float a = z > 0.0f ? z : 0.0f;
    float b = z * t;
    float l = nn_log1p_exp_neg_abs(z);
    return (a - b) + l;
}

static inline float nn_kl_normal(const float *mu, const float *log_sigma, int32_t n_latent) {
    float kl = 0.0f;
    for (int32_t j = 0; j < n_latent; j++) {
        float m = mu[j], l2 = log_sigma[j] + log_sigma[j];
        kl = kl + (((m * m + nn_expf(l2)) - 1.0f) - l2);
    }
    return kl;
}

static inline void nn_kl_normal_backward(const float *mu, const float *log_sigma, float *dmu, float *dlog_sigma,
                                         int32_t n_latent) {
    for (int32_t j = 0; j < n_latent; j++) {
        float m = mu[j], ls = log_sigma[j];
        dmu[j] = m;
        dlog_sigma[j] = nn_expf(ls + ls) - 1.0f;
    }
}

/* ---- classifier loss -------------------------------------------------------------------------- */

/* Softmax cross-entropy of one sample with n >= 1 logits and 0 <= label < n (not checked):
 *   m = max_i logits[i] (first maximum; a NaN is never selected);  zl = logits[label] - m;
 *   s = 0.0f; for i in order: e_i = nn_expf(logits[i] - m); s = s + e_i;
 *   loss = nn_logf(s) - zl;  returned.
 * If dlogits != NULL it receives softmax - onehot:  r = 1.0f / s;  g = e_i * r;
 * dlogits[label] = g - 1.0f (e_i is the same value as in the sum). dlogits may be logits; NULL
 * computes the loss only. */
float cross_entropy_f32(const float *logits, int32_t n, int32_t label, float *dlogits);

/* ---- optimizer ------------------------------------------------------------------------------- */

/* Plain SGD step and gradient reset, scale = lr / batch computed once by the caller:
 *   t = scale * g[i];  w[i] = w[i] - t;  g[i] = 0.0f. */
void sgd_f32_update(float *w, float *g, int32_t n, float scale);

/* Gradient-standardized SGD, the same update as sgd_u8_update without the quantization, with the same
 * (rows, cols, run) structure layout and statistics norm [rows] (mcusim trains fp32 with it too: plain
 * SGD at the paper's lr 0.001 does not learn a VAE). Per active row r of `cols` weights (sums
 * ascending from 0.0f):
 *   norm[r] += alpha_norm * ((sum_c g * g) * (1.0f / cols) - norm[r]);
 *   inv_rms = 1.0f / (nn_sqrtf(norm[r]) + 1e-8f);
 *   d = clamp(g * inv_rms, -3, 3);  w = w - lr * d;  g = 0.   Inactive rows are untouched. */
void sgd_f32_standardized_update(float *w, float *g, float *norm, int32_t rows, int32_t cols, int32_t run,
                                 float lr, float alpha_norm, const uint8_t *active);

/* The statistics and the step shared by both standardized updates (inline: hot loops). A step never
 * exceeds 3 sigma, so rows whose spread collapses cannot throw their weights away. */
#define NN_STD_EPS 1.0e-8f
#define NN_MAX_Z 3.0f
static inline void nn_rms_track(float *norm_r, float sum_sq, float inv_cols, float alpha_norm) {
    *norm_r = *norm_r + alpha_norm * (sum_sq * inv_cols - *norm_r);
}

static inline float nn_inv_rms(float norm_r) { return 1.0f / (nn_sqrtf(norm_r) + NN_STD_EPS); }

static inline float nn_standardized_step(float g, float inv_rms) {
    float d = g * inv_rms;
    if (d > NN_MAX_Z) d = NN_MAX_Z;
    if (d < -NN_MAX_Z) d = -NN_MAX_Z;
    return d;
}

/* ======== uint8 quantization, layers and update =================================================== */
/*  per-tensor uint8 quantization shared by every u8 training kernel (to be merged into
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

/* Gradient buffers of the u8 kernels: int16 codes g with one gradient scale per row (float sg[rows]; a
 * row is a structure of the update: a Gemm output neuron, a Conv2D filter, a ConvTranspose2D output
 * channel; a bias has one scale per element): the real gradient of a weight of row r is sg[r] * (float)g.
 * A scale per row keeps the precision of rows whose gradients are much smaller than the tensor's largest
 * (the standardized update divides each row by its own RMS, so a coarse small row became a noisy step).
 * The backward_weight kernels add each sample's gradient in these units with saturation (the sums stay in
 * the DSP path: SMLABB/SMLATB and QADD16); the scales are fixed during a batch and chosen by the update
 * for the next one (nn_grad_next_scale). 1 byte of weight plus 2 bytes of gradient per parameter, 4 bytes
 * per row. */
static inline int32_t nn_sat16(int32_t v) { return v < -32768 ? -32768 : (v > 32767 ? 32767 : v); }

/* After a batch: maxabs = the largest |g| of a row whose scale was s. The next batch's scale puts that
 * magnitude at NN_GRAD_TARGET (a quarter of the int16 range, headroom for a larger batch); a row that
 * saturated (maxabs >= 32767) gets s * NN_GRAD_GROW instead, one whose gradient rounded away entirely
 * (maxabs 0) s / NN_GRAD_GROW; the scale is clamped to [NN_GRAD_MIN_SCALE, NN_GRAD_MAX_SCALE] and rounded
 * up to a power of two (so that magnitude lands in (NN_GRAD_TARGET / 2, NN_GRAD_TARGET]). Powers of two
 * let the backward kernels multiply by the exact reciprocal (nn_grad_inverse) where they divided by the
 * scale per row (VDIV, 14 cycles, twice per row of a Gemm): x * nn_grad_inverse(s) == x / s bit for bit. */
#define NN_GRAD_TARGET 8192.0f
#define NN_GRAD_GROW 64.0f
#define NN_GRAD_MIN_SCALE 0x1p-100f
#define NN_GRAD_MAX_SCALE 0x1p100f
float nn_grad_next_scale(float s, int32_t maxabs);

/* Stochastic rounding, for the weight update only: q = clamp(zero_point + floor(t * inv_scale + u), 0, 255)
 * with u in [0, 1); nn_quantize below is u = 0.5f. Its mean is t's exact code, so a change
 * smaller than half a step survives on average, and re-rounding onto a slightly moved grid does not drag the
 * values along with the range (round half up keeps a code, so its real value follows the scale). */
static inline uint8_t nn_quantize_dithered(float t, float inv_scale, int32_t zero_point, float u) {
    float v = t * inv_scale;
    v = v + u;
    if (!(v >= -1.0e6f)) v = -1.0e6f;
    if (v > 1.0e6f) v = 1.0e6f;
    int32_t r = zero_point + nn_floor_i32(v);
    return (uint8_t)(r < 0 ? 0 : (r > 255 ? 255 : r));
}

/* The rounding rule above, for one value; inv_scale = 1.0f / scale. Inline: every kernel's inner
 * loop uses it. |v| is clamped to 1e6 first (NaN too), so the conversion is always defined. */
static inline uint8_t nn_quantize(float t, float inv_scale, int32_t zero_point) {
    return nn_quantize_dithered(t, inv_scale, zero_point, 0.5f);
}

/* A bijective 32-bit hash (xor-shift and multiply rounds); the dither of the update is stateless:
 * nn_dither(seed, k) = (nn_mix32(seed ^ (k * 0x9E3779B9)) >> 8) * 2^-24, a multiple of 2^-24 in [0, 1), and
 * sgd_u8_update seeds each row with nn_mix32(bits(norm[r]) ^ nn_mix32(bits(max))), the row's new update
 * statistic and the tensor's new range (both change from batch to batch). */
static inline uint32_t nn_mix32(uint32_t x) {
    x ^= x >> 16;
    x *= 0x7FEB352Du;
    x ^= x >> 15;
    x *= 0x846CA68Bu;
    x ^= x >> 16;
    return x;
}

static inline uint32_t nn_f32_bits(float f) {
    uint32_t b;
    __builtin_memcpy(&b, &f, 4);
    return b;
}

static inline float nn_bits_f32(uint32_t b) {
    float f;
    __builtin_memcpy(&f, &b, 4);
    return f;
}

/* 1 / s for a gradient scale s = 2^k (nn_grad_next_scale's powers of two, |k| <= 100): 2^-k from the
 * exponent field alone, exact. */
static inline float nn_grad_inverse(float s) { return nn_bits_f32(0x7F000000u - nn_f32_bits(s)); }

static inline float nn_dither(uint32_t seed, uint32_t k) {
    return (float)(nn_mix32(seed ^ (k * 0x9E3779B9u)) >> 8) * 5.9604644775390625e-08f;
}

/* ---- integer output stage -------------------------------------------------------------------
 * The layers requantize their int32 sums without floats: a real multiplier m >= 0 (s_in * s_w / s_out)
 * is held as m ~= mult * 2^-(32 + shift) with mult in [2^30, 2^31) (the float's 24-bit mantissa, exact)
 * and 0 <= shift <= 30, and, rounding half up twice (as CMSIS-NN's high multiply and power-of-two divide):
 *     h = floor((v * mult + 2^31) / 2^32)                     (SMMULR)
 *     nn_requant_apply(v) = (h + (2^shift >> 1)) >> shift      (an add and an arithmetic shift)
 * Limits, never met by a tracked
 * range but by a degenerate one (e.g. a zero-width initial range): m >= 2^-1 is held as mult = 2^31 - 1,
 * shift = 0 (just under 0.5); below 2^-32 mult is shifted right instead (fewer mantissa bits; 0 below
 * 2^-63, and for 0 and NaN). The range the layer observes is tracked on the integers (exact), so a
 * clamped multiplier never feeds back into the next scale. */
typedef struct {
    int32_t mult;
    int32_t shift;
} nn_requant;

nn_requant nn_requant_make(float m);

static inline int32_t nn_requant_apply(int32_t v, nn_requant r) {
    const int32_t h = (int32_t)(((int64_t)v * r.mult + 0x80000000LL) >> 32);
    return (h + ((1 << r.shift) >> 1)) >> r.shift;
}

/* zero_point + nn_requant_apply(v), clamped to 0..255. */
static inline uint8_t nn_requant_u8(int32_t v, nn_requant r, int32_t zero_point) {
    const int32_t q = zero_point + nn_requant_apply(v, r);
    return (uint8_t)(q < 0 ? 0 : (q > 255 ? 255 : q));
}

/* nn_floor_i32(ratio * (float)v + 0.5f), the product first clamped to +-2^30 (NaN to -2^30): an integer
 * rescaled by a float ratio, rounded half up. */
static inline int32_t nn_round_scaled(int32_t v, float ratio) {
    float t = ratio * (float)v;
    if (!(t >= -1073741824.0f)) t = -1073741824.0f;
    if (t > 1073741824.0f) t = 1073741824.0f;
    return nn_floor_i32(t + 0.5f);
}

/* A bias code b (qparams sb, zb) in units of the layer's sums (1 unit = s_in * s_w; ratio = sb / unit). */
static inline int32_t nn_bias_units(uint8_t b, int32_t zb, float ratio) {
    return nn_round_scaled((int32_t)b - zb, ratio);
}

/* The range of a requantized tensor, tracked on the integer values t before requantization; after the
 * layer nn_range_observe(q, imin, imax, unit, alpha) observes [(float)imin * unit, (float)imax * unit]
 * (unit: the real value of one integer step; nothing is observed if no value was seen). */
#define NN_RANGE_EMPTY_MIN 2147483647
#define NN_RANGE_EMPTY_MAX (-2147483647 - 1)
void nn_range_observe(nn_qparams *q, int32_t imin, int32_t imax, float unit, float alpha);

/* Float tensor -> uint8: observe the tensor's min/max (moving average with alpha), then quantize
 * with the updated scale and zero point. */
void quantize_f32_u8(const float *x, uint8_t *y, int32_t n, nn_qparams *q, float alpha);

/* uint8 -> float: y = scale * (float)(q - zero_point). */
void dequantize_u8_f32(const uint8_t *x, float *y, int32_t n, const nn_qparams *q);

/* The ELBO on the decoder's uint8 logits y (qparams qy), with no float copy of them: logit i is
 * z = qy->scale * (float)((int32_t)y[i] - qy->zero_point) (as dequantize_u8_f32), then every step is
 * elbo_f32_forward's. The backward writes the logits' error sigmoid(z) - t, which lies in [-1, 1], as
 * uint8 with the error's qparams qe as they are (no observation: qe holds the fixed range [-1, 1]),
 * e[i] = nn_quantize(sigmoid(z) - t, 1.0f / qe->scale, qe->zero_point); dmu, dlog_sigma as elbo_f32.
 * A logit takes one of 256 values, so the exp/log part (nn_log1p_exp_neg_abs, nn_sigmoid) is computed
 * once per code that occurs and kept in scratch: elbo_u8_buffer_size() bytes, 4-byte aligned, any
 * content (the same values as per pixel: a float function of the code alone). */
int32_t elbo_u8_buffer_size(void);
float elbo_u8_forward(const uint8_t *y, const nn_qparams *qy, const uint8_t *pixels, const float *mu,
                      const float *log_sigma, int32_t n_pixels, int32_t n_latent, int32_t *scratch);
void elbo_u8_backward(const uint8_t *y, const nn_qparams *qy, const uint8_t *pixels, const float *mu,
                      const float *log_sigma, uint8_t *e, const nn_qparams *qe, float *dmu, float *dlog_sigma,
                      int32_t n_pixels, int32_t n_latent, int32_t *scratch);

/* int32 accumulators -> uint8 with the integer output stage: y = nn_requant_u8(acc, nn_requant_make(multiplier),
 * zero_point) (the multiplier folds s_in * s_w / s_out). */
void requantize_u8(const int32_t *acc, uint8_t *y, int32_t n, float multiplier, int32_t zero_point);



/* ---- gemm, uint8 ---------------------------------------------------------------------------
 * Weights [out][in] uint8 with one qparams for the tensor, bias [out] uint8 with its own; inputs,
 * outputs and errors uint8 with their qparams. Integer sums are exact int32 (any order), so the C
 * may use the M4's SIMD instructions freely; the float steps follow the order written here.
 *
 * forward: acc[o] = sum_i (w[o][i] - zw) * (x[i] - zx)
 *          the integer output stage (no float per output): unit = sw * sx;
 *          t = acc[o] + nn_bias_units(b[o], zb, sb / unit);  if relu and t < 0: t = 0;
 *          y[o] = nn_requant_u8(t, nn_requant_make(unit / sy), zy) with y's CURRENT qparams; the min and
 *          max of t over all o are tracked (int32) and, after the layer, nn_range_observe(qy, tmin, tmax,
 *          unit, alpha). scratch: gemm_u8_forward_buffer_size(in, out) bytes, 4-byte aligned (x - zx
 *          widened once to halfword pairs, so each row costs one LDR, two UXTB16 and two SMLAD per 4
 *          weights; then the int32 sums of all rows, so the output stage runs in a loop of its own; with
 *          more than 256 outputs, nn_bias_units of each of the 256 codes, looked up per output). */
int32_t gemm_u8_forward_buffer_size(int32_t in, int32_t out);
void gemm_u8_forward(const uint8_t *x, const nn_qparams *qx, const uint8_t *w, const nn_qparams *qw,
                     const uint8_t *b, const nn_qparams *qb, uint8_t *y, nn_qparams *qy,
                     int32_t in, int32_t out, int32_t relu, float alpha, int32_t *scratch);

/* backward_input (error propagation): acc[i] = sum over active o of (w[o][i] - zw) * (e[o] - ze)
 *          t = acc[i];  if x is given and x[i] <= zx (the ReLU that produced x was off): t = 0;
 *          ex[i] = nn_requant_u8(t, nn_requant_make(unit / s_ex), z_ex) with unit = sw * se, tracked and
 *          observed as in forward.
 * Inactive rows (active[o] == 0) are skipped (dynamic sparse update); active == NULL: all rows.
 * scratch: gemm_u8_backward_input_buffer_size(in, out) bytes, 4-byte aligned (the active rows two by two
 * with their errors packed for SMLAD; four input sums stay in registers over all rows). */
int32_t gemm_u8_backward_input_buffer_size(int32_t in, int32_t out);
void gemm_u8_backward_input(const uint8_t *w, const nn_qparams *qw, const uint8_t *e, const nn_qparams *qe,
                            uint8_t *ex, nn_qparams *qex, const uint8_t *x, const nn_qparams *qx,
                            int32_t in, int32_t out, const uint8_t *active, float alpha, int32_t *scratch);

/* backward_weight: accumulates the sample's gradient into the int16 gradient buffers gw (row scales sgw)
 * and gb (scales sgb). Per active row o with de = e[o] - ze != 0 and k9 = ((se * sx) * nn_grad_inverse(sgw[o])) * 512:
 *          c = clamp(nn_round_scaled(de, k9), -32767, 32767)   (the row's coefficient, 9 fraction bits)
 *          gw[o][i] = sat16(gw[o][i] + ((c * ((x[i] - zx) * 2^7) + 2^15) >> 16))   (round half up)
 *          gb[o] = sat16(gb[o] + nn_round_scaled(de, se * nn_grad_inverse(sgb[o]))).
 * (x - zx) * 2^7 fits int16, so two weights cost one SMLABB, one SMLATB, one PKHTB and one QADD16; c
 * bounds a sample's contribution to 64 units per unit of x - zx (half the int16 range at |x - zx| = 255).
 * scratch: gemm_u8_backward_weight_buffer_size(in) bytes (the int16 (x - zx) * 2^7). */
int32_t gemm_u8_backward_weight_buffer_size(int32_t in);
void gemm_u8_backward_weight(const uint8_t *x, const nn_qparams *qx, const uint8_t *e, const nn_qparams *qe,
                             int16_t *gw, const float *sgw, int16_t *gb, const float *sgb, int32_t in,
                             int32_t out, const uint8_t *active, int32_t *scratch);

/* ---- update, uint8 -------------------------------------------------------------------------
 * Gradient-standardized SGD on a uint8 tensor of `rows` structures (Gemm rows, Conv filters,
 * ConvTranspose output channels) of `cols` weights each, without any float copy of the weights.
 * Structure r is made of contiguous runs of `run` weights spaced rows*run apart: its c-th weight is
 * at (c / run) * rows * run + r * run + c % run (run = cols for Gemm and Conv2D rows; run = k_h*k_w
 * for a ConvTranspose2D output channel, whose weights [IC][OC][KH][KW] are strided). Sums go in c order.
 *   g is the int16 gradient buffer with its row scales sg; every g of row r below means sg[r] * (float)g.
 *   norm [rows] holds the moving average of each row's mean square gradient. The gradient is scaled,
 *   NOT centred (the paper writes (g - mean) / std; centring removed the common direction of a row's
 *   gradient, e.g. the KL pull on log-sigma, and fp32 training diverged), RMSprop-like:
 *   per active row r:  norm[r] += alpha_norm * ((sum_c g * g) * (1.0f / cols) - norm[r]);
 *                      inv_rms = 1.0f / (nn_sqrtf(norm[r]) + 1e-8f)
 *                      w_new = sw * (float)(w - zw) - lr * clamp(g * inv_rms, -3, 3)
 *   inactive rows keep w_new = sw * (float)(w - zw).
 *   pass 1 tracks min/max of w_new over the tensor -> nn_qparams_observe(qw, min, max, alpha_w);
 *   pass 2 recomputes w_new (with the old scale and zero point) and quantizes it with the new ones,
 *   rounding stochastically: w[k] = nn_quantize_dithered(w_new, 1 / scale, zero_point, nn_dither(seed_r, k)),
 *   seed_r = nn_mix32(bits(norm[r]) ^ nn_mix32(bits(qw->max))) (round half up lost every step under half
 *   a quantization step, most steps of the layers whose step is ~0.4 of lr).
 *   Finally per active row sg[r] = nn_grad_next_scale(sg[r], max |g| over the row) (an inactive row keeps
 *   its scale), and every g is set to 0. */
void sgd_u8_update(uint8_t *w, nn_qparams *qw, int16_t *g, float *sg, float *norm, int32_t rows, int32_t cols,
                   int32_t run, float lr, float alpha_norm, float alpha_w, const uint8_t *active);

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
 *           the integer output stage of the Gemm: t = acc + nn_bias_units(b[oc], zb, sb / unit) (unit =
 *           sw * sx), t = 0 if relu and t < 0, y = nn_requant_u8(t, nn_requant_make(unit / sy), zy) with y's
 *           CURRENT qparams; min/max of t tracked over all outputs, then nn_range_observe(qy, .., unit, alpha).
 * backward_input: acc[ic][p] = sum over the active oc and taps (kh, kw) linking input position p to an
 *           output position q of (w - zw) * (e[oc][q] - ze)
 *           t = acc;  if x is given and x[ic][p] <= zx: t = 0;
 *           ex = nn_requant_u8(t, nn_requant_make(unit / s_ex), z_ex) (unit = sw * se), tracked and observed
 *           as forward.
 * backward_weight: accumulates into the int16 gradient buffers (as the Gemm's; the input of sgd_u8_update).
 *           The spatial sum is exact int32 first, then one integer requantization per weight. For every
 *           active oc (every one, even if its error is 0):
 *           isum = sum over the positions of (e[oc][q] - ze) * (x[ic][p] - zx) for the tap (ic, kh, kw)
 *           gw = sat16(gw + nn_requant_apply(isum, nn_requant_make((se * sx) * nn_grad_inverse(sgw[oc]))))
 *           gb[oc] = sat16(gb[oc] + nn_round_scaled(sum over all output positions q of (e[oc][q] - ze),
 *                                                   se * nn_grad_inverse(sgb[oc]))).
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
                               int16_t *gw, const float *sgw, int16_t *gb, const float *sgb,
                               const nn_conv_dims *d, const uint8_t *active, int32_t *scratch);

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
                                        const nn_qparams *qe, int16_t *gw, const float *sgw, int16_t *gb,
                                        const float *sgb, const nn_conv_dims *d, const uint8_t *active,
                                        int32_t *scratch);

/* Internal integer cores shared by conv2d_u8.c and convtranspose2d_u8.c (not operator API). Both
 * compute, output position by output position, acc[o] = the exact int32 sum of output o at that
 * position for the geometry d (input channels c with in_active[c] == 0 are skipped: zero terms; in_active
 * may be NULL; weights indexed as noted) and hand the sums of one output row (of one stride phase for the
 * transposed core) to nn__conv_u8_emit, so no int32 plane of the whole output is kept.
 * Strided (conv2d geometry), w [out_c][in_c][k_h][k_w]; work: nn__conv_u8_strided_work_size(d) bytes.
 * The strided core keeps at most NN_CONV_U8_ROW_BYTES of packed weight rows and takes more output
 * channels in groups (a memory bound). */
#define NN_CONV_U8_ROW_BYTES 4096
typedef struct {                   /* the integer output stage, see nn__conv_u8_emit */
    nn_requant rq;                 /* sums -> codes of the output (its CURRENT qparams) */
    int32_t zy, relu, zmask;       /* output zero point; ReLU (forward); the mask's zero point */
    float unit;                    /* real value of one integer step, for the observed range */
    const int32_t *bias;           /* [out_c] biases in units of the sums (forward) or NULL */
    const uint8_t *mask;           /* [out_c][plane] error mask x (backward: t = 0 where x <= zmask) or NULL */
    uint8_t *y;                    /* [out_c][plane] uint8 output */
    int32_t imin, imax;            /* range of t seen so far */
} nn__conv_u8_out;
/* Output stage of npos positions pos0 + k * step (k < npos) of plane for the channels o0 .. o0 + rows - 1,
 * acc [rows][npos]: for each channel o: t = acc; with bias (forward): t = t + bias[o], t = 0 if relu and
 * t < 0; without: t = 0 if mask and mask[i] <= zmask (i = o * plane + pos); track the range of t;
 * y[i] = nn_requant_u8(t, rq, zy). The caller observes the range after the core (min and max do not
 * depend on the visiting order). */
void nn__conv_u8_emit(nn__conv_u8_out *out, const int32_t *acc, int32_t o0, int32_t rows, int32_t npos,
                      int32_t pos0, int32_t step, int32_t plane);
int32_t nn__conv_u8_strided_work_size(const nn_conv_dims *d);
void nn__conv_u8_strided(const uint8_t *x, int32_t zx, const uint8_t *w, int32_t zw, const nn_conv_dims *d,
                         const uint8_t *in_active, nn__conv_u8_out *out, int32_t *work);
/* Transposed (convtranspose2d geometry), w [in_c][out_c][k_h][k_w]; work: nn__conv_u8_transposed_work_size(d). */
int32_t nn__conv_u8_transposed_work_size(const nn_conv_dims *d);
void nn__conv_u8_transposed(const uint8_t *x, int32_t zx, const uint8_t *w, int32_t zw, const nn_conv_dims *d,
                            const uint8_t *in_active, nn__conv_u8_out *out, int32_t *work);

/* The cores read a centred copy of their input: int16 x - zx, 0 in the border, so every tap pair is one
 * SMLAD against a packed weight pair and no tap needs a bounds check. The copy holds the active input
 * channels only (an inactive one would add zeros): the sums, the packed weights and the copy shrink with
 * the update rate. With an even channel count the channels are interleaved two by two (c, c + 1 side by
 * side: every tap pairs across them); otherwise each channel is a plane and the taps (i, i + 1) of a
 * kernel row pair, an odd row's last tap alone (weight 0 in the high half). Strides in halfwords: cs a
 * channel (pair) plane, ys a row, xs a column. */
typedef struct {
    int32_t cs, ys, xs, pairs;
} nn__q15_layout;
nn__q15_layout nn__conv_u8_layout(int32_t c, int32_t hp, int32_t wp);
static inline int32_t nn__q15_at(const nn__q15_layout *l, int32_t c, int32_t y, int32_t x) {
    return (l->pairs ? (c >> 1) * l->cs + (c & 1) : c * l->cs) + y * l->ys + x * l->xs;
}
/* Bytes of the copy of c channels of hp x wp (one spare halfword: an odd tap's partner may lie past the end). */
static inline int32_t nn__q15_bytes(int32_t c, int32_t hp, int32_t wp) { return (2 * c * hp * wp + 2 + 3) & ~3; }
/* Tap pairs of c channels x nj kernel rows x ni kernel columns. */
static inline int32_t nn__npairs(int32_t c, int32_t nj, int32_t ni) {
    return (c & 1) == 0 ? c * nj * ni / 2 : c * nj * ((ni + 1) >> 1);
}
/* The n channels of a copy: the active ones of c (active NULL: all) in order, then one empty channel (0)
 * when their count is odd and pairing the last with it takes fewer tap pairs (nj x ni taps a channel)
 * than pairing along kernel rows. n <= c, so the scratch sized for c channels holds the copy. */
typedef struct {
    const uint8_t *active;
    int32_t c, n;
} nn__conv_u8_sel;
nn__conv_u8_sel nn__conv_u8_select(const uint8_t *active, int32_t c, int32_t nj, int32_t ni);
/* x [c][h][w] -> xq (layout of sel->n channels of hp x wp: its k-th channel is the k-th selected one of x)
 * at rows top.., columns left.. */
void nn__conv_u8_centre(const uint8_t *x, const nn__conv_u8_sel *sel, int32_t h, int32_t w, int32_t top,
                        int32_t left, int32_t hp, int32_t wp, int32_t zx, int16_t *xq);
/* The tap pairs of the taps (ch, j, i) (ch < sel->n, j < nj, i < ni), which read the copy at (ch, sign * j,
 * sign * i) from an output position's base and use the weight at index a * wc + j * wj + i * wi (a: the
 * source channel of ch in x): off[t] (bytes from the base) and the weight indices of the low and high
 * halfword (whi -1: none). Returns the number of pairs, nn__npairs(sel->n, nj, ni). */
int32_t nn__conv_u8_taps(const nn__q15_layout *l, const nn__conv_u8_sel *sel, int32_t nj, int32_t ni,
                         int32_t sign, int32_t wc, int32_t wj, int32_t wi, int32_t *off, int32_t *wlo, int32_t *whi);
/* wq [rows][np] words (w[o * row_stride + wlo] - zw) | (w[o * row_stride + whi] - zw) << 16, the rows
 * (2k, 2k + 1) interleaved word by word (an odd last row alone). */
void nn__conv_u8_pack(const uint8_t *w, int32_t zw, int32_t row_stride, int32_t rows, const int32_t *wlo,
                      const int32_t *whi, int32_t np, uint32_t *wq);
/* acc[(i * rows + o) * npos + k] = the exact sum of row o at the position k of output row i < nr (base
 * xa, then xb; k * step halfwords further), o < rows, k < npos: two rows by two positions per pass, a
 * pair running across the two output rows when npos is odd. */
void nn__conv_u8_pairs_rows(const int16_t *xa, const int16_t *xb, int32_t nr, int32_t step, int32_t npos,
                            const int32_t *off, int32_t np, const uint32_t *wq, int32_t rows, int32_t *acc);

/* Weight gradients of both backward_weight kernels: rows [nrows][pe] int16 (pe even, 0 past the plane);
 * the taps t < nc * kh * kw, t = (c * kh + ky) * kw + kx, read the plane of gh x gw positions (stride s,
 * row pitch wp) at src + c * cstep + ky * wp + kx; for every row r and tap t,
 * g[rbase[r] + t] = sat16(g + nn_requant_apply(sum over the plane of row r * tap t's plane, rq[r])).
 * planes: [2][pe] int16 of scratch. */
void nn__conv_u8_grad(const int16_t *rows, int32_t nrows, int32_t pe, const int16_t *src, int32_t nc,
                      int32_t cstep, int32_t kh, int32_t kw, int32_t gh, int32_t gw, int32_t s, int32_t wp,
                      const int32_t *rbase, const nn_requant *rq, int16_t *g, int16_t *planes);

/* Output stages of the operators: forward (integer biases written to bias_out [out_c], ReLU, y's
 * qparams; unit = sw * sx) and error (x mask, ex's qparams; unit = sw * se); nn__conv_u8_finish observes
 * the range seen into q (nn_range_observe). */
void nn__conv_u8_out_forward(nn__conv_u8_out *out, float unit, const uint8_t *b, const nn_qparams *qb, uint8_t *y,
                             const nn_qparams *qy, int32_t out_c, int32_t relu, int32_t *bias_out);
void nn__conv_u8_out_error(nn__conv_u8_out *out, float unit, uint8_t *ex, const nn_qparams *qex, const uint8_t *x,
                           const nn_qparams *qx);
void nn__conv_u8_finish(const nn__conv_u8_out *out, nn_qparams *q, float alpha);

/* ======== dynamic sparse updates (sparse_u8.c) ==================================================== */
/*  Per sample and per layer, choose the structures (Gemm rows / conv output channels) whose
 * gradients are accumulated: the top-k by error magnitude, with
 *     k = max(floor((lambda_min + |e_avg / e_max| * (lambda_max - lambda_min)) * N), 1).
 * Twin: mcusim/ops/sparse_u8.py, bit-exact.
 *
 * e: the layer's OUTPUT error, `structures` x `size` uint8 with qparams qe (a Gemm: size 1 per row;
 * a conv output channel: size = out_h * out_w). state: 4 floats owned by the layer, state[0] = e_max
 * (start at 0.0f), state[1] = k of the last call (as a float); state[2] += k and state[3] += structures
 * accumulate the update rate (the host resets them).
 *   mag[s] = sum over the `size` elements of structure s of |e - ze|       (exact int32)
 *   total  = sum_s mag[s]                                                   (exact int32)
 *   Float order (each operation one float32 rounding, no FMA):
 *     mean  = (float)total / (float)(structures * size);   e_avg = qe->scale * mean;
 *     if (e_avg > state[0]) state[0] = e_avg;                 (e_max: monotone, a NaN e_avg is ignored)
 *     ratio = state[0] > 0.0f ? e_avg / state[0] : 1.0f;
 *     t = lambda_max - lambda_min;  t = ratio * t;  t = lambda_min + t;  t = t * (float)structures;
 *     k = !(t >= 1.0f) ? 1 (NaN included) : t >= (float)structures ? structures : (int32_t)t (= floor);
 *     state[1] = (float)k;  state[2] = state[2] + (float)k;  state[3] = state[3] + (float)structures.
 *   active[s] = 1 for the k structures with the largest mag, ties broken by LOWER index first; 0 for
 *   the others (every active[] is written).  touched[s] |= active[s] (the structures touched during
 *   the batch; the update uses it as its mask, then the caller clears it with fill_u8).
 * structures <= 0 or size <= 0: nothing is read or written.
 * scratch: sparse_select_u8_buffer_size(structures) BYTES, 4-byte aligned (the magnitudes and a
 * 256-bin histogram). Any correct selection gives the same mask; the C uses a histogram of |e - ze|
 * for size 1 (Gemm rows, 4 rows per word with the SIMD instructions), a direct rank for <= 16
 * structures, otherwise an MSD radix select on mag (8 bits per pass, O(N) per pass). */
int32_t sparse_select_u8_buffer_size(int32_t structures);
void sparse_select_u8(const uint8_t *e, const nn_qparams *qe, int32_t structures, int32_t size,
                      float lambda_min, float lambda_max, float *state, uint8_t *active, uint8_t *touched,
                      int32_t *scratch);

/* x[i] = (uint8_t)value for i in [0, n) (n <= 0: nothing); clears `touched` after each update. */
void fill_u8(uint8_t *x, int32_t n, int32_t value);

/* ======== grouped and depthwise Conv2D (grouped_conv2d_f32.c, grouped_conv2d_u8.c) ================= */
/* `d` describes the whole layer (in_c and out_c are totals); `groups` divides both. Group k maps input
 * channels [k*in_c/groups, (k+1)*in_c/groups) to output channels [k*out_c/groups, (k+1)*out_c/groups);
 * w [out_c][in_c/groups][k_h][k_w] (PyTorch / ONNX layout), so group k's weights are the contiguous block
 * of conv2d weights of the geometry nn__conv_dims_group(d, groups) starting at k * (its size).
 * Depthwise = groups == in_c (out_c = in_c times a channel multiplier). `active` (NULL = all): one uint8
 * per output channel. Every result is that of conv2d_*_<direction> run on each group's slices (x, y, w,
 * b, active): the float order of each output is conv2d's restricted to its group's channels, and
 * groups == 1 gives conv2d_*'s bits. Twins: mcusim/ops/grouped_conv.py. */

/* The geometry of one group. */
static inline nn_conv_dims nn__conv_dims_group(const nn_conv_dims *d, int32_t groups) {
    nn_conv_dims g = *d;
    g.in_c = d->in_c / groups;
    g.out_c = d->out_c / groups;
    return g;
}

/* fp32, the orders of conv2d_f32_forward / _backward_input / _backward_weight per group:
 *   y[oc][oy][ox]: acc = b[oc] (0.0f if b == NULL); for ic in oc's group ascending, ky, kx (in-bounds
 *     taps): acc += w[oc][ic - first ic of the group][ky][kx] * x[ic][iy][ix].
 *   dx[ic][iy][ix]: acc = 0.0f; for oc in ic's group ascending (active only), ky, kx (exact, in range):
 *     acc += w[oc][ic - first][ky][kx] * dy[oc][oy][ox].
 *   dw, db: accumulated exactly as conv2d_f32_backward_weight of the group. */
void grouped_conv2d_f32_forward(const float *x, const float *w, const float *b, float *y, const nn_conv_dims *d,
                                int32_t groups);
void grouped_conv2d_f32_backward_input(const float *w, const float *dy, float *dx, const nn_conv_dims *d,
                                       int32_t groups, const uint8_t *active);
void grouped_conv2d_f32_backward_weight(const float *x, const float *dy, float *dw, float *db,
                                        const nn_conv_dims *d, int32_t groups, const uint8_t *active);

/* uint8: the contracts of conv2d_u8_* with the integer sums restricted to each group's channels; one
 * qparams per tensor; forward and backward_input track the range of t over ALL groups' outputs and
 * observe it once after the layer; backward_weight accumulates int16 gradients as
 * conv2d_u8_backward_weight. scratch: <fn>_buffer_size(d, groups) BYTES, 4-byte aligned. */
int32_t grouped_conv2d_u8_forward_buffer_size(const nn_conv_dims *d, int32_t groups);
void grouped_conv2d_u8_forward(const uint8_t *x, const nn_qparams *qx, const uint8_t *w, const nn_qparams *qw,
                               const uint8_t *b, const nn_qparams *qb, uint8_t *y, nn_qparams *qy,
                               const nn_conv_dims *d, int32_t groups, int32_t relu, float alpha, int32_t *scratch);
int32_t grouped_conv2d_u8_backward_input_buffer_size(const nn_conv_dims *d, int32_t groups);
void grouped_conv2d_u8_backward_input(const uint8_t *w, const nn_qparams *qw, const uint8_t *e, const nn_qparams *qe,
                                      uint8_t *ex, nn_qparams *qex, const uint8_t *x, const nn_qparams *qx,
                                      const nn_conv_dims *d, int32_t groups, const uint8_t *active, float alpha,
                                      int32_t *scratch);
int32_t grouped_conv2d_u8_backward_weight_buffer_size(const nn_conv_dims *d, int32_t groups);
void grouped_conv2d_u8_backward_weight(const uint8_t *x, const nn_qparams *qx, const uint8_t *e,
                                       const nn_qparams *qe, int16_t *gw, const float *sgw, int16_t *gb,
                                       const float *sgb, const nn_conv_dims *d, int32_t groups,
                                       const uint8_t *active, int32_t *scratch);

/* ======== pooling: maxpool2d, avgpool2d (fp32 and uint8) ========================================== */
/*  Files maxpool2d_f32.c, maxpool2d_u8.c, avgpool2d_f32.c, avgpool2d_u8.c; twins: mcusim/ops/pool.py.
 * Geometry: nn_conv_dims with out_c == in_c (channels are independent; no weights, so backward means
 * the error of the input). The window of output (oy, ox) covers input rows iy = oy*stride - pad + ky
 * (ky < k_h) and columns ix = ox*stride - pad + kx (kx < k_w). Padded taps are SKIPPED: never compared,
 * never added, never counted. Required (not checked): pad < k_h, pad < k_w and
 * out_h <= (in_h + 2*pad - k_h) / stride + 1 (likewise out_w), so every window holds an input (the
 * ONNX floor mode gives exactly that out_h). "In-bounds taps in (ky, kx) order" means row by row,
 * left to right. count = the number of in-bounds taps of a window (ONNX count_include_pad = 0) and
 * rc = 1.0f / (float)count (one rounding; the C divides once per distinct count, reusing the last one).
 * Global average pooling is avgpool2d with k_h = in_h, k_w = in_w, stride 1, pad 0, out 1x1 (the C
 * sums each channel as one run). u8 tensors carry one nn_qparams each; u8 outputs are quantized with
 * their CURRENT qparams, the min/max of the float values t is tracked over all elements, and after
 * the layer nn_qparams_observe(q, tmin, tmax, alpha) (as the u8 convolutions). */

/* ---- maxpool2d ---------------------------------------------------------------------------------
 * The chosen tap of a window: m = its first in-bounds tap; every later tap v (in (ky, kx) order)
 * replaces m only if v > m. So ties keep the earlier tap (+0.0 and -0.0 tie), a NaN never replaces m,
 * but a NaN first tap is kept (nothing compares greater): the output is NaN exactly then. */

/* y[c][oy][ox] = the chosen tap's value. */
void maxpool2d_f32_forward(const float *x, float *y, const nn_conv_dims *d);

/* dx = 0.0f everywhere; then for c, oy, ox in order: the tap chosen by the forward rule (recomputed
 * from x) gets dx[i] = dx[i] + dy[c][oy][ox]. */
void maxpool2d_f32_backward(const float *x, const float *dy, float *dx, const nn_conv_dims *d);

/* y = the chosen tap's code (unsigned compare): exact, as quantization is monotone; *qy = *qx (the
 * output keeps the input's qparams; no requantization, no observation). */
void maxpool2d_u8_forward(const uint8_t *x, const nn_qparams *qx, uint8_t *y, nn_qparams *qy,
                          const nn_conv_dims *d);

/* acc[i] = exact int32 sum of (e[c][oy][ox] - ze) over the windows whose chosen tap is input i (0 if
 * none); t = (float)acc * se; ex[i] = nn_quantize(t, 1.0f / s_ex, z_ex), tracked and observed with
 * alpha. qx is not read (the choice depends on the codes only; kept so each u8 tensor travels with its
 * qparams). scratch: maxpool2d_u8_backward_buffer_size(d) bytes, 4-byte aligned (one int32 plane). */
int32_t maxpool2d_u8_backward_buffer_size(const nn_conv_dims *d);
void maxpool2d_u8_backward(const uint8_t *x, const nn_qparams *qx, const uint8_t *e, const nn_qparams *qe,
                           uint8_t *ex, nn_qparams *qex, const nn_conv_dims *d, float alpha, int32_t *scratch);

/* ---- avgpool2d ---------------------------------------------------------------------------------*/

/* acc = 0.0f; for the in-bounds taps in (ky, kx) order: acc = acc + x; y[c][oy][ox] = acc * rc. */
void avgpool2d_f32_forward(const float *x, float *y, const nn_conv_dims *d);

/* dx[i] = 0.0f; for every window containing i, in (oy, ox) order: dx[i] = dx[i] + dy[c][oy][ox] * rc
 * (the product g = dy * rc rounded first, with the window's own rc). */
void avgpool2d_f32_backward(const float *dy, float *dx, const nn_conv_dims *d);

/* acc = exact int32 sum over the in-bounds taps of (x - zx); m = sx * rc; t = (float)acc * m;
 * y = nn_quantize(t, 1.0f / sy, zy), tracked and observed with alpha. */
void avgpool2d_u8_forward(const uint8_t *x, const nn_qparams *qx, uint8_t *y, nn_qparams *qy,
                          const nn_conv_dims *d, float alpha);

/* t = 0.0f; for every window containing input i, in (oy, ox) order: t = t + (float)(e - ze) * rc
 * (product rounded first, the window's own rc); then t = t * se; ex[i] = nn_quantize(t, 1.0f / s_ex,
 * z_ex), tracked and observed with alpha (inputs in no window: t = 0.0f). */
void avgpool2d_u8_backward(const uint8_t *e, const nn_qparams *qe, uint8_t *ex, nn_qparams *qex,
                           const nn_conv_dims *d, float alpha);

/* Internal helpers of the pooling files (not operator API). */
/* The input span [*lo, *hi) of window o along one axis of n inputs. */
static inline void nn__pool_span(int32_t o, int32_t stride, int32_t pad, int32_t k, int32_t n, int32_t *lo,
                                 int32_t *hi) {
    const int32_t a = o * stride - pad, b = a + k;
    *lo = a > 0 ? a : 0;
    *hi = b < n ? b : n;
}

/* The in-bounds taps of window (oy, ox) of one channel: `rows` runs of `cols` inputs from offset `at`,
 * row pitch in_w; a window of whole input rows is given as one run (rows = 1), the same (ky, kx) order. */
typedef struct {
    int32_t at, rows, cols, count;
} nn__pool_window;

static inline nn__pool_window nn__pool_win(const nn_conv_dims *d, int32_t oy, int32_t ox) {
    int32_t y0, y1, x0, x1;
    nn__pool_span(oy, d->stride, d->pad, d->k_h, d->in_h, &y0, &y1);
    nn__pool_span(ox, d->stride, d->pad, d->k_w, d->in_w, &x0, &x1);
    nn__pool_window w = {y0 * d->in_w + x0, y1 - y0, x1 - x0, (y1 - y0) * (x1 - x0)};
    if (w.cols == d->in_w) {
        w.cols = w.count;
        w.rows = 1;
    }
    return w;
}

/* The outputs [*a, *b) along one axis (of n_out) whose windows lie wholly inside the n inputs. */
static inline void nn__pool_inner(int32_t n_out, int32_t stride, int32_t pad, int32_t k, int32_t n, int32_t *a,
                                  int32_t *b) {
    const int32_t lim = n - k + pad, hi = lim < 0 ? 0 : lim / stride + 1, lo = (pad + stride - 1) / stride;
    *a = lo < n_out ? lo : n_out;
    *b = hi < *a ? *a : (hi < n_out ? hi : n_out);
}

/* 1.0f / (float)count, divided only when count differs from the previous call's (*last, *rc). */
static inline float nn__pool_rcp(int32_t count, int32_t *last, float *rc) {
    if (count != *last) {
        *last = count;
        *rc = 1.0f / (float)count;
    }
    return *rc;
}

/* ======== elementwise: residual add, relu6, uint8 relu; losses: MSE, uint8 cross-entropy ========== */
/*  add_f32.c, add_u8.c, relu6_f32.c, relu_u8.c, mse_f32.c, mse_u8.c, cross_entropy_u8.c. Twins (bit
 * exact, same names and arguments): mcusim/ops/elementwise.py (add, relu6, relu_u8) and
 * mcusim/ops/losses.py (mse, cross_entropy_u8); cross-checks mcusim/checks/elementwise.py, losses.py.
 * The float conventions of the fp32 section apply: every operation is one float32 rounding in the order
 * written, sums run from +0.0f in index order, n <= 0 does nothing (a loss then returns its value of an
 * empty sum). An output may be the same buffer as an input of the same length (each element is read
 * before it is written) unless stated otherwise; different outputs must not overlap. The u8 kernels
 * dequantize exactly as dequantize_u8_f32, z = scale * (float)((int32_t)q - zero_point), and quantize
 * with nn_quantize (the rounding rule). */

/* ---- residual add ------------------------------------------------------------------------------ */

/* y[i] = a[i] + b[i] (y may be a or b). The residual connection's backward passes the error unchanged
 * to both inputs, so there is no add backward kernel; the same function sums the two errors of a
 * tensor that feeds two layers. */
void add_f32_forward(const float *a, const float *b, float *y, int32_t n);

/* uint8 add, each input with its own qparams, into y with its own:
 *   t = sa * (float)(a[i] - za);  u = sb * (float)(b[i] - zb);  t = t + u;
 *   if relu and !(t > 0): t = 0;  y[i] = nn_quantize(t, 1.0f / sy, zy) with y's CURRENT qparams;
 *   the min and max of t over all i are tracked (as gemm_u8_forward), then, if n > 0,
 *   nn_qparams_observe(qy, tmin, tmax, alpha).
 * y may be a or b; qy may be qa or qb (all qparams are read before anything is written). Also sums two
 * uint8 error tensors into a third (relu = 0). */
void add_u8_forward(const uint8_t *a, const nn_qparams *qa, const uint8_t *b, const nn_qparams *qb, uint8_t *y,
                    nn_qparams *qy, int32_t n, int32_t relu, float alpha);

/* ---- relu6, fp32 --------------------------------------------------------------------------------
 * On the IEEE bits, like relu_f32: a sign bit set gives +0.0f; otherwise the bits, as int32, are
 * clamped to at most bits(6.0f) (for a clear sign the integer order is the float order). Identical to
 *   y = x > 0 ? (x < 6 ? x : 6) : +0.0f   for every non-NaN x (-0.0 -> +0.0, +inf -> 6);
 * a NaN gives +0.0f if its sign bit is set, 6.0f if not. y may be x. */
void relu6_f32_forward(const float *x, float *y, int32_t n);

/* dx[i] = (0 < y[i] < 6) ? dy[i] : +0.0f with y the relu6 OUTPUT of the forward pass, tested on the
 * bits: 0 < (int32_t)bits(y) < bits(6.0f) (identical for every non-NaN y; a NaN y gives +0.0f). dy[i] is
 * copied bit for bit. dx may be dy (or y). */
void relu6_f32_backward(const float *y, const float *dy, float *dx, int32_t n);

#define NN_SIX_BITS 0x40C00000                          /* bits(6.0f) */

/* The cores of relu6 on the bits (inline: hot loops). relu_f32_forward is nn__clamp_bits_f32 with
 * hi = INT32_MAX, so activation_f32.c could share them.
 * nn__clamp_bits_f32: bits(y) = clamp((int32_t)bits(x), 0, hi).
 * nn__band_pass_f32:  bits(dx) = 0 < (int32_t)bits(y) < hi ? bits(dy) : 0  (one unsigned compare).
 * Only 32-bit integer loads and stores touch the buffers, so reading float arrays as uint32_t is safe;
 * each group of 4 is loaded before it is stored, so in place works. */
static inline uint32_t nn__clamp_bits(uint32_t u, int32_t hi) {
    int32_t v = (int32_t)u;
    v = v < 0 ? 0 : v;
    return (uint32_t)(v > hi ? hi : v);
}

static inline void nn__clamp_bits_f32(const float *x, float *y, int32_t n, int32_t hi) {
    const uint32_t *xb = (const uint32_t *)x;
    uint32_t *yb = (uint32_t *)y;
    for (int32_t k = n >> 2; k > 0; k--, xb += 4, yb += 4) {
        uint32_t a = xb[0], b = xb[1], c = xb[2], d = xb[3];
        yb[0] = nn__clamp_bits(a, hi);
        yb[1] = nn__clamp_bits(b, hi);
        yb[2] = nn__clamp_bits(c, hi);
        yb[3] = nn__clamp_bits(d, hi);
    }
    for (int32_t k = n & 3; k > 0; k--, xb++, yb++) *yb = nn__clamp_bits(*xb, hi);
}

static inline void nn__band_pass_f32(const float *y, const float *dy, float *dx, int32_t n, int32_t hi) {
    const uint32_t *yb = (const uint32_t *)y, *gb = (const uint32_t *)dy;
    uint32_t *db = (uint32_t *)dx;
    const uint32_t lim = (uint32_t)hi - 1u;
    for (int32_t k = n >> 2; k > 0; k--, yb += 4, gb += 4, db += 4) {
        uint32_t y0 = yb[0] - 1u, y1 = yb[1] - 1u, y2 = yb[2] - 1u, y3 = yb[3] - 1u;
        uint32_t g0 = gb[0], g1 = gb[1], g2 = gb[2], g3 = gb[3];
        db[0] = y0 < lim ? g0 : 0u;
        db[1] = y1 < lim ? g1 : 0u;
        db[2] = y2 < lim ? g2 : 0u;
        db[3] = y3 < lim ? g3 : 0u;
    }
    for (int32_t k = n & 3; k > 0; k--, yb++, gb++, db++) {
        uint32_t g = *gb;
        *db = *yb - 1u < lim ? g : 0u;
    }
}

/* ---- relu / relu6, uint8 (standalone; the layers fuse their ReLU into the output stage) ----------
 * forward: *qy = *qx (the output keeps the input's qparams); lo = zx;
 *          hi = six ? nn_quantize(6.0f, 1.0f / sx, zx) : 255;  y[i] = clamp(x[i], lo, hi).
 *          y may be x, qy may be qx.
 * backward: with y the forward OUTPUT (qy its qparams, hi computed from qy as above):
 *          ex[i] = (y[i] > zy && (!six || y[i] < hi)) ? e[i] : (uint8_t)ze;
 *          ex keeps e's qparams qe (no observation). ex may be e. */
void relu_u8_forward(const uint8_t *x, const nn_qparams *qx, uint8_t *y, nn_qparams *qy, int32_t n, int32_t six);
void relu_u8_backward(const uint8_t *y, const nn_qparams *qy, const uint8_t *e, const nn_qparams *qe, uint8_t *ex,
                      int32_t n, int32_t six);

/* ---- squared-error reconstruction loss ---------------------------------------------------------
 * Target t = (float)pixels[i] * NN_INV255 as in the ELBO; the loss is summed per image, like the ELBO:
 *   mse_f32_forward:  s = 0.0f; for i in order: d = y[i] - t; s = s + d * d;  returns 0.5f * s.
 *   mse_f32_backward: dy[i] = y[i] - t (OVERWRITES; dy may be y).
 * On the decoder's uint8 output y (qparams qy), no float copy: z = nn_dequantize(y[i], sy, zy), then
 *   mse_u8_forward:   exactly mse_f32_forward with y[i] replaced by z (the same bits as mse_f32_forward
 *                     of dequantize_u8_f32's output);
 *   mse_u8_backward:  e[i] = nn_quantize(z - t, 1.0f / se, ze) with qe AS IT IS (the caller's fixed
 *                     error range, no observation), as elbo_u8_backward. e may be y. */
float mse_f32_forward(const float *y, const uint8_t *pixels, int32_t n);
void mse_f32_backward(const float *y, const uint8_t *pixels, float *dy, int32_t n);
float mse_u8_forward(const uint8_t *y, const nn_qparams *qy, const uint8_t *pixels, int32_t n);
void mse_u8_backward(const uint8_t *y, const nn_qparams *qy, const uint8_t *pixels, uint8_t *e, const nn_qparams *qe,
                     int32_t n);

/* ---- cross-entropy on uint8 logits -------------------------------------------------------------
 * n >= 1 logits z_i = nn_dequantize(y[i], sy, zy), 0 <= label < n (not checked). The loss is computed
 * by exactly the steps of cross_entropy_f32 on z (so the same bits as cross_entropy_f32 of
 * dequantize_u8_f32's output): m = the first maximum of z; zl = z_label - m;
 *   s = 0.0f; for i in order: s = s + nn_expf(z_i - m);  loss = nn_logf(s) - zl, returned.
 * If e != NULL it receives softmax - onehot as uint8 with qe AS IT IS (fixed range [-1, 1], no
 * observation): r = 1.0f / s; g = nn_expf(z_i - m) * r (recomputed: the same bits as in the sum);
 * g = g - 1.0f for i == label;  e[i] = nn_quantize(g, 1.0f / se, ze). e may be y; NULL: loss only. */
float cross_entropy_u8(const uint8_t *y, const nn_qparams *qy, int32_t n, int32_t label, uint8_t *e,
                       const nn_qparams *qe);

/* Steps shared by the kernels above (inline: hot loops). */
static inline float nn_dequantize(uint8_t q, float scale, int32_t zero_point) {
    return scale * (float)((int32_t)q - zero_point);
}

static inline float nn_pixel_err(float z, uint8_t pixel) { return z - (float)pixel * NN_INV255; }

static inline float nn_sq_err(float z, uint8_t pixel) {
    float d = nn_pixel_err(z, pixel);
    return d * d;
}

/* ======== copies (copy_f32.c, copy_u8.c) =========================================================== */
/* y[i] = x[i] bit for bit, i in [0, n); the u8 form also copies the qparams (*qy = *qx). The residual
 * add passes its output's error to its inputs with these. */
void copy_f32(const float *x, float *y, int32_t n);
void copy_u8(const uint8_t *x, const nn_qparams *qx, uint8_t *y, nn_qparams *qy, int32_t n);

#endif /* NN_H */
