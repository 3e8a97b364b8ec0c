/* Firmware that misbehaves on purpose, one function per fault kind. */
#include "mcusim.h"

int read_unmapped(void) { return *(volatile int *)0x30000000u; }
void write_unmapped(int v) { *(volatile int *)0x50000000u = v; }
int fetch_unmapped(void) { int (*f)(void) = (int (*)(void))0x30000001u; return f(); }
void write_flash(int v) { *(volatile int *)0x08000100u = v; }
int undefined_instruction(void) { __asm volatile("udf #3"); return 0; }
int breakpoint(void) { __asm volatile("bkpt #9"); return 0; }

int recurse(int n) {
    volatile char pad[256];
    pad[0] = (char)n;
    return n <= 0 ? pad[0] : recurse(n - 1) + pad[0];
}

void spin(void) { for (;;) { __asm volatile(""); } }
