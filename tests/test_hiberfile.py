"""The hiberfile's bytes: compression sets written from simulated memory, the header written last, read back strictly."""

from __future__ import annotations

import functools
import io
import re
import struct
import tracemalloc
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from stacksim import FilterCatalog, validate_scenario
from stacksim.hiberfile import (
    ALGORITHM_DEFLATE,
    HEADER_SIZE,
    BodySummary,
    ClassBytes,
    HiberfileError,
    RestoredSet,
    _split,
    build_header,
    compare_memory,
    parse_header,
    read_header,
    read_sets,
    write_body,
    write_hiberfile,
)
from stacksim.physmem import PageClass, PhysicalMemory

KERNEL = frozenset({PageClass.KERNEL})
"""What a fast-startup image holds (the caller's choice: the lead's model decides which pages go)."""
FULL = frozenset({PageClass.KERNEL, PageClass.USER})
"""What a full hibernation holds here."""
TIME_NS = 12_345_678_901


@functools.cache
def memory(seed: int = 7, ram: str = "64 MiB") -> PhysicalMemory:
    """The physical memory of a 64 MiB machine (the realistic map: pages 1–0x9E and 0x100–0x4061)."""
    data = {"scenario": {"name": "hiber", "seed": seed}, "memory": {"ram": ram}}
    return PhysicalMemory.from_scenario(validate_scenario(data, "x", FilterCatalog()))


@functools.cache
def hiberfile(classes: frozenset[PageClass] = FULL, compress: bool = True, seed: int = 7) -> tuple[bytes, BodySummary]:
    """A whole hiberfile of *classes*' pages (fast startup when kernel pages only) and what write_body said."""
    out = io.BytesIO()
    m = memory(seed)
    summary, _ = write_hiberfile(
        m, m.pfns_of(classes), out, fast_startup=classes == KERNEL, system_time_ns=TIME_NS, compress=compress
    )
    return out.getvalue(), summary


def read_all(data: bytes) -> list[RestoredSet]:
    """Every set of the hiberfile *data*, read through a binary stream."""
    return list(read_sets(io.BytesIO(data), parse_header(data)))


def resign(data: bytes | bytearray) -> bytes:
    """*data* with its header's CheckSum recomputed (so a test reaches the checks after the checksum)."""
    out = bytearray(data)
    out[8:12] = bytes(4)
    out[8:12] = struct.pack("<I", zlib.crc32(out[:HEADER_SIZE]))
    return bytes(out)


def set_offsets(data: bytes) -> Iterator[tuple[int, int, int, int]]:
    """(file offset, descriptors, data size, algorithm) of each set, walking the set headers."""
    at = HEADER_SIZE
    for _ in range(parse_header(data).sets):
        (word,) = struct.unpack_from("<I", data, at)
        n, size = word & 0xFF, (word >> 8) & 0x3FFFFF
        yield at, n, size, word >> 30
        at += 4 + 8 * n + size


def edited(data: bytes, offset: int, value: bytes) -> bytes:
    """*data* with *value* written at *offset*."""
    out = bytearray(data)
    out[offset : offset + len(value)] = value
    return bytes(out)


def expected(classes: frozenset[PageClass], seed: int = 7) -> Iterator[np.ndarray]:
    """The PFNs of *classes* in the test memory, as pfns_of yields them."""
    return memory(seed).pfns_of(classes)


