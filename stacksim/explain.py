"""
``stacksim explain``: the normal storage stack and the crash dump stack side by side, with the scenario's numbers.

Each row is one layer of the normal (runtime) stack, top down: what it costs per request at run
time, and what stands in for it when the system has crashed -- the dump path bypasses the whole
stack (fact sheet §3.6 [DOC S6c, S6d, S13; WI S20]) -- with what that costs per write. The
numbers come from two short simulated runs of the scenario itself (:func:`explain`): its
``[workload]`` through the normal stack (the default workload when it has none), and its crash
dump with the RAM cut to :data:`SHORT_RAM` (the per-write costs do not depend on the dump's size).

Where BitLocker is on at run time (``[normal_stack] bitlocker``) but no dump filter encrypts the
dump, the explanation says the dump reaches the disk in plaintext: ``fvevol.sys`` is bypassed and
only a dump filter such as ``dumpfve.sys`` can stand in for it [DOC S6c].
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from rich.console import Console
from rich.text import Text

from stacksim.filters import FilterCatalog
from stacksim.layout import TARGET_NAMES
from stacksim.normal_stack import LAYERS, IoResult, run_io
from stacksim.report import RunResult
from stacksim.scenario import Scenario, ScenarioError
from stacksim.simulate import simulate
from stacksim.summary import _field, _safe
from stacksim.units import format_bandwidth, format_bytes, format_ns

__all__ = ["MERMAID_REQUESTS", "SHORT_RAM", "SHORT_REQUESTS", "Explanation", "explain", "mermaid", "render_explanation"]

SHORT_REQUESTS: Final = 2_000
"""Requests of the short normal-stack run that measures the run-time costs (at most; fewer if the workload has fewer)."""

SHORT_RAM: Final = 16 * 2**20
"""RAM of the short crash run that measures the dump path's per-write costs."""


@dataclass(frozen=True, slots=True)
class Row:
    """One layer: its run-time cost per request (modelled, measured) and its dump-mode stand-in (text, per write)."""

    layer: str
    runtime: str
    measured_ns: int | None
    stand_in: str
    dump_ns: int | None


@dataclass(frozen=True, slots=True)
class Explanation:
    """What ``stacksim explain`` shows: the rows, the two short runs and the warnings."""

    scenario: str
    rows: tuple[Row, ...]
    io: IoResult | None
    dump: RunResult
    warnings: tuple[str, ...]
    dump_caveat: str | None = None
    """Why the short crash run's rate is not the whole dump's (a write cache it fits in, runs it does not cross)."""


