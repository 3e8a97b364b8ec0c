"""Flatten and reshape: the same buffer read with another shape (no copy, no SRAM, no kernel)."""
from __future__ import annotations

import math

from ..errors import ModelError
from .base import REQUIRED, Operator, shape_list


class Flatten(Operator):
    name = "flatten"
    view = True

    def infer(self, attrs, in_shapes, where):
        return (math.prod(in_shapes[0]),)


class Reshape(Operator):
    name = "reshape"
    view = True
    keys = {"shape": REQUIRED}

    def check(self, key, value, where):
        return shape_list(value, key, where)

    def infer(self, attrs, in_shapes, where):
        if math.prod(attrs["shape"]) != math.prod(in_shapes[0]):
            raise ModelError(f"{where}: cannot reshape {list(in_shapes[0])} ({math.prod(in_shapes[0])} values) "
                             f"to {list(attrs['shape'])} ({math.prod(attrs['shape'])} values)")
        return attrs["shape"]
