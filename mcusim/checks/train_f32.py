"""Cross-checks of the fp32 elementwise operators, losses and SGD update (kernels/*_f32.c against
mcusim.ops.train_f32): relu, sigmoid, reparameterize, elbo, cross_entropy, sgd_update.

Sizes at size=1 are the VAE's: 3136 activations (relu, sigmoid), 784 pixels and 10 latents (elbo,
reparameterize), 10 classifier logits. The SGD case uses 65536 parameters at size=1: the weights and
gradients of the full 100000-parameter model (800 KB) do not fit the 640 KB SRAM at once, and the
update is a linear pass, so its cycles scale by n.
"""
from __future__ import annotations

import numpy as np

from ..crosscheck import CaseOutput, Check
from ..kernel_lib import KernelLibrary
from ..ops import train_f32 as T

N_ACT = 3136
N_PIXELS = 784
N_LATENT = 10
N_CLASSES = 10
N_SGD = 65536

F32 = np.float32


def _n(size: float, full: int, lo: int = 1) -> int:
    return max(lo, int(round(size * full)))


def activations(rng: np.random.Generator, n: int) -> np.ndarray:
    """Mixed-scale values with exact zeros and negative zeros."""
    x = rng.standard_normal(n) * rng.choice([0.01, 1.0, 10.0, 40.0], n)
    x[rng.random(n) < 0.05] = 0.0
    x = x.astype(F32)
    x[rng.random(n) < 0.03] = F32(-0.0)
    return x


def logits(rng: np.random.Generator, n: int) -> np.ndarray:
    """Decoder logits: mostly moderate, some large-magnitude (|z| up to ~30), some exact zeros."""
    z = np.where(rng.random(n) < 0.3, rng.uniform(-30.0, 30.0, n), rng.standard_normal(n) * 3.0)
    z[rng.random(n) < 0.02] = 0.0
    return z.astype(F32)


def pixels(rng: np.random.Generator, n: int) -> np.ndarray:
    """A uint8 image: all 0, all 255, binary {0, 255}, or arbitrary grey levels."""
    mode = rng.integers(4)
    if mode == 0:
        return np.zeros(n, np.uint8)
    if mode == 1:
        return np.full(n, 255, np.uint8)
    if mode == 2:
        return (rng.random(n) < 0.2).astype(np.uint8) * np.uint8(255)
    return rng.integers(0, 256, n, dtype=np.uint8)


