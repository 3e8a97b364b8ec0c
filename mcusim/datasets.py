"""Data sets for training: MNIST, Fashion-MNIST (plus a subset shipped in the
package), the 8x8 ``digits`` shipped in the package, and user ``.npz`` files.

:func:`load_dataset` is the one entry point: it takes one of those names or the
path of a ``FILE.npz`` and returns a :class:`Dataset` (uint8 images
``(N, C, H, W)``, int64 labels, where the data came from).  A user file holds
``x`` (and optionally ``y``, ``x_test``, ``y_test``); its zip member headers are
checked (shapes, dtypes, sizes, no pickled objects) before any array is read,
and without a test split a seeded 1/6 of every class is held out.

The full sets are read from the standard gzip IDX files::

    train-images-idx3-ubyte.gz  train-labels-idx1-ubyte.gz
    t10k-images-idx3-ubyte.gz   t10k-labels-idx1-ubyte.gz

Where they are looked for, first match wins:

1. the ``data_dir`` argument (the CLI's ``--data-dir DIR``);
2. the ``MCUSIM_DATA`` environment variable;
3. the per-user cache, ``$XDG_CACHE_HOME/mcusim/datasets`` (default
   ``~/.cache/mcusim/datasets``), which is where :func:`download` puts them;
4. the system directory ``/usr/share/datasets`` (Debian's
   ``dataset-fashion-mnist`` package installs ``/usr/share/datasets/fashion-mnist``).

In each of those places the files may sit in ``<dir>/<name>/`` (``name`` being
``mnist`` or ``fashion-mnist``) or directly in ``<dir>``.  A directory named
explicitly (1 or 2) is the only place looked at: if it is wrong, that is an
error rather than a silent fall-through to some other copy.

Every file is checked before use: gzip integrity, IDX magic number (2051 for
images, 2049 for labels), 28x28 image size, item count, payload length, label
range and MD5.  The MD5 is accepted if either the ``.gz`` file matches the
published checksum or the decompressed IDX payload matches its checksum (Debian
rewrote the gzip headers, which changes the ``.gz`` checksum but not the
content).  A file that passed is remembered for the rest of the process (keyed
on path, size and mtime), so loading it again skips the hashing.

All failures raise :class:`DatasetError`, whose message is a single paragraph
saying which file is missing or damaged, where it looked and how to fix it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.client
import math
import os
import struct
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterable, Mapping, NamedTuple, Sequence

import numpy as np

from .errors import McusimError
from .units import GB

__all__ = [
    "DATASETS",
    "DatasetError",
    "DatasetSpec",
    "IdxFile",
    "Loaded",
    "cache_dir",
    "download",
    "load",
    "load_embedded",
    "load_or_embedded",
    "resolve_dir",
    "Dataset",
    "HOLDOUT_FRACTION",
    "KNOWN_DATASETS",
    "MAX_NPZ_BYTES",
    "holdout_split",
    "load_dataset",
]

ENV_VAR = "MCUSIM_DATA"
#: Where distribution packages put data sets (Debian: dataset-fashion-mnist).
SYSTEM_DATA_DIR = Path("/usr/share/datasets")
#: Name of the subset file inside ``mcusim/data``.
EMBEDDED_FILE = "fashion_mnist_subset.npz"
EMBEDDED_NAME = "fashion-mnist"

ROWS = COLS = 28
IMAGE_MAGIC = 2051
LABEL_MAGIC = 2049
SPLITS = ("train", "test")


class DatasetError(McusimError):
    """A data set could not be found, read, verified or downloaded.

    ``str(err)`` is a complete, user-facing paragraph.  ``searched`` lists the
    places that were looked at (may be empty); ``path`` is the folder or file
    the problem is about, or None when no data set was found at all.
    """

    def __init__(self, message: str, searched: Sequence[str] = (),
                 path: Path | None = None):
        super().__init__(message)
        self.searched = tuple(searched)
        self.path = path


@dataclasses.dataclass(frozen=True)
class IdxFile:
    """One gzip IDX file and what it must contain."""

    filename: str
    kind: str  # "images" or "labels"
    count: int
    md5: str  # MD5 of the .gz file as published upstream
    raw_md5: str  # MD5 of the decompressed IDX payload

    @property
    def magic(self) -> int:
        return IMAGE_MAGIC if self.kind == "images" else LABEL_MAGIC

    @property
    def header_size(self) -> int:
        return 16 if self.kind == "images" else 8

    @property
    def payload_size(self) -> int:
        item = ROWS * COLS if self.kind == "images" else 1
        return self.header_size + self.count * item


@dataclasses.dataclass(frozen=True, eq=False)
class DatasetSpec:
    """A data set: its files per split, class names and download mirrors."""

    name: str
    title: str
    classes: tuple[str, ...]
    mirrors: tuple[str, ...]
    splits: Mapping[str, tuple[IdxFile, IdxFile]]  # split -> (images, labels)

    def files(self) -> list[IdxFile]:
        return [f for split in SPLITS for f in self.splits[split]]


def _idx(filename: str, count: int, md5: str, raw_md5: str) -> IdxFile:
    kind = "images" if "-images-" in filename else "labels"
    return IdxFile(filename, kind, count, md5, raw_md5)


# The checksum table.  "md5" is the published MD5 of each .gz file; "raw_md5"
# is the MD5 of the decompressed IDX payload (computed from verified copies).
DATASETS: dict[str, DatasetSpec] = {
    "mnist": DatasetSpec(
        name="mnist",
        title="MNIST",
        classes=tuple(str(d) for d in range(10)),
        mirrors=(
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
        ),
        splits={
            "train": (
                _idx("train-images-idx3-ubyte.gz", 60000,
                     "f68b3c2dcbeaaa9fbdd348bbdeb94873", "6bbc9ace898e44ae57da46a324031adb"),
                _idx("train-labels-idx1-ubyte.gz", 60000,
                     "d53e105ee54ea40749a09fcbcd1e9432", "a25bea736e30d166cdddb491f175f624"),
            ),
            "test": (
                _idx("t10k-images-idx3-ubyte.gz", 10000,
                     "9fb629c4189551a2d022fa330f9573f3", "2646ac647ad5339dbf082846283269ea"),
                _idx("t10k-labels-idx1-ubyte.gz", 10000,
                     "ec29112dd5afa0611ce80d1b7f02629c", "27ae3e4e09519cfbb04c329615203637"),
            ),
        },
    ),
    "fashion-mnist": DatasetSpec(
        name="fashion-mnist",
        title="Fashion-MNIST",
        classes=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                 "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
        mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        splits={
            "train": (
                _idx("train-images-idx3-ubyte.gz", 60000,
                     "8d4fb7e6c68d591d4c3dfef9ec88bf0d", "f4a8712d7a061bf5bd6d2ca38dc4d50a"),
                _idx("train-labels-idx1-ubyte.gz", 60000,
                     "25c81989df183df01b3e8a0aad5dffbe", "9018921c3c673c538a1fc5bad174d6f9"),
            ),
            "test": (
                _idx("t10k-images-idx3-ubyte.gz", 10000,
                     "bef4ecab320f06d8554ea6380940ec79", "8181f5470baa50b63fa0f6fddb340f0a"),
                _idx("t10k-labels-idx1-ubyte.gz", 10000,
                     "bb300cfdad3c16e7a12a480ee83cd310", "15d484375f8d13e6eb1aabb0c3f46965"),
            ),
        },
    ),
}


class Loaded(NamedTuple):
    """Result of :func:`load_or_embedded`."""

    images: np.ndarray  # uint8 [N, 28, 28]
    labels: np.ndarray  # uint8 [N]
    embedded: bool  # True when the built-in subset was used
    message: str  # one line saying where the data came from (and why)


# --------------------------------------------------------------------------
# small helpers


def cache_dir() -> Path:
    """The per-user dataset cache: ``$XDG_CACHE_HOME/mcusim/datasets``."""
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "mcusim" / "datasets"


def _get_spec(name: str, spec: DatasetSpec | None) -> DatasetSpec:
    if spec is not None:
        return spec
    key = str(name).strip().lower().replace("_", "-")
    if key not in DATASETS:
        raise DatasetError(
            f"Unknown dataset {name!r}: the datasets mcusim can read are "
            f"{', '.join(sorted(DATASETS))}."
        )
    return DATASETS[key]


def _get_split(split: str) -> str:
    key = str(split).strip().lower()
    key = {"t10k": "test"}.get(key, key)
    if key not in SPLITS:
        raise DatasetError(
            f"Unknown split {split!r}: use 'train' (60000 images in the full sets) "
            f"or 'test' (10000 images, the t10k files)."
        )
    return key


def _fix_hint(spec: DatasetSpec) -> str:
    names = ", ".join(f.filename for f in spec.files())
    hint = (
        f"To fix this, pass --data-dir DIR (or set {ENV_VAR}=DIR) where DIR holds the "
        f"{spec.title} files ({names}) either directly or in DIR/{spec.name}/, or run "
        f"with --download to fetch them into {cache_dir() / spec.name}"
    )
    if spec.name == "fashion-mnist":
        hint += (
            "; on Debian the package dataset-fashion-mnist also provides them in "
            f"{SYSTEM_DATA_DIR / spec.name}"
        )
    return hint + "."


class _Problem(Exception):
    """Internal: what is wrong with one file, as a predicate ("is truncated")."""


# (resolved path, size, mtime_ns, md5, raw_md5, count) of files whose MD5 passed.
_verified: set[tuple] = set()


def _verify(path: Path, f: IdxFile, n_classes: int) -> bytes:
    """Check one gzip IDX file completely; return the decompressed payload.

    Raises FileNotFoundError if it is absent and _Problem if it is unusable.
    """
    limit = f.payload_size + (1 << 20)  # gzip never grows data by more than that
    try:
        with open(path, "rb") as fh:
            st = os.fstat(fh.fileno())
            if st.st_size > limit:           # never read a huge file whole: the size is known in advance
                raise _Problem(f"is {st.st_size} bytes, far more than the {f.payload_size} bytes of "
                               f"{f.count} {f.kind}; it is not this data set's file")
            blob = fh.read()
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise _Problem(f"could not be read ({exc.strerror or exc})") from None
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns, f.md5, f.raw_md5, f.count)
    gz_digest = None if key in _verified else hashlib.md5(blob).hexdigest()

    try:                                     # bounded: a gzip "bomb" stops one byte past the expected size
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        raw = inflater.decompress(blob, f.payload_size + 1)
        if not inflater.eof and len(raw) <= f.payload_size:
            raise EOFError("compressed data ended before the end-of-stream marker")
    except (OSError, EOFError, zlib.error) as exc:
        detail = str(exc) or type(exc).__name__
        raise _Problem(
            f"is not a complete gzip file ({detail}); it is probably truncated "
            f"or damaged"
        ) from None
    del blob

    if len(raw) < f.header_size:
        raise _Problem(f"decompresses to only {len(raw)} bytes, too short for an IDX header")
    magic, count = struct.unpack_from(">II", raw, 0)
    if magic != f.magic:
        raise _Problem(
            f"has IDX magic number {magic}, but {f.kind} files must start with "
            f"{f.magic}; it is not an IDX {f.kind} file"
        )
    if f.kind == "images":
        rows, cols = struct.unpack_from(">II", raw, 8)
        if (rows, cols) != (ROWS, COLS):
            raise _Problem(f"holds {rows}x{cols} images, expected {ROWS}x{COLS}")
    if count != f.count:
        raise _Problem(f"holds {count} {f.kind}, expected {f.count}")
    if len(raw) != f.payload_size:
        raise _Problem(
            f"decompresses to {len(raw)} bytes, expected {f.payload_size} "
            f"for {f.count} {f.kind}"
        )
    if f.kind == "labels":
        top = int(np.frombuffer(raw, np.uint8, offset=f.header_size).max(initial=0))
        if top >= n_classes:
            raise _Problem(f"contains label {top}, but there are only {n_classes} classes")
    if gz_digest is not None and gz_digest != f.md5:
        raw_digest = hashlib.md5(raw).hexdigest()
        if raw_digest != f.raw_md5:
            raise _Problem(
                f"has the wrong checksum: its MD5 is {gz_digest} (expected {f.md5}) "
                f"and the MD5 of its decompressed content is {raw_digest} "
                f"(expected {f.raw_md5})"
            )
    _verified.add(key)
    return raw


def _to_array(raw: bytes, f: IdxFile) -> np.ndarray:
    arr = np.frombuffer(raw, dtype=np.uint8, offset=f.header_size)
    if f.kind == "images":
        arr = arr.reshape(f.count, ROWS, COLS)
    return arr.copy()  # writable, independent of the bytes object


# --------------------------------------------------------------------------
# locating the files


class _Found(NamedTuple):
    folder: Path
    origin: str
    searched: list[str]


def _bases(name: str, data_dir: str | os.PathLike | None
           ) -> tuple[list[tuple[Path, str, tuple[Path, ...]]], bool]:
    """Where to look: (base, origin, folders to try) triples, and whether the
    place was named explicitly (argument or environment variable)."""
    if data_dir is not None:
        base = Path(data_dir).expanduser()
        return [(base, "--data-dir", (base / name, base))], True
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        base = Path(env).expanduser()
        return [(base, ENV_VAR, (base / name, base))], True
    cache = cache_dir()
    system = SYSTEM_DATA_DIR / name
    return [(cache, "user cache", (cache / name, cache)),
            (system, "system datasets dir", (system,))], False


def _locate(spec: DatasetSpec, data_dir, needed: Sequence[IdxFile]) -> _Found:
    bases, _ = _bases(spec.name, data_dir)
    searched: list[str] = []
    partial: tuple[Path, str, list[IdxFile]] | None = None
    for base, origin, folders in bases:
        if not base.is_dir():
            what = "is not a directory" if base.exists() else "does not exist"
            searched.append(f"{base} ({origin}; {what})")
            continue
        for folder in folders:
            if not folder.is_dir():
                continue
            present = [f for f in spec.files() if (folder / f.filename).is_file()]
            missing = [f for f in needed if f not in present]
            if not missing:
                searched.append(f"{folder} ({origin})")
                return _Found(folder, origin, searched)
            if present:
                have = ", ".join(f.filename for f in present)
                searched.append(f"{folder} ({origin}; has only {have})")
                if partial is None:
                    partial = (folder, origin, missing)
            else:
                searched.append(f"{folder} ({origin}; no {spec.title} files)")
    where = "; ".join(searched)
    if partial is not None:
        folder, origin, missing = partial
        names = ", ".join(f.filename for f in missing)
        raise DatasetError(
            f"The {spec.title} data set in {folder} (found via {origin}) is incomplete: "
            f"{names} {'is' if len(missing) == 1 else 'are'} missing. "
            f"Places searched: {where}. {_fix_hint(spec)}",
            searched, folder,
        )
    names = ", ".join(f.filename for f in needed)
    raise DatasetError(
        f"Could not find the {spec.title} data set (needed: {names}). "
        f"Places searched: {where}. {_fix_hint(spec)}",
        searched,
    )


def resolve_dir(name: str, data_dir: str | os.PathLike | None = None, *,
                spec: DatasetSpec | None = None) -> Path:
    """Return the directory holding all four files of data set ``name``.

    Only locates the files; :func:`load` verifies them.
    """
    spec = _get_spec(name, spec)
    return _locate(spec, data_dir, spec.files()).folder


# --------------------------------------------------------------------------
# loading


def _load_full(spec: DatasetSpec, split: str, data_dir) -> tuple[np.ndarray, np.ndarray, Path]:
    files = spec.splits[split]
    found = _locate(spec, data_dir, files)
    arrays = []
    for f in files:
        path = found.folder / f.filename
        try:
            raw = _verify(path, f, len(spec.classes))
        except FileNotFoundError:  # vanished since _locate looked
            raise DatasetError(
                f"The {spec.title} file {path} (found via {found.origin}) disappeared "
                f"while it was being read. {_fix_hint(spec)}",
                found.searched, path,
            ) from None
        except _Problem as problem:
            raise DatasetError(
                f"The {spec.title} {split} {f.kind} file {path} (found via "
                f"{found.origin}) is corrupt: it {problem}. Places searched: "
                f"{'; '.join(found.searched)}. Delete or replace that file: run with "
                f"--download to fetch a fresh verified copy, or point --data-dir DIR "
                f"or {ENV_VAR}=DIR at a folder with good copies.",
                found.searched, path,
            ) from None
        arrays.append(_to_array(raw, f))
        del raw
    images, labels = arrays
    return images, labels, found.folder


def load(name: str, split: str, data_dir: str | os.PathLike | None = None, *,
         spec: DatasetSpec | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Load one split of a full data set.

    ``name`` is ``"mnist"`` or ``"fashion-mnist"``; ``split`` is ``"train"`` or
    ``"test"``.  Returns ``(images, labels)``: uint8 arrays of shape
    ``[N, 28, 28]`` and ``[N]``.  ``spec`` replaces the :data:`DATASETS` entry
    (for tests and custom data sets).
    """
    spec = _get_spec(name, spec)
    images, labels, _ = _load_full(spec, _get_split(split), data_dir)
    return images, labels


