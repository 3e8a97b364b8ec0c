"""Numba twins of kernels/elbo_u8.c: the negative ELBO and its gradient on the decoder's uint8
logits, with the float steps of mcusim/ops/train_f32.py and the rounding rule of quant_u8.py."""
from __future__ import annotations

import numpy as np
from numba import njit

from .quant_u8 import quantize
from .train_f32 import HALF, INV255, ONE, ZERO, bce_combine, bce_softplus, kl_normal, kl_normal_backward, sigmoid

_jit = njit(cache=True, error_model="numpy")


@_jit
def _code_logits(qy):
    """The logit z of each of the 256 codes, z = scale * (code - zero_point), as per pixel."""
    s = qy[0].scale
    zp = np.int32(qy[0].zero_point)
    z = np.empty(256, np.float32)
    for c in range(256):
        z[c] = s * np.float32(np.int32(c) - zp)
    return z


@_jit
def elbo_u8_forward(y, qy, pixels, mu, log_sigma, n_pixels, n_latent):
    """bce_logit per pixel, its log(1 + exp(-|z|)) taken once per logit code (as the C's table): the same
    floats, in pixel order."""
    z = _code_logits(qy)
    soft = np.empty(256, np.float32)
    for c in range(256):
        soft[c] = bce_softplus(z[c])
    rec = ZERO
    for i in range(n_pixels):
        rec = rec + bce_combine(z[y[i]], np.float32(pixels[i]) * INV255, soft[y[i]])
    return rec + HALF * kl_normal(mu, log_sigma, n_latent)


@_jit
def elbo_u8_backward(y, qy, pixels, mu, log_sigma, e, qe, dmu, dlog_sigma, n_pixels, n_latent):
    """e = the logits' error sigmoid(z) - t quantized with qe as it is (its fixed [-1, 1] range)."""
    z = _code_logits(qy)
    sig = np.empty(256, np.float32)
    for c in range(256):
        sig[c] = sigmoid(z[c])
    inv = ONE / qe[0].scale
    ze = np.int32(qe[0].zero_point)
    for i in range(n_pixels):
        d = sig[y[i]] - np.float32(pixels[i]) * INV255
        e[i] = quantize(d, inv, ze)
    kl_normal_backward(mu, log_sigma, dmu, dlog_sigma, n_latent)


def elbo_u8_buffer_size():
    """Bytes of scratch of elbo_u8_forward and elbo_u8_backward (as the C): a float per logit code and a
    byte flag per code (the C computes each code's exp/log once; the values are the per-pixel ones)."""
    return 256 * 4 + 256
