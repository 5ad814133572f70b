"""
``event = "hibernate-resume"``: hibernate, power off, then resume from the hiberfile.

The hibernation is :mod:`stacksim.events.hibernate`'s; then the resume loader reads the image
back through the same hibernation stack and unloads it (:mod:`stacksim.resume`). The result has
both: the hibernation as dump time and layers, the resume in its ``resume`` section.
"""

from __future__ import annotations

from stacksim.events._dump import write_dump
from stacksim.events._run import EventRun
from stacksim.machine import Machine
from stacksim.resume import resume

__all__ = ["run"]


async def run(machine: Machine) -> EventRun:
    """Hibernate as ``event = "hibernate"`` does, then resume from what was written."""
    driver = await write_dump(machine)
    return EventRun(driver, resume=await resume(machine, driver))
