"""Cross-checks of the residual add (fp32, u8), relu6 (fp32) and the standalone uint8 relu / relu6
(kernels/add_f32.c, add_u8.c, relu6_f32.c, relu_u8.c vs mcusim/ops/elementwise.py).

Sizes at size=1: 3136-element activations (the VAE's largest). Every case mixes in the edge values:
exact zeros and -0.0, values at and next to the clamp bounds (0, 6, the zero point, quantized 6),
infinities and NaNs for relu6 (documented bit rules), and output ranges narrow enough to saturate.
"""
from __future__ import annotations

import numpy as np

from ..crosscheck import CaseOutput, Check
from ..ops import elementwise as E
from ..ops.quant_u8 import make_qparams
from .gemm_u8 import _raw, _u8
from .train_f32 import N_ACT, _n, activations

F32 = np.float32
SIX_EDGES = np.array([0.0, -0.0, 6.0, np.nextafter(F32(6), F32(0)), np.nextafter(F32(6), F32(7)), np.inf, -np.inf,
                      np.nan, -np.nan, 1e-45, -1e-45, 3e38], F32)


def _with_edges(rng, x: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """x with the edge values written at random positions (as many as fit)."""
    k = min(x.size, edges.size)
    x[rng.choice(x.size, k, replace=False)] = edges[:k]
    return x


def _u8_edges(rng, x: np.ndarray, q, six: int) -> np.ndarray:
    """Bytes at and next to the clamp bounds of relu_u8 (the zero point, quantized 6, 0, 255)."""
    z, hi = int(q["zero_point"][0]), int(E.relu_u8_hi(q, six))
    edges = np.clip(np.array([z, z - 1, z + 1, hi, hi - 1, hi + 1, 0, 255]), 0, 255).astype(np.uint8)
    return _with_edges(rng, x, edges)


def _act_qp(rng):
    """Activation ranges: 6 inside, at the top, or beyond it (then quantized 6 saturates at 255)."""
    lo, hi = [(-2.0, 20.0), (0.0, 6.0), (-1.0, 1.0), (-10.0, 7.0), (-0.5, 3.0)][int(rng.integers(5))]
    return make_qparams(F32(lo * rng.uniform(0.5, 1.0)), F32(hi * rng.uniform(0.8, 1.2)))


def _map(kernels, symbol: str, twin, inputs: list[np.ndarray]) -> CaseOutput:
    """An fp32 elementwise kernel f(*inputs, out, n) on the C and on its twin; compares `out`."""
    n = inputs[0].size
    r = kernels.call(symbol, *inputs, np.zeros(n, F32), n)
    out = np.zeros(n, F32)
    twin(*inputs, out, n)
    return CaseOutput([r.outputs[len(inputs)]], [out], r.cycles)


# ---- add ------------------------------------------------------------------------------------------
def _add_f32(rng, size, kernels) -> CaseOutput:
    n = _n(size, N_ACT)
    a, b = activations(rng, n), activations(rng, n)
    neg = rng.random(n) < 0.05
    b[neg] = -a[neg]                                    # exact cancellation: +0
    both = rng.random(n) < 0.02
    a[both], b[both] = F32(-0.0), F32(-0.0)             # -0 + -0 = -0
    big = rng.random(n) < 0.01
    a[big], b[big] = F32(3e38), F32(2e38)               # overflow to inf
    return _map(kernels, "add_f32_forward", E.add_f32_forward, [a, b])


def _add_u8(rng, size, kernels) -> CaseOutput:
    n = _n(size, N_ACT)
    qa, qb = make_qparams(F32(-rng.uniform(0.1, 3)), F32(rng.uniform(0.1, 3))), _act_qp(rng)
    a, b = _u8(rng, n), _u8(rng, n)
    zeros = rng.random(n) < 0.05
    a[zeros], b[zeros] = qa["zero_point"][0], qb["zero_point"][0]      # t = 0 exactly
    narrow = F32(rng.choice([0.05, 1.0, 10.0]))                         # 0.05: most outputs saturate
    qy = make_qparams(-narrow * F32(rng.uniform(0, 1)), narrow)
    relu, alpha = int(rng.integers(2)), F32(rng.choice([0.0, 0.1, 1.0]))
    r = kernels.call("add_u8_forward", a, _raw(qa), b, _raw(qb), np.zeros(n, np.uint8), _raw(qy), n, relu,
                     float(alpha))
    y = np.zeros(n, np.uint8)
    E.add_u8_forward(a, qa, b, qb, y, qy, n, relu, alpha)
    return CaseOutput([r.outputs[4], r.outputs[5]], [y, _raw(qy)], r.cycles)


# ---- relu6, fp32 ----------------------------------------------------------------------------------
def _relu6_input(rng, n):
    return _with_edges(rng, activations(rng, n) * F32(0.3), SIX_EDGES)


def _relu6_forward(rng, size, kernels) -> CaseOutput:
    return _map(kernels, "relu6_f32_forward", E.relu6_f32_forward, [_relu6_input(rng, _n(size, N_ACT))])


def _relu6_backward(rng, size, kernels) -> CaseOutput:
    n = _n(size, N_ACT)
    y = np.zeros(n, F32)
    E.relu6_f32_forward(_relu6_input(rng, n), y, n)    # the forward output: 0, 6 and values between
    return _map(kernels, "relu6_f32_backward", E.relu6_f32_backward, [y, activations(rng, n)])


# ---- relu / relu6, u8 -----------------------------------------------------------------------------
def _relu_u8_forward(rng, size, kernels) -> CaseOutput:
    n, six = _n(size, N_ACT), int(rng.integers(2))
    qx = _act_qp(rng)
    x = _u8_edges(rng, _u8(rng, n), qx, six)
    qy = make_qparams(F32(-5.0), F32(5.0))              # overwritten with qx
    r = kernels.call("relu_u8_forward", x, _raw(qx), np.zeros(n, np.uint8), _raw(qy), n, six)
    y = np.zeros(n, np.uint8)
    E.relu_u8_forward(x, qx, y, qy, n, six)
    return CaseOutput([r.outputs[2], r.outputs[3]], [y, _raw(qy)], r.cycles)


def _relu_u8_backward(rng, size, kernels) -> CaseOutput:
    n, six = _n(size, N_ACT), int(rng.integers(2))
    qy = _act_qp(rng)
    y = np.zeros(n, np.uint8)
    E.relu_u8_forward(_u8_edges(rng, _u8(rng, n), qy, six), qy, y, qy, n, six)
    e, qe = _u8(rng, n), make_qparams(F32(-rng.uniform(0.01, 1)), F32(rng.uniform(0.01, 1)))
    r = kernels.call("relu_u8_backward", y, _raw(qy), e, _raw(qe), np.zeros(n, np.uint8), n, six)
    ex = np.zeros(n, np.uint8)
    E.relu_u8_backward(y, qy, e, qe, ex, n, six)
    return CaseOutput([r.outputs[4]], [ex], r.cycles)


CHECKS = [
    Check("add", "fp32", "forward", _add_f32),
    Check("add", "u8", "forward", _add_u8),
    Check("relu6", "fp32", "forward", _relu6_forward),
    Check("relu6", "fp32", "backward_input", _relu6_backward),
    Check("relu", "u8", "forward", _relu_u8_forward),
    Check("relu", "u8", "backward_input", _relu_u8_backward),
]
