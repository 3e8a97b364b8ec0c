/* nn_train_f32.h: fp32 elementwise operators, losses and the SGD update of the on-device VAE
 * training step (section of prototypes; to be merged into nn.h).
 *
 * Each function is bit exact with its Numba twin of the same name in mcusim/ops/train_f32.py:
 * every operation below is one float32 operation rounded to nearest, performed in exactly the order
 * written (built with -ffp-contract=off, so no fused multiply-add). exp and log are nn_expf and
 * nn_logf from nn_math.h. Sums are sequential float32 sums starting from +0.0f, in index order.
 * |x| is a sign-bit clear and -|x| a sign-bit set (exact). Sizes n <= 0 do nothing (a loss then
 * sums nothing). Unless stated otherwise, an output may be the same buffer as an input of the same
 * length (each element is read before it is written), but different outputs must not overlap. */
#ifndef NN_TRAIN_F32_H
#define NN_TRAIN_F32_H

#include <stdint.h>
#include "nn_math.h"

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

#endif /* NN_TRAIN_F32_H */
