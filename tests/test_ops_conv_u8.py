"""uint8 Conv2D and ConvTranspose2D: C on the emulator and the Numba twins agree bit for bit, the scratch
sizes agree, and the arithmetic means what nn.h says (against float64 numpy references built
from the dequantized tensors), including stride 2 / pad 1, output padding and the active mask."""
import numpy as np
import pytest

from mcusim.checks.conv_u8 import CHECKS
from mcusim.checks.gemm_u8 import _raw
from mcusim.crosscheck import run_checks
from mcusim.kernel_lib import KernelLibrary
from mcusim.ops import conv_u8 as C
from mcusim.ops.quant_u8 import grad_scales, make_qparams


@pytest.fixture(scope="module")
def kernels():
    return KernelLibrary()


def test_c_and_numba_agree_bit_for_bit(kernels):
    results = run_checks(CHECKS, cases=4, seed=7, kernels=kernels)
    assert {(r.op, r.direction) for r in results} == {
        (op, d) for op in ("conv2d", "convtranspose2d")
        for d in ("forward", "backward_input", "backward_weight", "buffer_size")}
    for r in results:
        assert r.dtype == "u8" and r.cases == 4 and r.mismatches == 0, r
        if r.direction != "buffer_size":
            assert r.cycles_per_call > 0 and r.macs_per_cycle, r


DIMS = [C.conv_dims(3, 9, 9, 4, 5, 5, 3, 3, 2, 1), C.conv_dims(1, 28, 28, 16, 14, 14, 3, 3, 2, 1),
        C.conv_dims(5, 6, 7, 3, 4, 3, 2, 4, 2, 0), C.conv_dims(32, 7, 7, 16, 14, 14, 4, 4, 2, 1),
        C.conv_dims(2, 5, 4, 3, 11, 10, 4, 3, 2, 1), C.conv_dims(4, 3, 3, 2, 5, 5, 1, 1, 3, 2)]


def test_buffer_sizes_of_c_and_python_agree(kernels):
    for d in DIMS:
        for op in ("conv2d", "convtranspose2d"):
            for direction in ("forward", "backward_input", "backward_weight"):
                got = kernels.call(f"{op}_u8_{direction}_buffer_size", d).result.return_value
                assert got == getattr(C, f"{op}_{direction}_buffer_size")(d), (op, direction, d)
                assert got % 4 == 0


# ---- float64 references ----------------------------------------------------------------------------
def _real(q, qp):
    return qp["scale"][0] * (q.astype(np.float64) - qp["zero_point"][0])


def _conv_ref(x, w, s, p, oh, ow):
    """y[o, oy, ox] = sum w[o, c, ky, kx] * x[c, oy*s - p + ky, ox*s - p + kx] (zero padding)."""
    ic, ih, iw = x.shape
    _, _, kh, kw = w.shape
    xp = np.zeros((ic, max(ih + p, (oh - 1) * s + kh) + p, max(iw + p, (ow - 1) * s + kw) + p))
    xp[:, p:p + ih, p:p + iw] = x
    y = np.zeros((w.shape[0], oh, ow))
    for ky in range(kh):
        for kx in range(kw):
            y += np.einsum("oc,chw->ohw", w[:, :, ky, kx], xp[:, ky:ky + s * oh:s, kx:kx + s * ow:s][:, :oh, :ow])
    return y


def _convt_ref(x, w, s, p, oh, ow):
    """y[o, iy*s - p + ky, ix*s - p + kx] += w[c, o, ky, kx] * x[c, iy, ix]; outside outputs dropped."""
    ic, ih, iw = x.shape
    _, oc, kh, kw = w.shape
    full = np.zeros((oc, max((ih - 1) * s + kh, oh + p), max((iw - 1) * s + kw, ow + p)))
    for ky in range(kh):
        for kx in range(kw):
            full[:, ky:ky + s * ih:s, kx:kx + s * iw:s] += np.einsum("co,chw->ohw", w[:, :, ky, kx], x)
    return full[:, p:p + oh, p:p + ow]


def _within_half_step(q, qp, ref):
    lo, hi = _real(np.array([0]), qp)[0], _real(np.array([255]), qp)[0]
    err = np.abs(_real(q, qp) - np.clip(ref, lo, hi))
    assert err.max() <= qp["scale"][0] / 2 + 1e-5, err.max()


