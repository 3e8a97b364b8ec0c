/* Small functions with known results, for the emulator tests. */
#include "mcusim.h"

int add_int(int a, int b) { return a + b; }
unsigned add_unsigned(unsigned a, unsigned b) { return a + b; }
float affine(float x, float w, float b) { return x * w + b; }
int many_args(int a, int b, int c, int d, int e, int f) { return a + 2 * b + 3 * c + 4 * d + 5 * e + 6 * f; }
float mixed(int a, float x, int b, float y) { return (float)a * x + (float)b * y; }

int32_t dot_s8(const int8_t *a, const int8_t *b, int n) {
    int32_t s = 0;
    for (int i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

void matvec_f32(const float *w, const float *x, float *y, int rows, int cols) {
    for (int r = 0; r < rows; r++) {
        float acc = 0.0f;
        for (int c = 0; c < cols; c++) acc += w[r * cols + c] * x[c];
        y[r] = acc;
    }
}

__attribute__((noinline)) int32_t work(int n) {
    int32_t s = 0;
    for (int i = 0; i < n; i++) s += i * i;
    return s;
}

/* Time work(n) with the DWT cycle counter, as firmware on the chip would. */
__attribute__((noinline)) uint32_t time_work(int n) {
    mcusim_cycles_enable();
    uint32_t t0 = mcusim_cycles();
    volatile int32_t r = work(n);
    uint32_t t1 = mcusim_cycles();
    (void)r;
    return t1 - t0;
}

int uses_stack(int n) {
    volatile uint8_t buf[1000];
    for (int i = 0; i < 1000; i++) buf[i] = (uint8_t)(i + n);
    return buf[n % 1000];
}

int counter = 41;
int bump(void) { return ++counter; }

void hello(void) { mcusim_puts("hello from the M4\n"); }

uint32_t cpuid(void) { return *(volatile uint32_t *)0xE000ED00u; }
