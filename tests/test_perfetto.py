"""
The Perfetto export (``stacksim/perfetto.py``): Trace Event JSON with a track per layer and a slice per request.

The Trace Event Format is checked as ui.perfetto.dev reads it: a JSON object with ``traceEvents``;
slices on one track must not overlap (Perfetto needs them to nest); a request's slices are linked
by one flow in path order; the byte counter ends where the result says. No viewer runs here.
"""

from __future__ import annotations

import io
import itertools
import json
import signal
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from conftest import invoke_cli, run

from stacksim.perfetto import DEFAULT_LIMIT, MAX_LIMIT, SUMMARY_SAMPLES, PerfettoTrace, _us, parse_limit

Event = dict[str, Any]

TWO_FILTERS: dict[str, Any] = {
    "registry": {"CrashDumpEnabled": 1, "DumpFilters": ["dumpfve.sys", "delayflt.sys"]},
    "memory": {"ram": "1 MiB"},
    "filters": {"delayflt.sys": {"start": "2 ms", "finish": "1 ms"}},
}
"""A complete dump of 1 MiB through two filters: 18 writes of 1,060,864 bytes; delayflt has Dump_Start and Dump_Finish."""

NVME_IO: dict[str, Any] = {
    "disk": {"preset": "nvme-pcie4"},
    "memory": {"ram": "256 KiB"},
    "workload": {"pattern": "mixed", "queue_depth": 4, "block_size": "4 KiB", "duration": "1 s"},
    "normal_stack": {"storport_queue_depth": 2},
}
CRASH_DURING_IO: dict[str, Any] = {"scenario": {"event": "crash-during-io", "bugcheck_at": "60 us"}, **NVME_IO}
"""A crash 60 µs into QD4 I/O: 6 requests issued, 2 completed, 4 lost; then a two-write dump."""
IO_ONLY: dict[str, Any] = {
    "scenario": {"event": "io", "bugcheck_at": None},
    **NVME_IO,
    "workload": {"pattern": "mixed", "queue_depth": 4, "block_size": "4 KiB", "requests": 12},
}
"""12 requests through the normal stack, every one completed, no dump."""

NORMAL_PATH = [
    *(f"{layer} dispatch" for layer in ("application", "ntfs.sys", "volsnap.sys", "fvevol.sys", "volmgr.sys")),
    *(f"{layer} dispatch" for layer in ("partmgr.sys", "disk.sys", "storport.sys", "stornvme.sys")),
    "device",
    "storport.sys interrupt",
    *(f"{layer} completion" for layer in ("storport.sys", "disk.sys", "partmgr.sys", "volmgr.sys", "fvevol.sys")),
    *(f"{layer} completion" for layer in ("volsnap.sys", "ntfs.sys", "application")),
]
"""The tracks a completed normal-stack request's slices are on, in path order ("device" for any device lane)."""


def export(records: list[dict[str, Any]], limit: int = DEFAULT_LIMIT) -> str:
    """The Perfetto JSON text of *records* (a ListTrace's), as `run --perfetto` writes it."""
    out = io.StringIO()
    writer = PerfettoTrace(out, limit)
    for r in records:
        writer.emit(*r.values())
    writer.close()
    return out.getvalue()


def events(text: str) -> list[Event]:
    return list(json.loads(text)["traceEvents"])


def thread_names(evs: list[Event]) -> dict[int, str]:
    return {e["tid"]: e["args"]["name"] for e in evs if e["ph"] == "M" and e["name"] == "thread_name"}


def request_slices(evs: list[Event]) -> dict[tuple[int, int, int], list[Event]]:
    """(pid, request, attempt) → the request's slices, in file order."""
    out: dict[tuple[int, int, int], list[Event]] = defaultdict(list)
    for e in evs:
        if e["ph"] == "X" and "request" in e["args"]:
            out[e["pid"], e["args"]["request"], e["args"].get("attempt", 1)].append(e)
    return out


def counter(evs: list[Event], name: str) -> list[tuple[float, int]]:
    return [(e["ts"], e["args"]["bytes"]) for e in evs if e["ph"] == "C" and e["name"] == name]


