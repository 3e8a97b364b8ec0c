"""Boards are data: one TOML file per chip (and one per core under cores/), validated with pydantic and
read into a frozen `Board`.

Adding a Cortex-M board means writing a new TOML file next to this one (or passing a path); no code
changes. A file may start from another with `base = "NAME"` and change only some keys (e.g. the reset
state of a chip). Every other module takes its hardware facts from a `Board` and its `Core`.
"""
from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..errors import McusimError
from ..power import PowerModel

BOARD_DIR = Path(__file__).parent
CORE_DIR = BOARD_DIR / "cores"
DEFAULT_BOARD = "stm32l4r5zi"
BOARD_ENV = "MCUSIM_BOARD"          # the board every command uses when --board is not given
U32 = (1 << 32) - 1


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


# -- the file formats (pydantic: every value checked before the emulator or the native hook sees it) --
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _power_of_two(v: int, lo: int, hi: int, what: str) -> int:
    if not (lo <= v <= hi and v & (v - 1) == 0):
        raise ValueError(f"{what} = {v}: give a power of two from {lo} to {hi}")
    return v


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class _Compiler(_Strict):
    zig: list[str] = Field(min_length=1)
    gcc: list[str] = Field(min_length=1)
    zig_soft: list[str] = Field(min_length=1)
    gcc_soft: list[str] = Field(min_length=1)


class CoreFile(_Strict):
    name: str
    description: str
    unicorn_cpu: str
    timing_rules: str
    cpuid: int = Field(ge=0, le=U32)
    dwt_ctrl_reset: int = Field(ge=0, le=U32)
    ccr_reset: int = Field(ge=0, le=U32)
    compiler: _Compiler

    @field_validator("unicorn_cpu")
    @classmethod
    def _known_cpu(cls, v: str) -> str:
        from unicorn import arm_const
        if not hasattr(arm_const, f"UC_CPU_ARM_{v}"):
            known = sorted(n[len("UC_CPU_ARM_"):] for n in dir(arm_const) if n.startswith("UC_CPU_ARM_"))
            raise ValueError(f"Unicorn has no CPU model {v!r}; it has {', '.join(known)}")
        return v

    @field_validator("timing_rules")
    @classmethod
    def _known_rules(cls, v: str) -> str:
        from ..timing import TIMING_RULES
        if v not in TIMING_RULES:
            raise ValueError(f"no timing rules {v!r}; mcusim has {', '.join(sorted(TIMING_RULES))}")
        return v


class _Clock(_Strict):
    default_hclk_mhz: float = Field(gt=0, lt=1e4)
    max_hclk_mhz: float = Field(gt=0, lt=1e4)


class _Flash(_Strict):
    word_bytes: int = Field(default=4, description="bytes one flash read returns (the flash bus width)")
    # One of: a table; one table per supply-voltage range with the range in use; or, for a part with
    # one clock, a fixed count.
    wait_states: Optional[int] = Field(default=None, ge=0, le=32)
    wait_state_max_mhz: Optional[list[float]] = None
    wait_state_tables: Optional[dict[str, list[float]]] = None
    voltage_range: Optional[str] = None

    @field_validator("word_bytes")
    @classmethod
    def _word(cls, v: int) -> int:
        return _power_of_two(v, 2, 64, "[flash] word_bytes")

    @model_validator(mode="after")
    def _one_table(self):
        given = [self.wait_states is not None, self.wait_state_max_mhz is not None,
                 self.wait_state_tables is not None or self.voltage_range is not None]
        if given.count(True) != 1 or (given[2] and (self.wait_state_tables is None or self.voltage_range is None)):
            raise ValueError("give one of [flash] wait_states, wait_state_max_mhz, or wait_state_tables with "
                             "voltage_range")
        if self.wait_states is not None:
            return self
        if self.wait_state_max_mhz is None and self.voltage_range not in self.wait_state_tables:
            raise ValueError(f"[flash] voltage_range {self.voltage_range!r} is not one of the wait_state_tables "
                             f"({', '.join(self.wait_state_tables)})")
        table = self.table(1.0)
        if not table or not all(0 < x < 1e4 for x in table) or table != sorted(table):
            raise ValueError(f"[flash] wait-state table {table}: list the highest clock of 0, 1, 2, ... wait "
                             f"states, ascending")
        return self

    def table(self, max_hclk_mhz: float) -> list[float]:
        """Entry i: the highest clock that runs with i wait states."""
        if self.wait_states is not None:
            return [0.0] * self.wait_states + [max_hclk_mhz]
        return self.wait_state_max_mhz if self.wait_state_max_mhz is not None else \
            self.wait_state_tables[self.voltage_range]


