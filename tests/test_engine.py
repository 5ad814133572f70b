"""The engine: CPU accounting, timed calls, the clock a call sees, the watchdog and the wall-clock guard."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
import trio

from stacksim._engine import (
    CallFailed,
    CallStopped,
    CpuMeter,
    Engine,
    SpeculationFailed,
    WatchdogExpired,
    now_ns,
    run,
    spend,
)
from stacksim.requests import NtStatus

T = TypeVar("T")

SECOND = 1_000_000_000


def in_layer(engine: Engine, meter: CpuMeter, body: Callable[[], Awaitable[T]]) -> T:
    """Run *body* as a layer task does: under the engine's clock and supervision, its meter and cancel scope in place."""

    async def main() -> T:
        meter.activate()
        with trio.CancelScope() as scope:
            meter.scope = scope
            return await body()
        raise AssertionError("the layer's scope was cancelled")  # pragma: no cover

    async def supervised() -> T | None:
        return await engine.supervise(main)

    result = run(supervised, engine)
    assert result is not None
    return result


def timed_call(engine: Engine, fn: Callable[..., Awaitable[Any]], *args: Any, request: int | None = 1) -> tuple[Any, int]:
    """One ``engine.timed`` call of *fn* as layer ``l.sys`` handling ``dump_write``."""
    meter = CpuMeter()
    return in_layer(engine, meter, lambda: engine.timed(meter, "l.sys", "dump_write", request, fn, *args))


def raised(engine: Engine, fn: Callable[..., Awaitable[Any]], *args: Any) -> BaseException:
    """What one timed call of *fn* raised (it must raise)."""
    meter = CpuMeter()

    async def body() -> BaseException:
        try:
            await engine.timed(meter, "l.sys", "dump_write", 1, fn, *args)
        except Exception as exc:
            return exc
        raise AssertionError("the call returned")

    return in_layer(engine, meter, body)


class TestSpend:
    def test_spend_outside_a_layer_is_an_error(self) -> None:
        """spend() needs a layer's meter; outside one it says so."""
        with pytest.raises(RuntimeError, match="outside a simulated layer"):
            spend(10)

    def test_spend_rejects_bad_values(self) -> None:
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


class TestTimed:
    def test_timed_counts_spent_and_awaited_time(self) -> None:
        """A timed call's duration is what it spent plus the virtual time it awaited."""

        async def work() -> str:
            spend(500)
            await trio.sleep(0.000_002)
            return "ok"

        assert timed_call(Engine(), work) == ("ok", 2500)

    def test_timed_call_that_never_awaits_costs_exactly_what_it_spent(self) -> None:
        """A callback that finishes without yielding to trio is charged its spend(), nothing else."""
        calls: list[int] = []

        async def work(n: int) -> int:
            calls.append(n)
            spend(n)
            return n * 2

        assert timed_call(Engine(), work, 700) == (1400, 700)
        assert calls == [700]

    def test_timed_reports_what_the_call_raised_and_how_long_it_ran(self) -> None:
        """An exception, before or after an await, comes back as CallFailed with the time spent so far."""

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

        out = []
        for fn in (fails_at_once, fails_after_sleeping, attribute_error):
            exc = raised(Engine(), fn)
            assert isinstance(exc, CallFailed)
            out.append((repr(exc.exc), exc.dur_ns))
        assert out == [
            ("ValueError('boom')", 40),
            ("KeyError('late')", 1040),
            ("AttributeError(\"'NoneType' object has no attribute 'missing'\")", 40),
        ]

    def test_timed_rejects_a_plain_function_clearly(self) -> None:
        """A callback written as a plain def (not async def) fails with a message that says so."""

        def plain() -> int:
            return 0

        def generator():  # type: ignore[no-untyped-def]
            yield 0

        out = []
        for fn in (plain, generator):
            exc = raised(Engine(), fn)  # type: ignore[arg-type]
            assert isinstance(exc, CallFailed)
            out.append(str(exc.exc).split(" object ")[0])
        assert out == [
            "callbacks must be coroutine functions (async def); got a plain function returning 0",
            "callbacks must be coroutine functions (async def); got a plain function returning <generator",
        ]

    def test_timed_awaits_other_awaitables_too(self) -> None:
        """A callback returning an awaitable that is not a coroutine (a wrapper object) is awaited and timed."""

        async def inner() -> str:
            spend(30)
            await trio.sleep(0.000_001)
            return "done"

        class Wrapper:
            def __await__(self):  # type: ignore[no-untyped-def]
                return inner().__await__()

        assert timed_call(Engine(), Wrapper) == ("done", 1030)  # type: ignore[arg-type]

    def test_a_suspended_timed_call_can_be_cancelled(self) -> None:
        """trio's Cancelled reaches a callback waiting inside trio, and propagates out of timed()."""
        engine = Engine()
        meter = CpuMeter()
        cleaned: list[str] = []

        async def waits() -> None:
            try:
                await trio.sleep_forever()
            finally:
                cleaned.append("finally ran")

        async def body() -> float:
            with trio.move_on_after(0.5):
                await engine.timed(meter, "layer", "event", 1, waits)
            return trio.current_time()

        assert in_layer(engine, meter, body) == 0.5
        assert cleaned == ["finally ran"]


