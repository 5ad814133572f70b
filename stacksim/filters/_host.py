"""
How crashdmp hosts one dump filter: DriverEntry, the callbacks, and the rules it enforces.

One :class:`FilterLayer` per loaded filter per stack. Its task takes operations from the layer
above, calls the matching callback, checks the documented rules, charges the callback's time,
and passes the operation down -- each filter sees the previous filter's output.

Rules and their outcomes (fact sheet §1.6-§1.7; each is named in the result):

* ``driver_entry`` fails: with ``DUMP_FILTER_CRITICAL`` set (read from the flags even after the
  failure, as DiskCryptor relies on [SRC S26]) the stack does not initialise [DOC S1]; without it
  the filter is skipped and the dump proceeds [INF]. A critical filter must return
  ``STATUS_SUCCESS`` exactly ("does not return STATUS_SUCCESS" fails it [DOC S1]); a non-critical
  filter returning another success code (``NT_SUCCESS()``, e.g. ``STATUS_PENDING``) is loaded
  with a warning (ASSUMPTION: crashdmp's test for a non-critical filter is not documented).
* ``driver_entry`` declares a major version other than ``DUMP_FILTER_MAJOR_VERSION_1`` (1) or
  ``DUMP_FILTER_MAJOR_VERSION`` (2), the only two ``MajorVersion`` values ntdddump defines
  [DOC S1, S2]: not loaded (ASSUMPTION: what crashdmp does with an unknown version is not
  documented; refusing it is the safe reading).
* ``dump_start`` / ``dump_write`` / ``dump_finish`` return an error: recorded, and the filter keeps
  being called; the write still goes to disk -- "returning an error does not prevent data from
  being written to disk" [SRC S24; INF for start/finish].
* ``dump_write`` changes the length, or writes into the buffer it was handed: a violation
  [DOC S7]. Windows' behaviour is undefined (VeraCrypt bugchecks on an oversize MDL), so the
  simulator stops the dump and names the filter (assumption).
* ``dump_write`` changes the offset: allowed and honoured, as real filters do it (VeraCrypt,
  DiskCryptor [SRC S24, S26]) although the docs say it "should not"; reported as a warning. A
  new offset that is not sector aligned is a violation.
* A Python exception in a callback -- any, ``SystemExit``, ``KeyboardInterrupt`` and
  ``GeneratorExit`` included: in crash mode that is a fault at HIGH_LEVEL -- a nested bugcheck --
  so the dump is aborted (``filter_crashed``) and the result names the filter, the callback and
  the exception (assumption). In ``driver_entry`` (or the filter's ``__init__``) it counts as a
  failed DriverEntry. A real Ctrl-C and trio's ``Cancelled`` are not the plugin's: they propagate.
* A call that runs for ``[engine] watchdog`` of simulated time or longer (spent, awaited or
  both) is cut at its start + the watchdog period and charged that period. A crash-mode
  callback cut so makes the run ``hung`` there, naming the filter, callback and request (no
  trace record: it returned no status); a cut ``driver_entry`` is a failed DriverEntry, a cut
  ``dump_unload`` an error in the result. A call the wall-clock guard stops ends the run as
  ``wall_clock_limit`` (no trace record either).
* The declarations ``write_cost`` and ``special_requests`` are asked in every mode (so a broken
  one fails a run the same way batched or not): raising is ``filter_crashed``, returning
  something that is not a cost (or a set of request numbers) is ``filter_violation``. In batched
  mode, real calls sampled from every batched run (:data:`~stacksim.dump_driver.probe_positions`)
  are compared with the declaration; a filter that does not keep it goes one write at a time.
"""

from __future__ import annotations

import inspect
from collections import Counter
from collections.abc import Iterable
from typing import Any, Final

import trio
from pydantic import BaseModel

from stacksim._engine import PIPELINE_WINDOW, CallFailed, CallStopped, CpuMeter, Engine, FatalCall, WatchdogExpired
from stacksim.faults import FilterFault
from stacksim.filters._base import (
    DUMP_FILTER_MAJOR_VERSION,
    DUMP_FILTER_MAJOR_VERSION_1,
    DumpFilter,
    FilterExtension,
    FilterInitializationData,
)
from stacksim.metrics import LayerStats
from stacksim.requests import SECTOR_SIZE, Mdl, NtStatus, Op, OpKind, status_name, status_ok
from stacksim.units import format_ns

