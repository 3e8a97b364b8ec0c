"""PNG plots of a training run: loss and accuracy curves, SRAM use against the board, generated samples.

Figures are drawn with matplotlib's object API on an Agg canvas (no pyplot, no windows, no global state) and written
atomically (mcusim.outputs.write_atomic).
"""
from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from .outputs import write_atomic
from .report import paper_value
from .units import KB


def _new_figure(width: float = 6.4, height: float = 4.2) -> Figure:
    fig = Figure(figsize=(width, height), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_png(fig: Figure, path: str | Path) -> Path:
    """Write fig to path through mcusim.outputs (atomic, never over a folder, device or symlink)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    write_atomic(path, buf.getvalue())
    return path


def _title(results: dict, what: str) -> str:
    cfg = results.get("config", {})
    sp = cfg.get("sparse")
    setting = f"{cfg.get('precision', '?')} sparse λ=[{sp[0]:g}, {sp[1]:g}]" if sp else cfg.get("precision", "?")
    model = cfg.get("model") or cfg.get("variant", "?")
    return f"{what}\n{cfg.get('dataset', '?')}, {model}, {setting}"


def _plot_neg_elbo(results: dict, path: Path) -> Path:
    fig = _new_figure()
    ax = fig.add_subplot()
    eps = results["epochs"]
    x = [e["epoch"] for e in eps]
    ax.plot(x, [e["train_neg_elbo"] for e in eps], marker=".", label="train")
    ax.plot(x, [e["test_neg_elbo"] for e in eps], marker=".", label="test")
    cfg = results.get("config", {})
    setting = f"{cfg.get('precision')}-sparse" if cfg.get("sparse") else cfg.get("precision")
    if cfg.get("variant") == "baseline":
        p = paper_value("neg_elbo", dataset=cfg.get("dataset"), setting=setting)
        if p is not None:
            ax.axhline(p, color="gray", linestyle="--", label=f"paper, final epoch ({p:g})")
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("negative ELBO (summed per image)")
    ax.set_title(_title(results, "Negative ELBO per epoch"))
    ax.grid(alpha=0.3)
    ax.legend()
    return save_png(fig, path)


def _plot_accuracy(results: dict, path: Path) -> Path:
    fig = _new_figure()
    ax = fig.add_subplot()
    any_points = False
    evaluated = {int(k) for e in results["epochs"] for k in (e.get("test_accuracy") or {})}
    for labels in sorted(evaluated):                  # the run's --labels, whatever they were
        pts = [(e["epoch"], 100 * (e.get("test_accuracy") or {}).get(str(labels)))
               for e in results["epochs"] if (e.get("test_accuracy") or {}).get(str(labels)) is not None]
        if not pts:
            continue
        any_points = True
        x, y = zip(*pts)
        line, = ax.plot(x, y, marker=".", label=f"{labels} labels/class")
        cfg = results.get("config", {})
        setting = f"{cfg.get('precision')}-sparse" if cfg.get("sparse") else cfg.get("precision")
        if cfg.get("variant") == "baseline":
            p = paper_value("accuracy", dataset=cfg.get("dataset"), setting=setting, labels_per_class=labels)
            if p is not None:
                ax.axhline(p, color=line.get_color(), linestyle="--", alpha=0.6, label=f"paper, {labels}/class ({p:g}%)")
    if not any_points:
        ax.text(0.5, 0.5, "no classifier accuracy evaluated", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("test accuracy of the classifier head (%)")
    ax.set_title(_title(results, "Classifier head accuracy on mu (the test split)"))
    ax.grid(alpha=0.3)
    if any_points:
        ax.legend(fontsize="small")
    return save_png(fig, path)


def sram_bars(results: dict) -> dict:
    """The SRAM plot's stacked bars in kB: this run (summing to results.json's total) and, where the paper
    has one, its Table I figure; and the board's limit."""
    sram = results["mcu"]["sram_bytes"]
    cfg = results.get("config", {})
    bars = {"label": ["this run"], "weights": [sram["weights"] / KB], "activations": [sram["activations"] / KB],
            # the rest of the total: start-up data, the measured stack, the decode buffer
            "other": [(sram["total"] - sram["weights"] - sram["activations"]) / KB], "limit": sram["limit"] / KB}
    pw = paper_value("sram_weights", variant=cfg.get("variant", "baseline"), setting=cfg.get("precision", "fp32"))
    pa = paper_value("sram_activations", variant=cfg.get("variant", "baseline"), setting=cfg.get("precision", "fp32"))
    if pw is not None and pa is not None:
        bars["label"].append("paper, Table I\n(no static/stack figure)")
        bars["weights"].append(pw)
        bars["activations"].append(pa)
        bars["other"].append(0.0)
    return bars


