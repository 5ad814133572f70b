"""Queued pipelines (QD > 1): exact timelines, the tandem-queue recursion, freezing, determinism."""

from __future__ import annotations

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from stacksim._engine import run
from stacksim._engine.pipeline import Frozen, PipelineResult, Stage, run_pipeline

Event = tuple[str, int, int, int]


def fixed(name: str, ns: int) -> Stage[int]:
    """A stage that takes *ns* for every request."""
    return Stage(name, lambda _item, _start: ns)


def simulate(stages: list[Stage[int]], n: int, window: int, freeze_at: int | None = None) -> tuple[PipelineResult, list[Event]]:
    """Run *n* requests; return the result and the service events sorted by (start, stage order)."""
    events: list[Event] = []
    rank = {s.name: k for k, s in enumerate(stages)}
    result = run(
        lambda: run_pipeline(stages, range(n), window=window, freeze_at=freeze_at, on_service=lambda *e: events.append(e))
    )
    return result, sorted(events, key=lambda e: (e[2], rank[e[0]], e[1]))


def recursion(services: list[list[int]], window: int) -> list[list[int]]:
    """The tandem-queue recursion D[s][i] = max(D[s-1][i], D[s][i-1]) + service, issue(i) = D[-1][i-window]."""
    n = len(services[0])
    done: list[list[int]] = [[0] * n for _ in services]
    for i in range(n):
        arrival = done[-1][i - window] if i >= window else 0
        for s, svc in enumerate(services):
            start = max(arrival, done[s][i - 1] if i else 0)
            done[s][i] = arrival = start + svc[i]
    return done


def test_qd1_is_serial() -> None:
    """With a window of 1 the next request is issued only when the previous one completed."""
    result, events = simulate([fixed("filter", 10), fixed("device", 30)], 3, window=1)
    assert events == [
        ("filter", 0, 0, 10),
        ("device", 0, 10, 40),
        ("filter", 1, 40, 50),
        ("device", 1, 50, 80),
        ("filter", 2, 80, 90),
        ("device", 2, 90, 120),
    ]
    assert (result.issued, result.completed, result.end_ns) == (3, 3, 120)


def test_a_deeper_window_overlaps_stages() -> None:
    """With two requests in flight the filter works on the next request while the device is busy."""
    result, events = simulate([fixed("filter", 10), fixed("device", 30)], 3, window=2)
    assert events == [
        ("filter", 0, 0, 10),
        ("filter", 1, 10, 20),
        ("device", 0, 10, 40),
        ("filter", 2, 40, 50),
        ("device", 1, 40, 70),
        ("device", 2, 70, 100),
    ]
    assert result.end_ns == 100


def test_statistics_cover_service_queueing_and_latency() -> None:
    """Each stage records service times and queue waits; the result has issue-to-completion latency."""
    stages = [fixed("filter", 10), fixed("device", 30)]
    result, _ = simulate(stages, 3, window=2)
    assert (stages[1].stats.calls, stages[1].stats.busy_ns) == (3, 90)
    assert (stages[1].waits.total, stages[1].waits.max) == (20 + 20, 20)  # requests 1 and 2 queued 20 ns
    assert (result.latency.count, result.latency.min, result.latency.max) == (3, 40, 70)  # request 1: 0 → 70


def test_qd32_bottleneck_matches_the_closed_form() -> None:
    """Three 2 µs filters before a 41,846 ns device at QD32: K × 2 µs + R × device, to the nanosecond."""
    stages = [fixed("f1", 2_000), fixed("f2", 2_000), fixed("f3", 2_000), fixed("device", 41_846)]
    result, _ = simulate(stages, 1_000, window=32)
    assert result.end_ns == 3 * 2_000 + 1_000 * 41_846


@given(
    services=st.lists(st.lists(st.integers(0, 50), min_size=6, max_size=6), min_size=1, max_size=4),
    window=st.integers(1, 8),
)
def test_matches_the_tandem_queue_recursion(services: list[list[int]], window: int) -> None:
    """Any service times and window: every service ends exactly when the recursion says."""
    stages = [Stage(f"s{k}", lambda item, _start, svc=svc: svc[item]) for k, svc in enumerate(services)]
    result, events = simulate(stages, 6, window)
    done = recursion(services, window)
    assert {(name, i): end for name, i, _start, end in events} == {
        (f"s{k}", i): done[k][i] for k in range(len(services)) for i in range(6)
    }
    assert result.end_ns == done[-1][-1]


