"""
Sweep benchmark: the 2-worker speed-up of one 200-point grid at 8 ms, 30 ms and 100 ms a point.

Each point is a request-mode run (``batch=False``) of a complete dump through ``dumpfve.sys``
and ``delayflt.sys``; its size is calibrated first, in this process, so a point takes about
8, 30 or 100 ms here (the table prints what a point took on 1 worker). For each size the script
times, interleaved, each in a fresh process that pays the pool's start-up as a user's
``stacksim sweep`` does:

- the process pool with 1 worker and with 2 workers (the speed-up is their ratio);
- the *ceiling*: two plain processes started together, each running half the points in a loop
  (no pool, no results file) against one process running them all -- what two CPU-bound
  processes gain on this machine at all, start-up (the import of stacksim) included;
- with the ``[cluster]`` extra, a Dask LocalCluster of 2 worker processes (the cluster is
  started before the clock starts, as ``--dask tcp://...`` is normally used).

    python3 benchmarks/bench_sweep.py [--reps 3] [--targets 8,30,100]
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import Executor
from pathlib import Path
from typing import Any

from stacksim.sweep import Axis, grid, local_executor, parse_set, run_point, run_sweep

BASE: dict[str, Any] = {
    "scenario": {"name": "sweep-bench"},
    "registry": {"DumpFilters": ["dumpfve.sys", "delayflt.sys"], "CrashDumpEnabled": 1},
    "memory": {"ram": "64 MiB"},
}
AXES: list[Axis] = [
    parse_set("disk.latency=" + ",".join(f'"{us} us"' for us in range(10, 60, 5))),  # 10 values
    parse_set('filters."delayflt.sys".per_call=' + ",".join(f'"{us} us"' for us in range(20))),  # 20 values
]
POINTS = 200
MIB = 2**20


def _base(ram_mib: int) -> dict[str, Any]:
    base = copy.deepcopy(BASE)
    base["memory"]["ram"] = f"{ram_mib} MiB"
    return base


def calibrate(target_ms: float) -> int:
    """The dump size (MiB) whose request-mode point takes about *target_ms* here (linear in the size)."""
    point = grid(AXES)[0]
    base = _base(64)
    run_point(base, "<bench>", point, (), False)  # warm: imports, entry points
    best = min(_timed_point(base, point) for _ in range(5))
    return max(1, round(64 * target_ms / 1e3 / best))


def _timed_point(base: dict[str, Any], point: Any) -> float:
    t = time.perf_counter()
    row = run_point(base, "<bench>", point, (), False)
    assert row["status"] == "ok", row
    return time.perf_counter() - t


def timed_sweep(executor: Executor, base: dict[str, Any]) -> float:
    """Wall time of the whole sweep, the executor's start-up included."""
    t = time.perf_counter()
    with tempfile.TemporaryDirectory() as d, executor:
        ran, _, failed = run_sweep("<bench>", base, AXES, Path(d) / "r.csv", executor, batch=False)
        assert (ran, failed) == (POINTS, 0)
    return time.perf_counter() - t


def child(kind: str, ram_mib: int) -> None:
    """Measure one executor in this (fresh) process and print its wall time."""
    base = _base(ram_mib)
    if kind == "dask":
        from distributed import Client, LocalCluster

        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
        with cluster, Client(cluster) as c:
            print(json.dumps({"sweep": timed_sweep(c.get_executor(pure=False), base)}))
        return
    print(json.dumps({"sweep": timed_sweep(local_executor(int(kind)), base)}))


def loop(part: int, parts: int, ram_mib: int) -> None:
    """A plain process's share of the points (every *parts*-th from *part*), run in a loop: the ceiling's unit."""
    base = _base(ram_mib)
    for point in grid(AXES)[part::parts]:
        assert run_point(base, "<bench>", point, (), False)["status"] == "ok"


def _cmd(*args: str) -> list[str]:
    return [sys.executable, __file__, *args]


def measure(kind: str, ram_mib: int) -> float:
    """Wall seconds of one row, each in fresh processes (the ceiling rows time the processes from outside)."""
    if kind in ("plain1", "plain2"):
        parts = 1 if kind == "plain1" else 2
        t = time.perf_counter()
        procs = [subprocess.Popen(_cmd("--loop", f"{k}/{parts}", "--ram", str(ram_mib))) for k in range(parts)]
        codes = [p.wait() for p in procs]
        assert codes == [0] * parts, codes
        return time.perf_counter() - t
    out = subprocess.run(_cmd("--child", kind, "--ram", str(ram_mib)), capture_output=True, text=True, check=True)
    return float(json.loads(out.stdout.strip().splitlines()[-1])["sweep"])


def main() -> None:
    """Calibrate, measure and print."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=3, help="repetitions per row (median reported)")
    ap.add_argument("--targets", default="8,30,100", help="point durations to calibrate for, in ms (default 8,30,100)")
    ap.add_argument("--ram", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--loop", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.ram)
        return
    if args.loop:
        part, parts = map(int, args.loop.split("/"))
        loop(part, parts, args.ram)
        return
    kinds = ["1", "2", "plain1", "plain2"]
    if importlib.util.find_spec("distributed") is not None:
        kinds.append("dask")
    sizes = [(float(t), calibrate(float(t))) for t in args.targets.split(",")]
    print(f"sweep of {POINTS} request-mode points (complete dumps through dumpfve.sys and delayflt.sys); each row a fresh")
    print(f"process, pool start-up included; median of {args.reps}, interleaved; {os.cpu_count()} CPUs")
    print("| point | dump | 1 worker s | 2 workers s | speed-up | ceiling | dask 2 workers |")
    print("|---|---|---|---|---|---|---|")
    for _, ram in sizes:
        runs: dict[str, list[float]] = {k: [] for k in kinds}
        for _ in range(args.reps):
            for k in kinds:
                runs[k].append(measure(k, ram))
        med = {k: statistics.median(v) for k, v in runs.items()}
        one = med["1"]
        dask = f"{med['dask']:.2f} s ({one / med['dask']:.2f}×)" if "dask" in med else "not installed ([cluster] extra)"
        print(
            f"| {one / POINTS * 1e3:.0f} ms | {ram} MiB | {one:.2f} | {med['2']:.2f} | {one / med['2']:.2f}× "
            f"| {med['plain1'] / med['plain2']:.2f}× | {dask} |"
        )
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
