"""Numba twins of the fp32 elementwise operators, losses and the SGD update of the VAE training step:
kernels/activation_f32.c, reparameterize_f32.c, elbo_f32.c, cross_entropy_f32.c and sgd_f32.c.

Same names, arguments and float32 operation order as the C (documented in
kernels/include/nn.h), so they return the same bits as the firmware on the Cortex-M4F;
mcusim/checks/train_f32.py checks this on the emulator. The Numba rules of mcusim/ops/nn_math.py
apply: float32 module-global constants only, no Python float literal in arithmetic, no float64, no
fastmath. Arrays are 1-D contiguous float32 (pixels uint8) and are written in place, as in C;
the losses return a float32 value.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from .nn_math import bits_f32, expf, f32_bits, logf, logf_normal, sqrtf

__all__ = ["relu_f32_forward", "relu_f32_backward", "sigmoid_f32_forward", "reparameterize_f32_forward",
           "reparameterize_f32_backward", "elbo_f32_forward", "elbo_f32_backward", "cross_entropy_f32",
           "sgd_f32_update", "sgd_f32_standardized_update", "pixels_f32_forward", "INV255", "pixel_targets"]

STD_EPS = np.float32(1.0e-8)
MAX_Z = np.float32(3.0)            # standardized steps are clipped to +-3 sigma (as the C)
INV255 = np.uint32(0x3B808081).view(np.float32)      # float32 nearest 1/255, NN_INV255
ZERO, HALF, ONE = np.float32(0.0), np.float32(0.5), np.float32(1.0)
SIGN = np.uint32(0x80000000)

_jit = njit(cache=True, error_model="numpy")
_inline = njit(cache=True, error_model="numpy", inline="always")     # small helpers of hot loops


@_jit
def neg_abs(x):
    """-|x| by setting the sign bit (exact, as -__builtin_fabsf in C)."""
    return bits_f32(np.uint32(f32_bits(x) | SIGN))


@_jit
def sigmoid(z):
    """exp(-|z|) based, never overflowing (nn_sigmoid)."""
    e = expf(neg_abs(z))
    d = ONE + e
    num = ONE if z >= ZERO else e
    return num / d


@_jit
def relu_f32_forward(x, y, n):
    """y = x > 0 ? x : +0 on the IEEE bits (sign set -> +0). y may be x."""
    for i in range(n):
        b = f32_bits(x[i])
        y[i] = ZERO if b & SIGN else x[i]


@_jit
def relu_f32_backward(y, dy, dx, n):
    """dx = y > 0 ? dy : +0, the test being (int32)bits(y) > 0."""
    for i in range(n):
        g = dy[i]
        b = np.int64(f32_bits(y[i]))
        dx[i] = g if (b > 0 and b < 0x80000000) else ZERO


@_jit
def sigmoid_f32_forward(x, y, n):
    """e = exp(-|x|); y = (x >= 0 ? 1 : e) / (1 + e)."""
    for i in range(n):
        y[i] = sigmoid(x[i])


@_jit
def reparameterize_f32_forward(mu, log_sigma, eps, z, n):
    """z = mu + exp(log_sigma) * eps."""
    for i in range(n):
        m = mu[i]
        e = eps[i]
        s = expf(log_sigma[i])
        t = s * e
        z[i] = m + t


@_jit
def reparameterize_f32_backward(log_sigma, eps, dz, dmu, dlog_sigma, n):
    """ACCUMULATES: dmu += dz; dlog_sigma += dz * (exp(log_sigma) * eps)."""
    for i in range(n):
        g = dz[i]
        e = eps[i]
        s = expf(log_sigma[i])
        dmu[i] = dmu[i] + g
        t = s * e
        t = g * t
        dlog_sigma[i] = dlog_sigma[i] + t


@_jit
def bce_logit(z, t):
    """One pixel's reconstruction term max(z, 0) - z t + log(1 + exp(-|z|)) (nn_bce_logit; 1 + exp(-|z|)
    lies in [1, 2], or is NaN, so logf_normal gives logf's bits)."""
    return bce_combine(z, t, bce_softplus(z))


@njit(cache=True, error_model="numpy", inline="always")
def bce_softplus(z):
    """bce_logit's log(1 + exp(-|z|))."""
    return logf_normal(ONE + expf(neg_abs(z)))


@njit(cache=True, error_model="numpy", inline="always")
def bce_combine(z, t, l):
    """bce_logit's last step, given l = log(1 + exp(-|z|)): (max(z, 0) - z t) + l."""
    a = z if z > ZERO else ZERO
    b = z * t
    return (a - b) + l


@_jit
def kl_normal(mu, log_sigma, n_latent):
    """sum_j mu^2 + exp(2 ls) - 1 - 2 ls, in index order (nn_kl_normal)."""
    kl = ZERO
    for j in range(n_latent):
        m = mu[j]
        l2 = log_sigma[j] + log_sigma[j]
        kl = kl + (((m * m + expf(l2)) - ONE) - l2)
    return kl


