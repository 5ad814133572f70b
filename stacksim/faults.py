"""
Fault plans: what goes wrong, where and when, and how each layer applies it.

A scenario's ``[[faults]]`` tables become one :class:`FaultPlan`. Each fault has one documented
outcome (``docs/reference/faults.md``):

* **filter_raise** -- the callback raises: in crash mode an exception at HIGH_LEVEL is a nested
  bugcheck, so the dump is aborted (status ``filter_crashed``) [ASSUMPTION from §3.4].
* **filter_hang** -- the callback never returns: Windows hangs; stacksim's watchdog ends the run
  (status ``hung``) naming the filter, callback and request.
* **filter_error_status** -- the callback returns an error: recorded; the write still goes to disk
  ("returning an error does not prevent data from being written to disk" [SRC S24]).
* **slow_filter** -- every call takes ``extra`` longer.
* **device_error** -- the device completes a write with an error status: crashdmp re-issues it
  ``[dump_driver] write_retries`` times (default 0; no documented policy), then gives up
  (status ``io_error``); the dump on disk is incomplete.
* **device_timeout** -- the device never completes the write: the dump port polls for
  ``[dump_port] timeout`` and fails it (retries as above; status ``io_timeout``). A device that is
  merely slower than the timeout is failed the same way, without any fault.
* **power_loss** -- power fails ``at`` after the bugcheck: nothing after that instant happens;
  the result says how many bytes had completed and whether the header (for a hiberfile: the
  commit marker, written last) made it (status ``power_lost``).

A fault that never fires (a request past the last write, an offset outside the file or past the
dump, a power loss after the run ended) is reported in the result's warnings.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["DeviceFault", "FaultPlan", "FilterFault"]


@dataclass(frozen=True, slots=True)
class FilterFault:
    """A fault in one filter: ``raise``, ``hang``, ``error_status`` or ``slow``."""

    action: str
    callback: str  # a callback name, or "any" (slow only)
    at_request: int | None = None
    status: int = 0xC0000001
    dump_type: str = "any"
    extra_ns: int = 0

    def applies(self, callback: str, request: int | None, dump_type: str) -> bool:
        """Whether this fault hits *callback* on *request* in the stack of *dump_type*."""
        if self.callback not in ("any", callback):
            return False
        if self.dump_type not in ("any", dump_type):
            return False
        return self.at_request is None or request is None or request == self.at_request

    @property
    def per_request(self) -> bool:
        """True when the fault hits one write only (so batched mode can split around it)."""
        return self.at_request is not None


@dataclass(frozen=True, slots=True)
class DeviceFault:
    """A write the device fails (``error``) or never completes (``timeout``)."""

    action: str
    at_request: int | None = None
    at_offset: int | None = None
    persistent: bool = True
    status: int = 0xC0000185

    def hits(self, request: int, offset: int, length: int, attempt: int) -> bool:
        """Whether this fault hits *attempt* (0 = first) of the write *request* at [offset, +length)."""
        if not self.persistent and attempt > 0:
            return False
        if self.at_request is not None:
            return request == self.at_request
        assert self.at_offset is not None
        return offset <= self.at_offset < offset + length


@dataclass(slots=True)
class FaultPlan:
    """Every fault of a run, by where it applies."""

    filters: dict[str, list[FilterFault]] = field(default_factory=dict)
    device: list[DeviceFault] = field(default_factory=list)
    power_loss_after_ns: int | None = None

    def special_requests(self) -> set[int]:
        """Request numbers that must travel alone (batched mode splits runs around them)."""
        out = {f.at_request for faults in self.filters.values() for f in faults if f.at_request is not None}
        out |= {f.at_request for f in self.device if f.at_request is not None}
        return out
