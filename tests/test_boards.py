"""Boards are data: the STM32L4R5ZI facts, and a new board from a TOML file with no code change."""
import pytest

from mcusim.boards import BOARD_DIR, BoardError, load_board


def test_stm32l4r5_facts():
    b = load_board("stm32l4r5zi")
    assert (b.flash.origin, b.flash.size) == (0x0800_0000, 2 * 1024 * 1024)
    assert {m.name: (m.origin, m.size // 1024) for m in b.srams} == {
        "SRAM1": (0x2000_0000, 192), "SRAM2": (0x2003_0000, 64), "SRAM3": (0x2004_0000, 384)}
    assert b.sram_block == (0x2000_0000, 640 * 1024)
    assert [b.wait_states(f) for f in (16, 20, 21, 40, 60, 80, 100, 101, 120)] == [0, 0, 1, 1, 2, 3, 4, 5, 5]
    assert b.power_mw(120) == pytest.approx(39.6)
    with pytest.raises(BoardError, match="outside"):
        b.wait_states(150)


def test_a_new_board_is_a_new_file(tmp_path):
    text = (BOARD_DIR / "stm32l4r5zi.toml").read_text()
    text = text.replace('name = "stm32l4r5zi"', 'name = "small-m4"').replace("size = 0x6_0000", "size = 0x1_0000")
    path = tmp_path / "small-m4.toml"
    path.write_text(text)
    b = load_board(str(path))
    assert b.name == "small-m4" and b.sram_block[1] == (192 + 64 + 64) * 1024


def test_unknown_board_lists_known_ones():
    with pytest.raises(BoardError, match="known boards: stm32l4r5zi"):
        load_board("nucleo-xyz")


@pytest.mark.parametrize("edit, message", [
    (("icache_lines = 32", "icache_lines = 0"), "icache_lines = 0"),
    (("icache_line_bytes = 32", "icache_line_bytes = 33"), "power of two"),
    (("flash_word_bytes = 8", 'flash_word_bytes = "x"'), "flash_word_bytes"),
    (("size = 0x3_0000", "size = 0x3_0001"), "4 KB-aligned"),
    (("wait_state_max_mhz = [20, 40, 60, 80, 100, 120]", "wait_state_max_mhz = []"), "wait_state_max_mhz"),
    (("supply_v = 3.3", "supply_v = nan"), "supply voltage"),
    (("default_hclk_mhz = 120", 'default_hclk_mhz = "fast"'), "malformed entry"),
    (("origin = 0x2004_0000", "origin = 0x2002_0000"), "overlap"),
])
def test_bad_board_values_are_refused_before_the_hook_sees_them(tmp_path, edit, message):
    """A zero-line cache once crashed the native hook (SIGSEGV); every value it trusts is checked."""
    text = (BOARD_DIR / "stm32l4r5zi.toml").read_text()
    assert edit[0] in text
    path = tmp_path / "board.toml"
    path.write_text(text.replace(edit[0], edit[1], 1))
    load_board.cache_clear()
    with pytest.raises(BoardError, match=message):
        load_board(str(path))