class TestWriteBody:
    """write_body: the pages go out in compression sets of up to 16 pages, with the bytes accounted per class."""

    def test_a_full_image_stores_every_kernel_and_user_page(self) -> None:
        """64 MiB, full hibernation: 5,462 kernel and 2,730 user pages in 512 sets of 16."""
        _, s = hiberfile(FULL)
        assert (s.pages, s.sets, s.bytes_in) == (8192, 512, 8192 * 4096)
        assert {c: b.pages for c, b in s.per_class.items()} == {
            PageClass.FREE: 0,
            PageClass.KERNEL: 5462,
            PageClass.USER: 2730,
            PageClass.FILE_CACHE: 0,
            PageClass.GUEST: 0,
        }

    def test_a_fast_startup_image_stores_kernel_pages_only(self) -> None:
        """Kernel pages only: 5,462 pages in 342 sets (341 of 16 and one of 6)."""
        _, s = hiberfile(KERNEL)
        assert (s.pages, s.sets, s.per_class[PageClass.KERNEL].pages, s.per_class[PageClass.USER].pages) == (5462, 342, 5462, 0)

    def test_without_compression_every_set_is_stored_as_it_is(self) -> None:
        """Compression off: every set stored, bytes out = bytes in, plus 4 bytes per set and 8 per descriptor, padded."""
        data, s = hiberfile(KERNEL, compress=False)
        assert (s.stored_sets, s.bytes_out, s.overhead_bytes, s.compressor, s.level) == (
            342,
            5462 * 4096,
            342 * 4 + 393 * 8,
            0,
            0,
        )
        assert (s.data_bytes, s.padding_bytes, s.body_bytes) == (22_376_864, 3680, 22_380_544)
        assert len(data) == HEADER_SIZE + s.body_bytes

    def test_a_run_of_consecutive_pfns_is_one_descriptor(self) -> None:
        """PFNs 0x100–0x104 and 0x200–0x20A are one set with two descriptors; PFN 0x300 a set of its own."""
        out = io.BytesIO()
        pfns = np.concatenate([np.arange(0x100, 0x105), np.arange(0x200, 0x20B), [0x300]]).astype(np.uint64)
        s = write_body(memory(), [pfns], out, compress=False)
        body = out.getvalue()
        assert struct.unpack_from("<IQQ", body, 0) == (2 | 65536 << 8, 0x100 << 4 | 4, 0x200 << 4 | 10)
        assert struct.unpack_from("<IQ", body, 20 + 65536) == (1 | 4096 << 8, 0x300 << 4)
        assert (s.sets, s.overhead_bytes, s.data_bytes) == (2, 4 + 16 + 4 + 8, 20 + 65536 + 12 + 4096)

    def test_compressed_sets_carry_stacksims_deflate_algorithm(self) -> None:
        """The first set of the full image: one descriptor (PFN 1, 16 pages), compressed, algorithm 3."""
        data, _ = hiberfile(FULL)
        at, n, size, algorithm = next(set_offsets(data))
        assert (at, n, algorithm, struct.unpack_from("<Q", data, at + 4)[0]) == (4096, 1, ALGORITHM_DEFLATE, 1 << 4 | 15)
        assert 0 < size < 16 * 4096

    def test_compression_shrinks_each_class_as_measured(self) -> None:
        """Level 1: kernel pages to about 0.318 of their size, user pages to about 0.584 (zlib's output varies by version)."""
        _, s = hiberfile(FULL)
        kernel, user = s.per_class[PageClass.KERNEL].ratio, s.per_class[PageClass.USER].ratio
        assert kernel is not None
        assert user is not None
        assert (round(kernel, 2), round(user, 2), s.stored_sets) == (0.32, 0.58, 0)

    def test_the_byte_counts_add_up(self) -> None:
        """Body = set data + headers and descriptors + padding; the classes' bytes in and out sum to the totals."""
        for classes, compress in ((FULL, True), (FULL, False), (KERNEL, True)):
            data, s = hiberfile(classes, compress)
            assert s.body_bytes == s.bytes_out + s.overhead_bytes + s.padding_bytes == len(data) - HEADER_SIZE
            assert s.data_bytes == s.bytes_out + s.overhead_bytes
            assert sum(b.bytes_out for b in s.per_class.values()) == s.bytes_out
            assert sum(b.bytes_in for b in s.per_class.values()) == s.bytes_in == s.pages * 4096
            assert s.body_bytes % 4096 == 0
            assert 0 <= s.padding_bytes < 4096

    def test_a_mixed_sets_bytes_are_split_in_proportion_to_its_pages(self) -> None:
        """12 kernel + 4 user pages that compress to 1,000 bytes: 750 and 250; a remainder goes to the class with most pages."""
        counts = np.array([[0, 12, 4, 0, 0], [0, 1, 1, 1, 0]], dtype=np.int64)
        assert _split(counts, np.array([1000, 10], dtype=np.int64)).tolist() == [[0, 750, 250, 0, 0], [0, 4, 3, 3, 0]]

    def test_the_full_images_one_mixed_set_is_counted(self) -> None:
        """The full image has one set holding both kernel and user pages."""
        assert hiberfile(FULL)[1].mixed_sets == 1

    def test_the_same_seed_gives_a_byte_identical_body(self) -> None:
        """A fresh PhysicalMemory of the same scenario writes the same bytes; another seed writes other bytes."""
        fresh = PhysicalMemory.from_scenario(
            validate_scenario({"scenario": {"name": "hiber", "seed": 7}, "memory": {"ram": "64 MiB"}}, "x", FilterCatalog())
        )
        again = io.BytesIO()
        write_body(fresh, fresh.pfns_of(FULL), again)
        assert again.getvalue() == hiberfile(FULL)[0][HEADER_SIZE:]
        assert hiberfile(FULL, seed=1)[0][HEADER_SIZE:] != again.getvalue()

    def test_pfns_must_ascend_strictly(self) -> None:
        """A chunk that goes back (or repeats a PFN) is refused."""
        with pytest.raises(ValueError, match="strictly ascending"):
            write_body(memory(), [np.array([0x200, 0x201], np.uint64), np.array([0x201], np.uint64)], io.BytesIO())

    def test_a_pfn_in_a_hole_is_refused(self) -> None:
        """PFN 0 is not RAM in the realistic map."""
        with pytest.raises(ValueError, match="hole"):
            write_body(memory(), [np.array([0], np.uint64)], io.BytesIO())

    @pytest.mark.parametrize("level", [0, 10])
    def test_the_level_is_1_to_9(self, level: int) -> None:
        """Deflate levels outside 1 … 9 are refused when compressing."""
        with pytest.raises(ValueError, match=r"1 \(fastest\) … 9"):
            write_body(memory(), [], io.BytesIO(), level=level)

    def test_writing_holds_a_few_mib_not_the_image(self) -> None:
        """Writing 32 MiB of pages (stored) peaks below 8 MiB of allocations (PhysicalMemory's scratch made beforehand)."""

        class Sink(io.RawIOBase):
            def write(self, b: object) -> int:
                return len(memoryview(b))  # type: ignore[arg-type]

        m = memory()
        write_body(m, [np.array([1], np.uint64)], Sink())  # type: ignore[arg-type]  # PhysicalMemory keeps 8 MiB of scratch
        tracemalloc.start()
        try:
            write_body(m, m.pfns_of(FULL), Sink(), compress=False)  # type: ignore[arg-type]
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < 8 * 2**20


