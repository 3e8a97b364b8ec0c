"""Build firmware for the board's Cortex-M4F: compile, link with mcusim's start-up, linker script and a
C library (mcusim/libc.py; none for mcusim's own kernels), and cache the result by content hash so a
repeated build costs a hash, not a compile.

Two toolchains: `zig cc` from the `ziglang` wheel (default; installed by pip, nothing else to set up)
and `arm-none-eabi-gcc` when it is on PATH. Both build Thumb-2 with `-ffp-contract=off` (so float results
can match the host bit for bit), for the FPv4-SP hard-float ABI or the soft-float one.
"""
from __future__ import annotations

from .errors import McusimError
from .outputs import write_atomic

import functools
import hashlib
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .boards import Board, load_board
from .libc import FLOAT_ABIS, libc_link

KERNEL_DIR = Path(__file__).resolve().parent / "kernels"
if not KERNEL_DIR.is_dir():          # editable install: the package maps ../kernels
    KERNEL_DIR = Path(__file__).resolve().parent.parent / "kernels"
INCLUDE_DIR = KERNEL_DIR / "include"
STARTUP = KERNEL_DIR / "startup.c"
FREESTANDING_MEM = KERNEL_DIR / "freestanding_mem.c"      # memcpy & co. when no C library is linked
LIBC_IO = KERNEL_DIR / "libc_io.c"                        # stdout to ITM when one is
RUNTIME_SOURCES = (STARTUP, FREESTANDING_MEM, LIBC_IO)     # linked by build() itself, never passed to it
INIT_SYMBOL, RETURN_SYMBOL = "__mcusim_init", "__mcusim_return"   # start-up's hooks, called by the emulator
LINKER_TEMPLATE = KERNEL_DIR / "link.ld.in"

OPT_LEVELS = ("-O0", "-O1", "-O2", "-O3", "-Os")
DEFAULT_STACK = 16 * 1024
FREESTANDING = ["-ffreestanding", "-fno-builtin"]
COMMON_FLAGS = ["-ffp-contract=off", "-fomit-frame-pointer", "-fno-unwind-tables", "-fno-sanitize=undefined",
                "-fno-asynchronous-unwind-tables", "-g", "-Wall"]


class BuildError(McusimError):
    """Compiling or linking failed, or the toolchain is not available."""


