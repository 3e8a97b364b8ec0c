#!/usr/bin/env python3
"""Where u8's test ELBO is lost: in what u8 can represent, or in what u8 training finds. Compares two
finished `mcusim vae train` runs of one model, a u8 and an fp32 one (the README's "Fourth look" quotes it):

- the u8 run's weights, evaluated in u8 (as trained) and in fp32 with each weight dequantized
  (scale * (code - zero point)): the cost of u8 activations at inference for those weights;
- the fp32 run's weights, quantized per tensor on their exact min/max (round to nearest), evaluated in fp32
  and in u8 (the activation ranges observed with alpha_a 0.1 over the first --calibrate training images, then
  frozen, as in a u8 run's evaluation): what u8 weights and activations can hold of a good fp32 solution.

Every test ELBO is the mean over the test split with one fixed RNG seed for the reparameterization noise.
With --hold OUT it also writes OUT/checkpoint.npz: the u8 run with the quantized fp32 weights and calibrated
ranges, set to continue for --epochs more epochs at the constant --lr, and prints the `mcusim vae train
--resume` command that does it (does u8 training hold a solution it can represent?).

Usage:
    python tools/u8_elbo_decompose.py U8_RUN FP32_RUN [--data-dir DIR] [--calibrate 2000]
                                      [--hold OUT --lr 0.001 --epochs 4]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from mcusim.datasets import load
from mcusim.graph import load_model
from mcusim.ops.quant_u8 import quantize_tensor
from mcusim.runtime import HostStep
from mcusim.tasks import build
from mcusim.train import checkpoint_layout, write_checkpoint

NOISE_SEED = 12345


def refuse(message: str) -> None:
    """Bad input: one line on stderr and exit status 2, as mcusim's commands do."""
    print(message, file=sys.stderr)
    sys.exit(2)


def load_run(run: Path) -> tuple[dict, HostStep]:
    """A run's config and a host step holding its checkpoint."""
    with np.load(run / "checkpoint.npz", allow_pickle=False) as ck:
        config = json.loads(bytes(ck["results"]).decode())["config"]
        program = build(load_model(config["variant"]), config["precision"], config["sparse"] is not None)
        if bytes(ck["layout"]).decode() != checkpoint_layout(program):
            refuse(f"{run}: its checkpoint was written by another mcusim (memory layout differs)")
        host = HostStep(program, threads=1)
        for key in ck.files:
            if key.startswith("arena_"):
                host.arenas[key[len("arena_"):]][...] = ck[key]
    return config, host


def test_elbo(host: HostStep, images: np.ndarray) -> float:
    host.view("rng_state")[0] = NOISE_SEED
    frozen = {"alpha_a": 0.0, "alpha_e": 0.0} if host.program.precision == "u8" else {}
    order = np.arange(len(images), dtype=np.int64)
    return float(np.mean(host.run_batch("evaluate", images, order, 0, len(order), **frozen)))


def weight_names(host: HostStep) -> list[str]:
    return [t.name for t in host.program.tensors.values() if t.kind == "weights"]


def dequantized(u8: HostStep, name: str) -> np.ndarray:
    q = u8.view(name + ".qparams")[0]
    return np.float32(q["scale"]) * (u8.view(name).astype(np.float32) - np.float32(q["zero_point"]))


def quantize_into(u8: HostStep, name: str, w: np.ndarray) -> None:
    """w as u8 codes on its exact [min, max] (as initial weights are quantized), and its qparams."""
    u8.view(name)[...], u8.view(name + ".qparams")[...] = quantize_tensor(w)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("u8_run", type=Path)
    ap.add_argument("fp32_run", type=Path)
    ap.add_argument("--data-dir")
    ap.add_argument("--calibrate", type=int, default=2000, help="training images that set the activation ranges")
    ap.add_argument("--hold", type=Path, help="write a u8 checkpoint seeded with the fp32 weights here")
    ap.add_argument("--lr", type=float, default=0.001, help="constant learning rate of the --hold continuation")
    ap.add_argument("--epochs", type=int, default=4, help="epochs of the --hold continuation")
    a = ap.parse_args()
    if a.hold is not None and a.hold.exists():
        refuse(f"--hold {a.hold} exists: name a new folder")
    for run in (a.u8_run, a.fp32_run):
        if not (run / "checkpoint.npz").is_file():
            refuse(f"{run} has no checkpoint.npz: name the --out folder of a finished `mcusim vae train` run")
    cu, u8 = load_run(a.u8_run)
    cf, f32 = load_run(a.fp32_run)
    if (cu["precision"], cf["precision"]) != ("u8", "fp32") or (cu["variant"], cu["dataset"]) != (cf["variant"], cf["dataset"]):
        refuse("give a u8 run and an fp32 run of the same variant and dataset")
    train, test = (load(cu["dataset"], split, a.data_dir)[0] for split in ("train", "test"))
    train, test = (np.ascontiguousarray(x.reshape(len(x), -1), np.uint8) for x in (train, test))
    trained = {n: f32.view(n).copy() for n in weight_names(f32)}
    rows = [("u8 run, u8 inference", test_elbo(u8, test)), ("fp32 run, fp32 inference", test_elbo(f32, test))]
    for n in weight_names(u8):
        f32.view(n)[...] = dequantized(u8, n)
    rows.append(("u8 run's weights dequantized, fp32 inference", test_elbo(f32, test)))
    for n in weight_names(u8):
        quantize_into(u8, n, trained[n])
        f32.view(n)[...] = dequantized(u8, n)
    rows.append(("fp32 run's weights quantized per tensor, fp32 inference", test_elbo(f32, test)))
    u8.view("rng_state")[0] = NOISE_SEED
    u8.run_batch("evaluate", train, np.arange(a.calibrate, dtype=np.int64), 0, a.calibrate, alpha_a=0.1, alpha_e=0.0)
    rows.append(("fp32 run's weights quantized per tensor, u8 inference", test_elbo(u8, test)))
    print(f"{cu['variant']} on {cu['dataset']}: test negative ELBO (host twins, bit-exact with the MCU)")
    for label, value in rows:
        print(f"  {label:58s} {value:8.2f}")
    if a.hold is not None:
        write_hold(a, cu, u8)


def write_hold(a, config: dict, u8: HostStep) -> None:
    """The u8 run's checkpoint with u8's arenas (quantized fp32 weights), its config set to a constant lr
    and a.epochs more epochs, for `vae train --resume`."""
    with np.load(a.u8_run / "checkpoint.npz", allow_pickle=False) as ck:
        results = json.loads(bytes(ck["results"]).decode())
    epochs = len(results["epochs"]) + a.epochs
    results["config"].update(lr=a.lr, lr_schedule="constant", epochs=epochs)
    a.hold.mkdir(parents=True)
    write_checkpoint(a.hold / "checkpoint.npz", results, u8.program, u8.arenas)
    data = f" --data-dir {a.data_dir}" if a.data_dir else ""
    print(f"continue with: mcusim vae train --resume --out {a.hold} --dataset {config['dataset']} --variant "
          f"{config['variant']} --precision u8 --lr {a.lr} --lr-schedule constant --epochs {epochs}{data}")


if __name__ == "__main__":
    main()
