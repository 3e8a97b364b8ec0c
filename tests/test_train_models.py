"""`mcusim train` on models that are not the VAE: every operator trained on the embedded digits set,
host and emulated MCU bit for bit (fp32, u8, u8 with sparse updates), the three tasks, clear errors."""
import json

import pytest
import tomli_w

from mcusim.cli import main
from mcusim.train import ModelTrainConfig, Trainer, TrainError

from test_graph import RESIDUAL


def write_model(path, spec):
    path.write_text(tomli_w.dumps(spec))
    return str(path)


def run(tmp_path, model, name="run", **kw):
    settings = dict(model=model, dataset="digits", epochs=1, batch_size=20, crosscheck_samples=2, train_limit=400)
    return Trainer(ModelTrainConfig(**{**settings, **kw}), tmp_path / name, progress=False, log=lambda m: None).run()


@pytest.mark.parametrize("precision, sparse", [("fp32", None), ("u8", None), ("u8", [0.5, 1.0])])
def test_every_operator_trains_bit_exact_with_the_mcu(tmp_path, precision, sparse):
    res = run(tmp_path, write_model(tmp_path / "residual.toml", RESIDUAL), precision=precision, sparse=sparse,
              crosscheck_samples=20)                  # the whole first batch and its update on the MCU
    mcu = res["mcu"]
    assert mcu["crosscheck"] == {"steps": 21, "bit_exact": True}
    assert mcu["fits"] and mcu["cycles_per_training_sample"] > mcu["cycles_per_inference"] > 0
    epoch = res["epochs"][0]
    assert 0.0 <= epoch["test_accuracy"] <= 1.0 and epoch["train_loss"] > 0
    assert (tmp_path / "run" / "loss.png").stat().st_size > 1000


def test_a_small_cnn_learns_digits(tmp_path):
    res = run(tmp_path, "cnn_digits", precision="fp32", epochs=3, train_limit=None, batch_size=10)
    accuracy = [e["test_accuracy"] for e in res["epochs"]]
    assert accuracy[-1] > 0.8, accuracy                   # chance is 0.1
    assert json.loads((tmp_path / "run" / "results.json").read_text())["epochs"] == res["epochs"]


@pytest.mark.parametrize("loss", ["bernoulli", "mse"])
@pytest.mark.parametrize("precision", ["fp32", "u8"])
def test_autoencoders_train_and_match_the_mcu(tmp_path, loss, precision):
    spec = {"name": "ae", "input": [1, 8, 8], "task": "autoencode", "loss": loss,
            "layers": [{"op": "conv2d", "out_channels": 4, "kernel": 3, "stride": 2, "padding": 1, "activation": "relu"},
                       {"op": "convtranspose2d", "out_channels": 1, "kernel": 4, "stride": 2, "padding": 1}]}
    res = run(tmp_path, write_model(tmp_path / "ae.toml", spec), precision=precision, epochs=2)
    assert res["mcu"]["crosscheck"]["bit_exact"] is True
    assert res["epochs"][1]["train_loss"] < res["epochs"][0]["train_loss"]
    assert res["epochs"][0]["test_accuracy"] is None


def test_model_and_data_must_agree(tmp_path):
    with pytest.raises(TrainError, match=r"samples of shape \[1, 8, 8\] but model cnn_fashion takes \[1, 28, 28\]"):
        run(tmp_path, "cnn_fashion")
    with pytest.raises(TrainError, match="train it with `mcusim train`"):
        from mcusim.train import TrainConfig
        Trainer(TrainConfig(variant=str(write_model(tmp_path / "c.toml", RESIDUAL))), tmp_path / "x", progress=False)


