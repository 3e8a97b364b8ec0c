"""Compare training runs (`mcusim vae train ... --out DIR`) with the figures Deutel et al. report
(MCSoC 2025, see /work/shared/REFERENCE.md section 3), as Markdown tables.

    runs = [load_results(d) for d in dirs]
    print(build_report(runs))

Every cell is "ours (paper, ours/paper)" where the paper has a figure, and "ours" alone otherwise.
kB means 1000 bytes (mcusim.units, as in the paper's Table I).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from .errors import McusimError
from .units import KB

RESULTS_FILE = "results.json"
PAPER_EPOCHS = 100              # the paper's figures are after 100 epochs on the full training set

# ---------------------------------------------------------------------------------------------------------------------
# errors


class ResultsError(McusimError):
    """A run directory's results.json cannot be used."""


class ResultsMissingError(ResultsError):
    """No results.json where one was expected."""


class ResultsCorruptError(ResultsError):
    """results.json is not valid JSON, or not a JSON object."""


class ResultsKeyError(ResultsError):
    """results.json lacks a key the report needs (or has it with the wrong type)."""


# ---------------------------------------------------------------------------------------------------------------------
# the paper's figures


@dataclass(frozen=True)
class PaperFigure:
    """One number from the paper.

    setting: "fp32", "u8" (dense updates) or "u8-sparse" (dynamic sparse updates; for the accuracy/ELBO figures the
    paper does not give lambda_min/lambda_max). update_fraction: for the timing rows of sparse training, the fraction of
    structures updated (0.6 or 0.1); None otherwise. labels_per_class: only for accuracy.
    """
    metric: str            # accuracy | neg_elbo | sram_activations | sram_weights | latency | inference | power | energy
    value: float
    unit: str              # "%" | "" (neg. ELBO) | "kB" | "ms" | "mW" | "mJ"
    source: str
    dataset: str | None = None
    variant: str = "baseline"
    setting: str = "fp32"
    update_fraction: float | None = None
    labels_per_class: int | None = None


_FIG = "final epoch, read off the paper's plots (+-0.1 points)"
_ELBO = "final epoch (paper's reported value)"
_TAB1 = "Table I"
_TIME = "per-sample measurements, STM32L4R5ZI @ 120 MHz"


def _paper_table() -> tuple[PaperFigure, ...]:
    rows: list[PaperFigure] = []
    # accuracy (%) and negative ELBO, final epoch
    acc = {  # (dataset, setting, labels) -> accuracy %
        ("mnist", "fp32", 10): 73.4, ("mnist", "fp32", 100): 89.0, ("mnist", "fp32", 200): 91.2,
        ("mnist", "u8", 100): 89.3, ("mnist", "u8-sparse", 100): 89.1,
        ("fashion-mnist", "fp32", 10): 63.4, ("fashion-mnist", "fp32", 100): 75.1, ("fashion-mnist", "fp32", 200): 77.4,
        ("fashion-mnist", "u8", 100): 75.7, ("fashion-mnist", "u8-sparse", 100): 76.0,
    }
    for (ds, setting, labels), v in acc.items():
        rows.append(PaperFigure("accuracy", v, "%", _FIG, dataset=ds, setting=setting, labels_per_class=labels))
    elbo = {("mnist", "fp32"): 108.4, ("mnist", "u8"): 114.6, ("mnist", "u8-sparse"): 113.8,
            ("fashion-mnist", "fp32"): 250.6, ("fashion-mnist", "u8"): 256.1, ("fashion-mnist", "u8-sparse"): 254.5}
    for (ds, setting), v in elbo.items():
        rows.append(PaperFigure("neg_elbo", v, "", _ELBO, dataset=ds, setting=setting))
    # SRAM, Table I (kB = 1000 bytes)
    sram = {"baseline": (45.3, 484.1, 23.0, 221.0), "latent": (46.4, 742.6, 23.6, 347.4),
            "filters": (84.3, 1201.4, 36.0, 590.3), "classes": (46.4, 496.2, 24.0, 236.2)}
    for variant, (fa, fw, ua, uw) in sram.items():
        for setting, a, w in (("fp32", fa, fw), ("u8", ua, uw)):
            rows.append(PaperFigure("sram_activations", a, "kB", _TAB1, variant=variant, setting=setting))
            rows.append(PaperFigure("sram_weights", w, "kB", _TAB1, variant=variant, setting=setting))
    # per training sample, baseline model
    timing = [("fp32", None, 224.01, 59.65, 46.08, 10.32), ("u8", None, 228.49, 44.92, 45.84, 10.47),
              ("u8-sparse", 0.6, 196.71, 44.96, 43.37, 8.53), ("u8-sparse", 0.1, 111.54, 44.96, 27.76, 3.10)]
    for setting, frac, lat, inf, pw, en in timing:
        for metric, v, unit in (("latency", lat, "ms"), ("inference", inf, "ms"), ("power", pw, "mW"),
                                ("energy", en, "mJ")):
            rows.append(PaperFigure(metric, v, unit, _TIME, setting=setting, update_fraction=frac))
    return tuple(rows)


