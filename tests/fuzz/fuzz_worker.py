"""The fuzz worker: a long-lived child process that runs many fuzz cases in-process (starting Python and
importing mcusim costs 1-2 s, a case often a few ms). It reads one JSON request per line on stdin and
answers one JSON line on a private copy of stdout; whatever the case prints goes to buffers. An
exception escaping the case is a traceback a user would see. A case that kills or hangs this process is
caught by the parent (fuzz_harness.Worker), which restarts it.
"""
from __future__ import annotations

import contextlib
import faulthandler
import hashlib
import io
import json
import os
import signal
import sys
import traceback


def _cli(argv):
    from mcusim.cli import main
    try:
        return main(argv), None
    except SystemExit as exc:                       # argparse: usage errors exit 2
        return (exc.code if isinstance(exc.code, int) else 2), None


def digest(*arrays) -> str:
    """What a loaded data set holds, to compare with the original."""
    h = hashlib.sha1()
    for a in arrays:
        h.update(repr((a.shape, str(a.dtype))).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _model(path, precision):
    """Read a model file and build its training step (the program of kernel calls and memory plan)."""
    from mcusim.graph import load_model
    from mcusim.tasks import build
    program = build(load_model(path), precision)
    return 0, {"tensors": len(program.tensors)}


def _idx(folder, spec):
    """Load one split of a small IDX data set described by `spec` (the DatasetSpec API)."""
    from mcusim import datasets
    files = {split: tuple(datasets.IdxFile(*f) for f in pair) for split, pair in spec["splits"].items()}
    ds = datasets.DatasetSpec(name=spec["name"], title=spec["title"], classes=tuple(spec["classes"]),
                              mirrors=(), splits=files)
    datasets._verified.clear()
    images, labels = datasets.load(spec["name"], "train", folder, spec=ds)
    return 0, {"digest": digest(images, labels)}


def _npz(path):
    from mcusim.datasets import load_dataset
    d = load_dataset(path)
    parts = [a for a in (d.train_x, d.train_y, d.test_x, d.test_y) if a is not None]
    return 0, {"digest": digest(*parts)}


PROBES = {"cli": _cli, "model": _model, "idx": _idx, "npz": _npz}


def serve() -> None:
    faulthandler.register(signal.SIGUSR1, file=sys.stderr)   # the parent asks for the stack of a hang
    channel = os.fdopen(os.dup(1), "w")
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)                             # native code printing cannot corrupt the channel
    import mcusim.cli  # noqa: F401  (import once, before the first case's clock starts)
    channel.write("ready\n")
    channel.flush()
    for line in sys.stdin:
        request = json.loads(line)
        os.chdir(request["cwd"])
        out, err = io.StringIO(), io.StringIO()
        reply = {"rc": None, "result": None, "traceback": None}
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                args = [request["args"]] if request["probe"] == "cli" else request["args"]   # cli: one argv
                reply["rc"], reply["result"] = PROBES[request["probe"]](*args)
            except Exception as exc:
                from mcusim.errors import McusimError
                if request["probe"] != "cli" and isinstance(exc, McusimError):
                    reply["rc"] = exc.exit_code             # an API refusal: the message is the error
                    err.write(f"{type(exc).__name__}: {exc}")
                else:
                    reply["traceback"] = traceback.format_exc()
        reply["stdout"], reply["stderr"] = out.getvalue()[-2000:], err.getvalue()[-4000:]
        channel.write(json.dumps(reply) + "\n")
        channel.flush()


if __name__ == "__main__":
    serve()
