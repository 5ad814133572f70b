"""Simulated physical memory: the memory map, page classes that match the dump plans, page contents and markers."""

from __future__ import annotations

import itertools
import json
import os
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import invoke_cli

from stacksim import FilterCatalog, ScenarioError, validate_scenario
from stacksim._io import atomic_binary_writer
from stacksim.memory import DumpPlan, plan_crash_dump
from stacksim.physmem import (
    EXTENT_PAGES,
    MAGIC,
    MAX_MEMORY_RUNS,
    MAX_PFN,
    MemoryMap,
    PageClass,
    PhysicalMemory,
    _ExtentPermutation,
    class_runs,
    count_markers,
    find_markers,
    memory_map,
    page_counts,
    realistic_map,
    runs_problem,
)
from stacksim.scenario import Scenario

MiB, GiB = 2**20, 2**30


def body_bytes(plan: DumpPlan) -> int:
    """The bytes of *plan*'s body, found by name (the header and the bitmap come before it)."""
    [body] = [p.bytes for p in plan.parts if p.name == "body"]
    return body


def scenario(seed: int = 7, **memory: Any) -> Scenario:
    """A crash scenario with *memory* as its ``[memory]`` table."""
    return validate_scenario({"scenario": {"name": "m", "seed": seed}, "memory": memory}, "<test>", FilterCatalog())


def physical(seed: int = 7, **memory: Any) -> PhysicalMemory:
    """The physical memory of :func:`scenario`."""
    return PhysicalMemory.from_scenario(scenario(seed, **memory))


def all_classes(pm: PhysicalMemory) -> np.ndarray:
    """Every page's class, in index order."""
    return pm.classes(0, pm.map.total_pages)


class TestRealisticMap:
    """The default map: a typical x86-64 PC's, holding exactly ram / 4096 pages."""

    def test_small_ram_has_the_hole_below_1_mib(self) -> None:
        """64 MiB: conventional memory at pages 1–0x9E, the rest from 1 MiB."""
        assert realistic_map(64 * MiB).runs == ((1, 0x9E), (0x100, 16384 - 0x9E))

    def test_ram_above_3_gib_continues_at_4_gib(self) -> None:
        """4.5 GiB: RAM below 1 MiB, from 1 MiB to 3 GiB, and the rest from 4 GiB on."""
        pages = int(4.5 * GiB) // 4096
        assert realistic_map(int(4.5 * GiB)).runs == (
            (1, 0x9E),
            (0x100, 0xC0000 - 0x100),
            (0x100000, pages - 0x9E - (0xC0000 - 0x100)),
        )

    @pytest.mark.parametrize("ram", [4096, 0x9E * 4096, 0x9F * 4096, MiB, 3 * GiB, 3 * GiB + 4096, 8 * GiB, 2**52])
    def test_the_map_holds_exactly_the_ram(self, ram: int) -> None:
        """Whatever the RAM, the runs hold ram / 4096 pages: the holes move RAM up, they take none away."""
        assert realistic_map(ram).total_pages == ram // 4096

    @pytest.mark.parametrize("ram", [MiB, 3 * GiB, 4 * GiB, 64 * GiB, 2**52])
    def test_no_run_is_in_the_firmware_or_pci_holes(self, ram: int) -> None:
        """Page 0, 0x9F000–0xFFFFF and 3–4 GiB hold no RAM."""
        for base, count in realistic_map(ram).runs:
            end = base + count
            assert base >= 1
            assert not (base < 0x100 and end > 0x9F)
            assert not (base < 0x100000 and end > 0xC0000)

    def test_tiny_ram_is_one_run(self) -> None:
        """RAM that fits in conventional memory is one run from page 1."""
        assert realistic_map(40 * 4096).runs == ((1, 40),)

    def test_ram_must_be_whole_pages(self) -> None:
        """A RAM size that is not a whole number of pages is refused."""
        with pytest.raises(ValueError, match="whole number of 4 KiB pages"):
            realistic_map(4097)


