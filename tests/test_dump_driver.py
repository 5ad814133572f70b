"""crashdmp: the order of a crash dump and its time, asserted exactly in virtual time."""

from __future__ import annotations

from conftest import run

from stacksim.units import transfer_ns

MS = 1_000_000
US = 1_000


def test_small_dump_timeline_without_filters() -> None:
    """Bugcheck → integrity check → port init → header, body (one outstanding each) → flush."""
    result, trace = run()
    header = 20 * US + transfer_ns(8192, 3 * 10**9)  # 22731
    body = 20 * US + transfer_ns(57344, 3 * 10**9)  # 39115
    t = 11 * MS
    assert trace.timeline("t_ns", "layer", "event", "dur_ns") == [
        (10 * MS, "crashdmp", "bugcheck", 0),
        (10 * MS, "crashdmp", "integrity_check", 0),
        (10 * MS, "crashdmp", "dump_context", 0),
        (10 * MS, "miniport", "port_init", 1 * MS),
        (t, "crashdmp", "issue_write", 0),
        (t, "miniport", "miniport_write", 5 * US),
        (t + 5 * US, "device", "device_write", header),
        (t + 5 * US + header, "crashdmp", "write_complete", 0),
        (t + 5 * US + header, "crashdmp", "issue_write", 0),
        (t + 5 * US + header, "miniport", "miniport_write", 5 * US),
        (t + 10 * US + header, "device", "device_write", body),
        (t + 10 * US + header + body, "crashdmp", "write_complete", 0),
        (t + 10 * US + header + body, "device", "flush", 200 * US),
        (t + 210 * US + header + body, "crashdmp", "dump_complete", 0),
    ]
    assert result.status == "ok"
    assert result.dump_time_ns == 1 * MS + 10 * US + header + body + 200 * US


def test_closed_form_without_filters() -> None:
    """Dump time = requests × (overhead + latency + ⌈bytes/bandwidth⌉) + reset + flush, to the ns."""
    result, _ = run(registry={"CrashDumpEnabled": 1}, memory={"ram": "64 MiB"})
    bitmap = 4096  # 56-byte summary header + 16,482 bits (PFNs up to 64 MiB + the 1 MiB hole) in one page
    requests = 1 + 1 + 64 * 2**20 // 65536  # header, bitmap, body
    expected = (
        1 * MS
        + 200 * US
        + (5 * US + 20 * US) * requests
        + transfer_ns(8192, 3 * 10**9)
        + transfer_ns(bitmap, 3 * 10**9)
        + 1024 * transfer_ns(65536, 3 * 10**9)
    )
    assert (result.write_requests, result.dump_time_ns) == (requests, expected)
    assert result.bytes_written == 8192 + bitmap + 64 * 2**20
    assert result.layers["device"].busy_ns + result.layers["miniport"].busy_ns == expected


def test_each_filter_adds_exactly_its_cost_per_request() -> None:
    """Two delay filters add per_call + ⌈length × per_byte⌉ to every write, and nothing else."""
    base, _ = run(registry={"CrashDumpEnabled": 1}, memory={"ram": "64 MiB"})
    from stacksim import FilterCatalog, ListTrace, simulate
    from stacksim.filters import DelayFlt

    class SecondDelay(DelayFlt):
        service_name = "delay2.sys"

    catalog = FilterCatalog()
    catalog.add(SecondDelay, "test")
    result, _ = run(
        catalog,
        registry={"CrashDumpEnabled": 1, "DumpFilters": ["delayflt.sys", "delay2.sys"]},
        memory={"ram": "64 MiB"},
        filters={"delayflt.sys": {"per_call": "2 us"}, "delay2.sys": {"per_call": "1 us", "per_byte": "0.5 ns"}},
    )
    requests = base.write_requests
    extra2 = requests * 1 * US + (8192 + 4096 + 1024 * 65536) // 2  # header, bitmap, body
    assert result.dump_time_ns - base.dump_time_ns == requests * 2 * US + extra2
    assert result.layers["delayflt.sys"].busy_ns == requests * 2 * US
    assert result.layers["delay2.sys"].busy_ns == extra2
    assert result.layers["delay2.sys"].p50_ns == 1 * US + 32768
    _ = (ListTrace, simulate)


def test_filters_called_in_registry_order_then_miniport() -> None:
    """Per write, each filter's dump_write runs in DumpFilters order, then the dump port."""
    _, trace = run(registry={"DumpFilters": ["faultflt.sys", "delayflt.sys"]})
    writes = [(r["request"], r["layer"]) for r in trace.records if r["event"] in ("dump_write", "miniport_write")]
    assert writes == [
        (1, "faultflt.sys"),
        (1, "delayflt.sys"),
        (1, "miniport"),
        (2, "faultflt.sys"),
        (2, "delayflt.sys"),
        (2, "miniport"),
    ]


