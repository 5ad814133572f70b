"""
The Python API: ``stacksim.simulate("scenario.toml", overrides={"disk.bandwidth": "1 GB/s"})`` and friends.

What the command line does, as functions (``docs/reference/python-api.md``): :func:`load_scenario`
and :func:`simulate` take a scenario file, a parsed TOML table or a :class:`~stacksim.scenario.Scenario`,
with *overrides* (dotted keys, set as :mod:`stacksim.overrides` sets a sweep's ``--set``: one
code path, so an override is exactly the same change made in the TOML) and *plugins* (filter
files, loaded as ``--plugin`` loads them); :func:`read_trace` reads a trace file into a pandas
DataFrame; :func:`sweep` runs a grid on worker processes and returns its rows as one.

Bad input raises the exception the command line reports, with the same one-paragraph message:
:class:`~stacksim.scenario.ScenarioError` (the scenario or an override), :class:`~stacksim.filters.PluginError`
(a plugin file), :class:`~stacksim._io.InputError` (a trace file), :class:`~stacksim._io.OutputError`
(an output path), :class:`~stacksim.sweep.SweepError` (a grid).

Inside a running event loop (Jupyter's asyncio loop, or a trio run) :func:`simulate` runs the
simulation on a worker thread and waits for it: trio cannot run inside another loop's thread
(it takes over the signal wake-up fd asyncio's signal handlers use).
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stacksim._io import InputError, atomic_writer, check_outputs, open_input, output_file, parse_json, shorten, terminal_safe
from stacksim._pandas import require_pandas
from stacksim.filters import FilterCatalog
from stacksim.overrides import OverrideError, apply, check_distinct, check_value, parse_key
from stacksim.report import RunResult
from stacksim.scenario import Scenario, ScenarioError, read_scenario_data, validate_scenario
from stacksim.trace import FIELDS, JsonlTrace, TraceSink

if TYPE_CHECKING:
    import pandas as pd

    from stacksim.datamode import DataMode

__all__ = ["MAX_TRACE_RECORDS", "ScenarioInput", "load_scenario", "read_trace", "simulate", "sweep"]

ScenarioInput = Scenario | str | Path | Mapping[str, Any]
"""What the API takes as a scenario: a file's path, a parsed TOML table, or a validated :class:`Scenario`."""

PathInput = str | Path

MAX_TRACE_RECORDS = 10_000_000
"""Most records :func:`read_trace` loads into a DataFrame (ASSUMPTION: about 4 GB of memory at ~400 bytes a row).

``stacksim check`` streams a trace of any length; a DataFrame holds it whole, so a trace longer
than this is refused with its length rather than exhausting memory."""

_DICT_SOURCE = "scenario (a table given in Python)"


def _catalog(plugins: Iterable[PathInput], catalog: FilterCatalog | None) -> FilterCatalog:
    """*catalog* (a copy) or the built-ins and installed entry points, with each plugin file loaded as ``--plugin`` does."""
    if catalog is None:
        catalog = FilterCatalog()
        catalog.load_entry_points()
    else:
        catalog = catalog.copy()
    for plugin in plugins:
        catalog.load_file(plugin)
    return catalog


def _data_and_source(scenario: ScenarioInput) -> tuple[dict[str, Any], str]:
    """The parsed TOML of *scenario* and the name messages give it (the file's path as given)."""
    if isinstance(scenario, Scenario):
        return scenario.source_data, f"scenario {scenario.scenario.name}"
    if isinstance(scenario, str | Path):
        return read_scenario_data(scenario), os.fspath(scenario)
    if isinstance(scenario, Mapping):
        return dict(scenario), _DICT_SOURCE
    raise TypeError(f"a scenario is a file's path, a table (dict) or a stacksim.Scenario, not {type(scenario).__name__}")


def _override_paths(overrides: Mapping[str, Any] | None, source: str) -> list[tuple[tuple[str, ...], Any]]:
    """
    Each override's key as a path (:func:`stacksim.overrides.parse_key`) with its value.

    A key that is not one, a None value (TOML has no null) or two keys that overlap (``disk`` and
    ``disk.bandwidth``, or one key spelled twice) is a :class:`ScenarioError`.
    """
    out = []
    settings = []
    for key, value in (overrides or {}).items():
        if not isinstance(key, str):
            raise ScenarioError(source, [("", f"overrides: the key {key!r} is not a string such as 'disk.bandwidth'")])
        setting = f"overrides[{terminal_safe(shorten(repr(key), 80))}]"
        try:
            path = parse_key(key, setting)
            check_value(value, setting)
        except OverrideError as exc:
            raise ScenarioError(source, [("", str(exc))]) from None
        out.append((path, value))
        settings.append((path, setting))
    try:
        check_distinct(settings)
    except OverrideError as exc:
        raise ScenarioError(source, [("", str(exc))]) from None
    return out


