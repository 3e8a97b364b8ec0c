/* Static data larger than the STM32L4R5's 640 KB of SRAM. */
#include <stdint.h>
uint8_t big[700 * 1024];
int touch(int i) { big[i] = 1; return big[i]; }
