"""Host (Numba) twins of the firmware training kernels, bit-exact with the C on the emulator."""

from .. import numba_cache  # noqa: F401 - before any twin is compiled: cache entries stamped by the package's source
