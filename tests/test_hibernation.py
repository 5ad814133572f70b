"""
Hibernation: which pages the image keeps, its compressed size, and how the compressor paces the writes.

The machine: 2 MiB of RAM, a quarter kernel pages, a quarter user pages, half free; every class
compresses to half; the compressor reads 1 GB/s. The image keeps 256 pages (1 MiB) in 16 sets:
512 KiB of data and 16 × 12 bytes of set headers, 528,384 bytes in whole pages. A 64 KiB body
write carries ⌈65,536 × 1,048,576 ÷ 528,384⌉ bytes' worth of compression: 130,056 ns. The port
takes 5 µs and the disk 20 µs + 64 KiB at 3 GB/s per write, 46,846 ns in all: the compressor is
the slower of the two. The port's reset takes 100 µs.
"""

from __future__ import annotations

from typing import Any

import pytest
from conftest import make_scenario, run

from stacksim import ListTrace, ScenarioError
from stacksim.check import check_records

HIBERNATE: dict[str, Any] = {
    "scenario": {"name": "h", "event": "hibernate", "hibernate_at": "10 ms", "bugcheck_at": None},
    "memory": {"ram": "2 MiB", "kernel_fraction": 0.25, "free_fraction": 0.5, "file_cache_fraction": 0, "guest_fraction": 0},
    "hibernation": {"compress_rate": "1 GB/s", "compressed_fraction": {"kernel": 0.5, "user": 0.5}},
    "dump_port": {"reset": "100 us"},
}
FULL_WRITE_COST = 130_056
"""Compression time of one 64 KiB body write, ns."""
BODY_START = 10_100_000
"""The hibernation starts at 10 ms and the port's reset takes 100 µs: the body's first write could go then."""


def hibernate(**over: Any) -> tuple[Any, ListTrace]:
    """Run HIBERNATE with *over* merged into its [hibernation] table (and other tables)."""
    sections = {k: dict(v) for k, v in HIBERNATE.items()}
    for key, value in over.items():
        sections[key] = {**sections.get(key, {}), **value}
    return run(**sections)


def times(trace: ListTrace, event: str) -> dict[int, int]:
    """request number → t_ns of each *event* record."""
    return {r["request"]: r["t_ns"] for r in trace.records if r["event"] == event}


def test_the_image_keeps_kernel_and_user_pages_compressed() -> None:
    """A hibernation keeps the kernel and user pages; the body is their compressed bytes plus set headers, in pages."""
    result, _ = hibernate()
    assert result.hibernation["pages_kept"] == {"kernel": 128, "user": 128}
    assert result.parts == {"body": 528_384, "header": 4096}
    assert result.hibernation["body_estimated"] is True


def test_fast_startup_keeps_the_kernel_session_only() -> None:
    """mode = "fast-startup" keeps the kernel pages: 128 pages, 256 KiB of data and 8 set headers."""
    result, _ = hibernate(hibernation={"mode": "fast-startup"})
    assert result.hibernation["pages_kept"] == {"kernel": 128}
    assert result.parts["body"] == 266_240  # 262,144 + 96, rounded up to pages


def test_keep_file_cache_adds_the_file_cache() -> None:
    """keep_file_cache = true keeps file-cache pages too, at their own compressed fraction."""
    result, _ = hibernate(
        memory={"file_cache_fraction": 0.25, "free_fraction": 0.25},
        hibernation={"keep_file_cache": True, "compressed_fraction": {"kernel": 0.5, "user": 0.5, "file_cache": 0.25}},
    )
    assert result.hibernation["pages_kept"] == {"kernel": 128, "user": 128, "file_cache": 128}


def test_the_first_write_waits_for_its_own_compression() -> None:
    """Nothing is compressed before hibernation starts: the first body write is issued one write's compression after the reset."""
    _, trace = hibernate()
    assert times(trace, "issue_write")[1] == BODY_START + FULL_WRITE_COST


def test_with_overlap_each_write_is_issued_one_compression_after_the_last() -> None:
    """Double buffering: the next write is compressed while the current one is written: issues are 130,056 ns apart."""
    _, trace = hibernate()
    issued = times(trace, "issue_write")
    assert [issued[k + 1] - issued[k] for k in range(1, 8)] == [FULL_WRITE_COST] * 7