def _case(seed, transposed):
    rng = np.random.default_rng(seed)
    if transposed:          # 4x5x5 -> 3x11x11 k4 s2 p1 with output padding 1
        d = C.conv_dims(4, 5, 5, 3, 11, 11, 4, 4, 2, 1)
        wshape = (4, 3, 4, 4)
    else:                   # 3x9x9 -> 4x5x5 k3 s2 p1
        d = C.conv_dims(3, 9, 9, 4, 5, 5, 3, 3, 2, 1)
        wshape = (4, 3, 3, 3)
    u8 = lambda n: rng.integers(0, 256, int(n)).astype(np.uint8)  # noqa: E731
    return rng, d, wshape, u8


@pytest.mark.parametrize("transposed", [False, True])
def test_forward_matches_the_dequantized_float_layer(transposed):
    rng, d, wshape, u8 = _case(0, transposed)
    ic, ih, iw, oc, oh, ow, kh, kw, s, p = (int(v) for v in d)
    x, w, b = u8(ic * ih * iw), u8(np.prod(wshape)), u8(oc)
    qx, qw, qb = make_qparams(-1, 1), make_qparams(-0.15, 0.15), make_qparams(-0.5, 0.5)
    ref_fn = _convt_ref if transposed else _conv_ref
    lin = ref_fn(_real(x, qx).reshape(ic, ih, iw), _real(w, qw).reshape(wshape), s, p, oh, ow) \
        + _real(b, qb)[:, None, None]
    fwd = C.convtranspose2d_u8_forward if transposed else C.conv2d_u8_forward
    for relu, qy in ((1, make_qparams(0, 3)), (0, make_qparams(-3, 3))):
        y, qy_run = np.zeros(oc * oh * ow, np.uint8), qy.copy()
        fwd(x, qx, w, qw, b, qb, y, qy_run, d, relu, np.float32(0.5))
        ref = np.maximum(lin, 0) if relu else lin
        _within_half_step(y, qy, ref.reshape(-1))
        # the range moved halfway towards the observed one
        assert np.isclose(qy_run["max"][0], 0.5 * (qy["max"][0] + ref.max()), rtol=1e-3, atol=1e-2)


@pytest.mark.parametrize("transposed", [False, True])
def test_error_propagation_with_active_mask_and_relu_mask(transposed):
    rng, d, wshape, u8 = _case(1, transposed)
    ic, ih, iw, oc, oh, ow, kh, kw, s, p = (int(v) for v in d)
    w, e, x = u8(np.prod(wshape)), u8(oc * oh * ow), u8(ic * ih * iw)
    qw, qe, qx = make_qparams(-0.2, 0.2), make_qparams(-0.01, 0.01), make_qparams(0, 3)
    active = np.array([1, 0, 1, 1][:oc], np.uint8)
    de = _real(e, qe).reshape(oc, oh, ow) * active[:, None, None]
    wr = _real(w, qw).reshape(wshape)
    if transposed:          # adjoint of the transposed conv: a strided conv of e with w [ic][oc]
        ref = _conv_ref(de, wr, s, p, ih, iw)
    else:                   # adjoint of the conv: a transposed conv of e with w [oc][ic]
        ref = _convt_ref(de, wr, s, p, ih, iw)
    bwd = C.convtranspose2d_u8_backward_input if transposed else C.conv2d_u8_backward_input
    qex = make_qparams(-0.02, 0.02)
    ex = np.zeros(ic * ih * iw, np.uint8)
    bwd(w, qw, e, qe, ex, qex.copy(), None, None, d, active, np.float32(0))
    _within_half_step(ex, qex, ref.reshape(-1))
    masked = ref.reshape(-1).copy()
    masked[x <= qx["zero_point"][0]] = 0
    ex2 = np.zeros_like(ex)
    bwd(w, qw, e, qe, ex2, qex.copy(), x, qx, d, active, np.float32(0))
    _within_half_step(ex2, qex, masked)
    assert np.all(ex2[x <= qx["zero_point"][0]] == qex["zero_point"][0])


# The backward_input cores copy and sum the selected channels only (nn__conv_u8_select): none, one, an odd
# count kept odd (pairs along kernel rows) or completed by an empty channel (k = 1 or 3: pairs across
# channels), an even count, all. (op, dims) with 8 output channels; masks over them.
SELECTIONS = [[0] * 8, [0, 0, 1, 0, 0, 0, 0, 0], [1, 0, 0, 1, 0, 1, 0, 0], [1, 1, 0, 1, 0, 1, 1, 0],
              [0, 1, 1, 0, 1, 0, 0, 1], [1] * 8]
SELECTION_DIMS = [("conv2d", C.conv_dims(3, 7, 6, 8, 7, 6, 3, 3, 1, 1)),
                  ("conv2d", C.conv_dims(5, 5, 5, 8, 5, 5, 1, 1, 1, 0)),
                  ("convtranspose2d", C.conv_dims(3, 4, 5, 8, 8, 10, 4, 4, 2, 1)),
                  ("convtranspose2d", C.conv_dims(2, 6, 5, 8, 6, 5, 3, 3, 1, 1))]


