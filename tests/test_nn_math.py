"""Shared float32 math primitives: the C in kernels/nn_math.c, run on the emulated Cortex-M4F, and
the Numba twins in mcusim.ops.nn_math must return the same bits; both must be accurate; the random
stream must be the same on both sides and look like what it claims to be."""
import re

import numpy as np
import pytest
from numba import njit

from mcusim.emulator import Machine
from mcusim.ops import nn_math as M
from mcusim.toolchain import KERNEL_DIR, build
from conftest import FIRMWARE

SOURCES = [KERNEL_DIR / "nn_math.c", FIRMWARE / "nn_math_harness.c"]
F32 = np.finfo(np.float32)
EXP_OVER = 88.72283935546875          # first float32 whose e^x exceeds FLT_MAX
EXP_UNDER = -87.33654022216797        # last float32 whose e^x is still a normal float


# ---- host loops over the twins ---------------------------------------------------------------
# Not cache=True: Numba does not recompile a cached caller when a callee in another file changes,
# so a cached loop here could keep testing an old twin.
@njit
def np_expf(x):
    y = np.empty_like(x)
    for i in range(x.size):
        y[i] = M.expf(x[i])
    return y


@njit
def np_logf(x):
    y = np.empty_like(x)
    for i in range(x.size):
        y[i] = M.logf(x[i])
    return y


@njit
def np_rng_next(state, n):
    out = np.empty(n, np.uint32)
    for i in range(n):
        out[i] = M.rng_next(state)
    return out


@njit
def np_rng_uniform(state, n):
    out = np.empty(n, np.float32)
    for i in range(n):
        out[i] = M.rng_uniform(state)
    return out


@njit
def np_rng_normal(state, n):
    out = np.empty(n, np.float32)
    for i in range(n):
        out[i] = M.rng_normal(state)
    return out


@njit
def np_rng_fill_normal(state, n):
    out = np.empty(n, np.float32)
    M.rng_fill_normal(state, out, n)
    return out


# ---- inputs ----------------------------------------------------------------------------------
def f32(values) -> np.ndarray:
    return np.asarray(values, np.float64).astype(np.float32)


def bits(values) -> np.ndarray:
    return np.asarray(values, np.uint64).astype(np.uint32).view(np.float32)


def neighbours(values) -> np.ndarray:
    v = f32(values)
    with np.errstate(over="ignore"):
        return np.concatenate([v, np.nextafter(v, np.float32(np.inf)), np.nextafter(v, np.float32(-np.inf))])


SPECIALS = np.concatenate([
    f32([0.0, -0.0, 1e-45, -1e-45, 1e-40, 1e-30, -1e-30, 1.1754944e-38, 1.0, -1.0, 0.5, 2.0, 10.0,
         F32.max, -F32.max, np.inf, -np.inf, np.nan]),
    bits([0x7FC00000, 0xFFC00000, 0x7F800001, 0x7FA12345, 0xFFFFFFFF]),       # NaNs with payloads
])
EXP_EDGES = np.concatenate([SPECIALS, neighbours([EXP_OVER, EXP_UNDER, -87.0, 88.0, 87.5, -87.33654475,
                                                  0.34657359, -0.34657359, 0.5 * np.log(2) * 3,
                                                  100.0, -100.0, -103.97, 1e-8, -1e-8])])
LOG_EDGES = np.concatenate([SPECIALS, neighbours([1.0, np.sqrt(2.0), np.sqrt(0.5), 2.0, 0.5, F32.tiny,
                                                  1e-38, 1e-44, 3.0, 1e30, 1e-30, F32.max])])


def exp_inputs() -> np.ndarray:
    rng = np.random.default_rng(7)
    return np.concatenate([EXP_EDGES, f32(rng.uniform(-87.3, 88.7, 4000)), f32(rng.uniform(-1, 1, 500)),
                           f32(rng.normal(0, 1e-4, 200)),
                           rng.integers(0, 2 ** 32, 1000, dtype=np.uint64).astype(np.uint32).view(np.float32)])