PAPER: tuple[PaperFigure, ...] = _paper_table()


def paper_value(metric: str, *, dataset: str | None = None, variant: str = "baseline", setting: str = "fp32",
                update_fraction: float | None = None, labels_per_class: int | None = None) -> float | None:
    """The paper's figure for exactly this cell, or None if the paper does not report one."""
    for f in PAPER:
        if (f.metric == metric and f.dataset == dataset and f.variant == variant and f.setting == setting
                and f.update_fraction == update_fraction and f.labels_per_class == labels_per_class):
            return f.value
    return None


def paper_markdown() -> str:
    """PAPER as a Markdown table (one row per figure)."""
    lines = ["| metric | dataset | variant | setting | updated | labels/class | value | source |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for f in PAPER:
        upd = f"{f.update_fraction:.0%}" if f.update_fraction is not None else ""
        lines.append(f"| {f.metric} | {f.dataset or ''} | {f.variant} | {f.setting} | {upd} | "
                     f"{f.labels_per_class or ''} | {f.value:g} {f.unit} | {f.source} |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------------------
# loading

_REQUIRED: dict[str, type | tuple[type, ...]] = {
    "config": dict, "config.dataset": str, "config.precision": str, "config.variant": str, "config.epochs": int,
    "config.seed": int, "config.sparse": (list, type(None)),
    "epochs": list,
    "mcu": dict, "mcu.board": str, "mcu.hclk_mhz": (int, float), "mcu.fits": bool, "mcu.sram_bytes": dict,
    "mcu.sram_bytes.activations": int, "mcu.sram_bytes.weights": int, "mcu.sram_bytes.total": int,
    "mcu.sram_bytes.limit": int,
    "wall_seconds": (int, float),
}
_EPOCH_REQUIRED: dict[str, type | tuple[type, ...]] = {
    "epoch": int, "train_neg_elbo": (int, float), "test_neg_elbo": (int, float), "test_accuracy": dict,
}


def _lookup(obj: Any, dotted: str) -> tuple[bool, Any]:
    for part in dotted.split("."):
        if not isinstance(obj, dict) or part not in obj:
            return False, None
        obj = obj[part]
    return True, obj


def _check(obj: dict, spec: dict, path: Path, prefix: str = "") -> None:
    for key, types in spec.items():
        found, value = _lookup(obj, key)
        name = prefix + key
        if not found:
            raise ResultsKeyError(f"{path}: missing key '{name}'; the file was probably written by an older or "
                                  f"interrupted `mcusim vae train` run - rerun training to regenerate it")
        if isinstance(value, bool) and types in (int, (int, float)):
            ok = False
        else:
            ok = isinstance(value, types)
        if not ok:
            want = " or ".join(t.__name__ for t in (types if isinstance(types, tuple) else (types,)))
            raise ResultsKeyError(f"{path}: key '{name}' should be {want}, found {type(value).__name__} {value!r}")


def load_results(run_dir: str | Path) -> dict:
    """Read and check DIR/results.json (DIR may also be the file itself).

    Returns the parsed dict plus one added key, "run_dir" (the directory as a string), used by build_report.
    Raises ResultsMissingError, ResultsCorruptError or ResultsKeyError (all McusimError) naming the file and key.
    """
    p = Path(run_dir)
    path = p if p.suffix == ".json" else p / RESULTS_FILE
    if not path.is_file():
        where = "directory does not exist" if not path.parent.exists() else "no such file"
        raise ResultsMissingError(f"{path}: {where}; pass the --out directory of a finished `mcusim vae train` run")
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ResultsCorruptError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}); "
                                  f"the run may have been interrupted while writing it") from None
    except UnicodeDecodeError as exc:
        raise ResultsCorruptError(f"{path}: not UTF-8 text ({exc.reason})") from None
    if not isinstance(results, dict):
        raise ResultsCorruptError(f"{path}: expected a JSON object at the top level, found {type(results).__name__}")
    _check(results, _REQUIRED, path)
    for i, ep in enumerate(results["epochs"]):
        if not isinstance(ep, dict):
            raise ResultsKeyError(f"{path}: 'epochs[{i}]' should be an object, found {type(ep).__name__}")
        _check(ep, _EPOCH_REQUIRED, path, prefix=f"epochs[{i}].")
    results["run_dir"] = str(path.parent)
    return results


