"""
The dump port: its timeout on slow commands, its index of device faults, and the faults that never fire.

Every scenario here is the suite's BASE (10 ms bugcheck, 1 ms port reset, 5 µs per request,
no filters) with a 1 MiB complete dump: an 8 KiB header, a 4 KiB bitmap, then 16 writes of 64 KiB.
"""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
from conftest import make_scenario, run, without_mode

from stacksim import FilterCatalog, RunResult, simulate

COMPLETE: dict[str, Any] = {"registry": {"CrashDumpEnabled": 1}, "memory": {"ram": "1 MiB"}}
RESET, OVERHEAD = 1_000_000, 5_000


def both(**sections: Any) -> RunResult:
    """Run in batched and in request mode; the two results must agree on everything; return the batched one."""
    catalog = FilterCatalog()
    s = make_scenario(catalog, **{**COMPLETE, **sections})
    batched = simulate(s, catalog)
    single = simulate(s, catalog, batch=False)
    assert without_mode(batched.as_dict()) == without_mode(single.as_dict())
    return batched


class TestTimeoutOnSlowDevices:
    """The port's timeout fails any command the device takes longer than it to complete."""

    def test_a_write_slower_than_the_timeout_fails_it(self) -> None:
        """At 1 B/s the 8 KiB header would take 2.28 h: the port gives up after its 10 s and the dump stops."""
        r = both(disk={"bandwidth": 1})
        assert (r.status, r.write_requests, r.bytes_written) == ("io_timeout", 0, 0)
        assert r.dump_time_ns == RESET + OVERHEAD + 10 * 10**9
        assert r.message == "request #1 did not complete within the port's 10 s timeout (the device needed 2.28 h for it)"

    def test_a_run_of_slow_writes_fails_at_its_first_write_in_both_modes(self) -> None:
        """At 16,384 B/s the header takes 0.5 s, the bitmap 0.25 s, each 64 KiB write 4 s: with a 1 s timeout, write 3 fails."""
        r = both(disk={"bandwidth": 16384}, dump_port={"timeout": "1 s"})
        assert (r.status, r.write_requests) == ("io_timeout", 2)
        header, bitmap = OVERHEAD + 20_000 + 500_000_000, OVERHEAD + 20_000 + 250_000_000
        assert r.dump_time_ns == RESET + header + bitmap + (OVERHEAD + 10**9)
        assert r.message == "request #3 did not complete within the port's 1 s timeout (the device needed 4 s for it)"
        assert r.layers["device"].calls == 2  # header, bitmap: the timed-out write is the port's time, as with device_timeout

    def test_a_timeout_1_ns_short_is_told_in_exact_nanoseconds(self) -> None:
        """When the timeout and the device's time round to the same "500 ms", the message gives both in exact ns."""
        r = both(disk={"bandwidth": 16384}, dump_port={"timeout": 500_019_999})
        assert r.message == (
            "request #1 did not complete within the port's 500,019,999 ns timeout (the device needed 500,020,000 ns for it)"
        )

    def test_slow_writes_travel_alone_and_the_result_says_why(self) -> None:
        """Writes that can outlast the timeout are not batched; the reason is reported."""
        r = both(disk={"bandwidth": 16384}, dump_port={"timeout": "1 s"})
        assert r.batched_messages == 0
        assert r.request_mode_reasons == (
            "a 64 KiB write can take the device up to 4 s, longer than the port's 1 s timeout, so such writes went one at a time",
        )

    def test_a_timed_out_write_is_retried_like_a_device_timeout(self) -> None:
        """With write_retries = 2 the slow write is tried three times, each costing the timeout."""
        r = both(disk={"bandwidth": 16384}, dump_port={"timeout": "1 s"}, dump_driver={"write_retries": 2})
        assert (r.status, r.write_retries) == ("io_timeout", 2)
        header, bitmap = OVERHEAD + 20_000 + 500_000_000, OVERHEAD + 20_000 + 250_000_000
        assert r.dump_time_ns == RESET + header + bitmap + 3 * (OVERHEAD + 10**9)
        assert r.message.endswith("; given up after 2 retries")

    def test_a_write_that_takes_exactly_the_timeout_completes(self) -> None:
        """At 65,536 B/s a 64 KiB write takes exactly the 1 s timeout: it completes."""
        r = both(disk={"latency": 0, "bandwidth": 65536}, dump_port={"timeout": "1 s"})
        assert (r.status, r.write_requests) == ("ok", 1 + 1 + 16)  # header, bitmap, body
        # the header takes 125 ms, the bitmap 62.5 ms, each body write 1 s; + the 200 µs flush
        assert r.dump_time_ns == RESET + 18 * OVERHEAD + 125_000_000 + 62_500_000 + 16 * 10**9 + 200_000

    def test_a_flush_slower_than_the_timeout_fails_the_dump(self) -> None:
        """A volatile cache that needs 1.06 s to drain at 1 MB/s outlasts a 1 s timeout: io_timeout after every write."""
        r = both(
            disk={"model": "ssd", "latency": 0, "bandwidth": "1 GB/s", "media_bandwidth": "1 MB/s", "cache": "64 MiB"}
            | {"volatile_cache": True, "flush": 0},
            dump_port={"timeout": "1 s"},
        )
        written = 8192 + 4096 + 2**20  # header, bitmap, body
        assert (r.status, r.write_requests, r.bytes_written) == ("io_timeout", 18, written)
        assert r.dump_time_ns == RESET + 18 * OVERHEAD + written + 10**9  # 1 GB/s into the cache, then the timeout
        assert r.message == (
            "the cache flush did not complete within the port's 1 s timeout (the device needed 1.06 s to write its cache back)"
        )

    @pytest.mark.parametrize("flush", [False, True])
    def test_the_trace_of_a_timeout_passes_the_checker(self, flush: bool) -> None:
        """A write or a flush failed by the timeout leaves a trace that stacksim check accepts (run() checks it)."""
        disk = (
            {"model": "ssd", "media_bandwidth": "1 MB/s", "cache": "64 MiB", "volatile_cache": True}
            if flush
            else {"bandwidth": 16384}
        )
        result, trace = run(**COMPLETE, disk=disk, dump_port={"timeout": "1 s"}, dump_driver={"write_retries": 1})
        assert result.status == "io_timeout"
        assert [r["event"] for r in trace.records][-2:] == (
            ["flush", "dump_failed"] if flush else ["poll_timeout", "dump_failed"]
        )

    def test_fast_writes_are_still_batched(self) -> None:
        """With the default 10 s timeout nothing on a 3 GB/s disk can time out: the body is batched."""
        r = both()
        assert (r.status, r.batched_messages, r.request_mode_reasons) == ("ok", 2, ())  # 2: between sampled writes


