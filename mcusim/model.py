"""VAE architectures as data: read a model TOML (models/*.toml), derive every layer's shapes, and
check that the decoder gives back the input's shape. Training, the memory plan and the firmware all
read a `Model`, never the file.
"""
from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from pathlib import Path

from .errors import McusimError

MODEL_DIR = Path(__file__).resolve().parent / "model_files"
if not MODEL_DIR.is_dir():               # editable install: the package maps ../models
    MODEL_DIR = Path(__file__).resolve().parent.parent / "models"
OPS = ("gemm", "conv2d", "convtranspose2d")


class ModelError(McusimError):
    """A model description is missing, malformed or inconsistent."""


@dataclass(frozen=True)
class Layer:
    name: str
    op: str
    in_shape: tuple[int, ...]        # (C, H, W) for convolutions, (N,) for gemm
    out_shape: tuple[int, ...]
    relu: bool
    kernel: int = 0
    stride: int = 1
    padding: int = 0

    @property
    def n_in(self) -> int:
        return math.prod(self.in_shape)

    @property
    def n_out(self) -> int:
        return math.prod(self.out_shape)

    @property
    def structures(self) -> int:
        """Rows of a Gemm or output channels of a convolution: what sparse updates select."""
        return self.n_out if self.op == "gemm" else self.out_shape[0]

    @property
    def weight_shape(self) -> tuple[int, ...]:
        if self.op == "gemm":
            return (self.n_out, self.n_in)
        if self.op == "conv2d":
            return (self.out_shape[0], self.in_shape[0], self.kernel, self.kernel)
        return (self.in_shape[0], self.out_shape[0], self.kernel, self.kernel)

    @property
    def n_weights(self) -> int:
        return math.prod(self.weight_shape)

    @property
    def n_bias(self) -> int:
        return self.structures

    @property
    def macs(self) -> int:
        """Multiply-accumulates of the forward pass (padding taps excluded)."""
        if self.op == "gemm":
            return self.n_in * self.n_out
        c_in, h_in, w_in = self.in_shape
        c_out, h_out, w_out = self.out_shape
        if self.op == "conv2d":
            taps = sum(_valid(o, self.stride, self.padding, self.kernel, h_in) for o in range(h_out)) * \
                sum(_valid(o, self.stride, self.padding, self.kernel, w_in) for o in range(w_out))
        else:
            taps = sum(_valid(i, self.stride, self.padding, self.kernel, h_out) for i in range(h_in)) * \
                sum(_valid(i, self.stride, self.padding, self.kernel, w_out) for i in range(w_in))
        return taps * c_in * c_out

    def conv_dims(self) -> tuple[int, ...]:
        """The 10 values of the C `nn_conv_dims` struct."""
        (ci, hi, wi), (co, ho, wo) = self.in_shape, self.out_shape
        return (ci, hi, wi, co, ho, wo, self.kernel, self.kernel, self.stride, self.padding)


def _valid(o: int, stride: int, pad: int, k: int, size: int) -> int:
    """Kernel taps of output (or input) index o that land inside [0, size)."""
    return sum(0 <= o * stride - pad + t < size for t in range(k))


@dataclass(frozen=True)
class Model:
    name: str
    path: Path
    input_shape: tuple[int, int, int]
    latent: int
    encoder: tuple[Layer, ...]
    head: Layer                       # mu and log-sigma as one Gemm: outputs [0, latent) and [latent, 2 latent)
    decoder: tuple[Layer, ...]
    classifier: tuple[Layer, ...]

    @property
    def vae_layers(self) -> tuple[Layer, ...]:
        return self.encoder + (self.head,) + self.decoder

    @property
    def n_params(self) -> int:
        return sum(l.n_weights + l.n_bias for l in self.vae_layers)

    @property
    def n_classifier_params(self) -> int:
        return sum(l.n_weights + l.n_bias for l in self.classifier)


