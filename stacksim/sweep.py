"""
Parameter sweeps: one scenario, a grid of overrides, many runs, results streamed to a file.

``stacksim sweep SCENARIO --set disk.bandwidth=1GB/s,3GB/s --set memory.ram=16GiB,256GiB --out r.csv``
runs every combination (the cartesian product, in the order given) through a
:class:`concurrent.futures.Executor`: a local process pool by default (forkserver, never fork:
a forked trio run breaks), or a Dask cluster (``--dask tcp://host:8786``, or ``--dask local``),
whose ``Client.get_executor()`` is a drop-in Executor.

Each finished point is appended to the output as one complete line and flushed, so a sweep that
is interrupted keeps every finished point; run the same command again and it skips the points
already in the file (matched by ``point_id``, a hash of the point's overrides) and drops a
trailing partial line. A point whose run fails is recorded with ``status = "error"`` and its
message; the other points go on. Every point is validated before any runs, so a typo in a key
fails the sweep at once with the usual one-paragraph error. When the last point is in, the file
is rewritten (atomically) with its rows in grid order, so a finished sweep's file is the same on
every run, whatever order the workers finished in.
"""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
import multiprocessing
import os
import re
import select
import signal
import stat
import threading
import time
import tomllib
import typing
from collections.abc import Callable, Iterable
from concurrent.futures import Executor, Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pydantic import BaseModel, BeforeValidator

from stacksim._io import (
    MAX_DEPTH,
    InputError,
    OutputError,
    atomic_writer,
    check_depth,
    decode_text,
    json_safe,
    open_append,
    read_input,
    shorten,
    terminal_safe,
)
from stacksim.filters import FilterCatalog, PluginFile
from stacksim.metrics import LAYER_KEYS, LAYER_RATE_KEYS
from stacksim.overrides import OverrideError, check_value, label, parse_key
from stacksim.overrides import apply as _apply
from stacksim.scenario import Scenario, ScenarioError, validate_scenario
from stacksim.units import parse_bandwidth, parse_per_byte_ps, parse_size, parse_time_ns

__all__ = [
    "MAX_GRID_POINTS",
    "MAX_SETS",
    "MAX_SET_VALUES",
    "UNIT_SUFFIXES",
    "Axis",
    "SweepError",
    "SweepPoint",
    "axis",
    "check_axes",
    "grid",
    "layer_columns",
    "layers_of",
    "local_executor",
    "parse_set",
    "run_point",
    "run_sweep",
    "stop_executor",
    "toml_spelling",
    "unit_value",
]

FIXED_COLUMNS = (
    "point_id",
    "status",
    "error",
    "dump_time_ns",
    "bytes_written",
    "write_requests",
    "throughput_bytes_per_s",
    "dump_kind",
    "max_pages_per_write",
    "resume_status",
    "resume_time_ns",
)
"""The outcome's columns, after the point's values; the per-layer columns (:func:`layer_columns`) follow them."""

UNIT_SUFFIXES: dict[Callable[[object], int], str] = {
    parse_time_ns: "ns",
    parse_size: "bytes",
    parse_bandwidth: "Bps",
    parse_per_byte_ps: "ps_per_byte",
}
"""The number column beside a value given with a unit: ``disk.bandwidth`` = ``1GB/s`` and ``disk.bandwidth_Bps`` = 1000000000."""


MAX_GRID_POINTS = 100_000
"""Most points a sweep's grid may have, checked (as the product of the ``--set`` value counts) before it is built.

A guard against runaway input (ASSUMPTION: no useful sweep is bigger): every point is built
and validated before any runs; measured, building a 10^6-point grid alone takes 49 s and 1.3 GB."""

MAX_SET_VALUES = 10_000
"""Most values one ``--set`` may list (counted before any is parsed)."""

MAX_SETS = 32
"""Most ``--set`` options a sweep may have."""


class SweepError(Exception):
    """Bad sweep input (a ``--set`` that cannot be parsed, an output file of another sweep)."""


