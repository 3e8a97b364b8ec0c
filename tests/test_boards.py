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
