"""
``delayflt.sys`` -- a filter that only costs time: model any filter by its cost.

Use it to ask "what if a filter took this long?": a fixed cost per call plus a cost per byte
on every write (and read), and fixed costs at ``dump_start`` and ``dump_finish``. It does not
touch the data. Position in the chain: anywhere.

``critical`` sets ``DUMP_FILTER_CRITICAL``; ``read`` declares read support, which in ntdddump is
the *same bit* (fact sheet §1.5), so a read-capable delayflt is critical too.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict

from stacksim._engine import spend
from stacksim.filters._base import (
    DUMP_FILTER_CRITICAL,
    DUMP_FILTER_FLAG_SYSTEM_SUPPORT_READ,
    DumpFilter,
    FilterExtension,
    FilterInitializationData,
)
from stacksim.filters._params import Nanoseconds, PicosecondsPerByte
from stacksim.requests import DumpRequest, NtStatus
from stacksim.units import bytes_time_ns

__all__ = ["DelayFlt"]


class DelayFltConfig(BaseModel):
    """Parameters of ``[filters."delayflt.sys"]``."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    per_call: Nanoseconds = 0
    """Fixed cost of each Dump_Write / Dump_Read call."""
    per_byte: PicosecondsPerByte = 0
    """Cost per byte written or read (ps/B internally; write e.g. "0.5 ns")."""
    start: Nanoseconds = 0
    """Cost of Dump_Start."""
    finish: Nanoseconds = 0
    """Cost of Dump_Finish."""
    critical: bool = False
    """Set DUMP_FILTER_CRITICAL."""
    read: bool = False
    """Declare read support (version 2 + read flag + Dump_Read)."""


class DelayFlt(DumpFilter):
    """A pure-cost filter (see module docstring)."""

    service_name: ClassVar[str] = "delayflt.sys"
    Config: ClassVar[type[BaseModel]] = DelayFltConfig
    config: DelayFltConfig

    def driver_entry(self, extension: FilterExtension, init: FilterInitializationData) -> int:
        """Register all callbacks; set the flags the configuration asks for."""
        super().driver_entry(extension, init)
        c = self.config
        init.flags = (DUMP_FILTER_CRITICAL if c.critical else 0) | (DUMP_FILTER_FLAG_SYSTEM_SUPPORT_READ if c.read else 0)
        return NtStatus.SUCCESS

    async def dump_start(self, extension: FilterExtension) -> int:
        """Spend ``start``."""
        spend(self.config.start)
        return NtStatus.SUCCESS

    def write_cost(self, extension: FilterExtension | None, length: int) -> int:
        """``per_call + ⌈length × per_byte⌉``."""
        return self.config.per_call + bytes_time_ns(length, self.config.per_byte)

    async def dump_write(self, extension: FilterExtension, request: DumpRequest) -> int:
        """Spend ``per_call + length × per_byte``."""
        spend(self.write_cost(extension, request.length))
        return NtStatus.SUCCESS

    async def dump_read(self, extension: FilterExtension, request: DumpRequest) -> int:
        """Spend ``per_call + length × per_byte``."""
        c = self.config
        spend(c.per_call + bytes_time_ns(request.length, c.per_byte))
        return NtStatus.SUCCESS

    async def dump_finish(self, extension: FilterExtension) -> int:
        """Spend ``finish``."""
        spend(self.config.finish)
        return NtStatus.SUCCESS
