"""
The invariant checker: genuine traces of every outcome pass; each tampering and each malformed line fails by rule name.

Genuine traces come from the real simulator. A tampered trace is a genuine one with one change;
where the change deletes or inserts records, ``renumber`` gives the rest consecutive seq numbers
again, so the rule that catches the tampering is not merely ``order``.
"""

from __future__ import annotations

import ast
import copy
import functools
import itertools
import json
import random
from pathlib import Path
from typing import Any, get_args

import pytest
from conftest import run
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_batching import scenarios
from typer.testing import CliRunner

import stacksim.check as check_module
import stacksim.filters.faultflt as faultflt_module
import stacksim.scenario as scenario_module
from stacksim import trace as trace_module
from stacksim.check import (
    FIELDS,
    MAX_LINE_BYTES,
    RULES,
    SHOWN_PER_RULE,
    Violation,
    _Extents,
    check_records,
    check_stream,
    check_trace_file,
)
from stacksim.cli import app

Records = list[dict[str, Any]]

FILTERS = {"DumpFilters": ["delayflt.sys", "dumpfve.sys"]}
HIBERNATE = {
    "scenario": {"name": "h", "event": "hibernate", "hibernate_at": "1 ms", "bugcheck_at": None},
    "memory": {"ram": "1 MiB"},
}


def good() -> Records:
    """A valid trace: one filter (start, write, finish), two writes, from a real run."""
    _, trace = run(registry={"DumpFilters": ["delayflt.sys"]}, filters={"delayflt.sys": {"start": 10, "finish": 10}})
    return trace.records


def hibernation() -> Records:
    """A valid hibernation trace: delayflt.sys in both stacks, eight writes."""
    _, trace = run(registry={"DumpFilters": ["delayflt.sys"]}, **HIBERNATE)
    return trace.records


def rules_broken(records: Records) -> list[str]:
    """The rules *records* break, each once, in RULES order."""
    broken = {v.rule for v in check_records(records)}
    return [r for r in RULES if r in broken]


def messages(records: Records, rule: str) -> list[str]:
    return [v.message for v in check_records(records) if v.rule == rule]


def find(records: Records, layer: str | None, event: str, n: int = 0) -> dict[str, Any]:
    return [r for r in records if (layer is None or r["layer"] == layer) and r["event"] == event][n]


def renumber(records: Records) -> Records:
    """Consecutive seq numbers again, as a careful forger would leave them."""
    for i, r in enumerate(records, start=1):
        r["seq"] = i
    return records


def without(records: Records, *events: str) -> Records:
    return renumber([r for r in records if r["event"] not in events])


def retime(records: Records) -> Records:
    """Each record starting when the one before it ended (the event at its own time), as a careful forger would leave them."""
    for before, r in itertools.pairwise(records):
        if r["event"] not in ("bugcheck", "hibernate"):
            r["t_ns"] = before["t_ns"] + before["dur_ns"]
    return records


THREE_RUNS: dict[str, Any] = {
    "registry": {"DumpFilters": ["delayflt.sys", "dumpfve.sys"], "CrashDumpEnabled": 1},
    "memory": {"ram": "256 KiB"},
    "filters": {"delayflt.sys": {"per_call": "3 us", "start": "10 us", "finish": "10 us"}},
    "layout": {
        "runs": [
            {"offset": 2**30, "length": 44 * 1024},
            {"offset": 2**31, "length": 96 * 1024},
            {"offset": 3 * 2**30, "length": 2**20},
        ]
    },
}
"""A complete dump (8 KiB header, 4 KiB bitmap, 256 KiB body) through two filters into disk runs of 44 KiB, 96 KiB and 1 MiB."""


def three_runs() -> Records:
    """A valid trace of THREE_RUNS: seven writes (8 + 4 + 32, 64 + 32, 64 + 64 KiB, cut at each run's end), 896 KiB unused."""
    _, trace = run(**THREE_RUNS)
    return trace.records


def of_request(records: Records, request: int) -> Records:
    """Every record of write number *request*, in trace order."""
    return [r for r in records if r["request"] == request]


def move(records: Records, request: int, offset: int) -> Records:
    """Every record of write number *request* at partition offset *offset* (the device's shifted by partition_offset)."""
    shift = find(records, "crashdmp", "dump_context")["detail"]["partition_offset"]
    for r in of_request(records, request):
        r["offset"] = offset + (shift if r["layer"] == "device" else 0)
    return records


def write_lines(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return path


def dumps(records: Records) -> list[bytes]:
    return [json.dumps(r, separators=(",", ":")).encode() for r in records]


# -- genuine traces ----------------------------------------------------------------------------

WATCHDOG = {"watchdog": "1 s"}


def faultflt(**config: Any) -> dict[str, Any]:
    """Sections of a run through delayflt.sys and faultflt.sys, configured with *config*, with a 1 s watchdog."""
    return {
        "registry": {"DumpFilters": ["delayflt.sys", "faultflt.sys"]},
        "filters": {"faultflt.sys": config},
        "engine": WATCHDOG,
    }


OUTCOMES: dict[str, tuple[dict[str, Any], str]] = {
    "ok": ({}, "ok"),
    "ok-two-filters": ({"registry": FILTERS, "filters": {"delayflt.sys": {"start": 10, "finish": 10}}}, "ok"),
    "device-error": ({"faults": [{"kind": "device_error", "at_request": 2}]}, "io_error"),
    "device-error-retried": (
        {"faults": [{"kind": "device_error", "at_request": 2, "persistent": False}], "dump_driver": {"write_retries": 2}},
        "ok",
    ),
    "device-error-retries-spent": (
        {"faults": [{"kind": "device_error", "at_request": 2}], "dump_driver": {"write_retries": 2}},
        "io_error",
    ),
    "device-timeout": ({"faults": [{"kind": "device_timeout", "at_request": 2}]}, "io_timeout"),
    "device-timeout-retried": (
        {"faults": [{"kind": "device_timeout", "at_request": 2, "persistent": False}], "dump_driver": {"write_retries": 1}},
        "ok",
    ),
    "power-loss-at-once": ({"faults": [{"kind": "power_loss", "at": "0 ns"}]}, "power_lost"),
    "power-loss-mid-write": ({"faults": [{"kind": "power_loss", "at": "1010 us"}]}, "power_lost"),
    "power-loss-while-crashdmp-issues": (  # the write is issued at 11 ms and costs crashdmp 1 µs: the filter never runs
        {
            "registry": {"DumpFilters": ["delayflt.sys"]},
            "dump_driver": {"per_request": "1 us"},
            "faults": [{"kind": "power_loss", "at": "1 ms"}],
        },
        "power_lost",
    ),
    "power-loss-while-the-port-builds": (  # the port starts at 11 ms and needs 5 µs: the device never starts
        {"faults": [{"kind": "power_loss", "at": "1002 us"}]},
        "power_lost",
    ),
    "filter-raise": (
        {"registry": FILTERS, "faults": [{"kind": "filter_raise", "filter": "dumpfve.sys", "at_request": 2}]},
        "filter_crashed",
    ),
    "filter-raise-in-start": (
        {"registry": FILTERS, "faults": [{"kind": "filter_raise", "filter": "delayflt.sys", "callback": "dump_start"}]},
        "filter_crashed",
    ),
    "filter-raise-in-finish": (
        {"registry": FILTERS, "faults": [{"kind": "filter_raise", "filter": "delayflt.sys", "callback": "dump_finish"}]},
        "filter_crashed",
    ),
    "filter-hang": (
        {
            "registry": FILTERS,
            "faults": [{"kind": "filter_hang", "filter": "dumpfve.sys", "at_request": 2}],
            "engine": {"watchdog": "1 s"},
        },
        "hung",
    ),
    "filter-hang-in-start": (
        {
            "registry": FILTERS,
            "faults": [{"kind": "filter_hang", "filter": "delayflt.sys", "callback": "dump_start"}],
            "engine": {"watchdog": "1 s"},
        },
        "hung",
    ),
    "filter-error-status": (
        {"registry": FILTERS, "faults": [{"kind": "filter_error_status", "filter": "delayflt.sys", "at_request": 2}]},
        "ok",
    ),
    "slow-filter": ({"registry": FILTERS, "faults": [{"kind": "slow_filter", "filter": "delayflt.sys", "extra": "1 us"}]}, "ok"),
    "crash-dump-disabled": ({"registry": {"DumpFilters": ["delayflt.sys"], "CrashDumpEnabled": 0}}, "dump_disabled"),
    "critical-filter-fails": (
        {
            "registry": {"DumpFilters": ["delayflt.sys", "faultflt.sys", "dumpfve.sys"]},
            "filters": {"faultflt.sys": {"action": "fail_driver_entry", "critical": True}},
        },
        "stack_init_failed",
    ),
    "non-critical-filter-fails": (
        {
            "registry": {"DumpFilters": ["faultflt.sys", "delayflt.sys"]},
            "filters": {"faultflt.sys": {"action": "fail_driver_entry"}},
        },
        "ok",
    ),
    "filter-changes-length": (
        {"registry": {"DumpFilters": ["faultflt.sys"]}, "filters": {"faultflt.sys": {"action": "change_length"}}},
        "filter_violation",
    ),
    "filter-moves-past-the-disk": (
        {
            "registry": {"DumpFilters": ["faultflt.sys"]},
            "filters": {"faultflt.sys": {"action": "change_offset", "offset_delta": 2**42}},
        },
        "io_error",
    ),
    "file-too-small-refused": ({"layout": {"size": "16 KiB"}}, "file_too_small"),
    "file-too-small-truncated": ({"layout": {"size": "16 KiB", "on_too_small": "truncate"}}, "truncated"),
    "file-larger-than-the-dump": ({"layout": {"size": "1 MiB"}}, "ok"),
    "fragmented-file": ({"layout": {"runs": 3}}, "ok"),
    "hibernation": ({"registry": {"DumpFilters": ["delayflt.sys"]}, **HIBERNATE}, "ok"),
    "hibernation-without-crash-stack": (
        {"registry": {"DumpFilters": ["delayflt.sys"], "CrashDumpEnabled": 0}, **HIBERNATE},
        "ok",
    ),
    "hibernation-critical-filter-fails": (
        {
            "registry": {"DumpFilters": ["delayflt.sys", "faultflt.sys"]},
            "filters": {"faultflt.sys": {"action": "fail_driver_entry", "critical": True, "dump_type": "hibernation"}},
            **HIBERNATE,
        },
        "stack_init_failed",
    ),
    "hiberfile-too-small": ({"layout": {"size": "16 KiB"}, **HIBERNATE}, "file_too_small"),
    "hibernation-power-loss": ({"faults": [{"kind": "power_loss", "at": "1100 us"}], **HIBERNATE}, "power_lost"),
    "filter-hang-in-the-first-write": (
        {"registry": FILTERS, "faults": [{"kind": "filter_hang", "filter": "dumpfve.sys", "at_request": 1}], "engine": WATCHDOG},
        "hung",
    ),
    "filter-hang-in-finish": (
        {
            "registry": FILTERS,
            "faults": [{"kind": "filter_hang", "filter": "delayflt.sys", "callback": "dump_finish"}],
            "engine": WATCHDOG,
        },
        "hung",
    ),
    "slow-filter-past-the-watchdog": (  # a call that spends the watchdog period is cut there, like one that never returns
        {
            "registry": FILTERS,
            "faults": [{"kind": "slow_filter", "filter": "delayflt.sys", "extra": "2 s", "callback": "dump_finish"}],
            "engine": WATCHDOG,
        },
        "hung",
    ),
    "power-loss-during-a-hang": (
        {
            "registry": FILTERS,
            "faults": [
                {"kind": "power_loss", "at": "500 ms"},
                {"kind": "filter_hang", "filter": "delayflt.sys", "callback": "dump_start"},
            ],
            "engine": WATCHDOG,
        },
        "power_lost",
    ),
    "power-loss-in-the-flush": ({"faults": [{"kind": "power_loss", "at": "1100 us"}]}, "power_lost"),
    "power-loss-after-the-dump": ({"faults": [{"kind": "power_loss", "at": "1 s"}]}, "ok"),
    "device-timeout-retries-spent": (
        {"faults": [{"kind": "device_timeout", "at_request": 2}], "dump_driver": {"write_retries": 2}},
        "io_timeout",
    ),
    "device-error-at-an-offset": ({"faults": [{"kind": "device_error", "at_offset": 2**30 + 8192}]}, "io_error"),
    "faultflt-none": (faultflt(action="none"), "ok"),
    "faultflt-raise-driver-entry": (faultflt(action="raise_driver_entry"), "ok"),
    "faultflt-fail": (faultflt(action="fail", at_request=2), "ok"),
    "faultflt-raise": (faultflt(action="raise", at_request=2), "filter_crashed"),
    "faultflt-hang": (faultflt(action="hang", at_request=2), "hung"),
    "faultflt-slow": (faultflt(action="slow", extra="5 us"), "ok"),
    "faultflt-write-caller-buffer": (faultflt(action="write_caller_buffer", at_request=2), "filter_violation"),
    "filter-moves-a-write": (  # into the unused end of the file: honoured, and nothing overlaps
        {
            "registry": {"DumpFilters": ["faultflt.sys", "delayflt.sys"]},
            "filters": {"faultflt.sys": {"action": "change_offset", "at_request": 2, "offset_delta": "8 KiB"}},
            "layout": {"size": "1 MiB"},
        },
        "ok",
    ),
    "fragmented-file-two-filters": (THREE_RUNS, "ok"),
    "hibernation-filter-hang": (
        {
            "registry": {"DumpFilters": ["delayflt.sys"]},
            "faults": [{"kind": "filter_hang", "filter": "delayflt.sys", "at_request": 3}],
            "engine": WATCHDOG,
            **HIBERNATE,
        },
        "hung",
    ),
    "hibernation-device-timeout-retried": (
        {
            "faults": [{"kind": "device_timeout", "at_request": 2, "persistent": False}],
            "dump_driver": {"write_retries": 1},
            **HIBERNATE,
        },
        "ok",
    ),
}


@pytest.mark.parametrize("case", list(OUTCOMES))
def test_genuine_trace_passes(case: str) -> None:
    """The simulator's trace of each outcome (every fault kind, no dump stack, too-small files, hibernation) breaks no rule."""
    sections, status = OUTCOMES[case]
    result, trace = run(check=False, **sections)
    assert result.status == status
    assert [v.render() for v in check_records(trace.records)] == []


def test_the_genuine_traces_cover_every_fault_kind_and_every_faultflt_action() -> None:
    """OUTCOMES injects each fault kind a scenario can name and runs each action faultflt.sys has."""
    faults = {f["kind"] for sections, _ in OUTCOMES.values() for f in sections.get("faults", [])}
    actions = {
        sections["filters"]["faultflt.sys"]["action"]
        for sections, _ in OUTCOMES.values()
        if "faultflt.sys" in sections.get("filters", {})
    }
    assert faults == set(scenario_module._FAULT_KINDS)
    assert actions == set(get_args(faultflt_module.Action))


@st.composite
def hostile_outcomes(draw: st.DrawFn) -> dict[str, Any]:
    """Random valid scenarios (test_batching's) plus what they lack: power loss, hangs, layouts, no crash stack."""
    sections = draw(scenarios())
    filters = sections["registry"]["DumpFilters"]
    extra: list[dict[str, Any]] = []
    if draw(st.booleans()):
        extra.append({"kind": "power_loss", "at": draw(st.integers(0, 5 * 10**6))})
    if filters and draw(st.booleans()):
        callback = draw(st.sampled_from(["dump_write", "dump_start", "dump_finish"]))
        extra.append({"kind": "filter_hang", "filter": draw(st.sampled_from(filters)), "callback": callback})
    sections["faults"] = [*sections["faults"], *extra]
    sections["engine"] = {"watchdog": "50 ms"}
    dump = sections["memory"]["ram"]  # an upper bound of any dump's size here is RAM + secondary data + header
    sections["layout"] = draw(
        st.sampled_from(
            [
                {},
                {"runs": 4},
                {"size": 64 * 1024, "on_too_small": "truncate"},
                {"size": 64 * 1024},
                {"size": 64 * dump, "partition_offset": 7 * 512},
            ]
        )
    )
    if sections["scenario"]["event"] == "crash" and draw(st.integers(0, 9)) == 0:
        sections["registry"]["CrashDumpEnabled"] = 0
    return sections


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hostile_outcomes())
def test_random_genuine_traces_pass(sections: dict[str, Any]) -> None:
    """Any valid scenario with any mix of faults and layouts gives a trace that breaks no rule (moved writes included)."""
    result, trace = run(check=False, **sections)
    violations = check_records(trace.records)
    assert [v.render() for v in violations] == [], result.status


