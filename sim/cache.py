"""A content-addressed, checksummed cache of Monte-Carlo ``Result``s.

Conventions:

- An entry is addressed by ``result_key(config, samples, seed, kind)``: the sha256 hex digest of
  the canonical JSON (sorted keys, no spaces) of ``{config, samples, seed, kind, version}``, where
  ``version`` is ``sim.version.VERSION`` (package and kernel version). Float fields of the config
  are written as floats, so ``Config(beta=1)`` and ``Config(beta=1.0)`` share an entry.
- An entry is one file ``<root>/<key[:2]>/<key>.npz`` with three arrays: ``values`` (the
  ``samples x layers x observables`` float64 array), ``meta`` (a JSON string: the key fields plus
  the key, the shape and the dtype of ``values``) and ``checksum`` (sha256 hex of the UTF-8
  ``meta`` followed by the raw bytes of ``values``). Nothing is pickled.
- Writes are atomic: a temp file (``.<key>.*.tmp``) in the entry's directory is written, fsynced
  and moved into place with ``os.replace``. A reader sees a complete entry or none.
- A file that cannot be read, or whose checksum or metadata does not match the requested key, is
  corrupt: ``get`` warns ``CacheCorruptionWarning`` naming the file, deletes it and returns
  ``None`` so that the caller recomputes. A corrupt entry is never returned.
- Blocks of samples (``put_block``): a sweep on a cluster computes a point as blocks of
  contiguous samples and stores each finished block as ``<root>/blocks/<key>/<start>-<stop>.npz``
  (the same format; ``meta`` adds ``start`` and ``stop``), so an interrupted sweep resumes from
  the blocks it has. ``get_blocks`` returns the valid ones (a corrupt one warns and is deleted,
  as above); ``drop_blocks`` removes them once the point itself is stored.
- The cache lives in ``$SIGPROP_CACHE_DIR`` if set, else ``<project root>/.cache/sigprop``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import re
import shutil
import tempfile
import tomllib
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from sim.config import Config
from sim.montecarlo import Result, check_run
from sim.version import VERSION

ENV_VAR = "SIGPROP_CACHE_DIR"
SUFFIX = ".npz"
TEMP_SUFFIX = ".tmp"
PROJECT_NAME = "sigprop"
BLOCKS_DIR = "blocks"
_BLOCK_NAME = re.compile(r"([0-9]+)-([0-9]+)" + re.escape(SUFFIX))

_FLOAT_FIELDS = frozenset(f.name for f in dataclasses.fields(Config) if f.type in ("float", float))


class CacheCorruptionWarning(UserWarning):
    """A cache entry was unreadable or failed its checksum or key check; it was deleted."""


class _Corrupt(Exception):
    """Internal: why an entry is corrupt."""


def _project_root() -> Path | None:
    """The nearest directory above ``sim/`` holding the sigprop ``pyproject.toml``, if any."""
    for parent in Path(__file__).resolve().parent.parents:
        pyproject = parent / "pyproject.toml"
        if pyproject.is_file():
            try:
                with pyproject.open("rb") as f:
                    name = tomllib.load(f).get("project", {}).get("name")
            except (OSError, tomllib.TOMLDecodeError):
                continue
            if name == PROJECT_NAME:
                return parent
    return None


def cache_dir() -> Path:
    """The cache directory: ``$SIGPROP_CACHE_DIR`` if set (and non-empty), else
    ``<project root>/.cache/sigprop``, else ``./.cache/sigprop`` outside a source tree."""
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    root = _project_root()
    return (root if root is not None else Path.cwd()) / ".cache" / "sigprop"


def _canonical_config(config: Config) -> dict[str, Any]:
    if not isinstance(config, Config):
        raise ValueError(f"config must be a sim.config.Config, got {type(config).__name__}")
    values = config.to_dict()
    for name in _FLOAT_FIELDS:
        values[name] = float(values[name])
    return values


def _identity(config: Config, samples: int, seed: int, kind: str,
              version: str | None) -> dict[str, Any]:
    """The fields that address an entry, in canonical form."""
    check_run(samples, seed)
    if not isinstance(kind, str) or not kind:
        raise ValueError(f"kind={kind!r} must be a non-empty string")
    return {"config": _canonical_config(config), "samples": samples, "seed": seed, "kind": kind,
            "version": VERSION if version is None else version}


def _dumps(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False)


def _addressed(config: Config, samples: int, seed: int, kind: str,
               version: str | None) -> tuple[dict[str, Any], str]:
    """``(identity, key)`` of an entry: ``_identity`` and the sha256 hex of its canonical JSON."""
    identity = _identity(config, samples, seed, kind, version)
    return identity, hashlib.sha256(_dumps(identity).encode()).hexdigest()


def result_key(config: Config, samples: int, seed: int, kind: str = "forward",
               version: str | None = None) -> str:
    """sha256 hex of the canonical JSON of ``{config, samples, seed, kind, version}``;
    ``version`` defaults to the running ``sim.version.VERSION``."""
    return _addressed(config, samples, seed, kind, version)[1]


def _checksum(meta: str, values: np.ndarray) -> str:
    h = hashlib.sha256(meta.encode())
    h.update(values.tobytes(order="C"))
    return h.hexdigest()


def _fsync_dir(directory: Path) -> None:
    """Make a rename durable (best effort; not every platform can open a directory)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: Path, write: Callable[[BinaryIO], Any]) -> None:
    """Write ``path`` atomically: ``write(f)`` fills a temp file in the same directory, which is
    fsynced and renamed over ``path``; on any error the temp file is removed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=TEMP_SUFFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


class Cache:
    """A content-addressed store of ``Result``s under ``root`` (default ``cache_dir()``)."""

    def __init__(self, root: Path | str | None = None) -> None:
        self.root = Path(root).expanduser() if root is not None else cache_dir()

    def __repr__(self) -> str:
        return f"Cache({str(self.root)!r})"

    def _path_of(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}{SUFFIX}"

    def path(self, config: Config, samples: int, seed: int = 0, kind: str = "forward") -> Path:
        """The file that holds (or would hold) the entry for ``(config, samples, seed, kind)``."""
        return self._path_of(result_key(config, samples, seed, kind))

    def has(self, config: Config, samples: int, seed: int = 0, kind: str = "forward") -> bool:
        """Whether a valid entry exists. It is verified as by ``get`` (a corrupt one is
        reported, deleted and counts as absent)."""
        return self.get(config, samples, seed, kind) is not None

    def get(self, config: Config, samples: int, seed: int = 0,
            kind: str = "forward") -> Result | None:
        """The cached ``Result`` of ``(config, samples, seed, kind)`` at the running version, or
        ``None`` if absent or corrupt (then with a ``CacheCorruptionWarning``)."""
        identity, key = _addressed(config, samples, seed, kind, None)
        found = self._checked(self._path_of(key), key, identity)
        if found is None:
            return None
        meta, values = found
        return Result(Config.from_dict(meta["config"]), meta["samples"], meta["seed"], values,
                      meta["kind"], meta["version"])

    def _checked(self, path: Path, key: str,
                 identity: dict[str, Any]) -> tuple[dict[str, Any], np.ndarray] | None:
        """``_read``'s ``(meta, values)``, or ``None`` when absent or corrupt (then warned and
        deleted)."""
        try:
            return self._read(path, key, identity)
        except FileNotFoundError:
            return None
        except _Corrupt as err:
            self._discard(path, str(err))
        except Exception as err:  # noqa: BLE001 - unreadable: truncated, bad CRC or header, ...
            self._discard(path, f"unreadable ({type(err).__name__}: {err})")
        return None

    @staticmethod
    def _read(path: Path, key: str, identity: dict[str, Any]) -> tuple[dict[str, Any],
                                                                        np.ndarray]:
        with open(path, "rb") as f:
            if f.read(4) != b"PK\x03\x04":
                raise _Corrupt("not an npz (zip) file")
            f.seek(0)
            npz = np.load(f, allow_pickle=False)
            with npz:
                names = set(npz.files)
                if names != {"values", "meta", "checksum"}:
                    raise _Corrupt(f"unexpected arrays {sorted(names)}")
                values = npz["values"]
                meta_text = str(npz["meta"][()])
                checksum = str(npz["checksum"][()])
        if _checksum(meta_text, values) != checksum:
            raise _Corrupt("checksum mismatch")
        meta = json.loads(meta_text)
        stored = {name: meta.get(name) for name in identity}
        if _dumps(stored) != _dumps(identity) or meta.get("key") != key:
            raise _Corrupt("metadata does not match the requested key")
        if (values.dtype != np.float64 or values.ndim != 3
                or list(values.shape) != meta.get("shape")
                or values.shape[0] != meta.get("stop", meta["samples"]) - meta.get("start", 0)):
            raise _Corrupt(f"values of dtype {values.dtype} and shape {values.shape} do not match "
                           "the metadata")
        return meta, values

    @staticmethod
    def _discard(path: Path, reason: str) -> None:
        warnings.warn(f"corrupt sigprop cache entry {path}: {reason}; deleted, it will be "
                      "recomputed", CacheCorruptionWarning, stacklevel=4)
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)

    def put(self, result: Result) -> Path:
        """Store ``result`` atomically under the key of its own config, samples, seed, kind and
        version; return the entry's path. An existing entry is replaced."""
        if not isinstance(result, Result):
            raise ValueError(f"can only cache a sim.montecarlo.Result, got "
                             f"{type(result).__name__}")
        values = np.ascontiguousarray(result.values)
        if values.dtype != np.float64 or values.ndim != 3 or values.shape[0] != result.samples:
            raise ValueError(f"result values must be float64 of shape (samples={result.samples}, "
                             f"layers, observables), got {values.dtype} {values.shape}")
        identity, key = _addressed(result.config, result.samples, result.seed, result.kind,
                                   result.version)
        return self._write(self._path_of(key), key, identity, values)

    @staticmethod
    def _write(path: Path, key: str, identity: dict[str, Any], values: np.ndarray) -> Path:
        meta = _dumps({**identity, "key": key, "shape": list(values.shape), "dtype": "float64"})
        atomic_write(path, lambda f: np.savez(f, values=values, meta=np.array(meta),
                                              checksum=np.array(_checksum(meta, values))))
        return path

    # ------------------------------------------------------------------ blocks of samples

    def _blocks_of(self, config: Config, samples: int, seed: int,
                   kind: str) -> tuple[Path, str, dict[str, Any]]:
        identity, key = _addressed(config, samples, seed, kind, None)
        return self.root / BLOCKS_DIR / key, key, identity

    def put_block(self, config: Config, samples: int, seed: int, kind: str, start: int,
                  values: np.ndarray) -> Path:
        """Store ``values`` (``rows x layers x observables`` float64) as samples ``start ..
        start + rows - 1`` of the point ``(config, samples, seed, kind)`` at the running
        version; return the block's path."""
        values = np.ascontiguousarray(values)
        stop = start + values.shape[0] if values.ndim == 3 else start
        if values.dtype != np.float64 or values.ndim != 3 or not 0 <= start < stop <= samples:
            raise ValueError(f"a block must be float64 rows within samples 0 .. {samples - 1}, "
                             f"got {values.dtype} {values.shape} from sample {start}")
        directory, key, identity = self._blocks_of(config, samples, seed, kind)
        return self._write(directory / f"{start}-{stop}{SUFFIX}", key,
                           {**identity, "start": start, "stop": stop}, values)

    def get_blocks(self, config: Config, samples: int, seed: int = 0,
                   kind: str = "forward") -> dict[int, np.ndarray]:
        """The stored blocks of a point, ``{start: values}``, disjoint and in order (a block
        overlapping an earlier one is skipped); a corrupt block warns
        ``CacheCorruptionWarning`` and is deleted."""
        directory, key, identity = self._blocks_of(config, samples, seed, kind)
        try:
            names = os.listdir(directory)
        except FileNotFoundError:
            return {}
        spans = sorted((int(m[1]), int(m[2])) for m in map(_BLOCK_NAME.fullmatch, names) if m)
        blocks: dict[int, np.ndarray] = {}
        end = 0
        for start, stop in spans:
            if start < end:
                continue
            found = self._checked(directory / f"{start}-{stop}{SUFFIX}", key,
                                  {**identity, "start": start, "stop": stop})
            if found is not None:
                blocks[start], end = found[1], stop
        return blocks

    def drop_blocks(self, config: Config, samples: int, seed: int = 0,
                    kind: str = "forward") -> None:
        """Delete the stored blocks of a point (once the point itself is stored)."""
        shutil.rmtree(self._blocks_of(config, samples, seed, kind)[0], ignore_errors=True)
