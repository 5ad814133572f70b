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


def fresh(kind: str, params: dict[str, int]) -> DeviceBase:
    size = 2**40
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
)
def test_batched_run_equals_single_writes(
    kind: str, params: dict[str, int], length: int, count: int, gap: int, start: int, warm: bool
) -> None:
    """write_run_ns gives exactly the per-write times of write_ns, then the same device state."""
    start -= start % length
    a = fresh(kind, params)
    if warm:  # leave some state behind: a write elsewhere
        a.write_ns(2**39 + 12345 * 512, 2**20, 0)
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
    assert a.flush_ns(t) == b.flush_ns(t)