def cache_root() -> Path:
    """mcusim's cache folder (`MCUSIM_CACHE`, else the user's cache dir): built firmware, libraries, decodes."""
    return Path(os.environ.get("MCUSIM_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "mcusim"))


def cache_dir() -> Path:
    path = cache_root() / "build"
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass(frozen=True)
class Toolchain:
    name: str
    compiler: tuple[str, ...]
    target_flags: tuple[str, ...]

    def version(self) -> str:
        return _compiler_version(self.compiler)


@functools.lru_cache(maxsize=None)
def _compiler_version(compiler: tuple[str, ...]) -> str:
    """Asked once per process: starting the compiler costs more than a cached build's hash."""
    out = subprocess.run([*compiler, "--version"], capture_output=True, text=True)
    return (out.stdout or out.stderr).splitlines()[0] if (out.stdout or out.stderr) else "unknown"


def get_toolchain(name: str, board: Board, float_abi: str = "hard") -> Toolchain:
    """The compiler with the target flags of the board's core (mcusim/boards/cores/*.toml). `float_abi`
    hard: FPU instructions, floats passed in s0-s15; soft: no FPU (library calls), floats passed in core
    registers, as `-mfloat-abi=soft` means to gcc."""
    if float_abi not in FLOAT_ABIS:
        raise BuildError(f"--float-abi takes {' or '.join(FLOAT_ABIS)}, not {float_abi!r}")
    if name == "zig":
        return Toolchain("zig", (sys.executable, "-m", "ziglang", "cc"), board.core.target_flags("zig", float_abi))
    if name == "gcc":
        gcc = shutil.which("arm-none-eabi-gcc")
        if gcc is None:
            raise BuildError("toolchain 'gcc' needs arm-none-eabi-gcc on PATH (Debian: apt-get install "
                             "gcc-arm-none-eabi libnewlib-arm-none-eabi); or use the default --toolchain zig, "
                             "installed with mcusim.")
        return Toolchain("gcc", (gcc,), board.core.target_flags("gcc", float_abi))
    raise BuildError(f"unknown toolchain '{name}': choose zig or gcc")


def linker_script(board: Board, stack_size: int, unbounded: bool = False) -> str:
    """The board's linker script; `unbounded` (only to measure an overflowing build) lifts the sizes."""
    sram_origin, sram_size = board.sram_block
    flash_size = board.flash.size
    if unbounded:
        flash_size, sram_size = 0x1000_0000, 0x1000_0000
    text = LINKER_TEMPLATE.read_text()
    for key, value in {"FLASH_ORIGIN": board.flash.origin, "FLASH_SIZE": flash_size,
                       "SRAM_ORIGIN": sram_origin, "SRAM_SIZE": sram_size,
                       "STACK_SIZE": stack_size}.items():
        text = text.replace(f"@{key}@", hex(value))
    extra = board.extra_rams
    text = text.replace("@EXTRA_MEMORY@", "\n".join(
        f"  {m.name} ({'rwx' if m.executable else 'rw'}) : ORIGIN = {m.origin:#x}, LENGTH = {m.size:#x}"
        for m in extra))
    return text.replace("@EXTRA_SECTIONS@", "\n".join(
        f"  {m.section} (NOLOAD) : ALIGN(4) {{ *({m.section} {m.section}.*) }} > {m.name}" for m in extra))


def _headers(dirs: list[Path]) -> list[Path]:
    return sorted({h for d in dirs if d.is_dir() for h in d.glob("*.h")})


def _explain_overflow(cmd: list[str], ld: Path, elf: Path, board: Board, stack_size: int) -> None:
    """The linker says a memory overflowed: link again with unbounded memories to measure every
    section, and raise the budget error with the breakdown instead of the linker's one-liner."""
    from .firmware import Firmware
    from .memory import static_usage
    ld.write_text(linker_script(board, stack_size, unbounded=True))
    if subprocess.run(cmd, capture_output=True).returncode == 0:
        static_usage(Firmware.load(elf), board)      # raises MemoryBudgetError with the breakdown


def build(sources: list[str | Path], output: str | Path | None = None, *, opt: str = "-O2",
          include_dirs: list[str | Path] = (), defines: list[str] = (), toolchain: str = "zig",
          stack_size: int = DEFAULT_STACK, board: Board | None = None, extra_flags: list[str] = (),
          keep: list[str] | None = None, libc: str = "none", float_abi: str = "hard",
          gc_sections: bool = False, cflags: list[str] = (), ldflags: list[str] = (), libs: list[str] = (),
          log=None) -> Path:
    """Compile and link `sources` into an ELF; returns the path (the cache entry, or `output`).
    With `keep`, functions nothing reaches from start-up or from those symbols are left out of the image
    (a firmware links only the kernels it calls; data is always kept whole: it is the memory plan).
    With `gc_sections`, unused sections of the library and of static code are left out; every global
    symbol of `sources` is kept, as the host may call it. `libc` is nano, full or none (mcusim/libc.py);
    `cflags`/`ldflags` go to the compiler and to the link as given, `libs` are linked as -lNAME."""
    board = board or load_board()
    if opt not in OPT_LEVELS:
        raise BuildError(f"optimisation level {opt} not supported; use one of {', '.join(OPT_LEVELS)}")
    sources = [Path(s).resolve() for s in sources]
    for src in sources:
        if not src.is_file():
            raise BuildError(f"source file {src} does not exist")
        if src.suffix not in (".c", ".S", ".s"):
            raise BuildError(f"source file {src} is not C or assembly (.c, .S, .s)")
    for lib in libs:
        if not lib or lib.startswith("-") or any(c.isspace() or c in "/\\" for c in lib):
            raise BuildError(f"-l takes a library name such as m or mylib (linked as libNAME.a from the "
                             f"toolchain's or an -L folder given in --ldflags), not {lib!r}")
    incs = [Path(d).resolve() for d in include_dirs] + [INCLUDE_DIR]
    tc = get_toolchain(toolchain, board, float_abi)
    lib = libc_link(tc, libc, cache_root(), log)
    script = linker_script(board, stack_size)
    runtime_flags = [*tc.target_flags, opt, *COMMON_FLAGS, *FREESTANDING, *lib.compile_flags]
    flags = [*tc.target_flags, opt, *COMMON_FLAGS, *(FREESTANDING if libc == "none" else ()), *lib.compile_flags,
             *extra_flags, *cflags, *(f"-D{d}" for d in defines), *(f"-I{d}" for d in incs)]
    runtime = [STARTUP, FREESTANDING_MEM] if libc == "none" else [STARTUP, LIBC_IO]
    gc = keep is not None or gc_sections
    if gc:                     # start-up too, so that its unused functions go as well (kernel layouts depend on it)
        sections = ["-ffunction-sections", *(["-fdata-sections"] if keep is None else [])]
        flags += sections
        runtime_flags += sections

    key = hashlib.sha256()
    for part in (tc.name, tc.version(), " ".join(runtime_flags + flags), " ".join([*ldflags, *libs]),
                 str(keep), str(gc_sections), lib.identity, script):
        key.update(part.encode() + b"\0")
    for path in [*runtime, *sources, *_headers(incs + [s.parent for s in sources])]:
        key.update(str(path).encode() + b"\0" + path.read_bytes() + b"\0")
    cached = cache_dir() / f"{key.hexdigest()[:24]}.elf"

    if not cached.exists():
        with tempfile.TemporaryDirectory(prefix="mcusim-build-") as tmp:
            tmp = Path(tmp)
            objects = [_compile(tc, runtime_flags, src, tmp / f"rt{i}.o") for i, src in enumerate(runtime)]
            user_objects = [_compile(tc, flags, src, tmp / f"{i}.o") for i, src in enumerate(sources)]
            ld = tmp / "link.ld"
            ld.write_text(script)
            tmp_elf = tmp / "firmware.elf"
            link = ["-Wl,--no-gc-sections"]
            if gc:
                roots = (INIT_SYMBOL, RETURN_SYMBOL, *(keep if keep is not None else _globals(user_objects)))
                link = ["-Wl,--gc-sections", *(f"-Wl,-u,{sym}" for sym in roots)]
            cmd = [*tc.compiler, *tc.target_flags, *(["-nostdlib"] if libc == "none" else []),
                   *(["-nostartfiles"] if tc.name == "gcc" else []), "-Wl,--entry=Reset_Handler", "-T", str(ld),
                   *link, *ldflags,
                   *map(str, objects + user_objects), *(f"-l{name}" for name in libs), *lib.link_flags,
                   "-o", str(tmp_elf)]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0 and "overflowed" in proc.stderr:
                _explain_overflow(cmd, ld, tmp_elf, board, stack_size)
            if proc.returncode != 0:
                raise BuildError(f"{tc.name} failed to build {', '.join(s.name for s in sources)} (linking):\n"
                                 f"{proc.stderr.strip()}\ncommand: {shlex.join(cmd)}")
            os.replace(tmp_elf, cached)          # atomic: a half-written ELF never enters the cache
    if output is None:
        return cached
    output = Path(output)
    write_atomic(output, cached.read_bytes())           # never over a folder, a device or through a symlink
    return output


def _compile(tc: Toolchain, flags: list[str], source: Path, obj: Path) -> Path:
    cmd = [*tc.compiler, *flags, "-c", str(source), "-o", str(obj)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise BuildError(f"{tc.name} failed to build {source.name} (compiling):\n{proc.stderr.strip()}\n"
                         f"command: {shlex.join(cmd)}")
    return obj


def _globals(objects: list[Path]) -> list[str]:
    """Global symbols the objects define: the functions and data the host may call or read by name."""
    from elftools.elf.elffile import ELFFile
    from elftools.elf.sections import SymbolTableSection
    names = set()
    for obj in objects:
        with open(obj, "rb") as f:
            for tab in ELFFile(f).iter_sections():
                if isinstance(tab, SymbolTableSection):
                    names.update(sym.name for sym in tab.iter_symbols()
                                 if sym["st_info"]["bind"] == "STB_GLOBAL" and sym["st_shndx"] != "SHN_UNDEF"
                                 and sym.name)
    return sorted(names)
