"""Quantities with units: parsing scenario strings and printing numbers for people."""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Any

import pytest

from stacksim.units import (
    UnitError,
    bytes_time_ns,
    describe,
    format_bytes,
    format_ns,
    parse_bandwidth,
    parse_fraction,
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


class TestUnitsAreExact:
    """Unit spellings are case-sensitive and exact: B is a byte, b a bit; nothing is guessed."""

    def test_a_bit_rate_is_bits(self) -> None:
        """ "6 Gb/s" is 6 gigabits per second: 750,000,000 bytes per second, never gigabytes."""
        assert parse_bandwidth("6 Gb/s") == 750_000_000
        assert parse_bandwidth("800 Mb/s") == 100_000_000
        assert parse_bandwidth("8 b/s") == 1

    def test_a_bit_rate_must_be_whole_bytes(self) -> None:
        """1 b/s is an eighth of a byte per second: refused."""
        with pytest.raises(UnitError, match="not a whole number of bytes per second"):
            parse_bandwidth("1 b/s")

    @pytest.mark.parametrize(("text", "hint"), [("8 Gb", "in bits"), ("8 b", "in bits"), ("8 kb", "write KiB or kB")])
    def test_a_size_in_bits_is_refused(self, text: str, hint: str) -> None:
        """A size is in bytes; a size written in bits is refused with the byte units to use."""
        with pytest.raises(UnitError, match=hint):
            parse_size(text)

    def test_kb_upper_case_is_ambiguous(self) -> None:
        """ "KB" could mean 1000 or 1024 bytes: refused, naming kB and KiB."""
        with pytest.raises(UnitError, match=r"'KB' is ambiguous \(1000 or 1024 bytes\): write kB \(1000 B\) or KiB"):
            parse_size("4 KB")

    @pytest.mark.parametrize(("parse", "text", "means"), [(parse_size, "8 gib", "GiB"), (parse_time_ns, "1 MS", "ms")])
    def test_units_are_case_sensitive(self, parse: Any, text: str, means: str) -> None:
        """A unit in the wrong case is refused, naming the unit it resembles."""
        with pytest.raises(UnitError, match=f"units are case-sensitive: .* is not a unit, {means} is"):
            parse(text)

    def test_large_prefixes(self) -> None:
        """Sizes go up to exa: PB, PiB, EB, EiB."""
        assert [parse_size(t) for t in ("1 PB", "1 PiB", "1 EB", "1 EiB")] == [10**15, 2**50, 10**18, 2**60]

    def test_no_float_rounding(self) -> None:
        """Parsing is exact: a size a 28-digit decimal would round to whole bytes is still refused."""
        with pytest.raises(UnitError, match="not a whole number of bytes"):
            parse_size("1073741824.0000000000000000001 B")


class TestBounds:
    """Every quantity is bounded, so nothing derived from it can pass a signed 64-bit integer."""

    @pytest.mark.parametrize(
        ("parse", "too_big", "limit"),
        [
            (parse_size, 2**60 + 1, "2^60 bytes"),
            (parse_size, "1025 PiB", "2^60 bytes"),
            (parse_time_ns, 2**60 + 1, "2^60 ns"),
            (parse_time_ns, "20000000 min", "2^60 ns"),
            (parse_bandwidth, 2**60 + 1, "2^60 bytes per second"),
            (parse_per_byte_ps, "1.5 s", "1 s per byte"),
        ],
    )
    def test_values_past_the_limit_are_refused(self, parse: Any, too_big: object, limit: str) -> None:
        """A quantity past its documented limit is refused, naming the limit."""
        with pytest.raises(UnitError, match=f"is more than the largest .* {re.escape(limit)}"):
            parse(too_big)

    def test_the_limits_themselves_are_accepted(self) -> None:
        """The limits are inclusive."""
        assert (parse_size(2**60), parse_time_ns(2**60), parse_bandwidth(2**60)) == (2**60, 2**60, 2**60)

    def test_a_huge_integer_is_described_not_printed(self) -> None:
        """A 5,000-digit integer is refused with its length (Python cannot even print it by default)."""
        with pytest.raises(UnitError, match=r"^an integer of about 5,001 digits is more than the largest size"):
            parse_size(10**5000)

    @pytest.mark.timeout(5)
    def test_a_5000_digit_string_is_refused_unread(self) -> None:
        """A quantity string longer than 40 characters is refused before any arithmetic, with its length."""
        with pytest.raises(UnitError, match=r"\(5,004 characters\) is not a size: longer than 40 characters"):
            parse_size("9" * 5000 + " GiB")

    @pytest.mark.parametrize("bad", [True, False])
    def test_booleans_are_not_numbers(self, bad: bool) -> None:
        """true and false are refused wherever a number is expected."""
        for parse in (parse_size, parse_time_ns, parse_bandwidth, parse_per_byte_ps, parse_fraction):
            with pytest.raises(UnitError):
                parse(bad)


class TestFractions:
    """Fractions are exact, and a number means the same whether written as a TOML number or a string."""

    @pytest.mark.parametrize("zero", [0, 0.0, "0", "0.0", " 0.00 ", "0/7", "0e5", -0.0])
    def test_every_spelling_of_zero_agrees(self, zero: object) -> None:
        """0, 0.0, "0" and "0.0" are the same share."""
        assert parse_fraction(zero, zero=True) == Fraction(0)

    @pytest.mark.parametrize("value", [0.25, "0.25", "1/4", "2.5e-1", ".25", "25e-2"])
    def test_every_spelling_of_a_quarter_agrees(self, value: object) -> None:
        """A float is read as the decimal it is written as; a string may be a decimal or a ratio."""
        assert parse_fraction(value) == Fraction(1, 4)

    def test_a_float_is_its_decimal(self) -> None:
        """0.1 is exactly 1/10, not the binary float nearest to it."""
        assert parse_fraction(0.1) == Fraction(1, 10)

    def test_zero_is_refused_where_a_fraction_must_be_positive(self) -> None:
        """kernel_fraction and file_fraction must be greater than 0: "0.0" is refused like 0.0."""
        for zero in (0, 0.0, "0", "0.0"):
            with pytest.raises(UnitError, match="must be greater than 0 and at most 1"):
                parse_fraction(zero)

    @pytest.mark.timeout(5)
    @pytest.mark.parametrize("text", ["1e-100000000", "1e999999999", "1" * 5000])
    def test_huge_exponents_and_lengths_are_refused_at_once(self, text: str) -> None:
        """A string that Fraction() would expand to 10^100000000 is refused without computing it."""
        with pytest.raises(UnitError, match="not a fraction"):
            parse_fraction(text)

    def test_a_float_finer_than_20_places_is_refused(self) -> None:
        """1e-100 as a TOML float is finer than stacksim keeps; 1e-100000000 as a TOML float is 0.0."""
        with pytest.raises(UnitError, match="at most 20 decimal places"):
            parse_fraction(1e-100)
        assert parse_fraction(float("1e-100000000"), zero=True) == 0

    @pytest.mark.parametrize("bad", [float("nan"), float("inf"), 1.5, 2, -1, "1/0", "a/b", "50 %", [0.5]])
    def test_other_values_are_refused(self, bad: object) -> None:
        """Not-a-number, out of range, division by zero and non-numbers are refused."""
        with pytest.raises(UnitError):
            parse_fraction(bad)


def test_long_durations_read_in_big_units() -> None:
    """Durations of a thousand seconds and more print in min, h, d or years."""
    assert [format_ns(x * 10**9) for x in (999, 1000, 65_536, 400_000, 2**63 // 10**9)] == [
        "999 s",
        "16.7 min",
        "18.2 h",
        "4.63 d",
        "292 years",
    ]


def test_describe_keeps_messages_short() -> None:
    """Values in messages are shown short: huge integers by their length, long strings cut, nested lists named."""
    assert describe(10**40) == "an integer of 41 digits"
    assert describe("x" * 100) == "'xxxxxxxxxxxxxxxxxxxxxxxx'… (100 characters)"
    assert describe([[1]]) == "a list of 1 items"
    assert describe([1, "2 s"]) == "[1, '2 s']"


@pytest.mark.parametrize(
    ("rate", "text"),
    [(3e9, "3.00 GB/s"), (150e6, "150 MB/s"), (2_500, "2.5 kB/s"), (999, "999 B/s"), (0.5, "0.5 B/s"), (5.59e-5, "< 0.01 B/s")],
)
def test_bandwidths_of_every_size_have_a_readable_unit(rate: float, text: str) -> None:
    """Rates below 1 kB/s are shown in B/s, never as 5.59e-08 kB/s."""
    from stacksim.units import format_bandwidth

    assert format_bandwidth(rate) == text


def test_a_rate_that_rounds_to_1000_of_its_unit_moves_up_and_big_rates_are_grouped() -> None:
    """999.96 MB/s is '1.00 GB/s', never '1e+03 MB/s'; 131,072 GB/s has its thousands separator."""
    from stacksim.units import format_bandwidth

    assert (format_bandwidth(999.96e6), format_bandwidth(999.7), format_bandwidth(131_072e9)) == (
        "1.00 GB/s",
        "1 kB/s",
        "131,072.00 GB/s",
    )
