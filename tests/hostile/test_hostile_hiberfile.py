"""
Hostile hiberfiles for ``stacksim.hiberfile``: refused with a reason, never a crash, a hang or a huge allocation.

Resume reads whatever is in ``hiberfil.sys``: a header torn by power loss, a body overwritten with
garbage, a count set to anything, a set that inflates far past its pages. :func:`parse_header` and
:func:`read_sets` must answer each with pages or a :class:`HiberfileError`, in bounded time and
memory, and every set they yield must be at most 16 pages whose bytes are exactly 4,096 per page.
"""

from __future__ import annotations

import functools
import io
import struct
import tracemalloc
import zlib

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from stacksim import FilterCatalog, validate_scenario
from stacksim.hiberfile import (
    ALGORITHM_DEFLATE,
    HEADER_SIZE,
    HiberfileError,
    HiberHeader,
    parse_header,
    read_sets,
    write_hiberfile,
)
from stacksim.physmem import PageClass, PhysicalMemory

pytestmark = pytest.mark.timeout(60)


@functools.cache
def valid(compress: bool = True) -> bytes:
    """A small hiberfile: the first 100 kernel and user pages of a 64 MiB machine (7 sets)."""
    data = {"scenario": {"name": "hostile", "seed": 3}, "memory": {"ram": "64 MiB"}}
    memory = PhysicalMemory.from_scenario(validate_scenario(data, "x", FilterCatalog()))
    pfns = np.concatenate(list(memory.pfns_of({PageClass.KERNEL, PageClass.USER})))[:100]
    out = io.BytesIO()
    write_hiberfile(memory, [pfns], out, fast_startup=False, system_time_ns=1, compress=compress)
    return out.getvalue()


def resign(data: bytes | bytearray) -> bytes:
    """*data* with its header's CheckSum recomputed."""
    out = bytearray(data)
    out[8:12] = bytes(4)
    out[8:12] = struct.pack("<I", zlib.crc32(out[:HEADER_SIZE]))
    return bytes(out)


def read_or_refuse(data: bytes) -> None:
    """Parse and read *data*: every set yielded is sound, or a HiberfileError with a reason ends it."""
    refusal: HiberfileError | None = None
    try:
        header = parse_header(data)
        for pfns, pages in read_sets(io.BytesIO(data), header):
            assert 1 <= pfns.size <= 16
            assert len(pages) == pfns.size * 4096
            assert int(pfns[-1]) <= header.highest_physical_page
    except HiberfileError as e:
        refusal = e
    assert refusal is None or str(refusal)


@given(
    compress=st.booleans(),
    edits=st.lists(st.tuples(st.integers(0, HEADER_SIZE - 1), st.binary(min_size=1, max_size=8)), max_size=8),
    sign=st.booleans(),
)
def test_mutated_headers_are_read_or_refused(compress: bool, edits: list[tuple[int, bytes]], sign: bool) -> None:
    """Bytes overwritten anywhere in the header (checksum fixed or not) give sound sets or a HiberfileError."""
    data = bytearray(valid(compress))
    for offset, value in edits:
        data[offset : offset + len(value)] = value[: HEADER_SIZE - offset]
    read_or_refuse(resign(data) if sign else bytes(data))


@given(
    compress=st.booleans(),
    edits=st.lists(st.tuples(st.integers(0, 2 * 65536), st.binary(min_size=1, max_size=8)), min_size=1, max_size=8),
    cut=st.one_of(st.none(), st.integers(HEADER_SIZE, 3 * 65536)),
)
def test_mutated_bodies_are_read_or_refused(compress: bool, edits: list[tuple[int, bytes]], cut: int | None) -> None:
    """Bytes overwritten anywhere in the first sets, and the file cut anywhere, give sound sets or a HiberfileError."""
    data = bytearray(valid(compress))
    for offset, value in edits:
        at = HEADER_SIZE + offset
        data[at : at + len(value)] = value
    read_or_refuse(bytes(data[:cut]))


