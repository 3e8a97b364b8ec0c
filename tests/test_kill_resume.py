"""Kill -9 at any point of a training run, then --resume: results.json equals an uninterrupted run's
(timing fields aside). The kill points are exact: a child process arms a SIGKILL at the Nth output write
(before it, or with the temporary file written and not yet renamed) or at the Nth training batch."""
import json
import signal
import subprocess
import sys
import time

import pytest

TRAIN = ["train", "cnn_digits", "--precision", "fp32", "--epochs", "2", "--batch", "20", "--train-limit", "60",
         "--crosscheck-samples", "2", "--quiet"]
TIMING = ("seconds", "wall_seconds", "samples_per_second")
# Runs `mcusim` with a SIGKILL armed: MCUSIM_KILL_AT = "write:N" (before the Nth atomic write: write 1 of
# an epoch is checkpoint.npz, write 2 results.json, then the plots), "torn:N" (the Nth write's temporary
# file is on disk, the rename never happens) or "batch:N" (before the Nth host training batch).
ARMED = """
import os, signal, sys
from mcusim import outputs, runtime, train
kind, n = os.environ["MCUSIM_KILL_AT"].split(":")
count = {"write": 0, "batch": 0}
def die():
    os.kill(os.getpid(), signal.SIGKILL)
real_write, real_batch = outputs.write_atomic, runtime.HostStep.run_batch
def write(target, data, overwrite=True):
    count["write"] += 1
    if kind == "write" and count["write"] == int(n):
        die()
    if kind == "torn" and count["write"] == int(n):
        (target.parent / f".{target.name}.killed.tmp").write_bytes(data[: len(data) // 2])
        die()
    return real_write(target, data, overwrite)
def run_batch(self, phase, *args, **kw):
    count["batch"] += phase == "sample"
    if kind == "batch" and count["batch"] == int(n):
        die()
    return real_batch(self, phase, *args, **kw)
outputs.write_atomic = train.write_atomic = write
import mcusim.plots as plots
plots.write_atomic = write
runtime.HostStep.run_batch = run_batch
from mcusim.cli import main
sys.exit(main(sys.argv[1:]))
"""


def mcusim(out, *extra, kill_at=None):
    env = None
    if kill_at:
        import os
        env = {**os.environ, "MCUSIM_KILL_AT": kill_at}
    cmd = [sys.executable, "-c", ARMED] if kill_at else [sys.executable, "-m", "mcusim.cli"]
    return subprocess.run([*cmd, *TRAIN, *extra, "--out", str(out)], capture_output=True, text=True, env=env,
                          timeout=600)


def without_timing(results: dict) -> dict:
    results = {k: v for k, v in results.items() if k not in TIMING}
    results["epochs"] = [{k: v for k, v in e.items() if k not in TIMING} for e in results["epochs"]]
    return results


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "run"
    proc = mcusim(out)
    assert proc.returncode == 0, proc.stderr
    return without_timing(json.loads((out / "results.json").read_text()))


@pytest.mark.parametrize("kill_at", [
    "batch:2",     # inside epoch 1, before anything was saved
    "write:2",     # epoch 1's checkpoint written, its results.json not
    "torn:3",      # epoch 1's results saved, its first plot half written into its temporary file
    "batch:5",     # inside epoch 2
    "write:6",     # epoch 2's checkpoint written (the last epoch), results.json not
])
def test_kill_9_then_resume_gives_the_uninterrupted_results(tmp_path, reference, kill_at):
    out = tmp_path / "run"
    killed = mcusim(out, kill_at=kill_at)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    resumed = mcusim(out, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert without_timing(json.loads((out / "results.json").read_text())) == reference
    assert not list(out.glob(".*.tmp"))


def test_a_second_run_on_the_same_out_is_refused_while_the_first_runs(tmp_path):
    out = tmp_path / "run"
    first = subprocess.Popen([sys.executable, "-m", "mcusim.cli", *TRAIN, "--epochs", "500", "--out", str(out)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while not (out / "results.json").exists() and time.time() < deadline and first.poll() is None:
            time.sleep(0.2)
        assert first.poll() is None, first.stderr.read()
        second = mcusim(out, "--resume")
        assert second.returncode == 2 and "another mcusim run is writing into" in second.stderr
        assert "Traceback" not in second.stderr
    finally:
        first.kill()
        first.wait()
    from mcusim.train import ModelTrainConfig, Trainer     # the lock died with the killed run
    Trainer(ModelTrainConfig(model="cnn_digits", precision="fp32", epochs=500, batch_size=20, train_limit=60,
                             crosscheck_samples=2), out, resume=True, progress=False, log=lambda m: None)
