"""Fault plans: one test per fault kind, asserting its documented outcome."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import make_scenario, run, without_mode

from stacksim import FilterCatalog, ScenarioError, simulate

COMPLETE = {"registry": {"CrashDumpEnabled": 1, "DumpFilters": ["dumpfve.sys"]}, "memory": {"ram": "1 MiB"}}


def with_faults(*faults: dict[str, Any], **sections: Any) -> Any:
    return run(**{**COMPLETE, **sections}, faults=list(faults))


class TestDevice:
    def test_device_error_stops_the_dump(self) -> None:
        """A device error at request 5 ends the dump after 4 writes; the header is on disk."""
        result, trace = with_faults({"kind": "device_error", "at_request": 5})
        assert result.status == "io_error"
        assert result.write_requests == 4
        assert result.header_written is True
        assert "the device failed request #5 with STATUS_IO_DEVICE_ERROR" in result.message
        assert [r["status"] for r in trace.records if r["event"] == "device_write"][-1] == "STATUS_IO_DEVICE_ERROR"

    def test_transient_error_is_retried(self) -> None:
        """With write_retries, a transient error costs one more write and the dump completes."""
        base, _ = run(**COMPLETE)
        result, trace = with_faults(
            {"kind": "device_error", "at_request": 5, "persistent": False}, dump_driver={"write_retries": 2}
        )
        assert (result.status, result.write_retries, result.write_requests) == ("ok", 1, base.write_requests)
        assert [r["request"] for r in trace.records if r["event"] == "write_failed"] == [5]
        assert result.dump_time_ns > base.dump_time_ns

    def test_persistent_error_exhausts_retries(self) -> None:
        """A persistent error fails every retry; the message says retries were spent."""
        result, _ = with_faults({"kind": "device_error", "at_request": 2}, dump_driver={"write_retries": 3})
        assert result.status == "io_error"
        assert result.write_retries == 3
        assert result.message.endswith("given up after 3 retries")

    def test_device_error_at_offset(self) -> None:
        """at_offset hits the write that covers that partition offset."""
        result, _ = with_faults({"kind": "device_error", "at_offset": 2**30 + 8192 + 65536 + 100})
        assert result.status == "io_error"
        assert "request #3" in result.message

    def test_device_timeout(self) -> None:
        """A write that never completes costs the port's timeout, then the dump stops."""
        result, _ = with_faults({"kind": "device_timeout", "at_request": 3}, dump_port={"timeout": "2 s"})
        assert result.status == "io_timeout"
        assert result.write_requests == 2
        assert result.dump_time_ns > 2_000_000_000


class TestPowerLoss:
    def test_power_loss_mid_dump(self) -> None:
        """Power lost 1.5 ms after the bugcheck: only writes completed by then count; the dump is torn."""
        result, trace = with_faults({"kind": "power_loss", "at": "1.5 ms"})
        assert result.status == "power_lost"
        assert result.dump_time_ns == 1_500_000
        done = [r for r in trace.records if r["event"] == "write_complete"]
        assert all(r["t_ns"] <= 10_000_000 + 1_500_000 for r in done)
        assert result.write_requests == len(done)
        assert result.header_written is True
        assert "the dump is torn" in result.message
        assert "final flush never ran" in result.message

    def test_power_loss_during_hibernation_leaves_no_commit_marker(self) -> None:
        """The hiberfile header is written last: power lost mid-image means no resume."""
        result, _ = with_faults(
            {"kind": "power_loss", "at": "1.2 ms"},
            scenario={"name": "h", "event": "hibernate", "hibernate_at": "1 s", "bugcheck_at": None},
        )
        assert result.status == "power_lost"
        assert result.header_written is False
        assert "was not written: the next boot starts afresh" in result.message

    def test_power_loss_after_the_dump_changes_nothing(self) -> None:
        """Power lost after the final flush: the dump is complete."""
        result, _ = with_faults({"kind": "power_loss", "at": "10 s"})
        assert result.status == "ok"


