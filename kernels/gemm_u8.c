/* gemm_u8.c: fully connected layer on uint8 tensors, forward and backward (see nn.h).
 * Integer dot products use the Cortex-M4 DSP extension: UXTB16 widens two bytes at a time, SMLAD
 * does two 16-bit multiply-accumulates per cycle, USADA8 sums four bytes. Twin: mcusim/ops/gemm_u8.py. */
#include "nn.h"
#include "nn_simd.h"

/* sum_i a[i] * b[i] and sum_i a[i] over n bytes, exact in int32 for n < 33000. */
static int32_t nn__dot_u8(const uint8_t *a, const uint8_t *b, int32_t n, int32_t *sum_a) {
    int32_t acc = 0;
    uint32_t sa = 0;
    int32_t i = 0;
    for (; i + 4 <= n; i += 4) {
        uint32_t wa = nn__ld32(a + i), wb = nn__ld32(b + i);
        acc = __smlad(__uxtb16(wa), __uxtb16(wb), acc);
        acc = __smlad(__uxtb16(__ror(wa, 8)), __uxtb16(__ror(wb, 8)), acc);
        sa = __usada8(wa, 0, sa);
    }
    for (; i < n; i++) {
        acc += (int32_t)a[i] * b[i];
        sa += a[i];
    }
    *sum_a = (int32_t)sa;
    return acc;
}

void gemm_u8_forward(const uint8_t *x, const nn_qparams *qx, const uint8_t *w, const nn_qparams *qw,
                     const uint8_t *b, const nn_qparams *qb, uint8_t *y, nn_qparams *qy,
                     int32_t in, int32_t out, int32_t relu, float alpha) {
    const int32_t zx = qx->zero_point, zw = qw->zero_point, zb = qb->zero_point, zy = qy->zero_point;
    const float unit = qw->scale * qx->scale, ratio = qb->scale / unit;
    const nn_requant rq = nn_requant_make(unit / qy->scale);
    const int32_t sum_x = nn__sum_u8(x, in), offset = in * zw * zx - zw * sum_x;
    int32_t imin = NN_RANGE_EMPTY_MIN, imax = NN_RANGE_EMPTY_MAX;
    for (int32_t o = 0; o < out; o++) {
        int32_t sum_w;
        int32_t t = nn__dot_u8(w + o * in, x, in, &sum_w) - zx * sum_w + offset + nn_bias_units(b[o], zb, ratio);
        if (relu && t < 0) t = 0;
        if (t < imin) imin = t;
        if (t > imax) imax = t;
        y[o] = nn_requant_u8(t, rq, zy);
    }
    nn_range_observe(qy, imin, imax, unit, alpha);
}

int32_t gemm_u8_backward_input_buffer_size(int32_t in) { return in * (int32_t)sizeof(int32_t); }

void gemm_u8_backward_input(const uint8_t *w, const nn_qparams *qw, const uint8_t *e, const nn_qparams *qe,
                            uint8_t *ex, nn_qparams *qex, const uint8_t *x, const nn_qparams *qx,
                            int32_t in, int32_t out, const uint8_t *active, float alpha, int32_t *scratch) {
    const int32_t ze = qe->zero_point, zw = qw->zero_point;
    for (int32_t i = 0; i < in; i++) scratch[i] = 0;
    int32_t sum_de = 0, o = 0;
    /* Two rows at a time: acc[i] += w[o][i]*de_o + w[o+1][i]*de_o1 as one SMLAD on packed halfwords. */
    while (o < out) {
        int32_t o1 = o + 1;
        while (o < out && ((active && !active[o]) || e[o] == ze)) o++;
        if (o >= out) break;
        o1 = o + 1;
        while (o1 < out && ((active && !active[o1]) || e[o1] == ze)) o1++;
        const int32_t de0 = (int32_t)e[o] - ze;
        const uint8_t *r0 = w + o * in;
        if (o1 < out) {
            const int32_t de1 = (int32_t)e[o1] - ze;
            const uint8_t *r1 = w + o1 * in;
            const uint32_t de = ((uint32_t)de0 & 0xFFFFu) | ((uint32_t)de1 << 16);
            int32_t i = 0;
            for (; i + 4 <= in; i += 4) {
                uint32_t a = nn__ld32(r0 + i), c = nn__ld32(r1 + i);
                uint32_t a02 = __uxtb16(a), c02 = __uxtb16(c);
                uint32_t a13 = __uxtb16(__ror(a, 8)), c13 = __uxtb16(__ror(c, 8));
                scratch[i] = __smlad(nn__pack_lo(a02, c02), de, scratch[i]);
                scratch[i + 1] = __smlad(nn__pack_lo(a13, c13), de, scratch[i + 1]);
                scratch[i + 2] = __smlad(nn__pack_hi(a02, c02), de, scratch[i + 2]);
                scratch[i + 3] = __smlad(nn__pack_hi(a13, c13), de, scratch[i + 3]);
            }
            for (; i < in; i++) scratch[i] += (int32_t)r0[i] * de0 + (int32_t)r1[i] * de1;
            sum_de += de0 + de1;
            o = o1 + 1;
        } else {
            for (int32_t i = 0; i < in; i++) scratch[i] += (int32_t)r0[i] * de0;
            sum_de += de0;
            o = out;
        }
    }
    const float unit = qw->scale * qe->scale;
    const nn_requant rq = nn_requant_make(unit / qex->scale);
    const int32_t zex = qex->zero_point, zx = qx ? qx->zero_point : 0, offset = zw * sum_de;
    int32_t imin = NN_RANGE_EMPTY_MIN, imax = NN_RANGE_EMPTY_MAX;
    for (int32_t i = 0; i < in; i++) {
        int32_t t = scratch[i] - offset;
        if (x && x[i] <= zx) t = 0;
        if (t < imin) imin = t;
        if (t > imax) imax = t;
        ex[i] = nn_requant_u8(t, rq, zex);
    }
    nn_range_observe(qex, imin, imax, unit, alpha);
}