def load_scenario(
    scenario: ScenarioInput,
    catalog: FilterCatalog | None = None,
    *,
    overrides: Mapping[str, Any] | None = None,
    plugins: Iterable[PathInput] = (),
    seed: int | None = None,
) -> Scenario:
    """
    Read and validate *scenario* (a path, a parsed TOML table or a :class:`Scenario`) with *overrides* set.

    *overrides* maps dotted keys (``"disk.bandwidth"``, ``'filters."dumpfve.sys".per_byte'``) to
    values as TOML would hold them (``"1 GB/s"``, ``3``, ``true``); each is set in the parsed
    TOML before it is validated, as ``stacksim sweep --set`` sets it. A value of None (anywhere
    in it) is refused, since TOML has no null (leave the key out for its default), and so are two
    keys that overlap (``disk`` and ``disk.bandwidth``), as TOML refuses a key defined twice. *seed* overrides
    ``[scenario] seed`` (as ``--seed`` does). Filters come from *catalog* if given, else the
    built-ins and installed entry points; *plugins* are filter files added as ``--plugin`` adds them.

    Raises:
        ScenarioError: the scenario, or the scenario with the overrides, is not valid (the
            message ``stacksim validate`` prints).
        PluginError: a plugin file cannot be loaded.
    """
    catalog = _catalog(plugins, catalog)
    return _validated(scenario, catalog, overrides, seed)


def _validated(
    scenario: ScenarioInput, catalog: FilterCatalog, overrides: Mapping[str, Any] | None, seed: int | None
) -> Scenario:
    data, source = _data_and_source(scenario)
    changes = _override_paths(overrides, source)
    if seed is not None:
        changes.append((("scenario", "seed"), seed))
    try:
        return validate_scenario(apply(data, changes), source, catalog)
    except OverrideError as exc:
        raise ScenarioError(source, [("", str(exc))]) from None


def simulate(
    scenario: ScenarioInput,
    catalog: FilterCatalog | None = None,
    *,
    overrides: Mapping[str, Any] | None = None,
    plugins: Iterable[PathInput] = (),
    seed: int | None = None,
    trace: TraceSink | PathInput | None = None,
    batch: bool = True,
    pipeline: bool = True,
    progress: Callable[[int, int], None] | None = None,
    data: DataMode | None = None,
) -> RunResult:
    """
    Run *scenario* in virtual time and return its :class:`~stacksim.report.RunResult`, as ``stacksim run`` does.

    *scenario*, *catalog*, *overrides*, *plugins* and *seed* are as for :func:`load_scenario`
    (a :class:`Scenario` is validated again unless it comes with its *catalog* and nothing to
    change). *trace* is a file path (the JSON-lines trace, written atomically, as ``--trace``
    writes it) or a :class:`~stacksim.trace.TraceSink`. *batch*, *pipeline*, *progress* and
    *data* are those of :func:`stacksim.simulate.simulate`. The same scenario and seed give the
    same result: ``result.to_json()`` is byte for byte what ``stacksim run --json`` writes.

    Raises:
        ScenarioError: the scenario with its overrides is not valid.
        PluginError: a plugin file cannot be loaded.
        OutputError: *trace* is a path that cannot be written, or is an input.
    """
    plugins = tuple(plugins)
    if isinstance(scenario, Scenario) and catalog is not None and not plugins and not overrides and seed is None:
        s = scenario
    else:
        catalog = _catalog(plugins, catalog)
        s = _validated(scenario, catalog, overrides, seed)
    assert catalog is not None
    if isinstance(trace, str | Path):
        inputs = [Path(os.fspath(p)) for p in plugins]
        if isinstance(scenario, str | Path):
            inputs.append(Path(os.fspath(scenario)))
        out = output_file(trace, "trace")
        check_outputs([("trace", out)], inputs)
        with atomic_writer(out, flag="trace") as stream:
            return _run(s, catalog, JsonlTrace(stream), batch, pipeline, progress, data)
    return _run(s, catalog, trace, batch, pipeline, progress, data)


def _run(
    s: Scenario,
    catalog: FilterCatalog,
    trace: TraceSink | None,
    batch: bool,
    pipeline: bool,
    progress: Callable[[int, int], None] | None,
    data: DataMode | None,
) -> RunResult:
    """The run itself: here, or on a worker thread when this thread is inside an event loop (:func:`in_event_loop`)."""
    from stacksim.simulate import simulate as run

    def go() -> RunResult:
        return run(s, catalog, trace=trace, batch=batch, pipeline=pipeline, progress=progress, data=data)

    if not in_event_loop():
        return go()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="stacksim-simulate") as pool:
        return pool.submit(go).result()


def in_event_loop() -> bool:
    """Whether this thread is running an asyncio event loop (Jupyter's) or a trio run; nothing is imported to find out."""
    asyncio = sys.modules.get("asyncio")
    if asyncio is not None:
        with contextlib.suppress(RuntimeError):
            asyncio.get_running_loop()
            return True
    trio = sys.modules.get("trio")
    return trio is not None and bool(trio.lowlevel.in_trio_run())


