"""Squared-error loss (fp32, on uint8 outputs) and cross-entropy on uint8 logits (kernels/mse_*.c,
cross_entropy_u8.c and mcusim.ops.losses): C and Numba agree bit for bit; the u8 losses are exactly
the fp32 ones on the dequantized values, with the error quantized in the fixed [-1, 1] range."""
import numpy as np
import pytest

from mcusim.checks.losses import CHECKS
from mcusim.crosscheck import run_checks
from mcusim.kernel_lib import KernelLibrary
from mcusim.ops import losses as L
from mcusim.ops import quant_u8 as Q
from mcusim.ops import train_f32 as T

F32 = np.float32


@pytest.fixture(scope="module")
def kernels():
    return KernelLibrary()


def raw(q):
    return q.view(np.uint8).copy()


def dequantized(y, q):
    z = np.zeros(y.size, F32)
    Q.dequantize_u8_f32(y, z, y.size, q)
    return z


def fixed_range_quantized(d):
    """The float error quantized with the fixed [-1, 1] qparams, which stay as they are."""
    qe = Q.make_qparams(-1.0, 1.0)
    e = np.zeros(d.size, np.uint8)
    Q.quantize_f32_u8(d, e, d.size, qe, F32(0.0))
    assert qe.tobytes() == Q.make_qparams(-1.0, 1.0).tobytes()
    return e


def test_c_and_numba_agree_bit_for_bit(kernels):
    results = run_checks(CHECKS, cases=6, seed=8, kernels=kernels)
    assert {(r.op, r.dtype, r.direction) for r in results} == {
        (op, dt, d) for op, dt in (("mse", "fp32"), ("mse", "u8"), ("cross_entropy", "u8"))
        for d in ("forward", "backward_input")}
    assert all(r.mismatches == 0 and r.cases == 6 for r in results), results


def test_mse_f32_against_float64_and_its_gradient():
    rng = np.random.default_rng(0)
    p = rng.integers(0, 256, 784).astype(np.uint8)
    y = rng.uniform(-0.2, 1.2, 784).astype(F32)
    t = T.pixel_targets(p)
    want = 0.5 * np.sum((y.astype(np.float64) - t) ** 2)
    assert abs(L.mse_f32_forward(y, p, 784) - want) <= 1e-5 * want
    dy = y.copy()
    L.mse_f32_backward(dy, p, dy, 784)                                      # in place
    assert dy.tobytes() == (y - t).tobytes()
    assert L.mse_f32_forward(t, p, 784) == 0.0 and L.mse_f32_forward(y, p, 0) == 0.0


@pytest.mark.parametrize("lo,hi", [(-0.5, 1.5), (-3.0, 3.0)])
def test_mse_u8_is_mse_f32_of_the_dequantized_output(kernels, lo, hi):
    rng = np.random.default_rng(1)
    y, p, qy = rng.integers(0, 256, 784).astype(np.uint8), rng.integers(0, 256, 784).astype(np.uint8), \
        Q.make_qparams(lo, hi)
    z = dequantized(y, qy)
    loss = L.mse_f32_forward(z, p, 784)
    assert L.mse_u8_forward(y, qy, p, 784) == loss
    assert F32(kernels.call("mse_u8_forward", y, raw(qy), p, 784).result.return_value) == F32(loss)
    dz = np.zeros(784, F32)
    L.mse_f32_backward(z, p, dz, 784)
    want = fixed_range_quantized(dz)
    qe = Q.make_qparams(-1.0, 1.0)
    e = np.zeros(784, np.uint8)
    L.mse_u8_backward(y, qy, p, e, qe, 784)
    assert np.array_equal(e, want)
    out = kernels.call("mse_u8_backward", y, raw(qy), p, np.zeros(784, np.uint8), raw(qe), 784).outputs
    assert np.array_equal(out[3], want) and out[4].tobytes() == raw(qe).tobytes()
    if hi > 2:
        assert np.any(want == 0) and np.any(want == 255)                    # errors beyond [-1, 1] saturate


@pytest.mark.parametrize("half", [0.5, 8.0, 200.0])
def test_cross_entropy_u8_is_cross_entropy_f32_of_the_dequantized_logits(kernels, half):
    rng = np.random.default_rng(int(half))
    y, qy, label = rng.integers(0, 256, 10).astype(np.uint8), Q.make_qparams(-half, half), 3
    y[[1, 7]] = y.max()                                                     # a tied maximum
    z = dequantized(y, qy)
    dz = np.zeros(10, F32)
    loss = T.cross_entropy_f32(z, 10, label, dz)
    m = z.astype(np.float64).max()
    assert abs(loss - (np.log(np.sum(np.exp(z - m))) - (z[label] - m))) <= 1e-5 * max(1.0, loss)
    qe = Q.make_qparams(-1.0, 1.0)
    e = np.zeros(10, np.uint8)
    assert L.cross_entropy_u8(y, qy, 10, label, e, qe) == loss
    assert L.cross_entropy_u8(y, qy, 10, label, None, None) == loss
    assert np.array_equal(e, fixed_range_quantized(dz))
    r = kernels.call("cross_entropy_u8", y, raw(qy), 10, label, np.zeros(10, np.uint8), raw(qe))
    assert F32(r.result.return_value) == F32(loss) and np.array_equal(r.outputs[2], e)


def test_cross_entropy_u8_error_may_overwrite_the_logits(kernels):
    y, qy, qe = np.arange(0, 250, 25).astype(np.uint8), Q.make_qparams(-4.0, 4.0), Q.make_qparams(-1.0, 1.0)
    e = np.zeros(10, np.uint8)
    loss = L.cross_entropy_u8(y, qy, 10, 9, e, qe)
    m = kernels.machine
    m.free_all()
    try:
        buf, q, qb = m.put(y), m.put(raw(qy)), m.put(raw(qe))
        r = m.call("cross_entropy_u8", buf, q, 10, 9, buf, qb)
        assert F32(r.return_value) == F32(loss) and np.array_equal(buf.array, e)
    finally:
        m.free_all()
