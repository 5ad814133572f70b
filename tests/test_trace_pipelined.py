"""
Traced runs in pipelined request mode: the trace is the bytes of the trace one write at a time.

A trace no longer forces one write at a time: each write's records are held while it is in
flight and written when it completes, in the order one write at a time writes them
(:meth:`stacksim._engine.Engine.release`). These tests compare the two modes byte for byte over
the shipped scenarios and over runs whose pipelined attempt is abandoned (its records are not
written twice) or that never pipeline (faults, retries, a power loss).
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any, ClassVar

import pytest
import trio
from conftest import make_scenario
from hypothesis import given, settings
from hypothesis import strategies as st

from stacksim import DumpFilter, DumpRequest, FilterCatalog, FilterExtension, JsonlTrace, ListTrace, NtStatus, now_ns, spend
from stacksim._engine import Engine, current_engine
from stacksim.check import check_records
from stacksim.scenario import Scenario, read_scenario_data, validate_scenario
from stacksim.simulate import simulate
from stacksim.trace import FIELDS

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"
SHIPPED = sorted(p.name for p in SCENARIOS.glob("*.toml"))


def shipped(name: str, catalog: FilterCatalog) -> Scenario:
    """A shipped scenario, with less RAM (256 MiB) or fewer workload requests (2,000) so it runs in about a second."""
    data = read_scenario_data(SCENARIOS / name)
    if "ram" in data.get("memory", {}):
        data["memory"]["ram"] = "256 MiB"
    if "requests" in data.get("workload", {}):
        data["workload"]["requests"] = 2_000
    return validate_scenario(data, name, catalog)


def jsonl(s: Scenario, catalog: FilterCatalog, **kw: Any) -> tuple[str, dict[str, Any]]:
    """The run's JSON-lines trace and its result as a dict."""
    out = io.StringIO()
    result = simulate(s, catalog, trace=JsonlTrace(out), **kw)
    return out.getvalue(), result.as_dict()


def both(s: Scenario, catalog: FilterCatalog, **kw: Any) -> tuple[str, str]:
    """The trace pipelined (the default) and one write at a time, after asserting the results agree."""
    (pipelined, a), (strict, b) = jsonl(s, catalog, **kw), jsonl(s, catalog, pipeline=False, **kw)
    assert a == b
    return pipelined, strict


@pytest.mark.parametrize("name", SHIPPED)
def test_a_shipped_scenario_traces_the_same_bytes_pipelined(name: str) -> None:
    """Every shipped scenario's trace, pipelined, is byte for byte its trace one write at a time."""
    catalog = FilterCatalog()
    pipelined, strict = both(shipped(name, catalog), catalog)
    assert pipelined == strict
    assert pipelined.count("\n") > 3


def test_a_pipelined_trace_passes_the_checker() -> None:
    """The checker finds nothing wrong in a pipelined trace of the BitLocker crash."""
    catalog = FilterCatalog()
    pipelined, _ = both(shipped("crash-nvme-bitlocker.toml", catalog), catalog)
    assert check_records(json.loads(line) for line in pipelined.splitlines()) == []


class InFlight(DumpFilter):
    """Notes, at each dump_write, whether the engine had several writes in flight (pipelined request mode)."""

    service_name: ClassVar[str] = "inflight.sys"
    seen: ClassVar[list[bool]] = []

    async def dump_write(self, extension: FilterExtension, request: DumpRequest) -> int:
        engine = current_engine()
        assert engine is not None
        InFlight.seen.append(engine.pipelined)
        spend(1_000)
        return NtStatus.SUCCESS


def test_a_traced_run_keeps_several_writes_in_flight() -> None:
    """A trace no longer forces one write at a time: the body's writes are served pipelined."""
    catalog = FilterCatalog()
    catalog.add(InFlight, "test")
    s = make_scenario(catalog, registry={"CrashDumpEnabled": 1, "DumpFilters": ["inflight.sys"]}, memory={"ram": "1 MiB"})
    InFlight.seen.clear()
    simulate(s, catalog, trace=ListTrace())
    assert InFlight.seen == [False, False] + [True] * 16  # the header and the bitmap are runs of one write


