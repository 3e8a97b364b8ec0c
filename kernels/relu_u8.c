/* relu_u8.c: standalone uint8 relu / relu6 forward and backward (contract in nn.h), for a relu that is
 * not fused into a layer's output stage. Four bytes per step with the DSP extension: USUB8 sets the
 * per-byte GE flags of an unsigned compare and SEL picks bytes by them (sel_ge). Twin: mcusim/ops/elementwise.py. */
#include "nn.h"
#include "nn_simd.h"

/* The upper clamp of relu_u8 on a tensor with qparams q: 6 quantized, or 255 without the 6. */
static int32_t relu_u8_hi(const nn_qparams *q, int32_t six) {
    return six ? nn_quantize(6.0f, 1.0f / q->scale, q->zero_point) : 255;
}

static inline uint32_t bytes4(int32_t v) { return (uint32_t)v * 0x01010101u; }

/* Per byte: a >= b (unsigned) ? p : q. One asm block, so nothing can come between the USUB8 that sets
 * the GE flags and the SEL that reads them. */
static inline uint32_t sel_ge(uint32_t a, uint32_t b, uint32_t p, uint32_t q) {
    uint32_t r;
    __asm__("usub8 %0, %1, %2\n\tsel %0, %3, %4" : "=&r"(r) : "r"(a), "r"(b), "r"(p), "r"(q));
    return r;
}

void relu_u8_forward(const uint8_t *x, const nn_qparams *qx, uint8_t *y, nn_qparams *qy, int32_t n, int32_t six) {
    const int32_t lo = qx->zero_point, hi = relu_u8_hi(qx, six);
    *qy = *qx;
    const uint32_t lo4 = bytes4(lo), hi4 = bytes4(hi);
    for (int32_t k = n >> 3; k > 0; k--, x += 8, y += 8) {  /* both words loaded before the stores: y may be x */
        uint32_t v = nn__ld32(x), w = nn__ld32(x + 4);
        v = sel_ge(v, lo4, v, lo4);                     /* max(v, lo) */
        w = sel_ge(w, lo4, w, lo4);
        v = sel_ge(v, hi4, hi4, v);                     /* min(v, hi) */
        w = sel_ge(w, hi4, hi4, w);
        __builtin_memcpy(y, &v, 4);
        __builtin_memcpy(y + 4, &w, 4);
    }
    for (int32_t k = n & 7; k > 0; k--, x++, y++) {
        int32_t v = *x;
        v = v < lo ? lo : v;
        *y = (uint8_t)(v > hi ? hi : v);
    }
}

void relu_u8_backward(const uint8_t *y, const nn_qparams *qy, const uint8_t *e, const nn_qparams *qe, uint8_t *ex,
                      int32_t n, int32_t six) {
    const int32_t zy = qy->zero_point, ze = qe->zero_point, hi = relu_u8_hi(qy, six);
    const uint32_t zy4 = bytes4(zy), ze4 = bytes4(ze), hi4 = bytes4(hi);
    for (int32_t k = n >> 3; k > 0; k--, y += 8, e += 8, ex += 8) {
        uint32_t v = nn__ld32(y), w = nn__ld32(y + 4), g = nn__ld32(e), h = nn__ld32(e + 4);
        g = sel_ge(zy4, v, ze4, g);                     /* y <= zy: no error */
        h = sel_ge(zy4, w, ze4, h);
        if (six) {                                      /* y >= hi: no error */
            g = sel_ge(v, hi4, ze4, g);
            h = sel_ge(w, hi4, ze4, h);
        }
        __builtin_memcpy(ex, &g, 4);
        __builtin_memcpy(ex + 4, &h, 4);
    }
    for (int32_t k = n & 7; k > 0; k--, y++, e++, ex++) *ex = (*y > zy && (!six || *y < hi)) ? *e : (uint8_t)ze;
}
