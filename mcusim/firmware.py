"""Read a firmware ELF once: what to load where, its symbols, its sections, and function signatures.

Everything downstream (emulator, cycle model, size report, profiler) reads a `Firmware`, never
the ELF file itself.
"""
from __future__ import annotations

from .errors import McusimError
from .units import MB

import bisect
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection

SHF_WRITE, SHF_ALLOC, SHF_EXECINSTR = 0x1, 0x2, 0x4
PF_X = 0x1
EF_ARM_ABI_FLOAT_SOFT = 0x200          # ARM ELF e_flags: built for the soft-float procedure call standard


class FirmwareError(McusimError):
    """The file is not a usable Cortex-M firmware ELF, or a symbol is missing."""


@dataclass(frozen=True)
class Segment:
    vaddr: int          # where it lives at run time
    paddr: int          # where its initial bytes are stored (flash for .data)
    data: bytes
    memsz: int
    executable: bool


@dataclass(frozen=True)
class Section:
    name: str
    addr: int
    size: int
    load_addr: int
    alloc: bool
    write: bool
    execute: bool
    nobits: bool


@dataclass(frozen=True)
class Symbol:
    name: str
    addr: int           # Thumb bit cleared
    size: int
    kind: str           # "func" or "object" or "other"


@dataclass(frozen=True)
class Signature:
    """C prototype from DWARF: each type is 'int', 'uint', 'int64', 'float', 'double', 'pointer',
    'struct' or (return only) 'void'."""
    params: tuple[str, ...]
    returns: str        # also 'void'


MAX_ELF_BYTES = 64 * MB            # far above any MCU image with debug info; refuse before reading