def load_model(name_or_path: str | Path = "baseline") -> Model:
    """A model by name (`baseline`, `filters`, `latent`, `classes`) or by path to a TOML file."""
    path = Path(name_or_path)
    if path.suffix != ".toml":
        path = MODEL_DIR / f"vae_{name_or_path}.toml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem.removeprefix("vae_") for p in MODEL_DIR.glob("vae_*.toml")))
        raise ModelError(f"no model '{name_or_path}' (looked for {path}); built-in models: {known}, "
                         f"or pass the path of a model TOML file")
    try:
        with open(path, "rb") as f:
            spec = tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise ModelError(f"model file {path} is not valid TOML: {exc}") from None
    try:
        return _build(spec, path)
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"model file {path}: missing or malformed entry ({exc!r}); compare with "
                         f"{MODEL_DIR / 'vae_baseline.toml'}") from None


def _layer(name: str, entry: dict, shape: tuple[int, ...]) -> Layer:
    op = entry["op"]
    relu = entry.get("activation", "none") == "relu"
    if entry.get("activation", "none") not in ("relu", "none"):
        raise ModelError(f"layer {name}: activation must be 'relu' or 'none', not {entry['activation']!r}")
    if op == "gemm":
        out = entry["out"]
        out_shape = tuple(out) if isinstance(out, list) else (int(out),)
        return Layer(name, op, (math.prod(shape),), out_shape, relu)
    if op not in OPS:
        raise ModelError(f"layer {name}: op must be one of {', '.join(OPS)}, not {op!r}")
    if len(shape) != 3:
        raise ModelError(f"layer {name}: a {op} needs a [C, H, W] input, but the previous layer gives {list(shape)}; "
                         f"give the gemm before it a shaped output such as out = [16, 7, 7]")
    k, s, p = int(entry["kernel"]), int(entry.get("stride", 1)), int(entry.get("padding", 0))
    c, h, w = shape
    if op == "conv2d":
        ho, wo = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
    else:
        ho, wo = (h - 1) * s - 2 * p + k, (w - 1) * s - 2 * p + k
    if ho <= 0 or wo <= 0:
        raise ModelError(f"layer {name}: kernel {k}, stride {s}, padding {p} leave no output from a {h}x{w} input")
    return Layer(name, op, shape, (int(entry["out_channels"]), ho, wo), relu, k, s, p)


def _build(spec: dict, path: Path) -> Model:
    shape = tuple(int(v) for v in spec["input"])
    latent = int(spec["latent"])
    encoder = []
    for i, entry in enumerate(spec["encoder"]):
        layer = _layer(f"encoder{i}.{entry['op']}", entry, shape)
        encoder.append(layer)
        shape = layer.out_shape
    hidden = (math.prod(shape),)
    head = Layer("head.gemm", "gemm", hidden, (2 * latent,), False)
    decoder, shape = [], (latent,)
    for i, entry in enumerate(spec["decoder"]):
        layer = _layer(f"decoder{i}.{entry['op']}", entry, shape)
        decoder.append(layer)
        shape = layer.out_shape
    if shape != tuple(spec["input"]):
        raise ModelError(f"model {path.name}: the decoder ends in shape {list(shape)} but the input is "
                         f"{spec['input']}; adjust the last layers' kernel/stride/padding/channels")
    if decoder[-1].relu:
        raise ModelError(f"model {path.name}: the last decoder layer gives logits; it must not have a ReLU")
    cls_spec = spec["classifier"]
    classifier, width = [], latent
    for i, n in enumerate([*cls_spec["hidden"], cls_spec["classes"]]):
        last = i == len(cls_spec["hidden"])
        classifier.append(Layer(f"classifier{i}.gemm", "gemm", (width,), (int(n),), not last))
        width = int(n)
    return Model(spec["name"], path, tuple(spec["input"]), latent, tuple(encoder), head, tuple(decoder),
                 tuple(classifier))
