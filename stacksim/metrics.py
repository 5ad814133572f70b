"""
Per-layer statistics: call counts, busy time and latency percentiles, streaming and weighted.

A :class:`LatencyHistogram` never keeps one entry per request. It counts *distinct values*
exactly (a dict of value -> count) while there are at most :data:`EXACT_DISTINCT_LIMIT` of
them -- simulated latencies come from cost models and take few distinct values, so percentiles
are usually exact to the nanosecond. Past that limit it folds everything into an
`HdrHistogram <https://hdrhistogram.github.io/HdrHistogram/>`_ with 3 significant digits
(values reported within 0.1 %), whose memory is bounded whatever the dump size.

Both stages take *weighted* adds (``record(value, count)``), and the final state depends only
on the multiset of values recorded, so a message standing for *n* identical requests gives the
same statistics as *n* messages. Histograms merge with :meth:`LatencyHistogram.merge`.

Percentiles use the nearest-rank definition: the p-th percentile of *n* samples is the
sample of rank ``ceil(p / 100 × n)`` in ascending order (rank 1 at least), i.e. the smallest
recorded value such that at least p % of the samples are ≤ it. The rank is computed exactly
(``p`` is read as the decimal it prints as, so p99.9 of 1,000 samples is rank 999, never 1,000
through a float rounding). Of 1,000 samples 1 … 1,000: p50 = 500, p90 = 900, p99 = 990,
p99.9 = 999; of one sample every percentile is that sample.

The mean and the standard deviation come from exact integer sums (of the values and of their
squares), so they are deterministic and independent of the order of the adds: the mean is
rounded to the nearest ns (halves up) and the standard deviation is the *population* standard
deviation (every call is a sample; the divisor is *n*), rounded to the nearest ns.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from hdrh.histogram import HdrHistogram

__all__ = ["EXACT_DISTINCT_LIMIT", "LatencyHistogram", "LayerStats", "LayerSummary", "nearest_rank"]

EXACT_DISTINCT_LIMIT: Final = 4096
"""Distinct values kept exactly before a histogram folds into HdrHistogram."""

_HDR_LOWEST: Final = 1
_HDR_HIGHEST: Final = 2**63 - 1  # any simulated time: every reported time is below 2^63 ns
_HDR_DIGITS: Final = 3


def nearest_rank(p: float, n: int) -> int:
    """
    The rank (1-based, ascending) of the nearest-rank *p*-th percentile of *n* samples: ``ceil(p / 100 × n)``, at least 1.

    *p* is taken as the decimal it prints as, exactly: a float ``99.9`` is 999/10, not the
    binary fraction just above it.

    >>> nearest_rank(99.9, 1000), nearest_rank(90, 1000), nearest_rank(99.9, 10), nearest_rank(50, 1)
    (999, 900, 10, 1)
    """
    exact = Fraction(p) if isinstance(p, int) else Fraction(repr(float(p)))
    if not 0 <= exact <= 100:
        raise ValueError(f"percentile {p} is not between 0 and 100")
    return max(1, math.ceil(exact * n / 100))


class LatencyHistogram:
    """Streaming, mergeable, weighted distribution of integer nanosecond values."""

    __slots__ = ("_count", "_exact", "_hdr", "_max", "_min", "_run_count", "_run_value", "_squares", "_total")

    def __init__(self) -> None:
        self._exact: dict[int, int] | None = {}
        self._hdr: HdrHistogram | None = None
        self._count = 0
        self._total = 0
        self._squares = 0  # the sum of the squares of the samples, for the standard deviation
        self._max = 0
        self._min = 0
        # Consecutive equal values (the usual case in a dump) are accumulated here first.
        self._run_value = -1
        self._run_count = 0

    def record(self, value: int, count: int = 1) -> None:
        """Record *count* samples of *value* nanoseconds."""
        if value == self._run_value and count > 0:
            self._run_count += count
            return
        if value < 0 or count <= 0:
            raise ValueError(f"cannot record value {value} with count {count}")
        self._flush()
        self._run_value = value
        self._run_count = count

    def _flush(self) -> None:
        if self._run_count:
            value, count = self._run_value, self._run_count
            self._run_count = 0
            self._add(value, count)

    @property
    def count(self) -> int:
        """Samples recorded."""
        self._flush()
        return self._count

    @property
    def total(self) -> int:
        """Sum of all samples."""
        self._flush()
        return self._total

    @property
    def squares(self) -> int:
        """Sum of the squares of all samples (exact)."""
        self._flush()
        return self._squares

    @property
    def mean(self) -> int:
        """The mean sample, rounded to the nearest integer (halves up; 0 when empty)."""
        n = self.count  # flushes
        return (2 * self._total + n) // (2 * n) if n else 0

    @property
    def stdev(self) -> int:
        """The population standard deviation, rounded to the nearest integer (0 when empty), from exact sums."""
        n = self.count  # flushes
        if not n:
            return 0
        # variance = (n·Σx² − (Σx)²) / n²; round(√v) = (⌊√⌊4v⌋⌋ + 1) // 2, all in integers
        spread = n * self._squares - self._total * self._total
        return (math.isqrt(4 * spread // (n * n)) + 1) // 2

    @property
    def max(self) -> int:
        """Largest sample (0 when empty)."""
        self._flush()
        return self._max

    @property
    def min(self) -> int:
        """Smallest sample (0 when empty)."""
        self._flush()
        return self._min

    def _add(self, value: int, count: int) -> None:
        if value < 0 or count <= 0:
            raise ValueError(f"cannot record value {value} with count {count}")
        if self._count == 0 or value < self._min:
            self._min = value
        if value > self._max:
            self._max = value
        self._count += count
        self._total += value * count
        self._squares += value * value * count
        exact = self._exact
        if exact is not None:
            exact[value] = exact.get(value, 0) + count
            if len(exact) > EXACT_DISTINCT_LIMIT:
                self._fold()
        else:
            self._hdr_record(value, count)

    def _fold(self) -> None:
        from hdrh.histogram import HdrHistogram  # only once a histogram has many distinct values

        assert self._exact is not None
        self._hdr = HdrHistogram(_HDR_LOWEST, _HDR_HIGHEST, _HDR_DIGITS)
        exact, self._exact = self._exact, None
        for value, count in sorted(exact.items()):
            self._hdr_record(value, count)

    def _hdr_record(self, value: int, count: int) -> None:
        assert self._hdr is not None
        # HdrHistogram silently returns False for out-of-range values; we refuse to lose one.
        if not self._hdr.record_value(max(value, _HDR_LOWEST), count):
            raise ValueError(f"latency {value} ns is outside the histogram range (≤ {_HDR_HIGHEST} ns)")

    @property
    def exact(self) -> bool:
        """True while percentiles are exact (few distinct values)."""
        self._flush()
        return self._exact is not None

    def percentile(self, p: float) -> int:
        """The nearest-rank *p*-th percentile in ns (0 for an empty histogram)."""
        if self.count == 0:  # flushes
            return 0
        if self._exact is None:
            assert self._hdr is not None
            return min(int(self._hdr.get_value_at_percentile(p)), self.max)
        rank = nearest_rank(p, self.count)
        seen = 0
        for value in sorted(self._exact):
            seen += self._exact[value]
            if seen >= rank:
                return value
        return self.max  # pragma: no cover - rank ≤ count always hits above

    def merge(self, other: LatencyHistogram) -> None:
        """Add every sample of *other* to this histogram."""
        if other.count == 0:  # flushes other
            return
        self._flush()
        if other._exact is not None:
            for value, count in other._exact.items():
                self._add(value, count)
            return
        if self._exact is not None:
            self._fold()
        assert self._hdr is not None
        assert other._hdr is not None
        self._hdr.add(other._hdr)
        self._min = other._min if self._count == 0 else min(self._min, other._min)
        self._count += other._count
        self._total += other._total
        self._squares += other._squares
        self._max = max(self._max, other._max)


LAYER_COLUMNS = ("calls", "busy_ns", "p50_ns", "p99_ns", "max_ns")
"""The five statistics a layer had before issue 15 (what a result of an older stacksim holds)."""

LATENCY_KEYS = ("min_ns", "mean_ns", "stdev_ns", "p50_ns", "p90_ns", "p99_ns", "p99_9_ns", "max_ns")
"""A per-call latency distribution's statistics, in order (a layer's after its calls and busy time; ``io.latency``'s)."""

