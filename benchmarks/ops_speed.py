"""Training throughput (samples/s) of the full VAE step: mcusim's Numba twins vs. the same VAE in PyTorch.

One training "batch" is 100 samples: forward + backward of every sample with the gradients accumulated,
then one weight update.

(a) mcusim's Numba twins (fp32 and u8): `HostStep.run_batch("sample", ...)` over 100 images, then
    `HostStep.run("update", ...)`, exactly as `mcusim vae train` does it. fp32 runs its batch-lane
    twins (mcusim/ops/lanes_f32.py: the 100 samples side by side, bit-exact with the device) on
    <cores> threads (mcusim/host_threads.py: the batch split in parts, the gradients added in sample
    order) and on 1; u8 runs one sample at a time, on one thread.
(b) the same fp32 VAE in PyTorch on the CPU (optional: `pip install .[bench]`), built from the layer
    shapes of `load_model("baseline")`, negative-ELBO loss summed per image, SGD(lr=0.001):
      batch 1   - 100 forward/backward passes of one image each (gradients accumulate), one optimizer
                  step per 100 samples: the on-device per-sample pattern;
      batch 100 - one forward/backward pass on a [100, 1, 28, 28] batch, one optimizer step.
    Measured with torch.set_num_threads(<cores>) and with 1 thread.

Every case is warmed up first (Numba compiles on the first call; that is excluded), then the cases are
timed in turn, one batch of 100 samples each per round, for --repeats rounds, so a change in the
machine's load reaches every case alike; the table gives the best and the median samples/s. The ratios
use the best values. On a machine shared with other jobs, wall time mostly measures the others;
--cpu-time times each batch by the process's CPU time instead: on one thread that is its run time
undisturbed, on several it is their sum (samples per CPU-second: the cost, not the speed).

    python benchmarks/ops_speed.py [--repeats 7] [--model baseline] [--no-torch] [--cpu-time]
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

from mcusim.datasets import load_embedded
from mcusim.graph import load_model
from mcusim.tasks import build
from mcusim.runtime import HostStep, initial_state

BATCH = 100
clock = time.perf_counter          # time.process_time with --cpu-time
SCALARS = {   # (sample scalars, update scalars) per precision, as in the brief / mcusim vae train
    "fp32": ({}, {"lr": 0.001, "alpha_norm": 0.85}),
    "u8": ({"alpha_a": 0.1, "alpha_e": 0.1}, {"lr": 0.001, "alpha_norm": 0.85, "alpha_w": 0.001}),
}


def n_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:                                   # not on Linux
        return os.cpu_count() or 1


def interleaved_rates(batch_fns: list, repeats: int) -> list[tuple[float, float]]:
    """(best, median) samples/s of each `batch_fn(i)` (BATCH samples a call), timed round-robin: one batch
    of each case in turn, `repeats` rounds, so a change in the machine's load falls on every case alike
    rather than on whichever case was running when it came."""
    times = [[] for _ in batch_fns]
    for i in range(repeats):
        for fn, ts in zip(batch_fns, times):
            t0 = clock()
            fn(i)
            ts.append(clock() - t0)
    return [(BATCH / min(ts), BATCH / statistics.median(ts)) for ts in times]


# ---- (a) Numba twins ----------------------------------------------------------------------------
def bench_numba(model, images: np.ndarray, precision: str, threads: int):
    """One batch of the Numba twins as a function of the batch index, compiled and warmed up; and the
    compile (or cache load) time."""
    sample_scalars, update_scalars = SCALARS[precision]
    p = build(model, precision)
    h = HostStep(p, threads=threads)
    h.load_state(initial_state(p, 0))
    order = np.random.default_rng(0).permutation(len(images)).astype(np.int64)
    n_batches = len(images) // BATCH

    def one_batch(i: int) -> None:
        start = (i % n_batches) * BATCH
        h.run_batch("sample", images, order, start, BATCH, **sample_scalars)
        h.run("update", **update_scalars)

    t0 = time.perf_counter()
    one_batch(0)                                             # compiles (or loads Numba's cache)
    compile_s = time.perf_counter() - t0
    one_batch(1)                                             # warm-up
    return one_batch, compile_s


# ---- (b) PyTorch --------------------------------------------------------------------------------
def torch_vae(torch, model):
    """The VAE's layers as torch modules, plus a function giving (x_logits, mu, log_sigma)."""
    nn = torch.nn

    def make(layer):
        if layer.op == "gemm":
            return nn.Linear(layer.n_in, layer.n_out)
        ic, ih, iw = layer.in_shapes[0]
        oc, oh, ow = layer.out_shape
        k, s, pad = layer.attrs["kernel"][0], layer.attrs["stride"], layer.attrs["padding"]
        if layer.op == "conv2d":
            return nn.Conv2d(ic, oc, k, s, pad)
        if layer.op == "convtranspose2d":
            out_pad = oh - ((ih - 1) * s - 2 * pad + k)      # 0 for the built-in models
            return nn.ConvTranspose2d(ic, oc, k, s, pad, output_padding=out_pad)
        raise ValueError(f"unsupported op {layer.op!r}")

    layers = list(model.encoder) + [model.head] + list(model.decoder)
    mods = nn.ModuleList(make(l) for l in layers)
    enc = list(zip(model.encoder, mods[:len(model.encoder)]))
    head_mod = mods[len(model.encoder)]
    dec = list(zip(model.decoder, mods[len(model.encoder) + 1:]))
    latent = model.latent

    def apply(h, layer, mod):
        shape = (layer.n_in,) if layer.op == "gemm" else layer.in_shapes[0]
        h = mod(h.reshape(h.shape[0], *shape))                    # flattens / unflattens between layers
        return torch.relu(h) if layer.activation == "relu" else h

    def forward(x):
        h = x
        for layer, mod in enc:
            h = apply(h, layer, mod)
        stats = apply(h, model.head, head_mod)
        mu, log_sigma = stats[:, :latent], stats[:, latent:]
        z = mu + torch.exp(log_sigma) * torch.randn_like(mu)
        h = z
        for layer, mod in dec:
            h = apply(h, layer, mod)
        return h.reshape(x.shape[0], -1), mu, log_sigma

    return mods, forward


