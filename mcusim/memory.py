"""SRAM and flash budget: what the firmware takes statically, what the host allocates for buffers,
and how deep the stack went (measured by painting). Exceeding the board is an error with a breakdown.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .boards import Board
from .errors import McusimError
from .firmware import Firmware
from .units import kb

STACK_PAINT = 0xC5   # byte written over the stack before a call; the deepest changed byte is the peak


class MemoryBudgetError(McusimError):
    """The firmware plus its buffers do not fit in the board's SRAM or flash."""


@dataclass(frozen=True)
class StaticUsage:
    """Flash and SRAM taken by the ELF itself."""
    flash: dict[str, int]          # section -> bytes stored in flash (code, constants, .data image)
    sram: dict[str, int]           # section -> bytes reserved in the main SRAM block (.data, .bss, .stack)
    stack_lo: int
    stack_hi: int
    heap_lo: int                   # first free SRAM byte after .bss
    heap_hi: int
    other_ram: dict[str, int] = field(default_factory=dict)   # section -> bytes in RAM outside it (.ccm)
    notes: tuple[str, ...] = ()    # what could not be determined about a foreign ELF's layout, and the guess

    @property
    def flash_bytes(self) -> int:
        return sum(self.flash.values())

    @property
    def static_sram_bytes(self) -> int:
        """.data + .bss (the stack reservation is counted separately)."""
        return sum(v for k, v in self.sram.items() if k != ".stack")


def static_usage(fw: Firmware, board: Board) -> StaticUsage:
    flash, sram, other = {}, {}, {}
    fo, fe = board.flash.origin, board.flash.end
    for s in fw.sections:
        if fo <= s.load_addr < fe and not s.nobits:
            flash[s.name] = flash.get(s.name, 0) + s.size
        for rams, counts in ((board.main_srams, sram), (board.extra_rams, other)):
            if any(m.origin <= s.addr < m.end for m in rams):
                counts[s.name] = counts.get(s.name, 0) + s.size
    sym = fw.symbols
    origin, size = board.sram_block
    if all(n in sym for n in ("__stack_bottom", "__stack_top", "__heap_start")):      # mcusim's linker script
        usage = StaticUsage(flash, sram, sym["__stack_bottom"].addr, sym["__stack_top"].addr,
                            sym["__heap_start"].addr, origin + size, other)
    else:
        *layout, notes = _foreign_layout(fw, board)
        usage = StaticUsage(flash, sram, *layout, other, notes)
    _check_static(usage, board, fw)
    if not origin <= usage.stack_lo <= usage.stack_hi <= origin + size or not origin <= usage.heap_lo <= origin + size:
        raise MemoryBudgetError(f"{fw.path.name} puts its stack ({usage.stack_lo:#x}..{usage.stack_hi:#x}) or heap "
                                f"({usage.heap_lo:#x}) outside {board.name}'s SRAM ({origin:#x}..{origin + size:#x}); "
                                f"it was linked for another board or damaged: rebuild it with `mcusim cc`")
    return usage


# Names linker scripts commonly give the initial stack pointer and the stack's lower limit (ST, CMSIS/Arm,
# GNU/newlib, picolibc, Zephyr-like and Rust cortex-m-rt spellings).
STACK_TOP_SYMBOLS = ("_estack", "__StackTop", "__stack_top", "_stack_top", "__stack", "_stack", "__initial_sp",
                     "_stack_start", "__stack_end__")
STACK_LIMIT_SYMBOLS = ("__StackLimit", "_sstack", "__stack_bottom", "__stack_start__", "_stack_bottom",
                       "__stack_limit", "_stack_end")
ASSUMED_STACK = 16384               # bytes


