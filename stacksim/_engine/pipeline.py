"""
Queued pipelines: stages with queues, many requests in flight, timestamps carried on messages.

The crash path is serial -- one CPU, one request outstanding -- and :class:`~stacksim._engine.Engine`
models it with one clock. The runtime stack that a bugcheck freezes is not: the file system,
volume manager, disk class driver and storport each hold queues, and storport keeps up to its
queue depth of commands outstanding at the device (32 on AHCI NCQ, far more on NVMe). This
module is the engine for that shape, independent of any layer:

* every **stage** is a trio task; stages are linked by trio memory channels, the last one back to
  the **source**, which keeps at most ``window`` requests in flight (the queue depth);
* each stage is a single FIFO server. A message carries its arrival time; the stage computes
  ``start = max(arrival, free)`` and ``end = start + service(item, start)`` and forwards the
  request at once, stamped with ``end``. Nothing sleeps: virtual time is carried by the
  messages, so a stage handles every message that has reached it in one scheduler step;
* the source issues request ``i + window`` at the completion time of request ``i``.

That is exactly the tandem-queue recursion ``D[s][i] = max(D[s-1][i], D[s][i-1]) + service``
with ``issue(i) = D[last][i - window]``, computed in integer nanoseconds, so results are exact and
identical to any other discrete-event engine (a property test compares it with the recursion).

Order is deterministic: every channel has one sender and one receiver, and each stage serves
in request order, so trio's randomised wake-up order never reaches a result. ``service`` is
called in request order with the exact start time, so a stateful model (a device's write
cache) sees the same history as in a one-request-at-a-time simulation.

**Freezing** (``freeze_at``): a bugcheck at time *t* stops the stack where it stands. Nothing
that would happen at or after *t* happens (ASSUMPTION: on a tie the bugcheck wins): a request
that would start at a stage at or after *t* stays ``queued`` there, one whose service would end
at or after *t* is frozen ``in_service``, and the source issues nothing more. The result lists
every frozen request and where it stopped.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import trio

from stacksim.metrics import LatencyHistogram, LayerStats

__all__ = ["Frozen", "PipelineResult", "Stage", "run_pipeline"]

T = TypeVar("T")

_FROZEN = -1
"""Arrival time of a message for a request that froze upstream (it passes through untouched)."""

Message = tuple[int, int, int, T]
"""(arrival or completion ns -- ``_FROZEN`` once frozen --, request index, issue ns, item)."""


@dataclass(frozen=True, slots=True)
class Frozen:
    """A request the freeze caught: its index, the stage, and ``queued`` or ``in_service``."""

    index: int
    stage: str
    state: str


@dataclass(slots=True)
class Stage(Generic[T]):
    """
    One single-server FIFO stage.

    Args:
        name: the stage's name in results.
        service: ``service(item, start_ns) -> ns``, the service time of *item* starting at
            *start_ns*; called once per request, in request order.
    """

    name: str
    service: Callable[[T, int], int]
    stats: LayerStats = field(init=False)
    """Service time per request (calls, busy time, percentiles)."""
    waits: LatencyHistogram = field(init=False, default_factory=LatencyHistogram)
    """Time each request waited in this stage's queue before its service started."""

    def __post_init__(self) -> None:
        self.stats = LayerStats(self.name)


@dataclass(slots=True)
class PipelineResult:
    """What a pipeline run did; statistics are streaming, so memory does not grow with requests."""

    issued: int = 0
    completed: int = 0
    end_ns: int = 0
    """The last completion, or the freeze time when the run was frozen."""
    latency: LatencyHistogram = field(default_factory=LatencyHistogram)
    """Issue-to-completion time of every completed request."""
    frozen: list[Frozen] = field(default_factory=list)
    """Requests in flight when the pipeline froze, in request order (at most ``window``)."""


