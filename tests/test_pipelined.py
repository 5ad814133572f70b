"""
Pipelined request mode: several writes in flight between the layer tasks, results identical to
one write at a time -- and a strict rerun whenever something could make the overlap visible.
"""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
import trio
from conftest import make_scenario
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_batching import scenarios

from stacksim import DumpFilter, DumpRequest, FilterCatalog, FilterExtension, Mdl, NtStatus, simulate, spend
from stacksim.dump_driver import PIPELINE_WINDOW
from stacksim.requests import SECTOR_SIZE


def both(catalog: FilterCatalog | None = None, **sections: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Request mode, pipelined and one write at a time."""
    catalog = catalog or FilterCatalog()
    s = make_scenario(catalog, **sections)
    return simulate(s, catalog, batch=False).as_dict(), simulate(s, catalog, batch=False, pipeline=False).as_dict()


class Recorder(DumpFilter):
    """A user filter without a cost model: remembers every call and costs depend on the history."""

    service_name: ClassVar[str] = "recorder.sys"

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self.seen: list[tuple[str, int]] = []

    async def dump_start(self, extension: FilterExtension) -> int:
        self.seen.append(("start", 0))
        return NtStatus.SUCCESS

    async def dump_write(self, extension: FilterExtension, request: DumpRequest) -> int:
        self.seen.append(("write", request.number))
        spend(1_000 + 37 * (len(self.seen) % 5))  # a cost that depends on the call history
        return NtStatus.SUCCESS

    async def dump_finish(self, extension: FilterExtension) -> int:
        self.seen.append(("finish", 0))
        return NtStatus.SUCCESS


INSTANCES: list[Recorder] = []


class TrackedRecorder(Recorder):
    """Keeps its instances so a test can read what each one saw."""

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        INSTANCES.append(self)


def recorder_catalog(cls: type[DumpFilter] = TrackedRecorder) -> FilterCatalog:
    catalog = FilterCatalog()
    catalog.add(cls, "test")
    return catalog


def test_a_stateful_user_filter_sees_the_same_calls_and_gives_the_same_result() -> None:
    """Each filter is called in the same order with the same requests; every result field agrees."""
    INSTANCES.clear()
    pipelined, strict = both(
        recorder_catalog(),
        registry={"CrashDumpEnabled": 1, "DumpFilters": ["recorder.sys", "dumpfve.sys"]},
        memory={"ram": "8 MiB"},
    )
    assert pipelined == strict
    assert [i.seen for i in INSTANCES[:1]] == [i.seen for i in INSTANCES[1:]]  # crash stack of each run
    assert INSTANCES[0].seen[:3] == [("start", 0), ("write", 1), ("write", 2)]
    assert INSTANCES[0].seen[-1] == ("finish", 0)


def test_time_dependent_devices_are_exact() -> None:
    """A write-back cache that fills and drains, and a seeking HDD, see exactly the serial start times."""
    for disk in ({"preset": "sata-ssd", "cache": "8 MiB"}, {"preset": "hdd-7200", "cache": "256 KiB"}):
        pipelined, strict = both(
            recorder_catalog(),
            registry={"CrashDumpEnabled": 1, "DumpFilters": ["recorder.sys"]},
            memory={"ram": "16 MiB"},
            layout={"runs": 5},
            disk=disk,
        )
        assert pipelined == strict
        device = pipelined["layers"]["device"]
        assert len({device["p50_ns"], device["p99_ns"], device["max_ns"]}) > 1  # the device's state mattered


def test_a_filter_that_raises_mid_dump_gives_the_strict_result() -> None:
    """An exception at write 40 (another write already in flight) is reported exactly as one at a time."""

    class Raises(DumpFilter):
        service_name: ClassVar[str] = "raises.sys"

        async def dump_write(self, extension: FilterExtension, request: DumpRequest) -> int:
            spend(500)
            if request.number == 40:
                raise RuntimeError("boom")
            return NtStatus.SUCCESS

    pipelined, strict = both(
        recorder_catalog(Raises), registry={"CrashDumpEnabled": 1, "DumpFilters": ["raises.sys"]}, memory={"ram": "8 MiB"}
    )
    assert pipelined == strict
    assert pipelined["status"] == "filter_crashed"
    assert pipelined["write_requests"] == 39


def test_a_refused_request_gives_the_strict_result() -> None:
    """A filter that moves write 30 past the end of the disk: the port refuses it, as one at a time."""

    class Mover(DumpFilter):
        service_name: ClassVar[str] = "mover.sys"

        async def dump_write(self, extension: FilterExtension, request: DumpRequest) -> int:
            if request.number == 30:
                request.offset = extension.disk_size // SECTOR_SIZE * SECTOR_SIZE
            return NtStatus.SUCCESS

    pipelined, strict = both(
        recorder_catalog(Mover), registry={"CrashDumpEnabled": 1, "DumpFilters": ["mover.sys"]}, memory={"ram": "8 MiB"}
    )
    assert pipelined == strict
    assert pipelined["status"] == "io_error"
    assert pipelined["write_requests"] == 29


def test_a_filter_that_awaits_gives_the_strict_result() -> None:
    """A callback that sleeps in trio time would overlap other writes: the run goes one write at a time."""

    class Sleeper(DumpFilter):
        service_name: ClassVar[str] = "sleeper.sys"

        async def dump_write(self, extension: FilterExtension, request: DumpRequest) -> int:
            if request.number % 7 == 0:
                await trio.sleep(0.000_003)
            return NtStatus.SUCCESS

    pipelined, strict = both(
        recorder_catalog(Sleeper), registry={"CrashDumpEnabled": 1, "DumpFilters": ["sleeper.sys"]}, memory={"ram": "4 MiB"}
    )
    assert pipelined == strict
    assert pipelined["layers"]["sleeper.sys"]["busy_ns"] == (65 // 7) * 3_000


def test_error_statuses_do_not_need_a_rerun() -> None:
    """A dump_write error is recorded and the write still happens: the pipelined run stands."""
    pipelined, strict = both(
        registry={"CrashDumpEnabled": 1, "DumpFilters": ["faultflt.sys"]},
        memory={"ram": "4 MiB"},
        filters={"faultflt.sys": {"action": "fail", "at_request": 20}},
    )
    assert pipelined == strict
    assert pipelined["filters"][0]["errors"] == {"dump_write": 1}


def test_results_do_not_depend_on_trio_wake_order() -> None:
    """Different seeds of trio's scheduler RNG (private; guarded) give the same pipelined result."""
    runner = pytest.importorskip("trio._core._run")
    rng = getattr(runner, "_r", None)
    if rng is None:  # pragma: no cover - trio moved its scheduler RNG
        pytest.skip("trio's scheduler RNG is not where it used to be")
    catalog = recorder_catalog(Recorder)
    s = make_scenario(
        catalog, registry={"CrashDumpEnabled": 1, "DumpFilters": ["recorder.sys", "delayflt.sys"]}, memory={"ram": "4 MiB"}
    )
    results = set()
    for seed in range(4):
        rng.seed(seed)
        results.add(str(simulate(s, catalog, batch=False).as_dict()))
    assert len(results) == 1


def test_the_window_keeps_every_layer_busy() -> None:
    """Enough writes in flight for crashdmp, three filters and the port."""
    assert PIPELINE_WINDOW >= 5


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios(), st.sampled_from([None, "sata-ssd", "hdd-7200", "azure-premium-p10", "nvme-pcie4"]))
def test_random_scenarios_pipelined_equal_one_at_a_time(sections: dict[str, Any], preset: str | None) -> None:
    """On random valid scenarios (faults, hibernation, stateful devices), every result field agrees."""
    if preset is not None:
        small_cache = preset in ("sata-ssd", "hdd-7200")
        sections = {**sections, "disk": {"preset": preset, "cache": "64 KiB"} if small_cache else {"preset": preset}}
    pipelined, strict = both(**sections)
    assert pipelined == strict