@pytest.fixture(scope="module")
def dump() -> tuple[Any, list[dict[str, Any]], list[Event]]:
    """The result, trace and exported events of TWO_FILTERS."""
    result, trace = run(**TWO_FILTERS)
    return result, trace.records, events(export(trace.records))


@pytest.fixture(scope="module")
def crash_io() -> tuple[Any, list[dict[str, Any]], list[Event]]:
    """The result, trace and exported events of CRASH_DURING_IO."""
    result, trace = run(**CRASH_DURING_IO)
    return result, trace.records, events(export(trace.records))


# -- the file ---------------------------------------------------------------------------------


def test_the_file_is_the_json_object_format() -> None:
    """The export is one JSON object: traceEvents, displayTimeUnit "ns", and otherData saying the limit and what was drawn."""
    _, trace = run(**TWO_FILTERS)
    doc = json.loads(export(trace.records))
    assert list(doc) == ["traceEvents", "displayTimeUnit", "otherData"]
    assert doc["displayTimeUnit"] == "ns"
    assert doc["otherData"] == {
        "stacksim_version": doc["otherData"]["stacksim_version"],
        "perfetto_limit": 10_000,
        "records": 118,
        "stacks": [{"name": "crash dump stack", "requests": 18, "requests_in_full": 18, "bytes": 1_060_864}],
    }


def test_every_event_is_of_a_phase_the_format_defines(dump: Any) -> None:
    """Every event is metadata (M), a complete slice (X), an instant (i) or a counter (C), with the keys its phase needs."""
    _, _, evs = dump
    assert {e["ph"] for e in evs} == {"M", "X", "i", "C"}
    for e in evs:
        needs = {"M": {"name", "pid", "args"}, "X": {"name", "ts", "dur", "pid", "tid"}, "i": {"ts", "s", "pid", "tid"}}
        assert needs.get(e["ph"], {"name", "ts", "pid", "args"}) <= set(e), e


def test_one_event_per_line() -> None:
    """Each event is one line of the file, so it can be read (and grepped) line by line."""
    _, trace = run(**TWO_FILTERS)
    text = export(trace.records)
    lines = text.splitlines()
    assert lines[0] == '{"traceEvents":['
    assert [json.loads(line.rstrip(",")) for line in lines[1 : lines.index("],")]] == events(text)


def test_the_same_records_give_the_same_bytes() -> None:
    """Determinism: two runs of one scenario export to byte-identical files."""
    first = export(run(**TWO_FILTERS)[1].records)
    assert export(run(**TWO_FILTERS)[1].records) == first


# -- time -------------------------------------------------------------------------------------


def test_microseconds_are_written_as_exact_decimals_of_the_nanoseconds() -> None:
    """ts and dur are µs with at most three decimals, exact at any size: no float rounding."""
    assert [_us(0), _us(1), _us(1000), _us(1500), _us(11_031_189)] == ["0", "0.001", "1", "1.5", "11031.189"]
    assert _us(2**63 - 1) == "9223372036854775.807"


def test_every_slice_keeps_its_exact_nanoseconds_in_args(dump: Any) -> None:
    """Each slice's ts and dur are its args' t_ns and dur_ns in µs, to the nanosecond."""
    _, _, evs = dump
    slices = [e for e in evs if e["ph"] == "X"]
    assert slices
    for e in slices:
        assert (round(e["ts"] * 1000), round(e["dur"] * 1000)) == (e["args"]["t_ns"], e["args"]["dur_ns"])


# -- tracks -----------------------------------------------------------------------------------


def test_a_dump_stack_has_one_track_per_layer_in_stack_order(dump: Any) -> None:
    """crashdmp, the filters in registry order, the port, the device: sort indexes and tids in that order."""
    _, _, evs = dump
    sort = {e["tid"]: e["args"]["sort_index"] for e in evs if e["ph"] == "M" and e["name"] == "thread_sort_index"}
    names = thread_names(evs)
    assert [names[t] for t in sorted(sort, key=sort.__getitem__)] == [
        "crashdmp",
        "dumpfve.sys",
        "delayflt.sys",
        "miniport",
        "device",
    ]
    assert sorted(names) == sorted(sort, key=sort.__getitem__)
    assert {e["args"]["name"] for e in evs if e["name"] == "process_name"} == {"crash dump stack"}


