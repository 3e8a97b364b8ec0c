"""Build firmware for the board's Cortex-M4F: compile, link with mcusim's start-up and linker script,
and cache the result by content hash so a repeated build costs a hash, not a compile.

Two toolchains: `zig cc` from the `ziglang` wheel (default; installed by pip, nothing else to set up)
and `arm-none-eabi-gcc` when it is on PATH. Both build Thumb-2 with FPv4-SP hard float and
`-ffp-contract=off`, so float results can match the host bit for bit.
"""
from __future__ import annotations

from .errors import McusimError
from .outputs import write_atomic

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .boards import Board, load_board

KERNEL_DIR = Path(__file__).resolve().parent / "kernels"
if not KERNEL_DIR.is_dir():          # editable install: the package maps ../kernels
    KERNEL_DIR = Path(__file__).resolve().parent.parent / "kernels"
INCLUDE_DIR = KERNEL_DIR / "include"
STARTUP = KERNEL_DIR / "startup.c"
INIT_SYMBOL, RETURN_SYMBOL = "__mcusim_init", "__mcusim_return"   # start-up's hooks, called by the emulator
LINKER_TEMPLATE = KERNEL_DIR / "link.ld.in"

OPT_LEVELS = ("-O0", "-O1", "-O2", "-O3", "-Os")
DEFAULT_STACK = 16 * 1024
COMMON_FLAGS = ["-ffreestanding", "-ffp-contract=off", "-fomit-frame-pointer", "-fno-unwind-tables", "-fno-sanitize=undefined",
                "-fno-asynchronous-unwind-tables", "-g", "-Wall"]


class BuildError(McusimError):
    """Compiling or linking failed, or the toolchain is not available."""


def cache_dir() -> Path:
    root = os.environ.get("MCUSIM_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "mcusim")
    path = Path(root) / "build"
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass(frozen=True)
class Toolchain:
    name: str
    compiler: tuple[str, ...]
    target_flags: tuple[str, ...]

    def version(self) -> str:
        out = subprocess.run([*self.compiler, "--version"], capture_output=True, text=True)
        return (out.stdout or out.stderr).splitlines()[0] if (out.stdout or out.stderr) else "unknown"


def get_toolchain(name: str, board: Board) -> Toolchain:
    """The compiler with the target flags of the board's core (mcusim/boards/cores/*.toml)."""
    if name == "zig":
        return Toolchain("zig", (sys.executable, "-m", "ziglang", "cc"), board.core.zig_flags)
    if name == "gcc":
        gcc = shutil.which("arm-none-eabi-gcc")
        if gcc is None:
            raise BuildError("toolchain 'gcc' needs arm-none-eabi-gcc on PATH (Debian: apt-get install "
                             "gcc-arm-none-eabi); or use the default --toolchain zig, installed with mcusim.")
        return Toolchain("gcc", (gcc,), (*board.core.gcc_flags, "-nostartfiles", "-specs=nano.specs"))
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
          keep: list[str] | None = None) -> Path:
    """Compile and link `sources` into an ELF; returns the path (the cache entry, or `output`).
    With `keep`, functions nothing reaches from start-up or from those symbols are left out of the image
    (a firmware links only the kernels it calls; data is always kept whole: it is the memory plan)."""
    board = board or load_board()
    if opt not in OPT_LEVELS:
        raise BuildError(f"optimisation level {opt} not supported; use one of {', '.join(OPT_LEVELS)}")
    sources = [Path(s).resolve() for s in sources]
    for src in sources:
        if not src.is_file():
            raise BuildError(f"source file {src} does not exist")
        if src.suffix not in (".c", ".S", ".s"):
            raise BuildError(f"source file {src} is not C or assembly (.c, .S, .s)")
    incs = [Path(d).resolve() for d in include_dirs] + [INCLUDE_DIR]
    tc = get_toolchain(toolchain, board)
    script = linker_script(board, stack_size)
    flags = [*tc.target_flags, opt, *COMMON_FLAGS, *extra_flags, *(f"-D{d}" for d in defines),
             *(f"-I{d}" for d in incs)]
    link = ["-Wl,--no-gc-sections"]
    if keep is not None:
        flags.append("-ffunction-sections")
        roots = (INIT_SYMBOL, RETURN_SYMBOL, *keep)                 # the emulator calls start-up's hooks by name
        link = ["-Wl,--gc-sections", *(f"-Wl,-u,{sym}" for sym in roots)]

    key = hashlib.sha256()
    for part in (tc.name, tc.version(), " ".join(flags + link), script):
        key.update(part.encode() + b"\0")
    for path in [STARTUP, *sources, *_headers(incs + [s.parent for s in sources])]:
        key.update(str(path).encode() + b"\0" + path.read_bytes() + b"\0")
    cached = cache_dir() / f"{key.hexdigest()[:24]}.elf"

    if not cached.exists():
        with tempfile.TemporaryDirectory(prefix="mcusim-build-") as tmp:
            ld = Path(tmp) / "link.ld"
            ld.write_text(script)
            tmp_elf = Path(tmp) / "firmware.elf"
            cmd = [*tc.compiler, *flags, "-nostdlib", "-T", str(ld), *link,
                   str(STARTUP), *map(str, sources), "-o", str(tmp_elf)]
            if tc.name == "gcc":
                cmd.insert(-2, "-lgcc")
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0 and "overflowed" in proc.stderr:
                _explain_overflow(cmd, ld, tmp_elf, board, stack_size)
            if proc.returncode != 0:
                raise BuildError(f"{tc.name} failed to build {', '.join(s.name for s in sources)}:\n"
                                 f"{proc.stderr.strip()}\ncommand: {' '.join(cmd)}")
            os.replace(tmp_elf, cached)          # atomic: a half-written ELF never enters the cache
    if output is None:
        return cached
    output = Path(output)
    write_atomic(output, cached.read_bytes())           # never over a folder, a device or through a symlink
    return output
