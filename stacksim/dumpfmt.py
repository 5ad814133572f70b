"""
The 64-bit Windows crash dump file (``MEMORY.DMP``): the bytes crashdmp writes into the page file.

A 64-bit kernel dump starts with a two-page ``DUMP_HEADER64`` ('PAGE' 'DU64') [DOC S58; RE S42,
S56, S57]. What follows depends on ``DumpType`` [DOC S58, S59]:

* ``DUMP_TYPE_FULL`` (1): the physical pages of the ``PhysicalMemoryBlock`` runs, in run order,
  right after the header [RE S56 ``BuildPhysmemFullDump``, S42 ``_load_segments``].
* ``DUMP_TYPE_BITMAP_FULL`` (5): a summary header ('SDMP' or 'FDMP', then 'DUMP') with a bitmap of
  one bit per physical page (least significant bit first), then exactly the pages whose bit is
  set, in ascending page frame number (PFN) order, from the summary header's ``HeaderSize`` on
  [DOC S58 ``DUMP_SUMMARY_SIGNATURE``/``DUMP_FULL_SIGNATURE``; RE S56 ``BuildPhysmemBMPDump``,
  S42, S57 ``_SUMMARY_DUMP``, S61].
* ``DUMP_TYPE_TRIAGE`` (4): a small memory dump (minidump).

What stacksim writes, and why (``docs/reference/dump-format.md`` has the byte map):

* **Complete** dumps are written as bitmap dumps, ``DumpType`` 5 with the 'FDMP' signature and
  every page of the run list marked. Windows 8 and later write their kernel-mode dumps in the
  bitmap format: the SDK names a full-dump summary signature ('FDMP') and a ``BITMAP_FULL`` dump
  type [DOC S58], a parser reverse-engineered from a real dump expects 'FDMP' [RE S61 rekall],
  volatility's bitmap layer found ``DumpType`` 5 "based on empirical tests" [RE S60], and real
  Windows 8.1 and 10 ``MEMORY.DMP`` headers read back as DumpType 5 [ANEC S62]. That the
  *complete* setting in particular produces 'FDMP' is an inference (INF): no source found ties
  the setting to the signature. Both independent parsers tested (kdmp-parser, volatility3) read
  types 1 and 5 alike.
* **Active** dumps: 'FDMP' too (user pages are in them), ``DumpType`` 5, with the pages given.
* **Kernel** and **automatic** dumps: 'SDMP' ("summary dump"), ``DumpType`` 5, with the pages
  given. Windows 10+ also writes ``DumpType`` 6 (``BITMAP_KERNEL``, encoded exactly like 5) for
  live and, by one report, automatic dumps [ANEC S62]; stacksim writes 5 because volatility3 2.28
  reads only 1 and 5 [RE S42].
* **Small** dumps keep their 64 KiB size with the header alone: a valid ``DUMP_HEADER64`` with
  ``DumpType`` 4 (``DUMP_TYPE_TRIAGE``) and zeros where Windows puts the ``TRIAGE_DUMP64`` block
  and its data [RE S61 rizin]; tools that need the triage block (kdmp-parser refuses type 4
  outright [RE S56]) find nothing to read. Secondary data is not written into small dumps.
* **Secondary data** (what bugcheck callbacks add, up to 256 MiB [DOC S40]) follows the pages,
  rounded up to whole pages, as a deterministic filler (ASSUMPTION: real secondary data is a
  sequence of tagged blobs stacksim does not model). ``RequiredDumpSpace`` counts every byte
  written, secondary data included, because the next boot copies that many bytes out of the page
  file [RE S63]; volatility's converter sets it to header plus pages [RE S60].

The header is first filled with the 'PAGE' pattern and the fields are written over it, as
Windows does: real headers keep 'PAGE' in padding, ``Comment`` and ``WriterStatus`` [RE S60
``raw2dmp``; ANEC S62]. stacksim writes a ``Comment`` that says the dump is synthetic, as
volatility's converter writes its own [RE S60]. Everything about the crashed kernel is **synthetic** (there is no real
kernel): the CONTEXT, ``DirectoryTableBase`` and the kernel addresses are plausible,
self-consistent values derived from the seed (:func:`synthetic_header_fields`), and nothing in the
pages backs them: a debugger opens the file and reads every physical page, but cannot walk the
page tables or the module list.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal, NamedTuple, Protocol

import numpy as np
import numpy.typing as npt

from stacksim.memory import DumpPart, DumpPlan
from stacksim.requests import PAGE_SIZE

__all__ = [
    "DUMP_KINDS",
    "HEADER64_SIZE",
    "MAX_BITMAP_BITS",
    "MAX_RUNS",
    "SMALL_DUMP_SIZE",
    "ContextRecord",
    "CrashDumpFile",
    "DumpFormatError",
    "DumpHeaderFields",
    "FilePart",
    "PageSet",
    "PageSource",
    "PageSpan",
    "ParsedDump",
    "bitmap_bits",
    "dump_parts",
    "header_bytes_needed",
    "parse_dump_header",
    "synthetic_header_fields",
]

# --------------------------------------------------------------------------------------------
# Layout constants. Offsets into DUMP_HEADER64 are those of the SDK's mindumpdef.h [DOC S58],
# asserted by kdmp-parser's static_asserts and used by volatility3's crash64.json [RE S56, S57].
# --------------------------------------------------------------------------------------------

HEADER64_SIZE: Final = 0x2000
"""``sizeof(DUMP_HEADER64)``: two pages; the dump's data starts right after it [DOC S58; RE S42, S56]."""

SMALL_DUMP_SIZE: Final = 64 * 1024
"""A small memory dump is exactly 64 KiB [DOC S39] (``stacksim.memory.SMALL_DUMP_BYTES``)."""

SIGNATURE: Final = b"PAGE"
"""``DUMP_SIGNATURE64`` ('EGAP' as a little-endian ULONG); also the fill pattern of unwritten header bytes."""
VALID_DUMP64: Final = b"DU64"
"""``DUMP_VALID_DUMP64`` ('46UD'); a 32-bit dump has 'DUMP' here and a one-page header [DOC S58]."""
SUMMARY_SIGNATURE: Final = b"SDMP"
"""``DUMP_SUMMARY_SIGNATURE`` ('PMDS'): the bitmap of a kernel (summary) dump [DOC S58]."""
FULL_SIGNATURE: Final = b"FDMP"
"""``DUMP_FULL_SIGNATURE`` ('PMDF'): the bitmap of a full-memory dump [DOC S58]."""
SUMMARY_VALID: Final = b"DUMP"
"""``DUMP_SUMMARY_VALID`` / ``DUMP_FULL_VALID`` ('PMUD') [DOC S58]."""

DUMP_TYPE_FULL: Final = 1
DUMP_TYPE_HEADER: Final = 3
DUMP_TYPE_TRIAGE: Final = 4
DUMP_TYPE_BITMAP_FULL: Final = 5
DUMP_TYPE_BITMAP_KERNEL: Final = 6
"""``DUMP_TYPE`` values [DOC S58, S59]. 6 is encoded exactly like 5 on disk [ANEC S62]."""

