"""
Resume from hibernation (``event = "hibernate-resume"``): reads through the hibernation stack, Dump_Read, decompression, unload.

The machine is test_hibernation's: 2 MiB of RAM, 256 pages kept, a 528,384-byte body compressed
to half, 1 GB/s compression; here also 1 GB/s decompression, and dumpfve.sys (1 µs + 0.3 ns/B per
call). Resume starts 5 s after the hibernation ends; the port's reset takes 100 µs, each read 5 µs
in the port and 20 µs + length / 3 GB/s in the device.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from conftest import make_scenario

from stacksim import FilterCatalog, ListTrace, simulate
from stacksim.check import check_records
from stacksim.filters import DumpFilter, FilterExtension
from stacksim.requests import DumpRequest

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"

RESUME: dict[str, Any] = {
    "scenario": {"name": "r", "event": "hibernate-resume", "hibernate_at": "10 ms", "bugcheck_at": None},
    "registry": {"DumpFilters": ["dumpfve.sys"]},
    "memory": {"ram": "2 MiB", "kernel_fraction": 0.25, "free_fraction": 0.5, "file_cache_fraction": 0, "guest_fraction": 0},
    "hibernation": {
        "compress_rate": "1 GB/s",
        "decompress_rate": "1 GB/s",
        "compressed_fraction": {"kernel": 0.5, "user": 0.5},
    },
    "dump_port": {"reset": "100 us"},
}


def resume_run(catalog: FilterCatalog | None = None, **over: Any) -> tuple[Any, None]:
    """Run RESUME with *over* merged into its tables, untraced (a trace of a resume is refused for now)."""
    sections = {k: dict(v) for k, v in RESUME.items()}
    for key, value in over.items():
        sections[key] = {**sections.get(key, {}), **value} if isinstance(value, dict) else value
    catalog = catalog or FilterCatalog()
    return simulate(make_scenario(catalog, **sections), catalog), None


def test_the_image_is_read_back_in_the_pieces_it_was_written_in() -> None:
    """The header, then the body's 8 full reads of 64 KiB and one of 4 KiB: 10 reads of every byte written."""
    result, _ = resume_run()
    assert result.resume.status == "resumed"
    assert (result.resume.reads, result.resume.bytes_read) == (10, result.bytes_written)


def test_resume_starts_resume_after_the_hibernation_ended() -> None:
    """resume_after (default 5 s) after the final flush, the resume loader starts."""
    result, _ = resume_run()
    assert result.resume.start_ns == 10_000_000 + result.dump_time_ns + 5 * 10**9


def test_every_read_goes_through_dumpfve_dump_read() -> None:
    """dumpfve.sys (read-capable) is called once per read, seeing DumpType hibernation."""
    result, _ = resume_run()
    assert result.resume.read_by == ("dumpfve.sys",)
    assert result.resume.layers["dumpfve.sys"].calls == 10


def test_decompression_bounds_resume_and_is_counted_at_its_rate() -> None:
    """Each body read's memory at 1 GB/s (8 × 130,056 + 8,129 ns) is the decompressor's busy time, longer than the reads."""
    result, _ = resume_run()
    busy = result.resume.layers["decompressor"].busy_ns
    assert busy == 8 * 130_056 + 8_129
    assert result.resume.time_ns > busy


def test_the_write_statistics_are_not_mixed_with_the_reads() -> None:
    """The result's layers are the hibernation's: 10 device writes and a flush; resume's reads are in resume.layers."""
    result, _ = resume_run()
    assert result.layers["device"].calls == 11
    assert result.resume.layers["device"].calls == 10


def test_a_version_1_filter_is_never_called_and_the_image_is_undecryptable() -> None:
    """dumpfve.sys with read_support = false encrypts but cannot read: resume reads the header, calls nothing, and says why."""
    result, _ = resume_run(filters={"dumpfve.sys": {"read_support": False}})
    res = result.resume
    assert (res.status, res.undecryptable_by, res.read_by, res.reads) == ("undecryptable", ("dumpfve.sys",), (), 1)
    assert "dumpfve.sys" not in res.layers
    assert "could not be decrypted" in res.message


def test_power_loss_before_the_header_is_written_refuses_resume() -> None:
    """The header is written last: power lost during the body leaves no valid header, and nothing is read."""
    result, _ = resume_run(faults=[{"kind": "power_loss", "at": "500 us"}])
    assert result.status == "power_lost"
    assert (result.resume.status, result.resume.reads) == ("refused", 0)


