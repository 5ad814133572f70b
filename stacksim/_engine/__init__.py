"""
The private simulation engine: virtual time, CPU accounting, sequence numbers, the watchdogs.

The engine knows no layer of the storage stack. It offers:

* :func:`run` -- ``trio.run`` under the engine's own :class:`SimClock`, so nothing ever waits for
  wall-clock time and ``trio.current_time()`` inside a callback *is* the simulated time;
* :class:`Engine` -- the simulated clock in **integer nanoseconds**, a global event sequence
  number, a seeded :class:`random.Random`, the watchdog (simulated time) and the wall-clock guard
  (real time, for plugin code that loops in Python);
* :func:`spend` -- how code running on behalf of a layer (a filter callback, say) charges
  simulated CPU time to it; :func:`now_ns` -- the simulated time as that code sees it;
* :class:`CpuMeter`, :meth:`Engine.timed` and :meth:`Engine.call_sync` -- how a layer runs one
  call of plugin code and measures it: charged CPU time plus any virtual time the call spent
  awaiting (``await trio.sleep(...)`` in a user filter).

Why one serial clock? In crash mode Windows runs on a single CPU at HIGH_LEVEL with interrupts
off; crashdmp calls each filter and then the dump port *synchronously* and polls for completion
(fact sheet §3.4). Exactly one layer executes at any instant, so a single CPU clock advanced by
whoever holds the CPU is the faithful model, and it needs no ``trio.sleep`` per hop. See
``docs/explanation/engine.md`` for the design, its rules (the watchdog's deadline, the clock a
filter sees, the wall-clock guard) and their measured cost.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import os
import random
import signal
import threading
import time
import types
from collections.abc import Awaitable, Callable, Generator
from typing import Any, Final, NoReturn, TypeAlias, TypeVar

import trio

from stacksim.trace import HeldRecord, PhaseSink, TraceSink
from stacksim.units import format_ns

__all__ = [
    "PIPELINE_WINDOW",
    "CallFailed",
    "CallStopped",
    "CpuMeter",
    "Engine",
    "FatalCall",
    "SimClock",
    "SimTime",
    "SpeculationFailed",
    "WatchdogExpired",
    "bound",
    "current_engine",
    "now_ns",
    "run",
    "spend",
]

PIPELINE_WINDOW: Final = 32
"""Writes in flight in pipelined request mode; they travel each channel as one message, so each layer
task serves them all in one scheduler step (32: a write costs about 5 / 32 task steps; 8 cost
≈ 1.5× the CPU time per write of 32, 64 no more than noise less). The dump driver and the filter
host keep a buffer per write in flight in data mode."""

SimTime: TypeAlias = int
"""Simulated time or duration in integer nanoseconds."""

T = TypeVar("T")

NS_PER_S: Final = 1_000_000_000

_COROUTINE: Final = types.CoroutineType

GUARD_TICKS: Final = 4
"""The wall-clock guard looks at the running call this many times per ``wall_clock_limit``."""

GUARD_STOPS: Final = 2
"""Stops the guard tries on one call; a call still running one limit after the last ends the process."""

SIGNAL_GRACE_S: Final = 1.0
"""Real seconds plugin code may go on running after a Ctrl-C or SIGTERM before the guard ends the process."""


class CpuMeter:
    """
    Accumulates simulated time charged by code running on behalf of one layer, one call at a time.

    A layer task installs its meter with :meth:`activate`; :func:`spend` then adds to ``ns``.
    ``awaited`` is the virtual time the current call has spent suspended in trio (the clock adds
    it when it jumps); ``scope`` is the layer's cancel scope, entered before any call, which the
    watchdog's per-call deadline and the wall-clock guard use to stop a call that awaits.
    """

    __slots__ = ("awaited", "ns", "scope")

    def __init__(self) -> None:
        self.ns: SimTime = 0
        self.awaited: SimTime = 0
        self.scope: trio.CancelScope | None = None

    def activate(self) -> contextvars.Token[CpuMeter]:
        """Make this the meter that :func:`spend` charges in the current context."""
        return _current_meter.set(self)

    @staticmethod
    def deactivate(token: contextvars.Token[CpuMeter]) -> None:
        """Restore the meter that was active before :meth:`activate` returned *token*."""
        _current_meter.reset(token)


_current_meter: contextvars.ContextVar[CpuMeter] = contextvars.ContextVar("stacksim_cpu_meter")
_current_engine: contextvars.ContextVar[Engine] = contextvars.ContextVar("stacksim_engine")


def spend(ns: SimTime) -> None:
    """
    Charge *ns* nanoseconds of simulated CPU time to the layer that is running.

    Filters call this from their callbacks to model their cost (an AES-XTS pass, a copy into
    their own buffer). It does not yield: in crash mode there is only one CPU and the caller
    holds it, so the time simply passes (``trio.current_time()`` and :func:`now_ns` include it
    at once).

    Raises:
        RuntimeError: outside a layer (no meter active) or for a negative or non-integer value.
    """
    if (type(ns) is not int and (isinstance(ns, bool) or not isinstance(ns, int))) or ns < 0:
        raise RuntimeError(f"spend() takes a non-negative integer number of nanoseconds, got {ns!r}")
    meter = _current_meter.get(None)
    if meter is None:
        raise RuntimeError("spend() called outside a simulated layer")
    meter.ns += ns


def now_ns() -> SimTime:
    """
    The simulated time in integer nanoseconds, as the code that calls it sees it.

    Inside a filter callback: the time the call started plus what it has spent and awaited so
    far. ``trio.current_time()`` is the same instant in float seconds (``now_ns() / 1e9``).

    Raises:
        RuntimeError: outside a simulation.
        SpeculationFailed: in pipelined request mode, where the time of a write is not known yet
            while the filters run; the run is then repeated one write at a time.
    """
    engine = _current_engine.get(None)
    if engine is None:
        raise RuntimeError("stacksim.now_ns() called outside a simulation")
    return engine.clock.read_ns()


def current_engine() -> Engine | None:
    """The engine of the running simulation, or ``None`` outside one."""
    return _current_engine.get(None)


class SpeculationFailed(Exception):
    """
    A pipelined run met something that would make its overlap observable; rerun it strictly.

    In pipelined request mode (see ``docs/explanation/engine.md``) layers work on the next
    writes before the previous one has completed. That is exact only while nothing can fail,
    retry or wait: a fatal error, a refused request, a callback that suspends or reads the clock
    raises this, and the simulation is run again one write at a time.
    """


class CallFailed(Exception):
    """A timed call raised; ``exc`` is what it raised (any plugin exception), ``dur_ns`` how long it had run."""

    def __init__(self, exc: BaseException, dur_ns: SimTime) -> None:
        text = str(exc)
        super().__init__(f"{type(exc).__name__}: {text}" if text else type(exc).__name__)
        self.exc = exc
        self.dur_ns = dur_ns


class CallStopped(Exception):
    """The wall-clock guard stopped a call that ran too long in *real* time (a loop in plugin code)."""

    def __init__(self, layer: str, event: str, request: int | None, limit_ns: int) -> None:
        req = f" on request #{request}" if request is not None else ""
        super().__init__(
            f"{layer} ran {event}{req} for more than {format_ns(limit_ns)} of real time ([engine] wall_clock_limit) "
            "and was stopped: the callback loops or blocks in Python code, so this run simulates nothing after it"
        )
        self.layer = layer
        self.event = event
        self.request = request


class FatalCall(Exception):
    """Plugin code outside the write path (DriverEntry, a declaration) ended the run: ``status``, ``message``."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class WatchdogExpired(Exception):
    """
    No layer made progress for the watchdog period of simulated time.

    Attributes:
        layer: the layer whose call ran for the period (``None`` for a deadlock between layers).
        event: the callback or operation that did not return.
        request: the request number involved, if any.
        waited_ns: how long, in simulated time, the call is charged: the watchdog period (the
            call is cut at the deadline), 0 for a deadlock.
        within: "within the watchdog period (1 s of simulated time ...)", for messages.
    """

    def __init__(
        self, layer: str | None, event: str | None, request: int | None, waited_ns: SimTime, detail: str, within: str = ""
    ) -> None:
        super().__init__(detail)
        self.layer = layer
        self.event = event
        self.request = request
        self.waited_ns = waited_ns
        self.within = within


