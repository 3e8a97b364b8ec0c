"""A network as data: layers over named tensors, a task, and the checks that make a model file safe to
train. Read from TOML (models/*.toml, the format in README "Model files") or from ONNX; every size and
shape is checked here, so a bad file fails at once with one message naming the file, the layer and the
fix, never minutes later inside a kernel. Training, the memory plan and the firmware read a `Graph`.
"""
from __future__ import annotations

import math
import re
import tomllib
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import ModelError
from .units import MB
from .operators import REGISTRY, get
from .operators.base import Directions, Operator, positive_int, shape_list

MODEL_DIR = Path(__file__).resolve().parent / "model_files"
if not MODEL_DIR.is_dir():               # editable install: the package maps ../models
    MODEL_DIR = Path(__file__).resolve().parent.parent / "models"
TASKS = ("classify", "autoencode", "vae")
LOSSES = {"classify": ("cross_entropy",), "autoencode": ("bernoulli", "mse"), "vae": ("elbo",)}
ACTIVATIONS = ("none", "relu", "relu6")
MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
LAYER_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
LAYER_KEYS = ("name", "op", "inputs", "activation")
TOP_KEYS = {"classify": {"layers", "classes"}, "autoencode": {"layers", "loss"},
            "vae": {"latent", "encoder", "decoder", "classifier"}}
MAX_ELEMENTS = 1 << 24            # per tensor: far beyond any MCU, small enough for the host to plan
MAX_FILE_BYTES = 1 * MB
INPUT, LATENT = "input", "z"      # the names of the model input and of the vae's latent sample


@dataclass(frozen=True, eq=False)
class Node:
    """One layer: an operator applied to named tensors, with its shapes worked out."""
    name: str
    op: str
    inputs: tuple[str, ...]
    in_shapes: tuple[tuple[int, ...], ...]
    out_shape: tuple[int, ...]
    attrs: dict = field(default_factory=dict)
    activation: str = "none"

    @property
    def operator(self) -> Operator:
        return REGISTRY[self.op]

    @property
    def n_in(self) -> int:
        return math.prod(self.in_shapes[0])

    @property
    def n_out(self) -> int:
        return math.prod(self.out_shape)

    @property
    def trainable(self) -> bool:
        return self.operator.trainable

    @property
    def weight_shape(self) -> tuple[int, ...]:
        return self.operator.weight_shape(self)

    @property
    def n_weights(self) -> int:
        return math.prod(self.weight_shape)

    @property
    def n_bias(self) -> int:
        return self.operator.n_bias(self)

    @property
    def structures(self) -> int:
        return self.operator.structures(self)

    @property
    def macs(self) -> Directions:
        return self.operator.macs(self)


@dataclass(frozen=True)
class Graph:
    name: str
    path: Path | None
    input_shape: tuple[int, int, int]
    task: str
    loss: str
    nodes: tuple[Node, ...]               # every layer of the training step, in execution order
    classes: int | None = None            # classify: the logits; vae: the float head's classes
    latent: int = 0                       # vae only: encoder -> head (mu, log-sigma) -> z -> decoder
    encoder: tuple[Node, ...] = ()
    head: Node | None = None
    decoder: tuple[Node, ...] = ()
    classifier: tuple[Node, ...] = ()     # vae: the float classification head on mu (not on the device)
    weights: dict[str, np.ndarray] | None = None     # initial weights "<layer>.weight" / "<layer>.bias"

    @property
    def trainable(self) -> tuple[Node, ...]:
        return tuple(n for n in self.nodes if n.trainable)

    @property
    def n_params(self) -> int:
        return sum(n.n_weights + n.n_bias for n in self.trainable)

    @property
    def n_pixels(self) -> int:
        return math.prod(self.input_shape)


# ---- reading -------------------------------------------------------------------------------------

def builtin_models() -> list[str]:
    return sorted({p.stem.removeprefix("vae_") for p in [*MODEL_DIR.glob("*.toml"), *MODEL_DIR.glob("*.onnx")]})


