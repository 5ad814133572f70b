"""
``event = "hibernate"``: the system hibernates and the hibernation stack writes the hiberfile.

The filters of the hibernation stack are loaded when hibernation starts (their DriverEntry sees
``DumpType`` hibernation) [DOC S4, S10]; then the ``hiber_`` port writes the hiberfile image
through every filter's Dump_Write as a crash dump would. A hiberfile too small for the image is
never truncated: it is bug check 0xA0 [DOC S16].
"""

from __future__ import annotations

from stacksim.events._dump import write_dump
from stacksim.events._run import EventRun
from stacksim.machine import Machine

__all__ = ["run"]


async def run(machine: Machine) -> EventRun:
    """Boot, start hibernation at the scenario's time, load the hibernation stack, write the hiberfile."""
    return EventRun(await write_dump(machine))
