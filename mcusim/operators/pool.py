"""Max and average pooling over [C][H][W] (padded taps skipped; an average counts only the taps inside
the input, ONNX's count_include_pad = 0), and global average pooling (a window over the whole map)."""
from __future__ import annotations

from ..errors import ModelError
from ..ir import Struct
from .base import REQUIRED, Operator, chw, pair, positive_int


class _Pool(Operator):
    keys = {"kernel": REQUIRED, "stride": None, "padding": 0}

    def check(self, key, value, where):
        if key == "kernel":
            return pair(value, key, where)
        return positive_int(value, key, where, minimum=0 if key == "padding" else 1)

    def window(self, node) -> tuple[int, int, int, int]:
        """(k_h, k_w, stride, pad)."""
        (kh, kw), s = node.attrs["kernel"], node.attrs["stride"]
        return kh, kw, s if s is not None else kh, node.attrs["padding"]

    def infer(self, attrs, in_shapes, where):
        c, h, w = chw(in_shapes[0], self.name, where)
        (kh, kw), p = attrs["kernel"], attrs["padding"]
        s = attrs["stride"] if attrs["stride"] is not None else kh
        if p >= min(kh, kw):
            raise ModelError(f"{where}: padding {p} must be smaller than the window {kh}x{kw}")
        ho, wo = (h + 2 * p - kh) // s + 1, (w + 2 * p - kw) // s + 1
        if h + 2 * p < kh or w + 2 * p < kw:
            raise ModelError(f"{where}: a {kh}x{kw} window does not fit a {h}x{w} input (padding {p})")
        return (c, ho, wo)

    def dims(self, node) -> Struct:
        (c, h, w), (_, ho, wo) = node.in_shapes[0], node.out_shape
        kh, kw, s, p = self.window(node)
        return Struct(node.name, "nn_conv_dims", (c, h, w, c, ho, wo, kh, kw, s, p))

    def forward(self, ctx, node, xs, y, params):
        (x,) = xs
        dtype = "f32" if ctx.precision == "fp32" else "u8"
        extra = (ctx.alpha_a,) if dtype == "u8" and self.requantizes else ()
        ctx.call(f"{self.kernel}_{dtype}_forward", *x.args, *y.args, self.dims(node), *extra)


class MaxPool2D(_Pool):
    """u8: the max of the codes keeps the input's qparams (quantization is monotone)."""
    name = kernel = "maxpool2d"
    requantizes = False

    def scratch_bytes(self, node, precision):
        if precision != "u8":
            return 0
        from ..ops import pool
        return pool.maxpool2d_u8_backward_buffer_size(self.dims(node).values)

    def backward_input(self, ctx, node, xs, y, e, dxs, params, mask, active):
        (x,), (dx,) = xs, dxs
        if dx is None:
            return
        if ctx.precision == "fp32":
            ctx.call("maxpool2d_f32_backward", x.data, e.data, dx.data, self.dims(node))
        else:
            ctx.call("maxpool2d_u8_backward", *x.args, *e.args, *dx.args, self.dims(node), ctx.alpha_e,
                     ctx.scratch("int32_t"))


class AvgPool2D(_Pool):
    name = kernel = "avgpool2d"
    requantizes = True

    def backward_input(self, ctx, node, xs, y, e, dxs, params, mask, active):
        (dx,) = dxs
        if dx is None:
            return
        if ctx.precision == "fp32":
            ctx.call("avgpool2d_f32_backward", e.data, dx.data, self.dims(node))
        else:
            ctx.call("avgpool2d_u8_backward", *e.args, *dx.args, self.dims(node), ctx.alpha_e)


class GlobalAvgPool(AvgPool2D):
    """[C, H, W] -> [C, 1, 1]: avgpool2d with the whole map as its window."""
    name = "globalavgpool"
    keys = {}

    def check_ops(self, dtype):
        return ("avgpool2d",)

    def window(self, node):
        _, h, w = node.in_shapes[0]
        return h, w, 1, 0

    def infer(self, attrs, in_shapes, where):
        c, _, _ = chw(in_shapes[0], self.name, where)
        return (c, 1, 1)
