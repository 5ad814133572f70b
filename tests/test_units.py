"""Quantities with units: parsing scenario strings and printing numbers for people."""

from __future__ import annotations

import pytest

from stacksim.units import (
    UnitError,
    bytes_time_ns,
    format_bytes,
    format_ns,
    parse_bandwidth,
    parse_per_byte_ps,
    parse_size,
    parse_time_ns,
    transfer_ns,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("4096", None),
        (4096, 4096),
        ("64 KiB", 65536),
        ("1.5 GiB", 1610612736),
        ("4 kB", 4000),
        ("16GiB", 16 * 2**30),
        ("1 TB", 10**12),
    ],
)
def test_parse_size(text: object, expected: int | None) -> None:
    """Sizes are integers in bytes or strings with a decimal or binary unit."""
    if expected is None:
        with pytest.raises(UnitError, match="write a number with a unit"):
            parse_size(text)
    else:
        assert parse_size(text) == expected


@pytest.mark.parametrize("bad", [-1, True, 1.5, "12 parsecs", "0.5 B", "lots"])
def test_parse_size_rejects(bad: object) -> None:
    """Negative, boolean, float, fractional-byte and unit-less values are refused with a reason."""
    with pytest.raises(UnitError):
        parse_size(bad)


def test_parse_times() -> None:
    """Durations become integer nanoseconds; µs and us both work."""
    assert [parse_time_ns(x) for x in ("20 us", "20 µs", "1.5 ms", "2 s", "250 ns", 7, "1 min")] == [
        20_000,
        20_000,
        1_500_000,
        2_000_000_000,
        250,
        7,
        60_000_000_000,
    ]


def test_parse_time_rejects_sub_nanosecond() -> None:
    """A duration must be a whole number of nanoseconds."""
    with pytest.raises(UnitError, match="whole number of nanoseconds"):
        parse_time_ns("0.5 ns")


def test_per_byte_costs_are_picoseconds() -> None:
    """Per-byte costs keep sub-nanosecond precision; an integer means ns per byte."""
    assert parse_per_byte_ps("0.3 ns") == 300
    assert parse_per_byte_ps(2) == 2000
    assert bytes_time_ns(65536, 300) == 19661  # 19660.8 rounded up


def test_bandwidth() -> None:
    """Bandwidths are sizes per second and must be positive."""
    assert parse_bandwidth("3 GB/s") == 3 * 10**9
    assert parse_bandwidth("500 MiB/s") == 500 * 2**20
    with pytest.raises(UnitError, match="greater than 0"):
        parse_bandwidth(0)
    with pytest.raises(UnitError, match="not a bandwidth"):
        parse_bandwidth("3 GB")


def test_transfer_time_rounds_up() -> None:
    """Moving bytes takes whole nanoseconds, rounded up."""
    assert transfer_ns(65536, 3 * 10**9) == 21846
    assert transfer_ns(3000, 3 * 10**9) == 1000


def test_formatting_has_units() -> None:
    """Every formatted number carries a unit."""
    assert format_ns(850) == "850 ns"
    assert format_ns(21845) == "21.8 µs"
    assert format_ns(3_210_000_000) == "3.21 s"
    assert format_bytes(512) == "512 B"
    assert format_bytes(65536) == "64 KiB"
    assert format_bytes(8 * 2**30 + 8192) == "8.00 GiB"