def load_embedded(split: str) -> tuple[np.ndarray, np.ndarray]:
    """The Fashion-MNIST subset shipped in the package.

    ``train``: 3000 images (300 per class) from the Fashion-MNIST training set;
    ``test``: 1000 images (100 per class) from its t10k set.  Returns uint8
    ``(images [N, 28, 28], labels [N])``.
    """
    split = _get_split(split)
    path = Path(__file__).resolve().parent / "data" / EMBEDDED_FILE
    try:
        with np.load(path) as npz:
            images = np.asarray(npz[f"{split}_images"])
            labels = np.asarray(npz[f"{split}_labels"])
    except (OSError, KeyError, ValueError) as exc:
        raise DatasetError(
            f"The embedded Fashion-MNIST subset (mcusim/data/{EMBEDDED_FILE}) could not "
            f"be read ({exc}). The mcusim installation is incomplete: reinstall it, or "
            f"regenerate the file with tools/make_embedded_subset.py."
        ) from None
    if (images.dtype != np.uint8 or labels.dtype != np.uint8 or images.ndim != 3
            or images.shape[1:] != (ROWS, COLS) or labels.shape != images.shape[:1]):
        raise DatasetError(
            f"The embedded Fashion-MNIST subset (mcusim/data/{EMBEDDED_FILE}) has "
            f"unexpected contents (images {images.dtype} {images.shape}, labels "
            f"{labels.dtype} {labels.shape}). Reinstall mcusim, or regenerate the file "
            f"with tools/make_embedded_subset.py."
        )
    return images, labels


