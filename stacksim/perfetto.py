"""
Perfetto / Chrome trace export: a run's trace records as Trace Event JSON, for ui.perfetto.dev and chrome://tracing.

The file is the Trace Event Format's *JSON Object Format* [S70]: ``{"traceEvents": [...],
"displayTimeUnit": "ns", "otherData": {...}}``, one event per line. It is written from the same
records as the JSON-lines trace (``docs/reference/trace-format.md``), either while a run goes
(:class:`PerfettoTrace` is a trace sink: ``stacksim run --perfetto``) or from a trace file
(:func:`convert`: ``stacksim perfetto TRACE.jsonl``); the same records and limit give the same
bytes either way. What it holds (``docs/how-to/open-a-run-in-perfetto.md``):

* **Processes** (``ph: "M"``, ``process_name`` and ``process_sort_index``): the normal storage
  stack (pid 1), the crash dump stack (pid 2) and the hibernation stack (pid 3), each only when
  the trace has records of it (by the record's ``dump_type``: null, ``crashdump``,
  ``hibernation``).
* **One track per layer** (a thread: ``thread_name``, ``thread_sort_index``), in stack order, and
  tids in the same order (pid × 10,000 + rank), for viewers that sort threads by tid. The dump
  stacks: ``crashdmp``, each filter (in the order they first appear: load order, which is
  registry order), ``miniport``, ``device``; above ``crashdmp``, when the trace has them,
  ``winresume``, ``decompressor`` and ``compressor`` (sorted first by ``thread_sort_index``;
  their tids come from the top of the range, so a viewer sorting by tid puts them after
  ``miniport``). The normal stack: per layer of its ``io_context``,
  top down, a ``dispatch`` track (``io_submit``), ``storport.sys interrupt`` (``io_interrupt``)
  and a ``completion`` track (``io_complete``) -- each a FIFO server of its own, so its slices
  never overlap -- then ``device 1``, ``device 2``, … (the device serves several commands at
  once: each command goes on the lowest-numbered lane free when it starts), then ``ntoskrnl.exe``.
* **One complete slice** (``ph: "X"``) per request per layer, named after the record's event,
  with ``request``, ``offset``, ``length`` and the exact ``t_ns`` / ``dur_ns`` as args. On a dump
  stack crashdmp's slice is the request's whole life, ``issue_write`` to ``write_complete`` (or
  ``write_failed``: a retry is a new attempt, ``attempt`` 2, 3, … in the args), with crashdmp's
  own cost as ``issue_ns``; the others are the layer's own record. On the normal stack a wait
  (``io_wait``, storport's ``io_queue``) is no slice of its own: it is ``wait_ns`` /
  ``queued_ns`` on the slice the request waited for.
* **Flow arrows** linking one request's slices in path order (the v2 flows of the format:
  ``bind_id`` with ``flow_out`` / ``flow_in`` on the slices themselves): down a dump stack; down
  the normal stack, through the device and back up.
* Every other record (``driver_entry``, ``bugcheck``, ``port_init``, ``dump_start``, ``flush``,
  …) is a slice on its layer's track when it lasts (``dur_ns`` > 0) and an instant
  (``ph: "i"``) when it does not; ``bugcheck`` and ``hibernate`` are global instants (a line
  across every track). Its status and detail are args (long lists and large objects counted,
  not copied).
* **A counter** (``ph: "C"``) of the bytes completed: ``written`` on a dump stack (the lengths of
  ``write_complete``), ``completed`` on the normal stack (the application's ``io_complete``).

**The limit.** Requests numbered 1 to *limit* are drawn in full on each stack; later ones are
summarised: no slices, no flows, only the counter, sampled each time another 1/1,000 of the
bytes the context record expects (``dump_bytes``; ``issued`` × ``block_size``) has completed
(every 1 MiB without a context record), and its last value before the stack's next record that
is no request's (the flush) or the end. An instant marks where the summary starts.

**Time.** ``ts`` and ``dur`` are microseconds, as the format wants; they are written as exact
decimals of the nanosecond integers (``11031.189``), so no precision is lost however long the run.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any, Final

import orjson

from stacksim._io import CappedReader, InputError, json_safe, shorten, terminal_safe
from stacksim._version import __version__
from stacksim.trace import FIELDS

__all__ = [
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "PerfettoError",
    "PerfettoStats",
    "PerfettoTrace",
    "convert",
    "parse_limit",
]

DEFAULT_LIMIT: Final = 10_000
"""Requests drawn in full on each stack by default: about 10 MB of JSON for a dump through one filter, 43 MB of normal I/O."""

MAX_LIMIT: Final = 1_000_000
"""The largest ``--perfetto-limit``: a million dump writes are about 1 GB of JSON, more than a browser opens comfortably."""

SUMMARY_SAMPLES: Final = 1_000
"""Counter samples for the summarised requests: one each time another 1/SUMMARY_SAMPLES of the expected bytes completed."""

FALLBACK_STEP: Final = 2**20
"""The summary's sampling step, bytes, on a stack whose trace has no context record saying how many bytes to expect."""

