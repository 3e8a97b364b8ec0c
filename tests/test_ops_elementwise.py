"""Residual add (fp32, u8), relu6 (fp32) and the standalone uint8 relu / relu6 (kernels/add_*.c,
relu6_f32.c, relu_u8.c and mcusim.ops.elementwise): the C on the emulated Cortex-M4F and the Numba twins
agree bit for bit, follow the formulas of nn.h (numpy references), and in-place calls work."""
import numpy as np
import pytest

from mcusim.checks.elementwise import CHECKS, SIX_EDGES
from mcusim.checks.train_f32 import activations
from mcusim.crosscheck import run_checks
from mcusim.kernel_lib import KernelLibrary
from mcusim.ops import elementwise as E
from mcusim.ops import quant_u8 as Q

F32 = np.float32


@pytest.fixture(scope="module")
def kernels():
    return KernelLibrary()


def call_in_place(kernels, symbol, *args):
    """Call with numpy arrays; an int i in `args` written as ("same", i) passes argument i's buffer again.
    Returns the buffers' contents after the call."""
    m = kernels.machine
    m.free_all()
    try:
        values = []
        for a in args:
            if isinstance(a, tuple):
                values.append(values[a[1]])
            elif isinstance(a, np.ndarray):
                values.append(m.put(a))
            else:
                values.append(a)
        m.call(symbol, *values)
        return [v.array.copy() if hasattr(v, "array") else v for v in values]
    finally:
        m.free_all()


def test_c_and_numba_agree_bit_for_bit(kernels):
    results = run_checks(CHECKS, cases=6, seed=5, kernels=kernels)
    assert {(r.op, r.dtype, r.direction) for r in results} == {
        ("add", "fp32", "forward"), ("add", "u8", "forward"), ("relu6", "fp32", "forward"),
        ("relu6", "fp32", "backward_input"), ("relu", "u8", "forward"), ("relu", "u8", "backward_input")}
    assert all(r.mismatches == 0 and r.cases == 6 for r in results), results


# ---- add ------------------------------------------------------------------------------------------
def test_add_f32_is_the_float32_sum_and_works_in_place(kernels):
    rng = np.random.default_rng(0)
    a, b = activations(rng, 103), activations(rng, 103)
    b[:5] = -a[:5]
    y = np.zeros(103, F32)
    E.add_f32_forward(a, b, y, 103)
    assert y.tobytes() == (a + b).tobytes()
    out = call_in_place(kernels, "add_f32_forward", a, b, ("same", 1), 103)      # y = b
    assert out[1].tobytes() == y.tobytes()


def _u8_ref(a, qa, b, qb, qy, relu, alpha):
    """add_u8_forward in numpy float32 (the same operations, vectorized)."""
    deq = lambda x, q: F32(q["scale"][0]) * (x.astype(np.int32) - q["zero_point"][0]).astype(F32)
    t = deq(a, qa) + deq(b, qb)
    if relu:
        t = np.where(t > 0, t, F32(0))
    v = t * (F32(1) / qy["scale"][0]) + F32(0.5)
    y = np.clip(qy["zero_point"][0] + np.floor(v).astype(np.int64), 0, 255).astype(np.uint8)
    q = qy.copy()
    q["scale"], q["zero_point"], q["min"], q["max"] = Q.observe(q["min"][0], q["max"][0], t.min(), t.max(), alpha)
    return y, q


@pytest.mark.parametrize("relu", [0, 1])
def test_add_u8_follows_the_contract(relu):
    rng = np.random.default_rng(relu)
    n = 500
    a, b = rng.integers(0, 256, n).astype(np.uint8), rng.integers(0, 256, n).astype(np.uint8)
    qa, qb, qy = Q.make_qparams(-1.0, 2.0), Q.make_qparams(-3.0, 0.5), Q.make_qparams(-0.5, 0.5)
    want_y, want_q = _u8_ref(a, qa, b, qb, qy, relu, F32(0.1))
    y = np.zeros(n, np.uint8)
    E.add_u8_forward(a, qa, b, qb, y, qy, n, relu, F32(0.1))
    assert np.array_equal(y, want_y) and qy.tobytes() == want_q.tobytes()
    assert 0 < np.count_nonzero(y == 255) and (relu or 0 < np.count_nonzero(y == 0))     # saturates