class _PluginTimeout(BaseException):
    """Raised inside plugin code by the wall-clock guard (a BaseException, so ``except Exception`` does not eat it)."""


class SimClock(trio.abc.Clock):
    """
    trio's clock for a simulation: its time *is* the engine's simulated time.

    Outside a call it reads :attr:`Engine.now_ns`; inside a call of plugin code it reads the
    call's start plus what the call has spent (:func:`spend`) and awaited, so
    ``trio.current_time()`` in a callback equals :func:`now_ns` / 1e9. When no task can run,
    trio asks how long to sleep until its next deadline: the clock jumps there at once (what
    ``MockClock(autojump_threshold=0)`` does) and charges the jump to the call that is awaiting.
    A jump with no call in progress means every layer waits on another: the watchdog reports a
    deadlock.

    Float precision: trio's time is a float of seconds. ``now_ns / 1e9`` names the nanosecond
    exactly while the simulated time is below 2**53 ns (about 104 days); awaited time is
    converted back with ``round(deadline * 1e9)``, exact in the same range. :func:`now_ns` and
    :func:`spend` are integers and exact always.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._high = 0
        """The latest time reported: the clock never goes backwards (pipelined runs move ``now_ns`` both ways)."""
        self._jump_ns = -1
        self._jump_s = 0.0
        """After a jump to a deadline: its exact float, returned while the time is still that nanosecond."""
        self.idle_at_ns = -1
        """The last jump made with no call in progress (the watchdog's deadlock test)."""

    def start_clock(self) -> None:
        """Nothing to start: the clock moves only with the simulation."""

    def _ns(self) -> int:
        engine = self._engine
        meter = engine._meter
        n = engine.now_ns if meter is None else engine.now_ns + meter.ns + meter.awaited
        if n < self._high:
            return self._high
        self._high = n
        return n

    def read_ns(self) -> int:
        """The time as plugin code sees it; in pipelined mode, inside a call, that spoils the attempt."""
        engine = self._engine
        if engine.pipelined and engine._meter is not None:
            reason = "a filter read the simulated time while writes were in flight"
            engine.spoil(reason)
            raise SpeculationFailed(reason)
        return self._ns()

    def current_time(self) -> float:
        """``trio.current_time()``: the simulated time in seconds (trio's run loop asks every pass: kept inline)."""
        engine = self._engine
        meter = engine._meter
        if meter is None:
            n = engine.now_ns
        elif engine.pipelined:
            n = self.read_ns()  # raises
        else:
            n = engine.now_ns + meter.ns + meter.awaited
        if n < self._high:
            n = self._high
        else:
            self._high = n
        return self._jump_s if n == self._jump_ns else n / NS_PER_S

    def deadline_to_sleep_time(self, deadline: float) -> float:
        """No task can run: jump to *deadline* and sleep for no real time at all."""
        if deadline == math.inf:
            return 999_999_999.0  # as MockClock: nothing will ever wake up (the watchdog always has a deadline)
        n = self._ns()
        if deadline <= (self._jump_s if n == self._jump_ns else n / NS_PER_S):
            return 0.0
        target = max(round(deadline * NS_PER_S), n)
        engine = self._engine
        meter = engine._meter
        if meter is not None:
            meter.awaited += target - n
        else:
            self.idle_at_ns = target
        self._high = target
        self._jump_ns, self._jump_s = target, deadline
        return 0.0


class Engine:
    """
    Simulated time, sequence numbers and randomness for one run.

    Args:
        seed: seeds :attr:`rng`; all randomness in a run must come from it.
        watchdog_ns: a call of plugin code that runs this long or longer in simulated time
            (spent, awaited, or both) ends the run as ``hung``, cut at its start + this period
            (the simulator's own guard: Windows has no timeout in crash mode, a hung filter hangs
            the machine).
        wall_clock_limit_ns: a call of plugin code that runs this long in *real* time is stopped
            by the wall-clock guard (0: no guard). It never changes a result it does not stop.
    """

    def __init__(self, *, seed: int = 0, watchdog_ns: SimTime = 60 * NS_PER_S, wall_clock_limit_ns: int = 0) -> None:
        if watchdog_ns <= 0:
            raise ValueError("watchdog_ns must be positive")
        if wall_clock_limit_ns < 0:
            raise ValueError("wall_clock_limit_ns must not be negative")
        self.now_ns: SimTime = 0
        self.rng = random.Random(seed)
        self.watchdog_ns = watchdog_ns
        self.wall_clock_limit_ns = wall_clock_limit_ns
        self.clock = SimClock(self)
        self.failure: WatchdogExpired | None = None
        self.describe_state: Callable[[], str] = lambda: "no state description available"
        self.trace: TraceSink | None = None
        self.run_log: PhaseSink | None = None
        """Where phase records (records of no request) go besides the trace: the run's log (:class:`stacksim._log.RunLog`)."""
        self.interrupted = False
        self.terminated = False
        """The real signal was a SIGTERM (for the message if plugin code swallows it)."""
        """A real SIGINT (Ctrl-C) arrived during the run: a KeyboardInterrupt is then the user's, not a plugin's."""
        self.trace_until_ns: SimTime | None = None
        """Calls that start after this instant are not traced: the power failed then, and they never ran."""
        self._seq = 0
        self._held: dict[int, list[HeldRecord]] | None = None
        """While records are held (:meth:`hold_records`): each request's records, in the order they came."""
        self._done = False
        self._scope: trio.CancelScope | None = None
        self.pipelined = False
        """True while the dump driver has several writes in flight (pipelined request mode)."""
        self.spoiled: str | None = None
        """Why the pipelined attempt cannot stand (set by :meth:`spoil`); the driver then gives up."""
        # The call of plugin code in progress (read by the clock and the wall-clock guard).
        self._meter: CpuMeter | None = None
        self._suspended = False
        self._fresh = False
        """Set at the start of every call of plugin code; the wall-clock guard clears it when it looks."""
        self._calls = 0
        """Calls that suspended, counted: which one the guard stops (``_stop_call``)."""
        self._call_task: trio.lowlevel.Task | None = None
        self._call_scope: trio.CancelScope | None = None
        """The task and the scope of the call that is suspended (the watchdog and the guard stop it there)."""
        # Wall-clock guard hand-shake (see _WallClockGuard).
        self._guard: _WallClockGuard | None = None
        self._suspect = False
        self._fired = False
        self._stop_call = -1

    # -- time ----------------------------------------------------------------------------
    def advance(self, ns: SimTime) -> SimTime:
        """Let *ns* of simulated time pass on the CPU; returns the new time."""
        self.now_ns += ns
        return self.now_ns

    def advance_to(self, t_ns: SimTime) -> None:
        """Move the clock forward to *t_ns* (never backwards)."""
        if t_ns > self.now_ns:
            self.now_ns = t_ns

    def next_seq(self) -> int:
        """The next global event sequence number (1, 2, 3, ...); order is total by (time, seq)."""
        self._seq += 1
        return self._seq

    def emit(
        self,
        t_ns: SimTime,
        layer: str,
        event: str,
        dur_ns: SimTime,
        request: int | None = None,
        offset: int | None = None,
        length: int | None = None,
        dump_type: str | None = None,
        status: str | None = None,
        detail: dict[str, object] | None = None,
    ) -> None:
        """
        Send one record to the trace, if one is attached (callers test ``engine.trace``).

        While records are held (:meth:`hold_records`) a record of a request is kept with the
        request's others instead, and numbered when :meth:`release` writes it; a held record may
        give ``t_ns`` -1: it starts where the record before it, of the same request, ended.
        """
        if self.trace is not None and (self.trace_until_ns is None or t_ns <= self.trace_until_ns):
            held = self._held
            if held is not None and request is not None:
                record = (t_ns, layer, event, dur_ns, request, offset, length, dump_type, status, detail)
                records = held.get(request)
                if records is None:
                    held[request] = [record]
                else:
                    records.append(record)
                return
            self.trace.emit(t_ns, self.next_seq(), layer, event, dur_ns, request, offset, length, dump_type, status, detail)

    @property
    def records(self) -> int:
        """How many records went to the trace so far (the last ``seq`` given)."""
        return self._seq

    def hold_records(self) -> None:
        """
        Hold the records of requests from now on (pipelined request mode with a trace), until :meth:`release`.

        With several writes in flight the layers call for write *n* + 1 before write *n* has
        completed; one write at a time, every record of write *n* comes first. Holding each
        write's records and releasing them when it completes, in completion order (which is
        issue order), writes the trace of one write at a time, byte for byte. :meth:`end_hold`
        drops what is still held (the writes in flight of an abandoned attempt).
        """
        self._held = {}

    def release(self, request: int, start_ns: SimTime) -> None:
        """
        Write the held records of *request* to the trace, numbered, in the order they came.

        A record held with ``t_ns`` -1 starts where the one before it ended; the first such
        record starts at *start_ns* (the write's issue time, known only when the write before it
        has completed).
        """
        held = self._held
        if held is None or self.trace is None:
            return
        records = held.pop(request, None)
        if records is None:
            return
        emit_held = getattr(self.trace, "emit_held", None)
        if emit_held is not None:  # the sink encodes the request's records in one go (JsonlTrace)
            self._seq = emit_held(records, start_ns, self._seq)
            return
        emit = self.trace.emit
        t = start_ns
        seq = self._seq
        for t0, layer, event, dur, number, offset, length, dump_type, status, detail in records:
            if t0 < 0:
                t0 = t
            t = t0 + dur
            seq += 1
            emit(t0, seq, layer, event, dur, number, offset, length, dump_type, status, detail)
        self._seq = seq

    def end_hold(self) -> None:
        """Stop holding records; any still held are dropped (writes that never completed in this attempt)."""
        self._held = None

    @property
    def observed(self) -> bool:
        """Whether a phase record goes anywhere (a trace or the run log): callers test it before building one."""
        return self.trace is not None or (self.run_log is not None and self.run_log.phases)

    def phase(
        self,
        t_ns: SimTime,
        layer: str,
        event: str,
        dur_ns: SimTime,
        *,
        dump_type: str | None = None,
        status: str | None = None,
        detail: dict[str, object] | None = None,
    ) -> None:
        """
        A record of a phase (a call of no request: DriverEntry, Dump_Start, the reset, the flush, the end).

        It goes to the trace, as :meth:`emit`, and to :attr:`run_log` (the ``--log-json`` lines),
        with the same time: the log's ``sim_ns`` of an event is the trace's ``t_ns``.
        """
        self.emit(t_ns, layer, event, dur_ns, dump_type=dump_type, status=status, detail=detail)
        if self.run_log is not None and self.run_log.phases and (self.trace_until_ns is None or t_ns <= self.trace_until_ns):
            self.run_log.phase(t_ns, layer, event, dur_ns, dump_type, status, detail)

    # -- calls of plugin code --------------------------------------------------------------
    async def timed(
        self,
        meter: CpuMeter,
        layer: str,
        event: str,
        request: int | None,
        fn: Callable[..., Awaitable[T]],
        *args: object,
    ) -> tuple[T, SimTime]:
        """
        Await ``fn(*args)`` as *layer* handling *event*; return its result and its duration.

        The duration is the CPU time the call charged with :func:`spend` plus the virtual time
        it spent awaiting (a filter written with ``await trio.sleep(...)``). The clock is not
        advanced here: the caller decides when the time passes (it starts the call at
        :attr:`now_ns`).

        Fast path: most callbacks never await anything. The coroutine is first stepped by hand;
        if it finishes without yielding to trio, no virtual time can have passed and its
        duration is exactly what it spent. Only a callback that really suspends is handed to
        trio (:func:`_resume`), under the per-call watchdog deadline.

        Raises:
            CallFailed: the call raised (any exception, ``SystemExit`` and ``KeyboardInterrupt``
                included, except a real Ctrl-C and trio's ``Cancelled``, which propagate).
            WatchdogExpired: the call ran for the watchdog period or longer.
            CallStopped: the wall-clock guard stopped it.
        """
        meter.ns = 0
        try:  # plugin code runs only inside this block (the wall-clock guard's exception cannot escape it)
            self._fresh = True  # before _meter: the guard reads them in the other order
            self._meter = meter
            try:
                coro = fn(*args)
            except BaseException as exc:  # a plain function that raised
                self._meter = None
                if self._suspect:
                    self._settle()
                raise self._failure(exc, meter.ns) from exc
            if type(coro) is _COROUTINE:
                try:
                    trap = coro.send(None)
                except StopIteration as stop:
                    self._meter = None
                    if self._suspect:
                        self._settle()
                    dur = meter.ns
                    if dur >= self.watchdog_ns:
                        raise self.watchdog_expired(layer, event, request, dur) from None
                    return stop.value, dur
                except BaseException as exc:
                    self._meter = None
                    if self._suspect:
                        self._settle()
                    raise self._failure(exc, meter.ns) from exc
                self._suspended = True
                self._meter = None
                if self._suspect:
                    self._settle()
            else:
                self._meter = None
                if self._suspect:
                    self._settle()
        except _PluginTimeout:
            self._meter = None
            self._settle_stopped()
            _close(locals().get("coro"))  # (unset if the guard fired before fn returned)
            raise CallStopped(layer, event, request, self.wall_clock_limit_ns) from None
        self._suspended = False
        if type(coro) is not _COROUTINE:
            if not hasattr(coro, "__await__"):
                wrong = TypeError(f"callbacks must be coroutine functions (async def); got a plain function returning {coro!r}")
                raise CallFailed(wrong, meter.ns)
            if self.pipelined:
                await self._abandon(coro, f"{layer} {event} returned an awaitable that is not a coroutine")
            return await self._timed_await(meter, layer, event, request, coro)  # some other awaitable
        if self.pipelined:  # it would wait in virtual time while other writes are in flight
            await self._abandon(_resume(self, coro, trap), f"{layer} {event} awaited inside trio")
        return await self._timed_await(meter, layer, event, request, _resume(self, coro, trap))

    def call_sync(
        self, meter: CpuMeter | None, layer: str, event: str, fn: Callable[..., T], *args: object, timed: bool = True
    ) -> tuple[T, SimTime]:
        """
        Call plain plugin code (``driver_entry``, ``__init__``, ``write_cost``) under the same rules as :meth:`timed`.

        With *meter* the call is charged what it spends and watched by the watchdog; without
        (*timed* false) it is a declaration, which takes no simulated time.

        Raises:
            CallFailed, WatchdogExpired, CallStopped: as :meth:`timed`.
        """
        watched = meter if meter is not None else CpuMeter()  # a declaration: the guard watches it too
        watched.ns = 0
        try:  # plugin code runs only inside this block
            self._fresh = True
            self._meter = watched
            try:
                result = fn(*args)
            except BaseException as exc:
                self._meter = None
                if self._suspect:
                    self._settle()
                raise self._failure(exc, watched.ns) from exc
            self._meter = None
            if self._suspect:
                self._settle()
        except _PluginTimeout:
            self._meter = None
            self._settle_stopped()
            raise CallStopped(layer, event, None, self.wall_clock_limit_ns) from None
        dur = watched.ns if meter is not None and timed else 0
        if dur >= self.watchdog_ns:
            raise self.watchdog_expired(layer, event, None, dur)
        return result, dur

    def _failure(self, exc: BaseException, dur: SimTime) -> CallFailed:
        """What plugin code raised, as a :class:`CallFailed`; re-raises what must propagate."""
        if isinstance(exc, _PluginTimeout):
            raise exc
        # trio's Cancelled is real only while this task is cancelled (plugin code can make one up).
        cancelled = isinstance(exc, trio.Cancelled) or (isinstance(exc, BaseExceptionGroup) and exc.subgroup(trio.Cancelled))
        if cancelled and trio.current_effective_deadline() == -math.inf:
            raise exc
        if isinstance(exc, KeyboardInterrupt) and self.interrupted:
            raise exc  # a real Ctrl-C that happened to arrive while plugin code ran
        if isinstance(exc, BaseExceptionGroup) and self.interrupted and exc.subgroup(KeyboardInterrupt) is not None:
            raise exc
        return CallFailed(exc, dur)

    def watchdog_expired(self, layer: str, event: str, request: int | None, ran: SimTime | None) -> WatchdogExpired:
        """The verdict on a call that ran for the watchdog period (*ran*: how long it would have taken, if known)."""
        req = f" on request #{request}" if request is not None else ""
        period = format_ns(self.watchdog_ns)
        charged = f"; it charged {format_ns(ran)}" if ran is not None and ran > self.watchdog_ns else ""
        within = f"within the watchdog period ({period} of simulated time{charged})"
        return WatchdogExpired(
            layer,
            event,
            request,
            self.watchdog_ns,
            f"{layer} did not return from {event}{req} {within}; on Windows the machine would hang here",
            within,
        )

    def spoil(self, reason: str) -> None:
        """
        Mark the pipelined attempt as unusable; the dump driver raises :class:`SpeculationFailed`.

        The trace is detached at once: the layer tasks may still serve writes already queued
        before the attempt ends, and none of that may reach the trace (the rerun one write at a
        time writes every record after the last one this attempt wrote).
        """
        if self.spoiled is None:
            self.spoiled = reason
        self.trace = None

    async def _abandon(self, awaitable: Awaitable[object], reason: str) -> NoReturn:
        """
        Give up a callback that would wait while other writes are in flight, cleanly.

        It is resumed inside a cancelled scope, so trio unwinds it the ordinary way (its
        nurseries, cancel scopes and ``finally`` blocks run as on any cancellation); whatever its
        clean-up raises is dropped with the attempt (except a real Ctrl-C). Then the attempt ends.
        """
        self.spoil(reason)
        try:
            with trio.CancelScope() as scope:
                scope.cancel()
                await awaitable
        except BaseException as exc:  # the attempt is discarded; the one-at-a-time rerun reports what it raised
            if isinstance(exc, KeyboardInterrupt | BaseExceptionGroup) and self.interrupted:
                raise
        raise SpeculationFailed(reason)

    async def _timed_await(
        self, meter: CpuMeter, layer: str, event: str, request: int | None, awaitable: Awaitable[T]
    ) -> tuple[T, SimTime]:
        """
        The slow path of :meth:`timed`: await in trio under the watchdog's per-call deadline.

        The layer's cancel scope (``meter.scope``, entered before the callback started, so the
        callback's own scopes nest inside it) gets the deadline *call start + watchdog period*.
        Only this task judges the call, so a call that would end exactly at the deadline and the
        deadline itself cannot race: both make it ``hung``.
        """
        scope = meter.scope
        if scope is None:
            raise RuntimeError(f"{layer} {event} awaited, but its layer has no cancel scope (CpuMeter.scope)")
        self._calls += 1
        call = self._calls
        scope.deadline = (self.now_ns + self.watchdog_ns) / NS_PER_S
        meter.awaited = 0
        self._call_task, self._call_scope = trio.lowlevel.current_task(), scope
        self._suspended = True  # before _meter: the guard must never see this call "executing" here
        self._meter = meter
        failure: BaseException | None = None
        result: Any = None
        try:
            result = await awaitable
        except BaseException as exc:
            failure = exc
        finally:
            scope.deadline = math.inf
            self._meter = None
            self._suspended = False
            self._call_task = self._call_scope = None
        dur = meter.ns + meter.awaited
        meter.awaited = 0
        if self.interrupted and isinstance(failure, KeyboardInterrupt | BaseExceptionGroup):
            raise failure  # a real Ctrl-C wins over any verdict
        if scope.cancel_called:  # the per-call deadline, or the wall-clock guard, stopped it
            if self._stop_call == call:
                raise CallStopped(layer, event, request, self.wall_clock_limit_ns)
            raise self.watchdog_expired(layer, event, request, None)
        if failure is not None:
            if isinstance(failure, _PluginTimeout):
                raise CallStopped(layer, event, request, self.wall_clock_limit_ns)
            raise self._failure(failure, dur) from failure
        if dur >= self.watchdog_ns:
            raise self.watchdog_expired(layer, event, request, dur)
        return result, dur

    # -- the wall-clock guard's hand-shake (main thread side) -------------------------------
    def _settle(self) -> None:
        """Plugin code just stopped running and the guard looked at it: take what it did."""
        guard = self._guard
        if guard is None:
            self._suspect = False
            return
        if guard.settle():
            raise _PluginTimeout

    def _settle_stopped(self) -> None:
        """After a stop: leave no exception pending for later code."""
        if self._guard is not None:
            self._guard.settle()
        self._suspect = False

    def _cancel_stuck(self, call: int) -> None:
        """Run in trio's thread by the guard: stop call *call* if it is still awaiting."""
        scope = self._call_scope
        if self._calls == call and self._meter is not None and scope is not None:
            self._stop_call = call
            scope.cancel()
            self._unshield(scope)

    def _unshield(self, outer: trio.CancelScope) -> None:
        """
        Revoke the shields of the scopes the suspended call opened inside its layer's scope *outer*.

        A callback that shields itself (``with trio.CancelScope(shield=True): await
        trio.sleep_forever()``) would otherwise ignore the watchdog's cancellation and hang the
        process. trio has no public way to reach a task's inner scopes, so this walks its private
        cancel-status chain; should trio rename it, nothing happens (and such a callback hangs).
        """
        task = self._call_task
        if task is None:
            return
        try:
            status: Any = task._cancel_status
            stop = outer._cancel_status
            while status is not None and status is not stop:
                if status._scope.shield:
                    status._scope.shield = False
                status = status._parent
        except AttributeError:  # pragma: no cover - trio's internals moved
            return

    # -- the deadlock watchdog -------------------------------------------------------------
    async def watchdog(self) -> None:
        """
        End the run as a deadlock when nothing can run and no call is in progress.

        A call that runs too long is judged by itself (:meth:`timed`). This task only sleeps
        for a watchdog period at a time; if the clock had to jump straight to its deadline with
        no call in progress, every layer was waiting on another. If it finds a call still
        waiting after its deadline cancelled it, the call shields itself: :meth:`_unshield`.
        """
        clock = self.clock
        while True:
            deadline = (clock._ns() + self.watchdog_ns) / NS_PER_S
            await trio.sleep_until(deadline)
            if self._done:
                return
            meter = self._meter
            if meter is None:
                if clock.idle_at_ns == round(deadline * NS_PER_S):
                    self._fail("deadlock: every layer is waiting and none can proceed; " + self.describe_state())
                    return
            elif (scope := self._call_scope) is not None and meter.ns + meter.awaited >= self.watchdog_ns and scope.cancel_called:
                self._unshield(scope)  # cut at its deadline, and still waiting: it shields itself

    def _fail(self, detail: str) -> None:
        self.failure = WatchdogExpired(None, None, None, 0, detail)
        if self._scope is not None:
            self._scope.cancel()

    async def supervise(self, main: Callable[[], Awaitable[T]], *tasks: Callable[[], Awaitable[None]]) -> T | None:
        """
        Run *tasks* (the layer tasks) and the watchdog beside *main*; return *main*'s result.

        When *main* returns, every task is cancelled. When the watchdog finds a deadlock,
        everything is cancelled, :attr:`failure` is set and ``None`` is returned. Must run under
        this engine's clock (:func:`run` with ``engine=``). While it runs, a real SIGINT is noted
        (:attr:`interrupted`) and, with a ``wall_clock_limit``, the wall-clock guard watches.
        """
        if trio.lowlevel.current_clock() is not self.clock:
            raise RuntimeError("Engine.supervise must run under the engine's clock: stacksim._engine.run(fn, engine)")
        token = _current_engine.set(self)
        self._done = False  # (an engine may supervise again: resume after a hibernation)
        restore = self._watch_sigint()
        if self.wall_clock_limit_ns:
            self._guard = _WallClockGuard(self, self.wall_clock_limit_ns / NS_PER_S, trio.lowlevel.current_trio_token())
        result: T | None = None
        try:
            async with trio.open_nursery() as nursery:
                self._scope = nursery.cancel_scope
                for task in tasks:
                    nursery.start_soon(task)
                nursery.start_soon(self.watchdog)
                result = await main()
                self._done = True
                nursery.cancel_scope.cancel()
        finally:
            if self._guard is not None:
                self._guard.close()
                self._guard = None
            restore()
            _current_engine.reset(token)
        return result if self.failure is None else None

    def _watch_sigint(self) -> Callable[[], None]:
        """
        Note every real SIGINT (and SIGTERM) while the run lasts, then pass it on to the handler in place.

        That is how a KeyboardInterrupt raised *by plugin code* (a named plugin error) is told
        from a Ctrl-C that arrived while plugin code ran (an interruption): only the second
        comes with a signal. SIGTERM counts too, as ``stacksim`` turns it into the Ctrl-C path.
        Main thread only (elsewhere no signal reaches Python code). Returns what restores the
        handlers.
        """
        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        restores = [self._note_signal(signal.SIGINT), self._note_signal(signal.SIGTERM)]

        def restore() -> None:
            for undo in restores:
                undo()

        return restore

    def _note_signal(self, signum: signal.Signals) -> Callable[[], None]:
        previous = signal.getsignal(signum)
        if not callable(previous):
            return lambda: None
        handler = previous

        def noted(number: int, frame: types.FrameType | None) -> object:
            self.interrupted = True
            if number == signal.SIGTERM:
                self.terminated = True
            return handler(number, frame)

        signal.signal(signum, noted)

        def restore() -> None:
            if signal.getsignal(signum) is noted:
                signal.signal(signum, handler)

        return restore


class _WallClockGuard:
    """
    A thread that stops a call of plugin code once it has run ``limit`` seconds of real time.

    It looks at the running call :data:`GUARD_TICKS` times per limit (never reading or changing
    anything the simulation computes, so a run it does not stop is byte-identical). A call seen
    running at two looks ``limit`` apart is stopped: while its Python code executes (a busy
    loop), by an asynchronous exception raised in the simulation thread
    (``PyThreadState_SetAsyncExc``, CPython); while it is suspended in trio (an endless
    ``await`` loop at one instant of simulated time), by cancelling the layer's scope from
    trio's thread (``run_sync_soon``). Code blocked inside C (``time.sleep``) is not interrupted
    until it returns.

    A call that catches the stop and goes on running (``except BaseException: pass`` inside its
    loop) is stopped again one limit later; after :data:`GUARD_STOPS` stops it cannot be stopped
    from inside the process, so the guard ends the process (:func:`_end_process`: temporary
    output files removed, a message on stderr, exit status 2). Likewise when a Ctrl-C or SIGTERM
    arrived and plugin code is still running :data:`SIGNAL_GRACE_S` later (it swallowed the
    ``KeyboardInterrupt``): exit status 1, as for any interruption.

    Hand-shake, so the exception can only surface inside the call: the guard, holding its lock,
    first sets ``engine._suspect``, then reads the call state and fires; the simulation thread,
    whenever plugin code stops running, first records that, then reads ``_suspect`` and, if
    set, takes the lock to collect (and cancel, if still pending) what the guard fired.
    """

    def __init__(self, engine: Engine, limit: float, trio_token: trio.lowlevel.TrioToken) -> None:
        self.engine = engine
        self.limit = limit
        self.token = trio_token
        self.target = threading.get_ident()
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._raise, self._clear = _async_exc_functions()
        self._thread = threading.Thread(target=self._watch, name="stacksim-wall-clock-guard", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop watching (and wait for the thread)."""
        self._stop.set()
        self._thread.join()

    def settle(self) -> bool:
        """Simulation thread: whether the guard fired at the call that just stopped running (and cancel it)."""
        with self.lock:
            engine = self.engine
            engine._suspect = False
            fired, engine._fired = engine._fired, False
            if fired and self._clear is not None:
                self._clear(self.target, None)
        return fired

    def _watch(self) -> None:
        watching, since, stops = False, 0.0, 0
        signalled: float | None = None
        tick = max(min(self.limit / GUARD_TICKS, SIGNAL_GRACE_S / 4), 0.001)
        engine = self.engine
        while not self._stop.wait(tick):
            with self.lock:
                engine._suspect = True
                # Read in the reverse order of the writes (_fresh, then _meter; _suspended, then _meter).
                meter = engine._meter
                now = time.monotonic()
                if meter is None:
                    watching = False
                    continue
                if engine.interrupted:  # a Ctrl-C or SIGTERM, and plugin code still runs: did it swallow it?
                    if signalled is None:
                        signalled = now
                    elif now - signalled >= SIGNAL_GRACE_S and not engine._suspended:
                        _end_process(
                            f"interrupted{' (SIGTERM)' if engine.terminated else ''}, but plugin code went on running "
                            "(it caught the KeyboardInterrupt); stacksim ended the process; no output file was written",
                            1,
                        )
                if engine._fresh or not watching:  # a call began since the last look: it runs from now
                    engine._fresh, watching, since, stops = False, True, now, 0
                    continue
                if now - since < self.limit:
                    continue
                since = now  # if it survives this (catches the exception), it is stopped again one limit later
                if stops >= GUARD_STOPS and not engine._suspended:
                    _end_process(
                        f"a filter callback ran for more than {stops + 1} × the {self.limit:g} s wall-clock limit "
                        "([engine] wall_clock_limit) and caught every stop (except BaseException); it cannot be stopped "
                        "inside the process, so stacksim ended it; no output file was written",
                        2,
                    )
                stops += 1
                if engine._suspended:
                    try:
                        self.token.run_sync_soon(engine._cancel_stuck, engine._calls)
                    except trio.RunFinishedError:
                        return
                elif self._raise is not None:
                    engine._fired = True
                    self._raise(self.target, _PluginTimeout)


def _end_process(message: str, code: int) -> NoReturn:
    """
    End the process from the guard thread: plugin code that cannot be stopped holds the simulation thread.

    Temporary output files are removed first (:func:`stacksim._io.remove_temporaries`), so no
    half-written output is left; then *message* goes to stderr and the process exits with *code*
    at once (``os._exit``: the simulation thread never returns, so nothing else can run).
    """
    from stacksim._io import remove_temporaries

    try:
        remove_temporaries()
        os.write(2, f"error: {message}\n".encode())
    finally:
        os._exit(code)


def _async_exc_functions() -> tuple[Callable[[int, Any], int] | None, Callable[[int, None], int] | None]:
    """``PyThreadState_SetAsyncExc`` to raise and to clear, or ``(None, None)`` where there is none (not CPython)."""
    try:
        import ctypes

        api = ctypes.pythonapi
    except (ImportError, AttributeError):  # pragma: no cover - not CPython
        return None, None
    raise_ = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.c_ulong, ctypes.py_object)(("PyThreadState_SetAsyncExc", api))
    clear = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p)(("PyThreadState_SetAsyncExc", api))
    return raise_, clear


@types.coroutine
def _resume(engine: Engine, coro: Any, trap: object) -> Generator[object, object, Any]:
    """
    Finish *coro*, which has already yielded *trap*, inside the awaiting trio task.

    Every value trio sends (or exception it throws, such as ``Cancelled``) is passed on to
    *coro*, and every trap *coro* yields is passed up to trio, exactly as ``await`` would. While
    *coro* runs, the engine knows plugin code is executing (for the wall-clock guard).
    """
    while True:
        try:
            reply = yield trap
        except BaseException as exc:
            step: Callable[[Any], object] = coro.throw
            value: Any = exc
        else:
            step, value = coro.send, reply
        try:  # plugin code runs only inside this block
            engine._suspended = False
            try:
                trap = step(value)
            except StopIteration as stop:
                engine._suspended = True
                if engine._suspect:
                    engine._settle()
                return stop.value
            except BaseException:
                engine._suspended = True
                if engine._suspect:
                    engine._settle()
                raise
            engine._suspended = True
            if engine._suspect:
                engine._settle()
        except _PluginTimeout:
            engine._suspended = True
            _close(coro)
            raise


def _close(coro: Any) -> None:
    """Close a coroutine the wall-clock guard stopped while it was suspended (its ``finally`` blocks run)."""
    if type(coro) is _COROUTINE and coro.cr_frame is not None:
        with contextlib.suppress(BaseException):  # the call is stopped; what its clean-up raises is dropped
            coro.close()


def run(async_fn: Callable[[], Awaitable[T]], engine: Engine | None = None) -> T:
    """
    Run *async_fn* under trio with a virtual clock that jumps straight to the next event.

    With *engine*, the clock is the engine's :class:`SimClock` (trio's time is the simulated
    time); without, a ``trio.testing.MockClock(autojump_threshold=0)`` (for engines that keep no
    shared clock, such as :mod:`stacksim._engine.pipeline`). A Ctrl-C arrives as a plain
    :class:`KeyboardInterrupt`, not wrapped in the exception group of the nursery it
    interrupted, so callers can clean up and report it simply.
    """
    if engine is not None:
        clock: trio.abc.Clock = engine.clock
    else:  # imported here: trio.testing imports pytest when it is installed (~0.2 s at start-up)
        import trio.testing as trio_testing

        clock = trio_testing.MockClock(autojump_threshold=0)
    try:
        return trio.run(async_fn, clock=clock)
    except BaseExceptionGroup as group:
        if group.subgroup(KeyboardInterrupt) is not None:
            raise KeyboardInterrupt from None
        raise


def bound(fn: Callable[..., Awaitable[None]], *args: Any) -> Callable[[], Awaitable[None]]:
    """A task for :meth:`Engine.supervise`: *fn* called with *args* (a layer's ``run`` and its channels)."""

    async def task() -> None:
        await fn(*args)

    return task
