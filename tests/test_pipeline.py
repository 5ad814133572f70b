"""Queued networks: exact timelines, out-of-order completions, the heapq reference, freezing, determinism."""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Callable
from itertools import count

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stacksim._engine import run
from stacksim._engine.pipeline import Frozen, NetworkResult, Port, Stage, run_network

Event = tuple[str, int, int, int, int]
"""(stage, request index, arrival ns, start ns, end ns)."""

Service = Callable[[int, int], int]


def simulate(
    submit: list[Stage[int]],
    port: Port[int],
    complete: list[Stage[int]],
    n: int,
    window: int,
    *,
    duration: int | None = None,
    freeze_at: int | None = None,
) -> tuple[NetworkResult, list[Event]]:
    """Run *n* requests (items 0..n-1); return the result and every service, sorted."""
    events: list[Event] = []

    def hook(stage: str, index: int, arrival: int, start: int, end: int, _item: int) -> None:
        events.append((stage, index, arrival, start, end))

    result = run(
        lambda: run_network(
            submit, port, complete, range(n), window=window, duration_ns=duration, freeze_at=freeze_at, on_service=hook
        )
    )
    return result, sorted(events)


def fixed_port(ns: int, *, depth: int = 1_000, channels: int = 1) -> Port[int]:
    """A port whose device takes *ns* per command."""
    return Port("storport", "device", depth, channels, lambda _item, _start: ns, ns)


def reference(
    submit: list[tuple[str, Service]],
    queue: str,
    device: str,
    depth: int,
    channels: int,
    device_service: Service,
    complete: list[tuple[str, Service]],
    n: int,
    window: int,
    stop: float = math.inf,
    freeze: float = math.inf,
) -> tuple[list[Event], list[int], set[tuple[int, str, str]]]:
    """
    A plain heapq discrete-event simulation of the same network.

    Returns every completed service, the completion times at the source in order, and the
    requests in flight at *freeze* as (index, stage, state). Ties: device completions at one
    instant go in index order, before other events; hand-offs are direct calls.
    """
    heap: list[tuple[int, int, int, Callable[[], None]]] = []
    seq = count()
    events: list[Event] = []
    done: list[int] = []
    issued = 0
    stages = [*submit, ("<port>", device_service), *complete]
    busy: list[int | None] = [None] * len(stages)
    queues: list[deque[tuple[int, int]]] = [deque() for _ in stages]  # (index, arrival)
    port_queue: deque[tuple[int, int]] = deque()
    device_queue: deque[tuple[int, int, int]] = deque()  # (index, arrival at port, admitted)
    in_device: dict[int, int] = {}  # index -> admitted
    outstanding = 0
    free_channels = channels
    p = len(submit)

    def at(t: int, fn: Callable[[], None], key: int | None = None) -> None:
        heapq.heappush(heap, (t, 0 if key is not None else 1, key if key is not None else next(seq), fn))

    def arrive(s: int, i: int, t: int) -> None:
        if s == len(stages):
            finish(i, t)
        elif s == p:
            port_arrive(i, t)
        elif busy[s] is None:
            begin(s, i, t, t)
        else:
            queues[s].append((i, t))

    def begin(s: int, i: int, arrival: int, t: int) -> None:
        busy[s] = i
        end = t + stages[s][1](i, t)

        def depart() -> None:
            events.append((stages[s][0], i, arrival, t, end))
            busy[s] = None
            if queues[s]:
                j, a = queues[s].popleft()
                begin(s, j, a, end)
            arrive(s + 1, i, end)

        at(end, depart)

    def port_arrive(i: int, t: int) -> None:
        nonlocal outstanding
        if outstanding < depth:
            outstanding += 1
            admit(i, t, t)
        else:
            port_queue.append((i, t))

    def admit(i: int, arrival: int, t: int) -> None:
        nonlocal free_channels
        events.append((queue, i, arrival, t, t))
        if free_channels:
            free_channels -= 1
            start_device(i, t, t)
        else:
            device_queue.append((i, arrival, t))

    def start_device(i: int, admitted: int, t: int) -> None:
        in_device[i] = admitted
        end = t + device_service(i, t)

        def completed() -> None:
            nonlocal outstanding, free_channels
            events.append((device, i, admitted, t, end))
            del in_device[i]
            free_channels += 1
            outstanding -= 1
            if device_queue:
                j, _a, adm = device_queue.popleft()
                free_channels -= 1
                start_device(j, adm, end)
            if port_queue:
                j, a = port_queue.popleft()
                outstanding += 1
                admit(j, a, end)
            arrive(p + 1, i, end)

        at(end, completed, key=i)

    def issue(t: int) -> None:
        nonlocal issued
        issued += 1
        arrive(0, issued - 1, t)

    def finish(i: int, t: int) -> None:
        done.append(t)
        if issued < n and t < stop and t < freeze:
            issue(t)

    if stop > 0 and freeze > 0:
        for _ in range(min(window, n)):
            issue(0)
    while heap and heap[0][0] < freeze:
        heapq.heappop(heap)[3]()
    frozen: set[tuple[int, str, str]] = set()
    if freeze < math.inf:
        for s, (name, _) in enumerate(stages):
            if s == p:
                continue
            if busy[s] is not None:
                frozen.add((busy[s], name, "in_service"))  # type: ignore[arg-type]
            frozen |= {(i, name, "queued") for i, _ in queues[s]}
        frozen |= {(i, queue, "queued") for i, _ in port_queue}
        frozen |= {(i, device, "queued") for i, _, _ in device_queue}
        frozen |= {(i, device, "in_service") for i in in_device}
    # the engine reports the port's queue only for requests the device served
    served = {e[1] for e in events if e[0] == device}
    events = [e for e in events if e[0] != queue or e[1] in served]
    return sorted(events), done, frozen