MAX_LINE_BYTES: Final = 16 * 2**20
"""The longest trace line read, bytes (the checker's cap: ``stacksim.check.MAX_LINE_BYTES``)."""

CHUNK_BYTES: Final = 2**20
"""How much of a trace file is read at a time."""

MAX_LANES: Final = 256
"""Device lanes on the normal stack; a device serving more commands at once puts the rest on the lane that frees first."""

_ABOVE_CRASHDMP: Final = ("winresume", "decompressor", "compressor")
"""Layers above crashdmp on the dump stacks' processes, top down (their tids come from the top of the range)."""

MAX_RANK: Final = 10_000
"""Tracks per process (a rank is a track's place in stack order; tid = pid × MAX_RANK + rank)."""

PROCESSES: Final = {
    None: (1, "normal storage stack"),
    "crashdump": (2, "crash dump stack"),
    "hibernation": (3, "hibernation stack"),
}
"""Each record's ``dump_type`` → (pid, process name); the pid is also the process's sort index."""

_STAGES: Final = {
    "io_submit": (0, "dispatch"),
    "io_context": (0, "dispatch"),
    "io_interrupt": (1, "interrupt"),
    "io_complete": (2, "completion"),
}
"""The normal stack's events → (rank within the layer, track name suffix); any other event goes on the layer's own track (3)."""

_KERNEL: Final = "ntoskrnl.exe"
_GLOBAL: Final = frozenset({"bugcheck", "hibernate"})
"""Instants drawn across every track."""

_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


def _json(value: object) -> str:
    """Compact JSON with every invisible character escaped (:func:`stacksim._io.json_safe`)."""
    return json_safe(_encode(value))


def _us(ns: int) -> str:
    """*ns* nanoseconds as an exact decimal number of microseconds: ``11031189`` → ``11031.189``."""
    whole, part = divmod(ns, 1000)
    return str(whole) if part == 0 else f"{whole}.{part:03d}".rstrip("0")