def test_a_filter_awaiting_inside_its_own_nursery_gives_the_strict_result() -> None:
    """A callback that awaits inside its own nursery is unwound by trio's cancellation, then the run is repeated."""

    class Nursery(DumpFilter):
        service_name: ClassVar[str] = "nursery.sys"

        async def dump_write(self, extension: FilterExtension, request: DumpRequest) -> int:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(trio.sleep, 0.000_002)
            return NtStatus.SUCCESS

    pipelined, strict = both(
        recorder_catalog(Nursery), registry={"CrashDumpEnabled": 1, "DumpFilters": ["nursery.sys"]}, memory={"ram": "1 MiB"}
    )
    assert pipelined == strict
    assert pipelined["status"] == "ok"


def test_a_cleanup_that_raises_while_abandoned_does_not_leak() -> None:
    """An error raised by a finally block during the abandoned attempt is dropped with the attempt."""

    class Cleanup(DumpFilter):
        service_name: ClassVar[str] = "cleanup.sys"

        async def dump_write(self, extension: FilterExtension, request: DumpRequest) -> int:
            try:
                await trio.sleep(0.000_001)
            finally:
                if trio.current_effective_deadline() == float("-inf"):  # only when cancelled
                    raise ValueError("cleanup failed")
            return NtStatus.SUCCESS

    pipelined, strict = both(
        recorder_catalog(Cleanup), registry={"CrashDumpEnabled": 1, "DumpFilters": ["cleanup.sys"]}, memory={"ram": "1 MiB"}
    )
    assert pipelined == strict
    assert pipelined["status"] == "ok"


