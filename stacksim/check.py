"""
An invariant checker that reads only a trace file and trusts nothing in it.

It is written independently of the simulator: it imports nothing from it and knows only the
trace format (``docs/reference/trace-format.md``). It does not take the trace's word for
anything either: every record is checked against the others (the port's write against what the
filters handed down, the device's write against the port's, the dump context's filter list
against the DriverEntry records, the end of the dump against the bytes that were written), so
deleting, adding or editing a record breaks a rule. Every test run and ``stacksim check
TRACE.jsonl`` apply these rules:

``format``           every line is one JSON object with exactly the trace fields (no key twice in any
                     of its objects), each of its type
                     (integers 0 to 2**63 - 1, never a bool or a float), null exactly where the event
                     has no such field, at most :data:`MAX_LINE_BYTES` long, UTF-8, ending in a newline;
                     the dump_context's detail has exactly its documented keys and types, a
                     dump_write's is null or {"moved_from": offset}
``order``            seq numbers go 1, 2, 3, ... (no record missing, none repeated) and records are
                     sorted by (t_ns, seq)
``timing``           the dump path is serial: each record starts when the one before it ended; the
                     event comes at its time; dump_failed when the step before it ended, a watchdog
                     period after it when a crash-mode callback hung, or when the power failed;
                     instant events last 0 ns; nothing after the power failed
``structure``        the skeleton of a dump: boot records (DriverEntry), exactly one bugcheck or
                     hibernate record, (crash) the integrity check, one dump_context before dump_start,
                     port_init and the first write, writes numbered 1, 2, ... (a retry repeats its
                     number, at the same offset and length; write_failed names the issued write),
                     dump_finish and the flush after the last write of the last part, exactly one
                     dump_complete or dump_failed, last; the dump context's target suits the event
``layers``           every record comes from a layer that is there: crashdmp, miniport, device, or a
                     filter whose DriverEntry succeeded in that stack and that was not unloaded since,
                     recording only callbacks the dump context lists for it; the dump context lists
                     exactly the filters loaded in the active stack, in load order
``file_position``    each new write is the next piece of the dump: the dump context's parts in order,
                     mapped through its runs, each write as long as MaxPagesPerWrite, the run and the
                     part allow
``handoff``          each filter hands down the offset it was handed, unless its record says where it
                     moved the write from; after a changed length or an unaligned offset (which end
                     the dump) nothing more of the write is recorded
``device``           the port writes the offset the last filter handed down and the length crashdmp
                     issued; its write is followed at once by the device's write of the same request at
                     partition_offset + that offset, same length, starting when the port submitted it
                     (or by a poll_timeout, or by a dump_failed before that instant: the power
                     failed); write_complete reports the port's offset and length when the device finished;
                     no device write or flush outlasts the port's timeout, a poll_timeout lasts it
``outcome``          dump_complete only after every write completed, the flush, and exactly dump_bytes
                     written, all of the dump's parts; a dump that does not fit its file is not
                     written; a dump_failed right after the event only when no stack was loaded or a
                     DriverEntry failed, and after another step only when it can fail the dump or
                     plugin code runs next
``qd1``              one request outstanding: a write is issued only after the previous one
                     completed, and the dump port starts a command only after the device finished
                     the previous one (crash mode is polled and synchronous [DOC S13])
``placement``        every write crashdmp issues, the port sends and the device performs is sector
                     aligned and inside one disk run of the target file (the device's shifted by
                     partition_offset, and within the disk), the port's at most MaxPagesPerWrite pages,
                     and no two completed writes overlap on the disk
``start_finish``     every loaded filter's dump_start precedes the first write; its dump_finish
                     follows the last completion [DOC S6, S8]; each is called once, in registry order
``filter_order``     for every request, the filters' dump_write calls come in registry order, each
                     once, before the port's write
``frozen_stack``     after hibernation starts, the crash dump stack loaded at boot records nothing
``dump_type``        every record carries the dump type of its stack (before the event and in a crash:
                     crashdump; after the start of hibernation: hibernation)
``normal_stack``     the normal stack's records (``io_*``) follow its io_context, the trace's first
                     record, once; a trace of event io has no dump-path record at all
``io_path``          each normal-stack request goes through the io_context's layers in order (down, the
                     device, the interrupt, back up), each record starting when the one before it ended,
                     at one offset and length; requests are numbered 1, 2, 3, ... in issue order (a
                     number missing is said once), the first queue_depth issued at 0, each later one
                     when a request completed; in an io run every request completes
``io_queues``        each layer serves one request at a time, in arrival order; at most queue_depth
                     requests outstanding from the application, storport_queue_depth at the device,
                     device_parallelism in service there
``io_workload``      each request is one the io_context's workload issues: an op its pattern and ops
                     issue, a sector-aligned whole block of its region on the disk (sequential-write:
                     request n at block n - 1, wrapping at the region's end), its number at most the
                     context's issued count; the counts add up (completed + lost = issued, lost 0 in an
                     io run), and an io trace has every request from 1 to issued
``io_costs``         each layer's service of a request lasts what the io_context's service_ns says for
                     that step and the request's op (an op all its services fit: fvevol.sys with
                     BitLocker costs a write more on the way down, a read on the way up)
``freeze``           a crash during I/O has one io_freeze, at the bugcheck's instant, just before the
                     bugcheck; no normal-stack record after it, none ends at or after it; its counts
                     (issued, completed, lost, where) agree with the trace and the io_context
``reset``            after a crash during I/O the dump port's port_init names the normal-stack commands
                     the device held (as many as the freeze lost there, none completed); the first
                     device command after port_init starts when it ended

The normal stack's records are exempt from the dump path's rules (its serial ``timing``, its
request numbers, its structure and layers) and judged by their own; ``order`` holds for all of them
(at the same t_ns the normal stack's come first, among themselves by stage, then request).

It streams: one pass over the file, holding only what the rules need (the state of the request in
flight, the loaded filters, the disk runs, the bytes written so far as merged extents, and the
normal stack's requests on their way, at most its queue depth), and at
most :data:`SHOWN_PER_RULE` violations per rule ("... and N more" counts the rest).
"""

from __future__ import annotations

import heapq
import itertools
import json
import reprlib
from array import array
from bisect import bisect_right
from collections import Counter, deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Final, Protocol

import orjson

__all__ = [
    "FIELDS",
    "MAX_LINE_BYTES",
    "RULES",
    "SHOWN_PER_RULE",
    "Violation",
    "check_records",
    "check_stream",
    "check_trace_file",
]

RULES: Final = (
    "format",
    "order",
    "timing",
    "structure",
    "layers",
    "file_position",
    "handoff",
    "device",
    "outcome",
    "qd1",
    "placement",
    "start_finish",
    "filter_order",
    "frozen_stack",
    "dump_type",
    "normal_stack",
    "io_path",
    "io_queues",
    "io_workload",
    "io_costs",
    "freeze",
    "reset",
    "compression",
    "resume",
)

FIELDS: Final = ("t_ns", "seq", "layer", "event", "dur_ns", "request", "offset", "length", "dump_type", "status", "detail")
"""The keys of every record (the checker's own copy of the trace format)."""

MAX_LINE_BYTES: Final = 16 * 2**20
"""The longest line read, in bytes (a dump_context with some 600,000 disk runs); longer lines are ``format`` violations."""

SHOWN_PER_RULE: Final = 20
"""Violations kept per rule; the rest are counted."""

INT_LIMIT: Final = 2**63
"""Every integer in a record is below this (int64)."""

CHUNK_BYTES: Final = 2**20
"""How much of the file is read at a time."""

_SAFE_BYTES: Final = 512
_SAFE_BRACKETS: Final = 64
"""orjson 3.8 has no nesting limit (it overflows the C stack on some 100,000 levels): a line of more
than _SAFE_BYTES with more than _SAFE_BRACKETS brackets is parsed by the stdlib parser instead,
which counts its depth and raises RecursionError."""

PAGE: Final = 4096
BOM: Final = b"\xef\xbb\xbf"

Record = dict[str, Any]

_FIELD_SET: Final = frozenset(FIELDS)
_FIELD_LIST: Final = list(orjson.loads(orjson.dumps(dict.fromkeys(FIELDS))))
"""FIELDS as orjson's own key strings: it caches keys, so comparing a parsed record's keys with these is an identity test."""
_CORE: Final = frozenset({"crashdmp", "miniport", "device", "compressor", "winresume", "decompressor"})
_STACKS: Final = ("crashdump", "hibernation")
_REQUEST_EVENTS: Final = frozenset(
    {
        "issue_write",
        "write_failed",
        "write_complete",
        "dump_write",
        "miniport_write",
        "poll_timeout",
        "device_write",
        "compress_wait",
    }
)
_FILTER_EVENTS: Final = frozenset({"driver_entry", "dump_start", "dump_write", "dump_finish", "dump_unload"})
_CALLBACKS: Final = frozenset({"dump_start", "dump_write", "dump_finish", "dump_unload", "dump_read"})
_CONTEXT_KEYS: Final = (
    "event",
    "target",
    "partition_offset",
    "runs",
    "max_pages_per_write",
    "sector_size",
    "filters",
    "disk_size",
    "dump_bytes",
    "parts",
    "watchdog_ns",
    "port_timeout_ns",
    "power_loss_ns",
)
_TARGETS: Final = {"crash": ("pagefile", "dedicated"), "hibernate": ("hiberfile",)}
"""The target files of each event."""
_INSTANT: Final = frozenset(
    {"bugcheck", "hibernate", "dump_context", "write_failed", "write_complete", "dump_complete", "dump_failed"}
)
"""Events that take no time (``dur_ns`` 0)."""

_IO_PATH_EVENTS: Final = frozenset({"io_submit", "io_wait", "io_queue", "io_device", "io_interrupt", "io_complete"})
"""The normal stack's per-request events (each has a request, offset and length)."""
_IO_EVENTS: Final = _IO_PATH_EVENTS | {"io_context", "io_freeze"}
"""Every event of the normal stack: exempt from the dump path's rules, judged by their own."""
_IO_CONTEXT_KEYS: Final = (
    "event",
    "pattern",
    "ops",
    "layers",
    "block_size",
    "region_offset",
    "region_size",
    "sector_size",
    "disk_size",
    "queue_depth",
    "storport_queue_depth",
    "device_parallelism",
    "service_ns",
    "issued",
    "completed",
    "lost",
    "bugcheck_ns",
)
_IO_FREEZE_KEYS: Final = ("issued", "completed", "lost", "by_layer")
_KERNEL: Final = "ntoskrnl.exe"
"""The layer of io_freeze."""
_OPS: Final = ("read", "write")
_PATTERN_OPS: Final = {
    "sequential-write": ("write",),
    "random-write": ("write",),
    "random-read": ("read",),
    "mixed": _OPS,
}
"""The operations each workload pattern issues (``mixed``: either, as its read_fraction draws them)."""
_OP_BIT: Final = {"read": 1, "write": 2}
"""Each op's bit in a request's mask of the ops its services so far fit."""

# stages of a dump, in the order they happen
BOOT, EVENT, CHECKED, CONTEXT, STARTED, FINISHING, FLUSHED, ENDED = range(8)
# the request in flight
IDLE, ISSUED, PORT, DEVICE_OK, DEVICE_FAILED, DONE, RETRY = range(7)


@dataclass(frozen=True, slots=True)
class Violation:
    """One broken rule: its name, what is wrong, and up to three records that show it (each rendered short)."""

    rule: str
    message: str
    records: tuple[str, ...] = ()

    def render(self) -> str:
        """The message and the records that show it, one per line."""
        return "\n".join([f"[{self.rule}] {self.message}", *("    " + r for r in self.records[:3])])


