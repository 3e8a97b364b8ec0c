/* The C library's console for mcusim firmware: stdout and stderr write to ITM stimulus port 0, whose
 * characters the emulator prints (as a debug probe's SWO viewer would on the chip). Linked whenever a C
 * library is (`mcusim cc --libc nano|full`): picolibc takes a FILE with a put function, newlib a _write
 * system call (its other system calls come from libnosys). */
#include <stdint.h>
#include <stdio.h>

#define ITM_PORT0 (*(volatile uint32_t *)0xE0000000u)

void __mcusim_return(void);

static void itm_put(char c) {
    while (ITM_PORT0 == 0) { }          /* the stimulus port reads 1 when it can take a character */
    *(volatile uint8_t *)&ITM_PORT0 = (uint8_t)c;
}

/* exit() ends the run as a return from the called function would. */
void _exit(int status) {
    (void)status;
    for (;;) __mcusim_return();
}

#ifdef __PICOLIBC__
static int itm_putc(char c, FILE *file) {
    (void)file;
    itm_put(c);
    return (unsigned char)c;
}

static FILE itm_stdio = FDEV_SETUP_STREAM(itm_putc, NULL, NULL, _FDEV_SETUP_WRITE);
FILE *const stdin = &itm_stdio;
FILE *const stdout = &itm_stdio;
FILE *const stderr = &itm_stdio;
#else
int _write(int fd, const char *buf, int len) {
    (void)fd;
    for (int i = 0; i < len; i++) itm_put(buf[i]);
    return len;
}
#endif
