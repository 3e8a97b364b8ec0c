/* conv2d_u8.c: Conv2D on uint8 tensors, forward and backward (contract in nn.h), plus the
 * strided integer core and the output stages shared with convtranspose2d_u8.c.
 * Integer sums use the Cortex-M4 DSP extension (SMLAD on tap pairs of a centred int16 copy).
 * Twin: mcusim/ops/conv_u8.py. */
#include "nn.h"
#include "nn_simd.h"

/* ---- centred input copy, tap pairs and the pair dot products shared by both integer cores ------- */
nn__q15_layout nn__conv_u8_layout(int32_t c, int32_t hp, int32_t wp) {
    if ((c & 1) == 0) return (nn__q15_layout){.cs = 2 * hp * wp, .ys = 2 * wp, .xs = 2, .pairs = 1};
    return (nn__q15_layout){.cs = hp * wp, .ys = wp, .xs = 1, .pairs = 0};
}

static inline void nn__st32(void *p, uint32_t v) { __builtin_memcpy(p, &v, 4); }   /* STR, unaligned allowed */

/* Four codes of a row (bytes v) minus zx: (v0, v2) and (v1, v3) as halfword pairs (UXTAB16 with -zx). */
static inline void nn__centre4(uint32_t v, uint32_t nz, uint32_t *even, uint32_t *odd) {
    *even = __uxtab16(nz, v);
    *odd = __uxtab16(nz, __ror(v, 8));
}

nn__conv_u8_sel nn__conv_u8_select(const uint8_t *active, int32_t c, int32_t nj, int32_t ni) {
    int32_t n = active ? 0 : c;
#pragma clang loop unroll(disable)
    for (int32_t ch = 0; active && ch < c; ch++) n += active[ch] != 0;
    if ((n & 1) && n < c && nn__npairs(n + 1, nj, ni) < nn__npairs(n, nj, ni)) n++;   /* an empty partner */
    return (nn__conv_u8_sel){.active = active, .c = c, .n = n};
}

/* The first active channel of c from ch on (c: none left). */
static inline int32_t nn__conv_u8_next(const uint8_t *active, int32_t c, int32_t ch) {
    if (!active) return ch;
#pragma clang loop unroll(disable)
    while (ch < c && !active[ch]) ch++;
    return ch;
}

void nn__conv_u8_centre(const uint8_t *x, const nn__conv_u8_sel *sel, int32_t h, int32_t w, int32_t top,
                        int32_t left, int32_t hp, int32_t wp, int32_t zx, int16_t *xq) {
    const nn__q15_layout l = nn__conv_u8_layout(sel->n, hp, wp);
    const uint32_t nz = ((uint32_t)-zx & 0xFFFFu) * 0x10001u, zx4 = (uint32_t)zx * 0x01010101u;
    uint32_t *z = (uint32_t *)xq;
    for (int32_t i = 0, nw = nn__q15_bytes(sel->n, hp, wp) >> 2; i < nw; i++) z[i] = 0;
    const uint8_t *active = sel->active;
    const int32_t c = sel->c, n = sel->n;
    for (int32_t ch = 0, a = nn__conv_u8_next(active, c, 0); ch < n; ch += 1 + l.pairs) {
        const int32_t b = l.pairs ? nn__conv_u8_next(active, c, a + 1) : a, on1 = b < c;   /* b = c: empty */
        const uint8_t *s0 = x + a * h * w, *s1 = on1 ? x + b * h * w : s0;
        a = nn__conv_u8_next(active, c, b + 1);
        for (int32_t r = 0; r < h; r++, s0 += w, s1 += w) {
            int16_t *dst = xq + nn__q15_at(&l, ch, top + r, left);
            int32_t i = 0;
            if (l.pairs) {                         /* (ch, ch + 1) side by side: four positions, four words */
                for (; i + 4 <= w; i += 4, dst += 8) {
                    uint32_t ve, vo, ue, uo;
                    nn__centre4(nn__ld32(s0 + i), nz, &ve, &vo);
                    nn__centre4(on1 ? nn__ld32(s1 + i) : zx4, nz, &ue, &uo);
                    nn__st32(dst, nn__pack_lo(ve, ue));
                    nn__st32(dst + 2, nn__pack_lo(vo, uo));
                    nn__st32(dst + 4, nn__pack_hi(ve, ue));
                    nn__st32(dst + 6, nn__pack_hi(vo, uo));
                }
                for (; i < w; i++, dst += 2) {
                    dst[0] = (int16_t)((int32_t)s0[i] - zx);
                    dst[1] = (int16_t)(on1 ? (int32_t)s1[i] - zx : 0);
                }
            } else {                               /* one plane: four positions, two words */
                for (; i + 4 <= w; i += 4, dst += 4) {
                    uint32_t ve, vo;
                    nn__centre4(nn__ld32(s0 + i), nz, &ve, &vo);
                    nn__st32(dst, nn__pack_lo(ve, vo));
                    nn__st32(dst + 2, nn__pack_hi(ve, vo));
                }
                for (; i < w; i++) *dst++ = (int16_t)((int32_t)s0[i] - zx);
            }
        }
    }
}