def test_genuine_trace_passes_from_a_file(tmp_path: Path) -> None:
    """The same trace written as JSON lines by the simulator's writer passes, and every record is counted."""
    recs = hibernation()
    path = tmp_path / "t.jsonl"
    with path.open("w", encoding="utf-8") as f:
        sink = trace_module.JsonlTrace(f)
        for r in recs:
            sink.emit(*r.values())
    assert check_trace_file(str(path)) == (len(recs), [])


def test_a_hung_run_ends_its_trace_with_dump_failed() -> None:
    """When the watchdog ends a run, the trace still ends with dump_failed, at the instant the watchdog fired."""
    result, trace = run(**OUTCOMES["filter-hang"][0])
    *_, passed_on, last = trace.records
    assert (passed_on["layer"], passed_on["event"], passed_on["request"]) == ("delayflt.sys", "dump_write", 2)
    assert (last["layer"], last["event"]) == ("crashdmp", "dump_failed")
    assert last["t_ns"] == passed_on["t_ns"] + passed_on["dur_ns"] + 10**9  # dumpfve.sys hung for the 1 s watchdog
    assert last["t_ns"] == 10_000_000 + result.dump_time_ns


def test_no_record_starts_after_the_power_failed() -> None:
    """A call that would have started after the power failed never ran, so it has no record; dump_failed is at the failure."""
    sections, _ = OUTCOMES["power-loss-while-crashdmp-issues"]
    _, trace = run(**sections)
    power_lost = 10_000_000 + 1_000_000
    assert trace.timeline()[-2:] == [(power_lost, "crashdmp", "issue_write"), (power_lost, "crashdmp", "dump_failed")]
    assert max(r["t_ns"] for r in trace.records) == power_lost


def test_a_hang_after_the_power_failed_ends_the_trace_at_the_failure() -> None:
    """When the power fails before the watchdog fires, the trace's dump_failed is at the power failure, not later."""
    _, trace = run(
        registry=FILTERS,
        faults=[
            {"kind": "power_loss", "at": "0 ns"},
            {"kind": "filter_hang", "filter": "delayflt.sys", "callback": "dump_start"},
        ],
        engine={"watchdog": "1 s"},
    )
    assert trace.timeline()[-1] == (10_000_000, "crashdmp", "dump_failed")


def test_the_dump_context_names_the_disk_size_and_the_dump_size() -> None:
    """The dump_context carries what placement and outcome need: disk_size and dump_bytes."""
    result, trace = run()
    detail = find(trace.records, "crashdmp", "dump_context")["detail"]
    assert detail["disk_size"] == 2 * 10**12  # the fixed device's default size
    assert detail["dump_bytes"] == result.dump_bytes


def test_the_checker_copies_the_trace_fields() -> None:
    """The checker's own list of fields is the trace format's."""
    assert FIELDS == trace_module.FIELDS


def test_the_checker_imports_nothing_from_the_simulator() -> None:
    """check.py imports only the standard library and orjson: it cannot share a bug with the simulator."""
    tree = ast.parse(Path(check_module.__file__).read_text(encoding="utf-8"))
    names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert not {n for n in names if n.split(".")[0] == "stacksim"}
    assert names <= {
        "__future__",
        "json",
        "reprlib",
        "array",
        "bisect",
        "collections",
        "collections.abc",
        "dataclasses",
        "heapq",
        "itertools",
        "typing",
        "orjson",
    }


# -- the five tamperings of the issue ----------------------------------------------------------


def test_deleting_the_dump_context_breaks_structure() -> None:
    """A trace without its dump_context fails `structure` (the writes have no context before them)."""
    recs = without(good(), "dump_context")
    assert "structure" in rules_broken(recs)
    assert any("before the dump_context" in m for m in messages(recs, "structure"))


def test_deleting_the_bugcheck_breaks_structure() -> None:
    """A crash trace without its bugcheck record fails `structure`."""
    recs = without(good(), "bugcheck")
    assert "structure" in rules_broken(recs)
    assert any("before any bugcheck or hibernate record" in m for m in messages(recs, "structure"))


def test_deleting_the_hibernate_record_breaks_structure() -> None:
    """A hibernation trace without its hibernate record fails `structure`."""
    recs = without(hibernation(), "hibernate")
    assert "structure" in rules_broken(recs)


def test_an_empty_file_breaks_structure(tmp_path: Path) -> None:
    """An empty trace file fails `structure`: there is no event and no dump."""
    path = tmp_path / "empty.jsonl"
    path.write_bytes(b"")
    count, violations = check_trace_file(str(path))
    assert count == 0
    assert [v.rule for v in violations] == ["structure"]
    assert "no records" in violations[0].message


def test_removing_every_device_record_breaks_device() -> None:
    """A trace with its device records removed fails `device` (and `outcome`: no flush; `timing`: the gaps they leave)."""
    recs = renumber([r for r in good() if r["layer"] != "device"])
    assert rules_broken(recs) == ["timing", "device", "outcome"]
    assert any("not followed by the device's write" in m for m in messages(recs, "device"))


def test_a_device_write_at_the_wrong_offset_breaks_device() -> None:
    """A device write not at partition_offset + the port's offset fails `device`."""
    recs = good()
    find(recs, "device", "device_write", 1)["offset"] += 4096
    assert "device" in rules_broken(recs)
    assert any("not partition_offset 1048576 + the port's" in m for m in messages(recs, "device"))


def test_a_device_write_of_the_wrong_length_breaks_device() -> None:
    """A device write of another length than the port's fails `device`."""
    recs = good()
    find(recs, "device", "device_write", 1)["length"] -= 512
    assert "device" in rules_broken(recs)


def test_a_device_write_of_another_request_breaks_device() -> None:
    """A device write that names another request than the port's fails `device`."""
    recs = good()
    find(recs, "device", "device_write", 1)["request"] = 1
    assert "device" in rules_broken(recs)


def test_a_device_write_that_starts_late_breaks_device() -> None:
    """A device write that does not start when the port submitted the command fails `device`."""
    recs = good()
    find(recs, "device", "device_write", 0)["t_ns"] += 1
    assert "device" in rules_broken(recs)


def test_a_record_from_a_filter_that_was_not_loaded_breaks_layers() -> None:
    """A dump_write from a filter with no DriverEntry in the trace fails `layers`."""
    recs = good()
    intruder = copy.deepcopy(find(recs, "delayflt.sys", "dump_write", 1))
    intruder["layer"] = "evil.sys"
    recs.insert(recs.index(find(recs, "delayflt.sys", "dump_write", 1)) + 1, intruder)
    assert "layers" in rules_broken(renumber(recs))
    assert any("evil.sys" in m and "no DriverEntry" in m for m in messages(recs, "layers"))


def test_a_record_from_an_unknown_layer_breaks_layers() -> None:
    """A record from a layer outside the dump path (the normal stack's fvevol.sys) fails `layers`."""
    recs = good()
    intruder = copy.deepcopy(find(recs, "delayflt.sys", "dump_finish"))
    intruder["layer"] = "fvevol.sys"
    intruder["dur_ns"] = 0  # takes no time, so the serial timeline stays whole
    recs.insert(recs.index(find(recs, "delayflt.sys", "dump_finish")), intruder)
    assert rules_broken(renumber(recs)) == ["layers"]


