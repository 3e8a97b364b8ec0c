"""The C library linked into firmware built by `mcusim cc`.

With `--toolchain gcc` it is the toolchain's own newlib (nano by default, full on request), its libm and
libgcc. With the default zig toolchain it is picolibc (newlib's code base, kept for embedded targets),
built from the sources in the `pythondata-software-picolibc` package with picolibc's own CMake build and
`zig cc` on first use, then cached by content hash beside the firmware cache; compiler-rt comes from zig.
Both send `printf` to ITM stimulus port 0, which the emulator prints (kernels/libc_io.c).
"""
from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .errors import McusimError

LIBC_CHOICES = ("nano", "full", "none")
FLOAT_ABIS = ("hard", "soft")
# picolibc's CMake options: no thread-local storage (one thread, errno a plain global), printf/scanf with
# doubles by default (as its own Arm toolchain file sets), and a work-around for its limits.h losing to the
# compiler's own in a freestanding zig build (regcomp needs the POSIX value).
PICOLIBC_OPTIONS = ("-DPICOLIBC_TLS=OFF", "-DCMAKE_BUILD_TYPE=Release", "-DFORMAT_DEFAULT_DOUBLE=1",
                    "-DFORMAT_DEFAULT_INTEGER=0")
PICOLIBC_EXTRA_CFLAGS = ("-D_POSIX2_RE_DUP_MAX=255",)


class LibcError(McusimError):
    """The C library cannot be built or found."""


@dataclass(frozen=True)
class LibcLink:
    """What the compiler and the linker need to use one C library."""
    compile_flags: tuple[str, ...]
    link_flags: tuple[str, ...]          # after the objects: libraries and their options
    identity: str                        # goes into the firmware cache key


def _picolibc_source() -> tuple[Path, str]:
    try:
        import pythondata_software_picolibc as pkg
    except ImportError:
        raise LibcError("the zig toolchain's C library comes from the package pythondata-software-picolibc, which "
                        "is not installed; reinstall mcusim (`pip install -e .`) or link without one (--libc none)"
                        ) from None
    return Path(pkg.data_location), f"{pkg.version_str} {pkg.data_git_hash}"


def _tool(name: str) -> str:
    """cmake and ninja come from their PyPI wheels (installed with mcusim, found even when the environment's
    bin folder is not on PATH), or from PATH."""
    import importlib
    try:
        module = importlib.import_module(name)
        folder = getattr(module, "CMAKE_BIN_DIR", None) or getattr(module, "BIN_DIR", None)
    except ImportError:
        folder = None
    path = shutil.which(name, path=folder) if folder else None
    path = path or shutil.which(name)
    if path is None:
        raise LibcError(f"building picolibc needs `{name}`, which is not on PATH; reinstall mcusim "
                        f"(`pip install -e .` installs the {name} wheel)")
    return path


def _lock(path: Path):
    """An exclusive lock so that two processes building the same library do not race (one waits)."""
    handle = open(path, "w")
    fcntl.flock(handle, fcntl.LOCK_EX)
    return handle


def picolibc(cache_root: Path, compiler: tuple[str, ...], target_flags: tuple[str, ...], version: str,
             log=None) -> Path:
    """The install folder (include/, lib/libc.a) of picolibc built for these target flags, building it on
    first use. `log(message)` hears about a build (it takes a few minutes once per toolchain and ABI)."""
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    source, source_id = _picolibc_source()
    key = hashlib.sha256("\0".join((source_id, version, *target_flags, *PICOLIBC_OPTIONS,
                                    *PICOLIBC_EXTRA_CFLAGS)).encode()).hexdigest()[:24]
    root = cache_root / "picolibc"
    root.mkdir(parents=True, exist_ok=True)
    dest = root / key
    if (dest / "lib" / "libc.a").is_file():
        return dest
    with _lock(root / f"{key}.lock"):
        if (dest / "lib" / "libc.a").is_file():          # built by another process while we waited
            return dest
        log(f"building picolibc {source_id.split()[0]} for {' '.join(target_flags)} with zig cc: once per "
            f"toolchain and float ABI, a few minutes; cached in {dest}")
        with tempfile.TemporaryDirectory(prefix="build-", dir=root) as tmp:
            _build_picolibc(Path(tmp), source, compiler, target_flags, log)
            shutil.rmtree(dest, ignore_errors=True)
            os.replace(Path(tmp) / "install", dest)          # atomic: a half-built library never enters the cache
    return dest