int32_t nn__conv_u8_taps(const nn__q15_layout *l, const nn__conv_u8_sel *sel, int32_t nj, int32_t ni,
                         int32_t sign, int32_t wc, int32_t wj, int32_t wi, int32_t *off, int32_t *wlo, int32_t *whi) {
    const nn__q15_layout L = *l;                               /* locals: the stores below may alias */
    const uint8_t *active = sel->active;
    const int32_t c = sel->c, n = sel->n, dy = 2 * sign * L.ys, dx = 2 * sign * L.xs;   /* bytes per row, column */
    int32_t t = 0;
    for (int32_t ch = 0, a = nn__conv_u8_next(active, c, 0); ch < n; ch += 1 + L.pairs) {
        const int32_t b = L.pairs ? nn__conv_u8_next(active, c, a + 1) : a;  /* source channels of ch, ch + 1 */
        const int32_t dk = b < c ? (b - a) * wc : -1;                    /* -1: the empty channel, weight 0 */
        const int32_t o0 = 2 * nn__q15_at(&L, ch, 0, 0);
#pragma clang loop unroll(disable)
        for (int32_t j = 0; j < nj; j++) {
            const int32_t oj = o0 + j * dy, kj = a * wc + j * wj;
            if (L.pairs) {                                         /* (ch, ch + 1) side by side */
#pragma clang loop unroll(disable) vectorize(disable)
                for (int32_t i = 0; i < ni; i++, t++) {
                    off[t] = oj + i * dx;
                    wlo[t] = kj + i * wi;
                    whi[t] = dk < 0 ? -1 : kj + i * wi + dk;
                }
                continue;
            }
#pragma clang loop unroll(disable)
            for (int32_t i = 0; i < ni; i += 2, t++) {
                const int32_t k = kj + i * wi;                     /* weight index of tap (a, j, i) */
                if (i + 1 == ni) {                                 /* the odd tap of a row, alone */
                    off[t] = oj + i * dx;
                    wlo[t] = k;
                    whi[t] = -1;
                } else {                                           /* (i, i + 1): the lower address first */
                    off[t] = oj + (sign > 0 ? i : i + 1) * dx;
                    wlo[t] = sign > 0 ? k : k + wi;
                    whi[t] = sign > 0 ? k + wi : k;
                }
            }
        }
        a = nn__conv_u8_next(active, c, b + 1);
    }
    return t;
}

void nn__conv_u8_pack(const uint8_t *w, int32_t zw, int32_t row_stride, int32_t rows, const int32_t *wlo,
                      const int32_t *whi, int32_t np, uint32_t *wq) {
    for (int32_t o = 0; o < rows; o++, w += row_stride) {
        const int32_t paired = (o | 1) < rows, step = paired ? 2 : 1;   /* rows (2k, 2k + 1) interleaved */
        uint32_t *dst = wq + o * np - (paired ? (o & 1) * (np - 1) : 0);
        for (int32_t t = 0; t < np; t++, dst += step) {
            const int32_t lo = (int32_t)w[wlo[t]] - zw, hi = whi[t] < 0 ? 0 : (int32_t)w[whi[t]] - zw;
            *dst = ((uint32_t)lo & 0xFFFFu) | ((uint32_t)hi << 16);
        }
    }
}

/* Step k of a pass of two rows x two positions: the tap pair's offset, the rows' weight pairs, the two
 * positions' input words (five loads back to back: LDR pipelining; immediate offsets, as a load whose
 * base the previous load wrote back is not pipelined), four SMLAD. */
#define NN__PAIRS_STEP(k)                                                                                   \
    "ldr %[o], [%[off], #" #k "*4]\n\t"                                                                     \
    "ldr %[a], [%[w], #" #k "*8]\n\t"                                                                       \
    "ldr %[b], [%[w], #" #k "*8+4]\n\t"                                                                     \
    "ldr %[x0], [%[xb], %[o]]\n\t"                                                                          \
    "ldr %[x1], [%[xb1], %[o]]\n\t"                                                                         \
    "smlad %[s00], %[a], %[x0], %[s00]\n\t"                                                                 \
    "smlad %[s01], %[a], %[x1], %[s01]\n\t"                                                                 \
    "smlad %[s10], %[b], %[x0], %[s10]\n\t"                                                                 \
    "smlad %[s11], %[b], %[x1], %[s11]\n\t"

