"""
Checker benchmark: ``check_trace_file`` on a genuine 1M-line trace, beside the floors it cannot beat.

The trace comes from a real run: a complete crash dump of 12.75 GiB through one filter
(delayflt.sys) in request mode with ``--trace``, 208,904 writes of up to 64 KiB (header, bitmap, body), 1,044,529 records
(about 200 MB). Each measurement runs in a fresh process, so its peak RSS (``ru_maxrss``) is its
own, and is repeated; the table gives the median lines/s in wall and CPU time (this machine is
shared and noisy: CPU time is the steadier figure) and the ratio to the parse floor:

* read: the file in 1 MiB chunks split into lines, nothing else;
* read + orjson: every line parsed by ``orjson.loads`` (what the checker uses);
* read + json: every line parsed by the stdlib's ``json.loads`` (why the checker does not);
* check_trace_file: every rule.

Run on demand, not in the test suite:

    python3 benchmarks/bench_check.py                     # ~2 minutes: makes the trace, 3 repetitions
    python3 benchmarks/bench_check.py --quick             # 200k lines, 1 repetition
    python3 benchmarks/bench_check.py --trace T.jsonl     # reuse (or keep) the trace at T.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

GOAL_LINES_PER_S = 100_000
GOAL_RSS_MIB = 200
FULL_RAM = "12.75 GiB"  # (1 + 7 + 208,896) writes (header, 444 KiB bitmap, body) × 5 records + 9 = 1,044,529 lines
QUICK_RAM = "2.5 GiB"


def make_trace(path: Path, ram: str) -> tuple[int, float]:
    """Write the trace of a real request-mode run to *path*; return (lines, wall seconds)."""
    from stacksim import FilterCatalog, JsonlTrace, simulate, validate_scenario
    from stacksim._log import configure_logging

    configure_logging("warning")
    catalog = FilterCatalog()
    scenario = validate_scenario(
        {
            "scenario": {"name": "bench-check", "bugcheck_at": "10 ms"},
            "registry": {"DumpFilters": ["delayflt.sys"], "CrashDumpEnabled": 1},
            "memory": {"ram": ram},
            "filters": {"delayflt.sys": {"per_call": "2 us"}},
            "dump_port": {"max_transfer": "64 KiB"},
            "disk": {"model": "fixed", "latency": "20 us", "bandwidth": "3 GB/s", "flush": "200 us"},
        },
        "<bench>",
        catalog,
    )
    t = time.perf_counter()
    with path.open("w", encoding="utf-8") as f:
        result = simulate(scenario, catalog, trace=JsonlTrace(f))
    wall = time.perf_counter() - t
    assert result.status == "ok", result.message
    with path.open("rb") as f:
        lines = sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(2**20), b""))
    return lines, wall


def child(kind: str, path: str) -> None:
    """One measurement in this (fresh) process; prints a JSON line."""
    import orjson

    from stacksim.check import CHUNK_BYTES, check_trace_file

    def lines() -> Iterator[bytes]:
        with open(path, "rb") as f:
            carry = b""
            while chunk := f.read(CHUNK_BYTES):
                parts = (carry + chunk).split(b"\n")
                carry = parts.pop()
                yield from parts

    t, c = time.perf_counter(), time.process_time()
    n = 0
    violations = 0
    if kind == "read":
        for _ in lines():
            n += 1
    elif kind == "orjson":
        for raw in lines():
            orjson.loads(raw)
            n += 1
    elif kind == "json":
        for raw in lines():
            json.loads(raw)
            n += 1
    else:
        n, found = check_trace_file(path)
        violations = len(found)
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"lines": n, "wall": wall, "cpu": cpu, "rss": rss, "violations": violations}))


KINDS = {
    "read": "read 1 MiB chunks, split lines",
    "orjson": "read + orjson.loads",
    "json": "read + stdlib json.loads",
    "check": "check_trace_file (every rule)",
}


def main() -> None:
    """Make the trace, measure each kind in fresh processes, print the table."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a 200k-line trace, one repetition")
    ap.add_argument("--reps", type=int, help="repetitions (default 3, 1 with --quick)")
    ap.add_argument("--trace", type=Path, help="the trace file to use; made (and kept) if it does not exist")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(*args.child)
        return
    reps = args.reps or (1 if args.quick else 3)
    import stacksim

    # the children import the stacksim this process imported (a script's sys.path starts at benchmarks/)
    root = str(Path(stacksim.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)}
    print(f"stacksim from {root}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as tmp:
        path = args.trace or Path(tmp) / "trace.jsonl"
        if not path.exists():
            lines, wall = make_trace(path, QUICK_RAM if args.quick else FULL_RAM)
            print(f"trace: {lines:,} lines, {path.stat().st_size / 2**20:,.0f} MiB, made by a request-mode run in {wall:.1f} s")
        else:
            print(f"trace: {path} ({path.stat().st_size / 2**20:,.0f} MiB)")
        runs: dict[str, list[dict[str, float]]] = {k: [] for k in KINDS}
        for _ in range(reps):  # interleaved, so a slow minute hits every kind alike
            for kind in KINDS:
                out = subprocess.run(
                    [sys.executable, __file__, "--child", kind, str(path)], capture_output=True, text=True, check=True, env=env
                )
                runs[kind].append(json.loads(out.stdout.strip().splitlines()[-1]))
    check = runs["check"][0]
    assert check["violations"] == 0, "the genuine trace broke a rule"
    med = {k: {f: statistics.median(m[f] for m in ms) for f in ("lines", "wall", "cpu", "rss")} for k, ms in runs.items()}
    floor = med["orjson"]["lines"] / med["orjson"]["cpu"]
    print(
        f"median of {reps} repetition(s), each in a fresh process; goal: ≥ {GOAL_LINES_PER_S:,} lines/s, ≤ {GOAL_RSS_MIB} MiB\n"
    )
    print("| measurement | lines | wall s | lines/s (wall) | CPU s | lines/s (CPU) | ÷ orjson floor (CPU) | peak RSS MiB |")
    print("|---|---|---|---|---|---|---|---|")
    for kind, label in KINDS.items():
        m = med[kind]
        cpu_rate = m["lines"] / m["cpu"]
        print(
            f"| {label} | {m['lines']:,.0f} | {m['wall']:.2f} | {m['lines'] / m['wall']:,.0f} | {m['cpu']:.2f} | "
            f"{cpu_rate:,.0f} | {cpu_rate / floor:.2f} | {m['rss'] / 2**20:.0f} |"
        )
    print(f"\nthe genuine trace passes every rule; load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
