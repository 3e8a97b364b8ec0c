"""Tests for mcusim.datasets: IDX loading, search order, errors, download, embedded subset.

The full MNIST / Fashion-MNIST tests use the directory in $MCUSIM_TEST_DATA
(default: ../shared/data next to the repository) and are skipped without it.
Everything else runs on small fake IDX files made here.  Downloads go to a
local http.server on 127.0.0.1 only; a guard fails any other connection.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import importlib.util
import os
import shutil
import socket
import struct
import threading
from pathlib import Path

import numpy as np
import pytest

from mcusim import datasets
from mcusim.datasets import DatasetError, DatasetSpec, IdxFile

REPO = Path(__file__).resolve().parents[1]
REAL_DATA = Path(os.environ.get("MCUSIM_TEST_DATA") or (REPO.parent / "shared" / "data"))
FILE_NAMES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)


def real_dir(name: str) -> Path:
    folder = REAL_DATA / name
    if not all((folder / f).is_file() for f in FILE_NAMES):
        pytest.skip(f"full {name} not available in {REAL_DATA} (set MCUSIM_TEST_DATA)")
    return folder


# --------------------------------------------------------------------------
# fixtures and helpers


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    """No configuration, an empty private cache and system dir, no memo, loopback only."""
    monkeypatch.delenv("MCUSIM_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.setattr(datasets, "SYSTEM_DATA_DIR", tmp_path / "usr-share-datasets")
    monkeypatch.setattr(datasets, "_verified", set())
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY",
                "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")

    real_connect = socket.socket.connect

    def loopback_only(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            assert address[0] in ("127.0.0.1", "::1", "localhost"), (
                f"test tried to reach {address}")
        return real_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", loopback_only)


def idx_images(pixels: np.ndarray, magic: int = 2051, dims=(28, 28), count=None) -> bytes:
    count = len(pixels) if count is None else count
    return struct.pack(">IIII", magic, count, *dims) + pixels.astype(np.uint8).tobytes()


def idx_labels(labels: np.ndarray, magic: int = 2049, count=None) -> bytes:
    count = len(labels) if count is None else count
    return struct.pack(">II", magic, count) + labels.astype(np.uint8).tobytes()


def gz(raw: bytes) -> bytes:
    return gzip.compress(raw, mtime=0)


class FakeSet:
    """A tiny data set in the real file layout, with a matching DatasetSpec."""

    def __init__(self, name: str = "fake-mnist", seed: int = 0, n_train: int = 20,
                 n_test: int = 10):
        rng = np.random.default_rng(seed)
        self.arrays = {}
        self.raw = {}
        for split, prefix, n in (("train", "train", n_train), ("test", "t10k", n_test)):
            images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
            labels = (np.arange(n) % 10).astype(np.uint8)
            self.arrays[split] = (images, labels)
            self.raw[f"{prefix}-images-idx3-ubyte.gz"] = idx_images(images)
            self.raw[f"{prefix}-labels-idx1-ubyte.gz"] = idx_labels(labels)
        self.blobs = {fname: gz(raw) for fname, raw in self.raw.items()}
        counts = {"train": n_train, "t10k": n_test}

        def entry(fname):
            kind = "images" if "-images-" in fname else "labels"
            return IdxFile(fname, kind, counts[fname.split("-")[0]],
                           hashlib.md5(self.blobs[fname]).hexdigest(),
                           hashlib.md5(self.raw[fname]).hexdigest())

        self.spec = DatasetSpec(
            name=name, title="FakeMNIST", classes=tuple("0123456789"),
            mirrors=("http://127.0.0.1:9/never-used/",),
            splits={"train": (entry(FILE_NAMES[0]), entry(FILE_NAMES[1])),
                    "test": (entry(FILE_NAMES[2]), entry(FILE_NAMES[3]))},
        )

    def write(self, folder: Path, skip=()) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        for fname, blob in self.blobs.items():
            if fname not in skip:
                (folder / fname).write_bytes(blob)
        return folder

    def load(self, split="train", data_dir=None):
        return datasets.load(self.spec.name, split, data_dir, spec=self.spec)

    def resolve(self, data_dir=None):
        return datasets.resolve_dir(self.spec.name, data_dir, spec=self.spec)


@pytest.fixture
def fake():
    return FakeSet()


def debianize(blob: bytes) -> bytes:
    """Rewrite a gzip header the way Debian did: drop FNAME, change the mtime."""
    assert blob[:3] == b"\x1f\x8b\x08" and not blob[3] & 0x04  # no FEXTRA
    flags, rest = blob[3], blob[10:]
    if flags & 0x08:
        rest = rest[rest.index(b"\0") + 1:]
    return (blob[:3] + bytes([flags & ~0x08]) + struct.pack("<I", 1600000000)
            + blob[8:10] + rest)


def assert_good_message(exc: DatasetError, *must_contain: str) -> str:
    msg = str(exc)
    assert "\n" not in msg and "Traceback" not in msg
    for text in must_contain:
        assert text in msg, f"{text!r} not in message: {msg}"
    return msg


# --------------------------------------------------------------------------
# the real data sets


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_real_sets_load_and_verify(name):
    folder = real_dir(name)
    train_x, train_y = datasets.load(name, "train", folder.parent)
    test_x, test_y = datasets.load(name, "test", folder)  # files directly in the dir
    assert train_x.shape == (60000, 28, 28) and train_y.shape == (60000,)
    assert test_x.shape == (10000, 28, 28) and test_y.shape == (10000,)
    for arr in (train_x, train_y, test_x, test_y):
        assert arr.dtype == np.uint8 and arr.flags.writeable
    if name == "mnist":
        assert np.bincount(test_y).tolist() == [980, 1135, 1032, 1010, 982, 892, 958,
                                                1028, 974, 1009]
    else:
        assert np.bincount(train_y).tolist() == [6000] * 10
        assert np.bincount(test_y).tolist() == [1000] * 10
    assert 20 < train_x.mean() < 100
    assert datasets.resolve_dir(name, folder.parent) == folder


def test_real_set_via_env_and_debian_style_system_dir(monkeypatch, tmp_path):
    folder = real_dir("fashion-mnist")
    monkeypatch.setenv("MCUSIM_DATA", str(folder.parent))
    x, y = datasets.load("fashion-mnist", "test")
    assert x.shape == (10000, 28, 28)
    monkeypatch.delenv("MCUSIM_DATA")
    # Debian's copy: same content, rewritten gzip header, so the .gz MD5 differs.
    system = datasets.SYSTEM_DATA_DIR / "fashion-mnist"
    system.mkdir(parents=True)
    for fname in FILE_NAMES[2:]:
        blob = debianize((folder / fname).read_bytes())
        assert hashlib.md5(blob).hexdigest() != hashlib.md5(
            (folder / fname).read_bytes()).hexdigest()
        (system / fname).write_bytes(blob)
    x2, y2 = datasets.load("fashion-mnist", "test")
    assert np.array_equal(x, x2) and np.array_equal(y, y2)


def test_checksum_table_is_complete():
    for name, spec in datasets.DATASETS.items():
        assert spec.name == name and len(spec.classes) == 10 and spec.mirrors
        assert [f.filename for f in spec.files()] == list(FILE_NAMES)
        assert [f.count for f in spec.files()] == [60000, 60000, 10000, 10000]
        for f in spec.files():
            assert len(f.md5) == 32 and len(f.raw_md5) == 32 and f.md5 != f.raw_md5


# --------------------------------------------------------------------------
# search order and layout


def test_layouts_name_subdir_and_direct(fake, tmp_path):
    fake.write(tmp_path / "a" / fake.spec.name)
    assert fake.resolve(tmp_path / "a") == tmp_path / "a" / fake.spec.name
    fake.write(tmp_path / "b")
    assert fake.resolve(tmp_path / "b") == tmp_path / "b"
    images, labels = fake.load("test", tmp_path / "b")
    assert np.array_equal(images, fake.arrays["test"][0])
    assert np.array_equal(labels, fake.arrays["test"][1])
    assert images.dtype == np.uint8 and images.shape == (10, 28, 28)


def test_search_order(fake, tmp_path, monkeypatch):
    name = fake.spec.name
    explicit = fake.write(tmp_path / "explicit" / name)
    env = fake.write(tmp_path / "env")
    cache = fake.write(datasets.cache_dir() / name)
    system = fake.write(datasets.SYSTEM_DATA_DIR / name)
    monkeypatch.setenv("MCUSIM_DATA", str(env))

    assert fake.resolve(tmp_path / "explicit") == explicit
    assert fake.resolve() == env
    monkeypatch.delenv("MCUSIM_DATA")
    assert fake.resolve() == cache
    shutil.rmtree(cache)
    assert fake.resolve() == system
    # XDG_CACHE_HOME unset: ~/.cache/mcusim/datasets
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert datasets.cache_dir() == tmp_path / "home" / ".cache" / "mcusim" / "datasets"
    home_cache = fake.write(datasets.cache_dir() / name)
    assert fake.resolve() == home_cache


def test_complete_copy_preferred_over_partial_one(fake):
    fake.write(datasets.cache_dir() / fake.spec.name, skip=FILE_NAMES[:1])
    system = fake.write(datasets.SYSTEM_DATA_DIR / fake.spec.name)
    assert fake.resolve() == system


def test_explicit_places_do_not_fall_through(fake, tmp_path, monkeypatch):
    fake.write(datasets.cache_dir() / fake.spec.name)  # a good copy that must be ignored
    with pytest.raises(DatasetError) as err:
        fake.resolve(tmp_path / "wrong")
    assert_good_message(err.value, str(tmp_path / "wrong"), "--data-dir", "does not exist")
    assert str(datasets.cache_dir()) not in str(err.value).split("To fix")[0]

    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("MCUSIM_DATA", str(tmp_path / "empty"))
    with pytest.raises(DatasetError) as err:
        fake.load("train")
    assert_good_message(err.value, "MCUSIM_DATA", str(tmp_path / "empty"), "no FakeMNIST files")


# --------------------------------------------------------------------------
# error paths


def test_nothing_found_lists_every_place_and_the_fixes(fake):
    with pytest.raises(DatasetError) as err:
        fake.load("train")
    assert_good_message(
        err.value, "Could not find", str(datasets.cache_dir()),
        str(datasets.SYSTEM_DATA_DIR / fake.spec.name), "--data-dir DIR", "MCUSIM_DATA",
        "--download", "train-images-idx3-ubyte.gz")
    assert err.value.path is None and len(err.value.searched) == 2


def test_missing_file(fake, tmp_path):
    folder = fake.write(tmp_path / "d", skip=("train-labels-idx1-ubyte.gz",))
    with pytest.raises(DatasetError) as err:
        fake.load("train", folder)
    assert_good_message(err.value, "train-labels-idx1-ubyte.gz", "is missing", str(folder),
                        "--download", "MCUSIM_DATA")
    # the test split is complete there, so it loads
    assert fake.load("test", folder)[0].shape == (10, 28, 28)
    # a folder with only the test files is incomplete for the train split
    folder = fake.write(tmp_path / "t", skip=FILE_NAMES[:2])
    with pytest.raises(DatasetError) as err:
        fake.load("train", folder)
    assert_good_message(err.value, "is incomplete", FILE_NAMES[0], FILE_NAMES[1],
                        "are missing", "has only t10k-images-idx3-ubyte.gz")


def corrupt_case(fake, tmp_path, fname, blob):
    folder = fake.write(tmp_path / "d")
    (folder / fname).write_bytes(blob)
    split = "train" if fname.startswith("train") else "test"
    with pytest.raises(DatasetError) as err:
        fake.load(split, folder)
    return assert_good_message(err.value, str(folder / fname), "is corrupt", "--download",
                               "--data-dir", "MCUSIM_DATA")


def test_truncated_gzip(fake, tmp_path):
    blob = fake.blobs[FILE_NAMES[0]]
    msg = corrupt_case(fake, tmp_path, FILE_NAMES[0], blob[: len(blob) // 2])
    assert "truncated" in msg


def test_not_gzip_at_all(fake, tmp_path):
    msg = corrupt_case(fake, tmp_path, FILE_NAMES[0], b"<html>Not Found</html>")
    assert "gzip" in msg


def test_wrong_magic(fake, tmp_path):
    images = fake.arrays["train"][0]
    msg = corrupt_case(fake, tmp_path, FILE_NAMES[0], gz(idx_images(images, magic=2049)))
    assert "magic number 2049" in msg and "2051" in msg


def test_wrong_dims_count_and_length(fake, tmp_path):
    images = fake.arrays["train"][0]
    msg = corrupt_case(fake, tmp_path, FILE_NAMES[0],
                       gz(idx_images(images.reshape(20, 28 * 28)[:, :27 * 28], dims=(27, 28))))
    assert "27x28" in msg
    msg = corrupt_case(fake, tmp_path, FILE_NAMES[0], gz(idx_images(images[:19])))
    assert "holds 19 images, expected 20" in msg
    msg = corrupt_case(fake, tmp_path, FILE_NAMES[0], gz(idx_images(images) + b"\0"))
    assert "decompresses to" in msg
    labels = fake.arrays["test"][1].copy()
    labels[3] = 10
    msg = corrupt_case(fake, tmp_path, FILE_NAMES[3], gz(idx_labels(labels)))
    assert "label 10" in msg


def test_wrong_md5(fake, tmp_path):
    images = fake.arrays["train"][0].copy()
    images[0, 0, 0] ^= 1  # structurally perfect, one pixel off
    msg = corrupt_case(fake, tmp_path, FILE_NAMES[0], gz(idx_images(images)))
    f = fake.spec.splits["train"][0]
    assert "wrong checksum" in msg and "MD5" in msg and f.md5 in msg and f.raw_md5 in msg


def test_rewritten_gzip_header_accepted_by_content_md5(fake, tmp_path):
    folder = fake.write(tmp_path / "d")
    for fname in FILE_NAMES:
        (folder / fname).write_bytes(debianize(fake.blobs[fname]))
    images, labels = fake.load("train", folder)
    assert np.array_equal(images, fake.arrays["train"][0])


def test_unknown_name_and_split(fake):
    with pytest.raises(DatasetError) as err:
        datasets.load("cifar10", "train")
    assert_good_message(err.value, "cifar10", "mnist", "fashion-mnist")
    with pytest.raises(DatasetError) as err:
        fake.load("validation")
    assert_good_message(err.value, "validation", "train", "test")


def test_verification_is_memoised_and_invalidated_by_changes(fake, tmp_path, monkeypatch):
    folder = fake.write(tmp_path / "d")
    calls = []
    real_md5 = hashlib.md5
    monkeypatch.setattr(datasets.hashlib, "md5", lambda *a: calls.append(1) or real_md5(*a))
    fake.load("train", folder)
    assert len(calls) == 2  # one per file, .gz digests matched
    fake.load("train", folder)
    assert len(calls) == 2  # no hashing the second time
    # same size, different content and mtime: verified again, and rejected
    path = folder / FILE_NAMES[0]
    images = fake.arrays["train"][0].copy()
    images[5] = 0
    blob = gz(idx_images(images))
    path.write_bytes(blob)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    with pytest.raises(DatasetError, match="wrong checksum"):
        fake.load("train", folder)


# --------------------------------------------------------------------------
# load_or_embedded


def test_fallback_to_embedded_when_nothing_configured():
    result = datasets.load_or_embedded("fashion-mnist", "train")
    assert result.embedded and result.images.shape == (3000, 28, 28)
    assert "embedded" in result.message and "--download" in result.message
    assert str(datasets.cache_dir()) in result.message


def test_fallback_mentions_a_broken_cached_copy():
    folder = datasets.cache_dir() / "fashion-mnist"
    folder.mkdir(parents=True)
    for fname in FILE_NAMES[2:]:
        (folder / fname).write_bytes(b"junk")
    result = datasets.load_or_embedded("fashion-mnist", "test")
    assert result.embedded and len(result.labels) == 1000
    assert "could not be used" in result.message and "gzip" in result.message


def test_no_fallback_for_explicit_dirs(tmp_path, monkeypatch):
    with pytest.raises(DatasetError) as err:
        datasets.load_or_embedded("fashion-mnist", "train", tmp_path / "nope")
    assert_good_message(err.value, str(tmp_path / "nope"), "does not exist")
    monkeypatch.setenv("MCUSIM_DATA", str(tmp_path))
    with pytest.raises(DatasetError, match="MCUSIM_DATA"):
        datasets.load_or_embedded("fashion-mnist", "test")


def test_no_embedded_mnist():
    with pytest.raises(DatasetError, match="Could not find the MNIST"):
        datasets.load_or_embedded("mnist", "test")


def test_load_or_embedded_uses_full_set_when_present():
    folder = real_dir("fashion-mnist")
    result = datasets.load_or_embedded("fashion-mnist", "test", folder.parent)
    assert not result.embedded and result.images.shape == (10000, 28, 28)
    assert str(folder) in result.message


# --------------------------------------------------------------------------
# download from a local server


class _Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest output clean
        pass

    def do_GET(self):
        if self.path.startswith("/cut/"):  # promises the full file, sends half
            body = (Path(self.directory) / "good" / self.path[len("/cut/"):]).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.close_connection = True
            return
        super().do_GET()


@pytest.fixture
def server(tmp_path, fake):
    root = tmp_path / "www"
    fake.write(root / "good")
    fake.write(root / "partial", skip=FILE_NAMES[:2])  # train files give 404
    bad = fake.write(root / "bad")
    images = fake.arrays["train"][0].copy()
    images[:, 0, 0] ^= 0xFF
    (bad / FILE_NAMES[0]).write_bytes(gz(idx_images(images)))
    (root / "empty").mkdir()
    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_Handler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def no_leftovers(folder: Path) -> bool:
    return not [p for p in folder.iterdir() if p.name.startswith(".") or p.suffix == ".part"]


def test_download_success_into_cache(fake, server):
    log = []
    folder = datasets.download(fake.spec.name, None, [server + "/good/"], spec=fake.spec,
                               timeout=5, log=log.append)
    assert folder == datasets.cache_dir() / fake.spec.name
    assert sorted(p.name for p in folder.iterdir()) == sorted(FILE_NAMES)
    assert no_leftovers(folder)
    images, _ = fake.load("train")  # found in the cache without configuration
    assert np.array_equal(images, fake.arrays["train"][0])
    assert any("downloading" in line for line in log)


def test_download_404_falls_through_to_next_mirror(fake, server, tmp_path):
    log = []
    folder = datasets.download(fake.spec.name, tmp_path / "dest",
                               [server + "/partial", server + "/good"], spec=fake.spec,
                               timeout=5, log=log.append)
    assert folder == tmp_path / "dest" / fake.spec.name
    assert any("404" in line for line in log)
    assert fake.load("train", tmp_path / "dest")[0].shape == (20, 28, 28)


def test_download_rejects_corrupt_then_uses_next_mirror(fake, server, tmp_path):
    folder = datasets.download(fake.spec.name, tmp_path, [server + "/bad/", server + "/good/"],
                               spec=fake.spec, timeout=5)
    assert (folder / FILE_NAMES[0]).read_bytes() == fake.blobs[FILE_NAMES[0]]
    assert no_leftovers(folder)


def test_download_corrupt_everywhere_leaves_nothing(fake, server, tmp_path):
    with pytest.raises(DatasetError) as err:
        datasets.download(fake.spec.name, tmp_path, [server + "/bad/"], spec=fake.spec,
                          timeout=5)
    msg = assert_good_message(err.value, FILE_NAMES[0], "every mirror failed",
                              server + "/bad/" + FILE_NAMES[0], "wrong checksum",
                              "Nothing was saved")
    assert "MD5" in msg
    folder = tmp_path / fake.spec.name
    assert not (folder / FILE_NAMES[0]).exists()
    assert no_leftovers(folder)


def test_download_all_mirrors_fail(fake, server, tmp_path):
    with socket.socket() as s:  # a port with nothing listening
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}/"
    with pytest.raises(DatasetError) as err:
        datasets.download(fake.spec.name, tmp_path, [closed, server + "/empty/"],
                          spec=fake.spec, timeout=5)
    assert_good_message(err.value, "HTTP error 404", closed + FILE_NAMES[0], "--data-dir")
    assert not list((tmp_path / fake.spec.name).iterdir())


def test_download_cut_off_transfer_rejected(fake, server, tmp_path):
    with pytest.raises(DatasetError) as err:
        datasets.download(fake.spec.name, tmp_path, [server + "/cut/"], spec=fake.spec,
                          timeout=5)
    assert_good_message(err.value, "cut off after")
    assert not list((tmp_path / fake.spec.name).iterdir())


def test_download_keeps_valid_files_and_replaces_corrupt_ones(fake, server, tmp_path):
    folder = fake.write(tmp_path / fake.spec.name)
    # everything valid: no request is needed, even with a mirror that has nothing
    assert datasets.download(fake.spec.name, tmp_path, [server + "/empty/"],
                             spec=fake.spec, timeout=5) == folder
    (folder / FILE_NAMES[1]).write_bytes(b"broken")
    datasets.download(fake.spec.name, tmp_path, [server + "/good/"], spec=fake.spec,
                      timeout=5)
    assert (folder / FILE_NAMES[1]).read_bytes() == fake.blobs[FILE_NAMES[1]]


# --------------------------------------------------------------------------
# embedded subset


def test_embedded_subset_shape_balance_and_content():
    path = REPO / "mcusim" / "data" / datasets.EMBEDDED_FILE
    assert path.stat().st_size < 3_000_000
    for split, n in (("train", 3000), ("test", 1000)):
        images, labels = datasets.load_embedded(split)
        assert images.shape == (n, 28, 28) and labels.shape == (n,)
        assert images.dtype == np.uint8 and labels.dtype == np.uint8
        assert np.bincount(labels, minlength=10).tolist() == [n // 10] * 10
        flat = images.reshape(n, -1)
        assert (flat.max(axis=1) > 100).all()  # no blank images
        assert len(np.unique(flat, axis=0)) == n  # no duplicates
        assert 60 < images.mean() < 90  # Fashion-MNIST's mean pixel is about 73
        # real photos: dark background around the edges, brighter centre
        assert images[:, :, 0].mean() < images[:, 10:18, 10:18].mean()
    assert datasets.load_embedded("t10k")[0].shape == (1000, 28, 28)


def test_embedded_subset_is_real_fashion_mnist_and_regenerable():
    folder = real_dir("fashion-mnist")
    spec = importlib.util.spec_from_file_location(
        "make_embedded_subset", REPO / "tools" / "make_embedded_subset.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    with np.load(REPO / "mcusim" / "data" / datasets.EMBEDDED_FILE) as npz:
        stored = {key: npz[key] for key in npz.files}
    for split, per_class in (("train", tool.TRAIN_PER_CLASS), ("test", tool.TEST_PER_CLASS)):
        images, labels = datasets.load("fashion-mnist", split, folder)
        index = stored[f"{split}_index"]
        assert np.array_equal(tool.select(labels, per_class, split), index)
        assert np.array_equal(stored[f"{split}_images"], images[index])
        assert np.array_equal(stored[f"{split}_labels"], labels[index])


def test_gzip_bomb_and_oversized_file_are_refused_without_expanding(fake, tmp_path):
    """A valid header followed by gigabytes of zeros stops one byte past the known size; a file larger than
    any copy of the data set is refused before it is read."""
    images = fake.arrays["train"][0]
    bomb = gz(idx_images(images) + b"\0" * (64 << 20))          # 64 MB of zeros, ~64 kB compressed
    msg = corrupt_case(fake, tmp_path, FILE_NAMES[0], bomb)
    assert "decompresses to" in msg
    msg = corrupt_case(fake, tmp_path, FILE_NAMES[0], b"\0" * (2 << 20))
    assert "far more than" in msg


def test_an_unreadable_idx_file_is_explained(fake, tmp_path, monkeypatch):
    """PermissionError (chmod 000; simulated, as root reads anything) is the file's one clear error."""
    from conftest import no_read_permission
    folder = fake.write(tmp_path / "d")
    locked = folder / FILE_NAMES[0]
    no_read_permission(monkeypatch, locked)
    with pytest.raises(DatasetError) as err:
        fake.load("train", folder)
    assert_good_message(err.value, str(locked), "could not be read (Permission denied)")
