r"""
Plots of a run: ``stacksim plot RESULT.json|TRACE.jsonl|SWEEP.csv`` writes PNG files.

* **A trace** (``docs/reference/trace-format.md``) gives three plots. ``gantt``: per stack, a
  row per layer and a bar per call of each of the first *N* requests (``--first``), at its
  simulated time. ``latency``: per layer, the cumulative distribution of the time the layer
  itself spent on a request's call (every request record with ``dur_ns`` > 0 but the waits:
  ``io_wait``, ``io_queue``, ``compress_wait``, ``decompress_wait``). ``throughput``: bytes
  completed per unit of simulated time: the dump's ``write_complete``, a resume's
  ``read_complete``, the normal stack's completions at the application.
* **A result** (``docs/reference/result-format.md``) keeps per layer only its quantiles (``p50``,
  ``p90``, ``p99``, ``p99_9``, ``max``) and moments, not the whole distribution: ``quantiles`` draws
  those five points of each layer's distribution (and says so on the plot), ``busy`` each layer's busy time as a
  share of the dump time. A trace has what the other plots need.
* **A sweep's CSV** (``stacksim sweep --out r.csv``) gives ``dump-time``: the dump time
  against each swept parameter, one panel per parameter, a line per combination of the others.

Reading is bounded as every input is (:mod:`stacksim._io`: a regular file under its kind's
cap); a trace is streamed through the parser ``stacksim perfetto`` uses, into bounded
summaries (durations in at most :data:`MAX_DISTINCT` values per layer, throughput in at most
:data:`MAX_BINS` bins), so its size does not matter. Text from the input reaches a plot
escaped (a ``$`` starts no mathtext; a character the font lacks is ``\uXXXX``).

matplotlib (the ``plot`` extra) is imported only here, only when a plot is drawn: the Agg
backend, a :class:`matplotlib.figure.Figure` per plot (no pyplot state), matplotlib's default
style whatever the user's ``matplotlibrc`` says, and no ``Software`` key in the PNG, so the same
input gives the same bytes.
"""

from __future__ import annotations

import contextlib
import csv
import io
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from stacksim._io import CappedReader, InputError, decode_text, read_input, shorten, terminal_safe
from stacksim.units import INT64_MAX

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "DEFAULT_FIRST",
    "MAX_FIRST",
    "PlotUnavailableError",
    "SweepTable",
    "TraceSummary",
    "parse_first",
    "read_sweep",
    "render_result",
    "render_sweep",
    "render_trace",
    "summarise_trace",
]

DEFAULT_FIRST: Final = 20
"""Requests per stack drawn in the Gantt chart by default: a bar per layer each is still wide enough to see."""

MAX_FIRST: Final = 1_000
"""The largest ``--first``: beyond a thousand requests the bars are thinner than a pixel."""

MAX_DISTINCT: Final = 65_536
"""Distinct durations kept exactly per layer; beyond, each is rounded to 3 significant digits (as HdrHistogram keeps them)."""

MAX_BINS: Final = 4_096
"""Throughput bins kept while a trace is read; a bin twice as wide replaces each pair when a completion falls beyond them."""

PLOT_BINS: Final = 200
"""Throughput bins drawn at most: adjacent bins are merged until the span fits in this many."""

DPI: Final = 100
"""Pixels per inch of every PNG (the figure sizes below are in inches)."""

_WAITS: Final = frozenset({"io_wait", "io_queue", "compress_wait", "decompress_wait"})
"""Events that are a wait for another layer, not the layer's own work: not in the latency CDFs."""

STACKS: Final = {None: "normal storage stack", "crashdump": "crash dump stack", "hibernation": "hibernation stack"}
"""A record's ``dump_type`` → the stack it belongs to, as the plots name it."""

NO_MATPLOTLIB: Final = (
    "plotting needs matplotlib, which is not installed: install stacksim[plot] (pip install 'stacksim[plot]', "
    "which brings matplotlib 3.8 or later)"
)


class PlotUnavailableError(RuntimeError):
    """matplotlib cannot be imported: the ``plot`` extra is not installed."""


