"""Report tables against the paper's figures, results.json error messages, and the PNG plots."""
import copy
import json
from pathlib import Path

import numpy as np
import pytest

from mcusim.errors import McusimError
from mcusim.plots import plot_run, plot_samples
from mcusim.report import (PAPER, ResultsCorruptError, ResultsKeyError, ResultsMissingError, build_report,
                           load_results, paper_value)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _results(dataset="mnist", precision="u8", sparse=None, variant="baseline", acc100=0.895, elbo=114.6,
             latency=228.49, fits=True, wall=3723.0):
    epochs = []
    for i in range(1, 4):
        ep = {"epoch": i, "train_neg_elbo": elbo + 10 * (3 - i) + 1, "test_neg_elbo": elbo + 10 * (3 - i),
              "test_accuracy": {"10": 0.7 + 0.01 * i, "100": acc100 - 0.01 * (2 - i) if i < 3 else 0.5,
                                "200": 0.9 + 0.001 * i},
              "update_rate": None if not sparse else 0.5, "seconds": 10.0}
        epochs.append(ep)
    # the last epoch wasn't evaluated: the report must use epoch 2
    epochs[2]["test_accuracy"] = {}
    epochs[1]["test_accuracy"]["100"] = acc100
    cycles = latency * 120e3
    timing = dict(cycles_per_training_sample=cycles, cycles_per_training_sample_std=0.0,
                  cycles_per_inference=44.92 * 120e3, latency_ms=latency, inference_ms=44.92, power_mw=45.84,
                  energy_mj=latency * 45.84 / 1000)
    if not fits:
        timing = {k: None for k in timing}
    return {
        "config": {"dataset": dataset, "precision": precision, "sparse": sparse, "variant": variant, "epochs": 3,
                   "batch_size": 100, "lr": 0.001, "seed": 0, "head_epochs": 25, "labels_per_class": [10, 100, 200],
                   "data": "/data", "hclk_mhz": 120.0},
        "epochs": epochs,
        "mcu": {"board": "nucleo-l4r5zi", "hclk_mhz": 120.0,
                "sram_bytes": {"activations": 23_500, "weights": 221_000, "total": 260_000, "limit": 655_360,
                               "planned_total": 255_000, "measured_total": 260_000, "static": 12_000,
                               "stack": 3_500},
                "fits": fits, "crosscheck": {"steps": 2, "bit_exact": True}, **timing},
        "wall_seconds": wall, "samples_per_second": 16.1,
    }


def _write(tmp_path: Path, name: str, results: dict) -> Path:
    d = tmp_path / name
    d.mkdir()
    (d / "results.json").write_text(json.dumps(results))
    return d


def _row(md: str, *starts: str) -> str:
    """The single table row whose first cells are `starts`."""
    prefix = "| " + " | ".join(starts) + " |"
    rows = [line for line in md.splitlines() if line.startswith(prefix)]
    assert len(rows) == 1, (prefix, rows)
    return rows[0]


def test_paper_table_holds_reference_figures():
    assert paper_value("accuracy", dataset="mnist", setting="u8", labels_per_class=100) == 89.3
    assert paper_value("accuracy", dataset="fashion-mnist", setting="fp32", labels_per_class=10) == 63.4
    assert paper_value("neg_elbo", dataset="fashion-mnist", setting="u8-sparse") == 254.5
    assert paper_value("sram_weights", variant="filters", setting="fp32") == 1201.4
    assert paper_value("sram_activations", variant="classes", setting="u8") == 24.0
    assert paper_value("energy", setting="u8-sparse", update_fraction=0.1) == 3.10
    assert paper_value("latency", setting="u8-sparse", update_fraction=0.6) == 196.71
    assert paper_value("accuracy", dataset="mnist", setting="u8", labels_per_class=10) is None   # not reported
    assert len(PAPER) == 10 + 6 + 16 + 16


