"""What a training step is for: the tasks around a graph's layers.

classify   — the last layer's logits against the sample's label (softmax cross-entropy);
autoencode — the last layer's output against the input image (Bernoulli on logits, or MSE);
vae        — encoder -> mu, log-sigma -> z = mu + sigma * eps -> decoder, the negative ELBO (the paper's
             experiment; the reparameterization and the loss stay float in u8, as in the paper).
Each builds the whole `Program`: the input, the layers (mcusim/builder.py), the loss and its error.
The loss of a u8 network is computed from its uint8 output directly (no float copy), and the loss's
error enters the network on a fixed range (qparams "qp_fixed").
"""
from __future__ import annotations

from .builder import StepBuilder, Value, input_value
from .graph import INPUT, LATENT, Graph
from .ir import Element, Program, Scalar, View
from .ops.elbo_u8 import elbo_u8_buffer_size

FORWARD_PHASES = ("sample", "evaluate", "encode")
# The `mcusim crosscheck` operators of the kernels the tasks and the update call (the layers' own are the
# registry's, Operator.check_ops).
SUPPORT_CHECKS = {(op, "fp32") for op in ("sigmoid", "reparameterize", "elbo", "cross_entropy", "mse", "sgd_update",
                                          "relu")} | \
                 {(op, "u8") for op in ("sgd_update", "quantize", "dequantize", "requantize", "sparse_select", "elbo",
                                        "mse", "cross_entropy")}


def build(graph: Graph, precision: str, sparse: bool = False) -> Program:
    if precision not in ("fp32", "u8"):
        raise ValueError(f"precision must be fp32 or u8, not {precision!r}")
    b = StepBuilder(graph, precision, sparse)
    {"classify": _classify, "autoencode": _autoencode, "vae": _vae}[graph.task](b)
    b.update()
    return b.p


def _layers(b: StepBuilder, with_rng: bool = False, elbo: bool = False) -> Value:
    """The input, the shared scratch (`elbo`: room for the u8 ELBO's tables too) and every layer's tensors;
    returns the network's input."""
    b.tensor("pixels", "u8", b.graph.n_pixels, "io")
    if with_rng:
        b.tensor("rng_state", "u32", 1, "io")
    x = input_value(b, FORWARD_PHASES)
    b.declare_scratch(elbo_u8_buffer_size() if elbo and b.u8 else 0)
    b.declare_layers(fixed_error_range={b.graph.nodes[-1].name})
    return x


def _elbo_scratch(b: StepBuilder) -> tuple:
    """The u8 ELBO kernels' last argument (their per-code tables in the shared scratch); none in fp32."""
    return (b.ctx.scratch("int32_t"),) if b.u8 else ()


def _classify(b: StepBuilder) -> None:
    label = Element(b.tensor("label", "i32", 1, "io"))
    x = _layers(b)
    last = b.graph.nodes[-1]
    y, e, n = b.outs[last.name], b.errs[last.name], last.n_out
    values = {INPUT: x}
    for phase in FORWARD_PHASES:
        b.forward(phase, b.graph.nodes, values)
    for phase, error in (("sample", e), ("evaluate", None)):
        if b.u8:
            error_args = error.args if error is not None else (None, None)
            b.p.call(phase, "cross_entropy_u8", *y.args, n, label, *error_args, returns="loss")
        else:
            b.p.call(phase, "cross_entropy_f32", y.data, n, label, error and error.data, returns="loss")
    b.backward(b.graph.nodes, values, {})
    b.p.features = View(y.data, 0, n)


