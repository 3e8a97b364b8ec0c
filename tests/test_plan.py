"""`mcusim plan`: memory by layer and kind, cycles per layer measured on the emulated board, the fit
verdict, and the four formats; a model that does not fit still gets its cycles, and says how."""
import csv
import io
import json

import pytest

from mcusim.cli import main
from mcusim.graph import load_model
from mcusim.plan import make_plan
from mcusim.tasks import build

from test_graph import RESIDUAL


@pytest.mark.parametrize("variant, precision, fits", [("baseline", "u8", True), ("latent", "fp32", False)])
def test_plan_of_the_vae(variant, precision, fits):
    plan = make_plan(load_model(variant), precision=precision)
    program = build(load_model(variant), precision)
    assert plan["fit"]["sram"]["terms"]["planned buffers"] == sum(t.nbytes for t in program.tensors.values())
    assert plan["fit"]["sram"]["fits"] is fits and plan["timing_memory_enlarged"] is (not fits)
    step = plan["step"]
    assert abs(step["per_call_sum_cycles"] / step["whole_step_cycles"] - 1) < 0.01     # calls vs the whole step
    layers = {r["name"]: r for r in plan["layers"]}
    assert layers["encoder2.gemm"]["params"] == 47100 and layers["encoder2.gemm"]["sram"]["weights"] > 0
    assert all(r["cycles"]["forward"] > 0 and r["cycles"]["backward_weight"] > 0 for r in plan["layers"])
    assert layers["encoder0.conv2d"]["macs"]["backward_input"] > 0 and sum(r["share"] for r in plan["layers"]) < 1
    if not fits:
        assert plan["fit"]["sram"]["over_by"] == plan["fit"]["sram"]["total"] - 640 * 1024


def test_plan_formats_and_cli(tmp_path, capsys):
    model = tmp_path / "residual.toml"
    import tomli_w
    model.write_text(tomli_w.dumps(RESIDUAL))
    assert main(["plan", str(model), "--format", "json", "--batch", "1"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["batch"] == 1 and plan["step"]["cycles_per_sample"] == plan["step"]["cycles_per_sample_batch1"]
    assert main(["plan", str(model), "--format", "csv", "-o", str(tmp_path / "p.csv")]) == 0
    rows = list(csv.reader(io.StringIO((tmp_path / "p.csv").read_text())))
    assert rows[0][0] == "layer" and rows[len(plan["layers"]) + 1] == []
    assert {r[1] for r in rows[len(plan["layers"]) + 2:]} == set(plan["provenance"])     # every format says so
    assert main(["plan", str(model), "--format", "md"]) == 0
    assert "| layer |" in capsys.readouterr().out
    assert main(["plan", str(model)]) == 0
    out = capsys.readouterr().out
    assert "SRAM: planned buffers" in out and "fits" in out and "emulated" in out
    assert main(["plan", str(model), "-o", str(tmp_path)]) == 2                     # a folder is not overwritten
    assert "not a regular file" in capsys.readouterr().err
    assert main(["plan", str(model), "--precision", "fp32", "--sparse", "0.5,1"]) == 2


def test_plans_side_by_side(capsys):
    assert main(["plan", "baseline", "latent", "--precision", "fp32,u8", "--format", "csv"]) == 0
    rows = list(csv.reader(io.StringIO(capsys.readouterr().out)))[:5]
    assert rows[0][0] == "model"
    fits = {(r[0], r[1]): r[8] for r in rows[1:]}
    assert fits[("latent", "fp32")].startswith("NO") and fits[("latent", "u8")] == "yes"   # as in the paper
    assert main(["plan", "baseline", "--hclk-mhz", "48,abc"]) == 2


def test_plan_plot_and_timeline(tmp_path):
    assert main(["plan", "baseline", "--precision", "fp32", "--plot", str(tmp_path / "plan.png")]) == 0
    assert (tmp_path / "plan.png").stat().st_size > 20000
    plan = make_plan(load_model("baseline"), precision="fp32")
    tl = plan["timeline"]
    assert tl["static_bytes"] == plan["fit"]["sram"]["terms"]["planned buffers"]
    assert 0 < tl["peak_bytes"] <= tl["static_bytes"] and len(tl["live_bytes"]) == len(tl["calls"])
    persistent = plan["sram_by_kind"]["weights"] + plan["sram_by_kind"]["gradients"]
    assert min(tl["live_bytes"]) >= persistent                 # weights and gradients live throughout


def test_plan_sram_equals_what_training_measures(tmp_path, monkeypatch):
    from mcusim.train import TrainConfig, Trainer
    monkeypatch.delenv("MCUSIM_DATA", raising=False)
    results = Trainer(TrainConfig(precision="u8", epochs=1, train_limit=100, labels_per_class=[5], head_epochs=1,
                                  crosscheck_samples=2), tmp_path / "run", progress=False, log=lambda m: None).run()
    plan = make_plan(load_model("baseline"), precision="u8")
    assert plan["fit"]["sram"]["total"] == results["mcu"]["sram_bytes"]["measured_total"]
