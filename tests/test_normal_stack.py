"""The normal (runtime) storage stack: exact QD1 sums, Little's law, storport's depth, out-of-order completions, freezing."""

from __future__ import annotations

from fractions import Fraction
from typing import Any, ClassVar

import pytest
from test_pipeline import reference

from stacksim.filters import FilterCatalog
from stacksim.normal_stack import IoRequest, NormalStack, TraceRecord, build_runtime_device, run_io, workload, workload_ops
from stacksim.scenario import Scenario, ScenarioError, validate_scenario
from stacksim.units import bytes_time_ns, transfer_ns

STACK_NS = 7_000
"""The default costs of every layer on both paths, ISR and DPC included (``[normal_stack]`` defaults)."""


def scenario(workload_: dict[str, Any], normal: dict[str, Any] | None = None, disk: dict[str, Any] | None = None) -> Scenario:
    """A scenario on the nvme-pcie4 preset with the given ``[workload]`` and ``[normal_stack]``."""
    data: dict[str, Any] = {
        "scenario": {"name": "io", "seed": 7},
        "disk": disk or {"preset": "nvme-pcie4"},
        "workload": workload_,
    }
    if normal is not None:
        data["normal_stack"] = normal
    return validate_scenario(data, "<test>", FilterCatalog())


def visits(trace: list[TraceRecord]) -> dict[tuple[int, str], tuple[int, int, int]]:
    """(request, stage) → (arrival, start, end) from a trace's queue and service records."""
    out: dict[tuple[int, str], list[int]] = {}
    for t, stage, event, dur, request, _offset, _length in trace:
        v = out.setdefault((request, stage), [t, t, t])
        if event == "queue":
            v[0], v[1], v[2] = t, t + dur, t + dur
        else:
            v[1], v[2] = t, t + dur
    return {k: (a, b, c) for k, (a, b, c) in out.items()}


def sweep_area(intervals: list[tuple[int, int]]) -> int:
    """∫ n(t) dt of the step function "requests inside", by a sweep over arrivals and departures."""
    events = sorted([(a, 1) for a, _ in intervals] + [(d, -1) for _, d in intervals])
    area, inside, last = 0, 0, 0
    for t, delta in events:
        area += inside * (t - last)
        inside += delta
        last = t
    return area


class TestQd1:
    """One request at a time: the sum of every layer and the device."""

    def test_a_write_takes_every_layer_cost_plus_the_device(self) -> None:
        """At QD1 every 4 KiB write takes the stack's 7,000 ns plus the device's 17,000 ns + 4 KiB at 5 GB/s."""
        r = run_io(scenario({"pattern": "random-write", "requests": 50}))
        device = 17_000 + transfer_ns(4096, 5_000 * 10**6)
        assert (r.latency.min, r.latency.max, r.end_ns) == (STACK_NS + device, STACK_NS + device, 50 * (STACK_NS + device))

    def test_a_read_takes_every_layer_cost_plus_the_device_read(self) -> None:
        """At QD1 every 4 KiB read takes the stack's 7,000 ns plus the preset's 45,000 ns read + 4 KiB at 7 GB/s."""
        r = run_io(scenario({"pattern": "random-read", "requests": 20}))
        device = 45_000 + transfer_ns(4096, 7_000 * 10**6)
        assert (r.latency.min, r.latency.max) == (STACK_NS + device, STACK_NS + device)

    def test_bitlocker_adds_the_dumpfve_cipher_and_the_dispatch_to_writes(self) -> None:
        """With BitLocker fvevol.sys adds its crypto dispatch plus dumpfve.sys's per-call + per-byte cipher cost."""
        plain = run_io(scenario({"pattern": "random-write", "requests": 5}))
        enc = run_io(scenario({"pattern": "random-write", "requests": 5}, {"bitlocker": True}))
        assert enc.latency.max - plain.latency.max == 8_760 + 1_000 + bytes_time_ns(4096, 300)


