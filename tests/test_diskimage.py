"""
stacksim.diskimage: the sparse disk image of a data-mode run, and reading it back without copies (views).

``views`` is what the leak check scans: it must give the bytes ``read`` gives, piece by piece, and
release every piece before the next.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stacksim import diskimage
from stacksim.diskimage import DiskImage

SIZE = 64 * 2**20


@pytest.fixture
def image(tmp_path: Path) -> Iterator[DiskImage]:
    """A 64 MiB image holding random bytes at 1 MiB + 1000 (a sector-unaligned start) and 8 MiB."""
    with (tmp_path / "disk.img").open("w+b") as f:
        img = DiskImage(f, SIZE)
        img.write(2**20 + 1000, os.urandom(300_000))
        img.write(8 * 2**20, os.urandom(5 * 2**20))
        yield img


def joined(pieces: Iterator[tuple[int, memoryview]]) -> tuple[bytes, list[int]]:
    """The pieces' bytes one after the other, and where each started."""
    data, starts = [], []
    for offset, view in pieces:
        starts.append(offset)
        data.append(bytes(view))
    return b"".join(data), starts


@pytest.mark.parametrize(("offset", "length"), [(0, SIZE), (2**20 + 1000, 300_000), (2**20 + 513, 9 * 2**20), (SIZE - 10, 10)])
def test_views_hold_what_read_reads(image: DiskImage, offset: int, length: int) -> None:
    """The pieces, joined, are the bytes read gives for the range (holes read as zero)."""
    data, _ = joined(image.views(offset, length))
    assert data == image.read(offset, length)


def test_pieces_start_at_the_offset_then_every_chunk(image: DiskImage) -> None:
    """Pieces start at the offset asked for and then every chunk bytes, so scans keep their alignment."""
    _, starts = joined(image.views(1000, 3 * 2**20, chunk=2**20))
    assert starts == [1000, 1000 + 2**20, 1000 + 2 * 2**20]


def test_each_view_is_read_only_and_released_before_the_next(image: DiskImage) -> None:
    """A view cannot be written through, and is unusable once the next piece is asked for."""
    pieces = image.views(0, 2 * 2**20, chunk=2**20)
    _, first = next(pieces)
    assert first.readonly
    next(pieces)
    with pytest.raises(ValueError, match="released"):
        bytes(first)


def test_past_the_end_of_the_file_the_disk_reads_zero(tmp_path: Path) -> None:
    """A file cut short (never by stacksim) is not mapped past its end: the rest reads as zeros."""
    with (tmp_path / "disk.img").open("w+b") as f:
        img = DiskImage(f, SIZE)
        img.write(0, b"\x01" * 4096)
        os.ftruncate(img.fd, 4096)
        data, _ = joined(img.views(0, 3 * 4096, chunk=4096))
    assert data == b"\x01" * 4096 + bytes(2 * 4096)


def test_a_file_that_cannot_be_mapped_is_read(image: DiskImage, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where mmap fails, the pieces are read into a buffer instead: the same bytes."""

    def refuse(*args: Any, **kwargs: Any) -> mmap.mmap:
        raise OSError(19, "No such device")

    expected = image.read(2**20, 9 * 2**20)
    monkeypatch.setattr(diskimage.mmap, "mmap", refuse)
    data, _ = joined(image.views(2**20, 9 * 2**20))
    assert data == expected


def test_reset_empties_the_image(image: DiskImage) -> None:
    """After reset every byte reads as zero, no extent is left and nothing counts as written; the size stays."""
    image.reset()
    assert (image.extents, image.bytes_written) == ([], 0)
    assert os.fstat(image.fd).st_size == SIZE
    assert image.read(2**20, 9 * 2**20) == bytes(9 * 2**20)
