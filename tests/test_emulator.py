"""The functional model: calls under the hard-float ABI, results against numpy, faults, memory."""
import numpy as np
import pytest

from mcusim.emulator import Fault, Machine
from mcusim.memory import MemoryBudgetError
from mcusim.toolchain import build
from conftest import FIRMWARE


@pytest.fixture(scope="module")
def machine(basics_elf):
    return Machine(basics_elf)


def test_integer_float_and_stacked_arguments(machine):
    assert machine.call("add_int", 7, -12).return_value == -5
    assert machine.call("add_unsigned", 0xFFFF_FFFF, 2).return_value == 1
    assert machine.call("affine", 1.5, -2.0, 0.25).return_value == np.float32(1.5 * -2.0 + 0.25)
    assert machine.call("many_args", 1, 2, 3, 4, 5, 6).return_value == 1 + 4 + 9 + 16 + 25 + 36
    assert machine.call("mixed", 3, 0.5, -2, 4.0).return_value == pytest.approx(3 * 0.5 - 2 * 4.0)


def test_wrong_argument_count_is_reported(machine):
    with pytest.raises(Exception, match="takes 2 argument"):
        machine.call("add_int", 1)


def test_int8_dot_product_equals_numpy(machine):
    rng = np.random.default_rng(1)
    a, b = rng.integers(-128, 128, 777, dtype=np.int8), rng.integers(-128, 128, 777, dtype=np.int8)
    A, B = machine.put(a), machine.put(b)
    try:
        assert machine.call("dot_s8", A, B, len(a)).return_value == int(a.astype(np.int64) @ b.astype(np.int64))
    finally:
        machine.free_all()


def test_fp32_matvec_is_bit_exact_with_the_same_operation_order(machine):
    rng = np.random.default_rng(2)
    w = rng.standard_normal((16, 50)).astype(np.float32)
    x = rng.standard_normal(50).astype(np.float32)
    W, X, Y = machine.put(w), machine.put(x), machine.alloc(16, np.float32)
    try:
        machine.call("matvec_f32", W, X, Y, 16, 50)
        expected = np.zeros(16, np.float32)
        for c in range(50):                      # same order as the C loop, rounding every step
            expected = (expected + w[:, c] * x[c]).astype(np.float32)
        assert np.array_equal(Y.array.view(np.uint32), expected.view(np.uint32))
        assert np.allclose(Y.array, w.astype(np.float64) @ x, rtol=1e-4, atol=1e-4)
    finally:
        machine.free_all()


def test_data_section_is_initialised_and_persists_between_calls(machine):
    first = machine.call("bump").return_value
    assert machine.call("bump").return_value == first + 1
    assert first >= 42


def test_dwt_cyccnt_read_by_firmware_tracks_the_model(basics_elf):
    m = Machine(basics_elf, hclk_mhz=20)                 # 0 wait states: no cache warm-up effects
    overheads = []
    for n in (5, 50, 500):
        measured = m.call("time_work", n).return_value
        modelled = m.call("work", n).cycles
        overheads.append(measured - modelled)
    # the firmware's own measurement = the model's count for work(n) + a fixed call overhead
    assert len(set(overheads)) == 1, overheads
    assert 0 < overheads[0] <= 12


def test_stack_peak_is_measured_by_painting(machine):
    r = machine.call("uses_stack", 3)
    assert 1000 <= r.stack_peak_bytes <= 1100
    assert machine.call("add_int", 1, 2).stack_peak_bytes < 64


def test_itm_output_reaches_the_host(basics_elf):
    out = []
    Machine(basics_elf, write_char=out.append).call("hello")
    assert "".join(out) == "hello from the M4\n"


def test_cpuid_reads_cortex_m4(machine):
    assert machine.call("cpuid").return_value == 0x410FC241


