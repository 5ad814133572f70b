"""
Disk device models: how long the device takes to complete one command, and its cache flush.

A device is called synchronously by the dump port (crash mode polls for completion; the CPU
spins while the device works), so a model is a plain object with a service-time function, not
a task. Offsets are absolute disk byte offsets; times are integer nanoseconds.

Models (``[disk] model``), each documented with its parameters in ``docs/reference/devices.md``:

* :class:`FixedDevice` (``fixed``): latency + bytes / bandwidth. The first-order model (§8 [INF]).
* :class:`CachedDevice` (``ssd``, ``ram``): latency, then the data crosses the interface into a
  write-back cache that the media drains in the background (:class:`WriteBackCache`): writes run
  at interface speed until the cache is full, then at media speed; the final flush costs the
  time to drain what is dirty.
* :class:`HddDevice` (``hdd``): the same cache in front of a spinning disk: a seek plus half a
  rotation whenever a write is not contiguous with the previous one, and a zoned media rate that
  falls from the outer to the inner tracks.
* :class:`VirtualDisk` (``virtual``): a cloud VM disk whose IOPS and throughput caps throttle
  every command.

Batched mode asks a device for a whole run of identical writes (:meth:`DeviceBase.write_run_ns`).
The generic implementation steps write by write and fast-forwards as soon as the device's state
repeats (the integer rounding of the cache model can make it alternate between a few states), so
every following block of writes is identical until a regime boundary such as an HDD zone; a
write-back cache that fills, drains or stays saturated is advanced in closed form
(:meth:`WriteBackCache.steady_run`), so a run costs O(regime changes). The result equals
:meth:`DeviceBase.write_ns` called once per write.

The normal (runtime) stack also reads and keeps several commands outstanding
(:mod:`stacksim.normal_stack`): every model has :meth:`DeviceBase.read_ns` (reads bypass the
write cache), :meth:`DeviceBase.min_service_ns` (a guaranteed lower bound, the engine's
lookahead) and :meth:`DeviceBase.link_ns` (the host link's time for the data, which caps the
throughput of parallel commands); :data:`RUNTIME_PRESETS` gives each preset's read parameters
and internal parallelism. None of this changes a write's timing.
"""

from __future__ import annotations

from stacksim.metrics import LayerStats
from stacksim.units import transfer_ns

__all__ = [
    "DEVICE_PRESETS",
    "MODELS",
    "RUNTIME_PRESETS",
    "CachedDevice",
    "DeviceBase",
    "DevicePreset",
    "FixedDevice",
    "HddDevice",
    "RuntimePreset",
    "VirtualDisk",
    "WriteBackCache",
    "build_device",
    "runtime_preset",
]

NS = 1_000_000_000


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


