"""Tests for mcusim.datasets.load_dataset: the embedded 8x8 digits, user .npz files, names.

Fast and offline: user files are made in tmp_path; the full MNIST / Fashion-MNIST
test uses $MCUSIM_TEST_DATA (default ../shared/data) and is skipped without it.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import io
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest

from mcusim import datasets
from mcusim.datasets import DatasetError, load_dataset

REPO = Path(__file__).resolve().parents[1]
REAL_DATA = Path(os.environ.get("MCUSIM_TEST_DATA") or (REPO.parent / "shared" / "data"))
# load_digits() per class: the UCI optdigits.tes class counts
UCI_TEST_COUNTS = [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    """No configuration, an empty private cache and system dir: nothing found by search."""
    monkeypatch.delenv("MCUSIM_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.setattr(datasets, "SYSTEM_DATA_DIR", tmp_path / "usr-share-datasets")


def one_line(exc: DatasetError, *must_contain: str) -> str:
    msg = str(exc)
    assert "\n" not in msg and "Traceback" not in msg
    for text in must_contain:
        assert text in msg, f"{text!r} not in message: {msg}"
    return msg


def check_dataset(ds, n_train, n_test, shape, classes):
    assert ds.train_x.shape == (n_train, *shape) and ds.test_x.shape == (n_test, *shape)
    assert ds.shape == shape and ds.classes == classes
    for x in (ds.train_x, ds.test_x):
        assert x.dtype == np.uint8 and x.flags.c_contiguous
    for y, n in ((ds.train_y, n_train), (ds.test_y, n_test)):
        if classes is None:
            assert y is None
        else:
            assert y.dtype == np.int64 and y.shape == (n,) and y.flags.c_contiguous
            assert 0 <= y.min() and y.max() < classes


# --------------------------------------------------------------------------
# digits


def test_digits_shapes_split_and_balance():
    ds = load_dataset("digits")
    check_dataset(ds, 1438, 359, (1, 8, 8), 10)
    assert ds.embedded and ds.name == "digits" and "embedded digits" in ds.message
    train = np.bincount(ds.train_y, minlength=10)
    test = np.bincount(ds.test_y, minlength=10)
    assert (train + test).tolist() == UCI_TEST_COUNTS
    # stratified 80/20: every class within one image of a fifth
    assert all(abs(t - n / 5) <= 1 for t, n in zip(test, UCI_TEST_COUNTS))
    assert load_dataset("DIGITS", train_limit=100).train_x.shape == (100, 1, 8, 8)


def test_digits_are_real_handwriting():
    ds = load_dataset("digits")
    x = np.concatenate([ds.train_x, ds.test_x])[:, 0]
    # 17 levels: round(v * 255 / 16) for block counts v = 0..16
    assert np.unique(x).tolist() == [round(v * 255 / 16) for v in range(17)]
    assert 70 < x.mean() < 86  # load_digits' mean count is about 4.9 of 16
    assert x[:, :, 0].mean() < 5 and x[:, 2:6, 2:6].mean() > 100  # ink in the middle
    assert len(np.unique(x.reshape(len(x), -1), axis=0)) == len(x)
    # a nearest-class-mean classifier does far better than chance on real digits
    means = np.stack([ds.train_x[ds.train_y == c].reshape(-1, 64).mean(0) for c in range(10)])
    dist = ((ds.test_x.reshape(-1, 1, 64) - means[None]) ** 2).sum(-1)
    assert (dist.argmin(1) == ds.test_y).mean() > 0.85
    with np.load(REPO / "mcusim" / "data" / datasets.DIGITS_FILE) as npz:
        index = np.concatenate([npz["train_index"], npz["test_index"]])
    assert sorted(index.tolist()) == list(range(1797))


def test_digits_regenerable_from_scikit_learn():
    sk = pytest.importorskip("sklearn.datasets")
    spec = importlib.util.spec_from_file_location("make_digits", REPO / "tools" / "make_digits.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    digits = sk.load_digits()
    made = tool.build(digits.data, digits.target)
    with np.load(REPO / "mcusim" / "data" / datasets.DIGITS_FILE) as npz:
        assert sorted(npz.files) == sorted(made)
        for key, arr in made.items():
            assert npz[key].dtype == arr.dtype and np.array_equal(npz[key], arr), key


# --------------------------------------------------------------------------
# user .npz: happy paths


def save(path: Path, compressed=True, **arrays) -> Path:
    (np.savez_compressed if compressed else np.savez)(path, **arrays)
    return path


def images(n, shape=(6, 5), seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, *shape), dtype=np.uint8)


def test_npz_nhw_with_labels_and_test_split(tmp_path):
    x, xt = images(30), images(12, seed=1)
    y, yt = np.arange(30) % 3, np.arange(12) % 3
    ds = load_dataset(save(tmp_path / "mine.npz", x=x, y=y, x_test=xt, y_test=yt))
    check_dataset(ds, 30, 12, (1, 6, 5), 3)
    assert np.array_equal(ds.train_x[:, 0], x) and np.array_equal(ds.test_y, yt)
    assert not ds.embedded and ds.name == "mine.npz"
    one_line(ds.message, str(tmp_path / "mine.npz"), "30 train / 12 test", "1x6x5")
    assert "held out" not in ds.message


def test_npz_nchw_unlabelled_holds_out_a_sixth(tmp_path):
    x = images(60, (3, 4, 4))
    ds = load_dataset(str(save(tmp_path / "u.npz", compressed=False, x=x)))
    check_dataset(ds, 50, 10, (3, 4, 4), None)
    assert "held out" in ds.message and "1/6" in ds.message and "unlabelled" in ds.message
    together = np.concatenate([ds.train_x, ds.test_x])
    assert sorted(map(bytes, together)) == sorted(map(bytes, x))  # a partition
    again = load_dataset(tmp_path / "u.npz")  # fixed seed: same split every time
    assert np.array_equal(again.test_x, ds.test_x)


def test_npz_holdout_is_stratified(tmp_path):
    y = np.repeat(np.arange(4), [12, 24, 6, 60]).astype(np.uint8)
    ds = load_dataset(save(tmp_path / "s.npz", x=images(len(y)), y=y))
    assert np.bincount(ds.test_y).tolist() == [2, 4, 1, 10]
    assert np.bincount(ds.train_y).tolist() == [10, 20, 5, 50]
    assert ds.classes == 4 and "of every class" in ds.message


def test_npz_float_and_wide_integer_pixels(tmp_path):
    x = np.linspace(0, 1, 24 * 9, dtype=np.float32).reshape(24, 3, 3)
    x[0, 0, 0], x[0, 0, 1] = 0.5, 1 / 255
    ds = load_dataset(save(tmp_path / "f.npz", x=x, x_test=x[:2].astype(np.float64)))
    assert "round(x * 255)" in ds.message and ds.classes is None
    assert np.array_equal(ds.train_x[:, 0], np.rint(x.astype(np.float64) * 255).astype(np.uint8))
    assert ds.train_x[0, 0, 0, :2].tolist() == [128, 1]
    wide = images(10).astype(np.int64)
    ds = load_dataset(save(tmp_path / "i.npz", x=wide, y=np.zeros(10, np.int32),
                           x_test=wide[:3], y_test=np.zeros(3, np.int16)))
    assert np.array_equal(ds.train_x[:, 0], wide) and ds.classes == 1


def test_npz_fortran_order_extra_arrays_and_train_limit(tmp_path):
    x = np.asfortranarray(images(18, (2, 3, 4)))
    path = save(tmp_path / "o.npz", x=x, y=np.arange(18) % 2, notes=np.arange(3))
    ds = load_dataset(path, train_limit=7)
    assert ds.train_x.flags.c_contiguous and len(ds.train_x) == 7
    assert "first 7 of its 14 training" in ds.message
    assert np.array_equal(load_dataset(path, train_limit=0).train_x,
                          load_dataset(path).train_x)


def test_npz_download_has_nothing_to_fetch(tmp_path):
    ds = load_dataset(save(tmp_path / "d.npz", x=images(12)), download=True)
    assert "nothing to download" in ds.message


def test_holdout_split_rounding():
    train, test = datasets.holdout_split(20)
    assert len(test) == 3 and sorted([*train, *test]) == list(range(20))
    assert np.all(np.diff(train) > 0) and np.all(np.diff(test) > 0)


# --------------------------------------------------------------------------
# user .npz: every kind of bad input is one DatasetError


def write_member(path: Path, name: str, data: bytes) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(name, data)
    return path


def npy_bytes(arr) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=True)
    return buf.getvalue()


def truncated_zip(path):
    save(path, x=images(100))
    path.write_bytes(path.read_bytes()[:400])


def corrupt_data(path):
    save(path, compressed=False, x=images(400, (8, 8)))
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    path.write_bytes(bytes(blob))


def short_member(path):
    write_member(path, "x.npy", npy_bytes(images(10))[:-40])


BAD = {
    "missing": (lambda p: None, "does not exist"),
    "directory": (lambda p: p.mkdir(), "is a directory"),
    "text file": (lambda p: p.write_text("hello"), "not a readable zip"),
    "npy file": (lambda p: p.write_bytes(npy_bytes(images(4))), "not a readable zip"),
    "truncated zip": (truncated_zip, "not a readable zip"),
    "corrupt data": (corrupt_data, "array x is damaged"),
    "short member": (short_member, "array x is damaged"),
    "bad npy header": (lambda p: write_member(p, "x.npy", b"not an array"),
                       "not a readable .npy"),
    "no x": (lambda p: save(p, images=images(5)), "no array named x (it has images)"),
    "empty archive": (lambda p: write_member(p, "readme.txt", b"hi"), "no arrays at all"),
    "x 2-D": (lambda p: save(p, x=np.zeros((4, 9), np.uint8)), "images must be"),
    "x 5-D": (lambda p: save(p, x=np.zeros((2, 1, 1, 3, 3), np.uint8)), "images must be"),
    "x empty": (lambda p: save(p, x=np.zeros((0, 8, 8), np.uint8)), "x is empty"),
    "x zero width": (lambda p: save(p, x=np.zeros((3, 8, 0), np.uint8)), "x is empty"),
    "x bool": (lambda p: save(p, x=np.ones((4, 3, 3), bool)), "dtype bool"),
    "x complex": (lambda p: save(p, x=np.ones((4, 3, 3), complex)), "dtype complex128"),
    "x objects": (lambda p: save(p, x=np.array([[[1]], [["a"]]], dtype=object)),
                  "Python objects"),
    "x records": (lambda p: save(p, x=np.zeros((2, 2, 2), [("a", "u1"), ("b", "f4")])),
                  "records"),
    "channels last": (lambda p: save(p, x=np.zeros((4, 8, 8, 3), np.uint8)), "channels-last"),
    "float nan": (lambda p: save(p, x=np.full((4, 2, 2), np.nan, np.float32)), "NaN"),
    "float 0..255": (lambda p: save(p, x=np.full((4, 2, 2), 200.0)), "must lie in [0, 1]"),
    "float negative": (lambda p: save(p, x=np.full((4, 2, 2), -0.5)), "must lie in [0, 1]"),
    "int over 255": (lambda p: save(p, x=np.full((4, 2, 2), 256, np.int16)), "0..255"),
    "int negative": (lambda p: save(p, x=np.full((4, 2, 2), -1, np.int8)), "0..255"),
    "y length": (lambda p: save(p, x=images(5), y=np.zeros(4, int)), "holds 5 images but y"),
    "y 2-D": (lambda p: save(p, x=images(5), y=np.zeros((5, 1), int)), "one integer per image"),
    "y float": (lambda p: save(p, x=images(5), y=np.zeros(5)), "labels must be integers"),
    "y negative": (lambda p: save(p, x=images(6), y=np.full(6, -1)), "labels from -1"),
    "y over 255": (lambda p: save(p, x=images(6), y=np.arange(6) * 60), "at most 256 classes"),
    "class gap": (lambda p: save(p, x=images(12), y=np.arange(12) % 2 * 2), "class 1 has no"),
    "y_test alone": (lambda p: save(p, x=images(6), y_test=np.zeros(6, int)), "no x_test"),
    "y without y_test": (lambda p: save(p, x=images(6), y=np.zeros(6, int), x_test=images(2)),
                         "has y but no y_test"),
    "y_test without y": (lambda p: save(p, x=images(6), x_test=images(2),
                                        y_test=np.zeros(2, int)), "has y_test but no y"),
    "test shape": (lambda p: save(p, x=images(6), x_test=images(2, (1, 5, 6))),
                   "x_test holds (1, 5, 6)"),
    "x_test empty": (lambda p: save(p, x=images(6), x_test=images(0)), "x_test is empty"),
    "too few": (lambda p: save(p, x=images(2)), "too few to hold out"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_npz_bad_input_is_one_clear_error(tmp_path, case):
    make, expected = BAD[case]
    path = tmp_path / "bad.npz"
    make(path)
    with pytest.raises(DatasetError) as err:
        load_dataset(path)
    one_line(err.value, str(path), expected)
    assert err.value.path == path


def test_npz_size_cap_is_checked_from_headers(tmp_path, monkeypatch):
    path = save(tmp_path / "big.npz", x=images(50, (8, 8)))
    monkeypatch.setattr(datasets, "MAX_NPZ_BYTES", 1000)
    monkeypatch.setattr(np.lib.format, "read_array", None)  # data must not be read
    with pytest.raises(DatasetError) as err:
        load_dataset(path)
    one_line(err.value, str(path), "GB uncompressed", "more than")


def test_npz_huge_header_is_not_allocated(tmp_path):
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "|u1", "fortran_order": False, "shape": (10**9, 64, 64)})
    path = write_member(tmp_path / "huge.npz", "x.npy", header.getvalue() + b"\0" * 10)
    with pytest.raises(DatasetError) as err:
        load_dataset(path)
    one_line(err.value, "header promises 4096000000000 bytes")


# --------------------------------------------------------------------------
# names


def test_unknown_name_lists_the_choices():
    with pytest.raises(DatasetError) as err:
        load_dataset("cifar10")
    one_line(err.value, "'cifar10'", "mnist", "fashion-mnist", "digits", ".npz")


def test_bad_train_limit():
    for bad in (-1, 2.5, True):
        with pytest.raises(DatasetError, match="train_limit"):
            load_dataset("digits", train_limit=bad)


def test_dataset_is_frozen():
    ds = load_dataset("digits")
    with pytest.raises(dataclasses.FrozenInstanceError):
        ds.name = "other"


def test_fashion_mnist_falls_back_to_embedded_subset():
    ds = load_dataset("fashion_mnist", train_limit=500)
    check_dataset(ds, 500, 1000, (1, 28, 28), 10)
    assert ds.embedded and "embedded Fashion-MNIST subset" in ds.message
    x, y = datasets.load_embedded("test")
    assert np.array_equal(ds.test_x[:, 0], x) and np.array_equal(ds.test_y, y)


def test_mnist_missing_is_the_usual_error(tmp_path):
    with pytest.raises(DatasetError, match="Could not find the MNIST"):
        load_dataset("mnist")
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset("fashion-mnist", data_dir=tmp_path / "nope")  # explicit: no fallback


def test_download_flag_fetches_first(monkeypatch, tmp_path):
    calls = []

    def fake_download(name, data_dir):
        calls.append((name, data_dir))
        raise DatasetError("offline")

    monkeypatch.setattr(datasets, "_download_set", fake_download)
    with pytest.raises(DatasetError, match="offline"):
        load_dataset("mnist", tmp_path, download=True)
    assert calls == [("mnist", tmp_path)]


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_full_sets_through_load_dataset(name):
    folder = REAL_DATA / name
    if not (folder / "t10k-labels-idx1-ubyte.gz").is_file():
        pytest.skip(f"full {name} not available in {REAL_DATA} (set MCUSIM_TEST_DATA)")
    ds = load_dataset(name, REAL_DATA, train_limit=1000)
    check_dataset(ds, 1000, 10000, (1, 28, 28), 10)
    assert not ds.embedded and ds.message.startswith(
        ("MNIST from " if name == "mnist" else "Fashion-MNIST from ") + str(folder))
    x, y = datasets.load(name, "test", REAL_DATA)
    assert np.array_equal(ds.test_x[:, 0], x) and np.array_equal(ds.test_y, y)
