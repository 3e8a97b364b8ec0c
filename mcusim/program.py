"""One VAE training step as a program of kernel calls, and its two back ends.

A `Program` lists the tensors (every buffer the step needs, with its dtype, size and memory group)
and, per phase, the kernel calls in order. The same program is
  * compiled to C (`c_source`): static buffers + `vae_sample`, `vae_update`, `vae_evaluate` calling the
    kernels of kernels/*.c, for the emulated Cortex-M4;
  * compiled to Python for Numba (`numba_source`): the same calls on the Numba twins, over one arena
    array per dtype, so the host trains with the same arithmetic as the device.
The memory plan is the program's tensor list, so planned and measured SRAM describe the same buffers.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .model import Layer, Model

CTYPE = {"f32": "float", "u8": "uint8_t", "f16": "uint16_t", "i32": "int32_t", "u32": "uint32_t", "qp": "nn_qparams"}
NBYTES = {"f32": 4, "u8": 1, "f16": 2, "i32": 4, "u32": 4, "qp": 16}
PHASES = ("sample", "update", "evaluate", "encode", "decode")


@dataclass(frozen=True)
class Tensor:
    name: str
    dtype: str
    count: int
    group: str                  # "weights", "activations", "io"
    init: str = "zeros"         # "zeros", "weight", "bias", "qp" (range set by the trainer), "qp_fixed"

    @property
    def nbytes(self) -> int:
        return NBYTES[self.dtype] * self.count

    @property
    def c_name(self) -> str:
        return "t_" + self.name.replace(".", "_")


@dataclass(frozen=True)
class Dims:
    """A convolution's geometry: a static nn_conv_dims in C, an int32 array for the twins."""
    layer: Layer

    @property
    def c_name(self) -> str:
        return "dims_" + self.layer.name.replace(".", "_")


@dataclass(frozen=True)
class View:
    """A tensor starting `offset` elements in (mu and log-sigma are the two halves of the head's output)."""
    tensor: Tensor
    offset: int


@dataclass(frozen=True)
class Cast:
    """A tensor passed as another C pointer type: the u8 kernels' shared scratch, which only the C
    takes (the twins allocate their own)."""
    tensor: Tensor
    ctype: str


@dataclass(frozen=True)
class Scalar:
    """A named run-time scalar argument of a phase function (e.g. the update's learning rate)."""
    name: str
    ctype: str = "float"


@dataclass(frozen=True)
class Call:
    kernel: str                          # the C function; the twin has the same name
    args: tuple                          # Tensor | View | Dims | Scalar | int | float | None
    returns: str | None = None           # name of a float the phase returns (e.g. "loss")


@dataclass
class Program:
    model: Model
    precision: str
    tensors: dict[str, Tensor] = field(default_factory=dict)
    phases: dict[str, list[Call]] = field(default_factory=lambda: {p: [] for p in PHASES})
    mu: "View | None" = None          # where the encoder's mean ends up (the classifier's features)
    sparse: bool = False

    def tensor(self, name: str, dtype: str, count: int, group: str, init: str = "zeros") -> Tensor:
        if name in self.tensors:
            raise ValueError(f"tensor {name} defined twice")
        t = Tensor(name, dtype, int(count), group, init)
        self.tensors[name] = t
        return t

    def call(self, phase: str, kernel: str, *args, returns: str | None = None):
        self.phases[phase].append(Call(kernel, args, returns))

    def total(self, group: str) -> int:
        return sum(t.nbytes for t in self.tensors.values() if t.group == group)

    def scalars(self, phase: str) -> list[Scalar]:
        seen: dict[str, Scalar] = {}
        for c in self.phases[phase]:
            for a in c.args:
                if isinstance(a, Scalar):
                    seen.setdefault(a.name, a)
        return list(seen.values())


def update_layout(layer: Layer) -> tuple[int, int, int]:
    """(rows, cols, run) of a layer's weights for the standardized update: one row per structure."""
    if layer.op == "convtranspose2d":                     # [IC][OC][KH][KW]: an output channel is strided
        return layer.structures, layer.n_weights // layer.structures, layer.kernel * layer.kernel
    cols = layer.n_weights // layer.structures
    return layer.structures, cols, cols