class LateAwait(DumpFilter):
    """Awaits inside trio at request 40: the pipelined attempt is abandoned there and the run repeated."""

    service_name: ClassVar[str] = "lateawait.sys"

    async def dump_write(self, extension: FilterExtension, request: DumpRequest) -> int:
        spend(500 + 7 * (request.number % 3))
        if request.number == 40:
            await trio.sleep(0.000_010)  # 10 us of virtual time
        return NtStatus.SUCCESS


class LateClock(DumpFilter):
    """Reads the simulated time at request 300, which pipelined mode does not know yet."""

    service_name: ClassVar[str] = "lateclock.sys"

    async def dump_write(self, extension: FilterExtension, request: DumpRequest) -> int:
        if request.number == 300:
            spend(now_ns() % 1_000)
        return NtStatus.SUCCESS


def catalog_with(*filters: type[DumpFilter]) -> FilterCatalog:
    """The built-ins plus *filters*."""
    catalog = FilterCatalog()
    for f in filters:
        catalog.add(f, "test")
    return catalog


ABANDONED = {
    "a callback that awaits": (catalog_with(LateAwait), ["lateawait.sys", "dumpfve.sys"]),
    "a callback that reads the clock": (catalog_with(LateClock), ["dumpfve.sys", "lateclock.sys"]),
}


@pytest.mark.parametrize("case", sorted(ABANDONED))
def test_the_trace_of_an_abandoned_attempt_is_written_once(case: str) -> None:
    """The rerun one write at a time skips the records the abandoned attempt wrote: the trace is that of one write at a time."""
    catalog, filters = ABANDONED[case]
    s = make_scenario(catalog, registry={"CrashDumpEnabled": 1, "DumpFilters": filters}, memory={"ram": "4 MiB"})
    pipelined, strict = both(s, catalog)
    assert pipelined == strict
    seqs = [json.loads(line)["seq"] for line in pipelined.splitlines()]
    assert seqs == list(range(1, len(seqs) + 1))


def test_an_abandoned_attempt_wrote_its_completed_writes_before_the_rerun() -> None:
    """The sink sees every record once, in order, although the attempt that wrote the first ones was abandoned."""
    catalog, filters = ABANDONED["a callback that awaits"]
    s = make_scenario(catalog, registry={"CrashDumpEnabled": 1, "DumpFilters": filters}, memory={"ram": "4 MiB"})
    traced, strict = ListTrace(), ListTrace()
    assert simulate(s, catalog, trace=traced).status == simulate(s, catalog, trace=strict, pipeline=False).status == "ok"
    assert traced.records == strict.records
    assert [r["request"] for r in traced.records if r["event"] == "dump_write" and r["layer"] == "lateawait.sys"] == list(
        range(1, 1 + 1 + 64 + 1)
    )


FAULTS: dict[str, dict[str, Any]] = {
    "a filter that raises": {
        "registry": {"CrashDumpEnabled": 1, "DumpFilters": ["faultflt.sys"]},
        "filters": {"faultflt.sys": {"action": "raise", "at_request": 30}},
    },
    "a filter that fails a write": {
        "registry": {"CrashDumpEnabled": 1, "DumpFilters": ["faultflt.sys"]},
        "filters": {"faultflt.sys": {"action": "fail", "at_request": 30}},
    },
    "a filter that moves a write": {
        "registry": {"CrashDumpEnabled": 1, "DumpFilters": ["faultflt.sys", "dumpfve.sys"]},
        "filters": {"faultflt.sys": {"action": "change_offset", "at_request": 30, "offset_delta": 4096}},
    },
    "a filter that hangs": {
        "registry": {"CrashDumpEnabled": 1, "DumpFilters": ["faultflt.sys"]},
        "filters": {"faultflt.sys": {"action": "hang", "at_request": 30}},
    },
    "a device error, retried": {
        "registry": {"CrashDumpEnabled": 1},
        "dump_driver": {"write_retries": 2},
        "faults": [{"kind": "device_error", "at_request": 30}],
    },
    "a device error, given up": {
        "registry": {"CrashDumpEnabled": 1},
        "faults": [{"kind": "device_error", "at_request": 30, "persistent": True}],
    },
    "a device timeout": {"registry": {"CrashDumpEnabled": 1}, "faults": [{"kind": "device_timeout", "at_request": 30}]},
    "a power loss": {"registry": {"CrashDumpEnabled": 1}, "faults": [{"kind": "power_loss", "at": "1 ms"}]},
}


