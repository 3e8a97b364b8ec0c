"""ONNX import: turn a float32 ONNX network into an mcusim model description (the spec dict that the
model TOML holds) and its initial weights in mcusim's layouts.

The importer reads the graph as mcusim will run it: batch pinned to 1, shapes from ONNX shape inference,
Relu/Clip(0, 6) fused into the layer that produces their input when nothing else reads that layer's
pre-activation output, MatMul + constant Add fused into one gemm. Whatever mcusim cannot run exactly is
reported in one error that lists every offending node, so that a user fixes the export once, not node by
node. `mcusim import` writes the spec as TOML and the weights as .npz beside it, both atomically.
"""
from __future__ import annotations

import io
import math
import re
from functools import partialmethod
from pathlib import Path

import numpy as np

from .errors import ModelError
from .graph import MODEL_NAME
from .outputs import check_target, write_atomic

TASKS = ("classify", "autoencode")
MAX_ONNX_BYTES = 256 << 20       # far beyond any model an MCU trains; refused before it is read whole
SUPPORTED = ("Conv (2-D, groups allowed, the same padding on all four sides, dilations 1), "
             "ConvTranspose (2-D, group 1), Gemm (alpha = beta = 1, transA = 0), MatMul (+ Add of a constant "
             "bias), Relu, Clip(0, 6), Sigmoid (only as the last node of an autoencoder), MaxPool, "
             "AveragePool (padded taps not counted), GlobalAveragePool, Flatten (axis 1), Reshape (constant "
             "shape, to [1, N] or [1, C, H, W]) and Add (two tensors of the same shape)")
FUSABLE = ("conv2d", "convtranspose2d", "gemm", "add", "maxpool2d", "avgpool2d", "globalavgpool")
PARAM_SLOTS = {"Conv": (1, 2), "ConvTranspose": (1, 2), "Gemm": (1, 2), "MatMul": (1,)}


class OnnxImportError(ModelError):
    """An ONNX file that cannot be read, is not a valid model, or holds something mcusim cannot run."""


class _NodeProblem(Exception):
    """Why one node cannot be imported; collected, then reported together with all others."""


def import_onnx(path: str | Path, task: str | None = None,
                name: str | None = None) -> tuple[dict, dict[str, np.ndarray]]:
    """The spec (model description as a dict, without a `weights` entry) and the initial weights
    {"<layer>.weight": ..., "<layer>.bias": ...} (float32) of the ONNX model at `path`."""
    path = Path(path)
    task = task or "classify"
    if task not in TASKS:
        raise OnnxImportError(f"--task must be one of {', '.join(TASKS)}, not {task!r}")
    if name is not None and not MODEL_NAME.fullmatch(name):
        raise OnnxImportError(f"model name {name!r} is not allowed: use 1 to 64 letters, digits, '_', '.' "
                              f"or '-', starting with a letter or digit")
    model = _load(path)
    imp = _Importer(model, path, task)
    c_h_w = imp.input_shape[1:] if len(imp.input_shape) == 4 else (imp.input_shape[1], 1, 1)
    name = name or _model_name(model.graph.name) or _model_name(path.stem) or "model"
    spec = {"name": name, "input": list(c_h_w), "task": task}
    if task == "autoencode":
        spec["loss"] = "bernoulli"
    spec["layers"] = imp.layers
    return spec, imp.weights