def _plot_sram(results: dict, path: Path) -> Path:
    b = sram_bars(results)
    bars, weights, acts, other = b["label"], b["weights"], b["activations"], b["other"]
    fig = _new_figure(5.6, 4.6)
    ax = fig.add_subplot()
    x = np.arange(len(bars))
    ax.bar(x, weights, width=0.5, label="weights + gradients")
    ax.bar(x, acts, width=0.5, bottom=weights, label="activations + errors")
    ax.bar(x, other, width=0.5, bottom=np.add(weights, acts), label="start-up data, stack, decode buffer")
    limit = b["limit"]
    ax.axhline(limit, color="red", linestyle="--", label=f"SRAM limit ({limit:.1f} kB)")
    for xi, total in zip(x, np.add(np.add(weights, acts), other)):
        ax.annotate(f"{total:.1f} kB", (xi, total), ha="center", va="bottom", xytext=(0, 2),
                    textcoords="offset points", fontsize="small")
    ax.set_xticks(x, bars)
    ax.set_ylabel("SRAM (kB = 1000 bytes)")
    ax.set_ylim(0, max(limit, max(np.add(np.add(weights, acts), other))) * 1.15)
    fits = "fits" if results["mcu"].get("fits") else "does NOT fit"
    ax.set_title(_title(results, f"SRAM use on {results['mcu'].get('board', '?')} ({fits})"))
    ax.legend(fontsize="small", loc="upper right")
    return save_png(fig, path)


def _plot_loss(results: dict, path: Path) -> Path:
    """Loss per epoch, and test accuracy on a second axis for a classifier (`mcusim train` runs)."""
    fig = _new_figure()
    ax = fig.add_subplot()
    eps = results["epochs"]
    x = [e["epoch"] for e in eps]
    ax.plot(x, [e["train_loss"] for e in eps], marker=".", label="train loss")
    ax.plot(x, [e["test_loss"] for e in eps], marker=".", label="test loss")
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("loss per sample (emulated-MCU arithmetic, host run)")
    ax.grid(alpha=0.3)
    handles = ax.get_legend_handles_labels()
    if any(e.get("test_accuracy") is not None for e in eps):
        acc = ax.twinx()
        acc.plot(x, [100 * (e["test_accuracy"] or 0) for e in eps], marker=".", color="C2", label="test accuracy")
        acc.set_ylabel("test accuracy (%)")
        h2 = acc.get_legend_handles_labels()
        handles = (handles[0] + h2[0], handles[1] + h2[1])
    ax.legend(*handles, fontsize="small")
    ax.set_title(_title(results, "Loss and accuracy per epoch"))
    return save_png(fig, path)


