"""Running fuzz cases and judging them. A case is an input class, a probe (the `mcusim` command line, or
a public API call), the files it reads and whether its input is garbage that must be refused. Each case
runs in a fresh sandbox folder: `inputs/` holds what it reads and must not change, `out/` is where it may
write. A case fails on a traceback, a signal death, a hang (over its time limit), exit 0 for garbage, an
exit code outside mcusim's set, an error without a message, a changed input, a temporary file left in
`out/`, or a probe-specific check (`check`, e.g. "loaded data equals the original").
"""
from __future__ import annotations

import hashlib
import json
import os
import select
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

WORKER = Path(__file__).with_name("fuzz_worker.py")
EXIT_CODES = {0, 2, 3, 4}          # ok, bad input, firmware fault, MCU/host mismatch (mcusim.errors, cli.py)


@dataclass
class Case:
    cls: str                                   # input class, e.g. "elf", "board", "cli-args"
    probe: str                                 # "cli" or a fuzz_worker.PROBES name
    args: list                                 # argv (cli) or the probe's arguments; paths relative to the sandbox
    files: dict[str, bytes] = field(default_factory=dict)      # written before the case; must not change
    out_files: dict[str, bytes] = field(default_factory=dict)  # written into out/ (e.g. a checkpoint to resume)
    garbage: bool = False                      # the input is invalid: the case must be refused
    check: Callable[[dict, Path], str | None] | None = None   # a further check of (reply, out/): a problem or None
    timeout: float = 120.0
    subprocess: bool = False                   # a real `python -m mcusim.cli` process instead of the worker
    note: str = ""                             # what was done to the input (for the failure report)

    def describe(self) -> str:
        return f"[{self.cls}] {self.note} :: {self.probe} {' '.join(map(str, self.args))}"