def test_a_record_from_a_filter_whose_driver_entry_failed_breaks_layers() -> None:
    """A filter whose DriverEntry failed records nothing more: a dump_write from it fails `layers`."""
    _, trace = run(
        registry={"DumpFilters": ["faultflt.sys", "delayflt.sys"]}, filters={"faultflt.sys": {"action": "fail_driver_entry"}}
    )
    recs = trace.records
    intruder = copy.deepcopy(find(recs, "delayflt.sys", "dump_write"))
    intruder["layer"] = "faultflt.sys"
    recs.insert(recs.index(find(recs, "delayflt.sys", "dump_write")), intruder)
    assert "layers" in rules_broken(renumber(recs))
    assert any("its DriverEntry failed" in m for m in messages(recs, "layers"))


def test_a_driver_entry_status_the_checker_cannot_judge_is_judged_by_the_dump_context() -> None:
    """The checker keeps no table of status names: after an unknown name, the dump_context says whether the filter loaded."""
    recs = good()
    find(recs, "delayflt.sys", "driver_entry")["status"] = "STATUS_SOMETHING_NEW"
    assert rules_broken(recs) == []
    find(recs, "crashdmp", "dump_context")["detail"]["filters"] = []
    assert "layers" in rules_broken(recs)  # it did not load, yet it records callbacks


def test_a_callback_the_filter_did_not_register_breaks_layers() -> None:
    """dumpfve.sys registers no dump_start: a dump_start record from it fails `layers`."""
    _, trace = run(registry=FILTERS)
    recs = trace.records
    start = copy.deepcopy(find(recs, "delayflt.sys", "dump_start"))
    start["layer"] = "dumpfve.sys"
    recs.insert(recs.index(find(recs, "delayflt.sys", "dump_start")) + 1, start)
    assert rules_broken(renumber(recs)) == ["layers"]


def test_a_dump_context_that_lists_another_filter_breaks_layers() -> None:
    """A dump_context whose filter list differs from the filters the DriverEntry records loaded fails `layers`."""
    recs = good()
    find(recs, "crashdmp", "dump_context")["detail"]["filters"] = []
    assert "layers" in rules_broken(recs)


# -- structure -------------------------------------------------------------------------------


def test_deleting_the_terminal_record_breaks_structure() -> None:
    """A trace that stops before dump_complete or dump_failed fails `structure`."""
    recs = without(good(), "dump_complete")
    assert rules_broken(recs) == ["structure"]


def test_a_record_after_the_end_breaks_structure() -> None:
    """Nothing follows dump_complete."""
    recs = good()
    extra = copy.deepcopy(find(recs, "device", "flush"))
    extra["t_ns"] = recs[-1]["t_ns"]
    recs.append(extra)
    assert rules_broken(renumber(recs)) == ["structure"]


def test_a_second_event_record_breaks_structure() -> None:
    """A trace has exactly one bugcheck or hibernate record."""
    recs = good()
    event = find(recs, "crashdmp", "bugcheck")
    recs.insert(recs.index(event) + 1, copy.deepcopy(event))
    assert "structure" in rules_broken(renumber(recs))


def test_a_crash_without_its_integrity_check_breaks_structure() -> None:
    """In a crash, crashdmp checks the dump context before it records it."""
    assert rules_broken(without(good(), "integrity_check")) == ["structure"]


def test_writes_numbered_out_of_order_break_structure() -> None:
    """Writes are numbered 1, 2, 3, …: a request number that skips fails `structure`."""
    recs = good()
    for r in recs:
        if r["request"] == 2:
            r["request"] = 3
    assert "structure" in rules_broken(recs)


def test_a_write_failed_without_a_device_error_breaks_structure() -> None:
    """write_failed follows a failed device write or a poll timeout, nothing else."""
    recs = good()
    done = find(recs, "crashdmp", "write_complete")
    recs.insert(recs.index(done), {**copy.deepcopy(done), "event": "write_failed"})
    assert "structure" in rules_broken(renumber(recs))


def test_a_retry_at_another_offset_breaks_structure() -> None:
    """A retried write repeats its request number, offset and length."""
    _, trace = run(**OUTCOMES["device-error-retried"][0])
    recs = trace.records
    retry = find(recs, "crashdmp", "issue_write", 2)
    assert retry["request"] == 2
    retry["offset"] += 4096
    assert "structure" in rules_broken(recs)


def test_an_unknown_event_breaks_structure() -> None:
    """Each layer records only its own events."""
    recs = good()
    find(recs, "miniport", "port_init")["event"] = "port_reset"
    assert "structure" in rules_broken(recs)


def test_a_dump_context_for_the_other_event_breaks_structure() -> None:
    """The dump_context's event is the trace's event."""
    recs = good()
    find(recs, "crashdmp", "dump_context")["detail"]["event"] = "hibernate"
    assert "structure" in rules_broken(recs)


# -- outcome ---------------------------------------------------------------------------------


def test_dump_complete_after_a_failed_write_breaks_outcome() -> None:
    """A failed dump relabelled dump_complete fails `outcome`: the last write never completed."""
    _, trace = run(**OUTCOMES["device-error"][0])
    recs = trace.records
    recs[-1]["event"] = "dump_complete"
    assert "outcome" in rules_broken(recs)


def test_dump_complete_with_a_write_missing_breaks_outcome() -> None:
    """Deleting a whole write (issue to completion) leaves fewer bytes than dump_bytes: `outcome`."""
    recs = renumber([r for r in good() if r["request"] != 2])
    assert "outcome" in rules_broken(recs)
    assert any("the dump is 65,536 bytes" in m for m in messages(recs, "outcome"))


def test_dump_complete_without_the_flush_breaks_outcome() -> None:
    """A completed dump flushed the device cache (the flush's time left as a gap also breaks `timing`)."""
    assert rules_broken(without(good(), "flush")) == ["timing", "outcome"]


def test_dump_failed_after_a_stack_that_loaded_breaks_outcome() -> None:
    """dump_failed right after the bugcheck needs a failed DriverEntry (or no stack at all)."""
    recs = good()
    event = recs.index(find(recs, "crashdmp", "bugcheck"))
    recs = renumber([*recs[: event + 1], {**recs[-1], "event": "dump_failed", "t_ns": recs[event]["t_ns"]}])
    assert rules_broken(recs) == ["outcome"]


# -- order, qd1, placement, start_finish, filter_order, frozen_stack, dump_type ----------------


def test_records_out_of_order_break_order() -> None:
    """A record earlier in time than the one before it breaks `order`."""
    recs = good()
    recs[3]["t_ns"] = recs[2]["t_ns"] - 1
    assert "order" in rules_broken(recs)


def test_a_repeated_seq_breaks_order() -> None:
    """seq numbers never repeat."""
    recs = good()
    recs[5]["seq"] = recs[4]["seq"]
    assert "order" in rules_broken(recs)


def test_a_deleted_record_breaks_order() -> None:
    """seq numbers go 1, 2, 3, …: a gap is a deleted record."""
    recs = good()
    del recs[5]
    assert "order" in rules_broken(recs)
    assert any("1 record(s) are missing" in m for m in messages(recs, "order"))


def test_qd1_second_request_issued_early() -> None:
    """Issuing a write while another is outstanding breaks `qd1`."""
    recs = without(good(), "write_complete")
    assert "qd1" in rules_broken(recs)


def test_qd1_port_overtakes_device() -> None:
    """A port command that starts before the device finished the previous one breaks `qd1`."""
    recs = good()
    find(recs, "device", "device_write")["dur_ns"] += 10**9
    assert "qd1" in rules_broken(recs)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"offset": 1}, "not sector aligned"),
        ({"length": 10**9}, "over MaxPagesPerWrite"),
        ({"offset": 0}, "not inside one disk run"),
    ],
)
def test_placement(change: dict[str, int], message: str) -> None:
    """Misaligned, oversized or out-of-file writes at the port break `placement`."""
    recs = good()
    find(recs, "miniport", "miniport_write").update(change)
    assert any(message in m for m in messages(recs, "placement"))


def test_placement_overlap() -> None:
    """Two writes to overlapping disk bytes break `placement`."""
    recs = good()
    first = find(recs, "miniport", "miniport_write", 0)
    for r in recs:
        if r["request"] == 2 and r["layer"] != "device":
            r["offset"] = first["offset"]
    find(recs, "device", "device_write", 1)["offset"] = find(recs, "device", "device_write", 0)["offset"]
    assert messages(recs, "placement") == ["requests 1 and 2 overlap"]


def test_placement_on_the_device_past_the_disk() -> None:
    """A device write past the end of the disk the dump_context names breaks `placement`."""
    recs = good()
    find(recs, "crashdmp", "dump_context")["detail"]["disk_size"] = find(recs, "device", "device_write", 1)["offset"]
    assert any("past the end of the" in m for m in messages(recs, "placement"))


def test_placement_on_the_device_outside_the_runs() -> None:
    """A device write outside every run shifted by partition_offset breaks `placement` (and `device`)."""
    recs = good()
    find(recs, "device", "device_write", 1)["offset"] += 2**30
    assert rules_broken(recs) == ["device", "placement"]
    assert any("at disk offset" in m and "not inside one disk run" in m for m in messages(recs, "placement"))


def test_placement_of_the_runs_themselves() -> None:
    """Overlapping disk runs in the dump_context break `placement`."""
    recs = good()
    detail = find(recs, "crashdmp", "dump_context")["detail"]
    offset, length = detail["runs"][0]
    detail["runs"] = [[offset, length], [offset + 512, 512]]
    assert any("overlap" in m for m in messages(recs, "placement"))


def test_start_finish() -> None:
    """A missing dump_start or a dump_finish before the last completion breaks `start_finish`."""
    recs = without(good(), "dump_start")
    assert rules_broken(recs) == ["timing", "start_finish"]  # timing: the gap the callback leaves
    recs = good()
    finish = find(recs, "delayflt.sys", "dump_finish")
    recs.remove(finish)
    recs.insert(recs.index(find(recs, "crashdmp", "write_complete", 0)) + 1, finish)
    assert "start_finish" in rules_broken(renumber(recs))


def test_filter_order() -> None:
    """A request that skips a filter on its way to the port breaks `filter_order`."""
    recs = good()
    recs.remove(find(recs, "delayflt.sys", "dump_write", 1))
    assert rules_broken(renumber(recs)) == ["filter_order"]


def test_frozen_stack() -> None:
    """During hibernation the crash dump stack loaded at boot records nothing: `frozen_stack`."""
    recs = hibernation()
    write = find(recs, "delayflt.sys", "dump_write", 2)
    recs.insert(recs.index(write), {**write, "dump_type": "crashdump"})
    assert rules_broken(renumber(recs)) == ["frozen_stack"]


def test_dump_type() -> None:
    """A dump-path record with the other stack's dump type breaks `dump_type`."""
    recs = good()
    write = find(recs, "delayflt.sys", "dump_write")
    recs.insert(recs.index(write), {**write, "dump_type": "hibernation"})
    assert rules_broken(renumber(recs)) == ["dump_type"]


def test_dump_type_missing() -> None:
    """Every record names its stack: a null dump_type breaks `dump_type`."""
    recs = good()
    find(recs, "device", "flush")["dump_type"] = None
    assert rules_broken(recs) == ["dump_type"]


def test_the_dump_context_names_the_parts_the_watchdog_the_port_timeout_and_the_power_loss() -> None:
    """The dump_context carries what file_position and timing need: parts in write order, watchdog, port timeout, power loss."""
    result, trace = run(faults=[{"kind": "power_loss", "at": "1100 us"}], engine=WATCHDOG)
    detail = find(trace.records, "crashdmp", "dump_context")["detail"]
    assert detail["parts"] == [["header", 0, 8192], ["body", 8192, result.dump_bytes - 8192]]
    assert detail["watchdog_ns"] == 10**9
    assert detail["port_timeout_ns"] == 10 * 10**9  # the dump port's default command timeout
    assert detail["power_loss_ns"] == 10_000_000 + 1_100_000  # after the bugcheck at 10 ms


def test_a_dump_context_without_a_power_loss_names_none() -> None:
    """When the power does not fail, the dump_context's power_loss_ns is null."""
    assert find(good(), "crashdmp", "dump_context")["detail"]["power_loss_ns"] is None


