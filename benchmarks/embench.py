"""Embench-IoT v2.0 through `mcusim cc` + `mcusim run`, against the suite's silicon speed baseline.

    python benchmarks/embench.py EMBENCH_DIR [--toolchain zig|gcc] [--board NAME] [--gsf 16] [--only a,b]
                                             [--gcc PATH]

EMBENCH_DIR is a checkout of github.com/embench/embench-iot (not part of mcusim). Every benchmark under
src/ is built with the baseline's flags (-O2, Cortex-M4 Thumb, soft-float ABI, -ffunction-sections
-fdata-sections, --gc-sections: mcusim cc's defaults plus --float-abi soft), with Embench's main.c and
beebsc.c and mcusim's own board support (benchmarks/embench/boardsupport.c, DWT CYCCNT between
start_trigger and stop_trigger), then its main() runs on the emulated board at 16 MHz with 0 flash wait
states: the baseline's STM32F4-Discovery in reset state. main() returns 0 when verify_benchmark passes.

The baseline (baseline-data/speed.json) gives milliseconds at 16 MHz for LOCAL_SCALE_FACTOR x 16
iterations (the global scale factor of its README), so cycles per iteration = ms x 16000 / (LSF x 16).
The nine benchmarks whose time hardly depends on the C library are marked; the mean and max |error| are
given over them (the other ones measure newlib's routines on silicon and the library linked here).

`--gcc PATH` compiles the C sources to assembly with another arm-none-eabi-gcc (the baseline used GCC 14.1;
a different compiler version alone moves single benchmarks by several per cent) with the same flags, then
links through `mcusim cc` as usual: only the code generation changes, not the C library or the run.
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

BASELINE_MHZ = 16                   # the baseline board's clock (README of examples/arm/stm32f4-discovery)
BASELINE_GSF = 16                   # global scale factor of the baseline speed runs
LIBRARY_INSENSITIVE = ("aha-mont64", "crc32", "depthconv", "nettle-aes", "nsichneu", "picojpeg", "slre", "ud",
                       "xgboost")
BOARD_SUPPORT = Path(__file__).resolve().parent / "embench" / "boardsupport.c"
MCUSIM = [sys.executable, "-m", "mcusim.cli"]


def local_scale_factor(bench: Path) -> int:
    for src in sorted(bench.glob("*.c")):
        m = re.search(r"#define\s+LOCAL_SCALE_FACTOR\s+(\d+)", src.read_text(errors="replace"))
        if m:
            return int(m.group(1))
    raise SystemExit(f"{bench.name}: no LOCAL_SCALE_FACTOR in its sources; is {bench.parent.parent} Embench-IoT 2.0?")


def board_options(args) -> list[str]:
    return (["--board", args.board] if args.board else []) + ["--hclk-mhz", str(BASELINE_MHZ)]


def defines(args) -> list[str]:
    return [f"GLOBAL_SCALE_FACTOR={args.gsf}", "WARMUP_HEAT=1"]


def code_generator(args) -> str:
    """The version line of the compiler that generated the benchmarks' code (the figures depend on it)."""
    from mcusim.boards import load_board
    from mcusim.toolchain import Toolchain, get_toolchain
    if args.gcc:
        return Toolchain("gcc", (args.gcc,), ()).version()
    return get_toolchain(args.toolchain, load_board(args.board) if args.board else load_board()).version()


def to_assembly(gcc: str, sources: list[Path], support: Path, folder: Path, args) -> list[Path]:
    """The sources compiled to assembly by `gcc` with the flags `mcusim cc` gives gcc for this build."""
    from mcusim.boards import load_board
    from mcusim.toolchain import COMMON_FLAGS, get_toolchain
    board = load_board(args.board) if args.board else load_board()
    flags = [*get_toolchain("gcc", board, "soft").target_flags, "-O2", *COMMON_FLAGS, "-ffunction-sections",
             "-fdata-sections", "-w", f"-I{support}", *(f"-D{d}" for d in defines(args))]
    out = []
    for i, src in enumerate(sources):
        asm = folder / f"{i}-{src.stem}.s"
        proc = subprocess.run([gcc, *flags, "-S", str(src), "-o", str(asm)], capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"{gcc} could not compile {src}:\n{proc.stderr.strip()}")
        out.append(asm)
    return out


def build(bench: Path, embench: Path, out: Path, args) -> tuple[bool, str]:
    support = embench / "support"
    sources = [*sorted(bench.glob("*.c")), support / "main.c", support / "beebsc.c"]
    if args.gcc:
        sources = to_assembly(args.gcc, sources, support, out.parent, args)
    cmd = [*MCUSIM, "cc", *map(str, sources),
           str(BOARD_SUPPORT), "-o", str(out), "-O", "2", "--float-abi", "soft", "--libc", "full",
           "--toolchain", args.toolchain, "-I", str(support), *(f"-D{d}" for d in defines(args)),
           "--cflags=-w", "-l", "m", *(["--board", args.board] if args.board else [])]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    return proc.returncode == 0, proc.stderr.strip()