LAYER_KEYS = ("calls", "busy_ns", *LATENCY_KEYS)
"""Every statistic of a layer (:class:`LayerSummary`), as the result JSON and ``layers_frame()`` name them, in order."""

LAYER_RATE_KEYS = ("iops", "bandwidth_bytes_per_s", "bandwidth_MB_per_s", "bandwidth_MiB_per_s")
"""A layer's rates over the dump time, after :data:`LAYER_KEYS` in the result JSON (``RunResult.layer_rates``)."""

PERCENTILES: Final = (50, 90, 99, 99.9)
"""The percentiles a :class:`LayerSummary` reports (nearest rank; :func:`nearest_rank`)."""


@dataclass(frozen=True, slots=True)
class LayerSummary:
    """
    What the result JSON reports for one layer (all times in ns): calls, busy time and the per-call latency distribution.

    ``mean_ns`` and ``stdev_ns`` are rounded to the nearest ns from exact sums (``stdev_ns`` is
    the population standard deviation); the percentiles are nearest-rank (:func:`nearest_rank`).

    .. versionchanged:: 0.1
       ``min_ns``, ``mean_ns``, ``stdev_ns``, ``p90_ns`` and ``p99_9_ns`` (issue 15).
    """

    calls: int
    busy_ns: int
    p50_ns: int
    p99_ns: int
    max_ns: int
    min_ns: int = 0
    mean_ns: int = 0
    stdev_ns: int = 0
    p90_ns: int = 0
    p99_9_ns: int = 0

    @classmethod
    def of(cls, h: LatencyHistogram) -> LayerSummary:
        """The summary of the samples in *h*."""
        p50, p90, p99, p99_9 = (h.percentile(p) for p in PERCENTILES)
        return cls(h.count, h.total, p50, p99, h.max, min_ns=h.min, mean_ns=h.mean, stdev_ns=h.stdev, p90_ns=p90, p99_9_ns=p99_9)

    def as_dict(self) -> dict[str, int]:
        """The JSON object for this layer (keys in :data:`LAYER_KEYS` order)."""
        return {key: getattr(self, key) for key in LAYER_KEYS}


class LayerStats:
    """
    Statistics of one layer: every call it handled and the simulated time it spent on each.

    ``busy_ns`` is the sum of the layer's own time over all calls; the latency distribution
    is over the same per-call durations.
    """

    __slots__ = ("hist", "name", "record")

    def __init__(self, name: str) -> None:
        self.name = name
        self.hist = LatencyHistogram()
        self.record = self.hist.record
        """``record(dur_ns, count=1)``: record *count* calls that each took *dur_ns*."""

    @property
    def calls(self) -> int:
        """Calls recorded."""
        return self.hist.count

    @property
    def busy_ns(self) -> int:
        """Total simulated time spent in the layer."""
        return self.hist.total

    def summary(self) -> LayerSummary:
        """Freeze the statistics into a :class:`LayerSummary`."""
        return LayerSummary.of(self.hist)
