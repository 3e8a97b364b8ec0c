/* gemm_u8.c: fully connected layer on uint8 tensors, forward and backward (see nn.h).
 * Integer dot products use the Cortex-M4 DSP extension: UXTB16 widens two bytes at a time, SMLAD
 * does two 16-bit multiply-accumulates per cycle, USADA8 sums four bytes. Twin: mcusim/ops/gemm_u8.py. */
#include "nn.h"
#include "nn_simd.h"

#define NN_BIG 3.0e38f

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
    const float m = qw->scale * qx->scale, sb = qb->scale, inv = 1.0f / qy->scale;
    const int32_t sum_x = nn__sum_u8(x, in), offset = in * zw * zx - zw * sum_x;
    float tmin = NN_BIG, tmax = -NN_BIG;
    for (int32_t o = 0; o < out; o++) {
        int32_t sum_w;
        int32_t acc = nn__dot_u8(w + o * in, x, in, &sum_w) - zx * sum_w + offset;
        float t = (float)acc * m;
        t = t + sb * (float)((int32_t)b[o] - zb);
        if (relu && !(t > 0.0f)) t = 0.0f;
        if (t < tmin) tmin = t;
        if (t > tmax) tmax = t;
        y[o] = nn_quantize(t, inv, zy);
    }
    if (out > 0) nn_qparams_observe(qy, tmin, tmax, alpha);
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
    const float m = qw->scale * qe->scale, inv = 1.0f / qex->scale;
    const int32_t zex = qex->zero_point, zx = qx ? qx->zero_point : 0, offset = zw * sum_de;
    float tmin = NN_BIG, tmax = -NN_BIG;
    for (int32_t i = 0; i < in; i++) {
        float t = (float)(scratch[i] - offset) * m;
        if (x && x[i] <= zx) t = 0.0f;
        if (t < tmin) tmin = t;
        if (t > tmax) tmax = t;
        ex[i] = nn_quantize(t, inv, zex);
    }
    if (in > 0) nn_qparams_observe(qex, tmin, tmax, alpha);
}

int32_t gemm_u8_backward_weight_buffer_size(int32_t in) { return in * (int32_t)sizeof(float); }

void gemm_u8_backward_weight(const uint8_t *x, const nn_qparams *qx, const uint8_t *e, const nn_qparams *qe,
                             uint16_t *gw, uint16_t *gb, int32_t in, int32_t out, const uint8_t *active,
                             float *scratch) {
    const int32_t zx = qx->zero_point, ze = qe->zero_point;
    const float m = qe->scale * qx->scale, se = qe->scale;
    for (int32_t i = 0; i < in; i++) scratch[i] = (float)((int32_t)x[i] - zx);
    for (int32_t o = 0; o < out; o++) {
        const int32_t de = (int32_t)e[o] - ze;
        if ((active && !active[o]) || de == 0) continue;
        const float gr = m * (float)de;
        uint16_t *row = gw + o * in;
        for (int32_t i = 0; i < in; i++) row[i] = nn_float_to_half(nn_half_to_float(row[i]) + gr * scratch[i]);
        gb[o] = nn_float_to_half(nn_half_to_float(gb[o]) + se * (float)de);
    }
}
