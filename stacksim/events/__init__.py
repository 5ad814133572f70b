"""
Events: what a run does with the machine, one short script per ``[scenario] event``.

Each script takes an assembled :class:`~stacksim.machine.Machine`, drives it under the engine's
virtual clock, and returns the :class:`~stacksim.dump_driver.DumpDriver` whose outcome the report
reads (:mod:`stacksim.report`). To find what happens in a run of some event, read its module:

* :mod:`stacksim.events.crash` -- a bugcheck: the crash dump stack writes the dump;
* :mod:`stacksim.events.hibernate` -- hibernation: the hibernation stack is loaded and writes the
  hiberfile.

Both write through :func:`stacksim.events._dump.write_dump`, the dump path they share.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Final

from stacksim.dump_driver import DumpDriver
from stacksim.events import crash, hibernate
from stacksim.machine import Machine

__all__ = ["EVENTS", "Event"]

Event = Callable[[Machine], Awaitable[DumpDriver]]
"""An event script: drives the machine, returns the dump driver that ran."""

EVENTS: Final[dict[str, Event]] = {
    "crash": crash.run,
    "hibernate": hibernate.run,
}
"""The script for each ``[scenario] event``."""