def test_the_normal_stack_has_a_track_per_layer_and_direction(crash_io: Any) -> None:
    """Per layer a dispatch and a completion track (storport also an interrupt one), top down; device lanes; ntoskrnl.exe."""
    _, _, evs = crash_io
    names = thread_names(evs)
    normal = [names[t] for t in sorted(names) if t < 20_000]
    layers = ["application", "ntfs.sys", "volsnap.sys", "fvevol.sys", "volmgr.sys", "partmgr.sys", "disk.sys"]
    assert normal == [
        *(f"{layer} {d}" for layer in layers for d in ("dispatch", "completion")),
        "storport.sys dispatch",
        "storport.sys interrupt",
        "storport.sys completion",
        "stornvme.sys dispatch",
        "device 1",
        "device 2",
        "ntoskrnl.exe",
    ]
    assert [e["args"]["name"] for e in evs if e["name"] == "process_name"] == ["normal storage stack", "crash dump stack"]


def test_a_hibernation_draws_the_hibernation_stack_apart_from_the_crash_stack_loaded_at_boot() -> None:
    """The crash stack's DriverEntry at boot is in the crash dump stack; the hiberfile's writes are in the hibernation stack."""
    _, trace = run(
        scenario={"event": "hibernate", "bugcheck_at": None}, registry={"DumpFilters": ["dumpfve.sys"]}, memory={"ram": "1 MiB"}
    )
    evs = events(export(trace.records))
    processes = {e["pid"]: e["args"]["name"] for e in evs if e["name"] == "process_name"}
    assert processes == {2: "crash dump stack", 3: "hibernation stack"}
    assert [e["pid"] for e in evs if e["name"] == "driver_entry"] == [2, 3]
    assert {e["pid"] for e in evs if e["ph"] == "X" and "request" in e["args"]} == {3}


# -- slices -----------------------------------------------------------------------------------


def test_every_request_has_exactly_one_slice_per_layer(dump: Any) -> None:
    """Each of the 18 writes has one slice on crashdmp, each filter, the port and the device, in that order."""
    result, _, evs = dump
    names = thread_names(evs)
    by_request = request_slices(evs)
    assert sorted(by_request) == [(2, n, 1) for n in range(1, result.write_requests + 1)]
    for slices in by_request.values():
        assert [(names[e["tid"]], e["name"]) for e in slices] == [
            ("crashdmp", "write"),
            ("dumpfve.sys", "dump_write"),
            ("delayflt.sys", "dump_write"),
            ("miniport", "miniport_write"),
            ("device", "device_write"),
        ]


def test_a_requests_slices_carry_its_number_offset_and_length(dump: Any) -> None:
    """Each slice's args hold the request, the offset as that layer saw it, and the length, as its trace record does."""
    _, records, evs = dump
    traced = {(r["request"], r["layer"]): r for r in records if r["request"] is not None and r["layer"] != "crashdmp"}
    names = thread_names(evs)
    for e in (e for e in evs if e["ph"] == "X" and "request" in e["args"] and names[e["tid"]] != "crashdmp"):
        r = traced[e["args"]["request"], names[e["tid"]]]
        assert (e["args"]["offset"], e["args"]["length"], e["args"]["t_ns"]) == (r["offset"], r["length"], r["t_ns"])


def test_crashdmps_slice_spans_the_request_from_issue_to_completion(dump: Any) -> None:
    """crashdmp's slice starts at issue_write and ends at write_complete; its own cost is issue_ns."""
    _, records, evs = dump
    issue = {r["request"]: r for r in records if r["event"] == "issue_write"}
    done = {r["request"]: r["t_ns"] for r in records if r["event"] == "write_complete"}
    for e in (e for e in evs if e["name"] == "write"):
        n = e["args"]["request"]
        assert (e["args"]["t_ns"], e["args"]["t_ns"] + e["args"]["dur_ns"]) == (issue[n]["t_ns"], done[n])
        assert (e["args"]["issue_ns"], e["args"]["outcome"]) == (issue[n]["dur_ns"], "complete")


