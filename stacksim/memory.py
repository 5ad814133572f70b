"""
What a dump contains: its parts (header, body, secondary data) and their sizes per dump type.

Sources (fact sheet §5.1, Microsoft Learn "Varieties of kernel-mode dump files" [DOC S39-S41]
and volatility3's crash-dump layer [RE S42]):

* **Header**: 2 pages (8 KiB) on 64-bit Windows ('PAGE' + 'DU64'), written first [RE S42; DOC S14].
* **Bitmap** (every kind but small): Windows writes complete, active, kernel and automatic dumps
  as bitmap dumps (``DumpType`` 5): after the header, a 0x38-byte summary header ('SDMP' or
  'FDMP') and one bit per page frame up to the highest page of RAM (in whole 32-bit words),
  padded to whole pages; the pages it marks follow [RE S56, S57; DOC S58;
  ``docs/reference/dump-format.md``]. Its size depends on the highest physical address, not on
  the dump's size: 64 KiB per 2 GiB of address space.
* **Complete** (``CrashDumpEnabled = 1``): all physical memory used by Windows, plus secondary
  data that bugcheck callbacks add (up to 256 MiB) [DOC S39-S41].
* **Active** (``CrashDumpEnabled = 1`` and ``FilterPages = 1``): complete minus free, zeroed,
  file-cache and guest-VM pages, "typically significantly smaller" [DOC S39]. The fraction kept is
  *assumption* ``memory.active_fraction`` (default 0.5).
* **Kernel** (2) and **Automatic** (7): kernel, HAL and driver memory, "typically around one-third
  the size of the physical memory" [DOC S39]: ``memory.kernel_fraction`` (default 1/3).
* **Small** (3): "exactly 64 KB" [DOC S39], header included.
* **Hibernation**: the hiberfile image, header page at offset 0 but written last (the commit
  marker; ASSUMPTION), then the body: the pages the mark-memory pass keeps, in compression sets of
  up to :data:`SET_PAGES` pages [RE S42]. Which pages are kept and how well they compress is
  :func:`plan_hibernation`'s input (``[hibernation]``; ``docs/explanation/hibernation.md``).

Every part is rounded up to whole pages. The body and secondary sizes are model parameters, not
measured values: change them in ``[memory]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Final

from stacksim.requests import PAGE_SIZE

__all__ = [
    "CRASH_DUMP_TYPES",
    "HEADER_BYTES",
    "SET_OVERHEAD_BYTES",
    "SET_PAGES",
    "SMALL_DUMP_BYTES",
    "SUMMARY_HEADER_BYTES",
    "DumpPart",
    "DumpPlan",
    "HiberImage",
    "bitmap_part_bytes",
    "plan_crash_dump",
    "plan_hibernation",
]

HEADER_BYTES: Final = 2 * PAGE_SIZE
"""64-bit crash dump header: two pages [RE S42]."""

SMALL_DUMP_BYTES: Final = 64 * 1024
"""A small memory dump is exactly 64 KiB [DOC S39]."""

SUMMARY_HEADER_BYTES: Final = 0x38
"""The bitmap dump's summary header before the bitmap ('SDMP'/'FDMP', ``_SUMMARY_DUMP``) [RE S56, S57]."""

SET_PAGES: Final = 16
"""Pages per hiberfile compression set at most: a set decompresses to ≤ 64 KiB [RE S42]."""

SET_OVERHEAD_BYTES: Final = 4 + 8
"""What the timing model adds per compression set: its 32-bit header and one 8-byte page descriptor [RE S42].

(ASSUMPTION: a set's pages are consecutive, so one descriptor covers them.)"""

CRASH_DUMP_TYPES: Final = {0: "none", 1: "complete", 2: "kernel", 3: "small", 7: "automatic"}
"""``CrashDumpEnabled`` values and their names; ``FilterPages = 1`` turns complete into active."""


@dataclass(frozen=True, slots=True)
class DumpPart:
    """One contiguous part of the dump file, at *file_offset* (None: right after the previous part)."""

    name: str
    bytes: int
    file_offset: int | None = None