def log_inputs() -> np.ndarray:
    rng = np.random.default_rng(8)
    return np.concatenate([LOG_EDGES, f32(10.0 ** rng.uniform(-30, 30, 4000)), f32(rng.uniform(0.5, 2, 1000)),
                           f32(1 + rng.normal(0, 1e-5, 300)), f32(10.0 ** rng.uniform(-45, -38, 200)),
                           rng.integers(0, 2 ** 32, 1000, dtype=np.uint64).astype(np.uint32).view(np.float32)])


# ---- the machine -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def machine():
    return Machine(build(SOURCES, opt="-O2"), hclk_mhz=120)


def run_map(m: Machine, symbol: str, x: np.ndarray):
    try:
        X, Y = m.put(x.astype(np.float32)), m.alloc(x.size, np.float32)
        result = m.call(symbol, X, Y, x.size)
        return Y.array.copy(), result
    finally:
        m.free_all()


def run_stream(m: Machine, symbol: str, seed: int, n: int, dtype=np.float32):
    try:
        S, OUT = m.put(np.array([seed], np.uint32)), m.alloc(n, dtype)
        result = m.call(symbol, S, OUT, n)
        return OUT.array.copy(), int(S.array[0]), result
    finally:
        m.free_all()


def assert_same_bits(got: np.ndarray, want: np.ndarray, x: np.ndarray | None = None):
    g, w = got.view(np.uint32), want.view(np.uint32)
    bad = np.flatnonzero(g != w)
    if bad.size:
        i = bad[0]
        where = f" for input {x[i]!r} ({x.view(np.uint32)[i]:#010x})" if x is not None else ""
        raise AssertionError(f"{bad.size} of {g.size} results differ; first at {i}{where}: "
                             f"C {g[i]:#010x} vs Numba {w[i]:#010x}")


def rel_err(y: np.ndarray, ref: np.ndarray) -> float:
    return float(np.max(np.abs(y.astype(np.float64) - ref) / np.abs(ref)))


# ---- (1) bit-exact C vs Numba ------------------------------------------------------------------
def test_expf_bit_exact_c_vs_numba(machine):
    x = exp_inputs()
    y_c, _ = run_map(machine, "harness_expf", x)
    assert_same_bits(y_c, np_expf(x), x)


def test_logf_bit_exact_c_vs_numba(machine):
    x = log_inputs()
    y_c, _ = run_map(machine, "harness_logf", x)
    assert_same_bits(y_c, np_logf(x), x)


def test_sqrtf_is_the_ieee_square_root(machine):
    x = np.abs(log_inputs())
    x = x[~np.isnan(x)]                               # NaN results may differ in payload handling
    y_c, _ = run_map(machine, "harness_sqrtf", x)
    assert_same_bits(y_c, np.sqrt(x), x)


@pytest.mark.parametrize("opt", ["-O0", "-Os", "-O3"])
def test_other_optimisation_levels_give_the_same_bits(opt):
    # zig cc turns on its C sanitizer (UBSan, no runtime here) in unoptimised builds: switch it off
    extra = ["-fno-sanitize=undefined"] if opt == "-O0" else []
    m = Machine(build(SOURCES, opt=opt, extra_flags=extra), hclk_mhz=120, timing=False)
    x = exp_inputs()
    assert_same_bits(run_map(m, "harness_expf", x)[0], np_expf(x), x)
    x = log_inputs()
    assert_same_bits(run_map(m, "harness_logf", x)[0], np_logf(x), x)
    assert_same_bits(run_stream(m, "harness_rng_normal", 5, 2000)[0], np_rng_normal(np.array([5], np.uint32), 2000))


def _function_bodies(llvm_ir: str) -> list[str]:
    """The LLVM functions of a Numba compilation except the CPython boxing wrappers."""
    chunks = re.split(r"\n(?=define )", llvm_ir)
    return [c for c in chunks if c.startswith("define ") and "cpython" not in c.split("(")[0]
            and "cfunc." not in c.split("(")[0]]


@pytest.mark.parametrize("name, arg", [("expf", np.float32(1.5)), ("logf", np.float32(1.5)),
                                       ("_polar", np.array([1], np.uint32)),
                                       ("rng_uniform", np.array([1], np.uint32))])
