"""Cross-checks of the ELBO on uint8 logits (kernels/elbo_u8.c vs mcusim/ops/elbo_u8.py), on the
VAE's sizes at size=1 (784 pixels, 10 latents); the logits' range mixes moderate and saturating."""
from __future__ import annotations

import numpy as np

from ..crosscheck import CaseOutput, Check
from ..ops import elbo_u8 as E
from ..ops import quant_u8 as Q
from .train_f32 import N_LATENT, N_PIXELS, _f, _n, latents, pixels


def _case(rng, size):
    n_pix, n_lat = _n(size, N_PIXELS), _n(size, N_LATENT)
    y = rng.integers(0, 256, n_pix).astype(np.uint8)
    half_range = np.float32(rng.choice([0.5, 4.0, 40.0]))
    qy = Q.make_qparams(-half_range * np.float32(rng.uniform(0.2, 1.0)), half_range)
    mu, ls = latents(rng, n_lat)
    return y, qy, pixels(rng, n_pix), mu, ls, n_pix, n_lat


def _scratch(rng):
    """The kernels' table space, filled with junk: they must not depend on what it held."""
    return rng.integers(-2**31, 2**31 - 1, E.elbo_u8_buffer_size() // 4, dtype=np.int64).astype(np.int32)


def _forward(rng, size, kernels) -> CaseOutput:
    y, qy, p, mu, ls, n_pix, n_lat = _case(rng, size)
    r = kernels.call("elbo_u8_forward", y, qy.view(np.uint8).copy(), p, mu, ls, n_pix, n_lat, _scratch(rng))
    loss = E.elbo_u8_forward(y, qy, p, mu, ls, n_pix, n_lat)
    return CaseOutput([_f(r.result.return_value)], [_f(loss)], r.cycles)


def _backward(rng, size, kernels) -> CaseOutput:
    y, qy, p, mu, ls, n_pix, n_lat = _case(rng, size)
    qe = Q.make_qparams(-1.0, 1.0)
    junk = lambda n, dtype=np.float32: rng.integers(0, 255, n).astype(dtype)       # overwritten
    r = kernels.call("elbo_u8_backward", y, qy.view(np.uint8).copy(), p, mu, ls, junk(n_pix, np.uint8),
                     qe.view(np.uint8).copy(), junk(n_lat), junk(n_lat), n_pix, n_lat, _scratch(rng))
    e, dmu, dls = junk(n_pix, np.uint8), junk(n_lat), junk(n_lat)
    E.elbo_u8_backward(y, qy, p, mu, ls, e, qe, dmu, dls, n_pix, n_lat)
    return CaseOutput([r.outputs[5], r.outputs[7], r.outputs[8]], [e, dmu, dls], r.cycles)


def _buffer_size(rng, size, kernels) -> CaseOutput:
    c = kernels.call("elbo_u8_buffer_size").result.return_value
    return CaseOutput([np.array([c], np.int64)], [np.array([E.elbo_u8_buffer_size()], np.int64)], 0)


CHECKS = [
    Check("elbo", "u8", "forward", _forward),
    Check("elbo", "u8", "backward_input", _backward),
    Check("elbo", "u8", "buffer_size", _buffer_size),
]
