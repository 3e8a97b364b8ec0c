"""The `mcusim` command line. Every user-facing error is a McusimError, printed as one paragraph."""
from __future__ import annotations

import argparse
import json
import sys

from .errors import McusimError

KB = 1024


def _parse_arg(text: str):
    """`--arg` values: integers (decimal or 0x), floats (with a dot or exponent)."""
    try:
        return int(text, 0)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        raise McusimError(f"--arg {text!r} is neither an integer (e.g. 42, 0x2a) nor a float (e.g. 1.5)") from None


def _machine(args, timing: bool = True):
    from .boards import load_board
    from .emulator import Machine
    return Machine(args.firmware, board=load_board(args.board), hclk_mhz=args.hclk_mhz, timing=timing)


def cmd_cc(args) -> int:
    from .boards import load_board
    from .toolchain import build
    out = build(args.sources, args.output, opt=f"-O{args.opt}", include_dirs=args.include, defines=args.define,
                toolchain=args.toolchain, stack_size=args.stack_size, board=load_board(args.board))
    print(f"wrote {out}")
    return 0


def cmd_run(args) -> int:
    m = _machine(args)
    r = m.call(args.call, *[_parse_arg(a) for a in args.arg], max_cycles=args.max_cycles)
    mem = m.memory_summary(r.stack_peak_bytes)
    report = {"symbol": r.symbol, "return_value": r.return_value, "cycles": r.cycles,
              "instructions": r.instructions, "hclk_hz": r.hclk_hz, "seconds": r.seconds,
              "flash_wait_states": m.model.wait_states, "flash_stall_cycles": r.flash_stall_cycles,
              "taken_branches": r.taken_branches, **mem}
    if args.json:
        print(json.dumps(report))
        return 0
    cpi = r.cycles / max(r.instructions, 1)
    print(f"{r.symbol} returned {r.return_value!r}\n"
          f"  cycles        {r.cycles:>12}  ({r.seconds * 1e3:.4f} ms at {r.hclk_hz / 1e6:g} MHz, "
          f"{m.model.wait_states} flash wait states)\n"
          f"  instructions  {r.instructions:>12}  ({cpi:.2f} cycles/instruction)\n"
          f"  flash stalls  {r.flash_stall_cycles:>12}  cycles\n"
          f"  static SRAM   {mem['static_sram_bytes']:>12}  bytes (.data + .bss)\n"
          f"  stack peak    {mem['stack_peak_bytes']:>12}  bytes of {mem['stack_reserved_bytes']} reserved\n"
          f"  SRAM peak     {mem['sram_peak_bytes']:>12}  bytes of {mem['sram_limit_bytes']}\n"
          f"  flash         {mem['flash_bytes']:>12}  bytes of {mem['flash_limit_bytes']}")
    return 0


def cmd_profile(args) -> int:
    from .profile import format_profile, profile_call
    m = _machine(args)
    p = profile_call(m, args.call, *[_parse_arg(a) for a in args.arg], max_cycles=args.max_cycles, top=args.top)
    print(format_profile(p))
    return 0


def cmd_size(args) -> int:
    from .boards import load_board
    from .firmware import Firmware
    from .memory import static_usage
    board = load_board(args.board)
    fw = Firmware.load(args.firmware)
    u = static_usage(fw, board)
    _, sram_size = board.sram_block
    lines = [f"{fw.path.name} on {board.name}",
             f"  flash {u.flash_bytes:>9} bytes of {board.flash.size} ({100 * u.flash_bytes / board.flash.size:.2f}%)"]
    lines += [f"    {name:<14} {size:>9}" for name, size in sorted(u.flash.items(), key=lambda kv: -kv[1])]
    sram_total = sum(u.sram.values())
    lines.append(f"  SRAM  {sram_total:>9} bytes of {sram_size} ({100 * sram_total / sram_size:.2f}%), "
                 f"{u.heap_hi - u.heap_lo} free for buffers")
    lines += [f"    {name:<14} {size:>9}" for name, size in sorted(u.sram.items(), key=lambda kv: -kv[1])]
    syms = sorted((s for s in fw.symbols.values() if s.size and s.kind in ("func", "object")), key=lambda s: -s.size)
    lines.append(f"  largest symbols:")
    for s in syms[: args.top]:
        region = "flash" if board.flash.origin <= s.addr < board.flash.end else "SRAM"
        lines.append(f"    {s.name:<32} {s.size:>9} {s.kind:<6} {region}")
    print("\n".join(lines))
    return 0


OPS = ("gemm", "conv2d", "convtranspose2d", "relu", "sigmoid", "reparameterize", "elbo", "cross_entropy",
       "sgd_update", "requantize", "quantize", "dequantize")
U8_ONLY = ("requantize", "quantize", "dequantize")