/* The same for one row x two positions (a layer with one output channel). */
#define NN__PAIRS_STEP1(k)                                                                                  \
    "ldr %[o], [%[off], #" #k "*4]\n\t"                                                                     \
    "ldr %[a], [%[w], #" #k "*4]\n\t"                                                                       \
    "ldr %[x0], [%[xb], %[o]]\n\t"                                                                          \
    "ldr %[x1], [%[xb1], %[o]]\n\t"                                                                         \
    "smlad %[s00], %[a], %[x0], %[s00]\n\t"                                                                 \
    "smlad %[s01], %[a], %[x1], %[s01]\n\t"

/* A pass of four steps, then the offset and weight pointers advanced (wbytes: weight bytes per pass). */
#define NN__PAIRS_PASS(STEP, wbytes)                                                                        \
    ".p2align 2\n1:\n\t" STEP(0) STEP(1) STEP(2) STEP(3)                                                    \
    "adds %[off], #16\n\t"                                                                                 \
    "adds %[w], #" #wbytes "\n\t"                                                                           \
    "cmp %[off], %[end4]\n\t"                                                                              \
    "bne 1b"

/* R (1 or 2) rows x P (1 or 2) positions: s[r][p] = sum_t SMLAD(weight pair t of row r, word at
 * xp + off[t]) with xp = xb0, xb1 for the positions, written to accp[r * stride]; w: the rows' pairs (two
 * rows interleaved). Constant R and P after inlining. Two positions of one or two rows run four steps per
 * pass in assembly (clang's unrolled C spilled the sums); the rest one step per pass, not unrolled. */
static inline __attribute__((always_inline)) void nn__pairs_block(const uint8_t *xb, const uint8_t *xb1,
                                                                  const int32_t *off, int32_t np,
                                                                  const uint32_t *w, const int32_t R,
                                                                  const int32_t P, int32_t *acc0,
                                                                  int32_t *acc1, int32_t stride) {
    int32_t s00 = 0, s01 = 0, s10 = 0, s11 = 0;
    const int32_t *end = off + np;
    if (R == 2 && P == 2 && np >= 4) {          /* the hot case: four steps per pass, in registers */
        const int32_t *end4 = off + (np & ~3);
        int32_t o, x0, x1;
        uint32_t a, b;
        __asm__ volatile(NN__PAIRS_PASS(NN__PAIRS_STEP, 32)
            : [s00] "+r"(s00), [s01] "+r"(s01), [s10] "+r"(s10), [s11] "+r"(s11), [off] "+r"(off), [w] "+r"(w),
              [o] "=&r"(o), [a] "=&r"(a), [b] "=&r"(b), [x0] "=&r"(x0), [x1] "=&r"(x1)
            : [end4] "r"(end4), [xb] "r"(xb), [xb1] "r"(xb1)
            : "cc", "memory");
    }
    if (R == 1 && P == 2 && np >= 4) {
        const int32_t *end4 = off + (np & ~3);
        int32_t o, x0, x1;
        uint32_t a;
        __asm__ volatile(NN__PAIRS_PASS(NN__PAIRS_STEP1, 16)
            : [s00] "+r"(s00), [s01] "+r"(s01), [off] "+r"(off), [w] "+r"(w), [o] "=&r"(o), [a] "=&r"(a),
              [x0] "=&r"(x0), [x1] "=&r"(x1)
            : [end4] "r"(end4), [xb] "r"(xb), [xb1] "r"(xb1)
            : "cc", "memory");
    }
#pragma clang loop unroll(disable)
    while (off < end) {
        const int32_t o = *off++;
        const uint32_t a = *w++;
        const uint32_t x0 = nn__ld32(xb + o);
        s00 = __smlad(a, x0, s00);
        if (P == 2) {
            const uint32_t x1 = nn__ld32(xb1 + o);
            s01 = __smlad(a, x1, s01);
            if (R == 2) {
                const uint32_t b = *w++;
                s10 = __smlad(b, x0, s10);
                s11 = __smlad(b, x1, s11);
            }
        } else if (R == 2) {
            const uint32_t b = *w++;
            s10 = __smlad(b, x0, s10);
        }
    }
    acc0[0] = s00;
    if (P == 2) acc1[0] = s01;
    if (R == 2) acc0[stride] = s10;
    if (R == 2 && P == 2) acc1[stride] = s11;
}

