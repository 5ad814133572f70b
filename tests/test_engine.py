"""The engine: CPU accounting, timed calls and the virtual-time watchdog."""

from __future__ import annotations

import pytest
import trio

from stacksim._engine import CallFailed, CpuMeter, Engine, run, spend
from stacksim.requests import NtStatus


def test_spend_outside_a_layer_is_an_error() -> None:
    """spend() needs a layer's meter; outside one it says so."""
    with pytest.raises(RuntimeError, match="outside a simulated layer"):
        spend(10)


def test_spend_rejects_bad_values() -> None:
    """spend() takes non-negative integer nanoseconds only."""
    meter = CpuMeter()
    token = meter.activate()
    try:
        with pytest.raises(RuntimeError, match="non-negative integer"):
            spend(1.5)  # type: ignore[arg-type]
        with pytest.raises(RuntimeError, match="non-negative integer"):
            spend(True)
        spend(NtStatus.SUCCESS)  # an int subclass (IntEnum) is an int
        spend(3)
        spend(4)
        assert meter.ns == 7
    finally:
        CpuMeter.deactivate(token)


def test_timed_counts_spent_and_awaited_time() -> None:
    """A timed call's duration is what it spent plus the virtual time it awaited."""
    engine = Engine()
    meter = CpuMeter()

    async def work() -> str:
        spend(500)
        await trio.sleep(0.000_002)
        return "ok"

    async def main() -> tuple[str, int]:
        meter.activate()
        return await engine.timed(meter, "layer", "event", 1, work)

    assert run(main) == ("ok", 2500)


def test_timed_call_that_never_awaits_costs_exactly_what_it_spent() -> None:
    """A callback that finishes without yielding to trio is charged its spend(), nothing else."""
    engine = Engine()
    meter = CpuMeter()
    calls: list[int] = []

    async def work(n: int) -> int:
        calls.append(n)
        spend(n)
        return n * 2

    async def main() -> tuple[tuple[int, int], float]:
        meter.activate()
        result = await engine.timed(meter, "layer", "event", 1, work, 700)
        return result, trio.current_time()

    assert run(main) == ((1400, 700), 0.0)
    assert calls == [700]


def test_timed_reports_what_the_call_raised_and_how_long_it_ran() -> None:
    """An exception, before or after an await, comes back as CallFailed with the time spent so far."""
    engine = Engine()
    meter = CpuMeter()

    async def fails_at_once() -> None:
        spend(40)
        raise ValueError("boom")

    async def fails_after_sleeping() -> None:
        spend(40)
        await trio.sleep(0.000_001)
        raise KeyError("late")

    async def attribute_error() -> None:  # must not be mistaken for "not a coroutine"
        spend(40)
        _ = None.missing  # type: ignore[attr-defined]

    async def main() -> list[tuple[str, int]]:
        meter.activate()
        out = []
        for fn in (fails_at_once, fails_after_sleeping, attribute_error):
            with pytest.raises(CallFailed) as info:
                await engine.timed(meter, "layer", "event", 1, fn)
            out.append((repr(info.value.exc), info.value.dur_ns))
        return out

    assert run(main) == [
        ("ValueError('boom')", 40),
        ("KeyError('late')", 1040),
        ("AttributeError(\"'NoneType' object has no attribute 'missing'\")", 40),
    ]


def test_timed_rejects_a_plain_function_clearly() -> None:
    """A callback written as a plain def (not async def) fails with a message that says so."""
    engine = Engine()
    meter = CpuMeter()

    def plain() -> int:
        return 0

    def generator():  # type: ignore[no-untyped-def]
        yield 0

    async def main() -> list[str]:
        meter.activate()
        out = []
        for fn in (plain, generator):
            with pytest.raises(CallFailed) as info:
                await engine.timed(meter, "layer", "event", 1, fn)
            out.append(str(info.value.exc).split(" object ")[0])
        return out

    assert run(main) == [
        "callbacks must be coroutine functions (async def); got a plain function returning 0",
        "callbacks must be coroutine functions (async def); got a plain function returning <generator",
    ]


def test_timed_awaits_other_awaitables_too() -> None:
    """A callback returning an awaitable that is not a coroutine (a wrapper object) is awaited and timed."""
    engine = Engine()
    meter = CpuMeter()

    async def inner() -> str:
        spend(30)
        await trio.sleep(0.000_001)
        return "done"

    class Wrapper:
        def __await__(self):  # type: ignore[no-untyped-def]
            return inner().__await__()

    async def main() -> tuple[str, int]:
        meter.activate()
        return await engine.timed(meter, "layer", "event", 1, Wrapper)  # type: ignore[arg-type]

    assert run(main) == ("done", 1030)


def test_a_suspended_timed_call_can_be_cancelled() -> None:
    """Cancellation reaches a callback that is waiting inside trio (the watchdog relies on it)."""
    engine = Engine()
    meter = CpuMeter()
    cleaned: list[str] = []

    async def waits() -> None:
        try:
            await trio.sleep_forever()
        finally:
            cleaned.append("finally ran")

    async def main() -> float:
        meter.activate()
        with trio.move_on_after(0.5):
            await engine.timed(meter, "layer", "event", 1, waits)
        return trio.current_time()

    assert run(main) == 0.5
    assert cleaned == ["finally ran"]


def test_watchdog_names_the_hung_call() -> None:
    """A call that never returns ends the run with the layer, event and request named."""
    engine = Engine(watchdog_ns=1_000_000_000)
    meter = CpuMeter()

    async def main() -> None:
        meter.activate()
        await engine.timed(meter, "stuck.sys", "dump_write", 7, trio.sleep_forever)

    assert trio.run(lambda: _supervised(engine, main), clock=trio.testing.MockClock(autojump_threshold=0)) is None
    failure = engine.failure
    assert failure is not None
    assert (failure.layer, failure.event, failure.request, failure.waited_ns) == ("stuck.sys", "dump_write", 7, 1_000_000_000)


def test_watchdog_reports_a_deadlock() -> None:
    """When every task waits on another and no call is running, the run ends as a deadlock."""
    engine = Engine(watchdog_ns=10)
    engine.describe_state = lambda: "everyone waits"

    async def main() -> None:
        _send, receive = trio.open_memory_channel[int](0)
        await receive.receive()

    run(lambda: _supervised(engine, main))
    assert engine.failure is not None
    assert engine.failure.layer is None
    assert str(engine.failure) == "deadlock: every layer is waiting and none can proceed; everyone waits"


def test_long_call_under_the_watchdog_is_fine() -> None:
    """A call shorter than the watchdog period completes normally."""
    engine = Engine(watchdog_ns=1_000_000)
    meter = CpuMeter()

    async def main() -> int:
        meter.activate()
        _, dur = await engine.timed(meter, "slow.sys", "dump_write", 1, trio.sleep, 0.000_999)
        return dur

    assert run(lambda: _supervised(engine, main)) == 999_000
    assert engine.failure is None


async def _supervised(engine: Engine, main):  # type: ignore[no-untyped-def]
    return await engine.supervise(main)
