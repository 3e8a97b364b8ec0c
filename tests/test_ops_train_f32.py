"""fp32 elementwise operators, losses and SGD (kernels/*_f32.c and mcusim.ops.train_f32): the C on the
emulated Cortex-M4F and the Numba twins agree bit for bit, both are accurate against float64
formulas (gradients against finite differences), and in-place / NULL-gradient calls work."""
import numpy as np
import pytest

from mcusim.crosscheck import run_checks
from mcusim.kernel_lib import KernelLibrary
from mcusim.checks.train_f32 import CHECKS, activations, latents, logits
from mcusim.ops import train_f32 as T

F32 = np.float32
@pytest.fixture(scope="module")
def kernels():
    return KernelLibrary()


# ---- float64 references ---------------------------------------------------------------------------
def ref_elbo(z, t, mu, ls):
    z, t, mu, ls = (np.asarray(a, np.float64) for a in (z, t, mu, ls))
    rec = np.sum(np.maximum(z, 0) - z * t + np.log1p(np.exp(-np.abs(z))))
    return rec + 0.5 * np.sum(mu ** 2 + np.exp(2 * ls) - 1 - 2 * ls)


def ref_ce(z, label):
    z = np.asarray(z, np.float64)
    m = z.max()
    return np.log(np.sum(np.exp(z - m))) - (z[label] - m)


def fd_grad(f, x, h):
    x = np.asarray(x, np.float64).copy()
    g = np.empty_like(x)
    for i in range(x.size):
        xp, xm = x.copy(), x.copy()
        xp[i] += h
        xm[i] -= h
        g[i] = (f(xp) - f(xm)) / (2 * h)
    return g


# ---- 1. bit-exact C vs Numba --------------------------------------------------------------------------
def test_c_and_numba_bit_exact(kernels):
    results = run_checks(CHECKS, cases=5, seed=1, kernels=kernels)
    assert {(r.op, r.direction) for r in results} == {
        ("relu", "forward"), ("relu", "backward_input"), ("sigmoid", "forward"),
        ("reparameterize", "forward"), ("reparameterize", "backward_input"), ("elbo", "forward"),
        ("elbo", "backward_input"), ("cross_entropy", "forward"), ("cross_entropy", "backward_input"),
        ("sgd_update", "update"), ("sgd_update", "update_standardized")}
    for r in results:
        assert r.cases == 5 and r.mismatches == 0, r.as_dict()
        assert r.cycles_per_call > 0


def test_twins_are_float32():
    from numba import types
    z = np.zeros(4, F32)
    T.elbo_f32_forward(z, np.zeros(4, np.uint8), z, z, 4, 4)
    T.cross_entropy_f32(z, 4, 0, None)
    for f in (T.elbo_f32_forward, T.cross_entropy_f32):
        assert all(s.return_type == types.float32 for s in f.nopython_signatures)


def test_inv255_bits():
    assert T.INV255.view(np.uint32) == 0x3B808081 and T.INV255 == F32(1.0 / 255.0)


# ---- 2. accuracy against float64 -------------------------------------------------------------------
def test_relu_and_sigmoid_accuracy():
    rng = np.random.default_rng(2)
    x = activations(rng, 5000)
    x[:6] = [0.0, -0.0, 100.0, -100.0, 88.0, -88.0]
    y = np.empty_like(x)
    T.relu_f32_forward(x, y, x.size)
    assert np.array_equal(y, np.where(x > 0, x, F32(0))) and not np.signbit(y).any()
    dy = activations(rng, x.size)
    dx = np.empty_like(x)
    T.relu_f32_backward(y, dy, dx, x.size)
    assert np.array_equal(dx, np.where(y > 0, dy, F32(0)))
    T.sigmoid_f32_forward(x, y, x.size)
    ref = 1.0 / (1.0 + np.exp(-x.astype(np.float64)))
    assert np.all(np.isfinite(y))
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-30)


