"""How many cycles the Cortex-M4's instruction fetch could add to a call, beyond the cycle model's static
costs: a trace-driven study of fetch mechanisms the documents describe but a per-instruction cost table
cannot see (the README's "Against silicon: Embench-IoT" quotes its figures).

    python tools/fetch_queue_study.py FIRMWARE.elf [--board stm32f407vg_reset] [--hclk-mhz 16]
                                      [--call main] [--arg 0 --arg 0]

The call runs once with Python hooks (about 1 M instructions/s: use small inputs) recording every executed
instruction and every data read from flash. The executed stream, each instruction costed by the cycle
model (static cost, taken-branch refill, target penalty, as the native hook charges them), is then replayed
through the prefetch unit:
- it fetches one aligned 32-bit word per cycle into a FIFO of three words, and an instruction executes no
  earlier than two cycles after the fetch of its last word was issued (Cortex-M3 TRM DDI 0337G 1.4 "Prefetch
  Unit" and 12.3 "ICode bus interface"; the same two cycles as the model's refill after a forwarded branch);
  a taken branch restarts the stream at its target, with the refill the model already charges;
- a not-taken conditional branch whose target is issued from decode used a fetch slot for it ("the address
  is speculatively presented (consuming a fetch slot on the bus)", ibid. 1.4);
- a data read from flash takes that cycle's fetch slot: the I-Code and D-Code buses meet at the flash
  interface (ST RM0090 figure 3) and D-Code has the priority (DDI 0337G 12.3 note).
It prints the cycles each mechanism adds, cumulatively, in per cent of the replayed model's cycles. The
study is meant for zero wait states without a flash accelerator (the STM32F407 reset state of the Embench
baseline); instructions skipped in an IT block are replayed as executed, as the model charges them.
"""
from __future__ import annotations

import argparse
import sys
from array import array

import numba as nb
import numpy as np
from unicorn import UC_HOOK_CODE, UC_HOOK_MEM_READ

from mcusim.boards import load_board
from mcusim.emulator import Machine
from mcusim.timing import cortex_m4 as rules
from mcusim.timing.model import disassembler

FIFO_WORDS = 3          # DDI 0337G 1.4: "The PFU buffers up to three word fetches in its FIFO"
FETCH_TO_EXECUTE = 2    # cycles from a word's fetch to the execute of the instruction it completes
RING = 1024             # cycles and words the replay keeps in view (far more than the FIFO spans)
IT_BLOCK_BYTES = 16     # at most four instructions of 32 bits follow an IT
NOT_FREED = 1 << 60     # a word still waiting in the FIFO


def record(machine: Machine, symbol: str, args: list[int]):
    """(executed addresses, flash data reads per executed instruction, the model's cycles for the call)."""
    trace, reads = array("I"), array("I")
    lo, hi = machine.board.flash.origin, machine.board.flash.end

    def on_code(uc, address, size, data):
        trace.append(address)

    def on_flash_read(uc, access, address, size, value, data):
        reads.append(len(trace) - 1)

    machine.uc.hook_add(UC_HOOK_CODE, on_code)
    machine.uc.hook_add(UC_HOOK_MEM_READ, on_flash_read, None, lo, hi - 1)
    machine.uc.ctl_flush_tb()
    result = machine.call(symbol, *args)
    trace_np = np.frombuffer(trace, np.uint32).astype(np.int64)
    counts = np.bincount(np.frombuffer(reads, np.uint32), minlength=len(trace_np)).astype(np.int64)
    return trace_np, counts, result.cycles


def tables(machine: Machine):
    """Per code halfword: size, static cost, taken refill, target penalty, whether it writes the PC, and
    whether it is a conditional branch whose target is issued from decode (speculatively fetched)."""
    md = disassembler()
    blobs = machine.fw.code_ranges()
    lo = machine.model.code_lo
    n = machine.model.n_hw + 1
    size, static, taken, target, pc_write, speculated = (np.zeros(n, np.int64) for _ in range(6))
    for d in machine.model.insns:
        h = (d.address - lo) // 2
        size[h], static[h], taken[h], target[h] = d.size, d.static, d.taken, d.target
        base, blob = next((b, bl) for b, bl in blobs if b <= d.address < b + len(bl))
        insn = next(md.disasm(blob[d.address - base: d.address - base + d.size], d.address))
        pc_write[h] = rules.writes_pc(insn)
        speculated[h] = d.klass == "branch" and d.taken == rules.BRANCH_REFILL_FORWARDED
    return lo, size, static, taken, target, pc_write, speculated