def test_twins_compute_in_float32_only(name, arg):
    fresh = njit(error_model="numpy")(getattr(M, name).py_func)     # cached code cannot be inspected
    fresh(arg)
    bodies = _function_bodies(fresh.inspect_llvm(fresh.signatures[0]))
    assert bodies
    for body in bodies:
        assert "double" not in body, body[:2000]
        assert "fma" not in body and "fmuladd" not in body and "fast" not in body


# ---- (2) accuracy and special values -----------------------------------------------------------
def test_expf_accuracy_and_specials():
    x = exp_inputs()
    y = np_expf(x)
    finite = np.isfinite(x) & (x >= EXP_UNDER) & (x < EXP_OVER)
    err = rel_err(y[finite], np.exp(x[finite].astype(np.float64)))
    print(f"\nnn_expf max relative error {err:.3e} over {finite.sum()} inputs")
    assert err < 2e-7
    assert np.all(y[finite] >= F32.tiny)                               # never a denormal
    assert np.all(np.isposinf(y[x >= EXP_OVER]))
    assert np.all(y[x < EXP_UNDER] == 0) and not np.any(np.signbit(y[x < EXP_UNDER]))
    nan = np.isnan(x)
    assert np.array_equal(y[nan].view(np.uint32), x[nan].view(np.uint32))    # NaN passes through
    assert M.expf(np.float32(0.0)) == 1.0 and M.expf(np.float32(-0.0)) == 1.0
    assert M.expf(np.float32(np.nextafter(np.float32(EXP_OVER), np.float32(0)))) <= F32.max


def test_expf_dense_accuracy():
    x = f32(np.linspace(-87.33, 88.72, 400_001))
    err = rel_err(np_expf(x), np.exp(x.astype(np.float64)))
    print(f"\nnn_expf max relative error {err:.3e} over a dense grid")
    assert err < 2e-7


def test_logf_accuracy_and_specials():
    x = log_inputs()
    y = np_logf(x)
    ok = np.isfinite(x) & (x > 0) & (x != 1)
    err = rel_err(y[ok], np.log(x[ok].astype(np.float64)))
    print(f"\nnn_logf max relative error {err:.3e} over {ok.sum()} inputs (incl. denormals)")
    assert err < 3e-7
    assert M.logf(np.float32(1.0)) == 0.0
    assert np.isneginf(M.logf(np.float32(0.0))) and np.isneginf(M.logf(np.float32(-0.0)))
    assert np.isposinf(M.logf(np.float32(np.inf)))
    neg = (x < 0) | np.isneginf(x)
    assert np.all(y[neg].view(np.uint32) == 0x7FC00000)
    nan = np.isnan(x)
    assert np.array_equal(y[nan].view(np.uint32), x[nan].view(np.uint32))


def test_logf_dense_accuracy():
    rng = np.random.default_rng(9)
    x = np.concatenate([f32(np.exp(np.linspace(np.log(1e-38), np.log(3e38), 300_001))),
                        f32(np.linspace(0.5, 2.0, 200_001)), f32(1 + np.arange(-3000, 3001) * 2.0 ** -23),
                        rng.integers(1, 0x7F800000, 100_000, dtype=np.uint32).view(np.float32)])
    x = x[x != 1]
    err = rel_err(np_logf(x), np.log(x.astype(np.float64)))
    print(f"\nnn_logf max relative error {err:.3e} over a dense grid")
    assert err < 3e-7


# ---- (3) the random generator ------------------------------------------------------------------
def pcg_reference(seed: int, n: int) -> list[int]:
    """PCG32 RXS M XS written with Python integers, independent of both implementations."""
    out, s = [], seed
    for _ in range(n):
        s = (s * 747796405 + 2891336453) & 0xFFFFFFFF
        w = (((s >> ((s >> 28) + 4)) ^ s) * 277803737) & 0xFFFFFFFF
        out.append((w >> 22) ^ w)
    return out


