"""The code is ruff-clean (rules in pyproject.toml)."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_clean() -> None:
    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    if not Path(ruff).exists():
        pytest.skip("ruff is not installed (it is in the `test` extra)")
    proc = subprocess.run([ruff, "check", str(ROOT)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_theory_never_imports_sim() -> None:
    """Dependencies point one way: book -> sim -> theory."""
    for path in (ROOT / "theory").rglob("*.py"):
        text = path.read_text()
        assert "import sim" not in text and "from sim" not in text, path


def test_numba_cache_digest_covers_every_jitted_module() -> None:
    """numba does not track cross-module inlining, so ``sim.JIT_SOURCES`` must name every module
    with jitted code (else an edit there could leave stale machine code in the cache)."""
    import sim

    root = Path(sim.__file__).parent
    jitted = {p.name for p in root.glob("*.py") if "numba.njit" in p.read_text()}
    assert jitted <= set(sim.JIT_SOURCES), jitted - set(sim.JIT_SOURCES)
