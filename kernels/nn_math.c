/* nn_math.c: portable float32 transcendentals and the deterministic random generator.
 * See kernels/include/nn.h for the contracts; the Numba twin is mcusim/ops/nn_math.py and must
 * perform the same float32 operations in the same order (tests/test_nn_math.py checks the bits).
 * Build with -ffp-contract=off (mcusim.toolchain does): a fused multiply-add would change results. */
#include "nn.h"

typedef union { float f; uint32_t u; } nn__bits;

static inline float nn__as_float(uint32_t u) { nn__bits b; b.u = u; return b.f; }
static inline uint32_t nn__as_uint(float f) { nn__bits b; b.f = f; return b.u; }

/* ---- constants (float32 values; the twin uses the same bit patterns) ------------------------ */
#define NN_LOG2E        1.44269502e+00f          /* 0x3FB8AA3B */
#define NN_LN2_HI       6.93359375e-01f          /* 0x3F318000: 9 significant bits, k*hi exact */
#define NN_LN2_LO      -2.12194442e-04f          /* 0xB95E8083: ln2 - hi */
#define NN_EXP_OVER     8.87228394e+01f          /* 0x42B17218: x >= this -> +inf */
#define NN_EXP_UNDER   -8.73365402e+01f          /* 0xC2AEAC4F: x < this -> 0 */
/* exp(r) = 1 + r + r^2 * (E0 + r*(E1 + r*(E2 + r*(E3 + r*E4)))), minimax on |r| <= 0.35 */
#define NN_E0           4.99999940e-01f          /* 0x3EFFFFFE */
#define NN_E1           1.66665152e-01f          /* 0x3E2AAA45 */
#define NN_E2           4.16684560e-02f          /* 0x3D2AAC8B */
#define NN_E3           8.36941134e-03f          /* 0x3C091FDB */
#define NN_E4           1.38131611e-03f          /* 0x3AB50D47 */
/* log((1+s)/(1-s)) = 2s + s^3 * (L0 + z*(L1 + z*L2)), z = s^2, minimax on |s| <= 0.1716 */
#define NN_L0           6.66667759e-01f          /* 0x3F2AAABD */
#define NN_L1           3.99774820e-01f          /* 0x3ECCAF49 */
#define NN_L2           2.98736304e-01f          /* 0x3E98F3F7 */
#define NN_TWO_POW_23   8.38860800e+06f          /* 2^23 */
#define NN_TWO_POW_M24  5.96046448e-08f          /* 2^-24 */

static inline float nn__sqrt(float x) {
#if defined(__arm__) || defined(__thumb__)
    float r;
    __asm__("vsqrt.f32 %0, %1" : "=t"(r) : "t"(x));   /* never a libm call (math-errno) */
    return r;
#else
    return __builtin_sqrtf(x);
#endif
}

float nn_sqrtf(float x) { return nn__sqrt(x); }

float nn_expf(float x) {
    if (x != x) return x;                               /* NaN passthrough */
    if (x >= NN_EXP_OVER) return nn__as_float(0x7F800000u);
    if (x < NN_EXP_UNDER) return 0.0f;
    float t = x * NN_LOG2E;
    t = (x < 0.0f) ? t - 0.5f : t + 0.5f;               /* round half away from zero ... */
    int k = (int)t;                                     /* ... by truncation: k in [-126, 128] */
    float kf = (float)k;
    float r = x - kf * NN_LN2_HI;
    r = r - kf * NN_LN2_LO;
    float p = NN_E4;
    p = p * r + NN_E3;
    p = p * r + NN_E2;
    p = p * r + NN_E1;
    p = p * r + NN_E0;
    float y = (r * r) * p;
    y = y + r;
    y = y + 1.0f;
    if (k > 127) {                                      /* 2^128 is not a float: scale twice */
        y = y * 2.0f;
        k = k - 1;
    }
    return y * nn__as_float((uint32_t)(k + 127) << 23);
}

float nn_logf(float x) {
    if (x != x) return x;                               /* NaN passthrough */
    if (x < 0.0f) return nn__as_float(0x7FC00000u);     /* quiet NaN, fixed bits on every host */
    if (x == 0.0f) return nn__as_float(0xFF800000u);    /* -inf */
    uint32_t ix = nn__as_uint(x);
    if (ix == 0x7F800000u) return x;                    /* +inf */
    int e = 0;
    if (ix < 0x00800000u) {                             /* denormal: scale up exactly */
        x = x * NN_TWO_POW_23;
        ix = nn__as_uint(x);
        e = -23;
    }
    e = e + (int)(ix >> 23) - 127;
    uint32_t mb = (ix & 0x007FFFFFu) | 0x3F800000u;     /* m in [1, 2) */
    if (mb > 0x3FB504F3u) {                             /* m > sqrt(2): use m/2, e+1 */
        mb = mb - 0x00800000u;
        e = e + 1;
    }
    float m = nn__as_float(mb);
    float f = m - 1.0f;                                 /* exact */
    float s = f / (f + 2.0f);
    float z = s * s;
    float q = NN_L2;
    q = q * z + NN_L1;
    q = q * z + NN_L0;
    float lm = (s * z) * q;
    lm = s * 2.0f + lm;
    float ef = (float)e;
    float res = ef * NN_LN2_LO + lm;
    res = ef * NN_LN2_HI + res;
    return res;
}

uint32_t nn_rng_next(uint32_t *state) {
    uint32_t s = *state * 747796405u + 2891336453u;
    *state = s;
    uint32_t w = ((s >> ((s >> 28) + 4u)) ^ s) * 277803737u;
    return (w >> 22) ^ w;
}

float nn_rng_uniform(uint32_t *state) {
    uint32_t b;
    do {
        b = nn_rng_next(state) >> 8;
    } while (b == 0u);
    return (float)b * NN_TWO_POW_M24;                   /* exact: b < 2^24 */
}

/* One accepted Marsaglia polar step: *a = u*f, *b = v*f. */
static inline void nn__polar(uint32_t *state, float *a, float *b) {
    float u, v, s;
    do {
        u = nn_rng_uniform(state) * 2.0f - 1.0f;        /* exact */
        v = nn_rng_uniform(state) * 2.0f - 1.0f;
        s = u * u + v * v;
    } while (s >= 1.0f || s == 0.0f);
    float f = nn__sqrt((-2.0f * nn_logf(s)) / s);
    *a = u * f;
    *b = v * f;
}

float nn_rng_normal(uint32_t *state) {
    float a, b;
    nn__polar(state, &a, &b);
    return a;
}

void nn_rng_fill_normal(uint32_t *state, float *out, int n) {
    float a, b;
    int i = 0;
    for (; i + 1 < n; i += 2) {
        nn__polar(state, &a, &b);
        out[i] = a;
        out[i + 1] = b;
    }
    if (i < n) {
        nn__polar(state, &a, &b);
        out[i] = a;
    }
}
