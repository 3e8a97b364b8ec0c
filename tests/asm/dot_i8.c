/* An int8 dot product with an int32 accumulator, the inner loop of a quantized dense layer.
 * Used by tests/test_timing_rules.py to check cycles per instruction on compiled code. */
#include <stdint.h>

int32_t dot_i8(const int8_t *a, const int8_t *b, int32_t n) {
    int32_t acc = 0;
    for (int32_t i = 0; i < n; i++)
        acc += (int32_t)a[i] * (int32_t)b[i];
    return acc;
}
