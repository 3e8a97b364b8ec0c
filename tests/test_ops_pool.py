"""Pooling (maxpool2d, avgpool2d; fp32 and u8): C on the emulator and the Numba twins agree bit for bit
(cross-checks and fixed cases through the kernel library), the scratch sizes agree, and the arithmetic
means what nn.h says: maxpool exact with the first-maximum rule, avgpool against float64 numpy
(count_include_pad = 0), u8 maxpool equal to the float maxpool of the dequantized input."""
import numpy as np
import pytest

from mcusim.checks.pool import CHECKS
from mcusim.crosscheck import run_checks
from mcusim.kernel_lib import KernelLibrary
from mcusim.ops import pool as P
from mcusim.ops.quant_u8 import make_qparams


@pytest.fixture(scope="module")
def kernels():
    return KernelLibrary()


# k3 s2 p1 (overlapping, padded), k2 s2 (the common maxpool), stride > window, a 1x1 map, global pooling
DIMS = [P.pool_dims(3, 9, 8, 3, 3, 2, 1), P.pool_dims(2, 6, 7, 2, 2, 2, 0), P.pool_dims(2, 7, 7, 2, 1, 3, 0),
        P.pool_dims(3, 1, 1, 2, 2, 1, 1), P.global_pool_dims(4, 5, 3)]


def _raw(q):
    return q.view(np.uint8).copy()


def test_c_and_numba_agree_bit_for_bit(kernels):
    results = run_checks(CHECKS, cases=6, seed=3, kernels=kernels)
    assert {(r.op, r.dtype, r.direction) for r in results} == {
        (op, dt, d) for op in ("maxpool2d", "avgpool2d") for dt in ("fp32", "u8") for d in ("forward", "backward")
    } | {("maxpool2d", "u8", "buffer_size")}
    for r in results:
        assert r.cases == 6 and r.mismatches == 0, r
        assert r.cycles_per_call > 0, r