def test_cli_train_and_its_errors(tmp_path, capsys):
    model = write_model(tmp_path / "residual.toml", RESIDUAL)
    assert main(["train", model, "--epochs", "1", "--train-limit", "100", "--batch", "10", "--crosscheck-samples",
                 "1", "--quiet", "--out", str(tmp_path / "cli")]) == 0
    assert "accuracy" in capsys.readouterr().out
    assert main(["train", "cnn_digits", "--precision", "fp32", "--epochs", "1", "--train-limit", "30", "--batch", "1",
                 "--quiet", "--out", str(tmp_path / "online")]) == 0          # online learning: update every sample
    assert json.loads((tmp_path / "online" / "results.json").read_text())["mcu"]["crosscheck"] == \
        {"steps": 2, "bit_exact": True}
    assert main(["train", str(tmp_path / "nope.toml"), "--out", str(tmp_path / "e")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["train", model, "--dataset", "cifar", "--out", str(tmp_path / "e2")]) == 2
    assert "cifar" in capsys.readouterr().err


@pytest.mark.parametrize("precision", ["fp32", "u8"])
def test_imported_onnx_models_train_bit_exact(tmp_path, precision):
    """Every supported ONNX op (the import tests' models), trained straight from the .onnx file, or from
    the TOML that `mcusim import` writes, with the first batch and its update checked on the MCU."""
    import numpy as np
    import onnx
    from test_onnx_import import autoencoder, cnn
    rng = np.random.default_rng(0)
    data = tmp_path / "shapes.npz"
    np.savez(data, x=rng.integers(0, 256, (60, 3, 9, 9), dtype=np.uint8), y=np.arange(60) % 4)
    onnx.save(cnn(), tmp_path / "cnn.onnx")
    res = run(tmp_path, str(tmp_path / "cnn.onnx"), "cnn", dataset=str(data), precision=precision,
              batch_size=10, crosscheck_samples=10)
    assert res["mcu"]["crosscheck"] == {"steps": 11, "bit_exact": True}
    onnx.save(autoencoder(), tmp_path / "ae.onnx")
    assert main(["import", str(tmp_path / "ae.onnx"), "--task", "autoencode", "-o", str(tmp_path / "ae.toml")]) == 0
    res = run(tmp_path, str(tmp_path / "ae.toml"), "ae", precision=precision, batch_size=10, crosscheck_samples=10)
    assert res["mcu"]["crosscheck"] == {"steps": 11, "bit_exact": True}


def test_resume_refuses_a_checkpoint_of_another_layout(tmp_path):
    import numpy as np
    run(tmp_path, "cnn_digits", precision="fp32")
    path = tmp_path / "run" / "checkpoint.npz"
    with np.load(path) as ck:
        old = {k: ck[k] for k in ck.files if k != "layout"}     # as mcusim wrote them before the registry
    np.savez(path, **old)
    with pytest.raises(TrainError, match="another memory layout"):
        Trainer(ModelTrainConfig(model="cnn_digits", dataset="digits", precision="fp32", epochs=2, batch_size=20,
                                 crosscheck_samples=2,
                                 train_limit=400), tmp_path / "run", resume=True, progress=False, log=lambda m: None)


@pytest.mark.parametrize("option, value, message", [
    ("--lr", "inf", "--lr must be a positive finite number"), ("--lr", "nan", "--lr must be"),
    ("--hclk-mhz", "0", "--hclk-mhz must be a positive clock"), ("--hclk-mhz", "nan", "--hclk-mhz must be"),
    ("--hclk-mhz", "500", "outside 0..120"), ("--train-limit", "-5", "--train-limit must be a positive"),
    ("--batch", "0", "the batch size"), ("--epochs", "0", "--epochs"),
])
def test_bad_training_options_are_explained(tmp_path, capsys, option, value, message):
    assert main(["train", "cnn_digits", option, value, "--out", str(tmp_path / "r")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "r" / "results.json").exists()


@pytest.mark.parametrize("option, value", [("--labels", "0"), ("--head-epochs", "-1"), ("--lr", "inf"),
                                           ("--hclk-mhz", "0"), ("--seed", "-1")])
def test_bad_vae_options_are_explained(tmp_path, capsys, option, value):
    assert main(["vae", "train", option, value, "--out", str(tmp_path / "v")]) == 2
    assert option in capsys.readouterr().err


def test_one_run_per_output_folder_and_stale_temporaries_go(tmp_path):
    first = Trainer(ModelTrainConfig(model="cnn_digits", dataset="digits", precision="fp32", epochs=1, batch_size=20,
                                     crosscheck_samples=2, train_limit=100), tmp_path / "run", progress=False,
                    log=lambda m: None)
    with pytest.raises(TrainError, match="another mcusim run is writing into"):
        run(tmp_path, "cnn_digits", precision="fp32")
    del first
    (tmp_path / "run" / ".results.json.abc123.tmp").write_text("half")
    run(tmp_path, "cnn_digits", precision="fp32")
    assert not list((tmp_path / "run").glob(".*.tmp"))
    (tmp_path / "file").write_text("x")
    with pytest.raises(TrainError, match="is not a folder"):
        run(tmp_path, "cnn_digits", "file", precision="fp32")


def test_resume_restores_results_from_the_checkpoint(tmp_path):
    run(tmp_path, "cnn_digits", precision="fp32", epochs=1)
    (tmp_path / "run" / "results.json").write_text('{"epochs": []}')   # killed between the two writes
    Trainer(ModelTrainConfig(model="cnn_digits", dataset="digits", precision="fp32", epochs=1, batch_size=20,
                             crosscheck_samples=2, train_limit=400), tmp_path / "run", resume=True, progress=False,
            log=lambda m: None)
    assert len(json.loads((tmp_path / "run" / "results.json").read_text())["epochs"]) == 1


def test_sigterm_stops_training_cleanly(tmp_path):
    """SIGTERM (a job scheduler, `kill`) ends a run like Ctrl-C: finished epochs stay saved, exit 143."""
    import signal
    import subprocess
    import sys
    import time
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "mcusim.cli", "train", "cnn_digits", "--precision", "fp32",
                             "--epochs", "500", "--batch", "50", "--quiet", "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (out / "results.json").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "terminated (finished epochs are saved; continue with --resume)" in err and "Traceback" not in err
    assert json.loads((out / "results.json").read_text())["epochs"]
