"""The operator registry: one entry per operator, the only place that knows an operator by name.

Adding an operator: its C kernel file(s) in kernels/, its Numba twin in mcusim/ops/, its cross-check
in mcusim/checks/, and one `Operator` subclass listed here (README, "Adding an operator")."""
from __future__ import annotations

from ..errors import ModelError
from .base import Operator
from .conv import Conv2D, ConvTranspose2D
from .elementwise import Add, Relu, Relu6
from .gemm import Gemm
from .pool import AvgPool2D, GlobalAvgPool, MaxPool2D
from .views import Flatten, Reshape

REGISTRY: dict[str, Operator] = {op.name: op for op in (
    Gemm(), Conv2D(), ConvTranspose2D(), MaxPool2D(), AvgPool2D(), GlobalAvgPool(), Add(), Relu(), Relu6(),
    Flatten(), Reshape())}


def get(name: str, where: str) -> Operator:
    try:
        return REGISTRY[name]
    except (KeyError, TypeError):
        raise ModelError(f"{where}: unknown op {name!r}; mcusim has {', '.join(sorted(REGISTRY))}") from None