@pytest.mark.parametrize("which", ["dump", "crash_io"])
def test_slices_on_one_track_never_overlap(which: str, request: pytest.FixtureRequest) -> None:
    """On every track (dump path, normal stack, each device lane) a slice starts no earlier than the one before it ended."""
    _, _, evs = request.getfixturevalue(which)
    by_track: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for e in evs:
        if e["ph"] == "X":
            by_track[e["tid"]].append((e["args"]["t_ns"], e["args"]["dur_ns"]))
    for spans in by_track.values():
        spans.sort()
        assert all(t >= t0 + d0 for (t0, d0), (t, _) in itertools.pairwise(spans))


def test_phase_records_are_slices_when_they_last_and_instants_when_they_do_not(dump: Any) -> None:
    """port_init, Dump_Start, Dump_Finish and the flush are slices of their length; DriverEntry and the end are instants."""
    _, _, evs = dump
    names = thread_names(evs)
    phases = [(e["ph"], names[e["tid"]], e["name"], e.get("dur")) for e in evs if e.get("cat") == "phase"]
    assert phases == [
        ("i", "dumpfve.sys", "driver_entry", None),
        ("i", "delayflt.sys", "driver_entry", None),
        ("i", "crashdmp", "bugcheck", None),
        ("i", "crashdmp", "integrity_check", None),
        ("i", "crashdmp", "dump_context", None),
        ("X", "delayflt.sys", "dump_start", 2000),
        ("X", "miniport", "port_init", 1000),
        ("X", "delayflt.sys", "dump_finish", 1000),
        ("X", "device", "flush", 200),
        ("i", "crashdmp", "dump_complete", None),
    ]
    assert [e["s"] for e in evs if e["ph"] == "i" and e["name"] == "bugcheck"] == ["g"]


def test_a_retried_write_is_two_attempts_the_first_failed() -> None:
    """A transient device error retried: request 2 has attempt 1 (outcome failed) and attempt 2 (complete), each complete."""
    _, trace = run(faults=[{"kind": "device_error", "at_request": 2, "persistent": False}], dump_driver={"write_retries": 1})
    evs = events(export(trace.records))
    by_request = request_slices(evs)
    assert sorted(by_request) == [(2, 1, 1), (2, 2, 1), (2, 2, 2)]
    outcomes = [by_request[2, 2, a][0]["args"]["outcome"] for a in (1, 2)]
    assert outcomes == ["failed", "complete"]
    assert [e["args"]["status"] for e in by_request[2, 2, 1] if e["name"] == "device_write"] == ["STATUS_IO_DEVICE_ERROR"]


def test_a_write_that_hung_spans_until_crashdmp_gave_up() -> None:
    """A filter hung on request 3 (its call left no record): crashdmp's slice of it lasts until dump_failed."""
    result, trace = run(
        registry={"CrashDumpEnabled": 1, "DumpFilters": ["faultflt.sys"]},
        memory={"ram": "1 MiB"},
        filters={"faultflt.sys": {"action": "hang", "at_request": 3}},
        engine={"watchdog": "1 s"},
    )
    assert result.status == "hung"
    evs = events(export(trace.records))
    hung = request_slices(evs)[2, 3, 1][0]
    failed = next(r for r in trace.records if r["event"] == "dump_failed")
    assert (hung["name"], hung["args"]["outcome"]) == ("write", "unfinished")
    assert hung["args"]["t_ns"] + hung["args"]["dur_ns"] == failed["t_ns"]
    assert hung["args"]["dur_ns"] >= 10**9


def test_a_write_the_power_cut_is_drawn_unfinished() -> None:
    """After a power loss the write in flight (no write_complete) is drawn, crashdmp's slice marked unfinished."""
    _, trace = run(registry={"CrashDumpEnabled": 1}, memory={"ram": "1 MiB"}, faults=[{"kind": "power_loss", "at": "1100 us"}])
    evs = events(export(trace.records))
    last = request_slices(evs)[2, 3, 1]
    assert [e["name"] for e in last] == ["write", "miniport_write", "device_write"]
    assert last[0]["args"]["outcome"] == "unfinished"
    assert last[0]["args"]["t_ns"] + last[0]["args"]["dur_ns"] == last[2]["args"]["t_ns"] + last[2]["args"]["dur_ns"]


