"""Fuzz cases per input class: real files (the corpus) damaged byte by byte or field by field, each run
through the public command line or API. Every generator takes a seeded random.Random, so a failing case
is reproduced from its seed and index."""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import random
import re
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fuzz_harness import Case
from fuzz_worker import digest

REPO = Path(__file__).resolve().parents[2]
INTERESTING_INTS = [0, 1, -1, 2, 3, 7, 255, 256, 65535, 2**31 - 1, 2**31, -2**31, 2**32, 2**63, -2**63, 10**20]
INTERESTING_TEXT = ["0", "-1", "-0", "inf", "-inf", "nan", "1e308", "1e-320", "2147483648", "4294967296",
                    "99999999999999999999", "0.5", '""', '"x"', "true", "[]", "{}", "[[[[[[[[[[1]]]]]]]]]]"]
TRAIN_CHEAP = ["--precision", "fp32", "--epochs", "1", "--batch", "20", "--train-limit", "40",
               "--crosscheck-samples", "1", "--quiet"]


# -- byte-level and text-level damage ---------------------------------------------------------------
def damage_bytes(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    """One to three random byte-level edits: bit flips, special bytes or words, cuts, insertions."""
    b = bytearray(data)
    notes = []
    for _ in range(rng.randint(1, 3)):
        if not b:
            break
        i = rng.randrange(len(b))
        op = rng.choice(["flip", "byte", "word", "truncate", "insert", "delete", "duplicate", "zero"])
        if op == "flip":
            b[i] ^= 1 << rng.randrange(8)
        elif op == "byte":
            b[i] = rng.choice([0, 0xFF, 0x7F, 0x80, 0x01])
        elif op == "word" and i + 4 <= len(b):
            b[i:i + 4] = struct.pack("<I", rng.choice([0, 0xFFFFFFFF, 0x7FFFFFFF, 0x80000000, 0x10000, 0xFFFF]))
        elif op == "truncate":
            del b[i:]
        elif op == "insert":
            b[i:i] = rng.randbytes(rng.choice([1, 4, 64]))
        elif op == "delete":
            del b[i:i + rng.choice([1, 4, 64])]
        elif op == "duplicate":
            b[i:i] = b[i:i + rng.choice([4, 64, 512])]
        elif op == "zero":
            n = rng.choice([4, 64, 1024])
            b[i:i + n] = bytes(len(b[i:i + n]))
        notes.append(f"{op}@{i}")
    return bytes(b), " ".join(notes)


def damage_text(text: str, rng: random.Random) -> tuple[bytes, str]:
    """A field-level edit of a TOML file (a value, a line, a key), or a byte-level one."""
    lines = text.splitlines()
    op = rng.choice(["number", "number", "value", "line-delete", "line-duplicate", "key", "nesting", "non-utf8",
                     "bytes"])
    numbers = [m for m in re.finditer(r"(?<![\w.])-?\d[\w.]*", text)]
    if op == "number" and numbers:
        m = rng.choice(numbers)
        new = str(rng.choice(INTERESTING_INTS + INTERESTING_TEXT))
        return (text[:m.start()] + new + text[m.end():]).encode(), f"number {m.group()}->{new}"
    values = [m for m in re.finditer(r"= *(.+)$", text, re.M)]
    if op == "value" and values:
        m = rng.choice(values)
        new = rng.choice(INTERESTING_TEXT + ['"relu"', '"conv2d"', '["input"]', '"../../etc/passwd"'])
        return (text[:m.start(1)] + new + text[m.end(1):]).encode(), f"value {m.group(1)[:20]}->{new}"
    if op in ("line-delete", "line-duplicate") and lines:
        i = rng.randrange(len(lines))
        lines[i:i + 1] = [] if op == "line-delete" else [lines[i], lines[i]]
        return "\n".join(lines).encode(), f"{op} {i}"
    keys = [m for m in re.finditer(r"^(\s*)(\w+)(\s*=)", text, re.M)]
    if op == "key" and keys:
        m = rng.choice(keys)
        return (text[:m.start(2)] + m.group(2) + "x" + text[m.end(2):]).encode(), f"key {m.group(2)}"
    if op == "nesting":
        depth = rng.choice([50, 1000, 100000])
        return (text + f"\ndeep = {'[' * depth}{']' * depth}\n").encode(), f"nesting {depth}"
    if op == "non-utf8":
        i = rng.randrange(len(text) + 1)
        return text[:i].encode() + b"\xff\xfe\xc3" + text[i:].encode(), f"non-utf8@{i}"
    return damage_bytes(text.encode(), rng)


# -- the corpus: one real file of every class ---------------------------------------------------------
@dataclass
class Corpus:
    elf: bytes
    models: dict[str, str]
    onnx: bytes
    board: str
    idx: dict                  # file name -> gz bytes, and the spec
    idx_spec: dict
    idx_digest: str
    npz: bytes
    checkpoint: bytes
    results: bytes


def _idx_set(rng: np.random.Generator) -> tuple[dict, dict]:
    """A small IDX training split (20 28x28 images, labels 0..9) with its checksums, as a DatasetSpec."""
    images = rng.integers(0, 256, (20, 28, 28), dtype=np.uint8)
    labels = np.arange(20, dtype=np.uint8) % 10
    raws = {"train-images-idx3-ubyte.gz": struct.pack(">IIII", 2051, 20, 28, 28) + images.tobytes(),
            "train-labels-idx1-ubyte.gz": struct.pack(">II", 2049, 20) + labels.tobytes()}
    files = {name: gzip.compress(raw, mtime=0) for name, raw in raws.items()}
    entry = lambda name, kind: [name, kind, 20, hashlib.md5(files[name]).hexdigest(),   # noqa: E731
                                hashlib.md5(raws[name]).hexdigest()]
    pair = [entry("train-images-idx3-ubyte.gz", "images"), entry("train-labels-idx1-ubyte.gz", "labels")]
    spec = {"name": "tiny", "title": "Tiny", "classes": [str(d) for d in range(10)],
            "splits": {"train": pair, "test": pair}}
    return files, spec


def _npz_bytes(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def build_corpus(root: Path, campaign) -> Corpus:
    """Real inputs: the test firmware, the model files, the board, a small IDX set and .npz, and a
    checkpoint from a real (tiny) training run made through the worker."""
    from mcusim.toolchain import build
    elf = build([REPO / "tests" / "firmware" / "basics.c"], opt="-O2").read_bytes()
    models = {p.name: p.read_text() for p in sorted((REPO / "models").glob("*.toml"))}
    idx, spec = _idx_set(np.random.default_rng(0))
    with np.load(REPO / "mcusim" / "data" / "digits.npz") as d:
        small = {"x": d["x"][:60], "y": d["y"][:60], "x_test": d["x_test"][:20], "y_test": d["y_test"][:20]}
    run = root / "corpus-run"
    if not (run / "checkpoint.npz").is_file():
        reply = campaign.worker.run("cli", ["train", "cnn_digits", *TRAIN_CHEAP, "--out", str(run)], root, 600)
        assert reply.get("rc") == 0, reply
    images = np.frombuffer(gzip.decompress(idx["train-images-idx3-ubyte.gz"]), np.uint8, offset=16).reshape(20, 28, 28)
    labels = np.frombuffer(gzip.decompress(idx["train-labels-idx1-ubyte.gz"]), np.uint8, offset=8)
    return Corpus(elf=elf, models=models, onnx=(REPO / "models" / "ds_cnn.onnx").read_bytes(),
                  board=(REPO / "mcusim" / "boards" / "stm32l4r5zi.toml").read_text(), idx=idx, idx_spec=spec,
                  idx_digest=digest(images, labels), npz=_npz_bytes(**small),
                  checkpoint=(run / "checkpoint.npz").read_bytes(), results=(run / "results.json").read_bytes())


# -- the generators ----------------------------------------------------------------------------------
def _garbage(rng: random.Random) -> tuple[bytes, str]:
    kind = rng.choice(["empty", "random", "text"])
    if kind == "empty":
        return b"", "empty file"
    if kind == "random":
        return rng.randbytes(rng.choice([1, 100, 5000])), "random bytes"
    return "ceci n'est pas un fichier\n".encode() * rng.randint(1, 50), "plain text"


def _damaged(data: bytes, rng: random.Random) -> tuple[bytes, str, bool]:
    """Mostly damaged copies of a real file, sometimes pure garbage (which must be refused)."""
    if rng.random() < 0.1:
        return (*_garbage(rng), True)
    return (*damage_bytes(data, rng), False)


def elf_case(rng: random.Random, corpus: Corpus) -> Case:
    data, note, garbage = _damaged(corpus.elf, rng)
    argv = rng.choice([["run", "inputs/fw.elf", "--call", "add_int", "--arg", "3", "--arg", "4", "--json"],
                       ["run", "inputs/fw.elf", "--call", "affine", "--arg", "1.5", "--arg", "2", "--arg", "3"],
                       ["run", "inputs/fw.elf", "--call", "work", "--arg", "50"],
                       ["size", "inputs/fw.elf"],
                       ["profile", "inputs/fw.elf", "--call", "time_work", "--arg", "20"]])
    if argv[0] != "size":
        argv += ["--max-cycles", "20000000"]
    return Case("elf", "cli", argv, files={"inputs/fw.elf": data}, garbage=garbage, note=note)


def model_case(rng: random.Random, corpus: Corpus) -> Case:
    name = rng.choice(sorted(corpus.models))
    if rng.random() < 0.05:
        data, note, garbage = (*_garbage(rng), True)
    else:
        (data, note), garbage = damage_text(corpus.models[name], rng), False
    precision = rng.choice(["fp32", "u8"])
    return Case("model-toml", "model", ["inputs/model.toml", precision], files={"inputs/model.toml": data},
                garbage=garbage, note=f"{name}: {note}")


def _onnx_field_damage(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    """An ONNX model with one attribute, initializer shape or tensor dimension set to a hostile value."""
    import onnx
    model = onnx.load_from_string(data)
    g = model.graph
    value = rng.choice([0, -1, -5, 1, 3, 1000, 2**31, 2**40])
    choice = rng.choice(["attribute", "initializer", "dim", "op_type", "input"])
    if choice == "attribute":
        attrs = [(n, a) for n in g.node for a in n.attribute if a.type in (onnx.AttributeProto.INT, onnx.AttributeProto.INTS)]
        if attrs:
            node, a = rng.choice(attrs)
            if a.type == onnx.AttributeProto.INT:
                a.i = value
            elif a.ints:
                a.ints[rng.randrange(len(a.ints))] = value
            return model.SerializeToString(), f"{node.name}.{a.name} = {value}"
    if choice == "initializer" and g.initializer:
        t = rng.choice(list(g.initializer))
        if t.dims:
            t.dims[rng.randrange(len(t.dims))] = value
        return model.SerializeToString(), f"initializer {t.name} dims {list(t.dims)}"
    if choice == "dim":
        vi = rng.choice(list(g.input) + list(g.output))
        dims = vi.type.tensor_type.shape.dim
        if dims:
            dims[rng.randrange(len(dims))].dim_value = max(value, 0)
        return model.SerializeToString(), f"{vi.name} dim {max(value, 0)}"
    if choice == "op_type":
        node = rng.choice(list(g.node))
        node.op_type = rng.choice(["Conv", "Gemm", "Relu", "Add", "MaxPool", "Reshape", "Softmax", "LSTM", ""])
        return model.SerializeToString(), f"{node.name} op_type {node.op_type}"
    node = rng.choice(list(g.node))
    if node.input:
        node.input[rng.randrange(len(node.input))] = rng.choice(["", "missing", node.output[0]])
    return model.SerializeToString(), f"{node.name} inputs {list(node.input)}"


def onnx_case(rng: random.Random, corpus: Corpus) -> Case:
    if rng.random() < 0.5:
        data, note, garbage = _damaged(corpus.onnx, rng)
    else:
        (data, note), garbage = _onnx_field_damage(corpus.onnx, rng), False
    if rng.random() < 0.7:
        return Case("model-onnx", "cli", ["import", "inputs/m.onnx", "-o", "out/m.toml"],
                    files={"inputs/m.onnx": data}, garbage=garbage, note=note)
    return Case("model-onnx", "model", ["inputs/m.onnx", rng.choice(["fp32", "u8"])], files={"inputs/m.onnx": data},
                garbage=garbage, note=note)


def board_case(rng: random.Random, corpus: Corpus, serial: int) -> Case:
    if rng.random() < 0.05:
        data, note, garbage = (*_garbage(rng), True)
    else:
        (data, note), garbage = damage_text(corpus.board, rng), False
    board = f"inputs/board{serial}.toml"          # a new path per case: boards are cached by path in-process
    argv = rng.choice([["run", "inputs/fw.elf", "--call", "add_int", "--arg", "3", "--arg", "4",
                        "--max-cycles", "20000000"],
                       ["run", "inputs/fw.elf", "--call", "work", "--arg", "30", "--max-cycles", "20000000"],
                       ["size", "inputs/fw.elf"]])
    return Case("board", "cli", argv + ["--board", board], files={board: data, "inputs/fw.elf": corpus.elf},
                garbage=garbage, note=note)


def _idx_payload_damage(gz: bytes, rng: random.Random) -> tuple[bytes, str]:
    raw = bytearray(gzip.decompress(gz))
    op = rng.choice(["header", "label", "cut", "extend", "bomb"])
    if op == "header":
        at = rng.choice([0, 4, 8, 12])
        if at < len(raw) - 3:
            raw[at:at + 4] = struct.pack(">I", rng.choice([0, 1, 2049, 2051, 28, 2**31, 2**32 - 1]))
    elif op == "label":
        raw[rng.randrange(8, len(raw))] = rng.choice([10, 255, 9])
    elif op == "cut":
        del raw[rng.randrange(len(raw)):]
    elif op == "extend":
        raw += bytes(rng.choice([1, 784, 10**6]))
    else:
        return gzip.compress(bytes(raw) + bytes(rng.choice([10**7, 5 * 10**7])), compresslevel=1), "gzip bomb"
    return gzip.compress(bytes(raw), mtime=0), f"payload {op}"


def idx_case(rng: random.Random, corpus: Corpus) -> Case:
    files = {f"inputs/idx/{n}": b for n, b in corpus.idx.items()}
    target = rng.choice(sorted(files))
    if rng.random() < 0.5:
        files[target], note, _ = _damaged(files[target], rng)
    else:
        files[target], note = _idx_payload_damage(files[target], rng)
    expected = corpus.idx_digest

    def same_data(reply, out):
        if reply["rc"] == 0 and reply["result"]["digest"] != expected:
            return "a damaged IDX file was accepted and gave different data (a silent wrong answer)"
    return Case("dataset-idx", "idx", ["inputs/idx", corpus.idx_spec], files=files, check=same_data,
                note=f"{Path(target).name}: {note}")


def _npz_field_damage(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    with np.load(io.BytesIO(data)) as d:
        arrays = {k: d[k] for k in d.files}
    key = rng.choice(sorted(arrays))
    a = arrays[key]
    op = rng.choice(["dtype", "shape", "nan", "negative", "huge-label", "drop", "empty", "object", "extra"])
    if op == "dtype":
        arrays[key] = a.astype(rng.choice([np.float32, np.float64, np.int64, np.int8, np.bool_, np.complex64]))
    elif op == "shape":
        arrays[key] = a.reshape(-1) if a.ndim > 1 else a.reshape(-1, 1)
    elif op == "nan":
        arrays[key] = np.full(a.shape, np.nan, np.float32)
    elif op == "negative":
        arrays[key] = a.astype(np.int64) - 300
    elif op == "huge-label":
        arrays[key] = np.full(a.shape, 2**40, np.int64)
    elif op == "drop":
        del arrays[key]
    elif op == "empty":
        arrays[key] = a[:0]
    elif op == "object":
        arrays[key] = np.array([{"pickle": 1}] * 3, dtype=object)
    else:
        arrays["extra"] = np.zeros(3)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue(), f"{key}: {op}"


def npz_case(rng: random.Random, corpus: Corpus) -> Case:
    if rng.random() < 0.5:
        data, note, garbage = _damaged(corpus.npz, rng)
    else:
        (data, note), garbage = _npz_field_damage(corpus.npz, rng), False
    if rng.random() < 0.03:      # now and then the whole way: training on it (a few seconds)
        return Case("dataset-npz", "cli", ["train", "cnn_digits", "--dataset", "inputs/d.npz", *TRAIN_CHEAP,
                                           "--out", "out/run"], files={"inputs/d.npz": data}, garbage=garbage,
                    note=note, timeout=300)
    return Case("dataset-npz", "npz", ["inputs/d.npz"], files={"inputs/d.npz": data}, garbage=garbage, note=note)


def _checkpoint_field_damage(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    with np.load(io.BytesIO(data)) as d:
        arrays = {k: d[k] for k in d.files}
    key = rng.choice(sorted(arrays))
    op = rng.choice(["drop", "truncate", "dtype", "json", "nan"])
    if op == "drop":
        del arrays[key]
    elif op == "truncate":
        arrays[key] = arrays[key][: len(arrays[key]) // 2]
    elif op == "dtype":
        arrays[key] = arrays[key].astype(np.float64)
    elif op == "json" and key in ("results", "layout"):
        text = bytes(arrays[key]).decode()
        text = rng.choice([text[: len(text) // 2], text.replace('"epochs"', '"epoch"'), "null", "[]",
                           text.replace("[", "{", 1), '{"config": 5, "epochs": 7}'])
        arrays[key] = np.frombuffer(text.encode(), np.uint8)
    else:
        arrays[key] = np.full(arrays[key].shape, np.nan, np.float32).view(np.uint8)[: arrays[key].nbytes]
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue(), f"{key}: {op}"


def checkpoint_case(rng: random.Random, corpus: Corpus) -> Case:
    """A finished run's folder with a damaged checkpoint (or results.json), resumed."""
    results = corpus.results
    r = rng.random()
    if r < 0.4:
        data, note, garbage = _damaged(corpus.checkpoint, rng)
    elif r < 0.8:
        (data, note), garbage = _checkpoint_field_damage(corpus.checkpoint, rng), False
    else:
        data, garbage = corpus.checkpoint, False
        results, note = damage_bytes(corpus.results, rng)
        note = f"results.json {note}"

    def results_readable(reply, out):
        if reply["rc"] != 0:
            return None
        try:
            json.loads((out / "run" / "results.json").read_text())["epochs"]
        except Exception as exc:      # noqa: BLE001  any failure is the finding
            return f"resumed with exit 0 but results.json is unusable ({exc!r})"
    return Case("checkpoint", "cli", ["train", "cnn_digits", *TRAIN_CHEAP, "--resume", "--out", "out/run"],
                out_files={"run/checkpoint.npz": data, "run/results.json": results}, garbage=garbage,
                check=results_readable, note=note, timeout=300)
