"""`mcusim run --gdb PORT` with gdb-multiarch in batch mode: a breakpoint, a step, registers and memory."""
import json
import re
import shutil
import socket
import subprocess
import sys

import pytest

from mcusim.cli import main
from mcusim.toolchain import build
from conftest import FIRMWARE

pytestmark = pytest.mark.skipif(shutil.which("gdb-multiarch") is None,
                                reason="gdb-multiarch is not installed (.ci/run installs it)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_gdb_breaks_steps_and_reads_registers_and_memory(tmp_path):
    elf = build([FIRMWARE / "basics.c"], opt="-O1")
    port = free_port()
    run = subprocess.Popen([sys.executable, "-m", "mcusim.cli", "run", str(elf), "--call", "time_work", "--arg", "25",
                            "--gdb", str(port), "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert "waits for gdb" in run.stderr.readline()
        gdb = subprocess.run(["gdb-multiarch", "-batch", "-nx", "-ex", f"file {elf}", "-ex", f"target remote :{port}",
                              "-ex", "break work", "-ex", "continue", "-ex", "info registers r0",
                              "-ex", "stepi", "-ex", "print/x $pc", "-ex", "print counter", "-ex", "continue"],
                             capture_output=True, text=True, timeout=120)
        out = gdb.stdout
        assert "Breakpoint 1, work (n=25)" in out, out + gdb.stderr
        assert "r0             0x19                25" in out
        where = int(re.search(r"Breakpoint 1 at (0x[0-9a-f]+)", out).group(1), 16)
        after = int(re.search(r"\$1 = (0x[0-9a-f]+)", out).group(1), 16)
        assert after - where in (2, 4)                             # one instruction after the breakpoint
        assert "$2 = 41" in out                                    # memory: the initialised global `counter`
        stdout, _ = run.communicate(timeout=120)
    finally:
        run.kill()
    assert run.returncode == 0
    plain = subprocess.run([sys.executable, "-m", "mcusim.cli", "run", str(elf), "--call", "time_work", "--arg", "25",
                            "--json"], capture_output=True, text=True, timeout=120)
    debugged, undebugged = json.loads(stdout), json.loads(plain.stdout)
    assert debugged["return_value"] == undebugged["return_value"]      # CYCCNT's count of work(25)
    assert debugged["cycles"] == undebugged["cycles"]                  # stopping in gdb costs no cycles


def test_bad_gdb_port_is_one_clear_error(tmp_path, capsys):
    elf = build([FIRMWARE / "basics.c"], opt="-O1")
    with socket.socket() as busy:
        busy.bind(("0.0.0.0", 0))
        busy.listen()
        assert main(["run", str(elf), "--call", "add_int", "--arg", "1", "--arg", "2", "--gdb",
                     str(busy.getsockname()[1])]) == 2
    assert "cannot be opened" in capsys.readouterr().err
    assert main(["run", str(elf), "--call", "add_int", "--arg", "1", "--arg", "2", "--gdb", "70000"]) == 2
    assert "from 1 to 65535" in capsys.readouterr().err
