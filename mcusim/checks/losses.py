"""Cross-checks of the squared-error loss (fp32 and on uint8 outputs) and of the cross-entropy on
uint8 logits (kernels/mse_f32.c, mse_u8.c, cross_entropy_u8.c vs mcusim/ops/losses.py). The fp32
cross-entropy is checked in train_f32.py under the same op name.

Sizes at size=1: 784-pixel images, 10 logits. Edge values: outputs equal to their targets (d = 0),
-0.0, pixels 0 and 255, output ranges wide enough to saturate the fixed [-1, 1] error range, tied
maximum logits, logit ranges whose exponentials underflow.
"""
from __future__ import annotations

import numpy as np

from ..crosscheck import CaseOutput, Check
from ..ops import losses as L
from ..ops.quant_u8 import make_qparams
from ..ops.train_f32 import pixel_targets
from .gemm_u8 import _raw, _u8
from .train_f32 import N_CLASSES, N_PIXELS, _f, _n, pixels

F32 = np.float32


def _junk(rng, n, dtype):
    """Overwritten outputs start as garbage."""
    return rng.integers(0, 255, n).astype(dtype)


# ---- mse -------------------------------------------------------------------------------------------
def _mse_f32_case(rng, size):
    n = _n(size, N_PIXELS)
    p = pixels(rng, n)
    y = (rng.uniform(-0.2, 1.2, n) * rng.choice([1.0, 1.0, 100.0])).astype(F32)
    hit = rng.random(n) < 0.1
    y[hit] = pixel_targets(p)[hit]                      # d = 0 exactly
    y[rng.random(n) < 0.03] = F32(-0.0)
    return y, p, n


def _mse_f32_forward(rng, size, kernels) -> CaseOutput:
    y, p, n = _mse_f32_case(rng, size)
    r = kernels.call("mse_f32_forward", y, p, n)
    return CaseOutput([_f(r.result.return_value)], [_f(L.mse_f32_forward(y, p, n))], r.cycles)


def _mse_f32_backward(rng, size, kernels) -> CaseOutput:
    y, p, n = _mse_f32_case(rng, size)
    r = kernels.call("mse_f32_backward", y, p, _junk(rng, n, F32), n)
    dy = _junk(rng, n, F32)
    L.mse_f32_backward(y, p, dy, n)
    return CaseOutput([r.outputs[2]], [dy], r.cycles)


def _mse_u8_case(rng, size):
    """Decoder outputs in ranges from about [0, 1] to [-3, 3] (errors beyond [-1, 1] saturate)."""
    n = _n(size, N_PIXELS)
    lo, hi = [(0.0, 1.0), (-0.5, 1.5), (-3.0, 3.0), (-0.1, 0.9)][int(rng.integers(4))]
    qy = make_qparams(F32(lo * rng.uniform(0.8, 1.2)), F32(hi * rng.uniform(0.8, 1.2)))
    return _u8(rng, n), qy, pixels(rng, n), n


def _mse_u8_forward(rng, size, kernels) -> CaseOutput:
    y, qy, p, n = _mse_u8_case(rng, size)
    r = kernels.call("mse_u8_forward", y, _raw(qy), p, n)
    return CaseOutput([_f(r.result.return_value)], [_f(L.mse_u8_forward(y, qy, p, n))], r.cycles)


def _mse_u8_backward(rng, size, kernels) -> CaseOutput:
    y, qy, p, n = _mse_u8_case(rng, size)
    qe = make_qparams(F32(-1.0), F32(1.0))
    r = kernels.call("mse_u8_backward", y, _raw(qy), p, _junk(rng, n, np.uint8), _raw(qe), n)
    e = _junk(rng, n, np.uint8)
    L.mse_u8_backward(y, qy, p, e, qe, n)
    return CaseOutput([r.outputs[3]], [e], r.cycles)


# ---- cross-entropy, u8 -----------------------------------------------------------------------------
def _ce_case(rng, size):
    n = _n(size, N_CLASSES, lo=2)
    half = F32(rng.choice([0.1, 1.0, 5.0, 30.0, 200.0]))                 # 200: most exps underflow
    qy = make_qparams(-half * F32(rng.uniform(0.2, 1.0)), half)
    y = _u8(rng, n)
    if rng.random() < 0.3:
        y[rng.choice(n, 2, replace=False)] = y.max()                    # a tied maximum
    return y, qy, n, int(rng.integers(n))


def _ce_forward(rng, size, kernels) -> CaseOutput:
    y, qy, n, label = _ce_case(rng, size)
    r = kernels.call("cross_entropy_u8", y, _raw(qy), n, label, None, None)
    return CaseOutput([_f(r.result.return_value)], [_f(L.cross_entropy_u8(y, qy, n, label, None, None))], r.cycles)


def _ce_backward(rng, size, kernels) -> CaseOutput:
    y, qy, n, label = _ce_case(rng, size)
    qe = make_qparams(F32(-1.0), F32(1.0))
    r = kernels.call("cross_entropy_u8", y, _raw(qy), n, label, _junk(rng, n, np.uint8), _raw(qe))
    e = _junk(rng, n, np.uint8)
    loss = L.cross_entropy_u8(y, qy, n, label, e, qe)
    return CaseOutput([_f(r.result.return_value), r.outputs[2]], [_f(loss), e], r.cycles)


CHECKS = [
    Check("mse", "fp32", "forward", _mse_f32_forward),
    Check("mse", "fp32", "backward_input", _mse_f32_backward),
    Check("mse", "u8", "forward", _mse_u8_forward),
    Check("mse", "u8", "backward_input", _mse_u8_backward),
    Check("cross_entropy", "u8", "forward", _ce_forward),
    Check("cross_entropy", "u8", "backward_input", _ce_backward),
]