# ---------------------------------------------------------------------------------------------------------------------
# formatting helpers


def _cell(ours: float | None, paper: float | None, fmt: str, unit: str = "") -> str:
    """'ours (paper, ratio)' or 'ours' alone; '—' when we have no value."""
    if ours is None or (isinstance(ours, float) and math.isnan(ours)):
        return "—"
    text = f"{ours:{fmt}}{unit}"
    if paper is None:
        return text
    ratio = f"{ours / paper:.2f}" if paper else "n/a"
    return f"{text} ({paper:{fmt}}{unit}, {ratio})"


def _setting(cfg: dict) -> str:
    """fp32 | u8 | u8-sparse (the paper's setting names)."""
    return f"{cfg['precision']}-sparse" if cfg.get("sparse") else cfg["precision"]


def _setting_label(cfg: dict) -> str:
    sp = cfg.get("sparse")
    if not sp:
        return cfg["precision"]
    return f"{cfg['precision']} sparse λ=[{sp[0]:g}, {sp[1]:g}]"


def _update_fraction(run: dict) -> float | None:
    """Which of the paper's sparse timing rows ("60%/10% of structures updated") a run matches: the one
    within 10 points of the run's measured mean update rate, or by lambda_max when none was recorded."""
    sp = run["config"].get("sparse")
    if not sp:
        return None
    rates = [e["update_rate"] for e in run.get("epochs", []) if isinstance(e.get("update_rate"), (int, float))]
    if rates:
        mean = sum(rates) / len(rates)
        return next((f for f in (0.6, 0.1) if abs(mean - f) <= 0.1), -1.0)
    lmax = round(float(sp[1]), 2)
    return lmax if lmax in (0.6, 0.1) else -1.0     # -1: sparse, but not a setting the paper timed


def _num(v: Any) -> str:
    return f"{v:g}" if isinstance(v, (int, float)) else "?"


def _duration(seconds: float) -> str:
    s = int(round(seconds))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h {m:02d}m {s:02d}s" if h else f"{m}m {s:02d}s"


def _run_name(run: dict, index: int) -> str:
    return run.get("run_dir") or f"run #{index + 1}"


def _dedupe(runs: list[dict], key_fn, what: str, notes: list[str]) -> list[tuple[int, dict]]:
    """Keep the later run of each key (list order); note every run dropped."""
    chosen: dict[Any, tuple[int, dict]] = {}
    for i, run in enumerate(runs):
        key = key_fn(run)
        if key is None:
            continue
        if key in chosen:
            j, old = chosen[key]
            notes.append(f"- {what}: {_run_name(old, j)} and {_run_name(run, i)} have the same setting "
                         f"({', '.join(str(k) for k in key)}); using the later one, {_run_name(run, i)}.")
        chosen[key] = (i, run)
    return list(chosen.values())