def test_without_overlap_compression_starts_when_a_write_completes() -> None:
    """compress_overlap = false: each write is issued its compression time after the previous write completed."""
    _, trace = hibernate(hibernation={"compress_overlap": False})
    issued, done = times(trace, "issue_write"), times(trace, "write_complete")
    assert [issued[k + 1] - done[k] for k in range(1, 8)] == [FULL_WRITE_COST] * 7


def test_a_write_whose_bytes_are_ready_does_not_wait() -> None:
    """The short last body write (4 KiB, 8,129 ns of compression) is ready before the write ahead of it completes: no wait."""
    _, trace = hibernate()
    waits = times(trace, "compress_wait")
    assert sorted(waits) == list(range(1, 9))
    assert times(trace, "issue_write")[9] == times(trace, "write_complete")[8]


def test_the_compressor_is_busy_for_the_memory_at_its_rate() -> None:
    """The compressor's busy time is 1 MiB at 1 GB/s, each write's share rounded up: 8 × 130,056 + 8,129 ns."""
    result, _ = hibernate()
    assert result.layers["compressor"].busy_ns == 8 * FULL_WRITE_COST + 8_129
    assert result.hibernation["compress_ns"] == 1_048_577


def test_the_wait_is_what_the_bottleneck_line_takes_off() -> None:
    """Without the compressor the dump would be shorter by the time crashdmp waited for it, not by its busy time."""
    result, _ = hibernate()
    assert result.bottleneck == "compressor"
    assert result.time_without("compressor") == result.dump_time_ns - result.hibernation["compress_wait_ns"]


def test_uncompressed_pages_are_written_raw_without_a_compressor() -> None:
    """compression = false: 1 MiB of pages and 16 set headers, no compressor layer, no wait."""
    result, trace = hibernate(hibernation={"compression": False}, layout={"size": "2 MiB"})
    assert result.parts["body"] == 1_052_672
    assert "compressor" not in result.layers
    assert not times(trace, "compress_wait")


def test_an_image_larger_than_the_hiberfile_is_refused() -> None:
    """Uncompressed, the image (1 MiB + a page) does not fit the 40 % hiberfile of 2 MiB of RAM: bug check 0xA0, no write."""
    result, _ = hibernate(hibernation={"compression": False})
    assert result.status == "file_too_small"
    assert "0xA0" in result.message


def test_a_reduced_hiberfile_is_for_fast_startup_only() -> None:
    """hiberfile_type = "reduced" with mode = "hibernate" is refused, naming the key."""
    data = {k: dict(v) for k, v in HIBERNATE.items()}
    data["hibernation"]["hiberfile_type"] = "reduced"
    with pytest.raises(ScenarioError, match="reduced"):
        make_scenario(**data)


class TestCheck:
    """``stacksim check``'s compression rule recomputes every wait."""

    def test_a_genuine_trace_passes(self) -> None:
        """The trace of a compressed hibernation passes every rule."""
        _, trace = hibernate()
        assert check_records(trace.records) == []

    def test_a_shortened_wait_is_caught(self) -> None:
        """A compress_wait 1 ns shorter, with every later record moved to match, breaks the compression rule."""
        _, trace = hibernate()
        records = [dict(r) for r in trace.records]
        at = next(i for i, r in enumerate(records) if r["event"] == "compress_wait" and r["request"] == 3)
        records[at]["dur_ns"] -= 1
        for r in records[at + 1 :]:
            r["t_ns"] -= 1
        assert {v.rule for v in check_records(records)} == {"compression"}

    def test_a_deleted_wait_is_caught(self) -> None:
        """Without its compress_wait (the later records moved up), a write is issued before its bytes were ready."""
        _, trace = hibernate()
        records = [dict(r) for r in trace.records]
        at = next(i for i, r in enumerate(records) if r["event"] == "compress_wait" and r["request"] == 3)
        gone = records.pop(at)
        for r in records[at:]:
            r["t_ns"] -= gone["dur_ns"]
            r["seq"] -= 1
        assert {v.rule for v in check_records(records)} == {"compression"}

    def test_a_wait_in_an_uncompressed_run_is_caught(self) -> None:
        """A compress_wait where the dump_context compresses nothing breaks the rule."""
        _, trace = hibernate()
        records = [dict(r) for r in trace.records]
        for r in records:
            if r["event"] == "dump_context":
                r["detail"] = {k: v for k, v in r["detail"].items() if k != "compression"}
        assert "compression" in {v.rule for v in check_records(records)}


