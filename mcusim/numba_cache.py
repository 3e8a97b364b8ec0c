"""Numba's on-disk cache, stamped with the whole package's source.

Numba keys a cached function by its own file's timestamp only, yet inlines what it calls: after an edit
to a helper (say ops/nn_math.py) its callers in other files kept their old machine code, which gave
wrong numbers or crashed. mcusim's functions are stamped instead with the digest of every mcusim module
that Numba compiles, so any change to one retires them all. Import this module before any `njit`.
"""
from __future__ import annotations

from pathlib import Path

from numba.core import caching

from .disk_cache import source_digest

_PACKAGE = Path(__file__).resolve().parent
_SOURCES = sorted((_PACKAGE / "ops").glob("*.py")) + [_PACKAGE / "classifier.py"]
STAMP = source_digest(*_SOURCES)


def _caching(name: str):
    """A class of numba.core.caching; newer Numba releases dropped the leading underscore."""
    return getattr(caching, name, None) or getattr(caching, "_" + name)


class _PackageStamped:
    """A locator mixin: mcusim's own files only, stamped with the package digest."""

    def get_source_stamp(self):
        return STAMP

    @classmethod
    def from_function(cls, py_func, py_file):
        if not Path(py_file).resolve().is_relative_to(_PACKAGE):
            return None
        return super().from_function(py_func, py_file)


class _InTree(_PackageStamped, _caching("InTreeCacheLocator")):
    """Beside the source, as Numba does by default."""


class _UserWide(_PackageStamped, _caching("UserWideCacheLocator")):
    """In the user's cache folder when the package's folder is read-only."""


_cache_impl = _caching("CacheImpl")
if _InTree not in _cache_impl._locator_classes:
    _cache_impl._locator_classes[:0] = [_InTree, _UserWide]
