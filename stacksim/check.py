"""
An invariant checker that reads only a trace file and judges it against the dump path's rules.

It is written independently of the simulator: it imports nothing from it and knows only the
trace format (``docs/reference/trace-format.md``). Every test run and ``stacksim check
TRACE.jsonl`` apply these rules:

``order``            records are sorted by (t_ns, seq) and seq numbers are unique
``qd1``              one request outstanding: a write is issued only after the previous one
                     completed, and the dump port starts a command only after the device finished
                     the previous one (crash mode is polled and synchronous [DOC S13])
``placement``        every write the port sends is sector aligned, at most MaxPagesPerWrite pages,
                     inside one disk run of the target file, and no two writes overlap
``start_finish``     every loaded filter's dump_start precedes the first write; its dump_finish
                     follows the last completion [DOC S6, S8]
``filter_order``     for every request, the filters' dump_write calls come in registry order, each
                     once, before the port's write
``frozen_stack``     after the bugcheck no layer outside the dump path (crashdmp, the loaded
                     filters, miniport, device) records anything: the normal stack is frozen
``dump_type``        records from the dump path carry the dump type of their stack (crash dump
                     stack: crashdump; hibernation stack: hibernation)
"""

from __future__ import annotations

import itertools
import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["RULES", "Violation", "check_records", "check_trace_file"]

RULES = ("order", "qd1", "placement", "start_finish", "filter_order", "frozen_stack", "dump_type")

Record = dict[str, Any]


@dataclass
class Violation:
    """One broken rule and the records that show it."""

    rule: str
    message: str
    records: list[Record] = field(default_factory=list)

    def render(self) -> str:
        """The message and up to three offending records, one per line."""
        lines = [f"[{self.rule}] {self.message}"]
        lines += ["    " + json.dumps(r, separators=(",", ":")) for r in self.records[:3]]
        if len(self.records) > 3:
            lines.append(f"    … and {len(self.records) - 3} more")
        return "\n".join(lines)


def check_trace_file(path: str) -> tuple[int, list[Violation]]:
    """Read a JSONL trace; return (record count, violations). Malformed lines are violations too."""
    records: list[Record] = []
    problems: list[Violation] = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                problems.append(Violation("order", f"line {n} is not JSON: {exc}"))
                continue
            if not isinstance(rec, dict) or not {"t_ns", "seq", "layer", "event"} <= set(rec):
                problems.append(Violation("order", f"line {n} is not a trace record"))
                continue
            records.append(rec)
    return len(records), problems + check_records(records)


def check_records(records: Iterable[Record]) -> list[Violation]:
    """Apply every rule to *records* (dicts with the trace fields)."""
    recs = list(records)
    out: list[Violation] = []
    out += _order(recs)
    context = next((r for r in recs if r["event"] == "dump_context"), None)
    if context is None:
        return out  # nothing was written: no dump context, no write rules to apply
    detail = context.get("detail") or {}
    filters = [f["name"] for f in detail.get("filters", [])]
    callbacks = {f["name"]: set(f.get("callbacks", [])) for f in detail.get("filters", [])}
    out += _qd1(recs)
    out += _placement(recs, detail)
    out += _start_finish(recs, filters, callbacks)
    out += _filter_order(recs, [f for f in filters if "dump_write" in callbacks[f]])
    event = next((r for r in recs if r["layer"] == "crashdmp" and r["event"] in ("bugcheck", "hibernate")), None)
    if event is not None:
        out += _frozen(recs, event, set(filters))
        out += _dump_type(recs, event, set(filters), context.get("dump_type"))
    return out


def _order(recs: list[Record]) -> list[Violation]:
    out = []
    keys = [(r["t_ns"], r["seq"]) for r in recs]
    bad = [recs[i] for i in range(1, len(recs)) if keys[i] < keys[i - 1]]
    if bad:
        out.append(Violation("order", "records are not sorted by (t_ns, seq)", bad))
    seen: dict[int, Record] = {}
    dupes = []
    for r in recs:
        if r["seq"] in seen:
            dupes.append(r)
        seen[r["seq"]] = r
    if dupes:
        out.append(Violation("order", "sequence numbers repeat", dupes))
    return out


def _qd1(recs: list[Record]) -> list[Violation]:
    out = []
    outstanding: list[Record] = []
    device_free = None
    for r in recs:
        layer, event = r["layer"], r["event"]
        if layer == "crashdmp" and event == "issue_write":
            if outstanding:
                out.append(
                    Violation(
                        "qd1",
                        f"request {r['request']} issued while {outstanding[0]['request']} is outstanding",
                        [outstanding[0], r],
                    )
                )
            outstanding = [r]
        elif layer == "crashdmp" and event in ("write_complete", "write_failed"):
            outstanding = []
        elif layer == "miniport" and event == "miniport_write":
            if device_free is not None and r["t_ns"] < device_free[0]:
                out.append(
                    Violation(
                        "qd1",
                        f"the port started request {r['request']} before the device finished the previous one",
                        [device_free[1], r],
                    )
                )
        elif layer == "device" and event == "device_write":
            device_free = (r["t_ns"] + r["dur_ns"], r)
    return out


