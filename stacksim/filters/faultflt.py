"""
``faultflt.sys`` -- a filter that misbehaves on demand, for fault and teaching scenarios.

One ``action`` per scenario, applied in ``callback`` (for ``dump_write``/``dump_read``, on request
number ``at_request``) and only in the stack named by ``dump_type`` (``any`` by default) --
every action honours both: ``slow`` slows every call of ``callback`` in that stack, the
DriverEntry actions hit DriverEntry of that stack (``callback`` does not apply to them and may not
be set), and the actions that change a request need one (``dump_write`` or ``dump_read``):

============================  =================================================================
``action``                    what the filter does, and what the simulator reports
============================  =================================================================
``none``                      nothing (a well-behaved pass-through filter)
``fail_driver_entry``         DriverEntry returns ``status`` -- after setting its flags, as
                              DiskCryptor does; with ``critical = true`` the stack fails
``raise_driver_entry``        DriverEntry raises: counted as a failed DriverEntry
``fail``                      the callback returns ``status``: recorded, the dump goes on
``raise``                     the callback raises: a fault in crash mode, the dump is aborted
``hang``                      the callback never returns: the watchdog ends the run
``slow``                      every call of ``callback`` takes ``extra`` longer (not one request)
``change_length``             the request's length halved: a violation
``change_offset``             Dump_Write moves the request by ``offset_delta``: honoured, warned;
                              Dump_Read may not change it: a violation, resume stops
``write_caller_buffer``       Dump_Write writes into the caller's pages: a violation; Dump_Read
                              writes into the pages just read, as it may (a no-op here)
============================  =================================================================

``callback = "dump_read"`` declares read support (version 2 and the read flag, which is the
bit of ``DUMP_FILTER_CRITICAL``: such a filter is critical too), so resume calls it.

Position in the chain: wherever the scenario wants the fault.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import trio
from pydantic import BaseModel, ConfigDict, Field, model_validator

from stacksim._engine import spend
from stacksim.filters._base import DUMP_FILTER_CRITICAL, DumpFilter, DumpType, FilterExtension, FilterInitializationData
from stacksim.filters._params import Bytes, Nanoseconds
from stacksim.requests import DumpRequest, NtStatus

__all__ = ["FaultFlt"]

Action = Literal[
    "none",
    "fail_driver_entry",
    "raise_driver_entry",
    "fail",
    "raise",
    "hang",
    "slow",
    "change_length",
    "change_offset",
    "write_caller_buffer",
]


class FaultFltConfig(BaseModel):
    """Parameters of ``[filters."faultflt.sys"]``."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    action: Action = "none"
    callback: Literal["dump_start", "dump_write", "dump_read", "dump_finish", "dump_unload"] = "dump_write"
    at_request: int = Field(default=1, ge=1, le=2**63 - 1)
    """Request number (1 = the first write) the action applies to, for write/read callbacks."""
    dump_type: Literal["any", "crashdump", "hibernation"] = "any"
    """Misbehave only in this stack."""
    critical: bool = False
    """Set DUMP_FILTER_CRITICAL."""
    status: int = Field(default=int(NtStatus.UNSUCCESSFUL), ge=0, le=0xFFFFFFFF)
    """NTSTATUS returned by ``fail`` / ``fail_driver_entry``."""
    extra: Nanoseconds = 50_000
    """Added time per call for ``slow``."""
    offset_delta: Bytes = 4096
    """How far ``change_offset`` moves a request."""

    @model_validator(mode="after")
    def _callback_fits_action(self) -> FaultFltConfig:
        if self.action in ("fail_driver_entry", "raise_driver_entry") and "callback" in self.model_fields_set:
            raise ValueError(f"callback does not apply to action {self.action!r}: it always hits driver_entry")
        if self.action in ("change_length", "change_offset", "write_caller_buffer") and self.callback not in (
            "dump_write",
            "dump_read",
        ):
            raise ValueError(f"action {self.action!r} changes a request: callback must be dump_write or dump_read")
        return self


class FaultFlt(DumpFilter):
    """Misbehaves on demand (see module docstring)."""

    service_name: ClassVar[str] = "faultflt.sys"
    Config: ClassVar[type[BaseModel]] = FaultFltConfig
    config: FaultFltConfig

    def _armed(self, extension: FilterExtension) -> bool:
        want = self.config.dump_type
        return want == "any" or DumpType[want.upper()] == extension.dump_type

    def driver_entry(self, extension: FilterExtension, init: FilterInitializationData) -> int:
        """Set flags first (like DiskCryptor), then fail or raise if asked to."""
        super().driver_entry(extension, init)
        c = self.config
        # callback = "dump_read" needs read support: its flag is DUMP_FILTER_CRITICAL's bit (fact sheet §1.5)
        init.flags = DUMP_FILTER_CRITICAL if c.critical or c.callback == "dump_read" else 0
        if self._armed(extension):
            if c.action == "fail_driver_entry":
                return c.status
            if c.action == "raise_driver_entry":
                raise RuntimeError("faultflt.sys: injected failure in driver_entry")
        return NtStatus.SUCCESS

    def write_cost(self, extension: FilterExtension, length: int) -> int:
        """``extra`` when ``slow`` hits dump_write in this stack, else 0: only :meth:`special_requests` misbehave."""
        c = self.config
        return c.extra if c.action == "slow" and c.callback == "dump_write" and self._armed(extension) else 0

    def special_requests(self, extension: FilterExtension) -> frozenset[int]:
        """``at_request``, when the action applies to ``dump_write`` in this stack."""
        c = self.config
        if c.callback == "dump_write" and c.action not in ("none", "slow") and self._armed(extension):
            return frozenset({c.at_request})
        return frozenset()

    async def _misbehave(self, callback: str, extension: FilterExtension, request: DumpRequest | None) -> int:
        c = self.config
        if callback != c.callback or not self._armed(extension):
            return NtStatus.SUCCESS
        if c.action == "slow":  # every call of the callback, whatever the request
            spend(c.extra)
            return NtStatus.SUCCESS
        if request is not None and request.number != c.at_request:
            return NtStatus.SUCCESS
        if c.action == "fail":
            return c.status
        if c.action == "raise":
            raise RuntimeError(f"faultflt.sys: injected exception in {callback}")
        if c.action == "hang":
            await trio.sleep_forever()
        if request is not None:
            if c.action == "change_length":
                request.mdl.length //= 2
            elif c.action == "change_offset":
                request.offset += c.offset_delta
            elif c.action == "write_caller_buffer":
                request.mdl.write(0, length=min(512, request.length))
        return NtStatus.SUCCESS

    async def dump_start(self, extension: FilterExtension) -> int:
        """Misbehave if configured for ``dump_start``."""
        return await self._misbehave("dump_start", extension, None)

    async def dump_write(self, extension: FilterExtension, request: DumpRequest) -> int:
        """Misbehave if configured for ``dump_write`` on this request."""
        return await self._misbehave("dump_write", extension, request)

    async def dump_read(self, extension: FilterExtension, request: DumpRequest) -> int:
        """Misbehave if configured for ``dump_read`` on this request."""
        return await self._misbehave("dump_read", extension, request)

    async def dump_finish(self, extension: FilterExtension) -> int:
        """Misbehave if configured for ``dump_finish``."""
        return await self._misbehave("dump_finish", extension, None)

    async def dump_unload(self, extension: FilterExtension) -> int:
        """Misbehave if configured for ``dump_unload``."""
        return await self._misbehave("dump_unload", extension, None)
