"""
Where the dump's bytes land: disk → partition → target file → disk runs.

Crash-time code has no file system. At boot the system maps the page file (or dedicated dump
file, or hiberfile) to a list of disk runs with ``FSCTL_QUERY_RETRIEVAL_POINTERS`` -- pairs of
(length, starting offset) -- and crash-time writes index into that list [DOC S35; WI S20;
fact sheet §3.7]. Filters see ``DiskByteOffset`` *relative to the partition* that holds the
file [DOC S7]; the dump port adds the partition's starting offset to address the disk.

A write never crosses a run boundary: the dump driver splits it (§ "Writes never cross a run"
in ``docs/explanation/dump-stack.md``).
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Final

from stacksim.requests import SECTOR_SIZE

__all__ = ["MAX_RUNS", "DiskRun", "FileLayout", "LayoutError", "build_layout"]

MAX_RUNS = 1_000_000
"""Most disk runs a target file may have (``[layout] runs``): a guard against runaway input (ASSUMPTION)."""

TARGET_NAMES: Final = {"pagefile": "page file", "dedicated": "dedicated dump file", "hiberfile": "hiberfile"}
"""How prose names each ``target`` (``pagefile`` is the key the files and results use)."""

PAGE = 4096

REPORTED = 3
"""Problems of one kind (overlaps, runs past the partition) reported one by one; the rest are counted."""


@dataclass(frozen=True, slots=True)
class DiskRun:
    """One retrieval-pointer run: *length* bytes at partition-relative *offset*."""

    offset: int
    length: int


@dataclass(frozen=True, slots=True)
class FileLayout:
    """
    A target file as the dump driver knows it.

    Attributes:
        target: ``pagefile``, ``dedicated`` or ``hiberfile``.
        partition_offset: the partition's first byte on the disk.
        runs: the file's runs in file order, partition-relative, sector aligned.

    Lookups are logarithmic in the number of runs (bisection on the runs sorted by partition
    offset, and on their starts in the file), so a file in 100,000 runs costs no more per write
    than a contiguous one.
    """

    target: str
    partition_offset: int
    runs: tuple[DiskRun, ...]
    _by_offset: tuple[int, ...] = field(init=False, repr=False, compare=False)
    """Indexes of ``runs`` sorted by partition offset."""
    _starts: tuple[int, ...] = field(init=False, repr=False, compare=False)
    """Partition offsets of the runs in ``_by_offset`` order."""
    _file_starts: tuple[int, ...] = field(init=False, repr=False, compare=False)
    """File offset of each run's first byte, in file order."""
    _size: int = field(init=False, repr=False, compare=False)
    _end: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for run in self.runs:
            if run.offset < 0 or run.offset % SECTOR_SIZE or run.length % SECTOR_SIZE or run.length <= 0:
                raise ValueError(f"disk run {run} is not sector aligned or is empty")
        order = sorted(range(len(self.runs)), key=lambda i: self.runs[i].offset)
        starts = tuple(self.runs[i].offset for i in order)
        for a, b in itertools.pairwise(order):
            if self.runs[a].offset + self.runs[a].length > self.runs[b].offset:
                raise ValueError(f"disk runs {self.runs[a]} and {self.runs[b]} overlap")
        file_starts, pos = [], 0
        for run in self.runs:
            file_starts.append(pos)
            pos += run.length
        object.__setattr__(self, "_by_offset", tuple(order))
        object.__setattr__(self, "_starts", starts)
        object.__setattr__(self, "_file_starts", tuple(file_starts))
        object.__setattr__(self, "_size", pos)
        object.__setattr__(self, "_end", max((r.offset + r.length for r in self.runs), default=0))

    @classmethod
    def contiguous(cls, target: str, partition_offset: int, file_offset: int, size: int) -> FileLayout:
        """A file that occupies one run of *size* bytes at *file_offset* in the partition."""
        return cls(target, partition_offset, (DiskRun(file_offset, size),))

    @classmethod
    def spread(
        cls, target: str, partition_offset: int, partition_size: int, file_offset: int, size: int, runs: int
    ) -> FileLayout:
        """
        A file of *size* bytes in *runs* equal runs, spread from *file_offset* to the partition's end.

        This is how a fragmented page file looks. Run lengths are whole 4 KiB pages; the last run
        takes the remainder.

        Raises:
            ValueError: the runs do not fit in the partition.
        """
        per_run, stride = _spread_geometry(partition_size, file_offset, size, runs)
        if runs > 1 and stride < per_run:
            raise ValueError(
                f"{runs} runs of {per_run} bytes do not fit between file_offset {file_offset} and the end of "
                f"the {partition_size}-byte partition"
            )
        out, left = [], size
        for i in range(runs):
            length = min(per_run, left)
            if length <= 0:
                break
            out.append(DiskRun(file_offset + i * stride, length))
            left -= length
        layout = cls(target, partition_offset, tuple(out))
        if out[-1].offset + out[-1].length > partition_size:
            raise ValueError(f"the {target} runs past the end of the {partition_size}-byte partition")
        return layout

    @property
    def end(self) -> int:
        """Partition-relative end of the last byte of the file."""
        return self._end

    @property
    def size(self) -> int:
        """Bytes the file holds."""
        return self._size

    def run_at(self, offset: int) -> int | None:
        """Index (in file order) of the run that holds partition offset *offset*, or None."""
        k = bisect.bisect_right(self._starts, offset) - 1
        if k < 0:
            return None
        i = self._by_offset[k]
        run = self.runs[i]
        return i if offset < run.offset + run.length else None

    def file_position(self, offset: int) -> int | None:
        """The file offset of partition offset *offset*, or None when no run holds it."""
        i = self.run_at(offset)
        return None if i is None else self._file_starts[i] + offset - self.runs[i].offset

    def contains(self, offset: int, length: int) -> bool:
        """True when partition-relative [offset, offset+length) lies inside one run."""
        k = bisect.bisect_right(self._starts, offset) - 1
        if k < 0:
            return False
        run = self.runs[self._by_offset[k]]
        return offset + length <= run.offset + run.length

    def map_runs(self, file_offset: int, length: int, max_chunk: int) -> Iterator[tuple[int, int, int]]:
        """
        Yield (partition offset, piece length, count) groups for file bytes [file_offset, +length).

        Each group is *count* consecutive pieces of the same length starting at the offset.
        Pieces are at most *max_chunk* bytes, never cross a run boundary, and come in file order.
        """
        if file_offset + length > self.size:
            raise ValueError(f"file range {file_offset}+{length} beyond the file's {self.size} bytes")
        first = max(0, bisect.bisect_right(self._file_starts, file_offset) - 1)
        for i in range(first, len(self.runs)):
            if length <= 0:
                return
            run, base = self.runs[i], self._file_starts[i]
            span = min(base + run.length - file_offset, length)
            start = run.offset + (file_offset - base)
            full, rest = divmod(span, max_chunk)
            if full:
                yield start, max_chunk, full
            if rest:
                yield start + full * max_chunk, rest, 1
            file_offset += span
            length -= span

    def map(self, file_offset: int, length: int, max_chunk: int) -> Iterator[tuple[int, int]]:
        """:meth:`map_runs`, one (partition offset, length) piece at a time."""
        for offset, size, count in self.map_runs(file_offset, length, max_chunk):
            for i in range(count):
                yield offset + i * size, size

    def pieces(self, file_offset: int, length: int, max_chunk: int) -> int:
        """How many writes file bytes [file_offset, +length) take (:meth:`map_runs` counted)."""
        return sum(count for _, _, count in self.map_runs(file_offset, length, max_chunk))


