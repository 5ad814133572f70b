"""
Event records: one per call a layer handles, streamed as JSON lines, ordered by (t_ns, seq).

Every record has the same keys (``null`` where a key does not apply), documented in
``docs/reference/trace-format.md``. Records are emitted in simulated-time order: the crash
path is serial, so a layer finishes a call before the next layer starts one, and the global
sequence number breaks ties between records at the same instant.

Traces are never held in memory in full: :class:`JsonlTrace` writes each record as it comes
(through a buffered file), :class:`ListTrace` keeps them for tests.
"""

from __future__ import annotations

import json
from typing import IO, Any, Final, Protocol

from stacksim._io import json_safe

__all__ = ["FIELDS", "JsonlTrace", "ListTrace", "TraceSink"]

FIELDS: Final = ("t_ns", "seq", "layer", "event", "dur_ns", "request", "offset", "length", "dump_type", "status", "detail")
"""The keys of every trace record, in output order."""


class TraceSink(Protocol):
    """Where records go. ``emit`` takes the fields in :data:`FIELDS` order."""

    def emit(
        self,
        t_ns: int,
        seq: int,
        layer: str,
        event: str,
        dur_ns: int,
        request: int | None,
        offset: int | None,
        length: int | None,
        dump_type: str | None,
        status: str | None,
        detail: dict[str, Any] | None,
    ) -> None:
        """Record one event."""


class ListTrace:
    """Keeps records as dicts; for tests and small runs."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def emit(self, *values: Any) -> None:
        """Append one record."""
        self.records.append(dict(zip(FIELDS, values, strict=True)))

    def timeline(self, *keys: str) -> list[tuple[Any, ...]]:
        """The records as tuples of *keys* (default: time, layer, event), for exact asserts."""
        keys = keys or ("t_ns", "layer", "event")
        return [tuple(r[k] for k in keys) for r in self.records]


class JsonlTrace:
    """Streams records to a text file, one compact JSON object per line, invisible characters escaped.

    See :func:`~stacksim._io.json_safe`.
    """

    def __init__(self, stream: IO[str]) -> None:
        self._write = stream.write
        self._dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode

    def emit(self, *values: Any) -> None:
        """Write one record."""
        self._write(json_safe(self._dumps(dict(zip(FIELDS, values, strict=True)))) + "\n")