# -- timing ----------------------------------------------------------------------------------


def test_a_record_that_starts_late_breaks_timing() -> None:
    """A call that starts after the one before it ended leaves a gap on the serial path: `timing`."""
    recs = good()
    find(recs, "delayflt.sys", "dump_start")["t_ns"] += 1
    assert rules_broken(recs) == ["timing"]
    assert messages(recs, "timing") == [
        "line 5: 'delayflt.sys''s dump_start starts at 10000001 ns, but 'crashdmp''s dump_context before it ended at "
        "10000000 ns: one layer runs at a time, each step starts when the one before it ends",
        "line 6: 'miniport''s port_init starts at 10000010 ns, but 'delayflt.sys''s dump_start before it ended at "
        "10000011 ns: one layer runs at a time, each step starts when the one before it ends",
    ]


def test_a_record_that_starts_early_breaks_timing() -> None:
    """A call that starts before the one before it ended overlaps it: `timing`."""
    recs = good()
    find(recs, "device", "flush")["t_ns"] -= 1
    assert rules_broken(recs) == ["timing"]


@pytest.mark.parametrize("event", ["bugcheck", "dump_context", "write_complete", "dump_complete"])
def test_an_instant_event_with_a_duration_breaks_timing(event: str) -> None:
    """bugcheck, dump_context, write_complete and dump_complete take no time: a dur_ns of 1 breaks `timing`."""
    recs = good()
    find(recs, "crashdmp", event)["dur_ns"] = 1
    assert rules_broken(recs) == ["timing"]
    assert any(f"a {event} lasting 1 ns" in m for m in messages(recs, "timing"))


def test_a_record_after_the_power_loss_breaks_timing() -> None:
    """Nothing runs after the instant the dump_context names for the power failure: a record after it breaks `timing`."""
    recs = good()
    flush = find(recs, "device", "flush")
    find(recs, "crashdmp", "dump_context")["detail"]["power_loss_ns"] = flush["t_ns"]
    assert rules_broken(recs) == ["timing"]
    assert messages(recs, "timing") == [
        f"line {len(recs)}: a record at {recs[-1]['t_ns']} ns, after the power failed at {flush['t_ns']} ns"
    ]


def test_a_power_loss_before_the_dump_context_breaks_timing() -> None:
    """A dump_context that says the power had already failed before it was recorded breaks `timing`."""
    recs = good()
    context = find(recs, "crashdmp", "dump_context")
    context["detail"]["power_loss_ns"] = context["t_ns"] - 1
    assert rules_broken(recs) == ["timing"]
    assert any("says the power failed at" in m for m in messages(recs, "timing"))


@pytest.mark.parametrize("delta", [1, -1])
def test_a_dump_failed_not_when_the_failed_step_ended_breaks_timing(delta: int) -> None:
    """After a failed device write, dump_failed comes when it ended; 1 ns later or earlier (no power failure) breaks `timing`."""
    _, trace = run(**OUTCOMES["device-error"][0])
    recs = trace.records
    recs[-1]["t_ns"] += delta
    assert rules_broken(recs) == ["timing"]
    assert any("the power did not fail" in m for m in messages(recs, "timing"))


def test_a_dump_failed_not_at_the_power_loss_breaks_timing() -> None:
    """A run that lost power ends with dump_failed at that instant: 1 ns later breaks `timing`."""
    _, trace = run(**OUTCOMES["power-loss-mid-write"][0])
    recs = trace.records
    recs[-1]["t_ns"] += 1
    assert rules_broken(recs) == ["timing"]


def test_a_dump_failed_a_watchdog_period_after_a_hung_callback_passes() -> None:
    """faultflt.sys hangs in its dump_write of request 2 (no record): a dump_failed a watchdog period later is legal."""
    _, trace = run(**OUTCOMES["faultflt-hang"][0])
    recs = trace.records
    before, last = recs[-2:]
    assert (before["layer"], before["event"], before["request"]) == ("delayflt.sys", "dump_write", 2)
    assert last["t_ns"] == before["t_ns"] + before["dur_ns"] + 10**9
    assert rules_broken(recs) == []


@pytest.mark.parametrize("delta", [1, -1])
def test_a_dump_failed_off_the_watchdog_period_breaks_timing(delta: int) -> None:
    """After a hung callback dump_failed comes exactly a watchdog period later: 1 ns off breaks `timing`."""
    _, trace = run(**OUTCOMES["faultflt-hang"][0])
    recs = trace.records
    recs[-1]["t_ns"] += delta
    assert rules_broken(recs) == ["timing"]


def test_a_hang_where_no_callback_is_next_breaks_timing() -> None:
    """A dump_failed a watchdog period after a write completed in mid-dump (crashdmp, not a callback, is next) breaks `timing`."""
    recs = good()
    done = find(recs, "crashdmp", "write_complete", 0)
    context = find(recs, "crashdmp", "dump_context")["detail"]
    end = recs.index(done) + 1
    recs = renumber([*recs[:end], {**recs[-1], "event": "dump_failed", "t_ns": done["t_ns"] + context["watchdog_ns"]}])
    assert rules_broken(recs) == ["timing"]  # after request 1 completes, crashdmp issues request 2: no callback is next


def test_a_dump_failed_after_a_step_that_cannot_fail_breaks_outcome() -> None:
    """A device write that succeeded is followed by its write_complete: a dump_failed there breaks `outcome`."""
    recs = good()
    device = find(recs, "device", "device_write", 0)
    end = recs.index(device) + 1
    recs = renumber([*recs[:end], {**recs[-1], "event": "dump_failed", "t_ns": device["t_ns"] + device["dur_ns"]}])
    assert rules_broken(recs) == ["outcome"]
    assert any("which cannot fail the dump" in m for m in messages(recs, "outcome"))


def test_a_hang_after_a_length_change_breaks_timing() -> None:
    """A filter that changed a write's length stopped the dump there: a dump_failed a watchdog period later breaks `timing`."""
    _, trace = run(**OUTCOMES["faultflt-hang"][0])
    recs = trace.records
    find(recs, "delayflt.sys", "dump_write", 1)["length"] -= 512
    assert rules_broken(recs) == ["timing"]


def test_a_filter_that_claims_it_took_no_time_breaks_timing() -> None:
    """A filter's dump_write set from 3 us to 0 ns, the next layer still starting 3 us later, leaves a gap: `timing`."""
    recs = three_runs()
    find(recs, "delayflt.sys", "dump_write", 2)["dur_ns"] = 0
    assert rules_broken(recs) == ["timing"]
    # request 3 is issued when the bitmap's write completes: port init ends at 11,010,000 ns, the header's write
    # takes 3,000 + 3,458 + 5,000 + 22,731 ns and the bitmap's 3,000 + 2,229 + 5,000 + 21,366 ns -> 11,075,784 ns
    assert messages(recs, "timing") == [
        "line 22: 'dumpfve.sys''s dump_write starts at 11078784 ns, but 'delayflt.sys''s dump_write before it ended at "
        "11075784 ns: one layer runs at a time, each step starts when the one before it ends"
    ]


def test_an_idle_second_in_mid_dump_breaks_timing() -> None:
    """Every record from write 3 on shifted by 1 s leaves one idle second where no layer runs: `timing`, at its start."""
    recs = three_runs()
    for r in recs[recs.index(find(recs, "crashdmp", "issue_write", 2)) :]:
        r["t_ns"] += 10**9
    assert rules_broken(recs) == ["timing"]
    assert messages(recs, "timing") == [  # write 2 (the bitmap) completes at 11,075,784 ns, as above
        "line 20: 'crashdmp''s issue_write starts at 1011075784 ns, but 'crashdmp''s write_complete before it ended at "
        "11075784 ns: one layer runs at a time, each step starts when the one before it ends"
    ]


def test_the_first_write_issued_before_port_init_ended_breaks_timing() -> None:
    """The first issue_write moved 0.5 ms earlier, while the port was still initialising, overlaps port_init: `timing`."""
    recs = three_runs()
    find(recs, "crashdmp", "issue_write")["t_ns"] -= 500_000
    assert rules_broken(recs) == ["timing"]
    assert messages(recs, "timing")[0] == (
        "line 8: 'crashdmp''s issue_write starts at 10510000 ns, but 'miniport''s port_init before it ended at "
        "11010000 ns: one layer runs at a time, each step starts when the one before it ends"
    )


# -- file_position ---------------------------------------------------------------------------


def test_two_writes_swapped_break_file_position() -> None:
    """Requests 6 and 7 (both 64 KiB in the last run) written in each other's place break `file_position` alone."""
    recs = three_runs()
    six, seven = find(recs, "crashdmp", "issue_write", 5)["offset"], find(recs, "crashdmp", "issue_write", 6)["offset"]
    move(move(recs, 6, seven), 7, six)
    assert rules_broken(recs) == ["file_position"]


def test_a_write_moved_into_unused_space_breaks_file_position() -> None:
    """The last write put at 512 KiB into the last run (inside the file, overlapping nothing) breaks `file_position` alone."""
    recs = three_runs()
    move(recs, 7, 3 * 2**30 + 512 * 1024)
    assert rules_broken(recs) == ["file_position"]
    assert any(
        "request 7 is 3221749760+65536, but the dump goes on with part 'body'" in m for m in messages(recs, "file_position")
    )


def test_the_header_written_last_breaks_file_position() -> None:
    """The header's write moved after the body's (renumbered and retimed by a careful forger) breaks `file_position` alone."""
    recs = three_runs()
    header = of_request(recs, 1)
    body_end = recs.index(find(recs, "crashdmp", "write_complete", 6)) + 1
    recs = [*[r for r in recs[:body_end] if r["request"] != 1], *header, *recs[body_end:]]
    for r in recs:
        if r["request"] is not None:
            r["request"] = 7 if r in header else r["request"] - 1
    assert rules_broken(retime(renumber(recs))) == ["file_position"]


def test_a_write_longer_than_max_pages_per_write_breaks_file_position() -> None:
    """Requests 6 and 7 merged into one 128 KiB write (over 16 pages) break `file_position` (and `placement` at the port)."""
    recs = three_runs()
    recs = [r for r in recs if r["request"] != 7]
    for r in of_request(recs, 6):
        r["length"] *= 2
    assert rules_broken(retime(renumber(recs))) == ["file_position", "placement"]
    assert any("request 6 is 3221225472+131072" in m and "for 65536 bytes" in m for m in messages(recs, "file_position"))


def test_a_write_shorter_than_max_pages_per_write_allows_breaks_file_position() -> None:
    """Each write is as long as MaxPagesPerWrite, the run and the part allow: request 6 cut in two breaks `file_position`."""
    recs = three_runs()
    six = of_request(recs, 6)
    second = copy.deepcopy(six)
    for r in six:
        r["length"] //= 2
    for r in second:
        r["length"] //= 2
        r["offset"] += r["length"]
    at = recs.index(six[-1]) + 1
    recs[at:at] = second
    for r in recs[at:]:
        if r["request"] is not None and r not in second:
            r["request"] += 1
    for r in second:
        r["request"] = 7
    find(recs, "crashdmp", "dump_context")["detail"]["dump_bytes"] = sum(r["length"] for r in recs if r["event"] == "issue_write")
    assert rules_broken(retime(renumber(recs))) == ["file_position"]


def test_a_write_issued_after_the_whole_dump_breaks_file_position() -> None:
    """An eighth write (into the unused end of the last run) after the whole dump breaks `file_position` (and `outcome`)."""
    recs = three_runs()
    last = of_request(recs, 7)
    extra = copy.deepcopy(last)
    for r in extra:
        r["request"] = 8
        r["offset"] += 65536
    at = recs.index(last[-1]) + 1
    recs[at:at] = extra
    assert rules_broken(retime(renumber(recs))) == ["file_position", "outcome"]
    assert any("request 8 is issued after the whole dump" in m for m in messages(recs, "file_position"))


# -- handoff ---------------------------------------------------------------------------------


