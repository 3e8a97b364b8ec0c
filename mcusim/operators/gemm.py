"""Gemm (fully connected): y = W x + b, W [out][in]; reads its input flattened; `out` may be a shape."""
from __future__ import annotations

from ..ops import gemm_u8
from .base import REQUIRED, Directions, positive_int, shape_list
from .layer import TrainableLayer


class Gemm(TrainableLayer):
    name = "gemm"
    keys = {"out": REQUIRED}

    def check(self, key, value, where):
        return shape_list(value, key, where) if isinstance(value, list) else (positive_int(value, key, where),)

    def infer(self, attrs, in_shapes, where):
        return attrs["out"]

    def weight_shape(self, node):
        return (node.n_out, node.n_in)

    def structures(self, node):
        return node.n_out

    def macs(self, node):
        n = node.n_in * node.n_out
        return Directions(n, n, n)

    def scratch_bytes(self, node, precision):
        if precision != "u8":
            return 0
        return max(gemm_u8.gemm_u8_forward_buffer_size(node.n_in, node.n_out),
                   gemm_u8.gemm_u8_backward_input_buffer_size(node.n_in, node.n_out),
                   gemm_u8.gemm_u8_backward_weight_buffer_size(node.n_in))

    def shape_args(self, node):
        return (node.n_in, node.n_out)
