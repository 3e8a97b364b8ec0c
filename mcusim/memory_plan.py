"""The SRAM plan of one on-device VAE training step: every buffer the firmware needs, by name, size
and group, for fp32 and for fully-quantized u8. The firmware step allocates exactly these buffers,
so the emulator's measured peak can be checked against this plan.

Groups follow the paper's Table I: "weights" = trainable VAE weights and their gradient buffers (u8:
uint8 weights with half-float gradient accumulators; plus
the per-tensor quantization parameters and per-structure update statistics of u8), "activations" =
activations and error tensors of one sample (plus kernel scratch). The classifier head is trained in a
separate phase on the frozen encoder; its buffers are listed under "classifier".
"""
from __future__ import annotations

from dataclasses import dataclass

from .model import Layer, Model

F32, F16, U8, QPARAMS = 4, 2, 1, 16  # bytes: float, half (u8 gradients), uint8, nn_qparams
PRECISIONS = ("fp32", "u8")


@dataclass(frozen=True)
class Buffer:
    name: str
    group: str           # "weights", "activations", "classifier"
    nbytes: int


@dataclass(frozen=True)
class MemoryPlan:
    model: str
    precision: str
    buffers: tuple[Buffer, ...]

    def total(self, group: str | None = None) -> int:
        return sum(b.nbytes for b in self.buffers if group is None or b.group == group)

    @property
    def weights(self) -> int:
        return self.total("weights")

    @property
    def activations(self) -> int:
        return self.total("activations")

    def breakdown(self, group: str) -> dict[str, int]:
        return {b.name: b.nbytes for b in self.buffers if b.group == group}


def _scratch_u8(layer: Layer) -> int:
    """Bytes of kernel scratch the u8 kernels of this layer ask for (their *_buffer_size functions)."""
    if layer.op == "gemm":
        return max(4 * layer.n_in, 4 * layer.n_in)      # backward_input int32[in], backward_weight float[in]
    return 4 * max(layer.n_in, layer.n_out)              # int32 accumulators over the larger side


def plan(model: Model, precision: str) -> MemoryPlan:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}")
    bufs: list[Buffer] = []
    add = lambda name, group, n: bufs.append(Buffer(name, group, int(n)))  # noqa: E731
    q = precision == "u8"
    elem = U8 if q else F32
    latent = model.latent
    for layer in model.vae_layers:
        add(f"{layer.name}.weight", "weights", layer.n_weights * elem)
        add(f"{layer.name}.bias", "weights", layer.n_bias * elem)
        grad = F16 if q else F32
        add(f"{layer.name}.weight_grad", "weights", layer.n_weights * grad)
        add(f"{layer.name}.bias_grad", "weights", layer.n_bias * grad)
        if q:
            add(f"{layer.name}.qparams", "weights", 2 * QPARAMS)
            add(f"{layer.name}.update_stats", "weights", 2 * F32 * (layer.structures + 1))
    add("input", "activations", model.encoder[0].n_in * elem)
    for layer in model.vae_layers:
        add(f"{layer.name}.output", "activations", layer.n_out * elem)
        add(f"{layer.name}.error", "activations", layer.n_out * elem)
        if q:
            add(f"{layer.name}.output_qparams", "activations", 2 * QPARAMS)
    # the float island: reparameterization (and, for u8, the float views of mu/log-sigma and logits)
    add("eps", "activations", latent * F32)
    add("z", "activations", latent * F32)
    add("z.error", "activations", latent * F32)
    if q:
        add("mu,log_sigma (float)", "activations", 2 * latent * F32)
        add("mu,log_sigma.error (float)", "activations", 2 * latent * F32)
        add("z (u8) + qparams", "activations", latent * U8 + QPARAMS)
        n_pix = model.decoder[-1].n_out
        add("logits (float)", "activations", n_pix * F32)
        add("logits.error (float)", "activations", n_pix * F32)
        add("input qparams", "activations", QPARAMS)
        add("kernel scratch", "activations", max(_scratch_u8(l) for l in model.vae_layers))
    for layer in model.classifier:
        add(f"{layer.name}.weight+grad", "classifier", 2 * layer.n_weights * F32)
        add(f"{layer.name}.bias+grad", "classifier", 2 * layer.n_bias * F32)
        add(f"{layer.name}.output+error", "classifier", 2 * layer.n_out * F32)
    return MemoryPlan(model.name, precision, tuple(bufs))
