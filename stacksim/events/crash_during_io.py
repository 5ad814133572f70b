"""
``event = "crash-during-io"``: the workload runs, the system bug-checks mid-flight, the dump stack takes over.

1. The ``[workload]`` runs through the normal storage stack (:mod:`stacksim.events.io`).
2. At ``bugcheck_at`` the normal stack is frozen where it stands: no normal-stack layer does
   anything at or after the bugcheck (a tie goes to the bugcheck), every request in flight is
   lost in the layer it was in, and none completes later [RE S22: the normal I/O path is
   "completely disabled"]. The stages stop themselves at the freeze (it is computed from their
   timestamps, :mod:`stacksim._engine.pipeline`, not by cancelling tasks), and the network
   returns only when every stage's task has ended, so none of them outlives the bugcheck.
3. The crash dump stack writes the dump as in :mod:`stacksim.events.crash`. Its dump port resets
   the controller first, so the commands the device held are dropped (INF: storahci's dump-mode
   HwStorFindAdapter does a full HBA reset [SRC S15]; that stornvme's does the same and that the
   runtime commands are lost is inferred, fact sheet §4). The device's write cache keeps what
   the runtime writes put in it (ASSUMPTION: the reset drops queued commands, not cached data).
   In a trace, the freeze is an ``io_freeze`` record at the bugcheck and the reset's
   ``port_init`` names the normal-stack requests it dropped (``docs/reference/trace-format.md``).
"""

from __future__ import annotations

from stacksim.events._dump import write_dump
from stacksim.events._normal import run_normal
from stacksim.events._run import EventRun
from stacksim.machine import Machine

__all__ = ["run"]


async def run(machine: Machine) -> EventRun:
    """Run the workload until the bugcheck freezes it, then write the crash dump."""
    io = await run_normal(machine, freeze_at=machine.scenario.scenario.event_at)  # returns when every stage has stopped
    # what the device held (waiting for a channel or being served) the dump port's reset drops
    assert machine.normal is not None
    device = machine.normal.port.device
    machine.port.reset_drops = [f.index + 1 for f in io.frozen if f.stage == device]
    return EventRun(await write_dump(machine), io)
