"""
The private simulation engine: virtual time, CPU accounting, sequence numbers, the watchdog.

The engine knows no layer of the storage stack. It offers:

* :func:`run` -- ``trio.run`` under ``trio.testing.MockClock(autojump_threshold=0)``, so nothing
  ever waits for wall-clock time;
* :class:`Engine` -- the simulated clock in **integer nanoseconds**, a global event sequence
  number, a seeded :class:`random.Random`, and the watchdog;
* :func:`spend` -- how code running on behalf of a layer (a filter callback, say) charges
  simulated CPU time to it;
* :class:`CpuMeter` and :meth:`Engine.timed` -- how a layer measures one call: charged CPU time
  plus any virtual time the call spent awaiting (``await trio.sleep(...)`` in a user filter).

Why one serial clock? In crash mode Windows runs on a single CPU at HIGH_LEVEL with interrupts
off; crashdmp calls each filter and then the dump port *synchronously* and polls for completion
(fact sheet §3.4). Exactly one layer executes at any instant, so a single CPU clock advanced by
whoever holds the CPU is the faithful model, and it needs no ``trio.sleep`` per hop. See
``docs/explanation/engine.md`` for the design and its measured cost.
"""

from __future__ import annotations

import contextvars
import random
import types
from collections.abc import Awaitable, Callable, Generator
from typing import Any, Final, NoReturn, TypeAlias, TypeVar

import trio
import trio.testing

from stacksim.trace import TraceSink

__all__ = [
    "CallFailed",
    "CpuMeter",
    "Engine",
    "SimTime",
    "SpeculationFailed",
    "WatchdogExpired",
    "current_engine",
    "run",
    "spend",
]

SimTime: TypeAlias = int
"""Simulated time or duration in integer nanoseconds."""

T = TypeVar("T")

NS_PER_S: Final = 1_000_000_000


