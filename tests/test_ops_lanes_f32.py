"""Batch-lane fp32 twins (mcusim/ops/lanes_f32.py) give the same bits as m calls of the one-sample twins
in sample order: every output of every lane, and every gradient accumulated over the lanes (including
its starting value, `active` masks and -0.0 / padding corner cases of odd geometries)."""
import numpy as np
import pytest

from mcusim.ops import lanes_f32 as LN
from mcusim.ops import layers_f32 as L
from mcusim.ops import train_f32 as T

M = 7                                      # lanes: odd, so no vector width divides it
# Lane counts for the layers: below the SIMD width (the one-sample twins lane by lane), one block and a tail
# overlapping it, and four blocks and more (the register-blocked groups and their leftovers).
LANE_COUNTS = (M, 13, 37)


def lanes_of(samples: np.ndarray) -> np.ndarray:
    """[m][n] per-sample arrays -> the lane layout [n][m], flat."""
    return np.ascontiguousarray(samples.T).reshape(-1)


def samples_of(lanes: np.ndarray, n: int) -> np.ndarray:
    return lanes.reshape(n, -1).T


def bits(a):
    return np.asarray(a, np.float32).view(np.uint32)


def f32(rng, *shape):
    v = rng.standard_normal(shape).astype(np.float32)
    v[rng.random(shape) < 0.05] = np.float32(-0.0)         # signed zeros must survive as in C
    return v


def check_layer(one, lanes, n_x, n_y, w, b, d, rng, active=None, M=M):
    """forward, backward_input and backward_weight of one layer: lanes vs. one sample at a time."""
    fwd, bwd_in, bwd_w = one
    fwd_l, bwd_in_l, bwd_w_l = lanes
    xs, dys = f32(rng, M, n_x), f32(rng, M, n_y)
    # forward
    want = np.empty((M, n_y), np.float32)
    for s in range(M):
        fwd(xs[s], w, b, want[s], *d)
    got = np.empty(n_y * M, np.float32)
    fwd_l(lanes_of(xs), w, b, got, *d, M)
    assert np.array_equal(bits(samples_of(got, n_y)), bits(want))
    # backward_input
    want = np.empty((M, n_x), np.float32)
    for s in range(M):
        bwd_in(w, dys[s], want[s], *d, active)
    got = np.empty(n_x * M, np.float32)
    bwd_in_l(w, lanes_of(dys), got, *d, active, M)
    assert np.array_equal(bits(samples_of(got, n_x)), bits(want))
    # backward_weight: accumulated onto non-zero gradients, samples in order
    dw0, db0 = f32(rng, w.size), f32(rng, b.size)
    dw, db = dw0.copy(), db0.copy()
    for s in range(M):
        bwd_w(xs[s], dys[s], dw, db, *d, active)
    dw_l, db_l = dw0.copy(), db0.copy()
    bwd_w_l(lanes_of(xs), lanes_of(dys), dw_l, db_l, *d, active, M)
    assert np.array_equal(bits(dw_l), bits(dw)) and np.array_equal(bits(db_l), bits(db))


@pytest.mark.parametrize("m", LANE_COUNTS)
@pytest.mark.parametrize("n_in, n_out, masked", [(13, 9, False), (784, 60, False), (10, 17, True), (21, 6, True)])
def test_gemm_lanes(n_in, n_out, masked, m):
    rng = np.random.default_rng(n_in)
    active = (rng.random(n_out) < 0.6).astype(np.uint8) if masked else None
    check_layer((L.gemm_f32_forward, L.gemm_f32_backward_input, L.gemm_f32_backward_weight),
                (LN.gemm_f32_forward_lanes, LN.gemm_f32_backward_input_lanes, LN.gemm_f32_backward_weight_lanes),
                n_in, n_out, f32(rng, n_out * n_in), f32(rng, n_out), (np.int32(n_in), np.int32(n_out)), rng,
                active, m)


# (in_c, in_h, in_w, out_c, k, stride, pad): the VAE's layers and odd ones (wide and narrow, k > stride)
GEOMETRIES = [(1, 28, 28, 8, 3, 2, 1), (8, 14, 14, 16, 3, 2, 1), (3, 9, 7, 5, 3, 1, 0), (2, 6, 5, 9, 4, 3, 2)]


@pytest.mark.parametrize("m", LANE_COUNTS)
@pytest.mark.parametrize("geometry", GEOMETRIES)
@pytest.mark.parametrize("op", ["conv2d", "convtranspose2d"])
def test_conv_lanes(op, geometry, m):
    ic, ih, iw, oc, k, s, p = geometry
    rng = np.random.default_rng(ih * 31 + oc)
    if op == "conv2d":
        oh, ow = (ih + 2 * p - k) // s + 1, (iw + 2 * p - k) // s + 1
    else:
        oh, ow = (ih - 1) * s - 2 * p + k, (iw - 1) * s - 2 * p + k
    d = L.conv_dims(ic, ih, iw, oc, oh, ow, k, k, s, p)
    for active in (None, (rng.random(oc) < 0.5).astype(np.uint8)):
        check_layer(tuple(getattr(L, f"{op}_f32_{f}") for f in ("forward", "backward_input", "backward_weight")),
                    tuple(getattr(LN, f"{op}_f32_{f}_lanes") for f in ("forward", "backward_input", "backward_weight")),
                    ic * ih * iw, oc * oh * ow, f32(rng, oc * ic * k * k), f32(rng, oc), (d,), rng, active, m)


