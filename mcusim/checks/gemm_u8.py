"""Cross-checks of the uint8 Gemm and the uint8 update (kernels/gemm_u8.c, sgd_u8.c vs mcusim/ops/gemm_u8.py)."""
from __future__ import annotations

import numpy as np

from ..crosscheck import CaseOutput, Check
from ..ops import gemm_u8 as G
from ..ops.quant_u8 import make_qparams
from .quant_u8 import random_grad

VAE_GEMMS = [(1568, 64), (64, 10), (10, 1568)]


def _dims(rng, size):
    n_in, n_out = VAE_GEMMS[rng.integers(len(VAE_GEMMS))] if size >= 1 else (0, 0)
    if size < 1:
        n_in, n_out = int(rng.integers(1, 1 + max(1, int(300 * size)))), int(rng.integers(1, 1 + max(1, int(80 * size))))
    return n_in, n_out


def _qp(rng, positive=False):
    lo = np.float32(0.0 if positive else -rng.uniform(0.01, 2.0))
    return make_qparams(lo, np.float32(rng.uniform(0.01, 2.0)))


def _raw(q):
    return q.view(np.uint8).copy()


def _u8(rng, n):
    return rng.integers(0, 256, int(n)).astype(np.uint8)


def _mask(rng, n):
    return (rng.random(n) < rng.uniform(0.1, 0.9)).astype(np.uint8) if rng.random() < 0.5 else None


def _forward(rng, size, kernels):
    n_in, n_out = _dims(rng, size)
    x, w, b = _u8(rng, n_in), _u8(rng, n_in * n_out), _u8(rng, n_out)
    qx, qw, qb, qy = _qp(rng), _qp(rng), _qp(rng), _qp(rng, positive=True)
    relu, alpha = int(rng.integers(2)), np.float32(0.1)
    y = np.zeros(n_out, np.uint8)
    scratch = np.zeros(G.gemm_u8_forward_buffer_size(n_in, n_out) // 4 + 1, np.int32)
    call = kernels.call("gemm_u8_forward", x, _raw(qx), w, _raw(qw), b, _raw(qb), y, _raw(qy),
                        n_in, n_out, relu, float(alpha), scratch, warm=size >= 1)
    G.gemm_u8_forward(x, qx, w, qw, b, qb, y, qy, n_in, n_out, relu, alpha)
    return CaseOutput([call.outputs[6], call.outputs[7]], [y, _raw(qy)], call.cycles, n_in * n_out)


def _backward_input(rng, size, kernels):
    n_in, n_out = _dims(rng, size)
    w, e = _u8(rng, n_in * n_out), _u8(rng, n_out)
    qw, qe, qex = _qp(rng), _qp(rng), _qp(rng)
    x, qx = (_u8(rng, n_in), _qp(rng, positive=True)) if rng.random() < 0.5 else (None, None)
    active = _mask(rng, n_out)
    alpha = np.float32(0.1)
    ex = np.zeros(n_in, np.uint8)
    scratch = np.zeros(G.gemm_u8_backward_input_buffer_size(n_in, n_out) // 4 + 1, np.int32)
    call = kernels.call("gemm_u8_backward_input", w, _raw(qw), e, _raw(qe), ex, _raw(qex), x,
                        None if qx is None else _raw(qx), n_in, n_out, active, float(alpha), scratch,
                        warm=size >= 1)
    outputs = call.outputs
    G.gemm_u8_backward_input(w, qw, e, qe, ex, qex, x, qx, n_in, n_out, active, alpha)
    return CaseOutput([outputs[4], outputs[5]], [ex, _raw(qex)], call.cycles, n_in * n_out)


def _backward_weight(rng, size, kernels):
    n_in, n_out = _dims(rng, size)
    x, e = _u8(rng, n_in), _u8(rng, n_out)
    qx, qe = _qp(rng), _qp(rng)
    (gw, sgw), (gb, sgb) = random_grad(rng, n_in * n_out, n_out), random_grad(rng, n_out, n_out)
    active = _mask(rng, n_out)
    scratch = np.zeros(G.gemm_u8_backward_weight_buffer_size(n_in) // 4 + 1, np.int32)
    call = kernels.call("gemm_u8_backward_weight", x, _raw(qx), e, _raw(qe), gw, sgw, gb, sgb, n_in,
                        n_out, active, scratch, warm=size >= 1)
    G.gemm_u8_backward_weight(x, qx, e, qe, gw, sgw, gb, sgb, n_in, n_out, active)
    return CaseOutput([call.outputs[4], call.outputs[6]], [gw, gb], call.cycles, n_in * n_out)


def _update(rng, size, kernels):
    n_in, n_out = _dims(rng, size)
    w = _u8(rng, n_in * n_out)
    qw = _qp(rng)
    g, sg = random_grad(rng, n_in * n_out, n_out)
    if rng.random() < 0.2:
        g[:] = 0                                          # a batch whose gradient rounded away
    norm = np.abs(rng.standard_normal(n_out)).astype(np.float32)
    active = _mask(rng, n_out)
    lr, a_norm, a_w = np.float32(0.001 * rng.choice([1, 10, 100])), np.float32(0.85), np.float32(0.001)
    run = int(rng.choice([n_in, 1] + [d for d in (16, 9, 4) if n_in % d == 0]))
    call = kernels.call("sgd_u8_update", w, _raw(qw), g, sg, norm, n_out, n_in, run, float(lr), float(a_norm),
                        float(a_w), active, warm=False)
    G.sgd_u8_update(w, qw, g, sg, norm, n_out, n_in, run, lr, a_norm, a_w, active)
    return CaseOutput(call.outputs[:5], [w, _raw(qw), g, sg, norm], call.cycles)


def _buffer_size(rng, size, kernels) -> CaseOutput:
    n_in, n_out = (int(rng.integers(1, max(2, int(2000 * size)))) for _ in range(2))
    c = [kernels.call(f"gemm_u8_{k}_buffer_size", *a).result.return_value
         for k, a in (("forward", (n_in, n_out)), ("backward_input", (n_in, n_out)), ("backward_weight", (n_in,)))]
    py = [G.gemm_u8_forward_buffer_size(n_in, n_out), G.gemm_u8_backward_input_buffer_size(n_in, n_out),
          G.gemm_u8_backward_weight_buffer_size(n_in)]
    return CaseOutput([np.array(c, np.int64)], [np.array(py, np.int64)], 0)


CHECKS = [
    Check("gemm", "u8", "buffer_size", _buffer_size),
    Check("gemm", "u8", "forward", _forward),
    Check("gemm", "u8", "backward_input", _backward_input),
    Check("gemm", "u8", "backward_weight", _backward_weight),
    Check("sgd_update", "u8", "update", _update),
]