def test_a_normal_stack_request_goes_down_every_layer_through_the_device_and_back_up() -> None:
    """Each of 12 completed requests has one slice per layer and direction, in path order."""
    _, trace = run(**IO_ONLY)
    evs = events(export(trace.records))
    names = thread_names(evs)
    slices = request_slices(evs)
    assert sorted(slices) == [(1, n, 1) for n in range(1, 13)]
    for chain in slices.values():
        assert [("device" if names[e["tid"]].startswith("device ") else names[e["tid"]]) for e in chain] == NORMAL_PATH


def test_a_wait_is_an_arg_of_the_slice_waited_for() -> None:
    """io_wait is wait_ns and storport's io_queue queued_ns on the request's next slice: no slice of their own."""
    _, trace = run(**IO_ONLY)
    evs = events(export(trace.records))
    shown = [
        (e["args"]["request"], e["name"], k, e["args"][k])
        for e in evs
        for k in ("wait_ns", "queued_ns")
        if k in e.get("args", {})
    ]
    assert shown == [
        (2, "io_submit", "wait_ns", 1000),
        (3, "io_submit", "wait_ns", 2000),
        (4, "io_submit", "wait_ns", 3000),
        (3, "io_device", "queued_ns", 15820),
        (4, "io_device", "queued_ns", 43586),
        (5, "io_device", "queued_ns", 38586),
        (6, "io_device", "queued_ns", 10820),
        (4, "io_interrupt", "wait_ns", 1000),
        (7, "io_device", "queued_ns", 10820),
        (8, "io_device", "queued_ns", 9820),
        (6, "io_interrupt", "wait_ns", 1000),
        (9, "io_device", "queued_ns", 11820),
        (10, "io_device", "queued_ns", 27640),
        (11, "io_device", "queued_ns", 19766),
        (12, "io_device", "queued_ns", 19766),
    ]
    assert not any(e["name"] in ("io_wait", "io_queue") for e in evs)


def test_a_request_the_bugcheck_froze_has_slices_only_for_what_it_finished(crash_io: Any) -> None:
    """Requests 3–6, lost at the bugcheck, are drawn down to where they were; none reaches the application's completion."""
    _, _, evs = crash_io
    names = thread_names(evs)
    slices = request_slices(evs)
    assert sorted(n for p, n, _ in slices if p == 1) == [1, 2, 3, 4, 5, 6]
    for n in (3, 4, 5, 6):
        assert "application completion" not in [names[e["tid"]] for e in slices[1, n, 1]]


# -- flows ------------------------------------------------------------------------------------


def _chain(slices: list[Event]) -> list[tuple[bool, bool]]:
    """(flow_in, flow_out) of each slice, in order, asserting one bind_id for all."""
    assert len({e["bind_id"] for e in slices}) == 1
    return [(e.get("flow_in", False), e.get("flow_out", False)) for e in slices]


def test_a_flow_links_each_dump_requests_slices_down_the_stack(dump: Any) -> None:
    """One bind_id per request: out of crashdmp's slice, through each filter and the port, into the device's."""
    _, _, evs = dump
    by_request = request_slices(evs)
    for slices in by_request.values():
        assert _chain(slices) == [(False, True), (True, True), (True, True), (True, True), (True, False)]
    assert len({s[0]["bind_id"] for s in by_request.values()}) == len(by_request)


def test_a_flow_links_a_normal_requests_slices_down_and_back_up(crash_io: Any) -> None:
    """A completed request's flow runs from its first slice to the application's completion; a lost one's stops where it was."""
    _, _, evs = crash_io
    slices = request_slices(evs)
    for n in (1, 2):
        assert _chain(slices[1, n, 1]) == [(False, True), *[(True, True)] * (len(NORMAL_PATH) - 2), (True, False)]
    for n in (3, 4, 5, 6):
        assert _chain(slices[1, n, 1]) == [(False, True), *[(True, True)] * (len(slices[1, n, 1]) - 1)]


