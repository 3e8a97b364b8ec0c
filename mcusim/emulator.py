"""The functional model: the board's core in Unicorn with exactly the board's memories, an ELF loaded,
functions called by symbol under the AAPCS (hard- or soft-float, as the ELF says), and every Unicorn
error turned into a
`Fault` a firmware engineer can read. Timing is attached as a separate, swappable model.
"""
from __future__ import annotations

import contextlib
import math
import signal
import socket
import struct
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from unicorn import (UC_ARCH_ARM, UC_HOOK_BLOCK, UC_HOOK_CODE, UC_HOOK_INTR, UC_HOOK_MEM_INVALID, UC_MODE_MCLASS,
                     UC_MODE_THUMB, UC_PROT_ALL, UC_PROT_EXEC, UC_PROT_READ, UC_PROT_WRITE, Uc, UcError)
from unicorn import arm_const as A
from unicorn import unicorn_const as C
from unicorn.unicorn_py3.unicorn import uc_hook_h, uclib

from .boards import Board, load_board
from .errors import McusimError
from .firmware import Firmware, FirmwareError
from .memory import SramAllocator, paint_stack, stack_peak, static_usage
from .peripherals import SystemControlSpace
from .timing import hook as timing_hook
from .timing import rules_for
from .timing import state as S
from .timing.model import CycleModel, decode, disassembler
from .toolchain import INIT_SYMBOL, RETURN_SYMBOL

STARTUP_BUDGET = 100_000_000     # cycles; start-up of a 640 KB image takes well under a million
REG_ALIASES = {"sb": "r9", "sl": "r10", "fp": "r11", "ip": "r12"}
CORE_REGS = [f"r{i}" for i in range(13)] + ["sp", "lr", "pc", "xpsr"]


class _SignalStop:
    """Ctrl-C (or SIGTERM) during a native run. Python runs its signal handlers only between bytecodes,
    never inside emu_start, so a helper thread woken through `signal.set_wakeup_fd` stops the emulator;
    the handler's exception (KeyboardInterrupt) is then raised as emu_start returns. Only the main
    thread receives signals, so calls from other threads are left as they are."""

    def __init__(self):
        self.running = None
        self.watching = False

    @contextlib.contextmanager
    def stopping(self, uc):
        if not self.watching and threading.current_thread() is threading.main_thread():
            self._watch()
        self.running = uc
        try:
            yield
        finally:
            self.running = None

    def _watch(self) -> None:
        reader, writer = socket.socketpair()
        writer.setblocking(False)
        try:
            signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
        except ValueError:            # not the main thread of the main interpreter
            return
        self._sockets = (reader, writer)
        threading.Thread(target=self._stop_on_wakeup, args=(reader,), daemon=True, name="mcusim-signals").start()
        self.watching = True

    def _stop_on_wakeup(self, reader) -> None:
        while reader.recv(64):
            uc = self.running
            if uc is not None:
                uc.emu_stop()


_SIGNALS = _SignalStop()


class Fault(McusimError):
    """The firmware did something the chip would fault on (or ran past its cycle budget)."""
    exit_code = 3

    def __init__(self, kind: str, detail: str, pc: int, where: str, instruction: str, registers: dict[str, int]):
        self.kind, self.pc, self.where, self.instruction, self.registers = kind, pc, where, instruction, registers
        regs = " ".join(f"{k}={v:#010x}" for k, v in registers.items())
        super().__init__(f"firmware fault ({kind}): {detail} at pc {pc:#010x} ({where}), executing "
                         f"`{instruction}`.\nregisters: {regs}")


@dataclass(frozen=True)
class CallResult:
    symbol: str
    return_value: int | float | None
    cycles: int
    instructions: int
    stack_peak_bytes: int
    hclk_hz: float
    flash_stall_cycles: int
    taken_branches: int

    @property
    def seconds(self) -> float:
        return self.cycles / self.hclk_hz


@dataclass(frozen=True)
class Buffer:
    """A block of the simulated SRAM that the host allocated for a call's arguments."""
    address: int
    array: np.ndarray        # a view onto the SRAM bytes, typed as the caller asked


