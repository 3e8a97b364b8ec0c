"""Build the training step of a `Graph` as a `Program`: the tensors of every layer, the forward pass,
the backward pass over the graph (errors of tensors read by several layers are summed), and the update.

Operators emit their own kernel calls (mcusim/operators); this module only walks the graph. The task
(mcusim/tasks.py) decides what surrounds it: the input, the loss, and the vae's latent sample.
"""
from __future__ import annotations

from dataclasses import dataclass

from .graph import Graph, Node
from .ir import Cast, Program, Scalar, Tensor, View
from .operators import REGISTRY


@dataclass(frozen=True)
class Value:
    """A tensor as the kernels see it: float32 data, or uint8 data with its qparams record."""
    data: Tensor | View
    qp: Tensor | None = None

    @property
    def args(self) -> tuple:
        return (self.data,) if self.qp is None else (self.data, self.qp)


class Emitter:
    """Where operators write their calls: the program, the phase, and the phase's range-tracking rates
    (u8 ranges move only while training: evaluation passes 0)."""

    def __init__(self, program: Program, scratch: Tensor | None):
        self.program, self._scratch, self.phase = program, scratch, "sample"
        self.layer: str | None = None          # what the calls are attributed to
        self.direction: str | None = None

    @property
    def precision(self) -> str:
        return self.program.precision

    @property
    def alpha_a(self):
        return Scalar("alpha_a") if self.phase == "sample" else 0.0

    @property
    def alpha_e(self):
        return Scalar("alpha_e")

    def scratch(self, ctype: str) -> Cast:
        return Cast(self._scratch, ctype)

    def call(self, kernel: str, *args, returns: str | None = None) -> None:
        self.program.call(self.phase, kernel, *args, returns=returns, layer=self.layer, direction=self.direction)

    def at(self, layer: str | None, direction: str | None) -> "Emitter":
        self.layer, self.direction = layer, direction
        return self


