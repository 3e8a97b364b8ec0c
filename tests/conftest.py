"""Shared fixtures: firmware built once per session (the build cache makes rebuilds cheap)."""
from pathlib import Path

import pytest

from mcusim.toolchain import build

FIRMWARE = Path(__file__).parent / "firmware"


@pytest.fixture(scope="session")
def basics_elf() -> Path:
    return build([FIRMWARE / "basics.c"], opt="-O2")


@pytest.fixture(scope="session")
def faults_elf() -> Path:
    return build([FIRMWARE / "faults.c"], opt="-O1", stack_size=4096)