def _build_picolibc(tmp: Path, source: Path, compiler: tuple[str, ...], target_flags: tuple[str, ...], log) -> None:
    cc = tmp / "cc"
    cc.write_text("#!/bin/sh\nexec " + " ".join(map(shlex.quote, (*compiler, *target_flags,
                                                                      *PICOLIBC_EXTRA_CFLAGS))) + ' "$@"\n')
    ar = tmp / "ar"
    ar.write_text("#!/bin/sh\nexec " + " ".join(map(shlex.quote, (*compiler[:-1], "ar"))) + ' "$@"\n')
    for script in (cc, ar):
        script.chmod(0o755)
    toolchain_file = tmp / "toolchain.cmake"
    toolchain_file.write_text(f'set(CMAKE_SYSTEM_NAME Generic)\nset(CMAKE_SYSTEM_PROCESSOR arm)\n'
                              f'set(CMAKE_C_COMPILER "{cc}")\nset(CMAKE_ASM_COMPILER "{cc}")\n'
                              f'set(CMAKE_AR "{ar}")\nset(_HAVE_PICOLIBC_TLS_API TRUE)\n')
    cmake, ninja = _tool("cmake"), _tool("ninja")
    build = tmp / "build"
    _run([cmake, "-S", str(source), "-B", str(build), "-G", "Ninja", f"-DCMAKE_MAKE_PROGRAM={ninja}",
          f"-DCMAKE_TOOLCHAIN_FILE={toolchain_file}", f"-DCMAKE_INSTALL_PREFIX={tmp / 'install'}",
          *PICOLIBC_OPTIONS], "configure", log)
    _run([cmake, "--build", str(build)], "compile", log, progress=True)
    _run([cmake, "--install", str(build)], "install", log)
    (tmp / "install" / "lib" / "libm.a").write_bytes(b"!<arch>\n")   # libm is inside libc.a; -lm still links


def _run(cmd: list[str], step: str, log, progress: bool = False) -> None:
    """Run one build step; with `progress`, follow ninja's [n/N] lines on a progress bar."""
    from tqdm import tqdm
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    tail: list[str] = []
    bar = tqdm(unit="file", desc="picolibc", file=sys.stderr, disable=not progress or None, leave=False)
    for line in proc.stdout:
        tail = (tail + [line.rstrip()])[-30:]
        m = re.match(r"\[(\d+)/(\d+)\]", line)
        if m:
            bar.total = int(m.group(2))
            bar.n = int(m.group(1))
            bar.refresh()
    bar.close()
    if proc.wait() != 0:
        raise LibcError(f"building picolibc failed at the {step} step; its last output:\n" + "\n".join(tail) +
                        "\nLink without a C library (--libc none) or use --toolchain gcc.")


def libc_link(toolchain, libc: str, cache_root: Path, log=None) -> LibcLink:
    """The flags that link `libc` (nano, full or none) with this toolchain (zig: picolibc; gcc: newlib)."""
    if libc not in LIBC_CHOICES:
        raise LibcError(f"--libc takes {', '.join(LIBC_CHOICES)}, not {libc!r}")
    if libc == "none":
        return LibcLink((), ("-lgcc",) if toolchain.name == "gcc" else (), "none")
    if toolchain.name == "gcc":
        nano = ("--specs=nano.specs",) if libc == "nano" else ()
        printf_float = ("-Wl,-u,_printf_float",) if libc == "nano" else ()      # nano's printf prints %f too
        return LibcLink(nano, (*nano, *printf_float, "--specs=nosys.specs", "-lm"), f"newlib {libc}")
    # picolibc is one small library (tinystdio; its float-only printf needs non-standard calls), so nano
    # and full link the same one
    prefix = picolibc(cache_root, toolchain.compiler, toolchain.target_flags, toolchain.version(), log)
    return LibcLink(("-isystem", str(prefix / "include")),          # zig cc takes -lc as its own libc: name the file
                    (f"-L{prefix / 'lib'}", str(prefix / "lib" / "libc.a")), f"picolibc {prefix.name}")