def _load(path: Path):
    """The checked model, or an error that says why the file is no ONNX model."""
    import onnx
    from google.protobuf.message import DecodeError
    if not path.exists():
        raise OnnxImportError(f"{path}: no such file")
    if not path.is_file():
        raise OnnxImportError(f"{path}: not a regular file; pass the path of an .onnx model file")
    if path.stat().st_size > MAX_ONNX_BYTES:
        raise OnnxImportError(f"{path} is {path.stat().st_size} bytes, more than any model an MCU can train "
                              f"({MAX_ONNX_BYTES >> 20} MB); pass the .onnx file of a small model")
    try:
        model = onnx.load(str(path))
    except DecodeError as exc:
        raise OnnxImportError(f"{path} is not an ONNX model or is truncated (the protobuf does not parse: "
                              f"{exc}); export it again, e.g. with torch.onnx.export") from None
    except (OSError, ValueError, onnx.checker.ValidationError) as exc:
        raise OnnxImportError(f"{path} cannot be read: {exc}") from None
    if model.ir_version == 0 and not model.HasField("graph"):
        raise OnnxImportError(f"{path} is not an ONNX model (it holds no graph); pass an .onnx file")
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        raise OnnxImportError(f"{path} is not a valid ONNX model (the ONNX checker says: "
                              f"{' '.join(str(exc).split())})") from None
    except UnicodeDecodeError:
        raise OnnxImportError(f"{path} is not a valid ONNX model (a name in it is not UTF-8 text); "
                              f"the file is damaged") from None
    except ValueError as exc:
        raise OnnxImportError(f"{path} is not a valid ONNX model ({exc})") from None
    return model


def _str(text: str | bytes) -> str:
    """Protobuf hands out string fields that are not valid UTF-8 as bytes."""
    return text.decode("utf-8", "replace") if isinstance(text, bytes) else text


def _model_name(text: str | bytes) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", _str(text)).lstrip("_.-")[:64]


def _layer_name(text: str | bytes) -> str:
    name = re.sub(r"[^A-Za-z0-9_]+", "_", _str(text)).strip("_")
    if name and name[0].isdigit():
        name = "_" + name
    return name[:64]


def _label(node) -> str:
    op = _str(node.op_type)
    return f"{op} ({_str(node.name)})" if node.name else f"{op} (unnamed, output {_str(node.output[0])!r})"


def _dims(value_info) -> list:
    """Dimensions of a graph value: ints where static, None where symbolic or unknown."""
    t = value_info.type.tensor_type
    if not t.HasField("shape"):
        return []
    return [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]