def test_power_loss_after_the_header_is_written_resumes() -> None:
    """Power lost after the header (during the final flush) leaves a complete image: resume reads it back."""
    whole, _ = resume_run()
    result, _ = resume_run(faults=[{"kind": "power_loss", "at": f"{whole.dump_time_ns - 1} ns"}])
    assert result.status == "power_lost"
    assert result.header_written
    assert result.resume.status == "resumed"


def test_a_skipped_filter_is_not_called_on_resume() -> None:
    """dumpfve.sys without BitLocker declines to load: nothing encrypted the image, it resumes with no dump_read."""
    result, _ = resume_run(filters={"dumpfve.sys": {"bitlocker": False}})
    assert (result.resume.status, result.resume.read_by) == ("resumed", ())


def test_a_hibernation_that_wrote_nothing_is_not_resumed() -> None:
    """Uncompressed, the image overflows the 40 % hiberfile: hibernation fails (0xA0) and there is nothing to resume."""
    result, _ = resume_run(hibernation={"compression": False})
    assert (result.status, result.resume.status, result.resume.reads) == ("file_too_small", "not_attempted", 0)


class _Tracker(DumpFilter):
    """Records the order and DumpType of its dump_read calls (a read-capable filter)."""

    service_name = "tracker.sys"
    calls: ClassVar[list[tuple[str, int, int]]] = []

    def driver_entry(self, extension: Any, init: Any) -> int:
        status = super().driver_entry(extension, init)
        init.flags = 1  # DUMP_FILTER_FLAG_SYSTEM_SUPPORT_READ
        return status

    async def dump_read(self, extension: FilterExtension, request: DumpRequest) -> int:
        _Tracker.calls.append((self.service_name, request.number, int(extension.dump_type)))
        return 0


class _Second(_Tracker):
    service_name = "second.sys"


def test_dump_read_runs_in_the_reverse_of_write_order_with_dumptype_hibernation() -> None:
    """Two read-capable filters: after each read the one nearest the disk (last in DumpFilters) is called first."""
    catalog = FilterCatalog()
    catalog.add(_Tracker, "test")
    catalog.add(_Second, "test")
    _Tracker.calls = []
    result, _ = resume_run(catalog, registry={"DumpFilters": ["tracker.sys", "second.sys"]})
    assert result.resume.read_by == ("second.sys", "tracker.sys")
    assert _Tracker.calls[:4] == [("second.sys", 1, 2), ("tracker.sys", 1, 2), ("second.sys", 2, 2), ("tracker.sys", 2, 2)]
    assert len(_Tracker.calls) == 2 * result.resume.reads


def traced(**over: Any) -> tuple[Any, list[dict[str, Any]]]:
    """RESUME with three filters (faultflt.sys: an unload; delayflt.sys with read support; dumpfve.sys), traced."""
    sections = {k: dict(v) for k, v in RESUME.items()}
    sections["registry"] = {"DumpFilters": ["faultflt.sys", "delayflt.sys", "dumpfve.sys"]}
    sections["filters"] = {"delayflt.sys": {"read": True}}
    for key, value in over.items():
        sections[key] = {**sections.get(key, {}), **value} if isinstance(value, dict) else value
    catalog = FilterCatalog()
    trace = ListTrace()
    result = simulate(make_scenario(catalog, **sections), catalog, trace=trace)
    return result, [dict(r) for r in trace.records]


def rules(records: list[dict[str, Any]]) -> set[str]:
    """The rules the records break."""
    return {v.rule for v in check_records(records)}