def test_a_filter_that_moves_a_write_without_saying_so_breaks_handoff() -> None:
    """delayflt.sys hands request 7 down 4 KiB further than it was handed, with no detail.moved_from: `handoff`."""
    recs = three_runs()
    for r in of_request(recs, 7):
        if r["layer"] != "crashdmp" or r["event"] == "write_complete":
            r["offset"] += 4096
    assert rules_broken(recs) == ["handoff"]
    assert any(
        "'delayflt.sys' hands request 7 down at 3221295104, but it was handed 3221291008" in m for m in messages(recs, "handoff")
    )


def test_a_moved_from_that_lies_breaks_handoff() -> None:
    """A moved write's detail.moved_from names another offset than the filter was handed: `handoff`."""
    _, trace = run(**OUTCOMES["filter-moves-a-write"][0])
    recs = trace.records
    find(recs, "faultflt.sys", "dump_write", 1)["detail"]["moved_from"] += 4096
    assert rules_broken(recs) == ["handoff"]


def test_a_moved_from_on_a_write_that_did_not_move_breaks_handoff() -> None:
    """A dump_write that hands down the offset it was handed moved nothing: a detail.moved_from on it breaks `handoff`."""
    recs = good()
    write = find(recs, "delayflt.sys", "dump_write")
    write["detail"] = {"moved_from": write["offset"]}
    assert rules_broken(recs) == ["handoff"]


@pytest.mark.parametrize(
    "detail", [{"moved_from": "1 MiB"}, {"moved_from": -1}, {"moved_from": True}, {"from": 0}, {"moved_from": 0, "by": 8192}, {}]
)
def test_a_malformed_moved_from_is_a_format_violation(detail: dict[str, Any]) -> None:
    """A dump_write's detail is null or exactly {"moved_from": offset}, an integer: anything else breaks `format`."""
    _, trace = run(**OUTCOMES["filter-moves-a-write"][0])
    recs = trace.records
    find(recs, "faultflt.sys", "dump_write", 1)["detail"] = detail
    assert rules_broken(recs) == ["format"]


def test_a_write_that_goes_on_after_a_length_change_breaks_handoff() -> None:
    """faultflt.sys halved request 1's length, which ends the dump: a dump_write of delayflt.sys after it breaks `handoff`."""
    _, trace = run(
        registry={"DumpFilters": ["faultflt.sys", "delayflt.sys"]}, filters={"faultflt.sys": {"action": "change_length"}}
    )
    recs = trace.records
    changed = find(recs, "faultflt.sys", "dump_write")
    recs.insert(recs.index(changed) + 1, {**changed, "layer": "delayflt.sys"})
    assert rules_broken(retime(renumber(recs))) == ["handoff"]
    assert any("the write goes on after line" in m for m in messages(recs, "handoff"))


def test_a_filter_that_legitimately_moves_a_write_passes() -> None:
    """faultflt.sys moves request 2 by 8 KiB into the unused end of the file: its record says so and every rule holds."""
    result, trace = run(**OUTCOMES["filter-moves-a-write"][0])
    moved = find(trace.records, "faultflt.sys", "dump_write", 1)
    assert moved["detail"] == {"moved_from": moved["offset"] - 8192}
    assert find(trace.records, "delayflt.sys", "dump_write", 1)["detail"] is None  # it only passes the moved write on
    assert any("changes the offset" in w or "moved request" in w for w in result.warnings)
    assert rules_broken(trace.records) == []


def test_a_write_moved_over_the_next_one_passes_placement() -> None:
    """faultflt.sys moves request 2 onto request 3's place: Windows honours it, so placement holds (the result warns)."""
    result, trace = run(
        registry={"DumpFilters": ["faultflt.sys"], "CrashDumpEnabled": 1},
        memory={"ram": "1 MiB"},
        filters={"faultflt.sys": {"action": "change_offset", "at_request": 2, "offset_delta": "64 KiB"}},
        check=False,
    )
    assert result.status == "ok"
    assert any("moved request" in w or "changes the offset" in w for w in result.warnings)
    assert rules_broken(trace.records) == []


def test_an_unmoved_write_over_another_breaks_placement() -> None:
    """The same overlap with no moved_from on the dump_write (the simulator's doing, not a filter's) breaks placement."""
    _, trace = run(
        registry={"DumpFilters": ["faultflt.sys"], "CrashDumpEnabled": 1},
        memory={"ram": "1 MiB"},
        filters={"faultflt.sys": {"action": "change_offset", "at_request": 2, "offset_delta": "64 KiB"}},
        check=False,
    )
    records = [dict(r) for r in trace.records]
    for r in records:
        if r["event"] == "dump_write" and r["detail"] is not None:
            r["detail"] = None
    assert "placement" in rules_broken(records)


def test_a_filter_skipped_before_the_dump_failed_breaks_filter_order() -> None:
    """faultflt.sys raised in its dump_write of request 2: without delayflt.sys's dump_write before it, `filter_order` breaks."""
    _, trace = run(**OUTCOMES["faultflt-raise"][0])
    recs = trace.records
    recs.remove(find(recs, "delayflt.sys", "dump_write", 1))
    assert rules_broken(retime(renumber(recs))) == ["filter_order"]
    assert messages(recs, "filter_order") == [
        "request 2 went through ['faultflt.sys'] before the dump failed: the filters with a dump_write are "
        "['delayflt.sys', 'faultflt.sys'], called in that order"
    ]


# -- the outcome and structure of a whole dump -------------------------------------------------


def test_a_dump_that_does_not_fit_its_file_and_goes_on_breaks_outcome() -> None:
    """A dump_context whose runs cannot hold the dump, then the dump written anyway, breaks `outcome` (and the writes' rules)."""
    recs = good()
    detail = find(recs, "crashdmp", "dump_context")["detail"]
    detail["runs"] = [[detail["runs"][0][0], 32768]]
    assert rules_broken(recs) == ["file_position", "outcome", "placement"]
    assert any("does not fit its file" in m for m in messages(recs, "outcome"))


def test_a_dump_finished_before_every_part_was_issued_breaks_structure() -> None:
    """Without the last write (retimed), dump_finish comes before the whole dump was issued: `structure` (and `outcome`)."""
    recs = three_runs()
    recs = [r for r in recs if r["request"] != 7]
    assert rules_broken(retime(renumber(recs))) == ["structure", "outcome"]
    assert any("65,536 bytes of it, from part 'body' on, were never issued" in m for m in messages(recs, "structure"))


@pytest.mark.parametrize("callback", ["dump_start", "dump_finish"])
def test_callbacks_out_of_registry_order_break_start_finish(callback: str) -> None:
    """Filters are called in registry order: two filters' dump_start (or dump_finish) records swapped break `start_finish`."""
    _, trace = run(**OUTCOMES["faultflt-none"][0])
    recs = trace.records
    first, second = find(recs, "delayflt.sys", callback), find(recs, "faultflt.sys", callback)
    i, j = recs.index(first), recs.index(second)
    recs[i], recs[j] = second, first
    assert rules_broken(retime(renumber(recs))) == ["start_finish"]
    assert any("out of registry order" in m for m in messages(recs, "start_finish"))


@pytest.mark.parametrize("event", ["flush", "device_write"])
def test_a_device_step_longer_than_the_port_timeout_breaks_device(event: str) -> None:
    """The port polls a command for its timeout at most: a flush or device write that lasts longer breaks `device`."""
    recs = good()
    find(recs, "crashdmp", "dump_context")["detail"]["port_timeout_ns"] = find(recs, "device", event)["dur_ns"] - 1
    assert rules_broken(recs) == ["device"]
    assert any("timeout" in m for m in messages(recs, "device"))


def test_a_poll_timeout_that_does_not_last_the_port_timeout_breaks_device() -> None:
    """A poll_timeout lasts exactly the port's timeout: a dump_context naming another one breaks `device`."""
    _, trace = run(**OUTCOMES["device-timeout"][0])
    recs = trace.records
    find(recs, "crashdmp", "dump_context")["detail"]["port_timeout_ns"] += 1
    assert rules_broken(recs) == ["device"]
    assert any("before it gives up; its timeout is" in m for m in messages(recs, "device"))


def test_a_write_failed_of_another_write_breaks_structure() -> None:
    """write_failed reports the write crashdmp issued: another offset breaks `structure`."""
    _, trace = run(**OUTCOMES["device-error-retried"][0])
    recs = trace.records
    find(recs, "crashdmp", "write_failed")["offset"] += 4096
    assert rules_broken(recs) == ["structure"]
    assert any("crashdmp issued it as" in m for m in messages(recs, "structure"))


@pytest.mark.parametrize(("trace", "target"), [(good, "hiberfile"), (hibernation, "pagefile"), (hibernation, "dedicated")])
def test_a_target_that_does_not_suit_the_event_breaks_structure(trace: Any, target: str) -> None:
    """A crash writes the pagefile or a dedicated dump file, a hibernation the hiberfile: another target breaks `structure`."""
    recs = trace()
    find(recs, "crashdmp", "dump_context")["detail"]["target"] = target
    assert rules_broken(recs) == ["structure"]


def test_an_error_named_by_the_simulator_is_judged_by_its_value() -> None:
    """STATUS_IO_DEVICE_ERROR is an error by its value: dump_complete after a device write returning it breaks `outcome`."""
    recs = good()
    find(recs, "device", "device_write", 1)["status"] = "STATUS_IO_DEVICE_ERROR"
    assert rules_broken(recs) == ["structure", "outcome"]  # structure: a write_complete of a failed write


@pytest.mark.parametrize(
    "change",
    [
        {"parts": [["header", 0]]},
        {"parts": [["header", 0, 0]]},
        {"parts": [["", 0, 8192]]},
        {"parts": "header"},
        {"watchdog_ns": 0},
        {"port_timeout_ns": -1},
        {"power_loss_ns": "1 s"},
        {"power_loss_ns": 1.5},
    ],
)
def test_a_bad_new_dump_context_key_is_a_format_violation(change: dict[str, Any]) -> None:
    """parts is an array of [name, file offset, bytes > 0]; watchdog_ns > 0; port_timeout_ns ≥ 0; power_loss_ns null or ≥ 0."""
    recs = good()
    find(recs, "crashdmp", "dump_context")["detail"].update(change)
    assert rules_broken(recs) == ["format"]


def test_overlapping_parts_break_placement() -> None:
    """Two parts of the dump at overlapping file offsets break `placement`."""
    recs = good()
    find(recs, "crashdmp", "dump_context")["detail"]["parts"][1][1] -= 512
    assert rules_broken(recs) == ["file_position", "placement"]  # file_position: the body is written where it was
    assert any("overlap in the file" in m for m in messages(recs, "placement"))


# -- every small tampering of a real trace -------------------------------------------------------

STATUSES = ("STATUS_SUCCESS", "STATUS_UNSUCCESSFUL", "0xC0000001", "0x00000103", "0x40000000", "STATUS_NOT_A_NAME", None)
"""Statuses a tampering writes: success, errors by name and by value, two success codes that are not STATUS_SUCCESS
(STATUS_PENDING, an informational code), a name neither the simulator nor the checker knows, and none."""
SUCCESS_CODES = frozenset({"STATUS_SUCCESS", "0x00000103", "0x40000000"})
FIELD_EDITS: dict[str, tuple[int, ...]] = {
    "offset": (512, -512, 4096, -4096),
    "length": (512, -512),
    "request": (1, -1),
    "t_ns": (1, -1),
    "dur_ns": (1, -1),
}
CONTEXT_EDITS: dict[str, tuple[int, ...]] = {
    "partition_offset": (512, -512),
    "max_pages_per_write": (1, -1),
    "disk_size": (512, -512),
    "dump_bytes": (512, -512),
    "watchdog_ns": (1, -1),
    "port_timeout_ns": (1, -1),
}


