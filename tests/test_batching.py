"""
Batched mode: one message standing for a run of identical writes gives exactly the results of
request mode, on hand-picked and on random scenarios (hypothesis).
"""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
from conftest import make_scenario, without_mode
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stacksim import DumpFilter, DumpRequest, FilterCatalog, FilterExtension, simulate, spend


def both(catalog: FilterCatalog | None = None, **sections: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    catalog = catalog or FilterCatalog()
    s = make_scenario(catalog, **sections)
    batched = simulate(s, catalog).as_dict()
    single = simulate(s, catalog, batch=False).as_dict()
    return batched, single


def test_complete_dump_through_three_filters_is_identical_and_batched() -> None:
    """A complete dump through three cost-declaring filters: same result, a handful of messages."""
    batched, single = both(
        registry={"CrashDumpEnabled": 1, "DumpFilters": ["dumpfve.sys", "delayflt.sys", "faultflt.sys"]},
        memory={"ram": "256 MiB"},
        filters={
            "delayflt.sys": {"per_call": "3 us", "per_byte": "0.01 ns"},
            "faultflt.sys": {"action": "slow", "extra": "7 us"},
        },
    )
    assert without_mode(batched) == without_mode(single)
    assert single["batched_messages"] == 0
    # The 4096 body writes: writes 0, 1, 3, 7, ..., 2047 and 4095 of the run are really called
    # (probe_positions); each of the 10 gaps of two or more writes between them is one message.
    assert batched["batched_messages"] == 10
    assert batched["write_requests"] == 1 + 1 + 4096  # header, bitmap (3 pages), body


def test_a_fault_at_one_request_splits_the_run() -> None:
    """A filter's special request is called for real inside an otherwise batched run."""
    batched, single = both(
        registry={"CrashDumpEnabled": 1, "DumpFilters": ["faultflt.sys"]},
        memory={"ram": "64 MiB"},
        filters={"faultflt.sys": {"action": "fail", "at_request": 500}},
    )
    assert without_mode(batched) == without_mode(single)
    assert batched["filters"][0]["errors"] == {"dump_write": 1}
    # Body writes 3..499 and 501..1026 (after the header and the bitmap) are two sampled runs:
    # 7 and 8 messages between their samples.
    assert batched["batched_messages"] == 7 + 8


def test_a_fatal_fault_mid_run_stops_at_the_same_request() -> None:
    """A violation at request k stops both modes after exactly k - 1 writes."""
    batched, single = both(
        registry={"CrashDumpEnabled": 1, "DumpFilters": ["faultflt.sys"]},
        memory={"ram": "64 MiB"},
        filters={"faultflt.sys": {"action": "change_length", "at_request": 300}},
    )
    assert without_mode(batched) == without_mode(single)
    assert batched["status"] == "filter_violation"
    assert batched["write_requests"] == 299


def test_filter_without_cost_model_gets_request_mode() -> None:
    """A user filter that declares no cost model is called for every write."""
    calls = []

    class Plain(DumpFilter):
        service_name: ClassVar[str] = "plain.sys"

        async def dump_write(self, extension: FilterExtension, request: DumpRequest) -> int:
            calls.append(request.number)
            spend(100)
            return 0

    catalog = FilterCatalog()
    catalog.add(Plain, "test")
    batched, single = both(catalog, registry={"CrashDumpEnabled": 1, "DumpFilters": ["plain.sys"]}, memory={"ram": "1 MiB"})
    assert without_mode(batched) == without_mode(single)
    assert calls == list(range(1, 1 + 1 + 16 + 1)) * 2  # header, bitmap, 16 body writes; in both modes
    assert batched["batched_messages"] == 0
    assert batched["request_mode_reasons"] == [
        "plain.sys declares no write_cost, so its dump_write is called for every write "
        "(declare one to batch: docs/how-to/write-a-filter.md)"
    ]
    assert single["request_mode_reasons"] == ["request mode was asked for (--no-batch)"]


def test_a_fully_batched_run_gives_no_reasons() -> None:
    """When every run of identical writes was batched, there is nothing to explain."""
    batched, _ = both(registry={"CrashDumpEnabled": 1, "DumpFilters": ["dumpfve.sys"]}, memory={"ram": "4 MiB"})
    assert batched["batched_messages"] == 4  # the gaps between sampled writes 0, 1, 3, 7, 15, 31, 63 of 64
    assert batched["request_mode_reasons"] == []


def test_a_fault_on_every_write_is_named_as_the_reason() -> None:
    """An injected fault that hits every dump_write makes that filter unbatchable, and says so."""
    batched, single = both(
        registry={"CrashDumpEnabled": 1, "DumpFilters": ["delayflt.sys"]},
        memory={"ram": "1 MiB"},
        faults=[{"kind": "filter_error_status", "filter": "delayflt.sys"}],
    )
    assert without_mode(batched) == without_mode(single)
    assert batched["request_mode_reasons"] == ["an injected fault hits every dump_write of delayflt.sys"]


def test_a_trace_is_a_reason_when_it_kept_a_batchable_run_in_request_mode() -> None:
    """A traced run whose runs of identical writes would have batched names the trace as the reason."""
    from stacksim import ListTrace

    catalog = FilterCatalog()
    s = make_scenario(catalog, registry={"CrashDumpEnabled": 1}, memory={"ram": "1 MiB"})
    assert simulate(s, catalog).batched_messages == 2  # untraced: two runs of the body's 16 writes, between the sampled ones
    result = simulate(s, catalog, trace=ListTrace())
    assert (result.batched_messages, result.write_requests) == (0, 18)
    assert result.request_mode_reasons == ("a trace was asked for (it has one record per request)",)


def test_a_power_loss_is_the_reason_and_the_trace_is_not_named() -> None:
    """A planned power loss keeps the run in request mode with or without a trace: only the power loss is named."""
    from stacksim import ListTrace

    catalog = FilterCatalog()
    s = make_scenario(catalog, memory={"ram": "1 MiB"}, faults=[{"kind": "power_loss", "at": "1 s"}])
    result = simulate(s, catalog, trace=ListTrace())
    assert result.request_mode_reasons == ("a power_loss fault is planned (the instant power fails decides which write is torn)",)


def test_a_trace_is_not_named_where_a_filter_kept_the_run_in_request_mode() -> None:
    """A filter without write_cost already keeps every run one message per write: the reasons name it, not the trace."""
    from stacksim import ListTrace

    class Plain(DumpFilter):
        service_name: ClassVar[str] = "plain.sys"

        async def dump_write(self, extension: FilterExtension, request: DumpRequest) -> int:
            return 0

    catalog = FilterCatalog()
    catalog.add(Plain, "test")
    s = make_scenario(catalog, registry={"CrashDumpEnabled": 1, "DumpFilters": ["plain.sys"]}, memory={"ram": "1 MiB"})
    traced, plain = simulate(s, catalog, trace=ListTrace()), simulate(s, catalog)
    assert traced.request_mode_reasons == plain.request_mode_reasons
    assert traced.request_mode_reasons[0].startswith("plain.sys declares no write_cost")


class Liar(DumpFilter):
    """Declares 1 us per write; the class attributes say how its real dump_write breaks that (from write ``after`` on)."""

    service_name: ClassVar[str] = "liar.sys"
    spends: ClassVar[int] = 1_000
    status: ClassVar[int] = 0
    moves: ClassVar[int] = 0
    after: ClassVar[int] = 0

    def write_cost(self, extension: FilterExtension, length: int) -> int:
        return 1_000

    async def dump_write(self, extension: FilterExtension, request: DumpRequest) -> int:
        if request.number <= self.after:
            spend(1_000)
            return 0
        spend(self.spends)
        request.offset += self.moves
        return self.status


def liar(**behaviour: int) -> FilterCatalog:
    catalog = FilterCatalog()
    catalog.add(type("L", (Liar,), behaviour), "test")
    return catalog


@pytest.mark.parametrize(
    ("behaviour", "broke"),
    [
        ({"spends": 2_000}, "took 2 µs (2000 ns)"),
        ({"status": 0xC0000001}, "returned STATUS_UNSUCCESSFUL"),
        ({"moves": 4096}, "moved its offset"),
    ],
)
def test_a_filter_that_breaks_its_declaration_falls_back_to_request_mode(behaviour: dict[str, int], broke: str) -> None:
    """A filter whose dump_write disagrees with write_cost is caught at the first body write (#3): request mode's result."""
    batched, single = both(
        liar(**behaviour), registry={"CrashDumpEnabled": 1, "DumpFilters": ["liar.sys"]}, memory={"ram": "4 MiB"}
    )
    assert without_mode(batched) == without_mode(single)
    assert batched["batched_messages"] == 0
    assert batched["request_mode_reasons"] == [
        f"liar.sys declares write_cost = 1000 ns for 65536-byte writes, but its dump_write on request #3 {broke}; "
        "its dump_write is called for every later write"
    ]


def test_a_filter_that_changes_later_is_caught_by_a_later_sample() -> None:
    """A filter that keeps its declaration for 100 writes and then doubles its cost is caught at sample 128 (write 3 + 127)."""
    batched, _ = both(
        liar(spends=2_000, after=100), registry={"CrashDumpEnabled": 1, "DumpFilters": ["liar.sys"]}, memory={"ram": "16 MiB"}
    )
    assert batched["request_mode_reasons"] == [
        "liar.sys declares write_cost = 1000 ns for 65536-byte writes, but its dump_write on request #130 took 2 µs "
        "(2000 ns); its dump_write is called for every later write"
    ]


def test_sampled_positions_are_the_first_powers_of_two_minus_one_and_the_last() -> None:
    """A run of n batched writes really calls writes 0, 1, 3, 7, ... below n, and n - 1."""
    from stacksim.dump_driver import probe_positions

    assert probe_positions(1) == [0]
    assert probe_positions(2) == [0, 1]
    assert probe_positions(8) == [0, 1, 3, 7]
    assert probe_positions(9) == [0, 1, 3, 7, 8]
    assert probe_positions(4096) == [0, 1, 3, 7, 15, 31, 63, 127, 255, 511, 1023, 2047, 4095]


FILTER_TABLES = {
    "dumpfve.sys": st.fixed_dictionaries(
        {"per_call": st.integers(0, 5000), "per_byte": st.sampled_from(["0 ns", "0.3 ns", "1.25 ns"])}
    ),
    "delayflt.sys": st.fixed_dictionaries({"per_call": st.integers(0, 5000), "start": st.integers(0, 10**6)}),
    "faultflt.sys": st.fixed_dictionaries(
        {
            "action": st.sampled_from(["none", "slow", "fail", "change_offset", "change_length", "raise", "write_caller_buffer"]),
            "at_request": st.integers(1, 40),
            "extra": st.integers(0, 10**5),
        }
    ),
}


def faults(filters: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    device = st.fixed_dictionaries(
        {
            "kind": st.sampled_from(["device_error", "device_timeout"]),
            "at_request": st.integers(1, 60),
            "persistent": st.booleans(),
        }
    )
    if not filters:
        return device
    on_filter = st.fixed_dictionaries(
        {
            "kind": st.sampled_from(["filter_error_status", "filter_raise"]),
            "filter": st.sampled_from(filters),
            "at_request": st.integers(1, 60),
        }
    )
    slow = st.fixed_dictionaries(
        {"kind": st.just("slow_filter"), "filter": st.sampled_from(filters), "extra": st.integers(0, 10**5)}
    )
    return st.one_of(device, on_filter, slow)


fixed_disk = st.fixed_dictionaries(
    {
        "latency": st.integers(0, 10**5),
        "bandwidth": st.integers(10**6, 10**10),
        "flush": st.integers(0, 10**6),
    }
)
zoned_hdd = st.fixed_dictionaries(
    {
        "model": st.just("hdd"),
        "size": st.just("2 GiB"),  # zones of 2 to 21 MB, so a dump's runs cross zone boundaries
        "zones": st.integers(100, 1000),
        "cache": st.sampled_from([0, 65536, 2**20]),
        "inner_media_bandwidth": st.integers(10**7, 10**8),
    }
)
"""A fixed-latency disk, or an HDD whose zones are small enough for batched runs to cross them."""


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, Any]:
    filters = draw(st.lists(st.sampled_from(sorted(FILTER_TABLES)), unique=True, max_size=3))
    hibernate = draw(st.booleans())
    return {
        "scenario": {"name": "h", "event": "hibernate", "hibernate_at": "1 ms", "bugcheck_at": None}
        if hibernate
        else {"name": "c", "event": "crash", "bugcheck_at": draw(st.integers(0, 10**7))},
        "registry": {
            "DumpFilters": filters,
            "CrashDumpEnabled": draw(st.sampled_from([1, 2, 3, 7])),
            "FilterPages": draw(st.sampled_from([0, 1])),
        },
        "memory": {
            "ram": draw(st.integers(1, 3000)) * 4096,
            "secondary_data": draw(st.sampled_from([0, 4096, 100_000])),
        },
        "filters": {name: draw(FILTER_TABLES[name]) for name in filters},
        "dump_port": {
            "max_transfer": draw(st.integers(1, 64)) * 4096,
            "per_request_overhead": draw(st.integers(0, 20_000)),
            "reset": draw(st.integers(0, 10**6)),
        },
        "dump_driver": {"per_request": draw(st.integers(0, 3000)), "write_retries": draw(st.integers(0, 2))},
        "faults": draw(st.lists(faults(filters), max_size=2)),
        "disk": draw(st.one_of(fixed_disk, zoned_hdd)),
        # Often short enough that a filter call (or its slow fault) reaches it: hung must agree too.
        "engine": {"watchdog": draw(st.sampled_from([60 * 10**9, 10**6, 20_000, 5_000, 1_000]))},
    }


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_random_scenarios_give_identical_results(sections: dict[str, Any]) -> None:
    """On random valid scenarios, batched and request mode agree on every result field."""
    batched, single = both(**sections)
    assert without_mode(batched) == without_mode(single)


def _device(name: str, cache: int | None, zones: int | None) -> Any:
    from stacksim.devices import DEVICE_PRESETS, build_device

    preset = DEVICE_PRESETS[name]
    params = dict(preset.params)
    if cache is not None and "cache" in params:
        params["cache"] = cache
    if zones is not None and preset.model == "hdd":
        params["zones"] = zones
    return build_device(preset.model, params, preset.size, preset.kind)


def _preset_names() -> list[str]:
    from stacksim.devices import DEVICE_PRESETS

    return sorted(DEVICE_PRESETS)


@settings(max_examples=300, deadline=None)
@given(
    name=st.sampled_from(_preset_names()),
    cache=st.one_of(st.none(), st.sampled_from([0, 65536, 2**20, 5 * 2**20, 64 * 2**20])),
    zones=st.one_of(st.none(), st.sampled_from([1000, 100_000])),
    length=st.sampled_from([512, 4096, 65536, 2**20, 12345 * 512]),
    count=st.integers(1, 3000),
    gap=st.sampled_from([0, 1, 1000, 10**5, 10**7]),
    before=st.integers(0, 40),
    pause=st.sampled_from([0, 1000, 10**6]),
    where=st.floats(0, 1),
)
def test_a_device_run_equals_its_writes_one_by_one(
    name: str, cache: int | None, zones: int | None, length: int, count: int, gap: int, before: int, pause: int, where: float
) -> None:
    """On every preset, write_run_ns (closed forms: fills, drains, saturation, zones) equals write_ns write by write."""
    run, each = _device(name, cache, zones), _device(name, cache, zones)
    offset = int(where * (run.size - (count + before) * length)) // 512 * 512
    t = 0
    for i in range(before):  # a cache part filled by earlier writes, elsewhere on the disk
        dur = run.write_ns(offset + i * length, length, t)
        assert each.write_ns(offset + i * length, length, t) == dur
        t += dur + gap
    t += pause
    start = offset + before * length + 512 * (pause > 0)  # after a pause, not contiguous: a seek on an HDD
    segments = run.write_run_ns(start, length, count, t, gap)
    stepped: dict[int, int] = {}
    for i in range(count):
        dur = each.write_ns(start + i * length, length, t)
        stepped[dur] = stepped.get(dur, 0) + 1
        t += dur + gap
    assert segments == list(stepped.items())
    assert run.save_state() == each.save_state()


def test_a_cache_that_fills_inside_a_run_is_counted_in_closed_form() -> None:
    """nvme-pcie3 with a 1 MiB cache: 64 KiB writes fill it within the run, then wait for the media; exact, in O(1) calls."""
    run, each = _device("nvme-pcie3", 2**20, None), _device("nvme-pcie3", 2**20, None)
    run_calls = 0
    run_step = run.write_ns

    def run_counted(*args: int) -> int:
        nonlocal run_calls
        run_calls += 1
        return run_step(*args)

    run.write_ns = run_counted  # (the steps write_run_ns takes inside the run, counted)
    segments = run.write_run_ns(0, 65536, 100_000, 0, 500)
    stepped: dict[int, int] = {}
    t = 0
    for i in range(100_000):
        dur = each.write_ns(i * 65536, 65536, t)
        stepped[dur] = stepped.get(dur, 0) + 1
        t += dur + 500
    assert segments == list(stepped.items())
    assert len(segments) > 1  # interface speed, then the transition, then media speed
    assert run_calls <= 4  # the writes between the regimes only


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(_preset_names()),
    cache=st.sampled_from([None, 0, 2**20, 8 * 2**20]),
    runs=st.integers(1, 400),
    ram=st.integers(64, 4096),
    filters=st.lists(st.sampled_from(["dumpfve.sys", "delayflt.sys"]), unique=True, max_size=2),
    per_byte=st.sampled_from(["0 ns", "0.3 ns"]),
    max_transfer=st.sampled_from([65536, 24576, 131072]),
)
def test_a_fragmented_file_on_every_preset_gives_request_modes_result(
    name: str, cache: int | None, runs: int, ram: int, filters: list[str], per_byte: str, max_transfer: int
) -> None:
    """A complete dump into a file of many disk runs (runs of several write lengths), on every preset: identical results."""
    from stacksim.devices import DEVICE_PRESETS

    disk: dict[str, Any] = {"preset": name}
    if cache is not None and "cache" in DEVICE_PRESETS[name].params:
        disk["cache"] = cache
    if DEVICE_PRESETS[name].model == "hdd":
        disk |= {"size": "2 GiB", "zones": 500}  # zones of 4 MB: the runs cross them
    batched, single = both(
        registry={"CrashDumpEnabled": 1, "DumpFilters": filters},
        memory={"ram": ram * 4096},
        filters={"dumpfve.sys": {"per_byte": per_byte}} if "dumpfve.sys" in filters else {},
        dump_port={"max_transfer": max_transfer},
        disk=disk,
        layout={"runs": runs},
    )
    assert without_mode(batched) == without_mode(single)


def test_a_file_of_many_runs_is_a_few_messages() -> None:
    """A file in 2,000 disk runs: the body is one sampled run across them, not one per disk run."""
    batched, single = both(
        registry={"CrashDumpEnabled": 1, "DumpFilters": ["dumpfve.sys"]},
        memory={"ram": "64 MiB"},
        disk={"preset": "hdd-7200"},
        layout={"runs": 2000},
    )
    assert without_mode(batched) == without_mode(single)
    assert batched["batched_messages"] < 40