def cost(base: int, spread: int, mult: int) -> Service:
    """A service that depends on the item: base + (item × mult) mod spread."""
    return lambda item, _start: base + (item * mult) % spread


def stateful_device(base: int, spread: int) -> Service:
    """A device whose service depends on its history (called in start order) -- like a write cache."""
    state = [0]

    def service(item: int, start: int) -> int:
        dur = base + (item * 7919 + state[0]) % spread
        state[0] = (state[0] * 31 + start) % 1_000_003
        return dur

    return service


class TestTimelines:
    """Exact timelines on small networks."""

    def test_qd1_is_the_sum_of_every_stage(self) -> None:
        """With one request in flight each request takes the sum of every service, one after the other."""
        result, events = simulate([Stage("a", 10)], fixed_port(30), [Stage("isr", 5), Stage("b", 2)], 2, window=1)
        assert events == [
            ("a", 0, 0, 0, 10),
            ("a", 1, 47, 47, 57),
            ("b", 0, 45, 45, 47),
            ("b", 1, 92, 92, 94),
            ("device", 0, 10, 10, 40),
            ("device", 1, 57, 57, 87),
            ("isr", 0, 40, 40, 45),
            ("isr", 1, 87, 87, 92),
            ("storport", 0, 10, 10, 10),
            ("storport", 1, 57, 57, 57),
        ]
        assert (result.issued, result.completed, result.end_ns) == (2, 2, 94)

    def test_a_parallel_device_completes_out_of_order(self) -> None:
        """Two channels: a long command issued first completes after a short one issued second."""
        port = Port("storport", "device", 8, 2, lambda item, _s: 100 if item == 0 else 10, 10)
        result, events = simulate([], port, [Stage("isr", 1)], 2, window=2)
        assert [e for e in events if e[0] == "isr"] == [("isr", 0, 100, 100, 101), ("isr", 1, 10, 10, 11)]
        assert result.end_ns == 101

    def test_the_interrupt_stage_serialises_simultaneous_completions(self) -> None:
        """Completions at one instant take the interrupt CPU one after the other, in request order."""
        port = Port("storport", "device", 8, 4, lambda _i, _s: 50, 50)
        _, events = simulate([], port, [Stage("isr", 3)], 3, window=3)
        assert [e for e in events if e[0] == "isr"] == [("isr", 0, 50, 50, 53), ("isr", 1, 50, 53, 56), ("isr", 2, 50, 56, 59)]

    def test_the_port_never_exceeds_its_depth_and_queues_the_excess(self) -> None:
        """With depth 2 and four requests at once, two wait in the port's queue until slots free."""
        port = Port("storport", "device", 2, 4, lambda _i, _s: 100, 100)
        result, events = simulate([], port, [], 4, window=4)
        assert [e for e in events if e[0] == "storport"] == [
            ("storport", 0, 0, 0, 0),
            ("storport", 1, 0, 0, 0),
            ("storport", 2, 0, 100, 100),
            ("storport", 3, 0, 100, 100),
        ]
        assert (port.max_outstanding, port.max_queue, result.end_ns) == (2, 2, 200)

    def test_statistics_cover_service_queueing_and_residence(self) -> None:
        """A stage records service times, queue waits and its in-flight integral; the result has latencies."""
        stage = Stage[int]("a", 10)
        result, _ = simulate([stage], fixed_port(30), [], 3, window=2)
        assert (stage.stats.calls, stage.stats.busy_ns, stage.wait_ns, stage.residence_ns) == (3, 30, 10, 40)
        assert (result.latency.count, result.latency.min, result.latency.max) == (3, 40, 70)

    def test_qd32_bottleneck_matches_the_closed_form(self) -> None:
        """Three 2 µs stages before a 41,846 ns device at QD32: 3 × 2 µs + R × device."""
        submit = [Stage[int](f"f{k}", 2_000) for k in range(3)]
        result, _ = simulate(submit, fixed_port(41_846), [], 1_000, window=32)
        assert result.end_ns == 3 * 2_000 + 1_000 * 41_846

    def test_duration_stops_issuing(self) -> None:
        """No request is issued at or after the duration; those in flight still complete."""
        result, _ = simulate([], fixed_port(10), [], 100, window=1, duration=35)
        assert (result.issued, result.completed, result.end_ns) == (4, 4, 40)

    def test_a_service_below_its_minimum_is_refused(self) -> None:
        """A service shorter than the stage's declared minimum would break the lookahead, so it raises."""
        with pytest.raises(ValueError, match="min_ns 5"):
            simulate([Stage("a", lambda _i, _s: 1, 5)], fixed_port(1), [], 1, window=1)