MACHINE_AMD64: Final = 0x8664
"""``MachineImageType``: ``IMAGE_FILE_MACHINE_AMD64`` [DOC S58; ANEC S62]."""

# DUMP_HEADER64 field offsets [DOC S58; RE S56 (static_asserts at 0x40, 0x80, 0x348, 0xf00, 0xfb0, 0x2000), S57].
OFF_MAJOR_VERSION: Final = 0x008
OFF_DIRECTORY_TABLE_BASE: Final = 0x010
OFF_PFN_DATABASE: Final = 0x018
OFF_PS_LOADED_MODULE_LIST: Final = 0x020
OFF_PS_ACTIVE_PROCESS_HEAD: Final = 0x028
OFF_MACHINE_IMAGE_TYPE: Final = 0x030
OFF_NUMBER_PROCESSORS: Final = 0x034
OFF_BUGCHECK_CODE: Final = 0x038  # 4 bytes of padding follow (left 'PAGE', as in real headers [ANEC S62])
OFF_BUGCHECK_PARAMETERS: Final = 0x040
OFF_VERSION_USER: Final = 0x060
OFF_KD_DEBUGGER_DATA_BLOCK: Final = 0x080
OFF_PHYSICAL_MEMORY_BLOCK: Final = 0x088
PHYSICAL_MEMORY_BLOCK_SIZE: Final = 700
"""``DMP_PHYSICAL_MEMORY_BLOCK_SIZE_64`` [DOC S58]."""
OFF_CONTEXT_RECORD: Final = 0x348
CONTEXT_RECORD_BUFFER_SIZE: Final = 3000
"""``DMP_CONTEXT_RECORD_SIZE_64``: room for the ``CONTEXT`` (0x4d0 bytes on x64) [DOC S58]."""
OFF_EXCEPTION: Final = 0xF00
EXCEPTION_RECORD64_SIZE: Final = 0x98
OFF_DUMP_TYPE: Final = 0xF98
OFF_REQUIRED_DUMP_SPACE: Final = 0xFA0
OFF_SYSTEM_TIME: Final = 0xFA8
OFF_COMMENT: Final = 0xFB0
COMMENT_SIZE: Final = 128
OFF_SYSTEM_UP_TIME: Final = 0x1030
OFF_MINI_DUMP_FIELDS: Final = 0x1038
OFF_SECONDARY_DATA_STATE: Final = 0x103C
OFF_PRODUCT_TYPE: Final = 0x1040
OFF_SUITE_MASK: Final = 0x1044
OFF_WRITER_STATUS: Final = 0x1048  # left 'PAGE' (real headers [ANEC S62])
OFF_KD_SECONDARY_VERSION: Final = 0x104D  # left 'PAGE': the 0x41 ('A') readers report is the pattern [ANEC S62]
OFF_ATTRIBUTES: Final = 0x1050
OFF_BOOT_ID: Final = 0x1054

RUN_SIZE: Final = 16
"""``PHYSICAL_MEMORY_RUN64``: BasePage, PageCount (ULONG64 each) [DOC S58]."""
RUNS_OFFSET_IN_BLOCK: Final = 16
"""``PHYSICAL_MEMORY_DESCRIPTOR64``: NumberOfRuns (ULONG), 4 bytes of padding, NumberOfPages (ULONG64),
then ``Run[]`` [DOC S58; RE S56]."""
MAX_RUNS: Final = (PHYSICAL_MEMORY_BLOCK_SIZE - RUNS_OFFSET_IN_BLOCK) // RUN_SIZE
"""42: the most runs the 700-byte ``PhysicalMemoryBlockBuffer`` holds [DOC S58]."""

# The summary header at 0x2000 of a bitmap dump (``_SUMMARY_DUMP``) [RE S42 crash.py, S56 BMP_HEADER64, S57, S61].
SUMMARY_HEADER_SIZE: Final = 0x38
"""Signature, ValidDump, DumpOptions (ULONG64 at 0x8), two unnamed ULONG64, then at 0x20 HeaderSize
(file offset of the first page; kdmp-parser's ``FirstPage``), at 0x28 the number of pages present
(``TotalPresentPages``), at 0x30 the number of bits in the bitmap (volatility's ``BitmapSize``), bitmap at 0x38."""
SUMMARY_STRUCT: Final = struct.Struct("<4s4sQQQQQQ")

MAX_PFN: Final = 2**40
"""Page frames x86-64 can address (2^52 bytes of physical address space)."""
MAX_BITMAP_BITS: Final = 2**32
"""Most bits a bitmap may have when read back: 16 TiB of RAM, a 512 MiB bitmap (ASSUMPTION: a bound on hostile input)."""
MAX_BITMAP_SLACK: Final = 2**20
"""Most bytes between the bitmap's end and the first page accepted when read back (stacksim writes < 4096; ASSUMPTION)."""
MAX_DUMP_BYTES: Final = 2**53
"""Largest ``RequiredDumpSpace`` accepted when read back (ASSUMPTION: a bound on hostile input)."""

# CONTEXT (winnt.h, AMD64) offsets [DOC S58; RE S56 CONTEXT, static_assert Xmm0 at 0x1a0].
CONTEXT_SIZE: Final = 0x4D0
CONTEXT_ALL: Final = 0x0010001F
"""``CONTEXT_AMD64 | CONTROL | INTEGER | SEGMENTS | FLOATING_POINT | DEBUG_REGISTERS`` [DOC S58 winnt.h]."""
MXCSR_DEFAULT: Final = 0x1F80
"""The processor's reset value of MXCSR. kdmp-parser rejects a CONTEXT whose two MxCsr copies differ [RE S56]."""

DumpKind = Literal["complete", "active", "kernel", "automatic", "small"]
DUMP_KINDS: Final[tuple[DumpKind, ...]] = ("complete", "active", "kernel", "automatic", "small")
"""The crash dump kinds :class:`CrashDumpFile` writes (``stacksim.memory`` names them the same)."""

_BITMAP_SIGNATURE: Final[dict[str, bytes]] = {
    "complete": FULL_SIGNATURE,
    "active": FULL_SIGNATURE,
    "kernel": SUMMARY_SIGNATURE,
    "automatic": SUMMARY_SIGNATURE,
}
"""Bitmap kinds and the summary signature each writes (module docstring)."""

U32: Final = 2**32
U64: Final = 2**64


class DumpFormatError(ValueError):
    """A file's bytes are not a crash dump stacksim can read; the message names the field and why."""


