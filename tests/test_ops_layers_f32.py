"""fp32 layers (gemm, conv2d, convtranspose2d; forward / backward_input / backward_weight): the C on
the emulated Cortex-M4F and the Numba twins agree bit for bit; both match a float64 numpy reference;
convtranspose2d is the adjoint of conv2d; `active` masks and gradient accumulation behave as
documented in kernels/include/nn.h."""
import numpy as np
import pytest

from mcusim.checks.layers_f32 import CHECKS
from mcusim.crosscheck import run_checks
from mcusim.kernel_lib import KernelLibrary
from mcusim.ops import layers_f32 as L

RTOL = 1e-4


@pytest.fixture(scope="module")
def kl() -> KernelLibrary:
    return KernelLibrary()


def f32(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def close(got, want):
    """Relative to the magnitude of the result (sums of random terms can cancel to ~0)."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    scale = max(np.abs(want).max(), 1.0)
    np.testing.assert_allclose(got, want, rtol=0, atol=RTOL * scale)


# ---- float64 references -----------------------------------------------------------------------
def gemm_ref(x, w, b, dy):
    x, w, b, dy = (a.astype(np.float64) for a in (x, w, b, dy))
    return w @ x + b, w.T @ dy, np.outer(dy, x), dy


def _patches(x, kh, kw, s, p, oh, ow):
    """P[i, ky, kx, oy, ox] = x[i, oy*s - p + ky, ox*s - p + kx] (0 outside)."""
    ic, ih, iw = x.shape
    big = np.zeros((ic, ih + 2 * p + s * oh + kh, iw + 2 * p + s * ow + kw))
    big[:, p:p + ih, p:p + iw] = x
    P = np.empty((ic, kh, kw, oh, ow))
    for ky in range(kh):
        for kx in range(kw):
            P[:, ky, kx] = big[:, ky:ky + s * oh:s, kx:kx + s * ow:s][:, :oh, :ow]
    return P, big.shape


def conv2d_ref(x, w, b, dy, d):
    """y, dx, dw, db of a zero-padded strided convolution, in float64."""
    ic, ih, iw, oc, oh, ow, kh, kw, s, p = (int(v) for v in d)
    x, w, b, dy = (a.astype(np.float64) for a in (x, w, b, dy))
    P, big_shape = _patches(x, kh, kw, s, p, oh, ow)
    y = np.einsum("oikl,iklyx->oyx", w, P) + b[:, None, None]
    dw = np.einsum("oyx,iklyx->oikl", dy, P)
    dP = np.einsum("oikl,oyx->iklyx", w, dy)
    big = np.zeros(big_shape)
    for ky in range(kh):
        for kx in range(kw):
            big[:, ky:ky + s * oh:s, kx:kx + s * ow:s][:, :oh, :ow] += dP[:, ky, kx]
    dx = big[:, p:p + ih, p:p + iw]
    return y, dx, dw, dy.sum(axis=(1, 2))


def convt_ref(x, w, b, dy, d):
    """y, dx, dw, db of a transposed convolution (scatter form, cropped by pad / out size), float64."""
    ic, ih, iw, oc, oh, ow, kh, kw, s, p = (int(v) for v in d)
    x, w, b, dy = (a.astype(np.float64) for a in (x, w, b, dy))
    fh, fw = max((ih - 1) * s + kh, oh + p), max((iw - 1) * s + kw, ow + p)
    full = np.zeros((oc, fh, fw))
    dyf = np.zeros((oc, fh, fw))                        # dy placed at full index o + p
    dyf[:, p:p + oh, p:p + ow] = dy
    dx = np.zeros((ic, ih, iw))
    dw = np.zeros((ic, oc, kh, kw))
    for ky in range(kh):
        for kx in range(kw):
            sl = (slice(None), slice(ky, ky + s * (ih - 1) + 1, s), slice(kx, kx + s * (iw - 1) + 1, s))
            full[sl] += np.einsum("io,ihw->ohw", w[:, :, ky, kx], x)
            dx += np.einsum("io,ohw->ihw", w[:, :, ky, kx], dyf[sl])
            dw[:, :, ky, kx] = np.einsum("ihw,ohw->io", x, dyf[sl])
    y = full[:, p:p + oh, p:p + ow] + b[:, None, None]
    return y, dx, dw, dy.sum(axis=(1, 2))


# (in_c, in_h, in_w, out_c, out_h, out_w, k_h, k_w, stride, pad): edge cases + the real layers.
CONV_SHAPES = [
    (1, 28, 28, 16, 14, 14, 3, 3, 2, 1), (16, 14, 14, 32, 7, 7, 3, 3, 2, 1),
    (3, 5, 6, 5, 3, 4, 3, 3, 2, 1), (2, 4, 4, 3, 4, 4, 3, 3, 1, 1), (2, 5, 5, 6, 3, 3, 1, 1, 2, 0),
    (1, 3, 7, 2, 2, 4, 4, 2, 3, 2), (5, 2, 2, 4, 1, 1, 2, 2, 1, 0), (3, 6, 5, 4, 5, 4, 3, 4, 1, 1),
]
CONVT_SHAPES = [
    (32, 7, 7, 16, 14, 14, 4, 4, 2, 1), (16, 14, 14, 1, 28, 28, 4, 4, 2, 1),
    (3, 4, 3, 5, 9, 7, 3, 3, 2, 0), (2, 3, 3, 3, 8, 8, 4, 4, 3, 2), (4, 2, 5, 6, 2, 5, 1, 1, 1, 0),
    (2, 3, 4, 3, 7, 8, 4, 3, 2, 1), (3, 5, 5, 2, 11, 10, 3, 2, 2, 1), (5, 1, 1, 4, 3, 2, 3, 2, 1, 0),
]
GEMM_SHAPES = [(1568, 64), (64, 10), (10, 1568), (7, 5), (1, 1), (13, 6)]


# ---- (1) C == Numba, bit for bit ------------------------------------------------------------------
def test_crosscheck_bit_exact(kl):
    results = run_checks(CHECKS, cases=5, seed=1, kernels=kl)
    assert len(results) == 9
    for r in results:
        assert r.cases == 5 and r.mismatches == 0, r.as_dict()
        assert r.cycles_per_call > 0 and r.macs_per_cycle, r.as_dict()


@pytest.mark.parametrize("op", ["conv2d", "convtranspose2d"])
def test_edge_shapes_bit_exact(kl, op):
    rng = np.random.default_rng(7)
    shapes = CONV_SHAPES if op == "conv2d" else CONVT_SHAPES
    for d in map(lambda s: np.array(s, np.int32), shapes):
        wshape = (d[3], d[0], d[6], d[7]) if op == "conv2d" else (d[0], d[3], d[6], d[7])
        x, w, b, dy = f32(rng, *d[0:3]), f32(rng, *wshape), f32(rng, d[3]), f32(rng, *d[3:6])
        act = (rng.random(d[3]) < 0.5).astype(np.uint8)
        y, dx, dw, db = f32(rng, *d[3:6]), f32(rng, *d[0:3]), f32(rng, *wshape), f32(rng, d[3])
        c = kl.call(f"{op}_f32_forward", x, w, b, y, d).outputs[3]
        n = y.copy(); getattr(L, f"{op}_f32_forward")(x, w, b, n, d)
        assert np.array_equal(c.view(np.uint32), n.view(np.uint32)), d
        c = kl.call(f"{op}_f32_backward_input", w, dy, dx, d, act).outputs[2]
        n = dx.copy(); getattr(L, f"{op}_f32_backward_input")(w, dy, n, d, act)
        assert np.array_equal(c.view(np.uint32), n.view(np.uint32)), d
        out = kl.call(f"{op}_f32_backward_weight", x, dy, dw, db, d, act).outputs
        nw, nb = dw.copy(), db.copy(); getattr(L, f"{op}_f32_backward_weight")(x, dy, nw, nb, d, act)
        assert np.array_equal(out[2].view(np.uint32), nw.view(np.uint32)), d
        assert np.array_equal(out[3].view(np.uint32), nb.view(np.uint32)), d


# ---- (2) against float64 references ----------------------------------------------------------------
@pytest.mark.parametrize("n_in,n_out", GEMM_SHAPES)
def test_gemm_matches_reference(kl, n_in, n_out):
    rng = np.random.default_rng(n_in * 1000 + n_out)
    x, w, b, dy = f32(rng, n_in), f32(rng, n_out, n_in), f32(rng, n_out), f32(rng, n_out)
    y_r, dx_r, dw_r, db_r = gemm_ref(x, w, b, dy)
    close(kl.call("gemm_f32_forward", x, w, b, np.zeros(n_out, np.float32), n_in, n_out).outputs[3], y_r)
    close(kl.call("gemm_f32_backward_input", w, dy, np.ones(n_in, np.float32), n_in, n_out, None).outputs[2], dx_r)
    out = kl.call("gemm_f32_backward_weight", x, dy, np.zeros((n_out, n_in), np.float32),
                  np.zeros(n_out, np.float32), n_in, n_out, None).outputs
    close(out[2], dw_r)
    close(out[3], db_r)


@pytest.mark.parametrize("op,shape", [("conv2d", s) for s in CONV_SHAPES] + [("convtranspose2d", s) for s in CONVT_SHAPES])
def test_conv_matches_reference(kl, op, shape):
    rng = np.random.default_rng(sum(shape))
    d = np.array(shape, np.int32)
    wshape = (d[3], d[0], d[6], d[7]) if op == "conv2d" else (d[0], d[3], d[6], d[7])
    x, w, b, dy = f32(rng, *d[0:3]), f32(rng, *wshape), f32(rng, d[3]), f32(rng, *d[3:6])
    ref = conv2d_ref if op == "conv2d" else convt_ref
    y_r, dx_r, dw_r, db_r = ref(x, w, b, dy, d)
    close(kl.call(f"{op}_f32_forward", x, w, b, np.zeros(y_r.shape, np.float32), d).outputs[3], y_r)
    close(kl.call(f"{op}_f32_backward_input", w, dy, np.ones(x.shape, np.float32), d, None).outputs[2], dx_r)
    out = kl.call(f"{op}_f32_backward_weight", x, dy, np.zeros(wshape, np.float32),
                  np.zeros(d[3], np.float32), d, None).outputs
    close(out[2], dw_r)
    close(out[3], db_r)


@pytest.mark.parametrize("shape", CONV_SHAPES)
def test_convtranspose_is_adjoint_of_conv(kl, shape):
    """<conv(x), y> == <x, convT(y)> with the same weights [OC][IC][KH][KW] (convT: in = OC, out = IC)."""
    rng = np.random.default_rng(sum(shape) + 1)
    d = np.array(shape, np.int32)
    dt = np.array([*shape[3:6], *shape[0:3], *shape[6:]], np.int32)
    w, x, yv = f32(rng, d[3], d[0], d[6], d[7]), f32(rng, *d[0:3]), f32(rng, *d[3:6])
    cx = kl.call("conv2d_f32_forward", x, w, None, np.zeros(yv.shape, np.float32), d).outputs[2]   # b = None: no buffer
    ty = kl.call("convtranspose2d_f32_forward", yv, w, None, np.zeros(x.shape, np.float32), dt).outputs[2]
    lhs = np.dot(cx.astype(np.float64).ravel(), yv.astype(np.float64).ravel())
    rhs = np.dot(x.astype(np.float64).ravel(), ty.astype(np.float64).ravel())
    scale = np.abs(cx.astype(np.float64) * yv).sum() + 1.0
    assert abs(lhs - rhs) <= RTOL * scale
    # and in exact float64 arithmetic on the references
    y_r = conv2d_ref(x, w, np.zeros(d[3], np.float32), yv, d)[0]
    t_r = convt_ref(yv, w, np.zeros(d[0], np.float32), x, dt)[0]
    assert np.isclose(np.vdot(y_r, yv.astype(np.float64)), np.vdot(x.astype(np.float64), t_r), rtol=1e-12, atol=1e-9)


# ---- (3) active masks ----------------------------------------------------------------------------------
def _backward(kl, op, w, x, dy, dw, db, d, act):
    if op == "gemm":
        n_out, n_in = w.shape
        dx = kl.call("gemm_f32_backward_input", w, dy, np.full(n_in, 7, np.float32), n_in, n_out, act).outputs[2]
        out = kl.call("gemm_f32_backward_weight", x, dy, dw, db, n_in, n_out, act).outputs
    else:
        dx = kl.call(f"{op}_f32_backward_input", w, dy, np.full(x.shape, 7, np.float32), d, act).outputs[2]
        out = kl.call(f"{op}_f32_backward_weight", x, dy, dw, db, d, act).outputs
    return dx, out[2], out[3]


@pytest.mark.parametrize("op", ["gemm", "conv2d", "convtranspose2d"])
def test_active_mask(kl, op):
    rng = np.random.default_rng(11)
    if op == "gemm":
        d, n_out = None, 9
        x, w, dy = f32(rng, 13), f32(rng, n_out, 13), f32(rng, n_out)
        dw = f32(rng, n_out, 13)
        struct = lambda a, o: a[o]                                   # noqa: E731
    else:
        shape = CONV_SHAPES[2] if op == "conv2d" else CONVT_SHAPES[2]
        d = np.array(shape, np.int32)
        n_out = int(d[3])
        wshape = (d[3], d[0], d[6], d[7]) if op == "conv2d" else (d[0], d[3], d[6], d[7])
        x, w, dy, dw = f32(rng, *d[0:3]), f32(rng, *wshape), f32(rng, *d[3:6]), f32(rng, *wshape)
        struct = (lambda a, o: a[o]) if op == "conv2d" else (lambda a, o: a[:, o])   # noqa: E731
    db = f32(rng, n_out)
    act = np.zeros(n_out, np.uint8)
    act[[0, 2, n_out - 1]] = [1, 3, 1]                               # any non-zero byte is active
    dx_m, dw_m, db_m = _backward(kl, op, w, x, dy, dw, db, d, act)
    dy0 = dy.copy()
    dy0[act == 0] = 0.0
    dx_z, dw_f, db_f = _backward(kl, op, w, x, dy0, dw, db, d, None)
    assert np.array_equal(dx_m, dx_z)                   # inactive structures count as dy = 0
    for o in range(n_out):
        if act[o]:
            assert np.array_equal(struct(dw_m, o), struct(dw_f, o)) and db_m[o] == db_f[o]
        else:                                           # untouched, bit for bit
            assert np.array_equal(struct(dw_m, o).view(np.uint32), struct(dw, o).view(np.uint32))
            assert db_m[o] == db[o]
    ones = _backward(kl, op, w, x, dy, dw, db, d, np.ones(n_out, np.uint8))
    full = _backward(kl, op, w, x, dy, dw, db, d, None)
    for a, b in zip(ones, full):
        assert np.array_equal(a.view(np.uint32), b.view(np.uint32))
    none = _backward(kl, op, w, x, dy, dw, db, d, np.zeros(n_out, np.uint8))
    assert not np.any(none[0]) and np.array_equal(none[1], dw) and np.array_equal(none[2], db)


# ---- (4) backward_weight accumulates ------------------------------------------------------------------
@pytest.mark.parametrize("op", ["gemm", "conv2d", "convtranspose2d"])
def test_backward_weight_accumulates(kl, op):
    rng = np.random.default_rng(5)
    if op == "gemm":
        args = (20, 6)
        x, dy, wshape, n_out = f32(rng, 20), f32(rng, 6), (6, 20), 6
    else:
        d = np.array(CONV_SHAPES[3] if op == "conv2d" else CONVT_SHAPES[3], np.int32)
        args = (d, None)
        wshape = (d[3], d[0], d[6], d[7]) if op == "conv2d" else (d[0], d[3], d[6], d[7])
        x, dy, n_out = f32(rng, *d[0:3]), f32(rng, *d[3:6]), int(d[3])
    sym = f"{op}_f32_backward_weight"
    extra = (None,) if op == "gemm" else ()
    dw0, db0 = f32(rng, *wshape), f32(rng, n_out)
    g = kl.call(sym, x, dy, np.zeros(wshape, np.float32), np.zeros(n_out, np.float32), *args, *extra).outputs
    once = kl.call(sym, x, dy, dw0, db0, *args, *extra).outputs
    assert np.array_equal(once[2], dw0 + g[2]) and np.array_equal(once[3], db0 + g[3])
    twice = kl.call(sym, x, dy, once[2], once[3], *args, *extra).outputs
    assert np.array_equal(twice[2], (dw0 + g[2]) + g[2]) and np.array_equal(twice[3], (db0 + g[3]) + g[3])
