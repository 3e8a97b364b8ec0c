/* gemm_u8.c: fully connected layer on uint8 tensors, forward and backward (see nn.h).
 * Integer dot products use the Cortex-M4 DSP extension: UXTB16 widens two bytes at a time, SMLAD
 * does two 16-bit multiply-accumulates per cycle, USADA8 sums four bytes. Twin: mcusim/ops/gemm_u8.py. */
#include "nn.h"
#include "nn_simd.h"

/* x - zx widened once per call for the SMLAD of every row: per 4 inputs the halfword pairs
 * (x0 - zx, x2 - zx) and (x1 - zx, x3 - zx), in the order UXTB16 and UXTB16(ROR 8) give a weight word;
 * then, if in % 4 >= 2, the pair (x[n4] - zx, x[n4 + 1] - zx) in a word, and if in is odd the last one in
 * a word (at most 2 * nn__align4(in) bytes). Returns sum_i (x[i] - zx). */
static int32_t nn__widen_centred(const uint8_t *x, int32_t zx, int32_t in, uint32_t *xw) {
    const uint32_t z2 = ((uint32_t)zx << 16) | (uint32_t)zx;
    const int32_t n4 = in & ~3;
    int32_t sum = 0;
    for (int32_t i = 0; i < n4; i += 4) {
        const uint32_t v = nn__ld32(x + i);
        xw[i >> 1] = __ssub16(__uxtb16(v), z2);
        xw[(i >> 1) + 1] = __ssub16(__uxtb16(__ror(v, 8)), z2);
    }
    uint32_t *tail = xw + (n4 >> 1);
    if (in & 2) *tail++ = nn__pack_lo((uint32_t)((int32_t)x[n4] - zx), (uint32_t)((int32_t)x[n4 + 1] - zx));
    if (in & 1) *tail = (uint32_t)((int32_t)x[in - 1] - zx);
    for (int32_t i = 0; i < in; i++) sum += (int32_t)x[i] - zx;
    return sum;
}

/* sum_i w0[i] * xc[i] and sum_i w1[i] * xc[i] (w raw bytes, xc from nn__widen_centred): per 4 inputs one
 * load of the widened x feeds both rows' two SMLAD; the in % 4 tail as a packed pair and a single. The loop
 * is assembly so its three loads stay back to back in the order that pipelines (LDR, LDR, LDRD: 1 cycle
 * less per pass than the compiler's order, which moved with unrelated code). */
static inline void nn__row_dot2(const uint8_t *w0, const uint8_t *w1, const uint32_t *xw, int32_t in, int32_t *r0,
                                int32_t *r1) {
    const int32_t n4 = in & ~3;
    int32_t a0 = 0, a1 = 0;
    if (n4 > 0) {
        const uint8_t *p0 = w0, *p1 = w1, *const end = w0 + n4;
        uint32_t v0, v1, xe, xo, t0, t1;
        __asm__ volatile("1:\n\t"
                         "ldr %[v0], [%[p0]], #4\n\t"
                         "ldr %[v1], [%[p1]], #4\n\t"
                         "ldrd %[xe], %[xo], [%[xw]], #8\n\t"
                         "uxtb16 %[t0], %[v0]\n\t"
                         "uxtb16 %[t1], %[v1]\n\t"
                         "smlad %[a0], %[t0], %[xe], %[a0]\n\t"
                         "smlad %[a1], %[t1], %[xe], %[a1]\n\t"
                         "uxtb16 %[t0], %[v0], ror #8\n\t"
                         "uxtb16 %[t1], %[v1], ror #8\n\t"
                         "cmp %[p0], %[end]\n\t"
                         "smlad %[a0], %[t0], %[xo], %[a0]\n\t"
                         "smlad %[a1], %[t1], %[xo], %[a1]\n\t"
                         "bne 1b"
                         : [a0] "+r"(a0), [a1] "+r"(a1), [p0] "+r"(p0), [p1] "+r"(p1), [xw] "+r"(xw),
                           [v0] "=&r"(v0), [v1] "=&r"(v1), [xe] "=&r"(xe), [xo] "=&r"(xo), [t0] "=&r"(t0),
                           [t1] "=&r"(t1)
                         : [end] "r"(end)
                         : "cc", "memory");
    }
    if (in & 2) {
        const uint32_t xp = *xw++;
        a0 = __smlad(nn__pack_lo(w0[n4], w0[n4 + 1]), xp, a0);
        a1 = __smlad(nn__pack_lo(w1[n4], w1[n4 + 1]), xp, a1);
    }
    if (in & 1) {
        const int32_t xl = (int32_t)*xw;
        a0 += (int32_t)w0[in - 1] * xl;
        a1 += (int32_t)w1[in - 1] * xl;
    }
    *r0 = a0;
    *r1 = a1;
}

