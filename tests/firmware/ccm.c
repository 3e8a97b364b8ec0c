/* Uses the STM32F407's CCM: a buffer placed in .ccm, and an attempt to run code from CCM. */
#include <stdint.h>

static uint32_t table[1024] __attribute__((section(".ccm")));

uint32_t ccm_fill_and_sum(uint32_t n) {
    for (uint32_t i = 0; i < n; i++) table[i] = i * 3u;
    uint32_t s = 0;
    for (uint32_t i = 0; i < n; i++) s += table[i];
    return s;
}

uint32_t ccm_address(void) { return (uint32_t)(uintptr_t)table; }

/* Copy a Thumb `bx lr` into CCM and call it: the core cannot fetch instructions from CCM. */
uint32_t run_from_ccm(void) {
    table[0] = 0x4770u;                          /* bx lr */
    uint32_t (*fn)(void) = (uint32_t (*)(void))((uintptr_t)table | 1u);
    return fn();
}
