"""Numba twins of kernels/sparse_u8.c: the dynamic sparse update selection (top-k structures by error
magnitude) and fill_u8 (contracts in kernels/include/nn.h, "dynamic sparse updates").

Integer sums are exact; the float steps follow the C order exactly. The C finds the k-th largest
magnitude by radix select, the twin by sorting a copy: both give the same threshold, and the marking
pass (ties to the lower index) is the same. qe is a one-element record array of `quant_u8.QP_DTYPE`;
state a float32 array [e_max, k].
"""
from __future__ import annotations

import numpy as np
from numba import njit

ZERO, ONE = np.float32(0.0), np.float32(1.0)
BINS = 256

_jit = njit(cache=True, error_model="numpy")


def sparse_select_u8_buffer_size(structures: int) -> int:
    """Bytes of scratch the C needs: the magnitudes and a 256-bin histogram (int32 each)."""
    return 4 * (max(int(structures), 0) + BINS)


@_jit
def sparse_select_u8(e, qe, structures, size, lambda_min, lambda_max, state, active, touched):
    n, size = np.int32(structures), np.int32(size)
    if n <= 0 or size <= 0:
        return
    ze = np.int32(qe[0].zero_point)
    mag = np.empty(n, np.int32)
    total = np.int32(0)
    for s in range(n):
        acc = np.int32(0)
        base = s * size
        for i in range(size):
            d = np.int32(e[base + i]) - ze
            acc += d if d >= 0 else -d
        mag[s] = acc
        total += acc
    lmin, lmax = np.float32(lambda_min), np.float32(lambda_max)
    mean = np.float32(total) / np.float32(np.int32(n * size))
    e_avg = qe[0].scale * mean
    if e_avg > state[0]:
        state[0] = e_avg
    ratio = e_avg / state[0] if state[0] > ZERO else ONE
    t = lmax - lmin
    t = ratio * t
    t = lmin + t
    t = t * np.float32(n)
    if not t >= ONE:
        k = np.int32(1)
    elif t >= np.float32(n):
        k = n
    else:
        k = np.int32(t)
    state[1] = np.float32(k)
    state[2] = state[2] + np.float32(k)
    state[3] = state[3] + np.float32(structures)
    thr = np.sort(mag)[n - k]                      # the k-th largest magnitude
    need = k
    for s in range(n):
        if mag[s] > thr:
            need -= 1
    for s in range(n):
        m = mag[s]
        a = np.uint8(0)
        if m > thr:
            a = np.uint8(1)
        elif m == thr and need > 0:
            a = np.uint8(1)
            need -= 1
        active[s] = a
        touched[s] = touched[s] | a


@_jit
def fill_u8(x, n, value):
    v = np.uint8(value & 0xFF)
    for i in range(n):
        x[i] = v