class TestMemoryMap:
    """Page indices (run order) and PFNs (physical address ÷ 4096)."""

    MAP = MemoryMap(((1, 3), (10, 5), (100, 2)))

    def test_total_pages_and_max_pfn(self) -> None:
        """total_pages sums the runs; max_pfn is the last run's end."""
        assert (self.MAP.total_pages, self.MAP.max_pfn) == (10, 102)

    def test_pfn_at_counts_in_run_order(self) -> None:
        """Index 0 is the first run's base page; indices continue into the next run."""
        assert [self.MAP.pfn_at(i) for i in range(10)] == [1, 2, 3, 10, 11, 12, 13, 14, 100, 101]

    def test_pfns_is_pfn_at_for_a_range(self) -> None:
        """pfns(start, n) gives the same PFNs as pfn_at, across run boundaries."""
        assert self.MAP.pfns(2, 7).tolist() == [self.MAP.pfn_at(i) for i in range(2, 9)]

    def test_index_of_inverts_pfn_at(self) -> None:
        """index_of(pfn_at(i)) is i for every page."""
        assert [self.MAP.index_of(self.MAP.pfn_at(i)) for i in range(10)] == list(range(10))

    @pytest.mark.parametrize("pfn", [0, 4, 9, 15, 99, 102])
    def test_a_pfn_in_a_hole_has_no_index(self, pfn: int) -> None:
        """A PFN between runs or beyond them is not RAM."""
        with pytest.raises(ValueError, match="hole"):
            self.MAP.index_of(pfn)

    def test_indices_of_is_index_of_for_an_array(self) -> None:
        """indices_of maps an array of PFNs (any order) to their indices."""
        pfns = np.array([101, 1, 14, 10, 3], dtype=np.uint64)
        assert self.MAP.indices_of(pfns).tolist() == [self.MAP.index_of(int(p)) for p in pfns]

    def test_indices_of_a_hole_is_refused(self) -> None:
        """indices_of names the first PFN that is in a hole."""
        with pytest.raises(ValueError, match="PFN 0x0 is in a hole"):
            self.MAP.indices_of(np.array([1, 0, 4], dtype=np.uint64))

    def test_an_index_past_the_end_is_refused(self) -> None:
        """pfn_at and pfns refuse indices beyond the map."""
        with pytest.raises(IndexError):
            self.MAP.pfn_at(10)
        with pytest.raises(IndexError):
            self.MAP.pfns(5, 6)

    def test_bad_runs_are_refused(self) -> None:
        """A MemoryMap checks its runs as the scenario does."""
        with pytest.raises(ValueError, match="touch"):
            MemoryMap(((1, 3), (4, 1)))


class TestRunsRules:
    """runs_problem: what an explicit list of runs must be."""

    @pytest.mark.parametrize(
        ("runs", "words"),
        [
            ([], "no memory"),
            ([(10, 5), (1, 3)], "sorted"),
            ([(1, 10), (5, 10)], "overlap"),
            ([(1, 3), (4, 2)], "touch"),
            ([(1, 0)], "page count > 0"),
            ([(-1, 3)], "≥ 0"),
            ([(MAX_PFN - 1, 2)], "52-bit"),
            ([(2 * i, 1) for i in range(MAX_MEMORY_RUNS + 1)], "at most 42"),
        ],
        ids=["empty", "unsorted", "overlapping", "adjacent", "zero-pages", "negative", "past-52-bits", "too-many"],
    )
    def test_a_bad_list_is_named(self, runs: list[tuple[int, int]], words: str) -> None:
        """Each broken rule gets a message saying which."""
        problem = runs_problem(runs)
        assert problem is not None
        assert words in problem

    def test_a_good_list_has_no_problem(self) -> None:
        """Sorted, separated runs of at most 42 are fine."""
        assert runs_problem([(2 * i, 1) for i in range(MAX_MEMORY_RUNS)]) is None


