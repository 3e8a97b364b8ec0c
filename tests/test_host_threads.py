"""Batch phases on several threads (mcusim/host_threads.py, render_numba.split_plan) give the bits of
one thread: losses, features and every tensor after the phase, for the VAE (RNG drawn in sample
order, gradients added in sample order over the parts) and for a classifier with one-sample
fallbacks (a gradient call without a lane twin), chunks that do not divide evenly included."""
import numpy as np
import pytest

from mcusim.datasets import load_dataset, load_embedded
from mcusim.errors import McusimError
from mcusim.graph import graph_from_spec, load_model
from mcusim.host_threads import default_threads
from mcusim.render_numba import LANES, split_plan
from mcusim.runtime import HostStep, _lane_twin_modules, initial_state
from mcusim.tasks import build


def bits(a):
    return np.ascontiguousarray(a).view(np.uint8)


def run_phases(h: HostStep, x, y, batches: list[int], update: dict) -> list[np.ndarray]:
    """Training batches of the given sizes (each followed by an update), then evaluate and encode."""
    order = np.random.default_rng(1).permutation(len(x)).astype(np.int64)
    out, start = [], 0
    for n in batches:
        out.append(h.run_batch("sample", x, order, start, n, labels=y))
        h.run("update", **update)
        start += n
    out.append(h.run_batch("evaluate", x, order, 0, LANES + 3, labels=y))
    out.append(h.run_batch("encode", x, order, 0, 31, labels=y))
    out.append(h.run_batch("sample", x, order, 0, 0, labels=y))
    return out


def assert_same(p, x, y, batches, update, threads):
    one, many = HostStep(p, threads=1), HostStep(p, threads=threads)
    assert many._parts is not None
    for h in (one, many):
        h.load_state(initial_state(p, 5))
    want, got = run_phases(one, x, y, batches, update), run_phases(many, x, y, batches, update)
    for w, g in zip(want, got):
        assert w.shape == g.shape and np.array_equal(bits(w), bits(g))
    want_state = one.state()
    for name, value in many.state().items():
        assert np.array_equal(bits(value), bits(want_state[name])), name


def test_vae_on_two_threads_is_bit_exact():
    p = build(load_model("baseline"), "fp32")
    x, y = load_embedded("train")
    x = np.ascontiguousarray(x.reshape(len(x), -1)[:400], np.uint8)
    assert_same(p, x, np.asarray(y[:400], np.int64), [LANES, 37], {"lr": 0.001, "alpha_norm": 0.85}, 2)


@pytest.mark.parametrize("threads", [2, 3])
def test_classifier_with_fallback_calls_on_threads_is_bit_exact(threads):
    from test_graph import RESIDUAL
    p = build(graph_from_spec(RESIDUAL, "test"), "fp32")
    carried, per_sample, grads = split_plan(p, set(_lane_twin_modules(p)))["sample"]
    assert any(c.kernel not in _lane_twin_modules(p) for c in grads)     # a one-sample gradient call
    data = load_dataset("digits")
    n = 2 * LANES + 9
    x = np.ascontiguousarray(data.train_x.reshape(len(data.train_x), -1)[:n])
    assert_same(p, x, np.asarray(data.train_y[:n], np.int64), [n - 5, 5], {"lr": 0.01, "alpha_norm": 0.85}, threads)


def test_u8_keeps_one_thread():
    p = build(load_model("baseline"), "u8")
    assert split_plan(p, set(_lane_twin_modules(p))) is None
    assert HostStep(p, threads=2)._parts is None


def test_thread_count_from_the_environment(monkeypatch):
    monkeypatch.delenv("MCUSIM_THREADS", raising=False)
    assert default_threads() == 1                 # more threads are asked for (not yet measured faster)
    monkeypatch.setenv("MCUSIM_THREADS", "3")
    assert default_threads() == 3
    monkeypatch.setenv("MCUSIM_THREADS", "two")
    with pytest.raises(McusimError, match="MCUSIM_THREADS"):
        default_threads()


def test_threads_option_must_be_positive(tmp_path, capsys):
    from mcusim.cli import main
    assert main(["train", "cnn_digits", "--threads", "0", "--out", str(tmp_path / "run")]) == 2
    assert "--threads must be at least 1" in capsys.readouterr().err
