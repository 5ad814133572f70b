"""Device models: exact service times for hand-computed cases, and batched runs equal to single writes."""

from __future__ import annotations

import copy
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from stacksim.devices import CachedDevice, DeviceBase, FixedDevice, HddDevice, VirtualDisk

GB = 10**9


def ssd() -> CachedDevice:
    """1 GB/s interface, 0.25 GB/s media, a volatile 100,000-byte cache, no latency."""
    return CachedDevice(10**12, latency_ns=0, bandwidth=GB, media_bandwidth=GB // 4, cache=100_000, volatile_cache=True)


class TestWriteBackCache:
    def test_writes_fill_the_cache_then_run_at_media_speed(self) -> None:
        """Interface speed while the cache has room, then the time the media needs to make room."""
        d = ssd()
        t, times = 0, []
        for _ in range(4):
            dur = d.write_ns(0, 50_000, t)
            times.append(dur)
            t += dur
        # 50 µs each while it fits (37.5 kB, then 75 kB dirty), 100 µs to make room, then 200 µs (full)
        assert times == [50_000, 50_000, 100_000, 200_000]
        assert d.flush_ns(t) == 400_000  # 100,000 dirty bytes at 0.25 GB/s

    def test_idle_time_drains_the_cache(self) -> None:
        """Dirty data drains at media speed while the device is idle."""
        d = ssd()
        d.write_ns(0, 100_000, 0)  # 100 µs; 75,000 bytes dirty at t = 100 µs
        assert d.flush_ns(100_000 + 200_000) == 100_000  # 50,000 drained while idle, 25,000 left

    def test_flush_does_not_wait_for_a_non_volatile_cache(self) -> None:
        """An SLC cache is already NAND: the flush costs only its command latency."""
        d = CachedDevice(10**12, latency_ns=0, bandwidth=GB, media_bandwidth=GB // 4, cache=100_000, flush_latency_ns=7)
        d.write_ns(0, 100_000, 0)
        assert d.flush_ns(100_000) == 7

    def test_no_cache_is_media_speed(self) -> None:
        """Without a cache every write runs at the media rate."""
        d = CachedDevice(10**12, latency_ns=10_000, bandwidth=GB, media_bandwidth=GB // 2)
        assert d.write_ns(0, 1_000_000, 0) == 10_000 + 2_000_000
        assert d.flush_ns(5_000_000) == 0


class TestHdd:
    def hdd(self, **kw: int) -> HddDevice:
        args = {"latency_ns": 0, "bandwidth": 600 * 10**6, "media_bandwidth": 100 * 10**6, "inner_media_bandwidth": 100 * 10**6}
        args.update({"zones": 1, "rpm": 7200, "seek_ns": 8_000_000, "cache": 0}, **kw)
        return HddDevice(10**12, **args)

    def test_seek_and_half_rotation_when_not_contiguous(self) -> None:
        """A non-contiguous write costs seek + half a rotation; a contiguous one only its transfer."""
        d = self.hdd()
        media = 655_360  # 64 KiB at 100 MB/s
        positioning = 8_000_000 + 4_166_666  # seek + 30 s / 7200
        assert d.write_ns(0, 65536, 0) == positioning + media
        assert d.write_ns(65536, 65536, 20_000_000) == media
        assert d.write_ns(10 * 2**20, 65536, 40_000_000) == positioning + media
        assert d.seeks == 2

    def test_zoned_rates_fall_from_outer_to_inner(self) -> None:
        """Zones split the disk evenly; rates fall linearly from outer to inner."""
        d = self.hdd(zones=4, media_bandwidth=200 * 10**6, inner_media_bandwidth=50 * 10**6)
        assert [d.zone_rate(d.zone(off)) for off in (0, 3 * 10**11, 6 * 10**11, 10**12 - 1)] == [200e6, 150e6, 100e6, 50e6]


class TestHddZonesInBatchedRuns:
    """
    A run of writes that crosses a zone boundary: batched mode must give each write the rate of
    the zone it starts in, and leave the head where the last write ended.

    The disk: 1 MiB in 2 zones (the boundary at 512 KiB), 100 MB/s outer and 50 MB/s inner, no
    cache, no command latency, 8 ms seek + 4,166,666 ns half rotation = 12,166,666 ns.
    """

    POSITIONING = 8_000_000 + 4_166_666

    def hdd(self) -> HddDevice:
        return HddDevice(
            2**20,
            latency_ns=0,
            bandwidth=600 * 10**6,
            media_bandwidth=100 * 10**6,
            inner_media_bandwidth=50 * 10**6,
            zones=2,
            rpm=7200,
            seek_ns=8_000_000,
        )

    def test_a_long_run_is_charged_each_zone_s_rate(self) -> None:
        """200 writes of 4 KiB from 0: 128 in the outer zone at 40,960 ns, 72 in the inner one at 81,920 ns."""
        d = self.hdd()
        segments = d.write_run_ns(0, 4096, 200, 0, 0)
        assert segments == [(self.POSITIONING + 40_960, 1), (40_960, 127), (81_920, 72)]

    def test_the_head_ends_where_the_run_ended(self) -> None:
        """After a batched run across the boundary, a write where it ended needs no seek; one elsewhere does."""
        d = self.hdd()
        d.write_run_ns(0, 4096, 200, 0, 0)
        assert d.head == 200 * 4096
        assert d.write_ns(200 * 4096, 4096, 10**9) == 81_920
        assert d.write_ns(0, 4096, 2 * 10**9) == self.POSITIONING + 40_960
        assert d.seeks == 2

    def test_a_write_that_straddles_the_boundary_has_the_rate_of_its_start(self) -> None:
        """128 KiB writes from 320 KiB: the one at 448 KiB ends in the inner zone but starts in the outer one."""
        d = self.hdd()
        assert d.write_run_ns(320 * 1024, 131072, 3, 0, 0) == [(self.POSITIONING + 1_310_720, 1), (1_310_720, 1), (2_621_440, 1)]
        assert d.head == 320 * 1024 + 3 * 131072

    def test_batched_equals_one_write_at_a_time(self) -> None:
        """The same 200 writes one by one give the same times and leave the same head and seek count."""
        a, b = self.hdd(), self.hdd()
        segments = a.write_run_ns(0, 4096, 200, 0, 0)
        t, singles = 0, Counter[int]()
        for i in range(200):
            dur = b.write_ns(i * 4096, 4096, t)
            singles[dur] += 1
            t += dur
        assert Counter(dict(segments)) == singles
        assert (a.head, a.seeks) == (b.head, b.seeks) == (200 * 4096, 1)


class TestWorstWrite:
    """worst_write_ns bounds every write, whatever the device's state (the port's timeout relies on it)."""

    def test_fixed_is_exact(self) -> None:
        """A fixed device always takes latency + transfer."""
        assert FixedDevice(10**12, 20_000, 3 * GB).worst_write_ns(65536, 65536) == 20_000 + 21_846

    def test_ssd_is_the_slower_rate(self) -> None:
        """An SSD's slowest write fills a full cache at the media rate."""
        assert ssd().worst_write_ns(50_000, 65536) == 200_000

    def test_hdd_adds_a_seek_at_the_inner_rate(self) -> None:
        """An HDD's slowest write seeks and streams at the slowest zone's rate."""
        d = TestHddZonesInBatchedRuns().hdd()
        assert d.worst_write_ns(4096, 65536) == 8_000_000 + 4_166_666 + 81_920

    def test_virtual_disk_pays_the_previous_budget(self) -> None:
        """A throttled disk may first wait out the budget of the longest previous write."""
        d = VirtualDisk(10**12, latency_ns=100_000, bandwidth=GB, iops_limit=500, bandwidth_limit=100 * 10**6)
        assert d.worst_write_ns(4096, 65536) == 2_000_000 + 100_000 + 4_096


class TestVirtualDisk:
    def test_iops_cap_sets_the_pace_at_queue_depth_1(self) -> None:
        """500 IOPS: a 64 KiB write every 2 ms, whatever the backend could do."""
        d = VirtualDisk(10**12, latency_ns=100_000, bandwidth=GB, iops_limit=500, bandwidth_limit=100 * 10**6)
        first = d.write_ns(0, 65536, 0)
        assert first == 100_000 + 65_536
        assert d.write_ns(65536, 65536, first) == 2_000_000
        assert d.write_ns(131072, 65536, 2_000_000 + first) == 2_000_000

    def test_throughput_cap(self) -> None:
        """Large IOs hit the throughput cap before the IOPS cap."""
        d = VirtualDisk(10**12, latency_ns=0, bandwidth=10 * GB, iops_limit=5000, bandwidth_limit=100 * 10**6, io_unit=2**20)
        first = d.write_ns(0, 2**20, 0)
        assert d.write_ns(2**20, 2**20, first) == 10_485_760  # 1 MiB at 100 MB/s


def fresh(kind: str, params: dict[str, int], size: int = 2**40) -> DeviceBase:
    if kind == "fixed":
        return FixedDevice(size, params["latency"], params["bw"], 0)
    if kind == "ssd":
        return CachedDevice(
            size,
            latency_ns=params["latency"],
            bandwidth=params["bw"],
            media_bandwidth=params["media"],
            cache=params["cache"],
            volatile_cache=True,
        )
    if kind == "hdd":
        return HddDevice(
            size,
            latency_ns=params["latency"],
            bandwidth=params["bw"],
            media_bandwidth=params["media"],
            inner_media_bandwidth=params["media"] // 2,
            zones=params["zones"],
            rpm=7200,
            seek_ns=9_000_000,
            cache=params["cache"],
        )
    return VirtualDisk(
        size, latency_ns=params["latency"], bandwidth=params["bw"], iops_limit=params["iops"], bandwidth_limit=params["media"]
    )


@settings(max_examples=80, deadline=None)
@given(
    kind=st.sampled_from(["fixed", "ssd", "hdd", "virtual"]),
    params=st.fixed_dictionaries(
        {
            "latency": st.integers(0, 100_000),
            "bw": st.integers(10**8, 4 * 10**9),
            "media": st.integers(10**7, 10**8),
            "cache": st.sampled_from([0, 65536, 2**20, 2**24]),
            "zones": st.integers(1, 40),
            "iops": st.integers(100, 20_000),
        }
    ),
    length=st.sampled_from([4096, 65536, 2**20]),
    count=st.integers(1, 3000),
    gap=st.integers(0, 50_000),
    start=st.integers(0, 2**39),
    warm=st.booleans(),
    small=st.booleans(),
)
def test_batched_run_equals_single_writes(
    kind: str, params: dict[str, int], length: int, count: int, gap: int, start: int, warm: bool, small: bool
) -> None:
    """write_run_ns gives exactly the per-write times of write_ns, then the same device state (zone crossings too)."""
    size = 2**30 if small else 2**40  # small: HDD zones of 27 MB or less, so long runs cross them
    start = start % (size // 2)
    start -= start % length
    a = fresh(kind, params, size)
    if warm:  # leave some state behind: a write elsewhere
        a.write_ns(size // 2 + 12345 * 512, 2**20, 0)
    b = copy.deepcopy(a)
    t0 = 10**9
    segments = a.write_run_ns(start, length, count, t0, gap)
    singles: list[tuple[int, int]] = []
    t = t0
    for i in range(count):
        dur = b.write_ns(start + i * length, length, t)
        if singles and singles[-1][0] == dur:
            singles[-1] = (dur, singles[-1][1] + 1)
        else:
            singles.append((dur, 1))
        t += dur + gap
    assert Counter(dict(segments)) == Counter(dict(singles))
    assert sum(n for _, n in segments) == count
    # the state after the run: a write where it ended (contiguous), one elsewhere, then the flush
    after = start + count * length
    assert a.write_ns(after, length, t) == b.write_ns(after, length, t)
    assert a.write_ns(12345 * 512, length, 2 * t) == b.write_ns(12345 * 512, length, 2 * t)
    assert a.flush_ns(3 * t) == b.flush_ns(3 * t)
    for worst in (a.worst_write_ns(length, 2**20), b.worst_write_ns(length, 2**20)):
        assert max(dur for dur, _ in segments) <= worst