class Worker:
    """The fuzz_worker child: many cases in one process; killed on a hang, restarted after any death."""

    def __init__(self, env: dict):
        self.env, self.proc, self.buffer = env, None, b""
        self.log = open(Path(env["MCUSIM_FUZZ_ROOT"]) / "worker.log", "ab")

    def _start(self) -> None:
        self.proc = subprocess.Popen([sys.executable, str(WORKER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.log, env=self.env, cwd=self.env["MCUSIM_FUZZ_ROOT"])
        self.buffer = b""
        if self._line(120) != "ready":
            raise RuntimeError(f"the fuzz worker did not start; see {self.log.name}")

    def _line(self, timeout: float) -> str | None:
        """The next line from the worker, or None on a timeout or its death."""
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return None
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                return None
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return line.decode()

    def run(self, probe: str, args: list, cwd: Path, timeout: float) -> dict:
        if self.proc is None or self.proc.poll() is not None:
            self._start()
        self.proc.stdin.write((json.dumps({"probe": probe, "args": args, "cwd": str(cwd)}) + "\n").encode())
        self.proc.stdin.flush()
        line = self._line(timeout)
        if line is not None:
            return json.loads(line)
        if self.proc.poll() is None:                           # still running: a hang; its stack goes to the log
            self.log.write(f"--- hang in {probe} {args}\n".encode())
            self.log.flush()
            self.proc.send_signal(signal.SIGUSR1)
            time.sleep(2)
            self.stop()
            return {"hang": True}
        code = self.proc.wait()
        self.proc = None
        return {"died": code}

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def close(self) -> None:
        self.stop()
        self.log.close()


def run_subprocess(case: Case, cwd: Path, env: dict) -> dict:
    """A true per-case process, as a user starts it."""
    try:
        p = subprocess.run([sys.executable, "-m", "mcusim.cli", *map(str, case.args)], cwd=cwd, env=env,
                           capture_output=True, text=True, timeout=2 * case.timeout)   # + interpreter start-up
    except subprocess.TimeoutExpired:
        return {"hang": True}
    if p.returncode < 0:
        return {"died": p.returncode}
    tb = p.stderr if "Traceback (most recent call last)" in p.stderr else None
    return {"rc": p.returncode, "stdout": p.stdout[-2000:], "stderr": p.stderr[-4000:], "traceback": tb, "result": None}


def _snapshot(root: Path, skip: Path) -> dict[str, tuple]:
    """Every path under root except `skip`: its type, mode, and content digest or link target."""
    seen = {}
    for dirpath, dirnames, filenames in os.walk(root):
        if Path(dirpath) == skip:
            dirnames[:] = []
            continue
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            if p == skip:
                continue
            st = os.lstat(p)
            if stat.S_ISREG(st.st_mode):
                what = hashlib.sha1(p.read_bytes()).hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                what = os.readlink(p)
            else:
                what = ""
            seen[str(p.relative_to(root))] = (stat.S_IFMT(st.st_mode), st.st_mode & 0o7777, what)
    return seen


def judge(case: Case, reply: dict, before: dict, after: dict, out: Path) -> list[str]:
    problems = []
    if reply.get("hang"):
        return [f"hang (no answer within {case.timeout:g} s)"]
    if "died" in reply:
        code = reply["died"]
        return [f"the process died ({f'signal {signal.Signals(-code).name}' if code < 0 else f'exit {code}'})"]
    if reply["traceback"]:
        return ["traceback: " + " | ".join(reply["traceback"].strip().splitlines()[-3:])]
    rc = reply["rc"]
    if rc not in EXIT_CODES:
        problems.append(f"exit code {rc!r}")
    if rc == 0 and case.garbage:
        problems.append("exit 0 for garbage that must be refused")
    if rc and not reply["stderr"].strip():
        problems.append(f"exit {rc} without a message")
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    if changed:
        problems.append(f"files changed outside out/: {changed[:5]}")
    if out.is_dir():
        leftovers = [p.name for p in out.rglob("*.tmp")]
        if leftovers:
            problems.append(f"temporary files left in out/: {leftovers[:5]}")
    if not problems and case.check is not None:
        problem = case.check(reply, out)
        if problem:
            problems.append(problem)
    return problems


@dataclass
class Failure:
    case: Case
    problems: list[str]
    stderr: str

    def __str__(self) -> str:
        return f"{self.case.describe()}\n  " + "\n  ".join(self.problems) + f"\n  stderr: {self.stderr[-600:]}"


class Campaign:
    """Runs cases in sandboxes under one root, counting cases per class and keeping the failures."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        from mcusim.toolchain import cache_dir
        self.env = {**os.environ, "MCUSIM_FUZZ_ROOT": str(self.root), "MCUSIM_CACHE": str(cache_dir()),
                    "XDG_CACHE_HOME": str(self.root / "xdg-cache"), "MPLBACKEND": "Agg"}   # builds stay cached
        self.env.pop("MCUSIM_DATA", None)
        self.worker = Worker(self.env)
        self.cases: Counter = Counter()
        self.seconds: Counter = Counter()
        self.failures: list[Failure] = []
        self.started = time.monotonic()
        self._n = 0

    def run(self, case: Case) -> list[str]:
        self._n += 1
        box = self.root / f"case{self._n % 4}"
        shutil.rmtree(box, ignore_errors=True)
        (box / "inputs").mkdir(parents=True)
        out = box / "out"
        out.mkdir()
        for rel, data in case.files.items():
            (box / rel).parent.mkdir(parents=True, exist_ok=True)
            (box / rel).write_bytes(data)
        for rel, data in case.out_files.items():
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            (out / rel).write_bytes(data)
        before = _snapshot(box, out)
        started = time.monotonic()
        if case.subprocess:
            reply = run_subprocess(case, box, self.env)
        else:
            reply = self.worker.run(case.probe, case.args, box, case.timeout)
        problems = judge(case, reply, before, _snapshot(box, out), out)
        self.cases[case.cls] += 1
        self.seconds[case.cls] += time.monotonic() - started
        if problems:
            self.failures.append(Failure(case, problems, reply.get("stderr") or ""))
            with open(self.root / "failures.txt", "a") as log:
                log.write(f"{self.failures[-1]}\n{reply.get('traceback') or ''}\n\n")
        return problems

    def summary(self) -> str:
        total = sum(self.cases.values())
        per = ", ".join(f"{k} {v} in {self.seconds[k]:.0f} s" for k, v in sorted(self.cases.items()))
        return (f"fuzz: {total} cases ({per}), {len(self.failures)} failures, "
                f"{time.monotonic() - self.started:.0f} s wall")

    def close(self) -> None:
        self.worker.close()