def explain(s: Scenario, catalog: FilterCatalog) -> Explanation:
    """Measure the scenario's two paths in two short runs and line their layers up."""
    io = _short_io(s)
    dump = simulate(_short_crash(s), catalog)
    n = s.normal_stack
    registry = s.registry.dump_filters
    port = s.dump_port.resolved()
    miniport = f"{port.driver}.sys"
    po = s.layout.partition_offset
    layout = s.file_layout()
    encrypting = [name for name in registry if name == "dumpfve.sys" and s.filter_configs[name].model_dump().get("bitlocker")]
    fve_stand_in = (
        f"{', '.join(encrypting)} (a dump filter) encrypts each write"
        if encrypting
        else "NOTHING encrypts the dump: it reaches the disk in plaintext"
        if n.bitlocker
        else "bypassed; nothing needs to stand in (BitLocker is off)"
    )
    fve_cost = n.fvevol_submit + n.fvevol_complete
    storport = n.storport_submit + n.storport_complete
    crypto = " + crypto" if n.bitlocker else ""

    def measured(*stages: str) -> int | None:
        if io is None:
            return None
        total = 0
        for name in stages:
            layer = next((x for x in io.layers if x.name == name), None)
            if layer is None or not layer.calls:
                return None
            total += layer.residence_ns // layer.calls
        return total

    def per_write(layer: str) -> int | None:
        summary = dump.layers.get(layer)
        return summary.p50_ns if summary is not None and summary.calls else None

    def pair(layer: str, extra: tuple[str, ...] = ()) -> int | None:
        return measured(f"{layer}:submit", *extra, f"{layer}:complete")

    rows = [
        Row(
            "application",
            f"I/O manager builds the IRP: {format_ns(n.application_submit + n.application_complete)}",
            pair("application"),
            "crashdmp.sys writes the dump's own pages, MaxPagesPerWrite at a time",
            per_write("crashdmp"),
        ),
        Row(
            "ntfs.sys",
            f"file offsets → volume offsets: {format_ns(n.ntfs_submit + n.ntfs_complete)}",
            pair("ntfs.sys"),
            f"bypassed: the {layout.target}'s {len(layout.runs):,} disk run{'s' if len(layout.runs) != 1 else ''}, "
            "fixed at boot (no file system at crash time)",
            None,
        ),
        Row(
            "volsnap.sys",
            f"copy-on-write for shadow copies: {format_ns(n.volsnap_submit + n.volsnap_complete)}",
            pair("volsnap.sys"),
            "bypassed: no copy-on-write while the dump is written",
            None,
        ),
        Row(
            "fvevol.sys",
            f"BitLocker {'on' if n.bitlocker else 'off'}: {format_ns(fve_cost)}{crypto}",
            pair("fvevol.sys"),
            fve_stand_in,
            per_write(encrypting[0]) if encrypting else None,
        ),
        Row(
            "volmgr.sys",
            f"volume → partition: {format_ns(n.volmgr_submit + n.volmgr_complete)}",
            pair("volmgr.sys"),
            f"bypassed: crashdmp adds the partition offset ({format_bytes(po)}) to the runs' partition-relative offsets",
            None,
        ),
        Row(
            "partmgr.sys",
            f"partition → disk: {format_ns(n.partmgr_submit + n.partmgr_complete)}",
            pair("partmgr.sys"),
            "bypassed (as volmgr.sys)",
            None,
        ),
        Row(
            "disk.sys",
            f"the class driver builds the SCSI request: {format_ns(n.disk_submit + n.disk_complete)}",
            pair("disk.sys"),
            "bypassed: crashdmp builds each request itself",
            None,
        ),
        Row(
            "storport.sys",
            f"queue depth {n.storport_queue_depth:,}; dispatch + completion {format_ns(storport)}, "
            f"interrupt + DPC {format_ns(n.isr + n.dpc)}: {format_ns(storport + n.isr + n.dpc)}",
            pair("storport.sys", ("storport.sys:queue", "storport.sys:interrupt")),
            "dump_storport.sys: polled, one request at a time (queue depth 1), interrupts and DPCs off",
            None,
        ),
        Row(
            miniport,
            f"builds the device command: {format_ns(n.miniport_submit)}",
            measured(f"{miniport}:submit"),
            f"dump_{miniport}: the same miniport's private copy, loaded at boot",
            per_write("miniport"),
        ),
        Row(
            "device",
            f"{io.device_parallelism:,} command{'s' if io.device_parallelism != 1 else ''} at once"
            if io is not None
            else "several commands at once",
            measured("device"),
            "the same device, one command at a time",
            per_write("device"),
        ),
    ]
    assert [r.layer for r in rows[:8]] == list(LAYERS)  # one row per normal-stack layer, in order
    warnings = []
    if n.bitlocker and not encrypting:
        warnings.append(
            "BitLocker is on at run time ([normal_stack] bitlocker = true) but no dump filter encrypts the dump: "
            "fvevol.sys is bypassed, so the crash dump reaches the disk in plaintext. dumpfve.sys with bitlocker = true "
            "in DumpFilters stands in for it"
        )
    if encrypting and not n.bitlocker:
        warnings.append(
            f"{encrypting[0]} encrypts the dump although BitLocker is off at run time ([normal_stack] bitlocker = false): "
            "the normal path above writes plaintext; set bitlocker = true there to compare like with like"
        )
    return Explanation(s.scenario.name, tuple(rows), io, dump, tuple(warnings), _dump_caveat(s, dump))


