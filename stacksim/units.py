"""
Quantities with units: sizes in bytes, times in nanoseconds, rates in bytes per second.

Scenario files accept either a bare integer in the canonical unit (bytes, nanoseconds,
bytes per second) or a string such as ``"16 GiB"``, ``"20 us"`` or ``"3 GB/s"``.
Decimal prefixes (kB, MB, GB, TB, PB, EB) are powers of 1000, binary prefixes (KiB, MiB, GiB,
TiB, PiB, EiB) powers of 1024, exactly as IEC 80000-13 defines them. Units are **case-sensitive**: ``B`` is
a byte and ``b`` a bit, so ``"6 Gb/s"`` is 6 gigabits per second (750,000,000 B/s) and a size
in bits (``"8 Gb"``) is refused. Parsing is exact (integers and fractions, never a float), so
``"1.5 GiB"`` is exactly 1610612736 bytes.

Every quantity is bounded so that everything the simulation derives from it fits in a signed
64-bit integer: sizes at most :data:`MAX_BYTES`, durations at most :data:`MAX_NS`, rates at most
:data:`MAX_RATE`; a quantity string is at most :data:`MAX_QUANTITY_CHARS` characters, so a
5,000-digit string is refused before any arithmetic. Fractions (:func:`parse_fraction`) are the
only values that may be TOML floats.

Per-byte costs (``per_byte = "0.3 ns"``) need sub-nanosecond resolution, so they are kept as
integer **picoseconds per byte**; :func:`bytes_time_ns` turns a byte count into whole
nanoseconds by rounding *up* (a transfer that takes 0.2 ns still occupies the layer for 1 ns).

The ``format_*`` functions render numbers for people: every number stacksim prints has a unit.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal
from fractions import Fraction
from typing import Final

__all__ = [
    "INT64_MAX",
    "MAX_BYTES",
    "MAX_NS",
    "MAX_PS_PER_BYTE",
    "MAX_QUANTITY_CHARS",
    "MAX_RATE",
    "UnitError",
    "bytes_time_ns",
    "describe",
    "format_bandwidth",
    "format_bytes",
    "format_ns",
    "format_ns_pair",
    "parse_bandwidth",
    "parse_fraction",
    "parse_per_byte_ps",
    "parse_size",
    "parse_time_ns",
    "transfer_ns",
]

INT64_MAX: Final = 2**63 - 1
"""The largest number a result or trace holds (ns, bytes): a signed 64-bit integer."""

MAX_BYTES: Final = 2**60
"""Largest size a scenario may give: 2^60 bytes (1 EiB)."""

MAX_NS: Final = 2**60
"""Longest duration a scenario may give: 2^60 ns (about 36.5 years)."""

MAX_RATE: Final = 2**60
"""Largest rate a scenario may give: 2^60 bytes per second."""

MAX_PS_PER_BYTE: Final = 10**12
"""Largest per-byte cost: 1 s per byte (10^12 ps)."""

MAX_QUANTITY_CHARS: Final = 40
"""Longest quantity string (``"1.5 GiB"``) or fraction string accepted; longer ones are refused unread."""

MAX_FRACTION_PLACES: Final = 20
"""Finest fraction: a multiple of 10^-20 (a decimal with at most 20 places), or a ratio of integers below 10^20."""

SIZE_UNITS: Final[dict[str, int]] = {
    "B": 1,
    "kB": 10**3,
    "MB": 10**6,
    "GB": 10**9,
    "TB": 10**12,
    "PB": 10**15,
    "EB": 10**18,
    "KiB": 2**10,
    "MiB": 2**20,
    "GiB": 2**30,
    "TiB": 2**40,
    "PiB": 2**50,
    "EiB": 2**60,
}
"""Size units (case-sensitive): decimal kB…EB, binary KiB…EiB."""

BIT_RATE_UNITS: Final[dict[str, int]] = {"b/s": 1, "kb/s": 10**3, "Mb/s": 10**6, "Gb/s": 10**9, "Tb/s": 10**12}
"""Bit rates (bits per second, decimal prefixes): a bandwidth of ``"6 Gb/s"`` is 750,000,000 B/s."""

TIME_UNITS_NS: Final[dict[str, int]] = {
    "ns": 1,
    "us": 10**3,
    "µs": 10**3,  # U+00B5 MICRO SIGN
    "μs": 10**3,  # U+03BC GREEK SMALL LETTER MU
    "ms": 10**6,
    "s": 10**9,
    "min": 60 * 10**9,
}
"""Time units (case-sensitive)."""

_SIZE_LIST = "B, kB, MB, GB, TB, PB, EB, KiB, MiB, GiB, TiB, PiB, EiB"
_TIME_LIST = "ns, us (µs), ms, s, min"
_RATE_LIST = "a size unit per second (B/s, kB/s, MB/s, GB/s, KiB/s, MiB/s, GiB/s, ...) or bits: b/s, kb/s, Mb/s, Gb/s, Tb/s"

_QUANTITY = re.compile(r"\s*([0-9]+)(?:\.([0-9]*))?\s*([A-Za-zµμ/]+)\s*")
_QUANTITY_DOT = re.compile(r"\s*()\.([0-9]+)\s*([A-Za-zµμ/]+)\s*")
_DECIMAL = re.compile(r"\s*(?:([0-9]+)(?:\.([0-9]*))?|\.([0-9]+))(?:[eE]([+-]?[0-9]{1,3}))?\s*")
_RATIO = re.compile(r"\s*([0-9]+)\s*/\s*([0-9]+)\s*")


class UnitError(ValueError):
    """A quantity that could not be parsed or is out of range; the message says what is allowed."""


def with_article(word: str) -> str:
    """*word* with "a" or "an" before it, by its first letter ("an active", "a kernel")."""
    return ("an " if word[:1].lower() in "aeiou" else "a ") + word


def describe(value: object) -> str:
    """
    *value* as an error message shows it: short, whatever the input.

    A huge integer is described by its number of digits (``str()`` of a 5,000-digit integer
    raises in Python, and it would not fit on a screen anyway); a long string is cut; a list or
    table is named, not printed (it may be deeply nested).

    >>> describe(10**40), describe("x" * 100)[:12], describe([1]), describe([[1]]), describe(True)
    ('an integer of 41 digits', "'xxxxxxxxxxx", '[1]', 'a list of 1 items', 'true')
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        if value.bit_length() <= 96:
            return repr(value)
        digits = len(str(value)) if value.bit_length() < 10_000 else math.floor(value.bit_length() * math.log10(2)) + 1
        about = "" if value.bit_length() < 10_000 else "about "
        return f"{'a negative' if value < 0 else 'an'} integer of {about}{digits:,} digits"
    if isinstance(value, str):
        if len(value) <= MAX_QUANTITY_CHARS:
            return repr(value)
        return f"{value[:24]!r}… ({len(value):,} characters)"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, list | tuple):
        if len(value) <= 8 and all(isinstance(v, int | float | str) for v in value):
            shown = "[" + ", ".join(describe(v) for v in value) + "]"
            if len(shown) <= 2 * MAX_QUANTITY_CHARS:
                return shown
        return f"a list of {len(value):,} items"
    if isinstance(value, dict):
        return "a table"
    return f"a {type(value).__name__}"


