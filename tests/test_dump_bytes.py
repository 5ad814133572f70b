"""
The dump file's bytes generated into a caller's buffer: CrashDumpFile.read_into and data mode's DumpBytes window.

Both must give exactly what ``CrashDumpFile.read`` gives (the bytes every other test of the format
checks against independent parsers), for any range, with whole pages generated in place.
"""

from __future__ import annotations

import numpy as np
import pytest

from stacksim.datamode import GENERATE_DIRECT, READ_AHEAD, DumpBytes
from stacksim.dumpfmt import HEADER64_SIZE, CrashDumpFile, PageSet, synthetic_header_fields

PAGE = 4096
RUNS = ((0x1, 0x9F), (0x100, 0x300), (0x500, 0x200))
"""Three runs with holes: 1,439 pages."""
NBITS = 0x700
HEADER = synthetic_header_fields(7, RUNS)


def page_bytes(pfn: int, count: int) -> bytes:
    """Pages whose every 8-byte word is (PFN << 16 | word index)."""
    words = (np.arange(pfn, pfn + count, dtype=np.uint64)[:, None] << np.uint64(16)) | np.arange(512, dtype=np.uint64)
    return words.astype("<u8").tobytes()


class Pages:
    """A page source with ``read_pages`` only; records its calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int, int]] = []

    def read_pages(self, pfn: int, count: int) -> bytes:
        self.calls.append(("read_pages", pfn, count))
        return page_bytes(pfn, count)


class PagesInto(Pages):
    """A page source that also fills buffers in place (as PhysicalMemory does)."""

    def read_pages_into(self, pfn: int, buffer: memoryview) -> None:
        self.calls.append(("read_pages_into", pfn, len(buffer) // PAGE))
        buffer[:] = page_bytes(pfn, len(buffer) // PAGE)


def build(kind: str, source: Pages, secondary: int = 5000) -> CrashDumpFile:
    """A *kind* dump of RUNS over *source* (kernel: every third page)."""
    present = None
    if kind == "kernel":
        mask = np.zeros(NBITS, dtype=bool)
        pfns = np.array([b + i for b, c in RUNS for i in range(c)])
        mask[pfns[pfns % 3 == 0]] = True
        present = PageSet.from_mask(mask)
    return CrashDumpFile(kind, RUNS, HEADER, source, present=present, secondary_bytes=secondary)  # type: ignore[arg-type]


def into(dump: CrashDumpFile, offset: int, length: int) -> bytes:
    out = bytearray(length)
    dump.read_into(offset, out)
    return bytes(out)


RANGES = [
    (0, HEADER64_SIZE),  # the header
    (100, 50),  # inside the header
    (HEADER64_SIZE - 10, 30),  # header into the bitmap
    (HEADER64_SIZE, 4096),  # the bitmap
    (3 * PAGE, 64 * 1024),  # whole pages of the body
    (3 * PAGE + 17, 10_000),  # cut pages at both ends
    (3 * PAGE + 1, 100),  # inside one page
    (3 * PAGE + 4000, 200),  # across one page boundary, no whole page
]


class TestReadInto:
    @pytest.mark.parametrize("kind", ["complete", "kernel", "small"])
    @pytest.mark.parametrize(("offset", "length"), RANGES)
    def test_equals_read(self, kind: str, offset: int, length: int) -> None:
        """read_into gives the bytes read gives, for every part and any cut."""
        dump = build(kind, PagesInto())
        length = min(length, dump.size - offset)  # (a small dump is 64 KiB)
        assert into(dump, offset, length) == dump.read(offset, length)

    @pytest.mark.parametrize("kind", ["complete", "kernel"])
    def test_the_whole_file_in_write_sized_pieces_equals_read(self, kind: str) -> None:
        """Every 64 KiB piece of the file, secondary data included, is the piece read gives."""
        dump = build(kind, PagesInto())
        whole = dump.read(0, dump.size)
        pieces = b"".join(into(dump, o, min(65536, dump.size - o)) for o in range(0, dump.size, 65536))
        assert pieces == whole

    def test_whole_pages_are_generated_in_place(self) -> None:
        """A range of whole body pages calls read_pages_into, once per run it touches, and never read_pages."""
        source = PagesInto()
        dump = build("complete", source)
        body = dump.first_page_offset
        into(dump, body, 0x9F * PAGE + 16 * PAGE)  # the first run and 16 pages of the second
        assert source.calls == [("read_pages_into", 0x1, 0x9F), ("read_pages_into", 0x100, 16)]

    def test_a_source_without_read_pages_into_is_read(self) -> None:
        """A source with read_pages only gives the same bytes through read_pages."""
        source = Pages()
        dump = build("complete", source)
        offset = dump.first_page_offset + 5 * PAGE
        assert into(dump, offset, 8 * PAGE) == dump.read(offset, 8 * PAGE)
        assert {c[0] for c in source.calls} == {"read_pages"}

    def test_a_memoryview_of_a_larger_buffer_is_filled_and_nothing_else(self) -> None:
        """A view into a bigger buffer receives the bytes; the bytes around it stay as they were."""
        dump = build("complete", PagesInto())
        buffer = bytearray(b"\xaa" * (3 * PAGE))
        dump.read_into(dump.first_page_offset, memoryview(buffer)[PAGE : 2 * PAGE])
        assert buffer[:PAGE] == buffer[2 * PAGE :] == b"\xaa" * PAGE
        assert bytes(buffer[PAGE : 2 * PAGE]) == dump.read(dump.first_page_offset, PAGE)

    def test_a_read_only_buffer_is_refused(self) -> None:
        """Bytes cannot be generated into a read-only buffer."""
        with pytest.raises(TypeError, match="read-only"):
            build("complete", PagesInto()).read_into(0, memoryview(bytes(16)))

    @pytest.mark.parametrize("back", [None, 1])
    def test_a_range_outside_the_file_is_refused(self, back: int | None) -> None:
        """A range that starts before the file (None) or ends past it (1 byte before its end, 2 long) is an error, as for read."""
        dump = build("complete", PagesInto())
        with pytest.raises(ValueError, match="outside"):
            dump.read_into(-1 if back is None else dump.size - back, bytearray(2))


class TestDumpBytes:
    def test_writes_in_order_get_the_files_bytes(self) -> None:
        """Write-sized reads from the start to the end give the file's bytes, window after window."""
        dump = build("complete", PagesInto())
        contents = DumpBytes(dump)
        whole = dump.read(0, dump.size)
        got = b"".join(bytes(contents.read(o, min(65536, dump.size - o))) for o in range(0, dump.size, 65536))
        assert got == whole

    def test_a_read_is_a_read_only_view(self) -> None:
        """What a read returns cannot be written through (crashdmp copies it into its own buffer)."""
        view = DumpBytes(build("complete", PagesInto())).read(0, 512)
        assert isinstance(view, memoryview)
        assert view.readonly

    def test_reads_inside_the_window_generate_nothing_more(self) -> None:
        """The pages of a window are generated once: further reads inside it call the source no more."""
        source = PagesInto()
        contents = DumpBytes(build("complete", source))
        contents.read(0, 65536)
        calls = len(source.calls)
        contents.read(65536, 65536)
        assert len(source.calls) == calls

    def test_going_back_regenerates_the_right_bytes(self) -> None:
        """A read before the window (a retried or moved write) gets the file's bytes all the same."""
        dump = build("complete", PagesInto())
        contents = DumpBytes(dump)
        contents.read(dump.size - 4096, 4096)
        assert bytes(contents.read(0, 8192)) == dump.read(0, 8192)

    def test_a_read_longer_than_the_window(self) -> None:
        """A write longer than READ_AHEAD gets a window of its own length, with the file's bytes."""
        runs = ((0x100, 2 * READ_AHEAD // PAGE),)
        dump = CrashDumpFile("complete", runs, synthetic_header_fields(1, runs), PagesInto())
        length = READ_AHEAD + 3 * PAGE
        assert bytes(DumpBytes(dump).read(PAGE, length)) == dump.read(PAGE, length)

    def test_a_short_write_is_copied_from_the_window(self) -> None:
        """read_into for a write shorter than GENERATE_DIRECT: the file's bytes, from one window for many writes."""
        source = PagesInto()
        dump = build("complete", source)
        contents = DumpBytes(dump)
        out = bytearray(65536)
        got = []
        for offset in (0, 65536, 2 * 65536):
            contents.read_into(offset, out)
            got.append(bytes(out))
        generated = [c[2] for c in source.calls]
        assert got == [dump.read(o, 65536) for o in (0, 65536, 2 * 65536)]
        assert sum(generated) == READ_AHEAD // PAGE - 3  # one window: the pages after the header and bitmap

    def test_a_long_write_is_generated_straight_into_the_buffer(self) -> None:
        """read_into for a write of GENERATE_DIRECT bytes or more: the file's bytes, generated for that write alone."""
        source = PagesInto()
        dump = build("complete", source)
        out = bytearray(GENERATE_DIRECT)
        DumpBytes(dump).read_into(3 * PAGE, out)
        generated = sum(c[2] for c in source.calls)
        assert bytes(out) == dump.read(3 * PAGE, GENERATE_DIRECT)
        assert generated == GENERATE_DIRECT // PAGE
