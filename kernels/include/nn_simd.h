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

/* (lo half of a, lo half of b) and (hi half of a, hi half of b): clang emits PKHBT / PKHTB. */
static inline uint32_t nn__pack_lo(uint32_t a, uint32_t b) { return (a & 0xFFFFu) | (b << 16); }
static inline uint32_t nn__pack_hi(uint32_t a, uint32_t b) { return (a >> 16) | (b & 0xFFFF0000u); }

#endif /* NN_SIMD_H */
