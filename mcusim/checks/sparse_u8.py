"""Cross-checks of the dynamic sparse update selection (kernels/sparse_u8.c vs mcusim/ops/sparse_u8.py)."""
from __future__ import annotations

import numpy as np

from ..crosscheck import CaseOutput, Check
from ..ops import sparse_u8 as S
from ..ops.quant_u8 import make_qparams

# (structures, size): Gemm rows (size 1) and conv output channels (size out_h * out_w); largest last
SHAPES = [(20, 1), (60, 1), (16, 49), (8, 196), (1, 784), (784, 1)]
LAMBDAS = [(0.1, 0.6), (0.0, 1.0), (0.5, 0.5), (0.0, 0.1), (0.6, 0.6)]
# also run in every case, for coverage of the C's other paths (radix select over several digits,
# > 16 structures of size > 1, word tails): not timed
EXTRA_SHAPES = [(32, 49), (17, 196), (20, 300), (100, 3), (41, 7), (5, 1), (3, 5)]
SAMPLES = 3                                      # consecutive calls per case (e_max, touched carried over)


def _raw(q):
    return q.view(np.uint8).copy()


def _shape(size):
    return SHAPES[min(len(SHAPES) - 1, max(0, int(np.ceil(size * len(SHAPES))) - 1))]


def _errors(rng, n, qe):
    """Errors with many ties: a few distinct values around the zero point, or all at it."""
    ze = int(qe["zero_point"][0])
    r = rng.random()
    if r < 0.1:
        return np.full(n, ze, np.uint8)
    if r < 0.7:
        vals = np.clip(ze + rng.integers(-4, 5, rng.integers(1, 5)), 0, 255)
        return rng.choice(vals, n).astype(np.uint8)
    return rng.integers(0, 256, n).astype(np.uint8)


def _select(rng, size, kernels):
    main = _run(rng, *_shape(size), size >= 1, kernels)
    extra = _run(rng, *EXTRA_SHAPES[rng.integers(len(EXTRA_SHAPES))], False, kernels)
    return CaseOutput(main.c + extra.c, main.numba + extra.numba, main.cycles)


def _run(rng, structures, sz, warm, kernels):
    lmin, lmax = LAMBDAS[rng.integers(len(LAMBDAS))]
    lmin, lmax = np.float32(lmin), np.float32(lmax)
    qe = make_qparams(*((0.0, 1.0) if rng.random() < 0.15 else (-rng.uniform(0.01, 1.0), rng.uniform(0.01, 1.0))))
    state = np.array([0.0 if rng.random() < 0.5 else rng.uniform(0, 0.3), 0.0, 0.0, 0.0], np.float32)
    touched = (rng.random(structures) < 0.2).astype(np.uint8)
    c_state, c_touched = state.copy(), touched.copy()
    scratch = np.zeros(S.sparse_select_u8_buffer_size(structures) // 4, np.int32)
    cyc = 0
    cs, ns = [], []
    for _ in range(SAMPLES):
        e = _errors(rng, structures * sz, qe)
        c_active = np.full(structures, 7, np.uint8)
        call = kernels.call("sparse_select_u8", e, _raw(qe), structures, sz, float(lmin), float(lmax), c_state,
                            c_active, c_touched, scratch, warm=warm)
        _, _, c_state, c_active, c_touched, _ = call.outputs
        cyc = call.cycles
        active = np.full(structures, 7, np.uint8)
        S.sparse_select_u8(e, qe, structures, sz, lmin, lmax, state, active, touched)
        cs += [c_active, c_state.copy(), c_touched.copy()]
        ns += [active.copy(), state.copy(), touched.copy()]
    return CaseOutput(cs, ns, cyc)


CHECKS = [
    Check("sparse_select", "u8", "forward", _select),
]