void nn__conv_u8_pairs_rows(const int16_t *xa, const int16_t *xb, int32_t nr, int32_t step, int32_t npos,
                            const int32_t *off, int32_t np, const uint32_t *wq, int32_t rows, int32_t *acc) {
    const int32_t sb = 2 * step, total = nr * npos;
    int32_t q = 0;
    for (; q < total; q += 2) {                                /* positions q, q + 1 (possibly across rows) */
        const int32_t i0 = q >= npos, i1 = q + 1 >= npos, k0 = q - i0 * npos, k1 = q + 1 - i1 * npos;
        const uint8_t *x0 = (const uint8_t *)(i0 ? xb : xa) + k0 * sb;
        const uint8_t *x1 = (const uint8_t *)(i1 ? xb : xa) + k1 * sb;
        int32_t *a0 = acc + i0 * rows * npos + k0, *a1 = acc + i1 * rows * npos + k1;
        int32_t o = 0;
        if (q + 1 < total) {
            for (; o + 2 <= rows; o += 2)
                nn__pairs_block(x0, x1, off, np, wq + o * np, 2, 2, a0 + o * npos, a1 + o * npos, npos);
            if (o < rows) nn__pairs_block(x0, x1, off, np, wq + o * np, 1, 2, a0 + o * npos, a1 + o * npos, npos);
        } else {                                               /* an odd last position */
            for (; o + 2 <= rows; o += 2)
                nn__pairs_block(x0, x0, off, np, wq + o * np, 2, 1, a0 + o * npos, a0 + o * npos, npos);
            if (o < rows) nn__pairs_block(x0, x0, off, np, wq + o * np, 1, 1, a0 + o * npos, a0 + o * npos, npos);
        }
    }
}

/* ---- strided integer core ------------------------------------------------------------------- */
/* Output channels are taken in groups of G (all of them unless their packed rows would pass
 * NN_CONV_U8_ROW_BYTES). work: the sums of two output rows acc [2][G][out_w] int32, the group's packed
 * weight pairs [G][np] words, the tap pairs' offsets and weight indices [3][np] int32, then the
 * centred copy of the input with a border of 0 (nn__conv_u8_centre; rows in_h + pad + bottom, columns
 * in_w + pad + right), so that the taps need no bounds checks. Two output positions by two channels
 * per pass, pairs running across the two rows when out_w is odd (nn__conv_u8_pairs_rows). */
static inline int32_t nn__strided_far(int32_t out, int32_t s, int32_t pad, int32_t k, int32_t in) {
    const int32_t m = (out - 1) * s - pad + k - in;             /* rows / columns beyond the input */
    return m > 0 ? m : 0;
}

/* Output channels per pass: all of them, unless their packed rows would pass NN_CONV_U8_ROW_BYTES. */
static inline int32_t nn__strided_group(int32_t out_c, int32_t np) {
    const int32_t g = NN_CONV_U8_ROW_BYTES / (4 * np);
    return g < 1 ? 1 : (g < out_c ? g : out_c);
}

int32_t nn__conv_u8_strided_work_size(const nn_conv_dims *d) {
    const int32_t np = nn__npairs(d->in_c, d->k_h, d->k_w), g = nn__strided_group(d->out_c, np);
    const int32_t hp = d->in_h + d->pad + nn__strided_far(d->out_h, d->stride, d->pad, d->k_h, d->in_h);
    const int32_t wp = d->in_w + d->pad + nn__strided_far(d->out_w, d->stride, d->pad, d->k_w, d->in_w);
    return g * (4 * np + 8 * d->out_w) + 12 * np + nn__q15_bytes(d->in_c, hp, wp);
}

