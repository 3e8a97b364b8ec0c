"""Numba's cache of the twins is stamped with the package's source: editing a helper retires its callers'
cached machine code too (Numba alone would keep it, keyed by each caller's own file)."""
import subprocess
import sys

from mcusim import numba_cache
from mcusim.ops import train_f32


def test_twins_are_cached_under_the_package_stamp():
    locator = train_f32.relu_f32_forward._cache._impl._locator
    assert locator.get_source_stamp() == numba_cache.STAMP


def test_the_stamp_follows_every_twin_source(tmp_path):
    """A copy of the package with one helper edited gets another stamp."""
    import shutil
    package = tmp_path / "mcusim"
    shutil.copytree(numba_cache._PACKAGE, package, ignore=shutil.ignore_patterns("__pycache__"))
    stamp = "import mcusim.numba_cache as c; print(c.STAMP)"

    def stamp_of_copy() -> str:
        proc = subprocess.run([sys.executable, "-c", stamp], capture_output=True, text=True, cwd=tmp_path,
                              env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"}, timeout=120)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.strip()
    assert stamp_of_copy() == numba_cache.STAMP
    with open(package / "ops" / "nn_math.py", "a") as f:
        f.write("\n# an edit\n")
    assert stamp_of_copy() != numba_cache.STAMP
