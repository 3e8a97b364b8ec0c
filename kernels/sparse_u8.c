/* sparse_u8.c: dynamic sparse updates for the uint8 training kernels (see nn.h): per sample and
 * layer, choose the top-k structures (Gemm rows / conv output channels) by error magnitude.
 * Twin: mcusim/ops/sparse_u8.py, bit-exact.
 *
 * Selection: find the k-th largest magnitude T and how many structures equal to T are still needed
 * (`need`); one final pass marks every mag > T and the first `need` structures with mag == T (lower
 * index first). size 1 (Gemm rows): mag = |e - ze| < 256, one 256-bin histogram built 4 rows per word
 * (UQSUB8 / USADA8), and the marking pass also works on words. Otherwise mag (USADA8 sums) goes to
 * scratch; <= 16 structures are ranked directly (O(N^2), tiny N), more by an MSD radix select
 * (8-bit digits, a 256-bin histogram per digit, O(N) per digit). */
#include <arm_acle.h>
#include "nn.h"

#define NN_SPARSE_BINS 256

static inline uint32_t nn__load32_sp(const uint8_t *p) {
    uint32_t v;
    __builtin_memcpy(&v, p, 4);          /* the M4 allows unaligned LDR */
    return v;
}

int32_t sparse_select_u8_buffer_size(int32_t structures) {
    return 4 * ((structures > 0 ? structures : 0) + NN_SPARSE_BINS);
}

/* sum |a[i] - z| over n bytes: USADA8 against z replicated in the four lanes. */
static int32_t nn__sad_u8(const uint8_t *a, int32_t n, uint32_t z4) {
    uint32_t s = 0;
    int32_t i = 0;
    for (; i + 16 <= n; i += 16) {
        s = __usada8(nn__load32_sp(a + i), z4, s);
        s = __usada8(nn__load32_sp(a + i + 4), z4, s);
        s = __usada8(nn__load32_sp(a + i + 8), z4, s);
        s = __usada8(nn__load32_sp(a + i + 12), z4, s);
    }
    for (; i + 4 <= n; i += 4) s = __usada8(nn__load32_sp(a + i), z4, s);
    int32_t z = (int32_t)(z4 & 0xFFu);
    for (; i < n; i++) {
        int32_t d = (int32_t)a[i] - z;
        s += (uint32_t)(d < 0 ? -d : d);
    }
    return (int32_t)s;
}