class StepBuilder:
    """The tensors and calls of a graph's layers for one precision."""

    def __init__(self, graph: Graph, precision: str, sparse: bool):
        if sparse and precision != "u8":
            raise ValueError("dynamic sparse updates are a u8 method")
        self.graph, self.u8, self.sparse = graph, precision == "u8", sparse
        self.p = Program(graph.name, precision, sparse=sparse)
        self.consumers: dict[str, list[Node]] = {}
        for n in graph.nodes:
            for i in n.inputs:
                self.consumers.setdefault(i, []).append(n)
        self.nodes = {n.name: n for n in graph.nodes}
        self.params: dict[str, dict[str, Tensor]] = {}
        self.outs: dict[str, Value] = {}
        self.errs: dict[str, Value] = {}
        self.sum_buffers: dict[int, Value] = {}
        self.ctx: Emitter | None = None

    # -- tensors ------------------------------------------------------------------------------------
    def tensor(self, name: str, dtype: str, count: int, group: str, init: str = "zeros", kind: str = "task",
               layer: str | None = None) -> Tensor:
        return self.p.tensor(name, dtype, count, group, init, kind, layer)

    def value(self, name: str, count: int, group: str = "activations", qp_init: str = "qp", kind: str = "task",
              layer: str | None = None) -> Value:
        """A float32 tensor, or a uint8 tensor with its qparams."""
        if not self.u8:
            return Value(self.tensor(name, "f32", count, group, kind=kind, layer=layer))
        return Value(self.tensor(name, "u8", count, group, kind=kind, layer=layer),
                     self.tensor(f"{name}.qparams", "qp", 1, group, qp_init, kind="qparams", layer=layer))

    def declare_scratch(self, task_bytes: int = 0) -> None:
        """One scratch buffer shared by every kernel (the largest any of them asks for); `task_bytes`: what
        the task's own kernels (its loss) ask for."""
        need = max([task_bytes] + [n.operator.scratch_bytes(n, self.p.precision) for n in self.graph.nodes])
        if self.sparse:
            from .ops.sparse_u8 import sparse_select_u8_buffer_size
            need = max([need] + [sparse_select_u8_buffer_size(n.structures) for n in self.graph.trainable])
        scratch = self.tensor("scratch", "i32", need // 4 + 1, "activations", kind="scratch") if need else None
        self.ctx = Emitter(self.p, scratch)

    def declare_layers(self, fixed_error_range: set[str] = frozenset()) -> None:
        """Per layer: its parameters, gradients and update statistics; its output and its error (the
        errors in `fixed_error_range` keep the range the loss writes them in)."""
        for n in self.graph.nodes:
            if n.trainable:
                self.params[n.name] = self._parameters(n)
            if n.operator.view:
                continue
            self.outs[n.name] = self.value(f"{n.name}.output", n.n_out, kind="activations", layer=n.name)
            if self.needs_error(n.name):
                self.errs[n.name] = self.value(f"{n.name}.error", n.n_out, kind="errors", layer=n.name,
                                               qp_init="qp_fixed" if n.name in fixed_error_range else "qp")
        for n in self.graph.nodes:                        # a view shares its source's buffers
            if n.operator.view:
                self.outs[n.name] = self.outs.get(n.inputs[0])
                if n.inputs[0] in self.errs:
                    self.errs[n.name] = self.errs[n.inputs[0]]

    def _parameters(self, n: Node) -> dict[str, Tensor]:
        kinds = dict(weight="weights", bias="weights", weight_grad="gradients", bias_grad="gradients",
                     qparams="qparams", scales="gradients", update_stats="optimiser", active="sparse", touched="sparse",
                     sparse_state="sparse")

        def t(name, dtype, count, group, init="zeros"):
            return self.tensor(name, dtype, count, group, init, kinds[name.rsplit(".", 1)[1]], n.name)
        self.p.fan_in[f"{n.name}.weight"] = self.p.fan_in[f"{n.name}.bias"] = n.operator.fan_in(n)
        if not self.u8:
            return dict(w=t(f"{n.name}.weight", "f32", n.n_weights, "weights", "weight"),
                        b=t(f"{n.name}.bias", "f32", n.n_bias, "weights", "bias"),
                        gw=t(f"{n.name}.weight_grad", "f32", n.n_weights, "weights"),
                        gb=t(f"{n.name}.bias_grad", "f32", n.n_bias, "weights"),
                        nw=t(f"{n.name}.weight.update_stats", "f32", n.structures, "weights"),
                        nb=t(f"{n.name}.bias.update_stats", "f32", n.n_bias, "weights"))
        params = dict(w=t(f"{n.name}.weight", "u8", n.n_weights, "weights", "weight"),
                      b=t(f"{n.name}.bias", "u8", n.n_bias, "weights", "bias"),
                      qw=t(f"{n.name}.weight.qparams", "qp", 1, "weights", "qp_weight"),
                      qb=t(f"{n.name}.bias.qparams", "qp", 1, "weights", "qp_bias"),
                      gw=t(f"{n.name}.weight_grad", "i16", n.n_weights, "weights"),
                      gb=t(f"{n.name}.bias_grad", "i16", n.n_bias, "weights"),
                      sgw=t(f"{n.name}.weight_grad.scales", "f32", n.structures, "weights", "grad_scale"),
                      sgb=t(f"{n.name}.bias_grad.scales", "f32", n.n_bias, "weights", "grad_scale"),
                      nw=t(f"{n.name}.weight.update_stats", "f32", n.structures, "weights"),
                      nb=t(f"{n.name}.bias.update_stats", "f32", n.n_bias, "weights"))
        if self.sparse:
            params.update(active=t(f"{n.name}.active", "u8", n.structures, "activations"),
                          touched=t(f"{n.name}.touched", "u8", n.structures, "weights"),
                          state=t(f"{n.name}.sparse_state", "f32", 4, "weights"))
        return params

    def needs_error(self, name: str) -> bool:
        """A tensor needs an error when a trainable layer produced it or lies upstream of it."""
        node = self.nodes.get(name)
        return node is not None and (node.trainable or any(self.needs_error(i) for i in node.inputs))

    # -- forward ------------------------------------------------------------------------------------
    def forward(self, phase: str, nodes, values: dict[str, Value]) -> None:
        """Emit the forward pass of `nodes`; `values` holds their inputs and receives their outputs."""
        self.ctx.phase = phase
        for n in nodes:
            xs = [values[i] for i in n.inputs]
            if n.operator.view:
                values[n.name] = xs[0]
                continue
            y = self.outs[n.name]
            n.operator.forward(self.ctx.at(n.name, "forward"), n, xs, y, self.params.get(n.name))
            if n.activation != "none" and not (self.u8 and n.activation == "relu" and n.operator.fuses_relu):
                REGISTRY[n.activation].activate(self.ctx, y, n.n_out)
            values[n.name] = y
        self.ctx.at(None, None)

    # -- backward -----------------------------------------------------------------------------------
    def _fused_mask(self, name: str) -> bool:
        """u8: the ReLU of a layer read by exactly one layer whose backward_input masks its error."""
        node, readers = self.nodes.get(name), self.consumers.get(name, [])
        return (self.u8 and node is not None and node.activation in ("relu", "relu6") and len(readers) == 1
                and readers[0].operator.masks_input and not node.operator.view)

    def backward(self, nodes, values: dict[str, Value], errors: dict[str, Value]) -> None:
        """Emit the backward pass of `nodes` (in reverse). `errors` holds the error of the last node and
        of any tensor outside `nodes` that wants one (the vae's z); tensors read by several layers get the
        sum of their readers' errors (the first writer overwrites, the others add)."""
        self.ctx.phase = "sample"
        errors = {**self.errs, **errors}
        written: set[str] = set()
        for n in reversed(list(nodes)):
            if n.operator.view:
                continue
            e = errors[n.name]
            if n.activation != "none" and not (n.activation == "relu" and self._fused_mask(n.name)):
                REGISTRY[n.activation].deactivate(self.ctx.at(n.name, "backward_input"), self.outs[n.name], e,
                                                  n.n_out)
            params, active = self.params.get(n.name), None
            if n.trainable:
                self.ctx.at(n.name, "backward_weight")
                if self.sparse:
                    active = params["active"]
                    self.ctx.call("sparse_select_u8", *e.args, n.structures, n.n_out // n.structures,
                                  Scalar("lambda_min"), Scalar("lambda_max"), params["state"], active,
                                  params["touched"], self.ctx.scratch("int32_t"))
                n.operator.backward_weight(self.ctx, n, [values[i] for i in n.inputs], e, params, active)
            self.ctx.at(n.name, "backward_input")
            self._backward_input(n, values, errors, written, e, params, active)
        self.ctx.at(None, None)

    def _source(self, name: str) -> str:
        """The tensor whose buffers a view shares."""
        node = self.nodes.get(name)
        return self._source(node.inputs[0]) if node is not None and node.operator.view else name

    def _backward_input(self, n, values, errors, written, e, params, active) -> None:
        targets, sums = [], []
        for i in n.inputs:
            src = self._source(i)
            if src not in errors or (src in self.nodes and not self.needs_error(src)):
                targets.append(None)
            elif src in written:                      # a second reader: its share goes through a buffer
                tmp = self._sum_buffer(errors[src])
                targets.append(tmp)
                sums.append((errors[src], tmp))
            else:
                targets.append(errors[src])
                written.add(src)
        if not any(t is not None for t in targets):
            return
        masks = [values[i] if self._fused_mask(self._source(i)) else None for i in n.inputs]
        n.operator.backward_input(self.ctx, n, [values[i] for i in n.inputs], self.outs[n.name], e, targets,
                                  params, masks[0], active)
        for total, part in sums:
            REGISTRY["add"].accumulate(self.ctx, total, part, self._count(total))

    def _count(self, v: Value) -> int:
        t = v.data if isinstance(v.data, Tensor) else v.data.tensor
        return t.count

    def _sum_buffer(self, like: Value) -> Value:
        """The buffer a tensor's second reader writes its share of the error into (one per size)."""
        n = self._count(like)
        if n not in self.sum_buffers:
            self.sum_buffers[n] = self.value(f"error_sum_{n}", n, kind="errors")
        return self.sum_buffers[n]

    # -- update -------------------------------------------------------------------------------------
    def update(self) -> None:
        lr, a_norm, a_w = Scalar("lr"), Scalar("alpha_norm"), Scalar("alpha_w")
        self.ctx.phase = "update"
        for n in self.graph.trainable:
            t, layout, call = self.params[n.name], n.operator.update_layout(n), self.ctx.at(n.name, "update").call
            if not self.u8:
                call("sgd_f32_standardized_update", t["w"], t["gw"], t["nw"], *layout, lr, a_norm, None)
                call("sgd_f32_standardized_update", t["b"], t["gb"], t["nb"], n.n_bias, 1, 1, lr, a_norm, None)
                continue
            touched = t["touched"] if self.sparse else None
            call("sgd_u8_update", t["w"], t["qw"], t["gw"], t["sgw"], t["nw"], *layout, lr, a_norm, a_w, touched)
            call("sgd_u8_update", t["b"], t["qb"], t["gb"], t["sgb"], t["nb"], n.n_bias, 1, 1, lr, a_norm, a_w,
                 touched)
            if self.sparse:
                call("fill_u8", touched, n.structures, 0)
        self.ctx.at(None, None)


def input_value(b: StepBuilder, phases) -> Value:
    """The image as the network's input: uint8 pixels with the range [0, 1] (u8), or converted to
    float32 once per forward pass (fp32)."""
    pixels = b.p.tensors["pixels"]
    if b.u8:
        return Value(pixels, b.tensor("pixels.qparams", "qp", 1, "activations", "qp_pixels"))
    x = b.tensor("input", "f32", pixels.count, "activations")
    for phase in phases:
        b.p.call(phase, "pixels_f32_forward", pixels, x, pixels.count)
    return Value(x)

