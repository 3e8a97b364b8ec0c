"""Run a training-step `Program` on the host (Numba twins) or on the emulated MCU (generated C).

Both hold the same tensors; `state()` returns them by name so the two can be compared bit for bit.
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import pkgutil
import sys
from functools import lru_cache
from pathlib import Path

import numpy as np

from . import ops
from .boards import Board
from .disk_cache import source_digest
from .emulator import CallResult, Machine
from .host_threads import PartRunner, default_threads
from .ir import PHASES, Call, Program, call_symbol, phase_symbol, twin_name
from .kernel_lib import kernel_sources
from .ops.quant_u8 import QP_DTYPE
from .render_c import c_source
from .render_numba import lane_arena_sizes, numba_source
from .toolchain import build, cache_dir

NP_DTYPE = {"f32": np.float32, "u8": np.uint8, "i16": np.int16, "i32": np.int32, "u32": np.uint32, "qp": QP_DTYPE}


@lru_cache(maxsize=None)
def _twin_module_names() -> tuple[str, ...]:
    """Every module of mcusim/ops: the twins are found by name, so a new operator needs no list here."""
    return tuple(f"{ops.__name__}.{info.name}" for info in sorted(pkgutil.iter_modules(ops.__path__),
                                                                   key=lambda i: i.name))


def _twin_modules(p: Program) -> dict[str, str]:
    found = {}
    for mod_name in _twin_module_names():
        mod = importlib.import_module(mod_name)
        for k in p.kernels():
            if k not in found and callable(getattr(mod, twin_name(k), None)):
                found[k] = mod_name
    missing = p.kernels() - found.keys()
    if missing:
        raise RuntimeError(f"no Numba twin for kernels {sorted(missing)}")
    return found


def _lane_twin_modules(p: Program) -> dict[str, str]:
    """kernel -> module of its batch-lane twin (`<twin>_lanes`), for the kernels that have one."""
    found = {}
    for mod_name in _twin_module_names():
        mod = importlib.import_module(mod_name)
        for k in p.kernels():
            if k not in found and callable(getattr(mod, twin_name(k) + "_lanes", None)):
                found[k] = mod_name
    return found


def _twin_fingerprint() -> bytes:
    """The twins' source: Numba's cache of a generated caller embeds its callees, so a changed twin
    must change the generated module's name."""
    return source_digest(*map(importlib.import_module, _twin_module_names())).encode()


def _generated_file(source: str, stem: str, suffix: str, salt: bytes = b"") -> tuple[Path, str]:
    """Write generated source once into the cache, named by its content; returns (path, digest)."""
    digest = hashlib.sha256(source.encode() + salt).hexdigest()[:16]
    folder = cache_dir().parent / "generated"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{stem}_{digest}{suffix}"
    if not path.exists():
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(source)
        os.replace(tmp, path)
    return path, digest


def _generated_module(source: str, stem: str):
    """Import generated source from a file in the cache (Numba caches file-backed functions)."""
    path, digest = _generated_file(source, stem, ".py", _twin_fingerprint())
    name = f"mcusim_generated_{stem}_{digest}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


class HostStep:
    """The program on the Numba twins: one arena array per dtype, tensors are views into them. Batch
    phases run on `threads` threads (default: mcusim/host_threads.default_threads) where the program
    allows it (fp32 lane drivers), with the same bits as on one."""

    def __init__(self, program: Program, threads: int | None = None):
        self.program = program
        self.module = _generated_module(numba_source(program, _twin_modules(program), _lane_twin_modules(program)),
                                        f"{program.name}_{program.precision}")
        self.layout = program.layout()
        self.arenas = {d: np.zeros(n, NP_DTYPE[d]) for d, n in program.arena_sizes().items()}
        self._order = sorted(self.arenas)
        # the batch drivers' per-sample tensors, LANES samples side by side (render_numba)
        lanes = lane_arena_sizes(program)
        self._lane_arenas = [np.zeros(lanes[d], NP_DTYPE[d]) for d in sorted(lanes)]
        self.threads = default_threads() if threads is None else threads
        self._parts = None
        if self.threads > 1 and hasattr(self.module, f"{phase_symbol('sample')}_part"):
            self._parts = PartRunner(self.module, [self.arenas[d] for d in self._order], self._lane_arenas,
                                     self.threads)

    def view(self, name: str) -> np.ndarray:
        t = self.program.tensors[name]
        dtype, off = self.layout[name]
        return self.arenas[dtype][off: off + t.count]

    def run(self, phase: str, **scalars) -> float:
        fn = getattr(self.module, phase_symbol(phase))
        args = [self.arenas[d] for d in self._order] + [np.float32(scalars[s.name]) for s in self.program.scalars(phase)]
        return float(fn(*args))

    def run_batch(self, phase: str, images: np.ndarray, order: np.ndarray, start: int, count: int,
                  labels: np.ndarray | None = None, **scalars):
        """Run `phase` on images[order[start:start+count]] ([N, pixels] uint8; labels [N] int64 for a
        classifier) inside Numba; returns the per-image losses (or, for "encode", the [count, features])."""
        labels = np.zeros(0, np.int64) if labels is None else labels
        if self._parts is not None:
            return self._parts.run(phase, images, labels, order, start, count,
                                   [np.float32(scalars[s.name]) for s in self.program.scalars(phase)])
        fn = getattr(self.module, f"{phase_symbol(phase)}_batch")
        args = [self.arenas[d] for d in self._order] + self._lane_arenas + \
            [images, labels, order, np.int64(start), np.int64(count)]
        return fn(*args, *[np.float32(scalars[s.name]) for s in self.program.scalars(phase)])

    def state(self) -> dict[str, np.ndarray]:
        return {name: self.view(name).copy() for name in self.program.tensors}

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        for name, values in state.items():
            self.view(name)[...] = np.asarray(values).reshape(-1).view(self.view(name).dtype)


