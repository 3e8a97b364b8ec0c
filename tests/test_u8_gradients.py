"""The u8 training step computes the gradients of the network it quantizes: on the residual model
(every operator), the int16 weight gradients of a few samples point the same way as the fp32
gradients of the dequantized weights. Bit-exactness (host vs MCU) cannot catch a wrongly routed error;
this does. (Agreement is not perfect: 8-bit errors lose their small values; measured at this commit,
cosines 0.61-0.999 and magnitudes 0.3-1.0x of fp32's, lowest for the layers furthest from the loss;
a misrouted or sign-flipped error gives a cosine near 0 or below.)"""
import numpy as np

from mcusim.datasets import load_dataset
from mcusim.graph import graph_from_spec
from mcusim.runtime import HostStep, initial_state
from mcusim.tasks import build

from test_graph import RESIDUAL


def test_u8_gradients_follow_the_fp32_gradients():
    model = graph_from_spec(RESIDUAL, "test")
    data = load_dataset("digits")
    x = np.ascontiguousarray(data.train_x.reshape(len(data.train_x), -1)[:300])
    y = np.asarray(data.train_y[:300], np.int64)
    order = np.arange(len(x), dtype=np.int64)
    pu, pf = build(model, "u8"), build(model, "fp32")
    hu, hf = HostStep(pu), HostStep(pf)
    su, sf = initial_state(pu, 0), initial_state(pf, 0)
    for n in model.trainable:                     # the fp32 network is the u8 one, dequantized
        for k in ("weight", "bias"):
            q = su[f"{n.name}.{k}.qparams"][0]
            sf[f"{n.name}.{k}"] = (q["scale"] * (su[f"{n.name}.{k}"].astype(np.float32) - q["zero_point"])).astype(np.float32)
    hu.load_state(su)
    hf.load_state(sf)
    hu.run_batch("sample", x, order, 0, 200, labels=y, alpha_a=0.1, alpha_e=0.1)     # settle the u8 ranges
    hf.run_batch("sample", x, order, 200, 100, labels=y)
    for n in model.trainable:                     # one gradient scale the update could settle on, every row
        hu.view(f"{n.name}.weight_grad")[:] = 0
        scale = np.abs(hf.view(f"{n.name}.weight_grad")).max() / 8192.0
        hu.view(f"{n.name}.weight_grad.scales")[:] = scale
    hu.run_batch("sample", x, order, 200, 100, labels=y, alpha_a=0.1, alpha_e=0.1)
    for n in model.trainable:
        q = hu.view(f"{n.name}.weight_grad.scales")[0]
        gu = hu.view(f"{n.name}.weight_grad").astype(np.float64) * q
        gf = hf.view(f"{n.name}.weight_grad").astype(np.float64)
        cos = gu @ gf / (np.linalg.norm(gu) * np.linalg.norm(gf))
        assert cos > 0.5, (n.name, cos)
        assert 0.25 < np.linalg.norm(gu) / np.linalg.norm(gf) < 4.0, n.name
