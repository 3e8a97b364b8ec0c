"""Build models/ds_cnn.onnx: a small DS-CNN-like classifier for 1x28x28 input, the proof model of
`mcusim import` (every structure a keyword-spotting DS-CNN uses: strided stem, depthwise-separable
blocks, a residual add, pooling, a Linear head). Built with onnx.helper so that no PyTorch is needed;
the initial weights are seeded and drawn like PyTorch's defaults, uniform in +-1/sqrt(fan_in).

    python models/make_ds_cnn.py        # rewrites models/ds_cnn.onnx
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OUT = Path(__file__).resolve().parent / "ds_cnn.onnx"


def build_ds_cnn(seed: int = 0) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    inits, nodes = [], []

    def param(name: str, shape: tuple[int, ...], fan_in: int) -> str:
        bound = 1.0 / np.sqrt(fan_in)
        inits.append(numpy_helper.from_array(rng.uniform(-bound, bound, shape).astype(np.float32), name))
        return name

    def conv(name: str, x: str, c_in: int, c_out: int, k: int, stride: int = 1, group: int = 1,
             relu: bool = True) -> str:
        fan_in = c_in // group * k * k
        w = param(f"{name}.weight", (c_out, c_in // group, k, k), fan_in)
        b = param(f"{name}.bias", (c_out,), fan_in)
        nodes.append(helper.make_node("Conv", [x, w, b], [f"{name}_out"], name=name, kernel_shape=[k, k],
                                      strides=[stride, stride], pads=[k // 2] * 4, group=group))
        if not relu:
            return f"{name}_out"
        nodes.append(helper.make_node("Relu", [f"{name}_out"], [f"{name}_relu"], name=f"{name}_relu"))
        return f"{name}_relu"

    x = conv("conv1", "input", 1, 16, 3, stride=2)                            # 16 x 14 x 14
    y = conv("ds1_dw", x, 16, 16, 3, group=16)
    y = conv("ds1_pw", y, 16, 16, 1)
    nodes.append(helper.make_node("Add", [y, x], ["ds1_add"], name="ds1_add"))
    nodes.append(helper.make_node("MaxPool", ["ds1_add"], ["pool"], name="pool", kernel_shape=[2, 2],
                                  strides=[2, 2]))                           # 16 x 7 x 7
    y = conv("ds2_dw", "pool", 16, 16, 3, group=16)
    y = conv("ds2_pw", y, 16, 32, 1)                                         # 32 x 7 x 7
    nodes.append(helper.make_node("GlobalAveragePool", [y], ["gap"], name="gap"))
    nodes.append(helper.make_node("Flatten", ["gap"], ["flat"], name="flatten", axis=1))
    w, b = param("fc.weight", (10, 32), 32), param("fc.bias", (10,), 32)
    nodes.append(helper.make_node("Gemm", ["flat", w, b], ["logits"], name="fc", transB=1))

    graph = helper.make_graph(
        nodes, "ds_cnn",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 1, 28, 28])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="mcusim")
    onnx.checker.check_model(model)
    return model


if __name__ == "__main__":
    onnx.save(build_ds_cnn(), OUT)
    print(f"wrote {OUT}")
