"""What an event script hands the report."""

from __future__ import annotations

from dataclasses import dataclass

from stacksim.dump_driver import DumpDriver
from stacksim.normal_stack import IoResult
from stacksim.resume import ResumeResult

__all__ = ["EventRun"]


@dataclass(frozen=True, slots=True)
class EventRun:
    """The dump driver that ran (``None``: the event writes no dump) and the normal stack's I/O (``None``: it ran none)."""

    driver: DumpDriver | None
    io: IoResult | None = None
    resume: ResumeResult | None = None
    """``hibernate-resume``: how resume from the hiberfile went."""
