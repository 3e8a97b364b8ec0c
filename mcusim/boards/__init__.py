"""Boards are data: one TOML file per chip (and one per core under cores/), validated with pydantic
(schema.py) and read into a frozen `Board`.

Adding a Cortex-M board means writing a new TOML file next to this one (or passing a path); no code
changes. A file may start from another with `base = "NAME"` and change only some keys (e.g. the reset
state of a chip). Every other module takes its hardware facts from a `Board` and its `Core`.
"""
from __future__ import annotations

import json
import os
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from ..errors import McusimError
from ..power import PowerModel
from ..units import MB

BOARD_DIR = Path(__file__).parent
CORE_DIR = BOARD_DIR / "cores"
DEFAULT_BOARD = "stm32l4r5zi"
BOARD_ENV = "MCUSIM_BOARD"          # the board every command uses when --board is not given
MAX_TOML_BYTES = 1 * MB             # a board or core description is a few kB


class BoardError(McusimError):
    """A board description is missing or malformed."""


def default_board_name() -> str:
    """--board's default: $MCUSIM_BOARD if set, else the STM32L4R5ZI."""
    return os.environ.get(BOARD_ENV) or DEFAULT_BOARD


# -- what the rest of mcusim reads ------------------------------------------------------------------
@dataclass(frozen=True)
class Core:
    name: str
    description: str
    unicorn_cpu: str           # unicorn.arm_const.UC_CPU_ARM_<this>
    timing_rules: str          # mcusim.timing.<this>
    cpuid: int
    dwt_ctrl_reset: int
    ccr_reset: int
    compiler_flags: tuple[tuple[str, str, tuple[str, ...]], ...]   # (toolchain, float ABI, target flags)

    def target_flags(self, toolchain: str, float_abi: str) -> tuple[str, ...]:
        """The compiler's target flags for this core, for `toolchain` (zig, gcc) and `float_abi` (hard, soft)."""
        return next(f for t, abi, f in self.compiler_flags if (t, abi) == (toolchain, float_abi))


@dataclass(frozen=True)
class Memory:
    name: str
    kind: str                 # "flash", "sram" or "ccm" (core-coupled data RAM: no instruction fetch)
    origin: int
    size: int
    aliases: tuple[int, ...] = ()

    @property
    def end(self) -> int:
        return self.origin + self.size

    @property
    def executable(self) -> bool:
        return self.kind != "ccm"

    @property
    def section(self) -> str:
        """The output section the linker places in this region when it is not the main SRAM block."""
        return "." + self.name.lower()


@dataclass(frozen=True)
class Art:
    """The flash accelerator as the cycle model uses it. A part switched off is one line of one flash
    word: the read buffer every flash interface has (a flash read returns a whole word)."""
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
    core: Core
    default_hclk_mhz: float
    max_hclk_mhz: float
    wait_state_max_mhz: tuple[float, ...]
    art: Art
    accelerator: str                 # what the board calls its flash accelerator ("" when it has none)
    memories: tuple[Memory, ...]
    power: PowerModel | None         # None: the board file gives no power figures
    systick_reference_divider: int | None = None   # SysTick's external clock = HCLK / this; None: none

    @property
    def flash(self) -> Memory:
        return next(m for m in self.memories if m.kind == "flash")

    @property
    def srams(self) -> tuple[Memory, ...]:
        return tuple(m for m in self.memories if m.kind == "sram")

    @property
    def main_srams(self) -> tuple[Memory, ...]:
        """The largest group of address-contiguous SRAM regions (the lowest one on a tie): the linker's
        SRAM for the stack, .data and .bss, and the host's buffers."""
        groups: list[list[Memory]] = []
        for m in sorted(self.srams, key=lambda m: m.origin):
            if groups and groups[-1][-1].end == m.origin:
                groups[-1].append(m)
            else:
                groups.append([m])
        return tuple(max(groups, key=lambda g: sum(m.size for m in g)))

    @property
    def sram_block(self) -> tuple[int, int]:
        """(origin, size) of the main SRAM block."""
        main = self.main_srams
        return main[0].origin, sum(m.size for m in main)

    @property
    def extra_rams(self) -> tuple[Memory, ...]:
        """RAM outside the main block (CCM, SRAM elsewhere): mapped, and filled by the linker with the
        region's own section (`.ccm` for a region named CCM), which start-up leaves uninitialised."""
        main = self.main_srams
        return tuple(m for m in self.memories if m.kind != "flash" and m not in main)

    def wait_states(self, hclk_mhz: float) -> int:
        """Flash wait states needed at this core clock (from the board's table)."""
        top = min(self.max_hclk_mhz, self.wait_state_max_mhz[-1])
        if not 0 < hclk_mhz <= top:                                 # NaN included
            raise BoardError(f"HCLK {hclk_mhz} MHz is outside 0..{top:g} MHz for board {self.name}")
        return next(ws for ws, top in enumerate(self.wait_state_max_mhz) if hclk_mhz <= top)

    def power_mw(self, hclk_mhz: float) -> float | None:
        """Run-mode power at this clock from the board's power model (None without a [power] section)."""
        return None if self.power is None else self.power.at(hclk_mhz).power_mw