@dataclass(frozen=True, slots=True)
class Axis:
    """One ``--set``: a key path in the scenario and the values to try."""

    text: str
    path: tuple[str, ...]
    values: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class SweepPoint:
    """One combination: the values of every axis, and a stable id."""

    point_id: str
    overrides: tuple[tuple[tuple[str, ...], Any], ...]
    labels: dict[str, Any]


def _split_values(text: str) -> list[str]:
    """Split on commas outside brackets and quotes."""
    out, depth, quote, cur = [], 0, "", ""
    for ch in text:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
            continue
        cur += ch
    out.append(cur.strip())
    return out


def _value(text: str, setting: str) -> Any:
    r"""
    A TOML value if the text is one (3, true, "x", [..]); otherwise the text itself ("3GB/s").

    Raises:
        SweepError: a value the TOML parser cannot take (an integer of thousands of digits,
            arrays nested hundreds deep), nested deeper than :data:`stacksim._io.MAX_DEPTH`, or
            followed by more TOML (``1\nb=2``: another key).
    """
    try:
        doc = tomllib.loads(f"v = {text}")
    except tomllib.TOMLDecodeError:
        return text
    except RecursionError:
        raise SweepError(f"{setting}: a value is nested too deeply; stacksim accepts at most {MAX_DEPTH} levels") from None
    except ValueError:  # Python's limit on the digits of an int
        digits = sum(c.isdigit() for c in text)
        raise SweepError(f"{setting}: a value is an integer of {digits:,} digits, far beyond any limit") from None
    if list(doc) != ["v"]:  # "1\nb=2" parses as two keys: more TOML after the value
        raise SweepError(
            f"{setting}: the value {terminal_safe(shorten(text, 60))} is not one value (more TOML follows it on another line)"
        )
    value = doc["v"]
    try:
        check_depth(value, setting, MAX_DEPTH - 1)
    except InputError as exc:
        raise SweepError(str(exc)) from None
    return value


def parse_set(text: str) -> Axis:
    r"""
    Parse ``KEY=V1,V2,...`` into an :class:`Axis`.

    KEY is one TOML dotted key such as ``disk.bandwidth`` or ``filters."dumpfve.sys".per_byte``
    (bare or quoted parts joined by dots; a newline, a bracket or a table header is refused, so
    ``[t]\nb`` is not read as ``t.b``); each value is a TOML value (``3``, ``true``, ``"x"``,
    ``[...]``) or else a bare string.
    """
    setting = f"--set {terminal_safe(shorten(text, 100))}"
    key, sep, values = text.partition("=")
    if not sep or not key.strip() or not values.strip():
        raise SweepError(f"{setting}: write KEY=V1,V2,... e.g. --set disk.bandwidth=1GB/s,3GB/s")
    try:
        path = parse_key(key, setting)
    except OverrideError as exc:
        raise SweepError(str(exc)) from None
    vals = [v for v in _split_values(values) if v != ""]
    if not vals:
        raise SweepError(f"{setting}: no values")
    if len(vals) > MAX_SET_VALUES:
        raise SweepError(f"{setting}: {len(vals):,} values; a --set lists at most {MAX_SET_VALUES:,}")
    parsed = tuple(_value(v, setting) for v in vals)
    _no_repeats(parsed, setting)
    return Axis(text, path, parsed)


def _no_repeats(values: tuple[Any, ...], setting: str) -> None:
    seen: dict[str, int] = {}
    for n, value in enumerate(values):
        first = seen.setdefault(_canonical(value), n)
        if first != n:
            raise SweepError(
                f"{setting}: the value {terminal_safe(shorten(toml_spelling(value), 60))} is given twice "
                f"(values {first + 1} and {n + 1}); each value of a --set must differ, or the grid repeats points"
            )


