/* Layer-sized matrix multiplies for the emulator speed benchmark: C[m][n] = A[m][k] * B[k][n]. */
#include <stdint.h>

void matmul_f32(const float *a, const float *b, float *c, int m, int k, int n) {
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            float acc = 0.0f;
            for (int p = 0; p < k; p++) acc += a[i * k + p] * b[p * n + j];
            c[i * n + j] = acc;
        }
}

void matmul_s8(const int8_t *a, const int8_t *b, int32_t *c, int m, int k, int n) {
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            int32_t acc = 0;
            for (int p = 0; p < k; p++) acc += a[i * k + p] * b[p * n + j];
            c[i * n + j] = acc;
        }
}
