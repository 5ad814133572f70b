"""
The events that drive the normal stack: ``io`` (the workload alone) and ``crash-during-io`` (the bugcheck freezes it).

Exact: request counts, bytes and simulated times are asserted with ``==``.
"""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from conftest import make_scenario, run

from stacksim import FilterCatalog, JsonlTrace, ListTrace, ScenarioError, simulate
from stacksim.check import check_records
from stacksim.cli import result_json
from stacksim.normal_stack import run_io

pytestmark = pytest.mark.timeout(60)

NVME = {"preset": "nvme-pcie4"}


def io_run(**sections: Any) -> Any:
    """Run an ``io`` scenario on the NVMe preset; return its result."""
    s = make_scenario(scenario={"event": "io", "bugcheck_at": None}, disk=NVME, **sections)
    return simulate(s, FilterCatalog())


def crash_during_io(workload: dict[str, Any], bugcheck_at: str = "2 ms", **sections: Any) -> Any:
    """Run a ``crash-during-io`` scenario on the NVMe preset with *workload*; return its result."""
    s = make_scenario(scenario={"event": "crash-during-io", "bugcheck_at": bugcheck_at}, disk=NVME, workload=workload, **sections)
    return simulate(s, FilterCatalog())


def test_an_io_run_completes_every_request_and_writes_no_dump() -> None:
    """event = "io" runs the workload to its last request; the dump fields stay empty."""
    r = io_run(workload={"pattern": "random-write", "queue_depth": 8, "requests": 500})
    assert (r.io.issued, r.io.completed, r.io.bytes_done) == (500, 500, 500 * 4096)
    assert (r.status, r.dump_type, r.bytes_written, r.write_requests, r.dump_time_ns) == ("ok", "none", 0, 0, 0)


def test_an_io_run_is_the_normal_stack_run_of_the_same_scenario() -> None:
    """The io event's numbers are exactly those of ``run_io`` on the same scenario."""
    s = make_scenario(scenario={"event": "io", "bugcheck_at": None}, disk=NVME, workload={"queue_depth": 16, "requests": 300})
    assert simulate(s, FilterCatalog()).io.as_dict() == run_io(s).as_dict()


def test_no_normal_stack_request_completes_after_the_bugcheck() -> None:
    """The freeze: the normal stack's last completion is before the bugcheck and its run ends at it."""
    r = crash_during_io({"pattern": "random-write", "queue_depth": 32, "duration": "1 s"})
    assert r.io.end_ns == 2_000_000
    assert r.io.latency.count == r.io.completed


def test_lost_requests_are_the_issued_minus_the_completed() -> None:
    """Every request issued and not completed by the bugcheck is reported lost, once."""
    r = crash_during_io({"pattern": "mixed", "block_size": "64 KiB", "queue_depth": 32, "duration": "1 s"})
    assert len(r.lost) == r.io.issued - r.io.completed == 32
    assert len({x.request for x in r.lost}) == len(r.lost)


def test_lost_per_layer_adds_up_to_the_lost_requests() -> None:
    """The per-layer counts and bytes sum to the lost requests and their lengths."""
    r = crash_during_io({"pattern": "random-write", "block_size": "16 KiB", "queue_depth": 24, "duration": "1 s"})
    by_layer = r.lost_by_layer()
    assert sum(v["requests"] for v in by_layer.values()) == len(r.lost)
    assert sum(v["bytes"] for v in by_layer.values()) == 16384 * len(r.lost)


def test_commands_the_device_held_are_dropped_by_the_reset() -> None:
    """Each request lost at the device is named as dropped by the dump port's controller reset."""
    r = crash_during_io({"pattern": "random-read", "queue_depth": 32, "duration": "1 s"})
    at_device = [x for x in r.lost if x.layer == "device"]
    assert at_device
    assert {x.fate for x in at_device} == {"held by the device: dropped by the dump port's controller reset"}


