"""
The dump port and miniport: a private copy of the boot disk's driver in polled, dump mode.

Windows loads a copy of the boot disk's port and miniport drivers under the prefix ``dump_``
(crash stack) or ``hiber_`` (hibernation stack) [WI S20; DOC S11]. In dump mode the miniport
runs at HIGH_LEVEL with interrupts off, completes requests by polling and never has more than
one request outstanding per logical unit [DOC S13; SRC S15]. So this layer:

* at **start** re-initialises the adapter (storahci performs a full HBA reset in dump mode
  [SRC S15]): ``dump_port.reset``;
* per **write** spends ``per_request_overhead`` building and polling the command, then waits for
  the device (which the CPU spins on); one request at a time (the ``qd1`` rule of
  :mod:`stacksim.check` verifies it on every trace);
* at **finish** flushes the device cache (SYNCHRONIZE CACHE before SHUTDOWN/STANDBY [SRC S15];
  "the dump port driver generally flushes the cache" [DOC S8]);
* gives up on any command (a write or the flush) that has not completed after ``dump_port.timeout``
  of polling: it fails it with status ``io_timeout``, whether a ``device_timeout`` fault holds it
  or the device is simply that slow (``docs/reference/faults.md``).

The largest transfer it accepts is ``dump_port.max_transfer``; ``MaxPagesPerWrite`` handed to the
filters is derived from it: ``max_transfer // PAGE_SIZE`` (assumption: the fact sheet §1.8 ties
MaxPagesPerWrite to the dump port's transfer limit, historically 64 KiB).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import trio

from stacksim._engine import Engine
from stacksim.faults import DeviceFault
from stacksim.metrics import LayerStats
from stacksim.requests import PAGE_SIZE, SECTOR_SIZE, Op, OpKind, status_name
from stacksim.units import format_bytes, format_ns, format_ns_pair

if TYPE_CHECKING:
    from stacksim.devices import DeviceBase
    from stacksim.diskimage import DiskImage
    from stacksim.layout import FileLayout

__all__ = ["DEFAULT_PORT", "PORT_PRESETS", "DumpPort", "PortPreset", "max_pages_per_write"]

COMMON_BUFFERS = 2
"""Dump-mode common buffers the dump port allocates [RE S29: two of IO_DUMP_COMMON_BUFFER_SIZE]."""


def max_pages_per_write(max_transfer: int, common_buffer: int | None = None) -> int:
    """
    ``MaxPagesPerWrite`` handed to filters: the dump-mode transfer limit in pages.

    Rule (ASSUMPTION built on RE S29 and DOC S12b): a write is limited by the miniport's
    ``MaximumTransferLength`` in crash dump mode and by the port's two common buffers, so
    ``min(max_transfer, 2 × common_buffer) // PAGE_SIZE``.
    """
    limit = max_transfer if common_buffer is None else min(max_transfer, COMMON_BUFFERS * common_buffer)
    return limit // PAGE_SIZE


@dataclass(frozen=True, slots=True)
class PortPreset:
    """A dump-mode port/miniport variant: its driver name, limits and costs (ns, bytes)."""

    name: str
    driver: str
    max_transfer: int
    common_buffer: int
    per_request_overhead: int
    reset: int
    source: str

    def with_(self, **changes: object) -> PortPreset:
        """A copy with *changes*."""
        return replace(self, **changes)  # type: ignore[arg-type]

    @property
    def max_pages_per_write(self) -> int:
        """See :func:`max_pages_per_write`."""
        return max_pages_per_write(self.max_transfer, self.common_buffer)


PORT_PRESETS: dict[str, PortPreset] = {
    p.name: p
    for p in (
        PortPreset(
            "stornvme",
            "stornvme",
            256 * 1024,
            128 * 1024,
            5_000,
            2_000_000,
            "NVMe: controller disable/enable at dump start; transfer limits, overhead and reset time ASSUMPTION",
        ),
        PortPreset(
            "storahci",
            "storahci",
            128 * 1024,
            64 * 1024,
            8_000,
            20_000_000,
            "AHCI: full HBA reset in dump mode when GHC.AE is set [SRC S15], then COMRESET and port start; "
            "64 KiB common buffers [RE S29]; times ASSUMPTION",
        ),
        PortPreset(
            "storvsc",
            "storvsc",
            256 * 1024,
            64 * 1024,
            30_000,
            1_000_000,
            "Hyper-V synthetic storage (dump_storvsc.sys [ANEC S32]): VMBus round trip per request; dump-mode "
            "uncached memory limited to 64 KiB [SRC S37]; times ASSUMPTION",
        ),
    )
}
"""Dump port presets by name; ``[dump_port] preset = "<name>"``."""

DEFAULT_PORT = PortPreset(
    "default",
    "stornvme",
    64 * 1024,
    64 * 1024,
    5_000,
    1_000_000,
    "historical 64 KiB dump transfers [RE S29]; overhead and reset ASSUMPTION",
)
"""The port a scenario gets without a preset."""


class DumpPort:
    """
    The dump port + miniport layer (layer name ``miniport``), driving one device.

    Args:
        engine: the run's engine.
        device: the device model it polls.
        layout: the target file (for the partition offset and bounds checks).
        max_transfer: largest transfer in dump mode, bytes.
        per_request_overhead_ns: CPU time to build, submit and poll one command.
        reset_ns: adapter re-initialisation at dump start.
        image: image name for reports, e.g. ``dump_stornvme.sys``.
        dump_type: ``crashdump`` or ``hibernation`` (for trace records).
        faults: device faults to inject (:mod:`stacksim.faults`).
        timeout_ns: how long the port polls a command that does not complete before failing it.
        disk_image: data mode: where each completed write's bytes go (:class:`~stacksim.diskimage.DiskImage`).
    """

    def __init__(
        self,
        engine: Engine,
        device: DeviceBase,
        layout: FileLayout,
        *,
        max_transfer: int,
        per_request_overhead_ns: int,
        reset_ns: int,
        image: str,
        dump_type: str,
        faults: list[DeviceFault] | None = None,
        timeout_ns: int = 10 * 10**9,
        disk_image: DiskImage | None = None,
    ) -> None:
        self.engine = engine
        self.disk_image = disk_image
        self.device = device
        self.layout = layout
        self.max_transfer = max_transfer
        self.per_request_overhead_ns = per_request_overhead_ns
        self.reset_ns = reset_ns
        self.image = image
        self.dump_type = dump_type
        self.faults = faults or []
        self._by_request: dict[int, list[int]] = {}
        """Indexes into ``faults`` of the faults placed by request number, by that number."""
        placed = sorted((f.at_offset, i) for i, f in enumerate(self.faults) if f.at_offset is not None)
        self._offsets = [o for o, _ in placed]
        self._offset_faults = [i for _, i in placed]
        for i, f in enumerate(self.faults):
            if f.at_request is not None:
                self._by_request.setdefault(f.at_request, []).append(i)
        self.fired: set[int] = set()
        """Indexes into ``faults`` of the faults that hit a write."""
        self.timeout_ns = timeout_ns
        self.stats = LayerStats("miniport")
        self.bytes_written = 0
        self.warnings: list[str] = []
        self.last_done_ns = 0
        """When the previous write completed: the issue time of a pipelined write (issued_ns -1)."""
        self.reset_drops: list[int] | None = None
        """The normal-stack requests (numbered from 1) the device held at the bugcheck: the reset at ``port_init``
        drops them; ``None`` when no normal stack ran. The trace's ``port_init`` names them."""

    async def run(self, receive: trio.MemoryReceiveChannel[Op], complete: trio.MemorySendChannel[Op]) -> None:
        """The layer's task: serve each operation, then hand it back to the dump driver."""
        take = receive.receive  # not `async for`: one coroutine less per request
        take_now = receive.receive_nowait
        engine = self.engine
        write, window = OpKind.WRITE, OpKind.WINDOW
        while True:
            try:
                try:  # pipelined: serve every write already queued in this one scheduler step
                    op = take_now() if engine.pipelined else await take()
                except trio.WouldBlock:
                    op = await take()
            except trio.EndOfChannel:
                return
            if op.kind is window:  # pipelined: the writes in flight, served in order, handed back as one message
                assert op.ops is not None
                for each in op.ops:
                    self._write(each)
                complete.send_nowait(op)
                continue
            if op.kind is write:
                self._write(op)
            elif op.kind is OpKind.START:
                drops = self.reset_drops
                detail = None if drops is None else {"dropped": len(drops), "requests": drops}
                self._timed_step("port_init", self.reset_ns, detail)
            elif op.kind is OpKind.FINISH:
                self._flush(op)
            elif op.kind is OpKind.READ:
                self._read(op)
            else:  # pragma: no cover - every kind the dump and resume paths send is served above
                op.error = f"{self.image} cannot serve {op.kind.value}"
            complete.send_nowait(op)

    def _timed_step(self, event: str, dur: int, detail: dict[str, object] | None = None) -> None:
        engine = self.engine
        t0 = engine.now_ns
        engine.advance(dur)
        self.stats.record(dur)
        if engine.observed:
            engine.phase(t0, "miniport", event, dur, dump_type=self.dump_type, detail=detail)

    def _flush(self, op: Op) -> None:
        engine = self.engine
        t0 = engine.now_ns
        dur = self.device.flush_ns(t0)
        if dur > self.timeout_ns:  # the port gives up polling the flush, as it would a write
            engine.advance(self.timeout_ns)
            self.stats.record(self.timeout_ns)
            if engine.observed:  # the flush, cut off at the timeout; the dump_failed after it says why
                engine.phase(t0, "device", "flush", self.timeout_ns, dump_type=self.dump_type)
            limit, needed = format_ns_pair(self.timeout_ns, dur)
            op.error = (
                f"the cache flush did not complete within the port's {limit} timeout "
                f"(the device needed {needed} to write its cache back)"
            )
            op.fault = "io_timeout"
            return
        engine.advance(dur)
        loss = engine.trace_until_ns  # (a power_loss fault: the flush stops there, and so does its time)
        ran = dur if loss is None or t0 + dur <= loss else max(0, loss - t0)
        self.device.stats.record(ran)
        if engine.observed:
            engine.phase(t0, "device", "flush", ran, dump_type=self.dump_type)

    def may_time_out(self, length: int) -> str | None:
        """
        Why a write of *length* bytes could outlast the port's timeout (None: it cannot).

        Batched mode stands for a run of writes with one message only when none of them can time
        out; the dump driver sends these writes one by one instead, so the write that times out
        fails exactly as in request mode.
        """
        worst = self.device.worst_write_ns(length, self.max_transfer)
        if worst <= self.timeout_ns:
            return None
        return (
            f"a {format_bytes(length)} write can take the device up to {format_ns(worst)}, longer than the port's "
            f"{format_ns(self.timeout_ns)} timeout, so such writes went one at a time"
        )

    def _fault_for(self, number: int, offset: int, length: int, attempt: int) -> int | None:
        """
        The first fault (in scenario order) that hits this attempt of write *number*, by index.

        Every fault that hits it counts as fired (they all hit the write; the first listed
        decides its status).
        """
        faults = self.faults
        hits = [i for i in self._by_request.get(number, ()) if faults[i].hits(number, offset, length, attempt)]
        offsets = self._offsets
        if offsets:
            for k in range(bisect.bisect_left(offsets, offset), bisect.bisect_left(offsets, offset + length)):
                i = self._offset_faults[k]
                if faults[i].hits(number, offset, length, attempt):
                    hits.append(i)
        if not hits:
            return None
        self.fired.update(hits)
        return min(hits)

    def unfired_faults(self, writes: int, plan_bytes: int) -> list[str]:
        """
        A warning for each device fault that never hit a write, saying why when it could not.

        *writes* is the number of writes the dump has and *plan_bytes* the bytes it fills at the
        start of the target file.
        """
        out = []
        layout = self.layout
        for i, f in enumerate(self.faults):
            if i in self.fired:
                continue
            kind = "device_error" if f.action == "error" else "device_timeout"
            if f.at_request is not None:
                where = f"{kind} at_request = {f.at_request:,}"
                why = (
                    f"past the last write (the dump has {writes:,} writes)"
                    if f.at_request > writes
                    else "the dump ended before it"
                )
            else:
                assert f.at_offset is not None
                where = f"{kind} at_offset = {f.at_offset:,}"
                pos = layout.file_position(f.at_offset)
                if pos is None:
                    why = f"no write goes there: the offset is outside the {layout.target}'s disk runs"
                elif pos >= plan_bytes:
                    why = f"past the end of the dump (file offset {pos:,}; the dump fills the first {plan_bytes:,} bytes)"
                else:
                    why = "the dump ended before it"
            out.append(f"fault {where} never fired: {why}")
        return out

    def _write(self, op: Op) -> None:
        request = op.request
        assert request is not None
        if request.count > 1:
            self._write_run(op)
            return
        # One request at a time: this runs to completion without yielding, and in simulated time
        # the next write starts only when this one has completed (pipelined or not).
        offset, length = request.offset, request.length
        if length > self.max_transfer or offset % SECTOR_SIZE or length % SECTOR_SIZE or length <= 0:
            op.error = (
                f"{self.image} rejected request #{request.number}: offset {offset}, length {length} "
                f"(must be sector aligned and 1..{self.max_transfer} bytes)"
            )
            op.fault = "io_error"
            return
        layout = self.layout
        if not layout.contains(offset, length) and len(self.warnings) < 20:
            self.warnings.append(
                f"request #{request.number} wrote {length} bytes at partition offset {offset}, "
                f"outside the {layout.target} file's disk runs"
            )
        disk_offset = layout.partition_offset + offset
        device = self.device
        if disk_offset + length > device.size:
            op.error = f"request #{request.number} at disk offset {disk_offset} runs past the end of the disk"
            op.fault = "io_error"
            return
        engine = self.engine
        # The write reached the port when everything above had spent its time on it. One at a
        # time that is the shared clock; pipelined, the clock may already hold later writes'
        # filter time, so it is computed from the request (equal when serial).
        issued = request._issued_ns if request._issued_ns >= 0 else self.last_done_ns
        t0 = issued + request.upstream_ns
        overhead = self.per_request_overhead_ns
        t1 = engine.now_ns = t0 + overhead
        self.stats.record(overhead)
        fault = None
        if self.faults:
            hit = self._fault_for(request.number, offset, length, request.attempt)
            if hit is not None:
                fault = self.faults[hit]
        if fault is not None and fault.action == "timeout":
            self._timed_out(op, t0, t1, overhead, None)
            return
        service = device.write_ns(disk_offset, length, t1)
        if service > self.timeout_ns:  # the device is still busy when the port gives up
            self._timed_out(op, t0, t1, overhead, service)
            return
        engine.now_ns = request._done_ns = self.last_done_ns = t1 + service
        device.stats.record(service)
        status = None
        if fault is not None:  # the device did the work and then reported an error
            status = status_name(fault.status)
            op.error = f"the device failed request #{request.number} with {status} (device_error fault)"
            op.fault, op.retryable = "io_error", True
        else:
            self.bytes_written += length
        image = self.disk_image
        # data mode: the device did the work (a device_error fault reports it afterwards), unless the
        # power failed first (trace_until_ns is the power loss): a write not completed by then never lands
        if image is not None and (engine.trace_until_ns is None or engine.now_ns <= engine.trace_until_ns):
            data = request.mdl.data
            assert data is not None  # the filter host checks every MDL of a data-mode run carries its bytes
            image.write(disk_offset, data)
        if engine.trace is not None:
            engine.emit(t0, "miniport", "miniport_write", overhead, request.number, offset, length, self.dump_type)
            engine.emit(t1, "device", "device_write", service, request.number, disk_offset, length, self.dump_type, status)

    def power_lost(self, at_ns: int) -> int:
        """
        Data mode: the power failed at *at_ns* -- what the device's volatile write cache held then never reaches the disk.

        The image loses the last bytes written, as many as the cache held (it drains oldest
        first); returns how many (0 in timing mode or without a volatile cache).
        """
        if self.disk_image is None:
            return 0
        return self.disk_image.lose_tail(self.device.volatile_bytes_at(at_ns))

    def _read(self, op: Op) -> None:
        """
        Resume (``DUMP_MODE_RESUME`` [DOC S12]): read one request of the hiberfile, polled, one at a time.

        The port's per-request overhead, then the device's read time; in data mode the bytes
        come from the disk image into the request's buffer. Nothing can fail here: resume has
        no faults of its own yet.
        """
        request = op.request
        assert request is not None
        offset, length = request.offset, request.length
        if length > self.max_transfer or offset % SECTOR_SIZE or length % SECTOR_SIZE or length <= 0:
            op.error = f"{self.image} rejected read #{request.number}: offset {offset}, length {length}"
            op.fault = "io_error"
            return
        engine = self.engine
        disk_offset = self.layout.partition_offset + offset
        t0 = engine.now_ns
        overhead = self.per_request_overhead_ns
        t1 = t0 + overhead
        self.stats.record(overhead)
        service = self.device.read_ns(disk_offset, length, t1)
        engine.now_ns = t1 + service
        self.device.stats.record(service)
        data = request.mdl.data
        if self.disk_image is not None and data is not None:
            self.disk_image.read_into(disk_offset, memoryview(data))
        if engine.trace is not None:
            engine.emit(t0, "miniport", "miniport_read", overhead, request.number, offset, length, self.dump_type)
            engine.emit(t1, "device", "device_read", service, request.number, disk_offset, length, self.dump_type)

    def _timed_out(self, op: Op, t0: int, t1: int, overhead: int, needed_ns: int | None) -> None:
        """
        The device does not answer in time: the port polls for its timeout, then fails the command.

        *needed_ns* is how long the device would have taken (``None``: a ``device_timeout`` fault).

        A ``device_timeout`` fault holds the command forever; a device that needs longer than the
        timeout has started the write (its state moves on as if it finished it: ASSUMPTION), but
        the port has given up on it and crashdmp sees a failure.
        """
        request = op.request
        assert request is not None
        engine = self.engine
        engine.advance(self.timeout_ns)
        self.stats.record(self.timeout_ns)
        if engine.trace is not None:
            engine.emit(
                t0, "miniport", "miniport_write", overhead, request.number, request.offset, request.length, self.dump_type
            )
            engine.emit(
                t1, "miniport", "poll_timeout", self.timeout_ns, request.number, request.offset, request.length, self.dump_type
            )
        if needed_ns is None:
            limit, why = format_ns(self.timeout_ns), "device_timeout fault"
        else:
            limit, needed = format_ns_pair(self.timeout_ns, needed_ns)
            why = f"the device needed {needed} for it"
        op.error = f"request #{request.number} did not complete within the port's {limit} timeout ({why})"
        op.fault, op.retryable = "io_timeout", True

    def _write_run(self, op: Op) -> None:
        """Batched mode: *count* identical writes, one at a time in simulated time, in one message."""
        request = op.request
        assert request is not None
        if request.by_length is not None:
            self._write_pieces(op)
            return
        n, length, offset = request.count, request.length, request.offset
        # Batches come straight from the layout (batched filters change nothing), so every write
        # is aligned, within max_transfer and inside one run; the dump driver guarantees it.
        assert length <= self.max_transfer, request
        assert self.layout.contains(offset, n * length), request
        engine = self.engine
        overhead = self.per_request_overhead_ns
        engine.advance(overhead * n)
        self.stats.record(overhead, n)
        request.upstream_ns += overhead
        disk_offset = self.layout.partition_offset + offset
        # The layers above spent their n shares already; write 1 reaches the device after one share.
        first_start = engine.now_ns - (n - 1) * request.upstream_ns
        segments = self.device.write_run_ns(disk_offset, length, n, first_start, request.upstream_ns)
        # The dump driver batches only writes that cannot time out (may_time_out).
        assert all(dur <= self.timeout_ns for dur, _ in segments), (segments, self.timeout_ns)
        device_stats = self.device.stats
        total = 0
        for dur, count in segments:
            device_stats.record(dur, count)
            total += dur * count
        engine.advance(total)
        self.bytes_written += n * length
        op.segments = tuple(segments)

    def _write_pieces(self, op: Op) -> None:
        """
        Batched mode across disk runs: the run's pieces one after the other, each a device run of its own.

        Write *k* + 1 reaches the device its length's upstream share after write *k* completed,
        whichever piece either is in: the same instants as one message per piece, at
        O(pieces) cost (each piece is one :meth:`DeviceBase.write_run_ns`).
        """
        request = op.request
        assert request is not None
        assert request.by_length is not None
        engine = self.engine
        overhead = self.per_request_overhead_ns
        n = request.count
        engine.advance(overhead * n)
        self.stats.record(overhead, n)
        by_length = request.by_length
        above = 0
        for entry in by_length.values():
            entry[1] += overhead
            above += entry[0] * entry[1]
        t = engine.now_ns - above  # when the dump driver sent the run
        base = self.layout.partition_offset
        write_run = self.device.write_run_ns
        per_length: dict[tuple[int, int], int] = {}
        per_dur: dict[int, int] = {}
        total = written = 0
        for offset, length, count in request.pieces:
            # The pieces come from FileLayout.map_runs: each inside one disk run, aligned, within max_transfer.
            gap = by_length[length][1]
            t += gap  # the piece's first write reaches the device one share after the previous write completed
            spent = 0
            for dur, k in write_run(base + offset, length, count, t, gap):
                per_length[length, dur] = per_length.get((length, dur), 0) + k
                per_dur[dur] = per_dur.get(dur, 0) + k
                spent += dur * k
            t += spent + (count - 1) * gap
            total += spent
            written += count * length
        assert all(dur <= self.timeout_ns for dur in per_dur), (per_dur, self.timeout_ns)
        device_stats = self.device.stats
        for dur, k in per_dur.items():
            device_stats.record(dur, k)
        engine.advance(total)
        self.bytes_written += written
        op.length_segments = tuple((length, dur, k) for (length, dur), k in per_length.items())
