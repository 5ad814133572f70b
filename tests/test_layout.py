"""Target files as disk runs: writes are chunked and never cross a run."""

from __future__ import annotations

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