def load_or_embedded(name: str, split: str,
                     data_dir: str | os.PathLike | None = None) -> Loaded:
    """Load the full data set, or fall back to the embedded subset.

    The fallback happens only for Fashion-MNIST and only when neither
    ``data_dir`` nor ``MCUSIM_DATA`` was given: a directory the user named
    explicitly that does not hold a good copy is an error
    (:class:`DatasetError`).  ``Loaded.message`` says what was used, and why.
    """
    spec = _get_spec(name, None)
    split = _get_split(split)
    _, explicit = _bases(spec.name, data_dir)
    try:
        images, labels, folder = _load_full(spec, split, data_dir)
    except DatasetError as exc:
        if explicit or spec.name != EMBEDDED_NAME:
            raise
        images, labels = load_embedded(split)
        per_class = len(labels) // len(spec.classes)
        full = spec.splits[split][0].count
        subset = (f"so using the embedded Fashion-MNIST subset: {len(labels)} {split} "
                  f"images ({per_class} per class) instead of the full {full}")
        if exc.path is None:
            reason = (f"No full Fashion-MNIST data set was found, {subset}. Looked in: "
                      f"{'; '.join(exc.searched)}.")
        else:
            reason = f"The full Fashion-MNIST could not be used, {subset}. Reason: {exc}"
        message = (f"{reason} For the full set run with --download, or pass "
                   f"--data-dir DIR / set {ENV_VAR}=DIR.")
        return Loaded(images, labels, True, message)
    message = f"{spec.title} {split}: {len(labels)} images from {folder}"
    return Loaded(images, labels, False, message)