class TestMemoryKeys:
    """``[memory] map`` and ``runs`` in a scenario, and the kernel ≤ active rule."""

    def test_explicit_runs_are_the_map(self) -> None:
        """runs = [[base, count], ...] is the memory map."""
        s = scenario(ram=5 * 4096, runs=[[1, 3], [16, 2]])
        assert memory_map(s.memory).runs == ((1, 3), (16, 2))

    def test_map_runs_with_runs_is_accepted(self) -> None:
        """map = "runs" may name the explicit map."""
        assert memory_map(scenario(ram=4096, map="runs", runs=[[8, 1]]).memory).runs == ((8, 1),)

    def test_the_default_map_is_realistic(self) -> None:
        """Without runs, the map is realistic_map(ram)."""
        assert memory_map(scenario(ram="64 MiB").memory) == realistic_map(64 * MiB)

    def test_runs_must_hold_the_ram(self) -> None:
        """Runs whose pages × 4096 differ from ram are refused, naming the rule and the ram to set."""
        with pytest.raises(ScenarioError, match=r"pages × 4096 must equal ram: set ram = 20480") as err:
            scenario(ram="1 MiB", runs=[[1, 3], [16, 2]])
        assert err.value.problems[0][0] == "[memory]"

    @pytest.mark.parametrize(
        "runs",
        [[[1, 2, 3]], [[1, "2"]], [[True, 1]], [1, 2], "1 2", [[1.0, 2]]],
        ids=["triple", "string", "bool", "flat", "str", "float"],
    )
    def test_runs_of_the_wrong_shape_are_refused(self, runs: object) -> None:
        """Runs are pairs of integers; anything else is refused at [memory] runs."""
        with pytest.raises(ScenarioError, match="base_page, page_count") as err:
            scenario(ram=4096, runs=runs)
        assert err.value.problems[0][0] == "[memory] runs"

    def test_map_runs_needs_runs(self) -> None:
        """map = "runs" without runs is refused."""
        with pytest.raises(ScenarioError, match='map = "runs" needs runs'):
            scenario(map="runs")

    def test_map_realistic_and_runs_conflict(self) -> None:
        """map = "realistic" beside runs describes the map twice."""
        with pytest.raises(ScenarioError, match="give one or the other"):
            scenario(ram=4096, map="realistic", runs=[[1, 1]])

    def test_kernel_memory_must_fit_in_the_active_share(self) -> None:
        """kernel_fraction above 1 − free − file cache − guest is refused: kernel memory is part of an active dump."""
        with pytest.raises(ScenarioError, match="kernel memory is part of an active dump"):
            scenario(kernel_fraction="1/2", free_fraction=0.3, file_cache_fraction=0.3)

    def test_kernel_memory_may_be_the_whole_active_share(self) -> None:
        """kernel_fraction equal to the active share leaves no user pages."""
        pm = physical(ram="1 MiB", kernel_fraction="1/2", free_fraction=0.25, file_cache_fraction=0.25)
        assert pm.class_counts()[PageClass.USER] == 0


FRACTIONS = [
    {},
    {"kernel_fraction": "1/3", "free_fraction": 0.3, "file_cache_fraction": 0.2, "guest_fraction": 0.1},
    {"kernel_fraction": "1/7", "free_fraction": "1/9", "file_cache_fraction": "2/11", "guest_fraction": "1/13"},
    {"kernel_fraction": 1, "free_fraction": 0, "file_cache_fraction": 0},
    {"kernel_fraction": "0.01", "free_fraction": 0.9, "file_cache_fraction": 0.05},
]
RAMS = [4096, 15 * 4096, 17 * 4096, 12_345 * 4096, 64 * MiB]


