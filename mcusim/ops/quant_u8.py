"""Numba twins of kernels/quant_u8.c: scale/zero-point tracking and the u8 rounding rule.

Same float32 operations in the same order as the C (see kernels/include/nn.h for the
contract). A `qparams` is a float32 array [scale, zero_point, min, max] (zero_point stored exactly as
a float32 integer); `QP_DTYPE` gives the C struct's byte layout for passing it to the firmware.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from .nn_math import bits_f32, f32_bits

QP_DTYPE = np.dtype([("scale", "<f4"), ("zero_point", "<i4"), ("min", "<f4"), ("max", "<f4")])
ZERO, HALF, ONE = np.float32(0.0), np.float32(0.5), np.float32(1.0)
INV_QMAX = np.uint32(0x3B808081).view(np.float32)
MIN_SCALE = np.float32(1.0e-8)
QBIG = np.float32(1.0e6)

_jit = njit(cache=True, error_model="numpy")


def make_qparams(min_: float = -1.0, max_: float = 1.0) -> np.ndarray:
    """A C-layout qparams record (one element of QP_DTYPE) with the given exact range."""
    q = np.zeros(1, QP_DTYPE)
    scale, zp = qparams_from_range(np.float32(min_), np.float32(max_))
    q["scale"], q["zero_point"], q["min"], q["max"] = scale, zp, min_, max_
    return q


@_jit
def floor_i32(v):
    i = np.int32(v)                      # truncation toward zero, as vcvt.s32.f32
    return i - 1 if np.float32(i) > v else i


@_jit
def qparams_from_range(min_, max_):
    """(scale, zero_point) for the range [min_, max_], as nn_qparams_set."""
    lo = min_ if min_ < ZERO else ZERO
    hi = max_ if max_ > ZERO else ZERO
    scale = (hi - lo) * INV_QMAX
    if not scale >= MIN_SCALE:
        scale = MIN_SCALE
    zp = floor_i32((ZERO - lo) / scale)
    return scale, np.int32(0 if zp < 0 else (255 if zp > 255 else zp))


@_jit
def observe(min_, max_, obs_min, obs_max, alpha):
    """Moving-average range update; returns (scale, zero_point, min, max) as nn_qparams_observe."""
    alpha = np.float32(alpha)
    new_min = min_ + alpha * (obs_min - min_)
    new_max = max_ + alpha * (obs_max - max_)
    scale, zp = qparams_from_range(new_min, new_max)
    return scale, zp, new_min, new_max


@_jit
def quantize(t, inv_scale, zero_point):
    """The rounding rule: clamp(zero_point + floor(t * inv_scale + 0.5), 0, 255)."""
    v = np.float32(t) * inv_scale
    v = v + HALF
    if not v >= -QBIG:
        v = -QBIG
    if v > QBIG:
        v = QBIG
    r = zero_point + floor_i32(v)
    return np.uint8(0 if r < 0 else (255 if r > 255 else r))


@_jit
def quantize_f32_u8(x, y, n, q, alpha):
    """Observe x's range into q (a QP_DTYPE record array of one), then quantize with the new params."""
    if n <= 0:
        return
    lo = x[0]
    hi = x[0]
    for i in range(1, n):
        if x[i] < lo:
            lo = x[i]
        if x[i] > hi:
            hi = x[i]
    scale, zp, mn, mx = observe(q[0].min, q[0].max, lo, hi, alpha)
    q[0].scale, q[0].zero_point, q[0].min, q[0].max = scale, zp, mn, mx
    inv = ONE / scale
    for i in range(n):
        y[i] = quantize(x[i], inv, zp)


@_jit
def dequantize_u8_f32(x, y, n, q):
    s = q[0].scale
    zp = q[0].zero_point
    for i in range(n):
        y[i] = s * np.float32(np.int32(x[i]) - zp)


@_jit
def requantize_u8(acc, y, n, multiplier, zero_point):
    for i in range(n):
        y[i] = quantize(np.float32(acc[i]) * multiplier, ONE, zero_point)


# ---- IEEE half precision: the u8 kernels' gradient buffers ------------------------------------
# The Cortex-M4F converts with VCVTB (round to nearest even, IEEE format, subnormals kept); these
# reproduce it bit for bit for every non-NaN value (NaNs become the quiet NaN with the top payload bits).

@_jit
def f32_to_f16(x):
    b = np.int64(f32_bits(np.float32(x)))
    sign = (b >> 16) & 0x8000
    exp = (b >> 23) & 0xFF
    man = b & 0x7FFFFF
    if exp == 255:
        return np.uint16(sign | 0x7C00 | ((0x200 | (man >> 13)) if man else 0))
    e = exp - 112                                        # rebias 127 -> 15
    if e >= 31:
        return np.uint16(sign | 0x7C00)
    if e <= 0:
        if e < -10:
            return np.uint16(sign)
        man |= 0x800000
        shift = 14 - e
        h = man >> shift
        rem = man & ((1 << shift) - 1)
        half = 1 << (shift - 1)
        if rem > half or (rem == half and (h & 1)):
            h += 1
        return np.uint16(sign | h)
    h = (e << 10) | (man >> 13)
    rem = man & 0x1FFF
    if rem > 0x1000 or (rem == 0x1000 and (h & 1)):
        h += 1
    return np.uint16(sign | h)


@_jit
def f16_to_f32(h):
    h = np.int64(h)
    sign = (h & 0x8000) << 16
    exp = (h >> 10) & 0x1F
    man = h & 0x3FF
    if exp == 0:
        if man == 0:
            return bits_f32(np.uint32(sign))
        e = 113                                          # normalise a subnormal half
        while not man & 0x400:
            man <<= 1
            e -= 1
        return bits_f32(np.uint32(sign | (e << 23) | ((man & 0x3FF) << 13)))
    if exp == 31:
        return bits_f32(np.uint32(sign | 0x7F800000 | (((man | 0x200) << 13) if man else 0)))
    return bits_f32(np.uint32(sign | ((exp + 112) << 23) | (man << 13)))
