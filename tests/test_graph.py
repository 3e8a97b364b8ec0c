"""Model descriptions beyond the VAE: layers over named tensors, the three tasks, every registered
operator, and one clear error for every kind of bad model file."""
import re

import numpy as np
import pytest

from mcusim.errors import ModelError
from mcusim.graph import MODEL_DIR, graph_from_spec, load_model
from mcusim.operators import REGISTRY
from mcusim.render_c import c_source
from mcusim.runtime import _twin_modules
from mcusim.tasks import build

RESIDUAL = {
    "name": "residual", "input": [1, 8, 8], "task": "classify",
    "layers": [
        {"name": "stem", "op": "conv2d", "out_channels": 4, "kernel": 3, "padding": 1, "activation": "relu"},
        {"name": "dw", "op": "conv2d", "out_channels": 4, "kernel": 3, "padding": 1, "groups": 4, "activation": "relu6"},
        {"name": "pw", "op": "conv2d", "out_channels": 4, "kernel": 1},
        {"name": "sum", "op": "add", "inputs": ["stem", "pw"], "activation": "relu"},
        {"op": "maxpool2d", "kernel": 2},
        {"op": "avgpool2d", "kernel": 2, "stride": 1},
        {"op": "globalavgpool"},
        {"op": "flatten"},
        {"op": "relu"},
        {"op": "relu6"},
        {"op": "reshape", "shape": [4]},
        {"op": "gemm", "out": 10},
    ],
}


def spec(**changes):
    s = {**RESIDUAL, "layers": [dict(layer) for layer in RESIDUAL["layers"]]}
    s.update(changes)
    return s


def test_every_registered_operator_is_used_by_the_residual_model():
    g = graph_from_spec(RESIDUAL, "test")
    used = {n.op for n in g.nodes}
    assert used | {"convtranspose2d"} == set(REGISTRY)
    assert g.nodes[3].in_shapes == ((4, 8, 8), (4, 8, 8)) and g.nodes[5].out_shape == (4, 3, 3)
    assert g.nodes[1].weight_shape == (4, 1, 3, 3) and g.nodes[1].macs.forward == 4 * 22 * 22


@pytest.mark.parametrize("precision", ["fp32", "u8"])
def test_residual_model_builds_for_both_back_ends(precision):
    p = build(graph_from_spec(RESIDUAL, "test"), precision)
    _twin_modules(p)                                   # every kernel has its Numba twin
    src = c_source(p)
    assert "grouped_conv2d_" in src and "copy_" in src and "add_" in src    # the stem's error is a sum
    assert "t_flatten7_output" not in src and "relu_" in src               # views are the same buffer, no copy
    assert p.features.count == 10


def test_autoencoder_and_vae_files(tmp_path):
    ae = graph_from_spec({"name": "ae", "input": [1, 8, 8], "task": "autoencode", "loss": "mse",
                          "layers": [{"op": "gemm", "out": 16, "activation": "relu"}, {"op": "gemm", "out": [1, 8, 8]}]},
                         "test")
    assert ae.loss == "mse" and build(ae, "u8").features.count == 64
    vae = load_model("baseline")
    assert vae.task == "vae" and vae.head.out_shape == (20,)


BAD = [
    (dict(task="regress"), "`task` must be one of classify, autoencode, vae"),
    (dict(name="../evil"), "`name` must be 1-64 letters"),
    (dict(input=[1, 8]), "`input` must be [C, H, W]"),
    (dict(input=[1, 0, 8]), "`input` = 0 is out of range"),
    (dict(layers=[]), "needs a non-empty list of [[layers]]"),
    (dict(extra=1), "unknown key(s) extra"),
    (dict(layers=[{"op": "conv3d"}]), "unknown op 'conv3d'"),
    (dict(layers=[{"op": "gemm"}]), "a gemm layer needs `out`"),
    (dict(layers=[{"op": "gemm", "out": 0}]), "`out` = 0 is out of range"),
    (dict(layers=[{"op": "gemm", "out": -3}]), "`out` = -3 is out of range"),
    (dict(layers=[{"op": "gemm", "out": 2.5}]), "`out` must be an integer"),
    (dict(layers=[{"op": "gemm", "out": 10, "kernel": 3}]), "unknown key(s) kernel"),
    (dict(layers=[{"op": "gemm", "out": 10, "activation": "tanh"}]), "`activation` must be one of"),
    (dict(layers=[{"op": "gemm", "out": 16}, {"op": "conv2d", "out_channels": 2, "kernel": 3}]),
     "a conv2d needs a [C, H, W] input"),
    (dict(layers=[{"op": "conv2d", "out_channels": 2, "kernel": 9}]), "leave no output"),
    (dict(layers=[{"op": "conv2d", "out_channels": 2, "kernel": 3, "padding": 3}]), "padding 3 must be smaller"),
    (dict(layers=[{"op": "conv2d", "out_channels": 2, "kernel": 3, "padding": -1}]), "`padding` = -1 is out of range"),
    (dict(layers=[{"op": "conv2d", "out_channels": 3, "kernel": 3, "groups": 2}]), "groups = 2 must divide"),
    (dict(layers=[{"op": "add", "inputs": ["input"]}]), "`inputs` must list 2 tensor name(s)"),
    (dict(layers=[{"op": "add", "inputs": ["input", "nowhere"]}]), "input(s) 'nowhere' are not defined"),
    (dict(layers=[{"name": "a", "op": "gemm", "out": 10}, {"name": "a", "op": "gemm", "out": 10}]),
     "the name 'a' is already used"),
    (dict(layers=[{"name": "bad name", "op": "gemm", "out": 10}]), "`name` must be a letter"),
    (dict(layers=[{"op": "reshape", "shape": [3, 3]}, {"op": "gemm", "out": 10}]), "cannot reshape [1, 8, 8]"),
    (dict(layers=[{"op": "flatten", "activation": "relu"}, {"op": "gemm", "out": 10}]),
     "`activation` must be one of none"),
    (dict(layers=[{"op": "gemm", "out": 5}, {"op": "gemm", "out": 10, "inputs": ["input"]}]), "is never used"),
    (dict(layers=[{"op": "gemm", "out": 10, "activation": "relu"}]), "the last layer gives logits"),
    (dict(layers=[{"op": "gemm", "out": 1}]), "`classes` = 1 is out of range (at least 2"),
    (dict(layers=[{"op": "gemm", "out": 1 << 20}]), "beyond any MCU"),
    (dict(task="autoencode", layers=[{"op": "gemm", "out": 10}]), "must give the input's 64 values"),
    (dict(layers=[{"op": "maxpool2d", "kernel": 2, "padding": 2}, {"op": "gemm", "out": 10}]),
     "padding 2 must be smaller than the window"),
]