@pytest.mark.parametrize("seed", [0, 1, 12345, 0xFFFFFFFF])
def test_rng_streams_match_c_numba_and_reference(machine, seed):
    raw_c, st_c, _ = run_stream(machine, "harness_rng_next", seed, 10_000, np.uint32)
    st = np.array([seed], np.uint32)
    raw_n = np_rng_next(st, 10_000)
    assert np.array_equal(raw_c, raw_n) and st_c == st[0]
    assert raw_n[:200].tolist() == pcg_reference(seed, 200)

    uni_c, st_c, _ = run_stream(machine, "harness_rng_uniform", seed, 10_000)
    st = np.array([seed], np.uint32)
    assert_same_bits(uni_c, np_rng_uniform(st, 10_000))
    assert st_c == st[0]

    nrm_c, st_c, _ = run_stream(machine, "harness_rng_normal", seed, 10_000)
    st = np.array([seed], np.uint32)
    assert_same_bits(nrm_c, np_rng_normal(st, 10_000))
    assert st_c == st[0]

    for n in (10_001, 1):                                   # odd lengths take one more pair
        fill_c, st_c, _ = run_stream(machine, "nn_rng_fill_normal", seed, n)
        st = np.array([seed], np.uint32)
        assert_same_bits(fill_c, np_rng_fill_normal(st, n))
        assert st_c == st[0]


def test_fill_normal_uses_both_values_of_each_pair():
    a = np_rng_fill_normal(np.array([3], np.uint32), 6)
    b = np_rng_normal(np.array([3], np.uint32), 1)
    assert a[0] == b[0] and a[1] != a[0]


def test_uniform_is_open_interval_on_a_2_pow_minus_24_grid():
    u = np_rng_uniform(np.array([2024], np.uint32), 1_000_000)
    assert u.min() > 0 and u.max() < 1
    assert np.all(u * 2.0 ** 24 == np.round(u * 2.0 ** 24))
    assert abs(u.mean() - 0.5) < 2e-3 and abs(u.var() - 1 / 12) < 1e-3


def test_normal_distribution_sanity():
    z = np_rng_fill_normal(np.array([77], np.uint32), 100_000).astype(np.float64)
    assert np.all(np.isfinite(z))
    assert abs(z.mean()) < 0.015 and abs(z.std() - 1) < 0.01
    assert abs(np.mean(np.abs(z) < 1) - 0.6827) < 0.006 and abs(np.mean(np.abs(z) < 2) - 0.9545) < 0.004
    assert abs(np.mean(z ** 4) - 3) < 0.1 and abs(np.mean(z ** 3)) < 0.05
    s = np_rng_normal(np.array([78], np.uint32), 100_000).astype(np.float64)
    assert abs(s.mean()) < 0.015 and abs(s.std() - 1) < 0.01


# ---- (4) cost on the M4 -------------------------------------------------------------------------
def test_cycles_per_call(machine):
    n = 1000
    rng = np.random.default_rng(10)
    xe, xl = f32(rng.uniform(-80, 80, n)), f32(10.0 ** rng.uniform(-30, 30, n))
    base = run_map(machine, "harness_empty", xe)[1].cycles
    per = {
        "nn_expf": (run_map(machine, "harness_expf", xe)[1].cycles - base) / n,
        "nn_logf": (run_map(machine, "harness_logf", xl)[1].cycles - base) / n,
        "nn_sqrtf": (run_map(machine, "harness_sqrtf", xl)[1].cycles - base) / n,
        "nn_rng_uniform": (run_stream(machine, "harness_rng_uniform", 1, n)[2].cycles - base) / n,
        "nn_rng_normal": (run_stream(machine, "harness_rng_normal", 1, n)[2].cycles - base) / n,
        "nn_rng_fill_normal": run_stream(machine, "nn_rng_fill_normal", 1, n)[2].cycles / n,
    }
    print(f"\ncycles per call at -O2, 120 MHz (harness loop overhead {base / n:.1f} cycles/element removed):")
    for name, cyc in per.items():
        print(f"  {name:20s} {cyc:7.1f} cycles  ({cyc / 120:.2f} us)")
    for name, cyc in per.items():
        assert 5 < cyc < 600, (name, cyc)
