"""The cycle model's static half: decode the firmware's code once with capstone and precompute,
per halfword of code, the tables the native hook reads (prefix sums of instruction costs and
counts, taken-branch and branch-target penalties, flash prefetch stalls).

The functional model (Unicorn) never sees any of this; swapping the timing model means swapping
this module and the hook, nothing else.
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass

import capstone
import numpy as np

from ..boards import Board
from ..firmware import Firmware
from . import rules_for
from . import state as S


@dataclass(frozen=True)
class Decoded:
    address: int
    size: int
    text: str
    klass: str
    static: int
    taken: int
    target: int      # extra cycles when a taken branch lands here (refill alignment, lost pipelining)
    mem: tuple[str, str, int] | None = None   # (base, index, displacement) register names of a load/store


def disassembler() -> capstone.Cs:
    md = capstone.Cs(capstone.CS_ARCH_ARM, capstone.CS_MODE_THUMB | capstone.CS_MODE_MCLASS)
    md.detail = True
    return md


def _memory_operand(insn) -> tuple[str, str, int] | None:
    for o in insn.operands:
        if o.type == capstone.arm.ARM_OP_MEM:
            name = insn.reg_name
            return name(o.mem.base), name(o.mem.index) if o.mem.index else "", o.mem.disp
    return None


def _literal_address(d: Decoded) -> int | None:
    """Address a PC-relative load reads (its literal), known statically: Align(PC, 4) + offset."""
    if d.mem is None or d.mem[0] != "pc" or d.mem[1] or d.klass not in ("load", "fp_load", "load_dual"):
        return None
    return ((d.address + 4) & ~3) + d.mem[2]


def decode(firmware: Firmware, rules) -> list[Decoded]:
    """Linear sweep over the code, skipping the data ranges marked by `$d` mapping symbols; `rules` is
    the core's timing-rules module."""
    md = disassembler()
    out: list[Decoded] = []
    for base, blob in firmware.code_ranges():
        pieces, cursor = [], base
        for lo, hi in sorted(firmware.data_in_code):
            if base <= lo < base + len(blob):
                pieces.append((cursor, lo))
                cursor = max(cursor, hi)
        pieces.append((cursor, base + len(blob)))
        for lo, hi in pieces:
            addr = lo
            while addr < hi:                           # one disasm call per run, so IT state carries
                prev = None
                for insn in md.disasm(blob[addr - base: hi - base], addr):
                    cost = rules.instruction_cost(insn, prev)
                    # Reached by a taken branch, the instruction before it in address order did not
                    # run: undo what that neighbour changed (load pipelining, address interlock).
                    context = rules.instruction_cost(insn, None).static - cost.static if prev else 0
                    out.append(Decoded(insn.address, insn.size, f"{insn.mnemonic} {insn.op_str}".strip(),
                                       cost.klass, cost.static, cost.taken,
                                       rules.target_penalty(insn) + context, _memory_operand(insn)))
                    prev = insn
                    addr = insn.address + insn.size
                else:
                    if addr < hi:                      # undecodable halfword: data the linker left
                        addr += 2
    return out


def cached_decode(firmware: Firmware, rules) -> list[Decoded]:
    """decode(), kept on disk by the ELF's content and the timing rules' source (mcusim/disk_cache.py)."""
    import sys

    from ..disk_cache import cached, source_digest
    return cached("decode", (firmware.content_digest, source_digest(rules, sys.modules[__name__])),
                  lambda: decode(firmware, rules))