# --------------------------------------------------------------------------
# downloading


def _fetch(url: str, out, limit: int, timeout: float) -> None:
    request = urllib.request.Request(url, headers={"User-Agent": "mcusim-datasets"})
    opener = urllib.request.build_opener()  # reads proxy settings from the environment now
    with opener.open(request, timeout=timeout) as response:
        length = response.headers.get("Content-Length")
        total = 0
        while True:
            chunk = response.read(1 << 16)
            if not chunk:
                break
            total += len(chunk)
            if total > limit:
                raise _Problem(f"is larger than {limit} bytes, far more than expected")
            out.write(chunk)
        if length is not None and length.strip().isdigit() and total != int(length):
            raise _Problem(f"was cut off after {total} of {int(length)} bytes")


def _download_one(spec: DatasetSpec, f: IdxFile, folder: Path, mirrors: Sequence[str],
                  timeout: float, log: Callable[[str], None]) -> None:
    target = folder / f.filename
    failures = []
    limit = f.payload_size + (1 << 20)  # gzip never grows data by more than that
    for mirror in mirrors:
        url = urllib.parse.urljoin(mirror if mirror.endswith("/") else mirror + "/",
                                   f.filename)
        log(f"downloading {url}")
        try:
            fd, tmp_name = tempfile.mkstemp(prefix=f".{f.filename}.", suffix=".part",
                                            dir=folder)
        except OSError as exc:
            raise DatasetError(
                f"Cannot write the download of {f.filename} into {folder} "
                f"({exc.strerror or exc}). Choose a writable place with --data-dir DIR "
                f"or {ENV_VAR}=DIR."
            ) from None
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                _fetch(url, out, limit, timeout)
                out.flush()
                os.fsync(out.fileno())
            _verify(tmp, f, len(spec.classes))
            os.chmod(tmp, 0o644)
            os.replace(tmp, target)
            log(f"saved {target}")
            return
        except _Problem as problem:
            failures.append(f"{url}: the downloaded file {problem}")
        except urllib.error.HTTPError as exc:
            failures.append(f"{url}: HTTP error {exc.code} ({exc.reason})")
        except urllib.error.URLError as exc:
            failures.append(f"{url}: {exc.reason}")
        except (OSError, http.client.HTTPException, ValueError) as exc:
            failures.append(f"{url}: {exc or type(exc).__name__}")
        finally:
            tmp.unlink(missing_ok=True)
        log(f"failed: {failures[-1]}")
    raise DatasetError(
        f"Could not download {f.filename} of {spec.title}: every mirror failed "
        f"({'; '.join(failures)}). Nothing was saved as {target}. To fix this, check "
        f"the network connection (and proxy settings) and try again, or copy the "
        f"four {spec.title} files by hand into {folder} or into any DIR given with "
        f"--data-dir DIR or {ENV_VAR}=DIR."
    )


