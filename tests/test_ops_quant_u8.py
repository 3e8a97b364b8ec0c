"""u8 quantization utilities: C (emulator) and Numba agree bit for bit, and both are right."""
import numpy as np
import pytest

from mcusim.checks.quant_u8 import CHECKS
from mcusim.crosscheck import run_checks
from mcusim.ops import quant_u8 as Q


def test_c_and_numba_agree_bit_for_bit():
    for r in run_checks(CHECKS, cases=6, seed=3):
        assert r.cases == 6 and r.mismatches == 0, r


def test_scale_and_zero_point_follow_the_range():
    q = Q.make_qparams(-0.5, 2.0)
    assert q["scale"][0] == np.float32(2.5) * Q.INV_QMAX
    assert q["zero_point"][0] == 51                      # floor(0.5 / (2.5/255)) = floor(51.0)
    positive = Q.make_qparams(0.25, 4.0)                  # the range always includes 0
    assert positive["zero_point"][0] == 0 and positive["scale"][0] == np.float32(4.0) * Q.INV_QMAX
    flat = Q.make_qparams(0.0, 0.0)
    assert flat["scale"][0] == Q.MIN_SCALE


def test_rounding_rule_is_round_half_up_with_clamping():
    inv, zp = np.float32(4.0), np.int32(100)
    cases = {0.0: 100, 0.125: 101, -0.125: 100, 0.124: 100, -0.126: 99, 1e9: 255, -1e9: 0,
             float("nan"): 0, float("inf"): 255, float("-inf"): 0}
    for t, expected in cases.items():
        assert Q.quantize(np.float32(t), inv, zp) == expected, t


def test_quantize_then_dequantize_is_within_half_a_step():
    rng = np.random.default_rng(0)
    x = rng.uniform(-3, 5, 5000).astype(np.float32)
    q = Q.make_qparams(-3, 5)
    y = np.zeros_like(x, np.uint8)
    Q.quantize_f32_u8(x, y, x.size, q, np.float32(0.0))   # alpha 0: the range stays [-3, 5]
    back = np.zeros_like(x)
    Q.dequantize_u8_f32(y, back, y.size, q)
    step, zp = float(q["scale"][0]), int(q["zero_point"][0])
    inside = (x >= step * (0 - zp)) & (x <= step * (255 - zp))   # floor(zero point) shifts the grid
    assert inside.mean() > 0.99
    assert np.max(np.abs(back.astype(np.float64) - x)[inside]) <= step / 2 + 1e-6
    assert np.max(np.abs(back.astype(np.float64) - x)) <= step       # clamped values: within a step
    assert back[np.argmin(np.abs(x))] == pytest.approx(0.0, abs=step)


def test_moving_average_range():
    q = Q.make_qparams(-1, 1)
    x = np.array([-4.0, 9.0], np.float32)
    y = np.zeros(2, np.uint8)
    Q.quantize_f32_u8(x, y, 2, q, np.float32(0.1))
    assert q["min"][0] == np.float32(-1.0) + np.float32(0.1) * np.float32(-3.0)
    assert q["max"][0] == np.float32(1.0) + np.float32(0.1) * np.float32(8.0)
    assert y[1] == 255                                    # 9.0 lies beyond the averaged range: saturates


def test_integer_requantization_rounds_the_exact_product():
    rng = np.random.default_rng(5)
    v = np.concatenate([rng.integers(-2**24, 2**24, 4000), np.arange(-600, 600)]).astype(np.int64)
    for m in (0.3, 0.013, 1e-3, 3.7e-5, 2.0 ** -20, 0.4999):
        mult, shift = Q.requant_make(np.float32(m))
        assert 2**30 <= mult < 2**31 and 0 <= shift <= 30
        assert mult * 2.0 ** -(32 + int(shift)) == float(np.float32(m))          # the float's mantissa, exact
        got = np.array([Q.requant_apply(np.int32(a), mult, shift) for a in v])
        h = (v * int(mult) + 2**31) >> 32                                       # the two roundings of nn.h
        assert np.array_equal(got, (h + ((1 << int(shift)) >> 1)) >> int(shift))
        exact = v * np.float64(np.float32(m))
        assert np.all(np.abs(got - exact) <= 0.5 + 2.0 ** -int(shift) / 2 + 1e-9)    # within half a step, and a bit
    assert Q.requant_make(np.float32(0.5)) == (2**31 - 1, 0)                      # the largest multiplier held
    assert Q.requant_make(np.float32(0.0)) == (0, 0) and Q.requant_make(np.float32(np.nan)) == (0, 0)


def test_gradient_scale_follows_the_batch_magnitude():
    s = Q.grad_next_scale(np.float32(2.0 ** -10), 4096)    # half the target: the next scale halves
    assert s == np.float32(2.0 ** -11)
    assert Q.grad_next_scale(np.float32(2.0 ** -10), 3000) == np.float32(2.0 ** -11)   # rounded up to a power of 2
    assert Q.grad_next_scale(np.float32(2.0 ** -10), 4097) == np.float32(2.0 ** -10)
    assert Q.grad_next_scale(np.float32(1e-3), 5000) == np.float32(2.0 ** -10)     # any scale gives a power of 2
    grown = Q.grad_next_scale(s, 32767)                    # saturated: grows by GRAD_GROW
    assert grown == np.float32(2.0 ** -11) * Q.GRAD_GROW
    assert Q.grad_next_scale(grown, 0) == grown * (np.float32(1) / Q.GRAD_GROW)   # rounded away: shrinks
    assert Q.grad_next_scale(Q.GRAD_MIN_SCALE, 0) == Q.GRAD_MIN_SCALE            # clamped both ways
    assert Q.grad_next_scale(Q.GRAD_MAX_SCALE, 32767) == Q.GRAD_MAX_SCALE


def test_gradient_inverse_is_exact_for_every_scale():
    for k in range(-100, 101):
        s = np.float32(2.0 ** k)
        assert Q.grad_inverse(s) == np.float32(2.0 ** -k)
        x = np.float32(0.1234567) * np.float32(3.0 ** (k % 7))
        assert x * Q.grad_inverse(s) == x / s                  # the multiplication the kernels do is the division
