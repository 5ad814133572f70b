"""
Layout and fault-list benchmark: validate and run time for 1k, 10k and 100k layout runs or faults.

Each row is one scenario, validated (``validate_scenario``: pydantic, the layout checks, the
64-bit time bound) and then run (``simulate``, batched mode). What matters is the ratio: time per
run (or per fault) at 100k ÷ the same at 1k should stay near 1 -- linear -- where a scan per write
made it grow with the list (before issue 10: 10k layout runs took 9 s and 100k took 474 s).

* **layout runs**: a complete dump laid out as N explicit runs of 256 KiB, 64 KiB apart (each run
  is one batched message of 64 KiB writes), default filter (dumpfve.sys).
* **device faults**: N transient ``device_error`` faults, one every 4th write of a complete dump
  of 4N writes, retried once (``write_retries = 1``): every fault fires, each faulty write and its
  retry go one at a time between batched runs.
* **filter faults**: N ``filter_error_status`` faults on dumpfve.sys, one every 4th write.

Times are CPU seconds of this process (``time.process_time``), so other load on the machine
counts less than in wall time. Run on demand, not in the test suite:

    python3 benchmarks/bench_layout.py            # ~1 minute
    python3 benchmarks/bench_layout.py --quick    # 1k and 10k only
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

from stacksim import FilterCatalog, simulate, validate_scenario
from stacksim._log import configure_logging

RUN = 256 * 1024
WRITE = 64 * 1024


def layout_runs(n: int) -> dict[str, Any]:
    """A complete dump that fills N explicit runs of 256 KiB (header included), 64 KiB apart."""
    runs = [{"offset": 2**30 + i * (RUN + WRITE), "length": RUN} for i in range(n)]
    return {
        "scenario": {"name": f"runs-{n}"},
        "registry": {"CrashDumpEnabled": 1},
        "memory": {"ram": n * RUN - 8192},
        "disk": {"size": "2 TB"},
        "layout": {"runs": runs},
    }


def device_faults(n: int) -> dict[str, Any]:
    """A complete dump of 4N writes with a transient device error on every 4th, each retried once."""
    return {
        "scenario": {"name": f"device-faults-{n}"},
        "registry": {"CrashDumpEnabled": 1},
        "memory": {"ram": 4 * n * WRITE},
        "dump_driver": {"write_retries": 1},
        "faults": [{"kind": "device_error", "at_request": 2 + 4 * i, "persistent": False} for i in range(n)],
    }


def filter_faults(n: int) -> dict[str, Any]:
    """A complete dump of 4N writes with dumpfve.sys returning an error status on every 4th."""
    return {
        "scenario": {"name": f"filter-faults-{n}"},
        "registry": {"CrashDumpEnabled": 1},
        "memory": {"ram": 4 * n * WRITE},
        "faults": [{"kind": "filter_error_status", "filter": "dumpfve.sys", "at_request": 2 + 4 * i} for i in range(n)],
    }


def measure(make: Callable[[int], dict[str, Any]], n: int) -> tuple[float, float, Any]:
    """CPU seconds to validate and to run the scenario *make(n)*, and its result."""
    catalog = FilterCatalog()
    data = make(n)
    t0 = time.process_time()
    scenario = validate_scenario(data, "<bench>", catalog)
    t1 = time.process_time()
    result = simulate(scenario, catalog)
    t2 = time.process_time()
    assert result.status == "ok", result.message
    return t1 - t0, t2 - t1, result


def main() -> None:
    """Measure and print one table."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="1k and 10k only")
    args = ap.parse_args()
    configure_logging("warning")
    sizes = [1_000, 10_000] if args.quick else [1_000, 10_000, 100_000]
    kinds = {"layout runs": layout_runs, "device faults": device_faults, "filter faults": filter_faults}
    print("CPU seconds (time.process_time); per-item times in µs; ratios ÷ the 1k row of the same kind\n")
    print("| list | N | writes | messages | validate s | run s | validate µs/item | run µs/item | validate ÷ 1k | run ÷ 1k |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, make in kinds.items():
        base: tuple[float, float] | None = None
        for n in sizes:
            v, r, result = measure(make, n)
            per = (v / n * 1e6, r / n * 1e6)
            base = base or per
            print(
                f"| {name} | {n:,} | {result.write_requests:,} | {result.batched_messages:,} | {v:.2f} | {r:.2f} | "
                f"{per[0]:.1f} | {per[1]:.1f} | {per[0] / base[0]:.2f} | {per[1] / base[1]:.2f} |"
            )


if __name__ == "__main__":
    main()