@nb.njit(cache=True)
def replay(trace, reads, lo, size, static, taken, target, pc_write, speculated, fifo, spec_slot, dcode_slot):
    """Cycles of the executed stream under the model's costs, with the fetch unit when `fifo` is set and
    the lost fetch slots switched on by `spec_slot` / `dcode_slot`."""
    blocked = np.full(RING, -1, np.int64)        # cycles whose fetch slot something else took
    issued = np.zeros(RING, np.int64)           # fetch cycle of stream word k
    freed = np.zeros(RING, np.int64)            # cycle stream word k left the FIFO
    stream_word, fetched, last_fetch = 0, 0, 0
    start, cost, prev_end, prev_h = 0, 0, -1, -1
    i, n = 0, len(trace)
    pending = -1                               # a skipped IT-block instruction to replay before trace[i]
    while i < n:
        a = pending if pending >= 0 else trace[i]
        h = (a - lo) >> 1
        if pending < 0 and prev_h >= 0 and not pc_write[prev_h] and 0 < a - prev_end <= IT_BLOCK_BYTES:
            pending = prev_end                  # skipped inside an IT block: the code hook does not report it
            continue
        jumped = a != prev_end
        ready = start + cost
        if jumped and prev_h >= 0:
            ready += taken[prev_h] + target[h]
        s = size[h]
        first, last = a >> 2, (a + s - 1) >> 2
        if fifo:
            if jumped:
                stream_word, fetched = first, last - first + 1
                for k in range(fetched):
                    issued[k % RING] = ready - FETCH_TO_EXECUTE - (fetched - 1) + k
                    freed[k % RING] = NOT_FREED
                last_fetch = ready - FETCH_TO_EXECUTE
            while stream_word + fetched <= last:
                f = last_fetch + 1
                if fetched >= FIFO_WORDS and f < freed[(fetched - FIFO_WORDS) % RING]:
                    f = freed[(fetched - FIFO_WORDS) % RING]
                while blocked[f % RING] == f:
                    f += 1
                issued[fetched % RING], freed[fetched % RING] = f, NOT_FREED
                last_fetch, fetched = f, fetched + 1
            avail = issued[(last - stream_word) % RING] + FETCH_TO_EXECUTE
            if avail > ready:
                ready = avail
            for w in range(first, (a + s) >> 2):    # words whose last halfword this instruction consumes
                if w >= stream_word:
                    freed[(w - stream_word) % RING] = ready
        if spec_slot and pending < 0 and speculated[h] and (i + 1 >= n or trace[i + 1] == a + s):
            blocked[ready % RING] = ready
        if dcode_slot and pending < 0:
            for j in range(reads[i]):
                blocked[(ready + j) % RING] = ready + j
        start, cost, prev_end, prev_h = ready, static[h], a + s, h
        if pending >= 0:
            pending = -1
        else:
            i += 1
    return start + cost


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("elf")
    p.add_argument("--board", default="stm32f407vg_reset")
    p.add_argument("--hclk-mhz", type=float, default=16)
    p.add_argument("--call", default="main")
    p.add_argument("--arg", type=lambda v: int(v, 0), action="append", default=[])
    a = p.parse_args()
    machine = Machine(a.elf, board=load_board(a.board), hclk_mhz=a.hclk_mhz, write_char=lambda c: None)
    trace, reads, model_cycles = record(machine, a.call, a.arg)
    t = tables(machine)
    base = replay(trace, reads, *t, False, False, False)
    print(f"{a.elf}: {len(trace)} instructions traced, {int(reads.sum())} flash data reads; model {model_cycles} "
          f"cycles, replayed {base} ({100 * (base / model_cycles - 1):+.2f}%)")
    for label, flags in (("fetch FIFO", (True, False, False)), ("+ speculative slot", (True, True, False)),
                         ("+ D-Code priority", (True, True, True))):
        print(f"  {label:20s} {100 * (replay(trace, reads, *t, *flags) / base - 1):+.2f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