class TestHeader:
    """build_header and parse_header: one page, Windows' offsets where Windows has the field, every value checked."""

    def test_the_header_uses_windows_offsets(self) -> None:
        """HIBR, LengthSelf 0x3e0, PageSize, FirstKernelRestorePage 1, KernelPagesProcessed at 0x230, Hiberboot at 0x364."""
        head = hiberfile(KERNEL)[0][:HEADER_SIZE]
        assert head[:4] == b"HIBR"
        assert [struct.unpack_from("<I", head, o)[0] for o in (0x04, 0x0C, 0x18)] == [
            2,
            0x3E0,
            4096,
        ]  # ImageType, LengthSelf, PageSize
        assert struct.unpack_from("<q", head, 0x20)[0] == TIME_NS  # SystemTime
        assert [struct.unpack_from("<Q", head, o)[0] for o in (0x10, 0x58, 0x68, 0x70, 0x230, 0x398)] == [
            0,
            0,
            0,
            1,
            5462,
            0x4061,
        ]
        assert (head[0x364], head[0x400:0x408]) == (1, b"STKSIMHF")  # Hiberboot, the extension's magic

    def test_parse_reads_back_what_build_wrote(self) -> None:
        """Every field round-trips: the body's size, sets, CRC-32, the compressor and level."""
        data, s = hiberfile(FULL)
        h = parse_header(data)
        assert (h.pages, h.sets, h.data_bytes, h.body_bytes, h.body_crc32) == (8192, 512, s.data_bytes, s.body_bytes, s.crc32)
        assert (h.hiberboot, h.image_type, h.system_time_ns, h.compressor, h.level) == (False, 2, TIME_NS, 1, 1)
        assert (h.first_kernel_restore_page, h.body_offset, h.file_bytes, h.highest_physical_page) == (1, 4096, len(data), 0x4061)

    def test_the_checksum_is_a_crc32_of_the_page_with_the_field_zeroed(self) -> None:
        """CheckSum at 0x8 = zlib.crc32 of the header page with those 4 bytes zero."""
        head = hiberfile(FULL)[0][:HEADER_SIZE]
        assert struct.unpack_from("<I", head, 8)[0] == zlib.crc32(head[:8] + bytes(4) + head[12:])

    def test_a_zero_header_page_means_the_hibernation_did_not_complete(self) -> None:
        """No HIBR signature: the header, written last, is missing."""
        with pytest.raises(HiberfileError, match="the header, written last, is missing: the hibernation did not complete"):
            parse_header(bytes(HEADER_SIZE))

    def test_a_short_header_is_torn(self) -> None:
        """Fewer than 4,096 bytes."""
        with pytest.raises(HiberfileError, match="torn: 100 bytes of the 4,096-byte header"):
            parse_header(hiberfile(FULL)[0][:100])

    def test_a_changed_byte_fails_the_checksum(self) -> None:
        """One byte changed anywhere in the header page."""
        with pytest.raises(HiberfileError, match="bad header checksum"):
            parse_header(edited(hiberfile(FULL)[0], 0x800, b"\x01"))

    @pytest.mark.parametrize(
        ("offset", "fmt", "value", "reason"),
        [
            (0x0C, "<I", 0x448, "LengthSelf = 0x448"),
            (0x18, "<I", 8192, "PageSize = 8192"),
            (0x04, "<I", 3, "ImageType = 3"),
            (0x364, "<B", 2, "Hiberboot = 2"),
            (0x58, "<Q", 5, "NumPagesForLoader = 5"),
            (0x70, "<Q", 2, "FirstKernelRestorePage = 2"),
            (0x398, "<Q", 2**40, "HighestPhysicalPage = 0x10000000000"),
            (0x230, "<Q", 2**64 - 1, "KernelPagesProcessed = 18,446,744,073,709,551,615"),
            (0x230, "<Q", 8193, "512 sets for 8,193 pages: must be 513 … 8,193"),
            (0x418, "<Q", 2**64 - 1, "18,446,744,073,709,551,615 sets for 8,192 pages"),
            (0x420, "<Q", 100, "data bytes = 100"),
            (0x428, "<Q", 4096, "body bytes = 4,096"),
            (0x40C, "<I", 7, "compressor = 7"),
            (0x410, "<I", 12, "compression level = 12"),
            (0x400, "<8s", b"NOTOURS!", "no stacksim extension"),
            (0x20, "<q", -1, "SystemTime = -1"),
        ],
    )
    def test_impossible_values_are_refused(self, offset: int, fmt: str, value: int | bytes, reason: str) -> None:
        """A field out of its range, or out of step with the others, is refused with its name (after a valid checksum)."""
        data = resign(edited(hiberfile(FULL)[0], offset, struct.pack(fmt, value)))
        with pytest.raises(HiberfileError, match=reason):
            parse_header(data)

    def test_a_reduced_hiberfile_takes_fast_startup_images_only(self) -> None:
        """build_header refuses a full hibernation into a reduced hiberfile."""
        with pytest.raises(ValueError, match="fast-startup images only"):
            build_header(hiberfile(FULL)[1], fast_startup=False, system_time_ns=0, hiberfile_type="reduced")


