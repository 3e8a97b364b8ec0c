"""Start-up time of `mcusim run`: the first run of an ELF decodes its code and reads its DWARF; the
second finds both on disk (mcusim/disk_cache.py). Measured on the training-kernel library (every kernel
in one ELF, the largest firmware mcusim builds), with a trivial call, against the floor of starting
Python and importing mcusim's command line.

    python benchmarks/run_startup.py
"""
from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mcusim.kernel_lib import kernel_firmware
from mcusim.toolchain import INIT_SYMBOL


def timed(cmd: list[str], env: dict) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one command; CPU time stays meaningful on a busy machine."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, env=env)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="mcusim-startup-") as tmp:
        elf = Path(tmp) / "kernels.elf"
        shutil.copy(kernel_firmware(), elf)
        env = {**os.environ, "MCUSIM_CACHE": str(Path(tmp) / "cache")}        # empty: the first run is cold
        run = [sys.executable, "-m", "mcusim.cli", "run", str(elf), "--call", INIT_SYMBOL]
        floor = timed([sys.executable, "-c", "import mcusim.cli, mcusim.emulator"], env)
        first = timed(run, env)
        second = timed(run, env)
    print(f"mcusim run of {elf.name} ({kernel_firmware().stat().st_size // 1024} KB ELF), wall and CPU seconds:")
    print(f"  first start   {first[0]:6.2f} {first[1]:6.2f}  (decode and DWARF read, then cached)")
    print(f"  second start  {second[0]:6.2f} {second[1]:6.2f}  ({first[1] / second[1]:.1f}x less CPU)")
    print(f"  import floor  {floor[0]:6.2f} {floor[1]:6.2f}  (python -c 'import mcusim.cli, mcusim.emulator')")


if __name__ == "__main__":
    main()
