"""
Sweep benchmark: one 200-point grid on 1 and on 2 local worker processes, and on Dask.

The Dask row (a LocalCluster of 2 worker processes) appears when the ``[cluster]`` extra is
installed. Each point is a request-mode run (``batch=False``) of a 256 MiB complete dump through
``dumpfve.sys`` and ``delayflt.sys`` (``--ram``): about 4,000 writes through every task, about
0.1 s. The speed-up depends on how the points' work compares with the pool's start-up (about
1 s here, mostly importing stacksim once): with ``--ram "64 MiB"`` the points take ~30 ms and
start-up caps the speed-up.

Each measurement runs in a fresh process, so each pays the pool's start-up (the fork server
and its import of stacksim) as a user's ``stacksim sweep`` does. The Dask row times the sweep
on a cluster that is already up (``--dask tcp://...`` is the normal use); starting the cluster
is not counted.

    python3 benchmarks/bench_sweep.py [--reps 3] [--ram "4 MiB"]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import Executor
from pathlib import Path
from typing import Any

from stacksim.sweep import local_executor, parse_set, run_sweep

BASE: dict[str, Any] = {
    "scenario": {"name": "sweep-bench"},
    "registry": {"DumpFilters": ["dumpfve.sys", "delayflt.sys"], "CrashDumpEnabled": 1},
    "memory": {"ram": "256 MiB"},
}
AXES = [
    parse_set("disk.latency=" + ",".join(f'"{us} us"' for us in range(10, 60, 5))),  # 10 values
    parse_set('filters."delayflt.sys".per_call=' + ",".join(f'"{us} us"' for us in range(20))),  # 20 values
]


def timed(executor: Executor) -> float:
    """Wall time of the whole sweep, the executor's start-up included."""
    t = time.perf_counter()
    with tempfile.TemporaryDirectory() as d, executor:
        out = Path(d) / "r.csv"
        ran, _, failed = run_sweep("<bench>", BASE, AXES, out, executor, batch=False)
        assert (ran, failed) == (200, 0)
    return time.perf_counter() - t


def child(kind: str, ram: str) -> None:
    """Measure one executor in this (fresh) process and print the wall time."""
    BASE["memory"]["ram"] = ram
    t = time.perf_counter()
    if kind == "dask":
        from distributed import Client, LocalCluster

        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
        with cluster, Client(cluster) as c:
            wall = timed(c.get_executor(pure=False))
        print(json.dumps({"wall": time.perf_counter() - t, "sweep": wall}))
        return
    wall = timed(local_executor(int(kind)))
    print(json.dumps({"wall": wall, "sweep": wall}))


def measure(kind: str, ram: str) -> float:
    cmd = [sys.executable, __file__, "--child", kind, "--ram", ram]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return float(json.loads(out.stdout.strip().splitlines()[-1])["sweep"])


def main() -> None:
    """Measure and print."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=3, help="repetitions per executor (median reported)")
    ap.add_argument("--ram", default="256 MiB", help="dump size per point (default 256 MiB: ~4,000 writes)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.ram)
        return
    try:
        import distributed  # noqa: F401

        kinds = ["1", "2", "dask"]
    except ImportError:
        kinds = ["1", "2"]
    runs: dict[str, list[float]] = {k: [] for k in kinds}
    for _ in range(args.reps):
        for k in kinds:
            runs[k].append(measure(k, args.ram))
    one = statistics.median(runs["1"])
    print(f"points: request-mode runs of a {args.ram} complete dump; each row: a fresh process, pool start-up")
    print(f"included; median of {args.reps}, interleaved")
    print("| executor | points | wall s | speed-up vs 1 worker |")
    print("|---|---|---|---|")
    names = {"1": "process pool, 1 worker", "2": "process pool, 2 workers", "dask": "dask LocalCluster, 2 workers"}
    for k in kinds:
        w = statistics.median(runs[k])
        print(f"| {names[k]} | 200 | {w:.2f} | {one / w:.2f} |")
    if "dask" not in kinds:
        print("| dask LocalCluster, 2 workers | - | not installed ([cluster] extra) | - |")


if __name__ == "__main__":
    main()
