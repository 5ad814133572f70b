"""
What a dump contains: its parts (header, body, secondary data) and their sizes per dump type.

Sources (fact sheet §5.1, Microsoft Learn "Varieties of kernel-mode dump files" [DOC S39-S41]
and volatility3's crash-dump layer [RE S42]):

* **Header**: 2 pages (8 KiB) on 64-bit Windows ('PAGE' + 'DU64'), written first [RE S42; DOC S14].
* **Complete** (``CrashDumpEnabled = 1``): all physical memory used by Windows, plus secondary
  data that bugcheck callbacks add (up to 256 MiB) [DOC S39-S41].
* **Active** (``CrashDumpEnabled = 1`` and ``FilterPages = 1``): complete minus free, zeroed,
  file-cache and guest-VM pages, "typically significantly smaller" [DOC S39]. The fraction kept is
  *assumption* ``memory.active_fraction`` (default 0.5).
* **Kernel** (2) and **Automatic** (7): kernel, HAL and driver memory, "typically around one-third
  the size of the physical memory" [DOC S39]: ``memory.kernel_fraction`` (default 1/3).
* **Small** (3): "exactly 64 KB" [DOC S39], header included.
* **Hibernation**: the hiberfile image, header page at offset 0 but written last (the commit
  marker; ASSUMPTION). Windows 10+ reserves 40 % of RAM for a full hiberfile
  [ANEC S44]; until compression is modelled, the image written is *assumption*
  ``hibernation.image_fraction`` of RAM (default 0.4, the full reservation).

Every part is rounded up to whole pages. The body and secondary sizes are model parameters, not
measured values: change them in ``[memory]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Final

from stacksim.requests import PAGE_SIZE

__all__ = ["CRASH_DUMP_TYPES", "HEADER_BYTES", "SMALL_DUMP_BYTES", "DumpPart", "DumpPlan", "plan_crash_dump", "plan_hibernation"]

HEADER_BYTES: Final = 2 * PAGE_SIZE
"""64-bit crash dump header: two pages [RE S42]."""

SMALL_DUMP_BYTES: Final = 64 * 1024
"""A small memory dump is exactly 64 KiB [DOC S39]."""

CRASH_DUMP_TYPES: Final = {0: "none", 1: "complete", 2: "kernel", 3: "small", 7: "automatic"}
"""``CrashDumpEnabled`` values and their names; ``FilterPages = 1`` turns complete into active."""


@dataclass(frozen=True, slots=True)
class DumpPart:
    """One contiguous part of the dump file, at *file_offset* (None: right after the previous part)."""

    name: str
    bytes: int
    file_offset: int | None = None


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
        return DumpPlan(self.kind, tuple(parts))


def _pages(n: Fraction | int) -> int:
    """Round a byte count up to whole pages."""
    pages = -(-Fraction(n) // PAGE_SIZE)
    return int(pages) * PAGE_SIZE


def plan_crash_dump(
    crash_dump_enabled: int,
    filter_pages: int,
    ram: int,
    *,
    kernel_fraction: Fraction,
    active_fraction: Fraction,
    secondary: int,
) -> DumpPlan:
    """The parts of a crash dump of the configured type (see the module docstring)."""
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
    parts = [header, DumpPart("body", body)]
    if secondary:
        parts.append(DumpPart("secondary", _pages(secondary)))
    return DumpPlan(kind, tuple(parts))


def plan_hibernation(ram: int, *, image_fraction: Fraction) -> DumpPlan:
    """
    The hiberfile image: the memory image after a one-page header that is written *last*.

    The header's valid signature acts as the commit marker, so a hibernation torn by power loss
    is never resumed (ASSUMPTION: the fact sheet found no source on the order, §5.2 [INF]).
    """
    return DumpPlan(
        "hibernation",
        (DumpPart("body", _pages(ram * image_fraction), PAGE_SIZE), DumpPart("header", PAGE_SIZE, 0)),
    )
