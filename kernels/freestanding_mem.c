/* memcpy, memmove and memset for firmware linked without a C library (`--libc none`, and mcusim's own
 * kernels): compilers emit calls to these even in freestanding code. Linked only when no C library is,
 * so they never replace a library's; always compiled with -ffreestanding -fno-builtin (toolchain.py), so
 * the loops are not turned back into calls to themselves. Weak, so the firmware's own copies win. */
#include <stddef.h>
#include <stdint.h>

__attribute__((weak)) void *memcpy(void *d, const void *s, size_t n) {
    uint8_t *dp = d; const uint8_t *sp = s;
    while (n--) *dp++ = *sp++;
    return d;
}

__attribute__((weak)) void *memmove(void *d, const void *s, size_t n) {
    uint8_t *dp = d; const uint8_t *sp = s;
    if (dp < sp) while (n--) *dp++ = *sp++;
    else while (n--) dp[n] = sp[n];
    return d;
}

__attribute__((weak)) void *memset(void *d, int c, size_t n) {
    uint8_t *dp = d;
    while (n--) *dp++ = (uint8_t)c;
    return d;
}
