"""The result cache: keys, round trips, atomic writes, corruption handling, location."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np
import pytest

import sim.cache as cache_module
from sim.cache import Cache, CacheCorruptionWarning, cache_dir, result_key
from sim.config import CONFIG_FIELDS, Config
from sim.montecarlo import Result, simulate

BASE = Config(T=8, d=8, depth=2)
SAMPLES = 4

# One valid alternative value per config field (the key must see every field).
ALTERNATIVES = {
    "T": 4, "d": 16, "heads": 2, "depth": 3, "d_ff": 16, "beta": 0.5, "sigma_v2": 0.5,
    "sigma_w2": 1.0, "sigma_b2": 0.1, "alpha_attn": 0.5, "alpha_mlp": 0.5, "norm": "pre",
    "mlp": False, "activation": "gelu", "attention": "markov", "markov_s": 0.5, "gap": "remove",
    "diff_lambda": 0.25, "shared_weights": True, "causal": True, "input": "gaussian", "rho": 0.5,
    "dtype": "float32", "value": "symmetric", "steer_mu": 0.5, "steer_u": (1.0,) * 8,
    "value_matrix": (0.5,) * 64, "qk": "diagonal", "qk_scale": 0.5, "qk_matrix": (0.5,) * 64,
    "sink": True, "sink_align": 0.25, "sink_cos": 0.25, "sink_value": 0.5,
}


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cache:
    monkeypatch.setenv("SIGPROP_CACHE_DIR", str(tmp_path / "cache"))
    return Cache()


@pytest.fixture(scope="module")
def result() -> Result:
    return simulate(BASE, SAMPLES, 3, progress=False)


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def _altered(field: str) -> Config:
    try:
        return BASE.replace(**{field: ALTERNATIVES[field]})
    except ValueError:  # a field with a single allowed value: bypass validation for the key test
        config = BASE.replace()
        object.__setattr__(config, field, ALTERNATIVES[field])
        return config


# ----------------------------------------------------------------------------- keys

def test_key_is_sha256_hex_and_deterministic() -> None:
    key = result_key(BASE, SAMPLES, 0, "forward")
    assert len(key) == 64 and int(key, 16) >= 0
    assert key == result_key(Config(T=8, d=8, depth=2), SAMPLES, 0)


def test_alternatives_cover_every_config_field() -> None:
    assert set(ALTERNATIVES) == set(CONFIG_FIELDS)


@pytest.mark.parametrize("field", CONFIG_FIELDS)
def test_key_changes_with_every_config_field(field: str) -> None:
    altered = _altered(field)
    assert getattr(altered, field) != getattr(BASE, field)
    assert result_key(altered, SAMPLES, 0) != result_key(BASE, SAMPLES, 0)


def test_key_changes_with_samples_seed_kind_and_version(monkeypatch: pytest.MonkeyPatch) -> None:
    key = result_key(BASE, SAMPLES, 0, "forward")
    others = {result_key(BASE, SAMPLES + 1, 0, "forward"), result_key(BASE, SAMPLES, 1, "forward"),
              result_key(BASE, SAMPLES, 0, "attention")}
    monkeypatch.setattr(cache_module, "VERSION", cache_module.VERSION + ".changed")
    others.add(result_key(BASE, SAMPLES, 0, "forward"))
    assert key not in others and len(others) == 4


def test_key_ignores_int_versus_float_spelling() -> None:
    assert result_key(BASE.replace(beta=1), SAMPLES, 0) == result_key(BASE.replace(beta=1.0),
                                                                       SAMPLES, 0)


@pytest.mark.parametrize("bad", [{"samples": 0}, {"samples": 2.0}, {"seed": -1}, {"kind": ""},
                                 {"config": {"T": 8}}])
def test_key_rejects_bad_input(bad: dict) -> None:
    args = {"config": BASE, "samples": SAMPLES, "seed": 0, "kind": "forward"} | bad
    with pytest.raises(ValueError):
        result_key(**args)


# ----------------------------------------------------------------------------- round trip

def test_round_trip_is_exact(cache: Cache, result: Result) -> None:
    assert cache.get(BASE, SAMPLES, 3) is None and not cache.has(BASE, SAMPLES, 3)
    path = cache.put(result)
    assert path == cache.path(BASE, SAMPLES, 3, "forward")
    assert path.parent.name == path.stem[:2] and path.suffix == ".npz"
    got = cache.get(BASE, SAMPLES, 3)
    assert got is not None and cache.has(BASE, SAMPLES, 3)
    assert got.values.tobytes() == result.values.tobytes()
    assert got.values.shape == result.values.shape and got.values.dtype == np.float64
    assert (got.config, got.samples, got.seed, got.kind, got.version) == (
        result.config, result.samples, result.seed, result.kind, result.version)
    assert cache.get(BASE, SAMPLES, 4) is None  # another seed is another entry


def test_entry_holds_metadata_and_no_pickles(cache: Cache, result: Result) -> None:
    path = cache.put(result)
    with np.load(path, allow_pickle=False) as npz:
        meta = json.loads(str(npz["meta"][()]))
        assert len(str(npz["checksum"][()])) == 64
    assert meta["config"] == BASE.to_dict()
    assert (meta["samples"], meta["seed"], meta["kind"], meta["version"]) == (
        SAMPLES, 3, "forward", result.version)
    assert meta["key"] == path.stem


def test_other_version_is_a_miss_not_corruption(cache: Cache, result: Result,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    cache.put(result)
    monkeypatch.setattr(cache_module, "VERSION", cache_module.VERSION + ".changed")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cache.get(BASE, SAMPLES, 3) is None


def test_put_rejects_non_results(cache: Cache, result: Result) -> None:
    with pytest.raises(ValueError, match="Result"):
        cache.put(result.values)  # type: ignore[arg-type]
    bad = Result(BASE, SAMPLES, 3, result.values.astype(np.float32))
    with pytest.raises(ValueError, match="float64"):
        cache.put(bad)


# ----------------------------------------------------------------------------- atomic writes

def test_put_leaves_no_temp_files(cache: Cache, result: Result) -> None:
    path = cache.put(result)
    cache.put(result)  # overwriting is fine too
    assert _files(cache.root) == [path]


def test_crash_during_write_leaves_no_entry(cache: Cache, result: Result,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    def crash(src: str, dst: str) -> None:
        raise OSError("simulated crash before the rename")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="simulated crash"):
        cache.put(result)
    monkeypatch.undo()
    assert _files(cache.root) == []
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cache.get(BASE, SAMPLES, 3) is None


def test_stray_temp_file_is_ignored(cache: Cache, result: Result) -> None:
    path = cache.path(BASE, SAMPLES, 3)
    path.parent.mkdir(parents=True)
    stray = path.parent / f".{path.stem}.killed.tmp"
    stray.write_bytes(b"half an entry")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cache.get(BASE, SAMPLES, 3) is None
    cache.put(result)
    assert cache.get(BASE, SAMPLES, 3) is not None


# ----------------------------------------------------------------------------- corruption

def _flip_middle(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _garbage(path: Path) -> None:
    path.write_bytes(b"not an npz file at all")


def _rewrite(path: Path, **changes: np.ndarray) -> None:
    """Rewrite a well-formed npz (valid zip CRCs) with some arrays changed."""
    with np.load(path, allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    arrays.update(changes)
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def _tamper_values(path: Path) -> None:
    with np.load(path) as npz:
        values = npz["values"].copy()
    values[0, 0, 0] = np.nextafter(values[0, 0, 0], np.inf)
    _rewrite(path, values=values)


def _tamper_meta(path: Path) -> None:
    with np.load(path) as npz:
        meta = json.loads(str(npz["meta"][()]))
    meta["seed"] = 99
    _rewrite(path, meta=np.array(json.dumps(meta)))


CORRUPTIONS = [_flip_middle, _truncate, _empty, _garbage, _tamper_values, _tamper_meta]


@pytest.mark.parametrize("corrupt", CORRUPTIONS, ids=lambda f: f.__name__.strip("_"))
def test_corrupt_entry_warns_is_deleted_and_misses(cache: Cache, result: Result,
                                                   corrupt) -> None:
    path = cache.put(result)
    corrupt(path)
    with pytest.warns(CacheCorruptionWarning, match=str(path.name)):
        assert cache.get(BASE, SAMPLES, 3) is None
    assert not path.exists()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cache.get(BASE, SAMPLES, 3) is None  # gone: now a plain miss


def test_entry_of_another_key_is_corrupt(cache: Cache, result: Result) -> None:
    src = cache.put(result)
    dst = cache.path(BASE, SAMPLES, 4)
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(src.read_bytes())  # a valid entry, misfiled
    with pytest.warns(CacheCorruptionWarning, match="metadata"):
        assert cache.get(BASE, SAMPLES, 4) is None
    assert not dst.exists() and cache.get(BASE, SAMPLES, 3) is not None


# ----------------------------------------------------------------------------- blocks

def test_blocks_round_trip_in_order_and_are_dropped(cache: Cache, result: Result) -> None:
    v = result.values
    cache.put_block(BASE, SAMPLES, 3, "forward", 2, v[2:4])
    cache.put_block(BASE, SAMPLES, 3, "forward", 0, v[0:1])
    got = cache.get_blocks(BASE, SAMPLES, 3)
    assert list(got) == [0, 2]
    assert got[0].tobytes() == v[0:1].tobytes() and got[2].tobytes() == v[2:4].tobytes()
    assert cache.get_blocks(BASE, SAMPLES, 4) == {}  # another point's: none
    assert cache.get(BASE, SAMPLES, 3) is None  # blocks are not the point
    cache.drop_blocks(BASE, SAMPLES, 3)
    assert cache.get_blocks(BASE, SAMPLES, 3) == {}


def test_overlapping_blocks_are_skipped(cache: Cache, result: Result) -> None:
    v = result.values
    cache.put_block(BASE, SAMPLES, 3, "forward", 0, v[0:2])
    cache.put_block(BASE, SAMPLES, 3, "forward", 1, v[1:4])
    assert list(cache.get_blocks(BASE, SAMPLES, 3)) == [0]


@pytest.mark.parametrize("start, rows", [(-1, 1), (3, 2), (0, 0)])
def test_a_block_outside_its_point_is_refused(cache: Cache, result: Result, start: int,
                                              rows: int) -> None:
    with pytest.raises(ValueError, match="block"):
        cache.put_block(BASE, SAMPLES, 3, "forward", start, result.values[:rows])


@pytest.mark.parametrize("corrupt", [_flip_middle, _truncate, _tamper_values],
                         ids=lambda f: f.__name__.strip("_"))
def test_corrupt_block_warns_and_is_deleted(cache: Cache, result: Result, corrupt) -> None:
    path = cache.put_block(BASE, SAMPLES, 3, "forward", 1, result.values[1:3])
    corrupt(path)
    with pytest.warns(CacheCorruptionWarning, match=path.name):
        assert cache.get_blocks(BASE, SAMPLES, 3) == {}
    assert not path.exists()


def test_a_misfiled_block_is_corrupt(cache: Cache, result: Result) -> None:
    """A valid block copied under another range (or another point) fails its key check."""
    src = cache.put_block(BASE, SAMPLES, 3, "forward", 0, result.values[0:2])
    dst = src.with_name(f"2-4{src.suffix}")
    dst.write_bytes(src.read_bytes())
    src.unlink()
    with pytest.warns(CacheCorruptionWarning, match="metadata"):
        assert cache.get_blocks(BASE, SAMPLES, 3) == {}


# ----------------------------------------------------------------------------- location

def test_env_var_moves_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                 result: Result) -> None:
    monkeypatch.setenv("SIGPROP_CACHE_DIR", str(tmp_path / "elsewhere"))
    assert cache_dir() == tmp_path / "elsewhere"
    path = Cache().put(result)
    assert path.is_relative_to(tmp_path / "elsewhere")
    assert Cache(tmp_path / "elsewhere").get(BASE, SAMPLES, 3) is not None


def test_default_is_project_dot_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SIGPROP_CACHE_DIR", raising=False)
    path = cache_dir()
    assert path.parts[-2:] == (".cache", "sigprop")
    assert (path.parent.parent / "pyproject.toml").is_file()
    assert (path.parent.parent / "sim" / "cache.py").is_file()
    monkeypatch.setenv("SIGPROP_CACHE_DIR", "")
    assert cache_dir() == path