class _Accelerator(_Strict):
    """Optional; without it every flash word is read with the wait states (no prefetch, no caches)."""
    description: str = ""
    prefetch: bool = False
    icache: bool = False
    dcache: bool = False
    icache_lines: Optional[int] = None
    icache_line_bytes: Optional[int] = None
    dcache_lines: Optional[int] = None
    dcache_line_bytes: Optional[int] = None

    @model_validator(mode="after")
    def _geometry(self):
        for part in ("icache", "dcache"):
            lines, line_bytes = getattr(self, f"{part}_lines"), getattr(self, f"{part}_line_bytes")
            if getattr(self, part) and (lines is None or line_bytes is None):
                raise ValueError(f"[flash_accelerator] {part} = true needs {part}_lines and {part}_line_bytes")
            if lines is not None:
                _power_of_two(lines, 1, 4096, f"[flash_accelerator] {part}_lines")
            if line_bytes is not None:
                _power_of_two(line_bytes, 4, 1024, f"[flash_accelerator] {part}_line_bytes")
        return self


class _Memory(_Strict):
    name: str
    kind: Literal["flash", "sram", "ccm"]
    origin: int = Field(ge=0, le=U32)
    size: int = Field(gt=0, le=1 << 32)
    aliases: list[int] = []

    @model_validator(mode="after")
    def _placed(self):
        if not _NAME.match(self.name):
            raise ValueError(f"memory name {self.name!r}: use letters, digits and _ (it names a linker region)")
        for addr in (self.origin, *self.aliases):
            if addr % 4096 or self.size % 4096 or not 0 <= addr <= U32 or addr + self.size > 1 << 32:
                raise ValueError(f"memory {self.name} at {addr:#x}, {self.size} bytes: give a 4096-byte-aligned "
                                 f"origin and a positive size in units of 4096 bytes inside the 32-bit address space")
        return self


class _Power(_Strict):
    supply_v: float = Field(gt=0, lt=100)
    source: str = Field(min_length=1)
    run_current: list[Annotated[list[float], Field(min_length=2, max_length=2)]] = Field(min_length=1)  # [[MHz, mA]]

    @model_validator(mode="after")
    def _table(self):
        mhz = [f for f, _ in self.run_current]
        if mhz != sorted(set(mhz)) or not all(0 < f < 1e4 and 0 < i < 1e5 for f, i in self.run_current):
            raise ValueError(f"[power] run_current = {[list(p) for p in self.run_current]}: give [MHz, mA] pairs "
                             f"with ascending clocks and positive currents")
        return self


class _SysTick(_Strict):
    """Optional; without it the chip gives SysTick no external reference clock (CLKSOURCE reads as 1)."""
    reference_clock_divider: int = Field(ge=1, le=1024)


