"""Results computed from a firmware ELF (the cycle model's static decode, the DWARF prototypes) kept on
disk, keyed by the ELF's bytes and the source of the code that computed them, so that a second
`mcusim run` of the same ELF starts without redoing them. A damaged or unreadable entry is recomputed."""
from __future__ import annotations

import hashlib
import pickle
from pathlib import Path
from typing import Callable, TypeVar

T = TypeVar("T")


def source_digest(*sources) -> str:
    """Hash of source files, given as modules or paths: a change to the code that computes an entry retires it."""
    h = hashlib.sha256()
    for source in sources:
        h.update(Path(getattr(source, "__file__", source)).read_bytes())
    return h.hexdigest()


def cached(kind: str, key_parts: tuple[str, ...], compute: Callable[[], T],
           intact: Callable[[T], bool] = lambda value: True) -> T:
    """The entry for `key_parts`, computed and stored if it is missing, damaged or not `intact`."""
    from .outputs import write_atomic
    from .toolchain import cache_root
    folder = cache_root() / kind
    path = folder / (hashlib.sha256("\0".join(key_parts).encode()).hexdigest()[:32] + ".pickle")
    try:
        value = pickle.loads(path.read_bytes())
        if intact(value):
            return value
    except Exception:              # noqa: BLE001 - missing, damaged or from another version: recompute
        pass
    value = compute()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        write_atomic(path, pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))
    except OSError:                # a read-only cache only costs the time
        pass
    return value
