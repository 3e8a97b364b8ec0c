"""Numba twins of kernels/mse_f32.c, mse_u8.c and cross_entropy_u8.c: the squared-error reconstruction
loss (fp32 and on uint8 outputs) and the softmax cross-entropy on uint8 logits.

Same names, arguments and float32 operation order as the C (contracts in kernels/include/nn.h);
mcusim/checks/losses.py checks the bits on the emulator. The u8 losses are the fp32 steps on the
dequantized values (no float copy), with the error quantized in the caller's fixed range. The rules of
mcusim/ops/nn_math.py apply; qparams are one-element `quant_u8.QP_DTYPE` record arrays; `e = None` is
the C's NULL.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from .nn_math import expf, logf
from .quant_u8 import quantize
from .train_f32 import HALF, INV255, ONE, ZERO

__all__ = ["mse_f32_forward", "mse_f32_backward", "mse_u8_forward", "mse_u8_backward", "cross_entropy_u8"]

_jit = njit(cache=True, error_model="numpy")


@_jit
def dequantize(q, scale, zero_point):
    """scale * (float)(q - zero_point), nn_dequantize (as dequantize_u8_f32)."""
    return scale * np.float32(np.int32(q) - zero_point)


@_jit
def pixel_err(z, pixel):
    """z - t with t = (float)pixel * INV255 (nn_pixel_err)."""
    return z - np.float32(pixel) * INV255


@_jit
def mse_f32_forward(y, pixels, n):
    """0.5 * sum_i (y - t)^2, summed in index order."""
    s = ZERO
    for i in range(n):
        d = pixel_err(y[i], pixels[i])
        s = s + d * d
    return HALF * s


@_jit
def mse_f32_backward(y, pixels, dy, n):
    """dy = y - t (overwrites; dy may be y)."""
    for i in range(n):
        dy[i] = pixel_err(y[i], pixels[i])


@_jit
def mse_u8_forward(y, qy, pixels, n):
    sy = qy[0].scale
    zy = np.int32(qy[0].zero_point)
    s = ZERO
    for i in range(n):
        d = pixel_err(dequantize(y[i], sy, zy), pixels[i])
        s = s + d * d
    return HALF * s


@_jit
def mse_u8_backward(y, qy, pixels, e, qe, n):
    """e = quantize(z - t) with qe as it is (the fixed error range)."""
    sy = qy[0].scale
    zy = np.int32(qy[0].zero_point)
    inv = ONE / qe[0].scale
    ze = np.int32(qe[0].zero_point)
    for i in range(n):
        e[i] = quantize(pixel_err(dequantize(y[i], sy, zy), pixels[i]), inv, ze)


@_jit
def cross_entropy_u8(y, qy, n, label, e, qe):
    """cross_entropy_f32's steps on the dequantized logits; e (unless None) = softmax - onehot quantized
    with qe as it is, the exponentials recomputed."""
    sy = qy[0].scale
    zy = np.int32(qy[0].zero_point)
    m = dequantize(y[0], sy, zy)
    for i in range(1, n):
        v = dequantize(y[i], sy, zy)
        if v > m:
            m = v
    zl = dequantize(y[label], sy, zy) - m
    s = ZERO
    for i in range(n):
        s = s + expf(dequantize(y[i], sy, zy) - m)
    loss = logf(s) - zl
    if e is not None:
        r = ONE / s
        inv = ONE / qe[0].scale
        ze = np.int32(qe[0].zero_point)
        for i in range(n):
            g = expf(dequantize(y[i], sy, zy) - m) * r
            if i == label:
                g = g - ONE
            e[i] = quantize(g, inv, ze)
    return loss