class CpuMeter:
    """
    Accumulates simulated CPU time charged by code running on behalf of one layer.

    A layer task installs its meter with :meth:`activate`; :func:`spend` then adds to it.
    """

    __slots__ = ("ns",)

    def __init__(self) -> None:
        self.ns: SimTime = 0

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
    holds it, so the time simply passes.

    Raises:
        RuntimeError: outside a layer (no meter active) or for a negative or non-integer value.
    """
    if (type(ns) is not int and (isinstance(ns, bool) or not isinstance(ns, int))) or ns < 0:
        raise RuntimeError(f"spend() takes a non-negative integer number of nanoseconds, got {ns!r}")
    meter = _current_meter.get(None)
    if meter is None:
        raise RuntimeError("spend() called outside a simulated layer")
    meter.ns += ns


def current_engine() -> Engine | None:
    """The engine of the running simulation, or ``None`` outside one."""
    return _current_engine.get(None)


class SpeculationFailed(Exception):
    """
    A pipelined run met something that would make its overlap observable; rerun it strictly.

    In pipelined request mode (see ``docs/explanation/engine.md``) layers work on the next
    writes before the previous one has completed. That is exact only while nothing can fail,
    retry or wait: a fatal error, a refused request or a callback that suspends raises this,
    and the simulation is run again one write at a time.
    """


class CallFailed(Exception):
    """A timed call raised; ``exc`` is what it raised, ``dur_ns`` how long it had run."""

    def __init__(self, exc: Exception, dur_ns: SimTime) -> None:
        super().__init__(str(exc))
        self.exc = exc
        self.dur_ns = dur_ns


class WatchdogExpired(Exception):
    """
    No layer made progress for the watchdog period of simulated time.

    Attributes:
        layer: the layer whose call was running (``None`` for a deadlock between layers).
        event: the callback or operation that did not return.
        request: the request number involved, if any.
        waited_ns: how long, in simulated time, the call had been running.
    """

    def __init__(self, layer: str | None, event: str | None, request: int | None, waited_ns: SimTime, detail: str) -> None:
        super().__init__(detail)
        self.layer = layer
        self.event = event
        self.request = request
        self.waited_ns = waited_ns


class Engine:
    """
    Simulated time, sequence numbers and randomness for one run.

    Args:
        seed: seeds :attr:`rng`; all randomness in a run must come from it.
        watchdog_ns: a call that runs this long in simulated time ends the run with
            :class:`WatchdogExpired` (the simulator's own guard: Windows has no timeout in crash
            mode, a hung filter hangs the machine).
    """

    def __init__(self, *, seed: int = 0, watchdog_ns: SimTime = 60 * NS_PER_S) -> None:
        if watchdog_ns <= 0:
            raise ValueError("watchdog_ns must be positive")
        self.now_ns: SimTime = 0
        self.rng = random.Random(seed)
        self.watchdog_ns = watchdog_ns
        self.failure: WatchdogExpired | None = None
        self.describe_state: Callable[[], str] = lambda: "no state description available"
        self.trace: TraceSink | None = None
        self.trace_until_ns: SimTime | None = None
        """Calls that start after this instant are not traced: the power failed then, and they never ran."""
        self._seq = 0
        self._op: tuple[str, str, int | None] | None = None
        self._op_t0 = 0.0
        self._done = False
        self._scope: trio.CancelScope | None = None
        self.pipelined = False
        """True while the dump driver has several writes in flight (pipelined request mode)."""
        self.spoiled: str | None = None
        """Why the pipelined attempt cannot stand (set by :meth:`spoil`); the driver then gives up."""

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
        """Send one record to the trace, if one is attached (callers test ``engine.trace``)."""
        if self.trace is not None and (self.trace_until_ns is None or t_ns <= self.trace_until_ns):
            self.trace.emit(t_ns, self.next_seq(), layer, event, dur_ns, request, offset, length, dump_type, status, detail)

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
        advanced here: the caller decides when the time passes.

        Fast path: most callbacks never await anything. The coroutine is first stepped by hand;
        if it finishes without yielding to trio, no virtual time can have passed and its
        duration is exactly what it spent. Only a callback that really suspends is handed to
        trio (:func:`_resume`), watched by the watchdog and timed on trio's clock.
        """
        meter.ns = 0
        try:
            coro = fn(*args)
        except Exception as exc:  # a plain function that raised
            raise CallFailed(exc, meter.ns) from exc
        if type(coro) is not types.CoroutineType:
            if not hasattr(coro, "__await__"):
                wrong = TypeError(f"callbacks must be coroutine functions (async def); got a plain function returning {coro!r}")
                raise CallFailed(wrong, meter.ns)
            if self.pipelined:
                await self._abandon(coro, f"{layer} {event} returned an awaitable that is not a coroutine")
            return await self._timed_await(meter, layer, event, request, coro)  # some other awaitable
        try:
            trap = coro.send(None)
        except StopIteration as stop:
            return stop.value, meter.ns
        except Exception as exc:
            raise CallFailed(exc, meter.ns) from exc
        if self.pipelined:  # it would wait in virtual time while other writes are in flight
            await self._abandon(_resume(coro, trap), f"{layer} {event} awaited inside trio")
        return await self._timed_await(meter, layer, event, request, _resume(coro, trap))

    def spoil(self, reason: str) -> None:
        """Mark the pipelined attempt as unusable; the dump driver raises :class:`SpeculationFailed`."""
        if self.spoiled is None:
            self.spoiled = reason

    async def _abandon(self, awaitable: Awaitable[object], reason: str) -> NoReturn:
        """
        Give up a callback that would wait while other writes are in flight, cleanly.

        It is resumed inside a cancelled scope, so trio unwinds it the ordinary way (its
        nurseries, cancel scopes and ``finally`` blocks run as on any cancellation); whatever its
        clean-up raises is dropped with the attempt. Then the attempt ends.
        """
        self.spoil(reason)
        try:
            with trio.CancelScope() as scope:
                scope.cancel()
                await awaitable
        except Exception:  # the attempt is discarded; the one-at-a-time rerun reports what it raised
            pass
        raise SpeculationFailed(reason)

    async def _timed_await(
        self, meter: CpuMeter, layer: str, event: str, request: int | None, awaitable: Awaitable[T]
    ) -> tuple[T, SimTime]:
        """The slow path of :meth:`timed`: await in trio, watched by the watchdog, timed on its clock."""
        self._op = (layer, event, request)
        t0 = self._op_t0 = trio.current_time()
        try:
            result: T = await awaitable
        except Exception as exc:
            raise CallFailed(exc, meter.ns + round((trio.current_time() - t0) * NS_PER_S)) from exc
        finally:
            self._op = None
        waited = trio.current_time() - t0
        return result, meter.ns + (round(waited * NS_PER_S) if waited else 0)

    # -- watchdog ------------------------------------------------------------------------
    async def watchdog(self) -> None:
        """
        End the run when one call has run for :attr:`watchdog_ns`, or when nothing can run.

        Virtual time only moves while some call awaits (a sleeping filter) or when every task
        is blocked (MockClock's autojump). So a wake-up with no call in progress means every
        layer is waiting on another: a deadlock.
        """
        period = self.watchdog_ns / NS_PER_S
        while True:
            now = trio.current_time()
            deadline = self._op_t0 + period if self._op is not None else now + period
            await trio.sleep_until(max(deadline, now))
            if self._done:
                return
            now = trio.current_time()
            if self._op is None:
                self._fail(None, None, None, 0, "deadlock: every layer is waiting and none can proceed; " + self.describe_state())
                return
            waited = now - self._op_t0
            if waited >= period * (1 - 1e-12):
                layer, event, request = self._op
                waited_ns = round(waited * NS_PER_S)
                req = f" on request #{request}" if request is not None else ""
                self._fail(
                    layer,
                    event,
                    request,
                    waited_ns,
                    f"{layer} did not return from {event}{req} within the watchdog period "
                    f"({waited_ns} ns of simulated time); on Windows the machine would hang here",
                )
                return

    def _fail(self, layer: str | None, event: str | None, request: int | None, waited: SimTime, detail: str) -> None:
        self.failure = WatchdogExpired(layer, event, request, waited, detail)
        if self._scope is not None:
            self._scope.cancel()

    async def supervise(self, main: Callable[[], Awaitable[T]], *tasks: Callable[[], Awaitable[None]]) -> T | None:
        """
        Run *tasks* (the layer tasks) and the watchdog beside *main*; return *main*'s result.

        When *main* returns, every task is cancelled. When the watchdog fires, everything is
        cancelled, :attr:`failure` is set and ``None`` is returned.
        """
        token = _current_engine.set(self)
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
            _current_engine.reset(token)
        return result if self.failure is None else None


@types.coroutine
def _resume(coro: Any, trap: object) -> Generator[object, object, Any]:
    """
    Finish *coro*, which has already yielded *trap*, inside the awaiting trio task.

    Every value trio sends (or exception it throws, such as ``Cancelled``) is passed on to
    *coro*, and every trap *coro* yields is passed up to trio, exactly as ``await`` would.
    """
    while True:
        try:
            reply = yield trap
        except BaseException as exc:
            try:
                trap = coro.throw(exc)
            except StopIteration as stop:
                return stop.value
        else:
            try:
                trap = coro.send(reply)
            except StopIteration as stop:
                return stop.value


def run(async_fn: Callable[[], Awaitable[T]]) -> T:
    """
    Run *async_fn* under trio with a virtual clock that jumps straight to the next event.

    A Ctrl-C arrives as a plain :class:`KeyboardInterrupt`, not wrapped in the exception group of
    the nursery it interrupted, so callers can clean up and report it simply.
    """
    try:
        return trio.run(async_fn, clock=trio.testing.MockClock(autojump_threshold=0))
    except BaseExceptionGroup as group:
        if group.subgroup(KeyboardInterrupt) is not None:
            raise KeyboardInterrupt from None
        raise
