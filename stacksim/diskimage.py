"""
The disk image of a data-mode run: a sparse file in which byte *d* is disk byte *d*.

In data mode (``stacksim run SCENARIO --data --image disk.img``) the miniport writes every
write's bytes here at its disk offset -- the partition offset plus the partition-relative
``DiskByteOffset`` the filters saw -- when the device completes it. Nothing else is written: the
file is as long as the disk and every byte no write reached is a hole (it reads as zero and
takes no space on file systems with sparse files), so a 1 TB disk holding a 64 MiB dump takes
64 MiB. A write the device never completed (a timeout, a power loss before it) leaves nothing.

The file is an output like every other: it is written to a temporary file beside the target and
renamed over it only when the run ends (:func:`stacksim._io.atomic_binary_writer`).
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Iterator
from typing import BinaryIO, Final

__all__ = ["SCAN_CHUNK", "DiskImage", "pread_zero_filled"]

SCAN_CHUNK: Final = 4 * 2**20
"""Bytes read at a time when the image is read back (memory stays bounded by this)."""


class DiskImage:
    """
    A sparse disk image over an open, writable binary file, *size* bytes long.

    Args:
        stream: the (temporary) file; it is truncated to *size* at once, which allocates nothing.
        size: the disk's capacity in bytes.
    """

    def __init__(self, stream: BinaryIO, size: int) -> None:
        self.stream = stream
        self.size = size
        self.fd = stream.fileno()
        self.bytes_written = 0
        """Bytes the miniport wrote (a byte written twice counts twice)."""
        self.extents: list[list[int]] = []
        """``[start, end)`` of the disk bytes written, in write order, contiguous writes merged (may overlap)."""
        stream.truncate(size)

    def reset(self) -> None:
        """
        Empty the image again: every byte a hole (reading as zero), no extents, nothing written.

        What a pipelined attempt that is abandoned leaves behind (``stacksim.simulate``): its
        writes -- some of which the run one write at a time, repeated next, may never write -- are
        dropped by truncating the file to 0 bytes and back to the disk's size.
        """
        self.stream.truncate(0)
        self.stream.truncate(self.size)
        self.extents = []
        self.bytes_written = 0

    def write(self, disk_offset: int, data: bytes | bytearray | memoryview) -> None:
        """Put *data* (a contiguous buffer: the filter host has checked it) at *disk_offset* (inside the disk)."""
        view = memoryview(data).cast("B")  # bytes, whatever the view's item size
        size = len(view)
        assert disk_offset >= 0
        assert disk_offset + size <= self.size
        extents = self.extents
        if extents and extents[-1][1] == disk_offset:  # the common case: right after the previous write
            extents[-1][1] = disk_offset + size
        else:
            extents.append([disk_offset, disk_offset + size])
        while view:  # pwrite may write less than asked (a signal, a quota): write the rest
            n = os.pwrite(self.fd, view, disk_offset)
            view, disk_offset = view[n:], disk_offset + n
        self.bytes_written += size

    def lose_tail(self, n: int) -> int:
        """
        Undo the last *n* bytes written, newest first (a power failure with them still in a volatile cache).

        They read as zeros again, as they did before the run wrote them (ASSUMPTION: exact on a new
        image unless a byte was written twice; stacksim's images start empty). Returns the bytes undone.
        """
        done = 0
        zeros = bytes(min(n, SCAN_CHUNK))
        while done < n and self.extents:
            start, end = self.extents[-1]
            take = min(n - done, end - start)
            at = end - take
            while at < end:
                k = min(len(zeros), end - at)
                os.pwrite(self.fd, zeros[:k], at)
                at += k
            if take == end - start:
                self.extents.pop()
            else:
                self.extents[-1][1] = end - take
            done += take
        return done

    def read(self, disk_offset: int, length: int) -> bytes:
        """The *length* bytes at *disk_offset* (holes read as zero)."""
        out = bytearray(length)
        self.read_into(disk_offset, memoryview(out))
        return bytes(out)

    def read_into(self, disk_offset: int, view: memoryview) -> None:
        """Fill *view* with the bytes at *disk_offset* (holes, and the disk past the file's end, read as zero)."""
        pread_zero_filled(self.fd, view, disk_offset)

    def chunks(self, disk_offset: int, length: int, chunk: int = SCAN_CHUNK) -> Iterator[tuple[int, bytes]]:
        """``(disk offset, bytes)`` of the range in pieces of at most *chunk* bytes, in order."""
        end = disk_offset + length
        while disk_offset < end:
            n = min(chunk, end - disk_offset)
            yield disk_offset, self.read(disk_offset, n)
            disk_offset += n

    def views(self, disk_offset: int, length: int, chunk: int = SCAN_CHUNK) -> Iterator[tuple[int, memoryview]]:
        """
        ``(disk offset, read-only view)`` of the range in pieces of at most *chunk* bytes, in order, without copying.

        What the leak check scans: each view maps the file's pages (``mmap``: measured 0.05 s per
        GiB against 0.4 s for :meth:`chunks`) and is valid only until the next piece is asked for;
        it is released then, so nothing may keep it or an array over it. Where the file cannot be
        mapped, the pieces are read into one reused buffer instead; past the file's end (mapping
        there would fault) the disk reads as zeros.
        """
        end = disk_offset + length
        size = os.fstat(self.fd).st_size
        buffer: bytearray | None = None
        while disk_offset < end:
            n = min(chunk, end - disk_offset)
            if buffer is None and disk_offset + n <= size:
                try:
                    mapping = _Mapping(self.fd, disk_offset, n)
                except (OSError, ValueError):  # a file system that cannot map files: read from here on
                    buffer = bytearray(chunk)
                else:
                    with mapping:
                        yield disk_offset, mapping.view
                    disk_offset += n
                    continue
            if buffer is None:
                buffer = bytearray(chunk)
            view = memoryview(buffer)[:n]
            self.read_into(disk_offset, view)
            yield disk_offset, view.toreadonly()
            disk_offset += n


def pread_zero_filled(fd: int, view: memoryview, offset: int) -> None:
    """Fill *view* with file *fd*'s bytes from *offset*, as many calls as it takes; past the file's end, zeros."""
    done = 0
    while done < len(view):
        got = os.preadv(fd, [view[done:]], offset + done)
        if not got:
            view[done:] = bytes(len(view) - done)
            return
        done += got


class _Mapping:
    """A read-only ``mmap`` of the *n* bytes at *offset* of the file *fd*, with a view of exactly them; unmapped on exit."""

    def __init__(self, fd: int, offset: int, n: int) -> None:
        start = offset - offset % mmap.ALLOCATIONGRANULARITY  # a mapping starts on a page
        self.map = mmap.mmap(fd, offset + n - start, prot=mmap.PROT_READ, offset=start)
        self.view = memoryview(self.map)[offset - start :]

    def __enter__(self) -> _Mapping:
        return self

    def __exit__(self, *exc: object) -> None:
        self.view.release()
        self.map.close()