def test_dump_start_before_first_write_and_finish_after_last_completion() -> None:
    """Every filter's dump_start precedes the first write; dump_finish follows the last completion."""
    _, trace = run(registry={"DumpFilters": ["faultflt.sys", "delayflt.sys"]})
    events = [(r["layer"], r["event"]) for r in trace.records]
    first_write = events.index(("crashdmp", "issue_write"))
    last_done = max(i for i, e in enumerate(events) if e == ("crashdmp", "write_complete"))
    for name in ("faultflt.sys", "delayflt.sys"):
        assert events.index((name, "dump_start")) < first_write
        assert events.index((name, "dump_finish")) > last_done
    assert events.index(("delayflt.sys", "dump_finish")) < events.index(("device", "flush"))


def test_one_request_outstanding_at_the_miniport() -> None:
    """The next write is issued only after the previous one completed (polled, QD1)."""
    _, trace = run(registry={"CrashDumpEnabled": 1}, memory={"ram": "1 MiB"})
    outstanding, peak = 0, 0
    for r in trace.records:
        if r["event"] == "issue_write":
            outstanding += 1
        elif r["event"] == "write_complete":
            outstanding -= 1
        peak = max(peak, outstanding)
    assert peak == 1


def test_trace_is_sorted_by_time_then_seq() -> None:
    """Trace records come out ordered by (t_ns, seq) with unique sequence numbers."""
    _, trace = run(registry={"DumpFilters": ["delayflt.sys"], "CrashDumpEnabled": 1}, memory={"ram": "1 MiB"})
    keys = [(r["t_ns"], r["seq"]) for r in trace.records]
    assert keys == sorted(keys)
    assert len({r["seq"] for r in trace.records}) == len(keys)


def test_writes_are_header_first_and_sequential() -> None:
    """The header is written first, then the bitmap, then the body, at consecutive partition offsets."""
    _, trace = run(registry={"CrashDumpEnabled": 1}, memory={"ram": "256 KiB"}, layout={"file_offset": "1 GiB"})
    writes = [(r["offset"], r["length"]) for r in trace.records if r["event"] == "issue_write"]
    body = 2**30 + 8192 + 4096  # after the header and the one-page bitmap
    assert writes == [
        (2**30, 8192),
        (2**30 + 8192, 4096),
        (body, 65536),
        (body + 65536, 65536),
        (body + 131072, 65536),
        (body + 196608, 65536),
    ]


def test_max_pages_per_write_follows_the_port() -> None:
    """MaxPagesPerWrite is the port's max transfer in pages, and writes never exceed it."""
    result, trace = run(registry={"CrashDumpEnabled": 1}, memory={"ram": "1 MiB"}, dump_port={"max_transfer": "128 KiB"})
    assert result.max_pages_per_write == 32
    assert max(r["length"] for r in trace.records if r["event"] == "miniport_write") == 131072


def test_dump_disabled_writes_nothing() -> None:
    """CrashDumpEnabled = 0 loads no crash stack and writes nothing at the bugcheck."""
    result, trace = run(registry={"CrashDumpEnabled": 0, "DumpFilters": ["delayflt.sys"]})
    assert result.status == "dump_disabled"
    assert result.bytes_written == 0
    assert [r["event"] for r in trace.records] == ["bugcheck", "dump_failed"]


def test_same_scenario_twice_gives_identical_traces() -> None:
    """Determinism: two runs of the same scenario produce identical records and results."""
    a, ta = run(registry={"DumpFilters": ["dumpfve.sys", "delayflt.sys"], "CrashDumpEnabled": 1}, memory={"ram": "4 MiB"})
    b, tb = run(registry={"DumpFilters": ["dumpfve.sys", "delayflt.sys"], "CrashDumpEnabled": 1}, memory={"ram": "4 MiB"})
    assert ta.records == tb.records
    assert a.as_dict() == b.as_dict()


def test_order_does_not_depend_on_trios_scheduler() -> None:
    """Reseeding trio's private scheduler RNG (which flips same-instant wake order) changes nothing."""
    import trio._core._run as trio_run

    rng = getattr(trio_run, "_r", None)
    if rng is None:  # pragma: no cover - trio moved its private RNG; the test cannot apply
        return
    traces = []
    for seed in (1, 2, 3, 4):
        rng.seed(seed)
        _, trace = run(registry={"DumpFilters": ["dumpfve.sys", "faultflt.sys"], "CrashDumpEnabled": 1}, memory={"ram": "1 MiB"})
        traces.append(trace.records)
    assert all(t == traces[0] for t in traces)