def renumber(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """*records* with seq 1, 2, 3, … again (after records were taken out)."""
    for seq, r in enumerate(records, 1):
        r["seq"] = seq
    return records


class TestCheck:
    """stacksim check's resume rule: the read path after the image is complete, through the right filters, unload last."""

    def test_a_round_trip_trace_passes_every_rule(self) -> None:
        """Hibernation, then resume with two read-capable filters and an unload: no rule is broken."""
        result, records = traced()
        assert result.resume.status == "resumed"
        assert result.resume.read_by == ("dumpfve.sys", "delayflt.sys")
        assert check_records(records) == []

    def test_dump_read_out_of_order_is_caught(self) -> None:
        """The two dump_read records of a read swapped (times kept in step): the resume rule names the order."""
        _, records = traced()
        first = next(i for i, r in enumerate(records) if r["event"] == "dump_read")
        a, b = records[first], records[first + 1]
        a["layer"], b["layer"] = b["layer"], a["layer"]
        a["dur_ns"], b["dur_ns"] = b["dur_ns"], a["dur_ns"]
        b["t_ns"] = a["t_ns"] + a["dur_ns"]
        assert rules(records) == {"resume"}

    def test_dump_read_by_a_filter_without_read_support_is_caught(self) -> None:
        """A dump_read recorded for faultflt.sys, which registered none, breaks the resume rule."""
        _, records = traced()
        read = next(r for r in records if r["event"] == "dump_read")
        read["layer"] = "faultflt.sys"
        assert "resume" in rules(records)

    def test_unloading_before_the_last_read_is_caught(self) -> None:
        """The last read taken out (later records moved up): the unload and resume_complete come before the image was read."""
        _, records = traced()
        start = max(i for i, r in enumerate(records) if r["event"] == "issue_read")
        end = max(i for i, r in enumerate(records) if r["event"] == "read_complete")
        span = records[end]["t_ns"] - records[start]["t_ns"]
        del records[start : end + 1]
        for r in records[start:]:
            r["t_ns"] -= span
        assert "resume" in rules(renumber(records))

    def test_a_dump_read_the_watchdog_cut_passes(self) -> None:
        """A hung dump_read leaves no record; resume_failed comes one watchdog period after the read: a genuine trace."""
        result, records = traced(
            filters={"delayflt.sys": {"read": True}, "faultflt.sys": {"action": "hang", "callback": "dump_read", "at_request": 3}}
        )
        assert result.resume.status == "failed"
        assert check_records(records) == []

    def test_resume_going_on_after_a_failed_dump_read_is_caught(self) -> None:
        """A dump_read's status edited to STATUS_UNSUCCESSFUL while the reads go on: resume should have stopped."""
        _, records = traced()
        next(r for r in records if r["event"] == "dump_read")["status"] = "STATUS_UNSUCCESSFUL"
        assert rules(records) == {"resume"}

    def test_a_read_path_record_of_the_crash_stack_is_caught(self) -> None:
        """A dump_read with dump_type crashdump: resume runs the hibernation stack."""
        _, records = traced()
        next(r for r in records if r["event"] == "dump_read")["dump_type"] = "crashdump"
        assert rules(records) == {"dump_type"}

    def test_a_dump_read_at_another_offset_is_caught(self) -> None:
        """A dump_read recorded 4 KiB past its read's offset, with resume going on, breaks the resume rule."""
        _, records = traced()
        next(r for r in records if r["event"] == "dump_read")["offset"] += 4096
        assert rules(records) == {"resume"}

    def test_resume_failed_without_a_cause_is_caught(self) -> None:
        """The trace cut after read 5 and ended with resume_failed: nothing made resume fail there."""
        _, records = traced()
        cut = next(i for i, r in enumerate(records) if r["event"] == "read_complete" and r["request"] == 5)
        end = dict(records[cut], event="resume_failed", request=None, offset=None, length=None)
        assert rules(renumber([*records[: cut + 1], end])) == {"resume"}

    def test_resuming_a_torn_hibernation_is_caught(self) -> None:
        """A resume after a hibernation whose header was never written (power lost) breaks the resume rule."""
        _, torn = traced(faults=[{"kind": "power_loss", "at": "500 us"}])
        _, whole = traced()
        start = next(i for i, r in enumerate(whole) if r["event"] == "resume")
        assert "resume" in rules(renumber(torn + whole[start:]))


def faulty(action: str) -> Any:
    """RESUME with faultflt.sys doing *action* in dump_read of read #2 (besides dumpfve.sys)."""
    result, _ = resume_run(
        registry={"DumpFilters": ["faultflt.sys", "dumpfve.sys"]},
        filters={"faultflt.sys": {"action": action, "callback": "dump_read", "at_request": 2}},
    )
    return result


def test_a_dump_read_that_returns_an_error_stops_resume() -> None:
    """faultflt.sys's dump_read returns STATUS_UNSUCCESSFUL for read #2: resume fails there, naming it (ASSUMPTION)."""
    res = faulty("fail").resume
    assert (res.status, res.reads) == ("failed", 1)
    assert "faultflt.sys's dump_read returned STATUS_UNSUCCESSFUL" in res.message


def test_a_dump_read_may_change_the_contents() -> None:
    """Writing into the pages just read (through the MDL) is what Dump_Read is for: resume goes on."""
    assert faulty("write_caller_buffer").resume.status == "resumed"


def test_a_dump_read_may_not_move_the_offset() -> None:
    """Dump_Read changing the offset [DOC S9 forbids it] stops resume with a named violation."""
    res = faulty("change_offset").resume
    assert res.status == "failed"
    assert "dump_read changed the offset of request #2" in res.message


def test_faultflt_on_dump_read_declares_read_support() -> None:
    """callback = "dump_read" is enough for resume to call faultflt.sys (no critical = true needed)."""
    assert faulty("none").resume.read_by == ("dumpfve.sys", "faultflt.sys")
