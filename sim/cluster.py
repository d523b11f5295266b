"""Sweeps on a ``dask.distributed`` cluster.

A sweep runs its points through any ``concurrent.futures``-style executor (``sim.sweep``); on a
cluster that executor is ``dask.distributed.Client.get_executor()``. Each point's result depends
on the point alone, so a cluster run is bit-identical to a local one; results come back to the
client, which writes them to its own cache as they finish. A point is split into blocks of
samples, one task each (``default_blocks``: as many as there are worker threads), so that a few
expensive points still keep every worker busy; the client assembles a point's blocks in order,
which gives the same bits. When a worker dies, the scheduler reruns its unfinished blocks
elsewhere; finished points and blocks are already in the client's cache. A claim's direct Monte
Carlo outside sweeps goes out in blocks the same way (``sim.sweep.map_samples``).

The scheduler address comes from ``--scheduler`` or the environment variable
``SIGPROP_SCHEDULER`` (for example ``tcp://10.0.0.5:8786``); ``SIGPROP_SCHEDULER_TIMEOUT``
(seconds, default 10) bounds the wait for it. Start workers with one thread each and
``NUMBA_NUM_THREADS`` equal to the cores per worker process, e.g.
``NUMBA_NUM_THREADS=4 dask worker tcp://10.0.0.5:8786 --nworkers 8 --nthreads 1``.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator
from typing import Any

SCHEDULER_ENV = "SIGPROP_SCHEDULER"
TIMEOUT_ENV = "SIGPROP_SCHEDULER_TIMEOUT"
BLOCKS_ENV = "SIGPROP_BLOCKS"
DEFAULT_TIMEOUT = 10.0


def scheduler_address(flag: str | None = None) -> str | None:
    """The scheduler address: ``flag`` if given, else ``$SIGPROP_SCHEDULER``, else ``None``."""
    address = flag if flag else os.environ.get(SCHEDULER_ENV, "")
    return address.strip() or None


def _timeout() -> float:
    text = os.environ.get(TIMEOUT_ENV, "")
    if not text:
        return DEFAULT_TIMEOUT
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ValueError(f"{TIMEOUT_ENV}={text!r} must be a positive number of seconds")
    return value


@contextlib.contextmanager
def cluster_executor(address: str) -> Iterator[Any]:
    """An executor on the Dask scheduler at ``address`` (a ``Client`` is opened and closed
    around the block). Raises ``ValueError`` with one line when the scheduler cannot be reached
    or ``dask.distributed`` is not installed."""
    try:
        from distributed import Client
    except ImportError:
        raise ValueError("a scheduler address needs dask.distributed: "
                         "pip install 'sigprop[dask]'") from None
    timeout = _timeout()
    try:
        client = Client(address, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ValueError(f"cannot reach the Dask scheduler at {address!r} within {timeout:g} s "
                         f"({reason})") from None
    try:
        yield client.get_executor()
    finally:
        client.close()


def default_blocks(executor: Any) -> int:
    """Blocks of samples a sweep splits each point into on ``executor`` (``sim.sweep``):
    ``$SIGPROP_BLOCKS`` when set; on a Dask executor the worker threads it may use now, so
    that a single expensive point keeps every worker busy; else 1 (whole points). Workers that
    join later (``dask-jobqueue`` scaling up) do not count: set ``SIGPROP_BLOCKS`` to the
    worker count you scale to."""
    text = os.environ.get(BLOCKS_ENV, "").strip()
    if text:
        try:
            value = int(text)
        except ValueError:
            value = 0
        if value < 1:
            raise ValueError(f"{BLOCKS_ENV}={text!r} must be an integer >= 1")
        return value
    client = getattr(executor, "_client", None)
    if client is None or not type(executor).__module__.startswith("distributed"):
        return 1
    threads = client.nthreads()
    allowed = getattr(executor, "_kwargs", {}).get("workers")
    if allowed:
        threads = {w: n for w, n in threads.items() if w in set(allowed)}
    return max(1, sum(threads.values()))


def is_dask_future(future: Any) -> bool:
    """Whether ``future`` is a ``dask.distributed`` future."""
    return type(future).__module__.startswith("distributed")


def worker_scaling(points: list[Any], workers: tuple[int, ...] = (1, 2),
                   blocks: int | None = None, repeats: int = 3) -> list[dict[str, Any]]:
    """Wall time of ``sweep(points, blocks=blocks)`` on ``n`` worker processes for each ``n``
    in ``workers`` (``blocks=None``: ``default_blocks``, one block per worker thread):
    one ``LocalCluster`` of ``max(workers)`` processes (one thread, one numba thread each), the
    run with ``n`` restricted to ``n`` of them, each into an empty cache, after a warm-up point
    per worker (numba's compiled kernels load from disk). Each ``n`` is timed ``repeats``
    times, the worker counts in turn, and the fastest run kept (on a shared machine the least
    disturbed, as in ``sim.bench``). Rows:
    ``{"workers", "seconds", "speedup", "efficiency"}``; speedup and efficiency count the first
    row's worker-seconds as the work (a first row of one worker gives ``t_1 / t_n`` and
    ``t_1 / (n t_n)``)."""
    import tempfile
    import time

    from distributed import Client, LocalCluster

    from sim.cache import Cache
    from sim.sweep import run_point, sweep

    with LocalCluster(n_workers=max(workers), threads_per_worker=1, processes=True,
                      dashboard_address=None, env={"NUMBA_NUM_THREADS": "1"},
                      silence_logs=40) as cluster, \
            Client(cluster.scheduler_address, set_as_default=False) as client:
        names = sorted(client.scheduler_info()["workers"])
        client.gather([client.submit(run_point, points[0], workers=[w], pure=False)
                       for w in names])
        best = {n: math.inf for n in workers}
        for _ in range(repeats):
            for n in workers:
                executor = client.get_executor(workers=names[:n], allow_other_workers=False)
                with tempfile.TemporaryDirectory() as tmp:
                    start = time.perf_counter()
                    sweep(points, cache=Cache(tmp), executor=executor, progress=False,
                          blocks=blocks)
                    best[n] = min(best[n], time.perf_counter() - start)
        rows = [{"workers": n, "seconds": best[n]} for n in workers]
    work = rows[0]["seconds"] * rows[0]["workers"]
    for row in rows:
        row["speedup"] = work / row["seconds"]
        row["efficiency"] = work / (row["seconds"] * row["workers"])
    return rows