def bench_torch(torch, model, images: np.ndarray, threads: int, batch: int):
    """One batch of the PyTorch VAE (its thread count set on every call) as a function of the batch index,
    warmed up."""
    torch.manual_seed(0)
    F = torch.nn.functional
    mods, forward = torch_vae(torch, model)
    opt = torch.optim.SGD(mods.parameters(), lr=0.001)
    pixels = torch.from_numpy(images.astype(np.float32) / 255.0)          # [N, 784], in [0, 1]
    c, hh, ww = model.input_shape
    n_batches = len(images) // BATCH
    perm = torch.from_numpy(np.random.default_rng(0).permutation(len(images)))

    def step(x):
        logits, mu, log_sigma = forward(x.reshape(-1, c, hh, ww))
        rec = F.binary_cross_entropy_with_logits(logits, x, reduction="sum")
        kl = 0.5 * torch.sum(mu * mu + torch.exp(2 * log_sigma) - 1 - 2 * log_sigma)
        (rec + kl).backward()                                # per image summed, over the batch summed

    def one_batch(i: int) -> None:
        torch.set_num_threads(threads)
        idx = perm[(i % n_batches) * BATCH:(i % n_batches + 1) * BATCH]
        if batch == 1:
            for j in idx.tolist():
                step(pixels[j:j + 1])
        else:
            for k in range(0, BATCH, batch):
                step(pixels[idx[k:k + batch]])
        opt.step()
        opt.zero_grad(set_to_none=False)

    for i in range(2):
        one_batch(i)
    return one_batch