def test_sram2_alias_is_the_same_memory(machine):
    machine.uc.mem_write(0x1000_0010, b"\x12\x34\x56\x78")
    assert bytes(machine.uc.mem_read(0x2003_0010, 4)) == b"\x12\x34\x56\x78"


def test_allocator_refuses_to_grow_beyond_sram(machine):
    with pytest.raises(MemoryBudgetError, match=r"overflows the 655.4 kB of SRAM.*Breakdown"):
        machine.alloc(700 * 1024, np.uint8, name="activations")
    machine.free_all()


def test_static_data_over_sram_is_a_budget_error_with_breakdown():
    with pytest.raises(MemoryBudgetError, match=r"needs 733.2 kB of SRAM .* over by 77.8 kB .*\.bss 716.8 kB"):
        build([FIRMWARE / "too_big.c"])


@pytest.fixture(scope="module")
def faulty(faults_elf):
    return Machine(faults_elf)


@pytest.mark.parametrize("symbol, args, kind, text", [
    ("read_unmapped", (), "unmapped-read", "0x30000000"),
    ("write_unmapped", (5,), "unmapped-write", "0x50000000"),
    ("fetch_unmapped", (), "unmapped-fetch", "0x30000000"),
    ("write_flash", (5,), "flash-write", "write of 0x5 to flash"),
    ("undefined_instruction", (), "undefined-instruction", "undefined"),
    ("breakpoint", (), "breakpoint", "exception"),
    ("recurse", (1000,), "stack-overflow", "--stack-size"),
])
def test_fault_kinds(faulty, symbol, args, kind, text):
    with pytest.raises(Fault) as info:
        faulty.call(symbol, *args)
    fault = info.value
    assert fault.kind == kind
    assert text in str(fault)
    assert "registers: r0=" in str(fault) and "pc" in str(fault)
    if kind != "unmapped-fetch":
        assert fault.where.startswith(symbol)
        assert fault.instruction and "undecodable" not in fault.instruction
    # the machine stays usable after a fault
    assert faulty.call("recurse", 2).return_value == 3


def test_endless_loop_stops_at_the_cycle_budget(faulty):
    with pytest.raises(Fault, match="exceeded its budget of 100000 cycles") as info:
        faulty.call("spin", max_cycles=100_000)
    assert info.value.kind == "cycle-budget"
    assert info.value.where.startswith("spin")


def test_floats_without_a_prototype_are_refused(tmp_path):
    """Without debug info mcusim cannot know the float ABI of a call: it says so instead of guessing."""
    from mcusim.errors import McusimError
    m = Machine(build([FIRMWARE / "basics.c"], opt="-O2", extra_flags=["-g0"]))
    assert m.call("add_int", 2, 3).return_value == 5
    with pytest.raises(McusimError, match="no debug information for affine"):
        m.call("affine", 1.5, 2.0, 1.0)


def test_damaged_elf_files_are_one_clear_error(tmp_path, basics_elf):
    """Byte-level damage of a real ELF (headers, DWARF, symbol tables): reading it either works or raises
    one FirmwareError; never another exception (200 seeded mutations)."""
    from mcusim.firmware import Firmware, FirmwareError
    raw = bytearray(basics_elf.read_bytes())
    rng = np.random.default_rng(11)
    for case in range(200):
        data = bytearray(raw)
        for _ in range(int(rng.integers(1, 8))):
            region = int(rng.choice([64, 4096, len(data)]))          # the ELF header, early tables, anywhere
            data[int(rng.integers(0, min(region, len(data))))] = int(rng.integers(0, 256))
        if rng.random() < 0.1:
            data = data[: int(rng.integers(1, len(data)))]               # truncated
        path = tmp_path / f"m{case}.elf"
        path.write_bytes(bytes(data))
        try:
            fw = Firmware.load(path)
            fw.code_ranges()
            fw.signature("affine")
            fw.source_line(fw.symbols["affine"].addr if "affine" in fw.symbols else 0)
        except FirmwareError:
            pass