def test_a_reused_buffer_with_contents_gives_the_strict_result() -> None:
    """A filter that reuses one buffer with data, read by the filter below: the host holds each write's bytes; strict result."""

    class Encrypt(DumpFilter):
        service_name: ClassVar[str] = "enc.sys"

        def __init__(self, config: Any = None) -> None:
            super().__init__(config)
            self.buffers: dict[int, Mdl] = {}  # one per write length, reused

        async def dump_write(self, extension: FilterExtension, request: DumpRequest) -> int:
            mdl = self.buffers.setdefault(request.length, Mdl(self.service_name, request.length, bytearray(request.length)))
            mdl.write(0, (request.offset // 512).to_bytes(8, "little"))
            request.mdl = mdl
            return NtStatus.SUCCESS

    class Check(DumpFilter):
        service_name: ClassVar[str] = "check.sys"

        async def dump_write(self, extension: FilterExtension, request: DumpRequest) -> int:
            assert request.mdl.data is not None
            spend(1_000 + int.from_bytes(request.mdl.data[:8], "little") % 4096)
            return NtStatus.SUCCESS

    catalog = recorder_catalog(Encrypt)
    catalog.add(Check, "test")
    pipelined, strict = both(
        catalog, registry={"CrashDumpEnabled": 1, "DumpFilters": ["enc.sys", "check.sys"]}, memory={"ram": "2 MiB"}
    )
    assert pipelined == strict
    assert (pipelined["status"], pipelined["write_requests"]) == ("ok", 34)


def test_contents_the_host_cannot_hold_give_the_strict_result() -> None:
    """A reused buffer handed down as a view of 8-byte words is not copied: the run goes one write at a time."""

    class Words(DumpFilter):
        service_name: ClassVar[str] = "words.sys"

        def __init__(self, config: Any = None) -> None:
            super().__init__(config)
            self.buffers: dict[int, Mdl] = {}  # one per write length, reused

        async def dump_write(self, extension: FilterExtension, request: DumpRequest) -> int:
            words = memoryview(bytearray(request.length)).cast("Q")
            mdl = self.buffers.setdefault(request.length, Mdl(self.service_name, request.length, words))
            assert mdl.data is not None
            mdl.data[0] = request.offset // 512
            request.mdl = mdl
            return NtStatus.SUCCESS

    class Check(DumpFilter):
        service_name: ClassVar[str] = "check.sys"

        async def dump_write(self, extension: FilterExtension, request: DumpRequest) -> int:
            assert isinstance(request.mdl.data, memoryview)
            spend(1_000 + request.mdl.data[0] % 4096)
            return NtStatus.SUCCESS

    catalog = recorder_catalog(Words)
    catalog.add(Check, "test")
    pipelined, strict = both(
        catalog, registry={"CrashDumpEnabled": 1, "DumpFilters": ["words.sys", "check.sys"]}, memory={"ram": "2 MiB"}
    )
    assert pipelined == strict
    assert (pipelined["status"], pipelined["write_requests"]) == ("ok", 34)


def test_reading_the_issue_time_gives_the_strict_result() -> None:
    """issued_ns is not known while writes are in flight; reading it repeats the run one at a time."""

    class Clocked(DumpFilter):
        service_name: ClassVar[str] = "clocked.sys"

        async def dump_write(self, extension: FilterExtension, request: DumpRequest) -> int:
            spend(1_000 + request.issued_ns % 997)
            return NtStatus.SUCCESS

    pipelined, strict = both(
        recorder_catalog(Clocked), registry={"CrashDumpEnabled": 1, "DumpFilters": ["clocked.sys"]}, memory={"ram": "1 MiB"}
    )
    assert pipelined == strict
    assert pipelined["status"] == "ok"


def test_an_awaitable_that_is_not_a_coroutine_gives_the_strict_result() -> None:
    """A callback returning some other awaitable cannot be stepped by hand: the run goes one at a time."""

    class Wrapped(DumpFilter):
        service_name: ClassVar[str] = "wrapped.sys"

        def dump_write(self, extension: FilterExtension, request: DumpRequest) -> Any:  # type: ignore[override]
            class Later:
                def __await__(self) -> Any:
                    return trio.sleep(0.000_001).__await__()  # noqa: ASYNC105 - awaited by the caller

            return Later()

    pipelined, strict = both(
        recorder_catalog(Wrapped), registry={"CrashDumpEnabled": 1, "DumpFilters": ["wrapped.sys"]}, memory={"ram": "1 MiB"}
    )
    assert pipelined == strict
    assert pipelined["layers"]["wrapped.sys"]["busy_ns"] == (1 + 1 + 16) * 1_000  # header, bitmap, body writes


def test_progress_never_goes_backwards_when_a_run_is_repeated() -> None:
    """The progress callback sees a rising count even when the pipelined attempt is abandoned."""

    class LateFailure(DumpFilter):
        service_name: ClassVar[str] = "late.sys"

        async def dump_write(self, extension: FilterExtension, request: DumpRequest) -> int:
            if request.number == 9_000:
                await trio.lowlevel.checkpoint()
            return NtStatus.SUCCESS

    catalog = recorder_catalog(LateFailure)
    s = make_scenario(catalog, registry={"CrashDumpEnabled": 1, "DumpFilters": ["late.sys"]}, memory={"ram": "640 MiB"})
    seen: list[int] = []
    simulate(s, catalog, batch=False, progress=lambda done, _total: seen.append(done))
    assert seen == sorted(set(seen))
    assert len(seen) == 2  # writes 4096 and 8192, reported once each


def test_a_filter_reading_the_clock_gives_the_strict_result_and_the_true_times() -> None:
    """A write's time is unknown while writes are in flight: reading trio's clock repeats the run one at a time (exact)."""
    seen: list[list[float]] = []

    class Clocked(DumpFilter):
        service_name: ClassVar[str] = "clocked.sys"

        def __init__(self, config: Any = None) -> None:
            super().__init__(config)
            self.times: list[float] = []
            seen.append(self.times)

        async def dump_write(self, extension: FilterExtension, request: DumpRequest) -> int:
            spend(1_000 + int(trio.current_time() * 1e9) % 997)
            self.times.append(trio.current_time())
            return NtStatus.SUCCESS

    pipelined, strict = both(
        recorder_catalog(Clocked), registry={"CrashDumpEnabled": 1, "DumpFilters": ["clocked.sys"]}, memory={"ram": "1 MiB"}
    )
    assert pipelined == strict
    assert seen[-1] == seen[-2]  # the strict run of simulate() and the rerun of the pipelined attempt
    assert len(seen[-1]) == 1 + 1 + 16  # header, bitmap, body writes


def test_a_hang_in_a_pipelined_run_gives_the_strict_result() -> None:
    """A write that spends past the watchdog while others are in flight ends exactly as one at a time: hung at that write."""

    class Hangs(DumpFilter):
        service_name: ClassVar[str] = "hangs.sys"

        async def dump_write(self, extension: FilterExtension, request: DumpRequest) -> int:
            spend(2 * 10**9 if request.number == 30 else 1_000)
            return NtStatus.SUCCESS

    pipelined, strict = both(
        recorder_catalog(Hangs),
        registry={"CrashDumpEnabled": 1, "DumpFilters": ["hangs.sys"]},
        memory={"ram": "8 MiB"},
        engine={"watchdog": "1 s"},
    )
    assert pipelined == strict
    assert (pipelined["status"], pipelined["write_requests"]) == ("hung", 29)


def test_each_window_of_writes_is_one_message_per_hop(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pipelined, the writes in flight travel every channel as one message, not one message each."""
    s = make_scenario(FilterCatalog(), registry={"CrashDumpEnabled": 1, "DumpFilters": ["dumpfve.sys"]}, memory={"ram": "16 MiB"})
    sent = []
    real = trio.MemorySendChannel.send_nowait

    def counting(self: trio.MemorySendChannel[Any], value: Any) -> None:
        sent.append(value)
        real(self, value)

    monkeypatch.setattr(trio.MemorySendChannel, "send_nowait", counting)
    result = simulate(s, FilterCatalog(), batch=False)
    writes = result.write_requests
    assert writes > 256
    hops = 3  # crashdmp -> dumpfve.sys -> port -> crashdmp
    windows = sum(1 for m in sent if m.kind.name == "WINDOW")
    assert windows * PIPELINE_WINDOW >= hops * (writes - 3)  # the body writes ride in full windows
    assert len(sent) < hops * writes / PIPELINE_WINDOW + 3 * 10  # plus the start, the finish, the header and bitmap
