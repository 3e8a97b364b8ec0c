"""Issue 11's failure list, one regression test per example not covered beside its feature: crafted ELF
damage, an SVC fault, paths that are not files, unreadable inputs, every output option aimed at a folder,
a pipe, a symlink or a missing folder, damaged checkpoints, Ctrl-C before anything was saved, output into
a closed pipe, and the README's install line."""
import json
import os
import signal
import stat
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from conftest import FIRMWARE, interruptible, no_read_permission
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


DEBUG_SECTIONS = (".debug_info", ".debug_abbrev", ".debug_line", ".debug_str", ".debug_frame")


@pytest.mark.parametrize("section", DEBUG_SECTIONS)
def test_damaged_dwarf_is_malformed_firmware(tmp_path, basics_elf, section):
    """Byte damage inside one DWARF section (was AssertionError, KeyError, ELFParseError, DWARFError or
    UnicodeDecodeError from pyelftools): what mcusim reads from it either works or is one FirmwareError."""
    import random

    from mcusim.firmware import Firmware, FirmwareError
    raw = basics_elf.read_bytes()
    with open(basics_elf, "rb") as f:
        found = ELFFile(f).get_section_by_name(section)
        if found is None:
            pytest.skip(f"the toolchain wrote no {section}")
        start, size = found["sh_offset"], found["sh_size"]
    rng = random.Random(section)
    for case in range(25):
        data = bytearray(raw)
        for _ in range(rng.randint(1, 6)):
            at = start + rng.randrange(size)
            data[at] = rng.choice([0x00, 0xFF, 0x7F, 0x80, rng.randrange(256)])
        path = tmp_path / f"{case}.elf"
        path.write_bytes(bytes(data))
        try:
            fw = Firmware.load(path)
            fw.signature("affine")
            fw.source_line(fw.symbols["affine"].addr)
            fw.code_ranges()
        except FirmwareError:
            pass


def test_argument_types_come_from_the_dwarf_encoding_not_the_name(tmp_path, basics_elf):
    """A damaged type name ("float" in .debug_str) once made affine's float arguments and result integers,
    and `unsigned` (DW_ATE_unsigned) results were printed as signed (4294967295 as -1)."""
    from mcusim.firmware import Firmware
    raw = basics_elf.read_bytes()
    assert raw.count(b"\0float\0") == 1
    damaged = tmp_path / "renamed.elf"
    damaged.write_bytes(raw.replace(b"\0float\0", b"\0floa7\0"))
    assert Firmware.load(damaged).signature("affine") == Firmware.load(basics_elf).signature("affine")
    proc = mcusim("run", basics_elf, "--call", "add_unsigned", "--arg", "4294967295", "--arg", "0", "--json")
    assert proc.returncode == 0 and json.loads(proc.stdout)["return_value"] == 4294967295, proc.stderr


def test_a_start_up_that_loops_stops_at_the_budget(tmp_path, basics_elf):
    """Start-up (mcusim's __mcusim_init, made here a `b .`) is budgeted like any call: --max-cycles, or the
    default start-up budget without it; it once hung whatever --max-cycles said."""
    data = bytearray(basics_elf.read_bytes())
    with open(basics_elf, "rb") as f:
        e = ELFFile(f)
        addr = e.get_section_by_name(".symtab").get_symbol_by_name("__mcusim_init")[0]["st_value"] & ~1
        seg = next(s for s in e.iter_segments()
                   if s["p_type"] == "PT_LOAD" and s["p_vaddr"] <= addr < s["p_vaddr"] + s["p_filesz"])
        at = seg["p_offset"] + addr - seg["p_vaddr"]
    data[at:at + 2] = struct.pack("<H", 0xE7FE)                          # Thumb `b .`
    elf = tmp_path / "loops.elf"
    elf.write_bytes(bytes(data))
    call = ["--call", "add_int", "--arg", "1", "--arg", "2"]
    refused(mcusim("run", elf, *call, "--max-cycles", "100000"), "__mcusim_init exceeded its budget of 100000 ",
            code=3)
    from mcusim.emulator import STARTUP_BUDGET
    refused(mcusim("run", elf, *call), f"__mcusim_init exceeded its budget of {STARTUP_BUDGET} ", code=3)


