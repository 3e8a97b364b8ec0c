/* Firmware that reads the core's peripherals as code on the chip would: SysTick, DWT CYCCNT, CCR. */
#include <stdint.h>
#include "mcusim.h"

#define SYST_CSR   (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR   (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR   (*(volatile uint32_t *)0xE000E018u)
#define SCB_CCR    (*(volatile uint32_t *)0xE000ED14u)
#define COUNTFLAG  (1u << 16)

static volatile uint32_t sink;

/* About 4 cycles per iteration of work the compiler cannot drop. */
__attribute__((noinline)) void spin(uint32_t n) {
    uint32_t s = 0;
    for (uint32_t i = 0; i < n; i++) s += i ^ (s >> 3);
    sink = s;
}

/* A SysTick timer that runs past 2^24 cycles: count wraps by polling COUNTFLAG between chunks of work
 * shorter than one period, then add what the counter ran down. Returns the elapsed core cycles. */
uint32_t systick_elapsed(uint32_t chunks, uint32_t chunk_iters) {
    SYST_RVR = 0xFFFFFFu;
    SYST_CVR = 0;
    SYST_CSR = 0x5u;                       /* ENABLE, processor clock, no interrupt */
    (void)SYST_CSR;                        /* clears a COUNTFLAG left from before */
    uint32_t start = SYST_CVR, wraps = 0;
    for (uint32_t c = 0; c < chunks; c++) {
        spin(chunk_iters);
        if (SYST_CSR & COUNTFLAG) wraps++;
    }
    uint32_t end = SYST_CVR;
    SYST_CSR = 0;
    return wraps * 0x1000000u + start - end;
}

/* COUNTFLAG: set by the wrap, cleared by the read of CSR that saw it; returns both reads as bits 0, 1. */
uint32_t countflag_clears_on_read(void) {
    SYST_RVR = 99;
    SYST_CVR = 0;
    SYST_CSR = 0x5u;
    spin(200);
    uint32_t first = (SYST_CSR & COUNTFLAG) != 0;
    uint32_t second = (SYST_CSR & COUNTFLAG) != 0;
    SYST_CSR = 0;
    return first | second << 1;
}

/* CYCCNT without CYCCNTENA (or TRCENA) stays still, as on the chip. */
uint32_t cyccnt_disabled_delta(void) {
    MCUSIM_DWT_CTRL &= ~1u;
    uint32_t t0 = MCUSIM_DWT_CYCCNT;
    spin(100);
    return MCUSIM_DWT_CYCCNT - t0;
}

uint32_t cyccnt_enabled_delta(void) {
    mcusim_cycles_enable();
    uint32_t t0 = MCUSIM_DWT_CYCCNT;
    spin(100);
    return MCUSIM_DWT_CYCCNT - t0;
}

uint32_t dwt_ctrl(void) { return MCUSIM_DWT_CTRL; }
uint32_t ccr(void) { return SCB_CCR; }

__attribute__((noinline)) int32_t divide(int32_t a, int32_t b) { return a / b; }

void set_div0_trap(int on) {
    if (on) SCB_CCR |= 1u << 4; else SCB_CCR &= ~(1u << 4);
}

/* SysTick from the reference clock (CLKSOURCE = 0): the ticks over `iters` of spin, and CSR as read back. */
uint32_t systick_reference_ticks(uint32_t iters) {
    SYST_RVR = 0xFFFFFFu;
    SYST_CVR = 0;
    SYST_CSR = 0x1u;                       /* ENABLE, CLKSOURCE = 0 */
    uint32_t start = SYST_CVR;
    spin(iters);
    uint32_t end = SYST_CVR;
    SYST_CSR = 0;
    return start - end;
}

uint32_t systick_csr_after_writing(uint32_t value) {
    SYST_CSR = value;
    uint32_t csr = SYST_CSR;
    SYST_CSR = 0;
    return csr;
}