def test_a_stateful_stage_sees_every_start_time_in_order() -> None:
    """service() is called in request order with the exact start, so device state is exact."""
    calls: list[tuple[int, int]] = []

    def device(item: int, start: int) -> int:
        calls.append((item, start))
        return 30

    simulate([fixed("filter", 10), Stage("device", device)], 4, window=4)
    assert calls == [(0, 10), (1, 40), (2, 70), (3, 100)]


def test_freeze_stops_the_stack_where_it_stands() -> None:
    """A bugcheck at 75 ns: two requests done, one frozen in the device, one in the filter."""
    result, events = simulate([fixed("filter", 10), fixed("device", 30)], 10, window=2, freeze_at=75)
    assert (result.issued, result.completed, result.end_ns) == (4, 2, 75)
    assert result.frozen == [Frozen(2, "device", "in_service"), Frozen(3, "filter", "in_service")]
    assert events[-1] == ("device", 1, 40, 70)  # nothing is served after the freeze


def test_freeze_leaves_later_requests_queued() -> None:
    """Requests behind a frozen one stay in their queue, in FIFO order."""
    result, _ = simulate([fixed("filter", 1), fixed("device", 100)], 10, window=3, freeze_at=50)
    assert result.frozen == [
        Frozen(0, "device", "in_service"),
        Frozen(1, "device", "queued"),
        Frozen(2, "device", "queued"),
    ]
    assert result.completed == 0


def test_a_service_ending_exactly_at_the_freeze_does_not_complete() -> None:
    """On a tie the bugcheck wins (the documented assumption)."""
    result, _ = simulate([fixed("device", 30)], 5, window=1, freeze_at=60)
    assert result.completed == 1
    assert result.frozen == [Frozen(1, "device", "in_service")]


def test_results_do_not_depend_on_trio_wake_order() -> None:
    """Different seeds of trio's scheduler RNG (private; guarded) give the same events."""
    runner = pytest.importorskip("trio._core._run")
    rng = getattr(runner, "_r", None)
    if rng is None:  # pragma: no cover - trio moved its scheduler RNG
        pytest.skip("trio's scheduler RNG is not where it used to be")
    outcomes = set()
    for seed in range(5):
        rng.seed(seed)
        stages = [fixed("f1", 3), fixed("f2", 5), fixed("device", 4)]
        result, events = simulate(stages, 50, window=8)
        outcomes.add((result.end_ns, tuple(events)))
    assert len(outcomes) == 1


def test_bad_arguments_are_refused() -> None:
    """A window below 1, no stages, or a service time that is not a non-negative int."""
    with pytest.raises(ValueError, match="window must be at least 1"):
        run(lambda: run_pipeline([fixed("d", 1)], range(3), window=0))
    with pytest.raises(ValueError, match="at least one stage"):
        run(lambda: run_pipeline([], range(3), window=1))
    with pytest.raises(ValueError, match=r"stage d: service time must be a non-negative int of ns, got 1\.5"):
        run(lambda: run_pipeline([Stage("d", lambda _i, _t: 1.5)], range(3), window=1))  # type: ignore[arg-type,return-value]


def test_an_exception_in_a_service_function_comes_out_as_itself() -> None:
    """A model bug surfaces as its own exception, not wrapped in trio's exception group."""

    def broken(_item: int, _start: int) -> int:
        raise KeyError("no such zone")

    with pytest.raises(KeyError, match="no such zone"):
        run(lambda: run_pipeline([fixed("f", 1), Stage("device", broken)], range(3), window=2))


def test_an_empty_source_completes_at_once() -> None:
    """No requests: nothing issued, nothing served, time 0."""
    result = run(lambda: run_pipeline([fixed("d", 5)], [], window=4))
    assert (result.issued, result.completed, result.end_ns, result.frozen) == (0, 0, 0, [])


async def test_runs_inside_an_existing_trio_run() -> None:
    """run_pipeline is a plain async function: it can run beside other tasks."""
    result = await run_pipeline([fixed("d", 5)], range(4), window=2)
    assert result.end_ns == 20
    await trio.lowlevel.checkpoint()