def allowed(records: Records, i: int, field: str, value: object) -> str | None:
    """
    Why setting *field* of record *i* to *value* leaves a trace as valid as the genuine one, or None (it must be caught).

    This is the whole allow-list of the brute-force test on the THREE_RUNS trace: each entry is a
    trace the simulator could have written for another, equally legal run. (Other traces allow other
    edits: where no write is full-size, MaxPagesPerWrite ± 1 shows nowhere; after a power loss, the
    length of the step it cut.)
    """
    r = records[i]
    event = r["event"]
    if field == "status" and value is not None:
        if event in ("dump_start", "dump_write", "dump_finish"):
            # a callback that returns an error is recorded and the dump goes on: "returning an error does not
            # prevent data from being written to disk" [SRC S24] (any filter: the trace does not say which is critical)
            return "a callback's status is recorded, the dump goes on"
        if event == "driver_entry" and value in SUCCESS_CODES | {"STATUS_NOT_A_NAME"}:
            # NT_SUCCESS() holds (a non-critical filter is loaded, with a warning), or the name is unknown: either
            # way the dump_context, which lists the filter, says it loaded
            return "a DriverEntry status that loads the filter"
        if event == "device_write" and r["status"] is None and value in SUCCESS_CODES:
            return "a device write that succeeded, its status written out instead of null"
    if field == "dur_ns" and value == r["dur_ns"] + 1 and [n["event"] for n in records[i + 1 : i + 2]] == ["bugcheck"]:
        return "the last DriverEntry 1 ns longer: boot still ends long before the bugcheck"
    return None


def allowed_in_context(records: Records, key: str, value: object) -> str | None:
    """Why setting the dump_context's *key* to *value* leaves an equally valid trace, or None (it must be caught)."""
    if key in ("watchdog_ns", "port_timeout_ns"):
        return "nothing hung, and no step came near the port's timeout: neither period shows in the trace"
    if key == "disk_size":
        return "the disk ends far past the last write either way"
    if key == "runs[2][1]":
        return "the last run ends 896 KiB past the dump: the file may be 512 bytes longer or shorter"
    return None


def tamperings(records: Records) -> list[tuple[str, str | None, Records]]:
    """Every deletion, duplication, adjacent swap and small single-field edit of *records*: (what, why allowed, trace)."""

    def name(i: int) -> str:
        r = records[i]
        return f"line {i + 1} ({r['layer']} {r['event']}" + (f" #{r['request']})" if r["request"] else ")")

    def seq(rs: Records) -> Records:  # consecutive seq numbers again, without touching the genuine records
        return [r if r["seq"] == n else {**r, "seq": n} for n, r in enumerate(rs, start=1)]

    out: list[tuple[str, str | None, Records]] = []
    for i, r in enumerate(records):
        out.append((f"delete {name(i)}", None, seq(records[:i] + records[i + 1 :])))
        out.append((f"duplicate {name(i)}", None, seq([*records[: i + 1], r, *records[i + 1 :]])))
    for i, (a, b) in enumerate(itertools.pairwise(records)):
        out.append((f"swap {name(i)} and the next", None, seq([*records[:i], b, a, *records[i + 2 :]])))
        swapped = [{**b, "t_ns": a["t_ns"]}, {**a, "t_ns": b["t_ns"]}]
        out.append((f"swap {name(i)} and the next, times kept", None, seq([*records[:i], *swapped, *records[i + 2 :]])))
    layers = sorted({r["layer"] for r in records} | {"other.sys"})
    for i, r in enumerate(records):
        edits: list[tuple[str, object]] = [
            (field, r[field] + d) for field, deltas in FIELD_EDITS.items() if r[field] is not None for d in deltas
        ]
        edits += [("status", s) for s in STATUSES] + [("dump_type", d) for d in ("hibernation", None)]
        edits += [("layer", layer) for layer in layers]
        for field, value in edits:
            if value != r[field] and not (isinstance(value, int) and value < 0):
                edited = [*records[:i], {**r, field: value}, *records[i + 1 :]]
                out.append((f"{field} = {value!r} on {name(i)}", allowed(records, i, field, value), edited))
    at = records.index(find(records, "crashdmp", "dump_context"))
    detail = records[at]["detail"]
    for key, value in [
        *((k, detail[k] + d) for k, deltas in CONTEXT_EDITS.items() for d in deltas),
        *((f"runs[{n}][{j}]", d) for n in range(len(detail["runs"])) for j in (0, 1) for d in (512, -512)),
        *((f"parts[{n}][{j}]", d) for n in range(len(detail["parts"])) for j in (1, 2) for d in (512, -512)),
    ]:
        changed = copy.deepcopy(detail)
        if "[" in key:  # a run's or a part's offset or length, moved by *value* bytes
            table, n, j = key.replace("]", "").replace("[", " ").split()
            changed[table][int(n)][int(j)] += value
            what = f"{key} {value:+}"
        else:
            changed[key] = value
            what = f"{key} = {value}"
        edited = [*records[:at], {**records[at], "detail": changed}, *records[at + 1 :]]
        out.append((f"dump_context {what}", allowed_in_context(records, key, value), edited))
    return out


@functools.cache
def tampered() -> list[tuple[str, str | None, bool]]:
    """(what, why allowed, whether the checker passed it) for every tampering of the THREE_RUNS trace."""
    return [(what, why, not check_records(recs)) for what, why, recs in tamperings(three_runs())]


@pytest.mark.timeout(30)
def test_every_small_tampering_of_a_real_trace_is_caught() -> None:
    """Each deletion, duplication, adjacent swap and small edit of a real trace breaks a rule, bar the allow-list."""
    outcomes = tampered()
    assert len(outcomes) > 1200
    assert [what for what, why, passed in outcomes if passed and why is None] == []


@pytest.mark.timeout(30)
def test_the_allowed_tamperings_leave_a_valid_trace() -> None:
    """Each tampering on the allow-list gives a trace the simulator could have written: the checker passes it."""
    outcomes = tampered()
    assert len([why for _, why, _ in outcomes if why is not None]) > 100
    assert [what for what, why, passed in outcomes if not passed and why is not None] == []


# -- malformed lines ---------------------------------------------------------------------------

GOOD_LINE = b'{"t_ns":0,"seq":1,"layer":"delayflt.sys","event":"driver_entry","dur_ns":0,"request":null,'
GOOD_LINE += b'"offset":null,"length":null,"dump_type":"crashdump","status":"STATUS_SUCCESS","detail":null}'


def record_line(**change: Any) -> bytes:
    """The first line of a genuine trace with *change* applied (a key set to ... is deleted)."""
    rec = json.loads(GOOD_LINE)
    for k, v in change.items():
        if v is ...:
            del rec[k]
        else:
            rec[k] = v
    return json.dumps(rec).encode()