@_jit
def kl_normal_backward(mu, log_sigma, dmu, dlog_sigma, n_latent):
    """OVERWRITES dmu = mu, dlog_sigma = exp(2 ls) - 1 (nn_kl_normal_backward)."""
    for j in range(n_latent):
        m = mu[j]
        ls = log_sigma[j]
        dmu[j] = m
        dlog_sigma[j] = expf(ls + ls) - ONE


@_jit
def elbo_f32_forward(logits, pixels, mu, log_sigma, n_pixels, n_latent):
    """Negative ELBO of one image (Bernoulli likelihood on logits + KL to N(0, 1)), as a float32."""
    rec = ZERO
    for i in range(n_pixels):
        rec = rec + bce_logit(logits[i], np.float32(pixels[i]) * INV255)
    return rec + HALF * kl_normal(mu, log_sigma, n_latent)


@_jit
def elbo_f32_backward(logits, pixels, mu, log_sigma, dlogits, dmu, dlog_sigma, n_pixels, n_latent):
    """OVERWRITES dlogits = sigmoid(z) - t, dmu = mu, dlog_sigma = exp(2 ls) - 1."""
    for i in range(n_pixels):
        dlogits[i] = sigmoid(logits[i]) - np.float32(pixels[i]) * INV255
    kl_normal_backward(mu, log_sigma, dmu, dlog_sigma, n_latent)


@_jit
def cross_entropy_f32(logits, n, label, dlogits):
    """Softmax cross-entropy of one sample (max-subtracted); dlogits = softmax - onehot unless None."""
    m = logits[0]
    for i in range(1, n):
        v = logits[i]
        if v > m:
            m = v
    zl = logits[label] - m
    s = ZERO
    if dlogits is None:
        for i in range(n):
            s = s + expf(logits[i] - m)
    else:
        for i in range(n):
            e = expf(logits[i] - m)
            dlogits[i] = e
            s = s + e
    loss = logf(s) - zl
    if dlogits is not None:
        r = ONE / s
        for i in range(n):
            dlogits[i] = dlogits[i] * r
        dlogits[label] = dlogits[label] - ONE
    return loss


@_jit
def sgd_f32_update(w, g, n, scale):
    """w = w - scale * g; g = 0."""
    scale = np.float32(scale)
    for i in range(n):
        t = scale * g[i]
        w[i] = w[i] - t
        g[i] = ZERO


@_inline
def row_sum_squares(g, r, cols, run, stride):
    """sum_c g^2 over structure r, in c order: its c-th element is (c // run) * stride + r * run + c % run
    (walked run by run, without a division per element)."""
    sq = ZERO
    for j in range(cols // run):
        k0 = j * stride + r * run
        for t in range(run):
            v = g[k0 + t]
            sq = sq + v * v
    return sq


@_inline
def rms_track(norm, r, sum_sq, inv_cols, alpha_norm):
    """norm[r] moves towards the row's mean square gradient (nn_rms_track)."""
    norm[r] = norm[r] + alpha_norm * (sum_sq * inv_cols - norm[r])


@_inline
def inv_rms(norm_r):
    return ONE / (sqrtf(norm_r) + STD_EPS)


@_inline
def standardized_step(g, inv_rms_r):
    """g / rms clipped to +-3 (nn_standardized_step)."""
    d = g * inv_rms_r
    if d > MAX_Z:
        d = MAX_Z
    if d < -MAX_Z:
        d = -MAX_Z
    return d


@_jit
def sgd_f32_standardized_update(w, g, norm, rows, cols, run, lr, alpha_norm, active):
    """Gradient-standardized SGD per structure, twin of the C (order in nn.h); row r holds the
    elements (c // run) * rows * run + r * run + c % run."""
    lr, alpha_norm = np.float32(lr), np.float32(alpha_norm)
    inv_cols = ONE / np.float32(cols)
    stride = rows * run
    for r in range(rows):
        if active is not None and active[r] == 0:
            continue
        rms_track(norm, r, row_sum_squares(g, r, cols, run, stride), inv_cols, alpha_norm)
        scale = inv_rms(norm[r])
        for j in range(cols // run):
            for k in range(j * stride + r * run, j * stride + r * run + run):
                w[k] = w[k] - lr * standardized_step(g[k], scale)
                g[k] = ZERO


@_jit
def pixels_f32_forward(pixels, x, n):
    """x = (float)p * INV255: the image as the fp32 network's input."""
    for i in range(n):
        x[i] = np.float32(pixels[i]) * INV255


def pixel_targets(pixels: np.ndarray) -> np.ndarray:
    """The float32 targets t = (float)p * INV255 the ELBO uses (host helper)."""
    return pixels.astype(np.float32) * INV255