def test_an_endless_call_without_max_cycles_stops_at_the_default_budget(faults_elf, monkeypatch, capsys):
    """Without --max-cycles a call still has a budget (mcusim.cli.DEFAULT_CALL_BUDGET, minutes of emulation;
    lowered here so the test takes a second), for run and profile alike."""
    import mcusim.cli as cli
    monkeypatch.setattr(cli, "DEFAULT_CALL_BUDGET", 200_000)
    for command in ("run", "profile"):
        assert cli.main([command, str(faults_elf), "--call", "spin"]) == 3
        assert "spin exceeded its budget of 200000 cycles" in capsys.readouterr().err


def test_an_svc_fault_names_the_svc(tmp_path):
    src = tmp_path / "svc.c"
    src.write_text('#include "mcusim.h"\nint supervisor(int a) { __asm volatile("svc #5"); return a + 1; }\n')
    elf = build([src], opt="-O1")
    proc = mcusim("run", elf, "--call", "supervisor", "--arg", "1")
    refused(proc, "svc", code=3)
    assert "svc #5" in proc.stderr.lower(), proc.stderr


def test_a_huge_firmware_file_is_refused_before_it_is_read(tmp_path):
    """A 4 GiB input was read whole; the ELF's size is checked first (a sparse file: no disk space used)."""
    huge = tmp_path / "huge.elf"
    with open(huge, "wb") as f:
        f.truncate(4 << 30)
    for command in (["run", huge, "--call", "f"], ["size", huge]):
        refused(mcusim(*command), "more than any Cortex-M image")


def test_paths_that_are_not_files(tmp_path, basics_elf):
    refused(mcusim("run", tmp_path, "--call", "add_int"), str(tmp_path))
    refused(mcusim("size", basics_elf, "--board", tmp_path), "board")
    refused(mcusim("cc", FIRMWARE / "basics.c", "-o", tmp_path / "missing" / "x.elf"), "does not exist")
    refused(mcusim("profile", basics_elf, "--call", "add_int", "--arg", "1", "--arg", "2", "--callgrind", tmp_path),
            "not a regular file")


def test_unreadable_inputs_are_one_clear_error(tmp_path, basics_elf, monkeypatch, capsys):
    """Every kind of input file, unreadable (was a PermissionError traceback for some)."""
    import shutil

    import numpy as np

    from mcusim.cli import main
    shutil.copy(basics_elf, tmp_path / "fw.elf")
    shutil.copy(REPO / "mcusim" / "boards" / "stm32l4r5zi.toml", tmp_path / "board.toml")
    shutil.copy(REPO / "models" / "cnn_digits.toml", tmp_path / "model.toml")
    shutil.copy(REPO / "models" / "ds_cnn.onnx", tmp_path / "model.onnx")
    np.save(tmp_path / "a.npy", np.zeros(4, np.int32))
    with np.load(REPO / "mcusim" / "data" / "digits.npz") as d:
        np.savez(tmp_path / "d.npz", **{k: d[k][:60] for k in d.files})
    run = tmp_path / "run"
    assert main(_small_run(run)) == 0
    cases = {
        "fw.elf": ["run", tmp_path / "fw.elf", "--call", "add_int", "--arg", "1", "--arg", "2"],
        "board.toml": ["size", basics_elf, "--board", tmp_path / "board.toml"],
        "model.toml": ["plan", tmp_path / "model.toml"],
        "model.onnx": ["import", tmp_path / "model.onnx", "-o", tmp_path / "imported.toml"],
        "a.npy": ["run", basics_elf, "--call", "add_int", "--arg", f"@{tmp_path / 'a.npy'}", "--arg", "1"],
        "d.npz": ["train", "cnn_digits", "--dataset", tmp_path / "d.npz", *_small_run(tmp_path / "run2")[2:]],
        "run/checkpoint.npz": [*_small_run(run), "--resume"],
        "run/results.json": ["vae", "report", run],
    }
    for name, argv in cases.items():
        with monkeypatch.context() as m:
            no_read_permission(m, tmp_path / name)
            assert main([str(a) for a in argv]) == 2, name
        err = capsys.readouterr().err
        assert "Permission denied" in err and str(tmp_path / name) in err, (name, err)