def load_model(name_or_path: str | Path = "baseline") -> Graph:
    """A built-in model by name (`baseline`, `latent`, `filters`, `classes`, ...) or a model file: TOML
    (README, "Model files") or ONNX (imported as `mcusim import` does)."""
    path = Path(name_or_path)
    if path.suffix.lower() not in (".toml", ".onnx") and MODEL_NAME.fullmatch(str(name_or_path)) \
            and (MODEL_DIR / f"{name_or_path}.onnx").is_file():
        path = MODEL_DIR / f"{name_or_path}.onnx"
    if path.suffix.lower() == ".onnx":
        from .onnx_import import import_onnx
        spec, weights = import_onnx(path)
        return graph_from_spec(spec, path, weights)
    if path.suffix.lower() != ".toml":
        path = next((p for p in (MODEL_DIR / f"{name_or_path}.toml", MODEL_DIR / f"vae_{name_or_path}.toml")
                     if p.is_file()), MODEL_DIR / f"{name_or_path}.toml")
        if not MODEL_NAME.fullmatch(str(name_or_path)) or not path.is_file():
            raise ModelError(f"no model '{name_or_path}'; built-in models: {', '.join(builtin_models())}, "
                             f"or pass the path of a model file (.toml or .onnx)")
    try:
        with open(path, "rb") as f:
            text = f.read(MAX_FILE_BYTES + 1)
        if len(text) > MAX_FILE_BYTES:
            raise ModelError(f"model file {path} is larger than {MAX_FILE_BYTES // MB} MB; a model description is a few kB")
        spec = tomllib.loads(text.decode("utf-8"))
    except FileNotFoundError:
        raise ModelError(f"model file {path} does not exist") from None
    except (IsADirectoryError, PermissionError, OSError) as exc:
        raise ModelError(f"cannot read model file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ModelError(f"model file {path} is not UTF-8 text (byte {exc.start}); save it as UTF-8 TOML") from None
    except (tomllib.TOMLDecodeError, RecursionError) as exc:
        raise ModelError(f"model file {path} is not valid TOML: {exc}") from None
    weights = None
    if "weights" in spec:
        if not isinstance(spec["weights"], str) or not spec["weights"]:
            raise ModelError(f"model file {path}: `weights` must be the path of an .npz file, not {spec['weights']!r}")
        weights = _read_weights(path.parent / spec["weights"], path)
    return graph_from_spec(spec, path, weights)


def _read_weights(path: Path, source: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {k: np.asarray(npz[k]) for k in npz.files}
    except FileNotFoundError:
        raise ModelError(f"model file {source}: its weights file {path} does not exist") from None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise ModelError(f"model file {source}: its weights file {path} is not a readable .npz ({exc})") from None


def graph_from_spec(spec: dict, source: str | Path, weights: dict | None = None) -> Graph:
    """Check a model description (the TOML's structure as a dict) and work out every shape."""
    where = f"model {source}"
    if not isinstance(spec, dict):
        raise ModelError(f"{where}: expected a table of keys (name, input, task, layers, ...)")
    task = spec.get("task", "vae" if "encoder" in spec else "classify")
    if task not in TASKS:
        raise ModelError(f"{where}: `task` must be one of {', '.join(TASKS)}, not {task!r}")
    unknown = set(spec) - {"name", "input", "task", "weights"} - TOP_KEYS[task]
    if unknown:
        raise ModelError(f"{where}: unknown key(s) {', '.join(sorted(unknown))} for a {task} model; it takes "
                         f"name, input, task, weights, {', '.join(sorted(TOP_KEYS[task]))}")
    name = spec.get("name")
    if not isinstance(name, str) or not MODEL_NAME.fullmatch(name):
        raise ModelError(f"{where}: `name` must be 1-64 letters, digits, '_', '.' or '-' (starting with a letter "
                         f"or digit), not {name!r}: it names generated files")
    if "input" not in spec:
        raise ModelError(f"{where}: `input` = [C, H, W] is missing (e.g. input = [1, 28, 28])")
    input_shape = shape_list(spec["input"], "input", where)
    if len(input_shape) != 3:
        raise ModelError(f"{where}: `input` must be [C, H, W], not {spec['input']!r}")
    if math.prod(input_shape) > MAX_ELEMENTS:
        raise ModelError(f"{where}: an input of {math.prod(input_shape)} values is beyond any MCU")
    build = {"classify": _classify, "autoencode": _autoencode, "vae": _vae}[task]
    graph = build(spec, name, Path(source), input_shape, where)
    if weights is not None:
        _check_weights(graph, weights, where)
        graph = Graph(**{**graph.__dict__, "weights": weights})
    return graph


def _entries(spec: dict, key: str, where: str) -> list:
    entries = spec.get(key)
    if not isinstance(entries, list) or not entries or not all(isinstance(e, dict) for e in entries):
        raise ModelError(f"{where}: needs a non-empty list of [[{key}]] tables, one per layer")
    return entries


def parse_layers(entries: list, shapes: dict[str, tuple[int, ...]], first_input: str, where: str,
                 default_name) -> list[Node]:
    """Layers in order; each reads the previous layer's output (the first: `first_input`) unless it
    names its `inputs`. `shapes` holds the tensors known so far and receives the new ones."""
    nodes: list[Node] = []
    previous = first_input
    for i, entry in enumerate(entries):
        here = f"{where}, layer {i + 1}"
        op_name = entry.get("op")
        if op_name is None:
            raise ModelError(f"{here}: `op` is missing (one of {', '.join(sorted(REGISTRY))})")
        op = get(op_name, here)
        name = entry.get("name", default_name(i, op_name))
        if not isinstance(name, str) or not (LAYER_NAME.fullmatch(name) or name == default_name(i, op_name)):
            raise ModelError(f"{here}: `name` must be a letter or '_' followed by letters, digits or '_' "
                             f"(at most 64), not {name!r}")
        if name in shapes:
            raise ModelError(f"{here}: the name {name!r} is already used")
        here = f"{where}, layer {i + 1} ('{name}', {op_name})"
        unknown = set(entry) - set(LAYER_KEYS) - set(op.keys)
        if unknown:
            raise ModelError(f"{here}: unknown key(s) {', '.join(sorted(unknown))}; a {op_name} layer takes "
                             f"{', '.join(list(LAYER_KEYS) + list(op.keys))}")
        inputs = entry.get("inputs", [previous] * (op.n_inputs == 1))
        if (not isinstance(inputs, list) or len(inputs) != op.n_inputs
                or not all(isinstance(s, str) for s in inputs)):
            raise ModelError(f"{here}: `inputs` must list {op.n_inputs} tensor name(s), not {inputs!r}")
        missing = [s for s in inputs if s not in shapes]
        if missing:
            raise ModelError(f"{here}: input(s) {', '.join(map(repr, missing))} are not defined before it "
                             f"(known: {', '.join(shapes)})")
        activation = entry.get("activation", "none")
        if activation not in ACTIVATIONS or (op.view and activation != "none"):
            allowed = "none" if op.view else ", ".join(ACTIVATIONS)
            raise ModelError(f"{here}: `activation` must be one of {allowed}, not {activation!r}")
        attrs = op.attributes(entry, here)
        in_shapes = tuple(shapes[s] for s in inputs)
        out = tuple(op.infer(attrs, list(in_shapes), here))
        if math.prod(out) > MAX_ELEMENTS:
            raise ModelError(f"{here}: an output of {math.prod(out)} values is beyond any MCU")
        node = Node(name, op_name, tuple(inputs), in_shapes, out, attrs, activation)
        if node.trainable and node.n_weights > MAX_ELEMENTS:
            raise ModelError(f"{here}: {node.n_weights} weights are beyond any MCU")
        shapes[name] = out
        nodes.append(node)
        previous = name
    return nodes


def _check_used(nodes: list[Node], where: str) -> None:
    used = {s for n in nodes for s in n.inputs}
    dead = [n.name for n in nodes[:-1] if n.name not in used]
    if dead:
        raise ModelError(f"{where}: the output of layer(s) {', '.join(dead)} is never used; remove them or "
                         f"feed them into a later layer")


def _classify(spec, name, path, input_shape, where) -> Graph:
    nodes = parse_layers(_entries(spec, "layers", where), {INPUT: input_shape}, INPUT, where,
                         lambda i, op: f"{op}{i}")
    _check_used(nodes, where)
    last = nodes[-1]
    classes = spec.get("classes", last.n_out)
    positive_int(classes, "classes", where, minimum=2)
    if last.n_out != classes or last.n_out < 2:
        raise ModelError(f"{where}: the last layer gives {last.n_out} values; a classifier's last layer gives "
                         f"one logit per class (classes = {classes}, at least 2)")
    if last.activation != "none":
        raise ModelError(f"{where}: the last layer gives logits; remove its activation")
    return Graph(name, path, input_shape, "classify", "cross_entropy", tuple(nodes), classes=classes)


def _autoencode(spec, name, path, input_shape, where) -> Graph:
    loss = spec.get("loss", "bernoulli")
    if loss not in LOSSES["autoencode"]:
        raise ModelError(f"{where}: `loss` must be one of {', '.join(LOSSES['autoencode'])}, not {loss!r}")
    nodes = parse_layers(_entries(spec, "layers", where), {INPUT: input_shape}, INPUT, where,
                         lambda i, op: f"{op}{i}")
    _check_used(nodes, where)
    if nodes[-1].n_out != math.prod(input_shape):
        raise ModelError(f"{where}: an autoencoder's last layer must give the input's {math.prod(input_shape)} "
                         f"values ({list(input_shape)}), not {nodes[-1].n_out} ({list(nodes[-1].out_shape)})")
    if loss == "bernoulli" and nodes[-1].activation != "none":
        raise ModelError(f"{where}: with loss = \"bernoulli\" the last layer gives logits; remove its activation")
    return Graph(name, path, input_shape, "autoencode", loss, tuple(nodes))


def _vae(spec, name, path, input_shape, where) -> Graph:
    latent = positive_int(spec.get("latent"), "latent", where)
    shapes = {INPUT: input_shape}
    encoder = parse_layers(_entries(spec, "encoder", where), shapes, INPUT, f"{where}, [[encoder]]",
                           lambda i, op: f"encoder{i}.{op}")
    head = parse_layers([{"op": "gemm", "out": 2 * latent}], shapes, encoder[-1].name, where,
                        lambda i, op: "head.gemm")[0]
    shapes[LATENT] = (latent,)
    decoder = parse_layers(_entries(spec, "decoder", where), shapes, LATENT, f"{where}, [[decoder]]",
                           lambda i, op: f"decoder{i}.{op}")
    _check_used(encoder + [head], where)
    _check_used(decoder, where)
    if decoder[-1].out_shape != input_shape:
        raise ModelError(f"{where}: the decoder ends in shape {list(decoder[-1].out_shape)} but the input is "
                         f"{list(input_shape)}; adjust the last layers' kernel/stride/padding/channels")
    if decoder[-1].activation != "none":
        raise ModelError(f"{where}: the last decoder layer gives logits; remove its activation")
    cls = spec.get("classifier")
    if not isinstance(cls, dict) or set(cls) - {"hidden", "classes"} or not isinstance(cls.get("hidden"), list) \
            or len(cls["hidden"]) != 1:
        raise ModelError(f"{where}: [classifier] needs hidden = [N] (one hidden layer) and classes = K")
    classes = positive_int(cls.get("classes"), "classes", f"{where}, [classifier]", minimum=2)
    hidden = positive_int(cls["hidden"][0], "hidden", f"{where}, [classifier]")
    classifier = parse_layers([{"op": "gemm", "out": hidden, "activation": "relu"}, {"op": "gemm", "out": classes}],
                              {"mu": (latent,)}, "mu", f"{where}, [classifier]", lambda i, op: f"classifier{i}.gemm")
    return Graph(name, path, input_shape, "vae", "elbo", tuple(encoder + [head] + decoder), classes=classes,
                 latent=latent, encoder=tuple(encoder), head=head, decoder=tuple(decoder),
                 classifier=tuple(classifier))


def _check_weights(graph: Graph, weights: dict, where: str) -> None:
    expected = {}
    for n in graph.trainable:
        expected[f"{n.name}.weight"] = n.weight_shape
        expected[f"{n.name}.bias"] = (n.n_bias,)
    unknown = set(weights) - set(expected)
    if unknown:
        raise ModelError(f"{where}: initial weights for unknown tensor(s) {', '.join(sorted(unknown))}; "
                         f"expected names like {next(iter(expected), 'layer.weight')}")
    for key, shape in expected.items():
        if key not in weights:
            raise ModelError(f"{where}: initial weights are given but {key} is missing")
        arr = weights[key]
        if arr.shape != shape or arr.dtype.kind != "f" or not np.all(np.isfinite(arr)):
            raise ModelError(f"{where}: initial {key} must be finite floats of shape {list(shape)}, got "
                             f"{arr.dtype} {list(arr.shape)}")