class _Recorder(io.BytesIO):
    """A file that records (offset, length) of every write."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[tuple[int, int]] = []

    def write(self, b: object) -> int:
        self.writes.append((self.tell(), len(memoryview(b))))  # type: ignore[arg-type]
        return super().write(b)  # type: ignore[arg-type]


class _PowerLoss(_Recorder):
    """A file whose writes stop (with an error) once *limit* bytes have been written."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def write(self, b: object) -> int:
        if sum(n for _, n in self.writes) + len(memoryview(b)) > self.limit:  # type: ignore[arg-type]
            raise OSError("power lost")
        return super().write(b)


class TestHeaderLast:
    """The header is the commit marker: written after the whole body, so a cut-short hibernation has none."""

    def test_the_header_is_the_last_write(self) -> None:
        """Page 0 is zeroed first, every body write lands at offset 4096 or later, the header at 0 is the last write."""
        out = _Recorder()
        m = memory()
        write_hiberfile(m, m.pfns_of(KERNEL), out, fast_startup=True, system_time_ns=TIME_NS)
        assert out.writes[0] == out.writes[-1] == (0, HEADER_SIZE)
        assert min(offset for offset, _ in out.writes[1:-1]) == HEADER_SIZE

    def test_a_hibernation_cut_short_leaves_no_header(self) -> None:
        """Power lost after 4 MiB of the body: the file's first page is zeros and resume refuses it."""
        out = _PowerLoss(4 * 2**20)
        m = memory()
        with pytest.raises(OSError, match="power lost"):
            write_hiberfile(m, m.pfns_of(FULL), out, fast_startup=False, system_time_ns=TIME_NS)
        out.seek(0)
        with pytest.raises(HiberfileError, match="the hibernation did not complete"):
            read_header(out)

    def test_an_old_header_is_invalidated_before_the_body_is_written(self) -> None:
        """Writing over a complete hiberfile and losing power part-way leaves no header, not the old one."""
        out = _PowerLoss(2**62)
        out.write(hiberfile(FULL)[0])
        out.limit = out.tell() + 2 * 2**20
        m = memory()
        with pytest.raises(OSError, match="power lost"):
            write_hiberfile(m, m.pfns_of(KERNEL), out, fast_startup=True, system_time_ns=TIME_NS)
        out.seek(0)
        with pytest.raises(HiberfileError, match="the hibernation did not complete"):
            read_header(out)