@pytest.mark.parametrize("case", sorted(FAULTS))
def test_a_faulty_run_traces_the_same_bytes_pipelined(case: str) -> None:
    """Faults, retries and a power loss (which run one write at a time, or abandon the pipelined attempt) trace the same bytes."""
    catalog = FilterCatalog()
    s = make_scenario(catalog, memory={"ram": "4 MiB"}, **FAULTS[case])
    pipelined, strict = both(s, catalog)
    assert pipelined == strict
    assert check_records(json.loads(line) for line in pipelined.splitlines()) == []


def test_the_same_scenario_and_seed_give_the_same_trace_bytes() -> None:
    """Two pipelined traced runs of a scenario with a seeded workload write identical bytes."""
    catalog = FilterCatalog()
    s = shipped("crash-during-io.toml", catalog)
    first, _ = jsonl(s, catalog)
    second, _ = jsonl(s, catalog)
    assert first == second


def test_held_records_are_numbered_when_released_and_start_where_the_one_before_ended() -> None:
    """A held record with t_ns -1 starts at the release's start, or where the record before it ended."""
    engine = Engine()
    out = ListTrace()
    engine.trace = out
    engine.emit(0, "crashdmp", "bugcheck", 0)
    engine.hold_records()
    engine.emit(-1, "crashdmp", "issue_write", 100, 2)
    engine.emit(-1, "f.sys", "dump_write", 50, 2)
    engine.emit(-1, "crashdmp", "issue_write", 100, 3)  # the next write, before the first completed
    engine.emit(1_000, "crashdmp", "write_complete", 0, 2)
    engine.release(2, 500)
    engine.end_hold()  # write 3 never completed: its record is dropped
    assert out.timeline("t_ns", "seq", "event", "request") == [
        (0, 1, "bugcheck", None),
        (500, 2, "issue_write", 2),
        (600, 3, "dump_write", 2),
        (1_000, 4, "write_complete", 2),
    ]


_text = st.text(st.characters(codec="utf-8") | st.sampled_from('\x00\x1f\x7f\x9b\u202e\u2028\ud800µ"\\'), max_size=8)
_ints = st.integers(-(2**70), 2**70)
_values = st.none() | st.booleans() | _ints | _text | st.floats() | st.lists(_ints, max_size=3)
_REQUEST_FIELDS = (st.none() | _ints, st.none() | _ints, st.none() | _ints, st.none() | _text, st.none() | _text)
"""request, offset, length, dump_type, status: each may be null."""
_details = st.none() | st.dictionaries(_text, _values, max_size=3) | st.dictionaries(st.integers(0, 3), _ints, max_size=2)


@settings(max_examples=300, deadline=None)
@given(
    st.tuples(_ints, _ints, _text, _text, _ints, *_REQUEST_FIELDS),
    _details,
)
def test_orjson_writes_the_standard_librarys_bytes(values: tuple[Any, ...], detail: dict[Any, Any] | None) -> None:
    """Whatever the values (floats, huge integers, lone surrogates, controls, bidi), a line is what json and json_safe write."""
    from stacksim._io import json_safe

    out = io.StringIO()
    JsonlTrace(out).emit(*values, detail)
    expected = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode(
        dict(zip(FIELDS, (*values, detail), strict=True))
    )
    assert out.getvalue() == json_safe(expected) + "\n"


_held = st.tuples(st.just(-1) | st.integers(0, 2**70), _text, _text, st.integers(0, 2**70), *_REQUEST_FIELDS, _details)


@settings(max_examples=300, deadline=None)
@given(st.lists(_held, min_size=1, max_size=5), st.integers(0, 2**40), st.integers(0, 2**40))
def test_a_released_requests_records_are_what_json_writes_one_by_one(records: list[Any], start: int, seq: int) -> None:
    """emit_held (msgspec, all at once) writes each record as json and json_safe would, timed and numbered as release says."""
    from stacksim._io import json_safe

    out = io.StringIO()
    last = JsonlTrace(out).emit_held(records, start, seq)
    encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
    expected, t = [], start
    for t0, *rest in records:
        t0 = t if t0 < 0 else t0
        t = t0 + rest[2]
        seq += 1
        expected.append(json_safe(encode(dict(zip(FIELDS, (t0, seq, *rest), strict=True)))) + "\n")
    assert (out.getvalue(), last) == ("".join(expected), seq)
