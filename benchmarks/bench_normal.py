"""
Normal-stack benchmark: stacksim's runtime stack at QD32 vs a SimPy model of the same event-level work.

The model is ``stacksim.normal_stack`` as an ``event = "io"`` run builds it: 4 KiB random reads at
queue depth 32 on the ``nvme-pcie4`` preset (8 channels), through the application, ntfs.sys,
volsnap.sys, fvevol.sys, volmgr.sys, partmgr.sys, disk.sys, storport.sys and the miniport on the
way down, storport's queue (depth 32) and the device, then the interrupt (ISR + DPC) and every
layer's completion on the way up: 18 single-server FIFO stages, a queue with a depth and a device
with 8 channels.

The SimPy model does the same work the SimPy way: a process per stage with a ``Store`` in front
and one ``timeout`` per request, a ``Container`` of storport slots, one process per device channel
calling the same device model at the command's start, and a source process keeping 32 requests in
flight. Both must give the same simulated end time and completions; the script checks that, then
prints requests/s for both and the ratio, measured in this one run.

Run on demand, not in the test suite:

    python3 -m pip install -e ".[bench]"
    python3 benchmarks/bench_normal.py            # ~1 minute
    python3 benchmarks/bench_normal.py --quick    # fewer requests and repetitions
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time
from typing import Any

from stacksim._log import configure_logging
from stacksim.filters import FilterCatalog
from stacksim.normal_stack import NormalStack, _ops, build_runtime_device, run_io, workload
from stacksim.scenario import Scenario, validate_scenario


def scenario(requests: int, pattern: str = "random-read") -> Scenario:
    """4 KiB requests at QD32 on an NVMe preset through the whole normal stack."""
    return validate_scenario(
        {
            "scenario": {"name": "bench-normal", "seed": 1},
            "disk": {"preset": "nvme-pcie4"},
            "workload": {"pattern": pattern, "block_size": 4096, "queue_depth": 32, "requests": requests},
        },
        "<bench>",
        FilterCatalog(),
    )


def run_stacksim(s: Scenario) -> tuple[float, int, int]:
    """Wall seconds, simulated end ns and completions of stacksim's normal stack."""
    t = time.perf_counter()
    r = run_io(s)
    return time.perf_counter() - t, r.end_ns, r.completed


def run_simpy(s: Scenario) -> tuple[float, int, int]:
    """The same network in SimPy 4: a process per stage, a Store between stages, a timeout per service."""
    import simpy

    w = s.workload
    device, parallelism = build_runtime_device(s)
    stack = NormalStack(s.normal_stack, "stornvme.sys", device, parallelism, _ops(w), w.block_size)
    env = simpy.Environment()
    submit = [st.service for st in stack.submit]
    complete = [st.service for st in stack.complete]
    ins = [simpy.Store(env) for _ in range(len(submit) + 1)]  # the last one is storport's queue
    dev_in = simpy.Store(env)
    ups = [simpy.Store(env) for _ in range(len(complete))]
    done = simpy.Store(env)
    slots = simpy.Container(env, capacity=stack.port.depth, init=stack.port.depth)
    service = stack.port.service

    def stage(cost: Any, inbox: Any, outbox: Any) -> Any:
        while True:
            req = yield inbox.get()
            yield env.timeout(cost if isinstance(cost, int) else cost(req[1], int(env.now)))
            yield outbox.put(req)

    for k, cost in enumerate(submit):
        env.process(stage(cost, ins[k], ins[k + 1]))
    for k, cost in enumerate(complete):
        env.process(stage(cost, ups[k], ups[k + 1] if k + 1 < len(ups) else done))

    def storport() -> Any:
        while True:
            req = yield ins[-1].get()
            yield slots.get(1)
            yield dev_in.put(req)

    def channel() -> Any:
        while True:
            req = yield dev_in.get()
            yield env.timeout(service(req[1], int(env.now)))
            yield slots.put(1)
            yield ups[0].put(req)

    env.process(storport())
    for _ in range(parallelism):
        env.process(channel())
    stats = {"completed": 0, "end": 0}

    def source() -> Any:
        items = workload(w, s.scenario.seed)
        n = 0
        for item in itertools.islice(items, w.queue_depth):
            yield ins[0].put((n, item))
            n += 1
        for item in items:
            yield done.get()
            stats["completed"] += 1
            stats["end"] = int(env.now)
            yield ins[0].put((n, item))
            n += 1
        while stats["completed"] < n:
            yield done.get()
            stats["completed"] += 1
            stats["end"] = int(env.now)

    t = time.perf_counter()
    env.process(source())
    env.run()
    return time.perf_counter() - t, stats["end"], stats["completed"]


def main() -> None:
    """Measure and print."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer requests and repetitions")
    ap.add_argument("--reps", type=int, help="repetitions per engine (default 3, 1 with --quick)")
    ap.add_argument("--requests", type=int, help="requests per run (default 50,000; 10,000 with --quick)")
    args = ap.parse_args()
    configure_logging("warning")
    n = args.requests or (10_000 if args.quick else 50_000)
    reps = args.reps or (1 if args.quick else 3)
    print(f"normal stack, 4 KiB random reads, QD32, nvme-pcie4 (8 channels), {n:,} requests; median of {reps}")
    for pattern in ("random-read", "random-write"):
        s = scenario(n, pattern)
        walls: dict[str, list[float]] = {"stacksim": [], "simpy": []}
        sims: dict[str, tuple[int, int]] = {}
        for _ in range(reps):
            for name, fn in (("stacksim", run_stacksim), ("simpy", run_simpy)):
                wall, end, completed = fn(s)
                walls[name].append(wall)
                sims[name] = (end, completed)
        assert sims["stacksim"] == sims["simpy"], f"{pattern}: the engines disagree: {sims}"
        rate = {k: n / statistics.median(v) for k, v in walls.items()}
        paired = sorted(b / a for a, b in zip(walls["stacksim"], walls["simpy"], strict=True))
        print(f"\n{pattern}: both end at {sims['stacksim'][0]:,} ns simulated with {sims['stacksim'][1]:,} completions")
        print("| engine | requests/s | ÷ SimPy |")
        print("|---|---|---|")
        ratio = rate["stacksim"] / rate["simpy"]
        print(f"| stacksim normal stack (trio, 18 stages + port) | {rate['stacksim']:,.0f} | {ratio:.2f} |")
        print(f"| SimPy 4, same network | {rate['simpy']:,.0f} | 1.00 |")
        print(f"ratio within each repetition: median {statistics.median(paired):.2f} (range {paired[0]:.2f}–{paired[-1]:.2f})")


if __name__ == "__main__":
    main()
