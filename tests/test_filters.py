"""The dump-filter interface: loading, both stacks, callback reasons and the rules crashdmp enforces."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
import trio
from conftest import make_scenario, run, without_mode

from stacksim import (
    DUMP_FILTER_CRITICAL,
    DUMP_FILTER_FLAG_SYSTEM_SUPPORT_READ,
    DumpFilter,
    DumpRequest,
    FilterCatalog,
    FilterExtension,
    FilterInitializationData,
    Mdl,
    NtStatus,
    ScenarioError,
    simulate,
    spend,
)
from stacksim.check import check_records
from stacksim.filters import FaultFlt


def catalog_with(*classes: type[DumpFilter]) -> FilterCatalog:
    catalog = FilterCatalog()
    for cls in classes:
        catalog.add(cls, "test")
    return catalog


class Recorder(DumpFilter):
    """Records every callback with the DumpType it was called with."""

    service_name: ClassVar[str] = "recorder.sys"
    calls: ClassVar[list[tuple[str, str]]] = []

    def driver_entry(self, extension: FilterExtension, init: FilterInitializationData) -> int:
        Recorder.calls.append(("driver_entry", extension.dump_type.label))
        return super().driver_entry(extension, init)

    async def dump_start(self, extension: FilterExtension) -> int:
        Recorder.calls.append(("dump_start", extension.dump_type.label))
        return NtStatus.SUCCESS

    async def dump_write(self, extension: FilterExtension, request: DumpRequest) -> int:
        Recorder.calls.append(("dump_write", extension.dump_type.label))
        return NtStatus.SUCCESS

    async def dump_finish(self, extension: FilterExtension) -> int:
        Recorder.calls.append(("dump_finish", extension.dump_type.label))
        return NtStatus.SUCCESS


class TestStacks:
    def test_crash_stack_loaded_at_boot_with_crashdump_reason(self) -> None:
        """A crash loads the filters at boot and calls every callback with DumpType crashdump."""
        Recorder.calls = []
        _, trace = run(catalog_with(Recorder), registry={"DumpFilters": ["recorder.sys"]})
        assert Recorder.calls == [
            ("driver_entry", "crashdump"),
            ("dump_start", "crashdump"),
            ("dump_write", "crashdump"),
            ("dump_write", "crashdump"),
            ("dump_finish", "crashdump"),
        ]
        assert trace.records[0]["t_ns"] == 0
        assert trace.records[0]["event"] == "driver_entry"

    def test_hibernation_loads_a_second_instance_of_the_same_list(self) -> None:
        """Hibernation: the same filter list is loaded again when hibernation starts, reason hibernation."""
        Recorder.calls = []
        result, trace = run(
            catalog_with(Recorder),
            scenario={"name": "h", "event": "hibernate", "hibernate_at": "1 s", "bugcheck_at": None},
            registry={"DumpFilters": ["recorder.sys"], "CrashDumpEnabled": 7},
            memory={"ram": "1 MiB"},
        )
        entries = [(r["t_ns"], r["dump_type"]) for r in trace.records if r["event"] == "driver_entry"]
        assert entries == [(0, "crashdump"), (1_000_000_000, "hibernation")]
        assert Recorder.calls[0] == ("driver_entry", "crashdump")
        assert set(Recorder.calls[1:]) == {
            ("driver_entry", "hibernation"),
            ("dump_start", "hibernation"),
            ("dump_write", "hibernation"),
            ("dump_finish", "hibernation"),
        }
        assert result.status == "ok"
        assert result.images[1] == "hiber_recorder.sys"


class TestDriverEntry:
    def test_critical_failure_stops_the_stack(self) -> None:
        """A critical filter whose DriverEntry fails: no dump, the status names the filter and why."""

        class Healthy(FaultFlt):
            service_name: ClassVar[str] = "healthy.sys"

        result, trace = run(
            catalog_with(Healthy),
            registry={"DumpFilters": ["delayflt.sys", "healthy.sys", "faultflt.sys", "dumpfve.sys"], "CrashDumpEnabled": 1},
            filters={"faultflt.sys": {"action": "fail_driver_entry", "critical": True, "status": 0xC000009A}},
        )
        assert result.status == "stack_init_failed"
        assert "faultflt.sys" in result.message
        assert "STATUS_INSUFFICIENT_RESOURCES" in result.message
        assert result.bytes_written == 0
        assert [(r["layer"], r["event"]) for r in trace.records if r["t_ns"] == 0] == [
            ("delayflt.sys", "driver_entry"),
            ("healthy.sys", "driver_entry"),
            ("faultflt.sys", "driver_entry"),
            ("healthy.sys", "dump_unload"),
        ]

    def test_non_critical_failure_is_skipped(self) -> None:
        """A non-critical filter whose DriverEntry fails is skipped; the dump proceeds without it."""
        result, trace = run(
            registry={"DumpFilters": ["faultflt.sys", "delayflt.sys"]},
            filters={"faultflt.sys": {"action": "fail_driver_entry"}},
        )
        assert result.status == "ok"
        assert not any(r["layer"] == "faultflt.sys" and r["event"] == "dump_write" for r in trace.records)
        assert [f.loaded for f in result.filters] == [False, True]

    def test_exception_in_driver_entry_is_a_failed_load(self) -> None:
        """An exception in DriverEntry counts as a failed DriverEntry, named in the result."""
        result, _ = run(
            registry={"DumpFilters": ["faultflt.sys"]},
            filters={"faultflt.sys": {"action": "raise_driver_entry", "critical": True}},
        )
        assert result.status == "stack_init_failed"
        assert "raised RuntimeError" in result.message

    def test_async_driver_entry_is_refused_clearly(self) -> None:
        """A plugin that writes DriverEntry as a coroutine gets a clear load error, not a warning."""

        class AsyncEntry(DumpFilter):
            service_name: ClassVar[str] = "asyncentry.sys"

            async def driver_entry(self, extension, init):  # type: ignore[no-untyped-def, override]
                return 0

        result, _ = run(catalog_with(AsyncEntry), registry={"DumpFilters": ["asyncentry.sys"]})
        assert result.filters[0].load_error is not None
        assert "plain `def`" in result.filters[0].load_error

    def test_max_pages_per_write_is_set_before_driver_entry(self) -> None:
        """The system fills MaxPagesPerWrite before DriverEntry runs (filters size buffers from it)."""
        seen = []

        class Sizer(DumpFilter):
            service_name: ClassVar[str] = "sizer.sys"

            def driver_entry(self, extension: FilterExtension, init: FilterInitializationData) -> int:
                seen.append(init.max_pages_per_write)
                return super().driver_entry(extension, init)

        run(
            catalog_with(Sizer),
            registry={"DumpFilters": ["sizer.sys"]},
            dump_port={"max_transfer": "256 KiB", "common_buffer": "128 KiB"},
        )
        assert seen == [64]


class TestReadSupport:
    def test_read_needs_version_2_flag_and_callback(self) -> None:
        """Read filtering requires major version 2, the read flag and a dump_read callback."""

        class V1Reader(DumpFilter):
            service_name: ClassVar[str] = "v1.sys"

            def driver_entry(self, extension: FilterExtension, init: FilterInitializationData) -> int:
                super().driver_entry(extension, init)
                init.major_version, init.flags = 1, DUMP_FILTER_FLAG_SYSTEM_SUPPORT_READ
                return 0

            async def dump_read(self, extension: FilterExtension, request: DumpRequest) -> int:
                return 0

        class NoCallback(DumpFilter):
            service_name: ClassVar[str] = "nocb.sys"
            flags: ClassVar[int] = DUMP_FILTER_FLAG_SYSTEM_SUPPORT_READ

        class Reader(NoCallback):
            service_name: ClassVar[str] = "reader.sys"

            async def dump_read(self, extension: FilterExtension, request: DumpRequest) -> int:
                return 0

        result, _ = run(
            catalog_with(V1Reader, NoCallback, Reader), registry={"DumpFilters": ["v1.sys", "nocb.sys", "reader.sys"]}
        )
        assert [(f.name, f.supports_read) for f in result.filters] == [
            ("v1.sys", False),
            ("nocb.sys", False),
            ("reader.sys", True),
        ]

    def test_read_flag_is_the_critical_bit(self) -> None:
        """ntdddump gives the read flag and DUMP_FILTER_CRITICAL the same bit: a reader is critical."""
        assert DUMP_FILTER_FLAG_SYSTEM_SUPPORT_READ == DUMP_FILTER_CRITICAL
        result, _ = run(registry={"DumpFilters": ["dumpfve.sys"]})
        assert (result.filters[0].critical, result.filters[0].supports_read) == (True, True)


class TestDumpWriteRules:
    def test_error_status_is_recorded_and_the_write_still_happens(self) -> None:
        """A dump_write error is recorded, but the write goes to disk anyway (as on Windows)."""
        result, trace = run(
            registry={"DumpFilters": ["faultflt.sys"]}, filters={"faultflt.sys": {"action": "fail", "at_request": 2}}
        )
        assert result.status == "ok"
        assert result.write_requests == 2
        assert result.filters[0].errors == {"dump_write": 1}
        assert "request #2" in result.filters[0].first_error["dump_write"]
        assert [r["status"] for r in trace.records if r["event"] == "dump_write"] == ["STATUS_SUCCESS", "STATUS_UNSUCCESSFUL"]
        assert any(r["event"] == "miniport_write" and r["request"] == 2 for r in trace.records)

    def test_changing_the_length_is_a_violation(self) -> None:
        """A filter that changes a request's size stops the dump, reported by name."""
        result, _ = run(registry={"DumpFilters": ["faultflt.sys"]}, filters={"faultflt.sys": {"action": "change_length"}})
        assert result.status == "filter_violation"
        assert result.message.startswith("faultflt.sys: dump_write changed the length of request #1 from 8192 to 4096 bytes")
        assert result.bytes_written == 0

    def test_a_violation_by_a_filter_with_only_dump_write_is_reported(self) -> None:
        """A filter whose only callback is dump_write, returning success while shrinking the MDL."""

        class Shrink(DumpFilter):
            service_name: ClassVar[str] = "shrink.sys"

            async def dump_write(self, extension: FilterExtension, request: DumpRequest) -> int:
                request.mdl = Mdl("shrink.sys", request.mdl.length // 2)
                return NtStatus.SUCCESS

        cat = FilterCatalog()
        cat.add(Shrink, "test")
        result, _ = run(cat, registry={"DumpFilters": ["shrink.sys"]})
        assert result.status == "filter_violation"
        assert result.message.startswith("shrink.sys: dump_write changed the length of request #1 from 8192 to 4096 bytes")

    def test_writing_into_the_callers_buffer_is_a_violation(self) -> None:
        """A filter that writes into the buffer it was handed is a violation, reported by name."""
        result, _ = run(
            registry={"DumpFilters": ["faultflt.sys"]},
            filters={"faultflt.sys": {"action": "write_caller_buffer", "at_request": 2}},
        )
        assert result.status == "filter_violation"
        assert "wrote into the buffer it was given (request #2, owned by crashdmp)" in result.message
        assert result.write_requests == 1

    def test_redirecting_to_own_buffer_is_allowed(self) -> None:
        """dumpfve.sys swaps in its own buffer: legal, and the next filter sees dumpfve's buffer."""
        owners = []

        class Peek(DumpFilter):
            service_name: ClassVar[str] = "peek.sys"

            async def dump_write(self, extension: FilterExtension, request: DumpRequest) -> int:
                owners.append(request.mdl.owner)
                return 0

        result, _ = run(catalog_with(Peek), registry={"DumpFilters": ["dumpfve.sys", "peek.sys"]})
        assert result.status == "ok"
        assert owners == ["dumpfve.sys", "dumpfve.sys"]

    def test_changing_the_offset_is_honoured_with_a_warning(self) -> None:
        """An offset change is honoured (real filters do it) and reported as a warning."""
        result, trace = run(
            registry={"DumpFilters": ["faultflt.sys"]},
            filters={"faultflt.sys": {"action": "change_offset", "offset_delta": 4096}},
            check=False,
        )
        assert result.status == "ok"
        issued = [r["offset"] for r in trace.records if r["event"] == "issue_write"]
        at_port = [r["offset"] for r in trace.records if r["event"] == "miniport_write"]
        assert at_port == [issued[0] + 4096, issued[1]]
        assert any("moved request #1" in w for w in result.warnings)
        # The moved header now overlaps the body: the filter's doing, honoured as on Windows, so the
        # trace breaks no rule (placement holds a moved write to alignment only); the warning names it.
        assert check_records(trace.records) == []

    def test_exception_in_dump_write_aborts_the_dump(self) -> None:
        """An exception in a crash-mode callback is a fault at HIGH_LEVEL: the dump is aborted."""
        result, _ = run(
            registry={"DumpFilters": ["faultflt.sys"]}, filters={"faultflt.sys": {"action": "raise", "at_request": 2}}
        )
        assert result.status == "filter_crashed"
        assert "faultflt.sys: dump_write raised RuntimeError" in result.message
        assert result.write_requests == 1

    def test_non_status_return_is_a_violation(self) -> None:
        """A callback that returns something other than an NTSTATUS is named as a violation."""

        class Chatty(DumpFilter):
            service_name: ClassVar[str] = "chatty.sys"

            async def dump_write(self, extension: FilterExtension, request: DumpRequest) -> int:
                return "done"  # type: ignore[return-value]

        result, _ = run(catalog_with(Chatty), registry={"DumpFilters": ["chatty.sys"]})
        assert result.status == "filter_violation"
        assert "returned 'done', not an NTSTATUS" in result.message


class TestTimeAndHangs:
    def test_hung_filter_ends_the_run_naming_layer_and_request(self) -> None:
        """A filter that never returns is stopped by the virtual-time watchdog with a clear message."""
        result, _ = run(
            registry={"DumpFilters": ["faultflt.sys"]},
            filters={"faultflt.sys": {"action": "hang", "at_request": 2}},
            engine={"watchdog": "5 s"},
        )
        assert result.status == "hung"
        assert result.message.startswith("faultflt.sys did not return from dump_write on request #2 within the watchdog period")

    def test_filter_awaiting_trio_time_is_charged_for_it(self) -> None:
        """A user filter that awaits trio.sleep is charged that virtual time, exactly."""

        class Sleeper(DumpFilter):
            service_name: ClassVar[str] = "sleeper.sys"

            async def dump_write(self, extension: FilterExtension, request: DumpRequest) -> int:
                await trio.sleep(0.000_250)
                spend(1000)
                return 0

        base, _ = run()
        result, _ = run(catalog_with(Sleeper), registry={"DumpFilters": ["sleeper.sys"]})
        assert result.layers["sleeper.sys"].busy_ns == 2 * 251_000
        assert result.dump_time_ns - base.dump_time_ns == 2 * 251_000

    def test_slow_filter(self) -> None:
        """faultflt's slow action adds its extra time to every call of its callback (dump_write by default)."""
        base, _ = run()
        result, _ = run(
            registry={"DumpFilters": ["faultflt.sys"]}, filters={"faultflt.sys": {"action": "slow", "extra": "50 us"}}
        )
        assert result.dump_time_ns - base.dump_time_ns == 2 * 50_000  # the 2 writes (it used to slow start and finish too)
        assert result.layers["faultflt.sys"].busy_ns == 2 * 50_000


class TestDumpFve:
    def test_bitlocker_off_means_not_loaded(self) -> None:
        """Without BitLocker, dumpfve.sys declines to load and the dump goes unencrypted."""
        result, _ = run(registry={"DumpFilters": ["dumpfve.sys"]}, filters={"dumpfve.sys": {"bitlocker": False}})
        assert result.status == "ok"
        assert result.filters[0].loaded is False
        assert "STATUS_FVE_NOT_ENCRYPTED" in (result.filters[0].load_error or "")

    def test_cost_per_write(self) -> None:
        """dumpfve.sys costs per_call + ⌈length × per_byte⌉ per write."""
        result, _ = run(
            registry={"DumpFilters": ["dumpfve.sys"]}, filters={"dumpfve.sys": {"per_call": "1 us", "per_byte": "0.3 ns"}}
        )
        assert result.layers["dumpfve.sys"].busy_ns == (1000 + 2458) + (1000 + 17204)  # 8192 B and 57344 B


def test_dump_data_set_in_driver_entry_comes_back_in_callbacks() -> None:
    """The context a filter stores in init.dump_data is handed back as extension.dump_data."""
    seen = []

    class Ctx(DumpFilter):
        service_name: ClassVar[str] = "ctx.sys"

        def driver_entry(self, extension: FilterExtension, init: FilterInitializationData) -> int:
            init.dump_data = {"key": "scheduled at boot"}
            return super().driver_entry(extension, init)

        async def dump_start(self, extension: FilterExtension) -> int:
            seen.append(extension.dump_data)
            return 0

    run(catalog_with(Ctx), registry={"DumpFilters": ["ctx.sys"]})
    assert seen == [{"key": "scheduled at boot"}]


def test_critical_failure_only_in_the_hibernation_stack_refuses_hibernation() -> None:
    """A filter that fails only when loaded for hibernation leaves crash dumps working but refuses hibernation."""
    result, trace = run(
        scenario={"name": "h", "event": "hibernate", "hibernate_at": "1 s", "bugcheck_at": None},
        registry={"DumpFilters": ["faultflt.sys"], "CrashDumpEnabled": 7},
        filters={"faultflt.sys": {"action": "fail_driver_entry", "critical": True, "dump_type": "hibernation"}},
    )
    assert result.status == "stack_init_failed"
    assert result.message.endswith("the system refuses to hibernate")
    entries = [(r["dump_type"], r["status"]) for r in trace.records if r["event"] == "driver_entry"]
    assert entries == [("crashdump", "STATUS_SUCCESS"), ("hibernation", "STATUS_UNSUCCESSFUL")]


def test_request_moved_beyond_the_disk_is_an_io_error() -> None:
    """A filter that moves a write past the end of the disk gets it refused by the dump port."""
    result, _ = run(
        registry={"DumpFilters": ["faultflt.sys"]},
        filters={"faultflt.sys": {"action": "change_offset", "offset_delta": "4 TB"}},
    )
    assert result.status == "io_error"
    assert "runs past the end of the disk" in result.message


class TestFaultFltHonoursCallbackAndDumpType:
    def test_slow_in_dump_start_slows_only_dump_start(self) -> None:
        """slow with callback = dump_start adds extra once, at Dump_Start, and nothing to the writes."""
        result, trace = run(
            registry={"DumpFilters": ["faultflt.sys"]},
            filters={"faultflt.sys": {"action": "slow", "extra": "50 us", "callback": "dump_start"}},
        )
        assert [(r["event"], r["dur_ns"]) for r in trace.records if r["layer"] == "faultflt.sys"] == [
            ("driver_entry", 0),
            ("dump_start", 50_000),
            ("dump_write", 0),
            ("dump_write", 0),
            ("dump_finish", 0),
        ]
        assert result.layers["faultflt.sys"].busy_ns == 50_000

    def test_slow_in_the_other_stack_does_nothing(self) -> None:
        """slow with dump_type = hibernation leaves a crash dump untouched, in request and batched mode."""
        base, _ = run(registry={"DumpFilters": ["faultflt.sys"]}, memory={"ram": "8 MiB"})
        result, _ = run(
            registry={"DumpFilters": ["faultflt.sys"]},
            memory={"ram": "8 MiB"},
            filters={"faultflt.sys": {"action": "slow", "extra": "50 us", "dump_type": "hibernation"}},
        )
        assert result.dump_time_ns == base.dump_time_ns
        assert result.layers["faultflt.sys"].busy_ns == 0
        catalog = FilterCatalog()
        s = make_scenario(
            catalog,
            registry={"CrashDumpEnabled": 1, "DumpFilters": ["faultflt.sys"]},
            memory={"ram": "8 MiB"},
            filters={"faultflt.sys": {"action": "slow", "extra": "50 us", "dump_type": "hibernation"}},
        )
        assert simulate(s, catalog).layers["faultflt.sys"].busy_ns == 0

    def test_a_callback_that_does_not_fit_the_action_is_refused(self) -> None:
        """A DriverEntry action with a callback, or a request-changing action on a callback without a request, is bad input."""
        with pytest.raises(ScenarioError, match="callback does not apply to action 'fail_driver_entry'"):
            make_scenario(
                registry={"DumpFilters": ["faultflt.sys"]},
                filters={"faultflt.sys": {"action": "fail_driver_entry", "callback": "dump_start"}},
            )
        with pytest.raises(ScenarioError, match="callback must be dump_write or dump_read"):
            make_scenario(
                registry={"DumpFilters": ["faultflt.sys"]},
                filters={"faultflt.sys": {"action": "change_length", "callback": "dump_finish"}},
            )


class TestDriverEntryStatus:
    def test_a_critical_filter_must_return_status_success_exactly(self) -> None:
        """A critical filter returning STATUS_PENDING (a success code, not STATUS_SUCCESS) fails the stack [DOC S1]."""
        result, _ = run(
            registry={"DumpFilters": ["faultflt.sys"]},
            filters={"faultflt.sys": {"action": "fail_driver_entry", "status": 0x103, "critical": True}},
        )
        assert result.status == "stack_init_failed"
        assert result.filters[0].load_error == (
            "driver_entry returned 0x00000103; a critical filter must return STATUS_SUCCESS exactly [DOC S1]"
        )
        assert result.filters[0].load_status == "0xC0000001"  # crashdmp's verdict, as for any failed DriverEntry

    def test_a_non_critical_filter_returning_another_success_code_is_loaded_with_a_warning(self) -> None:
        """A non-critical filter returning STATUS_PENDING is loaded (NT_SUCCESS holds) and the result says so."""
        result, _ = run(
            registry={"DumpFilters": ["faultflt.sys"]},
            filters={"faultflt.sys": {"action": "fail_driver_entry", "status": 0x103}},
        )
        assert result.status == "ok"
        assert result.filters[0].loaded is True
        assert result.warnings[0].startswith(
            "faultflt.sys: driver_entry returned 0x00000103, a success code other than STATUS_SUCCESS; loaded"
        )

    def test_an_unknown_major_version_is_not_loaded_and_the_rule_is_cited(self) -> None:
        """A DriverEntry that leaves MajorVersion at 0 is refused, citing the two versions ntdddump defines."""

        class NoVersion(DumpFilter):
            service_name: ClassVar[str] = "noversion.sys"

            def driver_entry(self, extension: FilterExtension, init: FilterInitializationData) -> int:
                return 0

        result, _ = run(catalog_with(NoVersion), registry={"DumpFilters": ["noversion.sys"]})
        assert result.filters[0].loaded is False
        assert result.filters[0].load_error == (
            "driver_entry declared major version 0; ntdddump defines only DUMP_FILTER_MAJOR_VERSION_1 (1) and "
            "DUMP_FILTER_MAJOR_VERSION (2) [DOC S1, S2], so the filter is not loaded (ASSUMPTION: crashdmp's reaction "
            "to another value is not documented)"
        )


class Mover(DumpFilter):
    """Moves every write by the class attribute ``delta`` bytes."""

    service_name: ClassVar[str] = "mover.sys"
    delta: ClassVar[int] = 0

    async def dump_write(self, extension: FilterExtension, request: DumpRequest) -> int:
        request.offset += self.delta
        return 0


class TestMovedOffsets:
    def test_an_aligned_move_is_honoured_and_the_device_sees_the_new_offsets(self) -> None:
        """Moving every write by 3 sectors is honoured with a warning: the device writes exactly there."""

        class Aligned(Mover):
            delta: ClassVar[int] = 3 * 512

        result, trace = run(catalog_with(Aligned), registry={"DumpFilters": ["mover.sys"]}, check=False)
        issued = [r["offset"] for r in trace.records if r["event"] == "issue_write"]
        device = [r["offset"] for r in trace.records if r["event"] == "device_write"]
        file_at, partition = 2**30, 2**20  # the page file's first byte in the partition; the partition's on the disk
        assert issued == [file_at, file_at + 8192]
        assert device == [partition + file_at + 1536, partition + file_at + 8192 + 1536]
        assert result.status == "ok"
        assert result.warnings[:2] == (
            f"mover.sys moved request #1 from partition offset {file_at} to {file_at + 1536} (honoured, as real "
            "filters rely on it; the docs say it should not)",
            f"mover.sys moved request #2 from partition offset {file_at + 8192} to {file_at + 8192 + 1536} (honoured, "
            "as real filters rely on it; the docs say it should not)",
        )

    def test_a_move_off_the_sector_grid_is_a_violation_and_reaches_no_device(self) -> None:
        """Moving a write by 100 bytes stops the dump as filter_violation before the port sees it."""

        class Misaligned(Mover):
            delta: ClassVar[int] = 100

        result, trace = run(catalog_with(Misaligned), registry={"DumpFilters": ["mover.sys"]}, check=False)
        assert result.status == "filter_violation"
        assert result.message == (
            "mover.sys: dump_write moved request #1 from offset 1073741824 to offset 1073741924, which is not a "
            "multiple of the 512-byte sector (dump I/O is sector aligned)"
        )
        assert not any(r["layer"] in ("miniport", "device") and r["event"].endswith("write") for r in trace.records)
        assert result.bytes_written == 0


def test_delayflt_start_cost_is_its_dump_start_and_delays_the_port_reset() -> None:
    """delayflt's start cost is the whole of its Dump_Start and pushes everything after it, exactly."""
    result, trace = run(registry={"DumpFilters": ["delayflt.sys"]}, filters={"delayflt.sys": {"start": "7 us"}})
    base, _ = run(registry={"DumpFilters": ["delayflt.sys"]})
    ms = 1_000_000
    assert trace.timeline("t_ns", "layer", "event", "dur_ns")[3:7] == [
        (10 * ms, "crashdmp", "dump_context", 0),
        (10 * ms, "delayflt.sys", "dump_start", 7_000),
        (10 * ms + 7_000, "miniport", "port_init", 1 * ms),
        (11 * ms + 7_000, "crashdmp", "issue_write", 0),
    ]
    assert result.dump_time_ns - base.dump_time_ns == 7_000
    assert result.layers["delayflt.sys"].busy_ns == 7_000


class TestClockInCallbacks:
    def test_trio_time_in_every_callback_is_the_simulated_time(self) -> None:
        """trio.current_time() and stacksim's now_ns() in each callback equal the call's start (+ its spend), as traced."""
        from stacksim import now_ns

        seen: list[tuple[str, float, int]] = []

        class Clock(DumpFilter):
            service_name: ClassVar[str] = "clock.sys"

            def driver_entry(self, extension: FilterExtension, init: FilterInitializationData) -> int:
                seen.append(("driver_entry", trio.current_time(), now_ns()))
                return super().driver_entry(extension, init)

            async def dump_start(self, extension: FilterExtension) -> int:
                seen.append(("dump_start", trio.current_time(), now_ns()))
                return 0

            async def dump_write(self, extension: FilterExtension, request: DumpRequest) -> int:
                spend(250)
                seen.append(("dump_write", trio.current_time(), now_ns()))
                return 0

            async def dump_finish(self, extension: FilterExtension) -> int:
                seen.append(("dump_finish", trio.current_time(), now_ns()))
                return 0

        _, trace = run(catalog_with(Clock), registry={"DumpFilters": ["clock.sys"]})
        starts = [r["t_ns"] + (250 if r["event"] == "dump_write" else 0) for r in trace.records if r["layer"] == "clock.sys"]
        assert [(event, ns) for event, _, ns in seen] == list(zip([e for e, _, _ in seen], starts, strict=True))
        assert [t for _, t, _ in seen] == [ns / 1e9 for _, _, ns in seen]
        assert seen[1] == ("dump_start", 0.01, 10_000_000)  # the bugcheck at 10 ms, not trio's 0


class TestPluginCrashes:
    @pytest.mark.parametrize("exc", [SystemExit(3), KeyboardInterrupt(), GeneratorExit(), BaseException("bare")])
    def test_a_base_exception_in_dump_write_is_filter_crashed(self, exc: BaseException) -> None:
        """sys.exit(3), KeyboardInterrupt, GeneratorExit or BaseException in dump_write is a failed run naming all three."""

        class Exits(DumpFilter):
            service_name: ClassVar[str] = "exits.sys"

            async def dump_write(self, extension: FilterExtension, request: DumpRequest) -> int:
                if request.number == 2:
                    raise exc
                return 0

        result, _ = run(catalog_with(Exits), registry={"DumpFilters": ["exits.sys"]})
        assert result.status == "filter_crashed"
        text = f": {exc}" if str(exc) else ""
        assert result.message == f"exits.sys: dump_write raised {type(exc).__name__}{text} on request #2"
        assert result.write_requests == 1

    def test_system_exit_in_driver_entry_is_a_failed_load(self) -> None:
        """SystemExit from DriverEntry is a failed DriverEntry: a critical filter fails the stack, naming it."""

        class Exits(DumpFilter):
            service_name: ClassVar[str] = "exits.sys"
            flags: ClassVar[int] = DUMP_FILTER_CRITICAL

            def driver_entry(self, extension: FilterExtension, init: FilterInitializationData) -> int:
                init.flags = DUMP_FILTER_CRITICAL
                raise SystemExit(5)

        result, _ = run(catalog_with(Exits), registry={"DumpFilters": ["exits.sys"]})
        assert result.status == "stack_init_failed"
        assert result.message == (
            "critical filter exits.sys failed to initialise the crash dump stack (driver_entry raised SystemExit: 5); "
            "no crash dump is written"
        )

    def test_an_exception_in_the_filters_init_is_a_failed_load(self) -> None:
        """A filter whose __init__ raises is not loaded; the load error says where it failed."""

        class BadInit(DumpFilter):
            service_name: ClassVar[str] = "badinit.sys"

            def __init__(self, config: Any = None) -> None:
                raise SystemExit(7)

        result, _ = run(catalog_with(BadInit), registry={"DumpFilters": ["badinit.sys"]})
        assert result.status == "ok"
        assert result.filters[0].load_error == "creating the filter (its __init__) raised SystemExit: 7"

    def test_a_raising_dump_unload_is_recorded_not_fatal(self) -> None:
        """Dump_Unload runs at normal IRQL: a SystemExit there is an error in the result, not a crash."""

        class Unloads(DumpFilter):
            service_name: ClassVar[str] = "unloads.sys"

            async def dump_unload(self, extension: FilterExtension) -> int:
                raise SystemExit(2)

        result, _ = run(
            catalog_with(Unloads),
            registry={"DumpFilters": ["unloads.sys", "faultflt.sys"]},
            filters={"faultflt.sys": {"action": "fail_driver_entry", "critical": True}},
        )
        assert result.status == "stack_init_failed"
        assert result.filters[0].first_error == {"dump_unload": "dump_unload raised SystemExit: 2"}

    def test_a_hung_dump_unload_is_recorded_not_fatal(self) -> None:
        """A Dump_Unload that never returns is cut at the watchdog and recorded; the failing stack still fails as such."""

        class Hangs(DumpFilter):
            service_name: ClassVar[str] = "hangs.sys"

            async def dump_unload(self, extension: FilterExtension) -> int:
                with trio.CancelScope(shield=True):  # and it shields itself
                    await trio.sleep_forever()
                return 0  # pragma: no cover

        result, trace = run(
            catalog_with(Hangs),
            registry={"DumpFilters": ["hangs.sys", "faultflt.sys"]},
            filters={"faultflt.sys": {"action": "fail_driver_entry", "critical": True}},
            engine={"watchdog": "1 s"},
        )
        assert result.status == "stack_init_failed"
        assert result.filters[0].first_error == {
            "dump_unload": "hangs.sys did not return from dump_unload within the watchdog period (1 s of simulated time); "
            "on Windows the machine would hang here"
        }
        unload = next(r for r in trace.records if r["event"] == "dump_unload")
        assert (unload["dur_ns"], unload["status"]) == (10**9, "STATUS_UNSUCCESSFUL")


class TestDeclarations:
    def test_a_write_cost_that_raises_fails_the_run_in_both_modes(self) -> None:
        """write_cost is asked in request mode too, so raising in it is filter_crashed either way."""

        class BadCost(DumpFilter):
            service_name: ClassVar[str] = "badcost.sys"

            def write_cost(self, extension: FilterExtension, length: int) -> int | None:
                raise SystemExit(1)

            async def dump_write(self, extension: FilterExtension, request: DumpRequest) -> int:
                return 0

        catalog = catalog_with(BadCost)
        s = make_scenario(catalog, registry={"CrashDumpEnabled": 1, "DumpFilters": ["badcost.sys"]}, memory={"ram": "1 MiB"})
        results = [simulate(s, catalog, batch=b) for b in (True, False)]
        assert {(r.status, r.message) for r in results} == {
            ("filter_crashed", "badcost.sys: write_cost raised SystemExit: 1 (for 8192-byte writes)")
        }

    def test_a_write_cost_that_is_not_a_cost_is_a_violation(self) -> None:
        """write_cost must return None or whole ns: 1.5 stops the run as filter_violation, naming the value."""

        class FloatCost(DumpFilter):
            service_name: ClassVar[str] = "floatcost.sys"

            def write_cost(self, extension: FilterExtension, length: int) -> int | None:
                return 1.5  # type: ignore[return-value]

            async def dump_write(self, extension: FilterExtension, request: DumpRequest) -> int:
                return 0

        result, _ = run(catalog_with(FloatCost), registry={"DumpFilters": ["floatcost.sys"]})
        assert result.status == "filter_violation"
        assert result.message.startswith(
            "floatcost.sys: write_cost returned 1.5 for 8192-byte writes; it must return None or a whole number of ns"
        )

    def test_special_requests_that_are_not_request_numbers_are_a_violation(self) -> None:
        """special_requests must return a set of request numbers; a list of strings stops the run."""

        class BadSpecial(DumpFilter):
            service_name: ClassVar[str] = "badspecial.sys"

            def special_requests(self, extension: FilterExtension) -> frozenset[int]:
                return ["1"]  # type: ignore[return-value]

            async def dump_write(self, extension: FilterExtension, request: DumpRequest) -> int:
                return 0

        result, _ = run(catalog_with(BadSpecial), registry={"DumpFilters": ["badspecial.sys"]})
        assert (result.status, result.message) == (
            "filter_violation",
            "badspecial.sys: special_requests returned ['1']; it must return a set of request numbers (integers >= 1)",
        )


class TestHungCalls:
    def test_spending_two_minutes_under_a_one_second_watchdog_is_hung(self) -> None:
        """A callback that spend()s 2 min with a 1 s watchdog ends as hung at call start + 1 s."""

        class Spender(DumpFilter):
            service_name: ClassVar[str] = "spender.sys"

            async def dump_write(self, extension: FilterExtension, request: DumpRequest) -> int:
                spend(120 * 10**9)
                return 0

        result, trace = run(catalog_with(Spender), registry={"DumpFilters": ["spender.sys"]}, engine={"watchdog": "1 s"})
        assert result.status == "hung"
        assert result.message == (
            "spender.sys did not return from dump_write on request #1 within the watchdog period "
            "(1 s of simulated time; it charged 120 s); on Windows the machine would hang here"
        )
        *_, issued, failed = trace.records  # the cut call returned no status: it has no record of its own
        assert (issued["event"], failed["event"]) == ("issue_write", "dump_failed")
        assert failed["t_ns"] == issued["t_ns"] + 10**9
        assert result.dump_time_ns == issued["t_ns"] + 10**9 - 10_000_000
        assert result.layers["spender.sys"].busy_ns == 10**9  # but it is charged the period it held the CPU

    def test_a_long_per_call_cost_is_hung_the_same_in_every_mode(self) -> None:
        """delayflt per_call = 2 min with a 1 s watchdog: hung at request 1, identical batched, pipelined or one at a time."""
        catalog = FilterCatalog()
        s = make_scenario(
            catalog,
            registry={"CrashDumpEnabled": 1, "DumpFilters": ["delayflt.sys"]},
            memory={"ram": "16 MiB"},
            filters={"delayflt.sys": {"per_call": "2 min"}},
            engine={"watchdog": "1 s"},
        )
        modes = ((True, True), (False, True), (False, False))  # batched; pipelined request mode; one at a time
        results = [without_mode(simulate(s, catalog, batch=b, pipeline=p).as_dict()) for b, p in modes]
        assert results[0] == results[1] == results[2]
        assert results[0]["status"] == "hung"
        assert results[0]["message"].startswith(
            "delayflt.sys did not return from dump_write on request #1 within the watchdog period (1 s of simulated time"
        )

    def test_a_cost_only_the_body_writes_exceed_is_hung_at_the_first_body_write(self) -> None:
        """per_byte makes a 64 KiB write (not the 8 KiB header or 4 KiB bitmap) exceed the watchdog: hung at #3 in both modes."""
        catalog = FilterCatalog()
        s = make_scenario(
            catalog,
            registry={"CrashDumpEnabled": 1, "DumpFilters": ["delayflt.sys"]},
            memory={"ram": "16 MiB"},
            filters={"delayflt.sys": {"per_byte": "10 ns"}},  # 8 KiB: 81.9 us; 4 KiB: 41 us; 64 KiB: 655 us
            engine={"watchdog": "500 us"},
        )
        batched, single = (simulate(s, catalog, batch=b).as_dict() for b in (True, False))
        assert without_mode(batched) == without_mode(single)
        assert batched["status"] == "hung"
        assert batched["write_requests"] == 1 + 1  # header, bitmap
        assert "dump_write on request #3" in batched["message"]

    def test_driver_entry_that_spends_past_the_watchdog_is_a_failed_load(self) -> None:
        """A DriverEntry charging more than the watchdog is cut at it and counts as failed: critical, the stack fails."""

        class SlowEntry(DumpFilter):
            service_name: ClassVar[str] = "slowentry.sys"
            flags: ClassVar[int] = DUMP_FILTER_CRITICAL

            def driver_entry(self, extension: FilterExtension, init: FilterInitializationData) -> int:
                super().driver_entry(extension, init)
                spend(5 * 10**9)
                return 0

        result, trace = run(catalog_with(SlowEntry), registry={"DumpFilters": ["slowentry.sys"]}, engine={"watchdog": "1 s"})
        assert result.status == "stack_init_failed"
        assert result.filters[0].load_error == (
            "driver_entry did not return within the watchdog period (1 s of simulated time; it charged 5 s), so it "
            "counts as a failed DriverEntry (on Windows the machine would hang here)"
        )
        entry = trace.records[0]
        assert (entry["event"], entry["dur_ns"], entry["status"]) == ("driver_entry", 10**9, "STATUS_UNSUCCESSFUL")

    def test_a_slow_fault_that_reaches_the_watchdog_is_hung(self) -> None:
        """An injected slow_filter delay that takes a call to the watchdog period makes it hang."""
        result, _ = run(
            registry={"DumpFilters": ["delayflt.sys"]},
            faults=[{"kind": "slow_filter", "filter": "delayflt.sys", "extra": "1 s"}],
            engine={"watchdog": "1 s"},
        )
        assert result.status == "hung"
        assert result.message.startswith("delayflt.sys did not return from dump_start within the watchdog period")
