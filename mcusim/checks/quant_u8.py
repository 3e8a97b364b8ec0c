"""Cross-checks of the quantization utilities (kernels/quant_u8.c vs mcusim/ops/quant_u8.py)."""
from __future__ import annotations

import numpy as np

from ..crosscheck import CaseOutput, Check
from ..ops import quant_u8 as Q


def _floats(rng, n):
    """Values around and beyond a typical range, with exact ties for the rounding rule."""
    x = (rng.standard_normal(n) * rng.choice([0.01, 1.0, 50.0])).astype(np.float32)
    x[: n // 8] = (rng.integers(-300, 300, n // 8) + 0.5).astype(np.float32) * np.float32(0.25)
    return x


def random_grad(rng, n, rows):
    """An int16 gradient buffer part way through a batch (some entries near saturation) and its row
    scales, powers of two (nn_grad_next_scale's) over six decades (rows of very different magnitudes)."""
    g = rng.integers(-3000, 3000, int(n)).astype(np.int16)
    g[rng.random(int(n)) < 0.05] = rng.choice(np.array([-32768, -32700, 32700, 32767], np.int16))
    return g, np.ldexp(np.float32(1), rng.integers(-23, -3, int(rows))).astype(np.float32)


def _requantize(rng, size, kernels):
    n = max(1, int(4096 * size))
    acc = rng.integers(-2**24, 2**24, n).astype(np.int32)
    acc[: n // 4] = rng.integers(-3000, 3000, n // 4)
    mult = np.float32(rng.choice([1e-3, 3.7e-5, 0.0123, 0.3, 1.0, 1e-12, 0.0]))
    zp = np.int32(rng.integers(0, 256))
    y = np.zeros(n, np.uint8)
    call = kernels.call("requantize_u8", acc, y, n, float(mult), int(zp))
    Q.requantize_u8(acc, y, n, mult, zp)
    return CaseOutput([call.outputs[1]], [y], call.cycles)


def _quantize(rng, size, kernels):
    n = max(1, int(3136 * size))
    x = _floats(rng, n)
    lo, hi = sorted(rng.standard_normal(2).astype(np.float32) * np.float32(3))
    q = Q.make_qparams(lo, hi)
    alpha = np.float32(rng.choice([0.0, 0.001, 0.1, 1.0]))
    y = np.zeros(n, np.uint8)
    call = kernels.call("quantize_f32_u8", x, y, n, q.view(np.uint8).copy(), float(alpha))
    q_twin = q.copy()
    Q.quantize_f32_u8(x, y, n, q_twin, alpha)
    return CaseOutput([call.outputs[1], call.outputs[2]], [y, q_twin.view(np.uint8)], call.cycles)


def _dequantize(rng, size, kernels):
    n = max(1, int(3136 * size))
    x = rng.integers(0, 256, n).astype(np.uint8)
    q = Q.make_qparams(*sorted(rng.standard_normal(2).astype(np.float32)))
    y = np.zeros(n, np.float32)
    call = kernels.call("dequantize_u8_f32", x, y, n, q.view(np.uint8).copy())
    Q.dequantize_u8_f32(x, y, n, q)
    return CaseOutput([call.outputs[1]], [y], call.cycles)


CHECKS = [
    Check("requantize", "u8", "forward", _requantize),
    Check("quantize", "u8", "forward", _quantize),
    Check("dequantize", "u8", "forward", _dequantize),
]