def _autoencode(b: StepBuilder) -> None:
    x = _layers(b, elbo=b.graph.loss != "mse")
    last = b.graph.nodes[-1]
    y, e, n = b.outs[last.name], b.errs[last.name], last.n_out
    pixels = b.p.tensors["pixels"]
    values = {INPUT: x}
    for phase in FORWARD_PHASES:
        b.forward(phase, b.graph.nodes, values)
    dtype = "u8" if b.u8 else "f32"
    if b.graph.loss == "mse":
        for phase in ("sample", "evaluate"):
            b.p.call(phase, f"mse_{dtype}_forward", *y.args, pixels, n, returns="loss")
        b.p.call("sample", f"mse_{dtype}_backward", *y.args, pixels, *e.args, n)
    else:                             # Bernoulli on logits: the ELBO's reconstruction term, no latent
        unused = b.tensor("no_latent", "f32", 1, "io")         # the ELBO kernels' latent pointers (n = 0)
        tables = _elbo_scratch(b)
        for phase in ("sample", "evaluate"):
            b.p.call(phase, f"elbo_{dtype}_forward", *y.args, pixels, unused, unused, n, 0, *tables, returns="loss")
        b.p.call("sample", f"elbo_{dtype}_backward", *y.args, pixels, unused, unused, *e.args, unused, unused, n, 0,
                 *tables)
    b.backward(b.graph.nodes, values, {})
    b.p.features = View(y.data, 0, n)


def _vae(b: StepBuilder) -> None:
    g, p = b.graph, b.p
    L, n_pix = g.latent, g.n_pixels
    encoder = g.encoder + (g.head,)
    x = _layers(b, with_rng=True, elbo=True)
    tables = _elbo_scratch(b)
    pixels, rng = p.tensors["pixels"], p.tensors["rng_state"]
    head, logits, logits_error = b.outs[g.head.name], b.outs[g.decoder[-1].name], b.errs[g.decoder[-1].name]
    if b.u8:                          # mu and log-sigma are float: the head's output is dequantized
        mu_ls, d_mu_ls = (b.tensor(n, "f32", 2 * L, "activations") for n in ("mu_log_sigma", "mu_log_sigma.error"))
    else:
        mu_ls, d_mu_ls = head.data, b.errs[g.head.name].data
    eps, z, dz = (b.tensor(n, "f32", L, "activations") for n in ("eps", "z", "z.error"))
    mu, ls, d_mu, d_ls = View(mu_ls, 0), View(mu_ls, L), View(d_mu_ls, 0), View(d_mu_ls, L)
    z_in, z_err = (b.value("z.quantized", L), b.value("z.error.quantized", L)) if b.u8 else (Value(z), Value(dz))
    values = {INPUT: x, LATENT: z_in}

    for phase in FORWARD_PHASES:
        b.forward(phase, encoder, values)
        if b.u8:
            p.call(phase, "dequantize_u8_f32", head.data, mu_ls, 2 * L, head.qp)
    dtype = "u8" if b.u8 else "f32"
    for phase in ("sample", "evaluate"):
        p.call(phase, "nn_rng_fill_normal", rng, eps, L)
        p.call(phase, "reparameterize_f32_forward", mu, ls, eps, z, L)
        if b.u8:
            p.call(phase, "quantize_f32_u8", z, z_in.data, L, z_in.qp, Scalar("alpha_a") if phase == "sample" else 0.0)
        b.forward(phase, g.decoder, values)
        p.call(phase, f"elbo_{dtype}_forward", *logits.args, pixels, mu, ls, n_pix, L, *tables, returns="loss")

    image = b.tensor("generated_image", "f32", n_pix, "decode")        # the host writes z ~ N(0, 1)
    if b.u8:
        p.call("decode", "quantize_f32_u8", z, z_in.data, L, z_in.qp, 0.0)
    b.forward("decode", g.decoder, values)
    if b.u8:
        p.call("decode", "dequantize_u8_f32", logits.data, image, n_pix, logits.qp)
        p.call("decode", "sigmoid_f32_forward", image, image, n_pix)
    else:
        p.call("decode", "sigmoid_f32_forward", logits.data, image, n_pix)

    p.call("sample", f"elbo_{dtype}_backward", *logits.args, pixels, mu, ls, *logits_error.args, d_mu, d_ls, n_pix, L,
           *tables)
    b.backward(g.decoder, values, {LATENT: z_err})
    if b.u8:
        p.call("sample", "dequantize_u8_f32", z_err.data, dz, L, z_err.qp)
    p.call("sample", "reparameterize_f32_backward", ls, eps, dz, d_mu, d_ls, L)
    if b.u8:
        head_error = b.errs[g.head.name]
        p.call("sample", "quantize_f32_u8", d_mu_ls, head_error.data, 2 * L, head_error.qp, Scalar("alpha_e"))
    b.backward(encoder, values, {})
    p.features = View(mu_ls, 0, L)
