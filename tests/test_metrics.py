"""Streaming, weighted latency histograms."""

from __future__ import annotations

from stacksim.metrics import EXACT_DISTINCT_LIMIT, LatencyHistogram


def test_exact_percentiles_nearest_rank() -> None:
    """With few distinct values, percentiles are exact nearest-rank values."""
    h = LatencyHistogram()
    for v in (10, 20, 30, 40):
        h.record(v)
    assert (h.percentile(50), h.percentile(99), h.percentile(100), h.max, h.total) == (20, 40, 40, 40, 100)


def test_weighted_equals_repeated() -> None:
    """record(v, n) gives the same statistics as n calls of record(v)."""
    a, b = LatencyHistogram(), LatencyHistogram()
    a.record(5, 1000)
    a.record(7, 10)
    for _ in range(1000):
        b.record(5)
    for _ in range(10):
        b.record(7)
    assert [a.percentile(p) for p in (50, 99, 100)] == [b.percentile(p) for p in (50, 99, 100)] == [5, 5, 7]
    assert (a.count, a.total, a.max) == (b.count, b.total, b.max)


def test_many_distinct_values_fold_into_bounded_histogram() -> None:
    """Past the exact limit the histogram folds into HdrHistogram (3 significant digits)."""
    h = LatencyHistogram()
    for v in range(1, EXACT_DISTINCT_LIMIT + 2):
        h.record(v * 1000)
    assert not h.exact
    p50 = h.percentile(50)
    assert abs(p50 - 2_049_000) <= 2_049_000 * 0.001
    assert h.max == (EXACT_DISTINCT_LIMIT + 1) * 1000


def test_merge() -> None:
    """Merging adds every sample of the other histogram."""
    a, b = LatencyHistogram(), LatencyHistogram()
    a.record(1, 3)
    b.record(9, 1)
    a.merge(b)
    assert (a.count, a.total, a.max, a.percentile(100)) == (4, 12, 9, 9)