@pytest.mark.parametrize("preset", ["azure-premium-p10", "nvme-pcie4", "hdd-7200"])
def test_commands_the_reset_drops_leave_the_device_as_if_never_sent(preset: str) -> None:
    """A bugcheck before any command completes: the dump takes as long as after an idle disk (no throttle, cache, head cost)."""
    disk = {"preset": preset}
    workload = {"pattern": "random-write", "block_size": "1 MiB", "queue_depth": 32, "duration": "1 s"}
    s = make_scenario(scenario={"event": "crash-during-io", "bugcheck_at": "12 us"}, disk=disk, workload=workload)
    r = simulate(s, FilterCatalog())
    assert r.io.completed == 0
    assert any(x.layer == "device" for x in r.lost)
    plain = simulate(make_scenario(scenario={"bugcheck_at": "12 us"}, disk=disk), FilterCatalog())
    assert (r.dump_time_ns, r.status) == (plain.dump_time_ns, plain.status)


def test_a_duration_workload_stops_at_the_request_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    """A duration longer than the cap allows issues exactly the cap's requests, and the result says the cap ended it."""
    monkeypatch.setattr("stacksim.normal_stack.MAX_IO_REQUESTS", 100)
    r = io_run(workload={"queue_depth": 4, "duration": "1 s"})
    assert (r.io.issued, r.io.completed, r.io.capped) == (100, 100, True)
    assert r.message.endswith("; it stopped at the cap of 100 requests, before its duration")


def test_an_io_result_carries_no_dump_port_figures() -> None:
    """No dump ran: the io result's dump-only numbers are zero."""
    r = io_run(workload={"requests": 10})
    assert (r.max_pages_per_write, r.dump_bytes, r.write_requests) == (0, 0, 0)


def test_mean_in_flight_counts_the_frozen_requests_until_the_bugcheck() -> None:
    """32 requests are always in flight until the bugcheck, so the stages' mean in flight add up to exactly 32."""
    r = crash_during_io({"pattern": "random-write", "queue_depth": 32, "duration": "1 s"}, bugcheck_at="1 ms")
    assert sum(x.residence_ns + x.frozen_residence_ns for x in r.io.layers) == 32 * 1_000_000
    assert sum(x.mean_in_flight for x in r.io.layers) == 32


def test_a_workload_writing_into_the_page_file_is_warned_about() -> None:
    """A write region over the page file's disk runs gives a warning naming the overlap."""
    r = io_run(workload={"region_size": "200 GiB", "requests": 10})
    head = "[workload] region (1,048,576 to 214,749,413,376 bytes on the disk) overlaps 1 disk run(s) of the page file"
    assert any(w.startswith(head) for w in r.warnings)


def test_a_read_only_workload_over_the_page_file_is_not_warned_about() -> None:
    """Reads never change the page file: no overlap warning."""
    r = io_run(workload={"pattern": "random-read", "region_size": "200 GiB", "requests": 10})
    assert not [w for w in r.warnings if w.startswith("[workload] region")]


def test_a_workload_on_a_crash_event_is_reported_ignored() -> None:
    """A [workload] table on event = "crash" is named in the warnings as ignored."""
    s = make_scenario(workload={"requests": 10})
    r = simulate(s, FilterCatalog())
    assert any(w.startswith('[workload] is ignored by this run: event = "crash" runs no workload') for w in r.warnings)


def test_a_traced_workload_is_capped_before_its_records_outgrow_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    """A traced run that would issue more than the cap ends with a scenario error naming [workload] requests."""
    monkeypatch.setattr("stacksim.normal_stack.MAX_TRACED_REQUESTS", 50)
    s = make_scenario(scenario={"event": "io", "bugcheck_at": None}, disk=NVME, workload={"queue_depth": 4, "requests": 100})
    with pytest.raises(ScenarioError, match=r"\[workload\] requests: a traced workload may issue at most 50 requests"):
        simulate(s, FilterCatalog(), trace=ListTrace())


