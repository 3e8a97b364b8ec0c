"""ELFs linked with the user's own linker script run, profile and size when their memory fits the board:
the stack comes from the usual symbols or the vector table, .data/.bss are set up, and what could not be
determined is said plainly."""
import subprocess
import sys

import pytest

from mcusim.emulator import Machine

SOURCE = r"""
#include <stdint.h>
int table[4] = {1, 2, 3, 4};          /* .data: copied from flash */
int zeroed[8];                        /* .bss */
void Reset_Handler(void) { for (;;) { } }
__attribute__((section(".vectors"), used)) const void *vectors[2] = { (void *)STACK_TOP, Reset_Handler };
int sum_plus(int k) { int s = k; for (int i = 0; i < 4; i++) s += table[i] + zeroed[i]; zeroed[0] = s; return s; }
int deep(int n) { volatile char buf[64]; buf[0] = (char)n; return n ? deep(n - 1) + buf[0] : 0; }
"""
SCRIPT = """
MEMORY {{ ROM (rx) : ORIGIN = 0x08000000, LENGTH = 64K
         RAM (rwx) : ORIGIN = 0x20000000, LENGTH = 32K }}
ENTRY(Reset_Handler)
SECTIONS {{
  .text : {{ KEEP(*(.vectors)) *(.text*) *(.rodata*) }} > ROM
  .data : {{ *(.data*) }} > RAM AT > ROM
  .bss : {{ *(.bss* COMMON) }} > RAM
  {symbols}
}}
"""


def link(tmp_path, symbols: str, stack_top: str):
    src, ld, elf = tmp_path / "app.c", tmp_path / "app.ld", tmp_path / "app.elf"
    src.write_text(SOURCE)
    ld.write_text(SCRIPT.format(symbols=symbols))
    subprocess.run([sys.executable, "-m", "ziglang", "cc", "-target", "thumb-freestanding-eabihf",
                    "-mcpu=cortex_m4+vfp4d16sp", "-O1", "-g", "-nostdlib", f"-DSTACK_TOP={stack_top}", "-T", str(ld),
                    "-Wl,--entry=Reset_Handler", str(src), "-o", str(elf)], check=True, capture_output=True)
    return elf


def mcusim(*args):
    return subprocess.run([sys.executable, "-m", "mcusim.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=300)


def test_user_linked_elf_runs_with_stack_from_symbols(tmp_path):
    elf = link(tmp_path, "_estack = 0x20008000; __StackLimit = 0x20007000;", "0x20008000")
    m = Machine(elf)
    assert m.static.stack_hi == 0x2000_8000 and m.static.stack_lo == 0x2000_7000 and not m.static.notes
    assert m.call("sum_plus", 5).return_value == 15
    assert m.call("sum_plus", 0).return_value == 10 + 15        # .bss was zeroed, then kept the first call's write
    assert 64 < m.call("deep", 10).stack_peak_bytes < 0x1000      # painted and measured in [limit, top)


def test_stack_from_the_vector_table_is_said_plainly(tmp_path):
    elf = link(tmp_path, "", "0x20006000")
    proc = mcusim("run", elf, "--call", "sum_plus", "--arg", 1)
    assert proc.returncode == 0, proc.stderr
    assert "returned 11" in proc.stdout
    assert "stack top 0x20006000 taken from the vector table" in proc.stderr
    assert "stack size unknown" in proc.stderr
    size = mcusim("size", elf)
    assert size.returncode == 0 and "note: stack top" in size.stdout
    profile = mcusim("profile", elf, "--call", "deep", "--arg", 3)
    assert profile.returncode == 0 and "deep" in profile.stdout


def test_no_stack_anywhere_is_one_clear_error(tmp_path):
    elf = link(tmp_path, "", "0x1234")
    proc = mcusim("run", elf, "--call", "sum_plus", "--arg", 1)
    assert proc.returncode == 2 and "stack could not be found" in proc.stderr and "Traceback" not in proc.stderr
