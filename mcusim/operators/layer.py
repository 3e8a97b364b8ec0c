"""The calls of the trainable layers (gemm, conv2d, convtranspose2d): one pattern, kernels named
`<kernel>_<dtype>_<direction>`, differing only in their shape arguments and scratch (nn.h)."""
from __future__ import annotations

from .base import Operator


class TrainableLayer(Operator):
    trainable = True
    fuses_relu = True
    masks_input = True
    forward_takes_scratch = True          # the u8 forward asks for int32 scratch

    def kernel(self, node) -> str:
        return self.name

    def shape_args(self, node) -> tuple:
        """The geometry arguments after the tensors (sizes, or a dims struct)."""
        raise NotImplementedError

    def forward(self, ctx, node, xs, y, params):
        (x,), shape = xs, self.shape_args(node)
        if ctx.precision == "fp32":
            ctx.call(f"{self.kernel(node)}_f32_forward", x.data, params["w"], params["b"], y.data, *shape)
            return
        scratch = (ctx.scratch("int32_t"),) if self.forward_takes_scratch else ()
        ctx.call(f"{self.kernel(node)}_u8_forward", *x.args, params["w"], params["qw"], params["b"], params["qb"],
                 *y.args, *shape, int(node.activation != "none"), ctx.alpha_a, *scratch)

    def backward_weight(self, ctx, node, xs, e, params, active):
        (x,), shape = xs, self.shape_args(node)
        if ctx.precision == "fp32":
            ctx.call(f"{self.kernel(node)}_f32_backward_weight", x.data, e.data, params["gw"], params["gb"],
                     *shape, active)
            return
        ctx.call(f"{self.kernel(node)}_u8_backward_weight", *x.args, *e.args, params["gw"], params["sgw"],
                 params["gb"], params["sgb"], *shape, active, ctx.scratch("int32_t"))

    def backward_input(self, ctx, node, xs, y, e, dxs, params, mask, active):
        (dx,), shape = dxs, self.shape_args(node)
        if dx is None:
            return
        if ctx.precision == "fp32":
            ctx.call(f"{self.kernel(node)}_f32_backward_input", params["w"], e.data, dx.data, *shape, active)
            return
        mask_args = mask.args if mask is not None else (None, None)
        ctx.call(f"{self.kernel(node)}_u8_backward_input", params["w"], params["qw"], *e.args, *dx.args, *mask_args,
                 *shape, active, ctx.alpha_e, ctx.scratch("int32_t"))