def _foreign_layout(fw: Firmware, board: Board) -> tuple[int, int, int, int, tuple[str, ...]]:
    """(stack_lo, stack_hi, heap_lo, heap_hi, notes) of an ELF linked with its own linker script: the stack
    top from the usual symbols or the vector table's first word, its limit from the usual symbols (else
    16384 bytes below the top are assumed), and the free SRAM for host buffers between static data and the stack."""
    origin, size = board.sram_block
    end = origin + size
    in_sram = lambda a: origin <= a <= end   # noqa: E731 - the top of the stack may be the end of SRAM
    notes = []
    top = next((fw.symbols[n].addr for n in STACK_TOP_SYMBOLS if n in fw.symbols and in_sram(fw.symbols[n].addr)),
               None)
    if top is None:
        vector = _word_at(fw, board.flash.origin)
        if vector is None or not in_sram(vector):
            raise MemoryBudgetError(
                f"{fw.path.name} was not linked by `mcusim cc` and its stack could not be found: none of the "
                f"symbols {', '.join(STACK_TOP_SYMBOLS)} lies in {board.name}'s SRAM ({origin:#x}..{end:#x}), and "
                f"the first word of the vector table at {board.flash.origin:#x} is "
                f"{'missing' if vector is None else hex(vector)}, not an SRAM address. Define _estack in the "
                f"linker script, or build with `mcusim cc`")
        top = vector
        notes.append(f"stack top {top:#x} taken from the vector table (no {STACK_TOP_SYMBOLS[0]} symbol)")
    top &= ~7
    static_end = max((s.addr + s.size for s in fw.sections if s.alloc and in_sram(s.addr) and s.addr < top),
                     default=origin)
    limit = next((fw.symbols[n].addr for n in STACK_LIMIT_SYMBOLS if n in fw.symbols
                  and origin <= fw.symbols[n].addr < top), None)
    if limit is None:
        limit = max(static_end, top - ASSUMED_STACK)
        notes.append(f"stack size unknown (no {', '.join(STACK_LIMIT_SYMBOLS[:3])} symbol): assumed "
                     f"{top - limit} bytes below the top; deeper use is not seen as an overflow")
    heap_lo = (static_end + 7) & ~7
    heap_hi = limit if heap_lo <= limit else end
    return limit, top, heap_lo, heap_hi, tuple(notes)


def _word_at(fw: Firmware, address: int) -> int | None:
    for seg in fw.segments:
        if seg.paddr <= address and address + 4 <= seg.paddr + len(seg.data):
            return int.from_bytes(seg.data[address - seg.paddr: address - seg.paddr + 4], "little")
    return None


def _check_static(u: StaticUsage, board: Board, fw: Firmware) -> None:
    _, sram_size = board.sram_block
    total_sram = sum(u.sram.values())
    if u.flash_bytes > board.flash.size:
        raise MemoryBudgetError(_breakdown(f"{fw.path.name} needs {kb(u.flash_bytes)} of flash but "
                                           f"{board.name} has {kb(board.flash.size)}", u.flash,
                                           u.flash_bytes - board.flash.size))
    if total_sram > sram_size:
        raise MemoryBudgetError(_breakdown(f"{fw.path.name} needs {kb(total_sram)} of SRAM but "
                                           f"{board.name} has {kb(sram_size)}", u.sram, total_sram - sram_size))


def _breakdown(headline: str, parts: dict[str, int], over: int) -> str:
    rows = "; ".join(f"{name} {kb(n)}" for name, n in sorted(parts.items(), key=lambda kv: -kv[1]))
    return f"{headline}: over by {kb(over)} ({over} bytes). Breakdown: {rows}."


@dataclass
class SramAllocator:
    """Bump allocator over the SRAM between .bss and the end of the board's SRAM."""
    lo: int
    hi: int
    static: dict[str, int]
    board_name: str
    sram_size: int
    cursor: int = 0
    peak: int = 0
    blocks: list[tuple[str, int, int]] = field(default_factory=list)   # (name, address, size)

    def __post_init__(self):
        self.cursor = self.lo

    def alloc(self, size: int, name: str = "buffer", align: int = 8) -> int:
        addr = (self.cursor + align - 1) & ~(align - 1)
        if addr + size > self.hi:
            parts = dict(self.static)
            for n, _, s in self.blocks:
                parts[n] = parts.get(n, 0) + s
            parts[name] = parts.get(name, 0) + size
            over = addr + size - self.hi
            raise MemoryBudgetError(_breakdown(
                f"allocating {size} bytes for '{name}' overflows the {kb(self.sram_size)} of SRAM on "
                f"{self.board_name}", parts, over) + " Shrink the buffers or the model; "
                "mcusim never grows the memory beyond the chip's.")
        self.cursor = addr + size
        self.blocks.append((name, addr, size))
        self.peak = max(self.peak, self.cursor - self.lo)
        return addr

    def reset(self) -> None:
        """Free every buffer (the peak is kept)."""
        self.cursor = self.lo
        self.blocks.clear()


def paint_stack(sram: np.ndarray, sram_origin: int, lo: int, hi: int) -> None:
    sram[lo - sram_origin: hi - sram_origin] = STACK_PAINT


def stack_peak(sram: np.ndarray, sram_origin: int, lo: int, hi: int) -> int:
    """Bytes of stack used since painting: from the lowest changed byte up to the stack top."""
    region = sram[lo - sram_origin: hi - sram_origin]
    changed = np.flatnonzero(region != STACK_PAINT)
    return 0 if changed.size == 0 else int(len(region) - changed[0])
