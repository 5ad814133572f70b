"""
Data mode in pipelined request mode: the disk image and the result are those of one write at a time.

Each case runs the same scenario twice in data mode, pipelined (the default) and with
``pipeline=False``, each onto an image of its own, and compares the whole result and every
byte each image holds (read back with ``os.lseek(SEEK_DATA / SEEK_HOLE)`` and ``os.pread``: a
write in one image and not in the other shows, wherever it landed).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
import structlog
from conftest import make_scenario

from stacksim import FilterCatalog, simulate
from stacksim.cli import result_json
from stacksim.datamode import DataMode
from stacksim.diskimage import DiskImage
from stacksim.filters import DumpFilter, FilterExtension
from stacksim.filters._host import FilterLayer
from stacksim.requests import DumpRequest, Mdl, NtStatus
from stacksim.xts import derive_key

pytestmark = pytest.mark.timeout(60)

RAM = {"ram": "16 MiB"}
DISK = 2 * 10**12
KEY = derive_key(0)


class Overlapper(DumpFilter):
    """Moves every even write 32 KiB back, over the end of the write before it: the order they land in shows."""

    service_name: ClassVar[str] = "overlap.sys"

    async def dump_write(self, extension: FilterExtension, request: DumpRequest) -> int:
        if request.number % 2 == 0 and request.offset >= 32 * 1024:
            request.offset -= 32 * 1024
        return NtStatus.SUCCESS


class Stamper(DumpFilter):
    """Copies the pages into one buffer of its own, reused for every write, and stamps the request number on them."""

    service_name: ClassVar[str] = "stamp.sys"

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self.mdl: Mdl | None = None

    async def dump_write(self, extension: FilterExtension, request: DumpRequest) -> int:
        data = request.mdl.data
        if data is not None:
            if self.mdl is None:
                self.mdl = Mdl(self.service_name, request.length, bytearray(request.length))
            assert self.mdl.data is not None
            self.mdl.data[:] = data
            self.mdl.data[100:108] = request.number.to_bytes(8, "little")
            request.mdl = self.mdl
        return NtStatus.SUCCESS


class LateClock(DumpFilter):
    """Reads the issue time of request #40, which pipelined mode does not know yet: that attempt is abandoned."""

    service_name: ClassVar[str] = "lateclock.sys"

    async def dump_write(self, extension: FilterExtension, request: DumpRequest) -> int:
        if request.number == 40:
            assert request.issued_ns >= 0
        return NtStatus.SUCCESS


def catalog() -> FilterCatalog:
    """The built-in filters and this module's."""
    c = FilterCatalog()
    for cls in (Overlapper, Stamper, LateClock):
        c.add(cls, "test")
    return c


def faultflt(**config: Any) -> dict[str, Any]:
    """``faultflt.sys`` with *config*, then ``dumpfve.sys``."""
    return {
        "registry": {"DumpFilters": ["faultflt.sys", "dumpfve.sys"], "CrashDumpEnabled": 1},
        "filters": {"faultflt.sys": config},
    }


def chain(*names: str, kind: int = 1) -> dict[str, Any]:
    """The filters *names* in that order, for a dump of CrashDumpEnabled *kind*."""
    return {"registry": {"DumpFilters": list(names), "CrashDumpEnabled": kind}}


CASES: dict[str, dict[str, Any]] = {
    "dumpfve": chain("dumpfve.sys"),
    "no-filter": chain(),
    "kernel-two-filters": chain("delayflt.sys", "dumpfve.sys", kind=2),
    "moves-overlapping-writes": chain("overlap.sys", "dumpfve.sys"),
    "reused-buffer-below-dumpfve": chain("dumpfve.sys", "stamp.sys"),
    "reused-buffer-above-dumpfve": chain("stamp.sys", "dumpfve.sys"),
    "one-error-status": faultflt(action="fail", at_request=5),
    "failed-driver-entry": faultflt(action="fail_driver_entry"),
    "abandoned-then-ok": chain("lateclock.sys", "dumpfve.sys"),
    "abandoned-by-a-violation": faultflt(action="write_caller_buffer", at_request=40),
}


