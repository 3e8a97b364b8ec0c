/* nn_simd.h: small Cortex-M4 DSP helpers shared by the uint8 kernels (gemm_u8.c, conv2d_u8.c,
 * convtranspose2d_u8.c). Internal: not part of the operator API in nn.h. */
#ifndef NN_SIMD_H
#define NN_SIMD_H

#include <arm_acle.h>
#include <stdint.h>

static inline uint32_t nn__ld32(const void *p) {
    uint32_t v;
    __builtin_memcpy(&v, p, 4);          /* the M4 allows unaligned LDR */
    return v;
}

static inline int32_t nn__align4(int32_t n) { return (n + 3) & ~3; }

static inline int32_t nn__sum_u8(const uint8_t *a, int32_t n) {
    uint32_t s = 0;
    int32_t i = 0;
    for (; i + 4 <= n; i += 4) s = __usada8(nn__ld32(a + i), 0, s);
    for (; i < n; i++) s += a[i];
    return (int32_t)s;
}

/* sum_i a[i] * b[i] over n (even) int16 values, 4-byte aligned: one SMLAD per pair. */
static inline int32_t nn__dot_i16(const int16_t *a, const int16_t *b, int32_t n) {
    int32_t s = 0, i = 0;
    for (; i + 4 <= n; i += 4) {          /* memcpy loads: LDR, and no type-punning through pointers */
        s = __smlad(nn__ld32(a + i), nn__ld32(b + i), s);
        s = __smlad(nn__ld32(a + i + 2), nn__ld32(b + i + 2), s);
    }
    for (; i < n; i += 2) s = __smlad(nn__ld32(a + i), nn__ld32(b + i), s);
    return s;
}

/* Two dot products of n (even) int16 values against the same b, 4-byte aligned: one LDR of b feeds
 * two SMLAD. */
static inline void nn__dot2_i16(const int16_t *a0, const int16_t *a1, const int16_t *b, int32_t n,
                                int32_t *r0, int32_t *r1) {
    int32_t s0 = 0, s1 = 0, i = 0;
    for (; i + 4 <= n; i += 4) {
        const uint32_t b0 = nn__ld32(b + i), b1 = nn__ld32(b + i + 2);
        const uint32_t x0 = nn__ld32(a0 + i), x1 = nn__ld32(a0 + i + 2);
        const uint32_t y0 = nn__ld32(a1 + i), y1 = nn__ld32(a1 + i + 2);
        s0 = __smlad(x0, b0, s0);
        s1 = __smlad(y0, b0, s1);
        s0 = __smlad(x1, b1, s0);
        s1 = __smlad(y1, b1, s1);
    }
    if (i < n) {
        const uint32_t vb = nn__ld32(b + i);
        s0 = __smlad(nn__ld32(a0 + i), vb, s0);
        s1 = __smlad(nn__ld32(a1 + i), vb, s1);
    }
    *r0 = s0;
    *r1 = s1;
}

/* (lo half of a, lo half of b) and (hi half of a, hi half of b): clang emits PKHBT / PKHTB. */
static inline uint32_t nn__pack_lo(uint32_t a, uint32_t b) { return (a & 0xFFFFu) | (b << 16); }
static inline uint32_t nn__pack_hi(uint32_t a, uint32_t b) { return (a >> 16) | (b & 0xFFFF0000u); }

#endif /* NN_SIMD_H */