def _round_up(n: int, unit: int) -> int:
    return -(-n // unit) * unit


# --------------------------------------------------------------------------------------------
# Header fields
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ContextRecord:
    """
    The processor state stored in the header's ``CONTEXT`` (x64 layout, 0x4d0 bytes) [DOC S58; RE S56].

    Synthetic: stacksim runs no kernel. :func:`synthetic_header_fields` makes it look like the
    moment ``KeBugCheckEx`` was called: ``rcx`` holds the bugcheck code and ``rdx``, ``r8``, ``r9``
    the first three parameters (the x64 calling convention), the selectors are those of a real
    x64 Windows kernel (cs 0x10, ss 0x18, ds/es/gs 0x2b, fs 0x53, EFlags 0x40202 [RE S56 README]).
    """

    rip: int
    rsp: int
    rbp: int = 0
    rax: int = 0
    rcx: int = 0
    rdx: int = 0
    r8: int = 0
    r9: int = 0
    eflags: int = 0x40202
    seg_cs: int = 0x10
    seg_ss: int = 0x18
    seg_ds: int = 0x2B
    seg_es: int = 0x2B
    seg_fs: int = 0x53
    seg_gs: int = 0x2B
    mxcsr: int = MXCSR_DEFAULT
    context_flags: int = CONTEXT_ALL

    def __post_init__(self) -> None:
        """Check every register fits its field."""
        for name in ("rip", "rsp", "rbp", "rax", "rcx", "rdx", "r8", "r9"):
            _check_range(name, getattr(self, name), U64)
        for name in ("eflags", "mxcsr", "context_flags"):
            _check_range(name, getattr(self, name), U32)
        for name in ("seg_cs", "seg_ss", "seg_ds", "seg_es", "seg_fs", "seg_gs"):
            _check_range(name, getattr(self, name), 2**16)

    def pack(self) -> bytes:
        """The 0x4d0-byte ``CONTEXT`` (winnt.h offsets [DOC S58]; kdmp-parser's struct [RE S56])."""
        buf = bytearray(CONTEXT_SIZE)
        struct.pack_into("<II", buf, 0x30, self.context_flags, self.mxcsr)
        struct.pack_into(
            "<6HI", buf, 0x38, self.seg_cs, self.seg_ds, self.seg_es, self.seg_fs, self.seg_gs, self.seg_ss, self.eflags
        )
        # Rax Rcx Rdx Rbx Rsp Rbp Rsi Rdi R8 R9 (0x78 ...), Rip at 0xf8.
        struct.pack_into("<10Q", buf, 0x78, self.rax, self.rcx, self.rdx, 0, self.rsp, self.rbp, 0, 0, self.r8, self.r9)
        struct.pack_into("<Q", buf, 0xF8, self.rip)
        struct.pack_into("<I", buf, 0x118, self.mxcsr)  # FltSave.MxCsr: must equal MxCsr [RE S56 CONTEXT::LooksGood]
        return bytes(buf)


@dataclass(frozen=True, slots=True)
class DumpHeaderFields:
    """
    What the ``DUMP_HEADER64`` says about the crash, apart from the layout (which :class:`CrashDumpFile` fills in).

    ``bugcheck_code`` and ``bugcheck_parameters`` come from the scenario; the rest describes a
    machine that does not exist and is synthetic (see :func:`synthetic_header_fields` for how each
    value is chosen). ``system_time`` is a Windows FILETIME (100 ns since 1601-01-01 UTC),
    ``system_up_time`` a count of 100 ns.
    """

    bugcheck_code: int
    bugcheck_parameters: tuple[int, int, int, int]
    number_processors: int
    directory_table_base: int
    pfn_database: int
    ps_loaded_module_list: int
    ps_active_process_head: int
    kd_debugger_data_block: int
    system_time: int
    system_up_time: int
    context: ContextRecord
    major_version: int = 0xF
    minor_version: int = 26100
    product_type: int = 1
    suite_mask: int = 0x110
    comment: bytes = b"stacksim synthetic crash dump: no real kernel produced it"

    def __post_init__(self) -> None:
        """Check every value fits its field and the DTB is page-aligned."""
        _check_range("bugcheck_code", self.bugcheck_code, U32)
        if len(self.bugcheck_parameters) != 4:
            raise ValueError(f"bugcheck_parameters has {len(self.bugcheck_parameters)} values; a bugcheck has exactly 4")
        for i, p in enumerate(self.bugcheck_parameters, 1):
            _check_range(f"bugcheck parameter {i}", p, U64)
        if not 1 <= self.number_processors <= 2048:
            raise ValueError(f"number_processors = {self.number_processors} must be 1 ... 2048")
        for name in ("directory_table_base", "pfn_database", "ps_loaded_module_list", "ps_active_process_head"):
            _check_range(name, getattr(self, name), U64)
        _check_range("kd_debugger_data_block", self.kd_debugger_data_block, U64)
        _check_range("system_time", self.system_time, 2**63)
        _check_range("system_up_time", self.system_up_time, 2**63)
        for name in ("major_version", "minor_version", "product_type", "suite_mask"):
            _check_range(name, getattr(self, name), U32)
        if self.directory_table_base % PAGE_SIZE:
            raise ValueError(f"directory_table_base = {self.directory_table_base:#x} must be page-aligned (it is a CR3 value)")
        if len(self.comment) >= COMMENT_SIZE or b"\0" in self.comment:
            raise ValueError(f"comment must be fewer than {COMMENT_SIZE} bytes with no NUL (it is a C string)")


def _check_range(name: str, value: int, limit: int) -> None:
    if not 0 <= value < limit:
        raise ValueError(f"{name} = {value} must be 0 ... {limit - 1:#x}")


FILETIME_2026: Final = (1_767_225_600 + 11_644_473_600) * 10**7
"""2026-01-01T00:00:00Z as a FILETIME: the earliest boot time stacksim invents (ASSUMPTION)."""
HUNDRED_NS_PER_S: Final = 10**7


def synthetic_header_fields(
    seed: int,
    runs: Sequence[tuple[int, int]],
    *,
    bugcheck_code: int = 0xE2,
    bugcheck_parameters: tuple[int, int, int, int] = (0, 0, 0, 0),
    number_processors: int = 4,
    crash_time_ns: int = 0,
    dtb_pfn: int | None = None,
) -> DumpHeaderFields:
    """
    Plausible, self-consistent header fields for a machine with physical memory *runs*, from *seed*.

    The default bugcheck is 0xE2 ``MANUALLY_INITIATED_CRASH``, whose four parameters are all zero
    [DOC S64]. Everything else is **synthetic** (there is no kernel), derived from the seed with
    BLAKE2b so that the same seed gives the same bytes:

    * version 0xF.26100 (a free build of Windows 11 24H2: ``MinorVersion`` is the build number
      [ANEC S62]; ASSUMPTION), workstation product type 1 and suite mask 0x110 as in real
      headers [ANEC S62];
    * a kernel base in ``0xfffff800_00000000 ...`` on a 2 MiB boundary, with ``PsLoadedModuleList``,
      ``PsActiveProcessHead`` and ``KdDebuggerDataBlock`` at fixed offsets from it (offsets shaped
      like a real Windows 10 header's [ANEC S62]), and a PFN database at the start of an upper-half
      PML4 slot;
    * ``DirectoryTableBase`` = *dtb_pfn* × 4096 (default: the first page of the runs at or after PFN
      0x1aa, where real headers put it [ANEC S62]; for a kernel dump, pass a PFN the dump holds);
    * a boot time in 2026 and an uptime of 1 h to 8 days; ``system_time`` = boot + uptime +
      *crash_time_ns* (the simulated time of the bugcheck); no wall clock is read;
    * a CONTEXT at the call of ``KeBugCheckEx`` (:class:`ContextRecord`).
    """
    if not runs:
        raise ValueError("runs is empty: a machine needs physical memory")
    if crash_time_ns < 0:
        raise ValueError(f"crash_time_ns = {crash_time_ns} must be >= 0")
    digest = hashlib.blake2b(f"stacksim dump header {seed}".encode(), digest_size=48).digest()
    h = [int.from_bytes(digest[i : i + 8], "little") for i in range(0, 48, 8)]
    kernel_base = 0xFFFFF800_00000000 + (h[0] % 0x1000) * 0x200000
    pfn_slot = 0x100 + h[1] % 0xF0
    if dtb_pfn is None:
        dtb_pfn = _first_pfn_at_or_after(runs, 0x1AA)
    boot = FILETIME_2026 + (h[2] % (365 * 86_400)) * HUNDRED_NS_PER_S
    uptime = (3_600 + h[3] % (8 * 86_400 - 3_600)) * HUNDRED_NS_PER_S + crash_time_ns // 100
    stack = 0xFFFFD000_00000000 + (h[4] % 2**28) * PAGE_SIZE + 0xF38
    context = ContextRecord(
        rip=kernel_base + 0x416A40,
        rsp=stack,
        rbp=stack + 0x80,
        rcx=bugcheck_code,
        rdx=bugcheck_parameters[0],
        r8=bugcheck_parameters[1],
        r9=bugcheck_parameters[2],
    )
    return DumpHeaderFields(
        bugcheck_code=bugcheck_code,
        bugcheck_parameters=bugcheck_parameters,
        number_processors=number_processors,
        directory_table_base=dtb_pfn * PAGE_SIZE,
        pfn_database=0xFFFF0000_00000000 | (pfn_slot << 39),
        ps_loaded_module_list=kernel_base + 0xC3A610,
        ps_active_process_head=kernel_base + 0xC2E520,
        kd_debugger_data_block=kernel_base + 0xC1E5E0,
        system_time=boot + uptime,
        system_up_time=uptime,
        context=context,
    )


def _first_pfn_at_or_after(runs: Sequence[tuple[int, int]], pfn: int) -> int:
    for base, count in runs:
        if base + count > pfn:
            return max(base, pfn)
    return runs[0][0]


# --------------------------------------------------------------------------------------------
# The set of pages a bitmap dump holds, and contiguous spans of it
# --------------------------------------------------------------------------------------------


class PageSource(Protocol):
    """
    Where the dump's page contents come from (``stacksim.physmem`` builds the real one).

    A source may also have ``read_pages_into(pfn, buffer)``, filling a writable buffer of whole
    pages with the pages from *pfn* on (as :class:`stacksim.physmem.PhysicalMemory` does):
    :meth:`CrashDumpFile.read_into` then generates pages straight into its caller's buffer.
    """

    def read_pages(self, pfn: int, count: int) -> bytes:
        """The contents of physical pages *pfn* ... *pfn* + *count* − 1: exactly *count* × 4096 bytes."""
        ...


class PageSpan(NamedTuple):
    """*pages* consecutive physical pages from *pfn* on, stored consecutively from *file_offset*."""

    pfn: int
    file_offset: int
    pages: int


class PageSet:
    """
    A set of page frame numbers, held as the dump's own bitmap: one bit per page, least significant first.

    64 GiB of RAM is 16 Mi pages, a 2 MiB bitmap: no Python object per page. Build it from a
    boolean mask (:meth:`from_mask`), from chunks of PFNs (:meth:`from_pfns`) or from runs
    (:meth:`from_runs`).
    """

    __slots__ = ("_bits", "_count", "nbits")

    def __init__(self, bits: npt.NDArray[np.uint8], nbits: int) -> None:
        """Wrap a little-bit-order bitmap of *nbits* bits (the bits past *nbits* must be zero)."""
        if nbits < 0 or len(bits) != -(-nbits // 8):
            raise ValueError(f"a bitmap of {nbits} bits takes {-(-nbits // 8)} bytes, not {len(bits)}")
        self._bits = np.ascontiguousarray(bits, dtype=np.uint8)
        self.nbits = nbits
        self._count = int(np.bitwise_count(self._bits).sum(dtype=np.int64))
        if nbits % 8 and self._bits[-1] >> (nbits % 8):
            raise ValueError(f"bits past bit {nbits} are set")

    @classmethod
    def from_mask(cls, mask: npt.ArrayLike) -> PageSet:
        """The pages whose entry in the boolean *mask* is true (index = PFN)."""
        m = np.asarray(mask, dtype=bool)
        if m.ndim != 1:
            raise ValueError("mask must be one-dimensional (index = page frame number)")
        return cls(np.packbits(m, bitorder="little"), len(m))

    @classmethod
    def from_pfns(cls, chunks: Iterable[npt.ArrayLike], nbits: int) -> PageSet:
        """The pages listed in *chunks* (arrays of PFNs, each below *nbits*), set chunk by chunk."""
        mask = np.zeros(nbits, dtype=bool)
        for chunk in chunks:
            pfns = np.asarray(chunk, dtype=np.uint64)
            if len(pfns) and int(pfns.max()) >= nbits:
                raise ValueError(f"PFN {int(pfns.max())} is past the {nbits} pages of the set")
            mask[pfns] = True
        return cls.from_mask(mask)

    @classmethod
    def from_runs(cls, runs: Sequence[tuple[int, int]], nbits: int | None = None) -> PageSet:
        """Every page of the (base page, page count) *runs*."""
        end = max((b + c for b, c in runs), default=0)
        mask = np.zeros(end if nbits is None else nbits, dtype=bool)
        for base, count in runs:
            mask[base : base + count] = True
        return cls.from_mask(mask)

    @property
    def count(self) -> int:
        """Pages in the set."""
        return self._count

    @property
    def bits(self) -> npt.NDArray[np.uint8]:
        """The bitmap's bytes, as the dump stores them (read-only view)."""
        view = self._bits.view()
        view.flags.writeable = False
        return view

    def resized(self, nbits: int) -> PageSet:
        """The same pages in a bitmap of *nbits* bits (refused if a page would fall off the end)."""
        nbytes = -(-nbits // 8)
        out = np.zeros(nbytes, dtype=np.uint8)
        keep = min(nbytes, len(self._bits))
        out[:keep] = self._bits[:keep]
        if nbits % 8:
            out[-1] &= (1 << (nbits % 8)) - 1
        resized = PageSet(out, nbits)
        if resized.count != self.count:
            raise ValueError(f"the set has pages at or past PFN {nbits}")
        return resized

    def mask(self) -> npt.NDArray[np.bool_]:
        """One boolean per page (index = PFN)."""
        return np.unpackbits(self._bits, count=self.nbits, bitorder="little").view(bool)

    def spans(self) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """(first PFN, page count) of each maximal run of consecutive pages, in PFN order."""
        edges = np.diff(self.mask().view(np.int8), prepend=np.int8(0), append=np.int8(0))
        starts = np.flatnonzero(edges == 1)
        ends = np.flatnonzero(edges == -1)
        return starts.astype(np.int64), (ends - starts).astype(np.int64)


class _SpanIndex:
    """Where each page of the body sits: spans of consecutive PFNs stored one after another from *first_page_offset*."""

    def __init__(self, starts: npt.NDArray[np.int64], counts: npt.NDArray[np.int64], first_page_offset: int) -> None:
        self.starts = starts
        self.counts = counts
        self.file_pages = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
        self.first_page_offset = first_page_offset

    @property
    def pages(self) -> int:
        return int(self.file_pages[-1])

    def __iter__(self) -> Iterator[PageSpan]:
        for pfn, file_page, count in zip(self.starts.tolist(), self.file_pages[:-1].tolist(), self.counts.tolist(), strict=True):
            yield PageSpan(pfn, self.first_page_offset + file_page * PAGE_SIZE, count)

    def file_offset_of(self, pfn: int) -> int | None:
        i = int(np.searchsorted(self.starts, pfn, side="right")) - 1
        if i < 0 or pfn >= self.starts[i] + self.counts[i]:
            return None
        return self.first_page_offset + int(self.file_pages[i] + pfn - self.starts[i]) * PAGE_SIZE

    def pieces(self, first: int, stop: int) -> Iterator[tuple[int, int]]:
        """(PFN, page count) pieces that hold body pages *first* ... *stop* − 1, in file order."""
        i = int(np.searchsorted(self.file_pages, first, side="right")) - 1
        page = first
        while page < stop:
            start_page = int(self.file_pages[i])
            n = min(int(self.file_pages[i + 1]), stop) - page
            yield int(self.starts[i]) + page - start_page, n
            page += n
            i += 1


# --------------------------------------------------------------------------------------------
# The file stacksim writes
# --------------------------------------------------------------------------------------------


class FilePart(NamedTuple):
    """One contiguous part of the dump file: *name*, where it starts, how many bytes."""

    name: str
    offset: int
    length: int


def bitmap_bits(runs: Sequence[tuple[int, int]]) -> int:
    """Bits in the bitmap of a dump of a machine with these *runs*: the highest run end, in whole ULONGs [RE S42 reads them]."""
    return _round_up(max(b + c for b, c in runs), 32)


def dump_parts(
    kind: DumpKind, runs: Sequence[tuple[int, int]], page_count: int, secondary_bytes: int = 0
) -> tuple[FilePart, ...]:
    """
    The parts of a *kind* dump holding *page_count* pages, by arithmetic alone (no bitmap is built).

    What :attr:`CrashDumpFile.parts` gives for the same dump; timing mode can plan with it for any
    size of RAM. *secondary_bytes* is rounded up to whole pages; a small dump has none.
    """
    if kind == "small":
        return (FilePart("header", 0, HEADER64_SIZE), FilePart("body", HEADER64_SIZE, SMALL_DUMP_SIZE - HEADER64_SIZE))
    first_page = _first_page_offset(bitmap_bits(runs))
    body = page_count * PAGE_SIZE
    parts = [
        FilePart("header", 0, HEADER64_SIZE),
        FilePart("bitmap", HEADER64_SIZE, first_page - HEADER64_SIZE),
        FilePart("body", first_page, body),
    ]
    if secondary_bytes:
        parts.append(FilePart("secondary", first_page + body, _round_up(secondary_bytes, PAGE_SIZE)))
    return tuple(parts)


def _first_page_offset(nbits: int) -> int:
    """The header, then the summary header and an *nbits*-bit bitmap in whole pages."""
    return HEADER64_SIZE + _round_up(SUMMARY_HEADER_SIZE + -(-nbits // 8), PAGE_SIZE)


SECONDARY_TAG: Final = int.from_bytes(b"2NDDATA\0", "little")
"""Secondary-data filler: 16-byte records of this tag and the record's index (ASSUMPTION, module docstring)."""


class CrashDumpFile:
    """
    A crash dump file of one *kind*, laid out as stacksim writes it, with random access to its bytes.

    Args:
        kind: ``complete``, ``active``, ``kernel``, ``automatic`` or ``small``.
        runs: the machine's physical memory map, (base page, page count) in ascending order,
            at most 42 runs (what ``PhysicalMemoryBlock`` holds).
        header: the crash's header fields (:func:`synthetic_header_fields`).
        source: the physical pages' contents.
        present: for ``active``, ``kernel`` and ``automatic``: the pages the dump holds (inside
            the runs). ``complete`` holds every page of the runs; ``small`` none.
        secondary_bytes: secondary data after the pages, rounded up to whole pages (not in
            ``small`` dumps).

    Nothing is read from *source* until :meth:`read` asks for pages, one call per contiguous
    span of page frames in the range asked for.
    """

    def __init__(
        self,
        kind: DumpKind,
        runs: Sequence[tuple[int, int]],
        header: DumpHeaderFields,
        source: PageSource,
        *,
        present: PageSet | None = None,
        secondary_bytes: int = 0,
    ) -> None:
        """Lay the file out; build the header and the bitmap (see the class docstring)."""
        if kind not in DUMP_KINDS:
            raise ValueError(f"kind = {kind!r} must be one of {', '.join(DUMP_KINDS)}")
        self.runs = _checked_runs(runs)
        if secondary_bytes < 0:
            raise ValueError(f"secondary_bytes = {secondary_bytes} must be >= 0")
        self.kind: DumpKind = kind
        self.header_fields = header
        self._source = source
        self._summary = b""
        self.secondary_bytes = 0 if kind == "small" else _round_up(secondary_bytes, PAGE_SIZE)
        if kind == "small":
            if present is not None:
                raise ValueError("a small dump holds no pages: do not pass present")
            self.dump_type = DUMP_TYPE_TRIAGE
            self._index = _SpanIndex(np.zeros(0, np.int64), np.zeros(0, np.int64), HEADER64_SIZE)
            self.size = SMALL_DUMP_SIZE
        else:
            self.dump_type = DUMP_TYPE_BITMAP_FULL
            pages = self._present_pages(kind, present)
            first_page = _first_page_offset(pages.nbits)
            self._summary = _summary_bytes(_BITMAP_SIGNATURE[kind], pages, first_page)
            self._index = _SpanIndex(*pages.spans(), first_page)
            self.size = first_page + self._index.pages * PAGE_SIZE + self.secondary_bytes
        self._header = _header_bytes(self.dump_type, self.runs, header, required_dump_space=self.size)

    def _present_pages(self, kind: DumpKind, present: PageSet | None) -> PageSet:
        nbits = bitmap_bits(self.runs)
        in_runs = PageSet.from_runs(self.runs, nbits)
        if kind == "complete":
            if present is not None:
                raise ValueError("a complete dump holds every page of the runs: do not pass present")
            return in_runs
        if present is None:
            raise ValueError(f"{'an' if kind == 'active' else 'a'} {kind} dump needs present: the pages it holds")
        pages = present.resized(nbits)
        outside = int(np.bitwise_count(pages.bits & ~in_runs.bits).sum(dtype=np.int64))
        if outside:
            raise ValueError(f"{outside} of the present pages lie outside the physical memory runs")
        return pages

    @property
    def first_page_offset(self) -> int:
        """File offset of the first physical page (0x2000 + the summary header and bitmap, whole pages)."""
        return self._index.first_page_offset

    @property
    def page_count(self) -> int:
        """Physical pages the file holds."""
        return self._index.pages

    @property
    def header_bytes(self) -> bytes:
        """The 8 KiB ``DUMP_HEADER64``."""
        return self._header

    @property
    def parts(self) -> tuple[FilePart, ...]:
        """The file's parts in file order: header, bitmap (bitmap kinds), body, secondary (if any)."""
        return dump_parts(self.kind, self.runs, self.page_count, self.secondary_bytes)

    def plan(self) -> DumpPlan:
        """The same parts as a :class:`stacksim.memory.DumpPlan` (what the dump driver writes)."""
        return DumpPlan(self.kind, tuple(DumpPart(p.name, p.length, p.offset) for p in self.parts))

    def spans(self) -> Iterator[PageSpan]:
        """Where each run of consecutive pages sits in the file, in file order."""
        return iter(self._index)

    def read(self, file_offset: int, length: int) -> bytes:
        """The file's bytes ``[file_offset, file_offset + length)``: one ``read_pages`` call per contiguous span."""
        if file_offset < 0 or length < 0 or file_offset + length > self.size:
            raise ValueError(f"bytes {file_offset} ... {file_offset + length} are outside the {self.size}-byte dump")
        out: list[bytes] = []
        end = file_offset + length
        for name, start, size in self.parts:
            lo, hi = max(file_offset, start), min(end, start + size)
            if lo < hi:
                out.append(self._read_part(name, lo - start, hi - lo))
        return b"".join(out)

    def read_into(self, file_offset: int, out: bytearray | memoryview) -> None:
        """
        :meth:`read` of ``len(out)`` bytes into the writable buffer *out*, without building them in between.

        Whole pages of the body go straight from the page source into *out*
        (``read_pages_into``, when the source has it: see :class:`PageSource`); the header, the
        bitmap, secondary data and pages cut by the range's ends are copied in.
        """
        view = memoryview(out).cast("B")
        length = len(view)
        if view.readonly:
            raise TypeError("out is read-only")
        if file_offset < 0 or file_offset + length > self.size:
            raise ValueError(f"bytes {file_offset} ... {file_offset + length} are outside the {self.size}-byte dump")
        end = file_offset + length
        for name, start, size in self.parts:
            lo, hi = max(file_offset, start), min(end, start + size)
            if lo >= hi:
                continue
            target = view[lo - file_offset : hi - file_offset]
            if name == "body" and self.kind != "small":
                self._body_into(lo - start, target)
            else:
                target[:] = self._read_part(name, lo - start, hi - lo)

    def _body_into(self, offset: int, target: memoryview) -> None:
        """The body's bytes from *offset* into *target*: whole pages generated in place, the cut ends copied."""
        into = getattr(self._source, "read_pages_into", None)
        first, stop = -(-offset // PAGE_SIZE), (offset + len(target)) // PAGE_SIZE
        if into is None or first >= stop:
            target[:] = self._read_part("body", offset, len(target))
            return
        head = first * PAGE_SIZE - offset
        if head:
            target[:head] = self._read_part("body", offset, head)
        at = head
        for pfn, count in self._index.pieces(first, stop):
            into(pfn, target[at : at + count * PAGE_SIZE])
            at += count * PAGE_SIZE
        if at < len(target):
            target[at:] = self._read_part("body", stop * PAGE_SIZE, len(target) - at)

    def _read_part(self, name: str, offset: int, length: int) -> bytes:
        if name == "header":
            return self._header[offset : offset + length]
        if name == "bitmap":
            return self._summary[offset : offset + length]
        if name == "secondary":
            return _secondary_filler(offset, length)
        if self.kind == "small":
            return bytes(length)
        first, stop = offset // PAGE_SIZE, -(-(offset + length) // PAGE_SIZE)
        chunks = []
        for pfn, count in self._index.pieces(first, stop):
            data = self._source.read_pages(pfn, count)
            if len(data) != count * PAGE_SIZE:
                raise ValueError(f"read_pages({pfn}, {count}) returned {len(data)} bytes, not {count * PAGE_SIZE}")
            chunks.append(data)
        skip = offset - first * PAGE_SIZE
        return b"".join(chunks)[skip : skip + length]


def _checked_runs(runs: Sequence[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    out = tuple((int(b), int(c)) for b, c in runs)
    if not out:
        raise ValueError("runs is empty: a machine needs physical memory")
    if len(out) > MAX_RUNS:
        raise ValueError(f"{len(out)} runs: PhysicalMemoryBlock holds at most {MAX_RUNS}")
    end = 0
    for base, count in out:
        if count <= 0 or base < end:
            raise ValueError(f"run ({base}, {count}) must have pages and start after the previous run ends (page {end})")
        end = base + count
    if end > MAX_PFN:
        raise ValueError(f"runs reach page {end}, past the {MAX_PFN} pages x86-64 addresses")
    return out


def _header_bytes(dump_type: int, runs: Sequence[tuple[int, int]], f: DumpHeaderFields, *, required_dump_space: int) -> bytes:
    """The 8 KiB header: the 'PAGE' pattern, then each field Windows writes written over it."""
    buf = bytearray(SIGNATURE * (HEADER64_SIZE // 4))
    struct.pack_into("<4s4sII", buf, 0, SIGNATURE, VALID_DUMP64, f.major_version, f.minor_version)
    struct.pack_into(
        "<4Q",
        buf,
        OFF_DIRECTORY_TABLE_BASE,
        f.directory_table_base,
        f.pfn_database,
        f.ps_loaded_module_list,
        f.ps_active_process_head,
    )
    struct.pack_into("<III", buf, OFF_MACHINE_IMAGE_TYPE, MACHINE_AMD64, f.number_processors, f.bugcheck_code)
    struct.pack_into("<4Q", buf, OFF_BUGCHECK_PARAMETERS, *f.bugcheck_parameters)
    buf[OFF_VERSION_USER : OFF_VERSION_USER + 32] = bytes(32)
    struct.pack_into("<Q", buf, OFF_KD_DEBUGGER_DATA_BLOCK, f.kd_debugger_data_block)
    struct.pack_into("<IIQ", buf, OFF_PHYSICAL_MEMORY_BLOCK, len(runs), 0, sum(c for _, c in runs))
    for i, (base, count) in enumerate(runs):
        struct.pack_into("<QQ", buf, OFF_PHYSICAL_MEMORY_BLOCK + RUNS_OFFSET_IN_BLOCK + i * RUN_SIZE, base, count)
    buf[OFF_CONTEXT_RECORD : OFF_CONTEXT_RECORD + CONTEXT_SIZE] = f.context.pack()
    buf[OFF_EXCEPTION : OFF_EXCEPTION + EXCEPTION_RECORD64_SIZE] = bytes(EXCEPTION_RECORD64_SIZE)  # no exception: a bugcheck
    struct.pack_into("<I", buf, OFF_DUMP_TYPE, dump_type)  # 4 bytes of padding follow, left 'PAGE'
    struct.pack_into("<qq", buf, OFF_REQUIRED_DUMP_SPACE, required_dump_space, f.system_time)
    buf[OFF_COMMENT : OFF_COMMENT + COMMENT_SIZE] = f.comment.ljust(COMMENT_SIZE, b"\0")
    mini_dump_fields = 0 if dump_type == DUMP_TYPE_TRIAGE else int.from_bytes(SIGNATURE, "little")  # no triage block is present
    struct.pack_into("<qII", buf, OFF_SYSTEM_UP_TIME, f.system_up_time, mini_dump_fields, 0)  # SecondaryDataState 0 (ASSUMPTION)
    struct.pack_into("<II", buf, OFF_PRODUCT_TYPE, f.product_type, f.suite_mask)
    struct.pack_into("<II", buf, OFF_ATTRIBUTES, 0, 0)  # no DUMP_FILE_ATTRIBUTES flag; 'PAGE' here would read as flags [DOC S58]
    return bytes(buf)


def _summary_bytes(signature: bytes, pages: PageSet, first_page: int) -> bytes:
    """The summary header and the bitmap, zero-padded to *first_page* − 0x2000 bytes."""
    head = SUMMARY_STRUCT.pack(signature, SUMMARY_VALID, 0, 0, 0, first_page, pages.count, pages.nbits)
    body = head + pages.bits.tobytes()
    return body + bytes(first_page - HEADER64_SIZE - len(body))


def _secondary_filler(offset: int, length: int) -> bytes:
    first, stop = offset // 16, -(-(offset + length) // 16)
    records = np.empty((stop - first, 2), dtype="<u8")
    records[:, 0] = SECONDARY_TAG
    records[:, 1] = np.arange(first, stop, dtype=np.uint64)
    skip = offset - first * 16
    return records.tobytes()[skip : skip + length]


# --------------------------------------------------------------------------------------------
# Reading a dump back
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParsedDump:
    """
    What a crash dump's header says: its type, runs, size and (bitmap dumps) which pages it holds.

    ``signature`` is the summary signature of a bitmap dump ('SDMP' or 'FDMP') and ``b""``
    otherwise; ``bitmap`` the bitmap's bytes (bitmap dumps only).
    """

    dump_type: int
    signature: bytes
    major_version: int
    minor_version: int
    directory_table_base: int
    number_processors: int
    bugcheck_code: int
    bugcheck_parameters: tuple[int, int, int, int]
    runs: tuple[tuple[int, int], ...]
    required_dump_space: int
    system_time: int
    first_page_offset: int
    page_count: int
    bitmap: bytes = field(repr=False)
    bitmap_bits: int
    _index: _SpanIndex = field(repr=False, compare=False)

    @property
    def body_end(self) -> int:
        """File offset just past the last physical page."""
        return self.first_page_offset + self.page_count * PAGE_SIZE

    def spans(self) -> Iterator[PageSpan]:
        """Where each run of consecutive pages sits in the file, in file order."""
        return iter(self._index)

    def file_offset_of(self, pfn: int) -> int | None:
        """File offset of physical page *pfn*, or None if the dump does not hold it."""
        return self._index.file_offset_of(pfn)

    def pfns_at(self, first: int, count: int) -> npt.NDArray[np.int64]:
        """
        The PFNs of the dump's pages *first* ... *first* + *count* − 1, counted in file order from the first page.

        Page *k* sits at file offset ``first_page_offset + k × 4096``; one vectorised lookup, whatever *count*.

        Raises:
            ValueError: the pages are not all in the dump.
        """
        if first < 0 or count < 0 or first + count > self.page_count:
            raise ValueError(f"pages {first:,} ... {first + count - 1:,} are not among the dump's {self.page_count:,} pages")
        index = self._index
        k = np.arange(first, first + count, dtype=np.int64)
        run = np.searchsorted(index.file_pages, k, side="right") - 1
        pfns: npt.NDArray[np.int64] = index.starts[run] + k - index.file_pages[run]
        return pfns


def header_bytes_needed(prefix: bytes) -> int:
    """
    How many leading bytes of the file :func:`parse_dump_header` needs, from its first 0x2038 (or more).

    A bitmap dump needs its summary header and bitmap too; every other type needs the 8 KiB header.
    """
    _check_signature(prefix)
    dump_type = _u32(prefix, OFF_DUMP_TYPE)
    if dump_type not in (DUMP_TYPE_BITMAP_FULL, DUMP_TYPE_BITMAP_KERNEL):
        return HEADER64_SIZE
    if len(prefix) < HEADER64_SIZE + SUMMARY_HEADER_SIZE:
        raise DumpFormatError(f"torn: {len(prefix)} bytes hold no bitmap summary header (it ends at byte {HEADER64_SIZE + 0x38})")
    return HEADER64_SIZE + SUMMARY_HEADER_SIZE + -(-_bitmap_bits(prefix) // 8)


def parse_dump_header(data: bytes) -> ParsedDump:
    """
    Read the header (and, for a bitmap dump, the bitmap) from the start of a dump file.

    *data* must hold at least :func:`header_bytes_needed` bytes. Reads ``DumpType`` 1 (pages in
    run order), 5 and 6 (bitmap), 3 and 4 (header only / small dump: no pages). Raises
    :class:`DumpFormatError` naming the field when the bytes are torn, truncated or not a dump;
    every count and offset read is bounded.
    """
    _check_signature(data)
    dump_type = _u32(data, OFF_DUMP_TYPE)
    if dump_type not in (DUMP_TYPE_FULL, DUMP_TYPE_HEADER, DUMP_TYPE_TRIAGE, DUMP_TYPE_BITMAP_FULL, DUMP_TYPE_BITMAP_KERNEL):
        raise DumpFormatError(f"DumpType = {dump_type:#x} at offset {OFF_DUMP_TYPE:#x}: stacksim reads types 1, 3, 4, 5 and 6")
    runs = _parse_runs(data, required=dump_type in (DUMP_TYPE_FULL, DUMP_TYPE_BITMAP_FULL, DUMP_TYPE_BITMAP_KERNEL))
    required = struct.unpack_from("<q", data, OFF_REQUIRED_DUMP_SPACE)[0]
    if not HEADER64_SIZE <= required <= MAX_DUMP_BYTES:
        raise DumpFormatError(f"RequiredDumpSpace = {required} must be {HEADER64_SIZE} ... {MAX_DUMP_BYTES} bytes")
    signature, bitmap, nbits = b"", b"", 0
    if dump_type == DUMP_TYPE_FULL:
        index = _SpanIndex(
            np.array([b for b, _ in runs], dtype=np.int64), np.array([c for _, c in runs], dtype=np.int64), HEADER64_SIZE
        )
    elif dump_type in (DUMP_TYPE_BITMAP_FULL, DUMP_TYPE_BITMAP_KERNEL):
        signature, bitmap, nbits, index = _parse_bitmap(data)
    else:
        index = _SpanIndex(np.zeros(0, np.int64), np.zeros(0, np.int64), HEADER64_SIZE)
    end = index.first_page_offset + index.pages * PAGE_SIZE
    if index.pages and required < end:
        raise DumpFormatError(f"RequiredDumpSpace = {required} bytes is less than the {end} bytes the header and pages take")
    code = _u32(data, OFF_BUGCHECK_CODE)
    params = struct.unpack_from("<4Q", data, OFF_BUGCHECK_PARAMETERS)
    return ParsedDump(
        dump_type=dump_type,
        signature=signature,
        major_version=_u32(data, OFF_MAJOR_VERSION),
        minor_version=_u32(data, OFF_MAJOR_VERSION + 4),
        directory_table_base=struct.unpack_from("<Q", data, OFF_DIRECTORY_TABLE_BASE)[0],
        number_processors=_u32(data, OFF_NUMBER_PROCESSORS),
        bugcheck_code=code,
        bugcheck_parameters=(params[0], params[1], params[2], params[3]),
        runs=runs,
        required_dump_space=required,
        system_time=struct.unpack_from("<q", data, OFF_SYSTEM_TIME)[0],
        first_page_offset=index.first_page_offset,
        page_count=index.pages,
        bitmap=bitmap,
        bitmap_bits=nbits,
        _index=index,
    )


def _u32(data: bytes, offset: int) -> int:
    value: int = struct.unpack_from("<I", data, offset)[0]
    return value


def _check_signature(data: bytes) -> None:
    if len(data) < 8:
        raise DumpFormatError(f"torn: {len(data)} bytes, too few for the 'PAGE' 'DU64' signature")
    if data[:4] != SIGNATURE:
        raise DumpFormatError(f"no crash dump signature: the file starts with {data[:4]!r}, not b'PAGE'")
    if data[4:8] == b"DUMP":
        raise DumpFormatError("a 32-bit crash dump ('PAGE' 'DUMP'): stacksim reads 64-bit dumps ('PAGE' 'DU64') only")
    if data[4:8] != VALID_DUMP64:
        raise DumpFormatError(f"ValidDump is {data[4:8]!r}, not b'DU64': the header is torn or invalidated")
    if len(data) < HEADER64_SIZE:
        raise DumpFormatError(f"torn: {len(data)} bytes of the {HEADER64_SIZE}-byte DUMP_HEADER64")


def _parse_runs(data: bytes, *, required: bool) -> tuple[tuple[int, int], ...]:
    """The ``PhysicalMemoryBlock`` run list; a header-only or small dump may leave it as the 'PAGE' pattern."""
    n, _pad, pages = struct.unpack_from("<IIQ", data, OFF_PHYSICAL_MEMORY_BLOCK)
    if n == int.from_bytes(SIGNATURE, "little") and not required:
        return ()
    if not 1 <= n <= MAX_RUNS:
        raise DumpFormatError(f"PhysicalMemoryBlock.NumberOfRuns = {n} must be 1 ... {MAX_RUNS} (what the 700-byte block holds)")
    runs = []
    end = 0
    for i in range(n):
        base, count = struct.unpack_from("<QQ", data, OFF_PHYSICAL_MEMORY_BLOCK + RUNS_OFFSET_IN_BLOCK + i * RUN_SIZE)
        if count == 0 or base < end or base + count > MAX_PFN:
            raise DumpFormatError(f"PhysicalMemoryBlock.Run[{i}] = ({base:#x}, {count:#x}) is empty, overlaps or is out of range")
        runs.append((base, count))
        end = base + count
    if pages != sum(c for _, c in runs):
        raise DumpFormatError(f"PhysicalMemoryBlock.NumberOfPages = {pages} but the runs hold {sum(c for _, c in runs)} pages")
    return tuple(runs)


def _bitmap_bits(data: bytes) -> int:
    sig, valid, _opt, _u1, _u2, _first, _present, nbits = SUMMARY_STRUCT.unpack_from(data, HEADER64_SIZE)
    if sig not in (SUMMARY_SIGNATURE, FULL_SIGNATURE) or valid != SUMMARY_VALID:
        raise DumpFormatError(
            f"bitmap dump without a summary header: {sig + valid!r} at offset {HEADER64_SIZE:#x}, not SDMP/FDMP DUMP"
        )
    if not 0 < nbits <= MAX_BITMAP_BITS:
        raise DumpFormatError(f"the bitmap's size = {nbits} bits must be 1 ... {MAX_BITMAP_BITS}")
    result: int = nbits
    return result


def _parse_bitmap(data: bytes) -> tuple[bytes, bytes, int, _SpanIndex]:
    if len(data) < HEADER64_SIZE + SUMMARY_HEADER_SIZE:
        raise DumpFormatError(f"torn: {len(data)} bytes hold no bitmap summary header (it ends at byte {HEADER64_SIZE + 0x38})")
    nbits = _bitmap_bits(data)
    sig, _valid, _opt, _u1, _u2, first_page, present, _nbits = SUMMARY_STRUCT.unpack_from(data, HEADER64_SIZE)
    nbytes = -(-nbits // 8)
    bitmap_end = HEADER64_SIZE + SUMMARY_HEADER_SIZE + nbytes
    if first_page % PAGE_SIZE or not bitmap_end <= first_page <= bitmap_end + MAX_BITMAP_SLACK:
        raise DumpFormatError(
            f"the first page's offset = {first_page:#x} must be page-aligned, at or after the bitmap's end ({bitmap_end:#x})"
            f" and at most {MAX_BITMAP_SLACK} bytes past it"
        )
    if len(data) < bitmap_end:
        raise DumpFormatError(f"truncated: the bitmap ends at byte {bitmap_end}, the data given has {len(data)}")
    bits = np.frombuffer(data, dtype=np.uint8, count=nbytes, offset=HEADER64_SIZE + SUMMARY_HEADER_SIZE).copy()
    if nbits % 8:
        bits[-1] &= (1 << (nbits % 8)) - 1
    pages = PageSet(bits, nbits)
    if pages.count != present:
        raise DumpFormatError(f"the summary header says {present} pages are present, the bitmap marks {pages.count}")
    return sig, bits.tobytes(), nbits, _SpanIndex(*pages.spans(), first_page)
