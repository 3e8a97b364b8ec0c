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
                                  tuple(int(a) for a in m.get("aliases", ()))) for m in data["memory"]),
            run_ua_per_mhz=float(data["power"]["run_ua_per_mhz"]),
            supply_v=float(data["power"]["supply_v"]),
        )
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
        raise BoardError(f"board description {source} is missing or has a malformed entry: {exc!r}; compare "
                         f"with {BOARD_DIR / (DEFAULT_BOARD + '.toml')}") from None


@lru_cache(maxsize=None)
def load_board(name_or_path: str = DEFAULT_BOARD) -> Board:
    """Load a board by name (a TOML file in this package) or by path to a TOML file."""
    path = Path(name_or_path)
    if not path.suffix:
        path = BOARD_DIR / f"{name_or_path}.toml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in BOARD_DIR.glob("*.toml")))
        raise BoardError(f"no board description '{name_or_path}' (looked for {path}); known boards: {known}")
    try:
        with open(path, "rb") as f:
            data = tomllib.loads(f.read(1 << 20).decode("utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, RecursionError) as exc:
        raise BoardError(f"board description {path} cannot be read as UTF-8 TOML: {exc}") from None
    board = _parse(data, str(path))
    kinds = [m.kind for m in board.memories]
    if kinds.count("flash") != 1 or "sram" not in kinds:
        raise BoardError(f"board {board.name} must describe exactly one flash and at least one SRAM")
    _validate(board, str(path))
    return board


def _power_of_two(v, lo: int, hi: int) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi and v & (v - 1) == 0


def _validate(b: Board, source: str) -> None:
    """Every value the emulator and the native timing hook trust, checked before they see it."""
    def bad(what: str, fix: str) -> BoardError:
        return BoardError(f"board description {source}: {what}; {fix}")
    a = b.art
    for key, lo, hi in (("icache_lines", 1, 4096), ("dcache_lines", 1, 4096), ("icache_line_bytes", 4, 1024),
                        ("dcache_line_bytes", 4, 1024), ("flash_word_bytes", 2, 64)):
        if not _power_of_two(getattr(a, key), lo, hi):
            raise bad(f"[art] {key} = {getattr(a, key)!r}", f"give a power of two from {lo} to {hi}")
    if not isinstance(a.prefetch, bool):
        raise bad(f"[art] prefetch = {a.prefetch!r}", "give true or false")
    ws = b.wait_state_max_mhz
    if not ws or not all(0 < x < 1e4 for x in ws) or list(ws) != sorted(ws) or ws[-1] < b.max_hclk_mhz:
        raise bad(f"[flash] wait_state_max_mhz = {list(ws)}",
                  "list the highest clock of 0, 1, 2, ... wait states, ascending, up to max_hclk_mhz")
    if not 0 < b.default_hclk_mhz <= b.max_hclk_mhz < 1e4:
        raise bad(f"clock default {b.default_hclk_mhz} / max {b.max_hclk_mhz} MHz",
                  "give 0 < default_hclk_mhz <= max_hclk_mhz")
    if not (b.run_ua_per_mhz >= 0 and 0 < b.supply_v < 100) or b.run_ua_per_mhz != b.run_ua_per_mhz:
        raise bad(f"[power] run_ua_per_mhz = {b.run_ua_per_mhz}, supply_v = {b.supply_v}",
                  "give a non-negative current per MHz and a positive supply voltage")
    for m in b.memories:
        if m.kind not in ("flash", "sram"):
            raise bad(f"memory {m.name} has kind {m.kind!r}", "use flash or sram")
        for addr, size in ((m.origin, m.size), *((al, m.size) for al in m.aliases)):
            if addr % 4096 or size <= 0 or size % 4096 or addr + size > 1 << 32:
                raise bad(f"memory {m.name} at {addr:#x}, {size} bytes",
                          "give a 4 KB-aligned origin and a positive size in 4 KB units inside the 4 GB map")
    spans = sorted((addr, addr + m.size, m.name) for m in b.memories for addr in (m.origin, *m.aliases))
    for (s0, e0, n0), (s1, _, n1) in zip(spans, spans[1:]):
        if s1 < e0:
            raise bad(f"memories {n0} and {n1} overlap", "give each region (and alias) its own addresses")
    b.sram_block                                            # raises when the SRAM regions are not contiguous
