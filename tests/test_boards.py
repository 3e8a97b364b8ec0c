"""Boards are data: the facts of each board file, the core they name, validation of bad files, and a
new board (or core) as a new file only."""
import numpy as np
import pytest

from mcusim.boards import BOARD_DIR, BoardError, load_board
from mcusim.emulator import Fault, Machine
from mcusim.toolchain import build, get_toolchain, linker_script
from conftest import FIRMWARE


@pytest.fixture(autouse=True)
def fresh_board_cache():
    """Tests write edited boards under one tmp path; every load must read the file again."""
    load_board.cache_clear()
    yield
    load_board.cache_clear()


def test_stm32l4r5_facts():
    b = load_board("stm32l4r5zi")
    assert (b.flash.origin, b.flash.size) == (0x0800_0000, 2 * 1024 * 1024)
    assert {m.name: (m.origin, m.size // 1024) for m in b.srams} == {
        "SRAM1": (0x2000_0000, 192), "SRAM2": (0x2003_0000, 64), "SRAM3": (0x2004_0000, 384)}
    assert b.sram_block == (0x2000_0000, 640 * 1024) and b.extra_rams == ()
    assert [b.wait_states(f) for f in (16, 20, 21, 40, 60, 80, 100, 101, 120)] == [0, 0, 1, 1, 2, 3, 4, 5, 5]
    assert b.power_mw(120) == pytest.approx(39.6) and b.systick_reference_divider == 8
    assert (b.art.prefetch, b.art.icache_lines, b.art.dcache_lines, b.art.flash_word_bytes) == (True, 32, 8, 8)
    with pytest.raises(BoardError, match="outside"):
        b.wait_states(150)


def test_stm32f407_facts_and_its_reset_state():
    b = load_board("stm32f407vg")
    assert (b.flash.origin, b.flash.size, b.default_hclk_mhz) == (0x0800_0000, 1 << 20, 168)
    assert b.sram_block == (0x2000_0000, 128 * 1024)                    # SRAM1 112 KB + SRAM2 16 KB
    assert [(m.name, m.kind, m.origin, m.size) for m in b.extra_rams] == [("CCM", "ccm", 0x1000_0000, 64 * 1024)]
    assert [b.wait_states(f) for f in (16, 30, 31, 60, 90, 120, 150, 168)] == [0, 0, 1, 1, 2, 3, 4, 5]
    assert (b.art.prefetch, b.art.icache_lines, b.art.icache_line_bytes, b.art.dcache_lines) == (True, 64, 16, 8)
    assert b.power_mw(168) == pytest.approx(40.0 * 3.3)                 # DS8626 table 20 at 168 MHz
    r = load_board("stm32f407vg_reset")
    assert (r.default_hclk_mhz, r.wait_states(r.default_hclk_mhz), r.art.prefetch) == (16, 0, False)
    assert (r.art.icache_lines, r.art.icache_line_bytes) == (1, 16)    # off: one flash word's read buffer
    assert r.memories == b.memories                                     # inherited from its base


def test_nrf52840_facts():
    b = load_board("nrf52840")
    assert (b.flash.origin, b.flash.size, b.default_hclk_mhz, b.max_hclk_mhz) == (0, 1 << 20, 64, 64)
    assert b.sram_block == (0x2000_0000, 256 * 1024)
    assert b.srams[0].aliases == (0x0080_0000,)                         # Code RAM alias
    assert b.accelerator == "NVMC instruction cache" and not b.art.prefetch and b.art.dcache_lines == 1
    assert b.systick_reference_divider is None


def test_the_core_drives_unicorn_cpuid_and_the_compiler_flags(tmp_path):
    b = load_board("stm32f407vg")
    assert (b.core.name, b.core.unicorn_cpu, b.core.cpuid, b.core.timing_rules) == (
        "cortex-m4f", "CORTEX_M4", 0x410F_C241, "cortex_m4")
    assert "-mcpu=cortex_m4+vfp4d16sp" in get_toolchain("zig", b).target_flags
    core = (BOARD_DIR / "cores" / "cortex-m4f.toml").read_text().replace("0x410F_C241", "0x410F_C240")
    (tmp_path / "my-core.toml").write_text(core.replace('name = "cortex-m4f"', 'name = "my-core"'))
    text = (BOARD_DIR / "stm32l4r5zi.toml").read_text().replace('core = "cortex-m4f"', 'core = "my-core"')
    (tmp_path / "board.toml").write_text(text)
    mine = load_board(str(tmp_path / "board.toml"))
    assert mine.core.cpuid == 0x410F_C240
    m = Machine(build([FIRMWARE / "basics.c"], board=mine), board=mine)
    assert m.call("cpuid").return_value == 0x410F_C240


def test_a_new_board_is_a_new_file(tmp_path):
    text = (BOARD_DIR / "stm32l4r5zi.toml").read_text()
    text = text.replace('name = "stm32l4r5zi"', 'name = "small-m4"').replace("size = 0x6_0000", "size = 0x1_0000")
    path = tmp_path / "small-m4.toml"
    path.write_text(text)
    b = load_board(str(path))
    assert b.name == "small-m4" and b.sram_block[1] == (192 + 64 + 64) * 1024


def test_a_board_can_start_from_another(tmp_path):
    (tmp_path / "f407-at-48.toml").write_text('base = "stm32f407vg"\nname = "f407-48"\n'
                                              '[clock]\ndefault_hclk_mhz = 48\n')
    b = load_board(str(tmp_path / "f407-at-48.toml"))
    assert (b.name, b.default_hclk_mhz, b.wait_states(48), b.max_hclk_mhz) == ("f407-48", 48, 1, 168)
    (tmp_path / "loop.toml").write_text('base = "loop"\n')
    with pytest.raises(BoardError, match="leads back to itself"):
        load_board(str(tmp_path / "loop.toml"))


def test_unknown_board_lists_known_ones():
    with pytest.raises(BoardError, match="known boards: nrf52840, stm32f407vg, stm32f407vg_reset, stm32l4r5zi"):
        load_board("nucleo-xyz")


def test_mcusim_board_sets_the_default(monkeypatch):
    monkeypatch.setenv("MCUSIM_BOARD", "nrf52840")
    assert load_board().name == "nrf52840"
    monkeypatch.delenv("MCUSIM_BOARD")
    assert load_board().name == "stm32l4r5zi"


@pytest.mark.parametrize("edit, message", [
    (("icache_lines = 32", "icache_lines = 0"), "icache_lines = 0"),
    (("icache_line_bytes = 32", "icache_line_bytes = 33"), "power of two"),
    (("icache_line_bytes = 32", "icache_line_bytes = 4"), "below the flash word"),
    (("word_bytes = 8", 'word_bytes = "x"'), "word_bytes"),
    (("icache_lines = 32\n", ""), "icache = true needs icache_lines"),
    (("size = 0x3_0000", "size = 0x3_0001"), "4096-byte-aligned"),
    (("wait_state_max_mhz = [20, 40, 60, 80, 100, 120]", "wait_state_max_mhz = []"), "wait-state table"),
    (("supply_v = 3.3", "supply_v = nan"), "supply_v"),
    (("default_hclk_mhz = 120", 'default_hclk_mhz = "fast"'), "default_hclk_mhz"),
    (("default_hclk_mhz = 120", "default_hclk_mhz = 200"), "default_hclk_mhz <= max_hclk_mhz"),
    (("origin = 0x2004_0000", "origin = 0x2002_0000"), "overlap"),
    (('kind = "flash"', 'kind = "rom"'), "kind"),
    (('core = "cortex-m4f"', 'core = "cortex-m99"'), "no core 'cortex-m99'"),
    (("prefetch = true", "prefetch = true\nprefech = false"), "prefech"),
])
def test_bad_board_values_are_refused_before_the_hook_sees_them(tmp_path, edit, message):
    """A zero-line cache once crashed the native hook (SIGSEGV); every value it trusts is checked."""
    text = (BOARD_DIR / "stm32l4r5zi.toml").read_text()
    assert edit[0] in text
    path = tmp_path / "board.toml"
    path.write_text(text.replace(edit[0], edit[1], 1))
    with pytest.raises(BoardError, match=message):
        load_board(str(path))


def test_optional_sections_have_documented_defaults(tmp_path):
    text = (BOARD_DIR / "stm32l4r5zi.toml").read_text()
    text = text[:text.index("[flash_accelerator]")] + text[text.index("[[memory]]"):text.index("[power]")]
    (tmp_path / "bare.toml").write_text(text)
    b = load_board(str(tmp_path / "bare.toml"))
    assert b.power_mw(120) is None and b.accelerator == ""
    assert (b.art.prefetch, b.art.icache_lines, b.art.icache_line_bytes) == (False, 1, 8)


def test_ccm_is_mapped_used_by_the_linker_and_cannot_execute():
    b = load_board("stm32f407vg")
    assert "CCM (rw) : ORIGIN = 0x10000000, LENGTH = 0x10000" in linker_script(b, 4096)
    m = Machine(build([FIRMWARE / "ccm.c"], board=b), board=b)
    assert m.call("ccm_address").return_value == 0x1000_0000
    assert m.call("ccm_fill_and_sum", 1024).return_value == sum(3 * i for i in range(1024))
    assert m.extra_ram["CCM"][4:8].view("<u4")[0] == 3                 # the data really is in the CCM
    assert m.static.other_ram == {".ccm": 4096} and ".ccm" not in m.static.sram
    with pytest.raises(Fault, match="fetch at 0x10000000 from CCM") as info:
        m.call("run_from_ccm")
    assert info.value.kind == "no-execute"


def test_the_accelerator_switches_change_flash_stalls(tmp_path):
    """Same code, same clock (168 MHz, 5 wait states): with the ART off every flash word costs."""
    (tmp_path / "off.toml").write_text('base = "stm32f407vg"\nname = "f407-art-off"\n[flash_accelerator]\n'
                                       'prefetch = false\nicache = false\ndcache = false\n')
    on, off = load_board("stm32f407vg"), load_board(str(tmp_path / "off.toml"))
    elf = build([FIRMWARE / "basics.c"], board=on)
    stalls = []
    for board in (on, off):
        m = Machine(elf, board=board)
        w, x, y = m.put(np.ones((16, 50), np.float32)), m.put(np.ones(50, np.float32)), m.alloc(16, np.float32)
        stalls.append(m.call("matvec_f32", w, x, y, 16, 50).flash_stall_cycles)
    assert stalls[0] < 200 < 2000 < stalls[1]


def test_flash_aliases_are_mapped(tmp_path):
    """STM32 boot alias: the flash also appears at 0 (a new board file, no code change)."""
    text = (BOARD_DIR / "stm32f407vg.toml").read_text().replace("size = 0x10_0000", "size = 0x10_0000\naliases = [0]")
    (tmp_path / "boot.toml").write_text(text)
    b = load_board(str(tmp_path / "boot.toml"))
    m = Machine(build([FIRMWARE / "basics.c"], board=b), board=b)
    assert bytes(m.uc.mem_read(0, 8)) == bytes(m.uc.mem_read(b.flash.origin, 8))


def test_nrf52840_runs_firmware_from_flash_at_address_zero():
    b = load_board("nrf52840")
    m = Machine(build([FIRMWARE / "basics.c"], board=b), board=b)
    assert m.fw.address("work") < b.flash.end
    assert m.call("add_int", 2, 3).return_value == 5
    assert m.call("cpuid").return_value == 0x410F_C241