# ---- main ---------------------------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=7, help="timed batches of 100 samples per case")
    ap.add_argument("--model", default="baseline")
    ap.add_argument("--no-torch", action="store_true", help="skip the PyTorch rows")
    ap.add_argument("--cpu-time", action="store_true", help="time by the CPU time of all threads")
    args = ap.parse_args()
    global clock
    if args.cpu_time:
        clock = time.process_time

    model = load_model(args.model)
    x, _ = load_embedded("train")
    images = np.ascontiguousarray(x.reshape(len(x), -1), dtype=np.uint8)           # [N, 784]
    cores = n_cores()
    thread_counts = sorted({cores, 1}, reverse=True)
    cases = []       # (implementation, batch, threads, one_batch)
    notes = []
    for precision, threads in [("fp32", t) for t in thread_counts] + [("u8", 1)]:
        one_batch, compile_s = bench_numba(model, images, precision, threads)
        cases.append((f"mcusim Numba {precision}", BATCH if precision == "fp32" else 1, threads, one_batch))
        notes.append(f"Numba {precision}, {threads} thread{'s' if threads > 1 else ''}: first batch "
                     f"(compile / cache load) {compile_s:.1f} s, excluded")

    torch = None
    if not args.no_torch:
        try:
            import torch
        except ImportError:
            torch = None
    if torch is not None:
        for threads in thread_counts:
            for batch in (1, BATCH):
                cases.append((f"PyTorch {torch.__version__} fp32", batch, threads,
                              bench_torch(torch, model, images, threads, batch)))
    rows = [(name, batch, threads, best, med) for (name, batch, threads, _), (best, med)
            in zip(cases, interleaved_rates([c[3] for c in cases], args.repeats))]   # (impl., batch, threads, ...)

    print(f"VAE '{model.name}' training step, {model.n_params} parameters, {BATCH} samples per update, "
          f"{cores} cores, best / median of {args.repeats} batches per case (cases taken in turn, batch by "
          f"batch), timed by "
          f"{'CPU time (of all threads)' if args.cpu_time else 'wall time'}")
    if hasattr(os, "getloadavg"):
        print(f"load average (1/5/15 min) at the end: {' / '.join(f'{v:.2f}' for v in os.getloadavg())} "
              f"(other processes on the cores slow and scatter every row, multi-threaded PyTorch most)")
    print()
    head = f"{'implementation':<28} {'batch':>5} {'threads':>7} {'samples/s best':>15} {'median':>10}"
    print(head)
    print("-" * len(head))
    for name, batch, threads, best, med in rows:
        print(f"{name:<28} {batch:>5} {threads:>7} {best:>15.1f} {med:>10.1f}")
    print()

    def best_of(prefix, batch=None, threads=None):
        for name, b, t, best, _ in rows:
            if name.startswith(prefix) and (batch is None or b == batch) and (threads is None or t == threads):
                return best
        return None

    fp32_threads = max(thread_counts, key=lambda t: best_of("mcusim Numba fp32", threads=t))
    fp32, u8 = best_of("mcusim Numba fp32", threads=fp32_threads), best_of("mcusim Numba u8")
    print(f"ratios (best samples/s; Numba fp32 on its best thread count, {fp32_threads}):")
    print(f"  Numba u8 / Numba fp32                        {u8 / fp32:8.2f}")
    if torch is not None:
        for threads in thread_counts:
            for batch in (1, BATCH):
                t = best_of("PyTorch", batch, threads)
                print(f"  Numba fp32 / PyTorch batch {batch:>3}, {threads} thread{'s' if threads > 1 else ' '}"
                      f"      {fp32 / t:8.2f}")
        torch_best = max(best_of("PyTorch", BATCH, t) for t in thread_counts)
        print(f"  Numba fp32 / PyTorch's best batch-{BATCH} figure  {fp32 / torch_best:8.2f}   (target >= 1.5)")
    elif args.no_torch:
        print("  (PyTorch rows skipped: --no-torch)")
    else:
        print("  PyTorch is not installed, so there are no PyTorch rows: pip install .[bench]")
    for n in notes:
        print(f"note: {n}")


if __name__ == "__main__":
    main()