def axis(key: str, values: list[Any]) -> Axis:
    """
    An :class:`Axis` from Python: a dotted *key* and its *values* as TOML holds them (``stacksim.sweep``'s axes).

    The same checks as :func:`parse_set`: one dotted key, 1 to :data:`MAX_SET_VALUES` values,
    none repeated, none nested deeper than a scenario may, none None (TOML has no null).
    """
    text = f"{key}={', '.join(toml_spelling(v) for v in values[: MAX_SET_VALUES + 1])}"
    setting = f"axes[{terminal_safe(shorten(repr(key), 100))}]"
    try:
        path = parse_key(key, setting)
    except OverrideError as exc:
        raise SweepError(str(exc)) from None
    if not values:
        raise SweepError(f"{setting}: no values")
    if len(values) > MAX_SET_VALUES:
        raise SweepError(f"{setting}: {len(values):,} values; an axis lists at most {MAX_SET_VALUES:,}")
    for value in values:
        try:
            check_depth(value, setting, MAX_DEPTH - 1)
            check_value(value, setting)
        except (InputError, OverrideError) as exc:
            raise SweepError(str(exc)) from None
    _no_repeats(tuple(values), setting)
    return Axis(text, path, tuple(values))


def _canonical(value: Any) -> str:
    """*value* as text that is equal exactly when two parsed TOML values are (``1`` and ``true`` differ)."""
    return json.dumps(value, sort_keys=True, default=repr)


def check_axes(axes: list[Axis]) -> int:
    """
    Refuse a grid that is not one: too many ``--set`` options, a key given twice, or too many points; return its size.

    A key path given twice (``scenario.seed`` twice), or one that is a prefix of another (``disk``
    and ``disk.bandwidth``: the second would be set inside the first's value, or overwritten by
    it), would make points that repeat or lose values. The grid's size is the product of the
    value counts, computed before any point is built.

    Raises:
        SweepError: naming the ``--set`` options concerned.
    """
    if len(axes) > MAX_SETS:
        raise SweepError(f"{len(axes):,} --set options; a sweep takes at most {MAX_SETS}")
    for i, a in enumerate(axes):
        for b in axes[:i]:
            short, long = (a, b) if len(a.path) <= len(b.path) else (b, a)
            if long.path[: len(short.path)] == short.path:
                what = "the same key" if a.path == b.path else f"{_shown_key(short.path)} holds {_shown_key(long.path)}"
                raise SweepError(
                    f"--set {_shown_set(b)} and --set {_shown_set(a)}: {what}; "
                    "give each key once, with all its values in one --set (KEY=V1,V2,...)"
                )
    size = 1
    for a in axes:
        size *= len(a.values)
    if size > MAX_GRID_POINTS:
        counts = " × ".join(f"{len(a.values):,}" for a in axes)
        names = ", ".join(_shown_key(a.path) for a in axes[:6]) + (f" and {len(axes) - 6} more" if len(axes) > 6 else "")
        raise SweepError(
            f"--set {names}: a grid of {counts} = {size:,} points; a sweep runs at most {MAX_GRID_POINTS:,}; "
            "split it into smaller sweeps"
        )
    return size


def _shown_key(path: tuple[str, ...]) -> str:
    return terminal_safe(shorten(_label(path), 60))


def _shown_set(axis: Axis) -> str:
    return terminal_safe(shorten(axis.text, 60))


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def toml_spelling(value: Any) -> str:
    """
    A ``--set`` value as the command line and TOML spell it: ``true``, ``3``, ``1GB/s``, ``["a.sys", 2]``, ``{a = 1}``.

    A string at the top level is shown as itself (``1GB/s``, as it was given); inside an array or
    table it is quoted. Used for the point in messages and the value cells of a CSV file.
    """
    if isinstance(value, str):
        return value
    return _toml_inline(value)


def _toml_inline(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, float):
        return "nan" if value != value else "inf" if value == float("inf") else "-inf" if value == float("-inf") else repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_inline(v) for v in value) + "]"
    if isinstance(value, dict):
        items = (
            f"{k if _BARE_KEY.fullmatch(k) else json.dumps(k, ensure_ascii=False)} = {_toml_inline(v)}" for k, v in value.items()
        )
        return "{" + ", ".join(items) + "}"
    if isinstance(value, int):
        return str(value)
    return str(value)  # a TOML date or time: its ISO spelling


