"""
Sweep benchmark: one 200-point grid on 1 and on 2 local worker processes, and on Dask.

The Dask row (a LocalCluster of 2 worker processes) appears when the ``[cluster]`` extra is
installed. Each point is a request-mode run (``batch=False``) of a 4 MiB complete dump through
``dumpfve.sys`` and ``delayflt.sys``: 65 writes through every task, tens of milliseconds, so the
sweep measures parallel simulation rather than process start-up.

    python3 benchmarks/bench_sweep.py
"""

from __future__ import annotations

import tempfile
import time
from concurrent.futures import Executor
from pathlib import Path
from typing import Any

from stacksim.sweep import local_executor, parse_set, run_sweep

BASE: dict[str, Any] = {
    "scenario": {"name": "sweep-bench"},
    "registry": {"DumpFilters": ["dumpfve.sys", "delayflt.sys"], "CrashDumpEnabled": 1},
    "memory": {"ram": "4 MiB"},
}
AXES = [
    parse_set("disk.latency=" + ",".join(f'"{us} us"' for us in range(10, 60, 5))),  # 10 values
    parse_set('filters."delayflt.sys".per_call=' + ",".join(f'"{us} us"' for us in range(20))),  # 20 values
]


def timed(executor: Executor) -> float:
    with tempfile.TemporaryDirectory() as d, executor:
        out = Path(d) / "r.csv"
        t = time.perf_counter()
        ran, _, failed = run_sweep("<bench>", BASE, AXES, out, executor, batch=False)
        wall = time.perf_counter() - t
        assert (ran, failed) == (200, 0)
    return wall


def main() -> None:
    """Measure and print."""
    one = timed(local_executor(1))
    two = timed(local_executor(2))
    print("| executor | points | wall s | speed-up vs 1 worker |")
    print("|---|---|---|---|")
    print(f"| process pool, 1 worker | 200 | {one:.2f} | 1.00 |")
    print(f"| process pool, 2 workers | 200 | {two:.2f} | {one / two:.2f} |")
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        print("| dask LocalCluster, 2 workers | - | not installed ([cluster] extra) | - |")
        return
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, Client(cluster) as c:
        dask = timed(c.get_executor(pure=False))
    print(f"| dask LocalCluster, 2 workers | 200 | {dask:.2f} | {one / dask:.2f} |")


if __name__ == "__main__":
    main()
