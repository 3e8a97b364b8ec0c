"""The `mcusim` command line. Every user-facing error is a McusimError, printed as one paragraph."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from .errors import McusimError
from .outputs import check_target, write_atomic
from .units import kb


def _parse_arg(text: str):
    """`--arg` values: integers (decimal or 0x), floats (with a dot or exponent)."""
    try:
        return int(text, 0)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        raise McusimError(f"--arg {text!r} is neither an integer (e.g. 42, 0x2a) nor a float (e.g. 1.5), an array "
                          f"file (@in.npy) nor a fresh buffer (zeros:N:DTYPE)") from None


DEFAULT_CALL_BUDGET = 10_000_000_000     # cycles per call without --max-cycles: minutes of emulation, not hours


class _CallAction(argparse.Action):
    """`--call SYMBOL` starts a call; the `--arg`s after it are its arguments."""

    def __call__(self, parser, namespace, value, option_string=None):
        setattr(namespace, self.dest, [*(getattr(namespace, self.dest) or []), (value, [])])


class _ArgAction(argparse.Action):
    def __call__(self, parser, namespace, value, option_string=None):
        calls = getattr(namespace, "calls", None)
        if not calls:
            parser.error(f"--arg {value} comes before any --call; give --call SYMBOL first, then its arguments")
        calls[-1][1].append(value)


def _dtype(text: str, where: str):
    import numpy as np
    try:
        return np.dtype(text)
    except TypeError:
        raise McusimError(f"{where}: {text!r} is not a numpy dtype; use e.g. float32, int16, uint8") from None


def _call_argument(machine, text: str, arrays: list):
    """One --arg: a number, `@FILE.npy` (copied into SRAM, its address passed) or `zeros:N:DTYPE`."""
    import numpy as np
    if text.startswith("@"):
        path = Path(text[1:])
        try:
            array = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise McusimError(f"--arg {text}: cannot read {path} as a .npy array ({exc}); save it with numpy.save"
                              ) from None
        buf = machine.put(array, name=path.name)
    elif text.startswith("zeros:"):
        try:
            _, count, dtype = text.split(":")
            shape = (int(count),)
        except ValueError:
            raise McusimError(f"--arg {text}: write a fresh buffer as zeros:N:DTYPE, e.g. zeros:100:float32") from None
        buf = machine.alloc(shape, _dtype(dtype, f"--arg {text}"), name=text)
        buf.array[...] = 0
    else:
        return _parse_arg(text)
    arrays.append(buf)
    return buf


def _write_out_array(machine, spec: str, arrays: list) -> str:
    """--out-array FILE.npy=WHERE[:N:DTYPE]; WHERE is @K (the K-th array argument), a symbol or an address."""
    import numpy as np
    target, _, where = spec.partition("=")
    parts = where.split(":")
    if not target or len(parts) not in (1, 3):
        raise McusimError(f"--out-array {spec!r}: write FILE.npy=WHERE[:N:DTYPE], e.g. out.npy=@2 or "
                          f"out.npy=result:10:float32 or out.npy=0x20001000:16:uint8")
    if parts[0].startswith("@"):
        try:
            buf = arrays[int(parts[0][1:]) - 1]
        except (ValueError, IndexError):
            raise McusimError(f"--out-array {spec!r}: {parts[0]} names no array argument; there are {len(arrays)} "
                              f"(@1 is the first @FILE.npy or zeros: argument)") from None
        address, count, dtype = buf.address, buf.array.size, buf.array.dtype
    else:
        if len(parts) != 3:
            raise McusimError(f"--out-array {spec!r}: a symbol or address needs :N:DTYPE, e.g. {where}:10:float32")
        try:
            address = int(parts[0], 0)
        except ValueError:
            address = machine.fw.address(parts[0])
        count, dtype = None, None
    if len(parts) == 3:
        try:
            count = int(parts[1])
        except ValueError:
            raise McusimError(f"--out-array {spec!r}: N must be an element count, not {parts[1]!r}") from None
        dtype = _dtype(parts[2], f"--out-array {spec}")
    from unicorn import UcError
    try:
        data = bytes(machine.uc.mem_read(address, count * dtype.itemsize))
    except UcError:
        raise McusimError(f"--out-array {spec!r}: {count} x {dtype} at {address:#x} is not all in the board's "
                          f"memory") from None
    import io
    out = io.BytesIO()
    np.save(out, np.frombuffer(data, dtype).copy())
    write_atomic(Path(target), out.getvalue())
    return target


def _machine(args, timing: bool = True, write_char=None, debuggable: bool = False):
    from .boards import load_board
    from .emulator import Machine
    from .emulator import STARTUP_BUDGET
    budget = args.max_cycles if args.max_cycles is not None else STARTUP_BUDGET     # start-up is budgeted too
    if not 1 <= budget < 1 << 62:
        raise McusimError(f"the cycle budget must be between 1 and 2^62 cycles, not {budget}")
    machine = Machine(args.firmware, board=load_board(args.board), hclk_mhz=args.hclk_mhz, timing=timing,
                      startup_budget=budget, write_char=write_char,
                      debuggable=debuggable)
    for note in machine.static.notes:                   # a foreign ELF's layout: what had to be assumed
        print(f"mcusim {args.command}: note: {note}", file=sys.stderr)
    return machine


def _to_stderr(c: str) -> None:
    sys.stderr.write(c)
    sys.stderr.flush()


def _run_calls(m, calls, max_cycles):
    """Run the --call/--arg sequence on one machine state; returns (results, array buffers in --arg order)."""
    arrays, results = [], []
    budget = max_cycles if max_cycles is not None else DEFAULT_CALL_BUDGET
    for symbol, texts in calls:
        values = [_call_argument(m, t, arrays) for t in texts]
        results.append(m.call(symbol, *values, max_cycles=budget))
    return results, arrays


def _split_flags(values: list[str], option: str) -> list[str]:
    """--cflags/--ldflags strings, split as a shell would (repeatable)."""
    import shlex
    try:
        return [flag for value in values for flag in shlex.split(value)]
    except ValueError as exc:
        raise McusimError(f"{option} {values[-1]!r} cannot be split into flags ({exc}); quote it as one "
                          f"shell word, e.g. {option} \"-DN=1 -Wextra\"") from None


def cmd_cc(args) -> int:
    from .boards import load_board
    from .toolchain import build
    out = build(args.sources, args.output, opt=f"-O{args.opt}", include_dirs=args.include, defines=args.define,
                toolchain=args.toolchain, stack_size=args.stack_size, board=load_board(args.board),
                libc=args.libc, float_abi=args.float_abi, gc_sections=args.gc_sections,
                cflags=_split_flags(args.cflags, "--cflags"), ldflags=_split_flags(args.ldflags, "--ldflags"),
                libs=args.libs)
    print(f"wrote {out}")
    return 0


def cmd_run(args) -> int:
    json_stdout = args.json == "-"
    if args.json not in (None, "-"):
        check_target(Path(args.json))
    m = _machine(args, write_char=_to_stderr if json_stdout else None,   # firmware output never mixes with JSON
                 debuggable=args.gdb is not None)
    if args.gdb is not None:
        from .gdb import serve
        first = args.calls[0][0]
        serve(m, args.gdb, first)
        print(f"{first} waits for gdb on port {args.gdb}: gdb-multiarch {args.firmware} "
              f"-ex 'target remote :{args.gdb}'", file=sys.stderr, flush=True)
    results, arrays = _run_calls(m, args.calls, args.max_cycles)
    written = [_write_out_array(m, spec, arrays) for spec in args.out_array]
    r = results[-1]
    mem = m.memory_summary(max(c.stack_peak_bytes for c in results))
    per_call = [{"symbol": c.symbol, "return_value": c.return_value, "cycles": c.cycles,
                 "instructions": c.instructions, "seconds": c.seconds, "flash_stall_cycles": c.flash_stall_cycles,
                 "taken_branches": c.taken_branches, "stack_peak_bytes": c.stack_peak_bytes} for c in results]
    report = {**per_call[-1], "hclk_hz": r.hclk_hz, "flash_wait_states": m.model.wait_states, **mem,
              "calls": per_call, "out_arrays": written}
    if args.json is not None:
        text = json.dumps(report)
        if json_stdout:
            print(text)
        else:
            write_atomic(Path(args.json), (text + "\n").encode())
            print(f"wrote {args.json}", file=sys.stderr)
        return 0
    for c in results[:-1]:
        print(f"{c.symbol} returned {c.return_value!r} in {c.cycles} cycles")
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
    for target in written:
        print(f"wrote {target}")
    return 0


def cmd_profile(args) -> int:
    from .profile import annotate, callgrind, format_profile, profile_calls
    m = _machine(args)
    arrays: list = []
    calls = [(symbol, [_call_argument(m, t, arrays) for t in texts]) for symbol, texts in args.calls]
    budget = args.max_cycles if args.max_cycles is not None else DEFAULT_CALL_BUDGET
    p = profile_calls(m, calls, max_cycles=budget, top=args.top)
    print(annotate(m, p, args.annotate) if args.annotate else format_profile(p))
    if args.callgrind:
        write_atomic(Path(args.callgrind), callgrind(p).encode())
        print(f"wrote {args.callgrind} (open it with kcachegrind or qcachegrind)", file=sys.stderr)
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
    for mem in board.extra_rams:
        used = sum(n for name, n in u.other_ram.items() if name == mem.section)
        lines.append(f"  {mem.name:<5} {used:>9} bytes of {mem.size} ({mem.kind}, section {mem.section})")
    lines += [f"  note: {note}" for note in u.notes]
    syms = sorted((s for s in fw.symbols.values() if s.size and s.kind in ("func", "object")), key=lambda s: -s.size)
    lines.append("  largest symbols:")
    for s in syms[: args.top]:
        region = next((m.name for m in board.memories if m.origin <= s.addr < m.end), "?")
        lines.append(f"    {s.name:<32} {s.size:>9} {s.kind:<6} {region}")
    print("\n".join(lines))
    return 0


# Which operators exist in which precision: u8 training keeps the reparameterization, the losses and
# the activations' float parts in fp32 (as the paper does); ReLU is fused into the u8 layers.
def cmd_crosscheck(args) -> int:
    from tqdm import tqdm

    from .boards import load_board
    from .crosscheck import all_checks, required_checks, run_checks
    from .kernel_lib import KernelLibrary
    found = all_checks()
    known = sorted({c.op for c in found} | {op for op, _ in required_checks()})
    ops = args.ops.split(",") if args.ops else known
    dtypes = args.dtype.split(",")
    unknown = [o for o in ops if o not in known] + [d for d in dtypes if d not in ("fp32", "u8")]
    if unknown:
        raise McusimError(f"unknown operator or dtype {', '.join(unknown)}; operators: {', '.join(known)}; "
                          f"dtypes: fp32, u8")
    if args.cases < 1:
        raise McusimError(f"--cases must be at least 1, not {args.cases}: no case checks nothing")
    checks = [c for c in found if c.op in ops and c.dtype in dtypes]
    missing = [f"{o}/{d}" for o, d in sorted(required_checks()) if o in ops and d in dtypes
               and not any(c.op == o and c.dtype == d for c in checks)]
    bar = tqdm(total=len(checks) * args.cases, unit="case", file=sys.stderr, disable=None, leave=False)

    def progress(check, i):
        bar.set_description(f"{check.op} {check.dtype} {check.direction}")
        bar.update()

    results = run_checks(checks, args.cases, args.seed, KernelLibrary(opt=args.opt, board=load_board(args.board)),
                         progress)
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


def _pair(text: str) -> list[float]:
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LMIN,LMAX such as 0.1,0.6, got {text!r}") from None
    return [lo, hi]


def _ints(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers such as 10,100,200, got {text!r}") from None


def _common_train_config(args) -> dict:
    return dict(dataset=args.dataset, precision=args.precision, sparse=args.sparse, epochs=args.epochs,
                seed=args.seed, lr=args.lr, lr_schedule=args.lr_schedule, hclk_mhz=args.hclk_mhz,
                crosscheck_samples=args.crosscheck_samples, train_limit=args.train_limit, board=args.board)


def _run_training(args, cfg) -> dict:
    from .train import Trainer
    if args.download:
        from .datasets import download
        print(f"downloaded {args.dataset} into {download(args.dataset, args.data_dir)}", file=sys.stderr)
    if args.threads is not None and args.threads < 1:
        raise McusimError(f"--threads must be at least 1, not {args.threads}")
    log = lambda msg: print(msg, file=sys.stderr)  # noqa: E731
    return Trainer(cfg, args.out, args.data_dir, resume=args.resume, progress=not args.quiet, log=log,
                   threads=args.threads).run()


def cmd_train(args) -> int:
    from .train import ModelTrainConfig
    common = _common_train_config(args)
    if args.crosscheck_samples is None:                      # the first batch, at most 10 samples
        common["crosscheck_samples"] = max(1, min(10, args.batch))
    cfg = ModelTrainConfig(model=args.model, batch_size=args.batch, **common)
    results = _run_training(args, cfg)
    last = results["epochs"][-1]
    acc = f"; accuracy {100 * last['test_accuracy']:.1f}%" if last["test_accuracy"] is not None else ""
    print(f"{args.out}: test loss {last['test_loss']:.4g}{acc}")
    _print_mcu(results["mcu"])
    return 0


def cmd_plan(args) -> int:
    import itertools

    from .boards import load_board
    from .graph import load_model
    from .plan import make_plan
    from .plan_format import render, render_comparison
    if args.batch < 1:
        raise McusimError(f"--batch must be at least 1, not {args.batch}")
    precisions = args.precision.split(",")
    if any(p not in ("fp32", "u8") for p in precisions):
        raise McusimError(f"--precision takes fp32, u8 or both (fp32,u8), not {args.precision!r}")
    if args.sparse is not None and precisions != ["u8"]:
        raise McusimError("--sparse needs --precision u8 (dynamic sparse updates are a u8 method)")
    clocks = [None] if args.hclk_mhz is None else [_positive_float(v, "--hclk-mhz") for v in args.hclk_mhz.split(",")]
    models = [load_model(m) for m in args.model]
    boards = [load_board(b) for b in args.board.split(",")] if args.board else [load_board()]
    configs = list(itertools.product(models, boards, precisions, clocks))
    if args.profile and len(configs) != 1:
        raise McusimError("--profile profiles one plan; give one model, precision, board and clock")
    if args.plot and len(configs) != 1:
        raise McusimError("--plot draws one plan; give one model, precision, board and clock")
    for target in (args.output, args.plot, args.profile):      # refused before the cycles are measured
        if target:
            check_target(Path(target))
    plans = [make_plan(m, b, p, args.sparse, args.batch, c, profile=_step_profiler(args.profile))
             for m, b, p, c in configs]
    text = render(plans[0], args.format) if len(plans) == 1 else render_comparison(plans, args.format)
    if args.plot:
        from .plots import plot_plan
        target = Path(args.plot)
        plot_plan(plans[0], target)
        print(f"wrote {target}", file=sys.stderr)
    if args.output:
        write_atomic(Path(args.output), text.encode())
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def _step_profiler(target: str | None):
    """A callback for make_plan that profiles the training step and writes it in the callgrind format."""
    if target is None:
        return None

    def run(machine, symbol, *args):
        from .profile import callgrind, profile_call
        write_atomic(Path(target), callgrind(profile_call(machine, symbol, *args)).encode())
        print(f"wrote {target} (the training step's profile; open it with kcachegrind or qcachegrind)",
              file=sys.stderr)
    return run


def _positive_float(text: str, option: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise McusimError(f"{option} takes positive numbers (comma-separated to compare), not {text!r}")
    return value


def cmd_vae_train(args) -> int:
    from .train import TrainConfig
    cfg = TrainConfig(variant=args.variant, eval_every=args.eval_every, labels_per_class=args.labels,
                      head_epochs=args.head_epochs, **_common_train_config(args))
    results = _run_training(args, cfg)
    last = results["epochs"][-1]
    acc = ", ".join(f"{k} labels/class {100 * v:.1f}%" for k, v in last["test_accuracy"].items())
    print(f"{args.out}: test neg. ELBO {last['test_neg_elbo']:.1f}; accuracy {acc}")
    _print_mcu(results["mcu"])
    return 0


def _print_mcu(mcu: dict) -> None:
    fits = "fits" if mcu["fits"] else "does NOT fit"
    if mcu["fits"]:
        energy = "" if mcu["energy_mj"] is None else f" and {mcu['energy_mj']:.2f} mJ"
        print(f"on the {mcu['board']} at {mcu['hclk_mhz']:g} MHz: {mcu['latency_ms']:.1f} ms{energy} "
              f"per training sample, {mcu['inference_ms']:.1f} ms per inference; "
              f"SRAM {kb(mcu['sram_bytes']['total'])} of {kb(mcu['sram_bytes']['limit'])} ({fits}); "
              f"emulator matches the host bit for bit: {mcu['crosscheck']['bit_exact']}")
    else:
        print(f"the model {fits} in {kb(mcu['sram_bytes']['limit'])} of SRAM "
              f"(planned {kb(mcu['sram_bytes']['planned_total'])})")


def cmd_vae_report(args) -> int:
    """With several folders (`runs/*`), ones that hold no finished VAE run are skipped with a note; the
    report needs at least one."""
    from .report import ResultsError, build_report, load_results
    runs = []
    for d in args.dirs:
        try:
            runs.append(load_results(d))
        except ResultsError as exc:
            if len(args.dirs) == 1:
                raise
            print(f"mcusim vae report: skipping {d}: {exc}", file=sys.stderr)
    if not runs:
        raise McusimError("none of the folders holds a finished `mcusim vae train` run (results.json)")
    text = build_report(runs)
    print(text)
    if args.output:
        write_atomic(Path(args.output), text.encode())
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .boards import BOARD_ENV, DEFAULT_BOARD
    from .toolchain import DEFAULT_STACK
    p = argparse.ArgumentParser(prog="mcusim", description="Cycle-approximate Cortex-M4 simulator for on-device training studies")
    sub = p.add_subparsers(dest="command", required=True)

    def board_opt(sp, several: bool = False):
        compare = " (several, comma-separated, to compare)" if several else ""
        sp.add_argument("--board", default=None, metavar="NAME|FILE" + (",..." if several else ""),
                        help=f"board name or path to a board TOML{compare} (default: ${BOARD_ENV}, else {DEFAULT_BOARD})")

    cc = sub.add_parser("cc", help="compile and link C/assembly into Cortex-M4F firmware")
    cc.add_argument("sources", nargs="+", metavar="SRC")
    cc.add_argument("-o", dest="output", required=True, metavar="FIRMWARE.elf")
    cc.add_argument("-O", dest="opt", default="2", choices=["0", "1", "2", "3", "s"], metavar="LEVEL",
                    help="optimisation level: -O2 (default), -O3, -Os, ...")
    cc.add_argument("-I", dest="include", action="append", default=[], metavar="DIR")
    cc.add_argument("-D", dest="define", action="append", default=[], metavar="NAME[=VALUE]")
    cc.add_argument("--toolchain", choices=["zig", "gcc"], default="zig")
    cc.add_argument("--stack-size", type=int, default=DEFAULT_STACK, help="bytes reserved for the stack")
    cc.add_argument("--libc", choices=["nano", "full", "none"], default="nano",
                    help="C library and compiler support: zig links picolibc (built on first use, cached) and "
                         "compiler-rt, gcc newlib-nano (nano, the default) or newlib (full) and libgcc; none links "
                         "start-up only (gcc: and libgcc), as mcusim's own kernels")
    cc.add_argument("--float-abi", choices=["hard", "soft"], default="hard",
                    help="hard (FPU, floats in s0-s15) or soft (no FPU, floats in core registers); `mcusim run` "
                         "reads which from the ELF")
    cc.add_argument("--cflags", action="append", default=[], metavar='"FLAGS"',
                    help="extra compiler flags, split as a shell would (repeatable); one flag alone is "
                         "written --cflags=-w")
    cc.add_argument("--ldflags", action="append", default=[], metavar='"FLAGS"',
                    help="extra link flags, e.g. \"-L lib -Wl,--print-memory-usage\" (repeatable)")
    cc.add_argument("-l", dest="libs", action="append", default=[], metavar="NAME", help="link libNAME.a too")
    cc.add_argument("--no-gc-sections", dest="gc_sections", action="store_false",
                    help="keep unused functions and data (by default, with -ffunction-sections -fdata-sections, "
                         "--gc-sections drops what nothing uses; the sources' global symbols are always kept). "
                         "With zig this keeps all of compiler-rt (about 170 kB)")
    board_opt(cc)
    cc.set_defaults(func=cmd_cc)

    for name, func, helptext in (("run", cmd_run, "run one call and report cycles, time and memory"),
                                 ("profile", cmd_profile, "cycles per function and the hottest instructions of one call")):
        sp = sub.add_parser(name, help=helptext)
        sp.add_argument("firmware", metavar="FIRMWARE.elf")
        sp.add_argument("--call", dest="calls", action=_CallAction, required=True, metavar="SYMBOL",
                        help="function to call; repeat to run several calls on one machine state in order" +
                             ("" if name == "run" else " (profiled together)"))
        sp.add_argument("--arg", action=_ArgAction, metavar="VALUE",
                        help="argument of the preceding --call (repeat in order): 42, 0x2a, 1.5, @in.npy (the "
                             "array copied into SRAM, its address passed) or zeros:N:DTYPE (a zeroed SRAM buffer)")
        sp.add_argument("--hclk-mhz", type=float, default=None, help="core clock (default: the board's)")
        sp.add_argument("--max-cycles", type=int, default=None,
                        help=f"fault if a call runs longer (default {DEFAULT_CALL_BUDGET:.0e} cycles)")
        board_opt(sp)
        if name == "run":
            sp.add_argument("--json", nargs="?", const="-", default=None, metavar="FILE",
                            help="write the results as one JSON object to FILE, or to stdout without FILE "
                                 "(firmware output then goes to stderr)")
            sp.add_argument("--out-array", action="append", default=[], metavar="FILE.npy=WHERE[:N:DTYPE]",
                            help="after the calls, save memory as .npy: WHERE is @K (the K-th array --arg), "
                                 "a symbol or an address (these need :N:DTYPE)")
            sp.add_argument("--gdb", type=int, default=None, metavar="PORT",
                            help="wait at the first call's first instruction for gdb-multiarch on this TCP port")
        else:
            sp.add_argument("--top", type=int, default=15, help="hottest instructions to list")
            sp.add_argument("--annotate", metavar="FUNCTION", default=None,
                            help="list FUNCTION's source lines and instructions with counts and cycles")
            sp.add_argument("--callgrind", metavar="FILE", default=None,
                            help="also write the profile in the callgrind format (kcachegrind, qcachegrind)")
        sp.set_defaults(func=func)

    xc = sub.add_parser("crosscheck", help="run every training kernel in C (emulator) and Numba and compare bits")
    xc.add_argument("--ops", default="", help="comma-separated operators (default: every registered one)")
    xc.add_argument("--dtype", default="fp32,u8", help="comma-separated: fp32,u8 (default both)")
    xc.add_argument("--cases", type=int, default=20, help="random cases per operator and direction")
    xc.add_argument("--seed", type=int, default=0)
    xc.add_argument("--opt", default="-O2", choices=["-O2", "-O3", "-Os"], help="optimisation of the C kernels")
    xc.add_argument("--json", action="store_true")
    board_opt(xc)
    xc.set_defaults(func=cmd_crosscheck)

    vae = sub.add_parser("vae", help="on-device VAE training: train, report").add_subparsers(dest="vae_command",
                                                                                          required=True)
    def train_options(sp, epochs: int, datasets: list[str] | None, default_dataset: str, crosscheck: int):
        sp.add_argument("--dataset", choices=datasets, default=default_dataset,
                        help=None if datasets else "mnist, fashion-mnist, digits, or FILE.npz (default %(default)s)")
        sp.add_argument("--precision", choices=["fp32", "u8"], default="u8")
        sp.add_argument("--sparse", type=_pair, default=None, metavar="LMIN,LMAX",
                        help="dynamic sparse updates with these lambda_min,lambda_max (u8 only)")
        sp.add_argument("--epochs", type=int, default=epochs)
        sp.add_argument("--lr", type=float, default=None, help="learning rate (default: the paper's 0.001)")
        sp.add_argument("--lr-schedule", choices=("constant", "cosine"), default=None,
                        help="constant (the paper's) or cosine-annealed to 0 over --epochs (default: constant for "
                             "fp32, cosine for u8)")
        sp.add_argument("--seed", type=int, default=0)
        sp.add_argument("--hclk-mhz", type=float, default=None, help="core clock (default: the board's)")
        board_opt(sp)
        sp.add_argument("--crosscheck-samples", type=int, default=crosscheck,
                        help="training samples run on the emulated MCU too and compared bit for bit "
                             f"(default {crosscheck or 'the first batch, at most 10'})")
        sp.add_argument("--train-limit", type=int, default=None, help="use only the first N training samples")
        sp.add_argument("--data-dir", default=None, help="folder with the IDX files (or set MCUSIM_DATA)")
        sp.add_argument("--download", action="store_true", help="fetch the data set from its public mirrors first")
        sp.add_argument("--out", required=True, metavar="DIR")
        sp.add_argument("--resume", action="store_true", help="continue the run in --out after its last epoch")
        sp.add_argument("--quiet", action="store_true", help="no progress bar")
        sp.add_argument("--threads", type=int, default=None, metavar="N",
                        help="host threads for the fp32 batch phases (default: $MCUSIM_THREADS, else 1; "
                             "the numbers are the same on any count)")

    gt = sub.add_parser("train", help="train any model (TOML or ONNX) on the host and check it on the emulated MCU")
    gt.add_argument("model", metavar="MODEL", help="a built-in model name or a model file (.toml, .onnx)")
    gt.add_argument("--batch", type=int, default=100, help="samples per update (default %(default)s)")
    train_options(gt, epochs=10, datasets=None, default_dataset="digits", crosscheck=None)
    gt.set_defaults(func=cmd_train)

    pl = sub.add_parser("plan", help="will it fit and how fast: SRAM by layer and kind, MACs, cycles per layer "
                                     "measured on the emulated board, a fit verdict (no training)")
    pl.add_argument("model", metavar="MODEL", nargs="+",
                    help="built-in model names or model files (.toml, .onnx); several are compared side by side")
    pl.add_argument("--precision", default="u8", help="fp32, u8, or fp32,u8 to compare (default u8)")
    pl.add_argument("--sparse", type=_pair, default=None, metavar="LMIN,LMAX", help="dynamic sparse updates (u8)")
    pl.add_argument("--batch", type=int, default=100, help="samples per update; the update is amortised over it")
    pl.add_argument("--hclk-mhz", default=None, help="core clock in MHz, or several to compare (default: the board's)")
    pl.add_argument("--format", choices=["text", "md", "csv", "json"], default="text")
    pl.add_argument("-o", "--output", default=None, help="write to this file (atomically) instead of stdout")
    pl.add_argument("--profile", default=None, metavar="FILE",
                    help="also profile one training step: cycles per function and source line, callgrind format")
    pl.add_argument("--plot", default=None, metavar="FILE.png",
                    help="also draw SRAM per layer by kind and the live-buffer timeline of the step")
    board_opt(pl, several=True)
    pl.set_defaults(func=cmd_plan)

    tr = vae.add_parser("train", help="train the VAE as the paper does and measure it on the MCU")
    train_options(tr, epochs=100, datasets=["mnist", "fashion-mnist"], default_dataset="fashion-mnist",
                  crosscheck=100)
    tr.add_argument("--variant", default="baseline",
                    help="baseline, filters, latent, classes, or the path of a model TOML")
    tr.add_argument("--eval-every", type=int, default=1, help="train the classifier heads every K epochs")
    tr.add_argument("--labels", type=_ints, default=[10, 100, 200], metavar="N,N,...",
                    help="labelled samples per class for the heads (default 10,100,200)")
    tr.add_argument("--head-epochs", type=int, default=25)
    tr.set_defaults(func=cmd_vae_train)
    rep = vae.add_parser("report", help="paper-style tables from one or more runs, next to the paper's figures")
    rep.add_argument("dirs", nargs="+", metavar="DIR")
    rep.add_argument("-o", "--output", default=None, help="also write the Markdown to this file")
    rep.set_defaults(func=cmd_vae_report)

    from .onnx_import import add_parser as add_import_parser
    add_import_parser(sub)

    size = sub.add_parser("size", help="flash and SRAM use against the board's limits")
    size.add_argument("firmware", metavar="FIRMWARE.elf")
    size.add_argument("--top", type=int, default=10, help="largest symbols to list")
    board_opt(size)
    size.set_defaults(func=cmd_size)
    return p


def _name(args) -> str:
    return f"{args.command} {args.vae_command}" if getattr(args, "vae_command", None) else args.command


class Terminated(Exception):
    """SIGTERM, turned into an exception so that a run stops like on Ctrl-C (outputs stay consistent)."""


def _on_sigterm(signum, frame):
    raise Terminated


def main(argv: list[str] | None = None) -> int:
    import signal
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    if _in_main_thread():
        signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return args.func(args)
    except McusimError as exc:
        print(f"mcusim {_name(args)}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except (KeyboardInterrupt, Terminated) as exc:
        training = args.func in (cmd_train, cmd_vae_train)
        how = "terminated" if isinstance(exc, Terminated) else "interrupted"
        if training and (Path(args.out) / "results.json").is_file():
            what = f"{how} (finished epochs are saved; continue with --resume)"
        else:
            what = f"{how} (nothing was saved)" if training else how
        print(f"mcusim {_name(args)}: {what}", file=sys.stderr)
        return 143 if isinstance(exc, Terminated) else 130
    except BrokenPipeError:                    # output piped into `head`: stop quietly, as other tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


def _in_main_thread() -> bool:
    """Signal handlers can only be installed from the main thread (tests may call main() elsewhere)."""
    import threading
    return threading.current_thread() is threading.main_thread()


if __name__ == "__main__":
    sys.exit(main())
