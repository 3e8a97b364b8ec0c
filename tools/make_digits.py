#!/usr/bin/env python3
"""Regenerate mcusim/data/digits.npz, the 8x8 handwritten digits shipped with mcusim.

Source: scikit-learn's copy of the test set of the UCI "Optical Recognition of
Handwritten Digits" data (``sklearn.datasets.load_digits``: 1797 images of 8x8
block counts 0..16, classes 0..9).  scikit-learn is needed only to run this
script, not by mcusim: install it for the run, e.g. in a throw-away venv
(``python -m venv --system-site-packages V && V/bin/pip install scikit-learn``).

Each count v becomes the uint8 pixel round(v * 255 / 16) (exact: 8 -> 128), so
the images use the 0..255 range the training step expects.  The split is
stratified: mcusim.datasets.holdout_split puts TEST_FRACTION of every class,
chosen with SEED, into the test set.  The file is in the user .npz format that
``mcusim.datasets.load_dataset`` reads (x, y, x_test, y_test), plus
train_index / test_index: each image's position in load_digits' order.

Usage:
    python tools/make_digits.py [--out FILE]
"""

from __future__ import annotations

import argparse
import os
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from mcusim import datasets  # noqa: E402

TEST_FRACTION = Fraction(1, 5)
SEED = 2024
DEFAULT_OUT = REPO / "mcusim" / "data" / datasets.DIGITS_FILE


def to_pixels(counts: np.ndarray) -> np.ndarray:
    """Block counts 0..16 (any numeric dtype) -> uint8 round(v * 255 / 16)."""
    if not (np.array_equal(counts, np.round(counts)) and 0 <= counts.min()
            and counts.max() <= 16):
        raise SystemExit("load_digits returned values outside the whole numbers 0..16")
    return np.rint(np.asarray(counts, np.float64) * 255 / 16).astype(np.uint8)


def build(counts: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
    """The arrays of digits.npz from load_digits' (N, 64) counts and (N,) labels."""
    images = to_pixels(counts).reshape(len(counts), 1, 8, 8)
    labels = labels.astype(np.uint8)
    train, test = datasets.holdout_split(len(labels), labels, TEST_FRACTION, SEED)
    return {"x": images[train], "y": labels[train], "x_test": images[test],
            "y_test": labels[test], "train_index": train.astype(np.uint16),
            "test_index": test.astype(np.uint16)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help=f"output file (default: {DEFAULT_OUT.relative_to(REPO)})")
    args = parser.parse_args(argv)
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        print("error: scikit-learn is needed to run this script (pip install scikit-learn)",
              file=sys.stderr)
        return 1
    digits = load_digits()
    arrays = build(digits.data, digits.target)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    part = args.out.with_name(f".{args.out.name}.part")  # complete file or none
    with open(part, "wb") as out:
        np.savez_compressed(out, **arrays)
    os.replace(part, args.out)
    print("per class, train:", np.bincount(arrays["y"]).tolist(),
          "test:", np.bincount(arrays["y_test"]).tolist())
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
