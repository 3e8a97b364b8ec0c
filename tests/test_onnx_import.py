"""ONNX import: models built with onnx.helper become model descriptions whose layers compute what
ONNX's reference evaluator computes (checked with a float64 numpy interpreter of the description, so
weight layouts, padding, fusion and the implicit "previous layer" links are all exercised); everything
mcusim cannot run is reported in one paragraph; `mcusim import` writes TOML + .npz atomically."""
import argparse
import importlib.util
import math
import tomllib
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from mcusim.errors import McusimError
from mcusim.onnx_import import OnnxImportError, add_parser, import_onnx
from mcusim.outputs import OutputError

MODELS = Path(__file__).resolve().parent.parent / "models"
F = TensorProto.FLOAT


# ---- building models --------------------------------------------------------------------------

class Net:
    """Nodes and seeded random initialisers of one test model."""

    def __init__(self, seed=0):
        self.rng, self.nodes, self.inits = np.random.default_rng(seed), [], []

    def param(self, name, *shape):
        self.inits.append(numpy_helper.from_array(self.rng.uniform(-0.5, 0.5, shape).astype(np.float32), name))
        return name

    def const(self, name, values, dtype=np.int64):
        self.inits.append(numpy_helper.from_array(np.asarray(values, dtype), name))
        return name

    def node(self, op, inputs, name, out=None, **attrs):
        out = out or name
        self.nodes.append(helper.make_node(op, inputs, [out], name=name, **attrs))
        return out

    def model(self, in_shape, out="", out_rank=2, opset=17, graph_name="net", out_type=F, in_type=F, inputs=(),
              outputs=()):
        """The graph from input "x" to the last node's output (a symbolic shape of `out_rank`)."""
        out_shape = [f"d{i}" for i in range(out_rank)]
        graph = helper.make_graph(
            self.nodes, graph_name,
            [helper.make_tensor_value_info("x", in_type, in_shape), *inputs],
            [helper.make_tensor_value_info(out or self.nodes[-1].output[0], out_type, out_shape), *outputs],
            self.inits)
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def save(tmp_path, model, name="m.onnx") -> Path:
    path = tmp_path / name
    onnx.save(model, path)
    return path


def cnn() -> onnx.ModelProto:
    """Every convolutional op: grouped conv + fused Relu, a bias-less conv whose output feeds both a
    standalone Relu and a residual Add, Clip(0, 6) fused into the Add, pools, flatten, Gemm (transB 0)."""
    n = Net()
    t = n.node("Conv", ["x", n.param("c1.w", 6, 1, 3, 3), n.param("c1.b", 6)], "c1", kernel_shape=[3, 3],
               strides=[2, 2], pads=[1, 1, 1, 1], group=3)                        # 6 x 5 x 5
    t = n.node("Relu", [t], "r1")
    t2 = n.node("Conv", [t, n.param("c2.w", 6, 6, 3, 3)], "c2", pads=[1, 1, 1, 1])
    r = n.node("Relu", [t2], "r2")
    t = n.node("Add", [r, t2], "add")
    t = n.node("Clip", [t, n.const("lo", 0.0, np.float32), n.const("hi", 6.0, np.float32)], "clip")
    t = n.node("Conv", [t, n.param("c3.w", 6, 6, 1, 3), n.param("c3.b", 6)], "c3", pads=[1, 1, 1, 1])
    t = n.node("MaxPool", [t], "mp", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])      # 6 x 4 x 3
    t = n.node("AveragePool", [t], "ap", kernel_shape=[3, 3], pads=[1, 1, 1, 1], count_include_pad=0)
    t = n.node("GlobalAveragePool", [t], "gap")
    t = n.node("Flatten", [t], "flat")
    n.node("Gemm", [t, n.param("fc.w", 6, 4), n.param("fc.b", 4)], "fc")        # transB = 0: B is [in, out]
    return n.model(["N", 3, 9, 9])


