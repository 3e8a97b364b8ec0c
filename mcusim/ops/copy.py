"""Numba twins of kernels/copy_f32.c and copy_u8.c: y = x (and, for u8, its qparams)."""
from __future__ import annotations

from numba import njit

_jit = njit(cache=True, error_model="numpy")


@_jit
def copy_f32(x, y, n):
    y[:n] = x[:n]


@_jit
def copy_u8(x, qx, y, qy, n):
    y[:n] = x[:n]
    qy[0] = qx[0]
