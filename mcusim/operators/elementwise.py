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
        self.activate(ctx, y, node.n_out, x=xs[0])

    def backward_input(self, ctx, node, xs, y, e, dxs, params, mask, active):
        (dx,) = dxs
        if dx is None:
            return
        if ctx.precision == "u8":             # the masked error keeps e's qparams: copy, then mask in place
            ctx.call("copy_u8", *e.args, *dx.args, node.n_out)
            e = dx
        self.deactivate(ctx, y, e, node.n_out, dx=dx)

    def activate(self, ctx, y, n: int, x=None) -> None:
        """y = act(x); without x in place on y (the activation fused into a layer)."""
        x = y if x is None else x
        if ctx.precision == "fp32":
            ctx.call(self._f32("forward"), x.data, y.data, n)
        else:
            ctx.call("relu_u8_forward", *x.args, *y.args, n, int(self.six))

    def deactivate(self, ctx, y, e, n: int, dx=None) -> None:
        """dx = e masked by the activation's output y; without dx in place on e (the fused activation)."""
        dx = e if dx is None else dx
        if ctx.precision == "fp32":
            ctx.call(self._f32("backward"), y.data, e.data, dx.data, n)
        else:
            ctx.call("relu_u8_backward", *y.args, *e.args, dx.data, n, int(self.six))


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