@pytest.mark.parametrize("d", DIMS, ids=lambda d: "x".join(map(str, d)))
def test_fixed_cases_bit_exact(kernels, d):
    rng = np.random.default_rng(int(d.sum()))
    n_in, n_out = int(d[0] * d[1] * d[2]), int(d[0] * d[4] * d[5])
    x, dy = rng.standard_normal(n_in).astype(np.float32), rng.standard_normal(n_out).astype(np.float32)
    for op in ("maxpool2d", "avgpool2d"):
        y = np.zeros(n_out, np.float32)
        c = kernels.call(f"{op}_f32_forward", x, y, d).outputs[1]
        getattr(P, f"{op}_f32_forward")(x, y, d)
        assert c.tobytes() == y.tobytes(), op
    dx = np.zeros(n_in, np.float32)
    c = kernels.call("maxpool2d_f32_backward", x, dy, dx, d).outputs[2]
    P.maxpool2d_f32_backward(x, dy, dx, d)
    assert c.tobytes() == dx.tobytes()
    c = kernels.call("avgpool2d_f32_backward", dy, dx, d).outputs[1]
    P.avgpool2d_f32_backward(dy, dx, d)
    assert c.tobytes() == dx.tobytes()

    xq, e = rng.integers(0, 256, n_in).astype(np.uint8), rng.integers(0, 256, n_out).astype(np.uint8)
    qx, qe = make_qparams(-1.0, 2.0), make_qparams(-0.1, 0.05)
    yq, qy = np.zeros(n_out, np.uint8), make_qparams(-0.5, 1.5)
    c = kernels.call("avgpool2d_u8_forward", xq, _raw(qx), yq, _raw(qy), d, 0.25).outputs
    P.avgpool2d_u8_forward(xq, qx, yq, qy, d, np.float32(0.25))
    assert c[2].tobytes() == yq.tobytes() and c[3].tobytes() == _raw(qy).tobytes()
    ex, qex = np.zeros(n_in, np.uint8), make_qparams(-0.05, 0.05)
    c = kernels.call("avgpool2d_u8_backward", e, _raw(qe), ex, _raw(qex), d, 0.25).outputs
    P.avgpool2d_u8_backward(e, qe, ex, qex, d, np.float32(0.25))
    assert c[2].tobytes() == ex.tobytes() and c[3].tobytes() == _raw(qex).tobytes()
    ex, qex = np.zeros(n_in, np.uint8), make_qparams(-0.05, 0.05)
    scratch = np.zeros(P.maxpool2d_u8_backward_buffer_size(d) // 4, np.int32)
    c = kernels.call("maxpool2d_u8_backward", xq, _raw(qx), e, _raw(qe), ex, _raw(qex), d, 0.25, scratch).outputs
    P.maxpool2d_u8_backward(xq, qx, e, qe, ex, qex, d, np.float32(0.25))
    assert c[4].tobytes() == ex.tobytes() and c[5].tobytes() == _raw(qex).tobytes()
    assert kernels.call("maxpool2d_u8_backward_buffer_size", d).result.return_value == \
        P.maxpool2d_u8_backward_buffer_size(d)


# ---- float64 references --------------------------------------------------------------------------
def _windows(d):
    """For each output (c, oy, ox): the flat input indices of its in-bounds taps in (ky, kx) order."""
    c_, ih, iw, _, oh, ow, kh, kw, s, p = (int(v) for v in d)
    out = []
    for c in range(c_):
        for oy in range(oh):
            for ox in range(ow):
                out.append([(c * ih + iy) * iw + ix for iy in range(oy * s - p, oy * s - p + kh)
                            for ix in range(ox * s - p, ox * s - p + kw) if 0 <= iy < ih and 0 <= ix < iw])
    return out


@pytest.mark.parametrize("d", DIMS, ids=lambda d: "x".join(map(str, d)))
def test_semantics_against_numpy(d):
    rng = np.random.default_rng(1)
    n_in, n_out = int(d[0] * d[1] * d[2]), int(d[0] * d[4] * d[5])
    x = rng.integers(-3, 4, n_in).astype(np.float32)           # many ties: the first maximum wins
    dy = rng.standard_normal(n_out).astype(np.float32)
    wins = _windows(d)
    assert all(wins)
    first = np.array([w[int(np.argmax(x[w]))] for w in wins])   # np.argmax: first occurrence
    y = np.zeros(n_out, np.float32)
    P.maxpool2d_f32_forward(x, y, d)
    assert np.array_equal(y, x[first])
    dx = np.ones(n_in, np.float32)
    P.maxpool2d_f32_backward(x, dy, dx, d)
    assert np.allclose(dx, np.bincount(first, dy.astype(np.float64), n_in), rtol=1e-6, atol=1e-6)

    xf = rng.standard_normal(n_in).astype(np.float32)
    mean = np.array([xf[w].astype(np.float64).mean() for w in wins])
    P.avgpool2d_f32_forward(xf, y, d)
    assert np.allclose(y, mean, rtol=1e-6, atol=1e-6)
    ref = np.zeros(n_in)
    for w, g in zip(wins, dy.astype(np.float64)):
        ref[w] += g / len(w)
    P.avgpool2d_f32_backward(dy, dx, d)
    assert np.allclose(dx, ref, rtol=1e-6, atol=1e-6)


def _real(q, qp):
    return qp["scale"][0] * (q.astype(np.float64) - qp["zero_point"][0])


@pytest.mark.parametrize("d", DIMS, ids=lambda d: "x".join(map(str, d)))
def test_u8_semantics(d):
    rng = np.random.default_rng(2)
    n_in, n_out = int(d[0] * d[1] * d[2]), int(d[0] * d[4] * d[5])
    wins = _windows(d)
    xq = rng.integers(0, 256, n_in).astype(np.uint8)
    qx = make_qparams(-1.0, 2.0)
    # maxpool forward: the float maxpool of the dequantized input, qparams passed through
    yq, qy = np.zeros(n_out, np.uint8), make_qparams(0.0, 1.0)
    P.maxpool2d_u8_forward(xq, qx, yq, qy, d)
    xr = _real(xq, qx).astype(np.float32)
    yf = np.zeros(n_out, np.float32)
    P.maxpool2d_f32_forward(xr, yf, d)
    assert np.array_equal(_real(yq, qx).astype(np.float32), yf) and qy.tobytes() == qx.tobytes()
    # avgpool forward: within half a step of the float64 mean, range moved towards the observed one
    qy = make_qparams(-1.0, 2.0)
    P.avgpool2d_u8_forward(xq, qx, yq, qy, d, np.float32(0.5))
    mean = np.array([_real(xq[w], qx).mean() for w in wins])
    ref_qy = make_qparams(-1.0, 2.0)
    assert np.abs(_real(yq, ref_qy) - mean).max() <= ref_qy["scale"][0] / 2 + 1e-6
    assert np.isclose(qy["max"][0], 0.5 * (2.0 + mean.max()), rtol=1e-5)
    # backward errors: maxpool routes each error to its window's first maximum, avgpool spreads it
    e, qe = rng.integers(0, 256, n_out).astype(np.uint8), make_qparams(-0.1, 0.1)
    er = _real(e, qe)
    first = np.array([w[int(np.argmax(xq[w]))] for w in wins])
    for op, ref in (("max", np.bincount(first, er, n_in)),
                    ("avg", sum(np.bincount(w, np.full(len(w), g / len(w)), n_in) for w, g in zip(wins, er)))):
        qex = make_qparams(-0.3, 0.3)
        ex = np.zeros(n_in, np.uint8)
        if op == "max":
            P.maxpool2d_u8_backward(xq, qx, e, qe, ex, qex, d, np.float32(0))
        else:
            P.avgpool2d_u8_backward(e, qe, ex, qex, d, np.float32(0))
        lo, hi = _real(np.array([0, 255]), qex)
        assert np.abs(_real(ex, qex) - np.clip(ref, lo, hi)).max() <= qex["scale"][0] / 2 + 1e-6, op