class _Reader(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


def check_trace_file(path: str) -> tuple[int, list[Violation]]:
    """Read a JSONL trace; return (record count, violations). Malformed lines are ``format`` violations."""
    with open(path, "rb") as f:
        return check_stream(f)


def check_stream(stream: _Reader) -> tuple[int, list[Violation]]:
    """
    Check the trace read from a binary *stream* (anything with ``read(size)``), in one pass.

    The stream is read in chunks of :data:`CHUNK_BYTES` and split into lines; a line longer than
    :data:`MAX_LINE_BYTES` is counted, never held. Returns the number of well-formed records and
    the violations (at most :data:`SHOWN_PER_RULE` per rule, then one that counts the rest).
    """
    checker = _Checker()
    feed = checker.feed_line
    read = stream.read
    n = 0
    carry: list[bytes] = []  # the start of a line that goes on in the next chunk
    carry_len = 0
    while chunk := read(CHUNK_BYTES):
        lines = chunk.split(b"\n")
        tail = lines.pop()  # after the last newline: b"" when the chunk ends with one
        if lines and carry_len:
            head = lines[0]
            n += 1
            if carry_len + len(head) > MAX_LINE_BYTES:
                checker.too_long(n, carry_len + len(head))
            else:
                feed(b"".join(carry) + head, n)
            carry, carry_len = [], 0
            lines = lines[1:]
        for raw in lines:  # each shorter than a chunk, so within the cap
            n += 1
            feed(raw, n)
        if tail:
            carry_len += len(tail)
            if carry_len <= MAX_LINE_BYTES:
                carry.append(tail)
            else:
                carry = []  # too long already: count its bytes, keep none
    if carry_len:
        n += 1
        if carry_len > MAX_LINE_BYTES:
            checker.too_long(n, carry_len)
        else:
            last = b"".join(carry)
            checker.bad(n, "does not end with a newline: the file is cut short", last)
            feed(last, n)  # and check what it holds
    return checker.finish()


def check_records(records: Iterable[Record]) -> list[Violation]:
    """Apply every rule to *records* (dicts with the trace fields, in trace order)."""
    checker = _Checker()
    for n, rec in enumerate(records, start=1):
        checker.feed_record(rec, n)
    return checker.finish()[1]


# -- showing values --------------------------------------------------------------------------


_repr = reprlib.Repr()
_repr.maxlevel, _repr.maxstring, _repr.maxother, _repr.maxlong = 2, 40, 40, 40
_repr.maxlist = _repr.maxdict = _repr.maxtuple = _repr.maxset = 4


def _short(value: object, limit: int = 60) -> str:
    """*value* as ``repr`` for a message, cut to about *limit* characters (in time bounded by *limit*, too)."""
    if isinstance(value, str):
        return repr(value) if len(value) <= limit else repr(value[: limit - 20]) + f"… ({len(value):,} characters)"
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 200:
        return f"an integer of {len(str(value)) if value.bit_length() < 14000 else 'over 4,000'} digits"
    text = _repr.repr(value)
    return text if len(text) <= limit else text[: limit - 20] + f"… ({len(text):,} characters)"


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number with a fraction or exponent"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _brief(line: int, rec: Record) -> str:
    """A well-formed record as short compact JSON (long strings cut, the detail elided), after its line number."""
    shown = {}
    for k, v in rec.items():
        if k == "detail" and v is not None:
            v = "{…}"
        elif isinstance(v, str) and len(v) > 60:
            v = v[:40] + f"… ({len(v):,} characters)"
        shown[k] = v
    return f"line {line}: " + json.dumps(shown, ensure_ascii=False, separators=(",", ":"))


def _raw_brief(line: int, raw: bytes) -> str:
    text = raw[:100].decode("utf-8", "backslashreplace").rstrip("\n")
    return f"line {line}: {text}" + (f"… ({len(raw):,} bytes)" if len(raw) > 100 else "")


_STATUS_CODES: Final = {
    "STATUS_SUCCESS": 0x00000000,
    "STATUS_UNSUCCESSFUL": 0xC0000001,
    "STATUS_NOT_SUPPORTED": 0xC00000BB,
    "STATUS_INVALID_PARAMETER": 0xC000000D,
    "STATUS_INSUFFICIENT_RESOURCES": 0xC000009A,
    "STATUS_IO_DEVICE_ERROR": 0xC0000185,
    "STATUS_FVE_NOT_ENCRYPTED": 0xC0210011,
    "STATUS_ENCRYPTION_FAILED": 0xC000028A,
}
"""The status names the simulator writes, by value (ntstatus.h). The checker keeps its own copy: it
imports nothing from the simulator it checks (a test holds the two tables equal)."""


def _status_ok(status: str) -> bool | None:
    """
    NT_SUCCESS() of a status as the trace writes it, or None when its name alone does not say.

    A hex value (``0xC0000001``) is success below 0x80000000; a name the simulator writes
    (``STATUS_UNSUCCESSFUL``: :data:`_STATUS_CODES`) by its value. Another name
    (from another tool) is judged by what follows.
    """
    code = _STATUS_CODES.get(status)
    if code is not None:
        return code < 0x80000000
    if status.startswith("0x") and len(status) == 10:
        try:
            return int(status, 16) < 0x80000000
        except ValueError:
            return False
    return None


def _int_ok(value: object, low: int = 0) -> bool:
    return type(value) is int and low <= value < INT_LIMIT


# -- the shape of one record -----------------------------------------------------------------


def _shape(r: object) -> str | None:
    """What is wrong with the shape of record *r* (``format``), or None."""
    if type(r) is not dict:
        return f"is {_kind(r)}, not a JSON object"
    if len(r) != 11 or r.keys() != _FIELD_SET:
        missing = [f for f in FIELDS if f not in r]
        extra = [k for k in r if k not in _FIELD_SET]
        parts = []
        if missing:
            parts.append("lacks " + ", ".join(missing))
        if extra:
            names = ", ".join(_short(k, 40) for k in extra[:5]) + (f" and {len(extra) - 5:,} more" if len(extra) > 5 else "")
            parts.append(f"has unknown field(s) {names}")
        return "; ".join(parts) + f" (a record has exactly: {', '.join(FIELDS)})"
    t, seq, dur = r["t_ns"], r["seq"], r["dur_ns"]
    if type(t) is not int or not 0 <= t < INT_LIMIT:
        return _bad_int("t_ns", t)
    if type(seq) is not int or not 1 <= seq < INT_LIMIT:
        return _bad_int("seq", seq, 1)
    if type(dur) is not int or not 0 <= dur < INT_LIMIT:
        return _bad_int("dur_ns", dur)
    if t + dur >= INT_LIMIT:
        return f"ends past 2**63 - 1 ns (t_ns {t} + dur_ns {dur})"
    request, offset, length = r["request"], r["offset"], r["length"]
    for key, value, low in (("request", request, 1), ("offset", offset, 0), ("length", length, 0)):
        if value is not None and (type(value) is not int or not low <= value < INT_LIMIT):
            return _bad_int(key, value, low, nullable=True)
    layer, event = r["layer"], r["event"]
    if type(layer) is not str or not 0 < len(layer) <= 256:
        return f"has layer {_short(layer)}: a layer is a string of 1 to 256 characters"
    if type(event) is not str or not 0 < len(event) <= 64:
        return f"has event {_short(event)}: an event is a string of 1 to 64 characters"
    dump_type, status, detail = r["dump_type"], r["status"], r["detail"]
    if dump_type is not None and type(dump_type) is not str:
        return f"has dump_type {_short(dump_type)}: it is a string or null"
    if status is not None and (type(status) is not str or not 0 < len(status) <= 64):
        return f"has status {_short(status)}: it is a string of 1 to 64 characters or null"
    if detail is not None and type(detail) is not dict:
        return f"has detail {_short(detail)}: it is an object or null"
    if event in _IO_EVENTS:
        return None  # the normal stack's handler judges the rest of its shape (_io_shape), and the record as it stands
    if event in _REQUEST_EVENTS:
        if request is None or offset is None or length is None:
            return f"is a {event} with a null request, offset or length: it has all three"
    elif (request is not None or offset is not None or length is not None) and event in _EVENT_LAYER:
        return f"is a {event} with a request, offset or length: they are null for it"
    if event in _FILTER_EVENTS:
        if status is None:
            return f"is a filter's {event} with a null status: a callback's record carries the NTSTATUS it returned"
    elif status is not None and event != "device_write" and event in _EVENT_LAYER:
        return f"is a {event} with a status: only filter callbacks and device_write carry one"
    if (
        (detail is not None) != (event == "dump_context")
        and event in _EVENT_LAYER
        and event != "dump_write"
        and event != "port_init"
    ):
        return (
            "is a dump_context without a detail object"
            if detail is None
            else f"is a {event} with a detail: only dump_context and a dump_write that moved its write have one"
        )
    return None


def _key_count(value: object) -> int:
    """How many keys the objects in *value* (a parsed detail) have, nested ones included."""
    n = 0
    todo = [value]
    while todo:
        v = todo.pop()
        if type(v) is dict:
            n += len(v)
            todo += [x for x in v.values() if type(x) is dict or type(x) is list]
        elif type(v) is list:
            todo += [x for x in v if type(x) is dict or type(x) is list]
    return n


class _Repeated(Exception):
    pass


def _no_repeats(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    d = dict(pairs)
    if len(d) != len(pairs):
        seen: set[str] = set()
        for k, _ in pairs:
            if k in seen:
                raise _Repeated(k)
            seen.add(k)
    return d


def _repeated_key(raw: bytes) -> str | None:
    """The first key that appears twice in one object of the JSON line *raw* (already parsed once), or None."""
    try:
        json.loads(raw.decode("utf-8"), object_pairs_hook=_no_repeats)
    except _Repeated as exc:
        return str(exc.args[0])
    except (ValueError, RecursionError):  # pragma: no cover - the line parsed once already
        return None
    return None


def _io_shape(
    event: str, request: object, offset: object, length: object, dump_type: object, status: object, detail: object
) -> str | None:
    """What is wrong with the shape of a normal-stack record (``format``), or None."""
    if dump_type is not None or status is not None:
        return f"is a normal-stack {event} with a dump_type or a status: both are null on the normal stack's records"
    if event in _IO_PATH_EVENTS:
        if request is None or offset is None or length is None:
            return f"is an {event} with a null request, offset or length: it has all three"
        if event == "io_device":
            if type(detail) is not dict or detail.keys() != {"op"} or detail["op"] not in _OPS:
                return f'is an io_device with detail {_short(detail)}: it is {{"op": "read"}} or {{"op": "write"}}'
        elif detail is not None:
            return f"is an {event} with a detail: of the per-request records only io_device has one"
        return None
    if request is not None or offset is not None or length is not None:
        return f"is an {event} with a request, offset or length: they are null for it"
    if type(detail) is not dict:
        return f"is an {event} without a detail object"
    return None


def _bad_int(key: str, value: object, low: int = 0, nullable: bool = False) -> str:
    allowed = f"an integer from {low} to 2**63 - 1" + (" or null" if nullable else "")
    if type(value) is int:
        return f"has {key} {_short(value)}: it is {allowed}"
    return f"has {key} {_short(value)}, which is {_kind(value)}: it is {allowed}"


# -- the dump context ------------------------------------------------------------------------


@dataclass(slots=True)
class _Context:
    """The parts of a dump_context detail the rules use."""

    event: str
    target: str
    partition_offset: int
    sector: int
    max_bytes: int
    disk_size: int
    dump_bytes: int
    filters: tuple[str, ...]
    callbacks: dict[str, frozenset[str]]
    run_starts: array[int]
    """The runs sorted by partition offset: starts and ends (for ``placement``)."""
    run_ends: array[int]
    parts: tuple[tuple[str, int, int], ...]
    """(name, file offset, bytes) of each part, in write order."""
    file_runs: tuple[tuple[int, int, int], ...]
    """The runs in file order as (file offset, partition offset, length)."""
    file_starts: list[int]
    file_size: int
    watchdog: int
    port_timeout: int
    power_loss: int | None
    too_small: str | None
    """Why the dump does not fit its file (then nothing may be written), or None."""
    aligned: bool
    """Whether partition_offset is a whole number of sectors (a disk offset is then aligned when its partition offset is)."""
    compression: tuple[int, int, int, bool] | None = None
    """A compressed hiberfile: (uncompressed bytes, body bytes, rate in bytes/s, overlap); ``None``: nothing is compressed."""

    def in_run(self, offset: int, length: int, shift: int = 0) -> bool:
        """Whether [offset, offset + length) lies inside one run (partition-relative runs moved by *shift*)."""
        rel = offset - shift
        i = bisect_right(self.run_starts, rel) - 1
        return i >= 0 and rel + length <= self.run_ends[i]


def _parse_context(d: dict[str, Any]) -> tuple[_Context | None, str | None, list[str]]:
    """(context, its format problem, its placement problems)."""
    keys = set(d) - {"compression"}  # (optional: a compressed hiberfile's compressor)
    if keys != set(_CONTEXT_KEYS):
        missing = [k for k in _CONTEXT_KEYS if k not in d]
        extra = [_short(k, 40) for k in d if k not in _CONTEXT_KEYS][:5]
        what = "; ".join(
            p for p in (missing and "lacks " + ", ".join(missing), extra and "has unknown key(s) " + ", ".join(extra)) if p
        )
        return None, f"its detail {what} (a dump_context detail has exactly: {', '.join(_CONTEXT_KEYS)})", []
    event, target = d["event"], d["target"]
    if event not in _TARGETS:
        return None, f'its detail.event is {_short(event)}: it is "crash" or "hibernate"', []
    if target not in ("pagefile", "dedicated", "hiberfile"):
        return None, f"its detail.target is {_short(target)}: it is one of dedicated, hiberfile, pagefile", []
    for key, low in (
        ("partition_offset", 0),
        ("max_pages_per_write", 1),
        ("sector_size", 1),
        ("disk_size", 1),
        ("dump_bytes", 0),
        ("watchdog_ns", 1),
        ("port_timeout_ns", 0),
    ):
        if not _int_ok(d[key], low):
            return None, f"its detail.{key} is {_short(d[key])}: it is an integer from {low} to 2**63 - 1", []
    power_loss = d["power_loss_ns"]
    if power_loss is not None and not _int_ok(power_loss):
        return None, f"its detail.power_loss_ns is {_short(power_loss)}: it is null or an integer from 0 to 2**63 - 1", []
    sector = d["sector_size"]
    if sector < 512 or sector & (sector - 1):
        return None, f"its detail.sector_size is {sector}: it is a power of two, at least 512", []
    runs, filters, parts = d["runs"], d["filters"], d["parts"]
    if type(runs) is not list or not runs:
        return None, f"its detail.runs is {_short(runs)}: it is a non-empty array of [offset, length] pairs", []
    pairs = []
    file_runs = []
    file_starts = []
    file_pos = 0
    for i, run in enumerate(runs):
        if type(run) is not list or len(run) != 2 or not _int_ok(run[0]) or not _int_ok(run[1], 1):
            return None, f"its detail.runs[{i}] is {_short(run)}: each run is [offset, length], integers, length > 0", []
        pairs.append((run[0], run[0] + run[1]))
        file_runs.append((file_pos, run[0], run[1]))
        file_starts.append(file_pos)
        file_pos += run[1]
    if type(parts) is not list:
        return None, f"its detail.parts is {_short(parts)}: it is an array of [name, file offset, bytes]", []
    part_list = []
    for i, part in enumerate(parts):
        if (
            type(part) is not list
            or len(part) != 3
            or type(part[0]) is not str
            or not 0 < len(part[0]) <= 64
            or not _int_ok(part[1])
            or not _int_ok(part[2], 1)
        ):
            return (
                None,
                f"its detail.parts[{i}] is {_short(part)}: each part is [name, file offset, bytes], bytes > 0",
                [],
            )
        part_list.append((part[0], part[1], part[2]))
    if type(filters) is not list:
        return None, f"its detail.filters is {_short(filters)}: it is an array of {{name, callbacks}} objects", []
    names: list[str] = []
    callbacks: dict[str, frozenset[str]] = {}
    for i, f in enumerate(filters):
        if (
            type(f) is not dict
            or set(f) != {"name", "callbacks"}
            or type(f["name"]) is not str
            or not 0 < len(f["name"]) <= 256
            or f["name"] in _CORE
            or type(f["callbacks"]) is not list
            or not all(c in _CALLBACKS for c in f["callbacks"])
        ):
            return (
                None,
                (
                    f"its detail.filters[{i}] is {_short(f)}: each is {{name, callbacks}}, a service name and a list "
                    f"of {', '.join(sorted(_CALLBACKS))}"
                ),
                [],
            )
        if f["name"] in callbacks:
            return None, f"its detail.filters lists {_short(f['name'])} twice", []
        names.append(f["name"])
        callbacks[f["name"]] = frozenset(f["callbacks"])
    pairs.sort()
    po, disk = d["partition_offset"], d["disk_size"]
    problems = []
    for i, (start, end) in enumerate(pairs):
        if start % sector or end % sector:
            problems.append(f"disk run {start}+{end - start} is not aligned to {sector}-byte sectors")
        if i and pairs[i - 1][1] > start:
            problems.append(f"disk runs {pairs[i - 1][0]}+{pairs[i - 1][1] - pairs[i - 1][0]} and {start}+{end - start} overlap")
        if po + end > disk:
            problems.append(f"disk run {start}+{end - start} ends at disk offset {po + end:,}, past the disk's {disk:,} bytes")
        if len(problems) >= 3:
            break
    if po % sector:
        problems.append(f"partition_offset {po} is not aligned to {sector}-byte sectors")
    spans = sorted((off, off + size, name) for name, off, size in part_list)
    for k in range(1, len(spans)):
        (s0, e0, n0), (s1, _, n1) = spans[k - 1], spans[k]
        if s1 < e0:
            problems.append(f"parts {n0!r} and {n1!r} overlap in the file (file offsets {s0:,} and {s1:,})")
            break
    total = sum(size for _, _, size in part_list)
    if total > d["dump_bytes"]:
        problems.append(f"parts hold {total:,} bytes, more than the dump's dump_bytes = {d['dump_bytes']:,}")
    compression = None
    if "compression" in d:
        c = d["compression"]
        if (
            type(c) is not dict
            or set(c) != {"uncompressed_bytes", "body_bytes", "rate", "overlap"}
            or not all(_int_ok(c[k], 1) for k in ("uncompressed_bytes", "body_bytes", "rate"))
            or type(c["overlap"]) is not bool
        ):
            return (
                None,
                f"its detail.compression is {_short(c)}: it is {{uncompressed_bytes, body_bytes, rate, overlap}}, "
                "three integers > 0 and a boolean",
                [],
            )
        compression = (c["uncompressed_bytes"], c["body_bytes"], c["rate"], c["overlap"])
    too_small = None
    for name, off, size in part_list:
        if off + size > file_pos:
            too_small = f"part {name!r} ends at file offset {off + size:,}, past the {file_pos:,}-byte {target}"
            break
    ctx = _Context(
        event,
        target,
        po,
        sector,
        d["max_pages_per_write"] * PAGE,
        disk,
        d["dump_bytes"],
        tuple(names),
        callbacks,
        array("Q", (s for s, _ in pairs)),
        array("Q", (e for _, e in pairs)),
        tuple(part_list),
        tuple(file_runs),
        file_starts,
        file_pos,
        d["watchdog_ns"],
        d["port_timeout_ns"],
        power_loss,
        too_small,
        po % sector == 0,
        compression,
    )
    return ctx, None, problems


# -- the normal stack's context --------------------------------------------------------------


@dataclass(slots=True)
class _IoContext:
    """The parts of an io_context detail the rules use."""

    event: str
    pattern: str
    ops: frozenset[str]
    layers: tuple[str, ...]
    block_size: int
    region_offset: int
    region_blocks: int
    """Whole blocks in the region: request offsets are region_offset + k × block_size, k below this."""
    sector: int
    disk_size: int
    queue_depth: int
    port_depth: int
    parallelism: int
    costs: dict[str, tuple[int, ...]]
    """Per op, the service time of each step of the path (the device's step: -1, its time is the device's own)."""
    fit: tuple[dict[int, int], ...]
    """Per step, service time → the mask of the ops (_OP_BIT) that cost that much there."""
    issued: int
    completed: int
    lost: int
    bugcheck: int | None
    steps: tuple[tuple[str, str], ...]
    """A request's path, one (event, layer) per service: io_submit down the layers, io_device, io_interrupt at
    the port driver (the layer above the miniport), io_complete from the port driver up to the first layer."""
    device_step: int


def _parse_io_context(d: dict[str, Any]) -> tuple[_IoContext | None, str | None, list[str]]:
    """(context, its format problem, its io_workload problems: a workload it cannot have issued)."""
    if set(d) != set(_IO_CONTEXT_KEYS):
        missing = [k for k in _IO_CONTEXT_KEYS if k not in d]
        extra = [_short(k, 40) for k in d if k not in _IO_CONTEXT_KEYS][:5]
        what = "; ".join(
            p for p in (missing and "lacks " + ", ".join(missing), extra and "has unknown key(s) " + ", ".join(extra)) if p
        )
        return None, f"its detail {what} (an io_context detail has exactly: {', '.join(_IO_CONTEXT_KEYS)})", []
    event, pattern, ops, layers, bugcheck = d["event"], d["pattern"], d["ops"], d["layers"], d["bugcheck_ns"]
    if event not in ("io", "crash-during-io"):
        return None, f'its detail.event is {_short(event)}: it is "io" or "crash-during-io"', []
    if pattern not in _PATTERN_OPS:
        return None, f"its detail.pattern is {_short(pattern)}: it is one of {', '.join(_PATTERN_OPS)}", []
    if type(ops) is not list or not ops or len(set(ops)) != len(ops) or not all(op in _OPS for op in ops):
        return None, f'its detail.ops is {_short(ops)}: it is a non-empty array of distinct "read" and "write"', []
    if (
        type(layers) is not list
        or not 2 <= len(layers) <= 64
        or not all(type(x) is str and 0 < len(x) <= 256 and x not in ("device", _KERNEL) for x in layers)
        or len(set(layers)) != len(layers)
    ):
        return (
            None,
            f"its detail.layers is {_short(layers)}: it is an array of 2 to 64 distinct layer names, top down to the "
            f"miniport (not device or {_KERNEL})",
            [],
        )
    for key, low in (
        ("block_size", 1),
        ("region_offset", 0),
        ("region_size", 1),
        ("sector_size", 1),
        ("disk_size", 1),
        ("queue_depth", 1),
        ("storport_queue_depth", 1),
        ("device_parallelism", 1),
        ("issued", 1),
        ("completed", 0),
        ("lost", 0),
    ):
        if not _int_ok(d[key], low):
            why = " (a workload issues at least one request: its first queue_depth at 0 ns)" if key == "issued" else ""
            return None, f"its detail.{key} is {_short(d[key])}: it is an integer from {low} to 2**63 - 1{why}", []
    sector = d["sector_size"]
    if sector < 512 or sector & (sector - 1):
        return None, f"its detail.sector_size is {sector}: it is a power of two, at least 512", []
    if (bugcheck is None) != (event == "io") or (bugcheck is not None and not _int_ok(bugcheck, 1)):
        return (
            None,
            f"its detail.bugcheck_ns is {_short(bugcheck)}: it is null in an io trace and an integer ≥ 1 (the bugcheck's "
            "time) in a crash-during-io trace",
            [],
        )
    n = 2 * len(layers)  # every step but the device's: io_submit at each layer, io_interrupt, io_complete up to the first
    costs, service = {}, d["service_ns"]
    if type(service) is not dict or set(service) != set(ops):
        return None, f"its detail.service_ns is {_short(service)}: it is an object with one key per op of its ops", []
    for op in ops:
        c = service[op]
        if type(c) is not list or len(c) != n or not all(_int_ok(x) for x in c):
            return (
                None,
                f"its detail.service_ns.{op} is {_short(c)}: it is an array of {n} integers (ns), the service time of "
                "each step of the path but the device's",
                [],
            )
        costs[op] = (*c[: len(layers)], -1, *c[len(layers) :])
    fit: list[dict[int, int]] = [{} for _ in range(n + 1)]
    for op in ops:
        for k, cost in enumerate(costs[op]):
            if cost >= 0:
                fit[k][cost] = fit[k].get(cost, 0) | _OP_BIT[op]
    block, region_offset, region_size, disk = d["block_size"], d["region_offset"], d["region_size"], d["disk_size"]
    issued, completed, lost = d["issued"], d["completed"], d["lost"]
    problems = []
    allowed = _PATTERN_OPS[pattern]
    if not set(ops) <= set(allowed):
        problems.append(f"its ops are {_short(ops)}, but pattern {pattern} issues only {' and '.join(allowed)}s")
    for key, value in (("block_size", block), ("region_offset", region_offset), ("region_size", region_size)):
        if value % sector:
            problems.append(f"its {key} = {value:,} bytes is not a whole number of its {sector}-byte sectors")
    if block > region_size:
        problems.append(f"its block_size = {block:,} bytes is larger than its region_size = {region_size:,} bytes")
    if region_offset + region_size > disk:
        problems.append(
            f"its region {region_offset:,}+{region_size:,} ends at byte {region_offset + region_size:,}, past the "
            f"{disk:,}-byte disk"
        )
    if completed + lost != issued:
        problems.append(f"it counts {completed} completed + {lost} lost requests, but {issued} issued")
    elif event == "io" and lost:
        problems.append(f"it counts {lost} lost requests in an io run, where every request completes")
    port = layers[-2]
    steps = (
        *(("io_submit", x) for x in layers),
        ("io_device", "device"),
        ("io_interrupt", port),
        *(("io_complete", x) for x in reversed(layers[:-1])),
    )
    ctx = _IoContext(
        event,
        pattern,
        frozenset(ops),
        tuple(layers),
        block,
        region_offset,
        region_size // block,
        sector,
        disk,
        d["queue_depth"],
        d["storport_queue_depth"],
        d["device_parallelism"],
        costs,
        tuple(fit),
        issued,
        completed,
        lost,
        bugcheck,
        steps,
        len(layers),
    )
    return ctx, None, problems


# -- written extents -------------------------------------------------------------------------


class _Extents:
    """
    The bytes written so far: disjoint, sorted, merged ranges, each with its first and last writer.

    Ranges are [start, end) disk offsets; first and last are the lowest and highest request number
    that wrote into the range. Sequential writes merge into one range, so a dump in R disk runs needs about R ranges. Ranges live
    in buckets of at most 2 × *split* (four int64 arrays each), so even writes in adversarial
    order cost O(√n), never O(n), per insert.
    """

    __slots__ = ("_buckets", "_mins", "_split")

    def __init__(self, split: int = 512) -> None:
        self._split = split
        self._mins: list[int] = []
        self._buckets: list[tuple[array[int], array[int], array[int], array[int]]] = []

    def __len__(self) -> int:
        return sum(len(b[0]) for b in self._buckets)

    def ranges(self) -> list[tuple[int, int, int, int]]:
        """Every range as (start, end, first request, last request), for tests."""
        return [r for b in self._buckets for r in zip(*b, strict=True)]

    def add(self, start: int, end: int, request: int) -> tuple[int, int, int, int] | None:
        """Record [start, end) written by *request*; return the first range it overlapped, if any."""
        mins, buckets = self._mins, self._buckets
        if buckets:  # the common case: the write continues the last range
            b = buckets[-1]
            if b[1][-1] == start and b[0][-1] <= start:
                b[1][-1] = end
                if request > b[3][-1]:
                    b[3][-1] = request
                if request < b[2][-1]:
                    b[2][-1] = request
                return None
        else:
            buckets.append((array("Q", [start]), array("Q", [end]), array("Q", [request]), array("Q", [request])))
            mins.append(start)
            return None
        bi = bisect_right(mins, start) - 1
        if bi < 0:
            bi, i = 0, -1
        else:
            i = bisect_right(buckets[bi][0], start) - 1
        b = buckets[bi]
        hit = None
        first = last = request
        hi = end
        if i >= 0 and b[1][i] >= start:  # the range before touches or overlaps: grow it
            if b[1][i] > start:
                hit = (b[0][i], b[1][i], b[2][i], b[3][i])
            hi = max(hi, b[1][i])
            first, last = min(first, b[2][i]), max(last, b[3][i])
            pos = i
        else:
            pos = i + 1
            for arr, v in zip(b, (start, end, request, request), strict=True):
                arr.insert(pos, v)
            if pos == 0:
                mins[bi] = start
        while True:  # absorb the ranges that start inside or right at the end of this one
            nb, ni = bi, pos + 1
            if ni >= len(buckets[nb][0]):
                nb, ni = nb + 1, 0
                if nb >= len(buckets):
                    break
            nxt = buckets[nb]
            s = nxt[0][ni]
            if s > hi:
                break
            if s < end and hit is None:
                hit = (s, nxt[1][ni], nxt[2][ni], nxt[3][ni])
            hi = max(hi, nxt[1][ni])
            first, last = min(first, nxt[2][ni]), max(last, nxt[3][ni])
            for arr in nxt:
                del arr[ni]
            if not nxt[0]:
                del buckets[nb]
                del mins[nb]
            elif ni == 0:
                mins[nb] = nxt[0][0]
        b[1][pos], b[2][pos], b[3][pos] = hi, first, last
        if len(b[0]) > 2 * self._split:
            half = self._split
            new = (b[0][half:], b[1][half:], b[2][half:], b[3][half:])
            for arr in b:
                del arr[half:]
            buckets.insert(bi + 1, new)
            mins.insert(bi + 1, new[0][0])
        return hit


# -- the read path --------------------------------------------------------------------------


class _Resume:
    """
    The ``resume`` rule: resume reads the image only after it is complete, through the right filters, and unloads last.

    The records, in order: ``resume``; the port's ``port_init``; for each read ``issue_read``,
    ``miniport_read``, ``device_read``, one ``dump_read`` by every filter that registered one,
    nearest the disk first (the reverse of DumpFilters), and ``read_complete``; the reads are the
    image's pieces in file order, header first, each as long as MaxPagesPerWrite, the run and the
    part allow; then perhaps a ``decompress_wait``, each loaded filter's ``dump_unload`` (registry
    order), and ``resume_complete`` -- or ``resume_failed`` wherever resume stops. One step at a
    time, as on the dump path (``timing`` holds for every record but ``resume``).
    """

    def __init__(self, checker: _Checker, r: Record, line: int) -> None:
        self.c = checker
        self.ctx = checker.ctx
        self.clock = r["t_ns"]
        self.ended = False
        self.n = 0
        self.state = "start"  # start, ready, issued, port, device, done, unloading
        self.chain: list[str] = []
        ctx = self.ctx
        self.readers = [f for f in reversed(ctx.filters) if "dump_read" in ctx.callbacks[f]] if ctx is not None else []
        self.unloaders = [f for f in ctx.filters if "dump_unload" in ctx.callbacks[f]] if ctx is not None else []
        self.unloaded: list[str] = []
        self.failed: str | None = None
        """A dump_read of the read in progress that returned an error: the read does not complete, resume fails."""
        self.stop: str | None = None
        """Why the record before ended resume (a dump_read that failed or broke a rule): only resume_failed may follow."""
        self.offset = self.length = 0
        self.pieces = self._pieces()
        self.want: tuple[int, int] | None = next(self.pieces, None)
        self.last: tuple[int, Record] = (line, r)

    def _pieces(self) -> Iterator[tuple[int, int]]:
        """(partition offset, length) of every read, in file order: each part through the file's runs, as the writes went."""
        ctx = self.ctx
        if ctx is None:
            return
        for _, pos, size in sorted(ctx.parts, key=lambda p: p[1]):
            end = pos + size
            while pos < end:
                k = bisect_right(ctx.file_starts, pos) - 1
                if k < 0:
                    return
                run_file, run_offset, run_len = ctx.file_runs[k]
                n = min(ctx.max_bytes, run_file + run_len - pos, end - pos)
                if n <= 0:
                    return
                yield run_offset + pos - run_file, n
                pos += n

    def v(self, message: str, line: int, r: Record) -> None:
        self.c.v("resume", f"line {line}: {message}", self.last, (line, r))

    def feed(self, r: Record, line: int) -> None:
        """Check one record of the read path."""
        event, layer, t, dur = r["event"], r["layer"], r["t_ns"], r["dur_ns"]
        expect = _RESUME_EVENTS.get(event)
        want_layer = expect[0] if expect is not None else None
        if self.ended:
            self.v(f"a {_short(event)} record after resume ended", line, r)
            return
        if r["dump_type"] != "hibernation":
            self.c.v(
                "dump_type",
                f"line {line}: {_short(layer)}'s {_short(event)} on resume has dump_type {_short(r['dump_type'])}: "
                "resume runs the hibernation stack",
                (line, r),
            )
        stop, self.stop = self.stop, None
        if stop is not None and event != "resume_failed":
            self.v(f"{stop}, but resume went on: it stops there (resume_failed)", line, r)
        hung = (
            event == "resume_failed"
            and self.ctx is not None
            and self.state == "device"
            and len(self.chain) < len(self.readers)
            and t == self.clock + self.ctx.watchdog
        )  # a dump_read the watchdog cut: it left no record, resume failed a watchdog period after it began
        failed = event == "resume_failed" and self.failed is not None and self.state == "device"
        if event == "resume_failed" and stop is None and not hung and not failed and not (self.n == 1 and self.state == "done"):
            self.v(
                "resume_failed without a cause: a dump_read that failed or broke a rule, one the watchdog cut, or a header "
                "(read 1) a filter without read support left encrypted",
                line,
                r,
            )
        if event == "resume":
            if self.state != "start":
                self.v("a second resume record", line, r)
            elif t < self.c.clock:
                self.v(f"resume at {t} ns, before the hibernation ended at {self.c.clock} ns", line, r)
            self._started(line, r)
        elif t != self.clock and not hung:
            self.c.v(
                "timing",
                f"line {line}: {_short(layer)}'s {_short(event)} starts at {t} ns, but the step before it ended at "
                f"{self.clock} ns: one layer runs at a time",
                self.last,
                (line, r),
            )
        if event != "resume":
            if event == "port_init":
                want_layer = "miniport"
                if self.state != "started":
                    self.v("port_init after resume began reading", line, r)
                self.state = "ready"
            elif event == "dump_unload":
                want_layer = "filter"
                self._unload(r, line)
            elif expect is None:
                self.v(f"{_short(layer)}'s {_short(event)} is not a step of resume", line, r)
            else:
                self._step(event, r, line)
            if want_layer == "filter":
                if layer in _CORE:
                    self.v(f"{layer} recorded {event}, a filter callback", line, r)
            elif want_layer is not None and layer != want_layer:
                self.v(f"{event} is recorded by {want_layer}, not by {_short(layer)}", line, r)
        self.clock = t + dur
        self.last = (line, r)

    def _started(self, line: int, r: Record) -> None:
        """The resume record: the image must be whole (every part written: the header, the commit marker, last)."""
        c, ctx = self.c, self.ctx
        self.state = "started"
        if ctx is None:
            self.v("resume without a dump_context: what was written is unknown", line, r)
        elif ctx.event != "hibernate":
            self.v(f"resume after a {ctx.event}: only a hibernation writes an image to resume from", line, r)
        elif c.part_i < len(ctx.parts):
            name = ctx.parts[c.part_i][0]
            self.v(f"resume, but part {name!r} of the image was never written in full (the header is written last)", line, r)

    def _step(self, event: str, r: Record, line: int) -> None:
        """One record of a read, the decompressor's wait, or the end."""
        state = self.state
        if event == "issue_read":
            if state not in ("ready", "done"):
                self.v(f"read {r['request']} issued while {'read ' + str(self.n) if self.n else 'the port'} is not done", line, r)
            if r["request"] != self.n + 1:
                self.v(f"read {r['request']} follows read {self.n}: reads are numbered 1, 2, 3, …", line, r)
            want = self.want
            if want is None:
                self.v(f"read {r['request']} at {r['offset']}+{r['length']}: the whole image was read already", line, r)
            elif (r["offset"], r["length"]) != want:
                self.v(
                    f"read {r['request']} is {r['offset']}+{r['length']}, but the image goes on at {want[0]}+{want[1]} "
                    "(read in file order, header first, in the pieces it was written in)",
                    line,
                    r,
                )
            self.n, self.chain, self.state, self.failed = r["request"], [], "issued", None
            self.offset, self.length = r["offset"], r["length"]
            self.want = next(self.pieces, None)
        elif event in ("miniport_read", "device_read", "dump_read", "read_complete"):
            if r["request"] != self.n or state in ("ready", "done", "started", "unloading"):
                self.v(f"{event} of read {r['request']}, which is not the read in progress", line, r)
                return
            if event == "miniport_read":
                if state != "issued":
                    self.v(f"miniport_read of read {self.n} twice", line, r)
                self.state = "port"
            elif event == "device_read":
                if state != "port":
                    self.v(f"device_read of read {self.n} before its miniport_read", line, r)
                if self.ctx is not None and r["offset"] != self.ctx.partition_offset + self.offset:
                    self.v(
                        f"device_read of read {self.n} at disk offset {r['offset']}, not partition_offset + its offset", line, r
                    )
                self.state = "device"
            elif event == "dump_read":
                name = r["layer"]
                if state != "device":
                    self.v(f"{_short(name)}'s dump_read of read {self.n} before the port read it", line, r)
                k = len(self.chain)
                if name not in self.readers:
                    self.v(f"{_short(name)} registered no dump_read (no read support): it is never called on resume", line, r)
                elif k >= len(self.readers) or self.readers[k] != name:
                    self.v(
                        f"{_short(name)}'s dump_read of read {self.n} out of order: after each read the filters with a "
                        f"dump_read are called nearest the disk first, {self.readers}",
                        line,
                        r,
                    )
                self.chain.append(name)
                if (r["offset"], r["length"]) != (self.offset, self.length):
                    self.stop = (
                        f"{_short(name)}'s dump_read handed back {r['offset']}+{r['length']} for {self.offset}+{self.length}"
                    )
                elif _status_ok(r["status"]) is not True and self.failed is None:
                    # the other filters still get the read; then resume stops instead of completing it
                    self.failed = f"{_short(name)}'s dump_read returned {_short(r['status'])}"
            else:  # read_complete
                if self.failed is not None:
                    self.v(f"read {self.n} completed although {self.failed}: resume stops there (resume_failed)", line, r)
                if state not in ("device",):
                    self.v(f"read {self.n} completed before the device read it", line, r)
                elif self.chain != self.readers:
                    self.v(f"read {self.n} went through {self.chain}; every read goes through {self.readers}", line, r)
                self.state = "done"
        elif event == "decompress_wait":
            if state != "done" or self.want is not None:
                self.v("decompress_wait before the last read completed", line, r)
        elif event == "resume_complete":
            if state not in ("done", "unloading") or self.want is not None:
                self.v("resume_complete before the whole image was read", line, r)
            elif self.unloaded != self.unloaders:
                self.v(
                    f"resume_complete after unloading {self.unloaded}; every loaded filter's dump_unload runs: {self.unloaders}",
                    line,
                    r,
                )
            self.ended = True
        else:  # resume_failed: wherever resume stops
            self.ended = True

    def _unload(self, r: Record, line: int) -> None:
        """dump_unload: after the last read, each filter with one once, in registry order."""
        name = r["layer"]
        if self.state not in ("done", "unloading") or self.want is not None:
            self.v(f"{_short(name)}'s dump_unload before resume read the whole image (unload comes last)", line, r)
        k = len(self.unloaded)
        if k >= len(self.unloaders) or self.unloaders[k] != name:
            self.v(
                f"{_short(name)}'s dump_unload out of turn: the loaded filters unload in registry order, {self.unloaders}",
                line,
                r,
            )
        self.unloaded.append(name)
        self.state = "unloading"


# -- the checker -----------------------------------------------------------------------------

_EVENT_LAYER: Final = {
    "bugcheck": "crashdmp",
    "hibernate": "crashdmp",
    "integrity_check": "crashdmp",
    "dump_context": "crashdmp",
    "issue_write": "crashdmp",
    "write_failed": "crashdmp",
    "write_complete": "crashdmp",
    "dump_complete": "crashdmp",
    "dump_failed": "crashdmp",
    "port_init": "miniport",
    "miniport_write": "miniport",
    "poll_timeout": "miniport",
    "device_write": "device",
    "flush": "device",
    "compress_wait": "compressor",
    **dict.fromkeys(_FILTER_EVENTS, "filter"),
}
"""Which layer records each event ("filter": any filter's service name)."""

_SIGNATURE: Final = {
    event: (
        event in _REQUEST_EVENTS,
        1 if event in _FILTER_EVENTS else 2 if event == "device_write" else 0,
        1 if event == "dump_context" else 2 if event in ("dump_write", "port_init") else 0,
    )
    for event in _EVENT_LAYER
} | {event: (event in _IO_PATH_EVENTS, 0, 1 if event in ("io_device", "io_context", "io_freeze") else 0) for event in _IO_EVENTS}
"""Per event: (has request/offset/length, status 0 null / 1 required / 2 either, detail 0 null / 1 an object / 2 either)."""

_RESUME_EVENTS: Final = {
    "resume": ("winresume", False, 0),
    "issue_read": ("winresume", True, 0),
    "miniport_read": ("miniport", True, 0),
    "device_read": ("device", True, 0),
    "dump_read": ("filter", True, 1),
    "read_complete": ("winresume", True, 0),
    "decompress_wait": ("decompressor", False, 0),
    "resume_complete": ("winresume", False, 0),
    "resume_failed": ("winresume", False, 0),
}
"""The read path's events (after a hibernation's dump ended): (layer, has request/offset/length, status as above)."""
_SIGNATURE.update({event: (numbers, status, 0) for event, (_, numbers, status) in _RESUME_EVENTS.items()})


class _Checker:
    """The rules as one state machine over the records, fed in trace order."""

    def __init__(self) -> None:
        self.records = 0
        self.shown: dict[str, list[Violation]] = {rule: [] for rule in RULES}
        self.counts: dict[str, int] = dict.fromkeys(RULES, 0)
        self.line = 0
        # order
        self.prev_t = -1
        self.prev_seq = 0
        self.skipped = False
        self.seq_before_skip = 0
        # structure
        self.stage = BOOT
        self.event: str | None = None
        self.active: str | None = None
        self.end_line = 0
        # layers
        self.loaded: dict[str, dict[str, int]] = {s: {} for s in _STACKS}
        self.tried: dict[str, set[str]] = {s: set() for s in _STACKS}
        self.ever_loaded: dict[str, set[str]] = {s: set() for s in _STACKS}
        self.load_failed: dict[str, bool] = dict.fromkeys(_STACKS, False)
        self.unsure: dict[str, set[str]] = {s: set() for s in _STACKS}
        """Filters whose DriverEntry status is a name other than STATUS_SUCCESS: the dump_context says whether they loaded."""
        self.ctx: _Context | None = None
        self.writers: tuple[str, ...] = ()
        self.writer_list: list[str] = []
        # start_finish
        self.started: set[str] = set()
        self.finished: set[str] = set()
        self.wrote = False
        # the request in flight
        self.cur = 0
        self.state = IDLE
        self.issue_line = 0
        self.issue_rec: Record = {}
        self.issue_off = self.issue_len = 0
        self.chain: list[str] = []
        self.handed = 0
        self.port_rec: tuple[int, Record] | None = None
        self.port_end = self.port_off = self.port_len = 0
        self.dev_off = self.dev_len = self.dev_end = 0
        self.need_device = 0
        self.device_free: tuple[int, int, Record] | None = None
        self.extents = _Extents()
        self.bytes_written = 0
        # handoff
        self.must_end = 0
        """The line of a filter's dump_write the simulator stops the dump at (a changed length, an unaligned offset)."""
        self.sector = 512
        """The dump_context's sector size (512 until one says otherwise)."""
        # file_position: how much of the dump's parts crashdmp has issued
        self.part_i = 0
        self.part_done = 0
        self.want: tuple[int, int, bool, int, int] | None = None
        """The write crashdmp issues next: (partition offset, length, first of a group, bytes left in its run, bytes
        left in its part), kept up to date write by write (None past the end of the dump or of the file)."""
        self.asked: set[int] = set()
        """Lengths of the groups of writes issued so far (crashdmp asks the filters' declarations once per length)."""
        self.starters: list[str] = []
        self.finishers: list[str] = []
        self.start_i = self.finish_i = 0
        # timing
        self.clock = 0
        """When the last step on the serial path ended (t_ns + dur_ns of the record before)."""
        self.last_rec: Record | None = None
        self.last_line = 0
        self.power_until = INT_LIMIT
        # the normal stack
        self.io: _IoContext | None = None
        self.io_only = False
        """The io_context's event is io: the trace has no dump path at all."""
        self.io_told = False
        self.io_reqs: dict[int, list[int]] = {}
        """Requests on their way: [next step, end of their last record, waited at this step (1; 2 at the device
        after its io_wait), offset, length, the ops its services so far cost what they cost for (a mask of _OPS
        bits; 0 once io_costs found it wrong), the line of the first service that ruled an op out]. At most
        queue_depth of them, plus those the freeze caught."""
        self.io_line = 0
        self.io_rec: Record = {}
        """The io_context's line and record (the evidence of a count it gives that the trace does not bear out)."""
        self.io_broken: set[int] = set()
        """Requests whose path broke a rule once: the rest of it is not judged again."""
        self.io_next = 1
        self.io_max = 0
        """The highest request number of any normal-stack request record."""
        self.io_gap = 0
        """The first request number missing from the trace's numbering (0: none), once io_path said so."""
        self.io_completed = 0
        self.io_done_ends: list[int] = []
        """A heap of the times recent requests completed (the application's window frees then)."""
        self.io_dev_ends: list[int] = []
        """A heap of the times the device finishes the commands it is serving."""
        self.io_dev_waiting = 0
        self.io_last_end = -1
        self.io_prev = (-1, 0, 0)
        """(t_ns, rank of its stage, request) of the last normal-stack request record: ties go by stage, then request."""
        self.io_free: list[int] = []
        """Per step of the path (but the device's): when its layer's last service ended (each is one FIFO server)."""
        self.io_issues: deque[int] = deque()
        """Completion times that have not issued their request yet (the closed loop: one new request per completion)."""
        self.io_early: deque[tuple[int, int, Record]] = deque()
        """New requests seen before the completion that issues them (a completion routine of 0 ns): (t_ns, line, record)."""
        self.freeze: tuple[int, Record, int | None, int | None] | None = None
        """(line, record, its count of requests at the device, its issued count) of the io_freeze."""
        self.event_line = 0
        self.reset_end: int | None = None
        self.wait: tuple[int, Record] | None = None
        """A compress_wait not yet followed by the issue_write it delays: (line, record)."""
        self.moved: set[int] = set()
        """Requests a filter moved (dump_write detail.moved_from): placement lets them land anywhere aligned."""
        self.resume: _Resume | None = None
        """The read path, from its ``resume`` record on (:class:`_Resume`)."""
        self.body_issue: int | None = None
        """When the last write of a compressed body was issued (the compressor's clock, :mod:`stacksim.compressor`)."""
        """When the dump port's reset (port_init) ended, until the first device command after it is checked."""
        handlers = {
            "bugcheck": self._event,
            "hibernate": self._event,
            "integrity_check": self._integrity_check,
            "dump_context": self._dump_context,
            "issue_write": self._issue_write,
            "write_failed": self._write_failed,
            "write_complete": self._write_complete,
            "dump_complete": self._end,
            "dump_failed": self._end,
            "port_init": self._port_init,
            "miniport_write": self._miniport_write,
            "poll_timeout": self._poll_timeout,
            "device_write": self._device_write,
            "flush": self._flush,
            "driver_entry": self._driver_entry,
            "dump_unload": self._dump_unload,
            "dump_start": self._dump_start,
            "dump_write": self._dump_write,
            "dump_finish": self._dump_finish,
            "compress_wait": self._compress_wait,
        }
        self.dispatch = {event: (handler, _EVENT_LAYER[event]) for event, handler in handlers.items()}

    # -- reporting -----------------------------------------------------------------------
    def v(self, rule: str, message: str, *evidence: tuple[int, Record]) -> None:
        """Record a violation of *rule* (kept only while fewer than SHOWN_PER_RULE are)."""
        self.counts[rule] += 1
        if self.counts[rule] <= SHOWN_PER_RULE:
            self.shown[rule].append(Violation(rule, message, tuple(_brief(n, r) for n, r in evidence)))

    def bad(self, line: int, problem: str, raw: bytes | None = None) -> None:
        """A line that is not a record (``format``)."""
        if not self.skipped:  # the next record takes the slow path of the order rule, which forgives the gap
            self.skipped, self.seq_before_skip, self.prev_seq = True, self.prev_seq, -2
        self.counts["format"] += 1
        if self.counts["format"] <= SHOWN_PER_RULE:
            shown = (_raw_brief(line, raw),) if raw is not None else ()
            self.shown["format"].append(Violation("format", f"line {line} {problem}", shown))

    def finish(self) -> tuple[int, list[Violation]]:
        """End of input: the rules that look at the whole trace, then every violation in rule order."""
        if self.need_device:
            self._no_device()
        if self.io is not None:
            self._io_finish()
        if self.io_only:
            pass  # no dump path: nothing of it is missing
        elif not self.records:
            self.v("structure", "the trace has no records: no bugcheck or hibernate record, no dump")
        elif self.stage < ENDED:
            self.v("structure", f"the trace ends at line {self.line} without dump_complete or dump_failed (cut short?)")
        elif self.resume is not None and not self.resume.ended:
            self.v("resume", f"the trace ends at line {self.line} during resume, without resume_complete or resume_failed")
        out = []
        for rule in RULES:
            out += self.shown[rule]
            if self.counts[rule] > SHOWN_PER_RULE:
                out.append(Violation(rule, f"… and {self.counts[rule] - SHOWN_PER_RULE:,} more {rule} violations"))
        return self.records, out

    # -- input -----------------------------------------------------------------------------
    def too_long(self, line: int, size: int) -> None:
        """A line over the cap, skipped unread."""
        self.bad(line, f"is {size:,} bytes long; a record line is at most {MAX_LINE_BYTES:,} bytes")

    def feed_line(self, raw: bytes, line: int) -> None:
        """Parse one line (without its newline) and check it."""
        if line == 1 and raw[:3] == BOM:
            raw = raw[3:]
        if len(raw) <= _SAFE_BYTES or raw.count(b"{") + raw.count(b"[") <= _SAFE_BRACKETS:
            try:
                rec = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                self._not_json(line, raw, str(exc))
                return
        else:  # the stdlib parser counts its depth and raises RecursionError instead of overflowing the stack
            try:
                rec = json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError as exc:
                self.bad(line, f"is not UTF-8 text (byte {exc.start + 1:,} is 0x{raw[exc.start]:02X})", raw)
                return
            except RecursionError:
                self.bad(line, "nests arrays or objects too deeply to be a record", raw)
                return
            except MemoryError:  # pragma: no cover - needs a line near the cap of a pathological kind
                self.bad(line, "is too large to parse", raw)
                return
            except ValueError as exc:  # JSONDecodeError, or an integer of more than 4,300 digits
                self.bad(line, f"is not JSON ({_short(str(exc), 100)})", raw)
                return
        self.feed_record(rec, line, raw)

    def _not_json(self, line: int, raw: bytes, why: str) -> None:
        if not raw.strip():
            self.bad(line, "is blank")
            return
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            self.bad(line, f"is not UTF-8 text (byte {exc.start + 1:,} is 0x{raw[exc.start]:02X})", raw)
            return
        self.bad(line, f"is not JSON ({_short(why, 100)})", raw)

    def feed_record(self, rec: object, line: int, raw: bytes | None = None) -> None:
        """Check one parsed record."""
        # format: the common case in one expression; _shape says what is wrong otherwise
        if type(rec) is dict and len(rec) == 11 and [*rec] == _FIELD_LIST:
            t, seq, layer, event, dur, request, offset, length, dump_type, status, detail = rec.values()
            sig = _SIGNATURE.get(event) if type(event) is str else None
            if sig is None:
                good = False
            else:
                numbers, statuses, details = sig
                good = (
                    type(t) is int
                    and type(seq) is int
                    and type(dur) is int
                    and type(layer) is str
                    and t >= 0
                    and 0 < seq < INT_LIMIT
                    and dur >= 0
                    and t + dur < INT_LIMIT
                    and 0 < len(layer) <= 256
                    and (
                        (
                            type(request) is int
                            and type(offset) is int
                            and type(length) is int
                            and 0 < request < INT_LIMIT
                            and 0 <= offset < INT_LIMIT
                            and 0 <= length < INT_LIMIT
                        )
                        if numbers
                        else (request is None and offset is None and length is None)
                    )
                    and (dump_type is None or type(dump_type) is str)
                    and (
                        status is None
                        if statuses == 0
                        else (type(status) is str and 0 < len(status) <= 64) or (statuses == 2 and status is None)
                    )
                    and (type(detail) is dict if details == 1 else detail is None or (details == 2 and type(detail) is dict))
                )
        else:
            good = False
        if not good:
            problem = _shape(rec)
            if problem is not None:
                self.bad(line, problem, raw)
                return
            assert isinstance(rec, dict)  # _shape says so
            t, seq, layer, event, dump_type = rec["t_ns"], rec["seq"], rec["layer"], rec["event"], rec["dump_type"]
            dur, detail = rec["dur_ns"], rec["detail"]
        # format: no key twice (the parser kept one value); every key is followed by a colon, so as many colons as keys
        # parsed prove it, and only a line with more (a repeated key, or a colon in a string) is parsed again, exactly
        if raw is not None and raw.count(b":") != (11 if detail is None else 11 + _key_count(detail)):
            twice = _repeated_key(raw)
            if twice is not None:
                self.bad(line, f"has the key {_short(twice, 40)} twice in one object: each key of a record appears once", raw)
                return
        r: Record = rec  # type: ignore[assignment]
        self.records += 1
        self.line = line
        # order
        if seq == self.prev_seq + 1 and t >= self.prev_t:
            self.prev_seq, self.prev_t = seq, t
        else:
            self._order(r, line, seq, t)
        # the normal stack's records: exempt from the dump path's rules, judged by their own
        if event in _IO_EVENTS:
            self._io(r, line)
            return
        if self.io_only:
            self.v(
                "normal_stack",
                f"line {line}: {_short(layer)}'s {_short(event)} in a trace of event io, which runs the normal stack alone",
                (line, r),
            )
            return
        # the read path: resume, after a hibernation's dump ended
        if self.resume is not None or (event == "resume" and self.stage == ENDED):
            if self.resume is None:
                self.resume = _Resume(self, r, line)
            self.resume.feed(r, line)
            return
        # structure
        stage = self.stage
        if stage == ENDED:
            self.v(
                "structure", f"line {line}: a {_short(event)} record after the end of the dump (line {self.end_line})", (line, r)
            )
            return
        # timing: one step at a time, each starting when the one before it ended
        if t != self.clock and event != "dump_failed" and event != "bugcheck" and event != "hibernate":
            self._late(r, line)
        if dur and event in _INSTANT:
            self.v("timing", f"line {line}: a {event} lasting {dur} ns: it takes no time (dur_ns 0)", (line, r))
        if t > self.power_until:
            self.v("timing", f"line {line}: a record at {t} ns, after the power failed at {self.power_until} ns", (line, r))
        if self.need_device and event != "device_write" and event != "poll_timeout":
            if event != "dump_failed" or t >= self.port_end:
                self._no_device()
            self.need_device = 0  # else the power failed before the device could start: nothing more ran
        entry = self.dispatch.get(event)
        if entry is None:
            self.v("structure", f"line {line}: {_short(layer)} recorded {_short(event)}, which no layer records", (line, r))
            self.last_rec, self.last_line, self.clock = r, line, t + dur
            return
        handler, kind = entry
        if kind == "filter":
            if layer in _CORE:
                self.v("structure", f"line {line}: {layer} recorded {event}, a filter callback", (line, r))
                self.last_rec, self.last_line, self.clock = r, line, t + dur
                return
        elif layer != kind:
            self.v("structure", f"line {line}: {event} is recorded by {kind}, not by {_short(layer)}", (line, r))
            self.last_rec, self.last_line, self.clock = r, line, t + dur
            return
        if event != "bugcheck" and event != "hibernate":
            if stage == BOOT and event != "driver_entry" and event != "dump_unload" and event != "dump_failed":
                self.v("structure", f"line {line}: {event} before any bugcheck or hibernate record", (line, r))
                self._infer_event(r)
            if (dump_type != self.active or self.stage == BOOT) and not self._dump_type(r, line) and kind == "filter":
                self.last_rec, self.last_line, self.clock = r, line, t + dur
                return  # a record of a stack that is not there: its dump_type or frozen_stack violation says so
        handler(r, line)
        self.last_rec, self.last_line, self.clock = r, line, t + dur

    def _late(self, r: Record, line: int) -> None:
        """The ``timing`` rule for a record that does not start when the step before it ended."""
        prev, t = self.last_rec, r["t_ns"]
        if prev is None:
            self.v("timing", f"line {line}: the first record is at {t} ns: boot starts at 0", (line, r))
            return
        what = f"{_short(prev['layer'])}'s {prev['event']}"
        self.v(
            "timing",
            f"line {line}: {_short(r['layer'])}'s {r['event']} starts at {t} ns, but {what} before it ended at "
            f"{self.clock} ns: one layer runs at a time, each step starts when the one before it ends",
            (self.last_line, prev),
            (line, r),
        )

    def _order(self, r: Record, line: int, seq: int, t: int) -> None:
        """The ``order`` rule for a record that is not the next one in time and seq (or follows a skipped line)."""
        prev_seq, prev_t = (self.seq_before_skip if self.skipped else self.prev_seq), self.prev_t
        if seq != prev_seq + 1 and not (self.skipped and seq > prev_seq):
            if seq <= prev_seq:
                self.v("order", f"line {line}: seq {seq} after seq {prev_seq}: seq numbers repeat or go back", (line, r))
            else:
                self.v(
                    "order",
                    f"line {line}: seq {seq} after seq {prev_seq}: {seq - prev_seq - 1:,} record(s) are missing",
                    (line, r),
                )
        if t < prev_t:
            self.v(
                "order", f"line {line}: t_ns {t} is before the previous record's {prev_t}: not sorted by (t_ns, seq)", (line, r)
            )
        self.prev_t, self.prev_seq, self.skipped = max(t, prev_t), max(seq, prev_seq), False

    # -- event, stacks and dump types ------------------------------------------------------
    def _infer_event(self, r: Record) -> None:
        """No event record came: carry on as if the one the record's dump type implies had."""
        self.stage = EVENT
        dump_type = r["dump_type"]
        if dump_type in _STACKS:
            self.active = dump_type
            self.event = "crash" if dump_type == "crashdump" else "hibernate"

    def _dump_type(self, r: Record, line: int) -> bool:
        """The ``dump_type`` and ``frozen_stack`` rules for one record; False when its stack is not running."""
        dump_type = r["dump_type"]
        if dump_type is None or dump_type not in _STACKS:
            self.v(
                "dump_type",
                f"line {line}: dump_type {_short(dump_type)}: every record carries crashdump or hibernation",
                (line, r),
            )
            return False
        if self.stage == BOOT:
            if dump_type != "crashdump":
                self.v(
                    "dump_type",
                    f"line {line}: a {dump_type} record before the event: only the crash dump stack loads at boot",
                    (line, r),
                )
                return False
            return True
        if self.active is None or dump_type == self.active:
            return True
        if self.active == "hibernation":
            self.v(
                "frozen_stack",
                f"line {line}: {_short(r['layer'])} of the crash dump stack recorded {r['event']} after hibernation started",
                (line, r),
            )
        else:
            self.v(
                "dump_type",
                f"line {line}: a {dump_type} record in a crash dump: every record after the bugcheck is crashdump",
                (line, r),
            )
        return False

    def _event(self, r: Record, line: int) -> None:
        event = "crash" if r["event"] == "bugcheck" else "hibernate"
        if self.stage != BOOT:
            self.v("structure", f"line {line}: a second event record ({r['event']}): a trace has exactly one", (line, r))
            return
        self.stage, self.event, self.event_line = EVENT, event, line
        self.active = "crashdump" if event == "crash" else "hibernation"
        if self.io is not None:
            self._frozen_at(r, line)
        if r["t_ns"] < self.clock:
            self.v(
                "timing",
                f"line {line}: the {r['event']} at {r['t_ns']} ns, before boot ended at {self.clock} ns "
                "(the event comes at its time or, if DriverEntry ran longer, when boot ends)",
                (line, r),
            )
        if r["dump_type"] != self.active:
            self.v(
                "dump_type",
                f"line {line}: the {r['event']} record carries dump_type {_short(r['dump_type'])}, not {self.active}",
                (line, r),
            )

    def _integrity_check(self, r: Record, line: int) -> None:
        if self.event != "crash" or self.stage != EVENT:
            where = "in a hibernation" if self.event == "hibernate" else "other than right after the bugcheck"
            self.v(
                "structure",
                f"line {line}: integrity_check {where}: crashdmp checks the dump context once, at the bugcheck",
                (line, r),
            )
            return
        self.stage = CHECKED

    def _dump_context(self, r: Record, line: int) -> None:
        if self.stage >= CONTEXT:
            self.v("structure", f"line {line}: a second dump_context: a trace has at most one", (line, r))
            return
        if self.event == "crash" and self.stage != CHECKED:
            self.v("structure", f"line {line}: dump_context without the integrity_check that precedes it in a crash", (line, r))
        self.stage = CONTEXT
        ctx, problem, placement = _parse_context(r["detail"])
        if ctx is None:
            self.v("format", f"line {line}: the dump_context {problem}", (line, r))
            return
        for p in placement:
            self.v("placement", f"line {line}: the dump_context's {p}", (line, r))
        if self.event is not None and ctx.event != self.event:
            self.v(
                "structure",
                f"line {line}: the dump_context is for a {ctx.event}, but the trace's event is a {self.event}",
                (line, r),
            )
        event = self.event or ctx.event
        if ctx.target not in _TARGETS[event]:
            self.v(
                "structure",
                f"line {line}: the dump_context's target is the {ctx.target} in a {event}: "
                f"a {event} writes the {' or the '.join(_TARGETS[event])}",
                (line, r),
            )
        if ctx.power_loss is not None:
            if r["t_ns"] > ctx.power_loss:
                self.v(
                    "timing",
                    f"line {line}: the dump_context at {r['t_ns']} ns says the power failed at {ctx.power_loss} ns, before it",
                    (line, r),
                )
            self.power_until = ctx.power_loss
        self.ctx = ctx
        self.sector = ctx.sector
        self._aim(ctx)
        self.writers = tuple(n for n in ctx.filters if "dump_write" in ctx.callbacks[n])
        self.writer_list = list(self.writers)
        self.starters = [n for n in ctx.filters if "dump_start" in ctx.callbacks[n]]
        self.finishers = [n for n in ctx.filters if "dump_finish" in ctx.callbacks[n]]
        if self.active is not None:
            stack, unsure = self.loaded[self.active], self.unsure[self.active]
            for name in [n for n in unsure if n not in ctx.filters]:
                del stack[name]  # its DriverEntry failed after all
                self.ever_loaded[self.active].discard(name)
            unsure.clear()
            loaded = tuple(stack)
            if loaded != ctx.filters:
                self.v(
                    "layers",
                    f"line {line}: the dump_context lists the filters {list(ctx.filters)}, but the trace loaded "
                    f"{list(loaded)} in the {self.active} stack",
                    (line, r),
                )

    def _driver_entry(self, r: Record, line: int) -> None:
        name, stack = r["layer"], r["dump_type"]
        if not (self.stage == BOOT or (self.stage == EVENT and self.event == "hibernate" and stack == "hibernation")):
            self.v("structure", f"line {line}: DriverEntry of {_short(name)} after the stacks were loaded", (line, r))
            return
        if name in self.tried[stack]:
            self.v("layers", f"line {line}: DriverEntry of {_short(name)} ran twice in the {stack} stack", (line, r))
            return
        self.tried[stack].add(name)
        ok = _status_ok(r["status"])
        if ok is not False:
            self.loaded[stack][name] = line
            self.ever_loaded[stack].add(name)
        if ok is None:
            self.unsure[stack].add(name)
        if ok is not True:
            self.load_failed[stack] = True

    def _dump_unload(self, r: Record, line: int) -> None:
        name, stack = r["layer"], r["dump_type"]
        if not (self.stage == BOOT or (self.stage == EVENT and self.event == "hibernate" and stack == "hibernation")):
            self.v("structure", f"line {line}: dump_unload of {_short(name)} while its stack is writing", (line, r))
            return
        if self._loaded(r, line, "dump_unload"):
            del self.loaded[stack][name]

    def _loaded(self, r: Record, line: int, callback: str) -> bool:
        """The ``layers`` rule for a filter's record: loaded in its stack, and (after the context) registered *callback*."""
        name, stack = r["layer"], r["dump_type"]
        if name not in self.loaded[stack]:
            if name in self.ever_loaded[stack]:
                why = "it was unloaded"
            else:
                why = "its DriverEntry failed" if name in self.tried[stack] else "the trace has no DriverEntry of it"
            self.v(
                "layers",
                f"line {line}: {_short(name)} recorded {callback} but is not loaded in the {stack} stack ({why})",
                (line, r),
            )
            return False
        ctx = self.ctx
        if ctx is not None and stack == self.active and callback != "dump_unload" and callback not in ctx.callbacks.get(name, ()):
            self.v(
                "layers",
                f"line {line}: {_short(name)} recorded {callback}, a callback the dump_context does not list for it",
                (line, r),
            )
            return False
        return True

    # -- start, finish and the port --------------------------------------------------------
    def _dump_start(self, r: Record, line: int) -> None:
        name = r["layer"]
        if self.stage != CONTEXT:
            where = "before the dump_context" if self.stage < CONTEXT else "after port_init"
            self.v("structure", f"line {line}: dump_start of {_short(name)} {where}", (line, r))
        else:
            self._fits(r, line)
        if not self._loaded(r, line, "dump_start"):
            return
        if name in self.started:
            self.v("start_finish", f"line {line}: {_short(name)}'s dump_start is called twice", (line, r))
        self.started.add(name)
        self.start_i = self._in_turn(r, line, "dump_start", self.starters, self.start_i)

    def _in_turn(self, r: Record, line: int, callback: str, names: list[str], i: int) -> int:
        """The ``start_finish`` order: *names* call *callback* in registry order; returns the index of the next one."""
        name = r["layer"]
        if i < len(names) and names[i] == name:
            return i + 1
        if name in names:
            self.v(
                "start_finish",
                f"line {line}: {_short(name)}'s {callback} out of registry order (the filters that have it: {names})",
                (line, r),
            )
            return names.index(name) + 1
        return i

    def _fits(self, r: Record, line: int) -> None:
        """The ``outcome`` rule for the first step after the dump_context: a dump that does not fit its file is not written."""
        ctx = self.ctx
        if ctx is not None and ctx.too_small is not None and self.stage == CONTEXT and not self.started:
            self.v(
                "outcome",
                f"line {line}: the dump goes on although it does not fit its file ({ctx.too_small}): crashdmp writes no "
                "dump then, the trace ends with dump_failed",
                (line, r),
            )

    def _port_init(self, r: Record, line: int) -> None:
        self._reset(r, line)
        if self.stage != CONTEXT:
            where = "before the dump_context" if self.stage < CONTEXT else "twice"
            self.v("structure", f"line {line}: port_init {where}", (line, r))
            if self.stage > CONTEXT:
                return
        else:
            self._fits(r, line)
        self.stage = STARTED

    def _dump_finish(self, r: Record, line: int) -> None:
        name = r["layer"]
        if self.stage not in (STARTED, FINISHING) or self.state not in (DONE, IDLE):
            where = f"while request {self.cur} is in flight" if self.stage == STARTED else "out of place"
            self.v("structure", f"line {line}: dump_finish of {_short(name)} {where}: it follows the last write", (line, r))
        else:
            if self.stage == STARTED:
                self._all_issued(r, line, f"{_short(name)}'s dump_finish")
            self.stage = FINISHING
        if not self._loaded(r, line, "dump_finish"):
            return
        if name in self.finished:
            self.v("start_finish", f"line {line}: {_short(name)}'s dump_finish is called twice", (line, r))
        self.finished.add(name)
        self.finish_i = self._in_turn(r, line, "dump_finish", self.finishers, self.finish_i)

    def _all_issued(self, r: Record, line: int, what: str) -> None:
        """The ``structure`` rule for the end of the writes: every byte of every part was issued."""
        ctx = self.ctx
        if ctx is not None and self.part_i < len(ctx.parts):
            name, _, size = ctx.parts[self.part_i]
            left = size - self.part_done + sum(p[2] for p in ctx.parts[self.part_i + 1 :])
            self.v(
                "structure",
                f"line {line}: {what} before the whole dump was written: {left:,} bytes of it, from part {name!r} on, "
                "were never issued",
                (line, r),
            )

    def _flush(self, r: Record, line: int) -> None:
        if self.stage not in (STARTED, FINISHING) or self.state != DONE:
            if self.stage < STARTED or self.state == IDLE:
                why = "before any write completed"
            elif self.stage > FINISHING:
                why = "twice"
            else:
                why = f"while request {self.cur} is in flight"
            self.v("structure", f"line {line}: the device flush {why}: it follows the last write", (line, r))
            return
        if self.stage == STARTED:
            self._all_issued(r, line, "the flush")
        ctx = self.ctx
        if ctx is not None and r["dur_ns"] > ctx.port_timeout:
            self.v(
                "device",
                f"line {line}: the flush lasts {r['dur_ns']} ns, longer than the port's {ctx.port_timeout} ns timeout "
                "(the port gives up polling it then)",
                (line, r),
            )
        self.stage = FLUSHED

    def _end(self, r: Record, line: int) -> None:
        ok = r["event"] == "dump_complete"
        stage = self.stage
        if not ok:
            self._failed_at(r, line)
            chain = self.chain
            if self.state == ISSUED and self.ctx is not None and chain != self.writer_list[: len(chain)]:
                self.v(
                    "filter_order",
                    f"request {self.cur} went through {chain} before the dump failed: the filters with a dump_write "
                    f"are {list(self.writers)}, called in that order",
                    (line, r),
                )
        self.stage, self.end_line = ENDED, line
        if not ok:
            if stage == EVENT and self.active is not None:
                stack = self.active
                tried_any = bool(self.tried[stack]) or stack == "hibernation"
                if tried_any and not self.load_failed[stack]:
                    self.v(
                        "outcome",
                        f"line {line}: dump_failed right after the event, but every DriverEntry of the {stack} stack succeeded",
                        (line, r),
                    )
            return
        if stage != FLUSHED:
            if stage < CONTEXT:
                why = "without a dump_context"
            elif stage == CONTEXT:
                why = "without port_init or a write"
            elif self.state == IDLE:
                why = "without any write"
            elif self.state != DONE:
                why = f"while request {self.cur} had not completed"
            else:
                why = "without the final flush"
            self.v("outcome", f"line {line}: dump_complete {why}", (line, r))
        ctx = self.ctx
        if ctx is not None and self.bytes_written != ctx.dump_bytes:
            self.v(
                "outcome",
                f"line {line}: dump_complete after {self.bytes_written:,} bytes completed; the dump is {ctx.dump_bytes:,} bytes",
                (line, r),
            )
        elif ctx is not None and sum(p[2] for p in ctx.parts) != ctx.dump_bytes:
            self.v(
                "outcome",
                f"line {line}: dump_complete, but the dump_context's parts hold {sum(p[2] for p in ctx.parts):,} of the "
                f"dump's {ctx.dump_bytes:,} bytes: a truncated dump ends with dump_failed",
                (line, r),
            )
        if ctx is not None:
            for name in ctx.filters:
                if "dump_finish" in ctx.callbacks[name] and name not in self.finished:
                    self.v(
                        "start_finish",
                        f"{_short(name)}'s dump_finish does not follow the last completion (line {line})",
                        (line, r),
                    )

    def _failed_at(self, r: Record, line: int) -> None:
        """
        The ``timing`` and ``outcome`` rules for dump_failed: when it may come, after what.

        It comes when the step before it ended, after a step that can fail the dump (or before a
        call the wall-clock guard stopped, which leaves no record); a watchdog period later when a
        crash-mode callback was next (it hung, and left no record); or at the instant the
        dump_context names for the power failure, while a step was running.
        """
        t, clock, prev = r["t_ns"], self.clock, self.last_rec
        if self.stage == BOOT:  # a DriverEntry or Dump_Unload the wall-clock guard stopped at boot
            if t != clock:
                self.v(
                    "timing", f"line {line}: dump_failed during boot at {t} ns; boot's last step ended at {clock} ns", (line, r)
                )
            return
        ctx = self.ctx
        hung_at = clock + ctx.watchdog if ctx is not None and prev is not None and self._hang_next(prev) else None
        if t == clock:
            if prev is not None and not self._fail_next(prev):
                self.v(
                    "outcome",
                    f"line {line}: dump_failed right after {_short(prev['layer'])}'s {prev['event']}, which cannot fail "
                    "the dump and is followed by no call of plugin code",
                    (self.last_line, prev),
                    (line, r),
                )
            return
        if t == hung_at:
            return
        lo = prev["t_ns"] if prev is not None else 0
        hi = clock if hung_at is None else hung_at
        ends = f"the step before it ended at {clock} ns" + ("" if hung_at is None else f" (a hung callback: at {hung_at} ns)")
        if ctx is not None and ctx.power_loss is None:
            self.v("timing", f"line {line}: dump_failed at {t} ns, but {ends}; the power did not fail", (line, r))
        elif ctx is not None and t != ctx.power_loss:
            self.v(
                "timing",
                f"line {line}: dump_failed at {t} ns, but {ends}, and the power failed at {ctx.power_loss} ns",
                (line, r),
            )
        elif not lo <= t < hi:
            self.v(
                "timing",
                f"line {line}: dump_failed at {t} ns, as the power failed, but no step was running then ({ends})",
                (line, r),
            )

    def _fail_next(self, prev: Record) -> bool:
        """Whether a dump_failed may follow *prev* at once: it can fail the dump, or plugin code runs next."""
        event = prev["event"]
        if event in _FILTER_EVENTS or event == "bugcheck" or event == "hibernate" or event == "poll_timeout":
            return True  # (the outcome rule judges a dump_failed right after the event)
        ctx = self.ctx
        if ctx is None:
            return False
        if event == "dump_context":
            return ctx.too_small is not None or bool(self.starters)
        if event == "port_init" or event == "issue_write":
            return bool(self.writers)  # the filters' declarations, or the first dump_write
        if event == "device_write":
            return prev["status"] is not None and _status_ok(prev["status"]) is not True
        if event == "write_complete":
            if self.part_i >= len(ctx.parts):
                return bool(self.finishers)
            want = self.want
            return bool(self.writers) and want is not None and want[2] and want[1] not in self.asked
        if event == "compress_wait":  # the power failed while crashdmp waited for the compressor
            return ctx.power_loss is not None and prev["t_ns"] + prev["dur_ns"] == ctx.power_loss
        if event == "flush":  # a truncated dump, a flush the port gave up on, or one the power failure stopped
            if ctx.power_loss is not None and prev["t_ns"] + prev["dur_ns"] == ctx.power_loss:
                return True
            return sum(p[2] for p in ctx.parts) < ctx.dump_bytes or prev["dur_ns"] == ctx.port_timeout
        return False

    def _hang_next(self, prev: Record) -> bool:
        """Whether a crash-mode callback (dump_start, dump_write, dump_finish) would have followed *prev*."""
        event = prev["event"]
        if event == "dump_context":
            return bool(self.starters) and self.ctx is not None and self.ctx.too_small is None
        if event == "dump_start":
            return self.start_i < len(self.starters)
        if event == "issue_write":
            return bool(self.writers)
        if event == "dump_write":  # (unless that filter broke the write: then the dump stopped there)
            return len(self.chain) < len(self.writers) and not self.must_end
        if event == "write_complete":
            return self.ctx is not None and self.part_i >= len(self.ctx.parts) and bool(self.finishers)
        if event == "dump_finish":
            return self.finish_i < len(self.finishers)
        return False

    # -- the compressor --------------------------------------------------------------------
    def _compress_wait(self, r: Record, line: int) -> None:
        """A wait for compressed bytes: it must delay the next write of a compressed hiberfile's body (checked there)."""
        ctx = self.ctx
        if ctx is None or ctx.compression is None:
            self.v("compression", f"line {line}: a compress_wait, but the dump_context compresses nothing", (line, r))
            return
        if self.wait is not None:
            self.v("compression", f"line {line}: a compress_wait after the one on line {self.wait[0]}", self.wait, (line, r))
        if ctx.power_loss is not None and r["t_ns"] + r["dur_ns"] > ctx.power_loss:
            self.v(
                "compression",
                f"line {line}: a compress_wait until {r['t_ns'] + r['dur_ns']} ns, past the power failure at {ctx.power_loss} ns",
                (line, r),
            )
        self.wait = (line, r)

    def _compressed(self, ctx: _Context, r: Record, line: int, retry: bool) -> None:
        """
        The ``compression`` rule for a write crashdmp issues: a body write waits exactly until its bytes are ready.

        ``issue = max(previous completion, start + cost)``, where the compressor starts on this write
        when the previous one was issued (overlap) or completed, and the cost is the write's share of
        the uncompressed bytes at the rate (:mod:`stacksim.compressor`).
        """
        wait, self.wait = self.wait, None
        t, request = r["t_ns"], r["request"]
        body = ctx.compression is not None and self.part_i < len(ctx.parts) and ctx.parts[self.part_i][0] == "body"
        if retry or not body:
            if wait is not None:
                what = "a retry" if retry else "not a write of the compressed body"
                self.v(
                    "compression", f"line {line}: request {request} waited for the compressor, but it is {what}", wait, (line, r)
                )
            return
        assert ctx.compression is not None
        if wait is not None and wait[1]["request"] != request:
            self.v(
                "compression",
                f"line {line}: the compress_wait on line {wait[0]} is for request {wait[1]['request']}",
                wait,
                (line, r),
            )
        base = wait[1]["t_ns"] if wait is not None else t
        uncompressed, body_bytes, rate, overlap = ctx.compression
        cost = -(-r["length"] * uncompressed * 10**9 // (body_bytes * rate))
        start = self.body_issue if overlap and self.body_issue is not None else base
        ready = max(base, start + cost)
        if t != ready:
            self.v(
                "compression",
                f"line {line}: request {request} issued at {t} ns, but the previous write completed at {base} ns and its "
                f"compressed bytes were ready at {start + cost} ns ({cost} ns of compression from {start} ns): it is "
                f"issued at {ready} ns",
                *([wait] if wait is not None else []),
                (line, r),
            )
        self.body_issue = t

    # -- one write -------------------------------------------------------------------------
    def _issue_write(self, r: Record, line: int) -> None:
        request, offset, length = r["request"], r["offset"], r["length"]
        if self.ctx is not None and (self.ctx.compression is not None or self.wait is not None):
            self._compressed(self.ctx, r, line, self.state == RETRY)
        if self.stage != STARTED:
            if self.stage < CONTEXT:
                why = "before the dump_context"
            elif self.stage == CONTEXT:
                why = "before port_init"
            else:
                why = "after dump_finish or the flush"
            self.v("structure", f"line {line}: request {request} issued {why}", (line, r))
        state, cur = self.state, self.cur
        if state == RETRY:
            if request != cur:
                self.v(
                    "structure",
                    f"line {line}: request {request} issued after request {cur} failed: a retry repeats its number",
                    (line, r),
                )
            elif offset != self.issue_off or length != self.issue_len:
                self.v(
                    "structure",
                    f"line {line}: the retry of request {request} is {offset}+{length}, not {self.issue_off}+{self.issue_len}",
                    (line, r),
                )
        else:
            if state != DONE and state != IDLE:
                self.v(
                    "qd1",
                    f"line {line}: request {request} issued while {cur} is outstanding",
                    (self.issue_line, self.issue_rec),
                    (line, r),
                )
            if request != cur + 1:
                self.v(
                    "structure",
                    f"line {line}: request {request} follows request {cur}: writes are numbered 1, 2, 3, …",
                    (line, r),
                )
        if not self.wrote:
            self.wrote = True
            ctx = self.ctx
            if ctx is not None:
                for name in ctx.filters:
                    if "dump_start" in ctx.callbacks[name] and name not in self.started:
                        self.v("start_finish", f"{_short(name)}'s dump_start does not precede the first write", (line, r))
        ctx = self.ctx
        if ctx is not None:
            want = self.want
            if (
                state != RETRY
                and want is not None
                and offset == want[0]
                and length == want[1]
                and not want[2]
                and length < want[3]
                and length < want[4]
            ):
                # the common case, inlined: a full-size write where the dump goes on (file_position), and the next one
                # in the same run and part; it lies in its run by construction (placement), if not on the sector grid
                if offset % ctx.sector or length % ctx.sector:
                    self._placed(ctx, r, line, "crashdmp issued", offset, length, 0)
                self.part_done += length
                run_left, part_left = want[3] - length, want[4] - length
                n = length if length < run_left else run_left
                if part_left < n:
                    n = part_left
                self.want = (offset + length, n, n != length, run_left, part_left)
            else:
                self._placed(ctx, r, line, "crashdmp issued", offset, length, 0)
                if state != RETRY:
                    self._next_piece(ctx, r, line)
        self.cur, self.state = request, ISSUED
        self.issue_line, self.issue_rec = line, r
        self.issue_off, self.issue_len = offset, length
        self.handed = offset
        self.chain = []

    def _next_piece(self, ctx: _Context, r: Record, line: int) -> None:
        """The ``file_position`` rule for a new write: it is the next piece of the dump, at its place in the file."""
        offset, length = r["offset"], r["length"]
        want = self.want
        if want is None:
            self._off_the_end(ctx, r, line)
            return
        want_offset, want_length, first, run_left, part_left = want
        if first:
            self.asked.add(want_length)
        if offset == want_offset and length == want_length:
            if length < run_left and length < part_left:  # the common case: the next write goes on in this run and part
                self.part_done += length
                run_left -= length
                part_left -= length
                most = ctx.max_bytes
                n = most if most < run_left else run_left
                if part_left < n:
                    n = part_left
                self.want = (offset + length, n, n != most, run_left, part_left)
                return
            covered = length
        else:
            name, file_offset, _ = ctx.parts[self.part_i]
            self.v(
                "file_position",
                f"line {line}: request {r['request']} is {offset}+{length}, but the dump goes on with part {name!r} at file "
                f"offset {file_offset + self.part_done:,}, which is partition offset {want_offset}, for {want_length} bytes "
                "(the file is written in order, each write as long as MaxPagesPerWrite, the run and the part allow)",
                (line, r),
            )
            # a write that starts where the dump goes on covers what it covers (a longer or shorter one is one
            # violation, not one for every write after it); one elsewhere, the dump goes on where it should have
            covered = length if offset == want_offset else want_length
        done = self.part_done + covered
        if done >= ctx.parts[self.part_i][2]:
            self.part_i, self.part_done = self.part_i + 1, 0
        else:
            self.part_done = done
        self._aim(ctx)

    def _aim(self, ctx: _Context) -> None:
        """
        Work out :attr:`want`, the write crashdmp issues next, when *part_done* bytes of part *part_i* are written.

        The part's next file position is mapped through the runs (in file order); the write is as long as
        MaxPagesPerWrite allows, and ends at the end of the run or the part, whichever comes first. A group is
        what crashdmp asks the filters' declarations about at once: the full-size writes of one run of one part,
        or the shorter write after them.
        """
        i, done = self.part_i, self.part_done
        if i >= len(ctx.parts):
            self.want = None
            return
        _, file_offset, size = ctx.parts[i]
        pos = file_offset + done
        k = bisect_right(ctx.file_starts, pos) - 1
        if k < 0 or pos >= ctx.file_size:
            self.want = None
            return
        run_file, run_offset, run_len = ctx.file_runs[k]
        run_left, part_left = run_file + run_len - pos, size - done
        length = min(ctx.max_bytes, part_left, run_left)
        self.want = (
            run_offset + pos - run_file,
            length,
            done == 0 or pos == run_file or length != ctx.max_bytes,
            run_left,
            part_left,
        )

    def _off_the_end(self, ctx: _Context, r: Record, line: int) -> None:
        """The ``file_position`` rule for a new write after the whole dump, or past the end of the file."""
        parts = ctx.parts
        if self.part_i >= len(parts):
            self.v(
                "file_position",
                f"line {line}: request {r['request']} is issued after the whole dump ({sum(p[2] for p in parts):,} bytes of "
                "its parts) was",
                (line, r),
            )
            return
        name, file_offset, _ = parts[self.part_i]
        self.v(
            "file_position",
            f"line {line}: request {r['request']}: part {name!r} goes on at file offset {file_offset + self.part_done:,}, "
            f"past the end of the {ctx.file_size:,}-byte {ctx.target}",
            (line, r),
        )
        self.part_i = len(parts)

    def _dump_write(self, r: Record, line: int) -> None:
        name = r["layer"]
        if not self._loaded(r, line, "dump_write"):
            return
        if self.state != ISSUED or r["request"] != self.cur:
            self.v(
                "structure",
                f"line {line}: {_short(name)}'s dump_write of request {r['request']}, which is not on its way down",
                (line, r),
            )
            return
        chain = self.chain
        if len(chain) <= len(self.writers) + 2:
            chain.append(name)
        if self.must_end:
            self._went_on(r, line)
        offset, length, detail, handed = r["offset"], r["length"], r["detail"], self.handed
        if detail is None:
            if offset != handed:
                self.v(
                    "handoff",
                    f"line {line}: {_short(name)} hands request {r['request']} down at {offset}, but it was handed {handed} "
                    "(a filter that moves a write says where from: detail.moved_from)",
                    (line, r),
                )
        elif detail.keys() != {"moved_from"} or not _int_ok(detail["moved_from"]):
            self.v(
                "format",
                f'line {line}: a dump_write\'s detail is {_short(detail)}: it is null or {{"moved_from": offset}}',
                (line, r),
            )
        elif detail["moved_from"] == handed and offset != handed:
            self.moved.add(r["request"])  # honoured, as Windows does: placement does not hold it to the runs
        elif detail["moved_from"] != handed or offset == handed:
            self.v(
                "handoff",
                f"line {line}: {_short(name)} says it moved request {r['request']} from {detail['moved_from']} to {offset}, "
                f"but it was handed {handed}",
                (line, r),
            )
        if length != self.issue_len or offset % self.sector:
            self.must_end = line  # a filter_violation: the dump stops here
        self.handed = offset

    def _went_on(self, r: Record, line: int) -> None:
        """The ``handoff`` rule after a filter changed a write's length or handed it down unaligned: nothing more runs."""
        self.v(
            "handoff",
            f"line {line}: the write goes on after line {self.must_end}, where a filter changed its length or handed it "
            "down off the sector grid (a violation: the dump stops there with dump_failed)",
            (line, r),
        )
        self.must_end = 0

    def _miniport_write(self, r: Record, line: int) -> None:
        request, offset, length, t = r["request"], r["offset"], r["length"], r["t_ns"]
        if self.state != ISSUED or request != self.cur:
            self.v(
                "structure",
                f"line {line}: the port wrote request {request}, which crashdmp did not issue (in flight: {self.cur})",
                (line, r),
            )
        else:
            if self.must_end:
                self._went_on(r, line)
            chain = self.chain
            # (without a usable dump_context, which filters registered dump_write is unknown)
            if chain != self.writer_list and self.ctx is not None:
                expected = [*self.writers, "miniport"]
                self.v("filter_order", f"request {request} went through {[*chain, 'miniport']}, not {expected}", (line, r))
            if offset != self.handed:
                self.v(
                    "device",
                    f"line {line}: the port wrote request {request} at {offset}, but {self.handed} was handed down to it",
                    (line, r),
                )
            if length != self.issue_len:
                self.v(
                    "device",
                    f"line {line}: the port wrote {length} bytes of request {request}, but {self.issue_len} were issued",
                    (line, r),
                )
        free = self.device_free
        if free is not None and t < free[0]:
            self.v(
                "qd1",
                f"the port started request {request} before the device finished the previous one",
                (free[1], free[2]),
                (line, r),
            )
        ctx = self.ctx
        if ctx is not None:
            if offset != self.issue_off or length != self.issue_len:  # else _issue_write checked these very bytes
                self._placed(ctx, r, line, "the port wrote", offset, length, 0)
            if length > ctx.max_bytes:
                self.v(
                    "placement",
                    f"line {line}: request {request} is {length} bytes, over MaxPagesPerWrite × 4096 = {ctx.max_bytes}",
                    (line, r),
                )
        self.state = PORT
        self.cur = request
        self.port_rec = (line, r)
        self.port_end, self.port_off, self.port_len = t + r["dur_ns"], offset, length
        self.need_device = line

    def _no_device(self) -> None:
        assert self.port_rec is not None
        line, r = self.port_rec
        self.v(
            "device", f"line {line}: the port's write of request {r['request']} is not followed by the device's write", (line, r)
        )
        self.need_device = 0

    def _device_write(self, r: Record, line: int) -> None:
        request, offset, length, t, dur = r["request"], r["offset"], r["length"], r["t_ns"], r["dur_ns"]
        self.device_free = (t + dur, line, r)
        if self.reset_end is not None:
            self._after_reset(r, line)
        if not self.need_device or request != self.cur:
            self.v(
                "device", f"line {line}: the device wrote request {request} without the port's write of it just before", (line, r)
            )
            self.need_device = 0
            return
        self.need_device = 0
        ctx = self.ctx
        if ctx is not None:
            want = ctx.partition_offset + self.port_off
            if offset != want:
                self.v(
                    "device",
                    f"line {line}: the device wrote request {request} at disk offset {offset}, not partition_offset "
                    f"{ctx.partition_offset} + the port's {self.port_off} = {want}",
                    (line, r),
                )
            if offset != want or self.port_off != self.issue_off or length != self.issue_len or not ctx.aligned:
                self._placed(ctx, r, line, "the device wrote", offset, length, ctx.partition_offset)
            # (else these are the bytes crashdmp issued, shifted by an aligned partition_offset: checked then)
            if offset + length > ctx.disk_size:
                self.v(
                    "placement",
                    f"line {line}: the device wrote request {request} past the end of the {ctx.disk_size:,}-byte disk",
                    (line, r),
                )
            if dur > ctx.port_timeout:
                self.v(
                    "device",
                    f"line {line}: the device took {dur} ns for request {request}, longer than the port's "
                    f"{ctx.port_timeout} ns timeout: the port gives up then (a poll_timeout)",
                    (line, r),
                )
        if length != self.port_len:
            self.v(
                "device",
                f"line {line}: the device wrote {length} bytes of request {request}, the port {self.port_len}",
                (line, r),
            )
        if t != self.port_end:
            self.v(
                "device",
                f"line {line}: the device started request {request} at {t} ns, not when the port submitted it ({self.port_end})",
                (line, r),
            )
        status = r["status"]
        self.state = DEVICE_OK if status is None or _status_ok(status) is True else DEVICE_FAILED
        self.dev_off, self.dev_len, self.dev_end = offset, length, t + dur

    def _poll_timeout(self, r: Record, line: int) -> None:
        request = r["request"]
        if self.reset_end is not None:
            self._after_reset(r, line)
        if not self.need_device or request != self.cur:
            self.v(
                "device",
                f"line {line}: a poll_timeout of request {request} without the port's write of it just before",
                (line, r),
            )
            self.need_device = 0
            return
        self.need_device = 0
        if r["offset"] != self.port_off or r["length"] != self.port_len or r["t_ns"] != self.port_end:
            self.v("device", f"line {line}: the poll_timeout of request {request} does not match the port's write", (line, r))
        ctx = self.ctx
        if ctx is not None and r["dur_ns"] != ctx.port_timeout:
            self.v(
                "device",
                f"line {line}: the port polls request {request} for {r['dur_ns']} ns before it gives up; its timeout is "
                f"{ctx.port_timeout} ns",
                (line, r),
            )
        self.state = DEVICE_FAILED

    def _write_failed(self, r: Record, line: int) -> None:
        request = r["request"]
        if self.state != DEVICE_FAILED or request != self.cur:
            self.v("structure", f"line {line}: write_failed for request {request}, whose device write did not fail", (line, r))
            return
        if r["offset"] != self.issue_off or r["length"] != self.issue_len:
            self.v(
                "structure",
                f"line {line}: write_failed of request {request} is {r['offset']}+{r['length']}; crashdmp issued it as "
                f"{self.issue_off}+{self.issue_len}",
                (line, r),
            )
        self.state = RETRY

    def _write_complete(self, r: Record, line: int) -> None:
        request, offset, length, t = r["request"], r["offset"], r["length"], r["t_ns"]
        state = self.state
        if request != self.cur or state != DEVICE_OK:
            if request != self.cur or state in (IDLE, DONE, RETRY):
                self.v("structure", f"line {line}: write_complete for request {request}, which is not in flight", (line, r))
            elif state == DEVICE_FAILED:
                self.v("structure", f"line {line}: request {request} completed, but its device write failed", (line, r))
            else:
                self.v("device", f"line {line}: request {request} completed, but the device never wrote it", (line, r))
            if request == self.cur and state not in (DONE, IDLE):
                self.state = DONE
            return
        if offset != self.port_off or length != self.port_len:
            self.v(
                "device",
                f"line {line}: request {request} completed as {offset}+{length}; the port wrote {self.port_off}+{self.port_len}",
                (line, r),
            )
        if t != self.dev_end:
            self.v(
                "device",
                f"line {line}: request {request} completed at {t} ns, the device finished at {self.dev_end} ns",
                (line, r),
            )
        hit = self.extents.add(self.dev_off, self.dev_off + self.dev_len, request)
        if hit is not None and (request in self.moved or any(n in self.moved for n in range(hit[2], hit[3] + 1))):
            hit = None  # a filter's move put it there: the dump is corrupt, as it would be on Windows (the result warns)
        if hit is not None:
            start, end, first, last = hit
            if first == last:
                self.v("placement", f"requests {first} and {request} overlap", (line, r))
            else:
                self.v(
                    "placement",
                    f"request {request} overlaps disk bytes {start}–{end} that requests {first}–{last} wrote",
                    (line, r),
                )
        self.bytes_written += length
        self.finished.clear()  # a dump_finish must follow the last completion
        self.state = DONE

    def _placed(self, ctx: _Context, r: Record, line: int, who: str, offset: int, length: int, shift: int) -> None:
        """
        The ``placement`` rule for one write: sector aligned, non-empty, inside one disk run.

        A write a filter moved (its ``dump_write`` says ``moved_from``) is honoured wherever it
        goes, as Windows honours it [SRC S24, S26]: only its alignment is checked (the result warns
        about where it went).
        """
        request = r["request"]
        sector = ctx.sector
        if offset % sector or length % sector or length <= 0:
            self.v("placement", f"line {line}: {who} request {request} at {offset}+{length}: it is not sector aligned", (line, r))
        if request in self.moved:
            return
        rel = offset - shift  # ctx.in_run, inlined: this runs three times per write
        i = bisect_right(ctx.run_starts, rel) - 1
        if i < 0 or rel + length > ctx.run_ends[i]:
            where = "disk offset" if shift else "partition offset"
            self.v(
                "placement",
                f"line {line}: {who} request {request} at {where} {offset}+{length}: not inside one disk run of the target file",
                (line, r),
            )

    # -- the normal stack ------------------------------------------------------------------
    def _io(self, r: Record, line: int) -> None:
        """The rules for one normal-stack record (``format``, ``normal_stack``, ``io_path``, ``io_queues``, ``freeze``)."""
        event, layer = r["event"], r["layer"]
        problem = _io_shape(event, r["request"], r["offset"], r["length"], r["dump_type"], r["status"], r["detail"])
        if problem is not None:
            self.v("format", f"line {line} {problem}", (line, r))
            if event in _IO_PATH_EVENTS:
                if r["request"] is None or r["offset"] is None or r["length"] is None:
                    return
            elif type(r["detail"]) is not dict:
                return  # else the rest of the record is judged as it stands
        last = self.last_rec
        if last is not None and last["t_ns"] == r["t_ns"]:
            self.v(
                "order",
                f"line {line}: {_short(layer)}'s {event} after the dump path's {last['event']} at the same instant: "
                "at the same t_ns the normal stack's records come first",
                (self.last_line, last),
                (line, r),
            )
        if event == "io_context":
            self._io_context(r, line)
            return
        if event == "io_freeze":
            self._io_freeze(r, line)
            return
        frozen = self.freeze
        if frozen is not None or self.stage != BOOT:
            when = (
                f"the normal stack froze (line {frozen[0]})" if frozen is not None else f"the bugcheck (line {self.event_line})"
            )
            self.v(
                "freeze",
                f"line {line}: {_short(layer)}'s {event} of request {r['request']} after {when}: nothing of the normal "
                "stack runs after the bugcheck",
                (line, r),
            )
            return
        ctx = self.io
        if ctx is None:
            if not self.io_told:
                self.io_told = True
                self.v("normal_stack", f"line {line}: a normal-stack record without an io_context before it", (line, r))
            return
        request = r["request"]
        if request > self.io_max:
            self.io_max = request
        if request in self.io_broken:
            return
        t = r["t_ns"]
        end = t + r["dur_ns"]
        if end > self.io_last_end:
            self.io_last_end = end
        st = self.io_reqs.get(request)
        if st is None:
            if request < self.io_next:
                self.v(
                    "io_path", f"line {line}: {_short(layer)}'s {event} of request {request}, which completed already", (line, r)
                )
                return
            if request > self.io_next:
                if self.io_gap != self.io_next:  # a gap: said once; the requests after it are not judged
                    self.io_gap = self.io_next
                    self.v(
                        "io_path",
                        f"line {line}: {_short(layer)}'s {event} of request {request}, but request {self.io_next} never "
                        "appeared before it: requests are numbered 1, 2, 3, … in issue order (its records deleted?)",
                        (line, r),
                    )
                return
            self.io_next = request + 1
            ends = self.io_done_ends
            while ends and ends[0] <= t:
                heapq.heappop(ends)
            if len(self.io_reqs) + len(ends) >= ctx.queue_depth:
                self.v(
                    "io_queues",
                    f"line {line}: request {request} is issued at {t} ns with {len(self.io_reqs) + len(ends)} requests "
                    f"outstanding: the application keeps at most queue_depth = {ctx.queue_depth}",
                    (line, r),
                )
            if r["length"] != ctx.block_size:
                self.v(
                    "io_path",
                    f"line {line}: request {request} is {r['length']} bytes; the workload's block_size is {ctx.block_size}",
                    (line, r),
                )
            self._issued(ctx, r, line, request, t)
            self._workload(ctx, r, line, request)
            st = [0, t, 0, r["offset"], r["length"], sum(_OP_BIT[op] for op in ctx.ops), 0, 0]
            self.io_reqs[request] = st
        elif t != st[1] or r["offset"] != st[3] or r["length"] != st[4]:
            why = (
                f"starts at {t} ns, not when its step before ended ({st[1]} ns): a request goes from layer to layer without a gap"
                if t != st[1]
                else f"is {r['offset']}+{r['length']}; it was {st[3]}+{st[4]} so far: a request keeps its offset and length"
            )
            self.v("io_path", f"line {line}: request {request}'s {_short(layer)} {event} {why}", (line, r))
        k, sub = st[0], st[2]
        want_event, want_layer = ctx.steps[k]
        device = k == ctx.device_step
        rank = k if k < ctx.device_step or (device and event == "io_queue") else k + 1
        prev = self.io_prev
        if t == prev[0] and (rank, request) <= (prev[1], prev[2]):
            self.v(
                "order",
                f"line {line}: request {request}'s {_short(layer)} {event} after request {prev[2]}'s record of a "
                "stage as late or later in the path, at the same instant: ties go by stage (top down, then back up), "
                "then request",
                (line, r),
            )
        self.io_prev = (t, rank, request)
        if event == "io_wait":
            ok = (layer == "device" and sub < 2) if device else (layer == want_layer and sub == 0)
            if ok:
                if device:
                    self._admit(ctx, r, line, t)
                    self.io_dev_waiting += 1
                st[2] = 2 if device else 1
        elif event == "io_queue":
            ok = device and sub == 0 and layer == ctx.layers[-2]
            st[2] = 1
        else:
            ok = event == want_event and layer == want_layer
            if ok and st[5]:
                if device:
                    self._op(ctx, st, r, line)
                elif ctx.fit[k].get(r["dur_ns"], 0) & st[5] != st[5]:  # io_costs: not what one of its ops costs
                    self._cost(ctx, st, r, line, k)
            if ok and not device:
                free = self.io_free[k]
                if t < free or (sub and t != free):
                    self.v(
                        "io_queues",
                        f"line {line}: {_short(layer)} starts request {request} at {t} ns; its service before ended at "
                        f"{free} ns: a layer serves one request at a time, in arrival order, and a request that waited "
                        "starts when the one before it ends",
                        (line, r),
                    )
                self.io_free[k] = end
            if ok:
                if device:
                    if sub < 2:
                        self._admit(ctx, r, line, t)
                    else:
                        self.io_dev_waiting -= 1
                    busy = self.io_dev_ends
                    while busy and busy[0] <= t:
                        heapq.heappop(busy)
                    if len(busy) >= ctx.parallelism:
                        self.v(
                            "io_queues",
                            f"line {line}: the device starts request {request} at {t} ns while serving {len(busy)} "
                            f"others: it serves at most device_parallelism = {ctx.parallelism} at once",
                            (line, r),
                        )
                    heapq.heappush(busy, end)
                k += 1
                if k == len(ctx.steps):  # completed: the application has it
                    del self.io_reqs[request]
                    self.io_completed += 1
                    heapq.heappush(self.io_done_ends, end)
                    if self.io_early:
                        self._issue_time(*self.io_early.popleft(), end)
                    else:
                        self.io_issues.append(end)
                    return
                st[0], st[2] = k, 0
        if not ok:
            self.v(
                "io_path",
                f"line {line}: request {request}: {_short(layer)}'s {event}, where its path goes on with {want_layer}'s "
                f"{want_event}{' (after at most one wait there)' if event in ('io_wait', 'io_queue') else ''}",
                (line, r),
            )
            del self.io_reqs[request]
            self.io_broken.add(request)
            return
        st[1] = end

    def _issued(self, ctx: _IoContext, r: Record, line: int, request: int, t: int) -> None:
        """The ``io_path`` rule for a new request: the first queue_depth at 0, each later one when a request completed."""
        if request <= ctx.queue_depth:
            if t:
                self.v(
                    "io_path",
                    f"line {line}: request {request} starts at {t} ns: the application issues its first queue_depth = "
                    f"{ctx.queue_depth} requests at 0 ns",
                    (line, r),
                )
        elif self.io_issues:
            self._issue_time(t, line, r, self.io_issues.popleft())
        else:
            self.io_early.append((t, line, r))

    def _issue_time(self, t: int, line: int, r: Record, done: int) -> None:
        if t != done:
            self.v(
                "io_path",
                f"line {line}: request {r['request']} starts at {t} ns, but the completion that issues it came at {done} ns "
                "(the application issues one request as each completes, in completion order)",
                (line, r),
            )

    def _workload(self, ctx: _IoContext, r: Record, line: int, request: int) -> None:
        """The ``io_workload`` rule for a new request: one the context counts, at a whole block of its region."""
        if request > ctx.issued:
            self.v(
                "io_workload",
                f"line {line}: request {request}, but the io_context (line {self.io_line}) says {ctx.issued} requests "
                "were issued",
                (line, r),
            )
        off, block = r["offset"], ctx.block_size
        rel = off - ctx.region_offset
        if off % ctx.sector:
            why = f"is not sector aligned (not a multiple of the io_context's {ctx.sector}-byte sector_size)"
        elif off + r["length"] > ctx.disk_size:
            why = f"ends at byte {off + r['length']:,}, past the end of the disk (the io_context's disk_size, {ctx.disk_size:,})"
        elif rel < 0 or rel % block or rel // block >= ctx.region_blocks:
            end = ctx.region_offset + ctx.region_blocks * block
            why = (
                f"is not a whole {block:,}-byte block of the workload's region, bytes {ctx.region_offset:,} to {end:,} "
                "(the io_context's region_offset, region_size and block_size)"
            )
        elif ctx.pattern == "sequential-write" and rel // block != (request - 1) % ctx.region_blocks:
            want = ctx.region_offset + (request - 1) % ctx.region_blocks * block
            why = (
                f"is not where a sequential-write puts request {request}: at {want:,} (each request the next block of "
                "the region, from its start, wrapping at its end)"
            )
        else:
            return
        self.v("io_workload", f"line {line}: request {request} at offset {off:,} {why}", (line, r))

    def _op(self, ctx: _IoContext, st: list[int], r: Record, line: int) -> None:
        """At the device: its op is one the workload issues and the one the request's services so far cost what they do for."""
        detail, request = r["detail"], r["request"]
        op = detail.get("op") if type(detail) is dict else None
        if op not in _OPS:
            return  # format says so
        allowed = _PATTERN_OPS[ctx.pattern]
        if op not in allowed or op not in ctx.ops:
            what = (
                f"the io_context's pattern {ctx.pattern} issues only {allowed[0]}s"
                if op not in allowed
                else f"the workload issues only {sorted(ctx.ops)[0]}s (the io_context's ops)"
            )
            self.v("io_workload", f"line {line}: request {request}'s io_device is a {op}, but {what}", (line, r))
            return
        if st[5] & _OP_BIT[op]:
            st[5] = _OP_BIT[op]
            return
        other = next(o for o in ctx.ops if st[5] & _OP_BIT[o])
        k = st[7]
        event, layer = ctx.steps[k]
        self.v(
            "io_costs",
            f"line {line}: request {request}'s io_device is a {op}, but its {layer} {event} (line {st[6]}) lasted "
            f"{ctx.costs[other][k]:,} ns, what a {other} costs there; a {op} costs {ctx.costs[op][k]:,} ns "
            "(the io_context's service_ns)",
            (line, r),
        )
        st[5] = 0

    def _cost(self, ctx: _IoContext, st: list[int], r: Record, line: int, k: int) -> None:
        """
        The ``io_costs`` rule for a service that does not last what step *k* costs for every op the request's mask allows.

        If it lasts what one of them costs, the request is of that op (the mask narrows); else it breaks the rule.
        """
        mask, dur = st[5], r["dur_ns"]
        fits = ctx.fit[k].get(dur, 0) & mask
        if fits:  # fewer ops than before: the first service that tells them apart
            st[5], st[6], st[7] = fits, line, k
            return
        event, layer = ctx.steps[k]
        ops = [op for op in _OPS if mask & _OP_BIT[op]]
        if len({ctx.costs[op][k] for op in ops}) == 1:
            costs = f"{ctx.costs[ops[0]][k]:,} ns for a {' or a '.join(ops)}"
        else:
            costs = " and ".join(f"{ctx.costs[op][k]:,} ns for a {op}" for op in ops)
        if mask == sum(_OP_BIT[op] for op in ctx.ops):
            why = ""
        elif k > ctx.device_step:
            why = f" (the request is a {ops[0]}, as its io_device says)"
        else:
            event0, layer0 = ctx.steps[st[7]]
            why = f" (the request is a {ops[0]}: its {layer0} {event0}, line {st[6]}, cost what only a {ops[0]} costs)"
        self.v(
            "io_costs",
            f"line {line}: request {r['request']}'s {layer} {event} lasts {dur:,} ns, but it costs {costs} there{why}: "
            "each layer spends the same on every request of one op (the io_context's service_ns)",
            (line, r),
        )
        st[5] = 0

    def _admit(self, ctx: _IoContext, r: Record, line: int, t: int) -> None:
        """The ``io_queues`` rule as storport admits a request to the device: at most its queue depth outstanding there."""
        busy = self.io_dev_ends
        while busy and busy[0] <= t:
            heapq.heappop(busy)
        held = len(busy) + self.io_dev_waiting
        if held >= ctx.port_depth:
            self.v(
                "io_queues",
                f"line {line}: request {r['request']} reaches the device at {t} ns with {held} commands outstanding "
                f"there: storport keeps at most storport_queue_depth = {ctx.port_depth}",
                (line, r),
            )

    def _io_context(self, r: Record, line: int) -> None:
        if self.io is not None:
            self.v("normal_stack", f"line {line}: a second io_context: a trace has at most one", (line, r))
            return
        if self.records != 1 or r["t_ns"] or r["dur_ns"]:
            self.v(
                "normal_stack",
                f"line {line}: the io_context is not the trace's first record, at 0 ns, lasting 0 ns",
                (line, r),
            )
        ctx, problem, problems = _parse_io_context(r["detail"])
        if ctx is None:
            self.v("format", f"line {line}: the io_context {problem}", (line, r))
            return
        for p in problems:
            self.v("io_workload", f"line {line}: the io_context says a workload no run issues: {p}", (line, r))
        if r["layer"] != ctx.layers[0]:
            self.v(
                "normal_stack",
                f"line {line}: the io_context is recorded by {_short(r['layer'])}, not by the first of its layers "
                f"({_short(ctx.layers[0])})",
                (line, r),
            )
        self.io, self.io_only, self.io_line, self.io_rec = ctx, ctx.event == "io", line, r
        self.io_free = [0] * len(ctx.steps)

    def _io_freeze(self, r: Record, line: int) -> None:
        ctx, t = self.io, r["t_ns"]
        if ctx is None or ctx.event != "crash-during-io":
            where = "without an io_context" if ctx is None else "of event io"
            self.v(
                "freeze", f"line {line}: an io_freeze in a trace {where}: only a crash during I/O freezes the stack", (line, r)
            )
            return
        if self.freeze is not None:
            self.v("freeze", f"line {line}: a second io_freeze (the first: line {self.freeze[0]})", (line, r))
            return
        if r["layer"] != _KERNEL:
            self.v("normal_stack", f"line {line}: the io_freeze is recorded by {_short(r['layer'])}, not by {_KERNEL}", (line, r))
        if self.stage != BOOT:
            self.v(
                "freeze",
                f"line {line}: the io_freeze comes after the bugcheck (line {self.event_line}): the normal stack "
                "freezes at the bugcheck's instant, before the dump stack runs",
                (line, r),
            )
        if t != ctx.bugcheck or r["dur_ns"]:
            self.v(
                "freeze",
                f"line {line}: the io_freeze at {t} ns lasting {r['dur_ns']} ns: it comes at the io_context's "
                f"bugcheck_ns ({ctx.bugcheck}) and takes no time",
                (line, r),
            )
        if self.io_last_end >= t:
            self.v(
                "freeze",
                f"line {line}: a normal-stack record ends at {self.io_last_end} ns, not before the freeze at {t} ns: "
                "what would end at or after the bugcheck never ends",
                (line, r),
            )
        d = r["detail"]
        by = d.get("by_layer")
        if (
            set(d) != set(_IO_FREEZE_KEYS)
            or not all(_int_ok(d[k]) for k in ("issued", "completed", "lost"))
            or type(by) is not dict
            or not all(_int_ok(n, 1) for n in by.values())
        ):
            self.v(
                "format",
                f"line {line}: the io_freeze's detail is {_short(d)}: it has exactly {', '.join(_IO_FREEZE_KEYS)}: three "
                "integers and an object of layer → requests (≥ 1)",
                (line, r),
            )
            self.freeze = (line, r, None, None)
            return
        issued, completed, lost = d["issued"], d["completed"], d["lost"]
        self.freeze = (line, r, by.get("device", 0), issued)
        problems = []
        if (issued, completed, lost) != (ctx.issued, ctx.completed, ctx.lost):
            problems.append(
                f"{issued} requests issued, {completed} completed, {lost} lost, but the io_context (line {self.io_line}) "
                f"counts {ctx.issued}, {ctx.completed}, {ctx.lost}"
            )
        if lost != issued - completed:
            problems.append(f"{lost} requests lost, but {issued} issued − {completed} completed = {issued - completed}")
        if completed != self.io_completed:
            problems.append(f"{completed} requests completed, but the trace completes {self.io_completed}")
        if self.io_next - 1 > issued:
            problems.append(f"{issued} requests issued, but the trace has request {self.io_next - 1}")
        if sum(by.values()) != lost:
            problems.append(f"{lost} requests lost, but its by_layer counts {sum(by.values())}")
        unknown = [k for k in by if k not in ctx.layers and k != "device"]
        if unknown:
            problems.append(f"requests lost in {_short(unknown)}, which are not layers of the normal stack")
        elif not self.io_broken and not problems:
            problems += self._lost_where(ctx, by, issued)
        for p in problems:
            self.v("freeze", f"line {line}: the io_freeze says {p}", (line, r))

    def _lost_where(self, ctx: _IoContext, by: dict[str, int], issued: int) -> list[str]:
        """
        Where the freeze caught each request, from the trace: at the next step of its path (never seen: the first layer).

        A request bound for the device (its last record the miniport's dispatch) was either still in storport's
        queue or held by the device, so those two layers are judged together.
        """
        steps, dev = ctx.steps, ctx.device_step
        port = ctx.layers[-2]
        at = Counter(steps[st[0]][1] for st in self.io_reqs.values() if st[0] != dev)
        at[ctx.layers[0]] += issued - (self.io_next - 1)
        bound = sum(1 for st in self.io_reqs.values() if st[0] == dev)
        out = []
        for layer in dict.fromkeys([*ctx.layers, "device"]):
            if layer in (port, "device"):
                continue
            if by.get(layer, 0) != at[layer]:
                out.append(f"{by.get(layer, 0)} requests lost in {layer}, but the trace leaves {at[layer]} there")
        if by.get(port, 0) + by.get("device", 0) != at[port] + bound:
            out.append(
                f"{by.get(port, 0) + by.get('device', 0)} requests lost in {port} and the device, but the trace leaves "
                f"{at[port] + bound} there"
            )
        return out

    def _frozen_at(self, r: Record, line: int) -> None:
        """The ``freeze`` rule at the bugcheck of a trace with a normal stack: the io_freeze came just before, at its time."""
        frozen = self.freeze
        if r["event"] != "bugcheck" or self.io_only:
            return  # a hibernation or a dump record in an io trace: normal_stack says so
        if frozen is None:
            self.v(
                "freeze",
                f"line {line}: the bugcheck interrupts the normal stack's I/O, but no io_freeze before it says the "
                "stack froze and what was lost",
                (line, r),
            )
            return
        t, t_freeze = r["t_ns"], frozen[1]["t_ns"]
        if t != t_freeze and not (t_freeze < t == self.clock):  # later only when boot ran past the bugcheck's time
            self.v(
                "freeze",
                f"line {line}: the bugcheck at {t} ns, but the normal stack froze at {t_freeze} ns",
                (frozen[0], frozen[1]),
                (line, r),
            )

    def _reset(self, r: Record, line: int) -> None:
        """The ``reset`` rule at the dump port's port_init: after a crash during I/O it names the commands it dropped."""
        detail, io = r["detail"], self.io
        self.reset_end = r["t_ns"] + r["dur_ns"]
        if io is None or io.event != "crash-during-io":
            if detail is not None:
                self.v(
                    "format",
                    f"line {line}: a port_init with a detail: only the reset after a crash during I/O has one",
                    (line, r),
                )
            return
        if detail is None:
            self.v(
                "reset",
                f"line {line}: the port_init after a crash during I/O does not say which of the normal stack's commands "
                "the reset dropped (its detail is null)",
                (line, r),
            )
            return
        requests = detail.get("requests")
        if (
            detail.keys() != {"dropped", "requests"}
            or not _int_ok(detail["dropped"])
            or type(requests) is not list
            or len(requests) != detail["dropped"]
            or not all(_int_ok(q, 1) for q in requests)
            or any(a >= b for a, b in itertools.pairwise(requests))
        ):
            self.v(
                "format",
                f'line {line}: the port_init\'s detail is {_short(detail)}: it is {{"dropped": n, "requests": [n '
                "ascending request numbers]}",
                (line, r),
            )
            return
        done = [q for q in requests if q < self.io_next and q not in self.io_reqs and q not in self.io_broken]
        if done:
            self.v(
                "reset",
                f"line {line}: the reset drops request {done[0]}, which completed before the bugcheck",
                (line, r),
            )
        frozen = self.freeze
        if frozen is not None and frozen[2] is not None and frozen[3] is not None:
            if len(requests) != frozen[2]:
                self.v(
                    "reset",
                    f"line {line}: the reset drops {len(requests)} commands, but the io_freeze (line {frozen[0]}) lost "
                    f"{frozen[2]} requests at the device",
                    (frozen[0], frozen[1]),
                    (line, r),
                )
            if requests and requests[-1] > frozen[3]:
                self.v(
                    "reset",
                    f"line {line}: the reset drops request {requests[-1]}, but only {frozen[3]} were issued",
                    (line, r),
                )

    def _after_reset(self, r: Record, line: int) -> None:
        """The ``reset`` rule for the first device command after port_init: it starts once the reset ended."""
        assert self.reset_end is not None
        if r["t_ns"] < self.reset_end:
            self.v(
                "reset",
                f"line {line}: the first dump write reaches the device at {r['t_ns']} ns, before the dump port's reset "
                f"ended at {self.reset_end} ns",
                (line, r),
            )
        self.reset_end = None

    def _io_counted(self) -> None:
        """The ``io_workload`` rule at the end of an io run: the trace has every request its io_context counts."""
        ctx, last = self.io, self.io_max
        assert ctx is not None
        if last < ctx.issued:
            seen = f"ends after request {last}" if last else "has none of them"
            gone = (
                f"request {ctx.issued} never appears"
                if last + 1 == ctx.issued
                else f"requests {last + 1} to {ctx.issued} never appear"
            )
            self.v(
                "io_workload",
                f"line {self.io_line}: the io_context says {ctx.issued} requests were issued, but the trace {seen}: "
                f"{gone} (deleted?)",
                (self.io_line, self.io_rec),
            )
        elif not self.io_reqs and not self.io_broken and not self.io_gap and self.io_completed != ctx.completed:
            self.v(
                "io_workload",
                f"line {self.io_line}: the io_context says {ctx.completed} requests completed, but the trace completes "
                f"{self.io_completed}",
                (self.io_line, self.io_rec),
            )

    def _io_finish(self) -> None:
        """End of input: an io run completes every request; a crash during I/O froze the stack."""
        if self.io_only:
            if self.io_reqs:
                first = min(self.io_reqs)
                self.v(
                    "io_path",
                    f"{len(self.io_reqs)} request(s) never complete (the first: request {first}): an io run completes "
                    "every request it issues",
                )
            self._io_counted()
        elif self.freeze is None and self.stage == BOOT:
            self.v("freeze", "the trace of a crash during I/O has no io_freeze (and no bugcheck)")
