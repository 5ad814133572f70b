"""
Event records: one per call a layer handles, streamed as JSON lines, ordered by (t_ns, seq).

Every record has the same keys (``null`` where a key does not apply), documented in
``docs/reference/trace-format.md``. Records are emitted in simulated-time order: the crash
path is serial, so a layer finishes a call before the next layer starts one, and the global
sequence number breaks ties between records at the same instant.

Traces are never held in memory in full: :class:`JsonlTrace` writes each record as it comes
(through a buffered file), :class:`ListTrace` keeps them for tests, :class:`TeeTrace` hands
them to several sinks (a JSON-lines file and :class:`stacksim.perfetto.PerfettoTrace`).

The normal storage stack is the exception to "emitted in time order": its queued network runs
ahead of the clock and its records are computed, sorted, before the dump path runs. A
:class:`MergingTrace` holds them and writes each one into the dump path's stream just before the
first dump-path record that starts after it (the tie rule: at the same ``t_ns`` the normal
stack's records come first), numbering every record itself.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import IO, Any, Final, Protocol

import msgspec
import orjson

from stacksim._io import json_safe

_orjson_dumps: Final = orjson.dumps
_NEWLINE: Final = orjson.OPT_APPEND_NEWLINE

__all__ = ["FIELDS", "HeldRecord", "JsonlTrace", "ListTrace", "MergingTrace", "PhaseSink", "TeeTrace", "TraceSink"]

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


class PhaseSink(Protocol):
    """Where the engine's phase records go besides the trace (:meth:`stacksim._engine.Engine.phase`)."""

    phases: bool
    """Whether it takes phase records at all (a run log may only hold the run's other events)."""

    def phase(
        self,
        t_ns: int,
        layer: str,
        event: str,
        dur_ns: int,
        dump_type: str | None,
        status: str | None,
        detail: dict[str, Any] | None,
    ) -> None:
        """Record one phase."""


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


_PLAIN: Final = frozenset({str, int, bool, type(None)})
"""Types of a ``detail`` value that orjson writes exactly as the standard library does (floats differ: ``1e16``)."""


_INT_OR_NULL: Final = frozenset({int, type(None)})
_STR_OR_NULL: Final = frozenset({str, type(None)})


class JsonlTrace:
    """
    Streams records to a text file, one compact JSON object per line, invisible characters escaped.

    See :func:`~stacksim._io.json_safe`. Records are encoded with orjson (~1 µs a record, a
    quarter of the standard library's time) where its bytes are the standard library's: every
    record whose ``detail`` is null or holds only strings, integers, booleans and nulls. Any
    other record (a float or a nested value in ``detail``, an integer beyond 64 bits, a lone
    surrogate) goes through ``json`` as before, so a trace is the same bytes either way.
    """

    __slots__ = ("_dumps", "_write")

    def __init__(self, stream: IO[str]) -> None:
        self._write = stream.write
        self._dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode

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
        """Write one record."""
        record = {
            "t_ns": t_ns,
            "seq": seq,
            "layer": layer,
            "event": event,
            "dur_ns": dur_ns,
            "request": request,
            "offset": offset,
            "length": length,
            "dump_type": dump_type,
            "status": status,
            "detail": detail,
        }
        if detail is None or all(type(v) in _PLAIN for v in detail.values()):
            try:
                line = _orjson_dumps(record, option=_NEWLINE)
            except TypeError:  # (orjson.JSONEncodeError): a key that is not a string, a huge integer, a surrogate
                pass
            else:
                if line.isascii() and 127 not in line:  # (an int: ``b"\x7f" in line`` takes ten times as long)
                    self._write(line.decode())
                else:
                    self._write(json_safe(line.decode()))
                return
        self._write(json_safe(self._dumps(record)) + "\n")

    def emit_held(self, records: list[HeldRecord], start_ns: int, seq: int) -> int:
        """
        Write the held records of one request (:meth:`stacksim._engine.Engine.release`), numbered from *seq* + 1.

        The same bytes as :meth:`emit` of each record in turn, written at once: a record held
        with ``t_ns`` -1 starts where the one before it ended, the first at *start_ns*. Returns
        the last ``seq`` given. Records whose fields all have their plain types (integers and
        strings, ``null`` where a field may be; a ``detail`` of string keys and :data:`_PLAIN`
        values) are encoded together in one msgspec call, about a third of the time of one
        orjson call each; any other record goes through :meth:`emit`.
        """
        rows: list[_Record] = []
        t = start_ns
        try:
            for t0, layer, event, dur, request, offset, length, dump_type, status, detail in records:
                if t0 < 0:
                    t0 = t
                t = t0 + dur
                seq += 1
                # exact types only: msgspec writes some values json refuses (bytes as base64, a set as a list)
                if (
                    type(t0) is int is type(dur)
                    and type(layer) is str is type(event)
                    and type(request) in _INT_OR_NULL
                    and type(offset) in _INT_OR_NULL
                    and type(length) in _INT_OR_NULL
                    and type(dump_type) in _STR_OR_NULL
                    and type(status) in _STR_OR_NULL
                    and (
                        detail is None
                        or (type(detail) is dict and all(type(k) is str and type(v) in _PLAIN for k, v in detail.items()))
                    )
                ):
                    rows.append(_Record(t0, seq, layer, event, dur, request, offset, length, dump_type, status, detail))
                else:
                    self._write_rows(rows)
                    self.emit(t0, seq, layer, event, dur, request, offset, length, dump_type, status, detail)
        finally:  # a record that raises (as emit would) leaves the ones before it written, as emit one by one does
            self._write_rows(rows)
        return seq

    def _write_rows(self, rows: list[_Record]) -> None:
        """Write *rows* as JSON lines and empty the list (record by record through :meth:`emit` if msgspec refuses one)."""
        if not rows:
            return
        try:
            text = _encode_lines(rows)
        except (msgspec.EncodeError, TypeError, ValueError, OverflowError):  # (a lone surrogate is a ValueError)
            for r in rows:
                self.emit(*(getattr(r, name) for name in FIELDS))
        else:
            self._write(json_safe(text.decode()))  # (json_safe returns clean text as it is)
        rows.clear()