/* The output stage: t = acc[o] + offset + the bias in units (from the table `units`, or computed if
 * NULL), the ReLU's floor lo, the integer range, the requantized y. Inlined twice, units constant in each. */
static inline void nn__gemm_output(const int32_t *acc, int32_t offset, const uint8_t *b, const int32_t *units,
                                   int32_t zb, float ratio, int32_t lo, nn_requant rq, int32_t zy, uint8_t *y,
                                   int32_t out, nn_qparams *qy, float unit, float alpha) {
    int32_t imin = NN_RANGE_EMPTY_MIN, imax = NN_RANGE_EMPTY_MAX;
    for (int32_t o = 0; o < out; o++) {
        int32_t t = acc[o] + offset + (units ? units[b[o]] : nn_bias_units(b[o], zb, ratio));
        t = t < lo ? lo : t;
        imin = t < imin ? t : imin;
        imax = t > imax ? t : imax;
        y[o] = nn_requant_u8(t, rq, zy);
    }
    nn_range_observe(qy, imin, imax, unit, alpha);
}

/* A layer with more outputs than bias codes looks each code's nn_bias_units up in a table made once per
 * call (the same integers; the float rounding per output cost ~25 cycles). */
#define NN__BIAS_CODES 256

/* The widened x, the int32 sums of all rows, then (more outputs than codes) the bias table. */
int32_t gemm_u8_forward_buffer_size(int32_t in, int32_t out) {
    return 2 * nn__align4(in) + 4 * out + (out > NN__BIAS_CODES ? 4 * NN__BIAS_CODES : 0);
}

void gemm_u8_forward(const uint8_t *x, const nn_qparams *qx, const uint8_t *w, const nn_qparams *qw,
                     const uint8_t *b, const nn_qparams *qb, uint8_t *y, nn_qparams *qy,
                     int32_t in, int32_t out, int32_t relu, float alpha, int32_t *scratch) {
    const float unit = qw->scale * qx->scale, ratio = qb->scale / unit;
    const nn_requant rq = nn_requant_make(unit / qy->scale);
    const int32_t zb = qb->zero_point, zy = qy->zero_point, lo = relu ? 0 : NN_RANGE_EMPTY_MAX;
    uint32_t *xw = (uint32_t *)scratch;
    int32_t *acc = scratch + (nn__align4(in) >> 1);
    const int32_t offset = -qw->zero_point * nn__widen_centred(x, qx->zero_point, in, xw);
    /* The sums first, two rows per pass (an odd last row with itself), then the output stage in its own
     * loop: each loop keeps its values in registers (together they spilled, per output); unrolling the
     * pairs spilled too. */
#pragma GCC unroll 1
    for (int32_t o = 0; o < out; o += 2) {
        const int32_t o1 = o + 1 < out ? o + 1 : o;
        nn__row_dot2(w + o * in, w + o1 * in, xw, in, acc + o, acc + o1);
    }
    if (out > NN__BIAS_CODES) {
        int32_t *units = acc + out;
        for (int32_t c = 0; c < NN__BIAS_CODES; c++) units[c] = nn_bias_units((uint8_t)c, zb, ratio);
        nn__gemm_output(acc, offset, b, units, zb, ratio, lo, rq, zy, y, out, qy, unit, alpha);
    } else {
        nn__gemm_output(acc, offset, b, NULL, zb, ratio, lo, rq, zy, y, out, qy, unit, alpha);
    }
}