@dataclass(frozen=True, slots=True)
class HiberImage:
    """
    What a hiberfile image holds: the pages kept by class, their bytes before compression, and the body as written.

    ``body_bytes`` is the body's size on disk: in timing mode an estimate from the compressed
    fraction of each page class (:func:`plan_hibernation`), in data mode what the compressor wrote.
    """

    mode: str
    """``hibernate`` (kernel and user memory) or ``fast-startup`` (the kernel session only)."""
    pages: tuple[tuple[str, int], ...]
    """Pages kept, per page class, in class order."""
    compressed: bool
    body_bytes: int

    @property
    def kept_pages(self) -> int:
        """Pages the image holds."""
        return sum(n for _, n in self.pages)

    @property
    def uncompressed_bytes(self) -> int:
        """The kept pages' bytes: what the compressor reads."""
        return self.kept_pages * PAGE_SIZE

    @property
    def sets(self) -> int:
        """Compression sets of up to :data:`SET_PAGES` pages."""
        return -(-self.kept_pages // SET_PAGES)


@dataclass(frozen=True, slots=True)
class DumpPlan:
    """The dump's kind (``complete``, ``kernel``, ..., ``hibernation``) and its parts in write order."""

    def placed(self) -> list[tuple[DumpPart, int]]:
        """Each part with its file offset, in write order."""
        out, pos = [], 0
        for part in self.parts:
            start = part.file_offset if part.file_offset is not None else pos
            out.append((part, start))
            pos = start + part.bytes
        return out

    kind: str
    parts: tuple[DumpPart, ...]
    hiber: HiberImage | None = None
    """A hiberfile image's contents (``None`` for a crash dump)."""

    @property
    def total_bytes(self) -> int:
        """Bytes the whole dump occupies."""
        return sum(p.bytes for p in self.parts)

    def truncated(self, size: int) -> DumpPlan:
        """The plan cut after its first *size* bytes (what fits in a too-small file)."""
        parts, left = [], size
        for part in self.parts:
            if left <= 0:
                break
            parts.append(DumpPart(part.name, min(part.bytes, left)))
            left -= part.bytes
        return DumpPlan(self.kind, tuple(parts), self.hiber)


def _pages(n: Fraction | int) -> int:
    """Round a byte count up to whole pages."""
    pages = -(-Fraction(n) // PAGE_SIZE)
    return int(pages) * PAGE_SIZE


def bitmap_part_bytes(top_pfn: int) -> int:
    """The summary header and bitmap of a machine whose highest page frame is *top_pfn* − 1, in whole pages."""
    bits = -(-top_pfn // 32) * 32
    return _pages(SUMMARY_HEADER_BYTES + bits // 8)


def plan_crash_dump(
    crash_dump_enabled: int,
    filter_pages: int,
    ram: int,
    *,
    kernel_fraction: Fraction,
    active_fraction: Fraction,
    secondary: int,
    top_pfn: int,
) -> DumpPlan:
    """
    The parts of a crash dump of the configured type (see the module docstring).

    *top_pfn* is one past the highest page frame of RAM (``MemoryMap.max_pfn``): it sizes the bitmap.
    """
    kind = CRASH_DUMP_TYPES[crash_dump_enabled]
    if kind == "none":
        return DumpPlan("none", ())
    header = DumpPart("header", HEADER_BYTES)
    if kind == "small":
        return DumpPlan("small", (header, DumpPart("body", SMALL_DUMP_BYTES - HEADER_BYTES)))
    if kind == "complete":
        if filter_pages == 1:
            kind, body = "active", _pages(ram * active_fraction)
        else:
            body = ram
    else:  # kernel, automatic
        body = _pages(ram * kernel_fraction)
    parts = [header, DumpPart("bitmap", bitmap_part_bytes(top_pfn)), DumpPart("body", body)]
    if secondary:
        parts.append(DumpPart("secondary", _pages(secondary)))
    return DumpPlan(kind, tuple(parts))


def plan_hibernation(
    pages: dict[str, int], *, mode: str, compressed_fraction: dict[str, Fraction] | None, body_bytes: int | None = None
) -> DumpPlan:
    """
    The hiberfile image: the body (the kept *pages*, by class, in compression sets), then its one-page header.

    The header sits at offset 0 but is written *last*: its valid signature is the commit marker,
    so a hibernation torn by power loss is never resumed (ASSUMPTION: the fact sheet found no
    source on the order, §5.2 [INF]).

    The body's size is *body_bytes* when the bytes are known (data mode: what the compressor
    wrote); otherwise the timing model's estimate: each class's pages times its
    *compressed_fraction* (``None``: stored uncompressed), plus :data:`SET_OVERHEAD_BYTES` per
    set of :data:`SET_PAGES` pages, rounded up to whole pages.
    """
    kept = sum(pages.values())
    if body_bytes is None:
        data = Fraction(0)
        for name, n in pages.items():
            data += n * PAGE_SIZE * (1 if compressed_fraction is None else compressed_fraction[name])
        body_bytes = _pages(data + -(-kept // SET_PAGES) * SET_OVERHEAD_BYTES) if kept else 0
    image = HiberImage(mode, tuple(pages.items()), compressed_fraction is not None, body_bytes)
    return DumpPlan("hibernation", (DumpPart("body", body_bytes, PAGE_SIZE), DumpPart("header", PAGE_SIZE, 0)), image)
