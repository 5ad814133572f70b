"""
The Windows 8+ hibernation file (``hiberfil.sys``): the bytes the hibernation stack writes, and reading them back.

When Windows hibernates it writes memory to ``hiberfil.sys`` through the ``hiber_`` copy of the
dump stack, and the boot loader reads it back to resume. From Windows 8 on the file starts with
a one-page header, ``PO_MEMORY_IMAGE``, signature ``HIBR`` [RE S42, S42c, S42g], and holds the
pages as **compression sets** [RE S42, S42g]:

* a 32-bit set header: bits 0–7 the number of page descriptors (1 … 16), bits 8–29 the size of
  the set's data in bytes, bits 30–31 the compression algorithm;
* the page descriptors, 8 bytes each: the number of pages − 1 in the low 4 bits, the first PFN
  in the upper 60 (a descriptor stands for up to 16 consecutive pages);
* the data: the set's pages one after the other, compressed as one piece, or stored as they
  are when the data size equals pages × 4096 [RE S42, S42g]. A set decompresses to at most
  64 KiB, 16 pages [RE S42 (its Huffman decoder's output limit), S42g (its warning past 16)].

Windows compresses with Xpress: plain LZ77 in Windows Vista and 7, with or without Huffman coding
from Windows 8 on [RE S42b]. No well-kept Python library *compresses* Xpress Huffman, so stacksim compresses each
set with **raw deflate** from the standard library's ``zlib`` (LZ77 + Huffman too, the same
family; level 1 by default) and marks those sets with algorithm 3 (:data:`ALGORITHM_DEFLATE`).
The readers checked give bits 30–31 Windows' meanings: volatility3 decodes 0 and 1 as Xpress
and 2 and 3 as Xpress Huffman [RE S42]; LeechCore decodes bit 31 as Xpress Huffman and bit 30
as nothing [RE S42g]. So Windows' tools find stacksim's compressed sets where they expect them
but **cannot decompress them** (they try Xpress Huffman and fail); stored (raw) sets they read.

What stacksim writes, and why (``docs/reference/hiberfile-format.md`` has the byte map):

* **The header** uses ``PO_MEMORY_IMAGE``'s offsets of Windows 10 2004 (build 19041, 0x3e0
  bytes) for every field it shares with Windows [RE S42c, S42g]; fields stacksim does not model
  are zero. What stacksim needs and the sources name no field for (the body's size, its set
  count and checksum, the compressor) sits in a stacksim extension block at 0x400, past
  ``LengthSelf``. ``CheckSum`` is a CRC-32 of the header page with the field zeroed: Windows'
  checksum algorithm is not in the sources read.
* **The body** is one kernel restore set from page 1 (``FirstKernelRestorePage``) holding
  ``KernelPagesProcessed`` pages [RE S42, S42g]; there is no boot-loader restore set
  (``NumPagesForLoader`` = 0). Pages are stored in ascending PFN order, in sets of the next 16
  pages, with one descriptor per run of consecutive PFNs within a set (ASSUMPTION: how Windows
  groups pages into sets is not in the sources), then zeros to a whole page.
* **The header is written last** (ASSUMPTION, fact sheet §5.2 [INF]): its valid signature is the
  commit marker, so a hibernation cut short leaves no ``HIBR`` at offset 0, and resume refuses it.

Reading back (:func:`parse_header`, :func:`read_sets`) is strict and bounded: every count, size and
offset is checked against the header and against the format's limits, a set never makes the
reader hold more than 64 KiB of pages plus its compressed data, and anything wrong is a
:class:`HiberfileError` whose message says what and where.

Page bytes come from :class:`stacksim.physmem.PhysicalMemory`, generated in bulk a block at a
time; nothing here holds the whole image.
"""

from __future__ import annotations

import itertools
import struct
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO, Final, Literal, NamedTuple

import numpy as np

from stacksim.physmem import PageClass, PhysicalMemory
from stacksim.requests import PAGE_SIZE

if TYPE_CHECKING:
    import numpy.typing as npt

    Words = npt.NDArray[np.uint64]

__all__ = [
    "ALGORITHM_DEFLATE",
    "ALGORITHM_NONE",
    "HEADER_SIZE",
    "MAX_SET_PAGES",
    "SIGNATURE",
    "BodySummary",
    "ClassBytes",
    "Comparison",
    "HiberHeader",
    "HiberfileError",
    "RestoredSet",
    "build_header",
    "compare_memory",
    "parse_header",
    "read_header",
    "read_sets",
    "write_body",
    "write_hiberfile",
]

# --------------------------------------------------------------------------------------------
# Layout constants. PO_MEMORY_IMAGE offsets are those of Windows 10 2004 (build 19041), from the
# PDB-derived structure [RE S42c], which LeechCore's offset table agrees with [RE S42g].
# --------------------------------------------------------------------------------------------

HEADER_SIZE: Final = PAGE_SIZE
"""The header is page 0 of the file; the body starts at page 1."""

SIGNATURE: Final = b"HIBR"
"""``PO_MEMORY_IMAGE.Signature`` of a Windows 8+ hiberfile that can be resumed [RE S42, S42g]."""

LENGTH_SELF: Final = 0x3E0
"""``sizeof(PO_MEMORY_IMAGE)`` in build 19041 [RE S42c]; readers pick their offsets by it [RE S42g]."""

