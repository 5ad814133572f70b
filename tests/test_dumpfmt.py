"""
The crash dump file format (stacksim.dumpfmt), checked against two independent parsers.

kdmp-parser (C++, from the package index) and volatility3's crash layer open every file written
here; their view of every physical page is compared with the fake memory the file was built
from. The fake memory puts each page's PFN in every 8-byte word, so a page in the wrong place
cannot pass.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path

import kdmp_parser
import numpy as np
import pytest
from volatility3.framework import contexts
from volatility3.framework.layers import crash, physical

from stacksim.dumpfmt import (
    HEADER64_SIZE,
    MAX_RUNS,
    SMALL_DUMP_SIZE,
    CrashDumpFile,
    DumpFormatError,
    PageSet,
    PageSpan,
    dump_parts,
    header_bytes_needed,
    parse_dump_header,
    synthetic_header_fields,
)
from stacksim.memory import plan_crash_dump

PAGE = 4096
RUNS = ((0x1, 0x9F), (0x100, 0x300), (0x500, 0x200))
"""Three runs with holes (below 4 KiB, between 640 KiB and 1 MiB, and at 4 MiB): 1,439 pages, 5.6 MiB."""
ALL_PFNS = [b + i for b, c in RUNS for i in range(c)]
NBITS = 0x700
PARAMS = (0x1111, 0x2222_0000_0000, 0x3333, 0xFFFF_FFFF_FFFF_FFFF)
HEADER = synthetic_header_fields(42, RUNS, bugcheck_code=0xE2, bugcheck_parameters=PARAMS, number_processors=6)
SECONDARY = 5000
"""Secondary data asked for: rounded up to 2 pages."""


class FakeMemory:
    """Pages whose every 8-byte word is (PFN << 16 | word index); counts read_pages calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []

    def read_pages(self, pfn: int, count: int) -> bytes:
        self.calls.append((pfn, count))
        return page_bytes(pfn, count)


def page_bytes(pfn: int, count: int = 1) -> bytes:
    words = (np.arange(pfn, pfn + count, dtype=np.uint64)[:, None] << np.uint64(16)) | np.arange(512, dtype=np.uint64)
    return words.astype("<u8").tobytes()


