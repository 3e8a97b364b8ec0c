#!/usr/bin/env python3
"""Regenerate mcusim/data/fashion_mnist_subset.npz, the Fashion-MNIST subset shipped with mcusim.

Selection: for every class, the images are ranked by SHA-256 of
"<seed>:<split>:<index>" and the first TRAIN_PER_CLASS (training set) or
TEST_PER_CLASS (t10k set) are kept; the kept indices are then sorted, so the
subset keeps the original order of the data set.  Hash ranking depends on
nothing but the seed and the labels (no random-number-generator version), so
the same full data set always gives the same subset.

Usage:
    python tools/make_embedded_subset.py [--data-dir DIR] [--out FILE]

The full Fashion-MNIST is found like mcusim finds it (--data-dir, MCUSIM_DATA,
the user cache, /usr/share/datasets/fashion-mnist) and fully verified (MD5
included) before anything is written.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from mcusim import datasets  # noqa: E402

SEED = "mcusim-fashion-mnist-subset-v1"
TRAIN_PER_CLASS = 300
TEST_PER_CLASS = 100
DEFAULT_OUT = REPO / "mcusim" / "data" / datasets.EMBEDDED_FILE


def select(labels: np.ndarray, per_class: int, split: str, seed: str = SEED) -> np.ndarray:
    """Indices (sorted, uint16) of ``per_class`` images of every class."""
    chosen = []
    for cls in range(int(labels.max()) + 1):
        members = np.flatnonzero(labels == cls)
        if len(members) < per_class:
            raise SystemExit(f"class {cls} has only {len(members)} {split} images")
        rank = sorted(members, key=lambda i: hashlib.sha256(
            f"{seed}:{split}:{int(i)}".encode()).digest())
        chosen.extend(int(i) for i in rank[:per_class])
    return np.array(sorted(chosen), dtype=np.uint16)


def build(data_dir: str | None) -> dict[str, np.ndarray]:
    arrays = {}
    for split, per_class in (("train", TRAIN_PER_CLASS), ("test", TEST_PER_CLASS)):
        images, labels = datasets.load("fashion-mnist", split, data_dir)
        index = select(labels, per_class, split)
        arrays[f"{split}_images"] = images[index]
        arrays[f"{split}_labels"] = labels[index]
        arrays[f"{split}_index"] = index
    return arrays


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", help="folder with the full Fashion-MNIST IDX files")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help=f"output file (default: {DEFAULT_OUT.relative_to(REPO)})")
    args = parser.parse_args(argv)
    try:
        arrays = build(args.data_dir)
    except datasets.DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".subset-", suffix=".npz", dir=args.out.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            np.savez_compressed(out, **arrays)
        os.chmod(tmp, 0o644)
        os.replace(tmp, args.out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    for split in ("train", "test"):
        counts = np.bincount(arrays[f"{split}_labels"], minlength=10)
        print(f"{split}: {len(arrays[f'{split}_labels'])} images, per class {counts.tolist()}")
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
