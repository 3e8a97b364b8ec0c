"""`mcusim vae train` gives the same numbers as the version it was pinned with: per-epoch losses and
accuracies bit for bit, the MCU's cycles, the memory plan (tests/data/vae_regression.json, written by
tools/pin_vae_regression.py; change it only with a change of training arithmetic, and say why)."""
import json
from pathlib import Path

import pytest

from mcusim.train import TrainConfig, Trainer

PINNED = json.loads((Path(__file__).parent / "data" / "vae_regression.json").read_text())


@pytest.fixture(autouse=True)
def embedded_data(monkeypatch, tmp_path):
    monkeypatch.delenv("MCUSIM_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr("mcusim.datasets.SYSTEM_DATA_DIR", tmp_path / "no-system-data")


@pytest.mark.parametrize("run", sorted(PINNED))
def test_vae_run_matches_the_pinned_numbers(run, tmp_path):
    import sys
    sys.path.insert(0, str(Path(__file__).parent.parent / "tools"))
    from pin_vae_regression import pinned
    want = PINNED[run]
    results = Trainer(TrainConfig(**want["config"]), tmp_path / run, progress=False, log=lambda m: None).run()
    got = pinned(results)
    assert got["epochs"] == want["epochs"]
    assert got["mcu"] == want["mcu"]
    assert got["sram_bytes"] == want["sram_bytes"]