class TestFilters:
    def test_filter_raise(self) -> None:
        """An exception in a filter callback aborts the dump, naming filter, callback and request."""
        result, _ = with_faults({"kind": "filter_raise", "filter": "dumpfve.sys", "at_request": 3})
        assert result.status == "filter_crashed"
        assert result.message == "dumpfve.sys: dump_write raised RuntimeError: injected fault (filter_raise) on request #3"

    def test_filter_hang(self) -> None:
        """A hung callback is ended by the watchdog with the filter, callback and request named."""
        result, _ = with_faults({"kind": "filter_hang", "filter": "dumpfve.sys", "at_request": 2}, engine={"watchdog": "1 s"})
        assert result.status == "hung"
        assert result.message.startswith("dumpfve.sys did not return from dump_write on request #2")

    def test_filter_hang_in_dump_finish(self) -> None:
        """Hangs in other callbacks are named too."""
        result, _ = with_faults(
            {"kind": "filter_hang", "filter": "delayflt.sys", "callback": "dump_finish"},
            registry={"CrashDumpEnabled": 1, "DumpFilters": ["delayflt.sys"]},
        )
        assert result.status == "hung"
        assert "dump_finish" in result.message

    def test_fault_on_a_missing_callback_is_reported(self) -> None:
        """A fault on a callback the filter does not provide never fires, and the result says so."""
        result, _ = with_faults({"kind": "filter_hang", "filter": "dumpfve.sys", "callback": "dump_finish"})
        assert result.status == "ok"
        assert any("never fired" in w for w in result.warnings)

    def test_fault_past_the_last_write_says_so(self) -> None:
        """A dump_write fault at a request number the dump never reaches is warned with the number of writes."""
        result, _ = with_faults({"kind": "filter_raise", "filter": "dumpfve.sys", "at_request": 10**6})
        assert result.status == "ok"
        n = result.write_requests
        expected = f"fault raise on dumpfve.sys dump_write never fired: past the last write (the dump has {n} writes)"
        assert result.warnings == (expected,)

    def test_fault_for_the_other_stack_says_so(self) -> None:
        """A fault for the hibernation stack never fires in a crash, and the warning names both dump types."""
        result, _ = with_faults({"kind": "filter_raise", "filter": "dumpfve.sys", "dump_type": "hibernation"})
        assert result.status == "ok"
        assert result.warnings == (
            "fault raise on dumpfve.sys dump_write never fired: "
            "it is for the hibernation stack and this run's stack is crashdump",
        )

    def test_many_unfired_filter_faults_are_counted_not_listed(self) -> None:
        """1,000 filter faults past the last write give 20 warnings and one line counting the rest."""
        from stacksim.simulate import MAX_FAULT_WARNINGS

        faults = [{"kind": "filter_error_status", "filter": "dumpfve.sys", "at_request": 10**6 + i} for i in range(1000)]
        result, _ = with_faults(*faults)
        assert len(result.warnings) == MAX_FAULT_WARNINGS + 1
        assert result.warnings[-1] == f"and {1000 - MAX_FAULT_WARNINGS:,} more filter faults never fired"

    def test_filter_error_status(self) -> None:
        """An error status is recorded; the write still reaches the disk."""
        result, _ = with_faults({"kind": "filter_error_status", "filter": "dumpfve.sys", "at_request": 4, "status": 0xC000028A})
        assert result.status == "ok"
        assert result.filters[0].errors == {"dump_write": 1}
        assert result.filters[0].first_error["dump_write"] == "returned STATUS_ENCRYPTION_FAILED for request #4"

    def test_slow_filter(self) -> None:
        """A slow filter adds its extra time to every call."""
        base, _ = run(**COMPLETE)
        result, _ = with_faults({"kind": "slow_filter", "filter": "dumpfve.sys", "extra": "50 us"})
        assert result.dump_time_ns - base.dump_time_ns == base.write_requests * 50_000

    def test_fault_must_name_a_listed_filter(self) -> None:
        """A fault on a filter that DumpFilters does not list is bad input."""
        with pytest.raises(ScenarioError, match=r"filter 'delayflt\.sys' is not in DumpFilters"):
            with_faults({"kind": "slow_filter", "filter": "delayflt.sys", "extra": 1})

    def test_only_one_way_to_place_a_device_error(self) -> None:
        """device_error takes at_request or at_offset, not both."""
        with pytest.raises(ScenarioError, match="exactly one of at_request"):
            with_faults({"kind": "device_error", "at_request": 1, "at_offset": 0})


@pytest.mark.parametrize(
    "fault",
    [
        {"kind": "device_error", "at_request": 700},
        {"kind": "device_error", "at_request": 700, "persistent": False},
        {"kind": "device_timeout", "at_request": 10},
        {"kind": "filter_error_status", "filter": "dumpfve.sys", "at_request": 333},
        {"kind": "filter_raise", "filter": "dumpfve.sys", "at_request": 1000},
        {"kind": "slow_filter", "filter": "dumpfve.sys", "extra": "3 us"},
        {"kind": "filter_error_status", "filter": "dumpfve.sys"},
    ],
)
def test_faults_give_identical_results_in_batched_mode(fault: dict[str, Any]) -> None:
    """Batched mode splits runs around faults: every result field equals request mode's."""
    catalog = FilterCatalog()
    sections = {**COMPLETE, "memory": {"ram": "64 MiB"}, "dump_driver": {"write_retries": 1}, "faults": [fault]}
    s = make_scenario(catalog, **sections)
    a, b = simulate(s, catalog).as_dict(), simulate(s, catalog, batch=False).as_dict()
    assert without_mode(a) == without_mode(b)


def test_header_written_is_reported_for_a_hung_dump() -> None:
    """A run ended by the watchdog still says that the header reached the disk."""
    result, _ = with_faults({"kind": "filter_hang", "filter": "dumpfve.sys", "at_request": 3}, engine={"watchdog": "1 s"})
    assert result.status == "hung"
    assert result.header_written is True
