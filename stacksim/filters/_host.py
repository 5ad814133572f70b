"""
How crashdmp hosts one dump filter: DriverEntry, the callbacks, and the rules it enforces.

One :class:`FilterLayer` per loaded filter per stack. Its task takes operations from the layer
above, calls the matching callback, checks the documented rules, charges the callback's time,
and passes the operation down -- each filter sees the previous filter's output.

Rules and their outcomes (fact sheet §1.6-§1.7; each is named in the result):

* ``driver_entry`` fails: with ``DUMP_FILTER_CRITICAL`` set (read from the flags even after the
  failure, as DiskCryptor relies on [SRC S26]) the stack does not initialise [DOC S1]; without it
  the filter is skipped and the dump proceeds [INF].
* ``dump_start`` / ``dump_write`` / ``dump_finish`` return an error: recorded, and the filter keeps
  being called; the write still goes to disk -- "returning an error does not prevent data from
  being written to disk" [SRC S24; INF for start/finish].
* ``dump_write`` changes the length, or writes into the buffer it was handed: a violation
  [DOC S7]. Windows' behaviour is undefined (VeraCrypt bugchecks on an oversize MDL), so the
  simulator stops the dump and names the filter (assumption).
* ``dump_write`` changes the offset: allowed and honoured, as real filters do it (VeraCrypt,
  DiskCryptor [SRC S24, S26]) although the docs say it "should not"; reported as a warning. A
  new offset that is not sector aligned is a violation.
* A Python exception in a callback: in crash mode that is a fault at HIGH_LEVEL -- a nested
  bugcheck -- so the dump is aborted and the result names the filter, the callback and the
  exception (assumption). In ``driver_entry`` it counts as a failed DriverEntry.
"""

from __future__ import annotations

import inspect
from collections import Counter
from collections.abc import Iterable
from typing import Any

import trio

from stacksim._engine import CallFailed, CpuMeter, Engine
from stacksim.faults import FilterFault
from stacksim.filters._base import (
    DUMP_FILTER_MAJOR_VERSION,
    DUMP_FILTER_MAJOR_VERSION_1,
    DumpFilter,
    FilterExtension,
    FilterInitializationData,
)
from stacksim.metrics import LayerStats
from stacksim.requests import SECTOR_SIZE, NtStatus, Op, OpKind, status_name, status_ok

__all__ = ["FilterLayer"]


