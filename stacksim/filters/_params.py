"""Pydantic field types for filter parameters given with units (times, sizes)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BeforeValidator

from stacksim.units import parse_per_byte_ps, parse_size, parse_time_ns

__all__ = ["Bytes", "Nanoseconds", "PicosecondsPerByte"]

Nanoseconds = Annotated[int, BeforeValidator(parse_time_ns)]
"""A duration: integer nanoseconds or a string such as ``"20 us"``."""

PicosecondsPerByte = Annotated[int, BeforeValidator(parse_per_byte_ps)]
"""A per-byte cost: integer ns per byte or a string such as ``"0.3 ns"``; kept in picoseconds."""

Bytes = Annotated[int, BeforeValidator(parse_size)]
"""A size: integer bytes or a string such as ``"64 KiB"``."""