# ---- fp32 -------------------------------------------------------------------------------------

def build_fp32(model: Model) -> Program:
    p = Program(model, "fp32")
    L = model.latent
    n_pix = model.encoder[0].n_in
    pixels = p.tensor("pixels", "u8", n_pix, "io")
    rng = p.tensor("rng_state", "u32", 1, "io")
    x = p.tensor("input", "f32", n_pix, "activations")
    params = {}
    for layer in model.vae_layers:
        params[layer.name] = (p.tensor(f"{layer.name}.weight", "f32", layer.n_weights, "weights", "weight"),
                              p.tensor(f"{layer.name}.bias", "f32", layer.n_bias, "weights", "bias"),
                              p.tensor(f"{layer.name}.weight_grad", "f32", layer.n_weights, "weights"),
                              p.tensor(f"{layer.name}.bias_grad", "f32", layer.n_bias, "weights"),
                              p.tensor(f"{layer.name}.weight.update_stats", "f32", layer.structures, "weights"),
                              p.tensor(f"{layer.name}.bias.update_stats", "f32", layer.n_bias, "weights"))
    outs = {l.name: p.tensor(f"{l.name}.output", "f32", l.n_out, "activations") for l in model.vae_layers}
    errs = {l.name: p.tensor(f"{l.name}.error", "f32", l.n_out, "activations") for l in model.vae_layers}
    eps = p.tensor("eps", "f32", L, "activations")
    z = p.tensor("z", "f32", L, "activations")
    dz = p.tensor("z.error", "f32", L, "activations")
    head = model.head
    mu, ls = (outs[head.name], 0), (outs[head.name], L)          # views into the head's output
    p.mu = View(*mu)

    def forward(phase: str, layers, inp):
        for layer in layers:
            w, b = params[layer.name][:2]
            y = outs[layer.name]
            if layer.op == "gemm":
                p.call(phase, "gemm_f32_forward", inp, w, b, y, layer.n_in, layer.n_out)
            else:
                p.call(phase, f"{layer.op}_f32_forward", inp, w, b, y, Dims(layer))
            if layer.relu:
                p.call(phase, "relu_f32_forward", y, y, layer.n_out)
            inp = y

    for phase in ("sample", "evaluate", "encode"):
        p.call(phase, "pixels_f32_forward", pixels, x, n_pix)
        forward(phase, model.encoder + (head,), x)
    for phase in ("sample", "evaluate"):
        p.call(phase, "nn_rng_fill_normal", rng, eps, L)
        p.call(phase, "reparameterize_f32_forward", View(*mu), View(*ls), eps, z, L)
        forward(phase, model.decoder, z)
        logits = outs[model.decoder[-1].name]
        p.call(phase, "elbo_f32_forward", logits, pixels, View(*mu), View(*ls), n_pix, L, returns="loss")

    image = p.tensor("generated_image", "f32", n_pix, "decode")
    forward("decode", model.decoder, z)                      # the host writes z ~ N(0, 1)
    p.call("decode", "sigmoid_f32_forward", outs[model.decoder[-1].name], image, n_pix)

    # backward: loss -> decoder -> reparameterization -> head -> encoder
    s = "sample"
    d_head = errs[head.name]
    p.call(s, "elbo_f32_backward", logits, pixels, View(*mu), View(*ls), errs[model.decoder[-1].name],
           View(d_head, 0), View(d_head, L), n_pix, L)
    layers = list(model.vae_layers)
    inputs = [x] + [outs[l.name] for l in layers[:-1]]
    inputs[layers.index(model.decoder[0])] = z
    for idx in range(len(layers) - 1, -1, -1):
        layer, inp = layers[idx], inputs[idx]
        w, b, gw, gb = params[layer.name][:4]
        e = errs[layer.name]
        if layer.op == "gemm":
            p.call(s, "gemm_f32_backward_weight", inp, e, gw, gb, layer.n_in, layer.n_out, None)
        else:
            p.call(s, f"{layer.op}_f32_backward_weight", inp, e, gw, gb, Dims(layer), None)
        if idx == 0:
            break                                           # no error into the image
        below = errs[layers[idx - 1].name] if layer is not model.decoder[0] else dz
        if layer.op == "gemm":
            p.call(s, "gemm_f32_backward_input", w, e, below, layer.n_in, layer.n_out, None)
        else:
            p.call(s, f"{layer.op}_f32_backward_input", w, e, below, Dims(layer), None)
        if layer is model.decoder[0]:
            p.call(s, "reparameterize_f32_backward", View(*ls), eps, dz, View(d_head, 0), View(d_head, L), L)
        elif layers[idx - 1].relu:
            p.call(s, "relu_f32_backward", inp, below, below, layers[idx - 1].n_out)

    lr, a_norm = Scalar("lr"), Scalar("alpha_norm")
    for layer in model.vae_layers:
        w, b, gw, gb, nw, nb = params[layer.name]
        p.call("update", "sgd_f32_standardized_update", w, gw, nw, *update_layout(layer), lr, a_norm, None)
        p.call("update", "sgd_f32_standardized_update", b, gb, nb, layer.n_bias, 1, 1, lr, a_norm, None)
    return p


