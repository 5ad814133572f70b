"""
``event = "crash-during-io"``: the workload runs, the system bug-checks mid-flight, the dump stack takes over.

1. The ``[workload]`` runs through the normal storage stack (:mod:`stacksim.events.io`).
2. At ``bugcheck_at`` the normal stack is frozen where it stands: no normal-stack layer does
   anything at or after the bugcheck (a tie goes to the bugcheck), every request in flight is
   lost in the layer it was in, and none completes later [RE S22: the normal I/O path is
   "completely disabled"]. The stages stop themselves at the freeze (it is computed from their
   timestamps, :mod:`stacksim._engine.pipeline`); their tasks run in a trio cancel scope that is
   cancelled then, so none of them outlives the bugcheck.
3. The crash dump stack writes the dump as in :mod:`stacksim.events.crash`. Its dump port resets
   the controller first, so the commands the device held are dropped [SRC S15; fact sheet §4:
   "controller re-initialised; in-flight runtime I/O lost"]. The device's write cache keeps what
   the runtime writes put in it (ASSUMPTION: the reset drops queued commands, not cached data).
"""

from __future__ import annotations

import trio

from stacksim.events._dump import write_dump
from stacksim.events._run import EventRun
from stacksim.machine import Machine
from stacksim.normal_stack import run_workload

__all__ = ["run"]


async def run(machine: Machine) -> EventRun:
    """Run the workload until the bugcheck freezes it, then write the crash dump."""
    assert machine.normal is not None  # assembled for every event that runs a workload
    s = machine.scenario
    with trio.CancelScope() as normal_stack:
        io = await run_workload(s, machine.normal, freeze_at=s.scenario.event_at)
        normal_stack.cancel()  # the freeze: nothing of the normal stack runs on
    return EventRun(await write_dump(machine), io)