/* The active rows with a nonzero error, two by two: per pair the byte offsets of both rows and their
 * errors packed as halfwords (de0, de1); an odd last row is paired with itself and de1 = 0. */
typedef struct {
    int32_t r0, r1;
    uint32_t de;
} nn__row_pair;

int32_t gemm_u8_backward_input_buffer_size(int32_t in, int32_t out) {
    (void)in;
    return (int32_t)sizeof(nn__row_pair) * ((out + 1) / 2);
}

void gemm_u8_backward_input(const uint8_t *w, const nn_qparams *qw, const uint8_t *e, const nn_qparams *qe,
                            uint8_t *ex, nn_qparams *qex, const uint8_t *x, const nn_qparams *qx,
                            int32_t in, int32_t out, const uint8_t *active, float alpha, int32_t *scratch) {
    const int32_t ze = qe->zero_point, zw = qw->zero_point;
    nn__row_pair *pairs = (nn__row_pair *)scratch;
    int32_t np = 0, sum_de = 0, half = -1;
    for (int32_t o = 0; o < out; o++) {
        const int32_t de = (int32_t)e[o] - ze;
        if ((active && !active[o]) || de == 0) continue;
        sum_de += de;
        if (half < 0) {
            pairs[np] = (nn__row_pair){o * in, o * in, (uint32_t)de & 0xFFFFu};
            half = np++;
        } else {
            pairs[half].r1 = o * in;
            pairs[half].de |= (uint32_t)de << 16;
            half = -1;
        }
    }
    const float unit = qw->scale * qe->scale;
    const nn_requant rq = nn_requant_make(unit / qex->scale);
    const int32_t zex = qex->zero_point, zx = qx ? qx->zero_point : 0, offset = zw * sum_de;
    int32_t imin = NN_RANGE_EMPTY_MIN, imax = NN_RANGE_EMPTY_MAX;
    /* Four inputs at a time, their sums in registers over every row pair: (w[o0][i], w[o1][i]) . (de0, de1)
     * as one SMLAD; the in % 4 tail one input at a time. */
    int32_t i = 0;
    for (; i + 4 <= in; i += 4) {
        int32_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
#pragma GCC unroll 1                                   /* unrolled copies spill the four sums to the stack */
        for (int32_t k = 0; k < np; k++) {
            const uint32_t a = nn__ld32(w + pairs[k].r0 + i), c = nn__ld32(w + pairs[k].r1 + i), de = pairs[k].de;
            const uint32_t a02 = __uxtb16(a), c02 = __uxtb16(c), a13 = __uxtb16(__ror(a, 8)), c13 = __uxtb16(__ror(c, 8));
            s0 = __smlad(nn__pack_lo(a02, c02), de, s0);
            s1 = __smlad(nn__pack_lo(a13, c13), de, s1);
            s2 = __smlad(nn__pack_hi(a02, c02), de, s2);
            s3 = __smlad(nn__pack_hi(a13, c13), de, s3);
        }
        const int32_t sums[4] = {s0, s1, s2, s3};
        for (int32_t j = 0; j < 4; j++) {
            int32_t t = sums[j] - offset;
            if (x && x[i + j] <= zx) t = 0;
            imin = t < imin ? t : imin;
            imax = t > imax ? t : imax;
            ex[i + j] = nn_requant_u8(t, rq, zex);
        }
    }
    for (; i < in; i++) {
        int32_t s = 0;
        for (int32_t k = 0; k < np; k++) {
            const uint32_t de = pairs[k].de;
            s += (int32_t)w[pairs[k].r0 + i] * (int16_t)(de & 0xFFFFu) + (int32_t)w[pairs[k].r1 + i] * ((int32_t)de >> 16);
        }
        int32_t t = s - offset;
        if (x && x[i] <= zx) t = 0;
        imin = t < imin ? t : imin;
        imax = t > imax ? t : imax;
        ex[i] = nn_requant_u8(t, rq, zex);
    }
    nn_range_observe(qex, imin, imax, unit, alpha);
}