def kernel_mask() -> np.ndarray:
    """Scattered 'kernel' pages: PFNs whose (pfn // 7) % 3 == 0, inside the runs."""
    mask = np.zeros(NBITS, dtype=bool)
    pfns = np.array(ALL_PFNS)
    mask[pfns[(pfns // 7) % 3 == 0]] = True
    return mask


def active_mask() -> np.ndarray:
    """Every run page but a block of 'free' pages and the last run's second half."""
    mask = PageSet.from_runs(RUNS, NBITS).mask().copy()
    mask[0x180:0x200] = False
    mask[0x600:0x700] = False
    return mask


def build(kind: str, secondary: int = SECONDARY, source: FakeMemory | None = None) -> CrashDumpFile:
    present = {"kernel": kernel_mask, "automatic": kernel_mask, "active": active_mask}.get(kind)
    return CrashDumpFile(
        kind,  # type: ignore[arg-type]
        RUNS,
        HEADER,
        source or FakeMemory(),
        present=PageSet.from_mask(present()) if present else None,
        secondary_bytes=secondary,
    )


def write(dump: CrashDumpFile, path: Path, chunk: int = 64 * 1024) -> Path:
    """Write *dump* the way the dump driver does: one read per write-sized chunk, in order."""
    with path.open("wb") as f:
        for offset in range(0, dump.size, chunk):
            f.write(dump.read(offset, min(chunk, dump.size - offset)))
    return path


@pytest.fixture(scope="module", params=["complete", "kernel", "active"])
def written(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, CrashDumpFile, Path]:
    kind = request.param
    dump = build(kind)
    return kind, dump, write(dump, tmp_path_factory.mktemp(kind) / "MEMORY.DMP")


def expected_pfns(kind: str) -> set[int]:
    mask = {"complete": lambda: PageSet.from_runs(RUNS, NBITS).mask(), "kernel": kernel_mask, "active": active_mask}[kind]()
    return {int(p) for p in np.flatnonzero(mask)}


@contextmanager
def volatility_layer(path: Path) -> Iterator[crash.WindowsCrashDump64Layer]:
    """volatility3's 64-bit crash dump layer over *path*, built without the plugin framework; closes the file after."""
    ctx = contexts.Context()
    ctx.config["base.location"] = path.absolute().as_uri()
    base = physical.FileLayer(ctx, "base", "base")
    try:
        ctx.add_layer(base)
        ctx.config["dump.base_layer"] = "base"
        layer = crash.WindowsCrashDump64Layer(ctx, "dump", "dump")
        ctx.add_layer(layer)
        yield layer
    finally:
        base.destroy()


class TestKdmpParser:
    def test_every_page_it_returns_is_the_memory_page(self, written: tuple[str, CrashDumpFile, Path]) -> None:
        """Each physical page kdmp-parser reads from the file equals the fake memory's page at that address."""
        _kind, _dump, path = written
        parser = kdmp_parser.KernelDumpParser(path)
        wrong = [pa for pa, data in parser.pages.items() if bytes(data) != page_bytes(pa // PAGE)]
        assert wrong == []

    def test_it_finds_exactly_the_pages_the_dump_holds(self, written: tuple[str, CrashDumpFile, Path]) -> None:
        """kdmp-parser sees every run page of a complete dump and exactly the given pages of a kernel or active dump."""
        kind, _dump, path = written
        parser = kdmp_parser.KernelDumpParser(path)
        assert {pa // PAGE for pa in parser.pages} == expected_pfns(kind)

    def test_header_fields_read_back(self, written: tuple[str, CrashDumpFile, Path]) -> None:
        """kdmp-parser reads back the bugcheck, the dump type, the run list's size, the CONTEXT and the bitmap header."""
        kind, dump, path = written
        parser = kdmp_parser.KernelDumpParser(path)
        h = parser.header
        got = (h.BugCheckCode, tuple(h.BugCheckCodeParameter), parser.type, h.RequiredDumpSpace, h.NumberProcessors)
        assert got == (0xE2, PARAMS, kdmp_parser.DumpType.BMPDump, dump.size, 6)
        assert (h.PhysicalMemoryBlock.NumberOfRuns, h.PhysicalMemoryBlock.NumberOfPages) == (3, len(ALL_PFNS))
        assert (parser.context.Rip, parser.context.Rcx, parser.context.Rdx) == (HEADER.context.rip, 0xE2, PARAMS[0])
        assert parser.directory_table_base == HEADER.directory_table_base
        sig = b"SDMP" if kind == "kernel" else b"FDMP"
        bmp = h.BmpHeader
        assert (bmp.Signature, bmp.FirstPage, bmp.TotalPresentPages) == (int.from_bytes(sig, "little"), 3 * PAGE, dump.page_count)

    def test_it_refuses_a_small_dump(self, tmp_path: Path) -> None:
        """A small dump (DumpType 4, header only) is not a format kdmp-parser reads: it says so rather than misreading it."""
        path = write(build("small"), tmp_path / "Mini.dmp")
        with pytest.raises(RuntimeError, match="Invalid kernel dump file"):
            kdmp_parser.KernelDumpParser(path)


class TestVolatility:
    def test_every_page_reads_as_the_memory_page(self, written: tuple[str, CrashDumpFile, Path]) -> None:
        """volatility3's crash layer maps each page the dump holds to that page's bytes."""
        kind, _dump, path = written
        with volatility_layer(path) as layer:
            wrong = [pfn for pfn in sorted(expected_pfns(kind)) if layer.read(pfn * PAGE, PAGE) != page_bytes(pfn)]
        assert wrong == []

    def test_pages_the_dump_lacks_are_not_mapped(self, written: tuple[str, CrashDumpFile, Path]) -> None:
        """volatility3 finds no page the dump does not hold (holes between runs, pages left out of a kernel dump)."""
        kind, _dump, path = written
        with volatility_layer(path) as layer:
            mapped = [pfn for pfn in range(NBITS) if pfn not in expected_pfns(kind) and layer.is_valid(pfn * PAGE)]
        assert mapped == []

    def test_the_run_list_reads_back(self, written: tuple[str, CrashDumpFile, Path]) -> None:
        """volatility3's _DUMP_HEADER64 holds the physical memory runs and DumpType 5."""
        _kind, _dump, path = written
        with volatility_layer(path) as layer:
            header = layer.get_header()
            block = header.PhysicalMemoryBlockBuffer
            block.Run.count = block.NumberOfRuns
            got = (int(header.DumpType), [(int(r.BasePage), int(r.PageCount)) for r in block.Run])
        assert got == (5, list(RUNS))


class TestLayout:
    def test_parts_tile_the_file(self) -> None:
        """Header, bitmap, body and secondary data follow one another with no gap and end at the file's size."""
        for kind in ("complete", "kernel", "active", "small"):
            dump = build(kind)
            ends = [0] + [p.offset + p.length for p in dump.parts]
            assert [p.offset for p in dump.parts] == ends[:-1]
            assert ends[-1] == dump.size

    def test_complete_dump_sizes(self) -> None:
        """A complete dump: 8 KiB header, one page of summary header and bitmap, every run page, secondary data in pages."""
        dump = build("complete")
        assert [tuple(p) for p in dump.parts] == [
            ("header", 0, 8192),
            ("bitmap", 8192, 4096),
            ("body", 12288, 1439 * PAGE),
            ("secondary", 12288 + 1439 * PAGE, 8192),
        ]

    def test_bitmap_part_is_the_summary_and_a_bit_per_page_in_whole_pages(self) -> None:
        """The bitmap part is the 0x38-byte summary header and one bit per page frame (whole ULONGs), in whole pages."""
        runs = ((0, (PAGE - 0x38) * 8),)  # summary header + bitmap fill exactly one page
        exact = CrashDumpFile("complete", runs, HEADER, FakeMemory())
        over = CrashDumpFile("complete", ((0, runs[0][1] + 32),), HEADER, FakeMemory())
        assert (exact.first_page_offset, over.first_page_offset) == (HEADER64_SIZE + PAGE, HEADER64_SIZE + 2 * PAGE)

    def test_required_dump_space_is_the_file_size(self) -> None:
        """RequiredDumpSpace counts every byte written, secondary data included."""
        for kind in ("complete", "kernel", "small"):
            dump = build(kind)
            assert struct.unpack_from("<q", dump.header_bytes, 0xFA0)[0] == dump.size

    def test_unwritten_header_bytes_keep_the_page_pattern(self) -> None:
        """Padding, WriterStatus and the reserved tail of the header keep 'PAGE', as Windows leaves them."""
        h = build("kernel").header_bytes
        assert (h[0x3C:0x40], h[0xF9C:0xFA0], h[0x1048:0x104C], h[0x1058:0x2000]) == (b"PAGE", b"PAGE", b"PAGE", b"PAGE" * 1002)

    def test_small_dump_is_a_64_KiB_header_and_zeros(self) -> None:
        """A small dump is the header with DumpType 4 (triage) and zeros up to 64 KiB; no secondary data."""
        dump = build("small")
        data = dump.read(0, dump.size)
        assert (dump.size, struct.unpack_from("<I", data, 0xF98)[0], data[HEADER64_SIZE:]) == (
            SMALL_DUMP_SIZE,
            4,
            bytes(SMALL_DUMP_SIZE - HEADER64_SIZE),
        )

    def test_secondary_data_is_a_deterministic_filler_after_the_pages(self) -> None:
        """Secondary data is 16-byte records ('2NDDATA', record index), the same on every build."""
        dump = build("complete")
        start = dump.parts[-1].offset
        assert dump.read(start, 32) == b"2NDDATA\0" + (0).to_bytes(8, "little") + b"2NDDATA\0" + (1).to_bytes(8, "little")
        assert dump.read(start + 8187, 5) == build("complete").read(start + 8187, 5)

    def test_reading_the_body_asks_once_per_span(self) -> None:
        """A read of the whole body calls read_pages once per run of consecutive pages, never per page."""
        source = FakeMemory()
        dump = build("kernel", source=source)
        body = dump.parts[2]
        dump.read(body.offset, body.length)
        assert source.calls == [(s.pfn, s.pages) for s in dump.spans()]

    def test_a_read_inside_a_span_is_one_call(self) -> None:
        """A write-sized read inside one span costs one read_pages call of just the pages it touches."""
        source = FakeMemory()
        dump = build("complete", source=source)
        offset = dump.first_page_offset + 200 * PAGE + 100  # page 200 of the body: PFN 0x100 + 41
        data = dump.read(offset, 2 * PAGE)
        assert (source.calls, data) == ([(0x100 + 41, 3)], page_bytes(0x100 + 41, 3)[100 : 100 + 2 * PAGE])

    def test_random_access_equals_the_whole_file(self) -> None:
        """Reads at odd offsets and lengths, across part and span boundaries, give the whole file's bytes."""
        dump = build("active")
        whole = dump.read(0, dump.size)
        for offset, length in [(0, 1), (8190, 5), (12287, 2), (12288 + 127 * PAGE - 3, PAGE + 6), (dump.size - 9000, 9000)]:
            assert dump.read(offset, length) == whole[offset : offset + length]

    def test_a_read_past_the_end_is_refused(self) -> None:
        """Asking for bytes past the end of the file is an error, not a short read."""
        dump = build("kernel")
        with pytest.raises(ValueError, match="outside"):
            dump.read(dump.size - 1, 2)

    def test_same_seed_same_bytes(self) -> None:
        """Two dumps built from the same seed and memory are byte-identical; another seed changes the header."""
        a, b = build("kernel"), build("kernel")
        other = CrashDumpFile(
            "kernel", RUNS, synthetic_header_fields(43, RUNS), FakeMemory(), present=PageSet.from_mask(kernel_mask())
        )
        assert a.read(0, a.size) == b.read(0, b.size)
        assert a.header_bytes != other.header_bytes


class TestRefusals:
    def test_present_pages_outside_the_runs(self) -> None:
        """A kernel dump may only hold pages that exist: a PFN in a hole is refused."""
        mask = kernel_mask()
        mask[0xA0] = True  # the hole below 1 MiB
        with pytest.raises(ValueError, match="1 of the present pages lie outside"):
            CrashDumpFile("kernel", RUNS, HEADER, FakeMemory(), present=PageSet.from_mask(mask))

    def test_kernel_dump_without_present(self) -> None:
        """A kernel dump needs the set of pages it holds."""
        with pytest.raises(ValueError, match="needs present"):
            CrashDumpFile("kernel", RUNS, HEADER, FakeMemory())

    def test_too_many_runs(self) -> None:
        """More runs than PhysicalMemoryBlock holds (42) are refused."""
        runs = [(2 * i, 1) for i in range(MAX_RUNS + 1)]
        with pytest.raises(ValueError, match="at most 42"):
            CrashDumpFile("complete", runs, HEADER, FakeMemory())

    def test_overlapping_runs(self) -> None:
        """Runs must be in ascending order without overlap."""
        with pytest.raises(ValueError, match="start after the previous run"):
            CrashDumpFile("complete", ((0, 10), (5, 10)), HEADER, FakeMemory())

    def test_a_short_read_pages(self) -> None:
        """A page source that returns fewer bytes than asked is reported, not written as a short page."""

        class Short(FakeMemory):
            def read_pages(self, pfn: int, count: int) -> bytes:
                return super().read_pages(pfn, count)[:-1]

        dump = build("complete", source=Short())
        with pytest.raises(ValueError, match="returned 16383 bytes"):
            dump.read(dump.first_page_offset, 4 * PAGE)


class TestPageSet:
    def test_from_pfns_equals_from_mask(self) -> None:
        """Chunks of PFNs and a boolean mask give the same bitmap and count."""
        mask = kernel_mask()
        pfns = np.flatnonzero(mask).astype(np.uint64)
        chunked = PageSet.from_pfns(np.array_split(pfns, 5), NBITS)
        assert (chunked.bits.tobytes(), chunked.count) == (PageSet.from_mask(mask).bits.tobytes(), int(mask.sum()))

    def test_bits_are_least_significant_first(self) -> None:
        """PFN 0 is bit 0 of byte 0 and PFN 9 bit 1 of byte 1, as the parsers read the bitmap."""
        assert PageSet.from_pfns([[0, 9]], 16).bits.tobytes() == b"\x01\x02"

    def test_spans_are_maximal_runs(self) -> None:
        """spans() gives each maximal run of consecutive pages as (first PFN, count)."""
        starts, counts = PageSet.from_pfns([[1, 2, 3, 7, 9, 10]], 12).spans()
        assert (starts.tolist(), counts.tolist()) == ([1, 7, 9], [3, 1, 2])


class TestParse:
    @pytest.mark.parametrize("kind", ["complete", "kernel", "active"])
    def test_round_trip(self, kind: str) -> None:
        """parse_dump_header reads back what was written: type, signature, runs, bugcheck, size and every span."""
        dump = build(kind)
        data = dump.read(0, dump.first_page_offset)
        parsed = parse_dump_header(data)
        sig = b"SDMP" if kind == "kernel" else b"FDMP"
        assert (parsed.dump_type, parsed.signature, parsed.runs, parsed.required_dump_space) == (5, sig, RUNS, dump.size)
        assert (parsed.bugcheck_code, parsed.bugcheck_parameters, parsed.number_processors) == (0xE2, PARAMS, 6)
        assert (parsed.first_page_offset, parsed.page_count, parsed.body_end) == (
            3 * PAGE,
            dump.page_count,
            dump.parts[2].offset + dump.parts[2].length,
        )
        assert list(parsed.spans()) == list(dump.spans())

    def test_file_offset_of_a_page(self) -> None:
        """file_offset_of gives where a PFN's page sits, and None for a page the dump lacks."""
        dump = build("kernel")
        parsed = parse_dump_header(dump.read(0, dump.first_page_offset))
        first = next(dump.spans())
        assert (parsed.file_offset_of(first.pfn + 1), parsed.file_offset_of(first.pfn + first.pages)) == (
            first.file_offset + PAGE,
            None,
        )

    def test_pfns_at_lists_the_pages_in_file_order(self) -> None:
        """pfns_at(k, n) gives the PFNs of the dump's pages k ... k + n - 1: the spans laid end to end."""
        dump = build("kernel")
        parsed = parse_dump_header(dump.read(0, dump.first_page_offset))
        in_order = [s.pfn + i for s in dump.spans() for i in range(s.pages)]
        assert parsed.pfns_at(0, parsed.page_count).tolist() == in_order
        assert parsed.pfns_at(5, 40).tolist() == in_order[5:45]

    def test_pfns_at_refuses_pages_past_the_end(self) -> None:
        """Asking for a page the dump does not have is a ValueError, not a wrong PFN."""
        dump = build("kernel")
        parsed = parse_dump_header(dump.read(0, dump.first_page_offset))
        with pytest.raises(ValueError, match="not among the dump's"):
            parsed.pfns_at(parsed.page_count - 1, 2)

    def test_small_dump_has_no_pages(self) -> None:
        """A small dump reads back as DumpType 4 with its runs and no pages."""
        parsed = parse_dump_header(build("small").header_bytes)
        assert (parsed.dump_type, parsed.runs, parsed.page_count, list(parsed.spans())) == (4, RUNS, 0, [])

    def test_full_dump_type_1(self, tmp_path: Path) -> None:
        """A DumpType 1 file (pages in run order after the header) parses, and kdmp-parser agrees on where each page is."""
        header = bytearray(build("complete", secondary=0).header_bytes)
        header[0xF98:0xF9C] = (1).to_bytes(4, "little")
        header[0xFA0:0xFA8] = (HEADER64_SIZE + len(ALL_PFNS) * PAGE).to_bytes(8, "little")
        path = tmp_path / "full.dmp"
        path.write_bytes(bytes(header) + b"".join(page_bytes(b, c) for b, c in RUNS))
        parsed = parse_dump_header(bytes(header))
        assert list(parsed.spans()) == [
            PageSpan(1, 0x2000, 0x9F),
            PageSpan(0x100, 0xA1000, 0x300),
            PageSpan(0x500, 0x3A1000, 0x200),
        ]
        assert {pa // PAGE for pa in kdmp_parser.KernelDumpParser(path).pages} == set(ALL_PFNS)

    def test_bytes_needed_covers_the_bitmap(self) -> None:
        """header_bytes_needed is 8 KiB for a small dump and header + summary + bitmap for a bitmap dump."""
        dump = build("complete")
        assert (header_bytes_needed(build("small").header_bytes), header_bytes_needed(dump.read(0, 0x2038))) == (
            HEADER64_SIZE,
            HEADER64_SIZE + 0x38 + NBITS // 8,
        )


@pytest.mark.timeout(30)
class TestParseRefuses:
    """Torn or garbage headers raise DumpFormatError with the reason; nothing read is trusted unbounded."""

    @staticmethod
    def refused(data: bytes, match: str) -> None:
        with pytest.raises(DumpFormatError, match=match):
            parse_dump_header(data)

    @staticmethod
    def patched(offset: int, value: bytes) -> bytes:
        data = bytearray(build("kernel").read(0, 3 * PAGE))
        data[offset : offset + len(value)] = value
        return bytes(data)

    def test_a_torn_header(self) -> None:
        """A header cut short (power lost after 4,000 bytes) is torn."""
        self.refused(build("complete").header_bytes[:4000], "torn: 4000 bytes")

    def test_garbage(self) -> None:
        """Bytes that do not start with 'PAGE' are not a dump."""
        self.refused(bytes(range(256)) * 40, "no crash dump signature")

    def test_an_invalidated_dump(self) -> None:
        """A header whose ValidDump was cleared (as after the dump was copied out) is refused."""
        self.refused(self.patched(4, bytes(4)), "ValidDump")

    def test_a_32_bit_dump(self) -> None:
        """A 32-bit dump ('PAGE' 'DUMP') is named as such."""
        self.refused(self.patched(4, b"DUMP"), "32-bit")

    def test_an_unknown_dump_type(self) -> None:
        """A DumpType stacksim does not read is named."""
        self.refused(self.patched(0xF98, (0x1234).to_bytes(4, "little")), "DumpType = 0x1234")

    def test_a_huge_run_count(self) -> None:
        """NumberOfRuns past what the 700-byte block holds is refused before any run is read."""
        self.refused(self.patched(0x88, (0xFFFFFFFF).to_bytes(4, "little")), "NumberOfRuns = 4294967295")

    def test_runs_that_disagree_with_the_page_count(self) -> None:
        """NumberOfPages must be the sum of the runs' page counts."""
        self.refused(self.patched(0x90, (7).to_bytes(8, "little")), "NumberOfPages = 7")

    def test_a_truncated_bitmap(self) -> None:
        """A bitmap dump whose bitmap is not all there is truncated."""
        self.refused(build("kernel").read(0, HEADER64_SIZE + 0x40), "truncated: the bitmap ends at byte 8472")

    def test_a_missing_summary_header(self) -> None:
        """A bitmap dump without SDMP/FDMP at 0x2000 is refused."""
        self.refused(self.patched(0x2000, b"XXXX"), "without a summary header")

    def test_a_bitmap_that_disagrees_with_its_count(self) -> None:
        """The number of pages present must equal the bits set, as rizin checks."""
        self.refused(self.patched(0x2028, (1).to_bytes(8, "little")), "says 1 pages are present")

    def test_a_huge_bitmap(self) -> None:
        """A bitmap size past 2^32 bits is refused before anything is allocated."""
        self.refused(self.patched(0x2030, (2**40).to_bytes(8, "little")), "must be 1 ... 4294967296")

    def test_required_space_smaller_than_the_pages(self) -> None:
        """RequiredDumpSpace that does not cover header and pages is refused."""
        self.refused(self.patched(0xFA0, (HEADER64_SIZE).to_bytes(8, "little")), "RequiredDumpSpace = 8192 bytes is less")


class TestAgreesWithMemoryPlan:
    """What memory.py's DumpPlan says each dump takes, for the same page counts, against the real layout."""

    @staticmethod
    def sizes(plan: object) -> list[tuple[str, int]]:
        return [(p.name, p.bytes) for p in plan.parts]  # type: ignore[attr-defined]

    @staticmethod
    def memory_plan(crash_dump_enabled: int, secondary: int, kernel_fraction: Fraction = Fraction(1, 3)) -> object:
        """memory.py's plan for a machine whose RAM is the runs' pages and whose highest page is the last run's."""
        ram = len(ALL_PFNS) * PAGE
        top_pfn = RUNS[-1][0] + RUNS[-1][1]
        return plan_crash_dump(
            crash_dump_enabled,
            0,
            ram,
            kernel_fraction=kernel_fraction,
            active_fraction=Fraction(1, 2),
            secondary=secondary,
            top_pfn=top_pfn,
        )

    def test_complete_agrees_exactly(self) -> None:
        """Complete: header, bitmap (here one page: 0x700 bits), body and secondary, in order, are memory.py's plan."""
        dump = build("complete")
        ours = self.sizes(dump.plan())
        assert ours[1] == ("bitmap", PAGE)
        assert ours == self.sizes(self.memory_plan(1, SECONDARY))

    def test_kernel_agrees_exactly(self) -> None:
        """Kernel: with kernel_fraction = present pages / RAM pages, every part, the bitmap included, is memory.py's."""
        dump = build("kernel")
        fraction = Fraction(dump.page_count, len(ALL_PFNS))
        ours = self.sizes(dump.plan())
        assert ours[1] == ("bitmap", PAGE)
        assert ours == self.sizes(self.memory_plan(2, SECONDARY, fraction))

    def test_small_agrees_exactly(self) -> None:
        """Small: header and 56 KiB of body, exactly memory.py's plan."""
        plan = self.memory_plan(3, 0)
        assert self.sizes(build("small").plan()) == self.sizes(plan)

    def test_dump_parts_is_the_files_layout_by_arithmetic(self) -> None:
        """dump_parts gives each kind's parts from the page count alone, exactly as the built file has them."""
        for kind in ("complete", "active", "kernel", "automatic", "small"):
            dump = build(kind)
            assert dump_parts(kind, RUNS, dump.page_count, SECONDARY) == dump.parts  # type: ignore[arg-type]

    def test_dump_parts_of_the_largest_machine(self) -> None:
        """For 4 PiB of RAM (2^40 pages) the bitmap part is 128 GiB + 4 KiB, computed without building a bitmap."""
        parts = dump_parts("complete", ((0, 2**40),), 2**40)
        assert [tuple(p) for p in parts[:2]] == [("header", 0, 8192), ("bitmap", 8192, 2**37 + PAGE)]

    def test_plan_places_parts_where_the_file_has_them(self) -> None:
        """CrashDumpFile.plan() is a DumpPlan whose placed offsets are the file's part offsets."""
        dump = build("active")
        assert [(p.name, off) for p, off in dump.plan().placed()] == [(p.name, p.offset) for p in dump.parts]


class TestSyntheticHeader:
    def test_system_time_advances_with_the_crash_time(self) -> None:
        """A crash 1 s later in simulated time moves SystemTime and SystemUpTime by exactly 10^7 (100 ns units)."""
        a = synthetic_header_fields(5, RUNS)
        b = synthetic_header_fields(5, RUNS, crash_time_ns=10**9)
        assert (b.system_time - a.system_time, b.system_up_time - a.system_up_time) == (10**7, 10**7)

    def test_dtb_is_a_page_of_the_runs(self) -> None:
        """The default DirectoryTableBase is the first run page at or after PFN 0x1aa, as in real headers."""
        assert synthetic_header_fields(5, RUNS).directory_table_base == 0x1AA * PAGE
        assert synthetic_header_fields(5, ((0x2000, 10),)).directory_table_base == 0x2000 * PAGE

    def test_context_holds_the_bugcheck_arguments(self) -> None:
        """rcx, rdx, r8, r9 hold KeBugCheckEx's first four arguments (code and parameters 1-3)."""
        c = HEADER.context
        assert (c.rcx, c.rdx, c.r8, c.r9) == (0xE2, *PARAMS[:3])