def mlp(batch="batch", bias=True) -> onnx.ModelProto:
    """MatMul + Add (PyTorch's Linear at some opsets) with a fused Relu, then Gemm transB = 1."""
    n = Net(1)
    t = n.node("MatMul", ["x", n.param("W1", 12, 8)], "mm")
    if bias:
        t = n.node("Add", [n.param("b1", 8), t], "mm_bias")
    t = n.node("Relu", [t], "relu")
    n.node("Gemm", [t, n.param("W2", 5, 8), n.param("b2", 1, 5)], "fc", transB=1)
    return n.model([batch, 12])


def autoencoder() -> onnx.ModelProto:
    """Opset 10: Clip bounds as attributes; gemm -> Reshape -> ConvTranspose; Sigmoid at the end."""
    n = Net(2)
    t = n.node("Conv", ["x", n.param("e.w", 4, 1, 3, 3), n.param("e.b", 4)], "enc", strides=[2, 2],
               pads=[1, 1, 1, 1])                                               # 4 x 4 x 4
    t = n.node("Clip", [t], "enc_relu6", min=0.0, max=6.0)
    t = n.node("Flatten", [t], "flat")
    t = n.node("Gemm", [t, n.param("g1.w", 16, 64), n.param("g1.b", 16)], "code", transB=1)
    t = n.node("Relu", [t], "code_relu")
    t = n.node("Gemm", [t, n.param("g2.w", 16, 64), n.param("g2.b", 64)], "expand")
    t = n.node("Reshape", [t, n.const("shape", [-1, 4, 4, 4])], "unflat")
    t = n.node("ConvTranspose", [t, n.param("d.w", 4, 1, 3, 3), n.param("d.b", 1)], "dec", strides=[2, 2],
               pads=[1, 1, 1, 1], output_padding=[1, 1])                        # 1 x 8 x 8
    n.node("Sigmoid", [t], "out")
    return n.model(["N", 1, 8, 8], out_rank=4, opset=10)


