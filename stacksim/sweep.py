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

import copy
import csv
import hashlib
import io
import itertools
import json
import multiprocessing
import os
import tomllib
from collections.abc import Callable, Iterable
from concurrent.futures import Executor, Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stacksim._io import atomic_writer
from stacksim.filters import FilterCatalog
from stacksim.scenario import ScenarioError, validate_scenario

__all__ = ["Axis", "SweepError", "SweepPoint", "grid", "parse_set", "run_point", "run_sweep"]

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
    "layers",
)


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


def _value(text: str) -> Any:
    """A TOML value if the text is one (3, true, "x", [..]); otherwise the text itself ("3GB/s")."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def parse_set(text: str) -> Axis:
    """
    Parse ``KEY=V1,V2,...`` into an :class:`Axis`.

    KEY is a TOML dotted key such as ``disk.bandwidth`` or ``filters."dumpfve.sys".per_byte``;
    each value is a TOML value (``3``, ``true``, ``"x"``, ``[...]``) or else a bare string.
    """
    key, sep, values = text.partition("=")
    if not sep or not key.strip() or not values.strip():
        raise SweepError(f"--set {text!r}: write KEY=V1,V2,... e.g. --set disk.bandwidth=1GB/s,3GB/s")
    try:
        tree = tomllib.loads(f"{key.strip()} = 0")
    except tomllib.TOMLDecodeError:
        raise SweepError(f"--set {text!r}: {key.strip()!r} is not a key path such as disk.bandwidth") from None
    path: list[str] = []
    node: Any = tree
    while isinstance(node, dict):
        ((name, node),) = node.items()
        path.append(name)
    vals = [v for v in _split_values(values) if v != ""]
    if not vals:
        raise SweepError(f"--set {text!r}: no values")
    return Axis(text, tuple(path), tuple(_value(v) for v in vals))


def _label(path: tuple[str, ...]) -> str:
    return ".".join(f'"{p}"' if "." in p else p for p in path)


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
    """A copy of scenario *data* with each override set at its key path."""
    out = copy.deepcopy(data)
    for path, value in overrides:
        node = out
        for name in path[:-1]:
            node = node.setdefault(name, {})
            if not isinstance(node, dict):
                raise SweepError(f"{_label(path)}: {name} is not a table in the scenario")
        node[path[-1]] = value
    return out


def _catalog(plugins: tuple[str, ...]) -> FilterCatalog:
    """
    The filter catalog for one point: built-ins, entry points and *plugins*.

    Scanning entry points costs milliseconds, as much as a small run, so a worker does it once
    (entry-point modules are imported once per process anyway). Plugin files are executed
    afresh for every point, as for ``stacksim run``, so no state a plugin keeps in its module
    or class carries over from one point to the next.
    """
    global _ENTRY_POINTS
    if _ENTRY_POINTS is None:
        _ENTRY_POINTS = FilterCatalog()
        _ENTRY_POINTS.load_entry_points()
    catalog = _ENTRY_POINTS.copy()
    for plugin in plugins:
        catalog.load_file(plugin)
    return catalog


_ENTRY_POINTS: FilterCatalog | None = None


def run_point(data: dict[str, Any], source: str, point: SweepPoint, plugins: tuple[str, ...], batch: bool) -> dict[str, Any]:
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
        layers=json.dumps(result["layers"], separators=(",", ":")),
    )
    return row


def _parse(text: str, jsonl: bool) -> tuple[list[str] | None, list[tuple[str, Any]]]:
    """
    A results file's header (CSV) and its records as ``(point_id, record)`` in file order.

    A record is the JSON line (JSONL) or the parsed row (CSV). JSONL is split on newlines only:
    JSON strings may hold U+2028 and friends raw. CSV cells may hold newlines, so *text* must be
    read without newline translation.
    """
    if jsonl:
        return None, [(json.loads(line)["point_id"], line) for line in text.split("\n") if line.strip()]
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        return None, []
    header = rows[0]
    return header, [(row[0], row) for row in rows[1:] if row and row != header]


def _finished(out: Path, columns: list[str]) -> set[str]:
    """Point ids already in *out*; a trailing partial line (an interrupted write) is dropped."""
    if not out.exists() or out.stat().st_size == 0:
        return set()
    raw = out.read_bytes()
    if not raw.endswith(b"\n"):
        raw = raw[: raw.rfind(b"\n") + 1]
        out.write_bytes(raw)
    header, records = _parse(raw.decode("utf-8"), out.suffix == ".jsonl")
    if header is not None and header != columns:
        raise SweepError(
            f"{out}: holds results of a different sweep (columns {', '.join(header[:6])}, ...); "
            "choose another --out or delete the file"
        )
    return {pid for pid, _ in records}


def _line(row: dict[str, Any], columns: list[str], jsonl: bool) -> str:
    if jsonl:
        return json.dumps({c: row.get(c, "") for c in columns}, ensure_ascii=False) + "\n"
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow([_cell(row.get(c)) for c in columns])
    return buf.getvalue()


def _cell(value: Any) -> Any:
    """A CSV cell: "" for nothing; carriage returns become newlines (a bare one would end the row)."""
    if value is None:
        return ""
    if isinstance(value, str) and "\r" in value:
        return value.replace("\r\n", "\n").replace("\r", "\n")
    return value


def run_sweep(
    scenario_path: str,
    data: dict[str, Any],
    axes: list[Axis],
    out: Path,
    executor: Executor,
    *,
    plugins: tuple[str, ...] = (),
    batch: bool = True,
    catalog: FilterCatalog | None = None,
    on_done: Callable[[int, int], None] | None = None,
) -> tuple[int, int, int]:
    """
    Run the grid; append each finished point to *out*. Returns (ran, skipped, failed).

    Raises:
        ScenarioError: some point is not a valid scenario (checked before anything runs).
        SweepError: *out* holds another sweep's results.
    """
    points = grid(axes)
    catalog = catalog or _catalog(plugins)
    for point in points:  # fail fast on typos: validate everything before running anything
        try:
            validate_scenario(apply(data, point.overrides), scenario_path, catalog)
        except ScenarioError as exc:
            where = ", ".join(f"{k}={v}" for k, v in point.labels.items())
            raise ScenarioError(f"{scenario_path} with {where}", exc.problems) from None
    columns = [FIXED_COLUMNS[0], *points[0].labels, *FIXED_COLUMNS[1:]] if points else list(FIXED_COLUMNS)
    jsonl = out.suffix == ".jsonl"
    done = _finished(out, columns)
    todo = [p for p in points if p.point_id not in done]
    failed = 0
    with open(out, "a", encoding="utf-8", newline="") as f:
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
            if on_done is not None:
                on_done(n, len(todo))
    _in_grid_order(out, points, jsonl)
    return len(todo), len(points) - len(todo), failed


def _in_grid_order(out: Path, points: list[SweepPoint], jsonl: bool) -> None:
    """
    Rewrite the finished *out* with its rows in grid order (atomically).

    Rows arrive in completion order, which depends on the workers; once every point is in,
    sorting them makes the file of a finished sweep the same on every run. Rows of points not
    in this grid (there are none unless the file was edited) go last, in their order.
    """
    order: dict[str, int] = {}
    for k, point in enumerate(points):
        order.setdefault(point.point_id, k)
    text = out.read_bytes().decode("utf-8")
    header, records = _parse(text, jsonl)
    records.sort(key=lambda record: order.get(record[0], len(order)))  # stable: unknown ids keep their order
    if jsonl:
        body = "".join(line + "\n" for _, line in records)
    else:
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows([*([header] if header else []), *(row for _, row in records)])
        body = buf.getvalue()
    if body != text:
        with atomic_writer(out) as f:
            f.write(body)


def local_executor(workers: int) -> ProcessPoolExecutor:
    """A process pool that starts workers by forkserver (spawn where there is none), never by fork."""
    methods = multiprocessing.get_all_start_methods()
    if "forkserver" not in methods:
        return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
    ctx = multiprocessing.get_context("forkserver")
    # Import the simulator once in the fork server (before any trio run), not in every worker.
    ctx.set_forkserver_preload(["stacksim.simulate", "stacksim.sweep"])
    return ProcessPoolExecutor(max_workers=workers, mp_context=ctx)
