"""What every operator of the registry provides, and the checked readers of layer attributes.

An operator owns, for the layers that use it: its attribute keys (checked when the model file is read),
shape inference, parameter shapes, fan-in, structures (what sparse updates select), the update's weight
layout, multiply-accumulate counts, kernel scratch, and the kernel calls of each direction for both
precisions. The step builder (mcusim/builder.py) only asks; it never branches on operator names.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import ModelError

if TYPE_CHECKING:
    from ..builder import Emitter, Value
    from ..graph import Node

REQUIRED = object()


def positive_int(value: Any, key: str, where: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ModelError(f"{where}: `{key}` must be an integer, not {value!r}")
    if not minimum <= value <= 1 << 20:
        raise ModelError(f"{where}: `{key}` = {value} is out of range (at least {minimum}, at most {1 << 20})")
    return value


def pair(value: Any, key: str, where: str, minimum: int = 1) -> tuple[int, int]:
    """An int or a [h, w] list of two ints."""
    if isinstance(value, list):
        if len(value) != 2:
            raise ModelError(f"{where}: `{key}` must be an integer or [height, width], not {value!r}")
        return positive_int(value[0], key, where, minimum), positive_int(value[1], key, where, minimum)
    v = positive_int(value, key, where, minimum)
    return v, v


def shape_list(value: Any, key: str, where: str) -> tuple[int, ...]:
    if not isinstance(value, list) or not 1 <= len(value) <= 3:
        raise ModelError(f"{where}: `{key}` must be a list of 1 to 3 positive integers, such as [16, 7, 7], "
                         f"not {value!r}")
    return tuple(positive_int(v, key, where) for v in value)


def chw(shape: tuple[int, ...], op: str, where: str) -> tuple[int, int, int]:
    if len(shape) != 3:
        raise ModelError(f"{where}: a {op} needs a [C, H, W] input, but its input has shape {list(shape)}; "
                         f"give the layer before it a shaped output (a gemm with out = [C, H, W], or a reshape)")
    return shape


@dataclass(frozen=True)
class Directions:
    """Multiply-accumulates of one training sample per direction."""
    forward: int
    backward_input: int
    backward_weight: int


class Operator:
    name: str = ""
    keys: dict[str, Any] = {}           # attribute -> default (REQUIRED: must be given)
    n_inputs: int = 1
    trainable: bool = False
    view: bool = False                  # the output is the input's buffer (flatten, reshape)
    fuses_relu: bool = False            # the u8 kernels apply a ReLU in their output stage
    masks_input: bool = False           # u8 backward_input takes the input as a ReLU mask

    def check_ops(self, dtype: str) -> tuple[str, ...]:
        """The `mcusim crosscheck` operators that cover this operator's kernels in `dtype`."""
        return () if self.view else (self.name,)

    # -- the model file ---------------------------------------------------------------------------
    def attributes(self, entry: dict, where: str) -> dict:
        """Checked attributes from a layer's table (the keys other than name/op/inputs/activation)."""
        attrs = {}
        for key, default in self.keys.items():
            if key in entry:
                attrs[key] = self.check(key, entry[key], where)
            elif default is REQUIRED:
                raise ModelError(f"{where}: a {self.name} layer needs `{key}`")
            else:
                attrs[key] = default
        return attrs

    def check(self, key: str, value: Any, where: str) -> Any:
        return positive_int(value, key, where)

    def infer(self, attrs: dict, in_shapes: list[tuple[int, ...]], where: str) -> tuple[int, ...]:
        raise NotImplementedError

    # -- parameters (trainable operators) ----------------------------------------------------------
    def weight_shape(self, node: Node) -> tuple[int, ...]:
        raise NotImplementedError

    def n_bias(self, node: Node) -> int:
        return self.structures(node)

    def structures(self, node: Node) -> int:
        """Rows of a Gemm or output channels of a convolution: what sparse updates select."""
        return node.out_shape[0]

    def fan_in(self, node: Node) -> int:
        return math.prod(self.weight_shape(node)) // self.weight_shape(node)[0]

    def update_layout(self, node: Node) -> tuple[int, int, int]:
        """(rows, cols, run) of the weights for the standardized update (nn.h, sgd_u8_update)."""
        rows = self.structures(node)
        cols = math.prod(self.weight_shape(node)) // rows
        return rows, cols, cols

    def macs(self, node: Node) -> Directions:
        return Directions(0, 0, 0)

    def scratch_bytes(self, node: Node, precision: str) -> int:
        """Bytes of scratch its kernels ask for (the C *_buffer_size functions, mirrored by the twins
        and checked against the C by `mcusim crosscheck`)."""
        return 0

    # -- kernel calls -------------------------------------------------------------------------------
    def forward(self, ctx: Emitter, node: Node, xs: list[Value], y: Value, params: dict) -> None:
        raise NotImplementedError

    def backward_weight(self, ctx: Emitter, node: Node, xs: list[Value], e: Value, params: dict,
                        active) -> None:
        """Accumulate the gradients of one sample (trainable operators)."""

    def backward_input(self, ctx: Emitter, node: Node, xs: list[Value], y: Value, e: Value,
                       dxs: list[Value | None], params: dict, mask: Value | None, active) -> None:
        """Write the error of each input that needs one (dxs[i] None: no error wanted)."""
        raise NotImplementedError
