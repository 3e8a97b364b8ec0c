"""The power model: the datasheet's run-current table, split into a static and a per-cycle part."""
import pytest

from mcusim.boards import BOARD_DIR, BoardError, load_board
from mcusim.power import PowerModel

F407_TABLE_20 = [(16, 5.0), (25, 6.0), (30, 8.0), (60, 14.0), (90, 20.0), (120, 26.0), (144, 31.0), (168, 40.0)]


def test_at_the_tables_clocks_the_model_is_the_datasheet():
    b = load_board("stm32f407vg")
    for mhz, ma in F407_TABLE_20:
        e = b.power.at(mhz)
        assert e.current_ma == pytest.approx(ma) and not e.extrapolated
        # the energy of one second of running = the datasheet's power, whatever the split
        assert e.energy_uj(mhz * 1e6) == pytest.approx(ma * 3.3 * 1e3)


def test_static_part_makes_energy_per_sample_depend_on_the_clock():
    e30, e120 = (load_board("stm32f407vg").power.at(f) for f in (30, 120))
    assert 0 < e30.static_mw == e120.static_mw < 5 * 3.3
    cycles = 5e6                                       # the same work at two clocks
    assert e30.energy_uj(cycles) > e120.energy_uj(cycles)          # the static part runs 4x longer at 30 MHz


def test_one_point_is_proportional_to_the_clock_and_says_where_it_extrapolates():
    m = PowerModel(3.3, ((120.0, 12.0),), "test")
    assert m.at(60).current_ma == pytest.approx(6.0) and m.at(60).static_mw == 0
    assert m.at(60).extrapolated and not m.at(120).extrapolated
    assert "extrapolated" in m.describe(60) and "no term for memory traffic" in m.describe(120)


def test_l4r5_model_is_the_sourced_figure():
    b = load_board("stm32l4r5zi")
    assert b.power.at(120).power_mw == pytest.approx(39.6)
    assert "Zephyr" in b.power.source


@pytest.mark.parametrize("table, message", [
    ("[[120, 12.0], [80, 9.0]]", "ascending"),
    ("[[120, -1.0]]", "positive"),
    ("[[120, nan]]", "positive"),
    ("[[120]]", "run_current"),
    ("[]", "run_current"),
])
def test_malformed_tables_are_refused(tmp_path, table, message):
    text = (BOARD_DIR / "stm32l4r5zi.toml").read_text().replace("run_current = [[120, 12.0]]", f"run_current = {table}")
    path = tmp_path / "b.toml"
    path.write_text(text)
    with pytest.raises(BoardError, match=message):
        load_board(str(path))