def test_report_tables(tmp_path):
    a = _write(tmp_path, "u8_mnist", _results())
    b = _write(tmp_path, "fp32_fashion", _results(dataset="fashion-mnist", precision="fp32", acc100=0.751,
                                                  elbo=250.6, latency=224.01))
    c = _write(tmp_path, "u8_sparse60", _results(sparse=[0.6, 0.6], latency=196.71, acc100=0.80))
    md = build_report([load_results(d) for d in (a, b, c)])

    # runs are listed with dir, config and wall time
    assert f"`{a}`: mnist, baseline, u8, 3/3 epochs" in md
    assert "wall time 1h 02m 03s" in md
    # (a): last epoch with accuracies is epoch 2; 89.5% vs 89.3% -> 1.00; no paper figure for u8 at 10 labels
    row = _row(md, "mnist", "baseline", "u8", "100")
    assert "| 2 | 89.5% (89.3%, 1.00) | 124.6 (114.6, 1.09) |" in row   # neg. ELBO of epoch 2 too
    row = _row(md, "mnist", "baseline", "u8", "10")
    assert "| 72.0% | 124.6 (114.6, 1.09) |" in row
    row = _row(md, "fashion-mnist", "baseline", "fp32", "200")
    assert "90.2% (77.4%, 1.17)" in row
    row = _row(md, "mnist", "baseline", "u8 sparse λ=[0.6, 0.6]", "100")
    assert "80.0% (89.1%, 0.90)" in row and "124.6 (113.8, 1.09)" in row
    # (b): kB = 1000 bytes; total has no paper figure
    row = _row(md, "baseline", "u8", "23.5 kB (23.0 kB, 1.02)")
    assert "| 221.0 kB (221.0 kB, 1.00) | 260.0 kB | 655.4 kB | yes |" in row
    row = _row(md, "baseline", "fp32", "23.5 kB (45.3 kB, 0.52)")
    # (c)
    row = _row(md, "baseline", "u8 sparse λ=[0.6, 0.6]", "nucleo-l4r5zi @ 120 MHz")
    assert "196.71 ms (196.71 ms, 1.00)" in row and "44.92 ms (44.96 ms, 1.00)" in row
    row = _row(md, "baseline", "fp32", "nucleo-l4r5zi @ 120 MHz")
    assert "224.01 ms (224.01 ms, 1.00)" in row and "44.92 ms (59.65 ms, 0.75)" in row
    assert "Table I" in md and "Notes" not in md


def test_report_duplicates_missing_cells_and_no_fit(tmp_path):
    old = load_results(_write(tmp_path, "old", _results(acc100=0.70)))
    new = load_results(_write(tmp_path, "new", _results(acc100=0.90)))
    big = _results(variant="filters", precision="fp32", fits=False, sparse=[0.2, 0.3])
    for ep in big["epochs"]:
        ep["test_accuracy"] = {}
    big = load_results(_write(tmp_path, "big", big))
    md = build_report([old, new, big])
    assert "90.0% (89.3%, 1.01)" in md and "70.0%" not in md
    assert f"using the later one, {tmp_path / 'new'}" in md
    # no accuracies: one row with the ELBO of the last epoch, no paper figure for a non-baseline variant
    assert "| mnist | filters | fp32 sparse λ=[0.2, 0.3] | — | 3 | — | 114.6 |" in md
    # does not fit: timing cells are dashes, fits = no; SRAM still compared with Table I (filters, fp32)
    assert "| filters | fp32 sparse λ=[0.2, 0.3] | nucleo-l4r5zi @ 120 MHz | — | — | — | — |" in md
    assert "23.5 kB (84.3 kB, 0.28)" in md and "| no |" in md
    # no run covers fashion-mnist: no such rows
    assert "fashion-mnist |" not in md


def test_load_results_errors(tmp_path):
    with pytest.raises(ResultsMissingError, match=r"nowhere.*results\.json.*directory does not exist"):
        load_results(tmp_path / "nowhere")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ResultsMissingError, match="no such file"):
        load_results(empty)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "results.json").write_text('{"config": {')
    with pytest.raises(ResultsCorruptError, match=r"bad.results\.json: not valid JSON .*line 1"):
        load_results(bad)
    (bad / "results.json").write_text("[1, 2]")
    with pytest.raises(ResultsCorruptError, match="JSON object"):
        load_results(bad)
    r = _results()
    del r["mcu"]["sram_bytes"]["weights"]
    d = _write(tmp_path, "nokey", r)
    with pytest.raises(ResultsKeyError, match=r"nokey.results\.json: missing key 'mcu\.sram_bytes\.weights'"):
        load_results(d)
    r = _results()
    del r["epochs"][1]["test_neg_elbo"]
    d = _write(tmp_path, "noep", r)
    with pytest.raises(ResultsKeyError, match=r"missing key 'epochs\[1\]\.test_neg_elbo'"):
        load_results(d)
    r = _results()
    r["wall_seconds"] = "long"
    with pytest.raises(McusimError, match="'wall_seconds' should be int or float"):
        load_results(_write(tmp_path, "badtype", r))


def _assert_png(path: Path):
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE and len(data) > 1000