def ds_cnn_builder():
    spec = importlib.util.spec_from_file_location("make_ds_cnn", MODELS / "make_ds_cnn.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build_ds_cnn


# ---- a float64 interpreter of model descriptions ----------------------------------------------

def pair(k):
    return (k, k) if isinstance(k, int) else tuple(k)


def conv2d(x, w, b, s, p, groups):
    xp = np.pad(x, ((0, 0), (p, p), (p, p)))
    oc, icg, kh, kw = w.shape
    oh, ow = (xp.shape[1] - kh) // s + 1, (xp.shape[2] - kw) // s + 1
    y = np.empty((oc, oh, ow))
    for o in range(oc):
        xs = xp[o // (oc // groups) * icg:][:icg]
        for i in range(oh):
            for j in range(ow):
                y[o, i, j] = (xs[:, i * s:i * s + kh, j * s:j * s + kw] * w[o]).sum() + b[o]
    return y


def convtranspose2d(x, w, b, s, p, op):
    _, oc, kh, kw = w.shape
    _, h, wd = x.shape
    full = np.zeros((oc, (h - 1) * s + kh + op, (wd - 1) * s + kw + op))
    for i in range(h):
        for j in range(wd):
            full[:, i * s:i * s + kh, j * s:j * s + kw] += np.einsum("c,cokl->okl", x[:, i, j], w)
    ho, wo = (h - 1) * s - 2 * p + kh + op, (wd - 1) * s - 2 * p + kw + op
    return full[:, p:p + ho, p:p + wo] + b[:, None, None]


def pool(x, k, s, p, reduce):
    kh, kw = pair(k)
    xp = np.pad(x, ((0, 0), (p, p), (p, p)), constant_values=np.nan)
    oh, ow = (xp.shape[1] - kh) // s + 1, (xp.shape[2] - kw) // s + 1
    return np.array([[[reduce(xp[c, i * s:i * s + kh, j * s:j * s + kw]) for j in range(ow)] for i in range(oh)]
                     for c in range(x.shape[0])])


def run_spec(spec, weights, x):
    """The model output for one sample x [C, H, W] (float64)."""
    tensors, previous = {"input": x.astype(np.float64)}, "input"
    for layer in spec["layers"]:
        xs = [tensors[s] for s in layer.get("inputs", [previous])]
        w, b = weights.get(f"{layer['name']}.weight"), weights.get(f"{layer['name']}.bias")
        op, s, p = layer["op"], layer.get("stride", 1), layer.get("padding", 0)
        if op == "gemm":
            y = w @ xs[0].reshape(-1) + b
            y = y.reshape(layer["out"]) if isinstance(layer["out"], list) else y
        elif op == "conv2d":
            y = conv2d(xs[0], w, b, s, p, layer.get("groups", 1))
        elif op == "convtranspose2d":
            y = convtranspose2d(xs[0], w, b, s, p, layer.get("output_padding", 0))
        elif op in ("maxpool2d", "avgpool2d"):
            y = pool(xs[0], layer["kernel"], layer.get("stride", layer["kernel"]), p,
                     np.nanmax if op == "maxpool2d" else np.nanmean)
        elif op == "globalavgpool":
            y = xs[0].mean(axis=(1, 2), keepdims=True)
        elif op == "add":
            y = xs[0] + xs[1]
        elif op in ("flatten", "reshape"):
            y = xs[0].reshape(layer.get("shape", [-1]))
        else:
            y = xs[0]
        kind = layer.get("activation", op if op in ("relu", "relu6") else "none")
        y = {"none": y, "relu": np.maximum(y, 0), "relu6": np.clip(y, 0, 6)}[kind]
        tensors[layer["name"]] = previous = y
        previous = layer["name"]
    return tensors[previous]


def check_same_function(model, spec, weights, sigmoid=False, seed=0):
    """The description computes what ONNX's reference evaluator computes, on a few random inputs."""
    ref = ReferenceEvaluator(model)
    shape = spec["input"]
    name = model.graph.input[0].name
    rank = len([d for d in model.graph.input[0].type.tensor_type.shape.dim])
    for x in np.random.default_rng(seed).uniform(-3, 3, (3, *shape)).astype(np.float32):
        want = ref.run(None, {name: x.reshape(1, -1) if rank == 2 else x[None]})[0]
        got = run_spec(spec, weights, x)
        if sigmoid:
            got = 1 / (1 + np.exp(-got))
        np.testing.assert_allclose(got.reshape(-1), want.reshape(-1), rtol=1e-4, atol=1e-4)


def through_graph(spec, weights):
    """Feed the description to mcusim's own loader once it knows every op used."""
    from mcusim.graph import graph_from_spec
    from mcusim.operators import REGISTRY
    if all(layer["op"] in REGISTRY for layer in spec["layers"]):
        graph = graph_from_spec(spec, "test.onnx", weights or None)
        assert [n.name for n in graph.nodes] == [layer["name"] for layer in spec["layers"]]


# ---- what gets imported -----------------------------------------------------------------------

def test_cnn_every_conv_op_fusion_and_layouts(tmp_path):
    model = cnn()
    spec, weights = import_onnx(save(tmp_path, model, "my cnn!.onnx"))
    assert spec["name"] == "net" and spec["input"] == [3, 9, 9] and spec["task"] == "classify"
    assert [(l["name"], l["op"], l.get("activation"), l.get("inputs")) for l in spec["layers"]] == [
        ("c1", "conv2d", "relu", None), ("c2", "conv2d", None, None), ("r2", "relu", None, None),
        ("add", "add", "relu6", ["r2", "c2"]), ("c3", "conv2d", None, None), ("mp", "maxpool2d", None, None),
        ("ap", "avgpool2d", None, None), ("gap", "globalavgpool", None, None), ("flat", "flatten", None, None),
        ("fc", "gemm", None, None)]
    c1, c3 = spec["layers"][0], spec["layers"][4]
    assert (c1["out_channels"], c1["kernel"], c1["stride"], c1["padding"], c1["groups"]) == (6, 3, 2, 1, 3)
    assert c3["kernel"] == [1, 3] and c3["padding"] == 1 and "groups" not in c3
    assert spec["layers"][5] == {"name": "mp", "op": "maxpool2d", "kernel": 3, "stride": 2, "padding": 1}
    assert np.all(weights["c2.bias"] == 0) and weights["fc.weight"].shape == (4, 6)
    assert all(w.dtype == np.float32 for w in weights.values())
    check_same_function(model, spec, weights)
    through_graph(spec, weights)


@pytest.mark.parametrize("batch", ["batch", 4, 1])
def test_mlp_matmul_add_gemm_transb_and_batch_pinned(tmp_path, batch):
    model = mlp(batch)
    spec, weights = import_onnx(save(tmp_path, model), name="mlp-1.0")
    assert spec["name"] == "mlp-1.0" and spec["input"] == [12, 1, 1]
    assert spec["layers"] == [{"name": "mm", "op": "gemm", "out": 8, "activation": "relu"},
                              {"name": "fc", "op": "gemm", "out": 5}]
    assert weights["mm.weight"].shape == (8, 12) and weights["fc.weight"].shape == (5, 8)
    assert weights["fc.bias"].shape == (5,)
    if batch == "batch":
        check_same_function(model, spec, weights)
    through_graph(spec, weights)


def test_matmul_without_bias_gets_zeros(tmp_path):
    model = mlp(bias=False)
    spec, weights = import_onnx(save(tmp_path, model))
    assert spec["layers"][0] == {"name": "mm", "op": "gemm", "out": 8, "activation": "relu"}
    assert np.all(weights["mm.bias"] == 0)
    check_same_function(model, spec, weights)


def test_autoencoder_clip_attributes_reshape_convtranspose_sigmoid(tmp_path):
    model = autoencoder()
    spec, weights = import_onnx(save(tmp_path, model), task="autoencode")
    assert spec["task"] == "autoencode" and spec["loss"] == "bernoulli" and spec["input"] == [1, 8, 8]
    layers = {l["name"]: l for l in spec["layers"]}
    assert layers["enc"]["activation"] == "relu6" and layers["code"]["activation"] == "relu"
    assert layers["unflat"] == {"name": "unflat", "op": "reshape", "shape": [4, 4, 4]}
    assert layers["dec"]["output_padding"] == 1 and layers["dec"]["out_channels"] == 1
    assert weights["dec.weight"].shape == (4, 1, 3, 3) and weights["expand.weight"].shape == (64, 16)
    assert spec["layers"][-1]["name"] == "dec"                 # the Sigmoid is the loss's
    check_same_function(model, spec, weights, sigmoid=True)
    through_graph(spec, weights)


def test_unfused_relu_reshape_to_vector_and_clip_zero_is_relu(tmp_path):
    n = Net(3)
    t = n.node("Gemm", ["x", n.param("w", 6, 4), n.param("b", 6)], "fc1", transB=1)
    r = n.node("Clip", [t, n.const("zero", 0.0, np.float32)], "clip")          # no max: a ReLU
    t = n.node("Reshape", [r, n.const("s", [1, 6])], "view")
    t = n.node("Add", [t, r], "sum")
    t = n.node("Relu", [t], "relu_a")
    n.node("Relu", [t], "relu_b")                                               # the Add already has one
    model = n.model([1, 4])
    spec, weights = import_onnx(save(tmp_path, model))
    assert [(l["op"], l.get("activation"), l.get("inputs")) for l in spec["layers"]] == [
        ("gemm", "relu", None), ("reshape", None, None), ("add", "relu", ["view", "fc1"]), ("relu", None, None)]
    check_same_function(model, spec, weights)


def test_same_padding_resolved_and_names_sanitised(tmp_path):
    n = Net(4)
    t = n.node("Conv", ["x", n.param("w", 2, 1, 3, 3)], "/features/0/Conv", auto_pad="SAME_UPPER")
    t = n.node("Conv", [t, n.param("w2", 2, 2, 3, 3)], "input", auto_pad="SAME_LOWER")
    t = n.node("Conv", [t, n.param("w3", 2, 2, 1, 1)], "", out="t3", auto_pad="VALID")
    t = n.node("Conv", [t, n.param("w4", 2, 2, 1, 1)], "9" * 80)
    t = n.node("Conv", [t, n.param("w5", 2, 2, 1, 1)], "9" * 80 + "x")
    t = n.node("Flatten", [t], "f")
    n.node("Gemm", [t, n.param("w6", 3, 50)], "fc", transB=1)
    model = n.model(["N", 1, 5, 5], graph_name="///")
    spec, weights = import_onnx(save(tmp_path, model, "1st model.onnx"))
    names = [l["name"] for l in spec["layers"]]
    assert spec["name"] == "1st_model"
    assert names[:3] == ["features_0_Conv", "input_2", "conv2d2"]
    assert names[3] == "_" + "9" * 63 and names[4] == "_" + "9" * 59 + "_2" and len(set(names)) == len(names)
    assert [l["padding"] for l in spec["layers"][:3]] == [1, 1, 0]
    check_same_function(model, spec, weights)


def test_model_without_initialisers_gets_no_weights(tmp_path):
    """As torch.onnx.export(export_params=False) writes it: the parameters are inputs without values."""
    n = Net()
    t = n.node("Conv", ["x", "conv.weight", "conv.bias"], "conv", pads=[1, 1, 1, 1])
    t = n.node("Relu", [t], "relu")
    t = n.node("Flatten", [t], "flat")
    t = n.node("MatMul", [t, "fc.weight"], "fc")
    n.node("Add", [t, "fc.bias"], "fc_bias")
    params = [helper.make_tensor_value_info(name, F, shape) for name, shape in
              (("conv.weight", [3, 1, 3, 3]), ("conv.bias", [3]), ("fc.weight", [48, 10]), ("fc.bias", [10]))]
    spec, weights = import_onnx(save(tmp_path, n.model(["N", 1, 4, 4], inputs=params)))
    assert weights == {}
    assert spec["layers"] == [
        {"name": "conv", "op": "conv2d", "out_channels": 3, "kernel": 3, "stride": 1, "padding": 1,
         "activation": "relu"},
        {"name": "flat", "op": "flatten"}, {"name": "fc", "op": "gemm", "out": 10}]
    through_graph(spec, weights)


def test_activation_fused_into_pool_and_loaded_directly(tmp_path):
    """`.onnx` is accepted wherever a model is taken: mcusim.graph.load_model imports it."""
    from mcusim.graph import load_model
    n = Net(5)
    t = n.node("MaxPool", ["x"], "mp", kernel_shape=[2, 2], strides=[2, 2])
    t = n.node("Relu", [t], "mp_relu")
    t = n.node("Flatten", [t], "flat")
    n.node("Gemm", [t, n.param("w", 3, 8), n.param("b", 3)], "fc", transB=1)
    model = n.model(["N", 2, 4, 4])
    spec, weights = import_onnx(save(tmp_path, model))
    assert spec["layers"][0] == {"name": "mp", "op": "maxpool2d", "kernel": 2, "stride": 2, "padding": 0,
                                 "activation": "relu"}
    check_same_function(model, spec, weights)
    graph = load_model(tmp_path / "m.onnx")
    assert graph.classes == 3 and np.array_equal(graph.weights["fc.weight"], weights["fc.weight"])


def test_dead_branches_are_ignored(tmp_path):
    n = Net()
    n.node("Softmax", ["x"], "unused")
    n.node("Gemm", ["x", n.param("w", 3, 4)], "fc", transB=1)
    spec, _ = import_onnx(save(tmp_path, n.model([1, 4])))
    assert [l["name"] for l in spec["layers"]] == ["fc"]


def test_ds_cnn_proof_model(tmp_path):
    path = MODELS / "ds_cnn.onnx"
    stored = onnx.load(path)
    assert stored.graph == ds_cnn_builder()().graph, "models/ds_cnn.onnx is stale: run models/make_ds_cnn.py"
    spec, weights = import_onnx(path)
    assert spec["name"] == "ds_cnn" and spec["input"] == [1, 28, 28]
    assert [l["op"] for l in spec["layers"]] == ["conv2d", "conv2d", "conv2d", "add", "maxpool2d", "conv2d",
                                                 "conv2d", "globalavgpool", "flatten", "gemm"]
    assert [l.get("activation") for l in spec["layers"]].count("relu") == 5
    assert spec["layers"][3]["inputs"] == ["ds1_pw", "conv1"] and spec["layers"][1]["groups"] == 16
    fc = numpy_helper.to_array(next(t for t in stored.graph.initializer if t.name == "fc.weight"))
    assert np.array_equal(weights["fc.weight"], fc)
    bound = 1 / math.sqrt(9)                                      # conv1: fan_in 1 x 3 x 3
    assert 0.8 * bound < np.abs(weights["conv1.weight"]).max() <= bound
    check_same_function(stored, spec, weights)
    through_graph(spec, weights)


# ---- what is refused --------------------------------------------------------------------------

def refused(path, *fragments, **kw):
    with pytest.raises(OnnxImportError) as info:
        import_onnx(path, **kw)
    message = str(info.value)
    assert isinstance(info.value, McusimError) and "\n" not in message and "Traceback" not in message
    for fragment in fragments:
        assert fragment in message, message
    return message


def test_unsupported_nodes_are_listed_together(tmp_path):
    n = Net()
    t = n.node("BatchNormalization", ["x", n.param("s", 3), n.param("b", 3), n.param("m", 3), n.param("v", 3)],
               "bn")
    t = n.node("Conv", [t, n.param("w", 3, 3, 3, 3)], "dilated", dilations=[2, 2], pads=[2, 2, 2, 2])
    t = n.node("Conv", [t, n.param("w2", 3, 3, 3, 3)], "lopsided", pads=[0, 0, 1, 1])
    t = n.node("AveragePool", [t], "avg", kernel_shape=[2, 2], pads=[1, 1, 1, 1], count_include_pad=1)
    t = n.node("Tanh", [t], "", out="tanh_out")
    t = n.node("Flatten", [t], "flat")
    t = n.node("Gemm", [t, n.param("w3", 10, 192)], "scaled", transB=1, alpha=2.0)
    n.node("Softmax", [t], "probs")
    message = refused(save(tmp_path, n.model(["N", 3, 8, 8])),
                      "cannot import 7 nodes", "BatchNormalization (bn)", "Tanh (unnamed, output 'tanh_out')",
                      "Conv (dilated): attribute dilations = [2, 2]", "Conv (lopsided): attribute pads = [0, 0, 1, 1]",
                      "AveragePool (avg): attribute count_include_pad = 1", "Gemm (scaled): attribute alpha = 2.0",
                      "Softmax (probs)", "mcusim supports Conv")
    assert message.count("mcusim supports Conv (") == 1


@pytest.mark.parametrize("case, fragment", [
    ("strides", "attribute strides = [1, 2]"),
    ("clip", "Clip (clip): min = -1, max = 1"),
    ("sigmoid", "Sigmoid (sig): mcusim supports Sigmoid only as the last node of an autoencoder"),
    ("add_const", "Add (shift): adds a constant"),
    ("broadcast", "adds shapes [1, 2, 4, 4] and [1, 1, 4, 4]"),
    ("flatten_axis", "Flatten (flat): attribute axis = 2"),
    ("same_odd", "auto_pad = 'SAME_UPPER' pads [1] in total"),
    ("ceil", "attribute ceil_mode = 1"),
    ("convT_group", "ConvTranspose (up): attribute group = 2"),
    ("dynamic_reshape", "Shape (shape_of)"),
])
def test_unsupported_attributes_name_node_attribute_value(tmp_path, case, fragment):
    n = Net()
    w = n.param("w", 2, 1, 3, 3)
    if case == "strides":
        n.node("Conv", ["x", w], "c", strides=[1, 2])
    elif case == "clip":
        n.node("Clip", [n.node("Conv", ["x", w], "c"), n.const("lo", -1.0, np.float32),
                        n.const("hi", 1.0, np.float32)], "clip")
    elif case == "sigmoid":
        n.node("Sigmoid", ["x"], "sig")
    elif case == "add_const":
        n.node("Add", ["x", n.param("k", 1, 1, 4, 4)], "shift")
    elif case == "broadcast":
        n.node("Add", [n.node("Conv", ["x", w], "c", pads=[1, 1, 1, 1]), "x"], "sum")
    elif case == "flatten_axis":
        n.node("Flatten", ["x"], "flat", axis=2)
    elif case == "same_odd":
        n.node("Conv", ["x", n.param("w2", 2, 1, 2, 2)], "c", auto_pad="SAME_UPPER")
    elif case == "ceil":
        n.node("MaxPool", ["x"], "mp", kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1)     # 5 x 5: 3 x 3
    elif case == "convT_group":
        n.node("ConvTranspose", ["x", n.param("wt", 2, 1, 2, 2)], "up", group=2)
    elif case == "dynamic_reshape":
        s = n.node("Shape", ["x"], "shape_of")
        n.node("Reshape", ["x", s], "view")
    in_shape = {"ceil": ["N", 1, 5, 5], "convT_group": ["N", 2, 4, 4]}.get(case, ["N", 1, 4, 4])
    refused(save(tmp_path, n.model(in_shape, out_rank=2 if case == "flatten_axis" else 4)), fragment)


@pytest.mark.parametrize("content, fragment", [
    (b"this is plain text, not a protobuf\n", "is not an ONNX model or is truncated"),
    (b"", "is not an ONNX model (it holds no graph)"),
    ("truncated", "is not an ONNX model or is truncated"),
    (None, "no such file"),
    ("dir", "not a regular file"),
    ("huge", "more than any model an MCU can train"),           # a 4 GiB input was read whole
])
def test_unreadable_files(tmp_path, content, fragment):
    path = tmp_path / "bad.onnx"
    if content == "truncated":
        data = (MODELS / "ds_cnn.onnx").read_bytes()
        content = data[:len(data) // 2]
    if content == "dir":
        path.mkdir()
    elif content == "huge":
        with open(path, "wb") as f:
            f.truncate(4 << 30)                                   # sparse: no disk space used
    elif content is not None:
        path.write_bytes(content)
    refused(path, fragment)


def test_damaged_files_never_give_a_traceback(tmp_path):
    """Random bytes changed in the graph part of the proof model: an import or an OnnxImportError."""
    data = (MODELS / "ds_cnn.onnx").read_bytes()
    rng = np.random.default_rng(0)
    path = tmp_path / "damaged.onnx"
    outcomes = set()
    for _ in range(150):
        damaged = bytearray(data)
        for pos in rng.integers(0, 1200, rng.integers(1, 4)):
            damaged[pos] = rng.integers(0, 256)
        path.write_bytes(bytes(damaged))
        try:
            import_onnx(path)
            outcomes.add("imported")
        except OnnxImportError as exc:
            assert "\n" not in str(exc)
            outcomes.add("refused")
    assert outcomes == {"imported", "refused"}


def test_bias_that_does_not_fit(tmp_path):
    n = Net()
    n.node("Conv", ["x", n.param("w", 6, 1, 3, 3), n.param("b", 5)], "c")
    refused(save(tmp_path, n.model(["N", 1, 4, 4], out_rank=4)), "Conv (c): bias shape [5] does not fit its 6 outputs")


def test_checker_failure(tmp_path):
    n = Net()
    n.node("Relu", ["nowhere"], "r")
    refused(save(tmp_path, n.model([1, 4], out="r")), "is not a valid ONNX model (the ONNX checker says")


def test_graph_interface_errors(tmp_path):
    def relu_model(**kw):
        n = Net()
        n.node("Relu", ["x"], "r")
        return n.model(["N", 4, 2, 2], out_rank=4, **kw)
    second = helper.make_tensor_value_info("x2", F, [1, 4])
    refused(save(tmp_path, relu_model(inputs=[second])), "2 data inputs (x, x2)")
    refused(save(tmp_path, relu_model(outputs=[helper.make_tensor_value_info("x", F, [1, 4, 2, 2])])),
            "2 outputs (r, x)")
    refused(save(tmp_path, relu_model(in_type=TensorProto.FLOAT16)), "input 'x' has type FLOAT16")
    refused(save(tmp_path, relu_model(out_type=TensorProto.DOUBLE)), "output 'r' has type DOUBLE")
    n = Net()
    n.node("Relu", ["x"], "r")
    refused(save(tmp_path, n.model(["N", 4, "H", "W"], out_rank=4)), "shape ['?', 4, '?', '?']")
    n = Net()
    n.node("Sigmoid", ["x"], "sig")
    refused(save(tmp_path, n.model(["N", 1, 2, 2], out_rank=4)), "the output 'sig' is not computed by any layer",
            task="autoencode")


def test_task_and_name_checks(tmp_path):
    path = save(tmp_path, mlp())
    refused(path, "an autoencoder's output must have the input's shape [12], but the output 'fc' has shape [5]", task="autoencode")
    refused(path, "--task must be one of classify, autoencode", task="vae")
    refused(path, "model name '../evil' is not allowed", name="../evil")


def test_partial_weights_refused(tmp_path):
    n = Net()
    t = n.node("Gemm", ["x", "w1"], "a", transB=1)
    n.node("Gemm", [t, n.param("w2", 3, 5)], "b", transB=1)
    model = n.model([1, 4], inputs=[helper.make_tensor_value_info("w1", F, [5, 4])])
    refused(save(tmp_path, model), "holds weights for some layers but not for a")


# ---- the command --------------------------------------------------------------------------------

def cli(*argv):
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["import", *map(str, argv)])
    return args.func(args)


def test_cli_writes_toml_and_weights(tmp_path, capsys):
    if not _registered(cnn()):
        pytest.skip("mcusim.graph does not know every op of the test model yet")
    model = save(tmp_path, cnn(), "cnn.onnx")
    out = tmp_path / "out" / "my.toml"
    out.parent.mkdir()
    assert cli(model, "-o", out) == 0
    spec = tomllib.loads(out.read_text())
    assert spec["weights"] == "my.weights.npz" and list(spec)[-1] == "layers"
    with np.load(out.parent / "my.weights.npz") as npz:
        weights = {k: npz[k] for k in npz.files}
    check_same_function(cnn(), spec, weights)
    assert sorted(p.name for p in out.parent.iterdir()) == ["my.toml", "my.weights.npz"]   # no temp files
    assert "wrote" in capsys.readouterr().out


def _registered(model) -> bool:
    from mcusim.operators import REGISTRY
    return all(l["op"] in REGISTRY for l in import_onnx_spec(model)["layers"])


def import_onnx_spec(model):
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        return import_onnx(save(Path(d), model))[0]


def test_cli_overwrite_rules(tmp_path):
    model = save(tmp_path, mlp(), "mlp.onnx")
    if not _registered(mlp()):
        pytest.skip("mcusim.graph does not know gemm yet")
    assert cli(model) == 0                                           # default: mlp.toml beside the model
    toml, npz = tmp_path / "mlp.toml", tmp_path / "mlp.weights.npz"
    assert toml.is_file() and npz.is_file()
    before = toml.read_bytes()
    with pytest.raises(OutputError, match="exists; pass --force"):
        cli(model)
    npz.unlink()
    with pytest.raises(OutputError, match="mlp.toml exists"):    # refused before anything is written
        cli(model)
    assert not npz.exists()
    assert cli(model, "--force", "--name", "renamed") == 0
    assert toml.read_bytes() != before and 'name = "renamed"' in toml.read_text() and npz.is_file()
    (tmp_path / "dir.toml").mkdir()
    with pytest.raises(OutputError, match="not a regular file"):
        cli(model, "-o", tmp_path / "dir.toml", "--force")
    with pytest.raises(OnnxImportError, match="must be a .toml file"):
        cli(model, "-o", tmp_path / "x.json")
    with pytest.raises(OutputError, match="does not exist"):
        cli(model, "-o", tmp_path / "no" / "x.toml")


def test_cli_model_without_weights_writes_no_npz(tmp_path):
    n = Net()
    n.node("Gemm", ["x", "w"], "fc", transB=1)
    model = n.model([1, 4], inputs=[helper.make_tensor_value_info("w", F, [3, 4])])
    if not _registered(model):
        pytest.skip("mcusim.graph does not know gemm yet")
    assert cli(save(tmp_path, model), "-o", tmp_path / "w.toml") == 0
    assert "weights" not in tomllib.loads((tmp_path / "w.toml").read_text())
    assert not (tmp_path / "w.weights.npz").exists()