class TestRoundTrip:
    """What read_sets restores is memory's pages, byte for byte, and compare_memory says so."""

    @pytest.mark.parametrize(("classes", "compress"), [(FULL, True), (FULL, False), (KERNEL, True), (KERNEL, False)])
    def test_restored_pages_match_memory(self, classes: frozenset[PageClass], compress: bool) -> None:
        """Full and fast-startup images, compressed or not, restore exactly the pages written."""
        data, s = hiberfile(classes, compress)
        result = compare_memory(memory(), read_sets(io.BytesIO(data), parse_header(data)), expected=expected(classes))
        assert (result.matches, result.compared_pages, result.mismatched_pages, result.missing_pages, result.extra_pages) == (
            True,
            s.pages,
            0,
            0,
            0,
        )

    def test_a_read_callable_works_like_a_file(self) -> None:
        """read(offset, length) over the bytes gives the same sets as the stream."""
        data, _ = hiberfile(KERNEL)
        sets = list(read_sets(lambda offset, n: data[offset : offset + n], read_header(lambda o, n: data[o : o + n])))
        assert [(s.pfns.tolist(), s.data) for s in sets] == [(s.pfns.tolist(), s.data) for s in read_all(data)]

    def test_every_set_holds_at_most_16_pages_in_ascending_order(self) -> None:
        """Sets of ≤ 16 pages, PFNs ascending through the body, 4,096 bytes per page."""
        sets = read_all(hiberfile(FULL)[0])
        pfns = np.concatenate([s.pfns for s in sets])
        assert max(s.pfns.size for s in sets) == 16
        assert all(len(s.data) == s.pfns.size * 4096 for s in sets)
        assert bool((np.diff(pfns.astype(np.int64)) > 0).all())
        assert pfns.size == 8192

    def test_a_fast_startup_image_is_missing_the_user_pages(self) -> None:
        """Compared with a full hibernation's pages, the kernel-only image misses all 2,730 user pages, the first at PFN 0x41."""
        data, _ = hiberfile(KERNEL)
        result = compare_memory(memory(), read_all(data), expected=expected(FULL))
        assert (result.matches, result.missing_pages, result.first_missing_pfn, result.extra_pages) == (False, 2730, 0x41, 0)

    def test_pages_not_expected_are_extra(self) -> None:
        """A full image compared with the kernel pages only has 2,730 extra pages, not compared."""
        result = compare_memory(memory(), read_all(hiberfile(FULL)[0]), expected=expected(KERNEL))
        assert (result.matches, result.extra_pages, result.first_extra_pfn, result.compared_pages) == (False, 2730, 0x41, 5462)

    def test_a_changed_page_is_a_mismatch(self) -> None:
        """One byte changed in the third set's second page: one mismatched page, at its PFN."""
        sets = read_all(hiberfile(FULL)[0])
        pfns, data = sets[2]
        sets[2] = RestoredSet(pfns, data[: 4096 + 100] + b"\xff" + data[4096 + 101 :])
        result = compare_memory(memory(), sets, expected=expected(FULL))
        assert (result.matches, result.mismatched_pages, result.first_mismatch_pfn) == (False, 1, int(pfns[1]))

    def test_an_image_of_no_pages_is_a_header_alone(self) -> None:
        """No PFNs: an empty body, a header that says so, and nothing to read back."""
        out = io.BytesIO()
        summary, header = write_hiberfile(memory(), [], out, fast_startup=True, system_time_ns=0)
        assert (summary.body_bytes, header.pages, header.sets, len(out.getvalue())) == (0, 0, 0, HEADER_SIZE)
        assert list(read_sets(out, header)) == []

    def test_class_bytes_ratio_is_none_without_pages(self) -> None:
        """A class with no pages has no ratio."""
        assert ClassBytes(0, 0, 0).ratio is None