int32_t gemm_u8_backward_weight_buffer_size(int32_t in) { return nn__align4(2 * in); }

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

static inline int32_t nn__next_row(const uint8_t *e, int32_t ze, const uint8_t *active, int32_t o, int32_t out) {
    while (o < out && ((active && !active[o]) || e[o] == ze)) o++;
    return o;
}

void gemm_u8_backward_weight(const uint8_t *x, const nn_qparams *qx, const uint8_t *e, const nn_qparams *qe,
                             int16_t *gw, const nn_qparams *qgw, int16_t *gb, const nn_qparams *qgb, int32_t in,
                             int32_t out, const uint8_t *active, int32_t *scratch) {
    const int32_t zx = qx->zero_point, ze = qe->zero_point, pairs = in >> 1;
    const float k9 = ((qe->scale * qx->scale) / qgw->scale) * 512.0f, kb = qe->scale / qgb->scale;
    int16_t *xs = (int16_t *)scratch;                  /* (x - zx) * 2^7, exact in int16 */
    for (int32_t i = 0; i < in; i++) xs[i] = (int16_t)(((int32_t)x[i] - zx) * 128);
    int32_t o0 = nn__next_row(e, ze, active, 0, out);
    while (o0 < out) {                                 /* two rows per pass: one load of x feeds both */
        const int32_t o1 = nn__next_row(e, ze, active, o0 + 1, out), de0 = (int32_t)e[o0] - ze;
        const int32_t c0 = nn__grad_coef(de0, k9);
        int16_t *r0 = gw + o0 * in;
        gb[o0] = (int16_t)nn_sat16(gb[o0] + nn_round_scaled(de0, kb));
        if (o1 < out) {
            const int32_t de1 = (int32_t)e[o1] - ze, c1 = nn__grad_coef(de1, k9);
            int16_t *r1 = gw + o1 * in;
            gb[o1] = (int16_t)nn_sat16(gb[o1] + nn_round_scaled(de1, kb));
            for (int32_t j = 0; j < pairs; j++) {
                const uint32_t xp = nn__ld32(xs + 2 * j);
                const uint32_t s0 = __qadd16(nn__ld32(r0 + 2 * j), nn__grad_pair(c0, xp));
                const uint32_t s1 = __qadd16(nn__ld32(r1 + 2 * j), nn__grad_pair(c1, xp));
                __builtin_memcpy(r0 + 2 * j, &s0, 4);
                __builtin_memcpy(r1 + 2 * j, &s1, 4);
            }
            if (in & 1) r1[in - 1] = (int16_t)nn_sat16(r1[in - 1] + ((c1 * xs[in - 1] + 0x8000) >> 16));
        } else {
            for (int32_t j = 0; j < pairs; j++) {
                const uint32_t s0 = __qadd16(nn__ld32(r0 + 2 * j), nn__grad_pair(c0, nn__ld32(xs + 2 * j)));
                __builtin_memcpy(r0 + 2 * j, &s0, 4);
            }
        }
        if (in & 1) r0[in - 1] = (int16_t)nn_sat16(r0[in - 1] + ((c0 * xs[in - 1] + 0x8000) >> 16));
        o0 = o1 < out ? nn__next_row(e, ze, active, o1 + 1, out) : out;
    }
}