@pytest.mark.parametrize("mode", ["hibernate", "fast-startup"])
def test_the_timing_estimate_is_within_a_tenth_of_a_percent_of_the_compressed_body(mode: str, tmp_path: Any) -> None:
    """The default compressed fractions predict what zlib level 1 writes for stacksim's pages (16 MiB, seed 1)."""
    from stacksim.hiberfile import write_body
    from stacksim.physmem import PageClass, PhysicalMemory

    s = make_scenario(scenario=HIBERNATE["scenario"], memory={"ram": "16 MiB"}, hibernation={"mode": mode})
    memory = PhysicalMemory.from_scenario(s)
    with (tmp_path / "body").open("w+b") as out:
        written = write_body(memory, memory.pfns_of({PageClass[n.upper()] for n in s.hibernation.kept_classes}), out)
    assert abs(s.dump_plan().parts[0].bytes / written.body_bytes - 1) < 0.001


class TestPowerLoss:
    """The power fails while crashdmp waits for the compressor (10.2 ms: during the first write's 130,056 ns of compression)."""

    def test_the_run_ends_before_the_write_is_issued(self) -> None:
        """No write is issued after the power failed; the message says crashdmp was waiting for the compressor."""
        result, trace = run_with_power_loss()
        assert result.status == "power_lost"
        assert "while crashdmp waited for the compressor before request #1 was issued" in result.message
        assert not times(trace, "issue_write")

    def test_the_wait_and_the_work_stop_at_the_power_failure(self) -> None:
        """The compress_wait ends at the failure, and the compressor is charged only the 100 µs it ran."""
        result, trace = run_with_power_loss()
        wait = next(r for r in trace.records if r["event"] == "compress_wait")
        assert (wait["t_ns"], wait["t_ns"] + wait["dur_ns"]) == (BODY_START, 10_200_000)
        assert result.hibernation["compress_ns"] == 100_000
        assert result.hibernation["compress_wait_ns"] == 100_000

    def test_a_wait_past_the_power_failure_is_caught(self) -> None:
        """A compress_wait stretched past power_loss_ns breaks the compression rule."""
        _, trace = run_with_power_loss()
        records = [dict(r) for r in trace.records]
        wait = next(r for r in records if r["event"] == "compress_wait")
        wait["dur_ns"] += 1
        for r in records[records.index(wait) + 1 :]:
            r["t_ns"] += 1
        assert "compression" in {v.rule for v in check_records(records)}


def run_with_power_loss(at: str = "200 us") -> tuple[Any, ListTrace]:
    """HIBERNATE with the power failing *at* after hibernation starts (default: 100 µs into the first write's compression)."""
    sections = {k: dict(v) for k, v in HIBERNATE.items()}
    return run(faults=[{"kind": "power_loss", "at": at}], **sections)


def test_power_failing_the_instant_the_wait_begins_leaves_a_wait_of_0_ns() -> None:
    """Power lost exactly when the port's reset ends: a 0 ns compress_wait, then dump_failed; the trace passes check."""
    result, trace = run_with_power_loss("100 us")
    assert result.status == "power_lost"
    wait = next(r for r in trace.records if r["event"] == "compress_wait")
    assert (wait["t_ns"], wait["dur_ns"]) == (BODY_START, 0)


def test_a_power_failure_during_the_final_flush_stops_the_flush_there() -> None:
    """A 1 s flush cut by the power at 20 ms: the flush is charged until then, the header (written) makes the image whole."""
    sections = {k: dict(v) for k, v in HIBERNATE.items()}
    sections["disk"] = {"model": "fixed", "latency": "20 us", "bandwidth": "3 GB/s", "flush": "1 s"}
    result, trace = run(faults=[{"kind": "power_loss", "at": "20 ms"}], **sections)  # (the trace passes check)
    flush = next(r for r in trace.records if r["event"] == "flush")
    assert result.status == "power_lost"
    assert result.header_written
    assert flush["t_ns"] + flush["dur_ns"] == 30_000_000  # 10 ms + 20 ms: where the power failed
    assert result.layers["device"].busy_ns <= result.dump_time_ns
