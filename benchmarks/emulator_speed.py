"""Emulator speed with and without the cycle model, on layer-sized fp32 and int8 matrix multiplies.

Runs, in one process on the same firmware and data:
  (a0) raw Unicorn: the same memories, no hook of any kind;
  (a)  mcusim Machine without timing (fault and exception hooks only);
  (b)  mcusim Machine with the native cycle model (and stack painting / memory accounting);
  (c)  mcusim Machine without timing plus a plain Python UC_HOOK_BLOCK callback.
Prints emulated MIPS, simulated cycles per host second and the ratios (b)/(a0), (b)/(a), (b)/(c).
Usage: python benchmarks/emulator_speed.py [--repeat N]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from unicorn import UC_ARCH_ARM, UC_HOOK_BLOCK, UC_MODE_MCLASS, UC_MODE_THUMB, UC_PROT_ALL, UC_PROT_EXEC, UC_PROT_READ, Uc
from unicorn import arm_const as A

from mcusim.emulator import Machine
from mcusim.toolchain import build

HERE = Path(__file__).parent
M, K, N = 32, 784, 32           # a 784-input fully connected layer over 32 outputs, 32 samples


def raw_run(machine: Machine, symbol: str, args: list[int]) -> float:
    """Time one call on a hook-free Unicorn that shares the machine's memories."""
    uc = Uc(UC_ARCH_ARM, UC_MODE_THUMB | UC_MODE_MCLASS)
    uc.ctl_set_cpu_model(A.UC_CPU_ARM_CORTEX_M4)
    b = machine.board
    uc.mem_map_ptr(b.flash.origin, b.flash.size, UC_PROT_READ | UC_PROT_EXEC, machine.flash.ctypes.data)
    uc.mem_map_ptr(machine.sram_origin, machine.sram.size, UC_PROT_ALL, machine.sram.ctypes.data)
    ret = machine.fw.address("__mcusim_return")
    best = float("inf")
    for _ in range(2):
        for i, v in enumerate(args):
            uc.reg_write(A.UC_ARM_REG_R0 + i, v) if i < 4 else None
        uc.reg_write(A.UC_ARM_REG_SP, machine.static.stack_hi - 8)
        uc.mem_write(machine.static.stack_hi - 8, int(args[4]).to_bytes(4, "little") + int(args[5]).to_bytes(4, "little"))
        uc.reg_write(A.UC_ARM_REG_LR, ret | 1)
        t = time.perf_counter()
        uc.emu_start(machine.fw.address(symbol) | 1, ret)
        best = min(best, time.perf_counter() - t)
    return best


def timed_call(machine: Machine, symbol: str, args, repeat: int):
    machine.call(symbol, *args)                      # warm: translation cache, I-cache
    best, result = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        result = machine.call(symbol, *args)
        best = min(best, time.perf_counter() - t)
    return best, result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    opts = ap.parse_args()
    elf = build([HERE / "firmware" / "matmul.c"], opt="-O3")
    rng = np.random.default_rng(0)
    rows = []
    for symbol, dtype, out_dtype in (("matmul_f32", np.float32, np.float32), ("matmul_s8", np.int8, np.int32)):
        a_host = rng.integers(-100, 100, (M, K)).astype(dtype)
        b_host = rng.integers(-100, 100, (K, N)).astype(dtype)
        machines = {}
        for name, timing in (("a", False), ("b", True), ("c", False)):
            m = Machine(elf, timing=timing)
            a, b, c = m.put(a_host), m.put(b_host), m.alloc((M, N), out_dtype)
            args = (a, b, c, M, K, N)
            if name == "c":
                blocks = [0]
                def on_block(uc, address, size, user_data, blocks=blocks):
                    blocks[0] += 1
                m.uc.hook_add(UC_HOOK_BLOCK, on_block)
                m.uc.ctl_flush_tb()
            machines[name] = (m, args)
        ref = a_host.astype(np.float64) @ b_host.astype(np.float64)
        times = {}
        m_b, args_b = machines["b"]
        times["a0"] = raw_run(m_b, symbol, [x.address if hasattr(x, "address") else x for x in args_b])
        for name, (m, args) in machines.items():
            times[name], res = timed_call(m, symbol, args, opts.repeat if name != "c" else 1)
            if name == "b":
                result = res
                out = args[2].array
                assert np.allclose(out, ref, rtol=1e-4), f"{symbol} gave a wrong result"
        insns, cycles = result.instructions, result.cycles
        print(f"\n{symbol}: {M}x{K} @ {K}x{N}, {insns / 1e6:.2f} M instructions, {cycles / 1e6:.2f} M cycles "
              f"({cycles / insns:.2f} cycles/instruction, {M * K * N / cycles:.3f} MAC/cycle at 120 MHz / 5 WS)")
        for name, label in (("a0", "raw Unicorn, no hooks"), ("a", "Machine, no timing"),
                            ("b", "Machine + native cycle model"), ("c", "Machine + Python block hook")):
            t = times[name]
            print(f"  ({name:<2}) {label:<30} {t * 1e3:9.2f} ms  {insns / t / 1e6:8.1f} MIPS"
                  + (f"  {cycles / t / 1e6:8.1f} M simulated cycles/s" if name == "b" else ""))
        print(f"  ratio (b)/(a0) = {times['a0'] / times['b']:.2f}   (b)/(a) = {times['a'] / times['b']:.2f}   "
              f"(b)/(c) = {times['c'] / times['b']:.1f}x faster   "
              f"simulated/real-time at 120 MHz = {cycles / times['b'] / 120e6:.2f}x")
        rows.append(times)


if __name__ == "__main__":
    main()