class BoardFile(_Strict):
    name: str
    description: str = ""
    core: str
    clock: _Clock
    flash: _Flash
    flash_accelerator: Optional[_Accelerator] = None
    memory: list[_Memory] = Field(min_length=2)
    power: Optional[_Power] = None
    systick: Optional[_SysTick] = None

    @model_validator(mode="after")
    def _consistent(self):
        if self.clock.default_hclk_mhz > self.clock.max_hclk_mhz:
            raise ValueError(f"clock default {self.clock.default_hclk_mhz} / max {self.clock.max_hclk_mhz} MHz: "
                             f"give 0 < default_hclk_mhz <= max_hclk_mhz")
        top = self.flash.table(self.clock.max_hclk_mhz)[-1]
        if top < self.clock.default_hclk_mhz:
            raise ValueError(f"[flash] the wait-state table ends at {top} MHz, below the "
                             f"default clock {self.clock.default_hclk_mhz} MHz")
        kinds = [m.kind for m in self.memory]
        if kinds.count("flash") != 1 or "sram" not in kinds:
            raise ValueError("describe exactly one flash and at least one SRAM memory")
        names = [m.name for m in self.memory]
        if len(set(n.lower() for n in names)) != len(names):
            raise ValueError(f"memory names {names} repeat")
        spans = sorted((a, a + m.size, m.name) for m in self.memory for a in (m.origin, *m.aliases))
        for (s0, e0, n0), (s1, _, n1) in zip(spans, spans[1:]):
            if s1 < e0:
                raise ValueError(f"memories {n0} and {n1} overlap: give each region (and alias) its own addresses")
        acc = self.flash_accelerator
        for part in ("icache", "dcache"):
            line = getattr(acc, f"{part}_line_bytes", None) if acc is not None else None
            if line is not None and line < self.flash.word_bytes:
                raise ValueError(f"[flash_accelerator] {part}_line_bytes = {line} is below the flash word "
                                 f"([flash] word_bytes = {self.flash.word_bytes})")
        return self


# -- loading ----------------------------------------------------------------------------------------
def _read_toml(path: Path, what: str) -> dict:
    try:
        with open(path, "rb") as f:
            return tomllib.loads(f.read(1 << 20).decode("utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, RecursionError) as exc:
        raise BoardError(f"{what} {path} cannot be read as UTF-8 TOML: {exc}") from None


def _explain(exc: ValidationError, source: str, example: Path) -> BoardError:
    problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'file'}: {e['msg']}" for e in exc.errors())
    return BoardError(f"{source} is not a valid description: {problems}. Compare with {example}.")


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


@lru_cache(maxsize=None)
def load_core(name_or_path: str) -> Core:
    path = _find(name_or_path, CORE_DIR, "core")
    try:
        c = CoreFile(**_read_toml(path, "core description"))
    except (ValidationError, TypeError) as exc:
        raise (_explain(exc, f"core description {path}", CORE_DIR / "cortex-m4f.toml")
               if isinstance(exc, ValidationError) else BoardError(f"core description {path}: {exc}")) from None
    return Core(c.name, c.description, c.unicorn_cpu, c.timing_rules, c.cpuid, c.dwt_ctrl_reset, c.ccr_reset,
                tuple((tc, abi, tuple(getattr(c.compiler, tc if abi == "hard" else f"{tc}_soft")))
                      for tc in ("zig", "gcc") for abi in ("hard", "soft")))


def load_board(name_or_path: str | None = None) -> Board:
    """Load a board by name (a TOML file in this package) or by path to a TOML file; None means
    $MCUSIM_BOARD or the default board."""
    return _load_board(name_or_path or default_board_name())


@lru_cache(maxsize=None)
def _load_board(name_or_path: str) -> Board:
    path = _find(name_or_path, BOARD_DIR, "board")
    try:
        b = BoardFile(**_board_data(path))
    except ValidationError as exc:
        raise _explain(exc, f"board description {path}", BOARD_DIR / f"{DEFAULT_BOARD}.toml") from None
    except TypeError as exc:                                   # e.g. a top-level key that is not a table
        raise BoardError(f"board description {path} is malformed: {exc}") from None
    core_path = path.parent / f"{b.core}.toml"
    core = load_core(str(core_path) if core_path.is_file() and path.parent != BOARD_DIR else b.core)
    word = b.flash.word_bytes
    acc = b.flash_accelerator or _Accelerator()
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
