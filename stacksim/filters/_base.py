r"""
The crash dump filter interface, mirroring ``ntdddump.h`` with Python names.

Windows calls a dump filter's ``DriverEntry`` with re-purposed arguments: a
``FILTER_EXTENSION`` (what the system tells the filter) and a ``FILTER_INITIALIZATION_DATA``
(what the filter fills in: versions, flags, its context pointer and the callbacks it provides).
All callbacks are optional. Every callback receives the extension, whose ``DumpType`` says
whether this instance sits in the crash dump stack or the hibernation stack -- the same filter
list is loaded into both (Microsoft Learn, "Crash dump filter driver" pages; fact sheet §1-§2).

A filter here is a subclass of :class:`DumpFilter`. Its ``service_name`` is the name listed in
``CrashControl\DumpFilters``; its ``Config`` (a pydantic model) validates the scenario table
``[filters."<service name>"]``; it charges simulated CPU time with :func:`stacksim.spend`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Final

from pydantic import BaseModel, ConfigDict

from stacksim.requests import NtStatus

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from stacksim.requests import DumpRequest

__all__ = [
    "DUMP_FILTER_CRITICAL",
    "DUMP_FILTER_FLAG_SYSTEM_SUPPORT_READ",
    "DUMP_FILTER_MAJOR_VERSION",
    "DUMP_FILTER_MAJOR_VERSION_1",
    "DUMP_FILTER_MINOR_VERSION",
    "DiskGeometry",
    "DumpFilter",
    "DumpType",
    "FilterExtension",
    "FilterInitializationData",
    "NoConfig",
]

DUMP_FILTER_MAJOR_VERSION_1: Final = 1
DUMP_FILTER_MAJOR_VERSION: Final = 2
DUMP_FILTER_MINOR_VERSION: Final = 0
DUMP_FILTER_CRITICAL: Final = 0x00000001
"""Fail the dump stack's initialisation if this filter's DriverEntry does not succeed."""
DUMP_FILTER_FLAG_SYSTEM_SUPPORT_READ: Final = 0x00000001
"""Read support (Windows 8+). Same bit as DUMP_FILTER_CRITICAL in ntdddump.h: see §1.5."""


class DumpType(enum.IntEnum):
    """``FILTER_DUMP_TYPE``: which stack a filter instance is loaded in (the callback reason)."""

    UNDEFINED = 0
    CRASHDUMP = 1
    HIBERNATION = 2

    @property
    def label(self) -> str:
        """Lower-case name used in traces and results."""
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class DiskGeometry:
    """``DISK_GEOMETRY`` of the dump disk."""

    cylinders: int
    tracks_per_cylinder: int = 255
    sectors_per_track: int = 63
    bytes_per_sector: int = 512


@dataclass(slots=True)
class FilterExtension:
    """
    ``FILTER_EXTENSION``: what the system tells a filter, passed to every callback.

    ``dump_data`` is the context the filter stored in
    :attr:`FilterInitializationData.dump_data` during ``driver_entry``.
    """

    dump_type: DumpType
    device_object: str
    geometry: DiskGeometry
    disk_size: int
    partition_offset: int
    dump_data: Any = None
    flags: int = 0
    volume_key: bytes | None = None
    """Not in ntdddump's FILTER_EXTENSION: stands for the key material BitLocker's fvevol.sys hands its dump
    filter when the stack loads (INF, ``docs/reference/encryption.md``). Set in data mode only: the 64-byte
    AES-256-XTS key of the dump volume, for filters that encrypt (``dumpfve.sys``)."""


class NoConfig(BaseModel):
    """A filter that takes no parameters: its scenario table must be empty."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


@dataclass(slots=True)
class FilterInitializationData:
    """
    ``FILTER_INITIALIZATION_DATA``: what a filter fills in during ``driver_entry``.

    ``max_pages_per_write`` is set by the system before ``driver_entry`` runs (every real
    filter reads it as an input, §1.8). A callback left ``None`` is not called.
    """

    max_pages_per_write: int
    major_version: int = 0
    minor_version: int = 0
    flags: int = 0
    dump_data: Any = None
    dump_start: Callable[[FilterExtension], Awaitable[int | None]] | None = None
    dump_write: Callable[[FilterExtension, DumpRequest], Awaitable[int | None]] | None = None
    dump_read: Callable[[FilterExtension, DumpRequest], Awaitable[int | None]] | None = None
    dump_finish: Callable[[FilterExtension], Awaitable[int | None]] | None = None
    dump_unload: Callable[[FilterExtension], Awaitable[int | None]] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def supports_read(self) -> bool:
        """Read filtering needs major version 2, the read flag and a ``dump_read`` callback."""
        return (
            self.major_version == DUMP_FILTER_MAJOR_VERSION
            and bool(self.flags & DUMP_FILTER_FLAG_SYSTEM_SUPPORT_READ)
            and self.dump_read is not None
        )

    @property
    def critical(self) -> bool:
        """``DUMP_FILTER_CRITICAL`` is set."""
        return bool(self.flags & DUMP_FILTER_CRITICAL)