def test_add_u8_in_place_sums_two_errors(kernels):
    rng = np.random.default_rng(3)
    n = 77
    a, b = rng.integers(0, 256, n).astype(np.uint8), rng.integers(0, 256, n).astype(np.uint8)
    qa, qb = Q.make_qparams(-1.0, 1.0), Q.make_qparams(-0.25, 0.5)
    y, qy = np.zeros(n, np.uint8), qa.copy()
    E.add_u8_forward(a, qa, b, qb, y, qy, n, 0, F32(0.1))
    raw = lambda q: q.view(np.uint8).copy()
    out = call_in_place(kernels, "add_u8_forward", a, raw(qa), b, raw(qb), ("same", 0), ("same", 1), n, 0, 0.1)
    assert np.array_equal(out[0], y) and out[1].tobytes() == qy.tobytes()      # y = a, qy = qa


# ---- relu6, fp32 --------------------------------------------------------------------------------------
def test_relu6_f32_matches_the_formula_and_the_nan_rule(kernels):
    x = np.concatenate([SIX_EDGES, activations(np.random.default_rng(1), 200)])
    n = x.size
    y = np.zeros(n, F32)
    E.relu6_f32_forward(x, y, n)
    plain = ~np.isnan(x)
    want = np.where(x > 0, np.minimum(x, F32(6)), F32(0)).astype(F32)
    assert y[plain].tobytes() == want[plain].tobytes()                         # -0 -> +0 (bits)
    sign = np.signbit(x)
    assert np.all(y[np.isnan(x) & sign] == 0) and np.all(y[np.isnan(x) & ~sign] == 6)
    assert call_in_place(kernels, "relu6_f32_forward", x, ("same", 0), n)[0].tobytes() == y.tobytes()

    dy = activations(np.random.default_rng(2), n)
    dx = np.zeros(n, F32)
    E.relu6_f32_backward(y, dy, dx, n)
    assert dx.tobytes() == np.where((y > 0) & (y < 6), dy, F32(0)).astype(F32).tobytes()
    assert call_in_place(kernels, "relu6_f32_backward", y, dy, ("same", 1), n)[1].tobytes() == dx.tobytes()


# ---- relu / relu6, u8 ---------------------------------------------------------------------------------
@pytest.mark.parametrize("six", [0, 1])
@pytest.mark.parametrize("lo,hi", [(-2.0, 20.0), (-1.0, 1.0), (0.0, 6.0)])
def test_relu_u8_is_the_relu_of_the_real_values(kernels, six, lo, hi):
    n = 256 + 7
    x = np.concatenate([np.arange(256), [0, 255, 3, 4, 5, 6, 7]]).astype(np.uint8)
    qx = Q.make_qparams(lo, hi)
    zx, scale = int(qx["zero_point"][0]), qx["scale"][0]
    top = int(E.relu_u8_hi(qx, six))
    assert top == (int(Q.quantize(F32(6), F32(1) / scale, np.int32(zx))) if six else 255)
    y, qy = np.zeros(n, np.uint8), Q.make_qparams(-9.0, 9.0)
    E.relu_u8_forward(x, qx, y, qy, n, six)
    assert qy.tobytes() == qx.tobytes() and np.array_equal(y, np.clip(x, zx, top))
    real = lambda q: scale * (q.astype(np.float64) - zx)
    want = np.maximum(real(x), 0.0)
    if six:
        want = np.minimum(want, 6.0)
    assert np.abs(real(y) - want).max() <= scale / 2 + 1e-6 * max(hi, 1)     # only 6 is rounded
    out = call_in_place(kernels, "relu_u8_forward", x, qx.view(np.uint8).copy(), ("same", 0), ("same", 1), n, six)
    assert np.array_equal(out[0], y) and out[1].tobytes() == qx.tobytes()

    e, qe = np.random.default_rng(6).integers(0, 256, n).astype(np.uint8), Q.make_qparams(-0.3, 0.7)
    ex = np.zeros(n, np.uint8)
    E.relu_u8_backward(y, qy, e, qe, ex, n, six)
    passes = (y > zx) & ((y < top) if six else True)
    assert np.array_equal(ex, np.where(passes, e, qe["zero_point"][0]).astype(np.uint8))
    out = call_in_place(kernels, "relu_u8_backward", y, qy.view(np.uint8).copy(), e, qe.view(np.uint8).copy(),
                        ("same", 2), n, six)
    assert np.array_equal(out[2], ex)
