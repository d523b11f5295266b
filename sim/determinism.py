"""Bit-reproducibility checks: fingerprints of results computed under different thread counts."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

from sim.config import Config


def fingerprint(values) -> str:  # noqa: ANN001 (an ndarray)
    """sha256 of the bytes of a result's values."""
    return hashlib.sha256(values.tobytes()).hexdigest()


def fingerprint_with_threads(config: Config, samples: int, seed: int, threads: int) -> str:
    """Fingerprint of ``simulate(config, samples, seed)`` in a fresh process with
    ``NUMBA_NUM_THREADS=threads``."""
    code = ("import json, sys; from sim.config import Config; from sim.montecarlo import "
            "simulate; from sim.determinism import fingerprint; import numba; "
            "c = Config.from_dict(json.loads(sys.argv[1])); "
            "r = simulate(c, int(sys.argv[2]), int(sys.argv[3]), progress=False); "
            "print(numba.get_num_threads(), fingerprint(r.values))")
    env = dict(os.environ, NUMBA_NUM_THREADS=str(threads))
    out = subprocess.run([sys.executable, "-c", code, json.dumps(config.to_dict()),
                          str(samples), str(seed)], env=env, check=True, capture_output=True,
                         text=True).stdout.split()
    if int(out[0]) != threads:
        raise RuntimeError(f"the subprocess ran {out[0]} threads, not {threads}")
    return out[1]
