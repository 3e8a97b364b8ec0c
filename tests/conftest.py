"""Shared fixtures: firmware built once per session (the build cache makes rebuilds cheap)."""
import os
from pathlib import Path

import pytest

from mcusim.toolchain import build

FIRMWARE = Path(__file__).parent / "firmware"
os.environ.pop("MCUSIM_BOARD", None)      # the tests expect the default board unless they choose one


@pytest.fixture(scope="session")
def basics_elf() -> Path:
    return build([FIRMWARE / "basics.c"], opt="-O2")


@pytest.fixture(scope="session")
def faults_elf() -> Path:
    return build([FIRMWARE / "faults.c"], opt="-O1", stack_size=4096)