@dataclass
class Firmware:
    path: Path
    segments: list[Segment]
    sections: list[Section]
    symbols: dict[str, Symbol]
    data_in_code: list[tuple[int, int]]      # [start, end) of literal pools and tables inside code
    _elf_bytes: bytes = field(repr=False)

    @classmethod
    def load(cls, path: str | Path) -> "Firmware":
        path = Path(path)
        if not path.exists():
            raise FirmwareError(f"firmware file {path} does not exist; build one with `mcusim cc SRC.c -o {path}`")
        if not path.is_file():
            kind = "a folder" if path.is_dir() else "not a regular file (a pipe, socket or device)"
            raise FirmwareError(f"firmware {path} is {kind}; pass the .elf file that `mcusim cc` writes")
        try:
            if path.stat().st_size > MAX_ELF_BYTES:
                raise FirmwareError(f"{path} is {path.stat().st_size} bytes, more than any Cortex-M image "
                                    f"({MAX_ELF_BYTES // MB} MB); pass the firmware's .elf")
            raw = path.read_bytes()
        except OSError as exc:
            raise FirmwareError(f"cannot read firmware file {path}: {exc.strerror or exc}") from None
        if raw[:4] != b"\x7fELF":
            raise FirmwareError(f"{path} is not an ELF file (it starts with {raw[:4]!r}); "
                                f"pass the .elf that `mcusim cc` writes")
        try:
            import io
            elf = ELFFile(io.BytesIO(raw))
            if elf["e_machine"] != "EM_ARM" or elf.elfclass != 32:
                raise FirmwareError(f"{path} is an ELF for {elf['e_machine']}, not 32-bit ARM; "
                                    f"build it for the Cortex-M4 with `mcusim cc`")
            segments = [Segment(s["p_vaddr"], s["p_paddr"], s.data()[: s["p_filesz"]], s["p_memsz"],
                                bool(s["p_flags"] & PF_X))
                        for s in elf.iter_segments() if s["p_type"] == "PT_LOAD" and s["p_memsz"]]
            sections = []
            for s in elf.iter_sections():
                flags = s["sh_flags"]
                if not flags & SHF_ALLOC or not s["sh_size"]:
                    continue
                lma = next((g.paddr + s["sh_addr"] - g.vaddr for g in segments
                            if g.vaddr <= s["sh_addr"] < g.vaddr + max(g.memsz, 1)), s["sh_addr"])
                sections.append(Section(s.name, s["sh_addr"], s["sh_size"], lma, True, bool(flags & SHF_WRITE),
                                        bool(flags & SHF_EXECINSTR), s["sh_type"] == "SHT_NOBITS"))
            symbols, mapping = {}, []
            for tab in elf.iter_sections():
                if not isinstance(tab, SymbolTableSection):
                    continue
                for sym in tab.iter_symbols():
                    if sym.name[:2] in ("$t", "$d", "$a"):     # ARM mapping symbols: code vs data
                        mapping.append((sym["st_value"], sym.name[1]))
                    if not sym.name or sym["st_shndx"] == "SHN_UNDEF" or sym.name.startswith("$"):
                        continue
                    kind = {"STT_FUNC": "func", "STT_OBJECT": "object"}.get(sym["st_info"]["type"], "other")
                    addr = sym["st_value"] & ~1 if kind == "func" else sym["st_value"]
                    if sym.name not in symbols or sym["st_info"]["bind"] == "STB_GLOBAL":
                        symbols[sym.name] = Symbol(sym.name, addr, sym["st_size"], kind)
        except FirmwareError:
            raise
        except Exception as exc:          # noqa: BLE001 - any failure of the ELF library means a malformed file
            raise FirmwareError(f"{path} is a malformed ELF file ({type(exc).__name__}: {exc}); rebuild it with "
                                f"`mcusim cc`") from None
        return cls(path, segments, sections, symbols, _data_ranges(mapping, sections), raw)

    # -- symbols -------------------------------------------------------------------------------
    @cached_property
    def soft_float_abi(self) -> bool:
        """Floats are passed and returned in core registers (`mcusim cc --float-abi soft`), not s0-s15."""
        return bool(int.from_bytes(self._elf_bytes[36:40], "little") & EF_ARM_ABI_FLOAT_SOFT)

    def symbol(self, name: str) -> Symbol:
        try:
            return self.symbols[name]
        except KeyError:
            funcs = sorted(s.name for s in self.symbols.values() if s.kind == "func" and not s.name.startswith("__"))
            raise FirmwareError(f"symbol '{name}' is not in {self.path.name}; functions it defines: "
                                f"{', '.join(funcs[:30]) or 'none'}") from None

    def address(self, name: str) -> int:
        return self.symbol(name).addr

    @cached_property
    def _functions(self) -> tuple[list[int], list[Symbol]]:
        """Functions by address; one without a size (assembly with no `.size`) extends to the next
        function or the end of its section."""
        funcs = sorted((s for s in self.symbols.values() if s.kind == "func"), key=lambda s: (s.addr, -s.size))
        sized = []
        for i, f in enumerate(funcs):
            if not f.size:
                section_end = next((s.addr + s.size for s in self.sections if s.addr <= f.addr < s.addr + s.size),
                                   f.addr)
                following = next((g.addr for g in funcs[i + 1:] if g.addr > f.addr), section_end)
                f = Symbol(f.name, f.addr, min(following, section_end) - f.addr, f.kind)
            if f.size and not (sized and sized[-1].addr == f.addr):    # aliases: the first (sized) name
                sized.append(f)
        return [f.addr for f in sized], sized

    def function_at(self, addr: int) -> Symbol | None:
        starts, funcs = self._functions
        i = bisect.bisect_right(starts, addr) - 1
        if i >= 0 and addr < funcs[i].addr + funcs[i].size:
            return funcs[i]
        return None

    def describe(self, addr: int) -> str:
        """`symbol+0xoff` for an address, as a fault report or profile shows it."""
        f = self.function_at(addr)
        return f"{f.name}+{addr - f.addr:#x}" if f else f"{addr:#010x}"

    @cached_property
    def _lines(self) -> tuple[list[int], list[tuple[str, int]]]:
        """The DWARF line programme: ascending addresses and the (source file, line) each starts."""
        import io
        import os
        rows = []
        try:
            elf = ELFFile(io.BytesIO(self._elf_bytes))
            if not elf.has_dwarf_info():
                return [], []
            dwarf = elf.get_dwarf_info()
            for cu in dwarf.iter_CUs():
                lp = dwarf.line_program_for_CU(cu)
                if lp is None:
                    continue
                v5 = lp.header.version >= 5
                files, dirs = lp["file_entry"], lp["include_directory"]
                comp = cu.get_top_DIE().attributes.get("DW_AT_comp_dir")
                comp_dir = comp.value.decode(errors="replace") if comp else ""
                for entry in lp.get_entries():
                    st = entry.state
                    if st is None or st.end_sequence:
                        continue
                    fe = files[st.file if v5 else st.file - 1]
                    d = dirs[fe.dir_index] if v5 else (dirs[fe.dir_index - 1] if fe.dir_index else b"")
                    name = fe.name.decode(errors="replace")
                    rows.append((st.address, os.path.join(comp_dir, d.decode(errors="replace"), name), st.line))
        except Exception:               # noqa: BLE001 - damaged debug info: no source lines, never a traceback
            return [], []
        rows.sort()
        return [r[0] for r in rows], [(r[1], r[2]) for r in rows]

    def source_line(self, addr: int) -> tuple[str, int] | None:
        """(source file, line) of the code at addr, from the DWARF line programme (None without one)."""
        starts, lines = self._lines
        i = bisect.bisect_right(starts, addr) - 1
        return lines[i] if i >= 0 and lines[i][1] > 0 else None

    # -- code ----------------------------------------------------------------------------------
    def code_ranges(self) -> list[tuple[int, bytes]]:
        """(address, bytes) of each executable section, for the cycle model's decoder."""
        out = []
        for s in self.sections:
            if s.execute and not s.nobits:
                seg = next((g for g in self.segments if g.vaddr <= s.addr < g.vaddr + g.memsz), None)
                if seg is None:
                    raise FirmwareError(f"{self.path.name}: code section {s.name} at {s.addr:#x} lies outside every "
                                        f"loadable segment; the ELF is malformed, rebuild it with `mcusim cc`")
                off = s.addr - seg.vaddr
                out.append((s.addr, seg.data[off: off + s.size]))
        return out

    # -- signatures ----------------------------------------------------------------------------
    @cached_property
    def content_digest(self) -> str:
        import hashlib
        return hashlib.sha256(self._elf_bytes).hexdigest()

    @cached_property
    def _signatures(self) -> dict[str, Signature]:
        import sys

        from .disk_cache import cached, source_digest
        return cached("signatures", (self.content_digest, source_digest(sys.modules[__name__])), self._read_signatures)

    def _read_signatures(self) -> dict[str, Signature]:
        import io
        sigs = {}
        try:
            elf = ELFFile(io.BytesIO(self._elf_bytes))
            if not elf.has_dwarf_info():
                return {}
            for cu in elf.get_dwarf_info().iter_CUs():
                for die in cu.iter_DIEs():
                    if die.tag != "DW_TAG_subprogram" or "DW_AT_name" not in die.attributes:
                        continue
                    name = die.attributes["DW_AT_name"].value.decode()
                    params = tuple(_type_class(c) for c in die.iter_children() if c.tag == "DW_TAG_formal_parameter")
                    sig = Signature(params, _type_class(die))
                    if name not in sigs or "DW_AT_low_pc" in die.attributes:
                        sigs[name] = sig
        except Exception:                 # noqa: BLE001 - damaged debug info: no prototypes (floats are then refused)
            return {}
        return sigs

    def signature(self, name: str) -> Signature | None:
        return self._signatures.get(name)