OUTPUT_OPTIONS = {                                    # every option that writes a file; {t} is the target
    "cc -o": ["cc", FIRMWARE / "basics.c", "-o", "{t}"],
    "run --json": ["run", "{elf}", "--call", "add_int", "--arg", "1", "--arg", "2", "--json", "{t}"],
    "run --out-array": ["run", "{elf}", "--call", "add_int", "--arg", "1", "--arg", "2", "--out-array",
                        "{t}=0x20000000:4:uint8"],
    "profile --callgrind": ["profile", "{elf}", "--call", "add_int", "--arg", "1", "--arg", "2", "--callgrind", "{t}"],
    "plan -o": ["plan", "cnn_digits", "-o", "{t}"],
    "plan --plot": ["plan", "cnn_digits", "--plot", "{t}"],
    "plan --profile": ["plan", "cnn_digits", "--profile", "{t}"],
    "import -o": ["import", REPO / "models" / "ds_cnn.onnx", "-o", "{t}"],
}


@pytest.mark.parametrize("option", sorted(OUTPUT_OPTIONS))
def test_no_output_replaces_a_folder_a_pipe_or_a_symlink_target(tmp_path, basics_elf, capsys, option):
    """Outputs once renamed over whatever was at the target (as root, `cc -o /dev/full` replaced the device):
    a folder, a non-regular file (a named pipe here: the same refusal, and harmless if it ever regressed),
    a symlink or a missing folder is refused (exit 2), and what was there is untouched."""
    from mcusim.cli import main
    (tmp_path / "folder.toml").mkdir()
    os.mkfifo(tmp_path / "pipe.toml")
    kept = tmp_path / "kept.toml"
    kept.write_text("mine")
    (tmp_path / "link.toml").symlink_to(kept)
    for name in ("folder.toml", "pipe.toml", "link.toml", "missing/x.toml"):
        argv = [str(a).format(t=tmp_path / name, elf=basics_elf) for a in OUTPUT_OPTIONS[option]]
        assert main(argv) == 2, (option, name)
        err = capsys.readouterr().err
        assert "cannot write" in err and "Traceback" not in err, (option, name, err)
    assert (tmp_path / "folder.toml").is_dir() and not any((tmp_path / "folder.toml").iterdir())
    assert stat.S_ISFIFO(os.lstat(tmp_path / "pipe.toml").st_mode)
    assert (tmp_path / "link.toml").is_symlink() and kept.read_text() == "mine"


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
                             "--out", str(out)], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                            preexec_fn=interruptible)
    assert "digits" in proc.stderr.readline()                       # the data set is loaded: training starts
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    err = proc.stderr.read()
    # 130, or ended by the SIGINT itself: a shell reports both as 130. Sometimes (about half the runs in a
    # fresh clone under load) the process ends by the signal after it has printed its message and cleaned
    # up; the cause is not found yet. The message and the cleanup below are what the user sees.
    assert proc.wait(timeout=120) in (130, -signal.SIGINT), err
    assert not (out / "results.json").exists(), "the first epoch ended before the interrupt; make it longer"
    assert "interrupted (nothing was saved)" in err and "Traceback" not in err
    assert not out.exists()                                         # the folder it made goes with it


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