@pytest.mark.parametrize("m", LANE_COUNTS)
@pytest.mark.parametrize("in_place", [False, True])
def test_relu_lanes(m, in_place):
    """The ReLU pair eight values at a time (SIMD selects on the bits) against the one-sample twins, with
    signed zeros, NaNs of both signs, subnormals and infinities among the values, in place and not."""
    rng = np.random.default_rng(m)
    n = 29
    special = np.array([0x80000000, 0, 0x7FC00000, 0xFFC00000, 0x00000001, 0x80000001, 0x7F800000, 0xFF800000],
                       np.uint32).view(np.float32)
    x = f32(rng, n * m)
    x[rng.integers(0, n * m, 40)] = rng.choice(special, 40)
    dy = f32(rng, n * m)
    want_y, want_dx = np.empty_like(x), np.empty_like(x)
    T.relu_f32_forward(x, want_y, n * m)
    T.relu_f32_backward(x, dy, want_dx, n * m)
    y = x.copy() if in_place else np.empty_like(x)
    LN.relu_f32_forward_lanes(x.copy() if not in_place else y, y, n, m)
    dx = dy.copy() if in_place else np.empty_like(x)
    LN.relu_f32_backward_lanes(x, dy.copy() if not in_place else dx, dx, n, m)
    assert np.array_equal(bits(y), bits(want_y)) and np.array_equal(bits(dx), bits(want_dx))


def test_elbo_and_elementwise_lanes():
    """The VAE's loss and its elementwise steps, lane layout against one sample at a time."""
    rng = np.random.default_rng(5)
    n_pix, n_lat = 50, 4
    logits, mu, ls = f32(rng, M, n_pix) * 4, f32(rng, M, n_lat), f32(rng, M, n_lat)
    pixels = rng.integers(0, 256, (M, n_pix)).astype(np.uint8)
    pix_l = np.ascontiguousarray(pixels.T).reshape(-1)
    want = np.array([T.elbo_f32_forward(logits[s], pixels[s], mu[s], ls[s], n_pix, n_lat) for s in range(M)],
                    np.float32)
    got = LN.elbo_f32_forward_lanes(lanes_of(logits), pix_l, lanes_of(mu), lanes_of(ls), n_pix, n_lat, M)
    assert np.array_equal(bits(got), bits(want))
    dl, dmu, dls = (np.empty((M, n), np.float32) for n in (n_pix, n_lat, n_lat))
    for s in range(M):
        T.elbo_f32_backward(logits[s], pixels[s], mu[s], ls[s], dl[s], dmu[s], dls[s], n_pix, n_lat)
    dl_l, dmu_l, dls_l = (np.empty(n * M, np.float32) for n in (n_pix, n_lat, n_lat))
    LN.elbo_f32_backward_lanes(lanes_of(logits), pix_l, lanes_of(mu), lanes_of(ls), dl_l, dmu_l, dls_l,
                               n_pix, n_lat, M)
    for got_l, want_s, n in ((dl_l, dl, n_pix), (dmu_l, dmu, n_lat), (dls_l, dls, n_lat)):
        assert np.array_equal(bits(samples_of(got_l, n)), bits(want_s))


def test_lane_driver_is_the_one_sample_phase_in_sample_order():
    """HostStep.run_batch (lane driver: lane twins where a kernel has one, the one-sample twin lane by
    lane elsewhere, a label per lane, two chunks) leaves every tensor as the one-sample phase function
    run sample after sample; evaluate's losses and encode's features too."""
    from mcusim.datasets import load_dataset
    from mcusim.graph import graph_from_spec
    from mcusim.render_numba import LANES
    from mcusim.runtime import HostStep, initial_state
    from mcusim.tasks import build
    from test_graph import RESIDUAL

    p = build(graph_from_spec(RESIDUAL, "test"), "fp32")
    data = load_dataset("digits")
    n = LANES + 7
    x = np.ascontiguousarray(data.train_x.reshape(len(data.train_x), -1)[:n])
    y = np.asarray(data.train_y[:n], np.int64)
    order = np.random.default_rng(0).permutation(n).astype(np.int64)
    lanes, one = HostStep(p), HostStep(p)
    lanes.load_state(initial_state(p, 3))
    one.load_state(initial_state(p, 3))

    f = p.features
    n_feat = f.tensor.count - f.offset if f.count is None else f.count

    def one_by_one(phase):
        """The phase's losses (encode: its features) sample by sample."""
        out = []
        for k in order:
            one.view("pixels")[:] = x[k]
            one.view("label")[:] = y[k]
            loss = one.run(phase)
            out.append(one.view(f.tensor.name)[f.offset:f.offset + n_feat].copy() if phase == "encode" else loss)
        return np.float32(out)

    got = lanes.run_batch("sample", x, order, 0, n, labels=y)
    assert np.array_equal(bits(got), bits(one_by_one("sample")))
    want_state = one.state()
    for name, value in lanes.state().items():
        assert np.array_equal(value.view(np.uint8), want_state[name].view(np.uint8)), name
    assert np.array_equal(bits(lanes.run_batch("evaluate", x, order, 0, n, labels=y)), bits(one_by_one("evaluate")))
    assert np.array_equal(bits(lanes.run_batch("encode", x, order, 0, n, labels=y)), bits(one_by_one("encode")))