class TestCalibration:
    """The published whole-stack figures (Samsung 990 Pro 4 TB, Windows 11, CrystalDiskMark 4K QD1)."""

    DISK: ClassVar[dict[str, str]] = {"preset": "nvme-pcie4", "latency": "5316 ns", "bandwidth": "6900 MB/s"}
    READ: ClassVar[dict[str, str]] = {"device_read_latency": "32930 ns", "device_read_bandwidth": "7450 MB/s"}

    @pytest.mark.parametrize(
        ("pattern", "bitlocker", "published_ns", "tolerance"),
        [
            ("random-write", False, 12_910, Fraction(2, 100)),
            ("random-write", True, 23_900, Fraction(2, 100)),
            ("random-read", False, 40_000, Fraction(5, 100)),
            ("random-read", True, 51_000, Fraction(5, 100)),
        ],
    )
    def test_qd1_latency_matches_the_published_figure(
        self, pattern: str, bitlocker: bool, published_ns: int, tolerance: Fraction
    ) -> None:
        """4K QD1 latency is within 2 % (writes) or 5 % (reads, given as "~") of Tom's Hardware's figures."""
        r = run_io(scenario({"pattern": pattern, "requests": 10}, {"bitlocker": bitlocker, **self.READ}, self.DISK))
        assert abs(Fraction(r.latency.max - published_ns, published_ns)) <= tolerance


class TestQueues:
    """Many requests in flight."""

    def test_littles_law_holds_in_every_stage(self) -> None:
        """Per stage, mean in flight (a sweep over the trace) = throughput × mean latency, exactly."""
        r = run_io(scenario({"pattern": "mixed", "queue_depth": 16, "requests": 400}), trace=True)
        by_stage: dict[str, list[tuple[int, int]]] = {}
        for (_request, stage), (arrival, _start, end) in visits(r.trace).items():
            by_stage.setdefault(stage, []).append((arrival, end))
        for layer in r.layers:
            if layer.name == "storport.sys:queue":
                continue  # the trace shows its waits only; its residence is checked through the device below
            intervals = by_stage[layer.name]
            throughput = Fraction(len(intervals), r.end_ns)
            mean_latency = Fraction(sum(d - a for a, d in intervals), len(intervals))
            assert Fraction(sweep_area(intervals), r.end_ns) == layer.mean_in_flight == throughput * mean_latency, layer.name

    def test_storport_holds_at_most_its_depth_at_the_device_and_queues_the_rest(self) -> None:
        """With storport_queue_depth = 4 and 32 application requests, 4 are at the device and 28 wait in storport."""
        r = run_io(
            scenario({"pattern": "random-read", "queue_depth": 32, "requests": 300}, {"storport_queue_depth": 4}), trace=True
        )
        device = [(a, e) for (_, stage), (a, _s, e) in visits(r.trace).items() if stage == "device"]
        events = sorted([(a, 1) for a, _ in device] + [(e, -1) for _, e in device])
        inside = peak = 0
        for _t, delta in events:
            inside += delta
            peak = max(peak, inside)
        assert (r.device_max_outstanding, peak, r.storport_max_queue) == (4, 4, 28)

    def test_an_nvme_preset_completes_out_of_order(self) -> None:
        """On 8 channels a write issued after a read completes at the device before it."""
        r = run_io(scenario({"pattern": "mixed", "queue_depth": 8, "requests": 200}), trace=True)
        device = sorted((s, e, req) for (req, stage), (_a, s, e) in visits(r.trace).items() if stage == "device")
        ends = [e for _s, e, _req in device]
        assert ends != sorted(ends)

    def test_the_stack_equals_a_heapq_simulation_of_it(self) -> None:
        """The whole normal stack on an out-of-order device gives the heapq reference's timeline exactly."""
        s = scenario({"pattern": "mixed", "queue_depth": 12, "requests": 300}, {"storport_queue_depth": 6})
        r = run_io(s, trace=True)
        device, parallelism = build_runtime_device(s)
        stack = NormalStack(s.normal_stack, "stornvme.sys", device, parallelism, workload_ops(s.workload), 4096)
        items = list(workload(s.workload, s.scenario.seed))

        def on(fn: Any) -> Any:
            return (lambda i, t: fn) if isinstance(fn, int) else (lambda i, t: fn(items[i], t))

        events, _, _ = reference(
            [(st.name, on(st.service)) for st in stack.submit],
            stack.port.name,
            "device",
            6,
            parallelism,
            on(stack.port.service),
            [(st.name, on(st.service)) for st in stack.complete],
            len(items),
            12,
        )
        ref = {(i, stage): (a, st, e) for stage, i, a, st, e in events if stage != stack.port.name}
        got = {k: v for k, v in visits(r.trace).items() if k[1] != stack.port.name}
        assert got == ref

    def test_same_seed_same_result_twenty_times(self) -> None:
        """Twenty runs of one seed give identical results and traces, whatever order trio wakes the tasks in."""
        s = scenario({"pattern": "mixed", "queue_depth": 32, "requests": 500})
        first = run_io(s, trace=True)
        for _ in range(19):
            again = run_io(s, trace=True)
            assert (again.as_dict(), again.trace) == (first.as_dict(), first.trace)

    def test_duration_bounds_the_run(self) -> None:
        """With duration = 1 ms and no request limit, nothing is issued at or after 1 ms."""
        r = run_io(scenario({"pattern": "random-read", "queue_depth": 4, "duration": "1 ms"}), trace=True)
        issues = [t for t, stage, event, *_ in r.trace if stage == "application:submit" and event == "service"]
        assert max(issues) < 10**6
        assert r.completed == r.issued


