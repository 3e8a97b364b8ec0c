"""Grouped and depthwise Conv2D (fp32 and u8): C on the emulator and the Numba twins agree bit for bit,
the scratch sizes agree, groups == 1 is conv2d_* bit for bit in every direction, and the fp32 depthwise
forward matches a numpy reference."""
import numpy as np
import pytest

from mcusim.checks.gemm_u8 import _qp, _raw
from mcusim.checks.grouped_conv import CHECKS
from mcusim.checks.quant_u8 import random_grad
from mcusim.crosscheck import run_checks
from mcusim.kernel_lib import KernelLibrary
from mcusim.ops import conv_u8 as C
from mcusim.ops import grouped_conv as G
from mcusim.ops.conv_u8 import conv_dims


@pytest.fixture(scope="module")
def kernels():
    return KernelLibrary()


def test_c_and_numba_agree_bit_for_bit(kernels):
    results = run_checks(CHECKS, cases=6, seed=3, kernels=kernels)
    assert {(r.dtype, r.direction) for r in results} == {
        *((dt, d) for dt in ("fp32", "u8") for d in ("forward", "backward_input", "backward_weight")),
        ("u8", "buffer_size")}
    for r in results:
        assert r.cases == 6 and r.mismatches == 0, r


# groups == 1 geometries: stride 2 / pad 1, an odd kernel, and one input channel
ONE_GROUP = [conv_dims(3, 9, 9, 4, 5, 5, 3, 3, 2, 1), conv_dims(5, 6, 7, 3, 4, 3, 2, 4, 2, 0),
             conv_dims(1, 10, 10, 6, 10, 10, 3, 3, 1, 1)]


def _f32(rng, n):
    return rng.standard_normal(int(n)).astype(np.float32)


def _u8(rng, n):
    return rng.integers(0, 256, int(n)).astype(np.uint8)


def _scratch(nbytes):
    return np.zeros(max(nbytes, 4) // 4, np.int32)


@pytest.mark.parametrize("d", ONE_GROUP)
def test_one_group_is_conv2d_f32(kernels, d):
    rng = np.random.default_rng(1)
    n_x, n_y, n_w = int(d[0] * d[1] * d[2]), int(d[3] * d[4] * d[5]), int(d[0] * d[3] * d[6] * d[7])
    x, w, b, dy = _f32(rng, n_x), _f32(rng, n_w), _f32(rng, d[3]), _f32(rng, n_y)
    active = (rng.random(int(d[3])) < 0.5).astype(np.uint8)
    y0, dx0, dw0, db0 = _f32(rng, n_y), _f32(rng, n_x), _f32(rng, n_w), _f32(rng, d[3])
    ref = kernels.call("conv2d_f32_forward", x, w, b, y0, d).outputs[3]
    got = kernels.call("grouped_conv2d_f32_forward", x, w, b, y0, d, 1).outputs[3]
    assert got.tobytes() == ref.tobytes()
    ref = kernels.call("conv2d_f32_backward_input", w, dy, dx0, d, active).outputs[2]
    got = kernels.call("grouped_conv2d_f32_backward_input", w, dy, dx0, d, 1, active).outputs[2]
    assert got.tobytes() == ref.tobytes()
    ref = kernels.call("conv2d_f32_backward_weight", x, dy, dw0, db0, d, active).outputs[2:4]
    got = kernels.call("grouped_conv2d_f32_backward_weight", x, dy, dw0, db0, d, 1, active).outputs[2:4]
    assert all(g.tobytes() == r.tobytes() for g, r in zip(got, ref))


@pytest.mark.parametrize("d", ONE_GROUP)
def test_one_group_is_conv2d_u8(kernels, d):
    rng = np.random.default_rng(2)
    n_x, n_y, n_w = int(d[0] * d[1] * d[2]), int(d[3] * d[4] * d[5]), int(d[0] * d[3] * d[6] * d[7])
    x, w, b, e = _u8(rng, n_x), _u8(rng, n_w), _u8(rng, d[3]), _u8(rng, n_y)
    qx, qw, qb, qy, qe, qex = (_raw(_qp(rng, positive=i == 3)) for i in range(6))
    active = (rng.random(int(d[3])) < 0.5).astype(np.uint8)
    y = np.zeros(n_y, np.uint8)
    ref = kernels.call("conv2d_u8_forward", x, qx, w, qw, b, qb, y, qy, d, 1, 0.1,
                       _scratch(C.conv2d_forward_buffer_size(d))).outputs[6:8]
    got = kernels.call("grouped_conv2d_u8_forward", x, qx, w, qw, b, qb, y, qy, d, 1, 1, 0.1,
                       _scratch(G.grouped_conv2d_forward_buffer_size(d, 1))).outputs[6:8]
    assert all(g.tobytes() == r.tobytes() for g, r in zip(got, ref))
    ex = np.zeros(n_x, np.uint8)
    ref = kernels.call("conv2d_u8_backward_input", w, qw, e, qe, ex, qex, x, qx, d, active, 0.1,
                       _scratch(C.conv2d_backward_input_buffer_size(d))).outputs[4:6]
    got = kernels.call("grouped_conv2d_u8_backward_input", w, qw, e, qe, ex, qex, x, qx, d, 1, active, 0.1,
                       _scratch(G.grouped_conv2d_backward_input_buffer_size(d, 1))).outputs[4:6]
    assert all(g.tobytes() == r.tobytes() for g, r in zip(got, ref))
    gw, sgw = random_grad(rng, n_w, int(d[3]))
    gb, sgb = random_grad(rng, int(d[3]), int(d[3]))
    ref = kernels.call("conv2d_u8_backward_weight", x, qx, e, qe, gw, sgw, gb, sgb, d, active,
                       _scratch(C.conv2d_backward_weight_buffer_size(d))).outputs[4:8]
    got = kernels.call("grouped_conv2d_u8_backward_weight", x, qx, e, qe, gw, sgw, gb, sgb, d, 1, active,
                       _scratch(G.grouped_conv2d_backward_weight_buffer_size(d, 1))).outputs[4:8]
    assert all(g.tobytes() == r.tobytes() for g, r in zip(got, ref))


@pytest.mark.parametrize("mult, s, p", [(1, 1, 1), (2, 2, 1), (3, 1, 0)])
def test_depthwise_f32_forward_matches_numpy(kernels, mult, s, p):
    rng = np.random.default_rng(4)
    c, h, k = 6, 9, 3
    oh = (h + 2 * p - k) // s + 1
    d = conv_dims(c, h, h, c * mult, oh, oh, k, k, s, p)
    x, w, b = (rng.standard_normal(shape).astype(np.float32) for shape in ((c, h, h), (c * mult, 1, k, k), (c * mult,)))
    xp = np.pad(x.astype(np.float64), ((0, 0), (p, p), (p, p)))
    ref = np.empty((c * mult, oh, oh))
    for o in range(c * mult):
        for oy in range(oh):
            for ox in range(oh):
                ref[o, oy, ox] = b[o] + np.sum(w[o, 0] * xp[o // mult, oy * s:oy * s + k, ox * s:ox * s + k])
    y = np.zeros(c * mult * oh * oh, np.float32)
    got = kernels.call("grouped_conv2d_f32_forward", x, w, b, y, d, c).outputs[3]
    np.testing.assert_allclose(got.reshape(ref.shape), ref, rtol=0, atol=1e-5 * max(1.0, np.abs(ref).max()))
    G.grouped_conv2d_f32_forward(x, w, b, y, d, c)
    assert y.tobytes() == got.tobytes()