def download(name: str, dest_dir: str | os.PathLike | None = None,
             mirrors: Iterable[str] | None = None, *, spec: DatasetSpec | None = None,
             timeout: float = 60.0, log: Callable[[str], None] | None = None) -> Path:
    """Fetch the four files of ``name`` into ``<dest_dir>/<name>/`` and return that folder.

    ``dest_dir`` defaults to :func:`cache_dir`, so a later :func:`load` finds the
    files without configuration.  Mirrors (base URLs) are tried in order for
    each file.  A file is written under its final name only after it passed the
    full check (MD5 included), via a temporary file in the same folder and
    ``os.replace``.  Files already present and valid are kept.  ``log`` gets
    one-line progress messages.
    """
    spec = _get_spec(name, spec)
    mirrors = list(spec.mirrors if mirrors is None else mirrors)
    log = log or (lambda _msg: None)
    base = Path(dest_dir).expanduser() if dest_dir is not None else cache_dir()
    folder = base / spec.name
    if not mirrors:
        raise DatasetError(f"No download mirrors were given for {spec.title}.")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DatasetError(
            f"Cannot create the download folder {folder} ({exc.strerror or exc}). "
            f"Choose a writable place with --data-dir DIR or {ENV_VAR}=DIR."
        ) from None
    for f in spec.files():
        target = folder / f.filename
        try:
            _verify(target, f, len(spec.classes))
            log(f"{target} is already present and valid")
            continue
        except FileNotFoundError:
            pass
        except _Problem as problem:
            log(f"{target} {problem}; downloading it again")
        _download_one(spec, f, folder, mirrors, timeout, log)
    return folder


# --------------------------------------------------------------------------
# one entry point: named data sets and user .npz files