def latents(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    mu = (rng.standard_normal(n) * 2.0).astype(F32)
    ls = rng.uniform(-5.0, 3.0, n).astype(F32)
    return mu, ls


def _f(value) -> np.ndarray:
    return np.array([value], F32)


# ---- relu / sigmoid -------------------------------------------------------------------------------
def _relu_forward(rng, size, kernels: KernelLibrary) -> CaseOutput:
    n = _n(size, N_ACT)
    x = activations(rng, n)
    r = kernels.call("relu_f32_forward", x, np.zeros(n, F32), n)
    y = np.zeros(n, F32)
    T.relu_f32_forward(x, y, n)
    return CaseOutput([r.outputs[1]], [y], r.cycles)


def _relu_backward(rng, size, kernels: KernelLibrary) -> CaseOutput:
    n = _n(size, N_ACT)
    y = np.maximum(activations(rng, n), F32(0.0))
    dy = activations(rng, n)
    r = kernels.call("relu_f32_backward", y, dy, np.zeros(n, F32), n)
    dx = np.zeros(n, F32)
    T.relu_f32_backward(y, dy, dx, n)
    return CaseOutput([r.outputs[2]], [dx], r.cycles)


def _sigmoid_forward(rng, size, kernels: KernelLibrary) -> CaseOutput:
    n = _n(size, N_ACT)
    x = activations(rng, n)
    x[: min(n, 4)] = np.array([0.0, 100.0, -100.0, -90.0], F32)[: min(n, 4)]
    r = kernels.call("sigmoid_f32_forward", x, np.zeros(n, F32), n)
    y = np.zeros(n, F32)
    T.sigmoid_f32_forward(x, y, n)
    return CaseOutput([r.outputs[1]], [y], r.cycles)


# ---- reparameterize ---------------------------------------------------------------------------
def _reparam_forward(rng, size, kernels: KernelLibrary) -> CaseOutput:
    n = _n(size, N_LATENT)
    mu, ls = latents(rng, n)
    eps = rng.standard_normal(n).astype(F32)
    r = kernels.call("reparameterize_f32_forward", mu, ls, eps, np.zeros(n, F32), n)
    z = np.zeros(n, F32)
    T.reparameterize_f32_forward(mu, ls, eps, z, n)
    return CaseOutput([r.outputs[3]], [z], r.cycles)


def _reparam_backward(rng, size, kernels: KernelLibrary) -> CaseOutput:
    n = _n(size, N_LATENT)
    mu, ls = latents(rng, n)
    eps = rng.standard_normal(n).astype(F32)
    dz = rng.standard_normal(n).astype(F32)
    dmu0, dls0 = rng.standard_normal(n).astype(F32), rng.standard_normal(n).astype(F32)
    r = kernels.call("reparameterize_f32_backward", ls, eps, dz, dmu0, dls0, n)
    dmu, dls = dmu0.copy(), dls0.copy()
    T.reparameterize_f32_backward(ls, eps, dz, dmu, dls, n)
    return CaseOutput([r.outputs[3], r.outputs[4]], [dmu, dls], r.cycles)


# ---- elbo ---------------------------------------------------------------------------------------
def _elbo_case(rng, size):
    n_pix, n_lat = _n(size, N_PIXELS), _n(size, N_LATENT)
    mu, ls = latents(rng, n_lat)
    return logits(rng, n_pix), pixels(rng, n_pix), mu, ls, n_pix, n_lat


def _elbo_forward(rng, size, kernels: KernelLibrary) -> CaseOutput:
    z, p, mu, ls, n_pix, n_lat = _elbo_case(rng, size)
    r = kernels.call("elbo_f32_forward", z, p, mu, ls, n_pix, n_lat)
    loss = T.elbo_f32_forward(z, p, mu, ls, n_pix, n_lat)
    return CaseOutput([_f(r.result.return_value)], [_f(loss)], r.cycles)


def _elbo_backward(rng, size, kernels: KernelLibrary) -> CaseOutput:
    z, p, mu, ls, n_pix, n_lat = _elbo_case(rng, size)
    junk = lambda n: rng.standard_normal(n).astype(F32)      # overwritten, not accumulated
    r = kernels.call("elbo_f32_backward", z, p, mu, ls, junk(n_pix), junk(n_lat), junk(n_lat), n_pix, n_lat)
    dz, dmu, dls = junk(n_pix), junk(n_lat), junk(n_lat)
    T.elbo_f32_backward(z, p, mu, ls, dz, dmu, dls, n_pix, n_lat)
    return CaseOutput(r.outputs[4:7], [dz, dmu, dls], r.cycles)


# ---- cross-entropy --------------------------------------------------------------------------------
def _ce_case(rng, size):
    n = _n(size, N_CLASSES, lo=2)
    z = (rng.standard_normal(n) * rng.choice([0.1, 1.0, 5.0, 30.0])).astype(F32)
    return z, n, int(rng.integers(n))


def _ce_forward(rng, size, kernels: KernelLibrary) -> CaseOutput:
    z, n, label = _ce_case(rng, size)
    r = kernels.call("cross_entropy_f32", z, n, label, None)
    loss = T.cross_entropy_f32(z, n, label, None)
    return CaseOutput([_f(r.result.return_value)], [_f(loss)], r.cycles)


def _ce_backward(rng, size, kernels: KernelLibrary) -> CaseOutput:
    z, n, label = _ce_case(rng, size)
    r = kernels.call("cross_entropy_f32", z, n, label, np.zeros(n, F32))
    dz = np.zeros(n, F32)
    loss = T.cross_entropy_f32(z, n, label, dz)
    return CaseOutput([_f(r.result.return_value), r.outputs[1]], [_f(loss), dz], r.cycles)


# ---- SGD --------------------------------------------------------------------------------------------
def _sgd_update(rng, size, kernels: KernelLibrary) -> CaseOutput:
    n = _n(size, N_SGD)
    w = (rng.standard_normal(n) * 0.1).astype(F32)
    g = (rng.standard_normal(n) * rng.choice([1e-3, 1.0, 100.0])).astype(F32)
    scale = F32(rng.choice([0.01, 0.001, 0.1])) / F32(rng.choice([1, 16, 32]))
    r = kernels.call("sgd_f32_update", w, g, n, scale)
    w2, g2 = w.copy(), g.copy()
    T.sgd_f32_update(w2, g2, n, scale)
    return CaseOutput(r.outputs[:2], [w2, g2], r.cycles)


def _sgd_standardized(rng, size, kernels: KernelLibrary) -> CaseOutput:
    rows = max(1, int(64 * size))
    cols = int(rng.choice([1, 2, max(2, int(784 * size))]))
    w = (rng.standard_normal(rows * cols) * 0.1).astype(F32)
    g = (rng.standard_normal(rows * cols) * rng.choice([1e-3, 1.0, 100.0])).astype(F32)
    norm = np.abs(rng.standard_normal(rows)).astype(F32)
    active = (rng.random(rows) < 0.5).astype(np.uint8) if rng.random() < 0.5 else None
    lr, a_norm = F32(rng.choice([0.001, 0.01])), F32(rng.choice([0.85, 0.7]))
    run = int(rng.choice([cols, 1] + [d for d in (16, 9, 4) if cols % d == 0]))
    r = kernels.call("sgd_f32_standardized_update", w, g, norm, rows, cols, run, lr, a_norm, active)
    T.sgd_f32_standardized_update(w, g, norm, rows, cols, run, lr, a_norm, active)
    return CaseOutput(r.outputs[:3], [w, g, norm], r.cycles)


CHECKS = [
    Check("relu", "fp32", "forward", _relu_forward),
    Check("relu", "fp32", "backward_input", _relu_backward),
    Check("sigmoid", "fp32", "forward", _sigmoid_forward),
    Check("reparameterize", "fp32", "forward", _reparam_forward),
    Check("reparameterize", "fp32", "backward_input", _reparam_backward),
    Check("elbo", "fp32", "forward", _elbo_forward),
    Check("elbo", "fp32", "backward_input", _elbo_backward),
    Check("cross_entropy", "fp32", "forward", _ce_forward),
    Check("cross_entropy", "fp32", "backward_input", _ce_backward),
    Check("sgd_update", "fp32", "update", _sgd_update),
    Check("sgd_update", "fp32", "update_standardized", _sgd_standardized),
]
