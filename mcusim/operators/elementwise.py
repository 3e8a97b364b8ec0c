"""Elementwise operators: the activations (standalone layers, and the fused `activation` of any layer)
and the residual add, whose error passes unchanged to both inputs."""
from __future__ import annotations

from ..errors import ModelError
from .base import Operator


class Activation(Operator):
    """y = relu(x) or relu6(x). u8: the output keeps the input's qparams (a clamp of the codes)."""
    six = False

    def check_ops(self, dtype):
        return (self.name,) if dtype == "fp32" else ("relu",)      # u8: one clamp kernel for both

    def infer(self, attrs, in_shapes, where):
        return in_shapes[0]

    def _f32(self, direction: str) -> str:
        return f"{self.name}_f32_{direction}"

    def forward(self, ctx, node, xs, y, params):
        (x,) = xs
        if ctx.precision == "fp32":
            ctx.call(self._f32("forward"), x.data, y.data, node.n_out)
        else:
            ctx.call("relu_u8_forward", *x.args, *y.args, node.n_out, int(self.six))

    def backward_input(self, ctx, node, xs, y, e, dxs, params, mask, active):
        (dx,) = dxs
        if dx is None:
            return
        if ctx.precision == "fp32":
            ctx.call(self._f32("backward"), y.data, e.data, dx.data, node.n_out)
        else:                             # the masked error keeps e's qparams: copy, then mask in place
            ctx.call("copy_u8", *e.args, *dx.args, node.n_out)
            ctx.call("relu_u8_backward", *y.args, *dx.args, dx.data, node.n_out, int(self.six))

    def activate(self, ctx, y, n: int) -> None:
        """The activation fused into a layer: in place on its output."""
        if ctx.precision == "fp32":
            ctx.call(self._f32("forward"), y.data, y.data, n)
        else:
            ctx.call("relu_u8_forward", *y.args, *y.args, n, int(self.six))

    def deactivate(self, ctx, y, e, n: int) -> None:
        """The fused activation's backward: masks the layer's output error in place."""
        if ctx.precision == "fp32":
            ctx.call(self._f32("backward"), y.data, e.data, e.data, n)
        else:
            ctx.call("relu_u8_backward", *y.args, *e.args, e.data, n, int(self.six))


class Relu(Activation):
    name = "relu"


class Relu6(Activation):
    name = "relu6"
    six = True


class Add(Operator):
    """y = a + b (residual connections)."""
    name = "add"
    n_inputs = 2
    fuses_relu = True

    def check_ops(self, dtype):
        return ("add", "copy")

    def infer(self, attrs, in_shapes, where):
        a, b = in_shapes
        if a != b:
            raise ModelError(f"{where}: add needs two inputs of the same shape, not {list(a)} and {list(b)}")
        return a

    def forward(self, ctx, node, xs, y, params):
        a, b = xs
        if ctx.precision == "fp32":
            ctx.call("add_f32_forward", a.data, b.data, y.data, node.n_out)
        else:
            ctx.call("add_u8_forward", *a.args, *b.args, *y.args, node.n_out, int(node.activation != "none"),
                     ctx.alpha_a)

    def backward_input(self, ctx, node, xs, y, e, dxs, params, mask, active):
        for dx in dxs:
            if dx is not None:
                ctx.call(f"copy_{'f32' if ctx.precision == 'fp32' else 'u8'}", *e.args, *dx.args, node.n_out)

    def accumulate(self, ctx, total, part, n: int) -> None:
        """total += part: the errors of a tensor that several layers read."""
        if ctx.precision == "fp32":
            ctx.call("add_f32_forward", total.data, part.data, total.data, n)
        else:
            ctx.call("add_u8_forward", *total.args, *part.args, *total.args, n, 0, ctx.alpha_e)