class TestFaultIndex:
    """Device faults are looked up by request number and by offset; the first listed fault that hits wins."""

    AT_REQUEST_3: ClassVar[dict[str, Any]] = {"kind": "device_error", "at_request": 3, "status": 0xC0000001}
    AT_OFFSET_OF_3: ClassVar[dict[str, Any]] = {"kind": "device_error", "at_offset": 2**30 + 8192 + 4096, "status": 0xC0000185}

    def test_the_first_listed_fault_wins(self) -> None:
        """Two faults hit write 3: the one listed first decides the status."""
        first = both(faults=[self.AT_REQUEST_3, self.AT_OFFSET_OF_3])
        second = both(faults=[self.AT_OFFSET_OF_3, self.AT_REQUEST_3])
        assert first.message == "the device failed request #3 with STATUS_UNSUCCESSFUL (device_error fault)"
        assert second.message == "the device failed request #3 with STATUS_IO_DEVICE_ERROR (device_error fault)"

    def test_an_offset_fault_hits_the_write_that_covers_it(self) -> None:
        """at_offset hits the write whose bytes include it, not only the one starting there."""
        r = both(faults=[{"kind": "device_error", "at_offset": 2**30 + 8192 + 4096 + 4 * 65536 + 512}])  # into write 7
        assert (r.status, r.write_requests) == ("io_error", 6)

    def test_many_faults_on_the_same_write(self) -> None:
        """A thousand transient faults on write 2 (the bitmap) and its offset fail it once (all fired); the retry succeeds."""
        faults = [{"kind": "device_error", "at_request": 2, "persistent": False}] * 500
        faults += [{"kind": "device_error", "at_offset": 2**30 + 8192, "persistent": False}] * 500
        r = both(faults=faults, dump_driver={"write_retries": 1})
        assert (r.status, r.write_retries) == ("ok", 1)
        assert r.warnings == ()


