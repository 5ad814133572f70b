"""
Quantities with units: sizes in bytes, times in nanoseconds, rates in bytes per second.

Scenario files accept either a bare integer in the canonical unit (bytes, nanoseconds,
bytes per second) or a string such as ``"16 GiB"``, ``"20 us"`` or ``"3 GB/s"``.
Decimal prefixes (kB, MB, GB, TB) are powers of 1000, binary prefixes (KiB, MiB, GiB, TiB)
powers of 1024, exactly as IEC 80000-13 defines them. Parsing uses :class:`decimal.Decimal`,
so ``"1.5 GiB"`` is exactly 1610612736 bytes and never passes through a float.

Per-byte costs (``per_byte = "0.3 ns"``) need sub-nanosecond resolution, so they are kept as
integer **picoseconds per byte**; :func:`bytes_time_ns` turns a byte count into whole
nanoseconds by rounding *up* (a transfer that takes 0.2 ns still occupies the layer for 1 ns).

The ``format_*`` functions render numbers for people: every number stacksim prints has a unit.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Final

__all__ = [
    "UnitError",
    "bytes_time_ns",
    "format_bandwidth",
    "format_bytes",
    "format_ns",
    "parse_bandwidth",
    "parse_per_byte_ps",
    "parse_size",
    "parse_time_ns",
    "transfer_ns",
]

SIZE_UNITS: Final[dict[str, int]] = {
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}

TIME_UNITS_NS: Final[dict[str, int]] = {
    "ns": 1,
    "us": 10**3,
    "µs": 10**3,
    "μs": 10**3,
    "ms": 10**6,
    "s": 10**9,
    "min": 60 * 10**9,
}

_QUANTITY = re.compile(r"^\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*([A-Za-zµμ/]+)\s*$")


class UnitError(ValueError):
    """A quantity string that could not be parsed; the message says what is allowed."""


def _split(text: str, what: str, examples: str) -> tuple[Decimal, str]:
    m = _QUANTITY.match(text)
    if m is None:
        raise UnitError(f"{text!r} is not a {what}; write a number with a unit, e.g. {examples}")
    try:
        value = Decimal(m.group(1))
    except InvalidOperation:  # pragma: no cover - the regex admits only valid decimals
        raise UnitError(f"{text!r} is not a {what}; e.g. {examples}") from None
    return value, m.group(2)


def _whole(value: Decimal, text: str, what: str) -> int:
    if value != value.to_integral_value():
        raise UnitError(f"{text!r} is not a whole number of {what}")
    return int(value)


def _check_int(value: object, what: str, unit: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise UnitError(f"{value!r} is not a {what}; give an integer ({unit}) or a string with a unit")
    if value < 0:
        raise UnitError(f"{value!r} is negative; a {what} must be ≥ 0")
    return value


def parse_size(value: object) -> int:
    """
    Parse a size into bytes: an integer (bytes) or ``"<number> <unit>"``.

    >>> parse_size("64 KiB"), parse_size("1.5 GiB"), parse_size(512)
    (65536, 1610612736, 512)
    """
    if not isinstance(value, str):
        return _check_int(value, "size", "bytes")
    examples = '"4096", "64 KiB", "16 GiB", "1 TB"'
    number, unit = _split(value, "size", examples)
    factor = SIZE_UNITS.get(unit.lower())
    if factor is None:
        raise UnitError(f"{value!r} has unknown size unit {unit!r}; allowed: B, kB, MB, GB, TB, KiB, MiB, GiB, TiB")
    return _whole(number * factor, value, "bytes")


def parse_time_ns(value: object) -> int:
    """
    Parse a duration into integer nanoseconds: an integer (ns) or ``"<number> <unit>"``.

    >>> parse_time_ns("20 us"), parse_time_ns("1.5 ms"), parse_time_ns(7)
    (20000, 1500000, 7)
    """
    if not isinstance(value, str):
        return _check_int(value, "duration", "nanoseconds")
    number, unit = _split(value, "duration", '"250 ns", "20 us", "1 ms", "2 s"')
    factor = TIME_UNITS_NS.get(unit if unit in ("µs", "μs") else unit.lower())
    if factor is None:
        raise UnitError(f"{value!r} has unknown time unit {unit!r}; allowed: ns, us (µs), ms, s, min")
    return _whole(number * factor, value, "nanoseconds")


def parse_per_byte_ps(value: object) -> int:
    """
    Parse a per-byte cost into integer **picoseconds per byte**.

    Integers are nanoseconds per byte (like every other duration); strings may use any time
    unit and a fractional value, resolved to the picosecond.

    >>> parse_per_byte_ps("0.3 ns"), parse_per_byte_ps(2), parse_per_byte_ps("0 ns")
    (300, 2000, 0)
    """
    if not isinstance(value, str):
        return _check_int(value, "per-byte duration", "nanoseconds") * 1000
    number, unit = _split(value, "per-byte duration", '"0.3 ns", "2 ns", "0 ns"')
    factor = TIME_UNITS_NS.get(unit if unit in ("µs", "μs") else unit.lower())
    if factor is None:
        raise UnitError(f"{value!r} has unknown time unit {unit!r}; allowed: ns, us (µs), ms, s")
    ps = number * factor * 1000
    if ps != ps.to_integral_value():
        raise UnitError(f"{value!r} is finer than one picosecond per byte")
    return int(ps)


def parse_bandwidth(value: object) -> int:
    """
    Parse a rate into bytes per second: an integer (B/s) or ``"<size unit>/s"``.

    >>> parse_bandwidth("3 GB/s"), parse_bandwidth("500 MiB/s")
    (3000000000, 524288000)
    """
    if not isinstance(value, str):
        bw = _check_int(value, "bandwidth", "bytes per second")
    else:
        examples = '"3 GB/s", "500 MiB/s", "150 MB/s"'
        number, unit = _split(value, "bandwidth", examples)
        if not unit.lower().endswith("/s"):
            raise UnitError(f"{value!r} is not a bandwidth; write a size per second, e.g. {examples}")
        factor = SIZE_UNITS.get(unit[:-2].lower())
        if factor is None:
            raise UnitError(f"{value!r} has unknown unit {unit!r}; allowed: B/s, kB/s, MB/s, GB/s, KiB/s, MiB/s, GiB/s")
        bw = _whole(number * factor, value, "bytes per second")
    if bw <= 0:
        raise UnitError(f"{value!r}: a bandwidth must be greater than 0")
    return bw


def bytes_time_ns(nbytes: int, ps_per_byte: int) -> int:
    """Time to process *nbytes* at *ps_per_byte*, in whole nanoseconds rounded up."""
    return -(-nbytes * ps_per_byte // 1000)


def transfer_ns(nbytes: int, bytes_per_s: int) -> int:
    """Time to move *nbytes* at *bytes_per_s*, in whole nanoseconds rounded up."""
    return -(-nbytes * 1_000_000_000 // bytes_per_s)


def format_ns(ns: float) -> str:
    """
    Render a duration with a unit people read at a glance.

    >>> format_ns(850), format_ns(21845), format_ns(3_210_000_000)
    ('850 ns', '21.8 µs', '3.21 s')
    """
    a = abs(ns)
    if a < 1_000:
        return f"{ns:.0f} ns"
    for div, unit in ((1_000, "µs"), (1_000_000, "ms"), (1_000_000_000, "s")):
        v = ns / div
        if abs(v) < 1_000 or unit == "s":
            return f"{v:.3g} {unit}" if abs(v) < 100 else f"{v:.0f} {unit}"
    raise AssertionError("unreachable")  # pragma: no cover


def format_bytes(n: float) -> str:
    """
    Render a byte count with a binary unit.

    >>> format_bytes(512), format_bytes(65536), format_bytes(8 * 2**30 + 8192)
    ('512 B', '64 KiB', '8.00 GiB')
    """
    if n < 1024:
        return f"{n:.0f} B"
    for unit in ("KiB", "MiB", "GiB", "TiB", "PiB"):
        n /= 1024
        if n < 1024 or unit == "PiB":
            break
    if n == int(n) or n >= 100:
        return f"{n:.0f} {unit}"
    return f"{n:#.3g} {unit}"


def format_bandwidth(bytes_per_s: float) -> str:
    """
    Render a rate in decimal megabytes or gigabytes per second (as drive makers quote them).

    >>> format_bandwidth(3e9), format_bandwidth(150e6)
    ('3.00 GB/s', '150 MB/s')
    """
    if bytes_per_s >= 1e9:
        return f"{bytes_per_s / 1e9:.2f} GB/s"
    if bytes_per_s >= 1e6:
        return f"{bytes_per_s / 1e6:.3g} MB/s"
    return f"{bytes_per_s / 1e3:.3g} kB/s"
