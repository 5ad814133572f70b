"""The dump-filter interface: loading, both stacks, callback reasons and the rules crashdmp enforces."""

from __future__ import annotations

from typing import ClassVar

import trio
from conftest import run

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
        # The moved header now overlaps the body: the independent checker sees the damage.
        assert [v.message for v in check_records(trace.records)] == ["requests 1 and 2 overlap"]

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
        """faultflt's slow action adds its extra time to every call."""
        base, _ = run()
        result, _ = run(
            registry={"DumpFilters": ["faultflt.sys"]}, filters={"faultflt.sys": {"action": "slow", "extra": "50 us"}}
        )
        assert result.dump_time_ns - base.dump_time_ns == 4 * 50_000  # start, 2 writes, finish


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
