"""
Hostile crash dump headers for ``stacksim.dumpfmt.parse_dump_header``: refused with a reason, never a crash or a hang.

``stacksim inspect`` and ``extract`` read whatever is on the disk where a dump should be: a header
torn by power loss, one overwritten with garbage, one with a count or offset set to anything.
The parser must answer each with a parsed dump or a :class:`DumpFormatError`, in bounded time
and memory, and every parsed dump must describe pages inside the bytes it was given or claimed.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from stacksim.dumpfmt import CrashDumpFile, DumpFormatError, PageSet, ParsedDump, parse_dump_header, synthetic_header_fields

pytestmark = pytest.mark.timeout(30)

RUNS = ((1, 0x9F), (0x100, 0x300))


class _Zeros:
    def read_pages(self, pfn: int, count: int) -> bytes:
        return bytes(count * 4096)


def _valid(kind: str) -> bytes:
    mask = np.zeros(0x400, dtype=bool)
    mask[0x100:0x180] = True
    present = PageSet.from_mask(mask) if kind == "kernel" else None
    dump = CrashDumpFile(kind, RUNS, synthetic_header_fields(1, RUNS), _Zeros(), present=present)  # type: ignore[arg-type]
    return dump.read(0, min(dump.size, 3 * 4096))


VALID = {kind: _valid(kind) for kind in ("complete", "kernel", "small")}


def _outcome(data: bytes) -> ParsedDump | DumpFormatError:
    try:
        return parse_dump_header(data)
    except DumpFormatError as e:
        return e


def _parses_or_refuses(data: bytes) -> None:
    outcome = _outcome(data)
    if isinstance(outcome, DumpFormatError):
        assert str(outcome)  # the refusal says why
    else:
        assert outcome.page_count == 0 or outcome.body_end <= outcome.required_dump_space
        assert len(outcome.runs) <= 42


@given(
    kind=st.sampled_from(sorted(VALID)),
    edits=st.lists(st.tuples(st.integers(0, 3 * 4096 - 1), st.binary(min_size=1, max_size=8)), max_size=8),
    cut=st.one_of(st.none(), st.integers(0, 3 * 4096)),
)
def test_mutated_headers_parse_or_are_refused(kind: str, edits: list[tuple[int, bytes]], cut: int | None) -> None:
    """Bytes overwritten anywhere in the first three pages, and the data cut anywhere, give a dump or a DumpFormatError."""
    data = bytearray(VALID[kind])
    for offset, value in edits:
        data[offset : offset + len(value)] = value
    _parses_or_refuses(bytes(data[:cut]))


@pytest.mark.parametrize(
    ("offset", "value"),
    [
        (0x88, 0xFFFF_FFFF),  # NumberOfRuns
        (0x98, 2**64 - 1),  # Run[0].BasePage
        (0xFA0, 2**63 - 1),  # RequiredDumpSpace
        (0x2020, 2**64 - 1),  # HeaderSize
        (0x2028, 2**64 - 1),  # pages present
        (0x2030, 2**64 - 1),  # bits in the bitmap
    ],
)
def test_every_field_at_its_maximum_is_refused(offset: int, value: int) -> None:
    """A count, offset or size set to its largest value is refused before anything of that size is allocated."""
    data = bytearray(VALID["kernel"])
    width = 4 if offset == 0x88 else 8
    data[offset : offset + width] = value.to_bytes(width, "little")
    with pytest.raises(DumpFormatError):
        parse_dump_header(bytes(data))