MALFORMED: dict[str, tuple[bytes, str]] = {
    "binary": (b"\x00\x01\x02\xff\xfe\x80garbage", "not UTF-8"),
    "invalid-utf8-in-a-string": (GOOD_LINE.replace(b"delayflt", b"delay\xc3\x28flt"), "not UTF-8"),
    "latin-1": ("caf\xe9".encode("latin-1"), "not UTF-8"),
    "not-json": (b"not json", "is not JSON"),
    "truncated-json": (GOOD_LINE[:50], "is not JSON"),
    "blank": (b"", "is blank"),
    "spaces": (b"   \t ", "is blank"),
    "array": (b"[1, 2, 3]", "is an array, not a JSON object"),
    "number": (b"42", "is an integer, not a JSON object"),
    "string": (b'"bugcheck"', "is a string, not a JSON object"),
    "null": (b"null", "is null, not a JSON object"),
    "t_ns-string": (record_line(t_ns="10 ms"), "t_ns '10 ms', which is a string"),
    "t_ns-negative": (record_line(t_ns=-1), "t_ns -1"),
    "t_ns-float": (record_line(t_ns=1.5), "t_ns 1.5, which is a number with a fraction"),
    "seq-float": (record_line(seq=1.0), "seq 1.0, which is a number with a fraction"),
    "seq-zero": (record_line(seq=0), "seq 0"),
    "seq-bool": (record_line(seq=True), "seq True, which is a boolean"),
    "request-bool": (record_line(request=False), "request False, which is a boolean"),
    "dur-null": (record_line(dur_ns=None), "dur_ns None, which is null"),
    "layer-null": (record_line(layer=None), "layer None"),
    "layer-number": (record_line(layer=7), "layer 7"),
    "layer-empty": (record_line(layer=""), "layer ''"),
    "layer-huge": (record_line(layer="x" * 100_000), "100,000 characters"),
    "event-list": (record_line(event=["driver_entry"]), "event ['driver_entry']"),
    "dump_type-number": (record_line(dump_type=3), "dump_type 3"),
    "status-object": (record_line(status={"code": 0}), "status {'code': 0}"),
    "detail-list": (record_line(detail=[1]), "detail [1]"),
    "missing-field": (record_line(seq=...), "lacks seq"),
    "extra-field": (record_line(comment="hi"), "unknown field(s) 'comment'"),
    "many-extra-fields": (json.dumps({**json.loads(GOOD_LINE), **{f"k{i}": i for i in range(1000)}}).encode(), "and 995 more"),
    "int64-overflow": (record_line(t_ns=2**63), "t_ns 9223372036854775808"),
    "uint64-overflow": (record_line(offset=2**64 + 1), "offset"),
    "huge-integer": (GOOD_LINE.replace(b'"t_ns":0', b'"t_ns":' + b"9" * 4400), "line 2"),
    "end-past-int64": (record_line(t_ns=2**63 - 10, dur_ns=20), "ends past 2**63 - 1 ns"),
    "nan": (GOOD_LINE.replace(b'"t_ns":0', b'"t_ns":NaN'), "is not JSON"),
    "infinity": (GOOD_LINE.replace(b'"t_ns":0', b'"t_ns":1e400'), "line 2"),
    "deep-arrays": (b"[" * 100_000 + b"]" * 100_000, "nests arrays or objects too deeply"),
    "deep-objects": (b'{"a":' * 100_000 + b"1" + b"}" * 100_000, "nests arrays or objects too deeply"),
    "deep-unclosed": (b"[" * 1_000_000, "nests arrays or objects too deeply"),
    "deep-in-detail": (GOOD_LINE.replace(b'"detail":null', b'"detail":' + b"[" * 5000 + b"]" * 5000), "nests"),
    "null-request-on-a-write": (record_line(event="dump_write"), "null request, offset or length"),
    "request-on-driver_entry": (record_line(request=1, offset=0, length=512), "they are null for it"),
    "callback-without-status": (record_line(status=None), "null status"),
    "detail-on-a-write": (record_line(detail={}), "only dump_context and a dump_write that moved its write have one"),
    "dump_context-without-detail": (record_line(layer="crashdmp", event="dump_context", status=None), "without a detail"),
    "repeated-key": (b'{"layer":"evil.sys",' + GOOD_LINE[1:], "has the key 'layer' twice in one object"),
    "repeated-key-spaced": (GOOD_LINE.replace(b'"event"', b'"layer" :\t"evil.sys", "event"'), "has the key 'layer' twice"),
    "repeated-key-escaped": (GOOD_LINE.replace(b'"event"', b'"la\\u0079er":"evil.sys","event"'), "has the key 'layer' twice"),
    "repeated-key-and-colon-in-a-string": (
        GOOD_LINE.replace(b'"event"', b'"layer" :"evil.sys","event"').replace(b'"crashdump"', b'"crash:dump"'),
        "has the key 'layer' twice",
    ),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_line_is_a_format_violation(case: str, tmp_path: Path) -> None:
    """Each malformed line is a `format` violation naming its line number, never an exception."""
    line, expected = MALFORMED[case]
    path = write_lines(tmp_path / "t.jsonl", [GOOD_LINE, line])
    count, violations = check_trace_file(str(path))
    formats = [v for v in violations if v.rule == "format"]
    assert len(formats) == 1, [v.render() for v in violations]
    assert formats[0].message.startswith("line 2 ")
    assert expected in formats[0].message
    assert count == 1
    assert all(len(v.render()) < 1000 for v in violations)


def test_a_line_without_a_newline_at_the_end_is_a_format_violation(tmp_path: Path) -> None:
    """The last line ends with a newline: without one, the file was cut short."""
    recs = good()
    path = tmp_path / "t.jsonl"
    path.write_bytes(b"\n".join(dumps(recs)))
    count, violations = check_trace_file(str(path))
    assert [v.message for v in violations] == [f"line {len(recs)} does not end with a newline: the file is cut short"]
    assert count == len(recs)  # the record on it is still checked


def test_a_line_over_the_cap_is_skipped_unread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A line longer than MAX_LINE_BYTES is a `format` violation; the lines after it are still checked."""
    monkeypatch.setattr(check_module, "MAX_LINE_BYTES", 1000)
    monkeypatch.setattr(check_module, "CHUNK_BYTES", 64)
    recs = good()
    lines = dumps(recs)
    path = write_lines(tmp_path / "t.jsonl", [lines[0], b"x" * 5000, *lines[1:]])
    count, violations = check_trace_file(str(path))
    assert [v.message for v in violations] == ["line 2 is 5,000 bytes long; a record line is at most 1,000 bytes"]
    assert count == len(recs)


def test_reading_in_small_chunks_finds_every_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Lines split across read chunks are joined again: a genuine trace read 7 bytes at a time passes."""
    monkeypatch.setattr(check_module, "CHUNK_BYTES", 7)
    recs = hibernation()
    path = write_lines(tmp_path / "t.jsonl", dumps(recs))
    assert check_trace_file(str(path)) == (len(recs), [])


def test_the_stream_is_read_in_bounded_chunks() -> None:
    """check_stream asks for at most CHUNK_BYTES at a time, whatever the input."""

    class Stream:
        def __init__(self) -> None:
            self.data = b"".join(line + b"\n" for line in dumps(good())) + b"x" * 5_000_000
            self.sizes: list[int] = []

        def read(self, size: int = -1) -> bytes:
            self.sizes.append(size)
            out, self.data = self.data[:size], self.data[size:]
            return out

    stream = Stream()
    check_stream(stream)
    assert set(stream.sizes) == {check_module.CHUNK_BYTES}


def test_a_utf8_bom_is_accepted(tmp_path: Path) -> None:
    """A UTF-8 byte-order mark before the first record is accepted (an editor may add one)."""
    recs = good()
    lines = dumps(recs)
    path = write_lines(tmp_path / "t.jsonl", [b"\xef\xbb\xbf" + lines[0], *lines[1:]])
    assert check_trace_file(str(path)) == (len(recs), [])


def test_a_bad_dump_context_detail_is_a_format_violation() -> None:
    """The dump_context detail has exactly its keys, each of its type."""
    for change in ({"runs": [[0, "64 KiB"]]}, {"disk_size": True}, {"filters": [{"name": "x.sys"}]}, {"extra": 1}):
        recs = good()
        find(recs, "crashdmp", "dump_context")["detail"].update(change)
        assert "format" in rules_broken(recs), change
    recs = good()
    del find(recs, "crashdmp", "dump_context")["detail"]["dump_bytes"]
    assert any("lacks dump_bytes" in m for m in messages(recs, "format"))


def test_a_repeated_key_is_a_format_violation(tmp_path: Path) -> None:
    """A genuine line with a key written twice (the parser keeps one value) is a `format` violation, not a record."""
    lines = dumps(good())
    lines[0] = b'{"layer":"evil.sys",' + lines[0][1:]  # delayflt.sys's driver_entry: its filter is then not loaded
    count, violations = check_trace_file(str(write_lines(tmp_path / "t.jsonl", lines)))
    assert [v.rule for v in violations if v.rule == "format"] == ["format"]
    assert violations[0].message == "line 1 has the key 'layer' twice in one object: each key of a record appears once"
    assert sorted({v.rule for v in violations}, key=RULES.index) == ["format", "layers", "start_finish", "filter_order"]
    assert count == len(lines) - 1


def test_a_repeated_key_in_the_detail_is_a_format_violation(tmp_path: Path) -> None:
    """A key written twice inside the dump_context's detail is a `format` violation (the rest then has no dump_context)."""
    recs = good()
    lines = dumps(recs)
    at = recs.index(find(recs, "crashdmp", "dump_context"))
    lines[at] = lines[at].replace(b'"dump_bytes":', b'"dump_bytes":512,"dump_bytes":', 1)
    _, violations = check_trace_file(str(write_lines(tmp_path / "t.jsonl", lines)))
    assert sorted({v.rule for v in violations}, key=RULES.index) == ["format", "structure"]
    assert violations[0].message == (
        f"line {at + 1} has the key 'dump_bytes' twice in one object: each key of a record appears once"
    )


def test_a_colon_in_a_string_is_not_a_repeated_key(tmp_path: Path) -> None:
    """A filter named with a quote and a colon (as ``":`` in the line) passes: only a key really written twice is refused."""
    recs = good()
    for r in recs:
        if r["layer"] == "delayflt.sys":
            r["layer"] = 'delay":flt.sys'
    for f in find(recs, "crashdmp", "dump_context")["detail"]["filters"]:
        f["name"] = 'delay":flt.sys'
    lines = dumps(recs)
    assert b'\\":' in lines[0]
    assert check_trace_file(str(write_lines(tmp_path / "t.jsonl", lines))) == (len(recs), [])


def test_a_trace_with_spaces_around_its_separators_passes(tmp_path: Path) -> None:
    """A genuine trace written with json.dumps's default separators (a space after each comma and colon) passes."""
    recs = good()
    path = write_lines(tmp_path / "t.jsonl", [json.dumps(r).encode() for r in recs])
    assert check_trace_file(str(path)) == (len(recs), [])


def test_a_genuine_trace_is_parsed_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The repeated-key rule costs a genuine trace one count of its colons per line: no line of it is parsed a second time."""

    def second_parse(raw: bytes) -> None:
        raise AssertionError(raw)

    monkeypatch.setattr(check_module, "_repeated_key", second_parse)
    recs = three_runs()
    assert check_trace_file(str(write_lines(tmp_path / "t.jsonl", dumps(recs)))) == (len(recs), [])


# -- output ------------------------------------------------------------------------------------


def test_violations_are_capped_per_rule(tmp_path: Path) -> None:
    """At most SHOWN_PER_RULE violations per rule are kept; one more says how many were left out."""
    path = write_lines(tmp_path / "t.jsonl", [b"garbage"] * 1000)
    _, violations = check_trace_file(str(path))
    formats = [v for v in violations if v.rule == "format"]
    assert len(formats) == SHOWN_PER_RULE + 1
    assert formats[-1].message == f"… and {1000 - SHOWN_PER_RULE:,} more format violations"


def test_rendered_records_are_short() -> None:
    """A record shown as evidence has its long strings cut and its detail elided."""
    recs = good()
    find(recs, "delayflt.sys", "dump_write")["layer"] = "y" * 10_000
    out = "\n".join(v.render() for v in check_records(recs))
    assert "10,000 characters" in out
    assert max(len(line) for line in out.splitlines()) < 400


def test_violation_render() -> None:
    """A violation renders as its rule and message, then its records indented."""
    v = Violation("qd1", "request 2 issued while 1 is outstanding", ("line 5: {}", "line 9: {}"))
    assert v.render() == "[qd1] request 2 issued while 1 is outstanding\n    line 5: {}\n    line 9: {}"


# -- the written-extents structure ---------------------------------------------------------------


def naive_overlap(written: list[tuple[int, int]], start: int, end: int) -> bool:
    return any(s < end and start < e for s, e in written)


@given(st.lists(st.tuples(st.integers(0, 200), st.integers(1, 20)), max_size=300))
def test_extents_match_a_naive_model(writes: list[tuple[int, int]]) -> None:
    """_Extents reports an overlap exactly when a naive list of ranges would, and keeps ranges merged and sorted."""
    ext = _Extents(split=2)  # tiny buckets: splits and cross-bucket merges happen all the time
    written: list[tuple[int, int]] = []
    for n, (start, length) in enumerate(writes, start=1):
        hit = ext.add(start, start + length, n)
        assert (hit is not None) == naive_overlap(written, start, start + length)
        written.append((start, start + length))
        ranges = ext.ranges()
        assert all(a[1] < b[0] for a, b in itertools.pairwise(ranges))  # disjoint, not touching
        covered = {x for s, e in written for x in range(s, e)}
        assert covered == {x for s, e, _, _ in ranges for x in range(s, e)}


def test_extents_of_sequential_writes_stay_one_range() -> None:
    """Sequential writes merge into one range, however many (bounded memory for a dump of a million writes)."""
    ext = _Extents()
    for n in range(1, 200_001):
        ext.add(n * 4096, (n + 1) * 4096, n)
    assert ext.ranges() == [(4096, 200_001 * 4096, 1, 200_000)]


def test_extents_in_random_order_stay_fast() -> None:
    """100,000 disjoint writes in random order: bucketed inserts, no quadratic blow-up."""
    order = list(range(100_000))
    random.Random(1).shuffle(order)
    ext = _Extents()
    for n, k in enumerate(order, start=1):
        assert ext.add(k * 8192, k * 8192 + 4096, n) is None
    assert len(ext) == 100_000
    assert ext.add(5 * 8192 + 100, 5 * 8192 + 200, 0) is not None


# -- the command -------------------------------------------------------------------------------


def test_cli_check(tmp_path: Path) -> None:
    """`stacksim check` exits 0 on a clean trace and 1, printing the violations, on a broken one."""
    path = tmp_path / "t.jsonl"
    recs = good()
    write_lines(path, dumps(recs))
    r = CliRunner().invoke(app, ["check", str(path)])
    assert r.exit_code == 0
    assert f"{len(recs)} records; all {len(RULES)} rules hold" in r.stdout
    recs.remove(find(recs, "delayflt.sys", "dump_write", 1))
    write_lines(path, [*dumps(renumber(recs)), b"not json"])
    r = CliRunner().invoke(app, ["check", str(path)])
    assert r.exit_code == 1
    assert "[filter_order] request 2 went through ['miniport']" in r.stdout
    assert f"[format] line {len(recs) + 1} is not JSON" in r.stdout
    assert r.stdout.splitlines()[-1] == f"{path}: {len(recs)} records; rules broken: format, filter_order"


def test_cli_check_escapes_what_the_trace_says(tmp_path: Path) -> None:
    """Terminal escapes and bidi controls in a trace reach the terminal escaped."""
    recs = good()
    find(recs, "delayflt.sys", "dump_write")["layer"] = "\x1b[2J\u202eevil.sys"
    path = write_lines(tmp_path / "t.jsonl", dumps(recs))
    r = CliRunner().invoke(app, ["check", str(path)])
    assert r.exit_code == 1
    assert "\x1b" not in r.stdout
    assert "\u202e" not in r.stdout
    assert "\\x1b[2J\\u202eevil.sys" in r.stdout


def test_cli_check_missing_file(tmp_path: Path) -> None:
    """A trace path that does not exist is exit 2 with a message naming it."""
    r = CliRunner().invoke(app, ["check", str(tmp_path / "nope.jsonl")])
    assert r.exit_code == 2
    assert "no such trace file" in r.stderr


def test_the_line_cap_is_documented() -> None:
    """docs/reference/trace-format.md states the line cap."""
    text = (Path(__file__).parents[1] / "docs" / "reference" / "trace-format.md").read_text(encoding="utf-8")
    assert f"{MAX_LINE_BYTES // 2**20} MiB" in text


def test_the_checker_knows_every_status_name_the_simulator_writes() -> None:
    """The checker's own table of status names holds exactly the simulator's NTSTATUS values."""
    from stacksim.check import _STATUS_CODES
    from stacksim.requests import NtStatus, status_name

    assert {status_name(s.value): s.value for s in NtStatus} == _STATUS_CODES


def test_a_dump_start_of_a_filter_whose_driver_entry_returned_an_error_name_breaks_layers() -> None:
    """DriverEntry returning STATUS_UNSUCCESSFUL (a name, not a hex value) leaves the filter unloaded."""
    recs = good()
    find(recs, "delayflt.sys", "driver_entry")["status"] = "STATUS_UNSUCCESSFUL"
    assert "layers" in rules_broken(recs)


# -- the normal stack ------------------------------------------------------------------------

NVME_IO: dict[str, Any] = {
    "disk": {"preset": "nvme-pcie4"},
    "memory": {"ram": "256 KiB"},
    "workload": {"pattern": "mixed", "queue_depth": 4, "block_size": "4 KiB", "duration": "1 s"},
    "normal_stack": {"storport_queue_depth": 2},
}
"""QD4 mixed 4 KiB I/O on NVMe, storport letting 2 commands at a time reach the device (8 channels)."""
CRASH_DURING_IO: dict[str, Any] = {"scenario": {"event": "crash-during-io", "bugcheck_at": "60 us"}, **NVME_IO}
"""A crash 60 µs into NVME_IO: 2 requests completed, 2 held by the device, 2 in storport's queue; a two-write dump."""
IO_ONLY: dict[str, Any] = {
    "scenario": {"event": "io", "bugcheck_at": None},
    **NVME_IO,
    "workload": {"pattern": "mixed", "queue_depth": 4, "block_size": "4 KiB", "requests": 12},
}
"""NVME_IO by itself: 12 requests, every one completed, no dump."""


def crash_during_io() -> Records:
    """A valid trace of CRASH_DURING_IO, from a real run."""
    _, trace = run(**CRASH_DURING_IO)
    return trace.records


def io_only() -> Records:
    """A valid trace of IO_ONLY, from a real run."""
    _, trace = run(**IO_ONLY)
    return trace.records


def at(records: Records, layer: str, event: str, request: int | None = None) -> int:
    """The index of the first record of *layer*'s *event* (of *request*, if given)."""
    return next(
        i
        for i, r in enumerate(records)
        if r["layer"] == layer and r["event"] == event and (request is None or r["request"] == request)
    )


def test_a_trace_of_io_passes_without_any_dump_record() -> None:
    """The trace of an io run, the normal stack's records alone, breaks no rule."""
    records = io_only()
    assert {r["dump_type"] for r in records} == {None}
    assert check_records(records) == []


def test_the_crash_during_io_trace_loses_requests_in_the_queue_and_at_the_device() -> None:
    """The genuine crash-during-io trace the tamperings start from: 2 requests in storport's queue, 2 at the device."""
    records = crash_during_io()
    assert find(records, "ntoskrnl.exe", "io_freeze")["detail"] == {
        "issued": 6,
        "completed": 2,
        "lost": 4,
        "by_layer": {"storport.sys": 2, "device": 2},
    }
    assert find(records, "miniport", "port_init")["detail"] == {"dropped": 2, "requests": [3, 4]}


def test_a_normal_stack_record_after_the_bugcheck_breaks_freeze() -> None:
    """A normal-stack record after the bugcheck (a layer that ran on after the freeze) breaks freeze."""
    records = crash_during_io()
    i = at(records, "miniport", "port_init")
    late = {**records[i - 5], "t_ns": records[i]["t_ns"] + records[i]["dur_ns"]}
    assert rules_broken(renumber([*records[: i + 1], late, *records[i + 1 :]])) == ["freeze"]


def test_a_crash_during_io_without_its_freeze_record_breaks_freeze() -> None:
    """A crash during I/O whose trace never says the normal stack froze breaks freeze."""
    assert rules_broken(without(crash_during_io(), "io_freeze")) == ["freeze"]


def test_a_freeze_before_the_bugcheck_s_time_breaks_freeze() -> None:
    """An io_freeze 1 ns before the bugcheck breaks freeze: the stack freezes at the bugcheck's instant."""
    records = crash_during_io()
    records[at(records, "ntoskrnl.exe", "io_freeze")]["t_ns"] -= 1
    assert rules_broken(records) == ["freeze"]


def test_a_freeze_after_the_bugcheck_breaks_order_and_freeze() -> None:
    """An io_freeze after the bugcheck at the same instant breaks the tie rule (order) and freeze."""
    records = crash_during_io()
    i = at(records, "ntoskrnl.exe", "io_freeze")
    records[i], records[i + 1] = records[i + 1], records[i]
    assert rules_broken(renumber(records)) == ["order", "freeze"]


def test_a_freeze_that_miscounts_the_lost_requests_breaks_freeze() -> None:
    """An io_freeze whose lost count is not issued − completed breaks freeze."""
    records = crash_during_io()
    records[at(records, "ntoskrnl.exe", "io_freeze")]["detail"]["lost"] += 1
    assert rules_broken(records) == ["freeze"]


def test_a_freeze_that_puts_a_lost_request_in_another_layer_breaks_freeze() -> None:
    """An io_freeze that says a request was lost in fvevol.sys, where the trace has none, breaks freeze."""
    records = crash_during_io()
    records[at(records, "ntoskrnl.exe", "io_freeze")]["detail"]["by_layer"] = {"fvevol.sys": 1, "storport.sys": 1, "device": 2}
    assert rules_broken(records) == ["freeze"]


def test_a_reset_that_drops_fewer_commands_than_the_device_held_breaks_reset() -> None:
    """A port_init that drops one command where the freeze lost two at the device breaks reset."""
    records = crash_during_io()
    records[at(records, "miniport", "port_init")]["detail"] = {"dropped": 1, "requests": [3]}
    assert rules_broken(records) == ["reset"]


def test_a_reset_that_names_no_dropped_commands_breaks_reset() -> None:
    """A port_init after a crash during I/O without its detail breaks reset."""
    records = crash_during_io()
    records[at(records, "miniport", "port_init")]["detail"] = None
    assert rules_broken(records) == ["reset"]


def test_a_reset_that_drops_a_completed_request_breaks_reset() -> None:
    """A port_init that drops request 2, which completed before the bugcheck, breaks reset."""
    records = crash_during_io()
    records[at(records, "miniport", "port_init")]["detail"] = {"dropped": 2, "requests": [2, 3]}
    assert rules_broken(records) == ["reset"]


def test_a_first_dump_write_before_the_reset_ended_breaks_timing_and_reset() -> None:
    """A reset that lasts past the first device write's start breaks timing (serial path) and reset."""
    records = crash_during_io()
    records[at(records, "miniport", "port_init")]["dur_ns"] += 100_000
    assert rules_broken(records) == ["timing", "reset"]


def test_a_port_init_detail_in_a_plain_crash_is_a_format_violation() -> None:
    """A port_init that names dropped commands in a crash without a normal stack is a format violation."""
    records = good()
    records[at(records, "miniport", "port_init")]["detail"] = {"dropped": 0, "requests": []}
    assert rules_broken(records) == ["format"]


def test_a_request_that_skips_a_layer_breaks_io_path() -> None:
    """Deleting request 1's ntfs.sys dispatch (it skips a layer) breaks io_path, and freeze (it no longer completes)."""
    records = crash_during_io()
    del records[at(records, "ntfs.sys", "io_submit", 1)]
    assert rules_broken(renumber(records)) == ["io_path", "freeze"]


def test_a_gap_in_a_request_s_path_breaks_io_path() -> None:
    """A completion routine that starts 1 ns after the one below it ended breaks io_path."""
    records = crash_during_io()
    records[at(records, "disk.sys", "io_complete", 1)]["t_ns"] += 1
    assert rules_broken(records) == ["io_path"]


def test_a_request_issued_before_a_completion_freed_its_slot_breaks_io_path_and_io_queues() -> None:
    """Request 5 starting 1 ns early (its dispatch 1 ns longer) breaks io_path, the window (io_queues) and io_costs."""
    records = crash_during_io()
    i = at(records, "application", "io_submit", 5)
    records[i]["t_ns"] -= 1
    records[i]["dur_ns"] += 1
    assert rules_broken(records) == ["io_path", "io_queues", "io_costs"]


def test_a_request_that_never_completes_in_an_io_run_breaks_io_path() -> None:
    """An io trace whose last request has no final completion breaks io_path: an io run completes every request."""
    assert rules_broken(io_only()[:-1]) == ["io_path"]


def test_records_at_one_instant_out_of_stage_order_break_order() -> None:
    """ntfs.sys's dispatch of request 1 before the application's of request 2, both at 1 µs (ties go by stage), breaks order."""
    records = crash_during_io()
    i = at(records, "application", "io_submit", 2)
    assert records[i + 1]["layer"] == "ntfs.sys"
    records[i], records[i + 1] = records[i + 1], records[i]
    assert rules_broken(renumber(records)) == ["order"]


def test_more_commands_at_the_device_than_storport_s_depth_break_io_queues() -> None:
    """An io_context whose storport queue depth is 1, where the trace has 2 commands at the device, breaks io_queues."""
    records = crash_during_io()
    records[0]["detail"]["storport_queue_depth"] = 1
    assert rules_broken(records) == ["io_queues"]


def test_more_commands_in_service_than_the_device_s_parallelism_break_io_queues() -> None:
    """An io_context whose device serves 1 command at a time, where the trace has 2 in service, breaks io_queues."""
    records = crash_during_io()
    records[0]["detail"]["device_parallelism"] = 1
    assert rules_broken(records) == ["io_queues"]


def test_a_layer_that_serves_two_requests_at_once_breaks_io_path_and_io_queues() -> None:
    """ntfs.sys's dispatch of request 1 lasting past the start of request 2's breaks io_queues (and request 1's path and cost)."""
    records = crash_during_io()
    records[at(records, "ntfs.sys", "io_submit", 1)]["dur_ns"] += 300
    assert rules_broken(records) == ["io_path", "io_queues", "io_costs"]


def test_a_dump_record_in_an_io_trace_breaks_normal_stack() -> None:
    """A bugcheck record in the trace of an io run, which writes no dump, breaks normal_stack."""
    records = io_only()
    last = records[-1]
    bugcheck = {**last, "t_ns": last["t_ns"] + last["dur_ns"], "layer": "crashdmp", "event": "bugcheck"}
    bugcheck |= {"dur_ns": 0, "request": None, "offset": None, "length": None, "dump_type": "crashdump"}
    assert rules_broken(renumber([*records, bugcheck])) == ["normal_stack"]


def test_normal_stack_records_without_their_io_context_break_normal_stack() -> None:
    """An io trace without its io_context breaks normal_stack (and structure: without it, the trace is a dump's, cut short)."""
    assert rules_broken(without(io_only(), "io_context")) == ["structure", "normal_stack"]


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"dump_type": "crashdump"}, "a dump_type on a normal-stack record"),
        ({"detail": None}, "an io_device without its op"),
        ({"detail": {"op": "flush"}}, "an io_device with an op other than read or write"),
    ],
)
def test_a_malformed_normal_stack_record_is_a_format_violation(change: dict[str, Any], why: str) -> None:
    """A normal-stack record of the wrong shape (the case's why) is a format violation."""
    records = io_only()
    records[at(records, "device", "io_device")].update(change)
    assert rules_broken(records) == ["format"], why


