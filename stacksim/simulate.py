"""
Run a scenario: assemble the machine, run its event's script, build the report.

:func:`simulate` is the one entry point. It assembles a :class:`~stacksim.machine.Machine` from
the scenario (:mod:`stacksim.machine`), runs the script of the scenario's event on it under the
engine's virtual clock (:mod:`stacksim.events`), and turns what happened into a
:class:`~stacksim.report.RunResult` (:mod:`stacksim.report`). Arrows run one way: this module →
events → machine → stacks → engine.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from stacksim._engine import SpeculationFailed, run
from stacksim._log import PhaseLogger, RunLog, ensure_configured
from stacksim.datamode import DataMode, data_mode_problem
from stacksim.events import EVENTS, EventRun
from stacksim.filters import FilterCatalog
from stacksim.machine import assemble
from stacksim.report import MAX_FAULT_WARNINGS, FilterReport, RunResult, build_result
from stacksim.scenario import Scenario, ScenarioError
from stacksim.trace import MergingTrace, TraceSink

__all__ = ["MAX_FAULT_WARNINGS", "FilterReport", "RunResult", "simulate"]

log = PhaseLogger("stacksim")


def simulate(
    scenario: Scenario,
    catalog: FilterCatalog,
    *,
    trace: TraceSink | None = None,
    batch: bool = True,
    progress: Callable[[int, int], None] | None = None,
    pipeline: bool = True,
    data: DataMode | None = None,
    log_phases: bool = False,
) -> RunResult:
    """
    Run *scenario* in virtual time and return its result. Deterministic for a given scenario.

    With *batch* (the default) a run of identical writes may travel as one message when every
    filter declares its cost; the result is identical to request mode (``batch=False``). A
    *trace* has one record per request, so tracing always runs in request mode (pipelined as
    below: the records of the writes in flight are held and written in the order one write at a
    time writes them, so the trace is the same bytes). *progress*, if
    given, is called as ``progress(bytes written, bytes to write)`` now and then during the
    writes (for a progress bar). The trace of an event that drives the normal stack merges its
    records, computed before the dump runs, into the dump path's (:class:`~stacksim.trace.MergingTrace`).

    Request mode keeps several writes in flight when nothing can fail (pipelined request mode,
    ``docs/explanation/engine.md``); if something does, the run is repeated one write at a
    time, so the result is always that of the one-at-a-time run; the rerun's trace skips the
    records the abandoned attempt wrote already (the records of the writes it completed, which
    are the same). ``pipeline=False`` runs one
    write at a time from the start (for tests and for debugging a filter).

    With *data* the run is in data mode (:mod:`stacksim.datamode`): real bytes through every
    layer onto *data*'s disk image, in request mode (never batched; pipelined as above, with
    the same simulated times); the result's ``data`` says what the leak check found on the
    image. A repeated run starts from an empty image (:meth:`~stacksim.diskimage.DiskImage.reset`),
    so the image is byte for byte that of the run one write at a time.

    Log events of a run reach structlog when its result stands (:class:`~stacksim._log.RunLog`):
    an abandoned attempt logs nothing. With *log_phases* every phase record (DriverEntry,
    Dump_Start, the reset, the flush, the end: :meth:`~stacksim._engine.Engine.phase`) is
    logged too, at info, with the trace's time in ``sim_ns`` (``stacksim run --log-json``).
    """
    if data is not None and (problem := data_mode_problem(scenario)) is not None:
        raise ScenarioError("scenario " + scenario.scenario.name, [problem])
    if not pipeline:
        return _attempt(scenario, catalog, trace, batch, progress, pipeline=False, data=data, log_phases=log_phases)
    if progress is not None:
        progress = _never_backwards(progress)  # a repeated run starts again from zero
    written = _Written()
    try:
        return _attempt(
            scenario, catalog, trace, batch, progress, pipeline=True, data=data, log_phases=log_phases, written=written
        )
    except BaseExceptionGroup as group:
        if group.subgroup(SpeculationFailed) is None:
            raise
        log.debug("run.pipeline_abandoned", reason=str(group.exceptions[0]))
    if data is not None:
        data.image.reset()  # the abandoned attempt's writes, some of which one write at a time may never write
    if trace is not None and written.records:
        # The abandoned attempt wrote the records of the writes it completed: the first records of
        # the run one write at a time, byte for byte. The rerun writes only those that follow.
        trace = _Skipping(trace, written.records)
    return _attempt(scenario, catalog, trace, batch, progress, pipeline=False, data=data, log_phases=log_phases)


class _Written:
    """How many records an attempt handed to the run's trace sink (set when the attempt ends, abandoned or not)."""

    __slots__ = ("records",)

    def __init__(self) -> None:
        self.records = 0


class _Skipping:
    """
    A trace sink that drops the first *skip* records, then passes every record on to *sink*.

    The rerun one write at a time after an abandoned pipelined attempt: that attempt wrote,
    before it met what spoils it, only records of writes that had completed -- each released in
    the order one write at a time writes them (:meth:`stacksim._engine.Engine.release`) -- so
    its records are the rerun's first ones, the same bytes; the trace stays one stream, written once.
    """

    __slots__ = ("_emit", "_skip")

    def __init__(self, sink: TraceSink, skip: int) -> None:
        self._emit = sink.emit
        self._skip = skip

    def emit(self, *values: Any) -> None:
        """Drop the record if the abandoned attempt wrote it already, else pass it on."""
        if self._skip:
            self._skip -= 1
            return
        self._emit(*values)


def _attempt(
    scenario: Scenario,
    catalog: FilterCatalog,
    trace: TraceSink | None,
    batch: bool,
    progress: Callable[[int, int], None] | None,
    *,
    pipeline: bool,
    data: DataMode | None = None,
    log_phases: bool = False,
    written: _Written | None = None,
) -> RunResult:
    """
    One attempt of :func:`simulate`: a fresh machine, its event, its report (and its log, once it stands).

    *written*, if given, is told how many records the attempt handed to *trace*.
    """
    ensure_configured()
    merged = MergingTrace(trace) if trace is not None and scenario.scenario.runs_workload else None
    if merged is not None:
        trace = merged
    machine = assemble(scenario, catalog, trace=trace, batch=batch, pipeline=pipeline, progress=progress, data=data)
    script = EVENTS[scenario.scenario.event]
    run_log = machine.engine.run_log = RunLog(phases=log_phases, live=not pipeline)

    async def main() -> EventRun:
        return await script(machine)

    log.debug("run.start", scenario=scenario.scenario.name, seed=scenario.scenario.seed)
    try:
        try:
            result = build_result(machine, run(main, machine.engine))
        except BaseExceptionGroup as group:
            if group.subgroup(SpeculationFailed) is None:
                run_log.flush()
            raise  # an abandoned attempt logs nothing: the next one logs the same events
        except BaseException:
            run_log.flush()
            raise
        run_log.flush()
    finally:
        if written is not None:  # every record reaches the sink numbered by the engine, or by the merge
            written.records = merged.records if merged is not None else machine.engine.records
        close = getattr(machine.contents, "close", None)
        if close is not None:  # a data-mode hiberfile's compressed body, in a temporary file
            close()
    if merged is not None:
        merged.close()
    log.debug("run.end", scenario=scenario.scenario.name, status=result.status, dump_time_ns=result.dump_time_ns)
    return result


def _never_backwards(progress: Callable[[int, int], None]) -> Callable[[int, int], None]:
    """*progress*, called only when the count passes the highest one reported so far."""
    high = -1

    def report(done: int, total: int) -> None:
        nonlocal high
        if done > high:
            high = done
            progress(done, total)

    return report