def run(elf: Path, json_path: Path, args) -> tuple[dict | None, int | None, str]:
    """(mcusim's JSON report, the cycles the board support printed, error text)."""
    cmd = [*MCUSIM, "run", str(elf), "--call", "main", "--arg", "0", "--arg", "0", "--json", str(json_path),
           "--max-cycles", str(40 * 10**9), *board_options(args)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        return None, None, proc.stderr.strip()
    m = re.search(r"embench cycles (\d+)", proc.stdout)
    return json.loads(json_path.read_text()), int(m.group(1)) if m else None, ""


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("embench", type=Path, metavar="EMBENCH_DIR")
    p.add_argument("--toolchain", choices=["zig", "gcc"], default="zig")
    p.add_argument("--board", default=None, help="board for mcusim cc/run (default: mcusim's default board)")
    p.add_argument("--gsf", type=int, default=BASELINE_GSF, help="global scale factor (baseline: 16)")
    p.add_argument("--only", default="", help="comma-separated benchmark names")
    p.add_argument("--gcc", default=None, metavar="PATH",
                   help="compile the C to assembly with this arm-none-eabi-gcc (another version), then mcusim cc")
    args = p.parse_args()
    if args.gcc and (args.toolchain != "gcc" or shutil.which(args.gcc) is None):
        raise SystemExit(f"--gcc needs --toolchain gcc and an arm-none-eabi-gcc executable, not {args.gcc!r}")
    if not (args.embench / "baseline-data" / "speed.json").is_file() or not (args.embench / "src").is_dir():
        raise SystemExit(f"{args.embench} is not an Embench-IoT checkout (baseline-data/speed.json and src/ "
                         f"are missing); clone github.com/embench/embench-iot and pass its folder")
    baseline = json.loads((args.embench / "baseline-data" / "speed.json").read_text())
    benches = sorted(d for d in (args.embench / "src").iterdir() if d.is_dir())
    if args.only:
        benches = [b for b in benches if b.name in args.only.split(",")]

    rows, errors = [], []
    with tempfile.TemporaryDirectory(prefix="embench-") as tmp:
        for bench in benches:
            lsf = local_scale_factor(bench)
            elf = Path(tmp) / f"{bench.name}.elf"
            built, err = build(bench, args.embench, elf, args)
            report, cycles = None, None
            if built:
                report, cycles, err = run(elf, Path(tmp) / f"{bench.name}.json", args)
            if err:
                errors.append(f"{bench.name}: {err.splitlines()[-1] if err else ''}")
            verified = report is not None and report["return_value"] == 0
            measured = cycles / (lsf * args.gsf) if cycles is not None else None
            base = baseline[bench.name] * BASELINE_MHZ * 1000 / (lsf * BASELINE_GSF) if bench.name in baseline else None
            error = 100 * (measured / base - 1) if measured and base else None
            rows.append((bench.name, built, report is not None, verified, measured, base, error))
            print(f"{bench.name}: built {built}, ran {report is not None}, verified {verified}", file=sys.stderr)

    print(f"Embench-IoT through mcusim cc --toolchain {args.toolchain} + mcusim run at {BASELINE_MHZ} MHz "
          f"(gsf {args.gsf}); code from {code_generator(args)}; * = library-insensitive")
    print(f"{'benchmark':<16} {'built':>5} {'ran':>4} {'ok':>4} {'cyc/iter':>12} {'baseline':>12} {'error':>8}")
    fmt = lambda v, spec: format(v, spec) if v is not None else "-"  # noqa: E731
    for name, built, ran, ok, measured, base, error in rows:
        mark = "*" if name in LIBRARY_INSENSITIVE else " "
        print(f"{name + mark:<16} {'yes' if built else 'NO':>5} {'yes' if ran else 'NO':>4} {'yes' if ok else 'NO':>4} "
              f"{fmt(measured, '12.1f')} {fmt(base, '12.1f')} {fmt(error, '+7.2f')}%")
    errs = [abs(r[6]) for r in rows if r[0] in LIBRARY_INSENSITIVE and r[6] is not None]
    if errs:
        print(f"library-insensitive ({len(errs)} of {len(LIBRARY_INSENSITIVE)}): mean |error| "
              f"{sum(errs) / len(errs):.2f}%, max {max(errs):.2f}%")
    allerr = [abs(r[6]) for r in rows if r[6] is not None]
    if allerr:
        print(f"all {len(allerr)}: mean |error| {sum(allerr) / len(allerr):.2f}%, max {max(allerr):.2f}%")
    for e in errors:
        print(e, file=sys.stderr)
    return 0 if all(r[1] and r[2] and r[3] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