def plot_run(results: dict, out_dir: str | Path) -> list[Path]:
    """Write the run's plots (a results.json dict) into out_dir: neg_elbo.png, accuracy.png and sram.png
    for the VAE, loss.png and sram.png for any other model."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if results["epochs"] and "train_loss" in results["epochs"][0]:
        return [_plot_loss(results, out / "loss.png"), _plot_sram(results, out / "sram.png")]
    return [_plot_neg_elbo(results, out / "neg_elbo.png"),
            _plot_accuracy(results, out / "accuracy.png"),
            _plot_sram(results, out / "sram.png")]


def plot_samples(images: np.ndarray, path: str | Path, title: str) -> Path:
    """A grid of images [N, 28, 28] (or [N, 784]) with values in [0, 1], as a grayscale PNG at path."""
    imgs = np.asarray(images, dtype=np.float32)
    if imgs.ndim == 2 and imgs.shape[1] == 28 * 28:
        imgs = imgs.reshape(-1, 28, 28)
    if imgs.ndim != 3 or imgs.shape[0] == 0:
        raise ValueError(f"plot_samples: expected images of shape [N, 28, 28] with N >= 1, got {imgs.shape}")
    n, h, w = imgs.shape
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    pad = 2
    grid = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad), 0.5, dtype=np.float32)  # gray separators
    for i, img in enumerate(np.clip(imgs, 0.0, 1.0)):
        r, c = divmod(i, cols)
        y, x = pad + r * (h + pad), pad + c * (w + pad)
        grid[y:y + h, x:x + w] = img
    side = min(8.0, max(3.0, 0.6 * cols))
    fig = _new_figure(side, side * grid.shape[0] / grid.shape[1] + 0.5)
    ax = fig.add_subplot()
    ax.imshow(grid, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_axis_off()
    ax.set_title(title)
    return save_png(fig, path)


def plot_plan(plan: dict, path: str | Path) -> Path:
    """The plan as a picture: SRAM per layer by kind (stacked bars), and the live-tensor timeline of one
    training sample and its update, with the firmware's static total, the peak and the board's limit."""
    kinds = ("activations", "errors", "weights", "gradients", "optimiser", "qparams", "sparse")
    fig = _new_figure(11.0, 8.0)
    bars, line = fig.add_subplot(2, 1, 1), fig.add_subplot(2, 1, 2)
    layers = plan["layers"]
    x = np.arange(len(layers) + 1)
    bottom = np.zeros(len(x))
    shared = plan["sram_by_kind"]
    for k in kinds:
        values = np.array([r["sram"][k] / KB for r in layers] + [0.0])
        bars.bar(x, values, bottom=bottom, label=k)
        bottom += values
    bars.bar(x[-1:], [(shared["scratch"] + shared["task"]) / KB], color="gray", label="scratch + task buffers")
    bars.set_xticks(x, [r["name"] for r in layers] + ["shared"], rotation=30, ha="right", fontsize="small")
    bars.set_ylabel("SRAM (kB = 1000 bytes)")
    bars.set_title(f"{plan['model']} ({plan['precision']}) on {plan['board']}: SRAM by layer and kind "
                   f"(analytic: the memory plan)")
    bars.legend(fontsize="x-small", ncol=4)
    bars.grid(alpha=0.3, axis="y")

    tl = plan["timeline"]
    steps = np.arange(len(tl["calls"]))
    line.stackplot(steps, *[np.array(tl["live_bytes_by_kind"][k]) / KB for k in (*kinds, "scratch", "task")],
                   labels=[*kinds, "scratch", "task"], step="post", alpha=0.85)
    limit = plan["fit"]["sram"]["limit"] / KB
    line.axhline(tl["static_bytes"] / KB, color="black", linestyle="--",
                 label=f"all buffers static, as the firmware keeps them ({tl['static_bytes'] / KB:.1f} kB)")
    line.axhline(limit, color="red", linestyle="--", label=f"SRAM limit ({limit:.1f} kB)")
    peak = tl["peak_call"]
    if peak is not None:
        line.annotate(f"peak of live buffers {tl['peak_bytes'] / KB:.1f} kB", (peak, tl["peak_bytes"] / KB),
                      xytext=(0, 8), textcoords="offset points", ha="center", fontsize="small")
    ticks, labels, previous = [], [], None
    for i, c in enumerate(tl["calls"]):
        here = (c["layer"] or "loss/task", c["direction"] or "")
        if here != previous and c["layer"]:
            ticks.append(i)
            short = {"forward": "fwd", "backward_input": "bwd in", "backward_weight": "bwd w", "update": "update"}
            labels.append(f"{c['layer']} {short.get(c['direction'], '')}")
        previous = here
    line.set_xticks(ticks, labels, rotation=60, ha="right", fontsize="xx-small")
    line.set_ylabel("SRAM needed (kB)")
    line.set_title("Live buffers during one training sample and the update (analytic, from the step's calls)")
    line.set_ylim(0, max(limit, tl["static_bytes"] / KB) * 1.5)          # room for the legend above
    line.legend(fontsize="xx-small", ncol=3, loc="upper left")
    line.grid(alpha=0.3, axis="y")
    return save_png(fig, path)