@pytest.mark.parametrize("changes, message", BAD)
def test_bad_model_descriptions_are_explained(changes, message):
    with pytest.raises(ModelError, match=re.escape(message)):
        graph_from_spec(spec(**changes), "mine.toml")


@pytest.mark.parametrize("content, message", [
    (b"\xff\xfe name = 1", "is not UTF-8 text"),
    (b"name = [[[[", "is not valid TOML"),
    (b"name = " + b"[" * 5000 + b"]" * 5000, "not valid TOML"),
    (b"x = 1\n" * 300000, "larger than 1 MB"),
], ids=["not-utf8", "bad-toml", "deep-nesting", "over-1MB"])
def test_unreadable_model_files_are_explained(tmp_path, content, message):
    path = tmp_path / "m.toml"
    path.write_bytes(content)
    with pytest.raises(ModelError, match=re.escape(message)):
        load_model(path)


def test_model_paths_that_are_not_files(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        load_model(tmp_path / "missing.toml")
    (tmp_path / "dir.toml").mkdir()
    with pytest.raises(ModelError, match="cannot read model file"):
        load_model(tmp_path / "dir.toml")
    with pytest.raises(ModelError, match="no model '../x'"):
        load_model("../x")


def test_initial_weights_are_checked(tmp_path):
    s = {"name": "w", "input": [1, 2, 2], "task": "classify", "layers": [{"name": "fc", "op": "gemm", "out": 2}]}
    good = {"fc.weight": np.zeros((2, 4), np.float32), "fc.bias": np.zeros(2, np.float32)}
    assert graph_from_spec(s, "t", good).weights is good
    with pytest.raises(ModelError, match=r"initial fc.weight must be finite floats of shape \[2, 4\]"):
        graph_from_spec(s, "t", {**good, "fc.weight": np.zeros((4, 2), np.float32)})
    with pytest.raises(ModelError, match="fc.bias is missing"):
        graph_from_spec(s, "t", {"fc.weight": good["fc.weight"]})
    with pytest.raises(ModelError, match="unknown tensor"):
        graph_from_spec(s, "t", {**good, "other.weight": good["fc.bias"]})
    np.savez(tmp_path / "w.npz", **good)
    (tmp_path / "m.toml").write_text('name = "w"\ninput = [1, 2, 2]\nweights = "w.npz"\n'
                                     '[[layers]]\nname = "fc"\nop = "gemm"\nout = 2\n')
    assert load_model(tmp_path / "m.toml").weights["fc.bias"].shape == (2,)
    (tmp_path / "m.toml").write_text('name = "w"\ninput = [1, 2, 2]\nweights = "nope.npz"\n'
                                     '[[layers]]\nname = "fc"\nop = "gemm"\nout = 2\n')
    with pytest.raises(ModelError, match="weights file .* does not exist"):
        load_model(tmp_path / "m.toml")


@pytest.mark.parametrize("edit", [
    ("kernel = 2", "kernel = 0"), ("kernel = 2", "kernel = 2\nstride = 0"), ("kernel = 3", "kernel = inf"),
    ("kernel = 3", "kernel = nan"), ("out = 10", "out = 2147483648"), ("out = 10", "out = 9223372036854775807"),
    ("input = [1, 8, 8]", "input = [1, 2147483648, 8]"), ("padding = 1", "padding = -inf"),
    ("out_channels = 8", "out_channels = 1e300"), ("out = 10", "out = 1"), ("out = 10", "out = 0"),
], ids=lambda e: e[1])
def test_hostile_numbers_in_a_model_file_are_explained(tmp_path, edit):
    """Zeros, inf, NaN and 2^31 in a real model file (were ZeroDivisionError, OverflowError, or a model with
    0/1 classes that trained): one ModelError naming the key."""
    text = (MODEL_DIR / "cnn_digits.toml").read_text()
    assert edit[0] in text
    path = tmp_path / "m.toml"
    path.write_text(text.replace(edit[0], edit[1], 1))
    key = re.findall(r"(\w+) =", edit[1])[-1]          # the key set to the hostile value
    with pytest.raises(ModelError, match=re.escape(key) + "|classes"):
        load_model(path)