@pytest.mark.parametrize(
    ("offset", "width"),
    [(0x230, 8), (0x398, 8), (0x418, 8), (0x420, 8), (0x428, 8), (0x40C, 4), (0x410, 4), (0x04, 4), (0x0C, 4), (0x18, 4)],
)
def test_every_field_at_its_maximum_is_refused(offset: int, width: int) -> None:
    """A count, size or type set to its largest value is refused by parse_header (the checksum made valid)."""
    data = bytearray(valid())
    data[offset : offset + width] = b"\xff" * width
    with pytest.raises(HiberfileError):
        parse_header(resign(data))


def _claiming(pages: int, sets: int, data_bytes: int) -> bytes:
    """The valid header with KernelPagesProcessed, sets and data bytes replaced, the body bytes to match, re-signed."""
    data = bytearray(valid()[:HEADER_SIZE])
    struct.pack_into("<Q", data, 0x398, 2**40 - 1)
    struct.pack_into("<Q", data, 0x230, pages)
    struct.pack_into("<QQQ", data, 0x418, sets, data_bytes, -(-data_bytes // 4096) * 4096)
    return resign(data)


def test_a_header_claiming_a_huge_body_over_a_small_file_ends_at_the_files_end() -> None:
    """2^40 pages in 2^36 sets of 16 over a 7-set body: the reader stops where the file does, holding little."""
    head = _claiming(2**40, 2**36, 2**36 * (4 + 8 + 65536))
    header = parse_header(head)
    data = head + valid()[HEADER_SIZE : HEADER_SIZE + parse_header(valid()).data_bytes]  # the sets, no padding
    tracemalloc.start()
    try:
        with pytest.raises(HiberfileError, match="truncated"):
            for _ in read_sets(io.BytesIO(data), header):
                pass
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * 2**20


def _one_set(word: int, descriptor: int, payload: bytes) -> tuple[HiberHeader, bytes]:
    """A hiberfile of one set (the given header word, descriptor and data) claiming 16 pages."""
    body = struct.pack("<IQ", word, descriptor) + payload
    head = _claiming(16, 1, len(body))
    return parse_header(head), head + body + bytes(-len(body) % 4096)


def test_a_deflate_bomb_is_stopped_at_its_pages_size() -> None:
    """A set of 16 pages whose data inflates to 64 MiB of zeros is refused, and never more than 64 KiB is inflated."""
    bomb = zlib.compress(bytes(64 * 2**20), 9, wbits=-15)
    header, data = _one_set(1 | len(bomb) << 8 | ALGORITHM_DEFLATE << 30, 0x100 << 4 | 15, bomb)
    tracemalloc.start()
    try:
        with pytest.raises(HiberfileError, match="decompresses to more than the 65,536 bytes its pages take"):
            list(read_sets(io.BytesIO(data), header))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * 2**20


def test_the_largest_data_size_is_refused_before_it_is_read() -> None:
    """A set header claiming 0x3FFFFF bytes of data for 16 pages is refused from its header alone."""
    header, data = _one_set(1 | 0x3FFFFF << 8 | ALGORITHM_DEFLATE << 30, 0x100 << 4 | 15, b"\x00")
    with pytest.raises(HiberfileError, match="its data size 4,194,303 bytes is more than its 16 pages take"):
        list(read_sets(io.BytesIO(data), header))


def test_a_source_that_returns_one_byte_at_a_time_reads_the_same() -> None:
    """A read callable that returns short reads gives the same sets as a file."""
    data = valid()

    def trickle(offset: int, length: int) -> bytes:
        return data[offset : offset + min(length, 1 + offset % 3)]

    header = parse_header(data)
    slow = [(p.tolist(), d) for p, d in read_sets(trickle, header)]
    assert slow == [(p.tolist(), d) for p, d in read_sets(io.BytesIO(data), header)]
