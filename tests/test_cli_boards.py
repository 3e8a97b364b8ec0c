"""--board NAME|FILE on every command, $MCUSIM_BOARD as the default, the board in results.json, and a new
board used end to end (build, run, size, plan) as a new file only."""
import json
import os
import re
import subprocess
import sys

import pytest

from mcusim.boards import BOARD_DIR
from mcusim.cli import build_parser, main
from conftest import FIRMWARE


def mcusim(*args, env=None):
    return subprocess.run([sys.executable, "-m", "mcusim.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=300, env={**os.environ, **(env or {})})


@pytest.mark.parametrize("command", [["cc", "x.c", "-o", "x.elf"], ["run", "x.elf", "--call", "f"],
                                     ["profile", "x.elf", "--call", "f"], ["size", "x.elf"], ["plan", "m"],
                                     ["crosscheck"], ["train", "m", "--out", "o"], ["vae", "train", "--out", "o"]])
def test_every_command_takes_a_board(command):
    args = build_parser().parse_args([*command, "--board", "nrf52840"])
    assert args.board == "nrf52840"


def test_a_new_board_file_builds_runs_sizes_and_plans(tmp_path):
    """A board that exists only as a TOML file in a temporary folder, used by every command."""
    text = (BOARD_DIR / "stm32f407vg.toml").read_text().replace('name = "stm32f407vg"', 'name = "my-f407"')
    text = text[:text.index("[power]")]                         # a board without power figures: no energy
    board = tmp_path / "my-f407.toml"
    board.write_text(text.replace("default_hclk_mhz = 168", "default_hclk_mhz = 84"))
    elf = tmp_path / "basics.elf"
    assert mcusim("cc", FIRMWARE / "basics.c", "-o", elf, "--board", board).returncode == 0
    run = mcusim("run", elf, "--call", "add_int", "--arg", "2", "--arg", "3", "--json", "--board", board)
    report = json.loads(run.stdout)
    assert (report["return_value"], report["hclk_hz"], report["flash_wait_states"]) == (5, 84e6, 2)
    assert re.search(r"CCM +0 bytes of 65536 \(ccm, section \.ccm\)", mcusim("size", elf, "--board", board).stdout)
    plan = mcusim("plan", "cnn_digits", "--batch", "10", "--format", "json", "--board", board)
    assert plan.returncode == 0, plan.stderr
    plan = json.loads(plan.stdout)
    assert (plan["board"], plan["hclk_mhz"], plan["step"]["uj_per_sample"]) == ("my-f407", 84, None)
    assert plan["fit"]["sram"]["limit"] == 128 * 1024


def test_mcusim_board_is_the_default_of_every_command(tmp_path):
    elf = tmp_path / "basics.elf"
    env = {"MCUSIM_BOARD": "nrf52840"}
    assert mcusim("cc", FIRMWARE / "basics.c", "-o", elf, env=env).returncode == 0
    report = json.loads(mcusim("run", elf, "--call", "cpuid", "--json", env=env).stdout)
    assert (report["hclk_hz"], report["flash_limit_bytes"], report["sram_limit_bytes"]) == (64e6, 1 << 20, 256 << 10)
    wrong = mcusim("run", elf, "--call", "cpuid", "--board", "stm32l4r5zi")
    assert wrong.returncode == 2 and "build it for this board" in wrong.stderr


def test_training_records_its_board(tmp_path, capsys):
    assert main(["train", "cnn_digits", "--precision", "fp32", "--epochs", "1", "--train-limit", "20", "--batch", "1",
                 "--quiet", "--board", "stm32f407vg_reset", "--out", str(tmp_path / "run")]) == 0
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["config"]["board"] == "stm32f407vg_reset" and results["config"]["hclk_mhz"] == 16
    mcu = results["mcu"]
    assert (mcu["board"], mcu["hclk_mhz"], mcu["power_mw"]) == ("stm32f407vg_reset", 16, pytest.approx(7.0 * 3.3))
    assert mcu["energy_mj"] == pytest.approx(mcu["power_mw"] * mcu["latency_ms"] / 1000)   # at a table clock
    assert "DS8626 Rev 12, table 21" in mcu["power_model"]
    assert results["mcu"]["crosscheck"]["bit_exact"] is True
    assert "on the stm32f407vg_reset at 16 MHz" in capsys.readouterr().out


def test_a_bad_board_file_is_one_clear_error(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text((BOARD_DIR / "stm32l4r5zi.toml").read_text().replace("icache_lines = 32", "icache_lines = 3"))
    proc = mcusim("size", FIRMWARE / "basics.c", "--board", bad)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "icache_lines = 3: give a power of two" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