class DeviceBase:
    """
    Contract of a device model.

    ``stats`` holds one entry per command (writes and flushes) under the layer name ``device``.
    """

    def __init__(self, size: int, kind: str) -> None:
        self.size = size
        self.kind = kind
        self.stats = LayerStats("device")

    def read_ns(self, disk_offset: int, length: int, now_ns: int) -> int:
        """Service time of a read command that arrives at *now_ns* (reads bypass the write cache)."""
        raise NotImplementedError

    def min_service_ns(self, length: int, op: str) -> int:
        """A lower bound on the service time of any ``"read"`` or ``"write"`` of *length* bytes, whatever the state."""
        raise NotImplementedError

    def link_ns(self, length: int, op: str) -> int:
        """
        Time the host link needs for the data of one command (0: not modelled).

        With several commands in flight their data shares the link: the normal stack spaces
        command starts by this much (:mod:`stacksim.normal_stack`), so parallel commands never
        move data faster than the interface. At queue depth 1 the spacing never delays anything.
        """
        return 0

    def write_ns(self, disk_offset: int, length: int, now_ns: int) -> int:
        """Service time of a write command that arrives at *now_ns* (updates the device's state)."""
        raise NotImplementedError

    def flush_ns(self, now_ns: int) -> int:
        """Service time of a cache flush (SYNCHRONIZE CACHE / NVMe Flush) that arrives at *now_ns*."""
        raise NotImplementedError

    def worst_write_ns(self, length: int, longest: int) -> int:
        """
        An upper bound on the service time of one write of *length* bytes, whatever the device's state.

        *longest* is the longest write the port sends (a throttled device may still be paying for
        the previous one). The dump port compares it with its timeout: when no write can outlast
        the timeout, batched mode may stand for a run of writes (``docs/reference/faults.md``).
        """
        raise NotImplementedError

    def worst_read_ns(self, length: int, longest: int) -> int:
        """An upper bound on the service time of one read of *length* bytes, whatever the state (default: a write's)."""
        return self.worst_write_ns(length, longest)

    def volatile_bytes_at(self, t: int) -> int:
        """
        Bytes written but still only in a volatile write cache at *t*: what a power failure then loses.

        0 for a device without one (the default); a DRAM write cache drains oldest first, so these
        are the last bytes written.
        """
        return 0

    def save_state(self) -> tuple[object, ...]:
        """
        The state commands change (cache fill, head position, throttle), as a value :meth:`restore_state` takes back.

        The normal stack uses it to undo a command the dump port's reset drops: a dropped
        command leaves the device as if it had never been sent (ASSUMPTION,
        ``docs/explanation/normal-stack.md``).
        """
        return ()

    def restore_state(self, state: tuple[object, ...]) -> None:
        """Put back a state :meth:`save_state` returned."""

    # -- batched mode -----------------------------------------------------------------------
    def write_run_ns(self, disk_offset: int, length: int, count: int, now_ns: int, gap_ns: int) -> list[tuple[int, int]]:
        """
        Service times of *count* consecutive writes of *length* bytes from *disk_offset*.

        The first arrives at *now_ns*; each next one arrives *gap_ns* after the previous one
        completed (the time the layers above spend per request). Returns (service ns, count)
        pairs -- the multiset of what *count* calls of :meth:`write_ns` give, in order of first
        appearance -- and leaves the device in the same state.

        The generic implementation steps write by write and remembers the device's relative
        state before each one; when the state repeats (period 1 to :data:`MAX_CYCLE` writes),
        every following block repeats too, until a regime boundary (an HDD zone), so whole
        blocks are counted at once.
        """
        if count == 1:  # the short pieces of a fragmented file: no bookkeeping
            return [(self.write_ns(disk_offset, length, now_ns), 1)]
        counts: dict[int, int] = {}
        history: list[tuple[object, int]] = []  # (state before the write, its service time)
        t, off, done = now_ns, disk_offset, 0
        while done < count:
            linear = self._linear(t, off, length, gap_ns, count - done)
            if linear is not None:  # a stretch of writes whose state moves linearly: counted at once
                writes, dur = linear
                counts[dur] = counts.get(dur, 0) + writes
                done += writes
                off += writes * length
                t += writes * (dur + gap_ns)
                history.clear()
                continue
            state = self._state(t, off)
            if state is not None:
                for period in range(1, min(MAX_CYCLE, len(history)) + 1):
                    if history[-period][0] == state:
                        block = [dur for _, dur in history[-period:]]
                        blocks = min((count - done) // period, self._regime_left(off, length) // period)
                        if blocks > 0:
                            elapsed = blocks * (sum(block) + period * gap_ns)
                            self._repeat(blocks * period, elapsed, length)
                            for dur in block:
                                counts[dur] = counts.get(dur, 0) + blocks
                            done += blocks * period
                            off += blocks * period * length
                            t += elapsed
                            history.clear()
                        break
                if done >= count:
                    break
                state = self._state(t, off)
            dur = self.write_ns(off, length, t)
            counts[dur] = counts.get(dur, 0) + 1
            history.append((state, dur))
            if len(history) > MAX_CYCLE:
                del history[0]
            done += 1
            off += length
            t += dur + gap_ns
        return list(counts.items())

    def _state(self, t: int, next_offset: int) -> object:
        """The device's state relative to time *t*, before a write at *next_offset*; None: unknown."""
        return None

    def _regime_left(self, next_offset: int, length: int) -> int:
        """Writes from *next_offset* that stay in the current regime (e.g. HDD zone)."""
        return 1 << 62

    def _linear(self, t: int, next_offset: int, length: int, gap_ns: int, limit: int) -> tuple[int, int] | None:
        """
        The next writes of a run whose service time is one constant while the state moves linearly.

        Returns (writes, service ns) -- at least 2 and at most *limit* writes, arriving at *t*, each
        *gap_ns* after the previous one completed -- with the device advanced past them exactly as
        :meth:`write_ns` called once per write would; None when the next write is not in such a
        stretch (it is then stepped). The default knows none.
        """
        return None

    def _repeat(self, writes: int, elapsed: int, length: int) -> None:
        """Advance the state by *writes* writes of *length* that took *elapsed* ns (a repeating cycle)."""


MAX_CYCLE = 16
"""Longest repeating pattern of device states batched mode looks for."""


class FixedDevice(DeviceBase):
    """
    Fixed latency plus bandwidth: ``latency + ceil(length / bandwidth)`` per command.

    Args:
        size: disk capacity in bytes.
        latency_ns: per-command latency.
        bandwidth: sequential transfer rate in bytes per second.
        flush_latency_ns: time for a cache flush.
    """

    def __init__(self, size: int, latency_ns: int, bandwidth: int, flush_latency_ns: int = 0, kind: str = "fixed") -> None:
        super().__init__(size, kind)
        self.latency_ns = latency_ns
        self.bandwidth = bandwidth
        self.flush_latency_ns = flush_latency_ns

    def write_ns(self, disk_offset: int, length: int, now_ns: int) -> int:
        """``latency + ceil(length × 10⁹ / bandwidth)`` ns."""
        return self.latency_ns + transfer_ns(length, self.bandwidth)

    def read_ns(self, disk_offset: int, length: int, now_ns: int) -> int:
        """A read costs what a write does: ``latency + ceil(length / bandwidth)``."""
        return self.latency_ns + transfer_ns(length, self.bandwidth)

    def min_service_ns(self, length: int, op: str) -> int:
        """Every command of *length* bytes takes the same time."""
        return self.latency_ns + transfer_ns(length, self.bandwidth)

    def flush_ns(self, now_ns: int) -> int:
        """The fixed flush latency."""
        return self.flush_latency_ns

    def worst_write_ns(self, length: int, longest: int) -> int:
        """Every write of *length* bytes takes the same time."""
        return self.latency_ns + transfer_ns(length, self.bandwidth)

    def _state(self, t: int, next_offset: int) -> object:
        return ()


class WriteBackCache:
    """
    A write-back cache drained by the media at a constant rate (a fluid model, exact in integers).

    Data enters at the interface rate ``interface_bw`` while there is room; the media drains dirty
    data at ``media_bw`` whenever there is some. A write of L bytes that finds F bytes free
    completes when its last byte has crossed the interface *and* found room::

        transfer = max(⌈L / interface_bw⌉, ⌈(L − F) / media_bw⌉)

    With no cache (capacity 0) that is L / media_bw. Time the media spends not writing data (a
    seek) is charged as extra dirty data: ``media_bw × seek time``. Dirty data is kept in
    byte-nanoseconds (bytes × 10⁹) so draining by ``media_bw`` bytes/s per ns stays integral; a
    write that had to wait for room leaves the cache exactly full.
    """

    def __init__(self, capacity: int, interface_bw: int, media_bw: int) -> None:
        self.capacity = capacity
        self.interface_bw = interface_bw
        self.media_bw = media_bw
        self.dirty = 0  # bytes × 10⁹
        self.t = 0

    def dirty_at(self, t: int) -> int:
        """Dirty data (bytes × 10⁹) left at time *t* if nothing arrives meanwhile."""
        return max(0, self.dirty - max(0, t - self.t) * self.media_bw)

    def _drain(self, t: int) -> None:
        if t > self.t:
            self.dirty = self.dirty_at(t)
            self.t = t

    def transfer(self, t: int, length: int, media_busy_ns: int = 0) -> int:
        """
        Admit *length* bytes starting at *t* (after *media_busy_ns* of non-data media work).

        Commands may overlap (the normal stack's device serves several at once): one that starts
        before the previous one's end (``t`` < the state's time) shares the one media with it --
        its data finds room only as the media drains from the state left by the commands before
        it, so parallel commands never drain faster than ``media_bw`` together. Serial commands
        (the dump path) never overlap, and for them this is the single-command formula above.
        """
        self._drain(t)
        behind = self.t - t if self.t > t else 0  # the media is still busy with earlier commands until self.t
        self.dirty += media_busy_ns * self.media_bw
        need = length * NS
        full = self.capacity * NS
        dur = _ceil_div(need, self.interface_bw)
        if need > full - self.dirty and (wait := behind + _ceil_div(need - (full - self.dirty), self.media_bw)) >= dur:
            # The write ended waiting for room: the cache is exactly full when it completes. (The
            # media's drain during the rounding, under 1 ns, is not credited: this keeps the
            # saturated state stationary, which batched mode relies on.)
            dur, self.dirty = wait, full
        else:
            self.dirty = min(full, max(0, self.dirty + need - max(0, dur - behind) * self.media_bw))
        self.t = max(self.t, t + dur)
        return dur

    def steady_run(self, t: int, length: int, idle_ns: int, limit: int) -> tuple[int, int] | None:
        """
        Serial writes of *length* bytes that each cross the interface unhindered: how many, and their transfer time.

        The first transfer starts at *t*; each next one starts *idle_ns* after the previous one
        ended. While a transfer neither waits for room nor leaves the cache empty or full, it takes
        ``d = ⌈L / interface_bw⌉`` and the dirty data at the next start changes by the same
        ``Δ = L − (d + idle) × media_bw`` (byte-ns): the cache fills (Δ > 0) or drains (Δ < 0)
        linearly. This finds the last write before that regime ends -- the fill that would make a
        write wait, or the drain that would empty the cache -- in O(1), and leaves the cache as
        :meth:`transfer` called once per write would. A cache found as a write that waited for
        room leaves it (exactly full, drained for *idle_ns*) is saturated: every write waits the
        same ``⌈(L − free) / media_bw⌉`` and leaves it full again, to the run's end. Returns
        (writes, transfer ns), writes between 2 and *limit* (all *limit* when saturated), or None
        when fewer than 2 writes are in either regime (or the media is busy at *t*).
        """
        if t < self.t or length <= 0 or limit < 2:
            return None
        m = self.media_bw
        need, full = length * NS, self.capacity * NS
        d = _ceil_div(need, self.interface_bw)
        x = self.dirty_at(t)  # dirty data when the transfer starts
        room = full - need + (d - 1) * m  # the most dirty data a transfer can find and not wait for room
        floor = max(0, d * m - need)  # the least it can find and not leave the cache empty
        if x > room:  # the transfer waits for room; stationary once the cache is full at each end (2nd write on)
            if x != max(0, full - idle_ns * m):
                return None
            wait = _ceil_div(need - (full - x), m)
            self.dirty = full
            self.t = t + (limit - 1) * (wait + idle_ns) + wait
            return limit, wait
        if x < floor:
            return None
        delta = need - (d + idle_ns) * m
        if delta > 0:
            writes = (room - x) // delta + 1
        elif delta < 0:
            writes = (x - floor) // -delta + 1
        else:
            writes = limit
        writes = min(writes, limit)
        if writes < 2:
            return None
        last = x + (writes - 1) * delta  # the dirty data the last write finds
        self.dirty = last + need - d * m
        self.t = t + (writes - 1) * (d + idle_ns) + d
        return writes, d

    def flush(self, t: int) -> int:
        """Time to write back everything dirty at *t*; the cache is clean afterwards."""
        self._drain(t)
        dur = _ceil_div(self.dirty, self.media_bw)
        self.dirty = 0
        self.t = t + dur
        return dur


class CachedDevice(DeviceBase):
    """
    An SSD (NVMe or SATA) or a RAM disk.

    Each write costs the command latency, then a transfer through a write-back cache (see
    :class:`WriteBackCache`).

    Args:
        size: capacity in bytes.
        latency_ns: per-command latency before data moves (QD1 write latency).
        bandwidth: interface / in-cache write rate, bytes per second.
        media_bandwidth: sustained media write rate once the cache is full (≤ bandwidth).
        cache: write cache (SLC cache or DRAM) in bytes; 0 for none.
        flush_latency_ns: fixed cost of the flush command, on top of draining.
        kind: ``nvme``, ``sata-ssd`` or ``ram`` (for reports).
        volatile_cache: whether a flush must drain the cache. An SSD's SLC cache is NAND: data in
            it is already non-volatile, so a flush does not wait for it to fold into TLC (False);
            a DRAM write cache must be written back (True).
    """

    def __init__(
        self,
        size: int,
        *,
        latency_ns: int,
        bandwidth: int,
        media_bandwidth: int | None = None,
        cache: int = 0,
        flush_latency_ns: int = 0,
        kind: str = "nvme",
        volatile_cache: bool = False,
    ) -> None:
        super().__init__(size, kind)
        self.latency_ns = latency_ns
        self.flush_latency_ns = flush_latency_ns
        self.volatile_cache = volatile_cache
        self.cache = WriteBackCache(cache, bandwidth, media_bandwidth or bandwidth)
        self.read_latency_ns = latency_ns
        """Per-command latency of a read (the NAND read time); :func:`runtime_preset` sets it per preset."""
        self.read_bandwidth = bandwidth
        """Sequential read rate, bytes per second."""

    def volatile_bytes_at(self, t: int) -> int:
        """The cache's dirty bytes at *t* when it is volatile (DRAM); an SLC cache is NAND already: 0."""
        return -(-self.cache.dirty_at(t) // 10**9) if self.volatile_cache else 0

    def write_ns(self, disk_offset: int, length: int, now_ns: int) -> int:
        """``latency + transfer`` through the cache."""
        return self.latency_ns + self.cache.transfer(now_ns + self.latency_ns, length)

    def read_ns(self, disk_offset: int, length: int, now_ns: int) -> int:
        """``read latency + length / read bandwidth``; the write cache is not involved (ASSUMPTION: no read hits in it)."""
        return self.read_latency_ns + transfer_ns(length, self.read_bandwidth)

    def min_service_ns(self, length: int, op: str) -> int:
        """A read's fixed time; a write's latency plus the transfer at the interface rate (an empty cache)."""
        if op == "read":
            return self.read_latency_ns + transfer_ns(length, self.read_bandwidth)
        return self.latency_ns + transfer_ns(length, self.cache.interface_bw)

    def link_ns(self, length: int, op: str) -> int:
        """The data at the read rate or the interface write rate."""
        return transfer_ns(length, self.read_bandwidth if op == "read" else self.cache.interface_bw)

    def flush_ns(self, now_ns: int) -> int:
        """``flush latency``, plus the time to drain the dirty data when the cache is volatile."""
        if not self.volatile_cache:
            return self.flush_latency_ns
        return self.flush_latency_ns + self.cache.flush(now_ns + self.flush_latency_ns)

    def worst_write_ns(self, length: int, longest: int) -> int:
        """``latency`` + the slower of the interface and the media rate (a full cache)."""
        c = self.cache
        return self.latency_ns + max(transfer_ns(length, c.interface_bw), transfer_ns(length, c.media_bw))

    def worst_read_ns(self, length: int, longest: int) -> int:
        """Reads do not depend on the state: ``read latency + length / read bandwidth``."""
        return self.read_latency_ns + transfer_ns(length, self.read_bandwidth)

    def save_state(self) -> tuple[object, ...]:
        """The write cache's fill and time."""
        return self.cache.dirty, self.cache.t

    def restore_state(self, state: tuple[object, ...]) -> None:
        """Put back the write cache's fill and time."""
        self.cache.dirty, self.cache.t = state  # type: ignore[assignment]

    def _state(self, t: int, next_offset: int) -> object:
        return self.cache.dirty_at(t + self.latency_ns)

    def _repeat(self, writes: int, elapsed: int, length: int) -> None:
        self.cache.t += elapsed

    def _linear(self, t: int, next_offset: int, length: int, gap_ns: int, limit: int) -> tuple[int, int] | None:
        run = self.cache.steady_run(t + self.latency_ns, length, gap_ns + self.latency_ns, limit)
        return None if run is None else (run[0], self.latency_ns + run[1])


class HddDevice(DeviceBase):
    """
    A spinning disk behind a small write-back cache.

    Every write that does not start where the previous one ended costs the media a seek plus half
    a rotation (the average rotational latency, 30/rpm s). The media rate is zoned: the disk is
    split into ``zones`` equal bands whose rates fall linearly from ``media_bandwidth`` (outer) to
    ``inner_media_bandwidth`` (inner). Sequential writes stream at the zone's media rate (the
    cache hides the rotation between back-to-back commands).

    Args:
        size: capacity in bytes.
        latency_ns: per-command overhead (controller, interface).
        bandwidth: interface rate (SATA 6 Gb/s ≈ 600 MB/s).
        media_bandwidth: outer-zone sustained rate.
        inner_media_bandwidth: inner-zone sustained rate.
        zones: number of zones.
        rpm: spindle speed.
        seek_ns: average seek time for a write.
        cache: DRAM write cache in bytes.
        flush_latency_ns: fixed cost of the flush command.
    """

    def __init__(
        self,
        size: int,
        *,
        latency_ns: int,
        bandwidth: int,
        media_bandwidth: int,
        inner_media_bandwidth: int,
        zones: int,
        rpm: int,
        seek_ns: int,
        cache: int = 0,
        flush_latency_ns: int = 0,
    ) -> None:
        super().__init__(size, "hdd")
        self.latency_ns = latency_ns
        self.outer = media_bandwidth
        self.inner = inner_media_bandwidth
        self.zones = zones
        self.half_rotation_ns = 30 * NS // rpm
        self.seek_ns = seek_ns
        self.flush_latency_ns = flush_latency_ns
        self.cache = WriteBackCache(cache, bandwidth, media_bandwidth)
        self.head: int | None = None  # where the next contiguous write would start
        self.seeks = 0

    def zone(self, disk_offset: int) -> int:
        """Zone number (0 = outermost) of *disk_offset*."""
        return min(self.zones - 1, disk_offset * self.zones // self.size)

    def zone_rate(self, zone: int) -> int:
        """Media rate of *zone*, bytes per second."""
        if self.zones == 1:
            return self.outer
        return self.outer - (self.outer - self.inner) * zone // (self.zones - 1)

    def volatile_bytes_at(self, t: int) -> int:
        """The DRAM write cache's dirty bytes at *t* (a disk's cache is volatile)."""
        return -(-self.cache.dirty_at(t) // 10**9)

    def write_ns(self, disk_offset: int, length: int, now_ns: int) -> int:
        """``latency + transfer``, the media charged a seek + half rotation when not contiguous."""
        positioning = 0
        if disk_offset != self.head:
            positioning = self.seek_ns + self.half_rotation_ns
            self.seeks += 1
        self.head = disk_offset + length
        self.cache.media_bw = self.zone_rate(self.zone(disk_offset))
        return self.latency_ns + self.cache.transfer(now_ns + self.latency_ns, length, positioning)

    def read_ns(self, disk_offset: int, length: int, now_ns: int) -> int:
        """
        ``latency + positioning + length / zone rate``: a read goes to the platter, not the cache.

        Positioning (seek + half a rotation) is paid when the read does not start where the head
        is (the end of the previous command). ASSUMPTION: the read seek equals the write seek,
        reads do not wait for the cache to drain, and NCQ does not reorder commands.
        """
        positioning = 0
        if disk_offset != self.head:
            positioning = self.seek_ns + self.half_rotation_ns
            self.seeks += 1
        self.head = disk_offset + length
        return self.latency_ns + positioning + transfer_ns(length, self.zone_rate(self.zone(disk_offset)))

    def min_service_ns(self, length: int, op: str) -> int:
        """A write into an empty cache at the interface rate; a sequential read at the fastest zone's rate."""
        if op == "read":
            return self.latency_ns + transfer_ns(length, max(self.outer, self.inner))
        return self.latency_ns + transfer_ns(length, self.cache.interface_bw)

    def flush_ns(self, now_ns: int) -> int:
        """``flush latency + time to drain the dirty data``."""
        return self.flush_latency_ns + self.cache.flush(now_ns + self.flush_latency_ns)

    def worst_write_ns(self, length: int, longest: int) -> int:
        """``latency`` + a seek, half a rotation and the transfer at the slowest zone's rate into a full cache."""
        slowest = min(self.outer, self.inner)
        media = transfer_ns(length, slowest) + self.seek_ns + self.half_rotation_ns
        return self.latency_ns + max(transfer_ns(length, self.cache.interface_bw), media)

    def worst_read_ns(self, length: int, longest: int) -> int:
        """``latency`` + a seek, half a rotation and the transfer at the slowest zone's rate."""
        return self.latency_ns + self.seek_ns + self.half_rotation_ns + transfer_ns(length, min(self.outer, self.inner))

    def save_state(self) -> tuple[object, ...]:
        """The cache's fill, time and media rate, the head position and the seek count."""
        c = self.cache
        return c.dirty, c.t, c.media_bw, self.head, self.seeks

    def restore_state(self, state: tuple[object, ...]) -> None:
        """Put back the cache, the head and the seek count."""
        c = self.cache
        c.dirty, c.t, c.media_bw, self.head, self.seeks = state  # type: ignore[assignment]

    def _state(self, t: int, next_offset: int) -> object:
        return (self.zone(next_offset), next_offset == self.head, self.cache.dirty_at(t + self.latency_ns))

    def _regime_left(self, next_offset: int, length: int) -> int:
        zone_end = (self.zone(next_offset) + 1) * self.size // self.zones
        return max(0, (zone_end - next_offset) // length)

    def _repeat(self, writes: int, elapsed: int, length: int) -> None:
        self.cache.t += elapsed
        assert self.head is not None
        self.head += writes * length

    def _linear(self, t: int, next_offset: int, length: int, gap_ns: int, limit: int) -> tuple[int, int] | None:
        if next_offset != self.head:  # a seek first: stepped
            return None
        left = min(limit, self._regime_left(next_offset, length))  # one zone, one media rate
        c = self.cache
        saved = c.media_bw
        c.media_bw = self.zone_rate(self.zone(next_offset))  # what write_ns sets before the transfer
        run = c.steady_run(t + self.latency_ns, length, gap_ns + self.latency_ns, left)
        if run is None:
            c.media_bw = saved
            return None
        self.head = next_offset + run[0] * length
        return run[0], self.latency_ns + run[1]


class VirtualDisk(DeviceBase):
    """
    A cloud VM disk: a fast backend throttled by the disk's IOPS and throughput caps.

    Each command of L bytes counts as ⌈L / io_unit⌉ IOs and may not start before the previous one
    started plus ``max(IOs / iops_limit, L / bandwidth_limit)``; it then takes
    ``latency + L / bandwidth`` (the backend). At queue depth 1 the caps set the pace as soon as
    the backend is faster than them -- why small cloud disks write dumps slowly.

    Args:
        size: capacity in bytes.
        latency_ns: backend latency per command.
        bandwidth: backend transfer rate.
        iops_limit: provisioned IOPS.
        bandwidth_limit: provisioned throughput, bytes per second.
        io_unit: bytes counted as one IO (Azure counts IOs of up to 256 KiB as one).
        flush_latency_ns: cost of a flush.
    """

    def __init__(
        self,
        size: int,
        *,
        latency_ns: int,
        bandwidth: int,
        iops_limit: int,
        bandwidth_limit: int,
        io_unit: int = 256 * 1024,
        flush_latency_ns: int = 0,
    ) -> None:
        super().__init__(size, "virtual")
        self.latency_ns = latency_ns
        self.bandwidth = bandwidth
        self.iops_limit = iops_limit
        self.bandwidth_limit = bandwidth_limit
        self.io_unit = io_unit
        self.flush_latency_ns = flush_latency_ns
        self.next_allowed = 0

    def write_ns(self, disk_offset: int, length: int, now_ns: int) -> int:
        """Throttle wait, then ``latency + length / bandwidth``."""
        start = max(now_ns, self.next_allowed)
        self.next_allowed = start + self._budget(length)
        return (start - now_ns) + self.latency_ns + transfer_ns(length, self.bandwidth)

    def read_ns(self, disk_offset: int, length: int, now_ns: int) -> int:
        """Reads count against the same caps as writes and cost the same: throttle wait, then the backend."""
        return self.write_ns(disk_offset, length, now_ns)

    def min_service_ns(self, length: int, op: str) -> int:
        """The backend's time with no throttle wait."""
        return self.latency_ns + transfer_ns(length, self.bandwidth)

    def flush_ns(self, now_ns: int) -> int:
        """The flush latency (the backend is durable; nothing to drain)."""
        return self.flush_latency_ns

    def _budget(self, length: int) -> int:
        ios = _ceil_div(length, self.io_unit)
        return max(_ceil_div(ios * NS, self.iops_limit), _ceil_div(length * NS, self.bandwidth_limit))

    def worst_write_ns(self, length: int, longest: int) -> int:
        """The budget of the longest previous command, then ``latency + length / bandwidth``."""
        return self._budget(longest) + self.latency_ns + transfer_ns(length, self.bandwidth)

    def save_state(self) -> tuple[object, ...]:
        """When the throttle lets the next command start."""
        return (self.next_allowed,)

    def restore_state(self, state: tuple[object, ...]) -> None:
        """Put back the throttle."""
        (self.next_allowed,) = state  # type: ignore[assignment]

    def _state(self, t: int, next_offset: int) -> object:
        return max(0, self.next_allowed - t)

    def _repeat(self, writes: int, elapsed: int, length: int) -> None:
        self.next_allowed += elapsed


# -- presets ------------------------------------------------------------------------------------
# Every value is in scenario units (ns, bytes, bytes/s). Sources are in docs/reference/devices.md;
# "ASSUMPTION" marks values no source gives.

MODELS: dict[str, tuple[str, ...]] = {
    "fixed": ("latency", "bandwidth", "flush"),
    "ssd": ("latency", "bandwidth", "media_bandwidth", "cache", "volatile_cache", "flush"),
    "ram": ("latency", "bandwidth", "flush"),
    "hdd": ("latency", "bandwidth", "media_bandwidth", "inner_media_bandwidth", "cache", "zones", "rpm", "seek", "flush"),
    "virtual": ("latency", "bandwidth", "iops_limit", "bandwidth_limit", "io_unit", "flush"),
}
"""The ``[disk]`` keys each model takes (besides ``preset``, ``model`` and ``size``)."""

MB = 10**6
GB_ = 10**9


class DevicePreset:
    """A named set of ``[disk]`` values with its kind and where the numbers come from."""

    def __init__(self, name: str, kind: str, model: str, params: dict[str, int], source: str, size: int) -> None:
        self.name = name
        self.kind = kind
        self.model = model
        self.params = params
        self.source = source
        self.size = size

    def as_dict(self) -> dict[str, object]:
        """What ``stacksim devices --json`` prints."""
        p = self.params
        return {
            "name": self.name,
            "kind": self.kind,
            "model": self.model,
            "bandwidth_bytes_per_s": p["bandwidth"] if self.model != "virtual" else min(p["bandwidth"], p["bandwidth_limit"]),
            "latency_ns": p["latency"],
            "size_bytes": self.size,
            "parameters": dict(p),
            "source": self.source,
        }


DEVICE_PRESETS: dict[str, DevicePreset] = {
    p.name: p
    for p in (
        DevicePreset(
            "nvme-pcie3",
            "nvme",
            "ssd",
            {"latency": 17_000, "bandwidth": 3300 * MB, "media_bandwidth": 1700 * MB, "cache": 42 * GB_, "flush": 100_000},
            "Samsung 970 EVO Plus 1TB datasheet: 3,300 MB/s write, 42 GB TurboWrite, 1,700 MB/s after it; "
            "latency from 60k QD1 4K write IOPS; flush ASSUMPTION",
            10**12,
        ),
        DevicePreset(
            "nvme-pcie4",
            "nvme",
            "ssd",
            {"latency": 17_000, "bandwidth": 5000 * MB, "media_bandwidth": 1500 * MB, "cache": 113 * GB_, "flush": 100_000},
            "Samsung 980 PRO 1TB: 5,000 MB/s write (vendor); 113 GB cache then 1.5 GB/s (TechPowerUp, measured); "
            "latency from QD1 IOPS; flush ASSUMPTION",
            10**12,
        ),
        DevicePreset(
            "nvme-pcie5",
            "nvme",
            "ssd",
            {"latency": 15_000, "bandwidth": 11_800 * MB, "media_bandwidth": 1000 * MB, "cache": 660 * GB_, "flush": 100_000},
            "Crucial T700 2TB: 11,800 MB/s write (vendor); cache and after-cache rate of the same-controller "
            "Corsair MP700 2TB (TechPowerUp, measured); latency ASSUMPTION (no QD1 figure published)",
            2 * 10**12,
        ),
        DevicePreset(
            "sata-ssd",
            "sata-ssd",
            "ssd",
            {"latency": 40_000, "bandwidth": 510 * MB, "media_bandwidth": 400 * MB, "cache": 64 * GB_, "flush": 200_000},
            "Crucial MX500 1TB: 510 MB/s write (vendor); 64 GB SLC cache then ~400 MB/s (TechPowerUp, measured); "
            "latency and flush ASSUMPTION",
            10**12,
        ),
        DevicePreset(
            "hdd-7200",
            "hdd",
            "hdd",
            {
                "latency": 50_000,
                "bandwidth": 600 * MB,
                "media_bandwidth": 210 * MB,
                "inner_media_bandwidth": 100 * MB,
                "cache": 64 * MB,
                "zones": 30,
                "rpm": 7200,
                "seek": 8_200_000,
                "flush": 1_000_000,
            },
            "Seagate BarraCuda 1TB: 210 MB/s OD, 64 MB cache; WD Ultrastar HC310: 8.2 ms write seek; inner/outer 0.48 "
            "and 30 zones from the Hitachi Deskstar 7K500 zone table; SATA 6 Gb/s = 600 MB/s; command latency and "
            "flush ASSUMPTION",
            10**12,
        ),
        DevicePreset(
            "azure-premium-p10",
            "virtual",
            "virtual",
            {
                "latency": 1_000_000,
                "bandwidth": 1000 * MB,
                "iops_limit": 500,
                "bandwidth_limit": 100 * MB,
                "io_unit": 256 * 1024,
                "flush": 0,
            },
            "Azure Premium SSD P10: 500 IOPS, 100 MB/s, IOs up to 256 KiB count once (azure-docs); bursting not "
            "modelled; 1 ms backend latency ASSUMPTION",
            128 * 2**30,
        ),
        DevicePreset(
            "azure-premium-p30",
            "virtual",
            "virtual",
            {
                "latency": 1_000_000,
                "bandwidth": 1000 * MB,
                "iops_limit": 5000,
                "bandwidth_limit": 200 * MB,
                "io_unit": 256 * 1024,
                "flush": 0,
            },
            "Azure Premium SSD P30: 5,000 IOPS, 200 MB/s (azure-docs); 1 ms backend latency ASSUMPTION",
            1024 * 2**30,
        ),
        DevicePreset(
            "azure-standard-hdd-s10",
            "virtual",
            "virtual",
            {
                "latency": 5_000_000,
                "bandwidth": 1000 * MB,
                "iops_limit": 500,
                "bandwidth_limit": 60 * MB,
                "io_unit": 256 * 1024,
                "flush": 0,
            },
            "Azure Standard HDD S10: 500 IOPS, 60 MB/s (azure-docs); 5 ms backend latency ASSUMPTION",
            128 * 2**30,
        ),
        DevicePreset(
            "aws-gp3",
            "virtual",
            "virtual",
            {
                "latency": 1_000_000,
                "bandwidth": 1000 * MB,
                "iops_limit": 3000,
                "bandwidth_limit": 125 * 2**20,
                "io_unit": 256 * 1024,
                "flush": 0,
            },
            "AWS EBS gp3 baseline: 3,000 IOPS, 125 MiB/s (amazon-ec2-user-guide); IO unit and 1 ms latency ASSUMPTION",
            512 * 2**30,
        ),
        DevicePreset(
            "ram-disk",
            "ram",
            "ram",
            {"latency": 1_000, "bandwidth": 10 * GB_, "flush": 0},
            "ASSUMPTION: a memory copy at ~10 GB/s and 1 µs per command",
            64 * 2**30,
        ),
    )
}
"""Device presets by name; ``[disk] preset = "<name>"``. Keys given beside the preset override it."""


class RuntimePreset:
    """What the normal (runtime) stack needs of a preset beyond its writes: reads and internal parallelism."""

    def __init__(self, read_latency: int | None, read_bandwidth: int | None, parallelism: int, source: str) -> None:
        self.read_latency = read_latency
        self.read_bandwidth = read_bandwidth
        self.parallelism = parallelism
        self.source = source


_NAND_CHANNELS = "one command per NAND channel of the controller is an ASSUMPTION (controller channel count from the vendor)"

RUNTIME_PRESETS: dict[str, RuntimePreset] = {
    "nvme-pcie3": RuntimePreset(
        52_000,
        3500 * MB,
        8,
        "Samsung 970 EVO Plus 1TB datasheet: 3,500 MB/s read, 19,000 QD1 4K random-read IOPS (latency derived as for "
        f"writes); Phoenix controller, 8 channels; {_NAND_CHANNELS}",
    ),
    "nvme-pcie4": RuntimePreset(
        45_000,
        7000 * MB,
        8,
        "Samsung 980 PRO 1TB datasheet: 7,000 MB/s read, 22,000 QD1 4K random-read IOPS (latency derived as for "
        f"writes); Elpis controller, 8 channels; {_NAND_CHANNELS}",
    ),
    "nvme-pcie5": RuntimePreset(
        45_000,
        12_400 * MB,
        8,
        f"Crucial T700 2TB: 12,400 MB/s read (vendor); Phison E26, 8 channels; {_NAND_CHANNELS}; read latency ASSUMPTION",
    ),
    "sata-ssd": RuntimePreset(
        90_000,
        560 * MB,
        4,
        f"Crucial MX500 1TB: 560 MB/s read (vendor); Silicon Motion SM2258, 4 channels; {_NAND_CHANNELS}; "
        "read latency ASSUMPTION",
    ),
    "hdd-7200": RuntimePreset(
        None, None, 1, "one actuator serves one command at a time; NCQ reordering is not modelled (ASSUMPTION)"
    ),
    "azure-premium-p10": RuntimePreset(None, None, 8, "reads throttled like writes; parallelism 8 ASSUMPTION"),
    "azure-premium-p30": RuntimePreset(None, None, 8, "reads throttled like writes; parallelism 8 ASSUMPTION"),
    "azure-standard-hdd-s10": RuntimePreset(None, None, 8, "reads throttled like writes; parallelism 8 ASSUMPTION"),
    "aws-gp3": RuntimePreset(None, None, 8, "reads throttled like writes; parallelism 8 ASSUMPTION"),
    "ram-disk": RuntimePreset(None, None, 1, "ASSUMPTION: one memory copy at a time, reads as fast as writes"),
}
"""Per preset: read latency (ns) and rate (B/s; ``None``: the write values) and commands served at once."""

FIXED_RUNTIME = RuntimePreset(None, None, 1, "ASSUMPTION: reads cost what writes do, one command at a time")
"""``model = "fixed"``: no preset behind it."""


def runtime_preset(preset: str | None, model: str) -> RuntimePreset:
    """The runtime parameters for ``[disk] preset`` (or the model's default preset)."""
    if preset is None:
        if model == "fixed":
            return FIXED_RUNTIME
        preset = DEFAULT_PRESET[model]
    return RUNTIME_PRESETS[preset]


DEFAULT_PRESET = {"ssd": "nvme-pcie3", "hdd": "hdd-7200", "virtual": "azure-premium-p10", "ram": "ram-disk"}
"""The preset a bare ``model = "..."`` starts from."""

FIXED_DEFAULTS = {"latency": 20_000, "bandwidth": 3 * GB_, "flush": 0}
"""``model = "fixed"`` defaults (ASSUMPTION)."""


def build_device(model: str, params: dict[str, int], size: int, kind: str) -> DeviceBase:
    """Instantiate *model* with resolved *params* (scenario key names, canonical units)."""
    p = params
    if model == "fixed":
        return FixedDevice(size, p["latency"], p["bandwidth"], p["flush"], kind=kind)
    if model in ("ssd", "ram"):
        return CachedDevice(
            size,
            latency_ns=p["latency"],
            bandwidth=p["bandwidth"],
            media_bandwidth=p.get("media_bandwidth"),
            cache=p.get("cache", 0),
            flush_latency_ns=p["flush"],
            kind=kind,
            volatile_cache=bool(p.get("volatile_cache", 0)),
        )
    if model == "hdd":
        return HddDevice(
            size,
            latency_ns=p["latency"],
            bandwidth=p["bandwidth"],
            media_bandwidth=p["media_bandwidth"],
            inner_media_bandwidth=p["inner_media_bandwidth"],
            zones=p["zones"],
            rpm=p["rpm"],
            seek_ns=p["seek"],
            cache=p["cache"],
            flush_latency_ns=p["flush"],
        )
    if model == "virtual":
        return VirtualDisk(
            size,
            latency_ns=p["latency"],
            bandwidth=p["bandwidth"],
            iops_limit=p["iops_limit"],
            bandwidth_limit=p["bandwidth_limit"],
            io_unit=p["io_unit"],
            flush_latency_ns=p["flush"],
        )
    raise ValueError(f"unknown device model {model!r}")