_CALLBACKS: Final = ("dump_start", "dump_write", "dump_read", "dump_finish", "dump_unload")


class DumpFilter:
    """
    Base class of dump filters: every callback is a documented no-op.

    Subclasses set :attr:`service_name`, optionally a pydantic :attr:`Config`, and override the
    callbacks they need. The default :meth:`driver_entry` declares version 2 with no flags and
    registers exactly the callbacks the subclass overrides -- the Windows rule "all callbacks
    are optional" falls out of that.

    Callbacks return an NTSTATUS (an :class:`~stacksim.NtStatus` or int; ``None`` means
    success) and charge their simulated cost with :func:`stacksim.spend`. They may also
    ``await`` trio primitives; virtual time spent awaiting counts as the filter's time.
    """

    service_name: ClassVar[str] = ""
    Config: ClassVar[type[BaseModel]] = NoConfig
    flags: ClassVar[int] = 0

    def __init__(self, config: BaseModel | None = None) -> None:
        self.config = config if config is not None else self.Config()

    def driver_entry(self, extension: FilterExtension, init: FilterInitializationData) -> int:
        """
        Fill *init* and return a status; runs when the stack is loaded, never in crash mode.

        Crash-stack filters run this at boot, hibernation-stack filters when hibernation
        starts. It is the only place a filter may allocate or query the storage stack.
        """
        init.major_version = DUMP_FILTER_MAJOR_VERSION
        init.minor_version = DUMP_FILTER_MINOR_VERSION
        init.flags = self.flags
        for name in _CALLBACKS:
            if getattr(type(self), name) is not getattr(DumpFilter, name):
                setattr(init, name, getattr(self, name))
        return NtStatus.SUCCESS

    # -- cost model: lets a run of identical writes travel as one message (batched mode) ----
    def write_cost(self, extension: FilterExtension, length: int) -> int | None:
        """
        The exact simulated cost, in ns, of ``dump_write`` for a request of *length* bytes.

        Return a number only if, for every request not listed by :meth:`special_requests`,
        ``dump_write`` would do nothing but take that time: no status other than success, no
        change another layer can observe, no await. Then stacksim may skip the callback and
        charge this cost for a whole run of identical requests at once (batched mode), with
        results identical to calling it per request. The default, ``None``, means "call me
        for every request" (request mode), which is always correct.
        """
        return None

    def changes_data(self) -> bool:
        """
        Whether ``dump_write`` changes the bytes it hands down (e.g. encrypts them); default False.

        What timing mode, which moves no bytes, knows of a filter's effect on the image: resuming
        from a hiberfile that such a filter wrote needs its ``dump_read`` to undo it. Data mode
        compares the restored bytes themselves.
        """
        return False

    def special_requests(self, extension: FilterExtension) -> frozenset[int]:
        """Request numbers for which ``dump_write`` must really be called (faults, probes)."""
        return frozenset()

    async def dump_start(self, extension: FilterExtension) -> int | None:
        """Called once when the dump starts, before the first write."""
        return NtStatus.SUCCESS

    async def dump_write(self, extension: FilterExtension, request: DumpRequest) -> int | None:
        """
        Called before every write.

        May read the pages, redirect ``request.mdl`` to the filter's
        own buffer and (against the documentation's advice) change ``request.offset``; must not
        write into the caller's buffer or change the length.
        """
        return NtStatus.SUCCESS

    async def dump_read(self, extension: FilterExtension, request: DumpRequest) -> int | None:
        """Called after every read on resume from hibernation (Windows 8+)."""
        return NtStatus.SUCCESS

    async def dump_finish(self, extension: FilterExtension) -> int | None:
        """Called after all dump data is written, before the final flush completes."""
        return NtStatus.SUCCESS

    async def dump_unload(self, extension: FilterExtension) -> int | None:
        """Called before the filter is unloaded (normal IRQL, outside crash mode)."""
        return NtStatus.SUCCESS
