"""
crashdmp: loads the dump stacks and drives a crash dump or a hibernation write through them.

What Windows does, and what this module does in the same order (fact sheet §0, §3):

1. **Boot** (t = 0). If ``CrashDumpEnabled`` is not 0, crashdmp loads the *crash dump stack*: the
   ``dump_`` copy of the boot disk's port/miniport and every ``DumpFilters`` entry, calling each
   filter's DriverEntry right away with ``DumpType = crashdump`` [DOC S3, S4; WI S20].
2. **Bugcheck** at ``bugcheck_at``: crashdmp verifies the dump context saved at boot (integrity
   check; a mismatch means no dump [WI S20]), calls ``dump_start`` on each filter, and the dump
   port re-initialises the adapter [RE S22]. The order of those two is disputed (Learn: start after
   port init; reversing: before); stacksim only relies on "Dump_Start precedes the first write".
3. **Writes**: header first, then body, then secondary data [DOC S14], chunked to
   ``MaxPagesPerWrite`` pages and never across a disk run of the target file; each write goes
   through every filter's ``dump_write`` in registry order and then to the dump port,
   synchronously: the next write is issued only when the previous one has completed.
4. **Finish**: ``dump_finish`` on each filter, then the port flushes the device cache [DOC S8].
   The crash stack is not unloaded: the machine reboots (Dump_Unload runs only when crash dump
   is disabled [DOC S10]).

**Hibernation** (``event = "hibernate"``): the crash stack is still loaded at boot; when
hibernation starts, crashdmp loads the separate *hibernation stack* (``hiber_`` images, the same
filter list, ``DumpType = hibernation``) [DOC S4, S6b, S11] and writes the hiberfile image the
same way. Its Dump_Unload runs after resume (:mod:`stacksim.resume`).

When a critical filter's DriverEntry fails, the stack does not initialise: no dump is written
(or hibernation is refused) and the filters already initialised are unloaded (assumption).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Protocol

import trio

from stacksim._engine import PIPELINE_WINDOW, Engine, FatalCall, SpeculationFailed
from stacksim._log import PhaseLogger
from stacksim.compressor import LAYER as COMPRESSOR
from stacksim.metrics import LatencyHistogram, LayerStats
from stacksim.requests import PAGE_SIZE, DumpRequest, Mdl, Op, OpKind

if TYPE_CHECKING:
    from stacksim.compressor import Compressor
    from stacksim.faults import DeviceFault
    from stacksim.filters._host import FilterLayer
    from stacksim.layout import FileLayout
    from stacksim.memory import DumpPlan

__all__ = ["LAYER", "PIPELINE_WINDOW", "PROGRESS_EVERY", "TRACED", "DumpDriver", "Outcome", "probe_positions"]

LAYER = "crashdmp"
"""Layer name of the dump driver in traces and results."""

log = PhaseLogger("stacksim", layer=LAYER)

PROGRESS_EVERY = 4096
"""Request mode reports progress every this many writes."""

TRACED: Final = "a trace was asked for (it has one record per request)"
"""The ``request_mode_reasons`` entry of a traced run that would have batched a run of identical writes."""


def probe_positions(count: int) -> list[int]:
    """
    Which writes of a batched run of *count* are really called, by position in the run (0 = first).

    Batched mode believes a filter's ``write_cost`` for the writes in between; these samples
    check it: the first write, then positions 1, 3, 7, 15, ... (2**k - 1) and the last -- about
    log2(count) + 2 real calls, deterministic, spread over every scale of the run (a filter that
    changes behaviour after its n-th call is met near n).
    """
    out = []
    k = 1
    while k - 1 < count:
        out.append(k - 1)
        k *= 2
    if count and out[-1] != count - 1:
        out.append(count - 1)
    return out


class _Run:
    """
    A batched run's writes in file order: (offset, length, count) pieces, each inside one disk run.

    Positions count writes from the run's first (0); lookups bisect the pieces' first positions.
    """

    __slots__ = ("bytes", "pieces", "starts", "total")

    def __init__(self, pieces: list[tuple[int, int, int]]) -> None:
        self.pieces = pieces
        self.starts: list[int] = []
        n = size = 0
        for _, length, count in pieces:
            self.starts.append(n)
            n += count
            size += count * length
        self.total = n
        self.bytes = size

    def at(self, p: int) -> tuple[int, int]:
        """(offset, length) of the write at position *p*."""
        i = bisect.bisect_right(self.starts, p) - 1
        offset, length, _ = self.pieces[i]
        return offset + (p - self.starts[i]) * length, length

    def slice(self, a: int, b: int) -> list[tuple[int, int, int]]:
        """The pieces of the writes at positions *a* .. *b* - 1."""
        out = []
        i = bisect.bisect_right(self.starts, a) - 1
        pieces, starts = self.pieces, self.starts
        while i < len(pieces) and starts[i] < b:
            offset, length, count = pieces[i]
            lo, hi = max(a, starts[i]), min(b, starts[i] + count)
            out.append((offset + (lo - starts[i]) * length, length, hi - lo))
            i += 1
        return out

    def positions(self, offsets: list[int], first: int) -> set[int]:
        """The request numbers (the run's first is *first*) of the writes that start at one of *offsets* (sorted)."""
        out: set[int] = set()
        for (offset, length, count), start in zip(self.pieces, self.starts, strict=True):
            lo = bisect.bisect_left(offsets, offset)
            hi = bisect.bisect_left(offsets, offset + count * length)
            out.update(first + start + (o - offset) // length for o in offsets[lo:hi])
        return out


class DumpContents(Protocol):
    """Data mode: the dump file's bytes by file position -- what crashdmp puts in each write's MDL."""

    def read_into(self, file_offset: int, out: bytearray) -> None:
        """Put the ``len(out)`` bytes of the dump file at *file_offset* into *out*."""
        ...


@dataclass(slots=True)
class Outcome:
    """How the dump ended (see ``docs/reference/result-format.md`` for the statuses)."""

    status: str
    message: str
    event_ns: int = 0
    done_ns: int = 0
    write_requests: int = 0
    bytes_written: int = 0


class DumpDriver:
    """
    The dump driver (crashdmp) for one run.

    Args:
        engine: the run's engine.
        event: ``crash`` or ``hibernate``.
        event_at_ns: when the bugcheck or hibernation starts.
        crash_dump_enabled: the ``CrashDumpEnabled`` value (0 loads no crash stack).
        plan: what to write.
        layout: where to write it.
        max_pages_per_write: ``MaxPagesPerWrite`` of the active stack.
        crash_filters: filter layers of the crash dump stack, registry order.
        hiber_filters: filter layers of the hibernation stack (empty for a crash).
        down: channel to the first layer of the active stack.
        complete: channel on which operations come back.
        integrity_check_ns: cost of the dump-context integrity check (assumption).
        per_request_ns: crashdmp's own cost per write (assumption).
        batch: let one message stand for a run of identical writes when every loaded filter
            declares its cost (batched mode; identical results, see ``docs/explanation/engine.md``).
        too_small: ``None`` when the target file holds the dump; otherwise ``"refuse"`` (no dump,
            as Windows does) or ``"truncate"`` (*plan* is already cut to the file's size).
        full_bytes: the size of the whole dump, for messages about a too-small file.
        write_retries: times a write the device failed is re-issued (ASSUMPTION, default 0).
        power_loss_after_ns: power fails this long after the event (a fault); ``None``: it does not.
        device_faults: injected device faults; the writes they hit travel alone in batched mode.
        progress: called as ``progress(bytes written, bytes to write)`` every
            :data:`PROGRESS_EVERY` writes and after each batched message (a progress bar; it
            must not touch the simulation).
        pipeline: in request mode, keep several writes in flight (:meth:`_write_pipelined`).
            Only for runs where no write can be retried or torn (no device faults, no power loss);
            a trace gets each write's records when it completes, so it is that of one write at a time.
        unbatchable: for a write length, why writes of that length must travel one by one (e.g.
            they can outlast the dump port's timeout: ``DumpPort.may_time_out``), or None.
        disk_size: the disk's capacity in bytes (for the trace's ``dump_context``).
        port_timeout_ns: the dump port's command timeout (for the trace's ``dump_context``).
        traced: a trace is taken: runs of identical writes that batched mode would stand for with
            one message go one message per write instead (pipelined), each with its records; the
            result names the trace among ``request_mode_reasons`` only then (:data:`TRACED`).
        compressor: hibernation with compression: when each write of the body may be issued
            (:class:`~stacksim.compressor.Compressor`); such a run goes one write at a time.
        contents: data mode: the dump file's bytes (:class:`DumpContents`); each write's MDL
            carries the bytes at its file position, in a buffer of crashdmp's (one per write in
            flight). ``None``: timing mode, MDLs carry no bytes. Data mode writes every request
            in request mode (no batching; pipelined where timing mode would be): the same
            simulated times, since every mode is exact.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        event: str,
        event_at_ns: int,
        crash_dump_enabled: int,
        plan: DumpPlan,
        layout: FileLayout,
        max_pages_per_write: int,
        crash_filters: Sequence[FilterLayer],
        hiber_filters: Sequence[FilterLayer],
        down: trio.MemorySendChannel[Op],
        complete: trio.MemoryReceiveChannel[Op],
        integrity_check_ns: int = 0,
        per_request_ns: int = 0,
        batch: bool = True,
        too_small: str | None = None,
        full_bytes: int = 0,
        write_retries: int = 0,
        power_loss_after_ns: int | None = None,
        device_faults: Sequence[DeviceFault] = (),
        progress: Callable[[int, int], None] | None = None,
        pipeline: bool = False,
        unbatchable: Callable[[int], str | None] | None = None,
        disk_size: int = 0,
        port_timeout_ns: int = 0,
        contents: DumpContents | None = None,
        compressor: Compressor | None = None,
        traced: bool = False,
    ) -> None:
        self.engine = engine
        self.event = event
        self.event_at_ns = event_at_ns
        self.crash_dump_enabled = crash_dump_enabled
        self.plan = plan
        self.layout = layout
        self.max_chunk = max_pages_per_write * PAGE_SIZE
        self.crash_filters = crash_filters
        self.hiber_filters = hiber_filters
        self.down = down
        self.complete = complete
        self.integrity_check_ns = integrity_check_ns
        self.per_request_ns = per_request_ns
        self.batch = batch
        self.too_small = too_small
        self.full_bytes = full_bytes
        self.write_retries = write_retries
        self.power_loss_after_ns = power_loss_after_ns
        self.device_faults = device_faults
        self.progress = progress
        self.pipeline = pipeline
        self.unbatchable = unbatchable
        self.disk_size = disk_size
        self.port_timeout_ns = port_timeout_ns
        self.contents = contents
        self.compressor = compressor
        self.traced = traced
        self._buffers: dict[int, list[bytearray]] = {}
        """Data mode: crashdmp's buffers by write length, one per write in flight (:meth:`_buffer`)."""
        if contents is not None:
            self.batch = False
        if compressor is not None:  # the compressor paces every write
            self.batch = self.pipeline = False
        self.power_loss_at: int | None = None
        self.lost_in_cache = 0
        """Data mode: bytes the power failure took from the device's volatile write cache (the image lost them)."""
        self.retries = 0
        self.part_done: dict[str, int] = {}
        self.flushed = False
        self.batched_messages = 0
        self.unbatched: dict[str, None] = {}
        """Why runs of identical writes went one message per write although batching was on (ordered)."""
        self.dump_type = "crashdump" if event == "crash" else "hibernation"
        self.stats = LayerStats(LAYER)
        self.write_latency = LatencyHistogram()
        self.outcome = Outcome("running", "")

    # -- the run -----------------------------------------------------------------------------
    async def run(self) -> Outcome:
        """Boot, then the crash or hibernation; returns how it ended."""
        try:
            return await self._run()
        except FatalCall as fatal:  # DriverEntry or a declaration hung, crashed or broke a rule
            return self._end(fatal.status, fatal.message)

    async def _run(self) -> Outcome:
        engine = self.engine
        out = self.outcome
        crash_ok, crash_msg = (
            (await self._load(self.crash_filters, "crash dump stack")) if self.crash_dump_enabled else (False, "")
        )
        engine.advance_to(self.event_at_ns)
        out.event_ns = engine.now_ns
        if self.power_loss_after_ns is not None:
            self.power_loss_at = engine.trace_until_ns = out.event_ns + self.power_loss_after_ns
        self._mark("bugcheck" if self.event == "crash" else "hibernate")
        log.info("event.start", kind=self.event, dump_kind=self.plan.kind, dump_bytes=self.plan.total_bytes)
        if self.event == "crash":
            if not self.crash_dump_enabled:
                return self._end("dump_disabled", "CrashDumpEnabled = 0: no crash dump stack is loaded, nothing is written")
            if not crash_ok:
                return self._end("stack_init_failed", crash_msg + "; no crash dump is written")
            self._step("integrity_check", self.integrity_check_ns)
        else:
            hiber_ok, hiber_msg = await self._load(self.hiber_filters, "hibernation stack")
            if not hiber_ok:
                return self._end("stack_init_failed", hiber_msg + "; the system refuses to hibernate")
        if self.engine.trace is not None:
            self._emit_context()
        if self.too_small == "refuse":
            return self._end("file_too_small", self._too_small_message())
        if not await self._send(Op(OpKind.START)):
            return out
        if not await self._write_all():
            return out
        if not await self._send(Op(OpKind.FINISH)):
            return out
        self.flushed = True
        kind = self.plan.kind
        what = "hiberfile image" if kind == "hibernation" else f"{kind} dump"
        if self.too_small == "truncate":
            return self._end(
                "truncated",
                f"{what} truncated: the {self.layout.target} holds {self.layout.size:,} of its {self.full_bytes:,} bytes; "
                f"{out.bytes_written:,} bytes written in {out.write_requests:,} writes "
                '(on_too_small = "truncate": as with IgnorePagefileSize = 1 or on pre-Vista systems)',
            )
        return self._end("ok", f"{what} written: {out.bytes_written:,} bytes in {out.write_requests:,} writes")

    def _emit_context(self) -> None:
        """One ``dump_context`` record: what an independent checker needs to judge the trace."""
        active = self.crash_filters if self.event == "crash" else self.hiber_filters
        self.engine.emit(
            self.engine.now_ns,
            LAYER,
            "dump_context",
            0,
            dump_type=self.dump_type,
            detail={
                "event": self.event,
                "target": self.layout.target,
                "partition_offset": self.layout.partition_offset,
                "runs": [[r.offset, r.length] for r in self.layout.runs],
                "max_pages_per_write": self.max_chunk // PAGE_SIZE,
                "sector_size": 512,
                "filters": [{"name": layer.name, "callbacks": layer.callbacks()} for layer in active if layer.loaded],
                "disk_size": self.disk_size,
                "dump_bytes": max(self.full_bytes, self.plan.total_bytes),
                # what is written where, in write order, and what ends a run without a record of its own
                "parts": [[part.name, file_pos, part.bytes] for part, file_pos in self.plan.placed()],
                "watchdog_ns": self.engine.watchdog_ns,
                "port_timeout_ns": self.port_timeout_ns,
                "power_loss_ns": self.power_loss_at,
                **self._compression_context(),
            },
        )

    def _compression_context(self) -> dict[str, object]:
        """The compressor's parameters for the dump_context, when the hiberfile is compressed (else nothing)."""
        c = self.compressor
        if c is None:
            return {}
        return {
            "compression": {
                "uncompressed_bytes": c.uncompressed_bytes,
                "body_bytes": c.body_bytes,
                "rate": c.rate,
                "overlap": c.overlap,
            }
        }

    def _too_small_message(self) -> str:
        size, need, target = self.layout.size, self.full_bytes, self.layout.target
        if self.event == "hibernate":
            return (
                f"the hiberfile holds {size:,} bytes but the image needs {need:,} bytes: hibernation fails "
                "(bug check 0xA0, sub-code 0xB: the hibernation file is too small [DOC S16])"
            )
        msg = (
            f"the {target} holds {size:,} bytes but the {self.plan.kind} dump needs {need:,} bytes: Windows writes no dump "
            '("a page file or a dedicated dump file must exist and be large enough ... Otherwise, a system memory dump '
            'file is not created" [DOC S40]; volmgr Event 49 at boot)'
        )
        if self.crash_dump_enabled == 7:
            msg += "; with an automatic dump Windows then grows the page file to at least min(RAM, 32 GB) for 4 weeks [DOC S39]"
        return msg

    async def _load(self, layers: Sequence[FilterLayer], stack: str) -> tuple[bool, str]:
        """DriverEntry for each filter in registry order; a critical failure fails the stack."""
        loaded: list[FilterLayer] = []
        for layer in layers:
            if layer.driver_entry():
                loaded.append(layer)
                continue
            log.info("filter.not_loaded", filter=layer.name, which=stack, critical=layer.init.critical, reason=layer.load_error)
            if layer.init.critical:
                for done in loaded:
                    await done.dump_unload()
                return False, f"critical filter {layer.name} failed to initialise the {stack} ({layer.load_error})"
        log.info("stack.loaded", which=stack, filters=[layer.name for layer in loaded])
        return True, ""

    async def _write_all(self) -> bool:
        """Write every part, header first, in pieces of at most MaxPagesPerWrite pages."""
        active = self.crash_filters if self.event == "crash" else self.hiber_filters
        loaded = [layer for layer in active if layer.loaded]
        specials = set().union(*(layer.special_requests() for layer in loaded))
        specials |= {f.at_request for f in self.device_faults if f.at_request is not None}
        # sorted, so each run finds its own special requests and faulty offsets by bisection
        special_list = sorted(specials)
        fault_offsets = sorted(f.at_offset for f in self.device_faults if f.at_offset is not None)
        number = 0
        for part, file_pos in self.plan.placed():
            pos = file_pos  # the file position of the run's first write
            groups = self.layout.map_runs(file_pos, part.bytes, self.max_chunk)
            group = next(groups, None)
            while group is not None:
                offset, length, count = group
                group = next(groups, None)
                # The declarations are asked in every mode: a broken one fails a run the same way batched or not.
                costs = [layer.write_cost(length) for layer in loaded]
                batchable = self.batch and None not in costs
                if self.batch and count > 1 and not batchable:
                    self.unbatched.update(dict.fromkeys(b for layer in loaded if (b := layer.batch_blocker(length))))
                if batchable and self.unbatchable is not None and (why := self.unbatchable(length)):
                    batchable = False
                    if count > 1:
                        self.unbatched[why] = None
                if batchable and self.traced:  # batched, the run would be one message: a trace has a record per write
                    batchable = False
                    if count > 1 or (group is not None and self._joins(group[1], loaded)):  # it would have batched
                        self.unbatched[TRACED] = None
                pieces = [(offset, length, count)]
                if batchable:  # the next disk runs join the run while their writes batch too: one run, O(disk runs)
                    fits = {length: True}
                    while group is not None:
                        fit = fits.get(group[1])
                        if fit is None:
                            fit = fits[group[1]] = self._joins(group[1], loaded)
                        if not fit:
                            break
                        pieces.append(group)
                        group = next(groups, None)
                run = _Run(pieces)
                if batchable and run.total > 1:
                    hit = run.positions(fault_offsets, number + 1) if fault_offsets else set()
                    lo = bisect.bisect_left(special_list, number + 1)
                    hi = bisect.bisect_left(special_list, number + 1 + run.total)
                    hit.update(special_list[lo:hi])
                    ok = await self._write_batched(part.name, number + 1, run, sorted(hit), loaded)
                else:
                    ok = await self._write_requests(part.name, number + 1, offset, length, count, pos)
                if not ok:
                    return False
                number += run.total
                pos += run.bytes
        return True

    def _joins(self, length: int, loaded: Sequence[FilterLayer]) -> bool:
        """
        Whether the next disk run's writes of *length* bytes may join the batched run before them.

        Only lengths already asked of every filter join: a new length starts a run of its own, so
        its ``write_cost`` is asked where request mode asks it (a failing declaration fails at the
        same write), and its first write is a real call (sampled at position 0: a cost at or past
        the watchdog hangs at that write; a broken declaration is caught there).
        """
        return all(layer.declared(length) for layer in loaded) and self._batches(length, loaded)

    def _batches(self, length: int, loaded: Sequence[FilterLayer]) -> bool:
        """Whether writes of *length* bytes may be batched: every filter declares their cost and no timeout is possible."""
        if not self.batch or any(layer.write_cost(length) is None for layer in loaded):
            return False
        return self.unbatchable is None or not self.unbatchable(length)

    async def _write_requests(self, part: str, first: int, offset: int, length: int, count: int, file_pos: int) -> bool:
        """Request mode for *count* writes from *file_pos* in the file: pipelined when allowed, else one at a time."""
        if self.pipeline and count > 1:
            return await self._write_pipelined(part, first, offset, length, count, file_pos)
        return await self._write_each(part, first, offset, length, count, file_pos)

    async def _write_pipelined(self, part: str, first: int, offset: int, length: int, count: int, file_pos: int = 0) -> bool:
        """
        Request mode with up to :data:`PIPELINE_WINDOW` writes in flight; the same result as one at a time.

        In simulated time this is still QD1: write *k* + 1 is issued when write *k* completes.
        But the layers may call back for write *k* + 1 while the device works on *k*, which is
        exact as long as every write succeeds at once (the tasks meet in the same scheduler pass
        instead of one pass per hop). Each write carries its issue time (the first) or -1 ("when
        the previous one completes") and the time the layers above the port spent on it; the
        port turns those into the exact device start. Anything that would make the overlap
        observable -- an error, a refused request, a callback that awaits -- raises
        :class:`SpeculationFailed`, and the run is repeated one write at a time.

        In data mode each write in flight has its own buffer of crashdmp's (write *n* the
        buffer ``n % PIPELINE_WINDOW``: write *n* is issued only once write *n* -
        :data:`PIPELINE_WINDOW` has completed, so the port has consumed that buffer's bytes).
        """
        engine = self.engine
        contents = self.contents
        out = self.outcome
        record = self.stats.record
        latency = self.write_latency.record
        per_request = self.per_request_ns
        send = self.down.send_nowait
        receive = self.complete.receive
        receive_now = self.complete.receive_nowait
        progress = self.progress
        previous_done = engine.now_ns  # the first write is issued now
        number, end, in_flight = first, first + count, 0
        trace = engine.trace is not None
        dump_type = self.dump_type
        engine.pipelined = True
        if trace:  # each write's records are written when it completes, as one write at a time would
            engine.hold_records()
        try:
            while number < end or in_flight:
                window: list[Op] = []
                while number < end and in_flight < PIPELINE_WINDOW:
                    record(per_request)
                    issued = previous_done if number == first else -1
                    buffer = None
                    if contents is not None:
                        buffer = self._buffer(length, number % PIPELINE_WINDOW)
                        contents.read_into(file_pos + (number - first) * length, buffer)
                    request = DumpRequest(number, offset, Mdl(LAYER, length, buffer), part, issued, upstream_ns=per_request)
                    if trace:  # issued when the write before it completes: its time is known only then
                        engine.emit(-1, LAYER, "issue_write", per_request, number, offset, length, dump_type)
                    window.append(Op(OpKind.WRITE, request))
                    number += 1
                    in_flight += 1
                    offset += length
                if window:  # the writes issued now, as one message down the stack
                    send(Op(OpKind.WINDOW, ops=window))
                msg = await receive()
                while True:  # take every completion already queued, then refill the window at once
                    for op in msg.ops if msg.kind is OpKind.WINDOW and msg.ops is not None else (msg,):
                        in_flight -= 1
                        if op.error is not None or engine.spoiled is not None:
                            engine.spoil(op.error or "")  # (nothing of this attempt reaches the trace from now on)
                            raise SpeculationFailed(engine.spoiled or op.error)
                        assert op.request is not None
                        done = op.request._done_ns
                        latency(done - previous_done)
                        if trace:
                            written = op.request.number
                            engine.emit(done, LAYER, "write_complete", 0, written, op.request.offset, length, dump_type)
                            engine.release(written, previous_done)
                        previous_done = done
                        out.write_requests += 1
                        out.bytes_written += length
                        if progress is not None and not op.request.number % PROGRESS_EVERY:
                            progress(out.bytes_written, self.plan.total_bytes)
                    if not in_flight:
                        break
                    try:
                        msg = receive_now()
                    except trio.WouldBlock:
                        break
        finally:
            engine.pipelined = False
        engine.end_hold()  # (every write completed: nothing is held; an abandoned attempt holds on, and writes nothing more)
        self.part_done[part] = self.part_done.get(part, 0) + count * length
        return True

    async def _write_batched(self, part: str, first: int, run: _Run, specials: list[int], loaded: Sequence[FilterLayer]) -> bool:
        """Send runs of identical writes as single messages (checked by samples), and special requests one by one."""
        last = first + run.total
        n = first
        for special in [s for s in specials if first <= s < last] + [last]:
            if special > n:
                rest = await self._write_sampled(part, n, _Run(run.slice(n - first, special - first)), loaded)
                if rest is False:
                    return False
                if rest is not True:  # a filter broke its declaration: the rest goes in request mode
                    for at, length, count in run.slice(rest - first, run.total):  # no bytes: data mode never batches
                        if not await self._write_requests(part, rest, at, length, count, 0):
                            return False
                        rest += count
                    return True
            if special < last:
                at, length = run.at(special - first)
                if not await self._write_each(part, special, at, length, 1):
                    return False
            n = special + 1
        if self.progress is not None:  # the run ends with a sampled write, which reports only every PROGRESS_EVERY
            self.progress(self.outcome.bytes_written, self.plan.total_bytes)
        return True

    async def _write_sampled(self, part: str, first: int, run: _Run, loaded: Sequence[FilterLayer]) -> bool | int:
        """
        The writes of *run*: the :func:`probe_positions` really called, the runs between them batched.

        Returns True when all were written, False when the dump ended, or the number of the first
        write not yet written when a sampled call did not match a filter's ``write_cost`` (that
        filter is then unbatchable: ``FilterLayer.mistrust``, a reason in ``request_mode_reasons``).
        """
        count = run.total
        n = 0
        for p in [*probe_positions(count), count]:
            if p > n and not await self._write_run(part, first + n, run.slice(n, p)):
                return False
            if p == count:
                return True
            for layer in loaded:
                layer.probing = True
            try:
                at, length = run.at(p)
                ok = await self._write_each(part, first + p, at, length, 1)
            finally:
                for layer in loaded:
                    layer.probing = False
            if not ok:
                return False
            n = p + 1
            broken = [layer.mistrust for layer in loaded if layer.mistrust is not None]
            if broken:
                self.unbatched.update(dict.fromkeys(broken))
                return first + n if n < count else True
        return True  # pragma: no cover - the loop ends at p == count

    async def _write_run(self, part: str, first: int, pieces: list[tuple[int, int, int]]) -> bool:
        """One message for a run of writes (*pieces*, one per disk run); every layer charges them exactly, weighted."""
        if len(pieces) > 1:
            return await self._write_pieces(part, first, pieces)
        offset, length, count = pieces[0]
        if count == 1:
            return await self._write_each(part, first, offset, length, 1)
        engine = self.engine
        per_request = self.per_request_ns
        t0 = engine.now_ns
        engine.advance(per_request * count)
        self.stats.record(per_request, count)
        request = DumpRequest(first, offset, Mdl(LAYER, length), part, t0, count=count, upstream_ns=per_request)
        self.down.send_nowait(Op(OpKind.WRITE, request))
        op = await self.complete.receive()
        if op.error is not None:  # pragma: no cover - batched layers cannot fail (see DumpPort._write_run)
            self._end(op.fault or "io_error", op.error)
            return False
        above = request.upstream_ns
        for dur, n in op.segments:
            self.write_latency.record(above + dur, n)
        self._written(part, count, count * length)
        return True

    async def _write_pieces(self, part: str, first: int, pieces: list[tuple[int, int, int]]) -> bool:
        """:meth:`_write_run` across disk runs: one message whose pieces each layer charges per write length."""
        engine = self.engine
        per_request = self.per_request_ns
        by_length: dict[int, list[int]] = {}
        count = written = 0
        for _, length, n in pieces:
            entry = by_length.get(length)
            if entry is None:
                by_length[length] = [n, per_request]
            else:
                entry[0] += n
            count += n
            written += n * length
        t0 = engine.now_ns
        engine.advance(per_request * count)
        self.stats.record(per_request, count)
        offset, length, _ = pieces[0]
        request = DumpRequest(
            first, offset, Mdl(LAYER, length), part, t0, count=count, upstream_ns=per_request,
            pieces=tuple(pieces), by_length=by_length,
        )  # fmt: skip
        self.down.send_nowait(Op(OpKind.WRITE, request))
        op = await self.complete.receive()
        if op.error is not None:  # pragma: no cover - batched layers cannot fail (see DumpPort._write_run)
            self._end(op.fault or "io_error", op.error)
            return False
        for length, dur, n in op.length_segments:
            self.write_latency.record(by_length[length][1] + dur, n)
        self._written(part, count, written)
        return True

    def _written(self, part: str, count: int, written: int) -> None:
        """Account for a batched message of *count* writes and *written* bytes."""
        self.outcome.write_requests += count
        self.outcome.bytes_written += written
        self.part_done[part] = self.part_done.get(part, 0) + written
        self.batched_messages += 1
        if self.progress is not None:
            self.progress(self.outcome.bytes_written, self.plan.total_bytes)

    async def _write_each(self, part: str, first: int, offset: int, length: int, count: int, file_pos: int = 0) -> bool:
        """Request mode: each write is its own message, issued when the previous one completed (its bytes in data mode)."""
        engine = self.engine
        out = self.outcome
        stats = self.stats
        latency = self.write_latency
        per_request = self.per_request_ns
        send = self.down.send_nowait
        receive = self.complete.receive
        trace = engine.trace is not None
        dump_type = self.dump_type
        record = stats.record
        progress = self.progress
        contents = self.contents
        buffer = None if contents is None else self._buffer(length)
        compressor = self.compressor if part == "body" else None
        for number in range(first, first + count):
            if compressor is not None:  # the write waits for its compressed bytes
                now, loss = engine.now_ns, self.power_loss_at
                ready = compressor.ready(now, length, loss)
                wait_end = ready if loss is None else min(ready, max(now, loss))  # no record past the power failure
                cut = loss is not None and now <= loss < ready  # the power fails while crashdmp waits (even at once)
                if trace and (wait_end > now or cut):
                    engine.emit(now, COMPRESSOR, "compress_wait", wait_end - now, number, offset, length, dump_type)
                engine.now_ns = ready
                if loss is not None:
                    waiting = "while crashdmp waited for the compressor " if now <= loss else ""
                    if self._power_lost(f"{waiting}before request #{number} was issued"):
                        return False
            t0 = engine.now_ns
            attempt = 0
            if contents is not None and buffer is not None:  # crashdmp's buffer, reused; a retry hands down the same pages
                contents.read_into(file_pos + (number - first) * length, buffer)
            while True:
                issued = engine.now_ns
                engine.now_ns = issued + per_request
                record(per_request)
                mdl = Mdl(LAYER, length, buffer)
                request = DumpRequest(number, offset, mdl, part, issued, upstream_ns=per_request, attempt=attempt)
                if trace:
                    engine.emit(issued, LAYER, "issue_write", per_request, number, offset, length, dump_type)
                send(Op(OpKind.WRITE, request))
                op = await receive()
                if self.power_loss_at is not None and self._power_lost(f"while request #{number} was in flight"):
                    return False
                if op.error is None:
                    break
                if op.retryable and attempt < self.write_retries:
                    attempt += 1
                    self.retries += 1
                    if trace:
                        engine.emit(engine.now_ns, LAYER, "write_failed", 0, number, offset, length, dump_type)
                    continue
                if op.retryable and self.write_retries:
                    op.error += f"; given up after {self.write_retries} retries"
                self._end(op.fault or "io_error", op.error)
                return False
            t1 = engine.now_ns
            latency.record(t1 - t0)
            out.write_requests += 1
            out.bytes_written += length
            self.part_done[part] = self.part_done.get(part, 0) + length
            if trace:
                engine.emit(t1, LAYER, "write_complete", 0, number, request.offset, length, dump_type)
            if progress is not None and not number % PROGRESS_EVERY:
                progress(out.bytes_written, self.plan.total_bytes)
            offset += length
        return True

    def _buffer(self, length: int, slot: int = 0) -> bytearray:
        """
        Data mode: crashdmp's buffer *slot* (0 .. PIPELINE_WINDOW - 1) for writes of *length* bytes.

        Each is allocated when first needed and reused (a dump has a few write sizes); one write
        at a time uses slot 0 only.
        """
        buffers = self._buffers.get(length)
        if buffers is None:
            if len(self._buffers) >= 4:
                self._buffers.clear()
            buffers = self._buffers[length] = []
        while len(buffers) <= slot:
            buffers.append(bytearray(length))
        return buffers[slot]

    async def _send(self, op: Op) -> bool:
        """Send a control operation down the stack and wait for it to come back."""
        self.down.send_nowait(op)
        back = await self.complete.receive()
        if self._power_lost(f"during {op.kind.value}"):
            return False
        if back.error is not None:
            self._end(back.fault or "io_error", back.error)
            return False
        return True

    def header_complete(self) -> bool:
        """Whether every byte of the dump's header has been written."""
        header = next((p for p in self.plan.parts if p.name == "header"), None)
        return header is not None and self.part_done.get("header", 0) >= header.bytes

    def _power_lost(self, when: str) -> bool:
        """End the run if the power failed before now (the step that was running never finished)."""
        if self.power_loss_at is None or self.engine.now_ns <= self.power_loss_at:
            return False
        out = self.outcome
        header_ok = self.header_complete()
        after = self.power_loss_at - out.event_ns
        msg = (
            f"power lost {after:,} ns after the {'bugcheck' if self.event == 'crash' else 'start of hibernation'}, {when}: "
            f"{out.bytes_written:,} of {self.plan.total_bytes:,} bytes had completed; "
        )
        if self.event == "hibernate":
            msg += (
                "the hiberfile header (the commit marker, written last) was written: the image is complete"
                if header_ok
                else "the hiberfile header (the commit marker, written last) was not written: the next boot starts afresh"
            )
        else:
            msg += "the dump header was written" if header_ok else "not even the dump header was written"
            msg += "; the dump is torn" if out.bytes_written < self.plan.total_bytes else ""
        if not self.flushed:
            msg += "; the final flush never ran, so data still in a volatile write cache is lost"
        self.engine.now_ns = self.power_loss_at
        self._end("power_lost", msg)
        return True

    def _step(self, event: str, dur: int) -> None:
        engine = self.engine
        t0 = engine.now_ns
        engine.advance(dur)
        self.stats.record(dur)
        if engine.observed:
            engine.phase(t0, LAYER, event, dur, dump_type=self.dump_type)

    def _mark(self, event: str) -> None:
        if self.engine.observed:
            self.engine.phase(self.engine.now_ns, LAYER, event, 0, dump_type=self.dump_type)

    def _end(self, status: str, message: str) -> Outcome:
        if status != "power_lost" and self._power_lost(f"before the run could end as {status}"):
            return self.outcome  # e.g. during the integrity check of a dump that does not fit its file
        out = self.outcome
        out.status = status
        out.message = message
        out.done_ns = self.engine.now_ns
        self._mark("dump_complete" if status == "ok" else "dump_failed")
        log.info("event.end", status=status, message=message, writes=out.write_requests)
        return out