_label = label


def grid(axes: Iterable[Axis]) -> list[SweepPoint]:
    """Every combination of the axes' values, in order (the last axis varies fastest)."""
    axes = list(axes)
    points = []
    for combo in itertools.product(*(a.values for a in axes)):
        overrides = tuple((a.path, v) for a, v in zip(axes, combo, strict=True))
        key = json.dumps([[list(p), v] for p, v in overrides], sort_keys=True, default=str)
        pid = hashlib.sha256(key.encode()).hexdigest()[:12]
        points.append(SweepPoint(pid, overrides, {_label(p): v for p, v in overrides}))
    return points


def apply(data: dict[str, Any], overrides: Iterable[tuple[tuple[str, ...], Any]]) -> dict[str, Any]:
    """A copy of scenario *data* with each override set at its key path (:func:`stacksim.overrides.apply`)."""
    try:
        return _apply(data, overrides)
    except OverrideError as exc:
        raise SweepError(str(exc)) from None


def _catalog(plugins: tuple[PluginFile, ...]) -> FilterCatalog:
    """
    The filter catalog for one point: built-ins, entry points and *plugins*.

    Scanning entry points costs milliseconds, as much as a small run, so a worker does it once
    (entry-point modules are imported once per process anyway). Plugin files are executed
    afresh for every point, as for ``stacksim run``, so no state a plugin keeps in its module
    or class carries over from one point to the next. A plugin is the source the main process
    read and hashed, handed over whole: a file edited while the sweep runs changes no point.
    """
    global _ENTRY_POINTS
    if _ENTRY_POINTS is None:
        _ENTRY_POINTS = FilterCatalog()
        _ENTRY_POINTS.load_entry_points()
    catalog = _ENTRY_POINTS.copy()
    for plugin in plugins:
        catalog.load_plugin(plugin)
    return catalog


_ENTRY_POINTS: FilterCatalog | None = None


def run_point(
    data: dict[str, Any], source: str, point: SweepPoint, plugins: tuple[PluginFile, ...], batch: bool
) -> dict[str, Any]:
    """Run one point (in a worker process); never raises: failures become an error row."""
    from stacksim.simulate import simulate

    row: dict[str, Any] = {"point_id": point.point_id, **point.labels}
    try:
        catalog = _catalog(plugins)
        scenario = validate_scenario(apply(data, point.overrides), source, catalog)
        result = simulate(scenario, catalog, batch=batch).as_dict()
    except Exception as exc:  # a failing point is recorded, never fatal to the sweep
        row.update(status="error", error=f"{type(exc).__name__}: {exc}")
        return row
    row.update(
        status=result["status"],
        error="" if result["status"] == "ok" else result["message"],
        dump_time_ns=result["dump_time_ns"],
        bytes_written=result["bytes_written"],
        write_requests=result["write_requests"],
        throughput_bytes_per_s=result["throughput_bytes_per_s"],
        dump_kind=result["dump_kind"],
        max_pages_per_write=result["max_pages_per_write"],
        resume_status=result["resume"]["status"] if result["resume"] is not None else "",
        resume_time_ns=result["resume"]["time_ns"] if result["resume"] is not None else "",
    )
    row.update({f"{layer}_{k}": v for layer, stats in result["layers"].items() for k, v in stats.items()})
    return row


def layers_of(s: Scenario) -> list[str]:
    """
    The layers a run of *s* reports, top down, as :func:`stacksim.report.build_result` lists them.

    A hibernation that compresses has the compressor first; then crashdmp, the dump filters of
    the stack the event writes through, the miniport and the device. An ``io`` run writes no
    dump and reports none.
    """
    if s.scenario.event == "io":
        return []
    filters = list(s.registry.dump_filters) if s.scenario.hibernates or s.registry.crash_dump_enabled else []
    compressor = ["compressor"] if s.scenario.hibernates and s.hibernation.compression else []
    return [*compressor, "crashdmp", *filters, "miniport", "device"]