def _table(header: list[str], rows: Iterable[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out


def _accuracy_points(run: dict) -> list[tuple[int, dict]]:
    """(labels per class, last epoch that has an accuracy for it)."""
    found: dict[int, dict] = {}
    for ep in run["epochs"]:
        for k in (ep.get("test_accuracy") or {}):
            found[int(k)] = ep
    return sorted(found.items())


def _accuracy(ep: dict, labels: int) -> float | None:
    acc = ep.get("test_accuracy") or {}
    v = acc.get(str(labels), acc.get(labels))
    return None if v is None else float(v)


# ---------------------------------------------------------------------------------------------------------------------
# the report


def _unlike_the_paper(run: dict) -> str:
    """What sets a run apart from the paper's setting (full training set, 100 epochs), said next to it."""
    cfg = run["config"]
    differences = []
    if "embedded" in str(cfg.get("data", "")):
        differences.append("the embedded 3000-image subset")
    if cfg.get("train_limit"):
        differences.append(f"only the first {cfg['train_limit']} training images")
    if len(run["epochs"]) < PAPER_EPOCHS:
        differences.append(f"{len(run['epochs'])} epochs")
    if not differences:
        return ""
    return (f" — **not the paper's setting** ({', '.join(differences)}; the paper trains {PAPER_EPOCHS} epochs on the "
            f"full training set): its ratios below are not a reproduction")


def build_report(runs: list[dict]) -> str:
    """Markdown comparing the runs with the paper: (a) accuracy and neg. ELBO, (b) SRAM, (c) time and energy.

    runs: dicts as returned by load_results. When two runs cover the same setting, the later one in the list wins
    (and the report says so). Cells no run covers are left out.
    """
    out: list[str] = ["# mcusim VAE training vs. Deutel et al. (MCSoC 2025)", ""]
    notes: list[str] = []

    out += ["## Runs", ""]
    if not runs:
        out += ["No runs given.", ""]
    for i, run in enumerate(runs):
        cfg = run["config"]
        mcu = run.get("mcu") or {}
        sps = run.get("samples_per_second")
        extra = f", {sps:.1f} samples/s" if isinstance(sps, (int, float)) else ""
        out.append(f"- `{_run_name(run, i)}`: {cfg['dataset']}, {cfg['variant']}, {_setting_label(cfg)}, "
                   f"{len(run['epochs'])}/{cfg['epochs']} epochs, batch {cfg.get('batch_size', '?')}, "
                   f"lr {cfg.get('lr', '?')} {cfg.get('lr_schedule', 'constant')}, seed {cfg['seed']}, {mcu.get('board', '?')} @ "
                   f"{_num(mcu.get('hclk_mhz', cfg.get('hclk_mhz')))} MHz; wall time {_duration(run['wall_seconds'])}"
                   f"{extra}{_unlike_the_paper(run)}")
    out.append("")
    out.append("Cells read \"ours (paper, ours/paper)\" where the paper reports a figure, \"ours\" alone otherwise.")
    out.append("")

    # (a) accuracy and negative ELBO ------------------------------------------------------------------------------
    out += ["## (a) Classifier accuracy and negative ELBO", "",
            "Paper: final-epoch figures (100 epochs) of the baseline model, accuracy read off the paper's plots "
            "(about +-0.1 points); the paper's neg. ELBO does not depend on the labels per class. Ours: test split, "
            "the last epoch that has head accuracies. The paper gives u8 and u8-sparse figures only for 100 "
            "labels/class and does not state lambda_min/lambda_max for its sparse accuracy figures; any sparse run "
            "is compared with them.", ""]
    chosen = _dedupe(runs, lambda r: (r["config"]["dataset"], r["config"]["variant"], _setting_label(r["config"])),
                     "table (a)", notes)
    rows = []
    for _, run in chosen:
        cfg = run["config"]
        is_base = cfg["variant"] == "baseline"
        setting = _setting(cfg)
        pe = paper_value("neg_elbo", dataset=cfg["dataset"], setting=setting) if is_base else None
        points = _accuracy_points(run)
        if not points:      # no accuracy evaluated: still report the ELBO of the last epoch
            if not run["epochs"]:
                continue
            ep = run["epochs"][-1]
            rows.append([cfg["dataset"], cfg["variant"], _setting_label(cfg), "—", str(ep["epoch"]), "—",
                         _cell(ep["test_neg_elbo"], pe, ".1f")])
            continue
        for labels, ep in points:
            pa = paper_value("accuracy", dataset=cfg["dataset"], setting=setting,
                             labels_per_class=labels) if is_base else None
            acc = _accuracy(ep, labels)
            rows.append([cfg["dataset"], cfg["variant"], _setting_label(cfg), str(labels), str(ep["epoch"]),
                         _cell(None if acc is None else 100 * acc, pa, ".1f", "%"),
                         _cell(ep["test_neg_elbo"], pe, ".1f")])
    out += _table(["dataset", "variant", "setting", "labels/class", "epoch", "accuracy", "test neg. ELBO"], rows)
    out.append("")

    # (b) SRAM ------------------------------------------------------------------------------------------------------
    out += ["## (b) SRAM per variant and precision (kB = 1000 bytes)", "",
            "Paper: Table I (\"weights\" = trainable weights and their gradient buffers, \"activations\" = "
            "activations and error tensors); it reports no total, static or stack figure. Ours: the run's "
            "mcu.sram_bytes; total is everything the firmware needs in SRAM, compared against the board's limit.",
            ""]
    chosen = _dedupe(runs, lambda r: (r["config"]["variant"], _setting_label(r["config"])), "table (b)", notes)
    rows = []
    for _, run in chosen:
        cfg = run["config"]
        sram = run["mcu"]["sram_bytes"]
        setting = cfg["precision"]       # the paper's Table I has no separate sparse column
        pa = paper_value("sram_activations", variant=cfg["variant"], setting=setting)
        pw = paper_value("sram_weights", variant=cfg["variant"], setting=setting)
        rows.append([cfg["variant"], _setting_label(cfg),
                     _cell(sram["activations"] / KB, pa, ".1f", " kB"),
                     _cell(sram["weights"] / KB, pw, ".1f", " kB"),
                     _cell(sram["total"] / KB, None, ".1f", " kB"),
                     _cell(sram["limit"] / KB, None, ".1f", " kB"),
                     "yes" if run["mcu"]["fits"] else "no"])
    out += _table(["variant", "setting", "activations", "weights", "total", "limit", "fits"], rows)
    out.append("")

    # (c) time, power, energy ---------------------------------------------------------------------------------------
    out += ["## (c) Time, power and energy per training sample", "",
            "Paper: baseline model on the STM32L4R5ZI at 120 MHz, measured with GPIO timing and a power analyzer; "
            "the sparse rows are \"60%\" and \"10% of structures updated\" (a sparse run is compared with the "
            "row within 10 points of its measured update rate, or by lambda_max if it recorded none). "
            "Ours: training step and inference are *emulated* (cycle counts of the simulated firmware at the run's "
            "clock); power and energy are a *model* (the board's datasheet run-current table x supply voltage, "
            "not a measurement; each run's `power_model` in results.json names the table); "
            "\"—\" when the model does not fit in SRAM.", ""]
    chosen = _dedupe(runs, lambda r: (r["config"]["variant"], _setting_label(r["config"])), "table (c)", notes)
    rows = []
    for _, run in chosen:
        cfg, mcu = run["config"], run["mcu"]
        frac = _update_fraction(run)
        paper_ok = cfg["variant"] == "baseline" and frac != -1.0

        def pv(metric: str) -> float | None:
            return paper_value(metric, setting=_setting(cfg), update_fraction=frac) if paper_ok else None

        def num(key: str) -> float | None:
            v = mcu.get(key)
            return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None

        lat, std = num("latency_ms"), num("cycles_per_training_sample_std")
        cyc = num("cycles_per_training_sample")
        lat_cell = _cell(lat, pv("latency"), ".2f", " ms")
        if lat is not None and std and cyc:
            lat_cell += f" ±{lat * std / cyc:.2f}"
        rows.append([cfg["variant"], _setting_label(cfg), f"{mcu['board']} @ {mcu['hclk_mhz']:g} MHz", lat_cell,
                     _cell(num("inference_ms"), pv("inference"), ".2f", " ms"),
                     _cell(num("power_mw"), pv("power"), ".2f", " mW"),
                     _cell(num("energy_mj"), pv("energy"), ".2f", " mJ")])
    out += _table(["variant", "setting", "board", "training step (emulated)", "inference (emulated)",
                   "power (model; paper: measured)", "energy (model; paper: measured)"], rows)
    out.append("")

    if notes:
        out += ["## Notes", ""] + notes + [""]
    return "\n".join(out)