def _placement(recs: list[Record], detail: dict[str, Any]) -> list[Violation]:
    out = []
    runs = [(int(o), int(n)) for o, n in detail.get("runs", [])]
    sector = int(detail.get("sector_size", 512))
    limit = int(detail.get("max_pages_per_write", 0)) * 4096
    latest: dict[int, tuple[int, int, Record]] = {}  # a retried request rewrites its own bytes
    for r in recs:
        if r["layer"] != "miniport" or r["event"] != "miniport_write":
            continue
        off, length = r["offset"], r["length"]
        if off % sector or length % sector or length <= 0:
            out.append(Violation("placement", f"request {r['request']} is not sector aligned", [r]))
        if limit and length > limit:
            out.append(
                Violation("placement", f"request {r['request']} is {length} bytes, over MaxPagesPerWrite × 4096 = {limit}", [r])
            )
        if not any(o <= off and off + length <= o + n for o, n in runs):
            out.append(
                Violation(
                    "placement", f"request {r['request']} at {off}+{length} is not inside one disk run of the target file", [r]
                )
            )
        latest[r["request"]] = (off, length, r)
    written = sorted(latest.values(), key=lambda w: w[0])
    for (a_off, a_len, a), (b_off, _, b) in itertools.pairwise(written):
        if a_off + a_len > b_off:
            out.append(Violation("placement", f"requests {a['request']} and {b['request']} overlap", [a, b]))
    return out


def _start_finish(recs: list[Record], filters: list[str], callbacks: dict[str, set[str]]) -> list[Violation]:
    out = []
    first_write = next((i for i, r in enumerate(recs) if r["event"] == "issue_write"), None)
    last_done = max((i for i, r in enumerate(recs) if r["event"] == "write_complete"), default=None)
    completed = any(r["layer"] == "crashdmp" and r["event"] == "dump_complete" for r in recs)
    for name in filters:
        if "dump_start" in callbacks[name] and first_write is not None:
            starts = [i for i, r in enumerate(recs) if r["layer"] == name and r["event"] == "dump_start"]
            if not starts or starts[0] > first_write:
                out.append(
                    Violation("start_finish", f"{name}'s dump_start does not precede the first write", [recs[first_write]])
                )
        if "dump_finish" in callbacks[name] and completed and last_done is not None:
            finishes = [i for i, r in enumerate(recs) if r["layer"] == name and r["event"] == "dump_finish"]
            if not finishes or finishes[-1] < last_done:
                out.append(
                    Violation("start_finish", f"{name}'s dump_finish does not follow the last completion", [recs[last_done]])
                )
    return out


def _filter_order(recs: list[Record], writers: list[str]) -> list[Violation]:
    out = []
    calls: dict[tuple[int, int], list[Record]] = defaultdict(list)
    attempt: dict[int, int] = defaultdict(int)  # a retried write goes through the chain again
    for r in recs:
        request = r["request"]
        if request is None:
            continue
        if r["layer"] == "crashdmp" and r["event"] == "issue_write":
            attempt[request] += 1
        elif (r["layer"] in writers and r["event"] == "dump_write") or r["event"] == "miniport_write":
            calls[request, attempt[request]].append(r)
    for (request, _), seq in calls.items():
        layers = [r["layer"] for r in seq]
        if "miniport" in layers:
            expected = [*writers, "miniport"]
            if layers != expected:
                out.append(Violation("filter_order", f"request {request} went through {layers}, not {expected}", seq))
        elif layers != writers[: len(layers)]:
            out.append(
                Violation("filter_order", f"request {request} went through {layers}, not in registry order {writers}", seq)
            )
    return out


def _frozen(recs: list[Record], event: Record, filters: set[str]) -> list[Violation]:
    allowed = {"crashdmp", "miniport", "device"} | filters
    late = [r for r in recs if (r["t_ns"], r["seq"]) > (event["t_ns"], event["seq"]) and r["layer"] not in allowed]
    return [Violation("frozen_stack", "layers outside the dump path were active after the bugcheck", late)] if late else []


def _dump_type(recs: list[Record], event: Record, filters: set[str], expected: str | None) -> list[Violation]:
    out = []
    boot = [r for r in recs if r["event"] == "driver_entry" and r["t_ns"] < event["t_ns"] and r["dump_type"] != "crashdump"]
    if boot:
        out.append(Violation("dump_type", "filters loaded at boot belong to the crash dump stack (DumpType crashdump)", boot))
    path = {"crashdmp", "miniport", "device"} | filters
    after = [
        r
        for r in recs
        if (r["t_ns"], r["seq"]) >= (event["t_ns"], event["seq"])
        and r["layer"] in path
        and r["dump_type"] is not None
        and r["dump_type"] != expected
    ]
    if after:
        out.append(Violation("dump_type", f"records after the event carry another dump type than {expected!r}", after))
    return out