def _split(text: str, what: str, examples: str) -> tuple[Fraction, str]:
    """The exact number and the unit of a quantity string (its length is bounded first)."""
    if len(text) > MAX_QUANTITY_CHARS:
        raise UnitError(f"{describe(text)} is not a {what}: longer than {MAX_QUANTITY_CHARS} characters; e.g. {examples}")
    m = _QUANTITY.fullmatch(text) or _QUANTITY_DOT.fullmatch(text)
    if m is None:
        raise UnitError(f"{text!r} is not a {what}; write a number with a unit, e.g. {examples}")
    whole, frac, unit = m.group(1), m.group(2) or "", m.group(3)
    return Fraction(int(whole + frac or "0"), 10 ** len(frac)), unit


def _whole(value: Fraction, text: str, what: str) -> int:
    if value.denominator != 1:
        raise UnitError(f"{text!r} is not a whole number of {what}")
    return int(value)


def _check_int(value: object, what: str, unit: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise UnitError(f"{describe(value)} is not a {what}; give an integer ({unit}) or a string with a unit")
    if value < 0:
        raise UnitError(f"{describe(value)} is negative; a {what} must be ≥ 0")
    return value


def _bounded(value: int, limit: int, shown: object, what: str, limit_text: str) -> int:
    if value > limit:
        raise UnitError(f"{describe(shown)} is more than the largest {what} stacksim takes, {limit_text}")
    return value


def _unit_hint(unit: str, known: dict[str, int], kind: str) -> str:
    """Why *unit* is not one of *known*: bits for bytes, wrong case, or simply unknown."""
    if kind == "size" and unit.endswith("b") and unit[:-1] in ("", "k", "K", "M", "G", "T", "P"):
        prefix = unit[:-1]
        write = f"{prefix.upper()}iB or {prefix.replace('K', 'k')}B" if prefix else "B"
        return f"{unit!r} is in bits (b); sizes are in bytes (B): write {write}"
    if unit == "KB":
        return "'KB' is ambiguous (1000 or 1024 bytes): write kB (1000 B) or KiB (1024 B)"
    if unit == "KB/s":
        return "'KB/s' is ambiguous (1000 or 1024 bytes): write kB/s or KiB/s"
    same = [k for k in known if k.lower() == unit.lower() and k != unit]
    if same:
        return f"units are case-sensitive: {unit!r} is not a unit, {' or '.join(same)} is"
    return f"unknown {kind} unit {unit!r}"


def parse_size(value: object) -> int:
    """
    Parse a size into bytes: an integer (bytes) or ``"<number> <unit>"``, at most :data:`MAX_BYTES`.

    >>> parse_size("64 KiB"), parse_size("1.5 GiB"), parse_size(512)
    (65536, 1610612736, 512)
    """
    if type(value) is int and 0 <= value <= MAX_BYTES:  # the common case, first
        return value
    if not isinstance(value, str):
        return _bounded(_check_int(value, "size", "bytes"), MAX_BYTES, value, "size", "2^60 bytes (1 EiB)")
    examples = '"4096", "64 KiB", "16 GiB", "1 TB"'
    number, unit = _split(value, "size", examples)
    factor = SIZE_UNITS.get(unit)
    if factor is None:
        raise UnitError(f"{value!r}: {_unit_hint(unit, SIZE_UNITS, 'size')}; allowed: {_SIZE_LIST}")
    return _bounded(_whole(number * factor, value, "bytes"), MAX_BYTES, value, "size", "2^60 bytes (1 EiB)")


def _time_factor(value: str, unit: str) -> int:
    factor = TIME_UNITS_NS.get(unit)
    if factor is None:
        raise UnitError(f"{value!r}: {_unit_hint(unit, TIME_UNITS_NS, 'time')}; allowed: {_TIME_LIST}")
    return factor


def parse_time_ns(value: object) -> int:
    """
    Parse a duration into integer nanoseconds: an integer (ns) or ``"<number> <unit>"``, at most :data:`MAX_NS`.

    >>> parse_time_ns("20 us"), parse_time_ns("1.5 ms"), parse_time_ns(7)
    (20000, 1500000, 7)
    """
    limit_text = "2^60 ns (about 36.5 years)"
    if not isinstance(value, str):
        return _bounded(_check_int(value, "duration", "nanoseconds"), MAX_NS, value, "duration", limit_text)
    number, unit = _split(value, "duration", '"250 ns", "20 us", "1 ms", "2 s"')
    ns = _whole(number * _time_factor(value, unit), value, "nanoseconds")
    return _bounded(ns, MAX_NS, value, "duration", limit_text)


def parse_per_byte_ps(value: object) -> int:
    """
    Parse a per-byte cost into integer **picoseconds per byte**, at most 1 s per byte.

    Integers are nanoseconds per byte (like every other duration); strings may use any time
    unit and a fractional value, resolved to the picosecond.

    >>> parse_per_byte_ps("0.3 ns"), parse_per_byte_ps(2), parse_per_byte_ps("0 ns")
    (300, 2000, 0)
    """
    if not isinstance(value, str):
        ns = _check_int(value, "per-byte duration", "nanoseconds")
        return _bounded(ns * 1000, MAX_PS_PER_BYTE, value, "per-byte cost", "1 s per byte")
    number, unit = _split(value, "per-byte duration", '"0.3 ns", "2 ns", "0 ns"')
    ps = number * _time_factor(value, unit) * 1000
    if ps.denominator != 1:
        raise UnitError(f"{value!r} is finer than one picosecond per byte")
    return _bounded(int(ps), MAX_PS_PER_BYTE, value, "per-byte cost", "1 s per byte")


def parse_bandwidth(value: object) -> int:
    """
    Parse a rate into bytes per second: an integer (B/s), a size per second, or bits per second.

    >>> parse_bandwidth("3 GB/s"), parse_bandwidth("500 MiB/s"), parse_bandwidth("6 Gb/s")
    (3000000000, 524288000, 750000000)
    """
    limit_text = "2^60 bytes per second"
    if not isinstance(value, str):
        bw = _bounded(_check_int(value, "bandwidth", "bytes per second"), MAX_RATE, value, "bandwidth", limit_text)
    else:
        examples = '"3 GB/s", "500 MiB/s", "150 MB/s", "6 Gb/s"'
        number, unit = _split(value, "bandwidth", examples)
        if not unit.endswith("/s"):
            raise UnitError(f"{value!r} is not a bandwidth; write a size per second, e.g. {examples}")
        if unit in BIT_RATE_UNITS:
            bits = number * BIT_RATE_UNITS[unit]
            if (bits / 8).denominator != 1:
                raise UnitError(f"{value!r} is not a whole number of bytes per second (8 bits a byte)")
            bw = int(bits / 8)
        else:
            factor = SIZE_UNITS.get(unit[:-2])
            if factor is None:
                rates = {f"{k}/s": v for k, v in SIZE_UNITS.items()} | BIT_RATE_UNITS
                hint = _unit_hint(unit, rates, "rate")
                if hint.startswith("unknown") and unit[:-2].endswith("b"):
                    hint = f"{unit!r} is not a bit rate stacksim knows (bit rates are case-sensitive)"
                raise UnitError(f"{value!r}: {hint}; allowed: {_RATE_LIST}")
            bw = _whole(number * factor, value, "bytes per second")
        bw = _bounded(bw, MAX_RATE, value, "bandwidth", limit_text)
    if bw <= 0:
        raise UnitError(f"{describe(value)}: a bandwidth must be greater than 0")
    return bw


def parse_fraction(value: object, *, zero: bool = False) -> Fraction:
    """
    Parse a fraction in (0, 1] (with *zero*: [0, 1]) exactly.

    Accepted: a number (``0.25``, ``1``, ``0``; a TOML float is read as the decimal it is
    written as, so ``0.1`` is exactly 1/10) or a string holding a decimal (``"0.25"``,
    ``"2.5e-1"``) or a ratio of integers (``"1/3"``). At most 20 decimal places (a ratio: terms
    below 10^20), so ``0.0``, ``"0.0"``, ``0`` and ``"0"`` are the same value, and
    ``"1e-100000000"`` is refused at once. Booleans are refused.

    >>> parse_fraction("1/3"), parse_fraction(0.25), parse_fraction("0.0", zero=True)
    (Fraction(1, 3), Fraction(1, 4), Fraction(0, 1))
    """
    allowed = 'write a number such as 0.33 or a string such as "1/3"'
    f: Fraction | None = None
    if isinstance(value, bool):
        raise UnitError(f"{describe(value)} is a boolean, not a fraction; {allowed}")
    if isinstance(value, int):
        if value < 0 or value > 1:
            raise UnitError(f"{describe(value)} is not between 0 and 1; {allowed}")
        f = Fraction(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise UnitError(f"{value!r} is not a fraction; {allowed}")
        exact = Decimal(repr(value))
        exponent = exact.as_tuple().exponent
        if value != 0 and isinstance(exponent, int) and exponent < -MAX_FRACTION_PLACES:
            raise UnitError(f"{value!r} is finer than stacksim keeps fractions (at most 20 decimal places)")
        f = Fraction(exact)
    elif isinstance(value, str):
        if len(value) > MAX_QUANTITY_CHARS:
            raise UnitError(f"{describe(value)} is not a fraction: longer than {MAX_QUANTITY_CHARS} characters; {allowed}")
        if m := _DECIMAL.fullmatch(value):
            whole, frac, dot, exp = m.group(1) or "", m.group(2) or "", m.group(3), int(m.group(4) or 0)
            digits = (whole + frac) if dot is None else dot
            places = (len(frac) if dot is None else len(dot)) - exp
            if places > MAX_FRACTION_PLACES and int(digits or "0") != 0:
                raise UnitError(f"{value!r} is finer than stacksim keeps fractions (at most 20 decimal places)")
            f = Fraction(int(digits or "0"), 10**places) if places >= 0 else Fraction(int(digits or "0") * 10**-places)
        elif m := _RATIO.fullmatch(value):
            num, den = m.group(1), m.group(2)
            if len(num) > MAX_FRACTION_PLACES or len(den) > MAX_FRACTION_PLACES or int(den) == 0:
                raise UnitError(f"{value!r} is not a fraction stacksim takes; {allowed} (terms below 10^20, not /0)")
            f = Fraction(int(num), int(den))
    if f is None:
        raise UnitError(f"{describe(value)} is not a fraction; {allowed}")
    if not (0 <= f <= 1 if zero else 0 < f <= 1):
        raise UnitError(f"{describe(value)} must be {'at least 0' if zero else 'greater than 0'} and at most 1")
    return f


def bytes_time_ns(nbytes: int, ps_per_byte: int) -> int:
    """Time to process *nbytes* at *ps_per_byte*, in whole nanoseconds rounded up."""
    return -(-nbytes * ps_per_byte // 1000)


def transfer_ns(nbytes: int, bytes_per_s: int) -> int:
    """Time to move *nbytes* at *bytes_per_s*, in whole nanoseconds rounded up."""
    return -(-nbytes * 1_000_000_000 // bytes_per_s)


_LONG_UNITS: Final = ((60e9, "min", 100), (3600e9, "h", 100), (86400e9, "d", 1000), (365.25 * 86400e9, "years", math.inf))


def _sig(v: float, unit: str) -> str:
    return f"{v:.3g} {unit}" if abs(v) < 100 else f"{v:.0f} {unit}"


def format_ns(ns: float) -> str:
    """
    Render a duration with a unit people read at a glance.

    Under 1,000 s: ns, µs, ms or s; longer: min, h, d or years.

    >>> format_ns(850), format_ns(21845), format_ns(3_210_000_000), format_ns(65_536 * 10**9)
    ('850 ns', '21.8 µs', '3.21 s', '18.2 h')
    """
    a = abs(ns)
    if a < 1_000:
        return f"{ns:.0f} ns"
    for div, unit in ((1_000, "µs"), (1_000_000, "ms"), (1_000_000_000, "s")):
        v = ns / div
        if abs(v) < 1_000:
            return _sig(v, unit)
    for long_div, long_unit, below in _LONG_UNITS:
        v = ns / long_div
        if abs(v) < below:
            return _sig(v, long_unit)
    raise AssertionError("unreachable")  # pragma: no cover


def format_ns_pair(a: int, b: int) -> tuple[str, str]:
    """
    :func:`format_ns` of two durations that are compared in one message, exact where rounding would hide their difference.

    >>> format_ns_pair(12_000_000, 10_000_000), format_ns_pair(10_000_000, 9_999_999)
    (('12 ms', '10 ms'), ('10,000,000 ns', '9,999,999 ns'))
    """
    fa, fb = format_ns(a), format_ns(b)
    if fa == fb and a != b:
        return f"{a:,} ns", f"{b:,} ns"
    return fa, fb


def format_bytes(n: float) -> str:
    """
    Render a byte count with a binary unit.

    >>> format_bytes(512), format_bytes(65536), format_bytes(8 * 2**30 + 8192)
    ('512 B', '64 KiB', '8.00 GiB')
    """
    if n < 1024:
        return f"{n:.0f} B"
    for unit in ("KiB", "MiB", "GiB", "TiB", "PiB", "EiB"):
        n /= 1024
        if n < 1024 or unit == "EiB":
            break
    if n == int(n) or n >= 100:
        return f"{n:.0f} {unit}"
    return f"{n:#.3g} {unit}"


def format_bandwidth(bytes_per_s: float) -> str:
    """
    Render a rate in decimal bytes, kilobytes, megabytes or gigabytes per second (as drive makers quote them).

    >>> format_bandwidth(3e9), format_bandwidth(150e6), format_bandwidth(2_500), format_bandwidth(0.5)
    ('3.00 GB/s', '150 MB/s', '2.5 kB/s', '0.5 B/s')
    """
    # each unit ends at 999.5 of itself: from there ".3g" would print 1e+03
    if bytes_per_s >= 999.5e6:
        return f"{bytes_per_s / 1e9:,.2f} GB/s"
    if bytes_per_s >= 999.5e3:
        return f"{bytes_per_s / 1e6:.3g} MB/s"
    if bytes_per_s >= 999.5:
        return f"{bytes_per_s / 1e3:.3g} kB/s"
    if bytes_per_s >= 0.01 or bytes_per_s == 0:
        return f"{bytes_per_s:.3g} B/s"
    return "< 0.01 B/s"