def test_a_mixed_workload_that_only_reads_is_not_warned_about_the_page_file() -> None:
    """read_fraction = 1: no write reaches the page file's runs, so no overlap warning."""
    r = io_run(workload={"pattern": "mixed", "read_fraction": 1, "region_size": "200 GiB", "requests": 10})
    assert not [w for w in r.warnings if w.startswith("[workload] region")]


def test_a_dump_section_on_an_io_event_is_reported_ignored() -> None:
    """[memory] on event = "io" writes no dump: named in the warnings as ignored."""
    r = io_run(memory={"ram": "1 GiB"}, workload={"requests": 10})
    assert any(w.startswith('[memory] is ignored by this run: event = "io" writes no dump') for w in r.warnings)


def test_a_workload_that_ends_before_the_bugcheck_is_warned_about() -> None:
    """Nothing in flight at the bugcheck: the warnings say the workload ended first and nothing was lost."""
    r = crash_during_io({"requests": 5}, bugcheck_at="1 s")
    assert r.lost == ()
    assert any(w.startswith("the workload ended at ") and "before the bugcheck at 1 s" in w for w in r.warnings)


def test_a_read_only_workload_leaves_the_dump_as_a_plain_crash_writes_it() -> None:
    """Reads never touch the write cache: the dump after the freeze takes exactly as long as a crash without I/O."""
    r = crash_during_io({"pattern": "random-read", "queue_depth": 32, "duration": "1 s"})
    plain = simulate(make_scenario(scenario={"bugcheck_at": "2 ms"}, disk=NVME), FilterCatalog())
    assert (r.dump_time_ns, r.bytes_written, r.status) == (plain.dump_time_ns, plain.bytes_written, plain.status)


def test_a_crash_during_io_result_is_deterministic() -> None:
    """The same scenario and seed give byte-identical result JSON."""
    workload = {"pattern": "mixed", "queue_depth": 32, "duration": "1 s"}
    first = result_json(crash_during_io(workload))
    assert all(result_json(crash_during_io(workload)) == first for _ in range(3))


def test_the_result_json_carries_io_and_lost() -> None:
    """The result JSON has the normal stack's numbers and the lost requests by layer."""
    d = json.loads(result_json(crash_during_io({"queue_depth": 8, "duration": "1 s"})))
    assert d["io"]["queue_depth"] == 8
    assert sum(v["requests"] for v in d["lost"].values()) == len(d["lost_requests"]) == 8


def test_an_io_event_needs_a_workload_section() -> None:
    """event = "io" without [workload] is refused, naming the section."""
    with pytest.raises(ScenarioError, match=r"\[workload\]"):
        make_scenario(scenario={"event": "io", "bugcheck_at": None}, disk=NVME)


def test_a_crash_during_io_needs_a_bugcheck_time() -> None:
    """event = "crash-during-io" without bugcheck_at is refused."""
    with pytest.raises(ScenarioError, match="needs bugcheck_at"):
        make_scenario(scenario={"event": "crash-during-io", "bugcheck_at": None}, disk=NVME, workload={"requests": 10})


def test_an_io_event_takes_no_bugcheck_time() -> None:
    """event = "io" with bugcheck_at is refused: it does not crash."""
    with pytest.raises(ScenarioError, match="does not crash"):
        make_scenario(scenario={"event": "io"}, disk=NVME, workload={"requests": 10})


IO = {"scenario": {"event": "io", "bugcheck_at": None}, "disk": NVME}
CRASH_DURING_IO = {"scenario": {"event": "crash-during-io", "bugcheck_at": "2 ms"}, "disk": NVME}
MIXED = {"pattern": "mixed", "block_size": "64 KiB", "queue_depth": 32, "duration": "1 s"}


def records(trace: ListTrace, *events: str) -> list[dict[str, Any]]:
    """The records of *trace* whose event is one of *events*."""
    return [r for r in trace.records if r["event"] in events]


def test_a_trace_of_an_io_run_passes_the_checker() -> None:
    """A traced io run writes the normal stack's records alone, and they pass every rule."""
    result, trace = run(**IO, workload={"pattern": "random-write", "queue_depth": 8, "requests": 200})
    assert all(r["event"].startswith("io_") for r in trace.records)
    assert len(records(trace, "io_device")) == result.io.completed == 200


