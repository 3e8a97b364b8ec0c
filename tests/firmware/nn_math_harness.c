/* Test harness for kernels/nn_math.c: loops over SRAM buffers so one emulator call covers many inputs. */
#include "nn.h"

void harness_expf(const float *x, float *y, int n) {
    for (int i = 0; i < n; i++) y[i] = nn_expf(x[i]);
}

void harness_logf(const float *x, float *y, int n) {
    for (int i = 0; i < n; i++) y[i] = nn_logf(x[i]);
}

void harness_sqrtf(const float *x, float *y, int n) {
    for (int i = 0; i < n; i++) y[i] = nn_sqrtf(x[i]);
}

void harness_rng_next(uint32_t *state, uint32_t *out, int n) {
    for (int i = 0; i < n; i++) out[i] = nn_rng_next(state);
}

void harness_rng_uniform(uint32_t *state, float *out, int n) {
    for (int i = 0; i < n; i++) out[i] = nn_rng_uniform(state);
}

void harness_rng_normal(uint32_t *state, float *out, int n) {
    for (int i = 0; i < n; i++) out[i] = nn_rng_normal(state);
}

/* Empty loop of the same shape, to subtract the harness overhead from cycles-per-call figures. */
void harness_empty(const float *x, float *y, int n) {
    for (int i = 0; i < n; i++) y[i] = x[i];
}