def test_reparameterize_accuracy():
    rng = np.random.default_rng(3)
    mu, ls = latents(rng, 1000)
    eps, dz = rng.standard_normal((2, 1000)).astype(F32)
    z = np.empty_like(mu)
    T.reparameterize_f32_forward(mu, ls, eps, z, mu.size)
    s64 = np.exp(ls.astype(np.float64))
    ref = mu + s64 * eps
    np.testing.assert_allclose(z, ref, rtol=1e-5, atol=1e-5 * np.abs(s64 * eps).max())
    dmu0, dls0 = rng.standard_normal((2, 1000)).astype(F32)
    dmu, dls = dmu0.copy(), dls0.copy()
    T.reparameterize_f32_backward(ls, eps, dz, dmu, dls, mu.size)
    np.testing.assert_allclose(dmu, dmu0.astype(np.float64) + dz, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(dls, dls0 + dz.astype(np.float64) * s64 * eps, rtol=1e-5,
                               atol=1e-5 * np.abs(dz * s64 * eps).max())


@pytest.mark.parametrize("mode", ["zeros", "full", "binary", "grey"])
def test_elbo_accuracy_and_gradient(mode):
    rng = np.random.default_rng(["zeros", "full", "binary", "grey"].index(mode))
    n_pix, n_lat = 784, 10
    z = logits(rng, n_pix)
    p = {"zeros": np.zeros(n_pix, np.uint8), "full": np.full(n_pix, 255, np.uint8),
         "binary": (rng.random(n_pix) < 0.2).astype(np.uint8) * np.uint8(255),
         "grey": rng.integers(0, 256, n_pix, dtype=np.uint8)}[mode]
    mu, ls = latents(rng, n_lat)
    t = p.astype(np.float64) / 255.0
    loss = T.elbo_f32_forward(z, p, mu, ls, n_pix, n_lat)
    assert isinstance(loss, float)
    assert loss == pytest.approx(ref_elbo(z, t, mu, ls), rel=1e-5)
    dz, dmu, dls = np.full(n_pix, 7, F32), np.full(n_lat, 7, F32), np.full(n_lat, 7, F32)
    T.elbo_f32_backward(z, p, mu, ls, dz, dmu, dls, n_pix, n_lat)
    # finite differences of the float64 loss (a subset of the pixels; all the latents)
    idx = rng.choice(n_pix, 40, replace=False)
    z64 = z.astype(np.float64)

    def f_z(v):
        zz = z64.copy()
        zz[idx] = v
        return ref_elbo(zz, t, mu, ls)
    np.testing.assert_allclose(dz[idx], fd_grad(f_z, z64[idx], 1e-5), rtol=1e-4, atol=2e-6)
    np.testing.assert_allclose(dmu, fd_grad(lambda v: ref_elbo(z, t, v, ls), mu, 1e-5), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(dls, fd_grad(lambda v: ref_elbo(z, t, mu, v), ls, 1e-6), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("scale", [0.1, 1.0, 10.0, 40.0])
def test_cross_entropy_accuracy_and_gradient(scale):
    rng = np.random.default_rng(int(scale * 10))
    for _ in range(20):
        n = 10
        z = (rng.standard_normal(n) * scale).astype(F32)
        label = int(rng.integers(n))
        dz = np.full(n, 7, F32)
        loss = T.cross_entropy_f32(z, n, label, dz)
        assert loss == T.cross_entropy_f32(z, n, label, None)
        ref = ref_ce(z, label)
        assert loss == pytest.approx(ref, rel=1e-5, abs=1e-6)
        np.testing.assert_allclose(dz, fd_grad(lambda v: ref_ce(v, label), z, 1e-6), rtol=1e-4, atol=1e-6)
        assert abs(float(dz.astype(np.float64).sum())) < 1e-6


def test_sgd_accuracy():
    rng = np.random.default_rng(5)
    w, g = rng.standard_normal((2, 1001)).astype(F32)
    w2, g2 = w.copy(), g.copy()
    scale = F32(0.01) / F32(32)
    T.sgd_f32_update(w2, g2, w.size, scale)
    assert np.array_equal(w2, w - scale * g) and not g2.any()


# ---- 3. in place and NULL dlogits, on the emulator ----------------------------------------------------
class Buf(int):
    """An argument standing for the SRAM copy of arrays[i]."""


def _call_inplace(kernels, symbol, arrays, args):
    """Call `symbol` with SRAM copies of `arrays`; in `args` a Buf(i) is the copy of arrays[i] (a
    repeated Buf passes the same buffer twice), anything else is passed as it is."""
    m = kernels.machine
    m.free_all()
    try:
        bufs = [m.put(a) for a in arrays]
        res = m.call(symbol, *[bufs[a] if isinstance(a, Buf) else a for a in args])
        return [b.array.copy() for b in bufs], res.return_value
    finally:
        m.free_all()


def test_inplace_calls(kernels):
    rng = np.random.default_rng(6)
    n = 103                                              # not a multiple of 4: the tails run too
    x = activations(rng, n)
    (y,), _ = _call_inplace(kernels, "relu_f32_forward", [x], [Buf(0), Buf(0), n])
    ref = np.empty_like(x)
    T.relu_f32_forward(x, ref, n)
    assert np.array_equal(y, ref)
    dy = activations(rng, n)
    (_, dx), _ = _call_inplace(kernels, "relu_f32_backward", [ref, dy], [Buf(0), Buf(1), Buf(1), n])
    assert np.array_equal(dx, np.where(ref > 0, dy, F32(0)))
    (s,), _ = _call_inplace(kernels, "sigmoid_f32_forward", [x], [Buf(0), Buf(0), n])
    T.sigmoid_f32_forward(x, ref, n)
    assert np.array_equal(s, ref)
    z = logits(rng, 10)
    dz_ref = np.empty_like(z)
    loss_ref = T.cross_entropy_f32(z, 10, 3, dz_ref)
    (dz,), loss = _call_inplace(kernels, "cross_entropy_f32", [z], [Buf(0), 10, 3, Buf(0)])
    assert np.array_equal(dz, dz_ref) and F32(loss) == F32(loss_ref)


def test_cross_entropy_null_dlogits(kernels):
    rng = np.random.default_rng(7)
    z = logits(rng, 10)
    r = kernels.call("cross_entropy_f32", z, 10, 4, None)
    assert np.array_equal(r.outputs[0], z)               # logits untouched
    assert F32(r.result.return_value) == F32(T.cross_entropy_f32(z, 10, 4, None))
    assert F32(r.result.return_value) == F32(T.cross_entropy_f32(z, 10, 4, np.empty(10, F32)))


def test_standardized_update_follows_strided_structures():
    """A ConvTranspose2D output channel's weights are strided ([IC][OC][KH][KW]); the update's
    (rows, cols, run) layout must touch exactly that channel's weights."""
    ic, oc, kk = 3, 4, 4
    w = np.zeros(ic * oc * kk, np.float32)
    g = np.random.default_rng(0).standard_normal(ic * oc * kk).astype(np.float32)
    norm = np.zeros(oc, np.float32)
    active = np.array([0, 1, 0, 0], np.uint8)
    T.sgd_f32_standardized_update(w, g, norm, oc, ic * kk, kk, np.float32(0.1), np.float32(1.0), active)
    moved = (w != 0).reshape(ic, oc, kk)
    assert moved[:, 1, :].all() and not moved[:, [0, 2, 3], :].any()
