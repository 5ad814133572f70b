"""
Queued networks: many requests in flight, out-of-order completions, interrupts -- exact and deterministic.

The crash path is serial -- one CPU, one request outstanding -- and :class:`~stacksim._engine.Engine`
models it with one clock. The runtime stack that a bugcheck freezes is not: the file system,
volume manager, disk class driver and storport each hold queues, storport keeps up to its queue
depth of commands outstanding at the device, and the device serves several at once and
completes them out of order. This module is the engine for that shape, independent of any
layer. The network is a closed loop::

    source → submit stages … → port (queue, device with k channels) → complete stages … → source

* every **stage** is a trio task with one input memory channel (unbounded; the sender never
  blocks, ``send_nowait``). A stage is a single FIFO server: a message carries its arrival time;
  the stage computes ``start = max(arrival, free)`` and ``end = start + service(item, start)``
  and forwards the request at once, stamped with ``end``. Nothing sleeps: virtual time travels
  on the messages, so a stage handles every message that has reached it in one scheduler step,
  and messages travel in lists (batches);
* the **port** (storport with its device) admits requests to the device at most ``depth``
  outstanding, in arrival order (a FIFO wait queue when full; a slot frees when the device
  completes a command), and assigns each admitted request to the earliest-free of the device's
  ``channels`` (a FIFO multi-server), calling the device's service function synchronously;
  completions come out of order and are buffered in a heap;
* the **source** keeps ``window`` requests outstanding: the first ``window`` are issued at time
  0, then one at each completion, in completion order, while the completion time is before the
  stop time (``duration_ns``, ``freeze_at``) and items are left.

**Why the timeline is exact.** Call a channel *ordered* when its messages have nondecreasing
times. The source's output is ordered (issues happen at completion times, which it receives in
order, and the first ones at 0). A FIFO stage with an ordered input has an ordered output
(``end_i = max(arrival_i, end_{i-1}) + s_i ≥ end_{i-1}``), and it sees its input in exactly the
order a discrete-event simulation would serve it (FIFO by arrival time, ties by request index,
which is the order the source issued them), so its times are those of the discrete-event
simulation. The port's input is therefore ordered by time and by index; admission times are
nondecreasing (FIFO, and a slot frees at a completion time already computed: every admitted
request's completion is known at admission), and so are device start times (a FIFO multi-server:
the earliest channel's free time never decreases), so the device model, which has state (a write
cache), is called in time order, as in the discrete-event simulation. Only the port's output is
out of order, and the port restores order before it forwards anything: it releases its earliest
buffered completion ``c`` (by ``(time, index)``) only when no request it has not seen yet can
complete at the device before ``c``. A request not yet seen is one of:

1. an initial request still in the submit stages: it arrives at or after the last arrival seen
   (the input is ordered) and at or after the submit stages' lookahead ``Lf`` (the sum of their
   guaranteed minimum services);
2. a request issued by the source at the completion of the *m*-th released completion (the
   source issues one per completion, in order, and every stage keeps order, so the request with
   index ``window + m`` belongs to release ``m``): it arrives no earlier than
   ``D_m + Lc + Lf`` (``Lc``: the complete stages' lookahead);
3. a request whose trigger has not been released: it arrives after a completion at least as
   late as ``c``, so after ``c``.

Any unseen request's device completion is at least ``max(its arrival bound, last admission,
the earliest channel's free time) + min_service_ns`` (the device's guaranteed minimum), and ties
go to the lower index, which every unseen request exceeds; so ``c`` may go when it is not later
than that bound for the next unseen index. Case 3 guarantees progress: when every outstanding
request is inside the port (the closed loop has nothing else in flight), the next unseen request
waits on a release, so the earliest completion goes. When the source will issue no more, it
closes its channel; the close reaches the port behind the last request, and the port then
releases everything in order. The ``(time, rank, index)`` tie rules are the ones a heapq
simulation of the same network uses; ``tests/test_pipeline.py`` compares the two on random
networks, timeline for timeline.

**Determinism.** Every channel has one sender and one receiver and each task's decisions
depend only on the content and order of its input, never on when it runs, so trio's randomised
wake order cannot reach a result: it only changes how messages are batched.

**Freezing** (``freeze_at``): a bugcheck at time *t* stops the network where it stands. Nothing
that would start at or after *t* happens (ASSUMPTION: on a tie the bugcheck wins): a request
that would start at a stage at or after *t* stays ``queued`` there, one whose service would end
at or after *t* is frozen ``in_service``; at the port, a request not admitted before *t* is
``queued`` at the port, one admitted but waiting for a channel is ``queued`` at the device, one
the device is serving is ``in_service`` at the device. The source issues nothing at or after
*t*. Each stage registers the requests it holds at *t* from its own timestamps (a registry by
layer, not a reading of task state); the result lists them all, and none completes later.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import trio

from stacksim.metrics import LatencyHistogram, LayerStats

__all__ = ["Frozen", "NetworkResult", "Port", "Stage", "run_network"]

T = TypeVar("T")

_FROZEN = -1
"""Time of a message for a request that froze before the port released it (it passes through untouched)."""
_FROZEN_RELEASED = -2
"""Time of a message for a request that froze after the port released it: the source issues nothing more."""

Message = tuple[int, int, int, T]
"""(arrival or completion ns -- negative once frozen --, request index, issue ns, item)."""

ServiceHook = Callable[[str, int, int, int, int, T], None]
"""``(stage, index, arrival_ns, start_ns, end_ns, item)``: one completed service (the trace hook)."""


@dataclass(frozen=True, slots=True)
class Frozen:
    """A request the freeze caught: its index, the stage it was in, ``queued`` or ``in_service``, and the item itself."""

    index: int
    stage: str
    state: str
    item: object = field(default=None, compare=False, repr=False)
    """The request (what the source issued), so a caller need not regenerate it from its index."""


def _check(name: str, dur: object, floor: int) -> int:
    if type(dur) is not int or dur < floor:
        raise ValueError(f"stage {name}: service time must be an int of ns ≥ its min_ns {floor}, got {dur!r}")
    return dur


@dataclass(slots=True, eq=False)
class Stage(Generic[T]):
    """
    One single-server FIFO stage.

    Args:
        name: the stage's name in results and traces.
        service: the service time in ns: an int for every request, or ``service(item, start_ns)``,
            called once per request, in request order.
        min_ns: a guaranteed lower bound of the service time (the port's lookahead); ``None``:
            the service itself when it is an int, else 0 (always safe, but it makes the port
            hold completions longer -- slower, never different).
    """

    name: str
    service: Callable[[T, int], int] | int
    min_ns: int | None = None
    stats: LayerStats = field(init=False)
    """Service time per request (calls, busy time, percentiles)."""
    wait_ns: int = field(init=False, default=0)
    """Σ time requests waited in this stage's queue before their service started."""
    max_wait_ns: int = field(init=False, default=0)
    """The longest such wait."""
    residence_ns: int = field(init=False, default=0)
    """Σ (departure − arrival) over requests that left: with :attr:`frozen_residence_ns`, the integral of requests in flight."""
    frozen_residence_ns: int = field(init=False, default=0)
    """Σ (freeze − arrival) over the requests a freeze caught in this stage (they never left)."""
    max_in_flight: int = field(init=False, default=0)
    """Most requests in this stage (queued or in service) at any instant."""

    def __post_init__(self) -> None:
        self.stats = LayerStats(self.name)
        if self.min_ns is None:
            self.min_ns = self.service if isinstance(self.service, int) else 0
        if isinstance(self.service, int) and self.service < self.min_ns:
            raise ValueError(f"stage {self.name}: service {self.service} ns is below its min_ns {self.min_ns} ns")


@dataclass(slots=True, eq=False)
class Port(Generic[T]):
    """
    Storport's queue and the device behind it.

    Args:
        name: the queue's name (``storport.sys``) in results and the freeze.
        device: the device's name.
        depth: most commands outstanding at the device; the excess waits in FIFO order.
        channels: commands the device serves at once (its internal parallelism).
        service: ``service(item, start_ns) -> ns``, the device's service time for a command that
            starts on a channel at *start_ns*; called in start-time order.
        min_service_ns: a guaranteed lower bound of ``service`` for every item of the run.
    """

    name: str
    device: str
    depth: int
    channels: int
    service: Callable[[T, int], int]
    min_service_ns: int = 0
    waits: LatencyHistogram = field(init=False, default_factory=LatencyHistogram)
    """Time each request waited in the port's queue for a slot (arrival → admission)."""
    device_stats: LayerStats = field(init=False)
    """Device service time per command."""
    queue_residence_ns: int = field(init=False, default=0)
    """Σ (admission − arrival): the integral of requests waiting in the port's queue over time."""
    device_residence_ns: int = field(init=False, default=0)
    """Σ (completion − admission): the integral of commands outstanding at the device over time."""
    queue_frozen_ns: int = field(init=False, default=0)
    """Σ time requests a freeze caught spent in the port's queue until the freeze."""
    device_frozen_ns: int = field(init=False, default=0)
    """Σ time commands a freeze caught spent at the device (waiting for a channel or served) until the freeze."""
    max_queue: int = field(init=False, default=0)
    """Most requests waiting in the port's queue at any instant."""
    max_outstanding: int = field(init=False, default=0)
    """Most commands outstanding at the device at any instant (never more than ``depth``)."""
    admitted: int = field(init=False, default=0)
    """Commands the device completed (admitted and done)."""

    def __post_init__(self) -> None:
        if self.depth < 1 or self.channels < 1:
            raise ValueError(f"port {self.name}: depth and channels must be at least 1, got {self.depth}, {self.channels}")
        self.device_stats = LayerStats(self.device)


@dataclass(slots=True)
class NetworkResult:
    """What a run did; statistics are streaming, so memory does not grow with requests."""

    issued: int = 0
    completed: int = 0
    end_ns: int = 0
    """The last completion, or the freeze time when the run froze with requests in flight."""
    latency: LatencyHistogram = field(default_factory=LatencyHistogram)
    """Issue-to-completion time of every completed request."""
    frozen: list[Frozen] = field(default_factory=list)
    """Requests in flight when the network froze, in request order (at most ``window``)."""


Link = tuple[trio.MemorySendChannel[list[Message[T]]], trio.MemoryReceiveChannel[list[Message[T]]]]


async def run_network(
    submit: Sequence[Stage[T]],
    port: Port[T],
    complete: Sequence[Stage[T]],
    items: Iterable[T],
    *,
    window: int,
    duration_ns: int | None = None,
    freeze_at: int | None = None,
    on_service: ServiceHook[T] | None = None,
) -> NetworkResult:
    """
    Push *items* through the closed loop with at most *window* requests in flight; return the result.

    Request ``i`` is ``items``' ``i``-th element (read lazily). *on_service*, if given, is called
    for every completed service (stages, the port's queue, the device), in request order per
    stage -- a trace hook; leave it out for speed.

    Raises:
        ValueError: *window* < 1, a service time that is not an int at least its stage's minimum.
        Exception: whatever a service function raised, as it raised it.
    """
    if window < 1:
        raise ValueError(f"window must be at least 1, got {window}")
    names = [s.name for s in submit] + [port.name, port.device] + [s.name for s in complete]
    if len(set(names)) != len(names):
        raise ValueError(f"stage names must be unique, got {names}")
    horizon = _NEVER if freeze_at is None else freeze_at
    stop = min(_NEVER if duration_ns is None else duration_ns, horizon)
    result = NetworkResult()
    lf = sum(s.min_ns or 0 for s in submit)
    lc = sum(s.min_ns or 0 for s in complete)
    try:
        await _run(submit, port, complete, iter(items), window, stop, horizon, lf, lc, result, on_service)
    except BaseExceptionGroup as group:  # what a stage raised, not wrapped in the nursery's group
        if len(group.exceptions) == 1 and isinstance(group.exceptions[0], Exception):
            raise group.exceptions[0] from None
        raise
    if freeze_at is None and result.frozen:  # validation bounds every run below 2^63 ns: this is a guard, never a result
        raise OverflowError(f"request {result.frozen[0].index} would end past 2^63 ns of simulated time")
    if freeze_at is not None and result.frozen:
        result.end_ns = freeze_at
    result.frozen.sort(key=lambda f: f.index)
    return result


_END = object()
_NEVER = 1 << 63
"""A time no run reaches (every reported time is below 2^63 ns)."""


async def _run(
    submit: Sequence[Stage[T]],
    port: Port[T],
    complete: Sequence[Stage[T]],
    items: Iterable[T],
    window: int,
    stop: int,
    horizon: int,
    lf: int,
    lc: int,
    result: NetworkResult,
    on_service: ServiceHook[T] | None,
) -> None:
    """The source: start the tasks, keep *window* requests in flight, collect completions."""
    n = len(submit) + len(complete) + 2
    links: list[Link[T]] = [trio.open_memory_channel[list[Message[T]]](math.inf) for _ in range(n)]
    frozen = result.frozen
    async with trio.open_nursery() as nursery:
        k = 0
        for stage in submit:
            nursery.start_soon(_serve, stage, links[k][1], links[k + 1][0], horizon, frozen, _FROZEN, on_service)
            k += 1
        nursery.start_soon(_port, port, links[k][1], links[k + 1][0], horizon, frozen, window, lf, lf + lc, on_service)
        k += 1
        for stage in complete:
            nursery.start_soon(_serve, stage, links[k][1], links[k + 1][0], horizon, frozen, _FROZEN_RELEASED, on_service)
            k += 1
        send, done = links[0][0], links[-1][1]
        source = iter(items)
        pending: object = next(source, _END) if stop > 0 else _END
        in_flight = 0
        first: list[Message[T]] = []
        while pending is not _END and len(first) < window:
            first.append((0, result.issued, 0, pending))  # type: ignore[arg-type]
            result.issued += 1
            pending = next(source, _END)
        in_flight = len(first)
        if first:
            send.send_nowait(first)
        closed = pending is _END
        if closed:
            send.close()
        latency = result.latency.record
        async for batch in done:
            more: list[Message[T]] = []
            for t, _index, issued, _item in batch:
                in_flight -= 1
                if t < 0:
                    if t == _FROZEN_RELEASED:
                        pending = _END  # every later release froze too: nothing more is issued
                    continue
                result.completed += 1
                result.end_ns = t
                latency(t - issued)
                if pending is not _END and t < stop:
                    more.append((t, result.issued, t, pending))  # type: ignore[arg-type]
                    result.issued += 1
                    pending = next(source, _END)
                else:
                    pending = _END
            if more:
                in_flight += len(more)
                send.send_nowait(more)
            if not closed and (pending is _END or in_flight == 0):
                closed = True
                send.close()


async def _serve(
    stage: Stage[T],
    inbox: trio.MemoryReceiveChannel[list[Message[T]]],
    outbox: trio.MemorySendChannel[list[Message[T]]],
    horizon: int,
    frozen: list[Frozen],
    marker: int,
    on_service: ServiceHook[T] | None,
) -> None:
    """One stage's task: serve each batch of arrivals in order and forward it as one message."""
    name, service = stage.name, stage.service
    fixed = service if isinstance(service, int) else None
    floor = stage.min_ns or 0
    record = stage.stats.record
    free = 0
    peak = stage.max_in_flight
    inside: deque[int] = deque()  # departure times of requests still in the stage (nondecreasing: FIFO)
    leave, enter = inside.popleft, inside.append
    forward = outbox.send_nowait
    async for batch in inbox:
        out: list[Message[T]] = []
        add = out.append
        residence = frozen_residence = waited = served = 0
        longest = stage.max_wait_ns
        for msg in batch:
            t, index, issued, item = msg
            if t < 0:
                add(msg)
                continue
            if t >= free:
                start = t
            else:
                start = free
                waited += free - t
                if free - t > longest:
                    longest = free - t
            if start >= horizon:
                end, state = horizon, "queued"
            else:
                dur = fixed if fixed is not None else _check(name, service(item, start), floor)  # type: ignore[operator]
                free = end = start + dur
                state = "in_service"
            while inside and inside[0] <= t:
                leave()
            if end >= horizon:  # it never leaves: it counts as in the stage until the freeze
                enter(horizon)
                peak = max(peak, len(inside))
                frozen_residence += horizon - t
                frozen.append(Frozen(index, name, state, item))
                add((marker, index, issued, item))
                continue
            enter(end)
            if len(inside) > peak:
                peak = len(inside)
            if fixed is None:
                record(dur)
            else:
                served += 1
            residence += end - t
            if on_service is not None:
                on_service(name, index, t, start, end, item)
            add((end, index, issued, item))
        if served:
            record(fixed, served)  # type: ignore[arg-type]
        stage.residence_ns += residence
        stage.frozen_residence_ns += frozen_residence
        stage.wait_ns += waited
        stage.max_wait_ns = longest
        stage.max_in_flight = peak
        if out:
            forward(out)
    outbox.close()


async def _port(
    port: Port[T],
    inbox: trio.MemoryReceiveChannel[list[Message[T]]],
    outbox: trio.MemorySendChannel[list[Message[T]]],
    horizon: int,
    frozen: list[Frozen],
    window: int,
    lf: int,
    loop: int,
    on_service: ServiceHook[T] | None,
) -> None:
    """The port's task: admit, serve on the earliest channel, and release completions in order when safe."""
    name, device, depth, service = port.name, port.device, port.depth, port.service
    floor = port.min_service_ns
    record, wait = port.device_stats.record, port.waits.record
    ready: list[tuple[int, int, int, T]] = []  # completions not yet released: (time, index, issued, item)
    released: deque[int] = deque()  # times of releases whose triggered request has not arrived yet
    channels = [0] * port.channels  # a heap of the channels' free times
    slots: list[int] = []  # a heap of completion times of commands outstanding at the device
    waiting: deque[int] = deque()  # admission times of requests waiting in the queue (nondecreasing)
    last_admit = 0
    last_arrival = 0
    seen = 0  # the next request index to arrive
    forward = outbox.send_nowait
    is_open = True
    while is_open:
        try:
            batch = await inbox.receive()
        except trio.EndOfChannel:
            is_open = False
            batch = []
        out: list[Message[T]] = []
        for msg in batch:
            t, index, issued, item = msg
            seen = index + 1
            if index >= window:
                released.popleft()  # the release that triggered this request
            if t < 0:
                out.append(msg)
                continue
            last_arrival = t
            admit = t if t > last_admit else last_admit
            while slots and slots[0] <= admit:
                heapq.heappop(slots)
            if len(slots) >= depth:
                admit = heapq.heappop(slots)
                while slots and slots[0] <= admit:
                    heapq.heappop(slots)
            if admit >= horizon:
                frozen.append(Frozen(index, name, "queued", item))
                out.append((_FROZEN, index, issued, item))
                port.queue_frozen_ns += horizon - t  # in storport's queue until the freeze
                while waiting and waiting[0] <= t:
                    waiting.popleft()
                waiting.append(horizon)
                if len(waiting) > port.max_queue:
                    port.max_queue = len(waiting)
                last_admit = admit
                continue
            last_admit = admit
            while waiting and waiting[0] <= t:
                waiting.popleft()
            if admit > t:
                waiting.append(admit)
                if len(waiting) > port.max_queue:
                    port.max_queue = len(waiting)
            free = channels[0]
            start = admit if admit > free else free
            if start >= horizon:
                frozen.append(Frozen(index, device, "queued", item))
                out.append((_FROZEN, index, issued, item))
                heapq.heappush(slots, horizon)  # it holds its slot past the freeze
                if len(slots) > port.max_outstanding:
                    port.max_outstanding = len(slots)
                port.queue_frozen_ns += admit - t
                port.device_frozen_ns += horizon - admit  # held by the device until the freeze
                continue
            dur = _check(device, service(item, start), floor)
            end = start + dur
            heapq.heapreplace(channels, end)
            heapq.heappush(slots, end)
            if len(slots) > port.max_outstanding:
                port.max_outstanding = len(slots)
            if end >= horizon:
                frozen.append(Frozen(index, device, "in_service", item))
                out.append((_FROZEN, index, issued, item))
                port.queue_frozen_ns += admit - t
                port.device_frozen_ns += horizon - admit
                continue
            wait(admit - t)
            record(dur)
            port.admitted += 1
            port.queue_residence_ns += admit - t
            port.device_residence_ns += end - admit
            if on_service is not None:
                on_service(name, index, t, admit, admit, item)
                on_service(device, index, admit, start, end, item)
            heapq.heappush(ready, (end, index, issued, item))
        if is_open:
            while ready:
                if seen < window:
                    bound = last_arrival if last_arrival > lf else lf
                elif released:
                    bound = max(last_arrival, released[0] + loop)
                else:
                    bound = _NEVER  # the next request waits on a release: the earliest may go
                bound = max(bound, last_admit, channels[0]) + floor
                if ready[0][0] > bound:
                    break
                msg = heapq.heappop(ready)
                released.append(msg[0])
                out.append(msg)
        else:
            while ready:
                out.append(heapq.heappop(ready))
        if out:
            forward(out)
    outbox.close()