class TestFreeze:
    """The bugcheck freezes the stack mid-flight."""

    def test_the_freeze_lists_exactly_the_requests_in_flight_by_layer(self) -> None:
        """Frozen at 500 µs, each request issued and not completed is listed once, in the stage a full run shows it in then."""
        s = scenario({"pattern": "mixed", "queue_depth": 32, "requests": 2_000}, {"storport_queue_depth": 8})
        t = 500_000
        frozen = run_io(s, freeze_at=t)
        expected = set()
        for (request, stage), (arrival, start, end) in visits(run_io(s, trace=True).trace).items():
            if arrival < t <= start:
                expected.add((request, stage, "queued"))
            elif start < t <= end:
                expected.add((request, stage, "in_service"))
        assert {(f.index, f.stage, f.state) for f in frozen.frozen} == expected
        assert len(frozen.frozen) == frozen.issued - frozen.completed == 32

    def test_nothing_completes_after_the_freeze(self) -> None:
        """Every completion of a frozen run is before the bugcheck."""
        r = run_io(scenario({"pattern": "random-read", "queue_depth": 8, "requests": 1_000}), freeze_at=300_000, trace=True)
        assert max(t + dur for t, _stage, _event, dur, *_ in r.trace) < 300_000


class TestWorkload:
    """``[workload]`` patterns and validation."""

    def test_sequential_writes_walk_the_region_and_wrap(self) -> None:
        """A sequential workload writes block after block from region_offset and wraps at the region's end."""
        s = scenario({"pattern": "sequential-write", "block_size": 4096, "region_size": 8192, "requests": 3})
        assert list(workload(s.workload, 0)) == [IoRequest("write", 2**20 + k, 4096) for k in (0, 4096, 0)]

    def test_random_offsets_are_whole_blocks_in_the_region(self) -> None:
        """Random offsets are block-aligned and inside the region, and the same seed draws the same ones."""
        s = scenario({"pattern": "random-read", "block_size": 8192, "requests": 200})
        reqs = list(workload(s.workload, 3))
        assert all(r.offset % 8192 == 2**20 % 8192 and 2**20 <= r.offset < 2**20 + 2**30 for r in reqs)
        assert reqs == list(workload(s.workload, 3))

    def test_a_region_past_the_disk_is_refused(self) -> None:
        """A region that ends past the disk is refused, naming the keys."""
        with pytest.raises(ScenarioError, match=r"region_offset \+ region_size"):
            scenario({"region_offset": "999 GB", "region_size": "2 GB"})

    def test_read_fraction_needs_the_mixed_pattern(self) -> None:
        """read_fraction with a pattern other than mixed is refused."""
        with pytest.raises(ScenarioError, match="read_fraction"):
            scenario({"pattern": "random-read", "read_fraction": 0.3})


def test_min_service_is_a_lower_bound_of_every_device() -> None:
    """Every preset's min_service_ns is at most what its reads and writes take."""
    from stacksim.devices import DEVICE_PRESETS

    for name in DEVICE_PRESETS:
        s = scenario({"requests": 1}, disk={"preset": name})
        device, _ = build_runtime_device(s)
        for op, call in (("read", device.read_ns), ("write", device.write_ns)):
            for k in range(20):
                assert device.min_service_ns(4096, op) <= call(k * 7 * 4096, 4096, k * 1_000), (name, op)


def test_parallel_commands_share_the_media() -> None:
    """Eight channels with no cache still drain at the media's 1 GB/s together, not 8 GB/s (the interface is 5 GB/s)."""
    disk = {"model": "ssd", "bandwidth": "5 GB/s", "media_bandwidth": "1 GB/s", "cache": 0, "size": "1 TiB"}
    work = {"pattern": "sequential-write", "block_size": "1 MiB", "queue_depth": 32, "requests": 200}
    wide = run_io(scenario(work, {"device_parallelism": 8}, disk))
    assert wide.throughput <= 10**9
