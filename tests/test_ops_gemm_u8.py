"""uint8 Gemm and update: C on the emulator and the Numba twins agree bit for bit, and the integer
and float arithmetic means what the header says (checked against numpy references)."""
import numpy as np

from mcusim.checks.gemm_u8 import CHECKS
from mcusim.crosscheck import run_checks
from mcusim.ops import gemm_u8 as G
from mcusim.ops.quant_u8 import grad_scales, make_qparams


def test_c_and_numba_agree_bit_for_bit():
    for r in run_checks(CHECKS, cases=5, seed=7):
        assert r.cases == 5 and r.mismatches == 0, r


def _real(q, qp):
    return qp["scale"][0] * (q.astype(np.float64) - qp["zero_point"][0])


def test_forward_matches_the_dequantized_float_layer():
    rng = np.random.default_rng(0)
    n_in, n_out = 200, 30
    x, w, b = (rng.integers(0, 256, n).astype(np.uint8) for n in (n_in, n_in * n_out, n_out))
    qx, qw, qb, qy = make_qparams(-1, 1), make_qparams(-0.1, 0.1), make_qparams(-0.5, 0.5), make_qparams(0, 4)
    y = np.zeros(n_out, np.uint8)
    ref = np.maximum(_real(w, qw).reshape(n_out, n_in) @ _real(x, qx) + _real(b, qb), 0)
    G.gemm_u8_forward(x, qx, w, qw, b, qb, y, make_qparams(0, 4), n_in, n_out, 1, np.float32(0))
    assert np.all(np.abs(_real(y, qy) - np.clip(ref, 0, _real(np.array([255]), qy)[0])) <= qy["scale"][0] / 2 + 1e-6)


def test_error_propagation_and_relu_mask():
    rng = np.random.default_rng(1)
    n_in, n_out = 50, 20
    w, e = rng.integers(0, 256, n_in * n_out).astype(np.uint8), rng.integers(0, 256, n_out).astype(np.uint8)
    x = rng.integers(0, 256, n_in).astype(np.uint8)
    qw, qe, qx = make_qparams(-0.2, 0.2), make_qparams(-0.01, 0.01), make_qparams(0, 3)
    active = (rng.random(n_out) < 0.5).astype(np.uint8)
    ex, qex = np.zeros(n_in, np.uint8), make_qparams(-0.01, 0.01)
    G.gemm_u8_backward_input(w, qw, e, qe, ex, qex.copy(), x, qx, n_in, n_out, active, np.float32(0))
    de = _real(e, qe) * active
    ref = _real(w, qw).reshape(n_out, n_in).T @ de
    ref[x <= qx["zero_point"][0]] = 0
    assert np.all(np.abs(_real(ex, qex) - np.clip(ref, _real(np.array([0]), qex)[0], _real(np.array([255]), qex)[0]))
                  <= qex["scale"][0] / 2 + 1e-9)


def test_weight_gradient_accumulates_real_products():
    rng = np.random.default_rng(2)
    n_in, n_out = 40, 8
    x, e = rng.integers(0, 256, n_in).astype(np.uint8), rng.integers(0, 256, n_out).astype(np.uint8)
    qx, qe = make_qparams(-1, 2), make_qparams(-0.3, 0.1)
    sgw, sgb = grad_scales(n_out, np.float32(2.0 ** -14)), grad_scales(n_out, np.float32(2.0 ** -12))
    gw = np.full(n_in * n_out, 2 ** 14, np.int16)                        # 1.0 in the scale of sgw
    gb = np.zeros(n_out, np.int16)
    G.gemm_u8_backward_weight(x, qx, e, qe, gw, sgw, gb, sgb, n_in, n_out, None)
    ref = np.outer(_real(e, qe), _real(x, qx)).reshape(-1) + 1
    # int16 units of the gradient scale: each product rounded once (the row coefficient has >= 14 bits)
    assert np.allclose(gw * 2.0 ** -14, ref, rtol=1e-3, atol=2.0 ** -14)
    assert np.allclose(gb * 2.0 ** -12, _real(e, qe), atol=2.0 ** -13)


def test_update_moves_weights_against_the_standardized_gradient_and_clears_it():
    rng = np.random.default_rng(3)
    rows, cols = 6, 100
    qw = make_qparams(-1, 1)
    w = np.full(rows * cols, qw["zero_point"][0], np.uint8)            # all weights exactly 0.0
    g = rng.integers(-4000, 4000, rows * cols).astype(np.int16)
    sg = np.ldexp(np.float32(1), -10 - 2 * np.arange(rows)).astype(np.float32)   # rows 4x apart, powers of 2
    norm = np.zeros(rows, np.float32)
    active = np.array([1, 1, 1, 0, 1, 1], np.uint8)
    g_in, sg_in = g.copy(), sg.copy()
    G.sgd_u8_update(w, qw, g_in, sg_in, norm, rows, cols, cols, np.float32(0.1), np.float32(1.0), np.float32(0.0),
                    active)
    assert np.all(g_in == 0)                                             # cleared for the next batch
    row_max = np.abs(g.reshape(rows, cols)).max(1)
    for r in range(rows):          # each active row rescaled by its own max, up to a power of two
        want = np.float32(2.0 ** np.ceil(np.log2(sg[r] * row_max[r] / 8192.0))) if active[r] else sg[r]
        assert sg_in[r] == want, r
    moved = _real(w, qw).reshape(rows, cols)
    gr = g.astype(np.float64).reshape(rows, cols) * sg[:, None]
    std = np.clip(gr / np.sqrt((gr ** 2).mean(1, keepdims=True)), -3, 3)     # RMS-scaled, clipped at 3
    assert np.all(moved[3] == 0)                                         # inactive row untouched
    on = active.astype(bool)
    assert np.max(np.abs(moved[on] - (-0.1 * std[on]))) < qw["scale"][0]      # rounded stochastically


def test_update_keeps_steps_under_half_a_quantization_step_on_average():
    """A step of 0.3 quantization steps moves about 30% of the weights by one step (round half up moved none),
    and the fixed range keeps every other weight where it was."""
    rows, cols = 50, 200
    qw = make_qparams(-1, 1)
    z, step = int(qw["zero_point"][0]), 0.3 * float(qw["scale"][0])
    w = np.full(rows * cols, z, np.uint8)
    g = np.full(rows * cols, 1000, np.int16)                              # every row's RMS step: exactly 1
    norm = np.zeros(rows, np.float32)
    G.sgd_u8_update(w, qw, g, grad_scales(rows, 1e-3), norm, rows, cols, cols, np.float32(step), np.float32(1.0),
                    np.float32(0.0), None)
    moved = z - w.astype(np.int32)
    assert set(np.unique(moved)) == {0, 1}
    assert abs(moved.mean() - 0.3) < 0.03