void nn__conv_u8_strided(const uint8_t *x, int32_t zx, const uint8_t *w, int32_t zw, const nn_conv_dims *d,
                         const uint8_t *in_active, nn__conv_u8_out *out, int32_t *work) {
    const int32_t in_c = d->in_c, out_c = d->out_c, out_h = d->out_h, out_w = d->out_w, kh = d->k_h,
                  kw = d->k_w, s = d->stride, pad = d->pad;
    const int32_t n = in_c * kh * kw, npmax = nn__npairs(in_c, kh, kw), plane = out_h * out_w;
    const int32_t group = nn__strided_group(out_c, npmax);
    const int32_t hp = d->in_h + pad + nn__strided_far(out_h, s, pad, kh, d->in_h);
    const int32_t wp = d->in_w + pad + nn__strided_far(out_w, s, pad, kw, d->in_w);
    int32_t *acc = work;
    uint32_t *wq = (uint32_t *)(acc + 2 * group * out_w);
    int32_t *off = (int32_t *)(wq + group * npmax), *wlo = off + npmax, *whi = wlo + npmax;
    int16_t *xq = (int16_t *)(whi + npmax);
    const nn__conv_u8_sel sel = nn__conv_u8_select(in_active, in_c, kh, kw);
    const nn__q15_layout l = nn__conv_u8_layout(sel.n, hp, wp);
    nn__conv_u8_centre(x, &sel, d->in_h, d->in_w, pad, pad, hp, wp, zx, xq);
    const int32_t np = nn__conv_u8_taps(&l, &sel, kh, kw, 1, kh * kw, kw, 1, off, wlo, whi);
    for (int32_t o0 = 0; o0 < out_c; o0 += group) {
        const int32_t g = out_c - o0 < group ? out_c - o0 : group;
        nn__conv_u8_pack(w + o0 * n, zw, n, g, wlo, whi, np, wq);
        for (int32_t oy = 0; oy < out_h; oy += 2) {                /* two output rows per pass */
            const int32_t nr = oy + 1 < out_h ? 2 : 1;
            const int16_t *xa = xq + oy * s * l.ys;
            nn__conv_u8_pairs_rows(xa, xa + s * l.ys, nr, s * l.xs, out_w, off, np, wq, g, acc);
            for (int32_t i = 0; i < nr; i++)
                nn__conv_u8_emit(out, acc + i * g * out_w, o0, g, out_w, (oy + i) * out_w, 1, plane);
        }
    }
}

/* ---- output stages ---------------------------------------------------------------------------- */
/* One output t: its range tracked, y = usat8(((t * mult + 2^31) >> 32 + rnd) >> shift + zy) (SMMLAR adds
 * rnd << 32: nn_requant_u8), stored, y advanced by step. The loops are assembly: in C the sixteen live
 * values spilled to the stack on every output. */
#define NN__EMIT_ONE                                                                                        \
    "cmp %[t], %[imin]\n\t"                                                                                 \
    "it lt\n\t"                                                                                             \
    "movlt %[imin], %[t]\n\t"                                                                               \
    "cmp %[t], %[imax]\n\t"                                                                                 \
    "it gt\n\t"                                                                                             \
    "movgt %[imax], %[t]\n\t"                                                                               \
    "smmlar %[t], %[t], %[mult], %[rnd]\n\t"                                                                \
    "asr %[t], %[t], %[shift]\n\t"                                                                          \
    "add %[t], %[t], %[zy]\n\t"                                                                             \
    "usat %[t], #8, %[t]\n\t"                                                                               \
    "strb %[t], [%[y]]\n\t"                                                                                 \
    "add %[y], %[y], %[step]\n\t"                                                                           \
    "cmp %[a], %[end]\n\t"                                                                                  \
    "bne 1b"
#define NN__EMIT_OPERANDS                                                                                   \
    [t] "=&r"(t), [a] "+r"(a), [y] "+r"(y), [imin] "+r"(imin), [imax] "+r"(imax)
#define NN__EMIT_INPUTS                                                                                     \
    [end] "r"(end), [mult] "r"(rq.mult), [rnd] "r"((1 << rq.shift) >> 1), [shift] "r"(rq.shift), [zy] "r"(zy), \
        [step] "r"(step)

void nn__conv_u8_emit(nn__conv_u8_out *out, const int32_t *acc, int32_t o0, int32_t rows, int32_t npos,
                      int32_t pos0, int32_t step, int32_t plane) {
    const nn_requant rq = out->rq;                                 /* locals: the uint8 stores may alias out */
    const int32_t zy = out->zy, zmask = out->zmask;
    int32_t imin = out->imin, imax = out->imax, t;
    if (npos <= 0) return;
    for (int32_t o = o0; o < o0 + rows; o++) {
        const int32_t *a = acc + (o - o0) * npos, *end = a + npos;
        const int32_t base = o * plane + pos0;
        uint8_t *y = out->y + base;
        if (out->bias && out->relu) {                              /* forward: bias, ReLU */
            __asm__ volatile(".p2align 2\n1:\n\t"
                             "ldr %[t], [%[a]], #4\n\t"
                             "add %[t], %[t], %[b]\n\t"
                             "bic %[t], %[t], %[t], asr #31\n\t" NN__EMIT_ONE
                             : NN__EMIT_OPERANDS
                             : NN__EMIT_INPUTS, [b] "r"(out->bias[o])
                             : "cc", "memory");
        } else if (out->bias) {                                    /* forward: bias */
            __asm__ volatile(".p2align 2\n1:\n\t"
                             "ldr %[t], [%[a]], #4\n\t"
                             "add %[t], %[t], %[b]\n\t" NN__EMIT_ONE
                             : NN__EMIT_OPERANDS
                             : NN__EMIT_INPUTS, [b] "r"(out->bias[o])
                             : "cc", "memory");
        } else if (out->mask) {                                    /* error: t = 0 where the x mask <= zmask */
            int32_t m;
            __asm__ volatile(".p2align 2\n1:\n\t"
                             "ldr %[t], [%[a]], #4\n\t"
                             "ldrb %[m], [%[y], %[d]]\n\t"
                             "cmp %[m], %[zm]\n\t"
                             "it ls\n\t"
                             "movls %[t], #0\n\t" NN__EMIT_ONE
                             : NN__EMIT_OPERANDS, [m] "=&r"(m)
                             : NN__EMIT_INPUTS, [d] "r"(out->mask - out->y), [zm] "r"(zmask)
                             : "cc", "memory");
        } else {                                                   /* error, no mask */
            __asm__ volatile(".p2align 2\n1:\n\t"
                             "ldr %[t], [%[a]], #4\n\t" NN__EMIT_ONE
                             : NN__EMIT_OPERANDS
                             : NN__EMIT_INPUTS
                             : "cc", "memory");
        }
    }
    out->imin = imin;
    out->imax = imax;
}

