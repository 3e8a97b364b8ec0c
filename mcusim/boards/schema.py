"""The board and core file formats as pydantic models: every value is checked here before the emulator or
the native hook sees it. Imported only when a file is validated (see `mcusim.boards`), since pydantic
and its schemas cost about half a second to load."""
from __future__ import annotations

import re
from typing import Annotated, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

U32 = (1 << 32) - 1
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


class Accelerator(_Strict):
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
    flash_accelerator: Optional[Accelerator] = None
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