void sparse_select_u8(const uint8_t *e, const nn_qparams *qe, int32_t structures, int32_t size,
                      float lambda_min, float lambda_max, float *state, uint8_t *active, uint8_t *touched,
                      int32_t *scratch) {
    if (structures <= 0 || size <= 0) return;
    const int32_t n = structures;
    const int32_t ze = qe->zero_point;
    const uint32_t z4 = (uint32_t)(ze & 0xFF) * 0x01010101u;
    int32_t *mag = scratch;
    int32_t *hist = scratch + n;

    /* magnitudes, their total and maximum; with size 1 (Gemm rows) mag = |e - ze| < 256 is not
     * stored: its histogram (the only radix digit) is built here and the marking pass recomputes it */
    int32_t total = 0, mmax = 0;
    if (size == 1) {
        for (int32_t b = 0; b < NN_SPARSE_BINS; b += 4) {
            hist[b] = 0; hist[b + 1] = 0; hist[b + 2] = 0; hist[b + 3] = 0;
        }
        uint32_t mx4 = 0, tot = 0;
        int32_t s = 0;
        for (; s + 4 <= n; s += 4) {         /* four rows per word: UQSUB8 |e - ze|, USADA8 the sum */
            uint32_t e4 = nn__load32_sp(e + s);
            uint32_t m4 = __uqsub8(e4, z4) | __uqsub8(z4, e4);
            tot = __usada8(e4, z4, tot);
            mx4 = __uqadd8(mx4, __uqsub8(m4, mx4));          /* bytewise max */
            hist[m4 & 0xFF]++;
            hist[(m4 >> 8) & 0xFF]++;
            hist[(m4 >> 16) & 0xFF]++;
            hist[m4 >> 24]++;
        }
        total = (int32_t)tot;
        for (int32_t j = 0; j < 32; j += 8) {
            int32_t v = (int32_t)((mx4 >> j) & 0xFF);
            if (v > mmax) mmax = v;
        }
        for (; s < n; s++) {
            int32_t d = (int32_t)e[s] - ze;
            d = d < 0 ? -d : d;
            hist[d]++;
            total += d;
            if (d > mmax) mmax = d;
        }
    } else {
        for (int32_t s = 0; s < n; s++) {
            int32_t d = nn__sad_u8(e + s * size, size, z4);
            mag[s] = d;
            total += d;
            if (d > mmax) mmax = d;
        }
    }

    /* e_avg, e_max, k (float order as in nn.h) */
    float mean = (float)total / (float)(n * size);
    float e_avg = qe->scale * mean;
    if (e_avg > state[0]) state[0] = e_avg;
    float ratio = state[0] > 0.0f ? e_avg / state[0] : 1.0f;
    float t = lambda_max - lambda_min;
    t = ratio * t;
    t = lambda_min + t;
    t = t * (float)n;
    int32_t k;
    if (!(t >= 1.0f)) k = 1;
    else if (t >= (float)n) k = n;
    else k = (int32_t)t;
    state[1] = (float)k;
    state[2] = state[2] + (float)k;                 /* update-rate statistics, reset by the host */
    state[3] = state[3] + (float)structures;

    if (k >= n) {                        /* everything: no selection needed */
        for (int32_t s = 0; s < n; s++) { active[s] = 1; touched[s] = 1; }
        return;
    }

    int32_t need = k;
    if (size == 1) {
        int32_t d = mmax;                /* bins above the maximum are empty */
        for (; d > 0; d--) {
            int32_t c = hist[d];
            if (c >= need) break;
            need -= c;
        }
        /* four rows per word while no row equals the threshold (or none is needed any more):
         * gt = UQSUB8(m, d) is nonzero exactly where m > d, UQADD8 with 0x7F sets the top bit there */
        const uint32_t d4 = (uint32_t)d * 0x01010101u;
        int32_t s = 0;
        for (; s + 4 <= n; s += 4) {
            uint32_t e4 = nn__load32_sp(e + s);
            uint32_t m4 = __uqsub8(e4, z4) | __uqsub8(z4, e4);
            uint32_t gt = __uqsub8(m4, d4);
            uint32_t ne = gt | __uqsub8(d4, m4);
            uint32_t a4 = (__uqadd8(gt, 0x7F7F7F7Fu) >> 7) & 0x01010101u;
            uint32_t n4 = (__uqadd8(ne, 0x7F7F7F7Fu) >> 7) & 0x01010101u;
            if (n4 != 0x01010101u && need > 0) {     /* a row equal to the threshold: in index order */
                for (int32_t j = 0; j < 4; j++) {
                    if (((n4 >> (8 * j)) & 1u) == 0 && need > 0) { a4 |= 1u << (8 * j); need--; }
                }
            }
            uint32_t t4;
            __builtin_memcpy(&t4, touched + s, 4);
            t4 |= a4;
            __builtin_memcpy(touched + s, &t4, 4);
            __builtin_memcpy(active + s, &a4, 4);
        }
        for (; s < n; s++) {
            int32_t m = (int32_t)e[s] - ze;
            m = m < 0 ? -m : m;
            uint8_t a = 0;
            if (m > d) a = 1;
            else if (m == d && need > 0) { a = 1; need--; }
            active[s] = a;
            touched[s] |= a;
        }
        return;
    }

    if (n <= 16) {                       /* few structures (conv channels): rank each one directly */
        for (int32_t s = 0; s < n; s++) {
            const int32_t m = mag[s];
            int32_t rank = 0;
            for (int32_t j = 0; j < s; j++) rank += mag[j] >= m;
            for (int32_t j = s + 1; j < n; j++) rank += mag[j] > m;
            uint8_t a = rank < k ? 1 : 0;
            active[s] = a;
            touched[s] |= a;
        }
        return;
    }

    /* radix select of the k-th largest magnitude */
    int32_t shift = 0;
    while ((mmax >> shift) >= NN_SPARSE_BINS) shift += 8;
    int32_t prefix = 0, pmask = 0;
    for (;;) {
        for (int32_t b = 0; b < NN_SPARSE_BINS; b += 4) {
            hist[b] = 0; hist[b + 1] = 0; hist[b + 2] = 0; hist[b + 3] = 0;
        }
        if (pmask == 0) {
            for (int32_t s = 0; s < n; s++) hist[(mag[s] >> shift) & 0xFF]++;
        } else {
            for (int32_t s = 0; s < n; s++) {
                int32_t m = mag[s];
                if ((m & pmask) == prefix) hist[(m >> shift) & 0xFF]++;
            }
        }
        int32_t d = NN_SPARSE_BINS - 1;
        for (; d > 0; d--) {
            int32_t c = hist[d];
            if (c >= need) break;
            need -= c;
        }
        prefix |= d << shift;
        pmask |= 0xFF << shift;
        if (shift == 0) break;
        shift -= 8;
    }

    /* mark: everything above the threshold, then the first `need` equal to it */
    const int32_t thr = prefix;
    for (int32_t s = 0; s < n; s++) {
        int32_t m = mag[s];
        uint8_t a = 0;
        if (m > thr) a = 1;
        else if (m == thr && need > 0) { a = 1; need--; }
        active[s] = a;
        touched[s] |= a;
    }
}

void fill_u8(uint8_t *x, int32_t n, int32_t value) {
    const uint8_t v = (uint8_t)value;
    int32_t i = 0;
    while (i < n && ((uintptr_t)(x + i) & 3u)) x[i++] = v;
    uint32_t *w = (uint32_t *)(void *)(x + i);
    const uint32_t v4 = (uint32_t)v * 0x01010101u;
    int32_t words = (n - i) >> 2;
    for (int32_t j = 0; j < words; j++) w[j] = v4;
    i += words << 2;
    for (; i < n; i++) x[i] = v;
}
