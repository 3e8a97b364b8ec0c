"""A batch phase on several threads: the part drivers that mcusim/render_numba.py renders when
`split_plan` allows, called from a thread pool. The drivers release the GIL (nogil), so each thread
has a core; the bits are those of the one-thread lane drivers (render_numba.split_plan says why).

Per chunk of LANES samples: the carried calls (the RNG, in sample order) on the calling thread; then
the chunk split into one contiguous part per thread, each running the per-sample calls on its own
lane arena; then the gradient calls, handed out one at a time to whichever thread is free, each over
the parts in order. Two hand-overs per chunk, so other jobs on the cores cost little waiting.
"""
from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .errors import McusimError
from .ir import phase_symbol
from .render_numba import LANES

THREADS_ENV = "MCUSIM_THREADS"


def default_threads() -> int:
    """$MCUSIM_THREADS, else 1: every measurement so far (a shared 2-core machine with other jobs on it)
    found two threads slower than one (5,642 vs 7,334 samples/s), so more threads are asked for, not assumed."""
    text = os.environ.get(THREADS_ENV)
    if text is None:
        return 1
    if not text.strip().isdigit() or int(text) < 1:
        raise McusimError(f"{THREADS_ENV}={text!r} is not a thread count: set it to a whole number of at least 1 "
                          f"(e.g. {THREADS_ENV}=2), or unset it for one thread")
    return int(text)


def _split(m: int, parts: int) -> np.ndarray:
    """m lanes into `parts` contiguous parts as equal as can be (the first ones one larger)."""
    parts = min(parts, m)
    return np.array([m // parts + (k < m % parts) for k in range(parts)], np.int64)


class PartRunner:
    """The part drivers of a generated module over shared arenas, with one lane arena and one scratch
    copy of the arenas per thread."""

    def __init__(self, module, arenas: list[np.ndarray], lane_arenas: list[np.ndarray], threads: int):
        self.module, self.arenas, self.threads = module, arenas, threads
        self.lanes = [np.zeros((threads, a.size), a.dtype) for a in lane_arenas]
        self.scratch = [np.zeros((threads, a.size), a.dtype) for a in arenas]
        self.pool = ThreadPoolExecutor(threads - 1, thread_name_prefix="mcusim-part")

    def run(self, phase: str, images: np.ndarray, labels: np.ndarray, order: np.ndarray, start: int, count: int,
            scalars: list) -> np.ndarray:
        sym = phase_symbol(phase)
        carry, part, grads = (getattr(self.module, f"{sym}_{k}") for k in ("carry", "part", "grads"))
        results = []
        for c0 in range(0, count, LANES):
            m = min(LANES, count - c0)
            mparts = _split(m, self.threads)
            firsts = start + c0 + np.concatenate([[0], np.cumsum(mparts)[:-1]])
            carry(*self.arenas, *self.lanes, mparts, *scalars)
            last = c0 + m == count

            def run_part(p: int):
                return part(*self.arenas, *self.scratch, *self.lanes, images, labels, order, np.int64(firsts[p]),
                            np.int64(mparts[p]), np.int64(p), last and p == len(mparts) - 1, *scalars)
            results += self._on_all(run_part, len(mparts))
            todo, lock = iter(grads), threading.Lock()

            def run_grads(t: int):
                while True:
                    with lock:
                        grad = next(todo, None)
                    if grad is None:
                        return
                    grad(*self.arenas, *self.scratch, *self.lanes, mparts, np.int64(t), *scalars)
            self._on_all(run_grads, min(len(grads), len(mparts)))
        if not results:
            return part(*self.arenas, *self.scratch, *self.lanes, images, labels, order, np.int64(start),
                        np.int64(0), np.int64(0), False, *scalars)
        return np.concatenate(results)

    def _on_all(self, fn, n: int) -> list:
        """fn(0), ..., fn(n - 1) at once: fn(0) on this thread, the others on the pool; their results."""
        futures = [self.pool.submit(fn, k) for k in range(1, n)]
        first = [fn(0)] if n > 0 else []
        return first + [f.result() for f in futures]