def test_flow_slices_are_in_time_order_within_a_request(dump: Any, crash_io: Any) -> None:
    """Each request's slices are written in the order they start (the order a viewer binds the flow's steps)."""
    for _, _, evs in (dump, crash_io):
        for slices in request_slices(evs).values():
            starts = [e["args"]["t_ns"] for e in slices]
            assert starts == sorted(starts)


# -- counters ---------------------------------------------------------------------------------


def test_the_byte_counter_ends_at_the_results_bytes_written(dump: Any) -> None:
    """The written counter starts at 0 with the first write, rises at each completion and ends at bytes_written."""
    result, _, evs = dump
    samples = counter(evs, "written")
    assert samples[0][1] == 0
    assert len(samples) == result.write_requests + 1
    assert [b for _, b in samples] == sorted(b for _, b in samples)
    assert samples[-1][1] == result.bytes_written == 1_060_864


def test_an_io_runs_counter_ends_at_the_bytes_it_completed() -> None:
    """The completed counter of an io run: 0, then one sample per request, ending at the result's io bytes (12 × 4 KiB)."""
    result, trace = run(**IO_ONLY)
    samples = counter(events(export(trace.records)), "completed")
    assert len(samples) == 13
    assert samples[-1][1] == result.as_dict()["io"]["bytes"] == 49_152


def test_the_normal_stacks_counter_ends_at_the_bytes_it_completed(crash_io: Any) -> None:
    """The normal stack's completed counter ends at the result's io bytes; the dump's written counter at its bytes_written."""
    result, _, evs = crash_io
    assert counter(evs, "completed")[-1][1] == result.as_dict()["io"]["bytes"] == 8192
    assert counter(evs, "written")[-1][1] == result.bytes_written


# -- the limit --------------------------------------------------------------------------------


def test_the_limit_draws_the_first_requests_and_counts_the_rest() -> None:
    """With limit 3, requests 1–3 have slices; from 4 on only the counter, whose last value is still bytes_written."""
    result, trace = run(**TWO_FILTERS)
    evs = events(export(trace.records, limit=3))
    assert sorted(request_slices(evs)) == [(2, 1, 1), (2, 2, 1), (2, 3, 1)]
    marks = [e for e in evs if e["name"] == "later requests as counters only"]
    issue4 = next(r["t_ns"] for r in trace.records if r["event"] == "issue_write" and r["request"] == 4)
    assert [(m["args"], round(m["ts"] * 1000)) for m in marks] == [({"perfetto_limit": 3, "from_request": 4}, issue4)]
    assert counter(evs, "written")[-1][1] == result.bytes_written
    assert json.loads(export(trace.records, limit=3))["otherData"]["stacks"][0]["requests_in_full"] == 3


