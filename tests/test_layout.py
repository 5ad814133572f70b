"""Target files as disk runs: writes are chunked and never cross a run."""

from __future__ import annotations

import pytest

from stacksim.layout import DiskRun, FileLayout


def test_contiguous_file_chunks_to_max() -> None:
    """A contiguous file maps to consecutive pieces of at most the chunk size."""
    f = FileLayout.contiguous("pagefile", 2**20, 4096, 200 * 1024)
    assert list(f.map(0, 200 * 1024, 64 * 1024)) == [(4096, 65536), (69632, 65536), (135168, 65536), (200704, 8192)]


def test_pieces_never_cross_a_run() -> None:
    """A write that would cross a run boundary is split there."""
    f = FileLayout("pagefile", 0, (DiskRun(0, 12288), DiskRun(1 << 20, 65536)))
    assert list(f.map(8192, 16384, 65536)) == [(8192, 4096), (1 << 20, 12288)]
    assert f.contains(8192, 4096)
    assert not f.contains(8192, 8192)


def shuffled_runs(n: int) -> FileLayout:
    """A file of *n* 4 KiB runs whose file order is not disk order: run i sits at (i * 7919 mod n) * 8 KiB."""
    return FileLayout("pagefile", 0, tuple(DiskRun((i * 7919 % n) * 8192, 4096) for i in range(n)))


def test_contains_agrees_with_a_scan_of_every_run() -> None:
    """The bisecting lookup answers like the scan of every run it replaced, inside, across and between runs."""
    f = shuffled_runs(300)
    for offset in range(0, 300 * 8192, 1536):
        for length in (512, 4096, 8192):
            scan = any(r.offset <= offset and offset + length <= r.offset + r.length for r in f.runs)
            assert f.contains(offset, length) == scan, (offset, length)


def test_file_position_of_a_partition_offset() -> None:
    """A partition offset maps to the file offset of its byte; between runs there is none."""
    f = FileLayout("pagefile", 0, (DiskRun(1 << 20, 8192), DiskRun(0, 4096)))
    assert [f.file_position(o) for o in (1 << 20, (1 << 20) + 8191, 0, 4095, 4096, 2 << 20)] == [0, 8191, 8192, 12287, None, None]


def test_map_runs_from_the_middle_of_a_fragmented_file() -> None:
    """Mapping starts at the run that holds the file offset, wherever it lies on the disk."""
    f = shuffled_runs(1000)
    # file bytes 500 * 4096 + 1024 onwards lie in run 500 (at (500 * 7919 % 1000) * 8192 = 500 * 8192), then run 501
    assert list(f.map_runs(500 * 4096 + 1024, 4096, 65536)) == [
        (500 * 8192 + 1024, 3072, 1),
        ((501 * 7919 % 1000) * 8192, 1024, 1),
    ]


def test_overlapping_runs_are_refused() -> None:
    """A layout whose runs share bytes cannot be built."""
    with pytest.raises(ValueError, match="overlap"):
        FileLayout("pagefile", 0, (DiskRun(0, 8192), DiskRun(4096, 4096)))
