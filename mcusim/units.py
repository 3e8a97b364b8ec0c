"""The one unit convention of every figure mcusim prints, plots or writes: kB = 1000 bytes (as the paper's
Table I). results.json and plans keep exact byte counts; kB is for people."""
KB = 1000


def kb(nbytes: float, digits: int = 1) -> str:
    return f"{nbytes / KB:.{digits}f} kB"