def test_summarised_requests_are_sampled_every_thousandth_of_the_expected_bytes() -> None:
    """Beyond the limit, a sample each time another dump_bytes / 1,000 bytes completed (each 64 KiB write here), and the last."""
    result, trace = run(**TWO_FILTERS)
    step = -(-result.dump_bytes // SUMMARY_SAMPLES)
    samples = [b for _, b in counter(events(export(trace.records, limit=0)), "written")]
    assert samples[0] == 0
    assert samples[-1] == result.bytes_written
    assert all(b // step > a // step for a, b in itertools.pairwise(samples[1:-1]))
    assert len(samples) == result.write_requests + 1  # every write here is longer than the step


def test_a_limit_of_zero_draws_no_request() -> None:
    """--perfetto-limit 0: the phases and the counter, no request slice and no flow."""
    _, trace = run(**TWO_FILTERS)
    evs = events(export(trace.records, limit=0))
    assert request_slices(evs) == {}
    assert not any("bind_id" in e for e in evs)


def test_the_counter_of_a_long_summarised_dump_has_about_a_thousand_samples() -> None:
    """A dump of 2,560 writes, none in full: at most SUMMARY_SAMPLES + 2 counter samples, the last at bytes_written."""
    result, trace = run(registry={"CrashDumpEnabled": 1}, memory={"ram": "160 MiB"})
    samples = counter(events(export(trace.records, limit=0)), "written")
    assert result.write_requests > 2 * SUMMARY_SAMPLES
    assert len(samples) <= SUMMARY_SAMPLES + 2
    assert samples[-1][1] == result.bytes_written


@pytest.mark.parametrize(
    ("text", "value"), [("0", 0), ("10000", 10_000), (" 25 ", 25), ("1_000", 1000), ("1,000,000", MAX_LIMIT)]
)
def test_a_limit_is_a_whole_number_up_to_a_million(text: str, value: int) -> None:
    """parse_limit takes digits (with _ or , between them) from 0 to 1,000,000."""
    assert parse_limit(text) == value


@pytest.mark.parametrize("text", ["", "-1", "1000001", "1e3", "ten", "2.5", "٣", "99999999999999999999"])
def test_a_bad_limit_is_refused_naming_the_option_and_the_range(text: str) -> None:
    """Anything else is a ValueError naming --perfetto-limit and 0 to 1,000,000."""
    with pytest.raises(ValueError, match=r"--perfetto-limit .*a whole number from 0 to 1,000,000 \(default 10,000\)"):
        parse_limit(text)


# -- the command line -------------------------------------------------------------------------

SMALL = '[scenario]\nname = "pf"\n[registry]\nCrashDumpEnabled = 1\nDumpFilters = ["dumpfve.sys"]\n[memory]\nram = "1 MiB"\n'


@pytest.fixture
def work(tmp_path: Path) -> Path:
    (tmp_path / "s.toml").write_text(SMALL)
    return tmp_path


def test_run_perfetto_and_perfetto_of_its_trace_write_the_same_bytes(work: Path) -> None:
    """`run --perfetto` while it runs and `perfetto TRACE.jsonl` afterwards give byte-identical files, with or without --trace."""
    assert invoke_cli("run", "s.toml", "--trace", "t.jsonl", "--perfetto", "a.json", cwd=work).returncode == 0
    assert invoke_cli("run", "s.toml", "--perfetto", "b.json", cwd=work).returncode == 0
    proc = invoke_cli("perfetto", "t.jsonl", "--out", "c.json", cwd=work)
    assert proc.returncode == 0, proc.stderr
    assert (work / "a.json").read_bytes() == (work / "b.json").read_bytes() == (work / "c.json").read_bytes()


def test_perfetto_says_what_it_wrote(work: Path) -> None:
    """The command prints the file, its events and bytes, the records read and the requests drawn in full."""
    invoke_cli("run", "s.toml", "--trace", "t.jsonl", cwd=work)
    proc = invoke_cli("perfetto", "t.jsonl", "--out", "p.json", "--perfetto-limit", "5", cwd=work)
    size = (work / "p.json").stat().st_size
    n = len(events((work / "p.json").read_text()))
    assert proc.stdout == (
        f"p.json: {n:,} events ({size:,} bytes) from 97 records; crash dump stack: 5 of 18 requests in full; "
        "open it at https://ui.perfetto.dev\n"
    )


def test_run_perfetto_limit_is_passed_on(work: Path) -> None:
    """`run --perfetto-limit 2` draws requests 1 and 2."""
    assert invoke_cli("run", "s.toml", "--perfetto", "p.json", "--perfetto-limit", "2", cwd=work).returncode == 0
    assert sorted(request_slices(events((work / "p.json").read_text()))) == [(2, 1, 1), (2, 2, 1)]


@pytest.mark.parametrize("value", ["abc", "-1", "1000001", "3.5"])
@pytest.mark.parametrize("command", ["run", "perfetto"])
def test_a_bad_perfetto_limit_is_exit_2_with_one_paragraph(work: Path, command: str, value: str) -> None:
    """A --perfetto-limit that is not 0 to 1,000,000 is refused before anything runs, naming the option and the range."""
    from conftest import assert_refused

    (work / "t.jsonl").write_text("")
    args = ["run", "s.toml", "--perfetto", "p.json"] if command == "run" else ["perfetto", "t.jsonl", "--out", "p.json"]
    proc = invoke_cli(*args, "--perfetto-limit", value, cwd=work)
    assert_refused(proc, "--perfetto-limit", "0 to 1,000,000", max_lines=3)
    assert not (work / "p.json").exists()


def test_perfetto_limit_without_perfetto_is_refused(work: Path) -> None:
    """`run --perfetto-limit N` without --perfetto is exit 2: the limit is of the Perfetto file."""
    from conftest import assert_refused

    assert_refused(invoke_cli("run", "s.toml", "--perfetto-limit", "5", cwd=work), "--perfetto-limit goes with --perfetto")


def test_run_perfetto_records_a_traced_run_that_replays(work: Path) -> None:
    """A run with --perfetto is a traced run (request mode); its result replays byte for byte."""
    assert invoke_cli("run", "s.toml", "--perfetto", "p.json", "--json", "r.json", cwd=work).returncode == 0
    assert json.loads((work / "r.json").read_text())["replay"]["traced"] is True
    proc = invoke_cli("replay", "r.json", cwd=work)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "replay matches, byte for byte" in proc.stdout


def test_the_how_to_shows_what_perfetto_prints_and_writes(tmp_path: Path) -> None:
    """The summary and JSON lines docs/how-to/open-a-run-in-perfetto.md quotes are those of the shipped crash-during-io."""
    import shutil

    from test_docs import fenced_blocks

    page = Path(__file__).parent.parent / "docs" / "how-to" / "open-a-run-in-perfetto.md"
    quoted = [body for info, body, _ in fenced_blocks(page) if info == "text"]
    shutil.copy(Path(__file__).parent.parent / "scenarios" / "crash-during-io.toml", tmp_path / "s.toml")
    assert invoke_cli("run", "s.toml", "--trace", "trace.jsonl", cwd=tmp_path).returncode == 0
    proc = invoke_cli("perfetto", "trace.jsonl", "--out", "run.json", cwd=tmp_path)
    assert proc.stdout == quoted[0]
    written = set((tmp_path / "run.json").read_text(encoding="utf-8").splitlines())
    assert quoted[1].splitlines()
    assert [line for line in quoted[1].splitlines() if line not in written] == []


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_run_leaves_no_perfetto_file(tmp_path: Path, sig: int) -> None:
    """Ctrl-C or SIGTERM while `run --perfetto` writes: exit 1, "interrupted", no output and no temporary file."""
    from conftest import assert_interrupted, spawn_stacksim

    (tmp_path / "big.toml").write_text('[scenario]\nname = "big"\n[registry]\nCrashDumpEnabled = 1\n[memory]\nram = "64 GiB"\n')
    proc = spawn_stacksim("run", "big.toml", "--perfetto", "p.json", cwd=tmp_path)
    deadline = time.monotonic() + 60
    while not any(p.name.startswith(".p.json.") and p.stat().st_size > 0 for p in tmp_path.iterdir()):
        assert time.monotonic() < deadline, "the run never started writing"
        time.sleep(0.05)
    assert_interrupted(proc, sig)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.toml"]


def test_a_round_trip_draws_the_compressor_and_resume_above_crashdmp() -> None:
    """A compressed hibernation and its resume: winresume, decompressor and compressor sort before crashdmp, top down."""
    result, trace = run(
        scenario={"name": "rt", "event": "hibernate-resume", "hibernate_at": "10 ms", "bugcheck_at": None},
        registry={"DumpFilters": ["dumpfve.sys"]},
        memory={"ram": "2 MiB", "kernel_fraction": 0.25, "free_fraction": 0.5, "file_cache_fraction": 0, "guest_fraction": 0},
        hibernation={"compress_rate": "1 GB/s", "compressed_fraction": {"kernel": 0.5, "user": 0.5}},
    )
    assert result.resume is not None
    evs = events(export(trace.records))
    names = thread_names(evs)
    sort = {e["tid"]: e["args"]["sort_index"] for e in evs if e["ph"] == "M" and e["name"] == "thread_sort_index"}
    order = [names[t] for t in sorted((t for t in names if t // 10_000 == 3), key=lambda t: sort[t])]
    assert order == ["winresume", "decompressor", "compressor", "crashdmp", "dumpfve.sys", "miniport", "device"]
