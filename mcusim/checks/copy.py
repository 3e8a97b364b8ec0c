"""Cross-checks of the copies (kernels/copy_f32.c, copy_u8.c vs mcusim/ops/copy.py): every bit, NaNs
and -0.0 included, odd lengths and unaligned ends."""
from __future__ import annotations

import numpy as np

from ..crosscheck import CaseOutput, Check
from ..ops import copy as K
from ..ops.quant_u8 import make_qparams
from .gemm_u8 import _raw
from .train_f32 import N_ACT, _n


def _f32(rng, size, kernels) -> CaseOutput:
    n = _n(size, N_ACT)
    x = rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32).view(np.float32)   # any bits
    r = kernels.call("copy_f32", x, np.zeros(n, np.float32), n)
    y = np.zeros(n, np.float32)
    K.copy_f32(x, y, n)
    return CaseOutput([r.outputs[1]], [y], r.cycles)


def _u8(rng, size, kernels) -> CaseOutput:
    n = _n(size, N_ACT)
    x = rng.integers(0, 256, n, dtype=np.uint8)
    qx = make_qparams(np.float32(rng.uniform(-3, 0)), np.float32(rng.uniform(0, 3)))
    qy = make_qparams(-1.0, 1.0)
    r = kernels.call("copy_u8", x, _raw(qx), np.zeros(n, np.uint8), _raw(qy), n)
    y = np.zeros(n, np.uint8)
    K.copy_u8(x, qx, y, qy, n)
    return CaseOutput([r.outputs[2], r.outputs[3]], [y, _raw(qy)], r.cycles)


CHECKS = [Check("copy", "fp32", "forward", _f32), Check("copy", "u8", "forward", _u8)]