void nn__conv_u8_out_forward(nn__conv_u8_out *out, float unit, const uint8_t *b, const nn_qparams *qb, uint8_t *y,
                             const nn_qparams *qy, int32_t out_c, int32_t relu, int32_t *bias_out) {
    const float ratio = qb->scale / unit;
    for (int32_t o = 0; o < out_c; o++) bias_out[o] = nn_bias_units(b[o], qb->zero_point, ratio);
    *out = (nn__conv_u8_out){.rq = nn_requant_make(unit / qy->scale), .zy = qy->zero_point, .relu = relu,
                             .unit = unit, .bias = bias_out, .y = y, .imin = NN_RANGE_EMPTY_MIN,
                             .imax = NN_RANGE_EMPTY_MAX};
}

void nn__conv_u8_out_error(nn__conv_u8_out *out, float unit, uint8_t *ex, const nn_qparams *qex, const uint8_t *x,
                           const nn_qparams *qx) {
    *out = (nn__conv_u8_out){.rq = nn_requant_make(unit / qex->scale), .zy = qex->zero_point,
                             .zmask = (x && qx) ? qx->zero_point : 0, .unit = unit, .mask = x, .y = ex,
                             .imin = NN_RANGE_EMPTY_MIN, .imax = NN_RANGE_EMPTY_MAX};
}

void nn__conv_u8_finish(const nn__conv_u8_out *out, nn_qparams *q, float alpha) {
    nn_range_observe(q, out->imin, out->imax, out->unit, alpha);
}

/* ---- conv2d --------------------------------------------------------------------------------- */
int32_t conv2d_u8_forward_buffer_size(const nn_conv_dims *d) {
    return d->out_c * 4 + nn__conv_u8_strided_work_size(d);           /* the integer biases, the core */
}

void conv2d_u8_forward(const uint8_t *x, const nn_qparams *qx, const uint8_t *w, const nn_qparams *qw,
                       const uint8_t *b, const nn_qparams *qb, uint8_t *y, nn_qparams *qy,
                       const nn_conv_dims *d, int32_t relu, float alpha, int32_t *scratch) {
    nn__conv_u8_out out;
    nn__conv_u8_out_forward(&out, qw->scale * qx->scale, b, qb, y, qy, d->out_c, relu, scratch);
    nn__conv_u8_strided(x, qx->zero_point, w, qw->zero_point, d, 0, &out, scratch + d->out_c);
    nn__conv_u8_finish(&out, qy, alpha);
}

/* The adjoint of the strided convolution is the transposed one on the swapped geometry; the weights
 * [oc][ic][kh][kw] are exactly its [in][out][kh][kw] layout. Inactive oc count as zero error. */
int32_t conv2d_u8_backward_input_buffer_size(const nn_conv_dims *d) {
    const nn_conv_dims t = nn__conv_dims_swap(d);
    return nn__conv_u8_transposed_work_size(&t);
}

void conv2d_u8_backward_input(const uint8_t *w, const nn_qparams *qw, const uint8_t *e, const nn_qparams *qe,
                              uint8_t *ex, nn_qparams *qex, const uint8_t *x, const nn_qparams *qx,
                              const nn_conv_dims *d, const uint8_t *active, float alpha, int32_t *scratch) {
    const nn_conv_dims t = nn__conv_dims_swap(d);
    nn__conv_u8_out out;
    nn__conv_u8_out_error(&out, qw->scale * qe->scale, ex, qex, x, qx);
    nn__conv_u8_transposed(e, qe->zero_point, w, qw->zero_point, &t, active, &out, scratch);
    nn__conv_u8_finish(&out, qex, alpha);
}

