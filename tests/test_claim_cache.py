"""The claim-result cache: a second run loads, a corrupt entry is recomputed with a warning,
and a code change (a different source digest) misses."""

import pytest

from sim import claim_cache
from sim.cache import CacheCorruptionWarning
from sim.claims import CLAIMS, get_claim


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SIGPROP_CACHE_DIR", str(tmp_path))
    return tmp_path


def _count_runs(monkeypatch) -> list[int]:
    claim = get_claim("REM-6")
    calls = []
    original = claim.run

    def counted(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setitem(CLAIMS, "REM-6", claim.__class__(**{**claim.__dict__, "run": counted}))
    return calls


def test_second_run_loads(cache, monkeypatch) -> None:
    calls = _count_runs(monkeypatch)
    first = claim_cache.run_claim("REM-6", "quick")
    second = claim_cache.run_claim("REM-6", "quick")
    assert len(calls) == 1 and second.to_dict() == first.to_dict()
    claim_cache.run_claim("REM-6", "book")  # another profile is another entry
    assert len(calls) == 2


def test_corrupt_entry_is_recomputed(cache, monkeypatch) -> None:
    calls = _count_runs(monkeypatch)
    claim_cache.run_claim("REM-6", "quick")
    (path,) = (cache / "claims").glob("*.pkl")
    path.write_bytes(path.read_bytes()[:-5] + b"xxxxx")
    with pytest.warns(CacheCorruptionWarning, match="checksum"):
        result = claim_cache.run_claim("REM-6", "quick")
    assert len(calls) == 2 and result.id == "REM-6"


def test_code_change_misses(cache, monkeypatch) -> None:
    calls = _count_runs(monkeypatch)
    claim_cache.run_claim("REM-6", "quick")
    monkeypatch.setattr(claim_cache, "source_digest", lambda: "another version of the code")
    claim_cache.run_claim("REM-6", "quick")
    assert len(calls) == 2


def test_digest_covers_theory_and_sim() -> None:
    assert len(claim_cache.source_digest()) == 64


def test_prefetch_fills_the_cache_in_worker_processes(cache, monkeypatch) -> None:
    """``prefetch`` computes missing claims in two worker processes; ``run_claim`` then loads
    exactly what a serial computation gives, without running the claim again."""
    ids = ["REM-6", "GAP-3"]
    claim_cache.prefetch(ids, "quick", workers=2)
    calls = _count_runs(monkeypatch)
    loaded = claim_cache.run_claim("REM-6", "quick")
    assert not calls  # loaded, not recomputed
    gap3 = claim_cache.run_claim("GAP-3", "quick").to_dict()
    claim_cache._path("GAP-3", "quick").unlink()
    assert claim_cache.run_claim("GAP-3", "quick").to_dict() == gap3  # serial = worker result
    assert loaded.id == "REM-6"
