"""Builds: cached by content, invalidated by any input change, board-driven linker script."""
import os
import time

from mcusim.boards import load_board
from mcusim.firmware import Firmware
from mcusim.toolchain import build, linker_script


def test_build_cache_hits_and_invalidates(tmp_path, monkeypatch):
    monkeypatch.setenv("MCUSIM_CACHE", str(tmp_path / "cache"))
    src = tmp_path / "f.c"
    hdr = tmp_path / "f.h"
    hdr.write_text("#define K 3\n")
    src.write_text('#include "f.h"\nint f(int x) { return K * x; }\n')
    first = build([src])
    stamp = first.stat().st_mtime_ns
    time.sleep(0.01)
    t = time.perf_counter()
    assert build([src]) == first                           # same inputs: same cache entry, not rebuilt
    assert time.perf_counter() - t < 0.5
    assert first.stat().st_mtime_ns == stamp
    assert build([src], opt="-O3") != first                # flags are part of the key
    hdr.write_text("#define K 4\n")                         # so are headers next to the source
    second = build([src])
    assert second != first
    out = build([src], tmp_path / "out.elf")
    assert out.read_bytes() == second.read_bytes() and len(os.listdir(tmp_path / "cache" / "build")) == 3


def test_linker_script_comes_from_the_board():
    board = load_board()
    script = linker_script(board, 4096)
    assert "ORIGIN = 0x8000000, LENGTH = 0x200000" in script
    assert "ORIGIN = 0x20000000, LENGTH = 0xa0000" in script      # SRAM1+SRAM2+SRAM3 = 640 KB
    assert ". = . + 0x1000;" in script


def test_firmware_layout_puts_the_stack_below_static_data(basics_elf):
    fw = Firmware.load(basics_elf)
    assert fw.address("__stack_bottom") == 0x2000_0000 < fw.address("__stack_top") <= fw.address("__heap_start")
    sig = fw.signature("affine")
    assert sig.params == ("float", "float", "float") and sig.returns == "float"


def test_what_is_no_header_beside_a_source_is_left_alone(tmp_path, monkeypatch):
    """The cache key reads the headers beside a source: a folder called x.h was an IsADirectoryError, a named
    pipe called y.h a hang (opening it waits for a writer), an unreadable source a PermissionError."""
    import pytest
    from conftest import no_read_permission

    from mcusim.toolchain import BuildError
    monkeypatch.setenv("MCUSIM_CACHE", str(tmp_path / "cache"))
    src = tmp_path / "f.c"
    src.write_text("int f(int x) { return 3 * x; }\n")
    (tmp_path / "x.h").mkdir()
    os.mkfifo(tmp_path / "y.h")
    assert Firmware.load(build([src])).symbols["f"]
    no_read_permission(monkeypatch, src)
    with pytest.raises(BuildError, match=f"cannot read {src}: Permission denied"):
        build([src], opt="-O3")