def parse_first(text: str) -> int:
    """
    ``--first N``: the requests per stack the Gantt chart draws, 1 to :data:`MAX_FIRST`.

    Raises:
        ValueError: one sentence saying what was given and what is allowed.
    """
    digits = text.strip().replace("_", "").replace(",", "")
    if not (digits.isascii() and digits.isdigit()) or len(digits) > 5 or not 1 <= int(digits) <= MAX_FIRST:
        raise ValueError(
            f"--first {terminal_safe(shorten(text, 40))!r}: give the number of requests per stack to draw in the Gantt chart, "
            f"a whole number from 1 to {MAX_FIRST:,} (default {DEFAULT_FIRST})"
        )
    return int(digits)


# -- reading a trace ---------------------------------------------------------------------------


class _Bins:
    """Bytes completed per time bin, from 0 ns; at most :data:`MAX_BINS` bins, each *width* ns (doubled as needed)."""

    def __init__(self) -> None:
        self.width = 1_000
        self.bytes = [0] * MAX_BINS
        self.first: int | None = None
        self.last = 0

    def add(self, t: int, n: int) -> None:
        while t >= self.width * MAX_BINS:
            self.bytes = [self.bytes[i] + self.bytes[i + 1] for i in range(0, MAX_BINS, 2)] + [0] * (MAX_BINS // 2)
            self.width *= 2
        self.bytes[t // self.width] += n
        self.first = t if self.first is None else min(self.first, t)
        self.last = max(self.last, t)

    def series(self) -> tuple[int, int, list[int]]:
        """(start, bin width: ns; bytes per bin) from the first completion's bin to the last's; at most PLOT_BINS bins."""
        assert self.first is not None
        lo, hi = self.first // self.width, self.last // self.width
        width, values = self.width, self.bytes[lo : hi + 1]
        start = lo * self.width
        while len(values) > PLOT_BINS:
            if (start // width) % 2:  # keep bins aligned to their (doubled) width
                values = [0, *values]
                start -= width
            values = [sum(values[i : i + 2]) for i in range(0, len(values), 2)]
            width *= 2
        return start, width, values


@dataclass
class _Stack:
    """What one stack's records leave for the plots."""

    layers: list[str] = field(default_factory=list)
    gantt: dict[str, list[tuple[int, int, int]]] = field(default_factory=dict)
    durations: dict[str, Counter[int]] = field(default_factory=dict)
    rounded: set[str] = field(default_factory=set)
    throughput: dict[str, _Bins] = field(default_factory=dict)
    requests: int = 0


@dataclass
class TraceSummary:
    """A trace read for plotting: per stack (keyed by ``dump_type``), its layers, first requests, durations and completions."""

    records: int = 0
    first: int = DEFAULT_FIRST
    stacks: dict[str | None, _Stack] = field(default_factory=dict)


def _round3(ns: int) -> int:
    """*ns* to 3 significant digits."""
    if ns < 1000:
        return ns
    scale: int = 10 ** (len(str(ns)) - 3)
    return (ns + scale // 2) // scale * scale


def summarise_trace(stream: CappedReader, name: str, first: int = DEFAULT_FIRST) -> TraceSummary:
    """
    Read the JSON-lines trace *stream* (opened with :func:`stacksim._io.open_input`) into a :class:`TraceSummary`.

    Each line is parsed and checked as ``stacksim perfetto`` checks it (every field of its type,
    integers below 2^63); no rule of the dump path is judged.

    Raises:
        InputError: an empty file or a malformed line, naming the file and the line.
    """
    from stacksim.perfetto import _lines, _parse

    out = TraceSummary(first=first)
    for n, raw in _lines(stream, name):
        t, _seq, layer, event, dur, request, _offset, length, dump_type, _status, _detail = _parse(raw, name, n)
        out.records = n
        stack = out.stacks.get(dump_type)
        if stack is None:
            stack = out.stacks[dump_type] = _Stack()
        if request is None:
            continue
        if layer not in stack.gantt:
            stack.layers.append(layer)
            stack.gantt[layer] = []
            stack.durations[layer] = Counter()
        stack.requests = max(stack.requests, request)
        if dur > 0 and event not in _WAITS:
            if request <= first:
                stack.gantt[layer].append((t, dur, request))
            counts = stack.durations[layer]
            counts[_round3(dur) if layer in stack.rounded else dur] += 1
            if len(counts) > MAX_DISTINCT:
                stack.rounded.add(layer)
                merged: Counter[int] = Counter()
                for d, c in counts.items():
                    merged[_round3(d)] += c
                stack.durations[layer] = merged
        kind = {"write_complete": "written", "read_complete": "read"}.get(event)
        if kind is None and event == "io_complete" and layer == "application":
            kind = "completed"
        if kind is not None and length:
            stack.throughput.setdefault(kind, _Bins()).add(t, length)
    if out.records == 0:
        raise InputError(f"{name}: the trace file is empty; `stacksim run SCENARIO --trace FILE` writes one")
    return out


# -- reading a sweep ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SweepTable:
    """A sweep's results for plotting: the swept columns, and each row's values of them with its dump time (ns)."""

    parameters: tuple[str, ...]
    rows: tuple[tuple[tuple[str, ...], int], ...]
    skipped: int


def read_sweep(path: Path, name: str) -> SweepTable:
    """
    The CSV results of ``stacksim sweep`` at *path*: the columns between ``point_id`` and ``status`` are the parameters.

    Rows whose ``dump_time_ns`` is empty (a point that failed: ``status = "error"``) are
    skipped and counted.

    Raises:
        InputError: not a regular file of at most 1 GiB, not UTF-8, not CSV, not a sweep's
            header, a row of the wrong width or a dump time that is not an integer below 2^63.
    """
    text = decode_text(read_input(path, "sweep"), path, "sweep results")
    bad = "; a sweep's CSV is what `stacksim sweep SCENARIO --set KEY=V1,V2 --out FILE.csv` writes"
    try:
        table = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as exc:
        raise InputError(f"{name}: is not CSV ({terminal_safe(shorten(str(exc), 80))}){bad}") from None
    if not table:
        raise InputError(f"{name}: the sweep results file is empty{bad}")
    header = table[0]
    if not header or header[0] != "point_id" or "status" not in header or "dump_time_ns" not in header:
        raise InputError(
            f"{name}: line 1 is not a sweep's header (point_id, the swept keys, status, ..., dump_time_ns, ...){bad}"
        )
    status, dump = header.index("status"), header.index("dump_time_ns")
    if status < 2:
        raise InputError(f"{name}: line 1 names no swept parameter between point_id and status{bad}")
    kept = _swept_columns(header, status)
    rows: list[tuple[tuple[str, ...], int]] = []
    skipped = 0
    for n, row in enumerate(table[1:], start=2):
        if len(row) != len(header):
            raise InputError(f"{name}: row {n:,} has {len(row):,} cells; the header has {len(header):,}{bad}")
        cell = row[dump]
        if cell == "":
            skipped += 1
            continue
        if not (cell.isascii() and cell.isdigit() and len(cell) <= 19 and int(cell) <= INT64_MAX):
            raise InputError(
                f"{name}: row {n:,} has dump_time_ns {terminal_safe(shorten(cell, 40))!r}; "
                f"it is empty or an integer from 0 to 2^63 - 1 (ns){bad}"
            )
        rows.append((tuple(row[k] for k in kept), int(cell)))
    if not rows:
        raise InputError(f"{name}: no row has a dump time ({skipped:,} failed points); there is nothing to plot")
    return SweepTable(tuple(header[k] for k in kept), tuple(rows), skipped)


def _swept_columns(header: list[str], status: int) -> list[int]:
    """
    The columns of the swept keys: those between ``point_id`` and ``status`` but the number columns.

    A value typed with a unit has its number in the next column, named after it with the unit's
    suffix (``disk.latency`` then ``disk.latency_ns``: :data:`stacksim.sweep.UNIT_SUFFIXES`); it
    is the same parameter, drawn once, by the values as swept.
    """
    from stacksim.sweep import UNIT_SUFFIXES

    suffixes = {f"_{suffix}" for suffix in UNIT_SUFFIXES.values()}
    kept: list[int] = []
    for k in range(1, status):
        previous = header[k - 1] if k > 1 else None
        if previous is not None and header[k].startswith(previous) and header[k][len(previous) :] in suffixes:
            continue
        kept.append(k)
    return kept


# -- drawing -----------------------------------------------------------------------------------


def _figure_tools() -> tuple[Callable[..., Figure], Callable[[Figure], bytes], Callable[[object, int], str]]:
    """(a new Figure, its PNG bytes, text made safe to draw); matplotlib is imported here: :class:`PlotUnavailableError`."""
    try:
        import matplotlib
        from matplotlib import font_manager
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.ft2font import FT2Font
    except ImportError:
        raise PlotUnavailableError(NO_MATPLOTLIB) from None

    def new(**kwargs: Any) -> Figure:
        fig = Figure(layout="constrained", dpi=DPI, **kwargs)
        FigureCanvasAgg(fig)
        return fig

    def png(fig: Figure) -> bytes:
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
        return buf.getvalue()

    with matplotlib.rc_context():
        matplotlib.rcdefaults()
        font = font_manager.findfont(matplotlib.rcParams["font.sans-serif"][0])
    glyphs = frozenset(FT2Font(font).get_charmap())

    def safe(value: object, limit: int) -> str:
        text = terminal_safe(shorten(str(value), limit))
        return "".join(c if ord(c) in glyphs else f"\\u{ord(c):04x}" for c in text).replace("$", r"\$")

    return new, png, safe


@contextlib.contextmanager
def _drawing() -> Iterator[None]:
    """matplotlib's default style (not the user's matplotlibrc), no mathtext; restored afterwards."""
    import matplotlib

    with matplotlib.rc_context(), warnings.catch_warnings():
        matplotlib.rcdefaults()
        matplotlib.rcParams["text.usetex"] = False
        warnings.filterwarnings("ignore", message="Glyph .* missing from", category=UserWarning)
        yield


_TIME_UNITS: Final = ((1_000_000_000, "s"), (1_000_000, "ms"), (1_000, "µs"), (1, "ns"))


def _time_unit(span_ns: float) -> tuple[int, str]:
    """The largest of s, ms, µs and ns in which *span_ns* is at least 1 (ns below that): (ns per unit, its name)."""
    return next(((d, u) for d, u in _TIME_UNITS if span_ns >= d), (1, "ns"))


def _rate_unit(bytes_per_s: float) -> tuple[float, str]:
    """GB/s, MB/s, kB/s or B/s (decimal), the largest in which *bytes_per_s* is at least 1."""
    return next(((d, u) for d, u in ((1e9, "GB/s"), (1e6, "MB/s"), (1e3, "kB/s")) if bytes_per_s >= d), (1.0, "B/s"))


def _log_axis(ax: Axes, values: list[float], axis: str = "x") -> None:
    """A log scale on *axis* when *values* (all > 0) span more than a factor of 20."""
    if values and max(values) > 20 * min(values):
        (ax.set_xscale if axis == "x" else ax.set_yscale)("log")


def _note(fig: Figure, text: str) -> None:
    fig.supxlabel(text, fontsize=9, color="0.3")


def _gantt(
    stacks: list[tuple[str, _Stack]], first: int, safe: Callable[[object, int], str], new: Callable[..., Figure]
) -> Figure:
    rows = sum(max(1, len(s.layers)) for _, s in stacks)
    fig = new(figsize=(11, 1.6 + 0.42 * rows + 0.6 * len(stacks)))
    axes = fig.subplots(len(stacks), 1, squeeze=False, height_ratios=[max(1, len(s.layers)) for _, s in stacks])[:, 0]
    for ax, (label, stack) in zip(axes, stacks, strict=True):
        layers = [name for name in stack.layers if stack.gantt[name]]
        bars = [b for name in layers for b in stack.gantt[name]]
        lo = min(t for t, _, _ in bars)
        hi = max(t + d for t, d, _ in bars)
        per, unit = _time_unit(hi - lo)
        colours = [f"C{i % 10}" for i in range(first)]
        for row, name in enumerate(layers):
            segments = [((t - lo) / per, d / per) for t, d, _ in stack.gantt[name]]
            ax.broken_barh(
                segments,
                (row - 0.38, 0.76),
                facecolors=[colours[r - 1] for _, _, r in stack.gantt[name]],
                edgecolor="white",
                lw=0.3,
            )
        ax.set_yticks(range(len(layers)), [safe(n, 40) for n in layers])
        ax.invert_yaxis()
        ax.set_xlim(0, (hi - lo) / per)
        ax.set_xlabel(f"simulated time ({unit}) from {lo / 1e6:,.3f} ms after boot")
        shown = min(first, stack.requests)
        ax.set_title(f"{label}: requests 1 to {shown:,} of {stack.requests:,} (one colour per request)", fontsize=10, loc="left")
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle("Where each request spends its time, layer by layer")
    return fig


def _cdf_axes(ax: Axes, series: list[tuple[str, list[float], list[float]]], title: str, *, points: bool = False) -> None:
    for i, (name, xs, ys) in enumerate(series):
        if points:  # only the quantiles are known: joined by a dashed line, no step drawn below p50
            ax.plot(xs, ys, "--", color=f"C{i % 10}", label=name, lw=1.2, marker="o", ms=6)
        else:
            ax.step(xs, ys, where="post", color=f"C{i % 10}", label=name, lw=1.5)
    _log_axis(ax, [x for _, xs, _ in series for x in xs])
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("time the layer spent on one call (µs)")
    ax.set_ylabel("fraction of calls (≤ x)")
    ax.set_title(title, fontsize=10, loc="left")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))


def _latency(stacks: list[tuple[str, _Stack]], safe: Callable[[object, int], str], new: Callable[..., Figure]) -> Figure:
    fig = new(figsize=(11, 1.5 + 3.6 * len(stacks)))
    axes = fig.subplots(len(stacks), 1, squeeze=False)[:, 0]
    approx: list[str] = []
    for ax, (label, stack) in zip(axes, stacks, strict=True):
        series = []
        for name in stack.layers:
            counts = stack.durations[name]
            if not counts:
                continue
            total = sum(counts.values())
            xs, ys, seen = [0.0], [0.0], 0
            for d in sorted(counts):
                seen += counts[d]
                xs.append(d / 1000)
                ys.append(seen / total)
            xs[0] = xs[1]
            series.append((f"{safe(name, 40)} ({total:,} calls)", xs, ys))
            if name in stack.rounded:
                approx.append(name)
        _cdf_axes(ax, series, label)
    fig.suptitle("Latency per layer: cumulative distribution of each call's duration")
    if approx:
        _note(
            fig,
            f"durations of {', '.join(safe(a, 40) for a in approx)} rounded to 3 significant digits "
            f"(over {MAX_DISTINCT:,} distinct values)",
        )
    return fig


_KIND_LABEL: Final = {
    "written": "bytes written (write_complete)",
    "read": "bytes read (read_complete)",
    "completed": "bytes completed (application)",
}


def _throughput(stacks: list[tuple[str, _Stack]], new: Callable[..., Figure]) -> Figure:
    fig = new(figsize=(10, 1.4 + 3.2 * len(stacks)))
    axes = fig.subplots(len(stacks), 1, squeeze=False)[:, 0]
    for ax, (label, stack) in zip(axes, stacks, strict=True):
        series = []
        for kind, bins in stack.throughput.items():
            start, width, values = bins.series()
            series.append((kind, start, width, values))
        end = max(s + w * len(v) for _, s, w, v in series)
        per, unit = _time_unit(end)
        rate, runit = _rate_unit(max(b / (w / 1e9) for _, _, w, v in series for b in v))
        widths = set()
        for kind, start, width, values in series:
            xs = [(start + i * width) / per for i in range(len(values) + 1)]
            ys = [b / (width / 1e9) / rate for b in values]
            ax.stairs(ys, xs, label=_KIND_LABEL[kind], lw=1.5)
            widths.add(width)
        ax.set_xlabel(f"simulated time since boot ({unit})")
        ax.set_ylabel(f"throughput ({runit})")
        ax.set_ylim(bottom=0)
        bin_text = ", ".join(f"{w / _time_unit(w)[0]:g} {_time_unit(w)[1]}" for w in sorted(widths))
        ax.set_title(f"{label} (bins of {bin_text})", fontsize=10, loc="left")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    fig.suptitle("Throughput over simulated time")
    return fig


def render_trace(summary: TraceSummary) -> dict[str, bytes]:
    """The trace's plots as PNG bytes by kind (``gantt``, ``latency``, ``throughput``); a kind with nothing to draw is absent."""
    new, png, safe = _figure_tools()
    out: dict[str, bytes] = {}
    with _drawing():
        order = [k for k in STACKS if k in summary.stacks]
        gantt = [(STACKS[k], summary.stacks[k]) for k in order if any(summary.stacks[k].gantt.values())]
        if gantt:
            out["gantt"] = png(_gantt(gantt, summary.first, safe, new))
        latency = [(STACKS[k], summary.stacks[k]) for k in order if any(summary.stacks[k].durations.values())]
        if latency:
            out["latency"] = png(_latency(latency, safe, new))
        throughput = [(STACKS[k], summary.stacks[k]) for k in order if summary.stacks[k].throughput]
        if throughput:
            out["throughput"] = png(_throughput(throughput, new))
    return out


# -- a result ----------------------------------------------------------------------------------


def _quantiles(result: dict[str, Any]) -> list[tuple[str, dict[str, int]]]:
    """
    Per layer of the result, then the writes' issue → completion: (name, {calls, busy_ns, p50_ns, … max_ns}).

    ``p90_ns`` and ``p99_9_ns`` are read when there (results before stacksim 0.1's issue 15 keep
    only p50, p99 and max).
    """
    from stacksim.diff import ResultShapeError, _get

    keys = ("calls", "busy_ns", "p50_ns", "p90_ns", "p99_ns", "p99_9_ns", "max_ns")

    def stats(path: str, node: object) -> dict[str, int]:
        if not isinstance(node, dict):
            raise ResultShapeError(f"key '{path}' must be an object of per-layer numbers")
        out = {}
        for key in keys:
            try:
                value = _get(node, key, "int", optional=key in _NEWER_QUANTILES)
            except ResultShapeError as exc:
                raise ResultShapeError(str(exc).replace("key '", f"key '{path}.", 1)) from None
            if value is not None:  # _get bounds it below 2^63
                out[key] = value
        return out

    layers = _get(result, "layers", "object")
    rows = [(name, stats(f"layers.{shorten(name, 60)}", node)) for name, node in layers.items()]
    latency = _get(result, "write_latency", "object", optional=True)
    if latency is not None:
        rows.append(("write (issue → completion)", stats("write_latency", latency)))
    return rows


_QUANTILES: Final = (("p50_ns", 0.5), ("p90_ns", 0.9), ("p99_ns", 0.99), ("p99_9_ns", 0.999), ("max_ns", 1.0))
"""The per-layer points a result keeps, and the fraction of calls at or below each."""

_NEWER_QUANTILES: Final = ("p90_ns", "p99_9_ns")
"""Points an older result may lack: the plot draws the others."""


def render_result(result: dict[str, Any]) -> tuple[dict[str, bytes], list[str]]:
    """
    A result's plots as PNG bytes by kind (``quantiles``, ``busy``), and notes on what the result cannot show.

    Raises:
        stacksim.diff.ResultShapeError: a key the plots need is missing or of the wrong type.
    """
    from stacksim.diff import _get

    rows = _quantiles(result)
    dump_ns = _get(result, "dump_time_ns", "int")  # below 2^63: _get bounds every integer
    new, png, safe = _figure_tools()
    scenario = safe(result.get("scenario", "?"), 60)
    notes = [
        "the result keeps p50, p90, p99, p99.9 and max per layer, not each call's duration: the latency plot shows those "
        "points; plot a trace (stacksim run --trace) for whole distributions, the Gantt chart and throughput over time"
    ]
    out: dict[str, bytes] = {}
    with _drawing():
        timed = [(name, s) for name, s in rows if s["calls"] and s["max_ns"] > 0]
        idle = [name for name, s in rows if not (s["calls"] and s["max_ns"] > 0)]
        if timed:
            fig = new(figsize=(11, 5))
            ax = fig.subplots()
            series = []
            for name, s in timed:
                known = [(key, q) for key, q in _QUANTILES if key in s]
                points = [max(s[k], 1) / 1000 for k, _ in known]
                series.append((f"{safe(name, 40)} ({s['calls']:,} calls)", points, [q for _, q in known]))
            title = f"{scenario}: p50, p90, p99, p99.9 and max of each layer (the points a result keeps)"
            _cdf_axes(ax, series, title, points=True)
            fig.suptitle("Latency per layer, from the result's quantiles")
            text = "a result keeps only p50, p90, p99, p99.9 and max per layer: plot a trace for the whole distribution"
            if idle:
                text += f"; no time spent: {', '.join(safe(n, 30) for n in idle)}"
            _note(fig, text)
            out["quantiles"] = png(fig)
        else:
            notes.append("no layer spent time on a call: no latency plot")
        busy = [(name, s) for name, s in rows if name in result["layers"]]
        if busy and dump_ns > 0:
            fig = new(figsize=(9, 1.6 + 0.5 * len(busy)))
            ax = fig.subplots()
            shares = [100 * s["busy_ns"] / dump_ns for _, s in busy]
            colour = {name: f"C{i % 10}" for i, (name, _) in enumerate(timed)}  # as in the latency plot
            ax.barh(range(len(busy)), shares, color=[colour.get(name, "0.6") for name, _ in busy])
            ax.set_yticks(range(len(busy)), [safe(n, 40) for n, _ in busy])
            ax.invert_yaxis()
            ax.set_xlabel(f"busy time (% of the dump time, {dump_ns / 1e6:,.1f} ms)")
            ax.set_xlim(0, max(100.0, *shares) * 1.12)
            for i, ((_, s), share) in enumerate(zip(busy, shares, strict=True)):
                ax.text(share, i, f"  {s['busy_ns'] / 1e6:,.1f} ms ({share:.1f} %)", va="center", fontsize=9)
            ax.grid(axis="x", alpha=0.3)
            ax.set_title(f"{scenario}: each layer's busy time", fontsize=10, loc="left")
            fig.suptitle("Busy time per layer")
            out["busy"] = png(fig)
        else:
            notes.append("the result has no dump time or no layers: no busy-time plot")
    return out, notes


# -- a sweep -----------------------------------------------------------------------------------


MAX_PANELS: Final = 8
"""Swept parameters drawn at most (one panel each); a sweep of more says which it left out."""

MAX_LINES: Final = 8
"""Combinations of the other parameters drawn as labelled lines; with more, each is a thin grey line, the median black."""


def render_sweep(table: SweepTable) -> tuple[dict[str, bytes], list[str]]:
    """The sweep's plot (``dump-time``) as PNG bytes, and notes (points skipped, parameters left out)."""
    new, png, safe = _figure_tools()
    params = table.parameters[:MAX_PANELS]
    notes = []
    if table.skipped:
        notes.append(f"{table.skipped:,} failed points (no dump time) are not drawn")
    if len(table.parameters) > MAX_PANELS:
        notes.append(f"{len(table.parameters) - MAX_PANELS} more swept parameters are not drawn (at most {MAX_PANELS} panels)")
    per, unit = _time_unit(max(ns for _, ns in table.rows))
    with _drawing():
        fig = new(figsize=(10.5, 1.0 + 3.2 * len(params)))
        axes = fig.subplots(len(params), 1, squeeze=False)[:, 0]
        for i, param in enumerate(params):
            ax = axes[i]
            values = list(dict.fromkeys(v[i] for v, _ in table.rows))
            at = {v: k for k, v in enumerate(values)}
            groups: dict[tuple[str, ...], list[tuple[int, float]]] = {}
            for v, ns in table.rows:
                groups.setdefault(v[:i] + v[i + 1 :], []).append((at[v[i]], ns / per))
            others = ", ".join(safe(p, 30) for j, p in enumerate(table.parameters) if j != i)
            legend = {"loc": "upper left", "bbox_to_anchor": (1.01, 1.0), "fontsize": 8, "title_fontsize": 8}
            if len(groups) <= MAX_LINES:
                for key, points in groups.items():
                    points.sort()
                    label = ", ".join(safe(k, 16) for k in key) or None
                    ax.plot([x for x, _ in points], [y for _, y in points], marker="o", label=label)
                if others:
                    ax.legend(title=others, **legend)
            else:
                for points in groups.values():
                    points.sort()
                    ax.plot([x for x, _ in points], [y for _, y in points], color="0.75", lw=0.7)
                medians = []
                for k in range(len(values)):
                    ys = sorted(y for pts in groups.values() for x, y in pts if x == k)
                    medians.append(ys[len(ys) // 2])
                ax.plot(range(len(values)), medians, color="black", marker="o", lw=2, label="median")
                ax.legend(title=f"{len(groups):,} combinations of\n{others}: grey", **legend)
            labels = [safe(v, 16) for v in values]
            ax.set_xticks(
                range(len(values)),
                labels,
                rotation=30 if max(map(len, labels)) > 7 else 0,
                ha="right" if max(map(len, labels)) > 7 else "center",
            )
            ax.set_xlabel(f"{safe(param, 60)} (the values as swept)")
            ax.set_ylabel(f"dump time ({unit})")
            ax.set_ylim(bottom=0)
            ax.grid(alpha=0.3)
        fig.suptitle(f"Dump time against each swept parameter ({len(table.rows):,} points)")
        if notes:
            _note(fig, "; ".join(notes))
        return {"dump-time": png(fig)}, notes
