"""Boards are data: one TOML file per chip, read into a frozen `Board`.

Adding a Cortex-M4 board means writing a new TOML file next to this one (or passing a path);
no code changes. Every other module takes its hardware facts from a `Board`.
"""
from __future__ import annotations

from ..errors import McusimError

import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

BOARD_DIR = Path(__file__).parent
DEFAULT_BOARD = "stm32l4r5zi"


class BoardError(McusimError):
    """A board description is missing or malformed."""


@dataclass(frozen=True)
class Memory:
    name: str
    kind: str                 # "flash" or "sram"
    origin: int
    size: int
    aliases: tuple[int, ...] = ()

    @property
    def end(self) -> int:
        return self.origin + self.size


@dataclass(frozen=True)
class Art:
    prefetch: bool
    flash_word_bytes: int
    icache_lines: int
    icache_line_bytes: int
    dcache_lines: int
    dcache_line_bytes: int


@dataclass(frozen=True)
class Board:
    name: str
    description: str
    cpu_flags: str
    default_hclk_mhz: float
    max_hclk_mhz: float
    wait_state_max_mhz: tuple[float, ...]
    art: Art
    memories: tuple[Memory, ...]
    run_ua_per_mhz: float
    supply_v: float

    @property
    def flash(self) -> Memory:
        return next(m for m in self.memories if m.kind == "flash")

    @property
    def srams(self) -> tuple[Memory, ...]:
        return tuple(m for m in self.memories if m.kind == "sram")

    @property
    def sram_block(self) -> tuple[int, int]:
        """(origin, size) of the contiguous SRAM block the linker and allocator use."""
        srams = sorted(self.srams, key=lambda m: m.origin)
        for a, b in zip(srams, srams[1:]):
            if a.end != b.origin:
                raise BoardError(f"board {self.name}: SRAM regions {a.name} and {b.name} are not contiguous")
        return srams[0].origin, sum(m.size for m in srams)

    def wait_states(self, hclk_mhz: float) -> int:
        """Flash wait states needed at this core clock (from the board's table)."""
        if not 0 < hclk_mhz <= self.max_hclk_mhz:                  # NaN included
            raise BoardError(f"HCLK {hclk_mhz} MHz is outside 0..{self.max_hclk_mhz} MHz for board {self.name}")
        return next(ws for ws, top in enumerate(self.wait_state_max_mhz) if hclk_mhz <= top)

    def power_mw(self, hclk_mhz: float) -> float:
        """Run-mode power at this clock from the board's uA/MHz figure."""
        return self.run_ua_per_mhz * hclk_mhz * self.supply_v / 1000.0


def _parse(data: dict, source: str) -> Board:
    try:
        return Board(
            name=data["name"],
            description=data.get("description", data["name"]),
            cpu_flags=data["cpu_flags"],
            default_hclk_mhz=float(data["clock"]["default_hclk_mhz"]),
            max_hclk_mhz=float(data["clock"]["max_hclk_mhz"]),
            wait_state_max_mhz=tuple(float(x) for x in data["flash"]["wait_state_max_mhz"]),
            art=Art(**data["art"]),
            memories=tuple(Memory(m["name"], m["kind"], int(m["origin"]), int(m["size"]),
                                  tuple(m.get("aliases", ()))) for m in data["memory"]),
            run_ua_per_mhz=float(data["power"]["run_ua_per_mhz"]),
            supply_v=float(data["power"]["supply_v"]),
        )
    except (KeyError, TypeError) as exc:
        raise BoardError(f"board description {source} is missing or has a malformed entry: {exc}") from None


@lru_cache(maxsize=None)
def load_board(name_or_path: str = DEFAULT_BOARD) -> Board:
    """Load a board by name (a TOML file in this package) or by path to a TOML file."""
    path = Path(name_or_path)
    if not path.suffix:
        path = BOARD_DIR / f"{name_or_path}.toml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in BOARD_DIR.glob("*.toml")))
        raise BoardError(f"no board description '{name_or_path}' (looked for {path}); known boards: {known}")
    with open(path, "rb") as f:
        board = _parse(tomllib.load(f), str(path))
    kinds = [m.kind for m in board.memories]
    if kinds.count("flash") != 1 or "sram" not in kinds:
        raise BoardError(f"board {board.name} must describe exactly one flash and at least one SRAM")
    return board
