"""
``event = "crash"``: the system bug-checks and the crash dump stack writes the dump.

At ``[scenario] event_at`` crashdmp takes over (fact sheet: KeBugCheck2 → IoWriteCrashDump):
it checks the dump context saved at boot, calls each filter's Dump_Start, initialises the
``dump_`` port (an adapter reset), writes the header and the pages MaxPagesPerWrite at a time
through every filter's Dump_Write to the page-file (or dedicated dump file) runs, calls
Dump_Finish and flushes the disk's cache [DOC S6, S13; RE S22]. The crash dump stack was loaded
at boot (``CrashDumpEnabled``); its filters' DriverEntry ran then.
"""

from __future__ import annotations

from stacksim.events._dump import write_dump
from stacksim.events._run import EventRun
from stacksim.machine import Machine

__all__ = ["run"]


async def run(machine: Machine) -> EventRun:
    """Boot, bug-check at the scenario's time, write the crash dump through the crash dump stack."""
    return EventRun(await write_dump(machine))