def read_trace(path: PathInput, *, max_records: int = MAX_TRACE_RECORDS) -> pd.DataFrame:
    """
    The trace file at *path* (``stacksim run --trace``) as a pandas DataFrame: one row per record, in file order.

    Columns are the trace fields (``docs/reference/trace-format.md``) in order; ``detail`` holds
    each record's detail object as a dict (or None). Integer fields that may be null
    (``request``, ``offset``, ``length``) are pandas' nullable ``Int64``. The file is read as
    ``stacksim check`` reads it (a regular file of at most 64 GiB); at most *max_records* rows are
    loaded. Needs the ``pandas`` extra.

    Raises:
        InputError: not a regular file, too large, a line that is not a JSON object with exactly
            the trace's fields, or more than *max_records* records.
        ImportError: pandas is not installed (the message names ``stacksim[pandas]``).
    """
    pd = require_pandas("stacksim.read_trace()")
    name = terminal_safe(shorten(os.fspath(path), 200))
    rows: list[list[Any]] = []
    with open_input(path, "trace") as stream:
        for n, raw in enumerate(stream, start=1):
            if not raw.strip():
                continue
            if len(rows) >= max_records:
                raise InputError(f"{name}: has more than {max_records:,} records; read_trace loads at most {max_records:,}")
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise InputError(f"{name}: line {n:,} is not UTF-8 text") from None
            record = parse_json(text, f"{name}, line {n:,}", "trace")
            if not isinstance(record, dict) or tuple(record) != FIELDS:
                raise InputError(
                    f"{name}: line {n:,} is not a trace record (a JSON object with the fields {', '.join(FIELDS)}, in order)"
                )
            rows.append(list(record.values()))
    frame = pd.DataFrame(rows, columns=list(FIELDS))
    nullable = dict.fromkeys(("request", "offset", "length"), "Int64")
    return frame.astype({"t_ns": "int64", "seq": "int64", "dur_ns": "int64", **nullable})


def sweep(
    scenario: PathInput | Mapping[str, Any],
    axes: Mapping[str, Iterable[Any]],
    *,
    out: PathInput | None = None,
    workers: int | None = None,
    plugins: Iterable[PathInput] = (),
    batch: bool = True,
) -> pd.DataFrame:
    """
    Run *scenario* for every combination of the *axes*' values and return the rows as a pandas DataFrame.

    *axes* maps dotted keys to their values (``{"disk.bandwidth": ["1GB/s", "3GB/s"]}``), Python
    values as TOML holds them; the grid is the cartesian product in the order given, the last
    key varying fastest, exactly as ``stacksim sweep --set`` runs it. The rows are those
    ``stacksim sweep`` writes (``docs/how-to/run-a-sweep.md``): the point's values, their numbers
    (``disk.bandwidth_Bps``), the outcome and per-layer columns. With *out* (``.csv`` or
    ``.jsonl``) the file is written and resumed as ``--out`` is, and the frame is read from it;
    without, the sweep runs into a temporary file that is removed. *workers* local processes
    (default: one per CPU). Needs the ``pandas`` extra.

    Raises:
        ScenarioError: some point is not a valid scenario (checked before anything runs).
        SweepError: the axes are not a grid, or *out* holds another sweep's results.
        PluginError: a plugin file cannot be loaded.
        OutputError: *out* cannot be written.
        ImportError: pandas is not installed (the message names ``stacksim[pandas]``).
    """
    pd = require_pandas("stacksim.sweep()")
    from stacksim.filters import read_plugin
    from stacksim.sweep import SweepError, axis, local_executor, run_sweep, stop_executor

    grid_axes = [axis(key, list(values)) for key, values in axes.items()]
    if isinstance(scenario, str | Path):
        data, source = read_scenario_data(scenario), os.fspath(scenario)
    else:
        data, source = dict(scenario), _DICT_SOURCE
    files = tuple(read_plugin(p) for p in plugins)
    catalog = _catalog((), None)
    for f in files:
        catalog.load_plugin(f)
    with tempfile.TemporaryDirectory(prefix="stacksim-sweep-") as tmp:
        target = output_file(out, "out") if out is not None else Path(tmp) / "sweep.jsonl"
        inputs = [Path(f.path) for f in files] + ([Path(os.fspath(scenario))] if isinstance(scenario, str | Path) else [])
        check_outputs([("out", target)], inputs)
        if target.suffix not in (".csv", ".jsonl"):
            raise SweepError(f"out {terminal_safe(shorten(str(target), 200))}: use a .csv or .jsonl file name")
        executor = local_executor(workers or os.cpu_count() or 1)
        try:
            run_sweep(source, data, grid_axes, target, executor, plugins=files, batch=batch, catalog=catalog)
        except BaseException:
            stop_executor(executor)
            raise
        executor.shutdown(wait=True)
        if target.suffix == ".csv":
            frame = pd.read_csv(target, keep_default_na=False, na_values=[""])
        else:
            with open_input(target, "sweep") as stream:
                records = [parse_json(line.decode("utf-8"), target, "sweep results") for line in stream if line.strip()]
            frame = pd.DataFrame.from_records(records).replace({"": None})
        return frame.convert_dtypes()