class _Importer:
    """One pass over the live nodes in graph order; `problems` collects everything unsupported."""

    def __init__(self, model, path: Path, task: str):
        import onnx
        from onnx import numpy_helper
        self.onnx, self.to_array, self.path, self.task = onnx, numpy_helper.to_array, path, task
        graph = model.graph
        if len(graph.output) != 1:
            raise OnnxImportError(f"{path}: the graph has {len(graph.output)} outputs "
                                  f"({', '.join(o.name for o in graph.output)}); mcusim takes exactly one")
        self.output = graph.output[0].name
        declared = graph.output[0].type.tensor_type.elem_type
        if declared not in (0, onnx.TensorProto.FLOAT):
            raise OnnxImportError(f"{path}: the output {self.output!r} has type {self._type_name(declared)}; "
                                  f"mcusim imports float32 models only")
        self.nodes = self._live(graph.node)
        self.consts = {t.name: t for t in graph.initializer}
        for node in self.nodes:
            if node.op_type == "Constant":
                self.consts[node.output[0]] = node
        self.consumers: dict[str, list] = {}
        for node in self.nodes:
            for slot, t in enumerate(node.input):
                self.consumers.setdefault(t, []).append((node, slot))
        inputs = [i for i in graph.input if i.name not in self.consts]
        self.declared = {i.name: i for i in inputs if self._only_param(i.name)}   # weights without values
        data = [i for i in inputs if i.name not in self.declared]
        if len(data) != 1:
            raise OnnxImportError(f"{path}: the graph has {len(data)} data inputs "
                                  f"({', '.join(i.name for i in data) or 'none'}); mcusim takes exactly one")
        self.input = data[0].name
        self.inference_error = ""
        self.shapes = self._infer(model, data[0])
        self.input_shape = self.shapes[self.input]
        self.layers: list[dict] = []
        self.weights: dict[str, np.ndarray] = {}
        self.unvalued: list[str] = []          # layers whose weights the model declares without values
        self.owner = {self.input: "input"}     # tensor -> the layer whose output it is
        self.used = {"input"}
        self.skip: set[int] = set()            # nodes already folded into a layer (MatMul's bias Add)
        self.problems: list[str] = []
        for node in self.nodes:
            if id(node) in self.skip or node.op_type == "Constant":
                continue
            handler = getattr(self, f"_op_{node.op_type}", None) if node.domain in ("", "ai.onnx") else None
            extra = [o for o in node.output[1:] if o in self.consumers or o == self.output]
            try:
                if handler is None:
                    raise _NodeProblem("")
                if extra:
                    self._bad(node, f"its extra output {extra[0]!r} is used (mcusim layers have one output)")
                handler(node, self._attrs(node))
            except _NodeProblem as exc:
                self.problems.append(f"{_label(node)}: {exc}" if str(exc) else _label(node))
                self.owner.update((o, "?") for o in node.output)     # judge the nodes after it on their own
        if self.problems:
            note = f" Besides, {self.inference_error}." if self.inference_error else ""
            raise OnnxImportError(f"{path}: mcusim cannot import {len(self.problems)} "
                                  f"node{'s' if len(self.problems) > 1 else ''}: {'; '.join(self.problems)}. "
                                  f"mcusim supports {SUPPORTED}.{note}")
        if self.inference_error:
            raise OnnxImportError(f"{path}: {self.inference_error}")
        self._check_output()
        if self.weights and self.unvalued:
            raise OnnxImportError(f"{path}: the model holds weights for some layers but not for "
                                  f"{', '.join(self.unvalued)}; export it with all its parameters or with none "
                                  f"(then mcusim initialises them)")

    # --- the graph -----------------------------------------------------------------------------------

    def _live(self, nodes) -> list:
        """The nodes the output depends on, in graph order (dead branches are not imported)."""
        needed, live = {self.output}, []
        for node in reversed(nodes):
            if needed.intersection(node.output):
                live.append(node)
                needed.update(t for t in node.input if t)
        return live[::-1]

    def _only_param(self, tensor: str) -> bool:
        """A graph input read only as a weight or bias: the model was exported without its values."""
        uses = self.consumers.get(tensor, [])
        return bool(uses) and all(slot in PARAM_SLOTS.get(node.op_type, ()) or self._bias_add(node, slot)
                                  for node, slot in uses)

    def _bias_add(self, node, slot: int) -> bool:
        """Whether input `slot` of `node` is the bias of an Add that follows a MatMul."""
        if node.op_type != "Add" or len(node.input) != 2:
            return False
        other = node.input[1 - slot]
        return any(other in n.output for n in self.nodes if n.op_type == "MatMul")

    def _infer(self, model, data_input) -> dict[str, tuple[int, ...]]:
        """Static shapes of every tensor with the batch dimension of the data input pinned to 1."""
        onnx = self.onnx
        dims = _dims(data_input)
        if data_input.type.tensor_type.elem_type != onnx.TensorProto.FLOAT:
            raise OnnxImportError(f"{self.path}: the input {data_input.name!r} has type "
                                  f"{self._type_name(data_input.type.tensor_type.elem_type)}; mcusim imports "
                                  f"float32 models only")
        if len(dims) not in (2, 4) or any(d is None or d < 1 for d in dims[1:]):
            shown = ["?" if d is None else d for d in dims]
            raise OnnxImportError(f"{self.path}: the input {data_input.name!r} has shape {shown}; mcusim needs a "
                                  f"fixed [N, C, H, W] or [N, features] shape (only the batch N may be symbolic)")
        pinned = onnx.ModelProto()
        pinned.CopyFrom(model)
        del pinned.graph.value_info[:]
        for value in pinned.graph.input:
            if value.name == data_input.name:
                value.type.tensor_type.shape.dim[0].Clear()
                value.type.tensor_type.shape.dim[0].dim_value = 1
        for value in pinned.graph.output:
            if value.type.tensor_type.HasField("shape") and value.type.tensor_type.shape.dim:
                value.type.tensor_type.shape.dim[0].Clear()
                value.type.tensor_type.shape.dim[0].dim_value = 1
        failures = (onnx.shape_inference.InferenceError, onnx.checker.ValidationError, ValueError)
        try:
            inferred = onnx.shape_inference.infer_shapes(pinned, check_type=True, strict_mode=True)
        except failures as exc:
            # reported after the unsupported nodes, which are often the cause and always worth knowing
            self.inference_error = ("ONNX shape inference fails with the batch set to 1: "
                                    + " ".join(str(exc).split()))
            try:
                inferred = onnx.shape_inference.infer_shapes(pinned)
            except failures:
                raise OnnxImportError(f"{self.path}: {self.inference_error}") from None
        g = inferred.graph
        self.types = {v.name: v.type.tensor_type.elem_type for v in [*g.input, *g.value_info, *g.output]}
        return {v.name: tuple(_dims(v)) for v in [*g.input, *g.value_info, *g.output]
                if v.type.tensor_type.HasField("shape") and None not in _dims(v)}

    def _type_name(self, elem_type: int) -> str:
        names = self.onnx.TensorProto.DataType
        return names.Name(elem_type) if elem_type in names.values() else f"number {elem_type}"

    def _check_output(self) -> None:
        out_type = self.types.get(self.output, 0)
        if out_type != self.onnx.TensorProto.FLOAT:
            raise OnnxImportError(f"{self.path}: the output {self.output!r} has type {self._type_name(out_type)}; "
                                  f"mcusim imports float32 models only")
        if not self.layers or self.owner.get(self.output) != self.layers[-1]["name"]:
            raise OnnxImportError(f"{self.path}: the output {self.output!r} is not computed by any layer; "
                                  f"mcusim needs at least one layer between input and output")
        out = self.shapes.get(self.output)
        if self.task == "autoencode" and out != self.input_shape:
            raise OnnxImportError(f"{self.path}: an autoencoder's output must have the input's shape "
                                  f"{list(self.input_shape[1:])}, but the output {self.output!r} has shape "
                                  f"{list(out[1:]) if out else 'unknown'} (shapes of one sample)")

    # --- helpers for the node handlers ---------------------------------------------------------------

    def _attrs(self, node) -> dict:
        values = {a.name: self.onnx.helper.get_attribute_value(a) for a in node.attribute}
        return {k: v.decode() if isinstance(v, bytes) else v for k, v in values.items()}

    @staticmethod
    def _bad(node, text: str):
        raise _NodeProblem(text)

    @staticmethod
    def _attr_problem(attrs: dict, key: str, supported: str) -> str:
        return f"attribute {key} = {attrs.get(key)!r} ({supported})"

    def _param(self, node, slot: int) -> tuple:
        """(shape, float32 values) of a weight or bias input: (None, None) if the input is absent,
        (shape, None) if the model declares it as a graph input without values."""
        if slot >= len(node.input) or not node.input[slot]:
            return None, None
        t = node.input[slot]
        if t in self.declared:
            shape = tuple(_dims(self.declared[t]))
            if None in shape or not shape:
                self._bad(node, f"the parameter input {t!r} has no fixed shape")
            return shape, None
        if t not in self.consts:
            self._bad(node, f"input {t!r} is computed at run time; mcusim needs a constant weight or bias there")
        value = self._const(t)
        if value.dtype.kind != "f":
            self._bad(node, f"weight {t!r} has type {value.dtype}; mcusim imports float weights only")
        return value.shape, value.astype(np.float32)

    def _const(self, tensor: str) -> np.ndarray:
        c = self.consts[tensor]
        if isinstance(c, self.onnx.TensorProto):
            return self._array(c)
        (key, value), = self._attrs(c).items()
        if key == "value":
            return self._array(value)
        if key not in ("value_float", "value_floats", "value_int", "value_ints"):
            self._bad(c, f"a Constant with {key} cannot be a weight, bias, bound or shape")
        return np.array(value, dtype=np.float32 if "float" in key else np.int64)

    def _array(self, tensor) -> np.ndarray:
        try:
            return self.to_array(tensor)
        except (ValueError, TypeError, KeyError) as exc:
            raise _NodeProblem(f"the constant {_str(tensor.name)!r} is damaged ({exc})") from None

    def _emit(self, node, op: str, inputs: list[str], output: str, **keys) -> str:
        """Append a layer reading `inputs`, owning `output`; returns its name."""
        base = _layer_name(node.name) or f"{op}{len(self.layers)}"
        name, n = base, 2
        while name in self.used:
            name = f"{base[:60]}_{n}"
            n += 1
        self.used.add(name)
        layer = {"name": name, "op": op}
        sources = [self.owner[t] for t in inputs]
        previous = self.layers[-1]["name"] if self.layers else "input"
        if op == "add" or sources != [previous]:
            layer["inputs"] = sources
        layer.update(keys)
        self.layers.append(layer)
        self.owner[output] = name
        return name

    def _weighted(self, node, op: str, output: str, weight, bias: tuple, n_out: int, **keys) -> None:
        """A layer with weights; their initial values are kept when the model has them (a missing bias
        input means zeros)."""
        try:
            fits = bias[0] is None or np.broadcast_shapes(bias[0], (1, n_out)) == (1, n_out)
        except ValueError:
            fits = False
        if not fits:
            self._bad(node, f"bias shape {list(bias[0])} does not fit its {n_out} outputs")
        name = self._emit(node, op, [node.input[0]], output, **keys)
        if weight is None:
            self.unvalued.append(name)
        else:
            b = np.zeros(n_out, np.float32) if bias[1] is None else np.broadcast_to(bias[1], (1, n_out))
            self.weights[f"{name}.weight"] = np.ascontiguousarray(weight)
            self.weights[f"{name}.bias"] = np.ascontiguousarray(b.reshape(n_out))

    def _data(self, node, rank: int | None = None) -> tuple[int, ...]:
        """Shape of a node's data input (input 0), checked to come from a layer and to have `rank`."""
        t = node.input[0]
        shape = self.shapes.get(t)
        if t not in self.owner:
            self._bad(node, f"input {t!r} is not a layer output or the model input")
        if shape is None:
            self._bad(node, f"the shape of input {t!r} is unknown after shape inference")
        if rank is not None and len(shape) != rank:
            self._bad(node, f"input {t!r} has shape {list(shape)}; mcusim needs "
                            f"{'[1, C, H, W]' if rank == 4 else '[1, N]'} here")
        return shape

    def _window(self, node, attrs: dict, in_hw, kernel) -> tuple[int, int]:
        """(stride, padding) of a Conv/pool window if mcusim can express it: equal strides, the same
        padding on all four sides, no dilation."""
        problems = []
        strides = list(attrs.get("strides") or [1, 1])
        if len(set(strides)) != 1 or strides[0] < 1:
            problems.append(self._attr_problem(attrs, "strides", "mcusim supports the same positive stride in "
                                                                 "both directions"))
            strides = [1]
        if any(d != 1 for d in attrs.get("dilations", [1, 1])):
            problems.append(self._attr_problem(attrs, "dilations", "mcusim supports dilations 1 only"))
        auto_pad = attrs.get("auto_pad", "NOTSET")
        pads = list(attrs.get("pads") or [0]) if auto_pad == "NOTSET" else [0]
        if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            s = strides[0]
            total = sorted({max((-(-n // s) - 1) * s + k - n, 0) for n, k in zip(in_hw, kernel)})
            if len(total) != 1 or total[0] % 2:
                problems.append(f"attribute auto_pad = {auto_pad!r} pads {total} in total, which mcusim cannot "
                                f"split evenly (it supports the same padding on all four sides)")
            pads = [total[0] // 2]
        elif auto_pad not in ("NOTSET", "VALID"):
            problems.append(self._attr_problem(attrs, "auto_pad", "mcusim supports NOTSET, VALID, SAME_UPPER "
                                                                  "and SAME_LOWER"))
        if len(set(pads)) != 1:
            problems.append(self._attr_problem(attrs, "pads", "mcusim supports the same padding on all four "
                                                              "sides"))
        if problems:
            self._bad(node, "; ".join(problems))
        return int(strides[0]), int(pads[0])

    @staticmethod
    def _kernel(kernel) -> int | list[int]:
        kh, kw = (int(k) for k in kernel)
        return kh if kh == kw else [kh, kw]

    # --- node handlers (one per supported ONNX op) ---------------------------------------------------

    def _conv(self, node, attrs, op: str) -> None:
        """Conv and ConvTranspose: weights [out_c][in_c/groups][kh][kw] or [in_c][out_c][kh][kw]."""
        shape = self._data(node, 4)
        (w_shape, weight), bias = self._param(node, 1), self._param(node, 2)
        if len(w_shape) != 4:
            self._bad(node, f"weight shape {list(w_shape)}; mcusim supports 2-D convolutions only")
        group = attrs.get("group", 1)
        out_c = w_shape[0] if op == "conv2d" else w_shape[1] * group
        stride, pad = self._window(node, attrs, shape[2:], w_shape[2:])
        keys = dict(out_channels=int(out_c), kernel=self._kernel(w_shape[2:]), stride=stride, padding=pad)
        if op == "conv2d" and group != 1:
            keys["groups"] = int(group)
        if op == "convtranspose2d":
            keys.update(self._transposed(node, attrs))
        self._weighted(node, op, node.output[0], weight, bias, int(out_c), **keys)

    def _transposed(self, node, attrs) -> dict:
        """The ConvTranspose-only attributes as spec keys."""
        problems = []
        if attrs.get("group", 1) != 1:
            problems.append(self._attr_problem(attrs, "group", "mcusim supports group 1 for ConvTranspose"))
        if "output_shape" in attrs:
            problems.append(self._attr_problem(attrs, "output_shape", "give pads and output_padding instead"))
        if attrs.get("auto_pad", "NOTSET") not in ("NOTSET", "VALID"):
            problems.append(self._attr_problem(attrs, "auto_pad", "mcusim supports NOTSET and VALID for "
                                                                  "ConvTranspose"))
        out_pad = list(attrs.get("output_padding", [0, 0]))
        if len(set(out_pad)) != 1:
            problems.append(self._attr_problem(attrs, "output_padding", "mcusim supports the same output_padding "
                                                                        "in both directions"))
        if problems:
            self._bad(node, "; ".join(problems))
        return {"output_padding": int(out_pad[0])} if out_pad[0] else {}

    _op_Conv = partialmethod(_conv, op="conv2d")
    _op_ConvTranspose = partialmethod(_conv, op="convtranspose2d")

    def _op_Gemm(self, node, attrs):
        self._data(node, 2)
        (w_shape, weight), bias = self._param(node, 1), self._param(node, 2)
        problems = [self._attr_problem(attrs, key, f"mcusim supports {key} = {want:g} only")
                    for key, want in (("alpha", 1.0), ("beta", 1.0), ("transA", 0)) if attrs.get(key, want) != want]
        if problems:
            self._bad(node, "; ".join(problems))
        trans_b = attrs.get("transB", 0)               # PyTorch's Linear: transB = 1, B is [out][in] already
        out = int(w_shape[0] if trans_b else w_shape[1])
        if weight is not None and not trans_b:
            weight = weight.T
        self._weighted(node, "gemm", node.output[0], weight, bias, out, out=out)

    def _op_MatMul(self, node, attrs):
        """x @ W with a constant W [in, out]; a following Add of a constant [out] is its bias."""
        self._data(node, 2)
        w_shape, weight = self._param(node, 1)
        if w_shape is None or len(w_shape) != 2:
            self._bad(node, f"weight shape {list(w_shape or [])}; mcusim supports a 2-D constant weight [in, out]")
        out, output, bias = int(w_shape[1]), node.output[0], (None, None)
        uses = self.consumers.get(output, [])
        if len(uses) == 1 and output != self.output and uses[0][0].op_type == "Add":
            add, slot = uses[0]
            other = add.input[1 - slot]
            if other in self.consts or other in self.declared:
                bias = self._param(add, 1 - slot)
                self.skip.add(id(add))
                output = add.output[0]
        self._weighted(node, "gemm", output, None if weight is None else weight.T, bias, out, out=out)

    def _op_Add(self, node, attrs):
        a, b = node.input
        if any(t in self.consts or t in self.declared for t in (a, b)):
            self._bad(node, "adds a constant; mcusim supports Add of two layer outputs of the same shape, or a "
                            "constant bias right after a MatMul")
        if any(t not in self.owner for t in (a, b)):
            self._bad(node, "an input is not a layer output or the model input")
        if self.shapes.get(a) is None or self.shapes.get(a) != self.shapes.get(b):
            self._bad(node, f"adds shapes {list(self.shapes.get(a, []))} and {list(self.shapes.get(b, []))}; "
                            f"mcusim supports Add of two tensors of the same shape (no broadcasting)")
        self._emit(node, "add", [a, b], node.output[0])

    def _op_Clip(self, node, attrs):
        """Clip(0, 6) is relu6 and Clip(0) is relu; bounds are attributes before opset 11, inputs since."""
        bounds = [float(attrs.get("min", -math.inf)), float(attrs.get("max", math.inf))]
        for i, t in enumerate(node.input[1:3]):
            if t and t not in self.consts:
                self._bad(node, f"{('min', 'max')[i]} {t!r} is computed at run time; mcusim needs a constant")
            if t:
                bounds[i] = float(self._const(t).reshape(-1)[0])
        lo, hi = bounds
        if lo != 0 or hi not in (6, math.inf) and hi < np.finfo(np.float32).max:
            self._bad(node, f"min = {lo:g}, max = {hi:g} (mcusim supports Clip(0, 6) as relu6 and Clip(0) as relu)")
        self._activation(node, attrs, "relu6" if hi == 6 else "relu")

    def _activation(self, node, attrs, kind: str) -> None:
        """Fused into the producing layer when nothing else reads that layer's output, else standalone."""
        t = node.input[0]
        self._data(node)
        layer = next((l for l in self.layers if l["name"] == self.owner[t]), None)
        if (layer is not None and layer["op"] in FUSABLE and "activation" not in layer and t != self.output
                and len(self.consumers.get(t, [])) == 1):
            layer["activation"] = kind
            self.owner[node.output[0]] = layer["name"]
        else:
            self._emit(node, kind, [t], node.output[0])

    _op_Relu = partialmethod(_activation, kind="relu")

    def _op_Sigmoid(self, node, attrs):
        """The last node of an autoencoder: dropped, its input is the logits the loss expects."""
        if self.task != "autoencode" or node.output[0] != self.output:
            self._bad(node, "mcusim supports Sigmoid only as the last node of an autoencoder (--task autoencode), "
                            "where the loss applies it")
        self._data(node)
        self.owner[node.output[0]] = self.owner[node.input[0]]

    def _pool(self, node, attrs, op: str) -> None:
        shape = self._data(node, 4)
        kernel = list(attrs.get("kernel_shape", []))
        problems = [] if len(kernel) == 2 else [self._attr_problem(attrs, "kernel_shape", "mcusim pools in 2-D")]
        if attrs.get("storage_order", 0) != 0:
            problems.append(self._attr_problem(attrs, "storage_order", "mcusim supports 0 only"))
        try:
            stride, pad = self._window(node, attrs, shape[2:], kernel) if not problems else (1, 0)
        except _NodeProblem as exc:
            problems.append(str(exc))
            stride, pad = 1, 0
        if attrs.get("ceil_mode", 0) and any((n + 2 * pad - k) % stride for n, k in zip(shape[2:], kernel)):
            problems.append(self._attr_problem(attrs, "ceil_mode", "mcusim rounds the output size down; "
                                                                   "ceil_mode = 1 only where it makes no difference"))
        if op == "avgpool2d" and attrs.get("count_include_pad", 0) and pad:
            problems.append(self._attr_problem(attrs, "count_include_pad", "mcusim does not count padded taps: "
                                                                           "count_include_pad = 0, or no padding"))
        if problems:
            self._bad(node, "; ".join(problems))
        self._emit(node, op, [node.input[0]], node.output[0], kernel=self._kernel(kernel), stride=stride,
                   padding=pad)

    _op_MaxPool = partialmethod(_pool, op="maxpool2d")
    _op_AveragePool = partialmethod(_pool, op="avgpool2d")

    def _op_GlobalAveragePool(self, node, attrs):
        self._data(node, 4)
        self._emit(node, "globalavgpool", [node.input[0]], node.output[0])

    def _op_Flatten(self, node, attrs):
        shape = self._data(node)
        if attrs.get("axis", 1) not in (1, 1 - len(shape)):
            self._bad(node, self._attr_problem(attrs, "axis", "mcusim supports Flatten with axis 1 only"))
        self._emit(node, "flatten", [node.input[0]], node.output[0])

    def _op_Reshape(self, node, attrs):
        self._data(node)
        if node.input[1] not in self.consts:
            self._bad(node, f"the target shape {node.input[1]!r} is computed at run time; mcusim supports a "
                            f"constant shape only")
        out = self.shapes.get(node.output[0])
        if out is None or len(out) not in (2, 4) or out[0] != 1:
            self._bad(node, f"reshapes to {list(out) if out else 'an unknown shape'}; mcusim supports [1, N] and "
                            f"[1, C, H, W]")
        self._emit(node, "reshape", [node.input[0]], node.output[0], shape=[int(d) for d in out[1:]])


# --- the command line ------------------------------------------------------------------------------------

def add_parser(subparsers) -> None:
    sp = subparsers.add_parser("import", help="convert an ONNX model into an mcusim model TOML (+ initial weights)")
    sp.add_argument("model", metavar="MODEL.onnx")
    sp.add_argument("-o", dest="output", default=None, metavar="MODEL.toml",
                    help="the model description to write (default: MODEL.toml beside MODEL.onnx); the "
                         "initial weights go to MODEL.weights.npz beside it")
    sp.add_argument("--task", choices=TASKS, default="classify",
                    help="classify (default: the output is the class logits) or autoencode (the output "
                         "reconstructs the input)")
    sp.add_argument("--name", default=None, help="model name (default: the ONNX graph name or the file stem)")
    sp.add_argument("--force", action="store_true", help="overwrite existing output files")
    sp.set_defaults(func=cmd_import)


def cmd_import(args) -> int:
    import tomli_w
    source = Path(args.model)
    toml_path = Path(args.output) if args.output else source.with_suffix(".toml")
    if toml_path.suffix != ".toml":
        raise OnnxImportError(f"-o {toml_path}: the model description must be a .toml file")
    from .graph import graph_from_spec
    spec, weights = import_onnx(source, task=args.task, name=args.name)
    graph_from_spec(spec, source, weights or None)          # what mcusim cannot train fails now, not later
    npz_path = toml_path.with_name(toml_path.stem + ".weights.npz")
    targets = [toml_path] + ([npz_path] if weights else [])
    for target in targets:
        check_target(target, overwrite=args.force)
    if weights:
        spec = {**{k: v for k, v in spec.items() if k != "layers"}, "weights": npz_path.name,
                "layers": spec["layers"]}
        buf = io.BytesIO()
        np.savez(buf, **weights)
        write_atomic(npz_path, buf.getvalue())
    header = "# Imported from ONNX by `mcusim import`: the model description of README, \"Model files\".\n"
    write_atomic(toml_path, (header + tomli_w.dumps(spec)).encode())
    n_params = sum(w.size for w in weights.values())
    print(f"wrote {toml_path} ({len(spec['layers'])} layers, task {spec['task']})"
          + (f" and {npz_path} ({n_params} initial weights)" if weights else " (no initial weights in the model)"))
    return 0
