"""The cross-check harness itself: bitwise comparison, counting, largest-case cycles, CLI contract."""
import json
import subprocess
import sys

import numpy as np

from mcusim.crosscheck import CaseOutput, Check, run_checks


class _NoKernels:
    """Stands in for KernelLibrary: these checks do not call the emulator."""


def _check(flip: int) -> Check:
    def run(rng, size, kernels):
        a = rng.standard_normal(int(100 * size)).astype(np.float32)
        b = a.copy()
        b[:flip] = np.nextafter(b[:flip], np.float32(np.inf))     # one ulp apart: not bit-identical
        return CaseOutput([a], [b], cycles=int(1000 * size), macs=int(500 * size))
    return Check("fake", "fp32", "forward", run)


def test_identical_outputs_have_no_mismatch_and_keep_the_largest_cycles():
    [r] = run_checks([_check(0)], cases=4, seed=0, kernels=_NoKernels())
    assert (r.cases, r.mismatches, r.max_abs_diff, r.cycles_per_call, r.macs_per_cycle) == (4, 0, 0.0, 1000, 0.5)


def test_one_ulp_differences_are_counted_per_element():
    [r] = run_checks([_check(3)], cases=2, seed=0, kernels=_NoKernels())
    assert r.mismatches == 6 and 0 < r.max_abs_diff < 1e-5


def test_nan_payload_and_signed_zero_differences_count():
    def run(rng, size, kernels):
        c = np.array([0.0, np.nan], np.float32)
        n = np.array([-0.0, np.nan], np.float32)
        n[1] = np.uint32(0x7FC00001).view(np.float32)
        return CaseOutput([c], [n], cycles=1)
    [r] = run_checks([Check("fake", "fp32", "forward", run)], cases=1, seed=0, kernels=_NoKernels())
    assert r.mismatches == 2


def test_cli_reports_missing_operators_as_not_ok():
    proc = subprocess.run([sys.executable, "-m", "mcusim.cli", "crosscheck", "--ops", "requantize",
                           "--dtype", "u8", "--cases", "1", "--json"], capture_output=True, text=True, timeout=300)
    report = json.loads(proc.stdout)
    if report["results"]:                      # once the u8 kernels exist this must be a clean pass
        assert report["ok"] and proc.returncode == 0
    else:
        assert report == {"ok": False, "cases": 1, "seed": 0, "missing": ["requantize/u8"], "results": []}
        assert proc.returncode == 1