class TestPluginExceptions:
    @pytest.mark.parametrize("exc", [SystemExit(3), KeyboardInterrupt(), GeneratorExit(), BaseException("bare")])
    def test_a_base_exception_from_plugin_code_is_a_call_failure(self, exc: BaseException) -> None:
        """SystemExit, KeyboardInterrupt, GeneratorExit or a bare BaseException from a callback is its own failure."""

        async def callback() -> None:
            spend(7)
            raise exc

        failed = raised(Engine(), callback)
        assert isinstance(failed, CallFailed)
        assert (failed.exc, failed.dur_ns) == (exc, 7)

    def test_a_base_exception_after_an_await_is_a_call_failure_too(self) -> None:
        """The slow path (a callback that awaited first) maps a SystemExit the same way."""

        async def callback() -> None:
            await trio.sleep(0.000_001)
            raise SystemExit(4)

        failed = raised(Engine(), callback)
        assert isinstance(failed, CallFailed)
        assert str(failed) == "SystemExit: 4"

    def test_a_keyboard_interrupt_during_a_real_ctrl_c_propagates(self) -> None:
        """Once a real SIGINT arrived (engine.interrupted), a KeyboardInterrupt in plugin code is the user's: it propagates."""
        engine = Engine()

        async def callback() -> None:
            engine.interrupted = True  # what the run's SIGINT handler records
            raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            timed_call(engine, callback)

    def test_a_plain_function_raising_system_exit_is_a_call_failure(self) -> None:
        """call_sync (DriverEntry, declarations) maps a SystemExit to CallFailed as well."""
        engine = Engine()

        def driver_entry() -> int:
            raise SystemExit(9)

        async def body() -> BaseException:
            try:
                engine.call_sync(CpuMeter(), "l.sys", "driver_entry", driver_entry)
            except CallFailed as exc:
                return exc
            raise AssertionError("returned")  # pragma: no cover

        assert str(in_layer(engine, CpuMeter(), body)) == "SystemExit: 9"


