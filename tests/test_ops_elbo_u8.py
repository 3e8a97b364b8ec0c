"""The ELBO on uint8 logits: C and Numba agree bit for bit, and it is exactly the fp32 ELBO of the
dequantized logits, with the logits' error quantized in the fixed [-1, 1] range (no float copies)."""
import numpy as np
import pytest

from mcusim.checks.elbo_u8 import CHECKS
from mcusim.crosscheck import run_checks
from mcusim.kernel_lib import KernelLibrary
from mcusim.ops import elbo_u8 as E
from mcusim.ops import quant_u8 as Q
from mcusim.ops import train_f32 as T


@pytest.fixture(scope="module")
def kernels():
    return KernelLibrary()


def test_c_and_numba_agree_bit_for_bit(kernels):
    results = run_checks(CHECKS, cases=6, seed=11, kernels=kernels)
    assert {r.direction for r in results} == {"forward", "backward_input", "buffer_size"}
    assert all(r.mismatches == 0 and r.cases == 6 for r in results), results


def _case(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 256, 784).astype(np.uint8)
    qy = Q.make_qparams(-12.0, 7.0)
    pixels = rng.integers(0, 256, 784).astype(np.uint8)
    mu, ls = rng.standard_normal(10).astype(np.float32), rng.uniform(-3, 1, 10).astype(np.float32)
    logits = np.zeros(784, np.float32)
    Q.dequantize_u8_f32(y, logits, 784, qy)
    return y, qy, pixels, mu, ls, logits


@pytest.mark.parametrize("seed", [0, 1])
def test_same_bits_as_the_fp32_elbo_of_the_dequantized_logits(seed):
    y, qy, pixels, mu, ls, logits = _case(seed)
    assert E.elbo_u8_forward(y, qy, pixels, mu, ls, 784, 10) == T.elbo_f32_forward(logits, pixels, mu, ls, 784, 10)
    qe = Q.make_qparams(-1.0, 1.0)
    e, dmu, dls = np.zeros(784, np.uint8), np.zeros(10, np.float32), np.zeros(10, np.float32)
    E.elbo_u8_backward(y, qy, pixels, mu, ls, e, qe, dmu, dls, 784, 10)
    dz, dmu_f, dls_f = np.zeros(784, np.float32), np.zeros(10, np.float32), np.zeros(10, np.float32)
    T.elbo_f32_backward(logits, pixels, mu, ls, dz, dmu_f, dls_f, 784, 10)
    q_after = qe.copy()
    expected = np.zeros(784, np.uint8)
    Q.quantize_f32_u8(dz, expected, 784, q_after, np.float32(0.0))          # the old two-step path
    assert np.array_equal(e, expected) and q_after.tobytes() == qe.tobytes()
    assert np.array_equal(dmu, dmu_f) and np.array_equal(dls, dls_f)
    assert np.abs(Q.make_qparams(-1.0, 1.0)["scale"][0] * (e.astype(float) - qe["zero_point"][0]) - dz).max() \
        <= qe["scale"][0] / 2 + 1e-7
