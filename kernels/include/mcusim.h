/* mcusim.h: the one public header for firmware built with mcusim.
 * Device helpers that talk to the simulated Cortex-M4 system (cycle counter, character output).
 * Training-kernel prototypes are declared here too, one section per operator. */
#ifndef MCUSIM_H
#define MCUSIM_H

#include <stdint.h>
#include <stddef.h>

/* DWT cycle counter: the simulator returns its cycle model's count, as the chip returns real cycles. */
#define MCUSIM_DWT_CTRL   (*(volatile uint32_t *)0xE0001000u)
#define MCUSIM_DWT_CYCCNT (*(volatile uint32_t *)0xE0001004u)
#define MCUSIM_DEMCR      (*(volatile uint32_t *)0xE000EDFCu)

static inline void mcusim_cycles_enable(void) {
    MCUSIM_DEMCR |= 1u << 24;          /* TRCENA */
    MCUSIM_DWT_CYCCNT = 0;
    MCUSIM_DWT_CTRL |= 1u;             /* CYCCNTENA */
}

static inline uint32_t mcusim_cycles(void) { return MCUSIM_DWT_CYCCNT; }

/* ITM stimulus port 0: characters written here appear on the host's stdout. */
#define MCUSIM_ITM_PORT0 (*(volatile uint32_t *)0xE0000000u)

static inline void mcusim_putc(char c) {
    while (MCUSIM_ITM_PORT0 == 0) { }
    *(volatile uint8_t *)0xE0000000u = (uint8_t)c;
}

static inline void mcusim_puts(const char *s) {
    while (*s) mcusim_putc(*s++);
}

#endif /* MCUSIM_H */