class Machine:
    """One emulated board running one firmware. Calls reuse the machine (caches stay warm, as on the chip)."""

    def __init__(self, firmware: Firmware | str | Path, board: Board | None = None, hclk_mhz: float | None = None,
                 timing: bool = True, write_char=None, startup_budget: int = STARTUP_BUDGET,
                 debuggable: bool = False):
        """`startup_budget`: cycles the start-up code (.data copy, .bss zeroing) may take before it counts
        as hung (a firmware whose start-up loops faults instead of hanging). `debuggable`: a machine a gdb
        server can attach to (mcusim.gdb explains the difference)."""
        self.fw = firmware if isinstance(firmware, Firmware) else Firmware.load(firmware)
        self.board = board or load_board()
        self.hclk_mhz = float(self.board.default_hclk_mhz if hclk_mhz is None else hclk_mhz)
        self.board.wait_states(self.hclk_mhz)                     # validates the clock
        self.static = static_usage(self.fw, self.board)
        self.sram_origin, sram_size = self.board.sram_block
        self.allocator = SramAllocator(self.static.heap_lo, self.static.heap_hi, dict(self.static.sram),
                                       self.board.name, sram_size)
        self.model = CycleModel(self.fw, self.board, self.hclk_mhz) if timing else None
        self._last_fault: tuple[str, str] | None = None

        uc = self.uc = Uc(UC_ARCH_ARM, UC_MODE_THUMB if debuggable else UC_MODE_THUMB | UC_MODE_MCLASS)
        uc.ctl_set_cpu_model(getattr(A, f"UC_CPU_ARM_{self.board.core.unicorn_cpu}"))   # the default is an M33
        self.flash = np.zeros(self.board.flash.size, np.uint8)
        self.sram = np.zeros(sram_size, np.uint8)
        self.extra_ram = {m.name: np.zeros(m.size, np.uint8) for m in self.board.extra_rams}
        self._map(self.board.flash, self.flash.ctypes.data, UC_PROT_READ | UC_PROT_EXEC)
        for mem in self.board.main_srams:
            self._map(mem, self.sram.ctypes.data + mem.origin - self.sram_origin)
        for mem in self.board.extra_rams:
            self._map(mem, self.extra_ram[mem.name].ctypes.data)
        self._load_image()
        self._block_seen, self._reads_in_block = -1, 0
        self._cycles_before_call = 0          # the SCS's clock runs on across calls, as the chip's does
        self._div_hooks: list[int] = []
        self.scs = SystemControlSpace(self._clock, self.board.core, self.board.systick_reference_divider,
                                      write_char, self._on_div0_trap)
        self.scs.map(uc)
        uc.hook_add(UC_HOOK_MEM_INVALID, self._on_bad_access)
        uc.hook_add(UC_HOOK_INTR, self._on_exception)
        if self.model is not None:
            self._native_hook = uc_hook_h()
            err = uclib.uc_hook_add(uc._uch, self._native_hook, UC_HOOK_BLOCK, timing_hook.BLOCK_HOOK_ADDRESS,
                                    self.model.state.ctypes.data, 1, 0)
            if err:
                raise McusimError(f"Unicorn refused the native cycle hook (error {err})")
            self.model.state[S.STOP_FN] = timing_hook.UC_EMU_STOP_ADDRESS
        uc.ctl_flush_tb()                                          # hooks apply only to new translations
        if RETURN_SYMBOL in self.fw.symbols:                        # built by `mcusim cc`: its start-up's hooks
            self._return = self.fw.address(RETURN_SYMBOL)
            self.call(INIT_SYMBOL, max_cycles=startup_budget if timing else None)   # .data copy, .bss zero, FPU on
        else:                                                      # linked with the user's own script
            self._return = self._foreign_start_up()

    def _foreign_start_up(self) -> int:
        """What start-up does, for an ELF without mcusim's: copy .data from flash and zero .bss, here on the
        host (its own Reset_Handler would run main and never return); calls return to a BKPT placed in the
        last halfword of flash, which the image must leave free."""
        for sec in self.fw.sections:
            if not sec.write or not any(m.origin <= sec.addr < m.end for m in self.board.srams):
                continue
            if sec.nobits:
                self.uc.mem_write(sec.addr, bytes(sec.size))
            elif sec.load_addr != sec.addr:
                self.uc.mem_write(sec.addr, bytes(self.uc.mem_read(sec.load_addr, sec.size)))
        trampoline = self.board.flash.end - 2
        if any(seg.paddr <= trampoline < seg.paddr + len(seg.data) for seg in self.fw.segments):
            raise FirmwareError(f"{self.fw.path.name} fills {self.board.name}'s flash to its last byte; mcusim needs "
                                f"the last halfword ({trampoline:#x}) to return from calls, or a build with `mcusim cc`")
        self.flash[trampoline - self.board.flash.origin:][:2] = (0x00, 0xBE)     # BKPT #0
        return trampoline

    def _map(self, mem, ptr: int, prot: int | None = None) -> None:
        """A memory and its aliases onto one host buffer; RAM is read-write, and executable unless it is
        CCM-like (data only)."""
        if prot is None:
            prot = UC_PROT_ALL if mem.executable else UC_PROT_READ | UC_PROT_WRITE
        for at in (mem.origin, *mem.aliases):
            self.uc.mem_map_ptr(at, mem.size, prot, ptr)

    # -- loading -------------------------------------------------------------------------------
    def _load_image(self) -> None:
        fo, fe = self.board.flash.origin, self.board.flash.end
        for seg in self.fw.segments:
            if not seg.data:
                continue
            if not (fo <= seg.paddr and seg.paddr + len(seg.data) <= fe):
                raise FirmwareError(f"{self.fw.path.name} stores {len(seg.data)} bytes at {seg.paddr:#x}, "
                                    f"outside {self.board.name}'s flash ({fo:#x}..{fe:#x}); "
                                    f"build it for this board with `mcusim cc`")
            self.flash[seg.paddr - fo: seg.paddr - fo + len(seg.data)] = np.frombuffer(seg.data, np.uint8)

    # -- buffers -------------------------------------------------------------------------------
    def alloc(self, shape, dtype=np.uint8, name: str = "buffer", align: int = 8) -> Buffer:
        dtype = np.dtype(dtype)
        nbytes = int(np.prod(shape)) * dtype.itemsize
        addr = self.allocator.alloc(nbytes, name, align)
        off = addr - self.sram_origin
        return Buffer(addr, self.sram[off: off + nbytes].view(dtype).reshape(shape))

    def put(self, array: np.ndarray, name: str = "buffer") -> Buffer:
        """Copy a host array into a new SRAM buffer."""
        array = np.ascontiguousarray(array)
        buf = self.alloc(array.shape, array.dtype, name)
        buf.array[...] = array
        return buf

    def free_all(self) -> None:
        self.allocator.reset()

    # -- calls ---------------------------------------------------------------------------------
    def call(self, symbol: str, *args, max_cycles: int | None = None) -> CallResult:
        entry = self.fw.address(symbol)
        sig = self.fw.signature(symbol)
        if max_cycles is not None and not 1 <= max_cycles < 1 << 62:
            raise McusimError(f"the cycle budget must be between 1 and 2^62 cycles, not {max_cycles}")
        if sig is None and any(_kind_of(a) == "float" for a in args):
            raise McusimError(f"{self.fw.path.name} has no debug information for {symbol}, so mcusim cannot tell "
                              f"whether it takes floats (in s0-s15) or integers; build it with -g (`mcusim cc` "
                              f"does) or pass integers only")
        kinds = sig.params if sig is not None else tuple(_kind_of(a) for a in args)
        if sig is not None and len(args) != len(sig.params):
            raise McusimError(f"{symbol} takes {len(sig.params)} argument(s) ({', '.join(sig.params) or 'none'}), "
                              f"but {len(args)} were given")
        sp = self._place_arguments(symbol, args, kinds)
        stack_lo = self.static.stack_lo
        paint_stack(self.sram, self.sram_origin, stack_lo, sp)
        uc = self.uc
        uc.reg_write(A.UC_ARM_REG_SP, sp)
        uc.reg_write(A.UC_ARM_REG_LR, self._return | 1)
        if self.model is not None:
            self.model.start_call(entry, max_cycles)
        self._last_fault = None
        try:
            with _SIGNALS.stopping(uc):
                uc.emu_start(entry | 1, self._return)
        except UcError as exc:
            raise self._fault_from(exc) from None
        if self._last_fault is not None:
            raise self._fault(*self._last_fault)
        if self.model is not None and self.model.state[S.STOPPED]:
            raise self._fault("cycle-budget", f"the call to {symbol} exceeded its budget of {max_cycles} cycles "
                              f"(raise --max-cycles, or look for an endless loop)")
        pc = uc.reg_read(A.UC_ARM_REG_PC)
        if pc != self._return:
            raise self._fault("stopped", f"emulation stopped before {symbol} returned")
        m = self.model
        self._cycles_before_call += m.cycles if m else 0
        return CallResult(symbol, self._return_value(sig, kinds), m.cycles if m else 0,
                          m.instructions if m else 0, stack_peak(self.sram, self.sram_origin, stack_lo, sp),
                          self.hclk_mhz * 1e6, m.counter("FLASH_STALLS") if m else 0,
                          m.counter("TAKEN_BRANCHES") if m else 0)

    def _place_arguments(self, symbol: str, args, kinds) -> int:
        core, fp, stacked = [], [], []
        for value, kind in zip(args, kinds):
            if isinstance(value, Buffer):
                value = value.address
            if kind == "float":
                if math.isfinite(float(value)) and not abs(float(value)) <= 3.4028234663852886e38:
                    raise McusimError(f"argument {value!r} of {symbol} is beyond the float32 range (+-3.4e38)")
                bits = struct.unpack("<I", struct.pack("<f", float(value)))[0]
                if self.fw.soft_float_abi:
                    (core if len(core) < 4 else stacked).append(bits)
                else:
                    (fp if len(fp) < 16 else stacked).append(bits)
            elif kind in ("int", "uint", "pointer"):
                if not isinstance(value, (int, np.integer)):
                    raise McusimError(f"argument {value!r} of {symbol} must be an integer or a Buffer ({kind})")
                if not -(1 << 31) <= int(value) < 1 << 32:
                    raise McusimError(f"argument {value} of {symbol} does not fit a 32-bit register "
                                      f"(-2^31 .. 2^32-1)")
                (core if len(core) < 4 else stacked).append(int(value) & 0xFFFF_FFFF)
            else:
                raise McusimError(f"{symbol} takes a {kind} argument; mcusim calls pass int, unsigned, "
                                  f"pointer and float arguments only")
        for i, v in enumerate(core):
            self.uc.reg_write(A.UC_ARM_REG_R0 + i, v)
        for i, v in enumerate(fp):
            self.uc.reg_write(A.UC_ARM_REG_S0 + i, v)
        sp = self.static.stack_hi - 4 * len(stacked)
        sp &= ~7
        for i, v in enumerate(stacked):
            self.uc.mem_write(sp + 4 * i, struct.pack("<I", v))
        return sp

    def _return_value(self, sig, kinds):
        rtype = sig.returns if sig is not None else "int"
        if rtype == "void":
            return None
        if rtype == "float":
            bits = self.uc.reg_read(A.UC_ARM_REG_R0 if self.fw.soft_float_abi else A.UC_ARM_REG_S0)
            return struct.unpack("<f", struct.pack("<I", bits))[0]
        r0 = self.uc.reg_read(A.UC_ARM_REG_R0)
        return r0 - (1 << 32) if rtype == "int" and r0 & 0x8000_0000 else r0

    # -- timing view for the SCS ---------------------------------------------------------------
    def _clock(self, uc, address: int) -> int:
        """Cycle count at the load reading `address` (0 without a timing model)."""
        if self.model is None:
            return 0
        block_pc = uc.reg_read(A.UC_ARM_REG_PC)
        blocks = self.model.counter("BLOCKS")
        self._reads_in_block = self._reads_in_block + 1 if blocks == self._block_seen else 0
        self._block_seen = blocks
        pc = self.model.access_pc(block_pc, address, self._reads_in_block, self._reg)
        return self._cycles_before_call + self.model.cycles_at(pc)

    def _reg(self, name: str) -> int:
        return self.uc.reg_read(getattr(A, f"UC_ARM_REG_{REG_ALIASES.get(name, name).upper()}"))

    # -- CCR.DIV_0_TRP --------------------------------------------------------------------------
    def _on_div0_trap(self, enabled: bool) -> None:
        """Firmware turned divide-by-zero trapping on: watch every SDIV/UDIV from the next block on (code
        hooks cost a Python call per executed divide, so they exist only once trapping was asked for)."""
        if not enabled or self._div_hooks:
            return
        insns = self.model.insns if self.model is not None else decode(self.fw, rules_for(self.board.core.timing_rules))
        for d in insns:
            if d.text.split(" ", 1)[0] in ("sdiv", "udiv"):
                divisor = d.text.rsplit(",", 1)[-1].strip()
                self._div_hooks.append(self.uc.hook_add(UC_HOOK_CODE, self._on_divide, divisor,
                                                        d.address, d.address))
        self.uc.ctl_flush_tb()

    def _on_divide(self, uc, address, size, divisor):
        if self.scs.div0_trap and self._reg(divisor) == 0:
            self._last_fault = ("usage-fault", f"integer division by zero ({divisor} = 0) with CCR.DIV_0_TRP set: "
                                f"the core raises a UsageFault (DIVBYZERO); without the trap it returns 0")
            uc.emu_stop()

    # -- faults --------------------------------------------------------------------------------
    def _on_bad_access(self, uc, access, address, size, value, user_data):
        what = {C.UC_MEM_READ_UNMAPPED: "read", C.UC_MEM_WRITE_UNMAPPED: "write",
                C.UC_MEM_FETCH_UNMAPPED: "fetch", C.UC_MEM_WRITE_PROT: "write",
                C.UC_MEM_FETCH_PROT: "fetch", C.UC_MEM_READ_PROT: "read"}.get(access, "access")
        sp = uc.reg_read(A.UC_ARM_REG_SP)
        lo = self.static.stack_lo
        if what == "write" and address < lo and (sp <= lo + 64 or lo - 256 <= address):
            self._last_fault = ("stack-overflow", f"the stack grew below its {self.static.stack_hi - lo}-byte "
                                f"reservation (write to {address:#010x}, sp {sp:#010x}); build with a larger "
                                f"--stack-size or use less stack")
        elif access == C.UC_MEM_FETCH_PROT and (mem := self._memory_at(address)) is not None:
            self._last_fault = ("no-execute", f"an instruction fetch at {address:#010x} from {mem.name}, a "
                                f"{mem.kind} region the core cannot execute from (it holds data only)")
        elif access == C.UC_MEM_WRITE_PROT and self.board.flash.origin <= address < self.board.flash.end:
            self._last_fault = ("flash-write", f"a {size}-byte write of {value:#x} to flash at {address:#010x} "
                                f"(flash is read-only at run time)")
        else:
            self._last_fault = (f"unmapped-{what}", f"a {size}-byte {what} at {address:#010x}, where "
                                f"{self.board.name} has no memory")
        return False

    def _memory_at(self, address: int):
        return next((m for m in self.board.memories for at in (m.origin, *m.aliases)
                     if at <= address < at + m.size), None)

    def _on_exception(self, uc, intno, user_data):
        names = {1: "undefined-instruction", 2: "svc", 7: "breakpoint"}
        self._last_fault = (names.get(intno, f"exception-{intno}"), f"the core raised exception {intno}")
        if intno == 2:                     # Unicorn reports an SVC with the pc past it; name the SVC itself
            self._last_fault += (uc.reg_read(A.UC_ARM_REG_PC) - 2,)
        uc.emu_stop()

    def _fault_from(self, exc: UcError) -> Fault:
        if self._last_fault is not None:
            return self._fault(*self._last_fault)
        if exc.errno == C.UC_ERR_INSN_INVALID:
            return self._fault("undefined-instruction", "an undefined instruction")
        return self._fault("emulator-error", f"Unicorn stopped with '{exc}'")

    def _fault(self, kind: str, detail: str, pc: int | None = None) -> Fault:
        uc = self.uc
        regs = {name: uc.reg_read(getattr(A, f"UC_ARM_REG_{name.upper()}")) for name in CORE_REGS}
        pc = regs["pc"] if pc is None else pc
        try:
            code = bytes(uc.mem_read(pc, 4))
            insn = next(disassembler().disasm(code, pc, 1), None)
            text = f"{insn.mnemonic} {insn.op_str}".strip() if insn else f"undecodable {code.hex()}"
        except UcError:
            text = "no code at this address"
        return Fault(kind, detail, pc, self.fw.describe(pc), text, regs)

    # -- memory summary ------------------------------------------------------------------------
    def memory_summary(self, stack_peak_bytes: int) -> dict[str, int]:
        s = self.static
        return {
            "static_sram_bytes": s.static_sram_bytes,
            "stack_reserved_bytes": s.stack_hi - s.stack_lo,
            "stack_peak_bytes": stack_peak_bytes,
            "buffers_peak_bytes": self.allocator.peak,
            "sram_peak_bytes": s.static_sram_bytes + stack_peak_bytes + self.allocator.peak,
            "sram_limit_bytes": self.board.sram_block[1],
            "flash_bytes": s.flash_bytes,
            "flash_limit_bytes": self.board.flash.size,
        }


def _kind_of(value) -> str:
    if isinstance(value, (float, np.floating)):
        return "float"
    return "pointer" if isinstance(value, Buffer) else "int"