@pytest.mark.parametrize("op, d", SELECTION_DIMS)
def test_backward_input_of_every_selection_matches_the_twin(kernels, op, d):
    rng = np.random.default_rng(3)
    ic, ih, iw, oc, oh, ow, kh, kw = (int(v) for v in d[:8])
    twin, size = getattr(C, f"{op}_u8_backward_input"), getattr(C, f"{op}_backward_input_buffer_size")(d)
    w, e, x = (rng.integers(0, 256, n).astype(np.uint8) for n in (ic * oc * kh * kw, oc * oh * ow, ic * ih * iw))
    qw, qe, qx = make_qparams(-0.2, 0.2), make_qparams(-0.01, 0.01), make_qparams(0, 3)
    for sel in SELECTIONS:
        active = np.array(sel, np.uint8) * 5                       # any non-zero byte selects
        qex, ex = make_qparams(-0.02, 0.02), np.zeros(ic * ih * iw, np.uint8)
        call = kernels.call(f"{op}_u8_backward_input", w, _raw(qw), e, _raw(qe), ex, _raw(qex), x, _raw(qx), d,
                            active, 0.1, np.zeros(size // 4, np.int32))
        twin(w, qw, e, qe, ex, qex, x, qx, d, active, np.float32(0.1))
        assert np.array_equal(call.outputs[4], ex), (op, sel)
        assert np.array_equal(call.outputs[5], _raw(qex)), (op, sel)


@pytest.mark.parametrize("transposed", [False, True])
def test_weight_gradient_accumulates_real_products(transposed):
    rng, d, wshape, u8 = _case(2, transposed)
    ic, ih, iw, oc, oh, ow, kh, kw, s, p = (int(v) for v in d)
    x, e = u8(ic * ih * iw), u8(oc * oh * ow)
    qx, qe = make_qparams(-1, 2), make_qparams(-0.3, 0.1)
    active = np.array([1, 1, 0, 1][:oc], np.uint8)
    xr, er = _real(x, qx).reshape(ic, ih, iw), _real(e, qe).reshape(oc, oh, ow)
    ref = np.zeros(wshape)
    if transposed:          # gw[c, o, ky, kx] = sum x[c, iy, ix] * e[o, iy*s - p + ky, ix*s - p + kx]
        ep = np.zeros((oc, (ih - 1) * s + kh, (iw - 1) * s + kw))
        ep[:, p:p + oh, p:p + ow] = er[:, :ep.shape[1] - p, :ep.shape[2] - p]
        for ky in range(kh):
            for kx in range(kw):
                ref[:, :, ky, kx] = np.einsum("chw,ohw->co", xr, ep[:, ky:ky + s * ih:s, kx:kx + s * iw:s])
    else:                   # gw[o, c, ky, kx] = sum e[o, oy, ox] * x[c, oy*s - p + ky, ox*s - p + kx]
        xp = np.zeros((ic, (oh - 1) * s + kh, (ow - 1) * s + kw))
        xp[:, p:p + ih, p:p + iw] = xr[:, :xp.shape[1] - p, :xp.shape[2] - p]
        for ky in range(kh):
            for kx in range(kw):
                ref[:, :, ky, kx] = np.einsum("ohw,chw->oc", er, xp[:, ky:ky + s * oh:s, kx:kx + s * ow:s])
    unit = 2.0 ** -7                                           # int16 buffers with gradient scale 2^-7
    gw = np.full(int(np.prod(wshape)), 128, np.int16)         # 1.0
    gb = np.full(oc, 256, np.int16)                           # 2.0
    sg = grad_scales(oc, np.float32(unit))
    bwd = C.convtranspose2d_u8_backward_weight if transposed else C.conv2d_u8_backward_weight
    bwd(x, qx, e, qe, gw, sg, gb, sg, d, active)
    bwd(x, qx, e, qe, gw, sg, gb, sg, d, active)               # accumulates over a batch of two
    on = (active[None, :, None, None] if transposed else active[:, None, None, None]).astype(bool)
    expect = np.where(on, 1 + 2 * ref, 1).reshape(-1)
    assert np.all(np.abs(gw * unit - expect) <= unit * 1.01)            # two roundings of half a unit
    assert np.all(gw[~np.broadcast_to(on, wshape).reshape(-1)] == 128)
    assert np.all(np.abs(gb * unit - np.where(active.astype(bool), 2 + 2 * er.sum(axis=(1, 2)), 2)) <= unit * 1.01)