def _dump_caveat(s: Scenario, short: RunResult) -> str | None:
    """What the short crash run cannot show: a hibernation's compressor, a write cache it fits in, runs past it."""
    plan = s.dump_plan()
    if plan.hiber is not None and plan.hiber.compressed and short.write_requests:
        from stacksim.compressor import Compressor

        image = plan.hiber
        write = short.max_pages_per_write * 4096
        rate = s.hibernation.compress_rate
        compressor = Compressor(uncompressed_bytes=image.uncompressed_bytes, body_bytes=image.body_bytes, rate=rate, overlap=True)
        cost, path = compressor.cost_ns(write), short.write_latency.p50_ns
        if cost > path:
            return (
                f"a hibernation also compresses the image: a {format_bytes(write)} write carries "
                f"{format_bytes(write * image.uncompressed_bytes // image.body_bytes)} of memory, {format_ns(cost)} at "
                f"{format_bandwidth(rate)}, more than the dump path's {format_ns(path)}, so the "
                "compressor bounds the hibernation; stacksim run gives its rate"
            )
    whole = plan.total_bytes
    if short.dump_bytes >= whole:
        return None  # the short run is the whole dump
    reasons = []
    cache = s.disk.resolved()[2].get("cache", 0)
    if short.bytes_written <= cache < whole:
        reasons.append(f"they fit in the device's {format_bytes(cache)} write cache, the whole {format_bytes(whole)} does not")
    layout = s.file_layout()
    if len(layout.runs) > 1:
        reasons.append(f"the whole dump crosses the {TARGET_NAMES[layout.target]}'s {len(layout.runs):,} disk runs")
    if not reasons:
        return None
    return (
        f"the rate of the first {format_bytes(short.bytes_written)} only: "
        + "; ".join(reasons)
        + "; stacksim run gives the whole dump's"
    )


def _short_io(s: Scenario, requests: int = SHORT_REQUESTS, *, trace: bool = False) -> IoResult | None:
    """The scenario's workload, cut to at most *requests* requests, through the normal stack (``None`` if it cannot run)."""
    w = s.workload
    limit = min(w.request_limit or requests, requests)
    short = s.model_copy(update={"workload": w.model_copy(update={"requests": limit, "duration": None})})
    try:
        return run_io(short, trace=trace)
    except ScenarioError:  # the default workload's region does not fit a tiny disk
        return None


def _short_crash(s: Scenario) -> Scenario:
    """The scenario as a crash (whatever its event) with at most :data:`SHORT_RAM` of RAM."""
    section = s.scenario.model_copy(update={"event": "crash", "hibernate_at": None})
    memory = s.memory.model_copy(update={"ram": min(s.memory.ram, SHORT_RAM)})
    return s.model_copy(update={"scenario": section, "memory": memory})


def render_explanation(e: Explanation, console: Console) -> None:
    """Print each layer's run-time cost and its crash-time stand-in, then the two short runs' headline numbers."""
    _field(console, "", "stacksim explain · scenario ", (_safe(e.scenario, 200), "bold"), " · the normal stack, top down")
    for r in e.rows:
        console.print(Text(_safe(r.layer, 100), style="bold"))
        measured = f"; measured {format_ns(r.measured_ns)} per request" if r.measured_ns is not None else ""
        _field(console, "  run time", _safe(r.runtime, 300) + measured)
        per_write = f": {format_ns(r.dump_ns)} per write" if r.dump_ns is not None else ""
        _field(console, "  crash", _safe(r.stand_in, 300) + per_write)
    _field(console, "", "measured: mean time a request spends in the layer, both ways, queueing included; per write: p50")
    if e.io is not None and e.io.completed:
        h = e.io.latency
        _field(
            console,
            "normal path",
            f"{float(e.io.iops):,.0f} IOPS, {format_bandwidth(float(e.io.throughput))} at queue depth {e.io.queue_depth:,}, "
            f"p50 {format_ns(h.percentile(50))} per request ({e.io.completed:,} requests)",
        )
    d = e.dump
    if d.write_requests and d.dump_time_ns and d.write_latency.busy_ns:
        writing = d.bytes_written * 10**9 / d.write_latency.busy_ns
        once = format_ns(d.dump_time_ns - d.write_latency.busy_ns)
        _field(
            console,
            "dump path",
            f"{format_bandwidth(writing)} while writing, polled at queue depth 1, p50 {format_ns(d.write_latency.p50_ns)} "
            f"per write of ≤ {format_bytes(d.max_pages_per_write * 4096)} ({d.write_requests:,} writes of a "
            f"{format_bytes(d.bytes_written)} dump; {once} more went once to the controller reset, start-up and the final flush)",
        )
        if e.dump_caveat is not None:
            _field(console, "", ("caution:", "yellow"), " " + e.dump_caveat)
    elif d.status != "ok":
        _field(console, "dump path", f"{d.status}: {_safe(d.message)}")
    for w in e.warnings:
        _field(console, "", ("warning:", "yellow"), " " + w)