def _spread_geometry(partition_size: int, file_offset: int, size: int, runs: int) -> tuple[int, int]:
    """(bytes per run, distance between run starts) of :meth:`FileLayout.spread`."""
    per_run = -(-size // runs)
    per_run = -(-per_run // PAGE) * PAGE
    stride = ((partition_size - file_offset) // runs) // PAGE * PAGE
    return per_run, stride


class LayoutError(ValueError):
    """A ``[layout]`` that does not fit: every problem, as (scenario key, message) pairs."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{k}: {m}" for k, m in problems))


def _counted(problems: list[tuple[str, str]], more: int, what: str) -> list[tuple[str, str]]:
    if more > 0:
        problems.append(("[layout] runs", f"and {more:,} more {what}"))
    return problems


def build_layout(
    target: str,
    *,
    disk_size: int,
    partition_offset: int,
    partition_size: int | None,
    file_offset: int,
    size: int,
    runs: int | Sequence[tuple[int, int]],
    size_key: str = "[layout] size",
    size_text: str = "",
) -> FileLayout:
    """
    The target file's layout from the ``[layout]`` values, checked against the partition and the disk.

    *runs* is a number of equal runs (:meth:`FileLayout.spread` of *size* bytes) or the explicit
    (offset, length) list. *size_key* and *size_text* say where *size* came from, for the
    message when the file does not fit (``[memory] ram`` when the file is sized to the dump).

    Raises:
        LayoutError: every problem found, each under the scenario key to blame.
    """
    if partition_offset >= disk_size:
        where = f"the partition starts at byte {partition_offset:,}, past the {disk_size:,}-byte disk ([disk] size)"
        raise LayoutError([("[layout] partition_offset", where)])
    if partition_size is None:
        partition_size = disk_size - partition_offset
    elif partition_offset + partition_size > disk_size:
        raise LayoutError(
            [
                (
                    "[layout] partition_size",
                    f"partition_offset + partition_size = {partition_offset + partition_size:,} bytes, past the end of "
                    f"the {disk_size:,}-byte disk ([disk] size)",
                )
            ]
        )
    if isinstance(runs, int):
        if file_offset >= partition_size:
            raise LayoutError(
                [("[layout] file_offset", f"{file_offset:,} is at or past the end of the {partition_size:,}-byte partition")]
            )
        per_run, stride = _spread_geometry(partition_size, file_offset, size, runs)
        if runs > 1 and stride < per_run:
            raise LayoutError(
                [
                    (
                        "[layout] runs",
                        f"{runs:,} runs of {per_run:,} bytes ({size:,} bytes{size_text}) do not fit between file_offset "
                        f"{file_offset:,} and the end of the {partition_size:,}-byte partition",
                    )
                ]
            )
        last = -(-size // per_run) - 1
        end = file_offset + last * stride + (size - last * per_run)
        if end > partition_size:
            raise LayoutError(
                [
                    (
                        size_key,
                        f"the {target} ({size:,} bytes{size_text}) from file_offset {file_offset:,} would end at partition "
                        f"offset {end:,}, past the end of the {partition_size:,}-byte partition",
                    )
                ]
            )
        return FileLayout.spread(target, partition_offset, partition_size, file_offset, size, runs)
    problems: list[tuple[str, str]] = []
    past = 0
    for i, (offset, length) in enumerate(runs):
        if offset + length > partition_size:
            past += 1
            if past <= REPORTED:
                problems.append(
                    (
                        f"[layout] runs[{i}]",
                        f"{{offset = {offset:,}, length = {length:,}}} ends at partition offset {offset + length:,}, "
                        f"past the end of the {partition_size:,}-byte partition",
                    )
                )
    _counted(problems, past - REPORTED, "runs past the end of the partition")
    order = sorted(range(len(runs)), key=lambda i: runs[i][0])
    overlaps, reach = 0, -1  # reach: the run in `order` so far that ends last
    for i in order:
        if reach >= 0 and runs[i][0] < runs[reach][0] + runs[reach][1]:
            overlaps += 1
            if overlaps <= REPORTED:
                a, b = sorted((reach, i))
                (oa, la), (ob, lb) = runs[a], runs[b]
                problems.append(
                    (
                        f"[layout] runs[{b}]",
                        f"overlaps runs[{a}]: partition bytes {ob:,}..{ob + lb:,} and {oa:,}..{oa + la:,} share "
                        f"{min(oa + la, ob + lb) - max(oa, ob):,} bytes",
                    )
                )
        if reach < 0 or runs[i][0] + runs[i][1] > runs[reach][0] + runs[reach][1]:
            reach = i
    _counted(problems, overlaps - REPORTED, "overlapping runs")
    if problems:
        raise LayoutError(problems)
    return FileLayout(target, partition_offset, tuple(DiskRun(o, n) for o, n in runs))