class TestCorruption:
    """Each kind of damage to the body is refused with the reason that names it."""

    def test_zero_descriptors(self) -> None:
        """A set header with 0 page descriptors."""
        data, _ = hiberfile(FULL)
        with pytest.raises(HiberfileError, match="set 0 at byte 0x1000: 0 page descriptors"):
            read_all(edited(data, HEADER_SIZE, b"\x00"))

    def test_seventeen_descriptors(self) -> None:
        """A set header with 17 page descriptors."""
        data, _ = hiberfile(FULL)
        with pytest.raises(HiberfileError, match="17 page descriptors; a set has 1 … 16"):
            read_all(edited(data, HEADER_SIZE, b"\x11"))

    def test_descriptors_holding_more_than_16_pages(self) -> None:
        """Two descriptors of 16 pages each in one set."""
        data, _ = hiberfile(FULL)
        head = struct.pack("<IQQ", 2 | 4096 << 8 | ALGORITHM_DEFLATE << 30, 1 << 4 | 15, 0x100 << 4 | 15)
        with pytest.raises(HiberfileError, match="its descriptors hold 32 pages; a set holds at most 16"):
            read_all(edited(data, HEADER_SIZE, head))

    def test_a_pfn_out_of_order(self) -> None:
        """The second set's descriptor pointing back at PFN 1."""
        data, _ = hiberfile(FULL)
        at = list(set_offsets(data))[1][0]
        with pytest.raises(HiberfileError, match=f"set 1 at byte {at:#x}: PFN 0x1 is out of order"):
            read_all(edited(data, at + 4, struct.pack("<Q", 1 << 4 | 15)))

    def test_a_pfn_above_the_highest_physical_page(self) -> None:
        """A descriptor past HighestPhysicalPage (0x4061)."""
        data, _ = hiberfile(FULL)
        with pytest.raises(HiberfileError, match=r"PFN 0x5000f is above HighestPhysicalPage \(0x4061\)"):
            read_all(edited(data, HEADER_SIZE + 4, struct.pack("<Q", 0x50000 << 4 | 15)))

    def test_corrupt_deflate_data(self) -> None:
        """The first set's data overwritten with 0xFF bytes (a reserved deflate block type)."""
        data, _ = hiberfile(FULL)
        with pytest.raises(HiberfileError, match="set 0 at byte 0x1000: the deflate data is corrupt"):
            read_all(edited(data, HEADER_SIZE + 12, b"\xff" * 64))

    def test_deflate_data_that_inflates_to_fewer_bytes(self) -> None:
        """A set whose data is a valid deflate stream of 15 pages where its descriptor says 16."""
        data, _ = hiberfile(FULL)
        packed = zlib.compress(bytes(15 * 4096), 1, wbits=-15)
        head = struct.pack("<IQ", 1 | len(packed) << 8 | ALGORITHM_DEFLATE << 30, 1 << 4 | 15)
        with pytest.raises(HiberfileError, match="decompresses to 61,440 bytes, not the 65,536 its pages take"):
            read_all(edited(data, HEADER_SIZE, head + packed))

    def test_a_data_size_larger_than_the_pages(self) -> None:
        """A data size of 65,537 bytes for 16 pages."""
        data, _ = hiberfile(FULL)
        word = struct.unpack_from("<I", data, HEADER_SIZE)[0] & ~(0x3FFFFF << 8) | 65537 << 8
        with pytest.raises(HiberfileError, match="its data size 65,537 bytes is more than its 16 pages take"):
            read_all(edited(data, HEADER_SIZE, struct.pack("<I", word)))

    @pytest.mark.parametrize(("algorithm", "kind"), [(0, "Xpress \\(plain LZ77\\)"), (2, "Xpress Huffman")])
    def test_windows_algorithms_are_not_decompressed(self, algorithm: int, kind: str) -> None:
        """A compressed set marked with Windows' Xpress values."""
        data, _ = hiberfile(FULL)
        word = struct.unpack_from("<I", data, HEADER_SIZE)[0] & 0x3FFFFFFF | algorithm << 30
        with pytest.raises(HiberfileError, match=f"algorithm {algorithm}; Windows' tools read it as {kind}"):
            read_all(edited(data, HEADER_SIZE, struct.pack("<I", word)))

    def test_a_stored_set_with_an_algorithm(self) -> None:
        """A stored set (data size 65,536) whose bits 30–31 are not 0."""
        data, _ = hiberfile(FULL, compress=False)
        word = struct.unpack_from("<I", data, HEADER_SIZE)[0] | ALGORITHM_DEFLATE << 30
        with pytest.raises(HiberfileError, match=r"a stored set .* with algorithm 3"):
            read_all(edited(data, HEADER_SIZE, struct.pack("<I", word)))

    def test_a_truncated_body(self) -> None:
        """The file cut 1 MiB into the body."""
        data, _ = hiberfile(FULL)
        with pytest.raises(HiberfileError, match="truncated: the file ends at byte 0x101000"):
            read_all(data[: HEADER_SIZE + 2**20])

    def test_a_changed_page_byte_fails_the_body_checksum(self) -> None:
        """A byte of a stored page changed: every set reads, then the CRC-32 does not match."""
        data, s = hiberfile(FULL, compress=False)
        changed = edited(data, HEADER_SIZE + 12 + 5000, b"\x00")
        with pytest.raises(HiberfileError, match=f"body checksum mismatch: the header says CRC-32 {s.crc32:#010x}"):
            read_all(changed)

    def test_nonzero_padding(self) -> None:
        """A byte in the padding after the last set."""
        data, _ = hiberfile(FULL)
        with pytest.raises(HiberfileError, match="padding after the last set"):
            read_all(data[:-1] + b"\x01")

    def test_fewer_pages_in_the_header_than_in_the_body(self) -> None:
        """KernelPagesProcessed 8,190 (and 512 sets): the last set takes the body past it."""
        data, _ = hiberfile(FULL)
        with pytest.raises(HiberfileError, match=r"set 511 .* take the body past the 8,190 the header says it holds"):
            read_all(resign(edited(data, 0x230, struct.pack("<Q", 8190))))

    def test_more_sets_in_the_header_than_in_the_body(self) -> None:
        """513 sets claimed for the body's 512."""
        data, _ = hiberfile(FULL)
        with pytest.raises(HiberfileError, match="came in 512 sets; the header says 513"):
            read_all(resign(edited(data, 0x418, struct.pack("<Q", 513))))

    def test_a_compressed_set_in_a_body_stored_uncompressed(self) -> None:
        """A header saying compression was off, over a compressed body."""
        data, _ = hiberfile(FULL)
        with pytest.raises(HiberfileError, match="a compressed set in a body the header says is stored uncompressed"):
            read_all(resign(edited(data, 0x40C, struct.pack("<II", 0, 0))))


def test_the_reference_pages_example_runs() -> None:
    """The python block in docs/reference/hiberfile-format.md runs and its assertions hold."""
    page = Path(__file__).parent.parent / "docs" / "reference" / "hiberfile-format.md"
    [block] = re.findall(r"^```python\n(.*?)^```$", page.read_text(encoding="utf-8"), flags=re.MULTILINE | re.DOTALL)
    exec(compile(block, str(page), "exec"), {})
