"""The fuzz suite (issue 11): damaged real files of every input class and hostile command-line values,
run through the public CLI or API, each under a time limit. A quick profile runs by default; the long
one (README, "Fuzzing") runs with `python -m pytest tests/fuzz -m fuzz_long -s`."""
from __future__ import annotations

import json
import math
import os
import random

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from fuzz_cases import (TRAIN_CHEAP, board_case, build_corpus, checkpoint_case, elf_case, idx_case, model_case,
                        npz_case, onnx_case)
from fuzz_harness import Campaign, Case

LONG = int(os.environ.get("MCUSIM_FUZZ_SCALE", "1"))   # the long profile's case counts are multiplied by this
# input class -> (generator, cases in the quick profile, cases in the long profile)
CLASSES = {
    "elf": (elf_case, 30, 2000),
    "model-toml": (model_case, 80, 2500),
    "model-onnx": (onnx_case, 40, 1500),
    "board": (board_case, 25, 1000),
    "dataset-idx": (idx_case, 40, 1000),
    "dataset-npz": (npz_case, 40, 1000),
    "checkpoint": (checkpoint_case, 30, 800),
}
SUBPROCESS_SHARE = 0.02           # of command-line cases, also run as a real process in the long profile


@pytest.fixture(scope="module")
def campaign(tmp_path_factory, request):
    c = Campaign(tmp_path_factory.mktemp("fuzz"))
    c.corpus = build_corpus(c.root, c)
    yield c
    c.close()
    reporter = request.config.pluginmanager.getplugin("terminalreporter")
    if reporter is not None:
        reporter.write_line("\n" + c.summary())


def _generate(name: str, rng: random.Random, corpus, serial: int) -> Case:
    generator = CLASSES[name][0]
    return generator(rng, corpus, serial) if name == "board" else generator(rng, corpus)


def _run_cases(campaign: Campaign, name: str, n: int, seed: int, subprocess_share: float) -> None:
    rng = random.Random(f"{name}-{seed}")
    failures = []
    for i in range(n):
        case = _generate(name, rng, campaign.corpus, i)
        case.subprocess = case.probe == "cli" and rng.random() < subprocess_share
        problems = campaign.run(case)
        if problems:
            failures.append(f"case {i} (seed {seed}): {campaign.failures[-1]}")
    assert not failures, f"{len(failures)} of {n} cases failed:\n" + "\n\n".join(failures[:8])


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_damaged_inputs_quick(campaign, name):
    _run_cases(campaign, name, CLASSES[name][1], seed=0, subprocess_share=0.0)


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_damaged_inputs_as_real_processes(campaign, name):
    """A few cases of every class as the user runs them: one `python -m mcusim.cli` process each."""
    rng = random.Random(f"{name}-process")
    for i in range(2):
        case = _generate(name, rng, campaign.corpus, 10_000 + i)
        if case.probe != "cli":
            continue
        case.subprocess = True
        assert not campaign.run(case), str(campaign.failures[-1])


@pytest.mark.fuzz_long
@pytest.mark.parametrize("name", sorted(CLASSES))
def test_damaged_inputs_long(campaign, name):
    _run_cases(campaign, name, CLASSES[name][2] * LONG, seed=1, subprocess_share=SUBPROCESS_SHARE)


# -- hostile command-line values (property-based) ----------------------------------------------------
SPECIAL = ["0", "-0", "-1", "1", "nan", "NaN", "inf", "-inf", "1e39", "1e-45", "2147483647", "2147483648",
           "4294967295", "4294967296", "-2147483649", "99999999999999999999", "0x7fffffff", "0x-1", "1_0",
           "", " ", "1,2", "--", "-h", "1.5", "٣", "\u00a0"]
VALUES = st.one_of(st.sampled_from(SPECIAL), st.integers(-2**70, 2**70).map(str),
                   st.floats(allow_nan=True, allow_infinity=True).map(repr),
                   st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), max_size=8))
QUICK = settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None,
                 derandomize=True)                           # the same cases on every CI run