# ---- u8 ---------------------------------------------------------------------------------------

def _u8_scratch_bytes(layer: Layer) -> int:
    """Scratch the u8 kernels of this layer ask for (the C *_buffer_size functions, mirrored in Python)."""
    from .ops import conv_u8
    if layer.op == "gemm":
        return 4 * layer.n_in
    d = layer.conv_dims()
    return max(getattr(conv_u8, f"{layer.op}_{direction}_buffer_size")(d)
               for direction in ("forward", "backward_input", "backward_weight"))


def build_u8(model: Model, sparse: bool = False) -> Program:
    """Fully quantized: uint8 weights, activations and errors with per-tensor qparams, half-float
    gradients; the reparameterization and the ELBO stay float, as in the paper. With `sparse`, every
    layer's backward pass updates only the top-k structures chosen per sample (dynamic sparse updates)."""
    p = Program(model, "u8")
    p.sparse = sparse
    L = model.latent
    n_pix = model.encoder[0].n_in
    alpha_a, alpha_e = Scalar("alpha_a"), Scalar("alpha_e")
    pixels = p.tensor("pixels", "u8", n_pix, "io")
    rng = p.tensor("rng_state", "u32", 1, "io")
    q_pixels = p.tensor("pixels.qparams", "qp", 1, "activations", "qp_pixels")
    scratch_bytes = max(_u8_scratch_bytes(l) for l in model.vae_layers)
    if sparse:
        scratch_bytes = max(scratch_bytes, max(4 * (l.structures + 256) for l in model.vae_layers))
    scratch = p.tensor("scratch", "i32", scratch_bytes // 4 + 1, "activations")
    params, outs, errs = {}, {}, {}
    for l in model.vae_layers:
        params[l.name] = dict(
            w=p.tensor(f"{l.name}.weight", "u8", l.n_weights, "weights", "weight"),
            b=p.tensor(f"{l.name}.bias", "u8", l.n_bias, "weights", "bias"),
            qw=p.tensor(f"{l.name}.weight.qparams", "qp", 1, "weights", "qp_weight"),
            qb=p.tensor(f"{l.name}.bias.qparams", "qp", 1, "weights", "qp_bias"),
            gw=p.tensor(f"{l.name}.weight_grad", "f16", l.n_weights, "weights"),
            gb=p.tensor(f"{l.name}.bias_grad", "f16", l.n_bias, "weights"),
            nw=p.tensor(f"{l.name}.weight.update_stats", "f32", l.structures, "weights"),
            nb=p.tensor(f"{l.name}.bias.update_stats", "f32", l.n_bias, "weights"))
        if sparse:
            params[l.name].update(
                active=p.tensor(f"{l.name}.active", "u8", l.structures, "activations"),
                touched=p.tensor(f"{l.name}.touched", "u8", l.structures, "weights"),
                state=p.tensor(f"{l.name}.sparse_state", "f32", 4, "weights"))
        outs[l.name] = (p.tensor(f"{l.name}.output", "u8", l.n_out, "activations"),
                        p.tensor(f"{l.name}.output.qparams", "qp", 1, "activations", "qp"))
        errs[l.name] = (p.tensor(f"{l.name}.error", "u8", l.n_out, "activations"),
                        p.tensor(f"{l.name}.error.qparams", "qp", 1, "activations",
                                 "qp_fixed" if l is model.decoder[-1] else "qp"))
    head = model.head
    mu_ls = p.tensor("mu_log_sigma", "f32", 2 * L, "activations")
    d_mu_ls = p.tensor("mu_log_sigma.error", "f32", 2 * L, "activations")
    eps = p.tensor("eps", "f32", L, "activations")
    z = p.tensor("z", "f32", L, "activations")
    dz = p.tensor("z.error", "f32", L, "activations")
    zq = (p.tensor("z.quantized", "u8", L, "activations"), p.tensor("z.qparams", "qp", 1, "activations", "qp"))
    dzq = (p.tensor("z.error.quantized", "u8", L, "activations"),
           p.tensor("z.error.qparams", "qp", 1, "activations", "qp"))
    mu, ls = View(mu_ls, 0), View(mu_ls, L)
    p.mu = mu
    logits, logits_error = outs[model.decoder[-1].name], errs[model.decoder[-1].name]    # (uint8, qparams)

    def forward(phase, layers, inp, alpha):
        for l in layers:
            t = params[l.name]
            y, qy = outs[l.name]
            shape = (l.n_in, l.n_out) if l.op == "gemm" else (Dims(l),)
            extra = (int(l.relu), alpha) + ((Cast(scratch, "int32_t"),) if l.op != "gemm" else ())
            p.call(phase, f"{l.op}_u8_forward", *inp, t["w"], t["qw"], t["b"], t["qb"], y, qy, *shape, *extra)
            inp = (y, qy)

    for phase in ("sample", "evaluate", "encode"):
        alpha = alpha_a if phase == "sample" else 0.0
        forward(phase, model.encoder + (head,), (pixels, q_pixels), alpha)
        p.call(phase, "dequantize_u8_f32", outs[head.name][0], mu_ls, 2 * L, outs[head.name][1])
    for phase in ("sample", "evaluate"):
        alpha = alpha_a if phase == "sample" else 0.0
        p.call(phase, "nn_rng_fill_normal", rng, eps, L)
        p.call(phase, "reparameterize_f32_forward", mu, ls, eps, z, L)
        p.call(phase, "quantize_f32_u8", z, zq[0], L, zq[1], alpha)
        forward(phase, model.decoder, zq, alpha)
        p.call(phase, "elbo_u8_forward", *logits, pixels, mu, ls, n_pix, L, returns="loss")

    image = p.tensor("generated_image", "f32", n_pix, "decode")
    p.call("decode", "quantize_f32_u8", z, zq[0], L, zq[1], 0.0)      # the host writes z ~ N(0, 1)
    forward("decode", model.decoder, zq, 0.0)
    p.call("decode", "dequantize_u8_f32", logits[0], image, n_pix, logits[1])
    p.call("decode", "sigmoid_f32_forward", image, image, n_pix)

    s = "sample"
    p.call(s, "elbo_u8_backward", *logits, pixels, mu, ls, *logits_error, View(d_mu_ls, 0), View(d_mu_ls, L),
           n_pix, L)
    layers = list(model.vae_layers)
    inputs = [(pixels, q_pixels)] + [outs[l.name] for l in layers[:-1]]
    inputs[layers.index(model.decoder[0])] = zq
    for idx in range(len(layers) - 1, -1, -1):
        l, (x, qx) = layers[idx], inputs[idx]
        t = params[l.name]
        e, qe = errs[l.name]
        active = t["active"] if sparse else None
        if sparse:
            p.call(s, "sparse_select_u8", e, qe, l.structures, l.n_out // l.structures, Scalar("lambda_min"),
                   Scalar("lambda_max"), t["state"], active, t["touched"], Cast(scratch, "int32_t"))
        if l.op == "gemm":
            p.call(s, "gemm_u8_backward_weight", x, qx, e, qe, t["gw"], t["gb"], l.n_in, l.n_out, active,
                   Cast(scratch, "float"))
        else:
            p.call(s, f"{l.op}_u8_backward_weight", x, qx, e, qe, t["gw"], t["gb"], Dims(l), active,
                   Cast(scratch, "int32_t"))
        if idx == 0:
            break
        below = dzq if l is model.decoder[0] else errs[layers[idx - 1].name]
        mask = (None, None) if l is model.decoder[0] or not layers[idx - 1].relu else (x, qx)
        shape = (l.n_in, l.n_out) if l.op == "gemm" else (Dims(l),)
        p.call(s, f"{l.op}_u8_backward_input", t["w"], t["qw"], e, qe, *below, *mask, *shape, active, alpha_e,
               Cast(scratch, "int32_t"))
        if l is model.decoder[0]:
            p.call(s, "dequantize_u8_f32", dzq[0], dz, L, dzq[1])
            p.call(s, "reparameterize_f32_backward", ls, eps, dz, View(d_mu_ls, 0), View(d_mu_ls, L), L)
            p.call(s, "quantize_f32_u8", d_mu_ls, errs[head.name][0], 2 * L, errs[head.name][1], alpha_e)

    for l in model.vae_layers:
        t = params[l.name]
        lr, a_norm, a_w = Scalar("lr"), Scalar("alpha_norm"), Scalar("alpha_w")
        touched = t["touched"] if sparse else None
        p.call("update", "sgd_u8_update", t["w"], t["qw"], t["gw"], t["nw"], *update_layout(l), lr, a_norm, a_w,
               touched)
        p.call("update", "sgd_u8_update", t["b"], t["qb"], t["gb"], t["nb"], l.n_bias, 1, 1, lr, a_norm, a_w, touched)
        if sparse:
            p.call("update", "fill_u8", touched, l.structures, 0)
    return p


# ---- back ends --------------------------------------------------------------------------------

def _arg_c(a) -> str:
    if isinstance(a, Tensor):
        return a.c_name
    if isinstance(a, View):
        return f"({a.tensor.c_name} + {a.offset})"
    if isinstance(a, Cast):
        return f"({a.ctype} *){a.tensor.c_name}"
    if isinstance(a, Dims):
        return f"&{a.c_name}"
    if isinstance(a, Scalar):
        return a.name
    if a is None:
        return "NULL"
    if isinstance(a, float):
        return f"{a!r}f"
    return str(int(a))


def c_source(p: Program) -> str:
    lines = ["/* Generated by mcusim.program for model '%s', precision %s: do not edit. */" % (p.model.name, p.precision),
             '#include "nn.h"', ""]
    for t in p.tensors.values():
        lines.append(f"{CTYPE[t.dtype]} {t.c_name}[{t.count}] __attribute__((aligned(8)));")
    lines.append("")
    dims = {a.c_name: a.layer for calls in p.phases.values() for c in calls for a in c.args if isinstance(a, Dims)}
    for name, layer in dims.items():
        lines.append(f"static const nn_conv_dims {name} = {{{', '.join(map(str, layer.conv_dims()))}}};")
    for phase in PHASES:
        calls = p.phases[phase]
        params = ", ".join(f"{s.ctype} {s.name}" for s in p.scalars(phase)) or "void"
        returns = next((c.returns for c in calls if c.returns), None)
        lines += ["", f"{'float' if returns else 'void'} vae_{phase}({params}) {{"]
        if returns:
            lines.append(f"    float {returns} = 0.0f;")
        for c in calls:
            call = f"{c.kernel}({', '.join(_arg_c(a) for a in c.args)})"
            lines.append(f"    {c.returns} = {call};" if c.returns else f"    {call};")
        if returns:
            lines.append(f"    return {returns};")
        lines.append("}")
    return "\n".join(lines) + "\n"


def arena_layout(p: Program) -> dict[str, tuple[str, int]]:
    """tensor name -> (dtype, element offset in that dtype's arena)."""
    offsets: dict[str, int] = {}
    layout = {}
    for t in p.tensors.values():
        layout[t.name] = (t.dtype, offsets.get(t.dtype, 0))
        offsets[t.dtype] = offsets.get(t.dtype, 0) + t.count
    return layout


def arena_sizes(p: Program) -> dict[str, int]:
    sizes: dict[str, int] = {}
    for t in p.tensors.values():
        sizes[t.dtype] = sizes.get(t.dtype, 0) + t.count
    return sizes


def numba_source(p: Program, module_of: dict[str, str]) -> str:
    """Python source of one function per phase over the arenas; `module_of` maps kernel -> twin module."""
    layout = arena_layout(p)
    dtypes = sorted(arena_sizes(p))
    kernels = sorted({c.kernel for calls in p.phases.values() for c in calls})
    lines = ['"""Generated by mcusim.program: do not edit."""', "import numpy as np", "from numba import njit", ""]
    for k in kernels:
        lines.append(f"from {module_of[k]} import {twin_name(k)} as {k}")
    dims = {a.c_name: a.layer for calls in p.phases.values() for c in calls for a in c.args if isinstance(a, Dims)}
    for name, layer in dims.items():
        lines.append(f"{name} = np.array({list(layer.conv_dims())}, np.int32)")

    def arg(a) -> str:
        if isinstance(a, (Tensor, View)):
            t, off = (a, 0) if isinstance(a, Tensor) else (a.tensor, a.offset)
            dtype, base = layout[t.name]
            return f"A_{dtype}[{base + off}:{base + t.count}]"
        if isinstance(a, Dims):
            return a.c_name
        if isinstance(a, Scalar):
            return a.name
        if a is None:
            return "None"
        if isinstance(a, float):
            return f"np.float32({a!r})"
        return f"np.int32({int(a)})"

    for phase in PHASES:
        calls = p.phases[phase]
        params = ", ".join([f"A_{d}" for d in dtypes] + [s.name for s in p.scalars(phase)])
        returns = next((c.returns for c in calls if c.returns), None)
        lines += ["", "", "@njit(cache=True, error_model='numpy')", f"def vae_{phase}({params}):"]
        if returns:
            lines.append(f"    {returns} = np.float32(0.0)")
        for c in calls:
            args = ", ".join(arg(a) for a in c.args if not isinstance(a, Cast))   # scratch is C only
            lines.append(f"    {c.returns} = {c.kernel}({args})" if c.returns else f"    {c.kernel}({args})")
        lines.append(f"    return {returns}" if returns else "    return np.float32(0.0)")
    lines += _batch_drivers(p, layout, dtypes)
    return "\n".join(lines) + "\n"


def _batch_drivers(p: Program, layout, dtypes) -> list[str]:
    """Loops over many images inside Numba: no Python call per sample on the hot path."""
    arenas = ", ".join(f"A_{d}" for d in dtypes)
    pix_dtype, pix = layout["pixels"]
    n_pix = p.tensors["pixels"].count
    mu_dtype, mu_base = layout[p.mu.tensor.name]
    mu_base += p.mu.offset
    out = []
    for phase in ("sample", "evaluate"):
        scalars = [s.name for s in p.scalars(phase)]
        params = ", ".join([arenas, "images", "order", "start", "count"] + scalars)
        out += ["", "", "@njit(cache=True, error_model='numpy')", f"def vae_{phase}_batch({params}):",
                "    losses = np.empty(count, np.float32)",
                "    for k in range(count):",
                f"        A_{pix_dtype}[{pix}:{pix + n_pix}] = images[order[start + k]]",
                f"        losses[k] = vae_{phase}({', '.join([arenas] + scalars)})",
                "    return losses"]
    scalars = [s.name for s in p.scalars("encode")]
    out += ["", "", "@njit(cache=True, error_model='numpy')",
            f"def vae_encode_batch({', '.join([arenas, 'images', 'order', 'start', 'count'] + scalars)}):",
            f"    features = np.empty((count, {p.model.latent}), np.float32)",
            "    for k in range(count):",
            f"        A_{pix_dtype}[{pix}:{pix + n_pix}] = images[order[start + k]]",
            f"        vae_encode({', '.join([arenas] + scalars)})",
            f"        features[k] = A_{mu_dtype}[{mu_base}:{mu_base + p.model.latent}]",
            "    return features"]
    return out


def twin_name(kernel: str) -> str:
    return kernel.removeprefix("nn_")


def build(model: Model, precision: str, sparse: bool = False) -> Program:
    if sparse and precision != "u8":
        raise ValueError("dynamic sparse updates are a u8 method")
    if precision == "fp32":
        return build_fp32(model)
    if precision == "u8":
        return build_u8(model, sparse)
    raise ValueError(f"precision must be fp32 or u8, not {precision!r}")
