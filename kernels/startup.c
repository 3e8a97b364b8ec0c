/* Minimal Cortex-M4F start-up for mcusim firmware: vector table, .data copy, .bss zeroing,
 * FPU enable, and the return trampoline the simulator uses to end a call. */
#include <stdint.h>
#include <stddef.h>

extern uint32_t __stack_top, __data_start, __data_end, __data_load, __bss_start, __bss_end;
typedef void (*constructor_fn)(void);
extern constructor_fn __preinit_array_start[], __preinit_array_end[], __init_array_start[], __init_array_end[];

#define SCB_CPACR (*(volatile uint32_t *)0xE000ED88u)

int main(void) __attribute__((weak));

/* Run by the simulator before the first call (and by Reset_Handler on the chip). */
void __mcusim_init(void) {
    uint32_t *src = &__data_load, *dst = &__data_start;
    while (dst < &__data_end) *dst++ = *src++;
    for (dst = &__bss_start; dst < &__bss_end;) *dst++ = 0;
    SCB_CPACR |= 0xFu << 20;           /* CP10, CP11 full access: enable the FPU */
    /* then the constructors, in link order, as the C library's crt0 would (they may use floats) */
    for (constructor_fn *fn = __preinit_array_start; fn < __preinit_array_end; fn++) (*fn)();
    for (constructor_fn *fn = __init_array_start; fn < __init_array_end; fn++) (*fn)();
}

/* A call made by the simulator returns here (its address is put in LR); the host stops on it. */
__attribute__((naked, noreturn)) void __mcusim_return(void) {
    __asm volatile("bkpt #0\n b __mcusim_return");
}

__attribute__((noreturn)) void Reset_Handler(void) {
    __mcusim_init();
    if (main) main();
    __mcusim_return();
}

__attribute__((noreturn)) void Default_Handler(void) {
    __asm volatile("bkpt #1");
    for (;;) { }
}

__attribute__((section(".isr_vector"), used))
const void *const __mcusim_vectors[16] = {
    &__stack_top, Reset_Handler,
    Default_Handler, Default_Handler, Default_Handler, Default_Handler, Default_Handler,
    0, 0, 0, 0,
    Default_Handler, Default_Handler, 0, Default_Handler, Default_Handler,
};
