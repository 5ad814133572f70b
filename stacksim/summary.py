"""
What the terminal shows: the summary of ``stacksim run`` and the tables of ``stacksim devices`` and ``stacksim filters``.

The rules every line here keeps (``docs/reference/cli.md``, "What `run` prints"):

- **Every number has a unit**, or is a count that names what it counts ("21,847 writes"; the
  ``calls`` column). Times are shown in readable units (``format_ns``: "2 s", never
  "2,000,000,000 ns"); a duration written in raw nanoseconds in a simulator message is shown the
  same way here (the result JSON keeps the message exact).
- **A number is never split from its unit.** Summary lines are wrapped here, not by rich: a
  number and its unit are glued, lines break only between such pieces, and continuation lines are
  indented under the value. Table cells that hold quantities never wrap; a cell that lists several
  quantities breaks between them when the table would not fit. Device preset names are never cut.
- **Share** is one definition everywhere: a layer's busy time as a percentage of the dump time
  (:meth:`RunResult.share_percent`; the JSON's ``bottleneck_share_percent``).
- **Text from input** (scenario and filter names, messages, warnings, plugin paths and errors)
  goes through :func:`stacksim._io.terminal_safe` and is printed as rich ``Text``, never parsed as
  markup.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Final

from rich import box
from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

from stacksim._io import shorten, terminal_safe
from stacksim._version import __version__
from stacksim.filters import FilterCatalog
from stacksim.metrics import LATENCY_KEYS
from stacksim.simulate import RunResult
from stacksim.units import format_bandwidth, format_bytes, format_ns, with_article

if TYPE_CHECKING:
    from stacksim.extract import Survey

__all__ = ["print_devices", "print_extracted", "print_filters", "readable", "render", "render_survey"]

LABEL_WIDTH: Final = 12
"""Summary labels ("status", "dump time", ...) are padded to this many columns; values start after them."""

_GLUE: Final = "\u00a0"
"""Marks a space that must not break a line (between a number and its unit); printed as a plain space."""

_UNITS: Final = (
    *("GB/s", "MB/s", "kB/s", "B/s", "GiB/s", "MiB/s", "KiB/s"),
    *("ns", "µs", "μs", "ms", "s", "min"),
    *("B", "kB", "MB", "GB", "TB", "KiB", "MiB", "GiB", "TiB", "PiB"),
    *("bytes", "byte", "writes", "write", "reads", "read", "pages", "page", "calls", "call", "records", "record"),
    *("requests", "request", "retries", "retry", "points", "IOPS", "%", "×", "rpm", "zones"),
    *("commands", "command", "channels", "channel", "runs", "run", "sectors", "sector"),
)
"""Words that, after a number, are its unit or say what it counts: the space before them never breaks."""
_NUMBER_UNIT = re.compile(r"(?<=\d) (?=(?:" + "|".join(re.escape(u) for u in _UNITS) + r")(?![\w/]))")
_BEFORE_NUMBER = re.compile(r"(?<=[≤≥<>=~≈#]) (?=\d)")
_RAW_NS = re.compile(r"(?<![\w.,])(\d{1,3}(?:,\d{3})+|\d+) ns\b")


def readable(text: str) -> str:
    """
    *text* with every duration written in raw nanoseconds shown in a readable unit.

    >>> readable("power lost 3,000,000,000 ns after the start; 850 ns later")
    'power lost 3 s after the start; 850 ns later'
    """
    return _RAW_NS.sub(lambda m: format_ns(int(m.group(1).replace(",", ""))), text)


def _safe(text: str, limit: int = 2000) -> str:
    """Text from input, escaped for the terminal and cut to *limit* characters."""
    return shorten(terminal_safe(text), limit)


def _glued(text: str) -> str:
    """*text* with the spaces between a number and its unit (and after ≤, #, ...) made unbreakable."""
    return _BEFORE_NUMBER.sub(_GLUE, _NUMBER_UNIT.sub(_GLUE, text))


def _plain(text: Text) -> Text:
    """*text* with its glue marks turned back into spaces (same length, so styles stay in place)."""
    out = text.copy()
    out.plain = text.plain.replace(_GLUE, " ")
    return out


def _wrap(label: str, value: Text, width: int, indent: int = LABEL_WIDTH) -> list[Text]:
    """
    The lines that print *label* and *value* within *width* columns.

    *value* breaks only at plain spaces (glued pieces stay whole); continuation lines are indented
    by *indent* (2 on a console too narrow for that). A piece wider than a whole line gets a line
    of its own and rich folds it.
    """
    indent = indent if width >= indent + 28 else 2
    lines: list[Text] = []
    line = Text(label.ljust(LABEL_WIDTH) if label else "")
    fresh = True  # nothing on the current line but its label or indent
    for word in value.split(" "):
        if not word.plain:
            continue
        if not fresh and cell_len(line.plain) + 1 + cell_len(word.plain) > width:
            lines.append(line)
            line, fresh = Text(" " * indent), True
        if not fresh:
            line.append(" ")
        line.append_text(word)
        fresh = False
    lines.append(line)
    return [_plain(x) for x in lines]


def _field(console: Console, label: str, *parts: str | tuple[str, str], indent: int = LABEL_WIDTH) -> None:
    """Print one summary field; *parts* are plain strings or (text, style) pairs, glued at units."""
    value = Text()
    for part in parts:
        text, style = (part, "") if isinstance(part, str) else part
        value.append(_glued(text), style=style)
    for line in _wrap(label, value, console.width, indent):
        console.print(line, overflow="fold")


def render(result: RunResult, console: Console) -> None:
    """Print a run's summary, per-layer table and bottleneck line: every number with its unit, within the console width."""
    r = result
    if r.event == "io":
        what = "normal-stack I/O, no dump"
    elif r.dump_kind == "none":
        what = "no crash dump"
    elif r.dump_kind == "hibernation":
        what = "hiberfile image"
    else:
        what = f"{r.dump_kind} crash dump" + (" during I/O" if r.event == "crash-during-io" else "")
    _field(console, "", f"stacksim {__version__} · scenario ", (_safe(r.scenario, 200), "bold"), f" · {what}")
    _field(console, "status", (r.status, "green" if r.status == "ok" else "red"), ": " + readable(_safe(r.message)))
    if r.io is not None:
        _io_fields(r, console)
    if r.event == "io":
        pass
    elif r.status == "dump_disabled":
        _field(console, "stack", "none loaded (CrashDumpEnabled = 0): no filter ran, nothing was written")
    else:
        _run_fields(r, console)
    for f in r.filters:
        name = _safe(f.name)
        if f.load_error:
            critical = " (critical)" if f.critical else ""
            _field(console, "", (f"filter {name} not loaded:", "yellow"), f" {readable(_safe(f.load_error))}{critical}")
        for event, count in f.errors.items():
            first = readable(_safe(f.first_error[event]))
            _field(console, "", (f"filter {name}: {count:,} × {event} failed", "yellow"), f" (first: {first}); the dump went on")
    for warning in r.warnings:
        _field(console, "", ("warning:", "yellow"), " " + readable(_safe(warning)))


def _io_fields(r: RunResult, console: Console) -> None:
    """The normal stack's I/O: the workload, what it achieved, the queues, each layer; for a crash during I/O, what was lost."""
    io = r.io
    assert io is not None
    before = " before the bugcheck" if r.event == "crash-during-io" else ""
    h = io.latency
    _field(
        console,
        "I/O" if not before else "before",
        f"{_count(io.completed, 'request')} completed in {format_ns(io.end_ns)}{before}: {float(io.iops):,.0f} IOPS, "
        f"{format_bandwidth(float(io.throughput))} ({float(io.throughput) / 2**20:,.1f} MiB/s)",
    )
    if h.count:
        _field(
            console,
            "latency",
            f"min {format_ns(h.min)}, mean {format_ns(h.mean)}, stdev {format_ns(h.stdev)}, p50 {format_ns(h.percentile(50))}, "
            f"p90 {format_ns(h.percentile(90))}, p99 {format_ns(h.percentile(99))}, p99.9 {format_ns(h.percentile(99.9))}, "
            f"max {format_ns(h.max)} (issue → completion, through every layer)",
        )
    _field(
        console,
        "queues",
        f"storport: at most {_count(io.storport_max_queue, 'request')} waiting (queue depth {io.storport_queue_depth:,}); "
        f"device: at most {_count(io.device_max_outstanding, 'command')} outstanding "
        f"({_count(io.device_parallelism, 'channel')} serving them)",
    )
    rows = []
    for x in io.layers:
        latency = format_ns(x.residence_ns // x.calls) if x.calls else "-"
        rows.append(
            [
                [_safe(x.name, 200)],
                [f"{x.calls:,}"],
                [format_ns(x.busy_ns)],
                [latency],
                [f"{float(x.mean_in_flight):.2f}"],
                [f"{x.max_in_flight:,}"],
            ]
        )
    _print_table(
        console,
        ("stage", "calls", "busy", "mean time in it", "mean in flight", "max in flight"),
        rows,
        caption="normal stack, top down and back up; in flight: requests (mean = time in the stage ÷ run time)",
        right=range(1, 6),
    )
    lost = r.lost_by_layer()
    if r.event == "crash-during-io":
        total = sum(x["requests"] for x in lost.values())
        where = ", ".join(
            f"{_count(v['requests'], 'request')} {'at the' if k == 'device' else 'in'} {_safe(k)}" for k, v in lost.items()
        )
        dropped = sum(1 for x in r.lost if x.layer == "device")
        _field(
            console,
            "lost",
            f"{_count(total, 'request')} ({format_bytes(sum(x['bytes'] for x in lost.values()))}) in flight at the bugcheck, "
            "none "
            f"completes: {where or 'none'}"
            + (f"; the dump port's reset drops the {_count(dropped, 'request')} the device held" if dropped else ""),
        )


def _count(n: int, noun: str) -> str:
    """'1 request', '2 requests'."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def _side_by_side(r: RunResult, console: Console) -> None:
    """The normal path before the crash next to the dump path after it, on the same device."""
    io = r.io
    if io is None or not io.completed or not r.write_requests or not r.dump_time_ns:
        return
    h = io.latency
    _field(
        console,
        "compare",
        f"normal path {format_bandwidth(float(io.throughput))} at queue depth {io.queue_depth:,} "
        f"(p50 {format_ns(h.percentile(50))} per request) vs dump path {format_bandwidth(r.throughput_bytes_per_s)} "
        f"polled at queue depth 1 (p50 {format_ns(r.write_latency.p50_ns)} per write), same device",
    )


def _run_fields(r: RunResult, console: Console) -> None:
    """The fields of a run whose dump stack was loaded: time, bytes, path, engine mode, layers, bottleneck."""
    if r.dump_time_ns:
        start = "hibernate start" if r.event.startswith("hibernate") else "bugcheck"
        end = "final flush" if r.status in ("ok", "truncated") else r.status.replace("_", " ")
        _field(console, "dump time", f"{format_ns(r.dump_time_ns)} ({start} → {end})")
    parts = " · ".join(f"{_safe(name)} {format_bytes(n)}" for name, n in r.parts.items())
    if r.bytes_written:
        _field(
            console,
            "written",
            f"{format_bytes(r.bytes_written)} of {format_bytes(r.dump_bytes)} ({r.bytes_written:,} bytes) "
            f"at {format_bandwidth(r.throughput_bytes_per_s)}, in {r.write_requests:,} writes "
            f"of ≤ {r.max_pages_per_write} pages{_GLUE}({format_bytes(r.max_pages_per_write * 4096)})",
        )
        _field(console, "parts", parts)
    else:
        _field(console, "written", f"nothing of the {format_bytes(r.dump_bytes)} dump ({parts})")
    if r.hibernation is not None:
        _hibernation_field(r.hibernation, console)
    _field(console, "path", " → ".join(_safe(i) for i in r.images) + f" → disk ({r.target})")
    if r.data is not None:
        _data_field(r.data, console)
    if r.request_mode_reasons:
        reasons = "; ".join(readable(_safe(x)) for x in r.request_mode_reasons)
        _field(console, "engine", "request mode, one message per write: " + reasons)
    if r.dump_time_ns or r.write_requests:
        print_layers(r, console)
    if r.bottleneck and r.dump_time_ns:
        _field(console, "bottleneck", bottleneck_line(r))
    if r.resume is not None:
        _resume_fields(r, console)
    _side_by_side(r, console)


def _hibernation_field(h: dict[str, Any], console: Console) -> None:
    """A hiberfile image: the memory kept by class, what it was written as, and the compressor's time."""
    kept = " · ".join(f"{_safe(name).replace('_', ' ')} {format_bytes(n * 4096)}" for name, n in h["pages_kept"].items())
    text = f"{_safe(h['mode'])}: {format_bytes(h['uncompressed_bytes'])} of memory ({kept})"
    if h["compressed"]:
        how = "estimated" if h["body_estimated"] else "as compressed"
        text += (
            f" → {format_bytes(h['body_bytes'])} ({100 * h['compression_ratio']:.1f} %, {how}); compressor busy "
            f"{format_ns(h['compress_ns'])}, crashdmp waited {format_ns(h['compress_wait_ns'])} for it"
        )
    else:
        text += f", stored uncompressed in {format_bytes(h['body_bytes'])}"
    _field(console, "image", text)


def _resume_fields(r: RunResult, console: Console) -> None:
    """``hibernate-resume``: how resume went, the two times side by side, and where resume's time went."""
    res = r.resume
    assert res is not None
    status = f"{res.status}: {_safe(res.message)}"
    _field(console, "resume", (status, "yellow") if res.status != "resumed" else status)
    if res.memory_matches is not None:
        pages = r.data["dump_pages"] if r.data is not None else 0
        same = f"restored byte for byte: all {pages:,} pages match the memory hibernated"
        differ = f"{res.mismatched_pages:,} of {pages:,} pages differ from (or are missing against) the memory hibernated"
        _field(console, "memory", same if res.memory_matches else (differ, "yellow"))
    if res.reads:
        _field(console, "times", f"hibernate {format_ns(r.dump_time_ns)} · resume {format_ns(res.time_ns)}")
        busy = " · ".join(f"{_safe(name)} {format_ns(s.busy_ns)}" for name, s in res.layers.items() if s.calls)
        _field(console, "resume busy", busy)


def _data_field(d: dict[str, Any], console: Console) -> None:
    """Data mode: what reached the image, and the leak check (plaintext pages in yellow)."""
    leaked, pages = d["plaintext_pages_on_disk"], d["dump_pages"]
    found = f"{leaked:,} of {pages:,} dump pages found in plaintext on the disk"
    _field(
        console,
        "data",
        f"{format_bytes(d['image_bytes_written'])} written to the image; leak check: ",
        (found, "yellow") if leaked else found,
        f" ({format_bytes(d['scanned_bytes'])} scanned; volume key {_safe(d['key'])})",
    )
    if d.get("lost_in_volatile_cache_bytes"):
        _field(
            console,
            "lost",
            f"the last {format_bytes(d['lost_in_volatile_cache_bytes'])} written were still in the device's volatile "
            "write cache when the power failed: the image does not have them",
        )


def bottleneck_line(r: RunResult) -> str:
    """'device: 62.0 % of the dump time; without it 3.36 s (2.6× faster); all filters 30.6 %'."""
    name = r.bottleneck
    assert name is not None
    rest = r.time_without(name)
    speedup = _times_faster(r.dump_time_ns / rest) if rest > 0 else "no time left"
    line = f"{_safe(name)}: {r.share_percent(name):.1f} % of the dump time; without it {format_ns(rest)} ({speedup})"
    filters = [f.name for f in r.filters if f.name in r.layers]
    if filters:
        share = round(100 * sum(r.layers[f].busy_ns for f in filters) / r.dump_time_ns, 1)
        line += f"; all filters {share:.1f} %"
    return line


def _times_faster(ratio: float) -> str:
    """'2.6× faster', '1,234× faster' (no decimals past 100), '> 1,000,000× faster'."""
    if ratio >= 1e6:
        return "> 1,000,000× faster"
    return f"{ratio:,.0f}× faster" if ratio >= 100 else f"{ratio:.1f}× faster"


def print_layers(r: RunResult, console: Console) -> None:
    """
    The per-layer tables, fio-style: per-call latency (min, mean, stdev, p50, p90, p99, p99.9, max), then throughput.

    The throughput table gives each layer's calls, busy time, share of the dump time, IOPS and
    bandwidth in MB/s (10^6 bytes) and MiB/s (2^20 bytes) (:meth:`RunResult.layer_rates`).
    The last row of each, ``write``, is one dump write from issue to completion through every layer.
    """
    summaries = list(r.layers.items())
    w = r.write_latency
    if w.calls:
        summaries.append(("write", w))
    latency = [[[_safe(name, 200)], *([format_ns(getattr(s, k))] for k in LATENCY_KEYS)] for name, s in summaries]
    _print_table(
        console,
        ("layer", "min", "mean", "stdev", "p50", "p90", "p99", "p99.9", "max"),
        latency,
        caption="latency per call; stdev: population; p50 … p99.9: nearest rank;\nwrite: one dump write, issue → done",
        folding=(0,),
        right=range(1, 9),
        compact=True,
    )
    rows: list[list[list[str]]] = []
    for name, s in summaries:
        last = name == "write" and s is w
        share = [] if last else [f"{100 * s.busy_ns / r.dump_time_ns:.1f} %" if r.dump_time_ns else "-"]
        busy = [] if last else [format_ns(s.busy_ns)]
        rates = r.rates(s.calls)
        iops, rate = float(rates["iops"]), float(rates["bandwidth_bytes_per_s"])
        rows.append(
            [
                [_safe(name, 200)],
                [f"{s.calls:,}"],
                busy,
                share,
                [f"{iops:,.0f} IOPS"],
                [f"{_rate(rate / 1e6)} MB/s"],
                [f"{_rate(rate / 2**20)} MiB/s"],
            ]
        )
    _print_table(
        console,
        ("layer", "calls", "busy", "share", "IOPS", "MB/s", "MiB/s"),
        rows,
        caption=(
            "share = busy ÷ dump time; IOPS = calls ÷ dump time;\nMB/s (10^6 B/s), MiB/s (2^20 B/s): bytes written ÷ dump time"
        ),
        folding=(0,),
        right=range(1, 7),
    )


def _rate(x: float) -> str:
    """A rate in its table column: whole from 100 up ("1,174"), else one decimal ("51.5"), two below 1 ("0.05"); "0"."""
    if x == 0:
        return "0"
    return f"{x:,.0f}" if x >= 99.95 else f"{x:.1f}" if x >= 0.995 else f"{x:.2f}"


_TABLE_SEPARATOR: Final = 3
"""Columns a rule between two table columns takes (" │ ")."""


def _cell(atoms: Sequence[str], width: int | None, *, comma_at_break: bool) -> str:
    """
    *atoms* joined by ", ", breaking the line where the next atom would pass *width* columns.

    At a break the line ends with the comma if *comma_at_break*, else the break alone separates.
    """
    if width is None:
        return ", ".join(atoms)
    tail = 1 if comma_at_break else 0
    lines: list[str] = []
    for n, atom in enumerate(atoms):
        last = n == len(atoms) - 1
        if lines and cell_len(lines[-1]) + 2 + cell_len(atom) + (0 if last else tail) <= width:
            lines[-1] += ", " + atom
        else:
            if lines and comma_at_break:
                lines[-1] += ","
            lines.append(atom)
    return "\n".join(lines)


def _print_table(
    console: Console,
    headers: Sequence[str],
    rows: Iterable[Sequence[Sequence[str]]],
    *,
    title: str | None = None,
    caption: str | None = None,
    folding: Collection[int] = (),
    right: Collection[int] = (),
    comma_at_break: bool = False,
    compact: bool = False,
) -> None:
    """
    Print a table whose cells are lists of atoms (each a quantity or a name that must stay whole).

    Every column gets an explicit width. When the table would be wider than the console, the
    columns that can give most give first: a cell with several atoms breaks between them, a header
    breaks between its words, and a column in *folding* (free text from input, such as a plugin
    path) folds down to 8 columns; a single atom is never split. With *comma_at_break* a broken cell
    keeps its commas at the line ends (a list of names); without, the break alone separates (a
    list of quantities, where the column is tight). When even that does not fit, each row is
    printed as one wrapped line instead ("name: header value, header value, ...").
    A *compact* table (many columns of quantities) separates its columns by one space and draws
    only the rule under the header.
    """
    body = [list(row) for row in rows]
    natural = [max(cell_len(h), *(cell_len(", ".join(row[i])) for row in body)) for i, h in enumerate(headers)]
    narrowest = [
        8
        if i in folding
        else max(
            max(map(cell_len, h.split())),
            *(max(map(cell_len, row[i]), default=0) + (comma_at_break and len(row[i]) > 1) for row in body),
        )
        for i, h in enumerate(headers)
    ]
    widths = list(natural)
    separator = 1 if compact else _TABLE_SEPARATOR
    spare = console.width - separator * (len(headers) - 1) - sum(natural)
    for i in sorted(range(len(headers)), key=lambda i: natural[i] - narrowest[i], reverse=True):
        if spare >= 0:
            break
        cut = min(max(natural[i] - narrowest[i], 0), -spare)
        widths[i] -= cut
        spare += cut
    if spare < 0:
        _print_records(console, headers, body, title=title, caption=caption)
        return
    table = Table(
        title=Text(title) if title else None,
        caption=Text(caption) if caption else None,
        caption_justify="left",
        caption_style="dim",
        show_edge=False,
        pad_edge=False,
        box=box.SIMPLE_HEAVY if compact else box.HEAVY_HEAD,
        padding=(0, 0) if compact else (0, 1),
    )
    for i, header in enumerate(headers):
        table.add_column(header, width=widths[i], overflow="fold", justify="right" if i in right else "left")
    for row in body:
        cells = (
            _cell(atoms, None if widths[i] >= natural[i] else widths[i], comma_at_break=comma_at_break)
            for i, atoms in enumerate(row)
        )
        table.add_row(*map(Text, cells))
    console.print(table)


def _print_records(
    console: Console, headers: Sequence[str], rows: Sequence[Sequence[Sequence[str]]], *, title: str | None, caption: str | None
) -> None:
    """A table too wide for the console, one wrapped line per row: "name: header value, header value, ..."."""
    if title:
        _field(console, "", title, indent=2)
    for row in rows:
        fields = [
            # a header that is the cell's unit ("MB/s": "970.7 MB/s") is not said twice
            _glued(", ".join(atoms)) if ", ".join(atoms).endswith(" " + h) else h + _GLUE + _glued(", ".join(atoms))
            for h, atoms in zip(headers[1:], row[1:], strict=True)
            if atoms and atoms != ["-"]
        ]
        value = Text()
        value.append(", ".join(row[0]) + ":", style="bold")
        value.append(" " + ", ".join(fields))
        for line in _wrap("", value, console.width, indent=2):
            console.print(line, overflow="fold")
    if caption:
        _field(console, "", (caption, "dim"), indent=2)


def print_devices(console: Console) -> None:
    """The device presets a scenario can name as ``[disk] preset``, with the page that gives their sources."""
    from stacksim.devices import DEVICE_PRESETS

    rows = []
    for p in DEVICE_PRESETS.values():
        params = p.params
        if p.model == "virtual":
            extra = [f"{params['iops_limit']:,} IOPS", format_bandwidth(params["bandwidth_limit"])]
        elif "media_bandwidth" in params:
            extra = [format_bandwidth(params["media_bandwidth"])]
        else:
            extra = ["-"]
        cache = format_bytes(params["cache"]) if params.get("cache") else "-"
        bandwidth = int(str(p.as_dict()["bandwidth_bytes_per_s"]))
        rows.append([[p.name], [p.kind], [format_bandwidth(bandwidth)], [format_ns(params["latency"])], [cache], extra])
    headers = ("name", "kind", "write bandwidth", "latency", "cache", "after cache / caps")
    _print_table(console, headers, rows, title="Device presets ([disk] preset = ...)")
    console.print("Sources and assumptions: docs/reference/devices.md", overflow="fold")


def print_filters(catalog: FilterCatalog, console: Console) -> None:
    """The dump filters a scenario can name in ``DumpFilters``: where each comes from and its parameters."""
    rows = []
    for name in catalog.names():
        cls = catalog.get(name)
        assert cls is not None
        params = list(cls.Config.model_fields) or ["-"]
        rows.append([[_safe(name, 200)], [_safe(catalog.origin(name), 500)], params])
    _print_table(console, ("service name", "from", "parameters"), rows, title="Dump filters", folding=(0, 1), comma_at_break=True)


# -- after the reboot: stacksim inspect and stacksim extract ----------------------------------------


def _header_text(s: Survey) -> str:
    """What the header says, in one phrase: type, signature, kind, pages."""
    from stacksim.extract import dump_kind

    h = s.located.header
    assert h is not None
    sig = f" '{h.signature.decode('latin-1')}'" if h.signature else ""
    pages = f" of {_count(h.page_count, 'page')} ({format_bytes(h.page_count * 4096)})" if h.page_count else ""
    return f"DumpType {h.dump_type}{sig}, {with_article(dump_kind(h))} dump{pages}"


def _bugcheck_text(s: Survey) -> str:
    h = s.located.header
    assert h is not None
    return f"0x{h.bugcheck_code:08X} (" + ", ".join(f"0x{p:X}" for p in h.bugcheck_parameters) + ")"


def render_survey(s: Survey, console: Console) -> None:
    """Print what ``stacksim inspect`` found on the disk image: every number with its unit, within the console width."""
    loc, run, h = s.located, s.located.run, s.located.header
    lay = run.layout
    _field(console, "", f"stacksim {__version__} · inspect ", (loc.file.name, "bold"), f" · result {run.name}")
    _field(
        console,
        "file",
        f"{lay.target}: {format_bytes(lay.size)} ({lay.size:,} bytes) in {_count(len(lay.runs), 'run')}, the first at partition "
        f"offset {lay.runs[0].offset:,} bytes; the partition starts {lay.partition_offset:,} bytes into the "
        f"{format_bytes(run.disk_size)} disk",
    )
    if h is None:
        _field(console, "header", ("not found", "red"), f": {loc.header_problem}")
    else:
        _field(
            console,
            "header",
            ("found", "green"),
            f": {_header_text(s)}, RequiredDumpSpace {h.required_dump_space:,} bytes; the memory map: "
            f"{_count(len(h.runs), 'run')}",
        )
        _field(console, "bugcheck", _bugcheck_text(s))
    _field(console, "encryption", *_encryption_parts(s))
    for mismatch in loc.mismatches:
        _field(console, "", ("not this run's dump:", "red"), f" {mismatch}")
    torn = s.torn
    if not torn and h is not None and s.bytes_present is not None and s.pages_present is not None:
        _field(
            console,
            "dump",
            ("complete", "green"),
            f": {s.bytes_present:,} of {h.required_dump_space:,} bytes (RequiredDumpSpace) and "
            f"{s.pages_present:,} of {_count(h.page_count, 'page')} present",
        )
    else:
        _field(console, "dump", ("torn", "red"), ": " + "; ".join(torn))
    _field(console, "run", (_safe(run.status, 40), "green" if run.status == "ok" else "red"), ": " + readable(_safe(run.message)))


def _encryption_parts(s: Survey) -> list[str | tuple[str, str]]:
    """The encryption line: the verdict, then what the disk shows before and after decryption."""
    loc = s.located
    raw = f"on the disk {'the' if loc.raw_signature else 'no'} 'PAGE' 'DU64' signature and {_count(s.raw_markers, 'page marker')}"
    if loc.encryption == "encrypted":
        return [
            ("encrypted", "green"),
            f" with AES-256-XTS (aes-xts-plain64), key {_safe(loc.key_label or '?', 200)}: {raw}; decrypted, the signature "
            f"and {_count(s.decrypted_markers or 0, 'page marker')}; {_count(s.unwritten_sectors or 0, 'sector')} never written",
        ]
    if loc.encryption == "plaintext":
        note = "dumpfve.sys did not load" if not loc.run.encrypted else "yet the result says dumpfve.sys encrypted it"
        if loc.key_given:
            note += "; the key given is not needed: the dump is not encrypted"
        return [("plaintext", "yellow"), f": {raw} ({note})"]
    return [(loc.encryption, "red"), f": {raw}"]


def print_extracted(s: Survey, out: str, console: Console) -> None:
    """Print what ``stacksim extract`` wrote: the file, the dump in it, where it came from and how."""
    loc, run, h = s.located, s.located.run, s.located.header
    assert h is not None
    _field(
        console,
        "",
        (out, "bold"),
        f": {h.required_dump_space:,} bytes ({format_bytes(h.required_dump_space)}), {_header_text(s)}; "
        f"bugcheck {_bugcheck_text(s)}",
    )
    how = (
        f"decrypted with AES-256-XTS (aes-xts-plain64), key {_safe(loc.key_label or '?', 200)}"
        if loc.decrypting
        else "plaintext (not encrypted)"
    )
    _field(
        console,
        "",
        f"from {loc.file.name}: the {run.layout.target}'s {_count(len(run.layout.runs), 'run')} from partition offset "
        f"{run.layout.runs[0].offset:,} bytes, {how}",
    )
    torn = s.torn
    if torn:
        reasons = "; ".join(torn)
        _field(console, "", ("torn, written anyway (--allow-torn):", "yellow"), f" {reasons}; what is missing reads as zeros")
