"""The command line as a user meets it: build, run --json, profile, size, and bad input without tracebacks."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import FIRMWARE

RUN_KEYS = {"cycles", "instructions", "return_value", "static_sram_bytes", "stack_peak_bytes",
            "sram_peak_bytes", "flash_bytes", "hclk_hz", "seconds"}


def mcusim(*args, cwd=None, timeout=120):
    return subprocess.run([sys.executable, "-m", "mcusim.cli", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, timeout=timeout)


@pytest.fixture(scope="module")
def elf(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "basics.elf"
    # the suite's first `mcusim cc`: on a cold cache it builds picolibc first (3 min on a loaded 2-core machine)
    proc = mcusim("cc", FIRMWARE / "basics.c", "-o", out, "-O3", timeout=900)
    assert proc.returncode == 0, proc.stderr
    return out


def test_run_json_int_and_float(elf):
    proc = mcusim("run", elf, "--call", "add_int", "--arg", "40", "--arg", "2", "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert RUN_KEYS <= report.keys()
    assert report["return_value"] == 42 and report["hclk_hz"] == 120e6
    assert report["seconds"] == pytest.approx(report["cycles"] / 120e6)
    assert 0 < report["static_sram_bytes"] <= report["sram_peak_bytes"] <= 640 * 1024

    proc = mcusim("run", elf, "--call", "affine", "--arg", "2.5", "--arg", "4", "--arg", "-1", "--json",
                  "--hclk-mhz", "80")
    report = json.loads(proc.stdout)
    assert report["return_value"] == 9.0 and report["hclk_hz"] == 80e6 and report["flash_wait_states"] == 3


def test_run_text_profile_and_size(elf):
    proc = mcusim("run", elf, "--call", "work", "--arg", "100")
    assert proc.returncode == 0 and "cycles/instruction" in proc.stdout and "stack peak" in proc.stdout
    proc = mcusim("profile", elf, "--call", "time_work", "--arg", "100")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    work_row = next(line for line in lines if line.startswith("work "))
    assert int(work_row.split()[1]) == 1                     # called once
    assert "hottest instructions" in proc.stdout
    proc = mcusim("size", elf)
    assert proc.returncode == 0 and ".text" in proc.stdout and "of 655360" in proc.stdout


@pytest.mark.parametrize("case, args, exit_code, message", [
    ("not an ELF", ["run", FIRMWARE / "basics.c", "--call", "x"], 2, "is not an ELF file"),
    ("missing file", ["run", "nope.elf", "--call", "x"], 2, "does not exist"),
    ("host ELF", ["run", sys.executable, "--call", "x"], 2, "not 32-bit ARM"),
    ("missing symbol", ["run", "{elf}", "--call", "no_such_fn"], 2, "symbol 'no_such_fn' is not in"),
    ("bad argument", ["run", "{elf}", "--call", "add_int", "--arg", "abc", "--arg", "1"], 2, "neither an integer"),
    ("bad clock", ["run", "{elf}", "--call", "add_int", "--hclk-mhz", "500"], 2, "outside 0..120"),
    ("endless loop", ["run", "{faults}", "--call", "spin", "--max-cycles", "50000"], 3, "exceeded its budget"),
    ("fault", ["run", "{faults}", "--call", "write_flash", "--arg", "1"], 3, "flash-write"),
    ("over SRAM", ["cc", FIRMWARE / "too_big.c", "-o", "{tmp}/big.elf"], 2, "over by 77.8 kB"),
    ("compile error", ["cc", "{tmp}/broken.c", "-o", "{tmp}/broken.elf"], 2, "failed to build"),
    ("int over 32 bits", ["run", "{elf}", "--call", "add_int", "--arg", "4294967296", "--arg", "1"], 2,
     "does not fit a 32-bit register"),
    ("float over float32", ["run", "{elf}", "--call", "affine", "--arg", "1e39", "--arg", "1", "--arg", "1"], 2,
     "beyond the float32 range"),
    ("zero clock", ["run", "{elf}", "--call", "add_int", "--arg", "1", "--arg", "1", "--hclk-mhz", "0"], 2,
     "outside 0..120"),
    ("NaN clock", ["run", "{elf}", "--call", "add_int", "--arg", "1", "--arg", "1", "--hclk-mhz", "nan"], 2,
     "outside 0..120"),
    ("zero budget", ["run", "{elf}", "--call", "add_int", "--arg", "1", "--arg", "1", "--max-cycles", "0"], 2,
     "cycle budget must be between 1"),
    ("huge budget", ["run", "{elf}", "--call", "add_int", "--arg", "1", "--arg", "1", "--max-cycles",
                     "99999999999999999999"], 2, "cycle budget must be between 1"),
    ("output is a device", ["cc", FIRMWARE / "basics.c", "-o", "/dev/null"], 2, "not a regular file"),
    ("output is a folder", ["cc", FIRMWARE / "basics.c", "-o", "{tmp}"], 2, "not a regular file"),
    ("firmware is a folder", ["run", "{tmp}", "--call", "add_int"], 2, "is a folder; pass the .elf"),
    ("firmware is a device", ["size", "/dev/null"], 2, "not a regular file (a pipe, socket or device)"),
    ("no cases", ["crosscheck", "--ops", "relu", "--cases", "0"], 2, "--cases must be at least 1"),
    ("budget covers start-up", ["run", "{elf}", "--call", "add_int", "--arg", "1", "--arg", "1", "--max-cycles", "5"],
     3, "__mcusim_init exceeded its budget of 5 cycles"),
])
def test_bad_input_is_one_clear_error(case, args, exit_code, message, elf, faults_elf, tmp_path):
    (tmp_path / "broken.c").write_text("int f( { return 1; }\n")
    args = [str(a).format(elf=elf, faults=faults_elf, tmp=tmp_path) for a in args]
    proc = mcusim(*args)
    assert proc.returncode == exit_code, (case, proc.stdout, proc.stderr)
    assert message in proc.stderr, (case, proc.stderr)
    assert "Traceback" not in proc.stderr and proc.stderr.startswith("mcusim ")


def test_help_texts_keep_the_unit_convention():
    """kB = 1000 bytes everywhere (mcusim.units): no KB, KiB or MiB in any command's help."""
    import argparse
    import re

    from mcusim.cli import build_parser

    def helps(parser):
        yield parser.format_help()
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    yield from helps(sub)
    texts = list(helps(build_parser()))
    assert len(texts) > 10
    for text in texts:
        assert not re.search(r"\bKB\b|KiB|MiB|GiB", text), text
