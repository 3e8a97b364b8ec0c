"""How fast `mcusim plan` answers, next to the route it replaces, measured in the same run.

(a) `mcusim plan baseline` with an empty build cache (cold: compile the step's firmware, decode it, run
one sample call by call), (b) the same again (warm: the firmware comes from the cache), and (c) the
undocumented recipe users had before: `mcusim vae train --epochs 1 --train-limit 100 --labels 5
--crosscheck-samples 1` (host twins compiled, one epoch trained, the MCU measured on one sample), on a
warm Numba cache. Each runs as its own process, as a user would run it. Prints seconds and (c)/(a),
(c)/(b). Aim: (a) <= 30 s and (b) <= 5 s on this 2-core machine.

Usage: python benchmarks/plan_speed.py [--model baseline] [--precision u8]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time


def timed(cmd: list[str], env: dict) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="baseline")
    ap.add_argument("--precision", default="u8")
    opts = ap.parse_args()
    mcusim = [sys.executable, "-m", "mcusim.cli"]
    plan = [*mcusim, "plan", opts.model, "--precision", opts.precision]
    with tempfile.TemporaryDirectory() as cache, tempfile.TemporaryDirectory() as out:
        cold_env = {**os.environ, "MCUSIM_CACHE": cache}
        cold = timed(plan, cold_env)
        warm = timed(plan, cold_env)
        recipe = [*mcusim, "vae", "train", "--variant", opts.model, "--precision", opts.precision, "--epochs", "1",
                  "--train-limit", "100", "--labels", "5", "--crosscheck-samples", "1", "--quiet",
                  "--out", os.path.join(out, "run")]
        timed(recipe[:-1] + [os.path.join(out, "warmup")], os.environ)        # the twins' Numba cache, warm
        old = timed(recipe, os.environ)
    print(f"| route | seconds | recipe / this |\n| --- | --- | --- |\n"
          f"| `mcusim plan {opts.model}` (cold build cache) | {cold:.1f} | {old / cold:.1f}x |\n"
          f"| `mcusim plan {opts.model}` (warm) | {warm:.1f} | {old / warm:.1f}x |\n"
          f"| one-epoch training recipe (warm Numba cache) | {old:.1f} | 1.0x |")


if __name__ == "__main__":
    main()