def test_plot_run_writes_pngs_atomically(tmp_path):
    res = _results()
    res_nofit = copy.deepcopy(_results(fits=False, variant="latent"))
    for ep in res_nofit["epochs"]:
        ep["test_accuracy"] = {}
    for name, r in (("a", res), ("b", res_nofit)):
        out = tmp_path / name
        paths = plot_run(r, out)
        assert [p.name for p in paths] == ["neg_elbo.png", "accuracy.png", "sram.png"]
        for p in paths:
            _assert_png(p)
        assert sorted(f.name for f in out.iterdir()) == ["accuracy.png", "neg_elbo.png", "sram.png"]
        # overwriting works and still leaves no temp files
        plot_run(r, out)
        assert len(list(out.iterdir())) == 3


def test_plot_samples(tmp_path):
    rng = np.random.default_rng(0)
    p = plot_samples(rng.random((20, 28, 28)), tmp_path / "samples.png", "20 samples from N(0, I)")
    _assert_png(p)
    assert [f.name for f in tmp_path.iterdir()] == ["samples.png"]
    _assert_png(plot_samples(rng.random((4, 784)), tmp_path / "flat.png", "flat"))
    with pytest.raises(ValueError, match="28, 28"):
        plot_samples(rng.random((3, 5)), tmp_path / "x.png", "bad")


def test_sparse_timing_row_follows_the_measured_update_rate():
    from mcusim.report import _update_fraction
    run = {"config": {"sparse": [0.5, 1.0]}, "epochs": [{"update_rate": 0.58}, {"update_rate": 0.60}]}
    assert _update_fraction(run) == 0.6
    run["epochs"] = [{"update_rate": 0.3}]
    assert _update_fraction(run) == -1.0                      # neither 60% nor 10%: no paper row
    assert _update_fraction({"config": {"sparse": [0.0, 0.1]}, "epochs": []}) == 0.1
    assert _update_fraction({"config": {"sparse": None}}) is None


def test_report_over_a_runs_folder_skips_what_is_not_a_finished_vae_run(tmp_path, capsys):
    """`vae report runs/*` after a failed run (empty folder) or next to `mcusim train` runs still reports."""
    from mcusim.cli import main
    good = tmp_path / "good"
    good.mkdir()
    (good / "results.json").write_text(json.dumps(_results()))
    (tmp_path / "empty").mkdir()
    assert main(["vae", "report", str(good), str(tmp_path / "empty")]) == 0
    assert "skipping" in capsys.readouterr().err
    assert main(["vae", "report", str(tmp_path / "empty")]) == 2


def test_report_output_never_replaces_a_folder_or_a_symlink_target(tmp_path, capsys):
    """`vae report -o` once renamed over whatever was at the target."""
    from mcusim.cli import main
    run = _write(tmp_path, "run", _results())
    kept = tmp_path / "kept.md"
    kept.write_text("mine")
    (tmp_path / "link.md").symlink_to(kept)
    for target in (tmp_path, tmp_path / "link.md", tmp_path / "missing" / "r.md"):
        assert main(["vae", "report", str(run), "-o", str(target)]) == 2
        assert "Traceback" not in capsys.readouterr().err
    assert kept.read_text() == "mine" and tmp_path.is_dir() and (tmp_path / "link.md").is_symlink()


def test_plot_results_report_and_cli_agree_on_a_run(tmp_path, capsys):
    """One run: the SRAM plot's bars, results.json, the report and the CLI line give the same kB (1000 bytes),
    and the report says that a short run on part of the data is not the paper's setting."""
    from mcusim.cli import main
    from mcusim.plots import sram_bars
    from mcusim.units import kb
    out = tmp_path / "run"
    assert main(["vae", "train", "--epochs", "1", "--train-limit", "100", "--crosscheck-samples", "1",
                 "--head-epochs", "1", "--labels", "1", "--quiet", "--out", str(out)]) == 0
    cli = capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())
    sram = results["mcu"]["sram_bytes"]
    bars = sram_bars(results)
    assert bars["weights"][0] + bars["activations"][0] + bars["other"][0] == pytest.approx(sram["total"] / 1000)
    assert bars["limit"] == sram["limit"] / 1000
    assert f"SRAM {kb(sram['total'])} of {kb(sram['limit'])}" in cli
    md = build_report([load_results(out)])
    row = next(line for line in md.splitlines() if line.startswith(f"| baseline | u8 | {kb(sram['activations'])} ("))
    assert f"| {kb(sram['weights'])} (" in row and f"| {kb(sram['total'])} | {kb(sram['limit'])} |" in row
    assert f"{bars['activations'][0]:.1f} kB" == kb(sram["activations"])
    assert "not the paper's setting** (the embedded 3000-image subset, only the first 100 training images, 1 epochs" in md
    assert "KB" not in cli + md and "KiB" not in cli + md