def test_a_trace_of_a_crash_during_io_passes_the_checker() -> None:
    """A traced crash-during-io run merges the normal stack's records with the dump path's, and passes every rule."""
    _, trace = run(**CRASH_DURING_IO, workload=MIXED)
    assert [r["event"] for r in records(trace, "io_context", "io_freeze", "bugcheck")] == ["io_context", "io_freeze", "bugcheck"]


def test_the_merged_trace_is_byte_identical_across_ten_runs() -> None:
    """The same scenario and seed give the byte-identical merged trace, ten times over."""
    s = make_scenario(**CRASH_DURING_IO, workload=MIXED)

    def trace_text() -> str:
        out = io.StringIO()
        simulate(s, FilterCatalog(), trace=JsonlTrace(out))
        return out.getvalue()

    first = trace_text()
    assert all(trace_text() == first for _ in range(9))


def test_the_freeze_record_counts_the_lost_requests_by_layer() -> None:
    """The io_freeze at the bugcheck counts the requests issued, completed and lost, per layer as the result does."""
    result, trace = run(**CRASH_DURING_IO, workload=MIXED)
    (freeze,) = records(trace, "io_freeze")
    assert (freeze["t_ns"], freeze["layer"]) == (2_000_000, "ntoskrnl.exe")
    assert freeze["detail"] == {
        "issued": result.io.issued,
        "completed": result.io.completed,
        "lost": len(result.lost),
        "by_layer": {layer: v["requests"] for layer, v in result.lost_by_layer().items()},
    }


def test_the_reset_names_the_requests_the_device_held() -> None:
    """The dump port's port_init lists the normal-stack requests (numbered from 1) the reset dropped at the device."""
    result, trace = run(**CRASH_DURING_IO, workload={"pattern": "random-read", "queue_depth": 32, "duration": "1 s"})
    (port_init,) = records(trace, "port_init")
    dropped = [x.request for x in result.lost if x.layer == "device"]
    assert port_init["detail"] == {"dropped": len(dropped), "requests": dropped}


def test_the_result_numbers_lost_requests_as_the_trace_does() -> None:
    """lost_requests and io.frozen name each request by its trace number (from 1): the issued ones the trace never finishes."""
    result, trace = run(**CRASH_DURING_IO, workload=MIXED)
    finished = {r["request"] for r in records(trace, "io_complete") if r["layer"] == "application"}
    unfinished = sorted(set(range(1, result.io.issued + 1)) - finished)
    d = result.as_dict()
    assert [x["request"] for x in d["lost_requests"]] == [f["request"] for f in d["io"]["frozen"]] == unfinished


def test_no_normal_stack_record_ends_at_or_after_the_bugcheck() -> None:
    """Every record of the normal stack's requests ends before the bugcheck at 2 ms."""
    _, trace = run(**CRASH_DURING_IO, workload=MIXED)
    path = records(trace, "io_submit", "io_wait", "io_queue", "io_device", "io_interrupt", "io_complete")
    assert max(r["t_ns"] + r["dur_ns"] for r in path) < 2_000_000


def test_a_traced_io_run_has_the_result_of_an_untraced_one() -> None:
    """Tracing changes nothing in the result of an io run."""
    s = make_scenario(**IO, workload={"queue_depth": 16, "requests": 300})
    assert simulate(s, FilterCatalog(), trace=ListTrace()).io.as_dict() == simulate(s, FilterCatalog()).io.as_dict()


def test_a_trace_of_a_bitlocker_crash_during_io_passes_the_checker() -> None:
    """With fvevol.sys on the normal stack and dumpfve.sys on the dump stack, the merged trace passes every rule."""
    _, trace = run(
        check=False,
        **CRASH_DURING_IO,
        workload=MIXED,
        normal_stack={"bitlocker": True},
        registry={"DumpFilters": ["dumpfve.sys"]},
    )
    assert check_records(trace.records) == []
