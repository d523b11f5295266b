"""Sweeps on a ``dask.distributed`` LocalCluster of two worker processes (``sim.cluster``)."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from sim.cache import Cache
from sim.cli import main
from sim.cluster import cluster_executor, default_blocks, scheduler_address
from sim.config import Config
from sim.sweep import Point, sweep

distributed = pytest.importorskip("distributed")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster():
    """Two worker processes with one thread and one numba thread each."""
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None, env={"NUMBA_NUM_THREADS": "1"},
                                  silence_logs=40) as c:
        yield c


def _points(n: int, depth: int = 2, samples: int = 8) -> list[Point]:
    return [Point(Config(T=8, d=8, depth=depth, beta=0.5 + 0.25 * i), samples, seed=i)
            for i in range(n)]


def test_cluster_results_equal_local_results(cluster, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SIGPROP_BLOCKS", raising=False)
    points = _points(6)
    local = sweep(points, cache=Cache(tmp_path / "local"), executor="serial", progress=False)
    with cluster_executor(cluster.scheduler_address) as executor:
        assert default_blocks(executor) == 2  # each point as two blocks, one per worker
        remote = sweep(points, cache=Cache(tmp_path / "remote"), executor=executor,
                       progress=False)
    for a, b in zip(local, remote, strict=True):
        assert a.config == b.config and np.array_equal(a.values, b.values, equal_nan=True)
    # the results came back to the client's cache: a rerun loads them without the cluster
    again = sweep(points, cache=Cache(tmp_path / "remote"), executor="serial", progress=False)
    assert all(np.array_equal(a.values, b.values, equal_nan=True)
               for a, b in zip(remote, again, strict=True))


def test_direct_monte_carlo_on_the_cluster_equals_local(cluster,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """``map_samples`` (RS-4's singular values of W_O) in two blocks on the workers."""
    from sim.hcni import wo_singular_values
    from sim.sweep import map_samples

    monkeypatch.delenv("SIGPROP_BLOCKS", raising=False)
    local = map_samples(wo_singular_values, 7, 8, 2, seed=3)
    with cluster_executor(cluster.scheduler_address) as executor:
        remote = map_samples(wo_singular_values, 7, 8, 2, seed=3, executor=executor)
    assert local.tobytes() == remote.tobytes()


def test_sweep_survives_a_killed_worker(cluster, tmp_path: Path) -> None:
    """Kill one worker process mid-sweep: the sweep still finishes (the scheduler reruns the
    lost blocks of samples), every point is cached once, and the results equal the local
    ones."""
    points = _points(10, depth=8, samples=160)
    cache = Cache(tmp_path / "cache")
    out: dict[str, object] = {}

    def run() -> None:
        try:
            with cluster_executor(cluster.scheduler_address) as executor:
                out["results"] = sweep(points, cache=cache, executor=executor, progress=False)
        except BaseException as exc:  # reported by the main thread
            out["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    client = distributed.Client(cluster.scheduler_address, set_as_default=False)
    try:
        deadline = time.monotonic() + 60
        while not client.processing() or not any(client.processing().values()):
            assert time.monotonic() < deadline, "no task started"
            time.sleep(0.05)
        victim = next(w for w, tasks in client.processing().items() if tasks)
        pid = client.run(os.getpid, workers=[victim])[victim]
        os.kill(pid, signal.SIGKILL)
    finally:
        client.close()
    thread.join(timeout=300)
    assert not thread.is_alive()
    with distributed.Client(cluster.scheduler_address, set_as_default=False) as client:
        assert victim not in client.scheduler_info()["workers"]  # it really died
    assert "error" not in out, out.get("error")
    results = out["results"]
    local = sweep(points, cache=Cache(tmp_path / "local"), executor="serial", progress=False)
    for a, b in zip(local, results, strict=True):
        assert np.array_equal(a.values, b.values, equal_nan=True)
    entries = [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]
    assert len(entries) == len(points)


def test_unreachable_scheduler_is_one_line_and_exit_2(monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setenv("SIGPROP_SCHEDULER_TIMEOUT", "1")
    status = main(["sweep", "--T", "4", "--d", "4", "--depth", "1", "--samples", "2",
                   "--scheduler", "tcp://127.0.0.1:9"])
    err = capsys.readouterr().err
    assert status == 2
    assert err.count("\n") == 1 and "cannot reach the Dask scheduler" in err


def test_scheduler_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIGPROP_SCHEDULER", " tcp://host:8786 ")
    assert scheduler_address(None) == "tcp://host:8786"
    assert scheduler_address("tcp://other:1") == "tcp://other:1"
    monkeypatch.delenv("SIGPROP_SCHEDULER")
    assert scheduler_address(None) is None


def test_executor_and_scheduler_exclude_each_other(capsys: pytest.CaptureFixture) -> None:
    status = main(["sweep", "--T", "4", "--d", "4", "--samples", "2", "--executor", "serial",
                   "--scheduler", "tcp://127.0.0.1:9"])
    assert status == 2 and "exclude" in capsys.readouterr().err


def test_verify_on_the_cluster_equals_local(cluster, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture) -> None:
    """``sigprop verify --scheduler``: the same verdict and numbers as a local run."""
    import json

    monkeypatch.setenv("SIGPROP_CACHE_DIR", str(tmp_path / "remote"))
    assert main(["verify", "GAP-3", "--profile", "quick", "--json", "--scheduler",
                 cluster.scheduler_address]) == 0
    remote = json.loads(capsys.readouterr().out)
    monkeypatch.setenv("SIGPROP_CACHE_DIR", str(tmp_path / "local"))
    assert main(["verify", "GAP-3", "--profile", "quick", "--json"]) == 0
    local = json.loads(capsys.readouterr().out)
    assert remote == local