#: The embedded 8x8 digits file inside ``mcusim/data`` (see tools/make_digits.py).
DIGITS_FILE = "digits.npz"
#: Names :func:`load_dataset` knows, besides a path to a ``.npz`` file.
KNOWN_DATASETS = ("mnist", "fashion-mnist", "digits")
#: Largest uncompressed size of the arrays read from one ``.npz`` file.
MAX_NPZ_BYTES = 4 * GB
#: Share of a user file held out as the test split when it brings none.
HOLDOUT_FRACTION = Fraction(1, 6)
HOLDOUT_SEED = 0
NPZ_KEYS = ("x", "y", "x_test", "y_test")
NPZ_FORMAT = (
    "an .npz file (numpy.savez or savez_compressed) holding x: images (N, C, H, W) or "
    "(N, H, W), uint8 0..255 or float 0..1; optional y: integer labels 0..K-1, shape "
    "(N,); optional x_test and y_test in the same form"
)


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
    """A loaded data set, ready for training.

    Images are C-contiguous uint8 ``(N, C, H, W)``; labels int64 ``(N,)``, or
    None for an unlabelled set (then ``classes`` is None too).
    """

    name: str
    train_x: np.ndarray
    train_y: np.ndarray | None
    test_x: np.ndarray
    test_y: np.ndarray | None
    shape: tuple[int, int, int]  # (C, H, W)
    classes: int | None
    message: str  # one line: where the data came from, and what was done to it
    embedded: bool


def holdout_split(n: int, labels: np.ndarray | None = None,
                  fraction: Fraction = HOLDOUT_FRACTION,
                  seed: int = HOLDOUT_SEED) -> tuple[np.ndarray, np.ndarray]:
    """Seeded (train, test) index arrays, each sorted: round(fraction * n) of every
    class (or of all ``n`` images when unlabelled) go to the test split."""
    order = np.random.default_rng(seed).permutation(n)
    groups = [order] if labels is None else [order[labels[order] == c]
                                             for c in np.unique(labels)]
    test = np.zeros(n, dtype=bool)
    for group in groups:
        test[group[: round(len(group) * fraction)]] = True
    return np.flatnonzero(~test), np.flatnonzero(test)


class _Bad(Exception):
    """Internal: what is wrong with a .npz file, and how to fix it."""

    def __init__(self, problem: str, fix: str):
        super().__init__(problem)
        self.problem, self.fix = problem, fix


_RESAVE = "Write it again with numpy.savez_compressed(FILE, x=..., y=...)"


def _npy_headers(zf: zipfile.ZipFile) -> dict[str, tuple[zipfile.ZipInfo, tuple, np.dtype]]:
    """(member, shape, dtype) of every x/y array, read from the headers only."""
    members = {info.filename[:-4]: info for info in zf.infolist()
               if info.filename.endswith(".npy")}
    if "x" not in members:
        have = ", ".join(sorted(members)) or "no arrays at all"
        raise _Bad(f"it has no array named x (it has {have})",
                   "Name the images x: numpy.savez_compressed(FILE, x=..., y=...)")
    headers, total = {}, 0
    for key in (k for k in NPZ_KEYS if k in members):
        info = members[key]
        try:
            with zf.open(info) as fh:
                version = np.lib.format.read_magic(fh)
                if version == (1, 0):
                    shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
                else:  # 3.0 only differs for field names, which are rejected below
                    shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
                offset = fh.tell()
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
            raise _Bad(f"array {key} is not a readable .npy array ({exc})", _RESAVE) from None
        if dtype.hasobject or dtype.fields is not None:
            raise _Bad(f"array {key} holds Python objects or records (dtype {dtype}), "
                       f"which mcusim does not load (allow_pickle=False)",
                       f"Store plain numbers, e.g. {key}.astype(np.uint8)")
        nbytes = math.prod(shape) * dtype.itemsize
        if offset + nbytes != info.file_size:
            raise _Bad(f"array {key} is damaged: its header promises {nbytes} bytes of "
                       f"data but the file holds {info.file_size - offset}",
                       f"The file was cut short or edited. {_RESAVE}")
        total += nbytes
        if total > MAX_NPZ_BYTES:
            raise _Bad(f"its arrays would take {total / GB:.1f} GB uncompressed, more "
                       f"than the {MAX_NPZ_BYTES / GB:g} GB mcusim reads from one file",
                       "Use fewer or smaller images")
        headers[key] = (info, shape, dtype)
    return headers


def _check_header(key: str, shape: tuple, dtype: np.dtype) -> None:
    """Shape and dtype rules for one array, before its data is read."""
    if key.startswith("x"):
        if len(shape) not in (3, 4):
            raise _Bad(f"{key} has shape {shape}; images must be (N, C, H, W) or (N, H, W)",
                       f"Reshape {key}")
        if len(shape) == 4 and shape[1] > 4 and shape[3] in (1, 3, 4):
            raise _Bad(f"{key} has shape {shape}, which looks channels-last (N, H, W, C); "
                       f"mcusim wants channels first", f"Store {key}.transpose(0, 3, 1, 2)")
        if dtype.kind not in "uif":
            raise _Bad(f"{key} has dtype {dtype}; images must be uint8 0..255 or float 0..1",
                       f"Store {key}.astype(np.uint8)")
    else:
        if len(shape) != 1:
            raise _Bad(f"{key} has shape {shape}; labels must be one integer per image",
                       f"Store {key}.reshape(-1)")
        if dtype.kind not in "ui":
            raise _Bad(f"{key} has dtype {dtype}; labels must be integers 0..K-1",
                       f"Store {key}.astype(np.int64) after checking the values are whole")
    if 0 in shape:
        raise _Bad(f"{key} is empty (shape {shape})", f"Store at least one image in {key}")


def _chw(shape: tuple) -> tuple:
    return tuple(shape[1:]) if len(shape) == 4 else (1, *shape[1:])


