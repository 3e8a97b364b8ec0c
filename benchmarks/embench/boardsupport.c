/* Board support for Embench-IoT under mcusim (benchmarks/embench.py): the three hooks every Embench
 * benchmark's main() calls. The measured interval is read from DWT CYCCNT, as the baseline's STM32F4
 * board support does, and printed after stop_trigger so the printing is not measured. */
#include <stdint.h>
#include <stdio.h>

#define DWT_CTRL   (*(volatile uint32_t *)0xE0001000u)
#define DWT_CYCCNT (*(volatile uint32_t *)0xE0001004u)
#define DEMCR      (*(volatile uint32_t *)0xE000EDFCu)
#define DEMCR_TRCENA (1u << 24)
#define DWT_CYCCNTENA (1u << 0)

static uint32_t start_cycles;

void initialise_board(void) {
    DEMCR |= DEMCR_TRCENA;
    DWT_CYCCNT = 0;
}

void __attribute__((noinline)) start_trigger(void) {
    DWT_CTRL |= DWT_CYCCNTENA;
    start_cycles = DWT_CYCCNT;
}

void __attribute__((noinline)) stop_trigger(void) {
    uint32_t cycles = DWT_CYCCNT - start_cycles;
    DWT_CTRL &= ~DWT_CYCCNTENA;
    printf("embench cycles %lu\n", (unsigned long)cycles);
}