def _brief(value: object, depth: int = 0) -> object:
    """A record's detail as an arg: scalars as they are (long strings cut), short lists and small objects kept, others counted."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str):
        return shorten(value, 200)
    if isinstance(value, list):
        return [_brief(v, depth + 1) for v in value] if len(value) <= 32 and depth < 4 else f"{len(value):,} items"
    if isinstance(value, dict):
        if len(value) > 64 or depth >= 4:
            return f"{len(value):,} keys"
        return {shorten(str(k), 100): _brief(v, depth + 1) for k, v in value.items()}
    return shorten(repr(value), 200)


class PerfettoError(ValueError):
    """Records that cannot be drawn (more layers than tracks); :func:`convert` names the line."""


@dataclass(frozen=True, slots=True)
class PerfettoStats:
    """What a finished export holds: its events, the records read, and per stack the requests and the bytes counted."""

    events: int
    records: int
    limit: int
    stacks: tuple[tuple[str, int, int], ...]
    """(process name, highest request number, bytes completed) per stack, by pid."""


# -- the per-stack state ------------------------------------------------------------------------


@dataclass(slots=True)
class _Attempt:
    """One attempt of one dump request, held until it ends so its slices go out together, in stack order."""

    request: int
    attempt: int
    start: int | None = None
    issue_ns: int = 0
    offset: int | None = None
    length: int | None = None
    slices: list[tuple[str, str, int, int, dict[str, Any]]] = field(default_factory=list)


@dataclass(slots=True)
class _Process:
    """One stack: its tracks, its counter, and (dump stacks) the attempts in flight or (the normal stack) the requests' flows."""

    pid: int
    name: str
    counter: str
    tids: dict[str, int] = field(default_factory=dict)
    filters: int = 0
    extra: dict[str, int] = field(default_factory=dict)
    layers: dict[str, int] = field(default_factory=dict)
    first_layer: str = "application"
    lanes: list[int] = field(default_factory=list)
    expected: int | None = None
    total: int = 0
    counting: bool = False
    next_sample: int = 0
    pending: int | None = None
    highest: int = 0
    summarised: bool = False
    attempts: dict[int, _Attempt] = field(default_factory=dict)
    failures: dict[int, int] = field(default_factory=dict)
    flows: dict[int, int] = field(default_factory=dict)
    waits: dict[int, dict[str, int]] = field(default_factory=dict)

    def step(self) -> int:
        """The summary's sampling step, bytes."""
        if self.expected is None or self.expected <= 0:
            return FALLBACK_STEP
        return max(1, -(-self.expected // SUMMARY_SAMPLES))


# -- the writer ---------------------------------------------------------------------------------


class PerfettoTrace:
    """
    A trace sink that writes Trace Event JSON to *stream*: drawn in full up to request *limit* on each stack.

    Feed it every record in trace order (:meth:`emit`, the fields of
    :data:`stacksim.trace.FIELDS`), then call :meth:`close`, which writes what is still held and
    the end of the file. Memory stays bounded by the requests in flight.
    """

    def __init__(self, stream: IO[str], limit: int = DEFAULT_LIMIT) -> None:
        self._write = stream.write
        self._limit = limit
        self._procs: dict[int, _Process] = {}
        self._sep = ""
        self._events = 0
        self._records = 0
        self._flow = 0
        self._write('{"traceEvents":[\n')

    # -- output --------------------------------------------------------------------------------

    def _put(self, event: str) -> None:
        self._write(self._sep + event)
        self._sep = ",\n"
        self._events += 1

    def _meta(self, pid: int, tid: int | None, name: str, args: dict[str, Any]) -> None:
        where = f'"pid":{pid}' if tid is None else f'"pid":{pid},"tid":{tid}'
        self._put(f'{{"name":"{name}","ph":"M",{where},"args":{_json(args)}}}')

    def _slice(self, name: str, cat: str, t: int, dur: int, pid: int, tid: int, args: dict[str, Any], flow: str = "") -> None:
        self._put(
            f'{{"name":{_json(name)},"cat":"{cat}","ph":"X","ts":{_us(t)},"dur":{_us(dur)},'
            f'"pid":{pid},"tid":{tid}{flow},"args":{_json(args)}}}'
        )

    def _instant(self, name: str, cat: str, t: int, pid: int, tid: int, args: dict[str, Any], scope: str = "t") -> None:
        self._put(
            f'{{"name":{_json(name)},"cat":"{cat}","ph":"i","s":"{scope}","ts":{_us(t)},'
            f'"pid":{pid},"tid":{tid},"args":{_json(args)}}}'
        )

    def _new_flow(self) -> int:
        self._flow += 1
        return self._flow

    @staticmethod
    def _flow_fields(bind: int, into: bool, out: bool) -> str:
        return f',"bind_id":{bind}' + (',"flow_in":true' if into else "") + (',"flow_out":true' if out else "")

    # -- processes and tracks ------------------------------------------------------------------

    def _proc(self, dump_type: str | None) -> _Process:
        pid, name = PROCESSES[dump_type]
        proc = self._procs.get(pid)
        if proc is None:
            proc = _Process(pid, name, "completed" if dump_type is None else "written")
            self._procs[pid] = proc
            self._meta(pid, None, "process_name", {"name": name})
            self._meta(pid, None, "process_sort_index", {"sort_index": pid})
        return proc

    def _track(self, proc: _Process, key: str, rank: int, sort: int | None = None) -> int:
        """The tid of track *key* of *proc*, created at *rank* on first use (*sort*: its place, if not *rank*)."""
        tid = proc.tids.get(key)
        if tid is None:
            if not 0 <= rank < MAX_RANK:
                raise PerfettoError(f"the {proc.name} has more layers than the {MAX_RANK:,} tracks a stack may have")
            tid = proc.pid * MAX_RANK + rank
            proc.tids[key] = tid
            self._meta(proc.pid, tid, "thread_name", {"name": key})
            self._meta(proc.pid, tid, "thread_sort_index", {"sort_index": rank if sort is None else sort})
        return tid

    def _dump_track(self, proc: _Process, layer: str) -> int:
        """A dump stack's track for *layer*: crashdmp first, the filters in the order they appear, the port, the device."""
        tid = proc.tids.get(layer)
        if tid is not None:
            return tid
        if layer in _ABOVE_CRASHDMP:  # hibernation's compressor, resume's loader and decompressor: drawn above crashdmp
            k = _ABOVE_CRASHDMP.index(layer)
            return self._track(proc, layer, MAX_RANK - 3 - k, sort=k - len(_ABOVE_CRASHDMP))
        if layer == "crashdmp":
            rank = 0
        elif layer == "miniport":
            rank = MAX_RANK - 2
        elif layer == "device":
            rank = MAX_RANK - 1
        else:
            proc.filters += 1
            rank = proc.filters if proc.filters < MAX_RANK - 2 else MAX_RANK
        return self._track(proc, layer, rank)

    def _layer_index(self, proc: _Process, layer: str) -> int:
        """*layer*'s place on the normal stack: its index in the io_context's layers, else after all of them (64 on)."""
        index = proc.layers.get(layer)
        if index is None:
            index = proc.extra.get(layer)
            if index is None:
                index = proc.extra[layer] = 64 + len(proc.extra)
        return index

    def _normal_track(self, proc: _Process, layer: str, event: str) -> int:
        """The normal stack's track for *event* at *layer*: dispatch, interrupt, completion or the layer's own."""
        stage, suffix = _STAGES.get(event, (3, ""))
        key = f"{layer} {suffix}" if suffix else layer
        tid = proc.tids.get(key)
        if tid is not None:
            return tid
        if layer == _KERNEL:
            rank = MAX_RANK - 10 + stage
        else:
            index = self._layer_index(proc, layer)
            rank = 10 * index + stage if index < 800 else MAX_RANK
        return self._track(proc, key, rank)

    def _lane(self, proc: _Process, t: int, dur: int) -> int:
        """The device lane for a command from *t* lasting *dur*: the lowest-numbered lane free at *t*."""
        lanes = proc.lanes
        j = next((i for i, end in enumerate(lanes) if end <= t), None)
        if j is None:
            if len(lanes) < MAX_LANES:
                j = len(lanes)
                lanes.append(0)
            else:
                j = min(range(len(lanes)), key=lanes.__getitem__)
        lanes[j] = max(lanes[j], t + dur)
        return self._track(proc, f"device {j + 1}", 9000 + j)

    # -- the counter ---------------------------------------------------------------------------

    def _counter_tid(self, proc: _Process) -> int:
        if proc.pid == 1:
            return self._normal_track(proc, proc.first_layer, "io_submit")
        return self._dump_track(proc, "crashdmp")

    def _sample(self, proc: _Process, t: int) -> None:
        self._put(
            f'{{"name":"{proc.counter}","ph":"C","ts":{_us(t)},"pid":{proc.pid},"tid":{self._counter_tid(proc)},'
            f'"args":{{"bytes":{proc.total}}}}}'
        )
        proc.pending = None
        step = proc.step()
        proc.next_sample = (proc.total // step + 1) * step

    def _request_seen(self, proc: _Process, t: int, request: int) -> bool:
        """Note *request* on *proc* (the counter starts at 0 with the first); whether it is drawn in full."""
        if not proc.counting:
            proc.counting = True
            self._sample(proc, t)
        proc.highest = max(proc.highest, request)
        if request <= self._limit:
            return True
        if not proc.summarised:
            proc.summarised = True
            self._instant(
                "later requests as counters only",
                "limit",
                t,
                proc.pid,
                self._counter_tid(proc),
                {"perfetto_limit": self._limit, "from_request": request},
            )
        return False

    def _completed(self, proc: _Process, t: int, length: int | None, drawn: bool) -> None:
        proc.total += length or 0
        if drawn or proc.total >= proc.next_sample:
            self._sample(proc, t)
        else:
            proc.pending = t

    def _settle(self, proc: _Process) -> None:
        """Write the counter's last value if a summarised completion left it unwritten."""
        if proc.pending is not None:
            self._sample(proc, proc.pending)

    # -- records -------------------------------------------------------------------------------

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
        """Take one record (the fields of :data:`stacksim.trace.FIELDS`); ``seq`` is not used: records come in trace order."""
        self._records += 1
        proc = self._proc(dump_type)
        if request is None:
            self._phase(proc, t_ns, layer, event, dur_ns, offset, length, status, detail)
        elif dump_type is None:
            self._io(proc, t_ns, layer, event, dur_ns, request, offset, length, status, detail)
        else:
            self._write_record(proc, t_ns, layer, event, dur_ns, request, offset, length, status, detail)

    def _phase(
        self,
        proc: _Process,
        t: int,
        layer: str,
        event: str,
        dur: int,
        offset: int | None,
        length: int | None,
        status: str | None,
        detail: dict[str, Any] | None,
    ) -> None:
        """A record of no request: a slice when it lasts, an instant when it does not."""
        self._settle(proc)
        if event == "dump_failed" and proc.attempts:
            # A write still in flight when crashdmp gave up (a call that hung: it left no record) lasted
            # until now: its crashdmp slice spans the hang, so the timeline shows where the time went.
            for request in sorted(proc.attempts):
                attempt = proc.attempts.pop(request)
                last = max([attempt.start or 0, *(x + d for _, _, x, d, _ in attempt.slices)])
                self._end_attempt(proc, attempt, max(t, last), "unfinished")
        if detail is not None:
            self._context(proc, event, detail)
        tid = self._normal_track(proc, layer, event) if proc.pid == 1 else self._dump_track(proc, layer)
        args: dict[str, Any] = {"t_ns": t, "dur_ns": dur}
        if offset is not None or length is not None:
            args |= {"offset": offset, "length": length}
        if status is not None:
            args["status"] = shorten(status, 200)
        if detail is not None:
            args["detail"] = _brief(detail)
        if dur > 0:
            self._slice(event, "phase", t, dur, proc.pid, tid, args)
        else:
            self._instant(event, "phase", t, proc.pid, tid, args, "g" if event in _GLOBAL else "t")

    def _context(self, proc: _Process, event: str, detail: dict[str, Any]) -> None:
        """What a context record tells the export: the bytes to expect; on the normal stack, its layers in order."""
        if event == "dump_context":
            expected = detail.get("dump_bytes")
            if type(expected) is int:
                proc.expected = expected
        elif event == "io_context" and proc.pid == 1:
            issued, block = detail.get("issued"), detail.get("block_size")
            if type(issued) is int and type(block) is int:
                proc.expected = issued * block
            layers = detail.get("layers")
            if isinstance(layers, list) and layers and all(isinstance(x, str) for x in layers) and not proc.tids:
                for i, name in enumerate(layers[:64]):
                    proc.layers.setdefault(name, i)
                proc.first_layer = layers[0]

    def _write_record(
        self,
        proc: _Process,
        t: int,
        layer: str,
        event: str,
        dur: int,
        request: int,
        offset: int | None,
        length: int | None,
        status: str | None,
        detail: dict[str, Any] | None,
    ) -> None:
        """A dump request's record: held in its attempt until crashdmp sees it complete or fail."""
        if not self._request_seen(proc, t, request):
            if event == "write_complete":
                self._completed(proc, t, length, drawn=False)
            return
        attempts = proc.attempts
        if event == "issue_write":
            if request in attempts:  # issued again without a completion or failure in between
                self._end_attempt(proc, attempts.pop(request), None, "unfinished")
            attempts[request] = _Attempt(request, proc.failures.get(request, 0) + 1, t, dur, offset, length)
            return
        attempt = attempts.get(request)
        if attempt is None:  # a request crashdmp did not issue (in this trace)
            attempt = attempts[request] = _Attempt(request, proc.failures.get(request, 0) + 1)
        if event in ("write_complete", "write_failed"):
            del attempts[request]
            if event == "write_failed":
                proc.failures[request] = attempt.attempt
            self._end_attempt(proc, attempt, t, "complete" if event == "write_complete" else "failed")
            if event == "write_complete":
                self._completed(proc, t, length, drawn=True)
            return
        args: dict[str, Any] = {"request": request}
        if attempt.attempt > 1:
            args["attempt"] = attempt.attempt
        args |= {"offset": offset, "length": length, "t_ns": t, "dur_ns": dur}
        if status is not None:
            args["status"] = shorten(status, 200)
        if detail is not None:
            args["detail"] = _brief(detail)
        attempt.slices.append((layer, event, t, dur, args))

    def _end_attempt(self, proc: _Process, attempt: _Attempt, end: int | None, outcome: str) -> None:
        """Write an attempt's slices in stack order, crashdmp's spanning it, linked by one flow."""
        chain: list[tuple[str, int, int, int, dict[str, Any]]] = []
        if attempt.start is not None:
            if end is None:
                end = max([attempt.start + attempt.issue_ns, *(t + d for _, _, t, d, _ in attempt.slices)])
            args: dict[str, Any] = {"request": attempt.request}
            if attempt.attempt > 1:
                args["attempt"] = attempt.attempt
            args |= {
                "offset": attempt.offset,
                "length": attempt.length,
                "t_ns": attempt.start,
                "dur_ns": end - attempt.start,
                "issue_ns": attempt.issue_ns,
                "outcome": outcome,
            }
            chain.append(("write", self._dump_track(proc, "crashdmp"), attempt.start, end - attempt.start, args))
        for layer, event, t, dur, args in attempt.slices:
            chain.append((event, self._dump_track(proc, layer), t, dur, args))
        bind = self._new_flow() if len(chain) > 1 else 0
        for i, (name, tid, t, dur, args) in enumerate(chain):
            flow = self._flow_fields(bind, i > 0, i < len(chain) - 1) if bind else ""
            self._slice(name, "dump", t, dur, proc.pid, tid, args, flow)

    def _io(
        self,
        proc: _Process,
        t: int,
        layer: str,
        event: str,
        dur: int,
        request: int,
        offset: int | None,
        length: int | None,
        status: str | None,
        detail: dict[str, Any] | None,
    ) -> None:
        """A normal-stack request's record: its slice now (records come in time order), linked to the request's last."""
        final = event == "io_complete" and layer == proc.first_layer
        if not self._request_seen(proc, t, request):
            if final:
                self._completed(proc, t, length, drawn=False)
            return
        if event in ("io_wait", "io_queue"):
            proc.waits.setdefault(request, {})["queued_ns" if event == "io_queue" else "wait_ns"] = dur
            return
        tid = self._lane(proc, t, dur) if event == "io_device" else self._normal_track(proc, layer, event)
        args: dict[str, Any] = {"request": request, "offset": offset, "length": length, "t_ns": t, "dur_ns": dur}
        args |= proc.waits.pop(request, {})
        if status is not None:
            args["status"] = shorten(status, 200)
        if detail is not None:
            args["detail"] = _brief(detail)
        bind = proc.flows.get(request)
        if bind is None:
            flow = ""
            if not final:
                bind = proc.flows[request] = self._new_flow()
                flow = self._flow_fields(bind, False, True)
        elif final:
            del proc.flows[request]
            flow = self._flow_fields(bind, True, False)
        else:
            flow = self._flow_fields(bind, True, True)
        self._slice(event, "io", t, dur, proc.pid, tid, args, flow)
        if final:
            self._completed(proc, t, length, drawn=True)

    # -- the end -------------------------------------------------------------------------------

    def close(self) -> PerfettoStats:
        """Write the attempts still held (unfinished), each counter's last value, and the end of the file."""
        for pid in sorted(self._procs):
            proc = self._procs[pid]
            for request in sorted(proc.attempts):
                self._end_attempt(proc, proc.attempts[request], None, "unfinished")
            proc.attempts.clear()
            self._settle(proc)
        stacks = tuple((p.name, p.highest, p.total) for _, p in sorted(self._procs.items()))
        other = {
            "stacksim_version": __version__,
            "perfetto_limit": self._limit,
            "records": self._records,
            "stacks": [
                {"name": name, "requests": n, "requests_in_full": min(n, self._limit), "bytes": total}
                for name, n, total in stacks
            ],
        }
        self._write(f'\n],\n"displayTimeUnit":"ns",\n"otherData":{_json(other)}}}\n')
        return PerfettoStats(self._events, self._records, self._limit, stacks)


# -- the limit and trace files ------------------------------------------------------------------


def parse_limit(text: str, option: str = "--perfetto-limit") -> int:
    """
    The number of requests to draw in full, from the command line: 0 to :data:`MAX_LIMIT`.

    Raises:
        ValueError: one sentence naming *option*, what was given and what is allowed.
    """
    digits = text.strip().replace("_", "").replace(",", "")
    if not (digits.isascii() and digits.isdigit()) or len(digits) > 7 or int(digits) > MAX_LIMIT:
        raise ValueError(
            f"{option} {terminal_safe(shorten(text, 40))!r}: give the number of requests to draw in full on each stack, "
            f"a whole number from 0 to {MAX_LIMIT:,} (default {DEFAULT_LIMIT:,}); later requests are summarised as counters"
        )
    return int(digits)


_FIELD_SET: Final = frozenset(FIELDS)
_FIELD_LIST: Final = list(orjson.loads(orjson.dumps(dict.fromkeys(FIELDS))))
"""FIELDS as orjson's own key strings: it caches keys, so comparing a parsed record's keys with these is an identity test."""
_INT_LIMIT: Final = 2**63
_BOM: Final = b"\xef\xbb\xbf"


def _lines(stream: CappedReader, name: str) -> Iterator[tuple[int, bytes]]:
    """The lines of *stream* (without their newlines), numbered from 1; a line over :data:`MAX_LINE_BYTES` is an error."""
    n = 0
    carry = b""
    while chunk := stream.read(CHUNK_BYTES):
        lines = chunk.split(b"\n")
        lines[0] = carry + lines[0]
        carry = lines.pop()
        for raw in lines:
            n += 1
            if len(raw) > MAX_LINE_BYTES:
                raise _bad(name, n, f"is {len(raw):,} bytes long; a trace line is at most {MAX_LINE_BYTES:,} bytes")
            yield n, raw
        if len(carry) > MAX_LINE_BYTES:
            raise _bad(name, n + 1, f"is more than {MAX_LINE_BYTES:,} bytes long; a trace line is at most that")
    if carry:
        yield n + 1, carry


def _bad(name: str, line: int, problem: str) -> InputError:
    return InputError(
        f"{name}: line {line:,} {problem}; each line of a trace is one record of docs/reference/trace-format.md "
        "(as `stacksim run --trace` writes it)"
    )


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return {dict: "an object", list: "an array", str: "a string", int: "an integer", float: "a number"}.get(type(value), "?")


def _parse(raw: bytes, name: str, n: int) -> tuple[Any, ...]:
    """Line *n* of trace *name* as a record's fields in :data:`FIELDS` order, each of its type; else an :class:`InputError`."""
    if n == 1 and raw.startswith(_BOM):
        raw = raw[3:]
    if not raw.strip():
        raise _bad(name, n, "is blank")
    shallow = len(raw) <= 512 or raw.count(b"{") + raw.count(b"[") <= 64
    try:  # orjson has no nesting limit (a C stack overflow); the stdlib parser counts its depth
        rec = orjson.loads(raw) if shallow else json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise _bad(name, n, f"is not UTF-8 text (byte {exc.start + 1:,} is 0x{raw[exc.start]:02X})") from None
    except RecursionError:
        raise _bad(name, n, "nests arrays or objects too deeply to be a record") from None
    except ValueError as exc:  # orjson's and json's decode errors, an integer of more than 4,300 digits
        raise _bad(name, n, f"is not JSON ({terminal_safe(shorten(str(exc), 80))})") from None
    if type(rec) is dict and [*rec] == _FIELD_LIST:  # the common case (keys in stacksim's order) in one expression
        values = tuple(rec.values())
        t, seq, layer, event, dur, request, offset, length, dump_type, status, detail = values
        if (
            type(t) is type(seq) is type(dur) is int
            and t >= 0
            and 0 <= seq < _INT_LIMIT
            and dur >= 0
            and t + dur < _INT_LIMIT
            and type(layer) is type(event) is str
            and 0 < len(layer) <= 256
            and 0 < len(event) <= 256
            and (request is None or (type(request) is int and 0 <= request < _INT_LIMIT))
            and (offset is None or (type(offset) is int and 0 <= offset < _INT_LIMIT))
            and (length is None or (type(length) is int and 0 <= length < _INT_LIMIT))
            and (dump_type is None or (type(dump_type) is str and dump_type in PROCESSES))
            and (status is None or type(status) is str)
            and (detail is None or type(detail) is dict)
        ):
            return values
    return _checked(rec, name, n)


def _checked(rec: object, name: str, n: int) -> tuple[Any, ...]:
    """*rec* (parsed line *n*) checked field by field: its values in :data:`FIELDS` order, or an error naming what is wrong."""
    if type(rec) is not dict:
        raise _bad(name, n, f"is {_kind(rec)}, not a record (a JSON object)")
    if rec.keys() != _FIELD_SET:
        missing = [k for k in FIELDS if k not in rec]
        unknown = [terminal_safe(shorten(str(k), 40)) for k in rec if k not in _FIELD_SET]
        what = (f"lacks {', '.join(missing)}" if missing else "") + (" and " if missing and unknown else "")
        raise _bad(name, n, what + (f"has unknown key {', '.join(unknown[:3])}" if unknown else ""))
    for key in ("t_ns", "seq", "dur_ns"):
        value = rec[key]
        if type(value) is not int or not 0 <= value < _INT_LIMIT:
            raise _bad(name, n, f"has {key} {_kind(value)} {shorten(repr(value), 40)}; it is an integer from 0 to 2^63 - 1")
    if rec["t_ns"] + rec["dur_ns"] >= _INT_LIMIT:
        raise _bad(name, n, "ends after 2^63 - 1 ns (t_ns + dur_ns)")
    for key in ("request", "offset", "length"):
        value = rec[key]
        if value is not None and (type(value) is not int or not 0 <= value < _INT_LIMIT):
            raise _bad(
                name, n, f"has {key} {_kind(value)} {shorten(repr(value), 40)}; it is null or an integer from 0 to 2^63 - 1"
            )
    for key in ("layer", "event"):
        value = rec[key]
        if type(value) is not str or not 1 <= len(value) <= 256:
            raise _bad(name, n, f"has {key} {_kind(value)}; it is a string of 1 to 256 characters")
    if not (rec["dump_type"] is None or (type(rec["dump_type"]) is str and rec["dump_type"] in PROCESSES)):
        raise _bad(
            name, n, f"has dump_type {terminal_safe(shorten(repr(rec['dump_type']), 40))}; it is null, crashdump or hibernation"
        )
    if rec["status"] is not None and type(rec["status"]) is not str:
        raise _bad(name, n, f"has status {_kind(rec['status'])}; it is null or a string")
    if rec["detail"] is not None and type(rec["detail"]) is not dict:
        raise _bad(name, n, f"has detail {_kind(rec['detail'])}; it is null or an object")
    return tuple(rec[k] for k in FIELDS)


def convert(stream: CappedReader, name: str, out: IO[str], limit: int = DEFAULT_LIMIT) -> PerfettoStats:
    """
    Read the JSON-lines trace *stream* (opened with :func:`stacksim._io.open_input`) and write it to *out* as Trace Event JSON.

    *name* is the file as messages show it. The trace is read once, 1 MiB at a time; each line
    must be one record with every field of its type (a UTF-8 byte-order mark before the first is
    accepted). Rules of the dump path are not checked (``stacksim check`` does): any sequence of
    well-formed records is drawn.

    Raises:
        InputError: an empty file, or a malformed line (naming the file and the line).
    """
    writer = PerfettoTrace(out, limit)
    n = 0
    for n, raw in _lines(stream, name):
        values = _parse(raw, name, n)
        try:
            writer.emit(*values)
        except PerfettoError as exc:
            raise _bad(name, n, f"cannot be drawn: {exc}") from None
    if n == 0:
        raise InputError(f"{name}: the trace file is empty; `stacksim run SCENARIO --trace FILE` writes one")
    return writer.close()
