"""
Batched runs joined across disk runs: a write length not yet asked of every filter starts a run of its own.

Batched mode joins consecutive disk runs into one run of pieces whose lengths may differ (a disk
run's tail). A new length is asked of the filters (``write_cost``) where request mode asks it,
and its first write is a real call, so watchdogs, broken declarations and failing declarations
give request mode's result.
"""

from __future__ import annotations

from typing import Any, ClassVar

from conftest import make_scenario, without_mode

from stacksim import DumpFilter, DumpRequest, FilterCatalog, FilterExtension, simulate, spend
from stacksim.trace import ListTrace

# 40 disk runs of seven 64 KiB writes and one 12 KiB write each (max_transfer 64 KiB).
TAILED_RUNS = [{"offset": i * 2**21, "length": 7 * 65536 + 12288} for i in range(40)]


def _both(cls: type[DumpFilter], **sections: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    catalog = FilterCatalog()
    catalog.add(cls, "test")
    s = make_scenario(
        catalog,
        registry={"CrashDumpEnabled": 1, "DumpFilters": [cls.service_name]},
        memory={"ram": "8 MiB"},
        layout={"runs": TAILED_RUNS},
        **sections,
    )
    return simulate(s, catalog).as_dict(), simulate(s, catalog, batch=False).as_dict()


class SlowTail(DumpFilter):
    """An honest filter: 10 us a 12 KiB write, 1 us any other; dump_write spends exactly what write_cost declares."""

    service_name: ClassVar[str] = "slowtail.sys"

    def write_cost(self, extension: FilterExtension | None, length: int) -> int:
        return 10_000 if length == 12288 else 1_000

    async def dump_write(self, extension: FilterExtension, request: DumpRequest) -> int:
        spend(self.write_cost(extension, request.length))
        return 0


def test_an_honest_cost_at_the_watchdog_on_tail_writes_hangs_in_batched_mode_too() -> None:
    """Watchdog 5 us: request mode hangs at request #17 (the first 12 KiB write); batched mode must not report ok."""
    batched, single = _both(SlowTail, engine={"watchdog": "5 us"})
    assert (single["status"], single["write_requests"]) == ("hung", 16)
    assert (batched["status"], batched["write_requests"]) == ("hung", 16)


class ShortLiar(DumpFilter):
    """Declares 1 us a write; really spends 5 us on writes other than 64 KiB (only the disk runs' tails)."""

    service_name: ClassVar[str] = "shortliar.sys"

    def write_cost(self, extension: FilterExtension | None, length: int) -> int:
        return 1_000

    async def dump_write(self, extension: FilterExtension, request: DumpRequest) -> int:
        spend(1_000 if request.length == 65536 else 5_000)
        return 0


def test_a_declaration_broken_for_every_tail_write_gives_request_modes_result() -> None:
    """Every 12 KiB write breaks the declaration: engine.md promises request mode's result."""
    batched, single = _both(ShortLiar)
    assert batched["dump_time_ns"] == single["dump_time_ns"]
    assert without_mode(batched) == without_mode(single)


class Picky(DumpFilter):
    """write_cost raises for 12 KiB writes: the dump ends filter_crashed when crashdmp first asks for that length."""

    service_name: ClassVar[str] = "picky.sys"

    def write_cost(self, extension: FilterExtension | None, length: int) -> int:
        if length == 12288:
            raise ValueError("no cost model for 12 KiB writes")
        return 1_000

    async def dump_write(self, extension: FilterExtension, request: DumpRequest) -> int:
        spend(1_000)
        return 0


def test_a_write_cost_that_raises_for_a_later_length_fails_after_the_same_writes() -> None:
    """Request mode writes 16 writes before asking for 12 KiB, and so does batched mode."""
    batched, single = _both(Picky)
    assert (single["status"], single["write_requests"]) == ("filter_crashed", 16)
    assert without_mode(batched) == without_mode(single)


def test_delayflt_over_the_watchdog_on_64k_writes_hangs_at_the_first_one_after_small_disk_runs() -> None:
    """A file of 13 one-page disk runs, then large ones; delayflt 0.1 ns/B (64 KiB: 6.6 us) with a 5 us watchdog."""
    catalog = FilterCatalog()
    runs = [{"offset": i * 2**20, "length": 4096} for i in range(13)]
    runs += [{"offset": 2**26 + i * 2**22, "length": 2**21} for i in range(8)]
    s = make_scenario(
        catalog,
        registry={"CrashDumpEnabled": 1, "DumpFilters": ["delayflt.sys"]},
        memory={"ram": "8 MiB"},
        filters={"delayflt.sys": {"per_byte": "0.1 ns"}},
        layout={"runs": runs},
        engine={"watchdog": "5 us"},
    )
    batched, single = simulate(s, catalog).as_dict(), simulate(s, catalog, batch=False).as_dict()
    assert (single["status"], single["write_requests"]) == ("hung", 13)
    assert (batched["status"], batched["write_requests"]) == ("hung", 13)


def test_a_traced_run_asks_a_later_length_where_request_mode_does() -> None:
    """Disk runs of one 64 KiB write and one 12 KiB write, traced: naming the trace as a reason asks no write_cost early."""
    catalog = FilterCatalog()
    catalog.add(Picky, "test")
    runs = [{"offset": i * 2**21, "length": 65536 + 12288} for i in range(200)]
    s = make_scenario(
        catalog, registry={"CrashDumpEnabled": 1, "DumpFilters": ["picky.sys"]}, memory={"ram": "4 MiB"}, layout={"runs": runs}
    )
    traced = simulate(s, catalog, trace=ListTrace()).as_dict()
    single = simulate(s, catalog, batch=False, trace=ListTrace()).as_dict()
    assert (single["status"], single["write_requests"]) == ("filter_crashed", 4)
    assert without_mode(traced) == without_mode(single)