def cmd_crosscheck(args) -> int:
    from tqdm import tqdm

    from .crosscheck import all_checks, run_checks
    from .kernel_lib import KernelLibrary
    ops = args.ops.split(",") if args.ops else list(OPS)
    dtypes = args.dtype.split(",")
    unknown = [o for o in ops if o not in OPS] + [d for d in dtypes if d not in ("fp32", "u8")]
    if unknown:
        raise McusimError(f"unknown operator or dtype {', '.join(unknown)}; operators: {', '.join(OPS)}; "
                          f"dtypes: fp32, u8")
    checks = [c for c in all_checks() if c.op in ops and c.dtype in dtypes]
    missing = [f"{o}/{d}" for o in ops for d in dtypes if not (o in U8_ONLY and d == "fp32")
               and not any(c.op == o and c.dtype == d for c in checks)]
    bar = tqdm(total=len(checks) * args.cases, unit="case", file=sys.stderr, disable=None, leave=False)

    def progress(check, i):
        bar.set_description(f"{check.op} {check.dtype} {check.direction}")
        bar.update()

    results = run_checks(checks, args.cases, args.seed, KernelLibrary(opt=args.opt), progress)
    bar.close()
    ok = bool(results) and all(r.mismatches == 0 for r in results) and not missing
    if args.json:
        print(json.dumps({"ok": ok, "cases": args.cases, "seed": args.seed, "missing": missing,
                          "results": [r.as_dict() for r in results]}))
    else:
        print(f"{'op':<16} {'dtype':<5} {'direction':<16} {'cases':>6} {'mismatches':>10} {'max|diff|':>10} "
              f"{'cycles/call':>12} {'MAC/cycle':>9}")
        for r in results:
            mpc = f"{r.macs_per_cycle:.3f}" if r.macs_per_cycle else "-"
            print(f"{r.op:<16} {r.dtype:<5} {r.direction:<16} {r.cases:>6} {r.mismatches:>10} "
                  f"{r.max_abs_diff:>10.3g} {r.cycles_per_call:>12} {mpc:>9}")
        if missing:
            print(f"not implemented yet: {', '.join(missing)}")
        print("ok" if ok else "NOT ok")
    return 0 if ok else 1


def build_parser() -> argparse.ArgumentParser:
    from .boards import DEFAULT_BOARD
    from .toolchain import DEFAULT_STACK
    p = argparse.ArgumentParser(prog="mcusim", description="Cycle-approximate Cortex-M4 simulator for on-device training studies")
    sub = p.add_subparsers(dest="command", required=True)

    def board_opt(sp):
        sp.add_argument("--board", default=DEFAULT_BOARD, help="board name or path to a board TOML (default %(default)s)")

    cc = sub.add_parser("cc", help="compile and link C/assembly into Cortex-M4F firmware")
    cc.add_argument("sources", nargs="+", metavar="SRC")
    cc.add_argument("-o", dest="output", required=True, metavar="FIRMWARE.elf")
    cc.add_argument("-O", dest="opt", default="2", choices=["0", "1", "2", "3", "s"], metavar="LEVEL",
                    help="optimisation level: -O2 (default), -O3, -Os, ...")
    cc.add_argument("-I", dest="include", action="append", default=[], metavar="DIR")
    cc.add_argument("-D", dest="define", action="append", default=[], metavar="NAME[=VALUE]")
    cc.add_argument("--toolchain", choices=["zig", "gcc"], default="zig")
    cc.add_argument("--stack-size", type=int, default=DEFAULT_STACK, help="bytes reserved for the stack")
    board_opt(cc)
    cc.set_defaults(func=cmd_cc)

    for name, func, helptext in (("run", cmd_run, "run one call and report cycles, time and memory"),
                                 ("profile", cmd_profile, "cycles per function and the hottest instructions of one call")):
        sp = sub.add_parser(name, help=helptext)
        sp.add_argument("firmware", metavar="FIRMWARE.elf")
        sp.add_argument("--call", required=True, metavar="SYMBOL")
        sp.add_argument("--arg", action="append", default=[], metavar="VALUE", help="argument (repeat in order)")
        sp.add_argument("--hclk-mhz", type=float, default=None, help="core clock (default: the board's, 120)")
        sp.add_argument("--max-cycles", type=int, default=None, help="fault if the call runs longer")
        board_opt(sp)
        if name == "run":
            sp.add_argument("--json", action="store_true", help="print one JSON object")
        else:
            sp.add_argument("--top", type=int, default=15, help="hottest instructions to list")
        sp.set_defaults(func=func)

    xc = sub.add_parser("crosscheck", help="run every training kernel in C (emulator) and Numba and compare bits")
    xc.add_argument("--ops", default="", help=f"comma-separated operators (default all: {','.join(OPS)})")
    xc.add_argument("--dtype", default="fp32,u8", help="comma-separated: fp32,u8 (default both)")
    xc.add_argument("--cases", type=int, default=20, help="random cases per operator and direction")
    xc.add_argument("--seed", type=int, default=0)
    xc.add_argument("--opt", default="-O2", choices=["-O2", "-O3", "-Os"], help="optimisation of the C kernels")
    xc.add_argument("--json", action="store_true")
    xc.set_defaults(func=cmd_crosscheck)

    size = sub.add_parser("size", help="flash and SRAM use against the board's limits")
    size.add_argument("firmware", metavar="FIRMWARE.elf")
    size.add_argument("--top", type=int, default=10, help="largest symbols to list")
    board_opt(size)
    size.set_defaults(func=cmd_size)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except McusimError as exc:
        print(f"mcusim {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"mcusim {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