@pytest.fixture
def image(tmp_path: Path) -> Iterator[Any]:
    """A factory of data-mode settings, each over a fresh image file in *tmp_path* (closed afterwards)."""
    files: list[Any] = []

    def make() -> tuple[DataMode, Path]:
        path = tmp_path / f"disk{len(files)}.img"
        f = path.open("w+b")
        files.append(f)
        return DataMode(DiskImage(f, DISK), KEY, "derived from the seed"), path

    yield make
    for f in files:
        f.close()


def held(path: Path) -> list[tuple[int, bytes]]:
    """Every data region of the image file (``SEEK_DATA`` to ``SEEK_HOLE``) and its bytes."""
    out = []
    with path.open("rb") as f:
        fd, at = f.fileno(), 0
        while True:
            try:
                start = os.lseek(fd, at, os.SEEK_DATA)
            except OSError:  # ENXIO: no data past *at*
                return out
            end = os.lseek(fd, start, os.SEEK_HOLE)
            out.append((start, os.pread(fd, end - start, start)))
            at = end


def both(image: Any, sections: dict[str, Any]) -> tuple[tuple[dict[str, Any], list[tuple[int, bytes]]], ...]:
    """(result, image regions) pipelined, then one write at a time."""
    cat = catalog()
    s = make_scenario(cat, memory=RAM, **sections)
    out = []
    for pipeline in (True, False):
        mode, path = image()
        result = simulate(s, cat, data=mode, pipeline=pipeline)
        out.append((json.loads(result_json(result)), held(path)))
    return tuple(out)


@pytest.mark.parametrize("sections", CASES.values(), ids=CASES.keys())
def test_pipelined_data_mode_gives_the_image_and_result_of_one_write_at_a_time(image: Any, sections: dict[str, Any]) -> None:
    """The whole result and every byte on the image agree between pipelined and one-at-a-time data mode."""
    (pipelined, pipelined_image), (strict, strict_image) = both(image, sections)
    assert pipelined == strict
    assert [(o, len(b)) for o, b in pipelined_image] == [(o, len(b)) for o, b in strict_image]
    assert pipelined_image == strict_image


def test_data_mode_through_dumpfve_runs_pipelined_and_stands(image: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """dumpfve.sys reuses one buffer: the host holds each pipelined write's bytes, and the attempt is not repeated."""
    holds: list[int] = []
    real = FilterLayer._hold

    def counted(self: FilterLayer, request: DumpRequest) -> None:
        holds.append(request.number)
        real(self, request)

    monkeypatch.setattr(FilterLayer, "_hold", counted)
    s = make_scenario(memory=RAM, **CASES["dumpfve"])
    with structlog.testing.capture_logs() as logs:
        result = simulate(s, FilterCatalog(), data=image()[0])
    assert (result.status, result.write_requests) == ("ok", 258)
    assert holds == list(range(3, 259))  # the body's 256 writes: the header and the bitmap are a write each, alone
    assert [e for e in logs if e["event"] == "run.pipeline_abandoned"] == []


@pytest.mark.parametrize(("case", "status"), [("abandoned-then-ok", "ok"), ("abandoned-by-a-violation", "filter_violation")])
def test_an_abandoned_attempt_leaves_nothing_on_the_image(
    image: Any, case: str, status: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """
    The pipelined attempt is abandoned once and the image emptied: it then holds the strict run's writes only.

    With a violation at request #40 the strict run writes requests 1-39 (2,437,120 bytes), though
    the abandoned attempt had handed later ones to the port already.
    """
    resets: list[DiskImage] = []
    real = DiskImage.reset

    def counted(self: DiskImage) -> None:
        resets.append(self)
        real(self)

    monkeypatch.setattr(DiskImage, "reset", counted)
    mode, path = image()
    s = make_scenario(catalog(), memory=RAM, **CASES[case])
    result = simulate(s, catalog(), data=mode)
    assert (result.status, len(resets)) == (status, 1)
    assert result.data is not None
    assert result.data["image_bytes_written"] == mode.image.bytes_written == sum(b - a for a, b in mode.image.extents)
    assert sum(len(b) for _, b in held(path)) == result.bytes_written == (result.dump_bytes if status == "ok" else 2_437_120)
