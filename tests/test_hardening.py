"""Issue 11's failure list, one regression test per example not covered beside its feature: crafted ELF
damage, an SVC fault, paths that are not files, damaged checkpoints, Ctrl-C before anything was saved,
output into a closed pipe, and the README's install line."""
import json
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

from elftools.elf.elffile import ELFFile

from conftest import FIRMWARE
from mcusim.toolchain import build

REPO = Path(__file__).resolve().parents[1]


def mcusim(*args, **kw):
    return subprocess.run([sys.executable, "-m", "mcusim.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=300, **kw)


def refused(proc, message, code=2):
    assert proc.returncode == code, proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr


def patched(elf: Path, out: Path, symbols: dict[str, int] = {}, sram_executable: bool = False) -> Path:
    """A copy of a linked ELF with symbol values changed, or its SRAM segments marked executable."""
    data = bytearray(elf.read_bytes())
    with open(elf, "rb") as f:
        e = ELFFile(f)
        tab = e.get_section_by_name(".symtab")
        for i, s in enumerate(tab.iter_symbols()):
            if s.name in symbols:
                at = tab["sh_offset"] + i * tab["sh_entsize"] + 4                  # Elf32_Sym.st_value
                data[at:at + 4] = struct.pack("<I", symbols[s.name])
        for i, seg in enumerate(e.iter_segments()):
            if sram_executable and seg["p_vaddr"] >= 0x2000_0000:
                at = e["e_phoff"] + i * e["e_phentsize"] + 24                     # Elf32_Phdr.p_flags
                data[at:at + 4] = struct.pack("<I", seg["p_flags"] | 1)
    out.write_bytes(bytes(data))
    return out


def test_crafted_firmware_damage_is_explained(tmp_path, basics_elf):
    call = ["--call", "add_int", "--arg", "1", "--arg", "2"]
    # a stack symbol outside SRAM (was a raw UcError, then a silent run with a wrong stack peak)
    for name, value in (("__stack_top", 0x4000_0000), ("__stack_bottom", 0x1000)):
        elf = patched(basics_elf, tmp_path / f"{name}.elf", {name: value})
        refused(mcusim("run", elf, *call), "outside stm32l4r5zi's SRAM")
    # code outside every loadable segment (was StopIteration): a fetch fault with its report
    elf = patched(basics_elf, tmp_path / "outside.elf", {"add_int": 0x0900_0001})
    refused(mcusim("run", elf, *call), "unmapped-fetch", code=3)
    # an SRAM segment marked executable (was 1.5 GiB of decode tables and MemoryError)
    elf = patched(basics_elf, tmp_path / "xsram.elf", sram_executable=True)
    proc = mcusim("run", elf, *call, "--json")
    assert proc.returncode == 0 and json.loads(proc.stdout)["return_value"] == 3, proc.stderr


def test_an_svc_fault_names_the_svc(tmp_path):
    src = tmp_path / "svc.c"
    src.write_text('#include "mcusim.h"\nint supervisor(int a) { __asm volatile("svc #5"); return a + 1; }\n')
    elf = build([src], opt="-O1")
    proc = mcusim("run", elf, "--call", "supervisor", "--arg", "1")
    refused(proc, "svc", code=3)
    assert "svc #5" in proc.stderr.lower(), proc.stderr


def test_paths_that_are_not_files(tmp_path, basics_elf):
    refused(mcusim("run", tmp_path, "--call", "add_int"), str(tmp_path))
    refused(mcusim("size", basics_elf, "--board", tmp_path), "board")
    refused(mcusim("cc", FIRMWARE / "basics.c", "-o", tmp_path / "missing" / "x.elf"), "does not exist")
    refused(mcusim("profile", basics_elf, "--call", "add_int", "--arg", "1", "--arg", "2", "--callgrind", tmp_path),
            "not a regular file")


def _small_run(out: Path) -> list[str]:
    return ["train", "cnn_digits", "--precision", "fp32", "--epochs", "1", "--batch", "20", "--train-limit", "40",
            "--crosscheck-samples", "1", "--quiet", "--out", str(out)]


def test_resume_with_an_empty_or_damaged_checkpoint_is_explained(tmp_path):
    out = tmp_path / "run"
    assert mcusim(*_small_run(out)).returncode == 0
    good = (out / "checkpoint.npz").read_bytes()
    for damage in (b"", b"not a zip file" * 10, good[: len(good) // 2], good[:-40] + bytes(40)):
        (out / "checkpoint.npz").write_bytes(damage)               # was EOFError, BadZipFile, ...
        refused(mcusim(*_small_run(out), "--resume"), "checkpoint.npz is unreadable or damaged")
    import io

    import numpy as np
    with np.load(io.BytesIO(good)) as ck:
        arrays = {k: ck[k] for k in ck.files if k != "results"}     # was KeyError
    np.savez(out / "checkpoint.npz", **arrays)
    refused(mcusim(*_small_run(out), "--resume"), "checkpoint.npz is unreadable or damaged")


def test_ctrl_c_before_the_first_epoch_ends_says_nothing_was_saved(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "mcusim.cli", *_small_run(out)[:-3], "--epochs", "50",
                             "--out", str(out)], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    assert "digits" in proc.stderr.readline()                       # the data set is loaded: training starts
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 130, err
    assert not (out / "results.json").exists(), "the first epoch ended before the interrupt; make it longer"
    assert "interrupted (nothing was saved)" in err and "Traceback" not in err


def test_output_into_a_closed_pipe_ends_quietly(basics_elf):
    """`mcusim ... | head -1`: the reader goes away; no BrokenPipeError traceback."""
    proc = subprocess.Popen([sys.executable, "-m", "mcusim.cli", "size", str(basics_elf), "--top", "100000"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    proc.wait(timeout=120)
    assert "Traceback" not in err and "BrokenPipeError" not in err, err


def test_the_readme_install_line_installs_the_test_tools():
    """The README's first command followed by its test command must work (pytest is a test extra)."""
    install = next(line for line in (REPO / "README.md").read_text().splitlines() if line.startswith("pip install"))
    assert '-e ".[test]"' in install
    assert "pytest" in (REPO / "pyproject.toml").read_text().split("[project.optional-dependencies]")[1].split("\n[")[0]
