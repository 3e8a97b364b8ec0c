/* nn_math.h: portable float32 math primitives shared by the Cortex-M4F training kernels and their
 * Numba twins in mcusim/ops/nn_math.py.
 *
 * Every function is written with float32 +, -, *, /, comparisons, int<->float conversions, bit
 * casts and the IEEE square root only, each operation rounded to float32 in a fixed order, so the
 * C build (-ffp-contract=off, FPv4-SP) and the Numba twin return the same bits for every input.
 * Do not change an operation here without changing the twin the same way (tests/test_nn_math.py
 * checks bit equality on the emulator).
 *
 * Real (not inline) functions so the emulator can call them by symbol. */
#ifndef NN_MATH_H
#define NN_MATH_H

#include <stdint.h>

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

#endif /* NN_MATH_H */
