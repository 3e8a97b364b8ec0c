"""Dynamic sparse updates: the C selection on the emulator and its Numba twin agree bit for bit, and both
implement the rule of nn.h: top-k structures by error magnitude (ties to the lower index), k from the
lambda formula, e_max monotone, touched accumulated and cleared with fill_u8."""
import numpy as np
import pytest

from mcusim.checks.sparse_u8 import CHECKS
from mcusim.crosscheck import run_checks
from mcusim.kernel_lib import KernelLibrary
from mcusim.ops import sparse_u8 as S
from mcusim.ops.quant_u8 import make_qparams

F = np.float32


@pytest.fixture(scope="module")
def kernels():
    return KernelLibrary()


def _raw(q):
    return q.view(np.uint8).copy()


def test_c_and_numba_agree_bit_for_bit(kernels):
    [r] = run_checks(CHECKS, cases=6, seed=7, kernels=kernels)
    assert (r.op, r.dtype, r.direction) == ("sparse_select", "u8", "forward")
    assert r.cases == 6 and r.mismatches == 0 and r.cycles_per_call > 0, r


def _mag(e, qe, structures, size):
    return np.abs(e.astype(np.int64) - int(qe["zero_point"][0])).reshape(structures, size).sum(1)


def _ref_k(mag, qe, structures, size, lmin, lmax, e_max):
    """k and the new e_max by the formula, in the float32 order of nn.h."""
    e_avg = F(qe["scale"][0]) * (F(mag.sum()) / F(structures * size))
    e_max = max(F(e_max), e_avg)
    ratio = e_avg / e_max if e_max > 0 else F(1)
    t = (F(lmin) + ratio * (F(lmax) - F(lmin))) * F(structures)
    return min(max(int(np.floor(t)), 1), structures), e_max


def _ref_mask(mag, k):
    order = np.argsort(-mag, kind="stable")               # largest first, lower index first among ties
    mask = np.zeros(mag.size, np.uint8)
    mask[order[:k]] = 1
    return mask