def layer_columns(layers: Iterable[str]) -> list[str]:
    """Each layer's statistics as columns, the keys of its result JSON object: ``device_calls``, … ``device_iops``, …."""
    return [f"{layer}_{k}" for layer in layers for k in (*LAYER_KEYS, *LAYER_RATE_KEYS)]


def unit_value(s: Scenario, path: tuple[str, ...]) -> tuple[str, int] | None:
    """
    The validated number at *path* in *s* and its unit suffix, for a key whose values carry a unit.

    ``disk.bandwidth`` (``"1GB/s"`` in the TOML) is ``("Bps", 1000000000)``; a filter's parameter
    (``filters."dumpfve.sys".per_byte``) is read from the filter's validated configuration. None
    for a key that is not a number with a unit (a count, a flag, a table, a name).
    """
    node: Any = s
    parts = list(path)
    if len(parts) == 3 and parts[0] == "filters":
        node, parts = s.filter_configs.get(parts[1]), parts[2:]
    for i, part in enumerate(parts):
        if not isinstance(node, BaseModel):
            return None
        fields = type(node).model_fields
        name = next((n for n, f in fields.items() if part in (n, f.alias)), None)
        if name is None:
            return None
        node = getattr(node, name)
        if i == len(parts) - 1:
            suffix = _unit_suffix(fields[name].annotation, fields[name].metadata)
            return (suffix, node) if suffix is not None and type(node) is int else None
    return None


def _unit_suffix(annotation: Any, metadata: list[Any]) -> str | None:
    """The suffix of the unit parser among a field's validators (its own, or those of a member of its union)."""
    for m in metadata:
        if isinstance(m, BeforeValidator) and m.func in UNIT_SUFFIXES:
            return UNIT_SUFFIXES[m.func]
    for arg in typing.get_args(annotation):
        found = _unit_suffix(arg, list(getattr(arg, "__metadata__", ())))
        if found is not None:
            return found
    return None


def _with_numbers(point: SweepPoint, s: Scenario, units: dict[str, str]) -> SweepPoint:
    """*point* with a number column after each value of a key in *units* (label -> suffix), from the validated *s*."""
    labels: dict[str, Any] = {}
    for (path, value), (shown, _) in zip(point.overrides, point.labels.items(), strict=True):
        labels[shown] = value
        if shown in units:
            found = unit_value(s, path)
            labels[f"{shown}_{units[shown]}"] = found[1] if found is not None else None
    return replace(point, labels=labels)


def _not_a_row(out: Path, line: int, why: str) -> SweepError:
    return SweepError(
        f"{terminal_safe(shorten(str(out), 200))}: line {line:,} is not a row of a sweep's results ({why}); "
        "choose another --out or delete the file"
    )


def _other_sweep(out: Path, what: str, names: list[str]) -> SweepError:
    shown = terminal_safe(shorten(", ".join(names[:6]), 120))
    return SweepError(
        f"{terminal_safe(shorten(str(out), 200))}: holds results of a different sweep ({what} {shown}, ...); "
        "choose another --out or delete the file"
    )