class TestPageClasses:
    """Class counts match the dump plans exactly; classes are deterministic, mixed and scale-free."""

    @pytest.mark.parametrize("fractions", FRACTIONS)
    @pytest.mark.parametrize("ram", RAMS)
    def test_counts_are_the_dump_plans(self, ram: int, fractions: dict[str, Any]) -> None:
        """Kernel pages are a kernel dump's body, kernel + user an active dump's, and the classes sum to the RAM."""
        s = scenario(ram=ram, **fractions)
        m = s.memory
        args = {
            "kernel_fraction": m.kernel_fraction,
            "active_fraction": m.active_fraction,
            "secondary": 0,
            "top_pfn": memory_map(m).max_pfn,
        }
        counts = page_counts(m)
        assert counts[PageClass.KERNEL] * 4096 == body_bytes(plan_crash_dump(2, 0, ram, **args))
        assert (counts[PageClass.KERNEL] + counts[PageClass.USER]) * 4096 == body_bytes(plan_crash_dump(1, 1, ram, **args))
        assert counts[PageClass.FILE_CACHE] == int(ram // 4096 * m.file_cache_fraction)
        assert counts[PageClass.GUEST] == int(ram // 4096 * m.guest_fraction)
        assert counts[PageClass.FREE] >= int(ram // 4096 * m.free_fraction)
        assert sum(counts.values()) == ram // 4096

    @pytest.mark.parametrize("fractions", FRACTIONS)
    @pytest.mark.parametrize("ram", RAMS)
    def test_the_pages_have_exactly_those_counts(self, ram: int, fractions: dict[str, Any]) -> None:
        """Counting the classes of all pages gives class_counts() exactly."""
        pm = physical(ram=ram, **fractions)
        counted = np.bincount(all_classes(pm), minlength=len(PageClass)).tolist()
        assert counted == [pm.class_counts()[c] for c in PageClass]

    def test_the_same_seed_gives_the_same_classes(self) -> None:
        """Classes are a function of the scenario and seed."""
        assert np.array_equal(all_classes(physical(ram="64 MiB")), all_classes(physical(ram="64 MiB")))

    def test_another_seed_gives_other_classes(self) -> None:
        """A different seed places the classes differently."""
        assert not np.array_equal(all_classes(physical(1, ram="64 MiB")), all_classes(physical(2, ram="64 MiB")))

    @pytest.mark.parametrize(("start", "n"), [(0, 1), (5, 16), (4090, 12), (4095, 4098), (100, 9000), (16383, 1), (0, 16384)])
    def test_a_range_is_a_slice_of_all_classes(self, start: int, n: int) -> None:
        """classes(start, n) equals the same slice of every page's class, whatever the range."""
        pm = physical(ram="64 MiB")
        everything = PhysicalMemory.from_scenario(scenario(ram="64 MiB")).classes(0, 16384)
        assert np.array_equal(pm.classes(start, n), everything[start : start + n])

    def test_classes_come_in_extents(self) -> None:
        """Pages change class only at extent boundaries, except where a class's range ends (at most 4 places)."""
        classes = all_classes(physical(ram="64 MiB"))
        changes = np.flatnonzero(classes[1:] != classes[:-1]) + 1
        assert np.count_nonzero(changes % EXTENT_PAGES) <= 4

    def test_the_classes_are_mixed_over_the_address_space(self) -> None:
        """Every quarter of memory holds pages of every class with pages (no class sits in one place)."""
        classes = all_classes(physical(ram="64 MiB"))
        for quarter in np.split(classes, 4):
            assert set(np.unique(quarter).tolist()) == {PageClass.FREE, PageClass.KERNEL, PageClass.USER, PageClass.FILE_CACHE}

    @pytest.mark.parametrize("n", [1, 2, 3, 5, 16, 1000, 4097, 65_537])
    def test_the_extent_permutation_is_a_bijection(self, n: int) -> None:
        """The keyed permutation maps range(n) onto range(n)."""
        images = _ExtentPermutation(n, (1, 2, 3, 4))(np.arange(n, dtype=np.uint64))
        assert sorted(images.tolist()) == list(range(n))

    def test_four_pib_of_ram_needs_no_table(self) -> None:
        """A 4 PiB machine's class counts and the classes of its last pages come at once, without arrays of RAM's size."""
        data = {"scenario": {"name": "big"}, "registry": {"CrashDumpEnabled": 3}, "memory": {"ram": 2**52}}
        pm = PhysicalMemory.from_scenario(validate_scenario(data, "<test>", FilterCatalog()))
        assert sum(pm.class_counts().values()) == 2**40
        assert pm.classes(2**40 - 1000, 1000).size == 1000


class TestPfnsOf:
    """The PFNs of chosen classes: what a kernel or active dump's bitmap holds."""

    def test_kernel_pfns_are_the_kernel_pages(self) -> None:
        """pfns_of({KERNEL}) is every kernel page's PFN, ascending, as many as a kernel dump's body has pages."""
        pm = physical(ram="64 MiB")
        got = np.concatenate(list(pm.pfns_of({PageClass.KERNEL}, chunk_pages=5000)))
        want = pm.map.pfns(0, pm.map.total_pages)[all_classes(pm) == PageClass.KERNEL]
        assert np.array_equal(got, want)
        assert got.size == pm.class_counts()[PageClass.KERNEL]

    def test_active_pfns_are_an_active_dump_body(self) -> None:
        """pfns_of({KERNEL, USER}) holds as many pages as an active dump's body."""
        s = scenario(ram="64 MiB")
        pm = PhysicalMemory.from_scenario(s)
        pages = sum(a.size for a in pm.pfns_of({PageClass.KERNEL, PageClass.USER}))
        s = s.model_copy(update={"registry": s.registry.model_copy(update={"crash_dump_enabled": 1, "filter_pages": 1})})
        assert pages * 4096 == body_bytes(s.dump_plan())

    def test_chunks_are_bounded(self) -> None:
        """No chunk holds more than chunk_pages PFNs."""
        pm = physical(ram="64 MiB")
        assert max(a.size for a in pm.pfns_of(set(PageClass), chunk_pages=3000)) <= 3000


class TestContents:
    """Page bytes: a marker at the start of each page, then contents per class, all from (seed, PFN)."""

    def test_every_page_starts_with_its_marker(self) -> None:
        """Magic, PFN (u64 LE), class (u8), 7 zero bytes, the seed's tag (u64 LE)."""
        pm = physical(ram="64 MiB")
        data = pm.read_pages(0x100, 64)
        classes = pm.classes(pm.map.index_of(0x100), 64)
        for i in range(64):
            page = data[i * 4096 : (i + 1) * 4096]
            assert page[:8] == MAGIC
            assert int.from_bytes(page[8:16], "little") == 0x100 + i
            assert page[16] == classes[i]
            assert page[17:24] == bytes(7)
            assert int.from_bytes(page[24:32], "little") == pm.seed_tag

    def test_the_same_seed_gives_the_same_bytes(self) -> None:
        """Contents are a function of the scenario and seed."""
        assert physical(ram="64 MiB").read_pages(0x200, 300) == physical(ram="64 MiB").read_pages(0x200, 300)

    def test_another_seed_gives_other_bytes_and_tag(self) -> None:
        """A different seed changes both the contents and the marker's tag."""
        a, b = physical(1, ram="64 MiB"), physical(2, ram="64 MiB")
        assert a.seed_tag != b.seed_tag
        assert a.read_pages(0x200, 8)[32:] != b.read_pages(0x200, 8)[32:]

    def test_a_page_is_the_same_however_it_is_read(self) -> None:
        """Reading 1,100 pages at once gives the bytes of 1,100 reads of one page (block boundaries change nothing)."""
        pm = physical(ram="64 MiB")
        assert pm.read_pages(0x100, 1100) == b"".join(pm.read_pages(0x100 + i, 1) for i in range(1100))

    def test_a_long_read_is_the_same_in_pieces(self) -> None:
        """read_pages of 2,500 pages equals read_pages_into of one 2,500-page buffer and of 7-page pieces."""
        pm = physical(ram="64 MiB")
        whole = bytearray(2500 * 4096)
        pm.read_pages_into(0x200, whole)
        pieces = bytearray(2500 * 4096)
        for i in range(0, 2500, 7):
            pm.read_pages_into(0x200 + i, memoryview(pieces)[i * 4096 : min(i + 7, 2500) * 4096])
        assert pm.read_pages(0x200, 2500) == bytes(whole) == bytes(pieces)

    def test_read_pages_into_fills_a_buffer_with_the_same_bytes(self) -> None:
        """read_pages_into writes what read_pages returns into the caller's buffer."""
        pm = physical(ram="64 MiB")
        buffer = bytearray(10 * 4096)
        pm.read_pages_into(0x300, memoryview(buffer))
        assert bytes(buffer) == pm.read_pages(0x300, 10)

    def _pages_of(self, pm: PhysicalMemory, c: PageClass, n: int = 32) -> list[bytes]:
        pfns = next(pm.pfns_of({c}))[:n]
        return [pm.read_pages(int(p), 1) for p in pfns]

    def test_free_pages_are_zero_after_the_marker(self) -> None:
        """A free page holds nothing but its marker."""
        for page in self._pages_of(physical(ram="64 MiB"), PageClass.FREE):
            assert page[32:] == bytes(4064)

    def test_kernel_pages_are_half_zero(self) -> None:
        """A kernel page's second half is zero; its first holds 0xFFFFF8... pointers in even words."""
        for page in self._pages_of(physical(ram="64 MiB"), PageClass.KERNEL):
            assert page[2048:] == bytes(2048)
            words = np.frombuffer(page[:2048], dtype="<u8")
            assert np.all(words[4::2] >> np.uint64(43) == np.uint64(0xFFFFF800_00000000 >> 43))

    def test_file_cache_pages_are_text(self) -> None:
        """A file-cache page is printable ASCII words after its marker."""
        for page in self._pages_of(physical(ram="64 MiB"), PageClass.FILE_CACHE):
            assert page[32:].decode("ascii").replace("\n", "").isprintable()

    def test_the_classes_compress_differently(self) -> None:
        """zlib shrinks free pages most, then file cache, kernel, user, and guest pages least (not at all)."""
        pm = physical(ram="64 MiB", free_fraction=0.2, file_cache_fraction=0.2, guest_fraction=0.2)
        ratios = []
        for c in (PageClass.FREE, PageClass.FILE_CACHE, PageClass.KERNEL, PageClass.USER, PageClass.GUEST):
            data = b"".join(self._pages_of(pm, c))
            ratios.append(len(data) / len(zlib.compress(data, 6)))
        assert ratios == sorted(ratios, reverse=True)
        assert ratios[-1] < 1.01

    def test_pages_by_pfn_are_the_pages(self) -> None:
        """read_pfns_into of scattered PFNs, in any order, gives each PFN's page in that order."""
        pm = physical(ram="64 MiB")
        pfns = np.array([0x3000, 0x1, 0x9E, 0x100, 0x2FFF, 0x1234] * 200, dtype=np.uint64)
        buffer = bytearray(pfns.size * 4096)
        pm.read_pfns_into(pfns, buffer)
        assert bytes(buffer) == b"".join(pm.read_pages(int(p), 1) for p in pfns)

    def test_the_kernel_pages_by_pfn_are_a_kernel_dump_body(self) -> None:
        """The kernel pages read by PFN, in bitmap order, have exactly the kernel class in their markers."""
        pm = physical(ram="64 MiB")
        pfns = np.concatenate(list(pm.pfns_of({PageClass.KERNEL})))
        buffer = bytearray(pfns.size * 4096)
        pm.read_pfns_into(pfns, buffer)
        assert np.array_equal(find_markers(buffer, step=4096), pfns)
        assert set(buffer[16::4096]) == {PageClass.KERNEL}

    def test_a_pfn_in_a_hole_cannot_be_read_by_pfn(self) -> None:
        """read_pfns_into refuses a PFN that is not RAM, naming it."""
        with pytest.raises(ValueError, match="PFN 0xa0 is in a hole"):
            physical(ram="64 MiB").read_pfns_into(np.array([0x100, 0xA0], dtype=np.uint64), bytearray(8192))

    def test_the_buffer_must_hold_the_pfns(self) -> None:
        """read_pfns_into needs a buffer of exactly one page per PFN."""
        with pytest.raises(ValueError, match="does not hold 2 pages"):
            physical(ram="64 MiB").read_pfns_into(np.array([0x100, 0x101], dtype=np.uint64), bytearray(4096))

    def test_a_read_must_stay_in_one_run(self) -> None:
        """Pages that run past the end of their run are refused, naming the run."""
        pm = physical(ram="64 MiB")
        with pytest.raises(ValueError, match=r"run past the end of the run \[0x1, 0x9e\]"):
            pm.read_pages(0x9E, 2)

    def test_a_read_in_a_hole_is_refused(self) -> None:
        """A PFN that is not RAM cannot be read."""
        with pytest.raises(ValueError, match="hole"):
            physical(ram="64 MiB").read_pages(0xA0, 1)

    def test_no_pages_are_no_bytes(self) -> None:
        """Reading 0 pages gives b''."""
        assert physical(ram="64 MiB").read_pages(0x100, 0) == b""

    def test_a_read_only_buffer_is_refused(self) -> None:
        """read_pages_into needs a writable buffer."""
        with pytest.raises(TypeError, match="read-only"):
            physical(ram="64 MiB").read_pages_into(0x100, memoryview(bytes(4096)))

    def test_a_buffer_of_part_of_a_page_is_refused(self) -> None:
        """read_pages_into fills whole pages only."""
        with pytest.raises(ValueError, match="whole number"):
            physical(ram="64 MiB").read_pages_into(0x100, bytearray(4000))


class TestMarkers:
    """find_markers: plaintext pages are found wherever they land on a sector boundary."""

    def test_every_page_is_found(self) -> None:
        """The markers of 40 pages give their 40 PFNs, in order."""
        data = physical(ram="64 MiB").read_pages(0x100, 40)
        assert find_markers(data).tolist() == list(range(0x100, 0x128))

    def test_a_page_on_a_sector_boundary_is_found(self) -> None:
        """Behind a 512-byte prefix (a dump header's sector), the pages are still found at step 512, not at step 4096."""
        data = bytes(512) + physical(ram="64 MiB").read_pages(0x100, 4)
        assert find_markers(data).tolist() == [0x100, 0x101, 0x102, 0x103]
        assert count_markers(data, step=4096) == 0

    def test_a_marker_off_the_step_is_not_found(self) -> None:
        """A marker at an offset that is not a multiple of the step is not counted."""
        assert count_markers(bytes(8) + physical(ram="64 MiB").read_pages(0x100, 4)) == 0

    def test_random_and_zero_bytes_hold_no_marker(self) -> None:
        """Zeros, random bytes and a buffer shorter than a marker give no PFN."""
        assert count_markers(bytes(1 << 16)) == 0
        assert count_markers(np.random.default_rng(1).bytes(1 << 16)) == 0
        assert count_markers(MAGIC) == 0

    def test_the_step_must_be_whole_words(self) -> None:
        """A step that is not a positive multiple of 8 is refused."""
        with pytest.raises(ValueError, match="multiple of 8"):
            find_markers(bytes(4096), step=12)


class TestFiles:
    """``stacksim memory``: the sparse memory file and the class map."""

    @pytest.fixture(scope="class")
    def work(self, tmp_path_factory: pytest.TempPathFactory) -> Path:
        """A folder holding a 64 MiB scenario, written out once with its class map (the tests only read the files)."""
        tmp_path = tmp_path_factory.mktemp("memory")
        (tmp_path / "s.toml").write_text('[scenario]\nname = "m"\nseed = 3\n[memory]\nram = "64 MiB"\n')
        proc = invoke_cli("memory", "s.toml", "--out", "ram.bin", "--classes", "classes.json", cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        return tmp_path

    @staticmethod
    def memory() -> PhysicalMemory:
        return physical(3, ram="64 MiB")

    def test_the_file_spans_the_address_space(self, work: Path) -> None:
        """The file is max_pfn × 4096 bytes long."""
        assert (work / "ram.bin").stat().st_size == self.memory().map.max_pfn * 4096

    def test_byte_p_is_physical_address_p(self, work: Path) -> None:
        """The page at file offset pfn × 4096 is the page of that PFN, in every run."""
        pm = self.memory()
        with (work / "ram.bin").open("rb") as f:
            for pfn in (1, 0x9E, 0x100, 0x1234, pm.map.max_pfn - 1):
                f.seek(pfn * 4096)
                assert f.read(4096) == pm.read_pages(pfn, 1)

    def test_holes_read_as_zero(self, work: Path) -> None:
        """Page 0 and 0x9F000–0xFFFFF hold zeros."""
        with (work / "ram.bin").open("rb") as f:
            assert f.read(4096) == bytes(4096)
            f.seek(0x9F000)
            assert f.read(0x100000 - 0x9F000) == bytes(0x100000 - 0x9F000)

    def test_holes_are_not_allocated(self, work: Path, tmp_path: Path) -> None:
        """Where the file system keeps sparse files, the data starts at page 1 and the hole below 1 MiB is a gap."""
        probe = tmp_path / "probe"
        with probe.open("wb") as f:
            f.seek(1 << 20)
            f.write(b"x")
        fd = os.open(probe, os.O_RDONLY)
        try:
            if os.lseek(fd, 0, os.SEEK_DATA) == 0:
                pytest.skip("this file system does not keep sparse files")
        finally:
            os.close(fd)
        fd = os.open(work / "ram.bin", os.O_RDONLY)
        try:
            assert os.lseek(fd, 0, os.SEEK_DATA) == 4096
            assert os.lseek(fd, 4096, os.SEEK_HOLE) == 0x9F000
            assert os.lseek(fd, 0x9F000, os.SEEK_DATA) == 0x100000
        finally:
            os.close(fd)

    def test_every_marker_in_the_file_is_found(self, work: Path) -> None:
        """Scanning the file finds every page's marker once."""
        data = (work / "ram.bin").read_bytes()
        assert np.array_equal(find_markers(data), self.memory().map.pfns(0, 16384))

    def test_the_class_map_matches_the_classes(self, work: Path) -> None:
        """classes.json's runs cover every page in order, each with its class, and its counts are class_counts()."""
        pm = self.memory()
        doc = json.loads((work / "classes.json").read_text())
        assert doc["memory_map"] == [list(r) for r in pm.map.runs]
        assert doc["counts"] == {c.label: n for c, n in pm.class_counts().items()}
        pfns, labels = [], []
        for run in doc["classes"]:
            pfns.extend(range(run["first_pfn"], run["first_pfn"] + run["pages"]))
            labels.extend([run["class"]] * run["pages"])
        assert pfns == pm.map.pfns(0, 16384).tolist()
        assert labels == [PageClass(c).label for c in all_classes(pm).tolist()]

    def test_class_runs_are_maximal(self) -> None:
        """Consecutive class runs differ in class or are not contiguous in PFNs."""
        runs = list(class_runs(self.memory(), chunk_pages=1000))
        for (pfn, pages, c), (next_pfn, _, next_c) in itertools.pairwise(runs):
            assert c != next_c or pfn + pages != next_pfn

    def test_the_outputs_are_byte_identical_each_time(self, work: Path) -> None:
        """Writing the same scenario again gives the same two files, byte for byte."""
        first = ((work / "ram.bin").read_bytes(), (work / "classes.json").read_bytes())
        proc = invoke_cli("memory", "s.toml", "--out", "ram2.bin", "--classes", "classes2.json", cwd=work)
        assert proc.returncode == 0, proc.stderr
        assert ((work / "ram2.bin").read_bytes(), (work / "classes2.json").read_bytes()) == first

    def test_seed_overrides_the_scenario(self, work: Path) -> None:
        """--seed N writes the memory of seed N."""
        proc = invoke_cli("memory", "s.toml", "--out", "other.bin", "--seed", "4", cwd=work)
        assert proc.returncode == 0, proc.stderr
        with (work / "other.bin").open("rb") as f:
            f.seek(0x100 * 4096)
            assert f.read(4096) == physical(4, ram="64 MiB").read_pages(0x100, 1)

    def test_the_summary_names_the_file_and_the_classes(self, work: Path) -> None:
        """The command prints the RAM, the runs, the file's length and the pages per class."""
        proc = invoke_cli("memory", "s.toml", "--out", "again.bin", cwd=work)
        assert proc.stdout.splitlines() == [
            "again.bin: 64 MiB of RAM (16,384 pages) in 2 runs; "
            "a sparse file of 67,510,272 bytes in which byte p is physical address p",
            "pages by class (seed 3): free 4,096, kernel 5,462, user 2,730, file_cache 4,096, guest 0",
        ]


def test_the_how_to_shows_what_memory_prints(tmp_path: Path) -> None:
    """The output quoted in the how-to is what its first command prints."""
    from test_docs import fenced_blocks, files_shown

    page = Path(__file__).parents[1] / "docs" / "how-to" / "look-at-simulated-memory.md"
    (tmp_path / "small-ram.toml").write_text(files_shown(page)["small-ram.toml"])
    shown = next(body for info, body, _ in fenced_blocks(page) if info == "text")
    proc = invoke_cli("memory", "small-ram.toml", "--out", "ram.bin", "--classes", "classes.json", cwd=tmp_path)
    assert proc.stdout == shown


class TestAtomicBinaryWriter:
    """The binary output stream: seekable, replaced whole or not at all."""

    def test_a_seek_past_the_end_leaves_zeros(self, tmp_path: Path) -> None:
        """Bytes skipped by a seek read as zero, and truncate sets the length."""
        with atomic_binary_writer(tmp_path / "f.bin") as f:
            f.seek(8192)
            f.write(b"x")
            f.truncate(16384)
        data = (tmp_path / "f.bin").read_bytes()
        assert (len(data), data[:8192], data[8192:8193]) == (16384, bytes(8192), b"x")

    def test_an_exception_leaves_nothing(self, tmp_path: Path) -> None:
        """A failed block leaves neither the target nor a temporary file."""

        def fail() -> None:
            with atomic_binary_writer(tmp_path / "f.bin") as f:
                f.write(b"x")
                raise RuntimeError

        with pytest.raises(RuntimeError):
            fail()
        assert list(tmp_path.iterdir()) == []


def test_numpy_is_not_imported_by_stacksim() -> None:
    """``import stacksim`` and its command line leave numpy unimported (physmem imports it when used)."""
    import subprocess
    import sys

    code = "import sys, stacksim, stacksim.cli, stacksim.physmem; print('numpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=Path(__file__).parents[1])
    assert out.stdout.strip() == "False"


def test_fractions_are_exact() -> None:
    """A fraction such as 1/3 of 3 pages is exactly one page: counts use exact arithmetic, not floats."""
    m = scenario(ram=3 * 4096, kernel_fraction="1/3", free_fraction=0, file_cache_fraction="1/3").memory
    assert page_counts(m)[PageClass.KERNEL] == 1
    assert page_counts(m)[PageClass.FILE_CACHE] == 1
