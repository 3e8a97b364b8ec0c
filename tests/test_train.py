"""The main job end to end on the embedded Fashion-MNIST subset: the loss goes down, results and plots
are written, the emulated MCU agrees with the host, an interrupted run resumes exactly, and models
that do not fit the STM32L4R5 are reported as such."""
import json
import subprocess
import sys

import pytest

from mcusim.memory import MemoryBudgetError
from mcusim.graph import load_model
from mcusim.tasks import build
from mcusim.runtime import DeviceStep
from mcusim.train import TrainConfig, Trainer, TrainError


def small(precision="fp32", epochs=3, **kw) -> TrainConfig:
    settings = dict(dataset="fashion-mnist", precision=precision, epochs=epochs, train_limit=1000,
                    labels_per_class=[10], head_epochs=3, crosscheck_samples=3)
    return TrainConfig(**{**settings, **kw})


@pytest.fixture(autouse=True)
def no_full_data(monkeypatch, tmp_path):
    """Force the embedded subset: no data directory configured, empty caches."""
    monkeypatch.delenv("MCUSIM_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr("mcusim.datasets.SYSTEM_DATA_DIR", tmp_path / "no-system-data")


def test_short_run_learns_and_writes_everything(tmp_path):
    out = tmp_path / "run"
    results = Trainer(small(), out, progress=False, log=lambda m: None).run()
    losses = [e["train_neg_elbo"] for e in results["epochs"]]
    assert losses[0] > losses[1] > losses[2], losses
    assert results["epochs"][-1]["test_neg_elbo"] < results["epochs"][0]["test_neg_elbo"]
    assert 0.1 < results["epochs"][-1]["test_accuracy"]["10"] <= 1.0         # better than chance (0.1)
    mcu = results["mcu"]
    assert mcu["fits"] and mcu["crosscheck"] == {"steps": 3, "bit_exact": True}
    assert mcu["cycles_per_training_sample"] > mcu["cycles_per_inference"] > 0
    assert mcu["energy_mj"] == pytest.approx(mcu["power_mw"] * mcu["latency_ms"] / 1000)
    sram = mcu["sram_bytes"]
    assert sram["measured_total"] == sram["planned_total"] + sram["static"] + sram["stack"]
    assert 0 <= sram["static"] < 1024 and 0 < sram["stack"] < 4096            # the plan covers the firmware
    on_disk = json.loads((out / "results.json").read_text())
    assert on_disk["epochs"] == results["epochs"]
    for name in ("neg_elbo.png", "accuracy.png", "sram.png", "samples.png", "checkpoint.npz"):
        assert (out / name).stat().st_size > 1000, name
    assert not list(out.glob(".*tmp"))


def test_u8_run_is_bit_exact_with_the_mcu(tmp_path):
    results = Trainer(small("u8", epochs=1), tmp_path / "u8", progress=False, log=lambda m: None).run()
    assert results["mcu"]["crosscheck"]["bit_exact"] is True
    plan = results["mcu"]["sram_bytes"]
    assert plan["weights"] < 0.45 * 483016                     # u8 saves more than half of fp32's weights


def test_sparse_run_updates_a_fraction_and_matches_the_mcu(tmp_path):
    results = Trainer(small("u8", epochs=1, sparse=[0.1, 0.6]), tmp_path / "sp", progress=False,
                      log=lambda m: None).run()
    assert results["mcu"]["crosscheck"]["bit_exact"] is True
    rate = results["epochs"][0]["update_rate"]
    assert 0.1 <= rate <= 0.65, rate                   # k/N lies between lambda_min and lambda_max (+ rounding)


def test_interrupted_run_resumes_exactly(tmp_path, monkeypatch):
    straight = Trainer(small(epochs=2), tmp_path / "a", progress=False, log=lambda m: None).run()

    calls = {"n": 0}
    interrupted = Trainer(small(epochs=2), tmp_path / "b", progress=False, log=lambda m: None)
    real = interrupted.host.run_batch

    def run_batch(phase, *args, **kw):
        if phase == "sample":
            calls["n"] += 1
            if calls["n"] == 10 + 100:                        # in the middle of epoch 2
                raise KeyboardInterrupt
        return real(phase, *args, **kw)

    monkeypatch.setattr(interrupted.host, "run_batch", run_batch)
    with pytest.raises(KeyboardInterrupt):
        interrupted.run()
    saved = json.loads((tmp_path / "b" / "results.json").read_text())
    assert len(saved["epochs"]) == 1                          # epoch 1 survived, epoch 2 was not half-written
    resumed = Trainer(small(epochs=2), tmp_path / "b", resume=True, progress=False, log=lambda m: None).run()
    for a, b in zip(straight["epochs"], resumed["epochs"]):
        assert a["train_neg_elbo"] == b["train_neg_elbo"] and a["test_neg_elbo"] == b["test_neg_elbo"]
    assert resumed["mcu"] == {**straight["mcu"], "crosscheck": straight["mcu"]["crosscheck"]}


def test_run_errors_are_explained(tmp_path):
    Trainer(small(epochs=1), tmp_path / "r", progress=False, log=lambda m: None).run()
    with pytest.raises(TrainError, match="already holds a run"):
        Trainer(small(epochs=1), tmp_path / "r", progress=False)
    with pytest.raises(TrainError, match="was made with precision='fp32'"):
        Trainer(small("u8", epochs=2), tmp_path / "r", resume=True, progress=False)
    (tmp_path / "lost").mkdir()
    (tmp_path / "lost" / "results.json").write_text("{}")           # a results.json whose checkpoint is gone
    with pytest.raises(TrainError, match="no checkpoint.npz"):
        Trainer(small(epochs=1), tmp_path / "lost", resume=True, progress=False)
    with pytest.raises(TrainError, match="--sparse needs --precision u8"):
        Trainer(small(sparse=[0.1, 0.6]), tmp_path / "s", progress=False)
    with pytest.raises(TrainError, match="rarest class"):
        Trainer(small(labels_per_class=[500]), tmp_path / "l", progress=False)


@pytest.mark.parametrize("variant, precision, fits", [
    ("baseline", "fp32", True), ("baseline", "u8", True),
    ("latent", "fp32", False), ("filters", "fp32", False),      # as in the paper: fp32 latent/filters do not fit
    ("latent", "u8", True),
])
def test_memory_fit_verdict(variant, precision, fits):
    program = build(load_model(variant), precision)
    if fits:
        DeviceStep(program)
    else:
        with pytest.raises(MemoryBudgetError, match="of SRAM but stm32l4r5zi has 655.4 kB"):
            DeviceStep(program)


def test_a_run_that_does_not_fit_still_trains_and_says_so(tmp_path):
    results = Trainer(small(epochs=1, variant="latent"), tmp_path / "big", progress=False,
                      log=lambda m: None).run()
    mcu = results["mcu"]
    assert mcu["fits"] is False and mcu["crosscheck"]["bit_exact"] is None and mcu["latency_ms"] is None
    assert mcu["sram_bytes"]["planned_total"] > mcu["sram_bytes"]["limit"]
    assert (tmp_path / "big" / "sram.png").exists()


def test_cli_names_a_missing_data_directory(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "mcusim.cli", "vae", "train", "--dataset", "mnist", "--epochs", "1",
                           "--data-dir", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "nowhere" in proc.stderr and "mnist" in proc.stderr.lower()


def test_cosine_schedule_anneals_from_lr_towards_zero_and_is_checked_on_resume():
    cfg = TrainConfig(dataset="mnist", precision="u8", epochs=10, lr=0.002, lr_schedule="cosine")
    cfg.validate()
    rates = [cfg.lr_at(e) for e in range(10)]
    assert rates[0] == 0.002 and all(a > b > 0 for a, b in zip(rates, rates[1:]))
    assert abs(rates[5] - 0.001) < 1e-12
    constant = TrainConfig(precision="fp32", epochs=10, lr=0.002)
    constant.validate()
    assert constant.lr_schedule == "constant" and constant.lr_at(9) == 0.002
    u8 = TrainConfig(precision="u8")
    u8.validate()
    assert u8.lr_schedule == "cosine"
    with pytest.raises(TrainError, match="--lr-schedule"):
        TrainConfig(lr_schedule="step").validate()