/* ---- weight gradients shared by both backward_weight kernels ----------------------------------- */
/* s[r][j] = sum over n (even) int16 of a_r * b_j, two rows by two planes: four words of each per pass
 * in assembly (per word four loads back to back, LDR pipelining, then four SMLAD; clang's unrolled C
 * spilled the sums), the last words in C. */
#define NN__DOT22_STEP                                                                                      \
    "ldr %[x], [%[p0]], #4\n\t"                                                                             \
    "ldr %[y], [%[p1]], #4\n\t"                                                                             \
    "ldr %[u], [%[q0]], #4\n\t"                                                                             \
    "ldr %[v], [%[q1]], #4\n\t"                                                                             \
    "smlad %[s00], %[x], %[u], %[s00]\n\t"                                                                  \
    "smlad %[s01], %[x], %[v], %[s01]\n\t"                                                                  \
    "smlad %[s10], %[y], %[u], %[s10]\n\t"                                                                  \
    "smlad %[s11], %[y], %[v], %[s11]\n\t"

static inline void nn__dot22_i16(const int16_t *a0, const int16_t *a1, const int16_t *b0, const int16_t *b1,
                                 int32_t n, int32_t *s) {
    const uint32_t *p0 = (const uint32_t *)a0, *p1 = (const uint32_t *)a1, *q0 = (const uint32_t *)b0,
                   *q1 = (const uint32_t *)b1;
    int32_t s00 = 0, s01 = 0, s10 = 0, s11 = 0;
    const uint32_t *end = p0 + (n >> 1);
    if (n >= 8) {
        const uint32_t *end4 = p0 + ((n >> 3) << 2);
        uint32_t x, y, u, v;
        __asm__ volatile(
            ".p2align 2\n1:\n\t"
            NN__DOT22_STEP NN__DOT22_STEP NN__DOT22_STEP NN__DOT22_STEP
            "cmp %[p0], %[end4]\n\t"
            "bne 1b"
            : [s00] "+r"(s00), [s01] "+r"(s01), [s10] "+r"(s10), [s11] "+r"(s11), [p0] "+r"(p0), [p1] "+r"(p1),
              [q0] "+r"(q0), [q1] "+r"(q1), [x] "=&r"(x), [y] "=&r"(y), [u] "=&r"(u), [v] "=&r"(v)
            : [end4] "r"(end4)
            : "cc", "memory");
    }
#pragma clang loop unroll(disable)
    while (p0 < end) {
        const uint32_t x = *p0++, y = *p1++, u = *q0++, v = *q1++;
        s00 = __smlad(x, u, s00);
        s01 = __smlad(x, v, s01);
        s10 = __smlad(y, u, s10);
        s11 = __smlad(y, v, s11);
    }
    s[0] = s00;
    s[1] = s01;
    s[2] = s10;
    s[3] = s11;
}

/* The plane of tap offset src (gh x gw positions, stride s, row pitch wp) into dst. */
static void nn__gather_plane(const int16_t *src, int32_t gh, int32_t gw, int32_t s, int32_t wp, int16_t *dst) {
    for (int32_t y = 0; y < gh; y++, src += s * wp) {
        const int16_t *p = src;
#pragma GCC unroll 2
        for (int32_t x = 0; x < gw; x++, p += s) *dst++ = *p;
    }
}

void nn__conv_u8_grad(const int16_t *rows, int32_t nrows, int32_t pe, const int16_t *src, int32_t nc,
                      int32_t cstep, int32_t kh, int32_t kw, int32_t gh, int32_t gw, int32_t s, int32_t wp,
                      const int32_t *rbase, const nn_requant *rq, int16_t *g, int16_t *planes) {
    const int32_t kk = kh * kw, ntaps = nc * kk;
    int16_t *b0 = planes, *b1 = planes + pe;
    if (pe > gh * gw) b0[gh * gw] = b1[gh * gw] = 0;
    for (int32_t t = 0; t < ntaps; t += 2) {
        const int32_t pair = t + 1 < ntaps;                     /* an odd last tap runs against itself */
        for (int32_t j = 0; j <= pair; j++) {
            const int32_t u = t + j, r = u % kk;
            nn__gather_plane(src + (u / kk) * cstep + (r / kw) * wp + r % kw, gh, gw, s, wp, j ? b1 : b0);
        }
        for (int32_t k = 0; k < nrows; k += 2) {
            const int32_t k1 = k + 1 < nrows ? k + 1 : k;       /* an odd last row runs against itself */
            int32_t i[4];
            nn__dot22_i16(rows + k * pe, rows + k1 * pe, b0, pair ? b1 : b0, pe, i);
            for (int32_t rr = 0; rr <= k1 - k; rr++)
                for (int32_t j = 0; j <= pair; j++) {
                    int16_t *gk = g + rbase[k + rr] + t + j;
                    *gk = (int16_t)nn_sat16(*gk + nn_requant_apply(i[2 * rr + j], rq[k + rr]));
                }
        }
    }
}