class DeviceStep:
    """The program as firmware on the emulated board: generated C + every kernel, tensors as symbols."""

    def __init__(self, program: Program, opt: str = "-O2", hclk_mhz: float | None = None, stack_size: int = 4096,
                 per_call: tuple[str, ...] = (), board: Board | None = None):
        """`per_call`: phases whose calls can also be run one by one (`run_calls`)."""
        self.program = program
        path, _ = _generated_file(c_source(program, per_call), f"step_{program.name}_{program.precision}", ".c")
        keep = [phase_symbol(phase) for phase in PHASES]
        keep += [call_symbol(phase, i) for phase in per_call for i in range(len(program.phases[phase]))]
        self.elf = build([*kernel_sources(), path], opt=opt, stack_size=stack_size, keep=keep, board=board)
        self.machine = Machine(self.elf, board=board, hclk_mhz=hclk_mhz)

    def _symbol(self, name: str):
        return self.machine.fw.symbol(self.program.tensors[name].c_name)

    def write(self, name: str, values: np.ndarray) -> None:
        t = self.program.tensors[name]
        data = np.ascontiguousarray(values, NP_DTYPE[t.dtype]).tobytes()
        if len(data) != t.nbytes:
            raise ValueError(f"{name}: {len(data)} bytes for a {t.nbytes}-byte tensor")
        self.machine.uc.mem_write(self._symbol(name).addr, data)

    def read(self, name: str) -> np.ndarray:
        t = self.program.tensors[name]
        raw = bytes(self.machine.uc.mem_read(self._symbol(name).addr, t.nbytes))
        return np.frombuffer(raw, NP_DTYPE[t.dtype]).copy()

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        for name, values in state.items():
            self.write(name, values)

    def state(self) -> dict[str, np.ndarray]:
        return {name: self.read(name) for name in self.program.tensors}

    def run(self, phase: str, **scalars):
        assert phase in PHASES
        return self.machine.call(phase_symbol(phase), *[scalars[s.name] for s in self.program.scalars(phase)])

    def run_calls(self, phase: str, **scalars) -> list[tuple[Call, CallResult]]:
        """The phase call by call (the same state changes as `run`): each call with its result."""
        args = [scalars[s.name] for s in self.program.scalars(phase)]
        return [(c, self.machine.call(call_symbol(phase, i), *args)) for i, c in enumerate(self.program.phases[phase])]


def initial_state(program: Program, seed: int, weights: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Initial values of every tensor: weights and biases given (`weights`, e.g. an ONNX model's
    initialisers) or drawn as PyTorch does by default (uniform in +-1/sqrt(fan_in)), quantized with their
    exact range for u8; activation and error ranges start at [-1, 1]; the image's range is [0, 1]
    (scale 1/255, zero point 0); u8 gradient rows start with the scale GRAD_SCALE_INIT (the update
    adapts it batch by batch)."""
    from .ops.quant_u8 import grad_scales, make_qparams, quantize_tensor
    rng = np.random.default_rng(seed)
    state: dict[str, np.ndarray] = {}
    floats: dict[str, np.ndarray] = {}
    for t in program.tensors.values():
        if t.init in ("weight", "bias"):
            bound = 1.0 / np.sqrt(program.fan_in[t.name])
            floats[t.name] = rng.uniform(-bound, bound, t.count).astype(np.float32)
            if weights is not None:
                floats[t.name] = np.ascontiguousarray(weights[t.name], np.float32).reshape(-1)
    for t in program.tensors.values():
        if t.init in ("weight", "bias") and t.dtype == "f32":
            state[t.name] = floats[t.name]
        elif t.init in ("weight", "bias"):
            state[t.name], state[t.name + ".qparams"] = quantize_tensor(floats[t.name])
        elif t.init == "grad_scale":
            state[t.name] = grad_scales(t.count)
        elif t.init == "qp_pixels":
            state[t.name] = make_qparams(0.0, 1.0)
        elif t.init in ("qp", "qp_fixed"):
            state[t.name] = make_qparams(-1.0, 1.0)
        elif t.name == "rng_state":
            state[t.name] = np.array([seed & 0xFFFF_FFFF], np.uint32)
    return state