def _c_select(kernels, e, qe, structures, size, lmin, lmax, state, active, touched):
    scratch = np.zeros(S.sparse_select_u8_buffer_size(structures) // 4, np.int32)
    out = kernels.call("sparse_select_u8", e, _raw(qe), structures, size, float(lmin), float(lmax), state, active,
                       touched, scratch).outputs
    state[:], active[:], touched[:] = out[2], out[3], out[4]


SHAPES = [(60, 1), (20, 1), (784, 1), (8, 196), (16, 49), (1, 784), (32, 49), (20, 300), (100, 3), (7, 1)]


@pytest.mark.parametrize("impl", ["numba", "c"])
def test_selection_matches_a_stable_argsort_reference(impl, kernels):
    rng = np.random.default_rng(11)
    for i in range(40):
        structures, size = SHAPES[i % len(SHAPES)]
        qe = make_qparams(-rng.uniform(0.01, 1), rng.uniform(0.01, 1))
        ze = int(qe["zero_point"][0])
        if i % 3 == 0:
            e = rng.integers(0, 256, structures * size).astype(np.uint8)
        else:                                             # few distinct values: many ties
            e = rng.choice(np.clip(ze + np.array([-2, 0, 1, 3]), 0, 255), structures * size).astype(np.uint8)
        lmin, lmax = [(0.1, 0.6), (0.0, 1.0), (0.5, 0.5), (0.0, 0.1)][i % 4]
        state = np.array([0 if i % 2 else rng.uniform(0, 0.5), 0, 0, 0], F)
        active, touched = np.full(structures, 9, np.uint8), np.zeros(structures, np.uint8)
        mag = _mag(e, qe, structures, size)
        k, e_max = _ref_k(mag, qe, structures, size, lmin, lmax, state[0])
        if impl == "numba":
            S.sparse_select_u8(e, qe, structures, size, F(lmin), F(lmax), state, active, touched)
        else:
            _c_select(kernels, e, qe, structures, size, lmin, lmax, state, active, touched)
        assert state[1] == k and state[0] == e_max, (i, structures, size)
        assert np.array_equal(active, _ref_mask(mag, k)), (i, structures, size)
        assert np.array_equal(touched, active)


def test_k_follows_the_formula_on_a_hand_made_case():
    qe = make_qparams(-1, 1)                      # zero point 127
    e = np.array([127, 137, 117, 127, 130, 124, 127, 127, 147, 127], np.uint8)   # |e - ze| = 0,10,10,0,3,3,0,0,20,0
    qs = F(qe["scale"][0])
    e_avg = qs * (F(46) / F(10))
    state = np.array([2 * e_avg, -1, 0, 0], F)    # e_max twice the current mean: ratio exactly 0.5
    active, touched = np.zeros(10, np.uint8), np.zeros(10, np.uint8)
    S.sparse_select_u8(e, qe, 10, 1, F(0.0), F(1.0), state, active, touched)
    assert state[1] == 5 and state[0] == 2 * e_avg                   # floor((0 + 0.5 * 1) * 10)
    assert active.tolist() == [0, 1, 1, 0, 1, 1, 0, 0, 1, 0]         # 20, 10, 10, then the two 3s
    state = np.array([0, 0, 0, 0], F)             # first sample: e_max = e_avg, ratio 1 -> lambda_max
    S.sparse_select_u8(e, qe, 10, 1, F(0.1), F(0.3), state, active, touched)
    assert state[0] == e_avg and state[1] == 3 and active.tolist() == [0, 1, 1, 0, 0, 0, 0, 0, 1, 0]
    S.sparse_select_u8(e, qe, 10, 1, F(0.01), F(0.02), state, active, touched)
    assert state[1] == 1 and active.tolist() == [0] * 8 + [1, 0]     # at least one structure
    zero = np.full(10, 127, np.uint8)             # no error at all: e_avg 0, ratio taken as 1 while e_max is 0
    state = np.array([0, 0, 0, 0], F)
    S.sparse_select_u8(zero, qe, 10, 1, F(0.1), F(0.6), state, active, touched)
    assert state[:2].tolist() == [0, 6] and active.tolist() == [1] * 6 + [0] * 4
    S.sparse_select_u8(zero, qe, 10, 1, F(1.0), F(2.0), state, active, touched)
    assert state[1] == 10 and active.all()        # clamped to the number of structures


@pytest.mark.parametrize("impl", ["numba", "c"])
def test_e_max_is_monotone_and_touched_accumulates_until_cleared(impl, kernels):
    rng = np.random.default_rng(5)
    structures, size = 16, 49
    qe = make_qparams(-0.5, 0.5)
    ze = int(qe["zero_point"][0])
    state = np.zeros(2, F)
    touched = np.zeros(structures, np.uint8)
    seen, running = np.zeros(structures, np.uint8), F(0)
    for step in range(12):
        spread = int(rng.integers(0, 60))
        e = np.clip(ze + rng.integers(-spread, spread + 1, structures * size), 0, 255).astype(np.uint8)
        active = np.zeros(structures, np.uint8)
        before = state[0]
        if impl == "numba":
            S.sparse_select_u8(e, qe, structures, size, F(0.1), F(0.6), state, active, touched)
        else:
            _c_select(kernels, e, qe, structures, size, 0.1, 0.6, state, active, touched)
        _, running = _ref_k(_mag(e, qe, structures, size), qe, structures, size, 0.1, 0.6, running)
        assert state[0] >= before and state[0] == running
        seen |= active
        assert np.array_equal(touched, seen) and 1 <= active.sum() == state[1]
        if step % 4 == 3:                         # an update: the caller clears touched
            if impl == "numba":
                S.fill_u8(touched, structures, 0)
            else:
                touched[:] = kernels.call("fill_u8", touched, structures, 0).outputs[0]
            assert not touched.any()
            seen[:] = 0


def test_fill_u8_and_buffer_size(kernels):
    for n in (0, 1, 3, 7, 60, 784, 801):
        for off in range(4):
            x = np.full(n + 8, 0xAB, np.uint8)
            out = kernels.call("fill_u8", x[off:], n, 0x105).outputs[0]
            ref = np.full(n + 8 - off, 0xAB, np.uint8)
            ref[:n] = 5
            assert np.array_equal(out, ref), (n, off)
            y = x[off:].copy()
            S.fill_u8(y, n, 0x105)
            assert np.array_equal(y, ref)
    for structures in (1, 16, 60, 784):
        got = kernels.call("sparse_select_u8_buffer_size", structures).result.return_value
        assert got == S.sparse_select_u8_buffer_size(structures) and got % 4 == 0
