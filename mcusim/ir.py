"""The training step as data: a `Program` of kernel calls over named tensors.

A program lists every buffer the step needs (dtype, size, memory group, how it starts) and, per phase,
the kernel calls in order. It says nothing about C or Numba: `render_c` and `render_numba` turn the
same program into firmware and into a host function, so both compute the same arithmetic over the
same memory plan (the program's tensor list).
"""
from __future__ import annotations

from dataclasses import dataclass, field

NBYTES = {"f32": 4, "u8": 1, "i16": 2, "i32": 4, "u32": 4, "qp": 16}
# sample: forward + backward of one training sample (gradients accumulate); update: the optimiser step
# of a batch; evaluate: forward + loss; encode: forward to the features; decode: generate (vae only).
PHASES = ("sample", "update", "evaluate", "encode", "decode")
GROUPS = ("io", "activations", "weights", "decode")
KINDS = ("activations", "errors", "weights", "gradients", "optimiser", "qparams", "sparse", "scratch", "task")


@dataclass(frozen=True)
class Tensor:
    name: str
    dtype: str
    count: int
    group: str                  # one of GROUPS: what the memory plan counts it as
    init: str = "zeros"         # "zeros", "weight", "bias", "qp" (range [-1, 1]), "qp_fixed", "qp_pixels", "grad_scale", "seed"
    kind: str = "task"          # one of KINDS: what it holds, for per-layer memory tables
    layer: str | None = None    # the layer it belongs to (None: the task's input, loss, latent, shared scratch)

    @property
    def nbytes(self) -> int:
        return NBYTES[self.dtype] * self.count

    @property
    def c_name(self) -> str:
        return "t_" + self.name.replace(".", "_")


@dataclass(frozen=True)
class View:
    """`count` elements of a tensor starting `offset` elements in (e.g. mu and log-sigma, the two halves
    of the head's output). count None: to the end of the tensor."""
    tensor: Tensor
    offset: int
    count: int | None = None


@dataclass(frozen=True)
class Element:
    """One element of a tensor passed by value (e.g. the sample's label)."""
    tensor: Tensor
    index: int = 0


@dataclass(frozen=True)
class Cast:
    """A tensor passed as another C pointer type: the kernels' shared scratch, which only the C takes
    (the twins allocate their own)."""
    tensor: Tensor
    ctype: str


@dataclass(frozen=True)
class Scalar:
    """A named run-time scalar argument of a phase function (e.g. the update's learning rate)."""
    name: str
    ctype: str = "float"


@dataclass(frozen=True)
class Struct:
    """A constant parameter struct of integers (e.g. a convolution's nn_conv_dims): a static const in C,
    an int32 array for the twins."""
    name: str
    ctype: str
    values: tuple[int, ...]

    @property
    def c_name(self) -> str:
        return "dims_" + self.name.replace(".", "_")


@dataclass(frozen=True)
class Call:
    kernel: str                          # the C function; the twin has the same name (less a "nn_" prefix)
    args: tuple                          # Tensor | View | Element | Cast | Scalar | Struct | int | float | None
    returns: str | None = None           # name of a float the phase returns (e.g. "loss")
    layer: str | None = None             # the layer it belongs to (None: the task's input, loss, latent)
    direction: str | None = None         # forward, backward_input, backward_weight, update


@dataclass
class Program:
    name: str                            # the model's name (file names of generated code)
    precision: str
    tensors: dict[str, Tensor] = field(default_factory=dict)
    phases: dict[str, list[Call]] = field(default_factory=lambda: {p: [] for p in PHASES})
    features: View | None = None         # what "encode" leaves behind for the host (vae: mu; else the output)
    sparse: bool = False
    fan_in: dict[str, int] = field(default_factory=dict)    # weight/bias tensor -> fan-in of its layer

    def tensor(self, name: str, dtype: str, count: int, group: str, init: str = "zeros", kind: str = "task",
               layer: str | None = None) -> Tensor:
        if name in self.tensors:
            raise ValueError(f"tensor {name} defined twice")
        if group not in GROUPS or kind not in KINDS:
            raise ValueError(f"tensor {name}: unknown memory group {group!r} or kind {kind!r}")
        t = Tensor(name, dtype, int(count), group, init, kind, layer)
        self.tensors[name] = t
        return t

    def call(self, phase: str, kernel: str, *args, returns: str | None = None, layer: str | None = None,
             direction: str | None = None) -> None:
        self.phases[phase].append(Call(kernel, args, returns, layer, direction))

    def total(self, group: str) -> int:
        return sum(t.nbytes for t in self.tensors.values() if t.group == group)

    def scalars(self, phase: str) -> list[Scalar]:
        seen: dict[str, Scalar] = {}
        for c in self.phases[phase]:
            for a in c.args:
                if isinstance(a, Scalar):
                    seen.setdefault(a.name, a)
        return list(seen.values())

    def structs(self) -> dict[str, Struct]:
        return {a.c_name: a for calls in self.phases.values() for c in calls for a in c.args
                if isinstance(a, Struct)}

    def kernels(self) -> set[str]:
        return {c.kernel for calls in self.phases.values() for c in calls}

    def layout(self) -> dict[str, tuple[str, int]]:
        """tensor name -> (dtype, element offset in that dtype's arena), the host's memory layout."""
        offsets: dict[str, int] = {}
        layout = {}
        for t in self.tensors.values():
            layout[t.name] = (t.dtype, offsets.get(t.dtype, 0))
            offsets[t.dtype] = offsets.get(t.dtype, 0) + t.count
        return layout

    def arena_sizes(self) -> dict[str, int]:
        sizes: dict[str, int] = {}
        for t in self.tensors.values():
            sizes[t.dtype] = sizes.get(t.dtype, 0) + t.count
        return sizes


def twin_name(kernel: str) -> str:
    return kernel.removeprefix("nn_")


def phase_symbol(phase: str) -> str:
    """The C function (and Numba function) of a phase."""
    return f"step_{phase}"


def call_symbol(phase: str, index: int) -> str:
    """The C function that makes only the index-th call of a phase (to measure calls one by one)."""
    return f"step_{phase}_call{index}"