class FilterLayer:
    """One filter instance in one stack (crash dump or hibernation), and its statistics."""

    def __init__(self, engine: Engine, filt: DumpFilter, extension: FilterExtension, max_pages_per_write: int) -> None:
        self.engine = engine
        self.filter = filt
        self.name = filt.service_name
        self.extension = extension
        self.init = FilterInitializationData(max_pages_per_write=max_pages_per_write)
        self.dump_type = extension.dump_type.label
        self.stats = LayerStats(self.name)
        self.meter = CpuMeter()
        self.loaded = False
        self.attempted = False
        self.load_status: int = NtStatus.SUCCESS
        self.load_error: str | None = None
        self.faults: list[FilterFault] = []
        """Injected faults for this filter (see :mod:`stacksim.faults`)."""
        self.fired: set[FilterFault] = set()
        self._fault_index: tuple[list[FilterFault], list[int], dict[int, list[int]], int, bool, list[FilterFault]] | None = None
        """``faults`` indexed (see :meth:`_indexed`): 100,000 faults cost a lookup per call, not a scan."""
        self.errors: Counter[str] = Counter()
        self.first_error: dict[str, str] = {}
        self.warnings: list[str] = []
        self._callbacks: dict[OpKind, Any] = {}
        """The callbacks crashdmp calls, by operation: taken from the initialization data once
        DriverEntry has returned (crashdmp keeps its own copy), emptied on unload."""
        self._on_write: Any = None

    def _callback_table(self) -> dict[OpKind, Any]:
        init = self.init
        table = {
            OpKind.START: init.dump_start,
            OpKind.WRITE: init.dump_write,
            OpKind.FINISH: init.dump_finish,
            OpKind.READ: init.dump_read if init.supports_read else None,
        }
        return {kind: cb for kind, cb in table.items() if cb is not None}

    # -- DriverEntry -----------------------------------------------------------------------
    def driver_entry(self) -> bool:
        """Call the filter's ``driver_entry``; return True when the filter is loaded."""
        engine = self.engine
        self.attempted = True
        token = self.meter.activate()
        self.meter.ns = 0
        result: Any = None
        try:
            result = self.filter.driver_entry(self.extension, self.init)
        except Exception as exc:
            self.load_error = f"driver_entry raised {type(exc).__name__}: {exc}"
        finally:
            CpuMeter.deactivate(token)
        if inspect.iscoroutine(result):
            result.close()
            result = None
            self.load_error = (
                "driver_entry is a coroutine function; it must be a plain `def` "
                "(DriverEntry runs at load time, not in crash mode)"
            )
        status = NtStatus.coerce(result) if self.load_error is None else NtStatus.UNSUCCESSFUL
        if status is None:
            self.load_error = f"driver_entry returned {result!r}, not an NTSTATUS"
            status = NtStatus.UNSUCCESSFUL
        if self.load_error is None and not status_ok(status):
            self.load_error = f"driver_entry returned {status_name(status)}"
        if self.load_error is None and self.init.major_version not in (DUMP_FILTER_MAJOR_VERSION_1, DUMP_FILTER_MAJOR_VERSION):
            self.load_error = f"driver_entry declared major version {self.init.major_version}; only 1 and 2 exist"
            status = NtStatus.NOT_SUPPORTED
        self.load_status = status
        self.loaded = self.load_error is None
        if self.loaded:
            self.extension.dump_data = self.init.dump_data  # handed back in every callback [DOC S1]
            self._callbacks = self._callback_table()
            self._on_write = self._callbacks.get(OpKind.WRITE)
        t0 = engine.now_ns
        engine.advance(self.meter.ns)
        if engine.trace is not None:
            engine.emit(t0, self.name, "driver_entry", self.meter.ns, dump_type=self.dump_type, status=status_name(status))
        return self.loaded

    async def dump_unload(self) -> None:
        """Call ``dump_unload`` (outside crash mode) if the filter provided it."""
        callback = self.init.dump_unload
        if not self.loaded or callback is None:
            return
        t0 = self.engine.now_ns
        self.meter.activate()
        status, dur, error, _ = await self._call("dump_unload", None, callback, self.extension)
        self.engine.advance(dur)
        if error is not None:
            self._note_error("dump_unload", error)
        elif not status_ok(status):
            self._note_error("dump_unload", f"returned {status_name(status)}")
        if self.engine.trace is not None:
            self.engine.emit(t0, self.name, "dump_unload", dur, dump_type=self.dump_type, status=status_name(status))
        self.loaded = False
        self._callbacks = {}
        self._on_write = None

    # -- the layer task --------------------------------------------------------------------
    async def run(
        self,
        receive: trio.MemoryReceiveChannel[Op],
        send: trio.MemorySendChannel[Op],
        complete: trio.MemorySendChannel[Op],
    ) -> None:
        """Serve operations from the layer above; pass them on, or back up on a fatal fault."""
        meter = self.meter
        meter.activate()
        ext = self.extension
        engine = self.engine
        timed = engine.timed
        name = self.name
        record = self.stats.record
        forward = send.send_nowait
        take = receive.receive  # not `async for`: its __anext__ is one more coroutine per hop
        take_now = receive.receive_nowait
        write = OpKind.WRITE
        while True:
            try:
                try:  # pipelined: serve every write already queued in this one scheduler step
                    op = take_now() if engine.pipelined else await take()
                except trio.WouldBlock:
                    op = await take()
            except trio.EndOfChannel:
                return
            kind = op.kind
            # `is` tests, not a dict keyed by the enum: Enum.__hash__ is Python code.
            callback = self._on_write if kind is write else self._callbacks.get(kind)
            if callback is None:
                forward(op)
                continue
            request = op.request
            if request is not None and request.count > 1:
                self._charge_run(request)
                forward(op)
                continue
            event = "dump_write" if kind is write else kind.value
            t0 = engine.now_ns
            if request is None:
                status, dur, error, fault = await self._call(event, None, callback, ext)
            else:
                mdl_in = request.mdl
                writes_in, length_in, offset_in = mdl_in.writes, mdl_in.length, request.offset
                if self.faults:
                    status, dur, error, fault = await self._call(event, request.number, callback, ext, request)
                else:  # the common case, inlined from _call: one coroutine less per write
                    try:
                        result, dur = await timed(meter, name, event, request.number, callback, ext, request)
                    except CallFailed as failed:
                        status, dur, error, fault = self._failed(event, request.number, failed)
                    else:
                        status, error, fault = self._status(event, result)
                if error is None and (
                    request.mdl.length != length_in or mdl_in.writes != writes_in or request.offset != offset_in
                ):
                    error = self._check_request(event, request, mdl_in, writes_in, length_in, offset_in)
                if request.mdl.data is not None and engine.pipelined:
                    # Contents in flight: a filter reusing its buffer for the next write would
                    # overwrite what the layers below have not read yet (one at a time, it can't).
                    engine.spoil(f"{name} handed down a buffer with contents while writes were in flight")
            engine.now_ns += dur
            if request is not None:
                request.upstream_ns += dur
            record(dur)
            if engine.trace is not None:
                engine.emit(
                    t0,
                    name,
                    event,
                    dur,
                    None if request is None else request.number,
                    None if request is None else request.offset,
                    None if request is None else request.length,
                    self.dump_type,
                    status_name(status),
                )
            if error is not None:
                op.error = f"{name}: {error}"
                op.fault = fault
                complete.send_nowait(op)
                continue
            if status and not status_ok(status):
                self._note_error(
                    event, f"returned {status_name(status)}" + (f" for request #{request.number}" if request else "")
                )
            forward(op)

    def unfired_faults(self) -> list[str]:
        """Warnings for injected faults that never hit a call (e.g. a callback the filter lacks)."""
        out = []
        for f in self.faults:
            if f not in self.fired and self.attempted:
                has = f.callback == "any" or f.callback in self.callbacks()
                why = "" if has else f": the filter has no {f.callback} callback"
                out.append(f"fault {f.action} on {self.name} {f.callback} never fired{why}")
        return out

    def callbacks(self) -> list[str]:
        """The callbacks the filter registered in DriverEntry (dump_read only if read is supported)."""
        init = self.init
        names = ["dump_start", "dump_write", "dump_finish", "dump_unload"]
        out = [n for n in names if getattr(init, n) is not None]
        return out + (["dump_read"] if init.supports_read else [])

    def _indexed(self) -> tuple[list[FilterFault], list[int], dict[int, list[int]], int, bool, list[FilterFault]]:
        """
        ``faults`` indexed once, and again only when the list is replaced.

        Returns (the list, faults without at_request, faults by at_request, the slow faults'
        extra time per dump_write, whether some fault hits every dump_write, the slow faults
        that hit dump_write).
        """
        faults = self.faults
        index = self._fault_index
        if index is None or index[0] is not faults:
            always: list[int] = []
            by_request: dict[int, list[int]] = {}
            extra, every, slow = 0, False, []
            for i, f in enumerate(faults):
                (always if f.at_request is None else by_request.setdefault(f.at_request, [])).append(i)
                if f.applies("dump_write", None, self.dump_type):
                    if f.action == "slow":
                        extra += f.extra_ns
                        slow.append(f)
                    elif not f.per_request:
                        every = True
            index = self._fault_index = (faults, always, by_request, extra, every, slow)
        return index

    def _faults_for(self, event: str, number: int | None) -> list[FilterFault]:
        """The injected faults that hit *event* on request *number*, in scenario order."""
        faults, always, by_request, *_ = self._indexed()
        if number is None:  # a callback without a request: a fault's at_request does not narrow it
            candidates: Iterable[int] = range(len(faults))
        else:
            on_request = by_request.get(number)
            candidates = sorted(always + on_request) if on_request else always
        return [faults[i] for i in candidates if faults[i].applies(event, number, self.dump_type)]

    def write_cost(self, length: int) -> int | None:
        """The filter's declared per-write cost for *length* bytes (0 without a dump_write), or None."""
        if self._on_write is None:  # not loaded, or no dump_write registered at DriverEntry
            return 0
        cost = self.filter.write_cost(self.extension, length)
        if not self.faults:
            return cost
        _, _, _, extra, every, _ = self._indexed()
        if every:
            return None  # a fault hits every write: call every write
        return None if cost is None else cost + extra

    def batch_blocker(self, length: int) -> str | None:
        """Why writes of *length* bytes cannot be batched through this filter (None: they can)."""
        if self.write_cost(length) is not None:
            return None
        if self.filter.write_cost(self.extension, length) is not None:
            return f"an injected fault hits every dump_write of {self.name}"
        return (
            f"{self.name} declares no write_cost, so its dump_write is called for every write "
            "(declare one to batch: docs/how-to/write-a-filter.md)"
        )

    def special_requests(self) -> frozenset[int]:
        """Request numbers whose dump_write must really be called (declared, or hit by a fault)."""
        if self._on_write is None:
            return frozenset()
        injected = {
            f.at_request for f in self.faults if f.at_request is not None and f.applies("dump_write", None, self.dump_type)
        }
        return self.filter.special_requests(self.extension) | injected

    def _charge_run(self, request: Any) -> None:
        """Batched mode: charge the declared cost of *count* identical writes without calling back."""
        cost = self.write_cost(request.length)
        if self.faults:
            self.fired.update(self._indexed()[5])
        if cost is None:  # pragma: no cover - the dump driver batches only declared costs
            raise AssertionError(f"{self.name} has no cost model for a batched write")
        self.engine.advance(cost * request.count)
        self.stats.record(cost, request.count)
        request.upstream_ns += cost

    async def _call(self, event: str, number: int | None, callback: Any, *args: Any) -> tuple[int, int, str | None, str]:
        """Run one callback; return (status, duration ns, fatal error or None, fault kind)."""
        if self.faults:
            return await self._call_with_faults(event, number, callback, *args)
        try:
            result, dur = await self.engine.timed(self.meter, self.name, event, number, callback, *args)
        except CallFailed as failed:
            return self._failed(event, number, failed)
        status, error, fault = self._status(event, result)
        return status, dur, error, fault

    @staticmethod
    def _status(event: str, result: object) -> tuple[int, str | None, str]:
        """A callback's return value as (NTSTATUS, fatal error or None, fault kind)."""
        if result is None or result == 0:  # the common case, without an enum lookup
            return NtStatus.SUCCESS, None, "filter_violation"
        status = NtStatus.coerce(result)
        if status is None:
            return NtStatus.UNSUCCESSFUL, f"{event} returned {result!r}, not an NTSTATUS", "filter_violation"
        return status, None, "filter_violation"

    @staticmethod
    def _failed(event: str, number: int | None, failed: CallFailed) -> tuple[int, int, str, str]:
        """A callback that raised: UNSUCCESSFUL, the time it ran, and the error naming the exception."""
        exc = failed.exc
        where = f" on request #{number}" if number is not None else ""
        return NtStatus.UNSUCCESSFUL, failed.dur_ns, f"{event} raised {type(exc).__name__}: {exc}{where}", "filter_crashed"

    async def _call_with_faults(
        self, event: str, number: int | None, callback: Any, *args: Any
    ) -> tuple[int, int, str | None, str]:
        """:meth:`_call` with the injected faults that hit this call applied."""
        hits = self._faults_for(event, number)
        self.fired.update(hits)
        self.faults, saved = [], self.faults  # the plain path below must not recurse
        try:
            for f in hits:
                if f.action == "raise":
                    callback = _injected_raise
                elif f.action == "hang":
                    callback = _injected_hang
            status, dur, error, fault = await self._call(event, number, callback, *args)
        finally:
            self.faults = saved
        for f in hits:
            if f.action == "error_status" and error is None:
                status = f.status
            elif f.action == "slow":
                dur += f.extra_ns
        return status, dur, error, fault

    def _check_request(self, event: str, request: Any, mdl_in: Any, writes_in: int, length_in: int, offset_in: int) -> str | None:
        if request.mdl.length != length_in:
            return (
                f"{event} changed the length of request #{request.number} from {length_in} to "
                f"{request.mdl.length} bytes; a dump filter must not change the size (ntdddump DUMP_WRITE)"
            )
        if mdl_in.writes != writes_in:
            return (
                f"{event} wrote into the buffer it was given (request #{request.number}, owned by "
                f"{mdl_in.owner}); a dump filter must copy into its own buffer instead (ntdddump DUMP_WRITE)"
            )
        if request.offset != offset_in:
            if event == OpKind.READ.value:
                return f"dump_read changed the offset of request #{request.number}; Dump_Read must not modify it"
            if request.offset % SECTOR_SIZE:
                return f"{event} moved request #{request.number} to offset {request.offset}, which is not sector aligned"
            if len(self.warnings) < 20:
                self.warnings.append(
                    f"{self.name} moved request #{request.number} from partition offset {offset_in} to "
                    f"{request.offset} (honoured, as real filters rely on it; the docs say it should not)"
                )
        return None

    def _note_error(self, event: str, message: str) -> None:
        self.errors[event] += 1
        self.first_error.setdefault(event, message)


async def _injected_raise(*args: Any) -> int:
    raise RuntimeError("injected fault (filter_raise)")


async def _injected_hang(*args: Any) -> int:
    await trio.sleep_forever()
    raise AssertionError("unreachable")  # pragma: no cover
