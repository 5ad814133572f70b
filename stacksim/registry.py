r"""
``HKLM\SYSTEM\CurrentControlSet\Control\CrashControl``: the values the dump path reads.

Value names are the Windows ones, in the scenario's ``[registry]`` table:

* ``DumpFilters`` (REG_MULTI_SZ): service names of the crash dump filters, loaded in this order
  into *both* the crash dump stack and the hibernation stack [DOC S3, S6b]. Default
  ``["dumpfve.sys"]``, the value on a stock system [ANEC S30, S31]. Call order among several
  filters is not documented; stacksim assumes registry order, each filter seeing the previous
  one's output (fact sheet §2 [INF]).
* ``CrashDumpEnabled`` (REG_DWORD): 0 none, 1 complete, 2 kernel, 3 small, 7 automatic [DOC S39-S41].
* ``FilterPages`` (REG_DWORD): with ``CrashDumpEnabled = 1``, 1 selects an active memory dump [DOC S39].
* ``DedicatedDumpFile`` (REG_SZ): when set, crash dumps go to that file instead of the page
  file [DOC S36].

A REG_DWORD is an integer: ``CrashDumpEnabled = true`` is refused, not read as 1.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from stacksim.units import describe

__all__ = ["MAX_DUMP_FILTERS", "CrashControl"]

MAX_DUMP_FILTERS = 64
"""Most DumpFilters entries (a guard: Windows documents no limit; ASSUMPTION)."""


class CrashControl(BaseModel):
    """The CrashControl values of one scenario."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, populate_by_name=True)

    dump_filters: tuple[str, ...] = Field(default=("dumpfve.sys",), alias="DumpFilters", max_length=MAX_DUMP_FILTERS)
    crash_dump_enabled: Literal[0, 1, 2, 3, 7] = Field(default=7, alias="CrashDumpEnabled")
    filter_pages: Literal[0, 1] = Field(default=0, alias="FilterPages")
    dedicated_dump_file: str | None = Field(default=None, alias="DedicatedDumpFile")

    @field_validator("crash_dump_enabled", "filter_pages", mode="before")
    @classmethod
    def _dword(cls, value: object) -> object:
        if isinstance(value, bool):
            raise ValueError(f"{describe(value)} is a boolean; a REG_DWORD value is an integer")
        if isinstance(value, int) and not 0 <= value < 2**32:
            raise ValueError(f"{describe(value)} is not a REG_DWORD (an integer from 0 to 4,294,967,295)")
        return value

    @field_validator("dump_filters", mode="before")
    @classmethod
    def _multi_sz(cls, value: object) -> object:
        if isinstance(value, list):
            value = tuple(value)
        if isinstance(value, tuple) and len(value) <= MAX_DUMP_FILTERS:
            names = [v for v in value if isinstance(v, str)]
            if len(names) == len(value):
                if any(not n.strip() for n in names):
                    raise ValueError("an empty string is not a filter service name")
                dupes = sorted({n for n in names if names.count(n) > 1})
                if dupes:
                    raise ValueError(f"lists {', '.join(dupes)} more than once; each filter is loaded once")
        return value