MERMAID_REQUESTS: Final = 2
"""Requests of each path the Mermaid diagram shows (the first ones: the rest repeat them)."""


def mermaid(s: Scenario, catalog: FilterCatalog, requests: int = MERMAID_REQUESTS) -> str:
    """
    A Mermaid sequence diagram of the first *requests* of each path, from simulated traces.

    One diagram: the normal stack's first requests through every layer and back (a short ``io``
    run of the scenario's workload, its trace), a note for the bugcheck, then the crash dump's
    first writes through crashdmp, each dump filter and the dump port (a short crash run, its
    trace). Every arrow is one record of a trace, labelled with the request, what it carries and
    its simulated time.
    """
    participants: dict[str, str] = {}
    lines: list[str] = []

    def who(name: str) -> str:
        if name not in participants:
            participants[name] = f"p{len(participants)}"
        return participants[name]

    def arrow(src: str, dst: str, label: str, reply: bool = False) -> None:
        lines.append(f"    {who(src)}{'-->>' if reply else '->>'}{who(dst)}: {_mermaid_text(label)}")

    _normal_arrows(s, requests, who, arrow)
    lines.append(f"    Note over {who('crashdmp.sys')}: bugcheck: the normal stack is bypassed, crashdmp writes the dump")
    _dump_arrows(s, catalog, requests, arrow)
    head = ["sequenceDiagram", f"    title {_mermaid_text(s.scenario.name)}: the first requests of each path"]
    head += [f"    participant {pid} as {_mermaid_text(name)}" for name, pid in participants.items()]
    return "\n".join([*head, *lines]) + "\n"


def _mermaid_text(text: str) -> str:
    """*text* safe in a Mermaid label: no line breaks, no ``;`` or ``#`` (Mermaid's statement and entity marks)."""
    return _safe(text, 200).replace(";", ",").replace("#", "no. ").replace("\n", " ")


def _normal_arrows(s: Scenario, requests: int, who: Any, arrow: Any) -> None:
    """The normal stack's first *requests*, down and back up, from a short traced ``io`` run."""
    io = _short_io(s, requests, trace=True)
    if io is None:
        return
    for name in (*LAYERS, f"{s.dump_port.resolved().driver}.sys", "device"):  # top down, as the table shows them
        who(name)
    previous: dict[int, str] = {}
    for t, stage, event, _dur, request, _offset, length in io.trace:
        if event != "service":
            continue
        layer = stage.partition(":")[0]
        up = stage.endswith((":complete", ":interrupt"))
        src = previous.get(request, "application")
        if src != layer:
            what = "completion" if up else f"{format_bytes(length)} request"
            arrow(src, layer, f"#{request + 1} {what} at {format_ns(t)}", reply=up)
        previous[request] = layer


def _dump_arrows(s: Scenario, catalog: FilterCatalog, requests: int, arrow: Any) -> None:
    """The crash dump's first *requests* writes, from a short traced crash run."""
    from stacksim.trace import ListTrace

    trace = ListTrace()
    simulate(_short_crash(s), catalog, trace=trace)
    port = f"dump_{s.dump_port.resolved().driver}.sys"
    last: str | None = None
    for r in trace.records:
        request = r["request"]
        if request is None or request > requests:
            continue
        event, layer = r["event"], r["layer"]
        label = f"#{request} {format_bytes(r['length'])} at {format_ns(r['t_ns'])}"
        if event == "issue_write":
            last = "crashdmp.sys"
        elif event == "dump_write":
            assert last is not None
            arrow(last, f"dump_{layer}", label + " (Dump_Write)")
            last = f"dump_{layer}"
        elif event == "miniport_write":
            assert last is not None
            arrow(last, port, label + " (polled)")
            last = port
        elif event == "device_write":
            arrow(port, "device", label)
        elif event == "write_complete":
            arrow("device", "crashdmp.sys", f"#{request} done at {format_ns(r['t_ns'])}", reply=True)
