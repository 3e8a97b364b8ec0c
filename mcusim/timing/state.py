"""Layout of the int64 array shared by the host and the native cycle hook.

The hook is a Numba cfunc that Unicorn calls directly; it receives this array as its user_data.
Slots 0..HEADER-1 are scalars; the per-instruction tables follow at the offsets stored in the header.
"""
CYCLES, INSNS, PREV_END, BUDGET, STOPPED, CODE_LO, CODE_HW, WAIT_STATES = range(8)
FLASH_LO, FLASH_HI, OFF_COST, OFF_NINS, OFF_TAKEN, OFF_TARGET, OFF_SEQ, OFF_TAGS = range(8, 16)
OFF_MASK, ICACHE_LINES, LINE_SHIFT, WORD_SHIFT, PROFILE, OFF_COUNT, OFF_EXTRA, UNKNOWN_BLOCKS = range(16, 24)
BLOCK_END, FLASH_STALLS, TAKEN_BRANCHES, OFF_LEN, BLOCKS, STOP_FN, ICACHE_GEN, OFF_VERIFIED = range(24, 32)
OFF_LIT, OFF_LIT_COUNT, OFF_DTAGS, DCACHE_LINES, DLINE_SHIFT, LITERAL_STALLS = range(32, 38)
HEADER = 40
