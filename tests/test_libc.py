"""The C library of `mcusim cc`: printf, string and math functions and double arithmetic link and run with
both toolchains (picolibc built with zig; the gcc toolchain's newlib when it is installed), the library's
memcpy wins over start-up's fallback, the soft-float ABI, pass-through flags and their errors."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from capstone import CS_ARCH_ARM, CS_MODE_MCLASS, CS_MODE_THUMB, Cs

from conftest import FIRMWARE
from mcusim.emulator import Machine
from mcusim.firmware import Firmware
from mcusim.toolchain import build

PROGRAM = r"""
#include <math.h>
#include <stdio.h>
#include <string.h>

static const char greeting[] = "hello";
static int unused_helper(int x) { return x * 7; }

int check(int n) {
    char a[16], b[16];
    memcpy(a, greeting, sizeof greeting);
    strcpy(b, "hello");
    volatile double x = n;
    double y = x * 1.5 + 0.25;
    float r = sqrtf((float)n) + expf(0.0f);
    printf("n=%d len=%u cmp=%d y=%.3f r=%.3f\n", n, (unsigned)strlen(a), memcmp(a, b, 6), y, (double)r);
    return (int)(y * 4) + (int)(r * 100);
}

int never_called_from_c(void) { return 5; }
"""
EXPECTED_OUTPUT = "n=9 len=5 cmp=0 y=13.750 r=4.000\n"
TOOLCHAINS = ["zig", pytest.param("gcc", marks=pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None,
                                                                   reason="arm-none-eabi-gcc not installed"))]


def mcusim(*args):
    return subprocess.run([sys.executable, "-m", "mcusim.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=900)


@pytest.fixture(scope="module")
def program(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("libc") / "program.c"
    src.write_text(PROGRAM)
    return src


@pytest.mark.parametrize("toolchain", TOOLCHAINS)
@pytest.mark.parametrize("libc", ["nano", "full"])
def test_printf_strings_math_and_doubles_run(program, toolchain, libc, tmp_path):
    elf = tmp_path / "p.elf"
    proc = mcusim("cc", program, "-o", elf, "--toolchain", toolchain, "--libc", libc, "-l", "m")
    assert proc.returncode == 0, proc.stderr
    out = []
    m = Machine(elf, write_char=out.append)
    assert m.call("check", 9).return_value == 55 + 400
    assert "".join(out) == EXPECTED_OUTPUT
    symbols = Firmware.load(elf).symbols
    assert "never_called_from_c" in symbols              # global functions are kept for the host to call
    assert "unused_helper" not in symbols and "qsort" not in symbols      # --gc-sections drops the rest


CONSTRUCTORS = r"""
static volatile int trace;
__attribute__((constructor(101))) static void first(void) { trace = trace * 10 + 1; }
__attribute__((constructor)) static void last(void) { trace = trace * 10 + 3; }
__attribute__((constructor(102))) static void second(void) { trace = trace * 10 + 2; }
int get_trace(void) { return trace; }
"""


@pytest.mark.parametrize("toolchain", TOOLCHAINS)
@pytest.mark.parametrize("libc", ["nano", "none"])
def test_constructors_run_once_in_priority_order_before_the_first_call(toolchain, libc, tmp_path):
    """Start-up runs .init_array as a C library's crt0 does (volatile, so the compiler cannot fold them)."""
    src = tmp_path / "ctors.c"
    src.write_text(CONSTRUCTORS)
    elf = build([src], toolchain=toolchain, libc=libc, gc_sections=True)
    m = Machine(elf)
    assert m.call("get_trace").return_value == 123
    assert m.call("get_trace").return_value == 123


def test_the_libraries_memcpy_is_linked_not_the_fallback(program):
    with_libc = build([program], libc="nano", gc_sections=True)
    without = build([FIRMWARE / "basics.c"])
    assert "memcpy" in Firmware.load(with_libc).symbols and "freestanding_mem.c" not in _file_symbols(with_libc)
    assert "freestanding_mem.c" in _file_symbols(without) and "memset" in Firmware.load(without).symbols


def test_fallback_memset_does_not_call_itself():
    fw = Firmware.load(build([FIRMWARE / "basics.c"], opt="-O3"))
    md = Cs(CS_ARCH_ARM, CS_MODE_THUMB | CS_MODE_MCLASS)
    for name in ("memset", "memcpy", "memmove"):
        sym = fw.symbols[name]
        code = next(seg.data[sym.addr - seg.vaddr: sym.addr - seg.vaddr + sym.size] for seg in fw.segments
                    if seg.vaddr <= sym.addr < seg.vaddr + len(seg.data))
        calls = [i for i in md.disasm(code, sym.addr) if i.mnemonic in ("bl", "b.w", "b") and
                 i.op_str == f"#{hex(fw.symbols[name].addr)}"]
        assert not calls, f"{name} calls itself"


def test_soft_float_abi_passes_floats_in_core_registers(tmp_path):
    src = tmp_path / "soft.c"
    src.write_text("float second(int i, float a, float b) { return i ? a : b; }\n"
                   "unsigned bits(float x) { union { float f; unsigned u; } v = { x }; return v.u; }\n")
    elf = tmp_path / "soft.elf"
    proc = mcusim("cc", src, "-o", elf, "--float-abi", "soft", "--libc", "none")
    assert proc.returncode == 0, proc.stderr
    fw = Firmware.load(elf)
    assert fw.soft_float_abi
    m = Machine(fw)
    assert m.call("second", 0, 1.5, 2.5).return_value == 2.5 and m.call("second", 1, 1.5, 2.5).return_value == 1.5
    assert m.call("bits", 1.0).return_value == 0x3F80_0000


@pytest.mark.parametrize("args, message", [
    (["--cflags=-mno-such-flag"], "(compiling)"),
    (["-l", "nosuchlibrary"], "(linking)"),
    (["-l-bad"], "-l takes a library name"),
    (["--cflags", '"unbalanced'], "cannot be split into flags"),
])
def test_bad_flags_and_libraries_are_one_clear_error(args, message, tmp_path):
    proc = mcusim("cc", FIRMWARE / "basics.c", "-o", tmp_path / "x.elf", "--libc", "none", *args)
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr


def _file_symbols(elf: Path) -> set[str]:
    from elftools.elf.elffile import ELFFile
    with open(elf, "rb") as f:
        tab = ELFFile(f).get_section_by_name(".symtab")
        return {s.name for s in tab.iter_symbols() if s["st_info"]["type"] == "STT_FILE"}