OFF_SIGNATURE: Final = 0x000
OFF_IMAGE_TYPE: Final = 0x004
OFF_CHECKSUM: Final = 0x008
OFF_LENGTH_SELF: Final = 0x00C
OFF_PAGE_SELF: Final = 0x010
OFF_PAGE_SIZE: Final = 0x018
OFF_SYSTEM_TIME: Final = 0x020
OFF_NUM_PAGES_FOR_LOADER: Final = 0x058
OFF_FIRST_BOOT_RESTORE_PAGE: Final = 0x068
OFF_FIRST_KERNEL_RESTORE_PAGE: Final = 0x070
OFF_KERNEL_PAGES_PROCESSED: Final = 0x230
"""In ``PerfInfo`` (``PO_HIBER_PERF`` at 0x88); the kernel restore set's page count [RE S42, S42g]."""
OFF_HIBERBOOT: Final = 0x364
OFF_HIGHEST_PHYSICAL_PAGE: Final = 0x398
OFF_BITLOCKER_KEY_PFNS: Final = 0x3A0
OFF_HARDWARE_SIGNATURE: Final = 0x3C0

OFF_EXTENSION: Final = 0x400
"""stacksim's own fields, past ``LengthSelf`` (Windows' header has no room named for them)."""
EXTENSION_MAGIC: Final = b"STKSIMHF"
EXTENSION_VERSION: Final = 1
EXTENSION: Final = struct.Struct("<8sIIIIQQQI")
"""Magic, version, compressor, compression level, reserved, sets, data bytes, body bytes, body CRC-32."""

HIBERFILE_TYPE_REDUCED: Final = 1
HIBERFILE_TYPE_FULL: Final = 2
"""``HIBERFILE_TYPE_*`` (winnt.h) [S44b]; stacksim stores the hiberfile's type in ``ImageType`` (see the reference)."""
HiberfileType = Literal["reduced", "full"]
_IMAGE_TYPES: Final[dict[HiberfileType, int]] = {"reduced": HIBERFILE_TYPE_REDUCED, "full": HIBERFILE_TYPE_FULL}

COMPRESSOR_NONE: Final = 0
COMPRESSOR_DEFLATE: Final = 1
"""The extension's compressor: every set stored, or raw deflate (``zlib``, ``wbits`` −15) where it shrinks the set."""

# Compression sets [RE S42, S42g].
SET_HEADER_SIZE: Final = 4
DESCRIPTOR_SIZE: Final = 8
MAX_SET_PAGES: Final = 16
"""Pages in a set at most: 64 KiB decompressed [RE S42, S42g]; also the most descriptors a set may have."""
MAX_DESCRIPTOR_PAGES: Final = 16
"""Pages one descriptor covers at most: its count field is 4 bits of pages − 1."""
ALGORITHM_NONE: Final = 0
"""Bits 30–31 of a stored set (its data size is pages × 4096; readers ignore the bits then [RE S42, S42g])."""
ALGORITHM_DEFLATE: Final = 3
"""Bits 30–31 of a set stacksim compressed with raw deflate. Windows' readers take 3 for Xpress Huffman [RE S42, S42g]."""
_SIZE_MASK: Final = 0x3FFFFF

MAX_PFN: Final = 2**40
"""Page frames x86-64 can address (52-bit physical addresses): no PFN read back may reach it."""
MAX_SYSTEM_TIME: Final = 2**63
"""``SystemTime`` is a signed 64-bit count (of simulated nanoseconds here)."""

_BLOCK_PAGES: Final = 1024
"""Pages generated at once by the writer (4 MiB, a multiple of 16): :class:`PhysicalMemory`'s own block size."""
_FLUSH_BYTES: Final = 1 << 20
"""The writer hands its output to the stream in pieces of about this many bytes."""
_READ_BYTES: Final = 1 << 20
"""The reader asks its source for this many bytes at a time."""
_COMPARE_PAGES: Final = 1024
"""Restored pages :func:`compare_memory` checks against memory at a time."""
_CLASS_BYTE: Final = 16
"""Where a page's class is in its marker (:mod:`stacksim.physmem`: the magic, the PFN, then the class byte)."""


class HiberfileError(ValueError):
    """A hiberfile's bytes are not one stacksim can resume from; the message says what is wrong and where."""


