"""
Requests that travel down the dump stack: MDL-like buffers, dump I/O requests, NTSTATUS.

On Windows, crashdmp hands each filter's ``Dump_Write`` a ``PLARGE_INTEGER DiskByteOffset``
(relative to the partition that holds the dump target) and a ``PMDL`` describing the pages to
write (ntdddump.h; fact sheet §1.6). A filter may *read* the caller's pages, may copy them into
its own buffer and repoint the MDL at that buffer, must not write into the caller's buffer and
must not change the size. :class:`Mdl` and :class:`DumpRequest` model exactly those handles, so
the host can tell a legal redirect from a violation.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

from stacksim._engine import SpeculationFailed, current_engine

__all__ = [
    "PAGE_SIZE",
    "SECTOR_SIZE",
    "DumpRequest",
    "Mdl",
    "NtStatus",
    "Op",
    "OpKind",
]

PAGE_SIZE: Final = 4096
"""x64 page size in bytes."""

SECTOR_SIZE: Final = 512
"""Dump I/O alignment in bytes: real filters treat anything not 512-aligned as fatal (§1.6)."""


class NtStatus(enum.IntEnum):
    """The NTSTATUS values stacksim uses (values as in ntstatus.h)."""

    SUCCESS = 0x00000000
    UNSUCCESSFUL = 0xC0000001
    NOT_SUPPORTED = 0xC00000BB
    INVALID_PARAMETER = 0xC000000D
    INSUFFICIENT_RESOURCES = 0xC000009A
    IO_DEVICE_ERROR = 0xC0000185
    FVE_NOT_ENCRYPTED = 0xC0210011
    ENCRYPTION_FAILED = 0xC000028A

    @property
    def ok(self) -> bool:
        """NT_SUCCESS(): true for success and informational codes."""
        return self.value < 0x80000000

    @classmethod
    def coerce(cls, value: object) -> NtStatus | int | None:
        """Turn a callback's return value into a status; ``None`` when it is not one."""
        if value is None:
            return cls.SUCCESS
        if isinstance(value, bool) or not isinstance(value, int):
            return None
        try:
            return cls(value)
        except ValueError:
            return value if 0 <= value <= 0xFFFFFFFF else None


_STATUS_NAMES: Final = {int(member): "STATUS_" + member.name for member in NtStatus}
"""``status_name`` of each NtStatus value (a dict: ``NtStatus(value).name`` costs an Enum call on every traced call)."""


def status_name(value: int) -> str:
    """``STATUS_SUCCESS``-style name of a status, or its hex value."""
    name = _STATUS_NAMES.get(value)
    return name if name is not None else f"0x{value:08X}"


def status_ok(value: int) -> bool:
    """NT_SUCCESS() for any integer status."""
    return 0 <= value < 0x80000000


class Mdl:
    """
    A memory descriptor list: who owns the pages and how many bytes they hold.

    ``data`` is ``None`` in timing runs (no bytes are simulated). :meth:`write` is how code
    writes into a buffer; ``writes`` counts the calls, so the host can see a filter writing
    into a buffer it was handed (a violation) as opposed to its own.
    """

    __slots__ = ("data", "length", "owner", "writes")

    def __init__(self, owner: str, length: int, data: bytearray | memoryview | None = None) -> None:
        self.owner = owner
        self.length = length
        self.data = data
        self.writes = 0

    def write(self, offset: int, payload: bytes | None = None, length: int | None = None) -> None:
        """Write *payload* (or *length* bytes, in timing runs) at *offset* inside the buffer."""
        n = len(payload) if payload is not None else (length if length is not None else 0)
        if offset < 0 or offset + n > self.length:
            raise ValueError(f"write of {n} bytes at {offset} outside a {self.length}-byte MDL")
        self.writes += 1
        if self.data is not None and payload is not None:
            self.data[offset : offset + n] = payload

    def __repr__(self) -> str:
        return f"Mdl(owner={self.owner!r}, length={self.length})"


@dataclass(slots=True)
class DumpRequest:
    """
    One dump write (or, on resume, read) as the filters and the dump port see it.

    Attributes:
        number: 1-based request number within the run.
        offset: ``DiskByteOffset``, relative to the partition holding the target file.
        mdl: the pages; ``len(request)`` is ``mdl.length``.
        part: which part of the dump this is (``header``, ``body``, ``secondary``).
        issued_ns: when the dump driver issued it.
    """

    number: int
    offset: int
    mdl: Mdl
    part: str
    _issued_ns: int = 0
    """The issue time, or -1 in pipelined request mode for "when the write before it completes"
    (the dump port resolves it); filters read :attr:`issued_ns`."""
    count: int = 1
    """Batched mode: this message stands for *count* identical requests numbered ``number``,
    ``number + 1``, … at consecutive offsets ``offset + i × length``."""
    upstream_ns: int = 0
    """Per-request time spent above the device so far: crashdmp's cost plus each filter's
    (each layer adds its own; the dump port adds its overhead)."""
    pieces: tuple[tuple[int, int, int], ...] = ()
    """Batched mode across disk runs: the run's (offset, length, count) pieces in file order, each
    inside one disk run (their counts add up to *count*); empty for one piece of ``length``-byte
    writes from ``offset``."""
    by_length: dict[int, list[int]] | None = None
    """With *pieces*: per write length, [how many writes, their upstream ns so far] -- what
    :attr:`upstream_ns` is for one piece (each layer adds its cost for that length)."""
    _done_ns: int = 0
    """When the device completed it (set by the dump port, read by crashdmp)."""
    attempt: int = 0
    """0 for the first try of this write, 1.. for crashdmp's retries after a device error."""

    @property
    def length(self) -> int:
        """Bytes to transfer."""
        return self.mdl.length

    @property
    def issued_ns(self) -> int:
        """
        When the dump driver issued this write.

        In pipelined request mode that is not known yet while the filters run (it is when the
        write before completes); reading it then ends the pipelined attempt, and the dump is
        simulated again one write at a time, where the value is exact.
        """
        if self._issued_ns < 0:
            reason = f"a filter read issued_ns of request #{self.number} while writes were in flight"
            engine = current_engine()
            if engine is not None:
                engine.spoil(reason)
            raise SpeculationFailed(reason)
        return self._issued_ns


class OpKind(enum.Enum):
    """What a message on the stack's channels asks each layer to do."""

    START = "dump_start"
    WRITE = "dump_write"
    READ = "dump_read"
    FINISH = "dump_finish"
    WINDOW = "window"
    """Pipelined request mode: the writes in flight, as one message (``Op.ops``); each layer serves them in order."""


@dataclass(slots=True)
class Op:
    """A message on a channel between layers: an operation, and its request for I/O."""

    kind: OpKind
    request: DumpRequest | None = None
    segments: tuple[tuple[int, int], ...] = ()
    """Batched mode: the device's (service ns, count) segments for the run, set by the port."""
    length_segments: tuple[tuple[int, int, int], ...] = ()
    """Batched mode across disk runs: (length, service ns, count), set by the port instead of *segments*."""
    error: str | None = None
    """Why the operation was stopped on its way down; ``None`` while all is well."""
    fault: str | None = None
    """Result status the stop leads to: ``filter_violation``, ``filter_crashed``, ``io_error``, ``io_timeout``."""
    retryable: bool = False
    """The device failed the write (crashdmp may re-issue it)."""
    ops: list[Op] | None = None
    """A ``WINDOW``: its writes, in issue order (one channel message for all, not one each)."""
