"""Cache of claim results: a claim's verdict, comparisons and figure data under one profile.

The simulations behind a claim are cached point by point (``sim.cache``); the theory behind it
(quadratures, recursions) is not, and some claims take minutes of it. ``run_claim`` stores the
whole ``ClaimResult`` under a key of (claim id, profile, version, a digest of every source file
of ``theory/`` and ``sim/``), so any code change recomputes it and the book's ledger and pages
share one evaluation. Entries are written atomically with a sha256; a corrupt entry warns, is
deleted and is recomputed.
"""

from __future__ import annotations

import contextlib
import hashlib
import pickle
import warnings
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

from sim.cache import CacheCorruptionWarning, atomic_write, cache_dir
from sim.claims import ClaimResult, get_claim
from sim.profiles import check_profile
from sim.version import VERSION

_PACKAGES = ("theory", "sim")


@cache
def source_digest() -> str:
    """sha256 over the ``.py`` files of ``theory/`` and ``sim/`` (paths and contents)."""
    root = Path(__file__).resolve().parent.parent
    h = hashlib.sha256()
    for package in _PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            h.update(str(path.relative_to(root)).encode())
            h.update(path.read_bytes())
    return h.hexdigest()


def claim_key(claim_id: str, profile: str) -> str:
    return hashlib.sha256(f"{claim_id}|{profile}|{VERSION}|{source_digest()}".encode()
                          ).hexdigest()


def _path(claim_id: str, profile: str) -> Path:
    return cache_dir() / "claims" / f"{claim_key(claim_id, profile)}.pkl"


def _load(path: Path) -> ClaimResult | None:
    try:
        blob = path.read_bytes()
    except FileNotFoundError:
        return None
    digest, _, payload = blob.partition(b"\n")
    if hashlib.sha256(payload).hexdigest().encode() != digest:
        warnings.warn(f"corrupt claim cache entry {path}: checksum mismatch; deleted, it will "
                      "be recomputed", CacheCorruptionWarning, stacklevel=3)
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)
        return None
    result = pickle.loads(payload)  # noqa: S301  our own checksummed file
    return result if isinstance(result, ClaimResult) else None


def _store(path: Path, result: ClaimResult) -> None:
    payload = pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL)
    atomic_write(path, lambda f: f.write(hashlib.sha256(payload).hexdigest().encode() + b"\n"
                                         + payload))


def run_claim(claim_id: str, profile: str = "book", executor: Any = "serial") -> ClaimResult:
    """The claim's result under ``profile``: from the cache when this code has computed it
    before, else computed (simulations through their own cache) and stored."""
    claim = get_claim(claim_id)
    check_profile(profile)
    path = _path(claim_id, profile)
    cached = _load(path)
    if cached is not None:
        return cached
    result = claim.run(profile, executor=executor)
    _store(path, result)
    return result


def _run_and_store(claim_id: str, profile: str) -> str:
    """Worker task of ``prefetch``: compute (or load) one claim into the cache."""
    run_claim(claim_id, profile)
    return claim_id


def prefetch(claim_ids: Iterable[str], profile: str = "book", workers: int | None = None) -> None:
    """Compute the claims ``claim_ids`` that are not cached yet, ``workers`` at a time in local
    processes (default: one per usable core, one numba thread each), so that independent claims
    (and their single-threaded quadratures) run side by side. Results are the same as
    ``run_claim`` computes alone; later ``run_claim`` calls load them."""
    from sim.sweep import _process_pool, usable_cores

    check_profile(profile)
    missing = [c for c in claim_ids if not _path(get_claim(c).id, profile).exists()]
    workers = min(workers or usable_cores(), len(missing))
    if workers <= 1:
        for claim_id in missing:
            run_claim(claim_id, profile)
        return
    with _process_pool(workers) as pool:
        for future in [pool.submit(_run_and_store, c, profile) for c in missing]:
            future.result()