/* work: the errors (e - ze) of the active channels as int16 rows [n_active][P] (P = out_h*out_w rounded
 * up to even), two gathered input planes int16 [2][P], the gradient offset [out_c] int32 and the
 * requantization [out_c] of each active row, then the input as int16 (x - zx) with a border of 0
 * [in_c][in_h + pad + bottom][in_w + pad + right]. Per two taps (ic, kh, kw) the planes of inputs they
 * meet (x - zx, 0 at padding) are gathered once and dotted with every active oc, two by two
 * (nn__conv_u8_grad). */
int32_t conv2d_u8_backward_weight_buffer_size(const nn_conv_dims *d) {
    const int32_t pe = (d->out_h * d->out_w + 1) & ~1;
    const int32_t hp = d->in_h + d->pad + nn__strided_far(d->out_h, d->stride, d->pad, d->k_h, d->in_h);
    const int32_t wp = d->in_w + d->pad + nn__strided_far(d->out_w, d->stride, d->pad, d->k_w, d->in_w);
    return (d->out_c + 2) * pe * 2 + d->out_c * (4 + (int32_t)sizeof(nn_requant)) +
           nn__align4(d->in_c * hp * wp * 2);
}

void conv2d_u8_backward_weight(const uint8_t *x, const nn_qparams *qx, const uint8_t *e, const nn_qparams *qe,
                               int16_t *gw, const float *sgw, int16_t *gb, const float *sgb,
                               const nn_conv_dims *d, const uint8_t *active, int32_t *scratch) {
    const int32_t in_c = d->in_c, in_h = d->in_h, in_w = d->in_w, out_c = d->out_c, out_h = d->out_h,
                  out_w = d->out_w, kh = d->k_h, kw = d->k_w, s = d->stride, pad = d->pad;
    const int32_t plane = out_h * out_w, pe = (plane + 1) & ~1, in_plane = in_h * in_w;
    const int32_t zx = qx->zero_point, ze = qe->zero_point, stride_o = in_c * kh * kw;
    const int32_t hp = in_h + pad + nn__strided_far(out_h, s, pad, kh, in_h);
    const int32_t wp = in_w + pad + nn__strided_far(out_w, s, pad, kw, in_w), cstep = hp * wp;
    const float unit = qe->scale * qx->scale;
    int16_t *de = (int16_t *)scratch, *planes = de + out_c * pe;
    int32_t *rbase = (int32_t *)(planes + 2 * pe);
    nn_requant *rq = (nn_requant *)(rbase + out_c);       /* the requantization of each active row */
    int16_t *xp = (int16_t *)(rq + out_c);
    int32_t na = 0;
    for (int32_t o = 0; o < out_c; o++) {
        if (active && !active[o]) continue;
        int16_t *r = de + na * pe;
        const uint8_t *eo = e + o * plane;
        int32_t sum = 0;
        for (int32_t p = 0; p < plane; p++) {
            const int32_t v = (int32_t)eo[p] - ze;
            r[p] = (int16_t)v;
            sum += v;
        }
        if (pe > plane) r[plane] = 0;
        gb[o] = (int16_t)nn_sat16(gb[o] + nn_round_scaled(sum, qe->scale * nn_grad_inverse(sgb[o])));
        rq[na] = nn_requant_make(unit * nn_grad_inverse(sgw[o]));
        rbase[na++] = o * stride_o;
    }
    if (na == 0) return;
    for (int32_t i = 0; i < in_c * cstep; i++) xp[i] = 0;
    for (int32_t c = 0; c < in_c; c++)
        for (int32_t iy = 0; iy < in_h; iy++) {
            int16_t *dst = xp + c * cstep + (iy + pad) * wp + pad;
            const uint8_t *src = x + c * in_plane + iy * in_w;
            for (int32_t ix = 0; ix < in_w; ix++) dst[ix] = (int16_t)((int32_t)src[ix] - zx);
        }
    nn__conv_u8_grad(de, na, pe, xp, in_c, cstep, kh, kw, out_h, out_w, s, wp, rbase, rq, gw, planes);
}
