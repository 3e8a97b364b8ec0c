"""Numba twins of kernels/nn_math.c: float32 e^x and log, and the deterministic PCG32 (RXS M XS)
generator with uniform and Marsaglia-polar normal draws.

Each function performs the same float32 operations in the same order as the C, so on the host it
returns the same bits as the firmware on the Cortex-M4F (tests/test_nn_math.py checks this on the
emulator). Rules kept here, and to keep when editing:

* every float constant is a float32 module global (Numba freezes it as a float32 constant); a
  Python float literal in an expression would promote the operation to float64;
* integer work is done in int64 on values below 2**63 and masked to 32 bits (no uint64, which Numba
  mixes with signed integers into float64);
* float<->bits casts are LLVM bitcasts (`f32_bits`, `bits_f32`), not array views;
* no fastmath (LLVM then neither contracts a*b+c into an FMA nor reassociates).

Caching caveat: Numba does not recompile a cache=True function in another file when a function it
calls here changes; after editing this file, clear the callers' caches (their __pycache__ *.nbi/*.nbc).

Scalars: pass np.float32 values; a result called from Python comes back as a Python float holding
a float32 value (wrap it in np.float32). RNG state is a 1-element np.uint32 array, updated in place.
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

__all__ = ["expf", "logf", "sqrtf", "rng_next", "rng_uniform", "rng_normal", "rng_fill_normal",
           "f32_bits", "bits_f32"]


@intrinsic
def f32_bits(typingctx, x):
    """The IEEE bits of a float32 as a uint32."""
    if x != types.float32:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(32))
    return types.uint32(types.float32), codegen


@intrinsic
def bits_f32(typingctx, u):
    """The float32 whose IEEE bits are the uint32 `u`."""
    if u != types.uint32:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())
    return types.float32(types.uint32), codegen


def _f(bits: int) -> np.float32:
    return np.uint32(bits).view(np.float32)


# Same bit patterns as the #defines in kernels/nn_math.c.
LOG2E = _f(0x3FB8AA3B)
LN2_HI = _f(0x3F318000)
LN2_LO = _f(0xB95E8083)
EXP_OVER = _f(0x42B17218)
EXP_UNDER = _f(0xC2AEAC4F)
E0, E1, E2, E3, E4 = _f(0x3EFFFFFE), _f(0x3E2AAA45), _f(0x3D2AAC8B), _f(0x3C091FDB), _f(0x3AB50D47)
L0, L1, L2 = _f(0x3F2AAABD), _f(0x3ECCAF49), _f(0x3E98F3F7)
TWO_POW_23 = np.float32(8388608.0)
TWO_POW_M24 = _f(0x33800000)
ZERO, HALF, ONE, TWO, MINUS_TWO = (np.float32(v) for v in (0.0, 0.5, 1.0, 2.0, -2.0))
POS_INF_BITS = np.uint32(0x7F800000)
NEG_INF_BITS = np.uint32(0xFF800000)
QNAN_BITS = np.uint32(0x7FC00000)
MASK32 = 0xFFFFFFFF

_jit = njit(cache=True, error_model="numpy")


@_jit
def sqrtf(x):
    """IEEE correctly rounded float32 square root (vsqrt.f32 on the M4, sqrtss here)."""
    return np.sqrt(np.float32(x))


@_jit
def expf(x):
    """e^x, twin of nn_expf (NaN -> NaN, x >= 88.7228394 -> +inf, x < -87.3365402 -> 0)."""
    x = np.float32(x)
    if x != x:
        return x
    if x >= EXP_OVER:
        return bits_f32(POS_INF_BITS)
    if x < EXP_UNDER:
        return ZERO
    t = x * LOG2E
    if x < ZERO:
        t = t - HALF
    else:
        t = t + HALF
    k = np.int64(t)                      # truncation toward zero, as vcvt.s32.f32
    kf = np.float32(k)
    r = x - kf * LN2_HI
    r = r - kf * LN2_LO
    p = E4
    p = p * r + E3
    p = p * r + E2
    p = p * r + E1
    p = p * r + E0
    y = (r * r) * p
    y = y + r
    y = y + ONE
    if k > 127:
        y = y * TWO
        k = k - 1
    return y * bits_f32(np.uint32((k + 127) << 23))


@_jit
def logf(x):
    """Natural log, twin of nn_logf (NaN -> NaN, x < 0 -> NaN 0x7FC00000, +-0 -> -inf, inf -> inf)."""
    x = np.float32(x)
    if x != x:
        return x
    if x < ZERO:
        return bits_f32(QNAN_BITS)
    if x == ZERO:
        return bits_f32(NEG_INF_BITS)
    ix = np.int64(f32_bits(x))
    if ix == 0x7F800000:
        return x
    e = 0
    if ix < 0x00800000:
        x = x * TWO_POW_23
        ix = np.int64(f32_bits(x))
        e = -23
    return _log_normal(np.uint32(ix), np.int32(e))


@njit(cache=True, error_model="numpy", inline="always")
def logf_normal(x):
    """logf(x) for a positive normal finite x (or NaN, returned as is), without logf's other cases: the
    same operations, branch-free and in 32-bit integers, so a loop of it vectorizes (AVX2)."""
    r = _log_normal(f32_bits(x), np.int32(0))
    return x if x != x else r


@njit(cache=True, error_model="numpy", inline="always")
def _log_normal(ix, e):
    """logf's reduction and polynomial for the bits ix (uint32) of a normal x; e (int32): a prior
    exponent offset."""
    e = np.int32(e + np.int32(ix >> np.uint32(23)) - np.int32(127))
    mb = np.uint32(np.uint32(ix & np.uint32(0x007FFFFF)) | np.uint32(0x3F800000))
    big = mb > np.uint32(0x3FB504F3)
    mb = np.uint32(mb - np.uint32(0x00800000)) if big else mb
    e = np.int32(e + np.int32(1)) if big else e
    m = bits_f32(np.uint32(mb))
    f = m - ONE
    s = f / (f + TWO)
    z = s * s
    q = L2
    q = q * z + L1
    q = q * z + L0
    lm = (s * z) * q
    lm = s * TWO + lm
    ef = np.float32(e)
    res = ef * LN2_LO + lm
    res = ef * LN2_HI + res
    return res


@_jit
def rng_next(state):
    """Advance the PCG32 (RXS M XS) state in state[0] and return the 32-bit output, as nn_rng_next."""
    s = (np.int64(state[0]) * 747796405 + 2891336453) & MASK32
    state[0] = np.uint32(s)
    w = (((s >> ((s >> 28) + 4)) ^ s) * 277803737) & MASK32
    return np.uint32((w >> 22) ^ w)


@_jit
def rng_uniform(state):
    """Uniform float32 in (0, 1) from the top 24 bits (all-zero draws rejected), as nn_rng_uniform."""
    b = np.int64(rng_next(state)) >> 8
    while b == 0:
        b = np.int64(rng_next(state)) >> 8
    return np.float32(b) * TWO_POW_M24


@_jit
def _polar(state):
    while True:
        u = rng_uniform(state) * TWO - ONE
        v = rng_uniform(state) * TWO - ONE
        s = u * u + v * v
        if not (s >= ONE or s == ZERO):
            break
    f = np.sqrt((MINUS_TWO * logf(s)) / s)
    return u * f, v * f


@_jit
def rng_normal(state):
    """One standard normal (first value of a Marsaglia polar pair), as nn_rng_normal."""
    a, b = _polar(state)
    return a


@_jit
def rng_fill_normal(state, out, n):
    """n standard normals into out[:n] using both values of each polar pair, as nn_rng_fill_normal."""
    i = 0
    while i + 1 < n:
        a, b = _polar(state)
        out[i] = a
        out[i + 1] = b
        i += 2
    if i < n:
        a, b = _polar(state)
        out[i] = a
