"""
Data mode: real bytes through the dump stack, onto a disk image, and the leak check after it.

``stacksim run SCENARIO --data --image disk.img`` runs the same simulation as timing mode (the
same simulated times: the byte path costs no simulated time of its own) with one difference:
every write's MDL carries the bytes of the dump file at the write's file position. They come
from :class:`DumpBytes` -- the 64-bit crash dump (:mod:`stacksim.dumpfmt`) of the simulated
physical memory (:mod:`stacksim.physmem`) -- pass through every filter (``dumpfve.sys``
encrypts them into its own buffer), and the miniport writes them into a sparse disk image
(:mod:`stacksim.diskimage`).

After the run, :func:`leak_check` reads back every extent the run wrote and counts the
page markers it finds in plaintext: with a working encryption filter there are none; without one
every dump page's marker is there.

Data mode writes crash dumps (``crash``, ``crash-during-io``) and hiberfiles (``hibernate``,
``hibernate-resume``: :class:`HiberfileBytes`, the format of :mod:`stacksim.hiberfile`, compressed
before the run starts so the plan knows the body's real size); ``io`` writes no dump. The normal
stack's writes of a ``crash-during-io`` run carry no bytes (its region of the image stays empty).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from stacksim.diskimage import DiskImage, pread_zero_filled

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from stacksim.dumpfmt import CrashDumpFile
    from stacksim.hiberfile import HiberHeader
    from stacksim.layout import FileLayout
    from stacksim.memory import DumpPlan
    from stacksim.scenario import Scenario

__all__ = [
    "GENERATE_DIRECT",
    "READ_AHEAD",
    "DataMode",
    "DumpBytes",
    "LeakReport",
    "data_mode_problem",
    "dump_bytes",
    "leak_check",
]

READ_AHEAD: Final = 4 * 2**20
"""Bytes of the dump file generated at a time (the page generator's fixed cost per call is ~100 µs)."""

GENERATE_DIRECT: Final = 256 * 2**10
"""A write of at least this many bytes is generated straight into crashdmp's buffer (:meth:`DumpBytes.read_into`)."""


@dataclass(frozen=True, slots=True)
class DataMode:
    """What a data-mode run takes from its caller: where the disk image goes, and the volume's key."""

    image: DiskImage
    key: bytes
    """The 64-byte AES-256-XTS key of the dump volume (``docs/reference/encryption.md``)."""
    key_source: str
    """Where the key came from, for the result: ``derived from the seed`` or ``key file NAME``."""


def data_mode_problem(s: Scenario) -> tuple[str, str] | None:
    """``(key, problem)`` when *s* cannot run in data mode; None when it can."""
    from stacksim.physmem import data_mode_problem as memory_problem

    if s.scenario.event == "io":
        allowed = (
            'data mode writes crash dumps and hiberfiles (event = "crash", "crash-during-io", "hibernate" or "hibernate-resume")'
        )
        return "[scenario] event", f'{allowed}; event = "io" writes no dump'
    return memory_problem(s.memory)


class HiberfileBytes:
    """
    A hiberfile's bytes by file position: the header page (written last) and the compressed body after it.

    The body is compressed once, when the machine is assembled (:func:`stacksim.hiberfile.write_body`,
    into a temporary file: memory stays bounded), so the plan has its real size and the
    compressor's time per write follows the real ratio. crashdmp then reads it write by write.
    """

    def __init__(self, s: Scenario) -> None:
        import tempfile

        from stacksim.hiberfile import build_header, write_body
        from stacksim.physmem import PageClass, PhysicalMemory

        h = s.hibernation
        self.memory = PhysicalMemory.from_scenario(s)
        self.classes = {PageClass[name.upper()] for name in h.kept_classes}
        self._body = tempfile.TemporaryFile(prefix="stacksim-hiberfile-")  # noqa: SIM115 - kept for the run; close() ends it
        self.summary = write_body(self.memory, self.memory.pfns_of(self.classes), self._body, compress=h.compression)
        self.header = build_header(
            self.summary,
            fast_startup=h.mode == "fast-startup",
            system_time_ns=s.scenario.event_at,
            hiberfile_type=h.hiberfile_type,
        )

    @property
    def body_pages(self) -> int:
        """Physical pages the image holds."""
        return self.summary.pages

    def read_into(self, file_offset: int, out: bytearray) -> None:
        """Put the ``len(out)`` bytes of the hiberfile at *file_offset* into *out*."""
        from stacksim.requests import PAGE_SIZE

        view = memoryview(out)
        if file_offset < PAGE_SIZE:  # (the header is one page and written as one piece)
            n = min(len(out), PAGE_SIZE - file_offset)
            view[:n] = self.header[file_offset : file_offset + n]
            view, file_offset = view[n:], PAGE_SIZE
        pread_zero_filled(self._body.fileno(), view, file_offset - PAGE_SIZE)  # (past the body: never, by the plan)

    def close(self) -> None:
        """Delete the temporary body."""
        self._body.close()


def hiberfile_header_on_disk(image: DiskImage, layout: FileLayout) -> HiberHeader | None:
    """The hiberfile header the image holds as it stands (no key): ``None`` when it is not one (encrypted, torn)."""
    from stacksim.hiberfile import HEADER_SIZE, HiberfileError, parse_header

    raw = b"".join(
        image.read(layout.partition_offset + offset + i * length, length)
        for offset, length, count in layout.map_runs(0, HEADER_SIZE, HEADER_SIZE)
        for i in range(count)
    )
    try:
        return parse_header(raw)
    except HiberfileError:
        return None


def dump_bytes(s: Scenario, plan: DumpPlan) -> DumpBytes:
    """The bytes of the crash dump *plan* describes, for scenario *s* (its memory, seed and bugcheck)."""
    from stacksim.dumpfmt import CrashDumpFile, PageSet, bitmap_bits, synthetic_header_fields
    from stacksim.physmem import PageClass, PhysicalMemory

    memory = PhysicalMemory.from_scenario(s)
    runs = memory.map.runs
    kind = plan.kind
    wanted = {"kernel": {PageClass.KERNEL}, "automatic": {PageClass.KERNEL}, "active": {PageClass.KERNEL, PageClass.USER}}
    present = None
    dtb = None
    if kind in wanted:
        present = PageSet.from_pfns(memory.pfns_of(wanted[kind]), bitmap_bits(runs))
        kernel = next(memory.pfns_of({PageClass.KERNEL}), None)
        dtb = int(kernel[0]) if kernel is not None else None  # the page tables are kernel memory: in every dump
    header = synthetic_header_fields(
        s.scenario.seed,
        runs,
        bugcheck_code=s.scenario.bugcheck_code,
        bugcheck_parameters=(s.scenario.bugcheck_parameters[0], *s.scenario.bugcheck_parameters[1:4]),  # type: ignore[arg-type]
        crash_time_ns=s.scenario.event_at,
        dtb_pfn=dtb,
    )
    secondary = next((p.bytes for p in plan.parts if p.name == "secondary"), 0)
    dump = CrashDumpFile(kind, runs, header, memory, present=present, secondary_bytes=secondary)  # type: ignore[arg-type]
    sizes = [(p.name, p.bytes) for p in plan.parts]
    assert [(p.name, p.bytes) for p in dump.plan().parts] == sizes, "the timing plan and the file's layout differ"
    return DumpBytes(dump)


class DumpBytes:
    """
    The dump file's bytes by file position, generated :data:`READ_AHEAD` bytes at a time.

    crashdmp writes the file in order, one ``MaxPagesPerWrite`` piece at a time; generating each
    piece alone would pay the page generator's fixed cost per write (about 100 µs per call here:
    1.7 ms per MiB at 64 KiB a call, 0.65-0.7 ms per MiB from 256 KiB a call on), so a window of
    the file is generated at once (straight into one buffer, reused:
    :meth:`CrashDumpFile.read_into`) and the writes are cut from it. A write of
    :data:`GENERATE_DIRECT` bytes or more is long enough to pay that cost alone: it is generated
    straight into crashdmp's buffer (:meth:`read_into`), which saves copying it there.
    """

    def __init__(self, dump: CrashDumpFile) -> None:
        self.dump = dump
        self._start = 0
        self._filled = 0
        self._window = bytearray()

    @property
    def body_pages(self) -> int:
        """Physical pages the dump holds."""
        return self.dump.page_count

    def read(self, file_offset: int, length: int) -> memoryview:
        """
        The *length* bytes of the dump file at *file_offset*: a read-only view, valid until the next call.

        (The window it points into is generated again when a read falls outside it.)
        """
        start = self._start
        if not (start <= file_offset and file_offset + length <= start + self._filled):
            n = max(length, min(READ_AHEAD, self.dump.size - file_offset))
            if len(self._window) < n:
                self._window = bytearray(n)  # a write longer than READ_AHEAD gets a window of its own size
            self._start, self._filled = file_offset, 0  # (nothing valid while it is being generated)
            self.dump.read_into(file_offset, memoryview(self._window)[:n])
            self._filled = n
            start = file_offset
        return memoryview(self._window)[file_offset - start : file_offset - start + length].toreadonly()

    def read_into(self, file_offset: int, out: bytearray) -> None:
        """
        Put the ``len(out)`` bytes of the dump file at *file_offset* into *out* (crashdmp's buffer).

        Generated straight into *out* when it is :data:`GENERATE_DIRECT` bytes or longer and
        outside the window; otherwise copied from the window (:meth:`read`).
        """
        length = len(out)
        start = self._start
        inside = start <= file_offset and file_offset + length <= start + self._filled
        if length >= GENERATE_DIRECT and not inside:
            self.dump.read_into(file_offset, out)
        else:  # (a memoryview on the left: `bytearray[:] = view` copies the view into a new bytearray first)
            memoryview(out)[:] = self.read(file_offset, length)


@dataclass(frozen=True, slots=True)
class LeakReport:
    """What the leak check found on the disk image."""

    dump_pages: int
    """Physical pages in the dump (its body)."""
    plaintext_pages_on_disk: int
    """Dump pages whose marker (magic + PFN) the image holds in plaintext."""
    scanned_bytes: int
    """Bytes of the image read: every extent the run wrote (a byte written twice is read twice)."""

    def as_dict(self) -> dict[str, int]:
        """The JSON object."""
        return {
            "dump_pages": self.dump_pages,
            "plaintext_pages_on_disk": self.plaintext_pages_on_disk,
            "scanned_bytes": self.scanned_bytes,
        }


def leak_check(image: DiskImage, dump_pages: int) -> LeakReport:
    """
    Count the distinct page markers in plaintext in every extent of *image* the run wrote.

    Every extent the miniport wrote -- inside the target file's runs or, where a filter moved a
    write, outside them -- is mapped back in bounded pieces (:data:`stacksim.diskimage.SCAN_CHUNK`,
    :meth:`~stacksim.diskimage.DiskImage.views`) and searched at every 512-byte boundary (a page
    on the disk starts on a sector).
    """
    import numpy as np

    from stacksim.physmem import find_markers

    found: list[npt.NDArray[np.uint64]] = []
    scanned = 0
    for start, end in image.extents:
        for _, data in image.views(start, end - start):
            found.append(find_markers(data))
            scanned += len(data)
    distinct = int(np.unique(np.concatenate(found)).size) if found else 0
    return LeakReport(dump_pages, distinct, scanned)
