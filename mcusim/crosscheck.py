"""Cross-check every training kernel: the C build on the emulated Cortex-M4 against its Numba twin.

Each operator group registers `Check`s in a module of `mcusim/checks/`. A check builds one random
case of a given size, runs both implementations and returns their outputs; this module compares them
bit for bit, counts mismatching elements and keeps the cycles of the largest case.
"""
from __future__ import annotations

import importlib
import pkgutil
import zlib
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .kernel_lib import KernelLibrary


@dataclass(frozen=True)
class CaseOutput:
    c: list[np.ndarray]            # outputs of the C kernel (emulator), in a fixed order
    numba: list[np.ndarray]        # the same outputs from the Numba twin
    cycles: int                    # emulator cycles of the C call(s)
    macs: int = 0                  # multiply-accumulates in the case (0 where it does not apply)


@dataclass(frozen=True)
class Check:
    op: str                        # e.g. "gemm", "conv2d", "relu", "elbo"
    dtype: str                     # "fp32" or "u8"
    direction: str                 # "forward", "backward_input", "backward_weight", "update", ...
    run: Callable[[np.random.Generator, float, KernelLibrary], CaseOutput]   # (rng, size in (0, 1], kernels)


@dataclass
class CheckResult:
    op: str
    dtype: str
    direction: str
    cases: int = 0
    mismatches: int = 0
    max_abs_diff: float = 0.0
    cycles_per_call: int = 0
    macs_per_cycle: float | None = None

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def all_checks() -> list[Check]:
    from . import checks
    found = []
    for info in sorted(pkgutil.iter_modules(checks.__path__), key=lambda i: i.name):
        found.extend(importlib.import_module(f"{checks.__name__}.{info.name}").CHECKS)
    return found


def required_checks() -> set[tuple[str, str]]:
    """(operator, dtype) pairs that must have checks: every registered operator's kernels, and the
    losses, quantization and updates the training step calls."""
    from .operators import REGISTRY
    from .tasks import SUPPORT_CHECKS
    return {(op, d) for o in REGISTRY.values() for d in ("fp32", "u8") for op in o.check_ops(d)} | SUPPORT_CHECKS


def _compare(c: np.ndarray, n: np.ndarray) -> tuple[int, float]:
    if c.shape != n.shape or c.dtype != n.dtype:
        raise ValueError(f"shape/dtype differ: C {c.dtype}{c.shape} vs Numba {n.dtype}{n.shape}")
    cb, nb = c.reshape(-1).view(np.uint8).reshape(c.size, -1), n.reshape(-1).view(np.uint8).reshape(n.size, -1)
    mismatch = int(np.any(cb != nb, axis=1).sum()) if c.size else 0
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.abs(c.astype(np.float64) - n.astype(np.float64))
    diff = diff[np.isfinite(diff)]
    return mismatch, float(diff.max()) if diff.size else 0.0


def run_checks(checks: list[Check], cases: int, seed: int, kernels: KernelLibrary | None = None,
               progress: Callable[[Check, int], None] | None = None) -> list[CheckResult]:
    kernels = kernels or KernelLibrary()
    results = []
    for check in checks:
        res = CheckResult(check.op, check.dtype, check.direction)
        rng = np.random.default_rng([seed, zlib.crc32(f"{check.op}/{check.dtype}/{check.direction}".encode())])
        for i in range(cases):
            size = (i + 1) / cases                       # the last case is the largest
            out = check.run(rng, size, kernels)
            for c, n in zip(out.c, out.numba, strict=True):
                mism, diff = _compare(c, n)
                res.mismatches += mism
                res.max_abs_diff = max(res.max_abs_diff, diff)
            res.cases += 1
            if i == cases - 1:
                res.cycles_per_call = out.cycles
                res.macs_per_cycle = round(out.macs / out.cycles, 4) if out.macs and out.cycles else None
            if progress:
                progress(check, i)
        results.append(res)
    return results