/* c * xs + 2^15 for the low and high halfword of the pair xs, packed as the two high halves (PKHTB):
 * each lane floor((c * x + 2^8) / 2^9) of the unscaled x (round half up). */
static inline uint32_t nn__grad_pair(int32_t c, uint32_t xs) {
    const int32_t lo = __smlabb(c, (int32_t)xs, 0x8000), hi = __smlabt(c, (int32_t)xs, 0x8000);
    return ((uint32_t)hi & 0xFFFF0000u) | (((uint32_t)(lo >> 16)) & 0xFFFFu);
}

/* The fixed-point coefficient of a row: c = clamp(nn_round_scaled(de, k * 2^9), -32767, 32767). */
static inline int32_t nn__grad_coef(int32_t de, float k9) {
    const int32_t c = nn_round_scaled(de, k9);
    return c < -32767 ? -32767 : (c > 32767 ? 32767 : c);
}

/* One weight's gradient, sat16(g + ((c * xs + 2^15) >> 16)). */
static inline int16_t nn__grad_one(int16_t g, int32_t c, int16_t xs) {
    return (int16_t)nn_sat16(g + ((c * xs + 0x8000) >> 16));
}

/* One gradient row, 4 inputs per iteration (loads first: back-to-back loads pipeline on the M4), then
 * the in % 4 tail as a pair and a single. One row at a time keeps every value in a register (two rows
 * sharing the loads of x spilled); the unrolling is bounded so a short row (in = 10) stays cheap. */
static void nn__grad_row(int16_t *r, int32_t c, const int16_t *xs, int32_t in) {
#pragma GCC unroll 4
    for (int32_t n = in >> 2; n > 0; n--) {
        const uint32_t xa = nn__ld32(xs), xb = nn__ld32(xs + 2), ga = nn__ld32(r), gb = nn__ld32(r + 2);
        const uint32_t sa = __qadd16(ga, nn__grad_pair(c, xa)), sb = __qadd16(gb, nn__grad_pair(c, xb));
        __builtin_memcpy(r, &sa, 4);
        __builtin_memcpy(r + 2, &sb, 4);
        xs += 4;
        r += 4;
    }
    if (in & 2) {
        const uint32_t s = __qadd16(nn__ld32(r), nn__grad_pair(c, nn__ld32(xs)));
        __builtin_memcpy(r, &s, 4);
        xs += 2;
        r += 2;
    }
    if (in & 1) *r = nn__grad_one(*r, c, *xs);
}

int32_t gemm_u8_backward_weight_buffer_size(int32_t in) { return nn__align4(2 * in); }

void gemm_u8_backward_weight(const uint8_t *x, const nn_qparams *qx, const uint8_t *e, const nn_qparams *qe,
                             int16_t *gw, const float *sgw, int16_t *gb, const float *sgb, int32_t in,
                             int32_t out, const uint8_t *active, int32_t *scratch) {
    const int32_t zx = qx->zero_point, ze = qe->zero_point;
    const float unit = qe->scale * qx->scale, se = qe->scale;
    int16_t *xs = (int16_t *)scratch;                  /* (x - zx) * 2^7, exact in int16 */
    for (int32_t i = 0; i < in; i++) xs[i] = (int16_t)(((int32_t)x[i] - zx) * 128);
    for (int32_t o = 0; o < out; o++) {
        const int32_t de = (int32_t)e[o] - ze;
        if ((active && !active[o]) || de == 0) continue;
        gb[o] = (int16_t)nn_sat16(gb[o] + nn_round_scaled(de, se * nn_grad_inverse(sgb[o])));
        nn__grad_row(gw + o * in, nn__grad_coef(de, (unit * nn_grad_inverse(sgw[o])) * 512.0f), xs, in);
    }
}