LONG_SETTINGS = settings(max_examples=400 * LONG, deadline=None, suppress_health_check=list(HealthCheck),
                         database=None)


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _integer(text: str) -> int | None:
    try:
        return int(text, 0)
    except ValueError:
        return None


def _cli_value_case(campaign, argv, garbage, check=None):
    case = Case("cli-args", "cli", argv, files={"inputs/fw.elf": campaign.corpus.elf}, garbage=garbage, check=check,
                timeout=300)
    problems = campaign.run(case)
    assert not problems, str(campaign.failures[-1])


def _run_values(campaign, a, b, clock, budget):
    argv = ["run", "inputs/fw.elf", "--call", "add_int", "--arg", a, "--arg", b, "--json"]
    argv += ["--hclk-mhz", clock] if clock is not None else []
    argv += ["--max-cycles", budget] if budget is not None else []
    ints = [_integer(a), _integer(b)]
    mhz = 120.0 if clock is None else _number(clock)
    cycles = 10**8 if budget is None else _int(budget)
    valid = (all(v is not None and -2**31 <= v < 2**32 for v in ints) and mhz is not None and 0 < mhz <= 120
             and cycles is not None and 1 <= cycles < 2**62)

    def right_answer(reply, out):
        """Exit 0 means the sum is right, at the clock asked for."""
        if reply["rc"] != 0:
            return None if reply["rc"] in (2, 3) else f"exit {reply['rc']}"
        if not valid:
            return "exit 0 for values that must be refused"
        r = json.loads(reply["stdout"])
        if r["return_value"] % 2**32 != (ints[0] + ints[1]) % 2**32 or r["hclk_hz"] != mhz * 1e6:
            return f"a wrong answer: {r['return_value']} at {r['hclk_hz']} Hz"
    _cli_value_case(campaign, argv, garbage=not valid, check=right_answer)


VALUE_OR_NONE = st.one_of(st.none(), VALUES)


@QUICK
@given(a=VALUES, b=st.sampled_from(["1", "-1", "0x10"]), clock=VALUE_OR_NONE, budget=VALUE_OR_NONE)
def test_hostile_run_values_quick(campaign, a, b, clock, budget):
    _run_values(campaign, a, b, clock, budget)


@pytest.mark.fuzz_long
@LONG_SETTINGS
@given(a=VALUES, b=VALUES, clock=VALUE_OR_NONE, budget=VALUE_OR_NONE)
def test_hostile_run_values_long(campaign, a, b, clock, budget):
    _run_values(campaign, a, b, clock, budget)


# train options: which values are valid (the rest must be refused); argparse reads integers with int()
def _int(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


def _in(lo, hi, parse=_int):
    return lambda t: (lambda v: v is not None and lo <= v <= hi)(parse(t))


TRAIN_OPTIONS = {
    "--lr": lambda t: (lambda v: v is not None and 0 < v < math.inf)(_number(t)),
    "--hclk-mhz": lambda t: (lambda v: v is not None and 0 < v <= 120)(_number(t)),
    "--epochs": _in(1, 1),
    "--batch": _in(1, 40),
    "--train-limit": _in(1, math.inf),                       # more than the set: all of it
    "--crosscheck-samples": _in(1, 20),
    "--seed": _in(0, 2**32 - 1),
}


def _train_values(campaign, option, value):
    if option == "--epochs":
        assume((_int(value) or 0) <= 1)                     # valid, but too long to run here
    argv = ["train", "cnn_digits", *TRAIN_CHEAP, option, value, "--out", "out/run"]
    _cli_value_case(campaign, argv, garbage=not TRAIN_OPTIONS[option](value))


@QUICK
@given(option=st.sampled_from(sorted(TRAIN_OPTIONS)), value=VALUES)
def test_hostile_train_values_quick(campaign, option, value):
    _train_values(campaign, option, value)


@pytest.mark.fuzz_long
@LONG_SETTINGS
@given(option=st.sampled_from(sorted(TRAIN_OPTIONS)), value=VALUES)
def test_hostile_train_values_long(campaign, option, value):
    _train_values(campaign, option, value)
