"""`mcusim run` doing real work: several calls on one machine state, arrays in and out as .npy files,
JSON in a file apart from the firmware's output, Ctrl-C, and the static decode reused from disk."""
import json
import os
import pickle
import signal
import subprocess
import sys

import numpy as np
import pytest
from conftest import interruptible

from mcusim.emulator import Machine
from mcusim.timing import model as timing_model
from mcusim.toolchain import build


def mcusim(*args):
    return subprocess.run([sys.executable, "-m", "mcusim.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=300)


def test_calls_share_state_and_json_goes_to_its_file(basics_elf, tmp_path):
    out = tmp_path / "r.json"
    proc = mcusim("run", basics_elf, "--call", "hello", "--call", "bump", "--call", "bump", "--call", "add_int",
                  "--arg", "40", "--arg", "2", "--json", out)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "hello from the M4\n"                  # the firmware's output, and nothing else
    report = json.loads(out.read_text())
    calls = report["calls"]
    assert [c["symbol"] for c in calls] == ["hello", "bump", "bump", "add_int"]
    assert calls[2]["return_value"] == calls[1]["return_value"] + 1      # the second bump sees the first's write
    assert report["return_value"] == 42 and report["cycles"] == calls[-1]["cycles"]


def test_json_on_stdout_sends_firmware_output_to_stderr(basics_elf):
    proc = mcusim("run", basics_elf, "--call", "hello", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["symbol"] == "hello" and "hello from the M4" in proc.stderr


def test_arrays_in_and_out_as_npy(basics_elf, tmp_path):
    w = np.arange(12, dtype=np.float32).reshape(3, 4) / 7
    x = np.linspace(-1, 1, 4, dtype=np.float32)
    np.save(tmp_path / "w.npy", w)
    np.save(tmp_path / "x.npy", x)
    proc = mcusim("run", basics_elf, "--call", "matvec_f32", "--arg", f"@{tmp_path / 'w.npy'}",
                  "--arg", f"@{tmp_path / 'x.npy'}", "--arg", "zeros:3:float32", "--arg", 3, "--arg", 4,
                  "--out-array", f"{tmp_path / 'y.npy'}=@3", "--out-array", f"{tmp_path / 'c.npy'}=counter:1:int32")
    assert proc.returncode == 0, proc.stderr
    y = np.load(tmp_path / "y.npy")
    assert y.dtype == np.float32 and np.allclose(y, w @ x, rtol=1e-6)
    assert np.load(tmp_path / "c.npy").dtype == np.int32


@pytest.mark.parametrize("args, message", [
    (["--arg", "1", "--call", "add_int"], "comes before any --call"),
    (["--call", "matvec_f32", "--arg", "@/no/such.npy"], "cannot read"),
    (["--call", "bump", "--out-array", "o.npy=@1"], "names no array argument"),
    (["--call", "bump", "--out-array", "o.npy=counter"], "needs :N:DTYPE"),
    (["--call", "bump", "--out-array", "o.npy=counter:1:floaty"], "not a numpy dtype"),
    (["--call", "add_int", "--arg", "zeros:x:int8", "--arg", "1"], "zeros:N:DTYPE"),
])
def test_bad_run_arguments_are_one_clear_error(basics_elf, tmp_path, args, message):
    proc = subprocess.run([sys.executable, "-m", "mcusim.cli", "run", str(basics_elf), *args], capture_output=True,
                          text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr


def test_ctrl_c_stops_an_endless_native_run(tmp_path):
    src = tmp_path / "spin.c"
    src.write_text('#include "mcusim.h"\nvoid announce_then_spin(void) { mcusim_puts("spinning\\n"); '
                   'for (;;) __asm volatile(""); }\n')
    proc = subprocess.Popen([sys.executable, "-m", "mcusim.cli", "run", str(build([src])), "--call",
                             "announce_then_spin"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=interruptible)
    assert proc.stdout.readline() == "spinning\n"            # the endless call is running
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "interrupted" in err and "Traceback" not in err


def test_static_decode_is_reused_from_disk(basics_elf, monkeypatch, tmp_path):
    monkeypatch.setenv("MCUSIM_CACHE", str(tmp_path))
    first = Machine(basics_elf)

    def no_decode(firmware):
        raise AssertionError("decoded again")
    monkeypatch.setattr(timing_model, "decode", no_decode)
    second = Machine(basics_elf)
    assert second.model.insns == first.model.insns
    assert second.call("add_int", 2, 3).cycles == first.call("add_int", 2, 3).cycles


def test_a_warm_run_imports_neither_numba_nor_pydantic(basics_elf, tmp_path):
    """The block hook's object code and the validated board come from the cache: Numba (over a second to
    load) and pydantic (half a second) stay out of a warm `run`."""
    script = ("import sys; from mcusim.cli import main; "
              f"main(['run', {str(basics_elf)!r}, '--call', 'add_int', '--arg', '2', '--arg', '3', '--json', "
              f"{str(tmp_path / 'r.json')!r}]); print('numba' in sys.modules or 'pydantic' in sys.modules)")
    env = {**os.environ, "MCUSIM_CACHE": str(tmp_path / "cache")}
    runs = [subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
            for _ in range(2)]
    assert [r.stdout.split()[-1] for r in runs] == ["True", "False"], [r.stderr for r in runs]
    assert json.loads((tmp_path / "r.json").read_text())["return_value"] == 5


def test_a_damaged_hook_cache_entry_is_rebuilt(basics_elf, tmp_path):
    script = f"from mcusim.emulator import Machine; print(Machine({str(basics_elf)!r}).call('add_int', 2, 3).cycles)"
    env = {**os.environ, "MCUSIM_CACHE": str(tmp_path)}

    def cycles() -> int:
        proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
        assert proc.returncode == 0, proc.stderr
        return int(proc.stdout)
    first = cycles()
    (entry,) = (tmp_path / "native").iterdir()
    name, obj, digest = pickle.loads(entry.read_bytes())
    entry.write_bytes(pickle.dumps((name, obj[:64] + b"\0" * (len(obj) - 64), digest)))   # LLVM would crash on it
    assert cycles() == first