def allowed_io_context(key: str) -> str | None:
    """Why an edit of the CRASH_DURING_IO trace's dump_context leaves a valid trace, or None."""
    if key == "max_pages_per_write":
        return "no write of this two-write dump is full size: MaxPagesPerWrite ± 1 shows nowhere"
    if key == "runs[0][1]":
        return "the page file ends far past the dump: it may be 512 bytes longer"
    return allowed_in_context(records=[], key=key, value=None) if key in ("watchdog_ns", "port_timeout_ns", "disk_size") else None


@pytest.mark.timeout(60)
def test_every_small_tampering_of_a_crash_during_io_trace_is_caught() -> None:
    """Each deletion, duplication, swap and small edit of a real crash-during-io trace breaks a rule, bar allowed_io_context.

    No edit of a normal-stack record is allowed: even the length of a lost request's last step, which nothing after it
    shows, is held to that step's cost in the io_context's service_ns.
    """
    records = crash_during_io()
    missed = []
    for what, _, recs in tamperings(records):
        if check_records(recs):
            continue
        if what.startswith("dump_context "):
            key = what.split()[1]
            if allowed_io_context(key) is not None:
                continue
        else:
            line = int(what.split("line ")[1].split()[0]) if "line " in what else 0
            field = what.split(" = ")[0]
            value = recs[line - 1][field] if line and field in FIELDS else None
            if line and allowed(records, line - 1, field, value):
                continue
        missed.append(what)
    assert missed == []