class TestWatchdog:
    def test_an_await_that_never_returns_is_hung_at_the_period(self) -> None:
        """A call that never returns is cut at start + watchdog: the layer, event and request are named."""
        failure = raised(Engine(watchdog_ns=SECOND), trio.sleep_forever)
        assert isinstance(failure, WatchdogExpired)
        assert (failure.layer, failure.event, failure.request, failure.waited_ns) == ("l.sys", "dump_write", 1, SECOND)
        assert str(failure) == (
            "l.sys did not return from dump_write on request #1 within the watchdog period (1 s of simulated time); "
            "on Windows the machine would hang here"
        )

    def test_spending_more_than_the_period_is_hung(self) -> None:
        """CPU time charged with spend() counts: 2 min spent under a 1 s watchdog is a hang, cut at 1 s."""

        async def spends() -> None:
            spend(120 * SECOND)

        failure = raised(Engine(watchdog_ns=SECOND), spends)
        assert isinstance(failure, WatchdogExpired)
        assert failure.waited_ns == SECOND
        assert "(1 s of simulated time; it charged 120 s)" in str(failure)

    @pytest.mark.parametrize(
        ("spent", "slept", "hung"),
        [
            (SECOND - 1, 0, False),
            (SECOND, 0, True),
            (0, SECOND - 1, False),
            (0, SECOND, True),
            (SECOND // 2, SECOND // 2, True),
            (SECOND // 2, SECOND // 2 - 1, False),
        ],
    )
    def test_a_call_of_exactly_the_period_is_hung(self, spent: int, slept: int, hung: bool) -> None:
        """The rule at the deadline: a call lasting the watchdog period or longer is hung; 1 ns less is not."""

        async def call() -> str:
            spend(spent)
            if slept:
                await trio.sleep(slept / SECOND)
            return "back"

        engine = Engine(watchdog_ns=SECOND)
        if hung:
            failure = raised(engine, call)
            assert isinstance(failure, WatchdogExpired)
            assert failure.waited_ns == SECOND
        else:
            assert timed_call(engine, call) == ("back", spent + slept)

    def test_long_call_under_the_watchdog_is_fine(self) -> None:
        """A call shorter than the watchdog period completes normally."""
        assert timed_call(Engine(watchdog_ns=1_000_000), trio.sleep, 0.000_999) == (None, 999_000)

    def test_watchdog_reports_a_deadlock(self) -> None:
        """When every task waits on another and no call is running, the run ends as a deadlock."""
        engine = Engine(watchdog_ns=10)
        engine.describe_state = lambda: "everyone waits"

        async def main() -> None:
            _send, receive = trio.open_memory_channel[int](0)
            await receive.receive()

        async def supervised() -> None:
            await engine.supervise(main)

        run(supervised, engine)
        assert engine.failure is not None
        assert engine.failure.layer is None
        assert str(engine.failure) == "deadlock: every layer is waiting and none can proceed; everyone waits"

    def test_supervise_needs_the_engines_clock(self) -> None:
        """Supervising under another clock is a programming error, said plainly."""
        engine = Engine()

        async def supervised() -> None:
            await engine.supervise(trio.lowlevel.checkpoint)

        with pytest.raises(RuntimeError, match="engine's clock"):
            run(supervised)


class TestClock:
    def test_trio_time_inside_a_call_is_the_simulated_time(self) -> None:
        """trio.current_time() and now_ns() in a call read its start plus what it spent and awaited."""
        engine = Engine()
        engine.now_ns = 10_000_000
        seen: list[tuple[float, int]] = []

        async def call() -> None:
            seen.append((trio.current_time(), now_ns()))
            spend(1_500)
            seen.append((trio.current_time(), now_ns()))
            await trio.sleep(0.000_002)
            seen.append((trio.current_time(), now_ns()))

        assert timed_call(engine, call) == (None, 3_500)
        assert seen == [(0.01, 10_000_000), (0.0100015, 10_001_500), (0.0100035, 10_003_500)]

    def test_reading_the_clock_in_a_pipelined_call_spoils_the_attempt(self) -> None:
        """In pipelined mode a write's time is not known while filters run: reading it ends the attempt."""
        engine = Engine()

        async def call() -> None:
            engine.pipelined = True
            trio.current_time()

        failed = raised(engine, call)
        assert isinstance(failed, CallFailed)
        assert isinstance(failed.exc, SpeculationFailed)
        assert engine.spoiled == "a filter read the simulated time while writes were in flight"

    def test_now_ns_outside_a_simulation_is_an_error(self) -> None:
        """now_ns() has no meaning outside a run."""
        with pytest.raises(RuntimeError, match="outside a simulation"):
            now_ns()


@pytest.mark.timeout(30)
class TestWallClockGuard:
    def test_a_busy_loop_is_stopped(self) -> None:
        """A callback spinning in Python is stopped after about wall_clock_limit of real time."""

        async def spins() -> None:
            while True:
                pass

        t0 = time.monotonic()
        stopped = raised(Engine(wall_clock_limit_ns=200_000_000), spins)
        assert isinstance(stopped, CallStopped)
        assert 0.2 <= time.monotonic() - t0 < 5
        assert str(stopped).startswith("l.sys ran dump_write on request #1 for more than 200 ms of real time")

    def test_an_endless_await_loop_at_one_instant_is_stopped(self) -> None:
        """A callback that checkpoints forever (no simulated time passes) is stopped too."""

        async def loops() -> None:
            while True:
                await trio.lowlevel.checkpoint()

        assert isinstance(raised(Engine(wall_clock_limit_ns=200_000_000), loops), CallStopped)

    def test_a_loop_that_catches_the_stop_is_still_stopped(self) -> None:
        """Catching BaseException around the loop and returning does not save the call."""

        async def stubborn() -> int:
            try:
                while True:
                    pass
            except BaseException:
                return 0

        assert isinstance(raised(Engine(wall_clock_limit_ns=200_000_000), stubborn), CallStopped)

    def test_the_guard_changes_nothing_it_does_not_stop(self) -> None:
        """A call the guard watches but does not stop gives the same result and duration as without it."""

        async def work() -> str:
            spend(123)
            await trio.sleep(0.000_004)
            return "same"

        assert timed_call(Engine(wall_clock_limit_ns=SECOND), work) == timed_call(Engine(), work) == ("same", 4_123)


class EdgeFilter:
    """Builds filters that end a call exactly at, or 1 ns before, the watchdog deadline."""

    @staticmethod
    def make(spent: int, slept_ns: int, callback: str = "dump_write") -> type[Any]:
        from stacksim import DumpFilter

        async def call(self: Any, *args: Any) -> int:
            spend(spent)
            if slept_ns:
                await trio.sleep(slept_ns / SECOND)
            return 0

        return type("Edge", (DumpFilter,), {"service_name": "edge.sys", callback: call})


EDGE_CASES = {
    "sleep exactly the watchdog": (0, SECOND, "dump_write"),
    "spend exactly the watchdog": (SECOND, 0, "dump_write"),
    "half spent, half slept": (SECOND // 2, SECOND // 2, "dump_write"),
    "sleep 1 ns less": (0, SECOND - 1, "dump_write"),
    "dump_start sleeps exactly the watchdog": (0, SECOND, "dump_start"),
    "dump_finish sleeps exactly the watchdog": (0, SECOND, "dump_finish"),
}


@pytest.mark.parametrize("case", list(EDGE_CASES))
def test_the_deadline_edge_is_byte_identical_in_every_run(case: str) -> None:
    """A call ending exactly at the watchdog deadline gives the same result JSON and trace bytes in 50 separate trio runs."""
    import io
    import json

    from conftest import make_scenario

    from stacksim import FilterCatalog, JsonlTrace, simulate

    spent, slept, callback = EDGE_CASES[case]
    catalog = FilterCatalog()
    catalog.add(EdgeFilter.make(spent, slept, callback), "test")
    s = make_scenario(catalog, registry={"DumpFilters": ["edge.sys"]}, engine={"watchdog": "1 s"})
    runner = pytest.importorskip("trio._core._run")
    rng = getattr(runner, "_r", None)  # trio's scheduler RNG (private): vary the wake order on purpose
    outputs = set()
    for i in range(50):
        if rng is not None:
            rng.seed(i)
        text = io.StringIO()
        result = simulate(s, catalog, trace=JsonlTrace(text))
        outputs.add((json.dumps(result.as_dict()), text.getvalue()))
    assert len(outputs) == 1
    status = json.loads(next(iter(outputs))[0])["status"]
    assert status == ("ok" if case == "sleep 1 ns less" else "hung")


def test_a_run_the_guard_does_not_stop_is_byte_identical_to_one_without_it() -> None:
    """The wall-clock guard is off the simulated path: the result JSON and the trace are the same bytes with it on or off."""
    import io
    import json

    from conftest import make_scenario

    from stacksim import FilterCatalog, JsonlTrace, simulate

    catalog = FilterCatalog()
    outputs = []
    for limit in ("10 s", 0):
        s = make_scenario(
            catalog,
            registry={"CrashDumpEnabled": 1, "DumpFilters": ["dumpfve.sys", "delayflt.sys"]},
            memory={"ram": "4 MiB"},
            engine={"wall_clock_limit": limit},
        )
        text = io.StringIO()
        result = simulate(s, catalog, trace=JsonlTrace(text)).as_dict()
        del result["replay"]["scenario"]  # the scenario as written records the limit itself
        outputs.append((json.dumps(result), text.getvalue()))
    assert outputs[0] == outputs[1]