class CycleModel:
    """Static tables + the state array for one firmware at one clock on one board."""

    def __init__(self, firmware: Firmware, board: Board, hclk_mhz: float):
        self.board = board
        self.hclk_mhz = hclk_mhz
        self.wait_states = board.wait_states(hclk_mhz)
        self.insns = cached_decode(firmware, rules_for(board.core.timing_rules))
        self._addresses = [d.address for d in self.insns]
        ranges = firmware.code_ranges()
        self.code_lo = min(a for a, _ in ranges) if ranges else board.flash.origin
        code_hi = max(a + len(b) for a, b in ranges) if ranges else self.code_lo
        n_hw = (code_hi - self.code_lo + 1) // 2
        self.n_hw = n_hw

        cost = np.zeros(n_hw + 1, np.int64)
        nins = np.zeros(n_hw + 1, np.int64)
        taken = np.zeros(n_hw + 1, np.int64)
        target = np.zeros(n_hw + 1, np.int64)
        length = np.zeros(n_hw + 1, np.int64)
        literal = np.zeros(n_hw + 1, np.int64)
        lit_count = np.zeros(n_hw + 1, np.int64)
        fo, fe = board.flash.origin, board.flash.end
        for d in self.insns:
            h = (d.address - self.code_lo) // 2
            lit = _literal_address(d)
            if lit is not None and fo <= lit < fe:
                literal[h] = lit
                lit_count[h + 1] += 1
            cost[h + 1] += d.static            # becomes a prefix sum below
            nins[h + 1] += 1
            taken[h + d.size // 2] = d.taken    # indexed by the instruction's end: a block ends there
            target[h] = d.target
            length[h] = d.size // 2
        np.cumsum(cost, out=cost)
        np.cumsum(nins, out=nins)
        np.cumsum(lit_count, out=lit_count)
        # the prefix value must not change inside a 32-bit instruction: index h+1 of a wide
        # instruction already holds its full cost, which is fine because blocks never end there.

        art = board.art
        word_shift = art.flash_word_bytes.bit_length() - 1
        line_shift = art.icache_line_bytes.bit_length() - 1
        w_lo = self.code_lo >> word_shift
        n_words = ((code_hi - 1) >> word_shift) - w_lo + 1
        seq = np.full(n_words, self.wait_states, np.int64)
        if art.prefetch:
            word_exec = np.zeros(n_words, np.int64)
            for d in self.insns:
                word_exec[(d.address >> word_shift) - w_lo] += d.static
            seq[1:] = np.maximum(0, self.wait_states + 1 - word_exec[:-1])

        tables = [cost, nins, taken, target, seq, np.full(art.icache_lines, -1, np.int64),
                  np.zeros(art.icache_lines, np.int64), length,
                  np.zeros(n_hw + 1, np.int64), np.zeros(n_hw + 1, np.int64), np.full(n_hw + 1, -1, np.int64),
                  literal, lit_count, np.full(art.dcache_lines, -1, np.int64)]
        offsets, pos = [], S.HEADER
        for t in tables:
            offsets.append(pos)
            pos += len(t)
        st = np.zeros(pos, np.int64)
        for off, t in zip(offsets, tables):
            st[off: off + len(t)] = t
        (st[S.OFF_COST], st[S.OFF_NINS], st[S.OFF_TAKEN], st[S.OFF_TARGET], st[S.OFF_SEQ], st[S.OFF_TAGS],
         st[S.OFF_MASK], st[S.OFF_LEN], st[S.OFF_COUNT], st[S.OFF_EXTRA], st[S.OFF_VERIFIED],
         st[S.OFF_LIT], st[S.OFF_LIT_COUNT], st[S.OFF_DTAGS]) = offsets
        st[S.DCACHE_LINES] = art.dcache_lines
        st[S.DLINE_SHIFT] = art.dcache_line_bytes.bit_length() - 1
        st[S.CODE_LO], st[S.CODE_HW], st[S.WAIT_STATES] = self.code_lo, n_hw, self.wait_states
        st[S.FLASH_LO], st[S.FLASH_HI] = board.flash.origin, board.flash.end
        st[S.ICACHE_LINES], st[S.LINE_SHIFT], st[S.WORD_SHIFT] = art.icache_lines, line_shift, word_shift
        st[S.BUDGET] = np.iinfo(np.int64).max
        self.state = st

    # -- run-time view -------------------------------------------------------------------------
    @property
    def cycles(self) -> int:
        return int(self.state[S.CYCLES])

    @property
    def instructions(self) -> int:
        return int(self.state[S.INSNS])

    def counter(self, name: str) -> int:
        return int(self.state[getattr(S, name)])

    def start_call(self, entry: int, budget: int | None) -> None:
        """Reset the per-call counters; caches keep their contents, as on the chip."""
        st = self.state
        for slot in (S.CYCLES, S.INSNS, S.STOPPED, S.UNKNOWN_BLOCKS, S.FLASH_STALLS, S.TAKEN_BRANCHES, S.BLOCKS,
                     S.LITERAL_STALLS):
            st[slot] = 0
        st[S.PREV_END] = -1           # the call arrives by a branch (BL): the entry is a branch target
        st[S.BLOCK_END] = entry
        st[S.BUDGET] = budget if budget is not None else np.iinfo(np.int64).max

    def cycles_at(self, pc: int) -> int:
        """Cycle count as seen by an instruction at `pc` inside the current block (for DWT CYCCNT):
        the hook charged the whole block on entry, so take back what lies at and after `pc`."""
        st = self.state
        h_pc = (pc - self.code_lo) // 2
        h_end = (int(st[S.BLOCK_END]) - self.code_lo) // 2
        if not (0 <= h_pc <= h_end <= self.n_hw):
            return int(st[S.CYCLES])
        oc = int(st[S.OFF_COST])
        return int(st[S.CYCLES] - (st[oc + h_end] - st[oc + h_pc]))

    def access_pc(self, block_pc: int, address: int, nth: int, reg) -> int:
        """Which instruction of the block starting at `block_pc` made the `nth` access to `address`.

        Unicorn reports the block's start as PC inside an MMIO callback; the registers are exact,
        so the load whose base (+ index) + displacement equals the address is the one."""
        end = int(self.state[S.BLOCK_END])
        matches = []
        for d in self.insns_between(block_pc, end):
            if d.mem is None or d.klass not in ("load", "fp_load", "load_dual", "load_multi"):
                continue
            base, index, disp = d.mem
            if base == "pc":
                continue
            if (reg(base) + (reg(index) if index else 0) + disp) & 0xFFFF_FFFF == address:
                matches.append(d.address)
        return matches[min(nth, len(matches) - 1)] if matches else block_pc

    def insns_between(self, lo: int, hi: int) -> list[Decoded]:
        i = bisect.bisect_left(self._addresses, lo)
        j = bisect.bisect_left(self._addresses, hi)
        return self.insns[i:j]

    def set_profiling(self, on: bool) -> None:
        self.state[S.PROFILE] = int(on)
        n = self.n_hw + 1
        self.state[self.state[S.OFF_COUNT]: self.state[S.OFF_COUNT] + n] = 0
        self.state[self.state[S.OFF_EXTRA]: self.state[S.OFF_EXTRA] + n] = 0

    def profile_tables(self) -> tuple[np.ndarray, np.ndarray]:
        """(execution count, dynamic extra cycles) per code halfword, when profiling was on."""
        n = self.n_hw + 1
        oc, oe = int(self.state[S.OFF_COUNT]), int(self.state[S.OFF_EXTRA])
        return self.state[oc: oc + n], self.state[oe: oe + n]