class _Record(msgspec.Struct, gc=False):
    """One trace record for msgspec, its fields in :data:`FIELDS` order (a Struct encodes as an object, keys in that order)."""

    t_ns: int
    seq: int
    layer: str
    event: str
    dur_ns: int
    request: int | None
    offset: int | None
    length: int | None
    dump_type: str | None
    status: str | None
    detail: dict[str, Any] | None


_encode_lines: Final = msgspec.json.Encoder().encode_lines


class TeeTrace:
    """Sends every record to each of *sinks*, in order: one run's JSON-lines trace and its Perfetto export."""

    __slots__ = ("_emits",)

    def __init__(self, *sinks: TraceSink) -> None:
        self._emits = tuple(sink.emit for sink in sinks)

    def emit(self, *values: Any) -> None:
        """Hand one record to every sink."""
        for emit in self._emits:
            emit(*values)


HeldRecord = tuple[int, str, str, int, int | None, int | None, int | None, str | None, str | None, dict[str, Any] | None]
"""A record without its ``seq``: the fields of :data:`FIELDS` but the second."""


class MergingTrace:
    """
    Merges records computed ahead of time (the normal stack's) into the stream of *sink*, in (t_ns, seq) order.

    :meth:`hold` takes records sorted by time; every record emitted afterwards (the dump path's,
    in time order) is preceded by the held records that start at or before it -- at the same
    ``t_ns`` the held record goes first -- and :meth:`close` writes the rest. The ``seq`` an
    emitter passes is ignored: the merged stream is numbered 1, 2, 3, ... here, so it is as
    deterministic as the two streams it merges.
    """

    __slots__ = ("_held", "_next", "_seq", "_sink")

    def __init__(self, sink: TraceSink) -> None:
        self._sink = sink
        self._held: list[HeldRecord] = []
        self._next = 0
        self._seq = 0

    def hold(self, records: Iterable[HeldRecord]) -> None:
        """Add *records* (sorted by ``t_ns``, none before a record already written) to the held ones."""
        self._held = self._held[self._next :]
        self._next = 0
        self._held.extend(records)

    def _flush(self, until: int) -> None:
        held, i, sink = self._held, self._next, self._sink
        while i < len(held) and held[i][0] <= until:
            r = held[i]
            self._seq += 1
            sink.emit(r[0], self._seq, r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9])
            i += 1
        self._next = i

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
        """Write the held records that start at or before *t_ns*, then this one (renumbered)."""
        if self._next < len(self._held):
            self._flush(t_ns)
        self._seq += 1
        self._sink.emit(t_ns, self._seq, layer, event, dur_ns, request, offset, length, dump_type, status, detail)

    @property
    def records(self) -> int:
        """How many records went to *sink* so far (the last ``seq`` given)."""
        return self._seq

    def close(self) -> None:
        """Write every record still held (the run is over)."""
        self._flush(1 << 63)
        self._held, self._next = [], 0