def _parse(text: str, jsonl: bool, out: Path, columns: list[str]) -> tuple[list[str] | None, list[tuple[str, Any]]]:
    """
    A results file's header (CSV) and its records as ``(point_id, record)`` in file order.

    A record is the JSON line (JSONL) or the parsed row (CSV). JSONL is split on newlines only:
    JSON strings may hold U+2028 and friends raw. Every JSONL line must be an object with a
    string ``point_id`` and exactly this sweep's *columns* as its keys, in order (a CSV file's
    header is compared by the caller), so two sweeps never mix in one file. CSV cells may hold
    newlines, so *text* must be read without newline translation. A line that is not a row (an
    edited or foreign file) is a :class:`SweepError` naming the line.
    """
    if jsonl:
        records: list[tuple[str, Any]] = []
        for n, line in enumerate(text.split("\n"), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except (ValueError, RecursionError):
                raise _not_a_row(out, n, "not JSON") from None
            if not isinstance(record, dict):
                raise _not_a_row(out, n, "not an object")
            if "point_id" not in record:
                raise _not_a_row(out, n, "no point_id")
            pid = record["point_id"]
            if not isinstance(pid, str):
                raise _not_a_row(out, n, "point_id is not a string")
            if list(record) != columns:
                raise _other_sweep(out, f"line {n:,} has the keys", list(map(str, record)))
            records.append((pid, line))
        return None, records
    try:
        rows = list(csv.reader(io.StringIO(text)))
    except csv.Error as exc:
        raise SweepError(
            f"{terminal_safe(shorten(str(out), 200))}: is not a sweep's CSV results ({exc}); "
            "choose another --out or delete the file"
        ) from None
    if not rows:
        return None, []
    header = rows[0]
    return header, [(row[0], row) for row in rows[1:] if row and row != header]


def _read_results(out: Path) -> bytes:
    """The results file's bytes, read as every input is (a regular file, at most ``INPUT_LIMITS["sweep"]``)."""
    try:
        return read_input(out, "sweep")
    except InputError as exc:
        raise SweepError(str(exc)) from None


def _decode(raw: bytes, out: Path) -> str:
    try:
        return decode_text(raw, out, "sweep results")
    except InputError as exc:
        raise SweepError(f"{exc}; choose another --out or delete the file") from None


def _finished(out: Path, columns: list[str]) -> set[str]:
    """
    Point ids already in *out*; a trailing partial line (an interrupted write) is cut off in place.

    The file is checked before anything is cut: it must be a results file of this sweep, and a
    partial last line must look like the start of a row, so a file that is not a sweep's is
    refused untouched.
    """
    try:
        st = os.stat(out)
    except FileNotFoundError:
        return set()
    except OSError as exc:
        raise SweepError(f"{terminal_safe(shorten(str(out), 200))}: cannot be read: {exc.strerror}") from None
    if stat.S_ISREG(st.st_mode) and st.st_size == 0:
        return set()
    raw = _read_results(out)
    jsonl = out.suffix == ".jsonl"
    if raw.startswith((b"\xff\xfe", b"\xfe\xff", b"\x00\x00\xfe\xff")):
        _decode(raw, out)  # names the UTF-16 or UTF-32
    kept = raw[: raw.rfind(b"\n") + 1]
    tail = raw[len(kept) :]
    if tail and not (tail.startswith(b'{"point_id"') if jsonl else kept):
        raise _not_a_row(out, kept.count(b"\n") + 1, "an incomplete last line that is not the start of a row")
    header, records = _parse(_decode(kept, out), jsonl, out, columns)
    if header is not None and header != [_cell(c) for c in columns]:  # a column named from a key is escaped too
        raise _other_sweep(out, "columns", header)
    if tail:
        os.truncate(out, len(kept))
    return {pid for pid, _ in records}


def _line(row: dict[str, Any], columns: list[str], jsonl: bool) -> str:
    if jsonl:
        return json_safe(json.dumps({c: row.get(c, "") for c in columns}, ensure_ascii=False)) + "\n"
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow([_cell(row.get(c)) for c in columns])
    return buf.getvalue()


def _cell(value: Any) -> str:
    r"""
    A CSV cell: "" for nothing; a value as :func:`toml_spelling` spells it; invisible characters escaped.

    Control characters (ESC included), bidi controls and every other invisible character become
    ``\xNN`` / ``\uNNNN`` as :func:`stacksim._io.terminal_safe` shows them on a terminal, so
    ``cat`` of a results file cannot drive the terminal; ordinary non-ASCII text stays as it is.
    Newlines stay (a quoted CSV cell may hold them); carriage returns become newlines (a bare one
    would end the row). Escaped text is left as it is, so rewriting a file changes nothing.
    """
    if value is None:
        return ""
    text = toml_spelling(value)
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return terminal_safe(text, keep_newlines=True)


def run_sweep(
    scenario_path: str,
    data: dict[str, Any],
    axes: list[Axis],
    out: Path,
    executor: Executor,
    *,
    plugins: tuple[PluginFile, ...] = (),
    batch: bool = True,
    catalog: FilterCatalog | None = None,
    on_done: Callable[[int, int], None] | None = None,
) -> tuple[int, int, int]:
    """
    Run the grid; append each finished point to *out*. Returns (ran, skipped, failed).

    *out* is appended in place (that is what makes a sweep resumable), opened as
    :func:`stacksim._io.open_append` opens it: a regular file only.

    Raises:
        ScenarioError: some point is not a valid scenario (checked before anything runs).
        SweepError: the axes are not a grid (:func:`check_axes`), *out* holds another sweep's
            results, or is not a results file.
        OutputError: *out* cannot be written.
    """
    check_axes(axes)
    points = grid(axes)
    catalog = catalog or _catalog(plugins)
    validated = []
    for point in points:  # fail fast on typos: validate everything before running anything
        try:
            validated.append(validate_scenario(apply(data, point.overrides), scenario_path, catalog))
        except ScenarioError as exc:
            where = ", ".join(f"{k}={toml_spelling(v)}" for k, v in point.labels.items())
            raise ScenarioError(f"{scenario_path} with {where}", exc.problems) from None
    if points:
        units = {}
        for a in axes:
            found = unit_value(validated[0], a.path)
            if found is not None:
                units[_label(a.path)] = found[0]
        points = [_with_numbers(p, s, units) for p, s in zip(points, validated, strict=True)]
    layers = list(dict.fromkeys(layer for s in validated for layer in layers_of(s)))
    head = list(points[0].labels) if points else []
    columns = [FIXED_COLUMNS[0], *head, *FIXED_COLUMNS[1:], *layer_columns(layers)]
    jsonl = out.suffix == ".jsonl"
    done = _finished(out, columns)
    todo = [p for p in points if p.point_id not in done]
    failed = 0
    kept = len(done)
    try:
        with open_append(out, flag="--out") as f:
            if not jsonl and f.tell() == 0:
                f.write(_line(dict(zip(columns, columns, strict=True)), columns, False))
                f.flush()
            futures: dict[Future[dict[str, Any]], SweepPoint] = {
                executor.submit(run_point, data, scenario_path, p, plugins, batch): p for p in todo
            }
            for n, fut in enumerate(as_completed(futures), start=1):
                try:
                    row = fut.result()
                except Exception as exc:  # the worker itself died (killed, out of memory)
                    point = futures[fut]
                    row = {"point_id": point.point_id, **point.labels, "status": "error"}
                    row["error"] = f"worker failed: {type(exc).__name__}: {exc}"
                failed += row.get("status") == "error"
                f.write(_line(row, columns, jsonl))
                f.flush()
                os.fsync(f.fileno())
                kept += 1
                if on_done is not None:
                    on_done(n, len(todo))
    except OSError as exc:  # a full disk, an I/O error: what is in the file stays, and the sweep resumes
        raise _write_failed(out, exc, kept) from None
    try:
        _in_grid_order(out, points, columns, jsonl)
    except OutputError as exc:
        raise OutputError(
            f"{exc}; every point is in the file, in the order they finished; run the same command again to sort it"
        ) from None
    return len(todo), len(points) - len(todo), failed


def _write_failed(out: Path, exc: OSError, kept: int) -> OutputError:
    """The message for an error while appending to *out*: what is kept, and how to go on."""
    name = terminal_safe(shorten(str(out), 200))
    reason = exc.strerror or type(exc).__name__
    return OutputError(
        f"--out {name}: writing failed: {reason}; the finished points are kept ({kept:,} in the file; "
        "a half-written last row is dropped when the sweep resumes); make room and run the same command again to resume"
    )


def _in_grid_order(out: Path, points: list[SweepPoint], columns: list[str], jsonl: bool) -> None:
    """
    Rewrite the finished *out* with its rows in grid order (atomically).

    Rows arrive in completion order, which depends on the workers; once every point is in,
    sorting them makes the file of a finished sweep the same on every run. Rows of points not
    in this grid (there are none unless the file was edited) go last, in their order.
    """
    order: dict[str, int] = {}
    for k, point in enumerate(points):
        order.setdefault(point.point_id, k)
    text = _decode(_read_results(out), out)
    header, records = _parse(text, jsonl, out, columns)
    records.sort(key=lambda record: order.get(record[0], len(order)))  # stable: unknown ids keep their order
    if jsonl:
        body = "".join(line + "\n" for _, line in records)
    else:
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows([*([header] if header else []), *(row for _, row in records)])
        body = buf.getvalue()
    if body != text:
        with atomic_writer(out, flag="--out") as f:
            f.write(body)


def local_executor(workers: int) -> ProcessPoolExecutor:
    """
    A process pool that starts workers by forkserver (spawn where there is none), never by fork.

    Workers ignore SIGINT (Ctrl-C reaches the whole process group; the main process stops them,
    so they print no tracebacks) and exit as soon as the main process is gone, however it ended
    (SIGKILL included), so a killed sweep leaves no workers behind. Stop the pool with
    :func:`stop_executor` on an interruption: leaving a ``with`` block would wait for every
    queued point.

    The workers start at once and import the simulator (:func:`_warm`) while the caller is
    still validating the grid, so that start-up (a few hundred ms, as long as a small point
    takes many times over) overlaps work the main process must do anyway.
    """
    ctx: multiprocessing.context.BaseContext
    if "forkserver" in multiprocessing.get_all_start_methods():
        forkserver = multiprocessing.get_context("forkserver")
        # No preload: the fork server would import the simulator (a second) before it ignores SIGINT,
        # and a Ctrl-C then printed its traceback. Forked workers inherit its SIG_IGN and import the
        # simulator themselves, once each, uninterruptible.
        forkserver.set_forkserver_preload([])
        ctx = forkserver
    else:
        ctx = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_worker_init, initargs=(os.getpid(),))
    for _ in range(workers):  # each submit with no idle worker starts one
        pool.submit(_warm)
    return pool