__all__ = ["FilterLayer"]

MAX_COST_NS: Final = 2**63 - 1
"""The largest cost ``write_cost`` may declare: simulated times are int64 nanoseconds."""

_STOPPING: Final = ("hung", "wall_clock_limit")
"""Fault kinds of a call that ends the run where it stands (its message names the filter already)."""


class FilterLayer:
    """
    One filter instance in one stack (crash dump or hibernation), and its statistics.

    The instance is created (``cls(config)``) when the stack loads, just before DriverEntry, so
    that the filter's own ``__init__`` runs under the same rules as the rest of its code.
    """

    def __init__(
        self, engine: Engine, cls: type[DumpFilter], config: BaseModel, extension: FilterExtension, max_pages_per_write: int
    ) -> None:
        self.engine = engine
        self.cls = cls
        self.config = config
        self.filter: DumpFilter | None = None
        """The instance, once the stack has loaded (``None`` before, or if creating it failed)."""
        self.name = cls.service_name
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
        self.probing = False
        """Set by crashdmp while a sampled write of a batched run passes: compare it with ``write_cost``."""
        self.mistrust: str | None = None
        """Why this filter's ``write_cost`` is no longer believed (a sampled call disagreed with it)."""
        self._declared: dict[int, int | None] = {}
        self._callbacks: dict[OpKind, Any] = {}
        """The callbacks crashdmp calls, by operation: taken from the initialization data once
        DriverEntry has returned (crashdmp keeps its own copy), emptied on unload."""
        self._on_write: Any = None
        self._copies: dict[int, tuple[bytearray, memoryview]] = {}
        """Data mode: the snapshot buffers of :meth:`_snapshot` (and a view of each), by length."""
        self._held: dict[int, list[tuple[bytearray, memoryview]]] = {}
        """Pipelined request mode: the buffers of :meth:`_hold` (and a view of each), by length, one per write in flight."""

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
        """
        Create the filter and call its ``driver_entry``; return True when the filter is loaded.

        A DriverEntry the watchdog cuts (it ran for the watchdog period or longer) counts as a
        failed one, as an exception does: it is charged the period and the stack goes on without
        the filter, or fails if the filter is critical.

        Raises:
            FatalCall: the wall-clock guard stopped it.
        """
        engine = self.engine
        self.attempted = True
        t0 = engine.now_ns
        token = self.meter.activate()
        result: Any = None
        dur = 0
        try:
            if self.filter is None:
                created, _ = engine.call_sync(None, self.name, "__init__", self.cls, self.config)
                self.filter = created
            filt = self.filter
            result, dur = engine.call_sync(self.meter, self.name, "driver_entry", filt.driver_entry, self.extension, self.init)
        except CallFailed as failed:
            where = "driver_entry" if self.filter is not None else "creating the filter (its __init__)"
            self.load_error = f"{where} raised {failed}"
            dur = failed.dur_ns
        except WatchdogExpired as hung:  # cut at the deadline, it returned no success: a failed DriverEntry
            self.load_error = (
                f"driver_entry did not return {hung.within}, so it counts as a failed DriverEntry "
                "(on Windows the machine would hang here)"
            )
            dur = hung.waited_ns
        except CallStopped as stopped:  # no record: the run simulates nothing after it
            raise FatalCall("wall_clock_limit", str(stopped)) from None
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
        elif self.load_error is None and status != NtStatus.SUCCESS:
            if self.init.critical:  # crashdmp's verdict is the status the result and the trace show
                self.load_error = (
                    f"driver_entry returned {status_name(status)}; a critical filter must return STATUS_SUCCESS exactly [DOC S1]"
                )
                status = NtStatus.UNSUCCESSFUL
            else:
                self.warnings.append(
                    f"{self.name}: driver_entry returned {status_name(status)}, a success code other than "
                    "STATUS_SUCCESS; loaded, as NT_SUCCESS() holds (ASSUMPTION: crashdmp's test for a non-critical "
                    "filter is not documented; a critical one would have failed [DOC S1])"
                )
        if self.load_error is None and self.init.major_version not in (DUMP_FILTER_MAJOR_VERSION_1, DUMP_FILTER_MAJOR_VERSION):
            self.load_error = (
                f"driver_entry declared major version {self.init.major_version!r}; ntdddump defines only "
                "DUMP_FILTER_MAJOR_VERSION_1 (1) and DUMP_FILTER_MAJOR_VERSION (2) [DOC S1, S2], so the filter is not loaded "
                "(ASSUMPTION: crashdmp's reaction to another value is not documented)"
            )
            status = NtStatus.NOT_SUPPORTED
        self.load_status = status
        self.loaded = self.load_error is None
        if self.loaded:
            self.extension.dump_data = self.init.dump_data  # handed back in every callback [DOC S1]
            self._callbacks = self._callback_table()
            self._on_write = self._callbacks.get(OpKind.WRITE)
        self._end_driver_entry(t0, dur, status_name(status))
        return self.loaded

    def _end_driver_entry(self, t0: int, dur: int, status: str | None) -> None:
        engine = self.engine
        engine.advance(dur)
        if engine.observed:
            engine.phase(t0, self.name, "driver_entry", dur, dump_type=self.dump_type, status=status)

    async def dump_unload(self) -> None:
        """
        Call ``dump_unload`` (outside crash mode) if the filter provided it.

        Dump_Unload runs at normal IRQL, not in crash mode: an exception, or a call the watchdog
        cuts, is an error in the result and the unload goes on.

        Raises:
            FatalCall: the wall-clock guard stopped it.
        """
        callback = self.init.dump_unload
        if not self.loaded or callback is None:
            return
        t0 = self.engine.now_ns
        self.meter.activate()
        previous = self.meter.scope  # the layer task's, if it runs already
        with trio.CancelScope() as scope:  # the watchdog's per-call deadline, should it await
            self.meter.scope = scope
            try:
                status, dur, error, fault = await self._call("dump_unload", None, callback, self.extension)
            finally:
                self.meter.scope = previous
        if error is not None and fault == "wall_clock_limit":
            raise FatalCall(fault, error)
        self.engine.advance(dur)
        if self.engine.observed:
            self.engine.phase(t0, self.name, "dump_unload", dur, dump_type=self.dump_type, status=status_name(status))
        if error is not None:
            self._note_error("dump_unload", error)
        elif not status_ok(status):
            self._note_error("dump_unload", f"returned {status_name(status)}")
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
        write, window = OpKind.WRITE, OpKind.WINDOW
        success = NtStatus.SUCCESS  # (a local for the hot loop)
        # A call that awaits gets the watchdog's deadline on this scope, entered before any call.
        # Once a call is cut there the scope stays cancelled and the task ends: so does the run.
        with trio.CancelScope() as scope:
            meter.scope = scope
            while True:
                try:
                    try:  # pipelined: serve every write already queued in this one scheduler step
                        msg = take_now() if engine.pipelined else await take()
                    except trio.WouldBlock:
                        msg = await take()
                except trio.EndOfChannel:
                    return
                # Pipelined: a WINDOW is the writes in flight as one message; serve each in order, pass
                # them on as one message too (a write that fails goes back up alone, at once).
                ops: list[Op] | tuple[Op]
                passed: list[Op] | None
                if msg.kind is window:
                    assert msg.ops is not None
                    ops, passed = msg.ops, []
                    push = passed.append
                else:
                    ops, passed, push = (msg,), None, forward
                for op in ops:
                    kind = op.kind
                    # `is` tests, not a dict keyed by the enum: Enum.__hash__ is Python code.
                    callback = self._on_write if kind is write else self._callbacks.get(kind)
                    if callback is None:
                        push(op)
                        continue
                    request = op.request
                    if request is not None and request.count > 1:
                        self._charge_run(request)
                        push(op)
                        continue
                    event = "dump_write" if kind is write else kind.value
                    t0 = engine.now_ns
                    if request is None:
                        status, dur, error, fault = await self._call(event, None, callback, ext)
                    else:
                        mdl_in = request.mdl
                        writes_in, length_in, offset_in = mdl_in.writes, mdl_in.length, request.offset
                        data_in = mdl_in.data  # data mode: the caller's bytes, and what to compare them with after the call
                        snapshot = None
                        if data_in is not None and kind is write:
                            # a copy only the host holds: nothing the filter can reach compares equal by construction
                            snapshot = self._snapshot(data_in)
                        number, upstream_in = request.number, request.upstream_ns
                        if self.faults:
                            status, dur, error, fault = await self._call(event, number, callback, ext, request)
                        else:  # the common case, inlined from _call: one coroutine less per write
                            try:
                                result, dur = await timed(meter, name, event, number, callback, ext, request)
                            except (CallFailed, WatchdogExpired, CallStopped) as failed:
                                status, dur, error, fault = self._failed(event, number, failed)
                            else:
                                if result is None or result == 0:  # _status's first case, inlined: the call was ≈ 7 % of a write
                                    status, error, fault = success, None, "filter_violation"
                                else:
                                    status, error, fault = self._status(event, result)
                        if error is None:
                            try:  # what the filter may change: the offset, and the MDL for one of the same length
                                changed = (
                                    request.mdl.length != length_in
                                    or (mdl_in.writes != writes_in and kind is write)  # Dump_Read may change the contents
                                    or request.offset != offset_in
                                    or request.number != number
                                    or request.count != 1
                                )
                            except AttributeError:  # the MDL replaced by something that is not one, or deleted
                                changed = True
                            if changed:
                                error = self._check_request(event, request, mdl_in, (writes_in, length_in, offset_in, number))
                            if error is None and snapshot is not None and data_in is not None:
                                error = self._check_bytes(request, mdl_in, data_in, snapshot)
                            held = request.mdl.data if error is None and engine.pipelined else None
                            if held is not None and held is not data_in:
                                self._hold(request)  # contents in flight, in a buffer of the filter's own
                            if self.probing and error is None:
                                self._compare(request, status, dur, offset_in)
                    engine.now_ns += dur
                    if request is not None and error is None:
                        request.upstream_ns = upstream_in + dur  # (what a filter wrote there is overwritten)
                    record(dur)
                    if (engine.trace is not None or (request is None and engine.observed)) and not (
                        error is not None and fault in _STOPPING
                    ):
                        # (a call cut by the watchdog or stopped by the guard returned no status: no record;
                        # crashdmp's dump_failed follows at its start + the time it is charged)
                        at: tuple[int | None, int | None, int | None]
                        if request is None:
                            at = None, None, None
                        elif error is None:
                            at = request.number, request.offset, request.length
                        else:  # what the filter did to the request may not even be numbers
                            at = number, *self._shown(request, offset_in, length_in)
                        # a moved write says where it came from, so the checker can follow each hand-off
                        moved: dict[str, object] | None = None
                        if request is not None and at[1] != offset_in:
                            moved = {"moved_from": offset_in}
                        if request is None:  # Dump_Start, Dump_Finish: a phase, for the run's log too
                            engine.phase(t0, name, event, dur, dump_type=self.dump_type, status=status_name(status))
                        else:  # pipelined, the write's start is known only when the one before it completes (held: -1)
                            start = -1 if engine.pipelined else t0
                            engine.emit(start, name, event, dur, at[0], at[1], at[2], self.dump_type, status_name(status), moved)
                    if error is not None:
                        op.error = error if fault in _STOPPING else f"{name}: {error}"
                        op.fault = fault
                        complete.send_nowait(op)
                        continue
                    if status and not status_ok(status):
                        self._note_error(
                            event, f"returned {status_name(status)}" + (f" for request #{request.number}" if request else "")
                        )
                    push(op)
                if passed:
                    msg.ops = passed
                    forward(msg)

    def unfired_faults(self, writes: int | None = None) -> list[str]:
        """
        Warnings for injected faults that never hit a call, each with the reason when it could not.

        Reasons: the filter lacks the callback, the fault is for the other stack's dump type, or
        its ``at_request`` is past the *writes* the dump has (when known).
        """
        out: list[str] = []
        if not self.attempted:
            return out
        callbacks = self.callbacks()
        for f in self.faults:
            if f in self.fired:
                continue
            if f.callback != "any" and f.callback not in callbacks:
                why = f": the filter has no {f.callback} callback"
            elif f.dump_type not in ("any", self.dump_type):
                why = f": it is for the {f.dump_type} stack and this run's stack is {self.dump_type}"
            elif writes is not None and f.at_request is not None and f.at_request > writes:
                why = f": past the last write (the dump has {writes:,} writes)"
            else:
                why = ""
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

    # -- declarations: batched mode ----------------------------------------------------------
    def declared_cost(self, length: int) -> int | None:
        """
        The filter's own ``write_cost`` for *length* bytes, checked and asked once per length.

        Raises:
            FatalCall: ``write_cost`` raised (``filter_crashed``), returned something that is not
                ``None`` or a cost in integer ns (``filter_violation``), or was stopped.
        """
        if length in self._declared:
            return self._declared[length]
        assert self.filter is not None  # declarations are asked of loaded filters only
        try:
            cost, _ = self.engine.call_sync(None, self.name, "write_cost", self.filter.write_cost, self.extension, length)
        except CallFailed as failed:
            raise FatalCall("filter_crashed", f"{self.name}: write_cost raised {failed} (for {length}-byte writes)") from None
        except CallStopped as stopped:
            raise FatalCall("wall_clock_limit", str(stopped)) from None
        if cost is not None and (isinstance(cost, bool) or not isinstance(cost, int) or not 0 <= cost <= MAX_COST_NS):
            raise FatalCall(
                "filter_violation",
                f"{self.name}: write_cost returned {cost!r} for {length}-byte writes; it must return None or a "
                f"whole number of ns from 0 to {MAX_COST_NS:,}",
            )
        self._declared[length] = cost
        return cost

    def declared(self, length: int) -> bool:
        """Whether this filter's ``write_cost`` has been asked for *length* bytes already (or it has no dump_write)."""
        return self._on_write is None or length in self._declared

    def write_cost(self, length: int) -> int | None:
        """The declared per-write cost for *length* bytes with injected faults (0 without a dump_write), or None."""
        if self._on_write is None:  # not loaded, or no dump_write registered at DriverEntry
            return 0
        cost = self.declared_cost(length)
        if self.mistrust is not None:
            return None
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
        if self.mistrust is not None:
            return self.mistrust
        if self.declared_cost(length) is not None:
            return f"an injected fault hits every dump_write of {self.name}"
        return (
            f"{self.name} declares no write_cost, so its dump_write is called for every write "
            "(declare one to batch: docs/how-to/write-a-filter.md)"
        )

    def special_requests(self) -> frozenset[int]:
        """
        Request numbers whose dump_write must really be called (declared, or hit by a fault).

        Raises:
            FatalCall: ``special_requests`` raised, returned something other than a set of
                request numbers (``filter_violation``), or was stopped.
        """
        if self._on_write is None:
            return frozenset()
        assert self.filter is not None
        injected = {
            f.at_request for f in self.faults if f.at_request is not None and f.applies("dump_write", None, self.dump_type)
        }
        try:
            declared, _ = self.engine.call_sync(None, self.name, "special_requests", self.filter.special_requests, self.extension)
        except CallFailed as failed:
            raise FatalCall("filter_crashed", f"{self.name}: special_requests raised {failed}") from None
        except CallStopped as stopped:
            raise FatalCall("wall_clock_limit", str(stopped)) from None
        if not isinstance(declared, set | frozenset) or not all(
            isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in declared
        ):
            shown = repr(declared) if len(repr(declared)) <= 80 else repr(declared)[:77] + "..."
            raise FatalCall(
                "filter_violation",
                f"{self.name}: special_requests returned {shown}; it must return a set of request numbers (integers >= 1)",
            )
        return frozenset(declared) | injected

    def _charge_run(self, request: Any) -> None:
        """Batched mode: charge the declared cost of *count* identical writes without calling back."""
        cost = self.write_cost(request.length)
        if self.faults:
            self.fired.update(self._indexed()[5])
        if cost is None:  # pragma: no cover - the dump driver batches only declared costs
            raise AssertionError(f"{self.name} has no cost model for a batched write")
        if request.by_length is not None:  # a run across disk runs: each write length at its own cost
            for length, entry in request.by_length.items():
                cost = self.write_cost(length)
                assert cost is not None, (self.name, length)
                self.engine.advance(cost * entry[0])
                self.stats.record(cost, entry[0])
                entry[1] += cost
            return
        self.engine.advance(cost * request.count)
        self.stats.record(cost, request.count)
        request.upstream_ns += cost

    def _compare(self, request: Any, status: int, dur: int, offset_in: int) -> None:
        """A sampled write of a batched run: does the real call keep what ``write_cost`` declared?"""
        declared = self.write_cost(request.length)
        if declared is None:
            return
        if status != NtStatus.SUCCESS:
            broke = f"returned {status_name(status)}"
        elif request.offset != offset_in:
            broke = "moved its offset"
        elif dur != declared:
            broke = f"took {format_ns(dur)} ({dur} ns)"
        else:
            return
        self.mistrust = (
            f"{self.name} declares write_cost = {declared} ns for {request.length}-byte writes, but its dump_write on "
            f"request #{request.number} {broke}; its dump_write is called for every later write"
        )

    # -- calls -------------------------------------------------------------------------------
    async def _call(self, event: str, number: int | None, callback: Any, *args: Any) -> tuple[int, int, str | None, str]:
        """Run one callback; return (status, duration ns, fatal error or None, fault kind)."""
        if self.faults:
            return await self._call_with_faults(event, number, callback, *args)
        try:
            result, dur = await self.engine.timed(self.meter, self.name, event, number, callback, *args)
        except (CallFailed, WatchdogExpired, CallStopped) as failed:
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
    def _failed(event: str, number: int | None, failed: CallFailed | WatchdogExpired | CallStopped) -> tuple[int, int, str, str]:
        """
        A call that did not return normally: (status, the time it is charged, the error, the fault kind).

        Raised: UNSUCCESSFUL and the time it had run. Hung: the watchdog period (the call is cut at
        its deadline). Stopped by the wall-clock guard: no time.
        """
        if isinstance(failed, WatchdogExpired):
            return NtStatus.UNSUCCESSFUL, failed.waited_ns, str(failed), "hung"
        if isinstance(failed, CallStopped):
            return NtStatus.UNSUCCESSFUL, 0, str(failed), "wall_clock_limit"
        where = f" on request #{number}" if number is not None else ""
        return NtStatus.UNSUCCESSFUL, failed.dur_ns, f"{event} raised {failed}{where}", "filter_crashed"

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
            elif f.action == "slow" and fault not in _STOPPING:
                dur += f.extra_ns
        if error is None and dur >= self.engine.watchdog_ns:  # the injected delay made it hang
            hung = self.engine.watchdog_expired(self.name, event, number, dur)
            return NtStatus.UNSUCCESSFUL, hung.waited_ns, str(hung), "hung"
        return status, dur, error, fault

    def _snapshot(self, data: bytearray | memoryview) -> bytes | bytearray:
        """
        Data mode: a copy of the caller's bytes, to compare them with after ``dump_write``.

        A plain byte buffer (a bytearray, or a contiguous memoryview of bytes) is copied into a
        buffer of this layer's, reused write after write (one ``memcpy``; a new ``bytes`` each time
        costs an allocation, at 1 MiB page faults too); anything else into new bytes.
        """
        if _plain(data):
            n = len(data)
            held = self._copies.get(n)
            if held is None:
                if len(self._copies) >= 4:
                    self._copies.clear()
                copy = bytearray(n)
                held = self._copies[n] = (copy, memoryview(copy))
            # a memoryview on the left: `bytearray[:] = view` would copy the view into a new bytearray first
            held[1][:] = data
            return held[0]
        return bytes(data)

    def _hold(self, request: Any) -> None:
        """
        Pipelined request mode: copy the bytes a filter handed down in a buffer of its own into one of the host's.

        One write at a time, crashdmp calls the layers below before it calls this filter again,
        so a filter may reuse one buffer for every write (``dumpfve.sys`` does). With writes in
        flight it may be called for write *k* + 1 before the layer below has taken write *k*,
        whatever order trio wakes the tasks in. **ASSUMPTION (bytes in flight)**: the layer
        below takes the bytes at once, as the synchronous calls of one write at a time do: the
        host copies them, as it hands the request down, into its buffer ``number %
        PIPELINE_WINDOW`` (write *n* is issued only once write *n* - PIPELINE_WINDOW has
        completed, so that buffer is free) and repoints the request at an MDL of the same owner,
        length and write count over the copy, of the same kind (a bytearray, or a view of bytes,
        read-only if the filter's was). The bytes, the calls and the simulated times are those of
        one write at a time; the copy costs no simulated time. ``bytes`` cannot change and are
        handed down as they are; a buffer of any other kind spoils the attempt (the run is
        repeated one write at a time).
        """
        mdl = request.mdl
        data = mdl.data
        if type(data) is bytes:
            return
        if not _plain(data):
            self.engine.spoil(f"{self.name} handed down contents in a {type(data).__name__} while writes were in flight")
            return
        n = len(data)
        slots = self._held.get(n)
        if slots is None:
            if len(self._held) >= 4:
                self._held.clear()
            slots = self._held[n] = []
            for _ in range(PIPELINE_WINDOW):
                buffer = bytearray(n)
                slots.append((buffer, memoryview(buffer)))
        buffer, view = slots[request.number % PIPELINE_WINDOW]
        view[:] = data
        held = Mdl(mdl.owner, mdl.length, buffer if type(data) is bytearray else view.toreadonly() if data.readonly else view)
        held.writes = mdl.writes
        request.mdl = held

    def _check_bytes(
        self, request: Any, mdl_in: Mdl, data_in: bytearray | memoryview, snapshot: bytes | bytearray | memoryview
    ) -> str | None:
        """
        Data mode, after ``dump_write``: the caller's buffer must hold its bytes, and the MDL handed down its own.

        Compared byte for byte with the snapshot (or the MDL's reference), so a change is caught
        whatever the filter used to make it (the MDL's API, the buffer itself, a memoryview,
        ctypes). ``request`` passed :meth:`_check_request` already: its MDL is an :class:`Mdl` of
        the original length.
        """
        number = request.number
        if mdl_in.data is not data_in or not _same_bytes(data_in, snapshot):
            return (
                f"dump_write changed the bytes of the buffer it was given (request #{number}, owned by {mdl_in.owner}); "
                "a dump filter must not write into the caller's buffer: copy into a buffer of its own (ntdddump DUMP_WRITE)"
            )
        data = request.mdl.data
        if isinstance(data, memoryview) and not data.c_contiguous:  # (the port writes it with one pwrite)
            held = f"{data.nbytes:,} bytes that are not contiguous in memory"
        elif isinstance(data, bytes | bytearray | memoryview):
            size = data.nbytes if isinstance(data, memoryview) else len(data)  # a view of 8-byte items holds 8 per item
            if size == request.mdl.length:
                return None
            held = f"{size:,} bytes"
        else:
            held = _short(data)
        return (
            f"dump_write handed down request #{number} with an MDL of {request.mdl.length:,} bytes whose buffer "
            f"holds {held}; in data mode every MDL must carry exactly its length in bytes, in one contiguous buffer"
        )

    def _check_request(self, event: str, request: Any, mdl_in: Any, before: tuple[int, int, int, int]) -> str | None:
        """
        A request the callback changed: the violation, or None (a legal MDL swap or offset move, warned).

        *before* is (the MDL's write count, length, offset, number) before the call. What the filter
        writes into ``upstream_ns`` is overwritten; the private fields (``_issued_ns``) are off limits.
        """
        writes_in, length_in, offset_in, number = before
        mdl = getattr(request, "mdl", None)
        if not isinstance(mdl, Mdl):
            return (
                f"{event} replaced the MDL of request #{number} with {_short(mdl)}, not an Mdl; a dump filter may only "
                "point it at a buffer of its own of the same length (ntdddump DUMP_WRITE)"
            )
        if request.number != number or request.count != 1:
            return (
                f"{event} changed the simulator's bookkeeping of request #{number} (its number or count); "
                "a dump filter sees only the offset and the MDL (ntdddump DUMP_WRITE)"
            )
        if mdl.length != length_in:
            return (
                f"{event} changed the length of request #{number} from {length_in} to "
                f"{_short(mdl.length)} bytes; a dump filter must not change the size (ntdddump DUMP_WRITE)"
            )
        if mdl_in.writes != writes_in:
            return (
                f"{event} wrote into the buffer it was given (request #{number}, owned by "
                f"{mdl_in.owner}); a dump filter must copy into its own buffer instead (ntdddump DUMP_WRITE)"
            )
        offset = request.offset
        if offset != offset_in:
            if event == OpKind.READ.value:
                return f"dump_read changed the offset of request #{number}; Dump_Read must not modify it"
            if isinstance(offset, bool) or not isinstance(offset, int) or not 0 <= offset <= MAX_COST_NS:
                return (
                    f"{event} moved request #{number} from offset {offset_in} to {_short(offset)}, which is not a byte "
                    f"offset in the partition (a whole number from 0 to {MAX_COST_NS:,})"
                )
            if offset % SECTOR_SIZE:
                return (
                    f"{event} moved request #{number} from offset {offset_in} to offset {offset}, "
                    f"which is not a multiple of the {SECTOR_SIZE}-byte sector (dump I/O is sector aligned)"
                )
            if len(self.warnings) < 20:
                self.warnings.append(
                    f"{self.name} moved request #{number} from partition offset {offset_in} to "
                    f"{offset} (honoured, as real filters rely on it; the docs say it should not)"
                )
        return None

    @staticmethod
    def _shown(request: Any, offset_in: int, length_in: int) -> tuple[int, int]:
        """The offset and length to trace for a request a filter broke: its own where they are still numbers."""
        offset = getattr(request, "offset", offset_in)
        length = getattr(getattr(request, "mdl", None), "length", length_in)
        ok = [isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= MAX_COST_NS for v in (offset, length)]
        return (offset if ok[0] else offset_in), (length if ok[1] else length_in)

    def _note_error(self, event: str, message: str) -> None:
        self.errors[event] += 1
        self.first_error.setdefault(event, message)


