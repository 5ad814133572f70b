"""
Disk device models: how long the device takes to complete one command.

A device is called synchronously by the dump port (crash mode polls for completion; the CPU
spins while the device works), so a model is a plain object with a service-time function, not
a task. Richer models (NVMe, SATA, HDD seek and rotation, write-back cache, virtual-disk caps)
come with their presets and cited sources in ``docs/reference/devices.md``.

:class:`FixedDevice` -- ``model = "fixed"`` -- is the first-order model the fact sheet suggests
(§8 [INF]): each write costs a fixed command latency plus its bytes over the sequential
bandwidth, rounded up to whole nanoseconds; a cache flush costs a fixed time.
"""

from __future__ import annotations

from stacksim.metrics import LayerStats
from stacksim.units import transfer_ns

__all__ = ["DeviceBase", "FixedDevice"]


class DeviceBase:
    """
    Contract of a device model. Offsets are absolute disk byte offsets.

    ``stats`` holds one entry per command (writes, reads and flushes) under the layer name
    ``device``.
    """

    kind = "abstract"

    def __init__(self, size: int) -> None:
        self.size = size
        self.stats = LayerStats("device")

    def write_ns(self, disk_offset: int, length: int, now_ns: int) -> int:
        """Service time of a write command that starts at *now_ns*."""
        raise NotImplementedError

    def write_run_ns(self, disk_offset: int, length: int, count: int, now_ns: int, gap_ns: int) -> list[tuple[int, int]]:
        """
        Service times of *count* consecutive writes of *length* bytes from *disk_offset*.

        The first starts at *now_ns*; each next one starts *gap_ns* after the previous one
        completed (the time the layers above spend per request). Returns (service ns, count)
        segments in order, which must equal what *count* calls of :meth:`write_ns` give. This
        default does exactly that, one call per write; models override it with a closed form.
        """
        out: list[tuple[int, int]] = []
        t = now_ns
        for i in range(count):
            dur = self.write_ns(disk_offset + i * length, length, t)
            if out and out[-1][0] == dur:
                out[-1] = (dur, out[-1][1] + 1)
            else:
                out.append((dur, 1))
            t += dur + gap_ns
        return out

    def read_ns(self, disk_offset: int, length: int, now_ns: int) -> int:
        """Service time of a read command that starts at *now_ns*."""
        return self.write_ns(disk_offset, length, now_ns)

    def flush_ns(self, now_ns: int) -> int:
        """Service time of a cache flush (SYNCHRONIZE CACHE / NVMe Flush)."""
        raise NotImplementedError


class FixedDevice(DeviceBase):
    """
    Fixed latency plus bandwidth: ``latency + ceil(length / bandwidth)`` per command.

    Args:
        size: disk capacity in bytes.
        latency_ns: per-command latency.
        bandwidth: sequential transfer rate in bytes per second.
        flush_latency_ns: time for a cache flush.
    """

    kind = "fixed"

    def __init__(self, size: int, latency_ns: int, bandwidth: int, flush_latency_ns: int = 0) -> None:
        super().__init__(size)
        self.latency_ns = latency_ns
        self.bandwidth = bandwidth
        self.flush_latency_ns = flush_latency_ns

    def write_ns(self, disk_offset: int, length: int, now_ns: int) -> int:
        """``latency + ceil(length × 10⁹ / bandwidth)`` ns."""
        return self.latency_ns + transfer_ns(length, self.bandwidth)

    def write_run_ns(self, disk_offset: int, length: int, count: int, now_ns: int, gap_ns: int) -> list[tuple[int, int]]:
        """Every write of a run takes the same time."""
        return [(self.write_ns(disk_offset, length, now_ns), count)]

    def flush_ns(self, now_ns: int) -> int:
        """The fixed flush latency."""
        return self.flush_latency_ns
