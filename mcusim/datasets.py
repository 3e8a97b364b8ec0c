"""MNIST and Fashion-MNIST loaders, plus a small Fashion-MNIST subset shipped in the package.

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
import gzip
import hashlib
import http.client
import os
import struct
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zlib
from pathlib import Path
from typing import Callable, Iterable, Mapping, NamedTuple, Sequence

import numpy as np

from .errors import McusimError

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
    try:
        with open(path, "rb") as fh:
            st = os.fstat(fh.fileno())
            blob = fh.read()
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise _Problem(f"could not be read ({exc.strerror or exc})") from None
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns, f.md5, f.raw_md5, f.count)
    gz_digest = None if key in _verified else hashlib.md5(blob).hexdigest()

    try:
        raw = gzip.decompress(blob)
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
