"""Conv2D (with groups: grouped and depthwise) and ConvTranspose2D: zero padding, square stride, no
dilation; geometry passed to the kernels as an nn_conv_dims struct (nn.h)."""
from __future__ import annotations

import numpy as np

from ..errors import ModelError
from ..ir import Struct
from ..ops import conv_u8
from .base import REQUIRED, Directions, chw, pair, positive_int
from .layer import TrainableLayer

DIRECTIONS = ("forward", "backward_input", "backward_weight")


def _taps(n_src: int, n_dst: int, k: int, stride: int, pad: int) -> int:
    """(dst index, kernel tap) pairs along one axis whose src index dst*stride - pad + tap lies in [0, n_src):
    the taps that are not padding."""
    return sum(0 <= o * stride - pad + t < n_src for o in range(n_dst) for t in range(k))


class _Convolution(TrainableLayer):
    keys = {"out_channels": REQUIRED, "kernel": REQUIRED, "stride": 1, "padding": 0}
    transposed = False

    def check(self, key, value, where):
        if key == "kernel":
            return pair(value, key, where)
        return positive_int(value, key, where, minimum=0 if key in ("padding", "output_padding") else 1)

    def dims(self, node) -> tuple[int, ...]:
        """The 10 values of nn_conv_dims."""
        (ci, hi, wi), (co, ho, wo) = node.in_shapes[0], node.out_shape
        kh, kw = node.attrs["kernel"]
        return (ci, hi, wi, co, ho, wo, kh, kw, node.attrs["stride"], node.attrs["padding"])

    def shape_args(self, node):
        return (Struct(node.name, "nn_conv_dims", self.dims(node)),)

    def macs(self, node):
        """Multiply-accumulates without padding taps; a transposed convolution runs its taps from the input."""
        (c_in, h_in, w_in), (c_out, h_out, w_out) = node.in_shapes[0], node.out_shape
        (kh, kw), s, p = node.attrs["kernel"], node.attrs["stride"], node.attrs["padding"]
        (hs, ws), (hd, wd) = ((h_out, w_out), (h_in, w_in)) if self.transposed else ((h_in, w_in), (h_out, w_out))
        n = _taps(hs, hd, kh, s, p) * _taps(ws, wd, kw, s, p) * (c_in // node.attrs.get("groups", 1)) * c_out
        return Directions(n, n, n)

    def scratch_bytes(self, node, precision):
        if precision != "u8":
            return 0
        d = self.dims(node)
        return max(getattr(conv_u8, f"{self.name}_{direction}_buffer_size")(d) for direction in DIRECTIONS)


class Conv2D(_Convolution):
    name = "conv2d"
    keys = {**_Convolution.keys, "groups": 1}

    def infer(self, attrs, in_shapes, where):
        c, h, w = chw(in_shapes[0], self.name, where)
        (kh, kw), s, p, g = attrs["kernel"], attrs["stride"], attrs["padding"], attrs["groups"]
        if p >= max(kh, kw):
            raise ModelError(f"{where}: padding {p} must be smaller than the kernel {kh}x{kw}")
        if c % g or attrs["out_channels"] % g:
            raise ModelError(f"{where}: groups = {g} must divide the input channels ({c}) and out_channels "
                             f"({attrs['out_channels']})")
        ho, wo = (h + 2 * p - kh) // s + 1, (w + 2 * p - kw) // s + 1
        if ho <= 0 or wo <= 0 or h + 2 * p < kh or w + 2 * p < kw:
            raise ModelError(f"{where}: kernel {kh}x{kw}, stride {s}, padding {p} leave no output from a "
                             f"{h}x{w} input")
        return (attrs["out_channels"], ho, wo)

    def weight_shape(self, node):
        kh, kw = node.attrs["kernel"]
        return (node.out_shape[0], node.in_shapes[0][0] // node.attrs["groups"], kh, kw)

    def check_ops(self, dtype):
        return ("conv2d", "grouped_conv2d")

    def kernel(self, node):
        """Grouped and depthwise convolutions have kernels of their own (grouped_conv2d_*.c)."""
        return "conv2d" if node.attrs["groups"] == 1 else "grouped_conv2d"

    def shape_args(self, node):
        groups = node.attrs["groups"]
        return super().shape_args(node) + ((groups,) if groups > 1 else ())

    def scratch_bytes(self, node, precision):
        groups = node.attrs["groups"]
        if precision != "u8" or groups == 1:
            return super().scratch_bytes(node, precision)
        from ..ops import grouped_conv
        d = np.array(self.dims(node), np.int32)
        return max(getattr(grouped_conv, f"grouped_conv2d_{direction}_buffer_size")(d, groups)
                   for direction in DIRECTIONS)



class ConvTranspose2D(_Convolution):
    name = "convtranspose2d"
    transposed = True
    keys = {**_Convolution.keys, "output_padding": 0}

    def infer(self, attrs, in_shapes, where):
        c, h, w = chw(in_shapes[0], self.name, where)
        (kh, kw), s, p, op = attrs["kernel"], attrs["stride"], attrs["padding"], attrs["output_padding"]
        if op >= s:
            raise ModelError(f"{where}: output_padding {op} must be smaller than the stride {s}")
        ho, wo = (h - 1) * s - 2 * p + kh + op, (w - 1) * s - 2 * p + kw + op
        if ho <= 0 or wo <= 0:
            raise ModelError(f"{where}: kernel {kh}x{kw}, stride {s}, padding {p} leave no output from a "
                             f"{h}x{w} input")
        return (attrs["out_channels"], ho, wo)

    def weight_shape(self, node):
        kh, kw = node.attrs["kernel"]
        return (node.in_shapes[0][0], node.out_shape[0], kh, kw)

    def fan_in(self, node):
        _, oc, kh, kw = self.weight_shape(node)
        return oc * kh * kw          # as PyTorch's default initialisation computes it for ConvTranspose2d

    def update_layout(self, node):
        """[IC][OC][KH][KW]: an output channel's weights are runs of KH*KW spaced OC*KH*KW apart."""
        ic, oc, kh, kw = self.weight_shape(node)
        return oc, ic * kh * kw, kh * kw