def _round_up(n: int, unit: int) -> int:
    return -(-n // unit) * unit


# --------------------------------------------------------------------------------------------
# Writing the body
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClassBytes:
    """
    What one page class put into the body and what it took there.

    ``bytes_out`` is the class's share of the set data (compressed or stored): a set that holds
    pages of several classes is compressed as one piece, so its data bytes are split between them
    in proportion to their pages (rounded down, the remainder to the class with the most pages
    there, the lowest class value on a tie). Set headers and descriptors are not included
    (:attr:`BodySummary.overhead_bytes`).
    """

    pages: int
    bytes_in: int
    """``pages × 4096``."""
    bytes_out: int

    @property
    def ratio(self) -> float | None:
        """``bytes_out / bytes_in`` (1.0 when nothing shrank), or None for a class with no pages."""
        return self.bytes_out / self.bytes_in if self.bytes_in else None


@dataclass(frozen=True)
class BodySummary:
    """
    What :func:`write_body` wrote: its size, its sets, the bytes per page class, its checksum.

    The body's bytes add up as ``body_bytes = bytes_out + overhead_bytes + padding_bytes``, and
    ``bytes_out`` and ``bytes_in`` are the sums of :attr:`per_class`.
    """

    pages: int
    """Pages stored (the header's ``KernelPagesProcessed``)."""
    sets: int
    """Compression sets."""
    stored_sets: int
    """Sets stored as they are: compression off, or it did not shrink them."""
    mixed_sets: int
    """Sets holding pages of more than one class (their bytes are split in proportion)."""
    bytes_in: int
    """Uncompressed bytes: ``pages × 4096``."""
    bytes_out: int
    """The sets' data bytes (compressed or stored)."""
    overhead_bytes: int
    """Set headers (4 bytes each) and page descriptors (8 bytes each)."""
    data_bytes: int
    """Where the last set ends, from the body's start: ``bytes_out + overhead_bytes``."""
    padding_bytes: int
    """Zeros after the last set, up to a whole page."""
    body_bytes: int
    """The body's size: ``data_bytes + padding_bytes``, a whole number of pages."""
    per_class: dict[PageClass, ClassBytes]
    """Every class, in :class:`PageClass` order (classes that stored nothing have zeros)."""
    crc32: int
    """CRC-32 (zlib's) of the body's ``body_bytes`` bytes."""
    compressor: int
    """:data:`COMPRESSOR_NONE` or :data:`COMPRESSOR_DEFLATE`."""
    level: int
    """The deflate level (1 … 9), or 0 with compression off."""
    highest_physical_page: int
    """The memory map's highest PFN (``max_pfn − 1``): the header's ``HighestPhysicalPage``."""

    @property
    def ratio(self) -> float | None:
        """``bytes_out / bytes_in`` over every class, or None for an empty body."""
        return self.bytes_out / self.bytes_in if self.bytes_in else None


def _ascending_blocks(chunks: Iterable[Words], size: int) -> Iterator[Words]:
    """The PFNs of *chunks* again, in arrays of exactly *size* (the last may be shorter); they must ascend strictly."""
    pending: list[Words] = []
    held = 0
    last = -1
    for i, chunk in enumerate(chunks):
        raw = np.asarray(chunk)
        if not raw.size:
            continue
        if raw.ndim != 1 or raw.dtype.kind not in "ui" or (raw.dtype.kind == "i" and int(raw.min()) < 0):
            raise ValueError(f"PFN chunk {i} is not a one-dimensional array of unsigned integers")
        pfns = raw.astype(np.uint64, copy=False)
        if int(pfns[0]) <= last or (pfns.size > 1 and bool((pfns[1:] <= pfns[:-1]).any())):
            raise ValueError(f"PFN chunk {i} does not continue the strictly ascending order (last PFN so far {last:#x})")
        last = int(pfns[-1])
        pending.append(pfns)
        held += pfns.size
        while held >= size:
            joined = pending[0] if len(pending) == 1 else np.concatenate(pending)
            yield joined[:size]
            rest = joined[size:]
            pending, held = ([rest] if rest.size else []), rest.size
    if held:
        yield pending[0] if len(pending) == 1 else np.concatenate(pending)


def _descriptors(pfns: Words) -> tuple[bytes, Words]:
    """
    The page descriptors of a block's sets (each set the next 16 PFNs), and the index of each set's first descriptor.

    A descriptor starts at every set's first page and wherever the PFNs stop being consecutive:
    ``(pfn << 4) | (pages − 1)``, little-endian. The second array has one entry more than there
    are sets, so set *s* has descriptors ``first[s]`` … ``first[s + 1] − 1``.
    """
    n = pfns.size
    starts = np.ones(n, dtype=bool)
    starts[1:] = pfns[1:] != pfns[:-1] + np.uint64(1)
    starts[::MAX_SET_PAGES] = True
    at = np.flatnonzero(starts)
    lengths = np.diff(np.append(at, n)).astype(np.uint64)
    words = (pfns[at] << np.uint64(4)) | (lengths - np.uint64(1))
    first: Words = np.searchsorted(at, np.arange(0, n + MAX_SET_PAGES, MAX_SET_PAGES)).astype(np.uint64)
    return words.astype("<u8").tobytes(), first


def _split(counts: npt.NDArray[np.int64], data: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Each set's *data* bytes split between its classes in proportion to *counts* (sets × classes), summing exactly."""
    pages = counts.sum(axis=1)
    shares: npt.NDArray[np.int64] = counts * data[:, None] // pages[:, None]
    shares[np.arange(counts.shape[0]), counts.argmax(axis=1)] += data - shares.sum(axis=1)
    return shares


def write_body(
    memory: PhysicalMemory, pfns: Iterable[Words], out: BinaryIO, *, compress: bool = True, level: int = 1
) -> BodySummary:
    """
    Write the hiberfile's body (everything after the header page) to *out*, a set at a time.

    *pfns* are the pages to store, strictly ascending, in arrays of any size (what
    :meth:`PhysicalMemory.pfns_of` yields). Pages are generated 1,024 at a time, grouped into
    sets of the next 16, each set compressed on its own with raw deflate at *level* (or stored
    when *compress* is false or compression does not shrink it), and written to *out* in pieces of
    about 1 MiB; the body ends with zeros to a whole page. Memory use is bounded, whatever the
    number of pages: about 6 MiB here, plus the 8 MiB of scratch *memory* keeps for generating
    pages. The same memory, PFNs and level give the same bytes (with the same zlib).

    Raises:
        ValueError: *level* is not 1 … 9, the PFNs are not strictly ascending, or one lies in a
            hole of the memory map.
    """
    if compress and not 1 <= level <= 9:
        raise ValueError(f"level = {level}: deflate levels are 1 (fastest) … 9 (smallest)")
    buffer = bytearray(_BLOCK_PAGES * PAGE_SIZE)
    pending = bytearray()
    crc = 0
    written = 0
    pages = sets = stored = mixed = bytes_out = overhead = 0
    class_pages = np.zeros(len(PageClass), dtype=np.int64)
    class_out = np.zeros(len(PageClass), dtype=np.int64)

    def flush() -> None:
        nonlocal crc, written, pending
        if pending:
            out.write(pending)
            crc = zlib.crc32(pending, crc)
            written += len(pending)
            pending = bytearray()

    for block in _ascending_blocks(pfns, _BLOCK_PAGES):
        n = block.size
        view = memoryview(buffer)[: n * PAGE_SIZE]
        memory.read_pfns_into(block, view)
        classes = np.frombuffer(view, dtype=np.uint8).reshape(n, PAGE_SIZE)[:, _CLASS_BYTE].astype(np.int64)
        descriptors, first = _descriptors(block)
        n_sets = first.size - 1
        data_sizes = np.empty(n_sets, dtype=np.int64)
        for s in range(n_sets):
            p0, p1 = s * MAX_SET_PAGES, min((s + 1) * MAX_SET_PAGES, n)
            raw = view[p0 * PAGE_SIZE : p1 * PAGE_SIZE]
            payload: bytes | memoryview = raw
            algorithm = ALGORITHM_NONE
            if compress:
                packed = zlib.compress(raw, level, wbits=-15)
                if len(packed) < len(raw):
                    payload, algorithm = packed, ALGORITHM_DEFLATE
            d0, d1 = int(first[s]), int(first[s + 1])
            pending += struct.pack("<I", (d1 - d0) | (len(payload) << 8) | (algorithm << 30))
            pending += descriptors[d0 * DESCRIPTOR_SIZE : d1 * DESCRIPTOR_SIZE]
            pending += payload
            data_sizes[s] = len(payload)
            stored += algorithm == ALGORITHM_NONE
            overhead += SET_HEADER_SIZE + (d1 - d0) * DESCRIPTOR_SIZE
            if len(pending) >= _FLUSH_BYTES:
                flush()
        counts = np.zeros((n_sets, len(PageClass)), dtype=np.int64)
        np.add.at(counts, (np.arange(n) // MAX_SET_PAGES, classes), 1)
        class_pages += counts.sum(axis=0)
        class_out += _split(counts, data_sizes).sum(axis=0)
        mixed += int(((counts > 0).sum(axis=1) > 1).sum())
        pages += n
        sets += n_sets
        bytes_out += int(data_sizes.sum())
    data_bytes = bytes_out + overhead
    padding = _round_up(data_bytes, PAGE_SIZE) - data_bytes
    pending += bytes(padding)
    flush()
    per_class = {c: ClassBytes(int(class_pages[c]), int(class_pages[c]) * PAGE_SIZE, int(class_out[c])) for c in PageClass}
    return BodySummary(
        pages=pages,
        sets=sets,
        stored_sets=stored,
        mixed_sets=mixed,
        bytes_in=pages * PAGE_SIZE,
        bytes_out=bytes_out,
        overhead_bytes=overhead,
        data_bytes=data_bytes,
        padding_bytes=padding,
        body_bytes=written,
        per_class=per_class,
        crc32=crc,
        compressor=COMPRESSOR_DEFLATE if compress else COMPRESSOR_NONE,
        level=level if compress else 0,
        highest_physical_page=memory.map.max_pfn - 1,
    )


# --------------------------------------------------------------------------------------------
# The header
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HiberHeader:
    """
    What a hiberfile's header says, as :func:`parse_header` read it (Windows' field names in the comments).

    Every value has been checked: the body it describes starts at page 1, holds *pages* pages in
    *sets* sets ending at ``4096 + data_bytes``, and is *body_bytes* long with CRC-32 *body_crc32*.
    """

    image_type: int
    """``ImageType``: the hiberfile's ``HIBERFILE_TYPE`` (1 reduced, 2 full)."""
    checksum: int
    """``CheckSum``: CRC-32 of the header page with this field zeroed."""
    system_time_ns: int
    """``SystemTime``: the simulated time of the hibernation, in ns."""
    first_kernel_restore_page: int
    """``FirstKernelRestorePage``: the body's first page (1)."""
    pages: int
    """``KernelPagesProcessed``: pages stored."""
    hiberboot: bool
    """``Hiberboot``: a fast-startup image (kernel pages only) rather than a full hibernation."""
    highest_physical_page: int
    """``HighestPhysicalPage``: no stored PFN is higher."""
    hardware_signature: int
    """``HardwareSignature``."""
    compressor: int
    """stacksim: :data:`COMPRESSOR_NONE` or :data:`COMPRESSOR_DEFLATE`."""
    level: int
    """stacksim: the deflate level (0 with compression off)."""
    sets: int
    """stacksim: compression sets in the body."""
    data_bytes: int
    """stacksim: where the last set ends, from the body's start."""
    body_bytes: int
    """stacksim: the body's size in bytes (whole pages)."""
    body_crc32: int
    """stacksim: CRC-32 of the body."""

    @property
    def body_offset(self) -> int:
        """File offset of the body: ``FirstKernelRestorePage × 4096``."""
        return self.first_kernel_restore_page * PAGE_SIZE

    @property
    def file_bytes(self) -> int:
        """The hiberfile's size: the header page and the body."""
        return self.body_offset + self.body_bytes


def build_header(
    summary: BodySummary,
    *,
    fast_startup: bool,
    system_time_ns: int,
    hiberfile_type: HiberfileType = "full",
    hardware_signature: int = 0,
) -> bytes:
    """
    The 4,096-byte header page for a body :func:`write_body` wrote: zeros, Windows' fields, stacksim's extension, the checksum.

    *fast_startup* sets ``Hiberboot`` (the body then holds kernel pages only, by the caller's
    choice of PFNs); *hiberfile_type* is the file the image goes into, and a ``reduced`` hiberfile
    takes fast-startup images only [S44].

    Raises:
        ValueError: a value does not fit its field, or a reduced hiberfile is asked for a full hibernation.
    """
    if not 0 <= system_time_ns < MAX_SYSTEM_TIME:
        raise ValueError(f"system_time_ns = {system_time_ns}: must be 0 … 2^63 − 1 ns")
    if not 0 <= hardware_signature < 2**32:
        raise ValueError(f"hardware_signature = {hardware_signature:#x}: must fit 32 bits")
    if hiberfile_type not in _IMAGE_TYPES:
        raise ValueError(f"hiberfile_type = {hiberfile_type!r}: must be 'reduced' or 'full'")
    if hiberfile_type == "reduced" and not fast_startup:
        raise ValueError("a reduced hiberfile holds fast-startup images only (fast_startup = True)")
    buf = bytearray(HEADER_SIZE)
    struct.pack_into("<4sIIIQI", buf, OFF_SIGNATURE, SIGNATURE, _IMAGE_TYPES[hiberfile_type], 0, LENGTH_SELF, 0, PAGE_SIZE)
    struct.pack_into("<q", buf, OFF_SYSTEM_TIME, system_time_ns)
    struct.pack_into("<Q", buf, OFF_NUM_PAGES_FOR_LOADER, 0)
    struct.pack_into("<Q", buf, OFF_FIRST_BOOT_RESTORE_PAGE, 0)
    struct.pack_into("<Q", buf, OFF_FIRST_KERNEL_RESTORE_PAGE, HEADER_SIZE // PAGE_SIZE)
    struct.pack_into("<Q", buf, OFF_KERNEL_PAGES_PROCESSED, summary.pages)
    struct.pack_into("<B", buf, OFF_HIBERBOOT, int(fast_startup))
    struct.pack_into("<Q", buf, OFF_HIGHEST_PHYSICAL_PAGE, summary.highest_physical_page)
    struct.pack_into("<I", buf, OFF_HARDWARE_SIGNATURE, hardware_signature)
    EXTENSION.pack_into(
        buf,
        OFF_EXTENSION,
        EXTENSION_MAGIC,
        EXTENSION_VERSION,
        summary.compressor,
        summary.level,
        0,
        summary.sets,
        summary.data_bytes,
        summary.body_bytes,
        summary.crc32,
    )
    struct.pack_into("<I", buf, OFF_CHECKSUM, zlib.crc32(buf))
    return bytes(buf)


def _u64(data: bytes, offset: int) -> int:
    value: int = struct.unpack_from("<Q", data, offset)[0]
    return value


def parse_header(data: bytes) -> HiberHeader:
    """
    Read and check the header page at the start of *data* (at least 4,096 bytes).

    Checks, in order: the length, the ``HIBR`` signature (its absence means the hibernation did
    not complete: stacksim writes the header last), the checksum, then every field against the
    format's limits and against each other. Only what stacksim writes is accepted.

    Raises:
        HiberfileError: with a short reason naming the field.
    """
    if len(data) < HEADER_SIZE:
        raise HiberfileError(f"torn: {len(data):,} bytes of the {HEADER_SIZE:,}-byte header")
    data = bytes(data[:HEADER_SIZE])
    if data[:4] != SIGNATURE:
        raise HiberfileError(
            f"no {SIGNATURE.decode()} signature at offset 0 (found {data[:4]!r}): "
            "the header, written last, is missing: the hibernation did not complete"
        )
    stated = struct.unpack_from("<I", data, OFF_CHECKSUM)[0]
    actual = zlib.crc32(data[:OFF_CHECKSUM] + bytes(4) + data[OFF_CHECKSUM + 4 :])
    if stated != actual:
        raise HiberfileError(f"bad header checksum: CheckSum = {stated:#010x}, the header's bytes give {actual:#010x}")
    image_type, _checksum, length_self, page_self, page_size = struct.unpack_from("<IIIQI", data, OFF_IMAGE_TYPE)
    magic, version, compressor, level, _reserved, sets, data_bytes, body_bytes, body_crc = EXTENSION.unpack_from(
        data, OFF_EXTENSION
    )

    def need(ok: bool, reason: str) -> None:
        if not ok:
            raise HiberfileError(reason)

    need(length_self == LENGTH_SELF, f"LengthSelf = {length_self:#x}: stacksim writes {LENGTH_SELF:#x} (build 19041's layout)")
    need(
        magic == EXTENSION_MAGIC, f"no stacksim extension at {OFF_EXTENSION:#x} (found {magic!r}): not a hiberfile stacksim wrote"
    )
    need(version == EXTENSION_VERSION, f"extension version {version}: stacksim reads version {EXTENSION_VERSION}")
    need(page_size == PAGE_SIZE, f"PageSize = {page_size}: must be {PAGE_SIZE}")
    need(page_self == 0, f"PageSelf = {page_self}: the header is page 0")
    need(image_type in _IMAGE_TYPES.values(), f"ImageType = {image_type}: must be 1 (reduced) or 2 (full)")
    hiberboot = data[OFF_HIBERBOOT]
    need(hiberboot in (0, 1), f"Hiberboot = {hiberboot}: must be 0 or 1")
    need(
        hiberboot == 1 or image_type == HIBERFILE_TYPE_FULL,
        "Hiberboot = 0 in a reduced hiberfile: it holds fast-startup images only",
    )
    system_time = struct.unpack_from("<q", data, OFF_SYSTEM_TIME)[0]
    need(system_time >= 0, f"SystemTime = {system_time}: must be ≥ 0 ns")
    loader = _u64(data, OFF_NUM_PAGES_FOR_LOADER)
    need(loader == 0, f"NumPagesForLoader = {loader}: stacksim writes no boot-loader restore set")
    boot = _u64(data, OFF_FIRST_BOOT_RESTORE_PAGE)
    need(boot == 0, f"FirstBootRestorePage = {boot}: stacksim writes no boot-loader restore set (0)")
    first = _u64(data, OFF_FIRST_KERNEL_RESTORE_PAGE)
    need(first == 1, f"FirstKernelRestorePage = {first}: the body starts at page 1")
    highest = _u64(data, OFF_HIGHEST_PHYSICAL_PAGE)
    need(highest < MAX_PFN, f"HighestPhysicalPage = {highest:#x}: must be below {MAX_PFN:#x} (52-bit physical addresses)")
    pages = _u64(data, OFF_KERNEL_PAGES_PROCESSED)
    need(pages <= highest + 1, f"KernelPagesProcessed = {pages:,}: more pages than HighestPhysicalPage allows ({highest + 1:,})")
    need(compressor in (COMPRESSOR_NONE, COMPRESSOR_DEFLATE), f"compressor = {compressor}: must be 0 (none) or 1 (deflate)")
    if compressor == COMPRESSOR_NONE:
        need(level == 0, f"compression level = {level} with compression off: must be 0")
    else:
        need(1 <= level <= 9, f"compression level = {level}: must be 1 … 9")
    least_sets = -(-pages // MAX_SET_PAGES)
    need(least_sets <= sets <= pages, f"{sets:,} sets for {pages:,} pages: must be {least_sets:,} … {pages:,}")
    least = sets * (SET_HEADER_SIZE + DESCRIPTOR_SIZE + 1)
    most = sets * SET_HEADER_SIZE + pages * (DESCRIPTOR_SIZE + PAGE_SIZE)
    need(least <= data_bytes <= most, f"data bytes = {data_bytes:,}: {sets:,} sets of {pages:,} pages take {least:,} … {most:,}")
    need(
        body_bytes == _round_up(data_bytes, PAGE_SIZE),
        f"body bytes = {body_bytes:,}: must be the {data_bytes:,} data bytes rounded up to whole pages",
    )
    return HiberHeader(
        image_type=image_type,
        checksum=stated,
        system_time_ns=system_time,
        first_kernel_restore_page=first,
        pages=pages,
        hiberboot=bool(hiberboot),
        highest_physical_page=highest,
        hardware_signature=struct.unpack_from("<I", data, OFF_HARDWARE_SIGNATURE)[0],
        compressor=compressor,
        level=level,
        sets=sets,
        data_bytes=data_bytes,
        body_bytes=body_bytes,
        body_crc32=body_crc,
    )


def write_hiberfile(
    memory: PhysicalMemory,
    pfns: Iterable[Words],
    out: BinaryIO,
    *,
    fast_startup: bool,
    system_time_ns: int,
    compress: bool = True,
    level: int = 1,
    hiberfile_type: HiberfileType = "full",
) -> tuple[BodySummary, HiberHeader]:
    """
    Write a whole hiberfile to the seekable *out*: page 0 zeroed, the body from offset 4096, the header at offset 0 last.

    Zeroing page 0 first invalidates a header left by an earlier hibernation (Windows zeroes the
    header once it has resumed [RE S42e]), so a hibernation stopped part-way leaves no valid
    header. Arguments as :func:`write_body` and :func:`build_header`.
    """
    out.seek(0)
    out.write(bytes(HEADER_SIZE))
    summary = write_body(memory, pfns, out, compress=compress, level=level)
    header = build_header(summary, fast_startup=fast_startup, system_time_ns=system_time_ns, hiberfile_type=hiberfile_type)
    out.seek(0)
    out.write(header)
    return summary, parse_header(header)


# --------------------------------------------------------------------------------------------
# Reading back
# --------------------------------------------------------------------------------------------

ReadAt = Callable[[int, int], bytes]
"""``read(offset, length)``: up to *length* bytes of the hiberfile from *offset* (fewer at its end)."""


class RestoredSet(NamedTuple):
    """One compression set, decompressed: its PFNs (ascending) and their pages, 4,096 bytes each, in that order."""

    pfns: Words
    data: bytes


def _reader(source: ReadAt | BinaryIO) -> ReadAt:
    if callable(source):
        return source
    stream = source

    def read(offset: int, length: int) -> bytes:
        stream.seek(offset)
        return stream.read(length)

    return read


class _Cursor:
    """Sequential reads of the body through a *read* callable, a buffer at a time, with the CRC-32 of what was taken."""

    def __init__(self, read: ReadAt, start: int, end: int) -> None:
        self._read = read
        self._buffer = b""
        self._used = 0
        self._next = start  # the file offset just past the buffer
        self.end = end
        self.offset = start
        self.crc = 0

    def take(self, n: int, what: str) -> bytes:
        """The next *n* bytes (*what* names them in errors)."""
        if self.offset + n > self.end:
            raise HiberfileError(
                f"{what} at byte {self.offset:#x} runs past the end of the body the header describes ({self.end:#x})"
            )
        have = len(self._buffer) - self._used
        if have < n:
            parts = [self._buffer[self._used :]]
            while have < n:  # a source may return fewer bytes than asked: join the pieces once, not at every piece
                want = min(max(_READ_BYTES, n - have), self.end - self._next)
                chunk = bytes(self._read(self._next, want))[:want]
                if not chunk:
                    raise HiberfileError(
                        f"truncated: the file ends at byte {self._next:#x}, inside {what}; the body should end at {self.end:#x}"
                    )
                parts.append(chunk)
                have += len(chunk)
                self._next += len(chunk)
            self._buffer, self._used = b"".join(parts), 0
        out = self._buffer[self._used : self._used + n]
        self._used += n
        self.offset += n
        self.crc = zlib.crc32(out, self.crc)
        return out


def read_header(source: ReadAt | BinaryIO) -> HiberHeader:
    """:func:`parse_header` of the first page *source* holds (a ``read(offset, length)`` callable or a binary file)."""
    return parse_header(_reader(source)(0, HEADER_SIZE))


def _inflate(packed: bytes, size: int, where: str) -> bytes:
    """*packed* (raw deflate) inflated to exactly *size* bytes; never more than *size* bytes are produced."""
    inflater = zlib.decompressobj(-15)
    try:
        out = inflater.decompress(packed, size)
        if not inflater.eof:
            if len(out) == size and (inflater.unconsumed_tail or inflater.decompress(b"", 1)):
                raise HiberfileError(f"{where}: decompresses to more than the {size:,} bytes its pages take")
            raise HiberfileError(f"{where}: the deflate data ends before its stream does ({len(out):,} of {size:,} bytes)")
    except zlib.error as e:
        raise HiberfileError(f"{where}: the deflate data is corrupt ({e})") from None
    if inflater.unused_data:
        raise HiberfileError(f"{where}: {len(inflater.unused_data):,} bytes follow the end of the deflate stream")
    if len(out) != size:
        raise HiberfileError(f"{where}: decompresses to {len(out):,} bytes, not the {size:,} its pages take")
    return out


def read_sets(source: ReadAt | BinaryIO, header: HiberHeader) -> Iterator[RestoredSet]:
    """
    The compression sets of the body *header* describes, decompressed, in file order.

    *source* is the whole hiberfile: a ``read(offset, length)`` callable or a seekable binary
    file. Each set is checked before it is yielded: 1 … 16 descriptors of at most 16 pages in all,
    PFNs strictly ascending across the body and not above ``HighestPhysicalPage``, a data size
    that is exactly the pages' bytes (stored) or less (compressed with stacksim's deflate, which
    must inflate to exactly the pages' bytes), and no more pages than the header says. After the
    last set: the set count, the end of the data, zero padding and the body's CRC-32. Those end
    checks come after every set has been yielded, so a resume must not count restored pages as
    good until the iterator has finished without an error.

    Memory and work are bounded per set: a set's data is at most 64 KiB, inflating stops at the
    pages' size, and the reader holds one 1 MiB buffer.

    Raises:
        HiberfileError: the first problem found, with the set's number and file offset.
    """
    read = _reader(source)
    start = header.body_offset
    cursor = _Cursor(read, start, start + header.data_bytes)
    done = 0
    next_pfn = 0  # the lowest PFN the next descriptor may start at
    n_set = 0
    while done < header.pages:
        at = cursor.offset
        where = f"set {n_set} at byte {at:#x}"
        (word,) = struct.unpack("<I", cursor.take(SET_HEADER_SIZE, f"the header of {where}"))
        n_desc, size, algorithm = word & 0xFF, (word >> 8) & _SIZE_MASK, word >> 30
        if not 1 <= n_desc <= MAX_SET_PAGES:
            raise HiberfileError(f"{where}: {n_desc} page descriptors; a set has 1 … {MAX_SET_PAGES}")
        words = np.frombuffer(cursor.take(n_desc * DESCRIPTOR_SIZE, f"the descriptors of {where}"), dtype="<u8")
        counts = (words & np.uint64(0xF)) + np.uint64(1)
        firsts = words >> np.uint64(4)
        n_pages = int(counts.sum())
        if n_pages > MAX_SET_PAGES:
            raise HiberfileError(f"{where}: its descriptors hold {n_pages} pages; a set holds at most {MAX_SET_PAGES} (64 KiB)")
        if done + n_pages > header.pages:
            raise HiberfileError(f"{where}: its {n_pages} pages take the body past the {header.pages:,} the header says it holds")
        ends = firsts + counts
        if int(firsts[0]) < next_pfn or bool((firsts[1:] < ends[:-1]).any()):
            bad = int(firsts[0]) if int(firsts[0]) < next_pfn else int(firsts[1:][np.argmax(firsts[1:] < ends[:-1])])
            raise HiberfileError(f"{where}: PFN {bad:#x} is out of order: PFNs must ascend strictly through the body")
        if int(ends[-1]) - 1 > header.highest_physical_page:
            raise HiberfileError(
                f"{where}: PFN {int(ends[-1]) - 1:#x} is above HighestPhysicalPage ({header.highest_physical_page:#x})"
            )
        raw = n_pages * PAGE_SIZE
        if size == raw:
            if algorithm != ALGORITHM_NONE:
                raise HiberfileError(
                    f"{where}: a stored set (data size = its pages' bytes) with algorithm {algorithm}; stored sets carry 0"
                )
            data = cursor.take(size, f"the data of {where}")
        elif size > raw:
            raise HiberfileError(f"{where}: its data size {size:,} bytes is more than its {n_pages} pages take ({raw:,})")
        elif algorithm != ALGORITHM_DEFLATE:
            kind = "Xpress Huffman" if algorithm >= 2 else "Xpress (plain LZ77)"
            raise HiberfileError(
                f"{where}: compressed with algorithm {algorithm}; Windows' tools read it as {kind}, "
                f"stacksim writes and reads only its raw deflate ({ALGORITHM_DEFLATE})"
            )
        elif header.compressor == COMPRESSOR_NONE:
            raise HiberfileError(f"{where}: a compressed set in a body the header says is stored uncompressed")
        else:
            data = _inflate(cursor.take(size, f"the data of {where}"), raw, where)
        offsets = np.arange(n_pages, dtype=np.uint64) - np.repeat(np.cumsum(counts) - counts, counts.astype(np.intp))
        yield RestoredSet(np.repeat(firsts, counts.astype(np.intp)) + offsets, data)
        next_pfn = int(ends[-1])
        done += n_pages
        n_set += 1
    if n_set != header.sets:
        raise HiberfileError(f"the body's {header.pages:,} pages came in {n_set:,} sets; the header says {header.sets:,}")
    if cursor.offset != cursor.end:
        raise HiberfileError(f"the last set ends at byte {cursor.offset:#x}; the header says the data ends at {cursor.end:#x}")
    cursor.end = start + header.body_bytes
    padding = cursor.take(header.body_bytes - header.data_bytes, "the padding after the last set")
    if padding.count(0) != len(padding):
        raise HiberfileError(f"the padding after the last set (from byte {start + header.data_bytes:#x}) is not all zeros")
    if cursor.crc != header.body_crc32:
        raise HiberfileError(
            f"body checksum mismatch: the header says CRC-32 {header.body_crc32:#010x}, the body gives {cursor.crc:#010x}"
        )


# --------------------------------------------------------------------------------------------
# Comparing with memory
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Comparison:
    """
    Restored pages against the memory they came from: which differ, which expected ones are missing, which are extra.

    ``matches`` is true when every expected page was restored with exactly memory's bytes and no
    other page was.
    """

    matches: bool
    mismatched_pages: int
    """Expected pages restored with other bytes than memory's."""
    first_mismatch_pfn: int | None
    compared_pages: int
    """Restored pages that were expected (and so compared)."""
    missing_pages: int
    """Expected pages not restored."""
    first_missing_pfn: int | None
    extra_pages: int
    """Restored pages that were not expected (not compared)."""
    first_extra_pfn: int | None


def _first(pfns: Words, mask: npt.NDArray[np.bool_]) -> int | None:
    return int(pfns[np.argmax(mask)]) if mask.any() else None


def compare_memory(memory: PhysicalMemory, restored: Iterable[RestoredSet], *, expected: Iterable[Words]) -> Comparison:
    """
    Compare *restored* pages (what :func:`read_sets` yields) with *memory*'s, and with the *expected* PFNs.

    Both must be in ascending PFN order (*expected* as :meth:`PhysicalMemory.pfns_of` yields it);
    both are consumed as streams, a block of 1,024 restored pages at a time, so memory use is
    bounded. Only expected pages are compared: a restored page that was not expected counts as
    extra.

    Raises:
        ValueError: the restored PFNs do not ascend strictly, or an expected PFN is not RAM.
    """
    wanted = iter(expected)
    held = np.empty(0, dtype=np.uint64)  # expected PFNs not yet matched against restored ones
    exhausted = False
    mismatched = compared = missing = extra = 0
    first_mismatch: int | None = None
    first_missing: int | None = None
    first_extra: int | None = None
    buffer = bytearray(_COMPARE_PAGES * PAGE_SIZE)
    last = -1

    def expected_up_to(top: int) -> Words:
        """Take the expected PFNs ≤ *top* off the stream."""
        nonlocal held, exhausted
        while not exhausted and (held.size == 0 or int(held[-1]) <= top):
            chunk = next(wanted, None)
            if chunk is None:
                exhausted = True
            else:
                held = np.concatenate((held, np.asarray(chunk, dtype=np.uint64)))
        cut = int(np.searchsorted(held, np.uint64(top), side="right"))
        taken, held = held[:cut], held[cut:]
        return taken

    def check(pfns: Words, data: bytes) -> None:
        nonlocal mismatched, compared, missing, extra, first_mismatch, first_missing, first_extra, last
        if int(pfns[0]) <= last or bool((pfns[1:] <= pfns[:-1]).any()):
            raise ValueError("the restored pages' PFNs do not ascend strictly")
        last = int(pfns[-1])
        due = expected_up_to(last)
        hit = np.isin(pfns, due, assume_unique=True)
        lost = ~np.isin(due, pfns, assume_unique=True)
        if first_extra is None:
            first_extra = _first(pfns, ~hit)
        if first_missing is None:
            first_missing = _first(due, lost)
        extra += int((~hit).sum())
        missing += int(lost.sum())
        got = np.frombuffer(data, dtype=np.uint8).reshape(pfns.size, PAGE_SIZE)
        for rows in np.array_split(np.flatnonzero(hit), -(-int(hit.sum()) // _COMPARE_PAGES) or 1):
            if not rows.size:
                continue
            view = memoryview(buffer)[: rows.size * PAGE_SIZE]
            memory.read_pfns_into(pfns[rows], view)
            want = np.frombuffer(view, dtype=np.uint8).reshape(rows.size, PAGE_SIZE)
            differ = (got[rows] != want).any(axis=1)
            if first_mismatch is None:
                first_mismatch = _first(pfns[rows], differ)
            mismatched += int(differ.sum())
            compared += rows.size

    batch_pfns: list[Words] = []
    batch_data: list[bytes] = []
    batched = 0
    for pfns, data in restored:
        if len(data) != pfns.size * PAGE_SIZE:
            raise ValueError(f"a restored set of {pfns.size} pages carries {len(data):,} bytes")
        if not pfns.size:
            continue
        batch_pfns.append(pfns)
        batch_data.append(data)
        batched += pfns.size
        if batched >= _COMPARE_PAGES - MAX_SET_PAGES:
            check(np.concatenate(batch_pfns), b"".join(batch_data))
            batch_pfns, batch_data, batched = [], [], 0
    if batched:
        check(np.concatenate(batch_pfns), b"".join(batch_data))
    for chunk in itertools.chain([held], () if exhausted else wanted):  # past the last restored PFN: counted, not held
        if first_missing is None and len(chunk):
            first_missing = int(chunk[0])
        missing += len(chunk)
    return Comparison(
        matches=mismatched == 0 and missing == 0 and extra == 0,
        mismatched_pages=mismatched,
        first_mismatch_pfn=first_mismatch,
        compared_pages=compared,
        missing_pages=missing,
        first_missing_pfn=first_missing,
        extra_pages=extra,
        first_extra_pfn=first_extra,
    )
