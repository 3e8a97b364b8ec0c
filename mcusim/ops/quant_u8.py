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


def quantize_tensor(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """float32 values as uint8 codes on their exact [min, max] (round half up), and that range's qparams:
    how an initial weight tensor is quantized."""
    q = make_qparams(values.min(), values.max())
    scale, zp = np.float32(q["scale"][0]), int(q["zero_point"][0])
    return np.clip(np.floor(values / scale + np.float32(0.5)) + zp, 0, 255).astype(np.uint8), q


# The gradient scale of a row of an int16 gradient buffer before its first batch: 2^-16 holds a batch sum
# of up to 0.5 per weight at full int16 range; nn_grad_next_scale adapts it after every batch (saturation
# grows it by NN_GRAD_GROW per batch), so only the first batches depend on this choice.
GRAD_SCALE_INIT = np.float32(2.0 ** -16)
GRAD_TARGET, GRAD_GROW = np.float32(8192.0), np.float32(64.0)
GRAD_MIN_SCALE, GRAD_MAX_SCALE = np.float32(2.0 ** -100), np.float32(2.0 ** 100)


def grad_scales(rows: int, scale: float = GRAD_SCALE_INIT) -> np.ndarray:
    """The row scales of an int16 gradient buffer of `rows` rows before its first batch."""
    return np.full(rows, scale, np.float32)


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


MASK32 = np.uint64(0xFFFFFFFF)
MIX_M1, MIX_M2, GOLDEN = np.uint64(0x7FEB352D), np.uint64(0x846CA68B), np.uint64(0x9E3779B9)
DITHER_UNIT = np.float32(2.0 ** -24)


@njit(cache=True, error_model="numpy", inline="always")
def mix32(x):
    """A bijective 32-bit integer hash (nn_mix32): xor-shift and multiply rounds."""
    x = np.uint64(x) & MASK32
    x ^= x >> np.uint64(16)
    x = (x * MIX_M1) & MASK32
    x ^= x >> np.uint64(15)
    x = (x * MIX_M2) & MASK32
    x ^= x >> np.uint64(16)
    return np.uint32(x)


@njit(cache=True, error_model="numpy", inline="always")
def dither(seed, k):
    """Element k's rounding offset in [0, 1) under a seed (nn_dither): the top 24 bits of a hash, times 2^-24."""
    h = mix32(np.uint64(seed) ^ ((np.uint64(k) * GOLDEN) & MASK32))
    return np.float32(h >> np.uint32(8)) * DITHER_UNIT


@njit(cache=True, error_model="numpy", inline="always")
def quantize_dithered(t, inv_scale, zero_point, u):
    """Stochastic rounding: clamp(zero_point + floor(t * inv_scale + u), 0, 255), u in [0, 1) (nn_quantize_dithered)."""
    v = np.float32(t) * inv_scale
    v = v + u
    if not v >= -QBIG:
        v = -QBIG
    if v > QBIG:
        v = QBIG
    r = zero_point + floor_i32(v)
    return np.uint8(0 if r < 0 else (255 if r > 255 else r))


@_jit
def quantize(t, inv_scale, zero_point):
    """The rounding rule: clamp(zero_point + floor(t * inv_scale + 0.5), 0, 255)."""
    return quantize_dithered(t, inv_scale, zero_point, HALF)


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


# ---- integer output stage (nn_requant in nn.h) ------------------------------------------------
RANGE_EMPTY_MIN, RANGE_EMPTY_MAX = np.int32(2**31 - 1), np.int32(-2**31)
BIAS_LIMIT = np.float32(2.0 ** 30)


@_jit
def requant_make(m):
    """(mult, shift) with m ~= mult * 2^-(32 + shift), as nn_requant_make."""
    m = np.float32(m)
    if not m > ZERO:
        return np.int32(0), np.int32(0)
    b = np.int64(f32_bits(m))
    e = np.int32((b >> 23) - 127)
    if e >= -1:
        return np.int32(0x7FFFFFFF), np.int32(0)
    mult = np.int32(((b & 0x7FFFFF) | 0x800000) << 7)
    shift = np.int32(-2 - e)
    if shift > 30:
        extra = shift - 30
        mult = np.int32(0) if extra >= 31 else np.int32(mult >> extra)
        shift = np.int32(30)
    return mult, shift


@njit(cache=True, error_model="numpy", inline="always")
def requant_apply(v, mult, shift):
    """h = floor((v * mult + 2^31) / 2^32); (h + (2^shift >> 1)) >> shift, as nn_requant_apply."""
    h = np.int32((np.int64(v) * np.int64(mult) + np.int64(0x80000000)) >> np.int64(32))
    return np.int32((h + ((np.int32(1) << shift) >> 1)) >> shift)


@njit(cache=True, error_model="numpy", inline="always")
def requant_u8(v, mult, shift, zero_point):
    q = zero_point + requant_apply(v, mult, shift)
    return np.uint8(0 if q < 0 else (255 if q > 255 else q))


@_jit
def bias_units(b, zb, ratio):
    """A bias code in units of the layer's sums, as nn_bias_units."""
    return round_scaled(np.int32(b) - zb, ratio)


@_jit
def range_observe(q, imin, imax, unit, alpha):
    """Observe [(float)imin * unit, (float)imax * unit] into q unless nothing was seen (nn_range_observe)."""
    if imin > imax:
        return
    unit = np.float32(unit)
    scale, zp, mn, mx = observe(q[0].min, q[0].max, np.float32(imin) * unit, np.float32(imax) * unit, alpha)
    q[0].scale, q[0].zero_point, q[0].min, q[0].max = scale, zp, mn, mx


@_jit
def round_scaled(v, ratio):
    """nn_floor_i32(ratio * (float)v + 0.5f), the product clamped to +-2^30 (nn_round_scaled)."""
    t = np.float32(ratio) * np.float32(v)
    if not t >= -BIAS_LIMIT:
        t = -BIAS_LIMIT
    if t > BIAS_LIMIT:
        t = BIAS_LIMIT
    return floor_i32(t + HALF)


@njit(cache=True, error_model="numpy", inline="always")
def sat16(v):
    return np.int32(-32768 if v < -32768 else (32767 if v > 32767 else v))


@_jit
def grad_next_scale(s, maxabs):
    """A row's next gradient scale from the largest |g| of its batch (nn_grad_next_scale)."""
    if maxabs >= 32767:
        nxt = s * GRAD_GROW
    elif maxabs == 0:
        nxt = s * (ONE / GRAD_GROW)
    else:
        nxt = s * (np.float32(maxabs) * (ONE / GRAD_TARGET))
    if not nxt >= GRAD_MIN_SCALE:
        nxt = GRAD_MIN_SCALE
    if nxt > GRAD_MAX_SCALE:
        nxt = GRAD_MAX_SCALE
    b = f32_bits(np.float32(nxt))
    if b & np.uint32(0x7FFFFF):
        b = np.uint32((b & np.uint32(0x7F800000)) + np.uint32(0x800000))     # up to the next power of two
    return bits_f32(b)


@njit(cache=True, error_model="numpy", inline="always")
def grad_inverse(s):
    """1 / s for a power-of-two gradient scale, exact (nn_grad_inverse)."""
    return bits_f32(np.uint32(np.uint32(0x7F000000) - f32_bits(s)))


@_jit
def requantize_u8(acc, y, n, multiplier, zero_point):
    mult, shift = requant_make(multiplier)
    for i in range(n):
        y[i] = requant_u8(acc[i], mult, shift, zero_point)
