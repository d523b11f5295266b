"""sim: configs, numba kernels, Monte Carlo, sweeps, cache, statistics, claims, figures, CLI.

numba caches each compiled kernel beside its own source file and does not notice edits to the
modules it calls into (a kernel of ``heads.py`` inlines functions of ``kernels.py``, ``rng.py``
and ``fastmath.py``), so an edit there could leave stale machine code running. sigprop therefore
keeps numba's cache in a directory named by a digest of every module with jitted code
(``NUMBA_CACHE_DIR``, unless already set): any edit compiles afresh.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

#: modules whose jitted functions are compiled into one another (and the config they encode)
JIT_SOURCES = ("config.py", "fastmath.py", "linalg.py", "rng.py", "kernels.py", "heads.py",
               "bench.py")


def numba_cache_dir() -> Path:
    """``<repo>/.cache/numba/<digest>`` (``~/.cache/sigprop/numba/<digest>`` when the source
    tree is not writable); the digest covers ``JIT_SOURCES``."""
    here = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for name in JIT_SOURCES:
        h.update(name.encode() + (here / name).read_bytes())
    root = here.parent / ".cache" / "numba"
    if not os.access(here.parent, os.W_OK):
        root = Path.home() / ".cache" / "sigprop" / "numba"
    return root / h.hexdigest()[:16]


if "NUMBA_CACHE_DIR" not in os.environ:
    os.environ["NUMBA_CACHE_DIR"] = str(numba_cache_dir())
    if "numba" in sys.modules:  # imported before sim: point its config at the same place
        sys.modules["numba"].config.CACHE_DIR = os.environ["NUMBA_CACHE_DIR"]
