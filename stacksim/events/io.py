"""
``event = "io"``: the applications' ``[workload]`` runs through the normal storage stack, and nothing else.

Requests travel application → ntfs.sys → volsnap.sys → fvevol.sys → volmgr.sys → partmgr.sys →
disk.sys → storport.sys → the miniport → the device, many in flight (``queue_depth``), and their
completions come back up through an interrupt and a DPC (:mod:`stacksim.normal_stack`). No dump
is written: this is the path a crash dump bypasses, modelled by itself.
"""

from __future__ import annotations

from stacksim.events._normal import run_normal
from stacksim.events._run import EventRun
from stacksim.machine import Machine

__all__ = ["run"]


async def run(machine: Machine) -> EventRun:
    """Run the workload to its end (``requests`` or ``duration``)."""
    return EventRun(None, await run_normal(machine))
