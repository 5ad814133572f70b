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

import itertools
from collections.abc import Iterator
from dataclasses import dataclass

from stacksim.requests import SECTOR_SIZE

__all__ = ["DiskRun", "FileLayout"]


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
    """

    target: str
    partition_offset: int
    runs: tuple[DiskRun, ...]

    def __post_init__(self) -> None:
        for run in self.runs:
            if run.offset % SECTOR_SIZE or run.length % SECTOR_SIZE or run.length <= 0:
                raise ValueError(f"disk run {run} is not sector aligned or is empty")
        ordered = sorted(self.runs, key=lambda r: r.offset)
        for a, b in itertools.pairwise(ordered):
            if a.offset + a.length > b.offset:
                raise ValueError(f"disk runs {a} and {b} overlap")

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
        page = 4096
        per_run = -(-size // runs)
        per_run = -(-per_run // page) * page
        stride = ((partition_size - file_offset) // runs) // page * page
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
        return max(r.offset + r.length for r in self.runs)

    @property
    def size(self) -> int:
        """Bytes the file holds."""
        return sum(r.length for r in self.runs)

    def contains(self, offset: int, length: int) -> bool:
        """True when partition-relative [offset, offset+length) lies inside one run."""
        return any(r.offset <= offset and offset + length <= r.offset + r.length for r in self.runs)

    def map_runs(self, file_offset: int, length: int, max_chunk: int) -> Iterator[tuple[int, int, int]]:
        """
        Yield (partition offset, piece length, count) groups for file bytes [file_offset, +length).

        Each group is *count* consecutive pieces of the same length starting at the offset.
        Pieces are at most *max_chunk* bytes, never cross a run boundary, and come in file order.
        """
        if file_offset + length > self.size:
            raise ValueError(f"file range {file_offset}+{length} beyond the file's {self.size} bytes")
        base = 0
        for run in self.runs:
            end = base + run.length
            if file_offset < end and length > 0:
                span = min(end - file_offset, length)
                start = run.offset + (file_offset - base)
                full, rest = divmod(span, max_chunk)
                if full:
                    yield start, max_chunk, full
                if rest:
                    yield start + full * max_chunk, rest, 1
                file_offset += span
                length -= span
            base = end

    def map(self, file_offset: int, length: int, max_chunk: int) -> Iterator[tuple[int, int]]:
        """:meth:`map_runs`, one (partition offset, length) piece at a time."""
        for offset, size, count in self.map_runs(file_offset, length, max_chunk):
            for i in range(count):
                yield offset + i * size, size