class TestFaultsThatNeverFire:
    """A fault that cannot happen, or did not, is reported in the result's warnings, saying why."""

    def test_a_request_past_the_last_write(self) -> None:
        """at_request = 700 in a dump of 18 writes (header, bitmap, 16 body writes) never fires."""
        r = both(faults=[{"kind": "device_error", "at_request": 700}])
        assert r.status == "ok"
        assert r.warnings == ("fault device_error at_request = 700 never fired: past the last write (the dump has 18 writes)",)

    def test_an_offset_outside_the_file(self) -> None:
        """An at_offset that no run of the target file holds never fires."""
        r = both(faults=[{"kind": "device_timeout", "at_request": 19}, {"kind": "device_error", "at_offset": 4096}])
        assert r.warnings == (
            "fault device_timeout at_request = 19 never fired: past the last write (the dump has 18 writes)",
            "fault device_error at_offset = 4,096 never fired: no write goes there: "
            "the offset is outside the pagefile's disk runs",
        )

    def test_an_offset_in_the_file_past_the_dump(self) -> None:
        """An at_offset inside a page file bigger than the dump, past the dump's end, never fires."""
        r = both(layout={"size": "2 MiB"}, faults=[{"kind": "device_error", "at_offset": 2**30 + 1_500_000}])
        assert r.warnings == (
            "fault device_error at_offset = 1,075,241,824 never fired: past the end of the dump (file offset 1,500,000; "
            "the dump fills the first 1,060,864 bytes)",  # header, bitmap, body: 8,192 + 4,096 + 1,048,576
        )

    def test_a_fault_after_the_dump_stopped(self) -> None:
        """A fault behind the write that stopped the dump did not fire: the dump ended before it."""
        r = both(faults=[{"kind": "device_error", "at_request": 3}, {"kind": "device_error", "at_request": 9}])
        assert r.status == "io_error"
        assert r.warnings == ("fault device_error at_request = 9 never fired: the dump ended before it",)

    def test_no_writes_at_all(self) -> None:
        """When the page file is too small no write happens: every device fault is past the last (of 0)."""
        r = both(layout={"size": "512 KiB"}, faults=[{"kind": "device_error", "at_request": 1}])
        assert r.status == "file_too_small"
        assert r.warnings == ("fault device_error at_request = 1 never fired: past the last write (the dump has 0 writes)",)

    def test_power_loss_after_the_dump(self) -> None:
        """Power lost 10 s after the bugcheck of a dump that took 2 ms (2,003,633 ns) never happened."""
        catalog = FilterCatalog()
        r = simulate(make_scenario(catalog, **COMPLETE, faults=[{"kind": "power_loss", "at": "10 s"}]), catalog)
        assert r.status == "ok"
        # the reset, 18 × (5 µs overhead + 20 µs latency), the transfers at 3 GB/s, the 200 µs flush
        assert r.dump_time_ns == RESET + 18 * (OVERHEAD + 20_000) + 2_731 + 1_366 + 16 * 21_846 + 200_000 == 2_003_633
        assert r.warnings == ("fault power_loss at 10 s never fired: the run ended 2 ms after the bugcheck",)

    @pytest.mark.timeout(30)
    def test_many_unfired_faults_are_counted(self) -> None:
        """Of 10,000 faults that cannot fire, 20 are listed and the rest counted in one line."""
        r = both(faults=[{"kind": "device_error", "at_request": 1000 + i} for i in range(10_000)])
        assert len(r.warnings) == 21
        assert r.warnings[-1] == "and 9,980 more device faults never fired"