# -- loading ----------------------------------------------------------------------------------------
def _read_toml(path: Path, what: str) -> dict:
    """A board or core file, refused whole when it is larger than any description (it was cut at 1 MiB
    and the rest silently ignored)."""
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_TOML_BYTES + 1)
        if len(raw) > MAX_TOML_BYTES:
            raise BoardError(f"{what} {path} is larger than {MAX_TOML_BYTES // MB} MB; a description is a few kB")
        return tomllib.loads(raw.decode("utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, RecursionError) as exc:
        raise BoardError(f"{what} {path} cannot be read as UTF-8 TOML: {exc}") from None


def _merge(base: dict, over: dict) -> dict:
    """`over` on top of `base`: tables merge key by key, anything else (lists included) is replaced."""
    out = dict(base)
    for key, value in over.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _find(name_or_path: str, directory: Path, what: str) -> Path:
    path = Path(name_or_path)
    if not path.suffix:
        path = directory / f"{name_or_path}.toml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in directory.glob("*.toml")))
        raise BoardError(f"no {what} '{name_or_path}' (looked for {path}); known {what}s: {known}")
    return path


def _board_data(path: Path, seen: tuple[Path, ...] = ()) -> dict:
    """The board file with its `base` chain applied (the base is looked up beside the file, then here)."""
    data = _read_toml(path, "board description")
    base = data.pop("base", None)
    if base is None:
        return data
    if not isinstance(base, str):
        raise BoardError(f"board description {path}: base = {base!r} must name a board")
    local = path.parent / f"{base}.toml"
    base_path = local if local.is_file() else _find(base, BOARD_DIR, "board")
    if base_path.resolve() in seen:
        raise BoardError(f"board description {path}: base '{base}' leads back to itself")
    return _merge(_board_data(base_path, seen + (path.resolve(),)), data)


#: the code that turns files into a Board: a change to it retires the boards kept on disk
_LOADER_SOURCES = (BOARD_DIR / "__init__.py", BOARD_DIR / "schema.py", BOARD_DIR.parent / "power.py",
                   BOARD_DIR.parent / "timing" / "__init__.py")


def _validated(model: str, data: dict, source: str, example: Path):
    """`data` checked by its pydantic model in schema.py; every bad value is named in one BoardError."""
    from pydantic import ValidationError

    from . import schema
    try:
        return getattr(schema, model)(**data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'file'}: {e['msg']}" for e in exc.errors())
        raise BoardError(f"{source} is not a valid description: {problems}. Compare with {example}.") from None
    except TypeError as exc:                                   # e.g. a top-level key that is not a table
        raise BoardError(f"{source} is malformed: {exc}") from None


@lru_cache(maxsize=None)
def load_core(name_or_path: str) -> Core:
    path = _find(name_or_path, CORE_DIR, "core")
    c = _validated("CoreFile", _read_toml(path, "core description"), f"core description {path}",
                   CORE_DIR / "cortex-m4f.toml")
    return Core(c.name, c.description, c.unicorn_cpu, c.timing_rules, c.cpuid, c.dwt_ctrl_reset, c.ccr_reset,
                tuple((tc, abi, tuple(getattr(c.compiler, tc if abi == "hard" else f"{tc}_soft")))
                      for tc in ("zig", "gcc") for abi in ("hard", "soft")))


def _core_file(board_path: Path, core: str) -> Path:
    """The core a board names: a file beside a board of the user's own, else one of mcusim's cores."""
    beside = board_path.parent / f"{core}.toml"
    return beside if beside.is_file() and board_path.parent != BOARD_DIR else _find(core, CORE_DIR, "core")


def load_board(name_or_path: str | None = None) -> Board:
    """Load a board by name (a TOML file in this package) or by path to a TOML file; None means
    $MCUSIM_BOARD or the default board."""
    return _load_board(name_or_path or default_board_name())


@lru_cache(maxsize=None)
def _load_board(name_or_path: str) -> Board:
    """The board, validated once per content of its files: the result is kept on disk, so a command
    whose board and core have not changed does not load pydantic and the schemas (half a second)."""
    from ..disk_cache import cached, source_digest
    path = _find(name_or_path, BOARD_DIR, "board")
    data = _board_data(path)
    if not isinstance(data.get("core"), str):
        return _board(path, data)                              # names the problem
    core_path = _core_file(path, data["core"])
    key = (json.dumps(data, sort_keys=True, default=repr), str(core_path.resolve()),
           source_digest(core_path, *_LOADER_SOURCES))
    return cached("boards", key, lambda: _board(path, data), lambda board: isinstance(board, Board))


def _board(path: Path, data: dict) -> Board:
    from .schema import Accelerator
    b = _validated("BoardFile", data, f"board description {path}", BOARD_DIR / f"{DEFAULT_BOARD}.toml")
    core = load_core(str(_core_file(path, b.core)))
    word = b.flash.word_bytes
    acc = b.flash_accelerator or Accelerator()
    art = Art(prefetch=acc.prefetch, flash_word_bytes=word,
              icache_lines=acc.icache_lines if acc.icache else 1,
              icache_line_bytes=acc.icache_line_bytes if acc.icache else word,
              dcache_lines=acc.dcache_lines if acc.dcache else 1,
              dcache_line_bytes=acc.dcache_line_bytes if acc.dcache else word)
    return Board(name=b.name, description=b.description or b.name, core=core,
                 default_hclk_mhz=b.clock.default_hclk_mhz, max_hclk_mhz=b.clock.max_hclk_mhz,
                 wait_state_max_mhz=tuple(b.flash.table(b.clock.max_hclk_mhz)), art=art,
                 accelerator=acc.description if b.flash_accelerator else "",
                 memories=tuple(Memory(m.name, m.kind, m.origin, m.size, tuple(m.aliases)) for m in b.memory),
                 power=PowerModel(b.power.supply_v, tuple(map(tuple, b.power.run_current)), b.power.source)
                 if b.power else None,
                 systick_reference_divider=b.systick.reference_clock_divider if b.systick else None)


load_board.cache_clear = _load_board.cache_clear       # tests reload edited files under one path