def _warm() -> None:
    """In a new worker: import what :func:`run_point` needs, before the first point arrives."""
    import stacksim.simulate  # noqa: F401


def stop_executor(executor: ProcessPoolExecutor) -> None:
    """Cancel the queued points and end the workers now (SIGTERM, then SIGKILL after 5 s); wait for them."""
    processes = list((getattr(executor, "_processes", None) or {}).values())  # no public API before Python 3.14
    executor.shutdown(wait=False, cancel_futures=True)
    for p in processes:
        p.terminate()
    for p in processes:
        p.join(timeout=5)
        if p.is_alive():
            p.kill()
            p.join()
    executor.shutdown(wait=True)


def _worker_init(main_pid: int) -> None:
    """In each worker: ignore Ctrl-C, and exit when the main process *main_pid* does."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_exit_with, args=(main_pid,), name="stacksim-exit-with-main", daemon=True).start()


def _exit_with(main_pid: int) -> None:
    """Wait until process *main_pid* has ended, then end this process at once (a pidfd where Linux has one)."""
    try:
        pidfd = os.pidfd_open(main_pid)
    except ProcessLookupError:
        os._exit(1)
    except (AttributeError, OSError):  # not Linux ≥ 5.3: poll
        while True:
            try:
                os.kill(main_pid, 0)
            except ProcessLookupError:
                os._exit(1)
            except OSError:
                pass
            time.sleep(0.5)
    select.select([pidfd], [], [])  # readable once the process has exited
    os._exit(1)
