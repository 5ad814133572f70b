"""
Events: what a run does with the machine, one short script per ``[scenario] event``.

Each script takes an assembled :class:`~stacksim.machine.Machine`, drives it under the engine's
virtual clock, and returns an :class:`EventRun` -- the dump driver that ran and the normal
stack's I/O, whichever the event has -- for the report (:mod:`stacksim.report`). To find what
happens in a run of some event, read its module:

* :mod:`stacksim.events.crash` -- a bugcheck: the crash dump stack writes the dump;
* :mod:`stacksim.events.hibernate` -- hibernation: the hibernation stack is loaded and writes the
  hiberfile;
* :mod:`stacksim.events.hibernate_resume` -- hibernation, then resume: the image is read back
  through the hibernation stack (``dump_read``) and the stack unloaded;
* :mod:`stacksim.events.io` -- ``[workload]`` through the normal storage stack, nothing else;
* :mod:`stacksim.events.crash_during_io` -- the workload runs, the bugcheck freezes the normal
  stack mid-flight, the dump stack takes over.

The dump path they share is :func:`stacksim.events._dump.write_dump`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Final

from stacksim.events import crash, crash_during_io, hibernate, hibernate_resume, io
from stacksim.events._run import EventRun
from stacksim.machine import Machine

__all__ = ["EVENTS", "Event", "EventRun"]

Event = Callable[[Machine], Awaitable[EventRun]]
"""An event script: drives the machine, returns what ran."""

EVENTS: Final[dict[str, Event]] = {
    "crash": crash.run,
    "hibernate": hibernate.run,
    "hibernate-resume": hibernate_resume.run,
    "io": io.run,
    "crash-during-io": crash_during_io.run,
}
"""The script for each ``[scenario] event``."""
