"""Host (Numba) twins of the firmware training kernels, bit-exact with the C on the emulator."""