def test_bottleneck_is_the_busiest_layer() -> None:
    """The result names the busiest layer and the dump time without it."""
    result, _ = run(
        registry={"CrashDumpEnabled": 1, "DumpFilters": ["delayflt.sys"]},
        memory={"ram": "1 MiB"},
        filters={"delayflt.sys": {"per_call": "100 us"}},
    )
    d = result.as_dict()
    writes = 1 + 1 + 16  # header, bitmap, body
    assert d["bottleneck"] == "delayflt.sys"
    assert d["dump_time_without_bottleneck_ns"] == result.dump_time_ns - writes * 100_000
    assert d["bottleneck_share_percent"] == round(100 * writes * 100_000 / result.dump_time_ns, 1)


def test_progress_is_reported_every_4096_writes_in_request_mode() -> None:
    """simulate(progress=...) hears (bytes written, bytes to write) every 4096 writes; results are unchanged."""
    from conftest import make_scenario

    from stacksim import FilterCatalog, simulate
    from stacksim.dump_driver import PROGRESS_EVERY

    catalog = FilterCatalog()
    s = make_scenario(catalog, registry={"CrashDumpEnabled": 1}, memory={"ram": "640 MiB"})
    calls: list[tuple[int, int]] = []
    result = simulate(s, catalog, batch=False, progress=lambda done, total: calls.append((done, total)))
    assert PROGRESS_EVERY == 4096
    header, bitmap = 8192, 24576  # the bitmap of 640 MiB (163,938 PFNs) is 6 pages: one write
    assert calls == [(header + bitmap + (k * 4096 - 2) * 65536, result.dump_bytes) for k in (1, 2)]
    assert result.as_dict() == simulate(s, catalog, batch=False).as_dict()


def test_progress_is_reported_after_each_batched_message() -> None:
    """In batched mode every message reports, rising, and the last call has every byte."""
    from conftest import make_scenario

    from stacksim import FilterCatalog, simulate

    catalog = FilterCatalog()
    s = make_scenario(catalog, registry={"CrashDumpEnabled": 1}, memory={"ram": "640 MiB"})
    calls: list[tuple[int, int]] = []
    result = simulate(s, catalog, progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (result.bytes_written, result.dump_bytes)
    assert [done for done, _ in calls] == sorted({done for done, _ in calls})
    assert len(calls) == result.batched_messages + 1  # and once more when the last sampled write is done


def test_integrity_check_cost_is_in_the_dump_time_and_crashdmps_busy_time() -> None:
    """[dump_driver] integrity_check is crashdmp's own time right after the bugcheck, in both engine modes."""
    from conftest import make_scenario

    from stacksim import FilterCatalog, simulate

    base, _ = run()
    result, trace = run(dump_driver={"integrity_check": "3 ms"})
    assert trace.timeline("t_ns", "layer", "event", "dur_ns")[:4] == [
        (10 * MS, "crashdmp", "bugcheck", 0),
        (10 * MS, "crashdmp", "integrity_check", 3 * MS),
        (13 * MS, "crashdmp", "dump_context", 0),
        (13 * MS, "miniport", "port_init", 1 * MS),
    ]
    assert result.dump_time_ns - base.dump_time_ns == 3 * MS
    assert result.layers["crashdmp"].busy_ns - base.layers["crashdmp"].busy_ns == 3 * MS
    catalog = FilterCatalog()
    complete = {"registry": {"CrashDumpEnabled": 1}, "memory": {"ram": "64 MiB"}}
    s = make_scenario(catalog, **complete, dump_driver={"integrity_check": "3 ms"})
    plain = make_scenario(catalog, **complete)
    for batch in (True, False):
        with_check, without = simulate(s, catalog, batch=batch), simulate(plain, catalog, batch=batch)
        assert with_check.dump_time_ns - without.dump_time_ns == 3 * MS
        assert with_check.layers["crashdmp"].busy_ns - without.layers["crashdmp"].busy_ns == 3 * MS


def test_hibernation_has_no_integrity_check() -> None:
    """The dump-context integrity check belongs to the crash path: a hibernation does not pay it."""
    hib = {"scenario": {"name": "h", "event": "hibernate", "hibernate_at": "1 s", "bugcheck_at": None}}
    base, _ = run(**hib, registry={"CrashDumpEnabled": 7}, memory={"ram": "1 MiB"})
    result, trace = run(**hib, registry={"CrashDumpEnabled": 7}, memory={"ram": "1 MiB"}, dump_driver={"integrity_check": "3 ms"})
    assert result.dump_time_ns == base.dump_time_ns
    assert not any(r["event"] == "integrity_check" for r in trace.records)