def _check_headers(headers: dict) -> None:
    for key, (_, shape, dtype) in headers.items():
        _check_header(key, shape, dtype)
    for x, y in (("x", "y"), ("x_test", "y_test")):
        if y in headers and x not in headers:
            raise _Bad(f"it has {y} but no {x}", f"Add {x}, or drop {y}")
        if y in headers and headers[y][1][0] != headers[x][1][0]:
            raise _Bad(f"{x} holds {headers[x][1][0]} images but {y} holds "
                       f"{headers[y][1][0]} labels", "Give exactly one label per image")
    if "x_test" in headers:
        train, test = (_chw(headers[k][1]) for k in ("x", "x_test"))
        if train != test:
            raise _Bad(f"x holds {train} images but x_test holds {test} (C, H, W)",
                       "Give both splits the same image shape")
        if ("y" in headers) != ("y_test" in headers):
            have, lack = ("y", "y_test") if "y" in headers else ("y_test", "y")
            raise _Bad(f"it has {have} but no {lack}",
                       "Label both splits, or neither")


def _read(zf: zipfile.ZipFile, key: str, info: zipfile.ZipInfo) -> np.ndarray:
    try:
        with zf.open(info) as fh:
            return np.lib.format.read_array(fh, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise _Bad(f"array {key} is damaged ({exc})",
                   f"The file was cut short or corrupted. {_RESAVE}") from None


def _images(key: str, x: np.ndarray, notes: list[str]) -> np.ndarray:
    """uint8 (N, C, H, W) from integer 0..255 or float 0..1 pixels."""
    if x.ndim == 3:
        x = x[:, None]
    if x.dtype.kind == "f":
        if not np.isfinite(x).all():
            raise _Bad(f"{key} contains NaN or infinite values", "Replace them")
        lo, hi = float(x.min()), float(x.max())
        if lo < 0 or hi > 1:
            raise _Bad(f"{key} is float with values from {lo:g} to {hi:g}; float pixels "
                       f"must lie in [0, 1]", "Divide by the maximum, or store uint8 0..255")
        x = np.rint(x.astype(np.promote_types(x.dtype, np.float32)) * 255).astype(np.uint8)
        note = "float pixels in [0, 1] converted to uint8 with round(x * 255)"
        if note not in notes:
            notes.append(note)
    elif x.dtype != np.uint8:
        lo, hi = int(x.min()), int(x.max())
        if lo < 0 or hi > 255:
            raise _Bad(f"{key} has pixel values from {lo} to {hi}; they must lie in 0..255",
                       "Rescale to 0..255 and store uint8")
    return np.ascontiguousarray(x, dtype=np.uint8)


def _labels(key: str, y: np.ndarray) -> np.ndarray:
    lo, hi = int(y.min()), int(y.max())
    if lo < 0 or hi > 255:
        raise _Bad(f"{key} has labels from {lo} to {hi}; labels must be class numbers "
                   f"0..K-1 with at most 256 classes",
                   "Renumber the classes 0, 1, 2, ... (np.unique(y, return_inverse=True))")
    return y.astype(np.int64)


def _parse_npz(path: Path) -> tuple[dict[str, np.ndarray | None], list[str]]:
    """Read and check a user .npz; returns train_x/train_y/test_x/test_y (split
    held out if absent; y None when unlabelled) and notes for the message."""
    try:
        zf = zipfile.ZipFile(path)
    except FileNotFoundError:
        raise _Bad("it does not exist", "Check the path") from None
    except IsADirectoryError:
        raise _Bad("it is a directory", "Name the .npz file itself") from None
    except PermissionError as exc:
        raise _Bad(f"it cannot be read ({exc.strerror})", "Give mcusim read access to it") from None
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise _Bad(f"it is not a readable zip archive, so not an .npz file, or it is "
                   f"truncated ({getattr(exc, 'strerror', None) or exc})", _RESAVE) from None
    notes: list[str] = []
    with zf:
        headers = _npy_headers(zf)
        _check_headers(headers)
        arrays = {key: _read(zf, key, info) for key, (info, _, _) in headers.items()}
    out = {"train_x": _images("x", arrays["x"], notes),
           "train_y": _labels("y", arrays["y"]) if "y" in arrays else None}
    if "x_test" in arrays:
        out["test_x"] = _images("x_test", arrays["x_test"], notes)
        out["test_y"] = _labels("y_test", arrays["y_test"]) if "y_test" in arrays else None
    else:
        x, y = out["train_x"], out["train_y"]
        train, test = holdout_split(len(x), y)
        if not len(test) or not len(train):
            raise _Bad(f"it has only {len(x)} images, too few to hold out "
                       f"{HOLDOUT_FRACTION} as a test split", "Add x_test (and y_test)")
        out.update(train_x=x[train], test_x=x[test],
                   train_y=None if y is None else y[train],
                   test_y=None if y is None else y[test])
        notes.append(f"test split held out: {HOLDOUT_FRACTION} of the images"
                     f"{'' if y is None else ' of every class'}, seed {HOLDOUT_SEED}; "
                     f"add x_test to choose it")
    out["classes"] = None
    if out["train_y"] is not None:
        k = out["classes"] = int(max(out["train_y"].max(), out["test_y"].max())) + 1
        absent = np.flatnonzero(np.bincount(out["train_y"], minlength=k) == 0)
        if len(absent):
            raise _Bad(f"the labels run 0..{k - 1} but class {int(absent[0])} has no "
                       f"training image", "Renumber the classes 0..K-1 without gaps")
    return out, notes


def _assemble(name: str, parts: dict, message: str, embedded: bool,
              train_limit: int | None) -> Dataset:
    """The Dataset of train/test arrays ``parts``, cut to ``train_limit`` images."""
    x, y = parts["train_x"], parts["train_y"]
    if train_limit and train_limit < len(x):
        message = (f"{message.rstrip('.')}; using the first {train_limit} of its "
                   f"{len(x)} training images")
        x, y = x[:train_limit], None if y is None else y[:train_limit]

    def labels(arr):
        return None if arr is None else np.ascontiguousarray(arr, dtype=np.int64)

    return Dataset(name=name, train_x=np.ascontiguousarray(x, dtype=np.uint8),
                   train_y=labels(y),
                   test_x=np.ascontiguousarray(parts["test_x"], dtype=np.uint8),
                   test_y=labels(parts["test_y"]), shape=tuple(int(d) for d in x.shape[1:]),
                   classes=parts["classes"], message=message, embedded=embedded)


def _load_npz(path: Path, train_limit) -> Dataset:
    try:
        parts, notes = _parse_npz(path)
    except _Bad as bad:
        raise DatasetError(f"Cannot use the data set file {path}: {bad.problem}. "
                           f"{bad.fix}. Expected: {NPZ_FORMAT}.", path=path) from None
    n_train, n_test = len(parts["train_x"]), len(parts["test_x"])
    c, h, w = parts["train_x"].shape[1:]
    labelled = "unlabelled" if parts["train_y"] is None else "labelled"
    message = (f"{path} ({n_train} train / {n_test} test images {c}x{h}x{w}, {labelled}"
               f"{''.join('; ' + n for n in notes)})")
    return _assemble(path.name, parts, message, False, train_limit)


def _load_digits(train_limit) -> Dataset:
    path = Path(__file__).resolve().parent / "data" / DIGITS_FILE
    try:
        parts, _ = _parse_npz(path)
    except _Bad as bad:
        raise DatasetError(f"The embedded digits set (mcusim/data/{DIGITS_FILE}) could not "
                           f"be read: {bad.problem}. The mcusim installation is incomplete: "
                           f"reinstall it, or regenerate the file with tools/make_digits.py.",
                           path=path) from None
    message = (f"embedded digits: UCI optical recognition of handwritten digits "
               f"(8x8, scikit-learn's copy), {len(parts['train_x'])} train / "
               f"{len(parts['test_x'])} test images")
    return _assemble("digits", parts, message, True, train_limit)


def _load_idx_set(name: str, data_dir, train_limit) -> Dataset:
    spec = DATASETS[name]
    train, test = (load_or_embedded(name, split, data_dir) for split in SPLITS)
    message = train.message if train.embedded else \
        f"{spec.title} from {resolve_dir(name, data_dir)}"
    parts = {"train_x": train.images[:, None], "train_y": train.labels,
             "test_x": test.images[:, None], "test_y": test.labels,
             "classes": len(spec.classes)}
    return _assemble(name, parts, message, train.embedded, train_limit)


_download_set = download  # load_dataset's argument ``download`` hides the function


def load_dataset(name_or_path: str | os.PathLike, data_dir: str | os.PathLike | None = None,
                 download: bool = False, train_limit: int | None = None) -> Dataset:
    """Load a data set by name (``mnist``, ``fashion-mnist``, ``digits``) or a
    user ``.npz`` file (see :data:`NPZ_FORMAT`).

    ``mnist`` and ``fashion-mnist`` are found as :func:`load_or_embedded` finds
    them (Fashion-MNIST falls back to its embedded subset); ``download`` fetches
    them first.  ``digits`` is embedded.  ``train_limit`` keeps only the first
    that many training images.  Every failure is a :class:`DatasetError`.
    """
    if train_limit is not None and (isinstance(train_limit, bool) or not isinstance(
            train_limit, (int, np.integer)) or train_limit < 0):
        raise DatasetError(f"train_limit must be a whole number >= 0 (0 or None: all "
                           f"images), not {train_limit!r}.")
    text = os.fspath(name_or_path)
    if text.lower().endswith(".npz"):
        ds = _load_npz(Path(text).expanduser(), train_limit)
    else:
        key = text.strip().lower().replace("_", "-")
        if key not in KNOWN_DATASETS:
            raise DatasetError(
                f"Unknown dataset {text!r}: use one of {', '.join(KNOWN_DATASETS)}, or the "
                f"path of a FILE.npz ({NPZ_FORMAT}).")
        if key in DATASETS:
            if download:
                _download_set(key, data_dir)
            return _load_idx_set(key, data_dir, train_limit)
        ds = _load_digits(train_limit)
    if download:
        return dataclasses.replace(ds, message=ds.message + " (nothing to download)")
    return ds
