"""The normal stack's part of a run, both events that drive it share: the workload, and its trace records."""

from __future__ import annotations

from stacksim.machine import Machine
from stacksim.normal_stack import IoResult, run_workload, trace_records
from stacksim.trace import MergingTrace

__all__ = ["run_normal"]


async def run_normal(machine: Machine, *, freeze_at: int | None = None) -> IoResult:
    """
    Run ``[workload]`` through the machine's normal stack (until *freeze_at*, the bugcheck, if given).

    With a trace, the stack's records are computed here, before anything of the dump path runs,
    and handed to the run's :class:`~stacksim.trace.MergingTrace`, which writes each one in its
    place in time among the dump path's records.
    """
    assert machine.normal is not None  # assembled for every event that runs a workload
    s, sink = machine.scenario, machine.trace
    io = await run_workload(s, machine.normal, freeze_at=freeze_at, trace=sink is not None)
    if sink is not None:
        assert isinstance(sink, MergingTrace)  # simulate() wraps the trace of every event that runs a workload
        sink.hold(trace_records(s, machine.normal, io, freeze_at=freeze_at))
        io.trace = []  # held as trace records now
    return io