class TestFreeze:
    """The bugcheck stops the network where it stands."""

    def test_the_freeze_lists_every_request_in_flight_by_layer(self) -> None:
        """At t = 25 request 0 is in the device's service, 1 waits for its channel, 2 is in the first stage's service."""
        result, _ = simulate([Stage("a", 10)], fixed_port(30, channels=1), [], 3, window=3, freeze_at=25)
        assert result.frozen == [Frozen(0, "device", "in_service"), Frozen(1, "device", "queued"), Frozen(2, "a", "in_service")]
        assert (result.completed, result.end_ns) == (0, 25)

    def test_a_tie_goes_to_the_bugcheck(self) -> None:
        """A service that would end exactly at the freeze does not complete."""
        result, _ = simulate([Stage("a", 10)], fixed_port(30), [], 1, window=1, freeze_at=40)
        assert result.frozen == [Frozen(0, "device", "in_service")]

    def test_commands_waiting_for_a_channel_are_at_the_device(self) -> None:
        """Admitted commands that no channel has started yet are frozen queued at the device."""
        result, _ = simulate([], fixed_port(100, depth=4, channels=1), [], 3, window=3, freeze_at=50)
        assert result.frozen == [Frozen(0, "device", "in_service"), Frozen(1, "device", "queued"), Frozen(2, "device", "queued")]

    def test_completed_commands_wait_at_the_interrupt(self) -> None:
        """A command the device finished before the freeze but whose interrupt would start after it is lost there."""
        result, _ = simulate([], fixed_port(10, channels=2), [Stage("isr", 20)], 2, window=2, freeze_at=25)
        assert result.frozen == [Frozen(0, "isr", "in_service"), Frozen(1, "isr", "queued")]


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 60),
    window=st.integers(1, 12),
    depth=st.integers(1, 8),
    channels=st.integers(1, 6),
    submit=st.lists(st.tuples(st.integers(0, 30), st.integers(1, 40), st.integers(1, 97)), max_size=4),
    complete=st.lists(st.tuples(st.integers(0, 30), st.integers(1, 40), st.integers(1, 97)), max_size=4),
    device=st.tuples(st.integers(0, 200), st.integers(1, 300)),
    stop=st.one_of(st.none(), st.integers(0, 3_000)),
    freeze=st.one_of(st.none(), st.integers(0, 3_000)),
)
def test_the_engine_equals_a_heapq_simulation(
    n: int,
    window: int,
    depth: int,
    channels: int,
    submit: list[tuple[int, int, int]],
    complete: list[tuple[int, int, int]],
    device: tuple[int, int],
    stop: int | None,
    freeze: int | None,
) -> None:
    """On random networks the engine's timeline, completions and freeze equal a plain heapq discrete-event simulation's."""
    sub = [(f"s{k}", cost(*c)) for k, c in enumerate(submit)]
    com = [(f"c{k}", cost(*c)) for k, c in enumerate(complete)]
    port = Port("port", "dev", depth, channels, stateful_device(*device), device[0])
    result, events = simulate(
        [Stage(name, fn, c[0]) for (name, fn), c in zip(sub, submit, strict=True)],
        port,
        [Stage(name, fn, c[0]) for (name, fn), c in zip(com, complete, strict=True)],
        n,
        window,
        duration=stop,
        freeze_at=freeze,
    )
    ref_events, ref_done, ref_frozen = reference(
        sub,
        "port",
        "dev",
        depth,
        channels,
        stateful_device(*device),
        com,
        n,
        window,
        math.inf if stop is None else stop,
        math.inf if freeze is None else freeze,
    )
    completions = sorted(ref_done)
    assert events == ref_events
    assert result.completed == len(ref_done)
    assert {(f.index, f.stage, f.state) for f in result.frozen} == ref_frozen
    if completions and not result.frozen:
        assert result.end_ns == completions[-1]


def test_results_do_not_depend_on_trio_scheduling() -> None:
    """Twenty runs of the same out-of-order network give identical timelines (trio randomises its wake order)."""
    runs = []
    for _ in range(20):
        port = Port("p", "d", 6, 3, stateful_device(20, 90), 20)
        _, events = simulate([Stage("a", cost(1, 5, 3), 1)], port, [Stage("isr", 2), Stage("b", cost(0, 7, 5))], 200, window=9)
        runs.append(events)
    assert all(r == runs[0] for r in runs)
