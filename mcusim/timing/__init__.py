"""The cycle model. Instruction timing rules live per core in mcusim/timing/<name>.py; a board's core
names the module it uses (mcusim/boards/cores/*.toml, key timing_rules)."""
from __future__ import annotations

import importlib

TIMING_RULES = ("cortex_m4",)


def rules_for(name: str):
    """The timing-rules module of a core (validated against TIMING_RULES when the core file is read)."""
    return importlib.import_module(f"{__name__}.{name}")