def _same_bytes(a: bytes | bytearray | memoryview, b: bytes | bytearray | memoryview) -> bool:
    """
    Whether two buffers hold the same bytes, with ``memcmp`` where Python allows it.

    A bytearray (or bytes against bytes) compares with any buffer in one ``memcmp``; a
    memoryview on the left compares item by item, about 100 times slower. Either order gives
    the same answer. Views of other items are compared as their bytes.
    """
    a, b = _bytes_view(a), _bytes_view(b)
    if type(a) is bytearray or (type(a) is bytes and type(b) is bytes):
        return a == b
    if type(b) is bytearray:
        return b == a
    return a == b


def _plain(data: object) -> bool:
    """Whether *data* is a plain byte buffer: a bytearray, or a contiguous one-dimensional view of bytes."""
    return type(data) is bytearray or (type(data) is memoryview and data.format == "B" and data.ndim == 1 and data.c_contiguous)


def _bytes_view(x: bytes | bytearray | memoryview) -> bytes | bytearray | memoryview:
    """*x* as bytes: a memoryview of other items (8-byte words, say) compares item by item, so it is cast first."""
    if type(x) is memoryview and (x.format != "B" or x.ndim != 1):
        return x.cast("B") if x.c_contiguous else x.tobytes()
    return x


def _short(value: object) -> str:
    """*value* for a message: its repr, cut to 60 characters."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


async def _injected_raise(*args: Any) -> int:
    raise RuntimeError("injected fault (filter_raise)")


async def _injected_hang(*args: Any) -> int:
    await trio.sleep_forever()
    raise AssertionError("unreachable")  # pragma: no cover