async def run_pipeline(
    stages: list[Stage[T]],
    items: Iterable[T],
    *,
    window: int,
    freeze_at: int | None = None,
    on_service: Callable[[str, int, int, int], None] | None = None,
) -> PipelineResult:
    """
    Push *items* through *stages* with at most *window* requests in flight; return the result.

    Request ``i`` is ``items``' ``i``-th element (read lazily). The first *window* requests are
    issued at time 0. *on_service*, if given, is called as ``(stage, index, start_ns, end_ns)``
    for every service, in request order per stage -- a trace hook; leave it out for speed.

    Raises:
        ValueError: *window* < 1, no stages, or a service time that is not a non-negative int.
        Exception: whatever a ``service`` function raised, as it raised it.
    """
    if window < 1:
        raise ValueError(f"window must be at least 1, got {window}")
    if not stages:
        raise ValueError("a pipeline needs at least one stage")
    horizon = math.inf if freeze_at is None else freeze_at
    result = PipelineResult()
    links = [trio.open_memory_channel[list[Message[T]]](math.inf) for _ in range(len(stages) + 1)]
    source = iter(items)

    def issue(n: int, at: int, batch: list[Message[T]]) -> None:
        if at >= horizon:
            return
        for item in source:
            batch.append((at, result.issued, at, item))
            result.issued += 1
            n -= 1
            if not n:
                return

    try:
        await _run(stages, links, window, horizon, result, issue, on_service)
    except BaseExceptionGroup as group:  # what a stage raised, not wrapped in the nursery's group
        if len(group.exceptions) == 1 and isinstance(group.exceptions[0], Exception):
            raise group.exceptions[0] from None
        raise
    if freeze_at is not None and result.frozen:
        result.end_ns = freeze_at
    result.frozen.sort(key=lambda f: f.index)
    return result


async def _run(
    stages: list[Stage[T]],
    links: Sequence[tuple[trio.MemorySendChannel[list[Message[T]]], trio.MemoryReceiveChannel[list[Message[T]]]]],
    window: int,
    horizon: float,
    result: PipelineResult,
    issue: Callable[[int, int, list[Message[T]]], None],
    on_service: Callable[[str, int, int, int], None] | None,
) -> None:
    """The source: start the stage tasks, keep *window* requests in flight, collect completions."""
    async with trio.open_nursery() as nursery:
        for k, stage in enumerate(stages):
            nursery.start_soon(_serve, stage, links[k][1], links[k + 1][0], horizon, result.frozen, on_service)
        send, done = links[0][0], links[-1][1]
        first: list[Message[T]] = []
        issue(window, 0, first)
        in_flight = len(first)
        if first:
            send.send_nowait(first)
        latency = result.latency.record
        while in_flight:
            batch = await done.receive()
            more: list[Message[T]] = []
            for t, _index, issued, _item in batch:
                in_flight -= 1
                if t == _FROZEN:
                    continue
                result.completed += 1
                result.end_ns = t
                latency(t - issued)
                issue(1, t, more)
            if more:
                in_flight += len(more)
                send.send_nowait(more)
        send.close()


async def _serve(
    stage: Stage[T],
    inbox: trio.MemoryReceiveChannel[list[Message[T]]],
    outbox: trio.MemorySendChannel[list[Message[T]]],
    horizon: float,
    frozen: list[Frozen],
    on_service: Callable[[str, int, int, int], None] | None,
) -> None:
    """One stage's task: serve each batch of arrivals in order and forward it as one message."""
    name, service = stage.name, stage.service
    record, wait = stage.stats.record, stage.waits.record
    free = 0
    stopped = False  # FIFO: once one request froze here, every later one queues behind it
    take, forward = inbox.receive, outbox.send_nowait
    while True:
        try:
            batch = await take()
        except trio.EndOfChannel:
            outbox.close()
            return
        out: list[Message[T]] = []
        for msg in batch:
            t, index, issued, item = msg
            if t == _FROZEN:
                out.append(msg)
                continue
            start = t if t > free else free
            if stopped or start >= horizon:
                stopped = True
                frozen.append(Frozen(index, name, "queued"))
                out.append((_FROZEN, index, issued, item))
                continue
            dur = service(item, start)
            if type(dur) is not int or dur < 0:
                raise ValueError(f"stage {name}: service time must be a non-negative int of ns, got {dur!r}")
            free = end = start + dur
            wait(start - t)
            if end >= horizon:  # its service never finishes
                stopped = True
                frozen.append(Frozen(index, name, "in_service"))
                out.append((_FROZEN, index, issued, item))
                continue
            record(dur)
            if on_service is not None:
                on_service(name, index, start, end)
            out.append((end, index, issued, item))
        forward(out)