def _data_ranges(mapping: list[tuple[int, str]], sections: list[Section]) -> list[tuple[int, int]]:
    """Turn `$d`/`$t` mapping symbols into [start, end) ranges of data inside executable sections."""
    ranges = []
    for sec in (s for s in sections if s.execute):
        marks = sorted((a, k) for a, k in mapping if sec.addr <= a < sec.addr + sec.size)
        for (addr, kind), nxt in zip(marks, marks[1:] + [(sec.addr + sec.size, "t")]):
            if kind == "d" and nxt[0] > addr:
                ranges.append((addr, nxt[0]))
    return ranges


DW_ATE_FLOAT = 0x04                                           # DWARF base type encodings (DWARF 5, 7.8)
DW_ATE_UNSIGNED = (0x02, 0x07, 0x08, 0x10)                    # boolean, unsigned, unsigned_char, UTF
DW_ATE_INTEGERS = (*DW_ATE_UNSIGNED, 0x05, 0x06)              # and signed, signed_char


def _type_class(die) -> str:
    """Reduce a DWARF type to what the AAPCS hard-float ABI cares about."""
    if "DW_AT_type" not in die.attributes:
        return "void"
    t = die.get_DIE_from_attribute("DW_AT_type")
    while t.tag in ("DW_TAG_typedef", "DW_TAG_const_type", "DW_TAG_volatile_type", "DW_TAG_restrict_type"):
        if "DW_AT_type" not in t.attributes:
            return "void"
        t = t.get_DIE_from_attribute("DW_AT_type")
    if t.tag == "DW_TAG_pointer_type":
        return "pointer"
    if t.tag == "DW_TAG_base_type":        # by encoding and size, not by name (a damaged name once made floats ints)
        encoding, size = t.attributes["DW_AT_encoding"].value, t.attributes["DW_AT_byte_size"].value
        if encoding == DW_ATE_FLOAT:
            return {4: "float", 8: "double"}.get(size, "struct")
        if encoding not in DW_ATE_INTEGERS or size not in (1, 2, 4, 8):
            return "struct"
        if size == 8:
            return "int64"
        return "uint" if encoding in DW_ATE_UNSIGNED else "int"
    if t.tag == "DW_TAG_enumeration_type":
        return "int"
    return "struct"
