"""tools/u8_elbo_decompose.py: the per-tensor quantization it puts fp32 weights through."""
import subprocess
import sys
from pathlib import Path

import numpy as np

TOOL = Path(__file__).parent.parent / "tools" / "u8_elbo_decompose.py"
sys.path.insert(0, str(TOOL.parent))
from u8_elbo_decompose import dequantized, quantize_into  # noqa: E402

from mcusim.ops.quant_u8 import make_qparams  # noqa: E402


class Views:
    """The two tensors quantize_into touches, as HostStep.view gives them."""

    def __init__(self, n):
        self.t = {"w": np.zeros(n, np.uint8), "w.qparams": make_qparams()}

    def view(self, name):
        return self.t[name]


def test_quantized_weights_span_the_codes_and_round_to_nearest():
    w = np.random.default_rng(0).uniform(-1.7, 1.55, 5000).astype(np.float32)
    v = Views(w.size)
    quantize_into(v, "w", w)
    codes, q = v.view("w"), v.view("w.qparams")[0]
    assert codes.min() == 0 and codes.max() == 255
    assert (q["min"], q["max"]) == (w.min(), w.max())
    err = np.abs(dequantized(v, "w") - w)
    assert err.max() <= q["scale"] * 0.5 * (1 + 1e-4)
    assert err.mean() > q["scale"] * 0.1                 # really on the 256-code grid, not a copy


def test_a_folder_without_a_checkpoint_is_refused_in_one_line(tmp_path):
    r = subprocess.run([sys.executable, str(TOOL), str(tmp_path), str(tmp_path)], capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "has no checkpoint.npz" in r.stderr
