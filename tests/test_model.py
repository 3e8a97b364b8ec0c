"""Model descriptions: shapes derived from the TOML, clear errors, and the memory plan against Table I."""
import re

import pytest

from mcusim.errors import ModelError
from mcusim.graph import MODEL_DIR, load_model
from mcusim.tasks import build

TABLE_I_FP32_BASELINE = {"activations": 45.3e3, "weights": 484.1e3}


def test_baseline_shapes():
    m = load_model("baseline")
    assert [l.out_shape for l in m.encoder] == [(8, 14, 14), (16, 7, 7), (60,)]
    assert [l.out_shape for l in m.decoder] == [(16, 7, 7), (8, 14, 14), (1, 28, 28)]
    assert m.head.weight_shape == (20, 60) and m.decoder[1].weight_shape == (16, 8, 4, 4)
    assert m.n_params == 60377
    assert [l.out_shape for l in m.classifier] == [(390,), (10,)]
    assert sum(l.n_out for l in m.classifier) == 400


def test_variants_differ_as_the_paper_says():
    base, latent, filters, classes = (load_model(n) for n in ("baseline", "latent", "filters", "classes"))
    assert latent.latent == 40 and latent.head.out_shape == (80,)
    assert [l.out_shape[0] for l in filters.encoder[:2]] == [2 * l.out_shape[0] for l in base.encoder[:2]]
    assert sum(l.n_out for l in classes.classifier) == 1920


def test_fp32_baseline_plan_is_within_ten_percent_of_table_one():
    p = build(load_model("baseline"), "fp32")
    ours = {"activations": p.total("activations") + p.total("io"), "weights": p.total("weights")}
    for group, paper in TABLE_I_FP32_BASELINE.items():
        assert abs(ours[group] / paper - 1) <= 0.10, (group, ours[group])


def test_u8_saves_at_least_half_of_the_fp32_weights():
    fp32, u8 = (build(load_model("baseline"), prec).total("weights") for prec in ("fp32", "u8"))
    assert 1 - u8 / fp32 >= 0.54                       # the paper's u8 saves 54% of the weights' SRAM


def test_conv_macs_skip_padding():
    layer = load_model("baseline").encoder[0]                   # 1x28x28 -> 8x14x14, k3 s2 p1
    assert layer.macs.forward == 8 * (14 * 3 - 1) ** 2                  # the first row/column lose one tap


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.replace('op = "conv2d"', 'op = "conv3d"', 1), "unknown op 'conv3d'"),
    (lambda t: t.replace("out_channels = 1\n", "out_channels = 2\n"), "decoder ends in shape [2, 28, 28]"),
    (lambda t: t.replace('activation = "relu"', 'activation = "tanh"', 1), "`activation` must be one of none, relu, relu6"),
    (lambda t: t.replace("kernel = 3", "kernel = 40", 1), "leave no output"),
    (lambda t: t.replace("latent = 10", "latent = ten"), "not valid TOML"),
    (lambda t: t.replace("latent = 10\n", ""), "`latent` must be an integer, not None"),
])
def test_bad_models_are_explained(tmp_path, edit, message):
    path = tmp_path / "mine.toml"
    path.write_text(edit((MODEL_DIR / "vae_baseline.toml").read_text()))
    with pytest.raises(ModelError, match=re.escape(message)):
        load_model(path)


def test_unknown_model_lists_the_built_in_ones():
    with pytest.raises(ModelError, match="built-in models: baseline, classes, .*ds_cnn, filters, latent"):
        load_model("huge")
