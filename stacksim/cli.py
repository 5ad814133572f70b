"""
The ``stacksim`` command: ``run``, ``sweep``, ``replay``, ``diff``, ``check``, ``validate``, ``explain``, ``memory`` and more.

``extract`` and ``inspect`` read a data-mode disk image back, as the boot after the crash would.
``perfetto`` turns a trace into Trace Event JSON for ui.perfetto.dev (as ``run --perfetto`` does while it runs);
``plot`` draws a result, a trace or a sweep's CSV as PNG files (the ``plot`` extra: matplotlib).

``devices`` and ``filters`` list what a scenario may name.

Exit status: 0 when the simulation produced a result (whatever the simulated dump's status),
2 for bad input (scenario, result file, flags, plugins, output paths) with a one-paragraph
message and no output file, 1 when a run is interrupted (Ctrl-C or SIGTERM: no output and no
temporary file is left) or a replay differs. Tables go to stdout; ``--json -`` prints the
result JSON instead. Every input is read and every output checked through :mod:`stacksim._io`
before anything runs, and input text in messages is escaped for the terminal.
"""

from __future__ import annotations

import contextlib
import errno
import importlib
import io
import json
import os
import re
import select
import signal
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Final, NoReturn

import typer
from typer.core import TyperGroup

from stacksim._io import (
    MAX_DEPTH,
    InputError,
    OutputError,
    atomic_binary_writer,
    atomic_writer,
    check_outputs,
    decode_text,
    json_safe,
    names_a_folder,
    output_file,
    parse_json,
    read_input,
    shorten,
    terminal_safe,
)
from stacksim._version import __version__
from stacksim.units import INT64_MAX, format_ns

# Start-up: this module imports only what building the command line needs (typer, _io, units),
# so `stacksim --help` and `--version` import no trio, pydantic, structlog, numpy or the
# simulator; each command imports what it uses (docs/explanation/performance.md, "Start-up").
if TYPE_CHECKING:
    from rich.console import Console

    from stacksim.extract import Located
    from stacksim.filters import FilterCatalog
    from stacksim.scenario import Scenario
    from stacksim.simulate import RunResult
    from stacksim.trace import TraceSink

__all__ = ["app", "main"]


class _Commands(TyperGroup):
    """The command group: a Ctrl-C or SIGTERM anywhere in a command is the documented interruption (exit 1)."""

    def invoke(self, ctx: Any) -> Any:  # typer's own (vendored) click Context
        """Run the command; a KeyboardInterrupt that no command handled becomes "interrupted", exit 1 (typer: 130)."""
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            _fail(f"{_interrupted()}; no output file was written", code=1)


app = typer.Typer(
    cls=_Commands,
    name="stacksim",
    help="Simulate the Windows crash-dump and hibernation I/O path in virtual time.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

ScenarioArg = Annotated[Path, typer.Argument(help="Scenario file (TOML).", show_default=False)]
PluginOpt = Annotated[
    list[Path] | None,
    typer.Option("--plugin", help="Python file defining DumpFilter subclasses (repeatable).", show_default=False),
]


def _fail(message: str, code: int = 2) -> NoReturn:
    """
    Print a one-paragraph error to stderr and exit; control and bidi characters from input are escaped.

    Bad input (*code* 2) found after a Ctrl-C or SIGTERM arrived is the interruption's doing (a
    plugin's import or a Config validator stopped by the signal reports a plugin error): it is
    reported as the interruption, exit 1.
    """
    from rich.markup import escape

    if code == 2 and _SIGNALS.interrupted:
        message, code = f"{_interrupted()}; no output file was written", 1
    text = escape(terminal_safe(message, keep_newlines=True))
    _console(stderr=True, soft_wrap=True).print(f"[bold red]error:[/] {text}", markup=True)
    raise typer.Exit(code)


def _console(*, stderr: bool = False, soft_wrap: bool = False) -> Console:
    """A rich console without highlighting (on stdout, or *stderr*); rich is imported only when something is printed."""
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=soft_wrap)


def _shown(text: object, limit: int = 200) -> str:
    """Input-derived text as it may appear in a message: shortened, escaped for the terminal."""
    return terminal_safe(shorten(str(text), limit))


def _catalog(plugins: list[Path] | None) -> FilterCatalog:
    from stacksim.filters import FilterCatalog, PluginError

    catalog = FilterCatalog()
    try:
        catalog.load_entry_points()
        for plugin in plugins or []:
            catalog.load_file(plugin)
    except PluginError as exc:
        _fail(str(exc))
    return catalog


def _load_scenario(path: Path, catalog: FilterCatalog, seed: int | None = None) -> Scenario:
    """The scenario file at *path*, validated against *catalog* (with *seed* overriding its own); exit 2 if it is bad."""
    from stacksim.scenario import ScenarioError, load_scenario

    try:
        return load_scenario(path, catalog, seed=seed)
    except ScenarioError as exc:
        _fail(str(exc))


def _bad_scenario(path: Path, problem: tuple[str, str]) -> NoReturn:
    """Exit 2 with one problem found in the scenario at *path* after it validated (data mode's conditions)."""
    from stacksim.scenario import ScenarioError

    _fail(ScenarioError(str(path), [problem]).render())


def _check_outputs(outputs: list[tuple[str, Path | None]], inputs: list[Path]) -> None:
    """Refuse output paths that cannot be written, collide, or are inputs, before anything runs."""
    try:
        check_outputs(outputs, inputs)
    except OutputError as exc:
        _fail(str(exc))


class _DiscardTrace:
    """A trace sink that keeps nothing: replays a traced run's engine mode without a trace file."""

    def emit(self, *values: object) -> None:
        """Drop one record."""


def _interrupted() -> str:
    return "interrupted (SIGTERM)" if _SIGNALS.terminated else "interrupted"


@dataclass(frozen=True)
class _RunLogging:
    """How a run logs: the stderr level, and ``--log-json``'s file and level."""

    level: str = "warning"
    json_path: Path | None = None
    json_level: str = "info"

    def _levels(self) -> list[str]:
        return [self.level, *([self.json_level] if self.json_path is not None else [])]

    @property
    def phases(self) -> bool:
        """Whether an output shows info events: then the engine's phase records are logged."""
        return any(level in ("debug", "info") for level in self._levels())

    @property
    def requests(self) -> bool:
        """Whether the JSON log shows debug events: then one line per request per layer (:class:`~stacksim._log.LogTrace`)."""
        return self.json_path is not None and self.json_level == "debug"


def _simulate_to_files(
    s: Scenario,
    catalog: FilterCatalog,
    *,
    batch: bool,
    json_out: Path | None,
    trace_out: Path | None,
    traced: bool | None = None,
    image: Path | None = None,
    key: tuple[bytes, str] | None = None,
    perfetto_out: Path | None = None,
    perfetto_limit: int = 0,
    log: _RunLogging | None = None,
) -> tuple[RunResult, str]:
    """
    Run *s*, streaming the trace and writing the result JSON atomically; return the result and its JSON.

    *traced* (for replay) is whether the result must be that of a traced run: ``True`` without
    *trace_out* runs with a trace that is thrown away; ``False`` with *trace_out* runs twice,
    once traced for the file and once as recorded for the result. ``None``: traced iff *trace_out*.
    With *image* (and *key*: the volume key and where it came from) the run is in data mode and
    writes the disk image there, atomically like the other outputs. With *perfetto_out* the
    trace's records also go, as they come, to a Trace Event JSON file there
    (:class:`~stacksim.perfetto.PerfettoTrace`, requests up to *perfetto_limit* in full).
    With *log* (``run``'s logging options) the run's log also goes, as JSON lines, to its
    ``--log-json`` file, written atomically like the other outputs; at debug level with one line
    per request per layer, which runs one write at a time (a trace alone runs pipelined).
    """
    from stacksim.datamode import DataMode
    from stacksim.diskimage import DiskImage
    from stacksim.scenario import ScenarioError
    from stacksim.simulate import simulate
    from stacksim.trace import JsonlTrace, TeeTrace

    try:
        with contextlib.ExitStack() as stack:
            stack.enter_context(_python_ctrl_c())
            stream = stack.enter_context(atomic_writer(trace_out, flag="--trace")) if trace_out is not None else None
            trace: TraceSink | None = JsonlTrace(stream) if stream is not None else None
            exported = None
            pipeline = True
            if log is not None and log.json_path is not None:
                from stacksim._log import LogTrace, configure_logging

                log_stream = stack.enter_context(atomic_writer(log.json_path, flag="--log-json"))
                configure_logging(log.level, json_stream=log_stream, json_level=log.json_level)
                stack.callback(configure_logging, log.level)  # (before the file is closed: callbacks run last in, first out)
                if log.requests:
                    trace = LogTrace() if trace is None else TeeTrace(trace, LogTrace())
                    pipeline = False  # the lines stream as the records come: an abandoned attempt could not take them back
            if perfetto_out is not None:
                from stacksim.perfetto import PerfettoTrace

                exported = PerfettoTrace(stack.enter_context(atomic_writer(perfetto_out, flag="--perfetto")), perfetto_limit)
                trace = exported if trace is None else TeeTrace(trace, exported)
            if traced is False and trace is not None:
                simulate(s, catalog, trace=trace, batch=batch)  # for the trace file only
                trace = None
            elif traced and trace is None:
                trace = _DiscardTrace()
            mode = None
            if image is not None:
                assert key is not None
                disk = stack.enter_context(atomic_binary_writer(image, flag="--image"))
                mode = DataMode(DiskImage(disk, s.disk.resolved()[3]), *key)
            result = simulate(
                s,
                catalog,
                trace=trace,
                batch=batch,
                progress=_progress_bar(stack),
                data=mode,
                pipeline=pipeline,
                log_phases=log is not None and log.phases,
            )
            if exported is not None:
                exported.close()
            text = result_json(result)
            if json_out is not None and str(json_out) != "-":
                with atomic_writer(json_out, flag="--json") as f:
                    f.write(text)
    except ScenarioError as exc:
        _fail(str(exc))
    except OutputError as exc:
        _fail(f"{exc}; no output file was written")
    except KeyboardInterrupt:
        _fail(f"{_interrupted()}; no output file was written", code=1)
    except BaseExceptionGroup as group:
        if group.split(KeyboardInterrupt)[1] is not None:
            raise
        _fail(f"{_interrupted()}; no output file was written", code=1)
    return result, text


def _perfetto_limit(text: str | None) -> int:
    """``--perfetto-limit`` as a number (the default when not given); exit 2 naming the option and the range otherwise."""
    from stacksim.perfetto import DEFAULT_LIMIT, parse_limit

    if text is None:
        return DEFAULT_LIMIT
    try:
        return parse_limit(text)
    except ValueError as exc:
        _fail(str(exc))


def _volume_key(s: Scenario, key_file: Path | None) -> tuple[bytes, str]:
    """The data-mode volume key: read from *key_file*, else derived from the seed (``docs/reference/encryption.md``)."""
    from stacksim.xts import derive_key, read_key_file

    if key_file is None:
        return derive_key(s.scenario.seed), "derived from the seed"
    try:
        return read_key_file(key_file), f"key file {key_file.name}"
    except InputError as exc:
        _fail(str(exc))


def _progress_bar(stack: contextlib.ExitStack) -> Callable[[int, int], None] | None:
    """A bar on stderr for a long run (a request-mode dump), when stderr is a terminal; it vanishes at the end."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    console = _console(stderr=True)
    if not console.is_terminal:
        return None
    bar = stack.enter_context(
        Progress(
            TextColumn("simulating"),
            BarColumn(),
            TextColumn("{task.percentage:>5.1f} % of the dump's bytes"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        )
    )
    task = bar.add_task("simulating", total=None)

    def update(done: int, total: int) -> None:
        bar.update(task, completed=done, total=total)

    return update


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"stacksim {__version__}")
        raise typer.Exit(0)


def _fail_choice(flag: str, value: str, allowed: Iterable[str]) -> NoReturn:
    """Exit 2: *value* is not one of *allowed* for *flag* (the value shortened: it may be a megabyte)."""
    _fail(f"{flag} {shorten(repr(value), 60)}: allowed values are {', '.join(allowed)}")


def _output_path(value: str) -> Path:
    """An output option's file, as typed: one ending in a slash is refused, exit 2 (:func:`stacksim._io.output_file`)."""
    try:
        return output_file(value)
    except OutputError as exc:  # click's message names the option
        raise typer.BadParameter(str(exc)) from None


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Simulate the Windows crash-dump and hibernation I/O path in virtual time."""


@app.command()
def run(
    scenario: ScenarioArg,
    json_out: Annotated[
        Path | None,
        typer.Option("--json", parser=_output_path, help="Write the result JSON here ('-' for stdout).", show_default=False),
    ] = None,
    trace_out: Annotated[
        Path | None,
        typer.Option("--trace", parser=_output_path, help="Write the event trace (JSON lines) here.", show_default=False),
    ] = None,
    perfetto_out: Annotated[
        Path | None,
        typer.Option(
            "--perfetto",
            parser=_output_path,
            help="Write the trace as Trace Event JSON here (open it at ui.perfetto.dev).",
            show_default=False,
        ),
    ] = None,
    perfetto_limit: Annotated[
        str | None,
        typer.Option(
            "--perfetto-limit",
            metavar="N",
            help="With --perfetto: requests drawn in full on each stack, 0 to 1,000,000 (default 10,000); the rest as counters.",
            show_default=False,
        ),
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option("--seed", min=0, max=INT64_MAX, help="Override the scenario's seed (0 to 2^63 - 1).", show_default=False),
    ] = None,
    plugin: PluginOpt = None,
    batch: Annotated[
        bool,
        typer.Option("--batch/--no-batch", help="Batched mode (default) or request mode: one message per write; same results."),
    ] = True,
    log_level: Annotated[str, typer.Option("--log-level", help="debug, info, warning or error (stderr).")] = "warning",
    log_json: Annotated[
        Path | None,
        typer.Option(
            "--log-json",
            parser=_output_path,
            help="Write structlog JSON lines (simulated time in sim_ns) here.",
            show_default=False,
        ),
    ] = None,
    log_json_level: Annotated[
        str | None,
        typer.Option(
            "--log-json-level",
            help="With --log-json: info (phases, the default), debug (also one line per request per layer), warning, error.",
            show_default=False,
        ),
    ] = None,
    data: Annotated[
        bool, typer.Option("--data", help="Data mode: real bytes through every layer onto a disk image (needs --image).")
    ] = False,
    image: Annotated[
        Path | None,
        typer.Option("--image", parser=_output_path, help="Data mode: write the disk image (sparse) here.", show_default=False),
    ] = None,
    key_file: Annotated[
        Path | None,
        typer.Option(
            "--key-file", help="Data mode: the 64-byte AES-256-XTS volume key (default: from the seed).", show_default=False
        ),
    ] = None,
    output_format: Annotated[
        str,
        typer.Option(
            "--output-format",
            help="What stdout shows: normal (the summary), json (the result JSON) or terse (one ';' line per layer).",
        ),
    ] = "normal",
) -> None:
    """Run a scenario and print where the time went."""
    from stacksim._log import LEVELS, configure_logging
    from stacksim.datamode import data_mode_problem
    from stacksim.summary import render

    if log_level.lower() not in LEVELS:
        _fail_choice("--log-level", log_level, LEVELS)
    if output_format not in OUTPUT_FORMATS:
        _fail_choice("--output-format", output_format, OUTPUT_FORMATS)
    if output_format == "terse" and json_out is not None and str(json_out) == "-":
        _fail("--json - and --output-format terse both write stdout: write the JSON to a file (--json result.json)")
    if log_json_level is not None and log_json is None:
        _fail("--log-json-level goes with --log-json: --log-json run.log.jsonl --log-json-level debug writes the log")
    if log_json_level is not None and log_json_level.lower() not in LEVELS:
        _fail_choice("--log-json-level", log_json_level, LEVELS)
    if data != (image is not None):
        _fail("--data and --image go together: --data --image disk.img writes the disk image of a data-mode run")
    if key_file is not None and not data:
        _fail("--key-file is for data mode: add --data --image disk.img")
    if perfetto_limit is not None and perfetto_out is None:
        _fail("--perfetto-limit goes with --perfetto: --perfetto run.json --perfetto-limit N writes the Perfetto file")
    limit = _perfetto_limit(perfetto_limit)
    inputs = [scenario, *(plugin or []), *([key_file] if key_file is not None else [])]
    outputs = [("--json", json_out), ("--trace", trace_out), ("--perfetto", perfetto_out), ("--image", image)]
    _check_outputs([*outputs, ("--log-json", log_json)], inputs)
    configure_logging(log_level.lower())
    catalog = _catalog(plugin)
    s = _load_scenario(scenario, catalog, seed=seed)
    key = None
    if data:
        if (problem := data_mode_problem(s)) is not None:
            _bad_scenario(scenario, problem)
        key = _volume_key(s, key_file)
    result, text = _simulate_to_files(
        s,
        catalog,
        batch=batch,
        json_out=json_out,
        trace_out=trace_out,
        image=image,
        key=key,
        perfetto_out=perfetto_out,
        perfetto_limit=limit,
        log=_RunLogging(log_level.lower(), log_json, (log_json_level or "info").lower()),
    )
    if output_format == "json" or (json_out is not None and str(json_out) == "-"):
        _print_json(text)
    elif output_format == "terse":
        from stacksim.terse import terse_lines

        lines = terse_lines(result)
        _print_json("".join(line + "\n" for line in lines))
    else:
        render(result, _console())


OUTPUT_FORMATS: Final = ("normal", "json", "terse")
"""``run --output-format``: the summary (default), the result JSON, or the terse lines (:mod:`stacksim.terse`)."""


@app.command()
def sweep(
    scenario: ScenarioArg,
    sets: Annotated[
        list[str],
        typer.Option("--set", help='KEY=V1,V2,... e.g. disk.bandwidth=1GB/s,3GB/s or filters."dumpfve.sys".per_byte=1ns'),
    ],
    out: Annotated[
        Path,
        typer.Option("--out", parser=_output_path, help="Results file: .csv (default) or .jsonl; appended as points finish."),
    ],
    workers: Annotated[
        int | None, typer.Option("--workers", min=1, help="Worker processes (default: CPU count).", show_default=False)
    ] = None,
    dask: Annotated[
        str | None,
        typer.Option(
            "--dask", help="Run on a Dask cluster: a scheduler address (tcp://host:8786) or 'local'.", show_default=False
        ),
    ] = None,
    batch: Annotated[bool, typer.Option("--batch/--no-batch", help="Batched (default) or request mode for every point.")] = True,
    plugin: PluginOpt = None,
) -> None:
    """Run a scenario over a grid of parameter values; stream one row per point to --out."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    sw = importlib.import_module("stacksim.sweep")  # `from stacksim import sweep` is the API's function
    from stacksim._log import configure_logging
    from stacksim.filters import FilterCatalog, PluginError, read_plugin
    from stacksim.scenario import ScenarioError, read_scenario_data

    configure_logging("warning")
    _check_outputs([("--out", out)], [scenario, *(plugin or [])])
    if out.suffix not in (".csv", ".jsonl"):
        _fail(f"--out {_shown(out)}: use a .csv or .jsonl file name")
    if len(sets) > sw.MAX_SETS:  # before any is parsed
        _fail(f"{len(sets):,} --set options; a sweep takes at most {sw.MAX_SETS}")
    try:
        axes = [sw.parse_set(s) for s in sets]
        n_points = sw.check_axes(axes)
    except sw.SweepError as exc:
        _fail(str(exc))
    try:
        data = read_scenario_data(scenario)
    except ScenarioError as exc:
        _fail(str(exc))
    catalog = FilterCatalog()
    try:
        plugins = tuple(read_plugin(p) for p in plugin or [])
        catalog.load_entry_points()
        for p in plugins:
            catalog.load_plugin(p)
    except PluginError as exc:
        _fail(str(exc))
    console = _console(stderr=True)
    with contextlib.ExitStack() as stack:
        executor = stack.enter_context(_executor(dask, workers or os.cpu_count() or 1, console))
        progress = stack.enter_context(
            Progress(TextColumn("sweep"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console)
        )
        task = progress.add_task("sweep", total=n_points)
        try:
            ran, skipped, failed = sw.run_sweep(
                str(scenario),
                data,
                axes,
                out,
                executor,
                plugins=plugins,
                batch=batch,
                catalog=catalog,
                on_done=lambda n, total: progress.update(task, completed=n_points - total + n),
            )
        except (ScenarioError, sw.SweepError, OutputError) as exc:
            _fail(str(exc))
        except KeyboardInterrupt:
            _fail(f"{_interrupted()}; finished points are in {_shown(out)}; run the same command again to resume", code=1)
        progress.update(task, completed=n_points)
    typer.echo(f"{_shown(out)}: {ran} points run ({failed} failed), {skipped} already there, {n_points} in the grid")


@contextlib.contextmanager
def _executor(dask: str | None, workers: int, console: Console) -> Iterator[Executor]:
    """A local process pool, or a Dask cluster's Executor."""
    if dask is None:
        from stacksim.sweep import local_executor, stop_executor

        ex = local_executor(workers)
        try:
            yield ex
        except BaseException:  # interrupted or failed: do not wait for the queued points
            stop_executor(ex)
            raise
        ex.shutdown(wait=True)
        return
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        _fail('--dask needs the cluster extra: python3 -m pip install -e ".[cluster]"')
    if dask == "local":
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
        client = Client(cluster)
    else:
        cluster = None
        try:
            client = Client(dask, timeout="10s")
        except OSError as exc:
            _fail(f"--dask {dask}: cannot reach the scheduler ({exc})")
    console.print(f"dask: {client}")
    try:
        yield client.get_executor(pure=False)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


@app.command()
def replay(
    result_file: Annotated[Path, typer.Argument(help="A result JSON written by `stacksim run --json`.")],
    json_out: Annotated[
        Path | None,
        typer.Option("--json", parser=_output_path, help="Write the new result JSON here ('-' for stdout).", show_default=False),
    ] = None,
    trace_out: Annotated[
        Path | None, typer.Option("--trace", parser=_output_path, help="Write the new event trace here.", show_default=False)
    ] = None,
    plugin: Annotated[
        list[Path] | None,
        typer.Option(
            "--plugin", help="A plugin file the run used (repeatable); checked by SHA-256 before it runs.", show_default=False
        ),
    ] = None,
) -> None:
    """Rerun the run a result file records and say whether the new result matches it."""
    from stacksim._log import configure_logging

    configure_logging("warning")
    _check_outputs([("--json", json_out), ("--trace", trace_out)], [result_file, *(plugin or [])])
    old_text, old, record = _read_result(result_file)
    name = _shown(result_file)
    catalog = _replay_catalog(name, record, plugin or [])
    s = _recorded_scenario(result_file, record, catalog)
    rerun_data = old.get("data") is not None and s.scenario.hibernates
    with tempfile.TemporaryDirectory(prefix="stacksim-replay-") as scratch:
        # a data-mode hiberfile's size is what its compressor wrote, so its times are redone in data mode too
        # (into a scratch image; the key does not change a simulated number, so the seed's stands in)
        image = Path(scratch) / "disk.img" if rerun_data else None
        key = None
        if rerun_data:
            from stacksim.xts import derive_key

            key = (derive_key(s.scenario.seed), "derived from the seed")
        new, new_text = _simulate_to_files(
            s, catalog, batch=record.batch, json_out=json_out, trace_out=trace_out, traced=record.traced, image=image, key=key
        )
    if json_out is not None and str(json_out) == "-":
        _print_json(new_text)
    if new_text == old_text:
        typer.echo(
            f"{name}: replay matches, byte for byte (status {new.status}, dump time {format_ns(new.dump_time_ns)})",
            err=json_out is not None,
        )
        return
    new_d = json.loads(new_text)
    data_mode = old.get("data") is not None
    if data_mode and rerun_data:  # replayed in data mode: everything but where the key came from
        old = {**old, "data": {k: v for k, v in old["data"].items() if k != "key"}}
        new_d = {**new_d, "data": {k: v for k, v in (new_d.get("data") or {}).items() if k != "key"}}
        if old == new_d:
            typer.echo(
                f"{name}: replay matches a data-mode hibernation's every number (status {new.status}, dump time "
                f"{format_ns(new.dump_time_ns)}); it ran in data mode again, into a scratch image, with the seed's key",
                err=json_out is not None,
            )
            return
    elif data_mode:  # replayed in timing mode (same simulated times): the image and its leak check are not redone
        mode_keys = ("data", "request_mode_reasons", "batched_messages")  # data mode never batches
        old = {k: v for k, v in old.items() if k not in mode_keys}
        new_d = {k: v for k, v in new_d.items() if k not in mode_keys}
        if old == new_d:
            typer.echo(
                f"{name}: replay matches a data-mode run's every simulated number (status {new.status}, dump time "
                f"{format_ns(new.dump_time_ns)}); it ran in timing mode, so the image and the leak check were not redone",
                err=json_out is not None,
            )
            return
    differ = [k for k in sorted(set(old) | set(new_d)) if old.get(k) != new_d.get(k)]
    if old.get("stacksim_version") != new_d.get("stacksim_version"):
        typer.echo(
            f"note: recorded with stacksim {_shown(old.get('stacksim_version'), 40)}, replayed with {__version__}", err=True
        )
    if not differ:  # the same values: another indentation, key order or a repeated key
        typer.echo(
            f"{name}: replay differs: the values match but the file's text differs (formatting or key order); "
            "a result is compared byte for byte",
            err=json_out is not None,
        )
        raise typer.Exit(1)
    keys = ", ".join(_shown(k, 60) for k in differ[:10]) + (f" and {len(differ) - 10:,} more keys" if len(differ) > 10 else "")
    typer.echo(f"{name}: replay differs in {keys}", err=json_out is not None)
    raise typer.Exit(1)


@dataclass(frozen=True, slots=True)
class _PluginRecord:
    service_name: str
    origin: str
    sha256: str | None

    @property
    def file(self) -> str | None:
        """The plugin file's name, for a filter that came from ``--plugin`` (None for an entry point)."""
        return Path(self.origin.removeprefix("plugin ")).name if self.origin.startswith("plugin ") else None


@dataclass(frozen=True, slots=True)
class _ReplayRecord:
    scenario: dict[str, Any]
    seed: int
    batch: bool
    traced: bool
    plugins: tuple[_PluginRecord, ...]


_SHA256 = re.compile(r"[0-9a-f]{64}")


def _read_result(result_file: Path) -> tuple[str, dict[str, Any], _ReplayRecord]:
    """
    The result file's text, its JSON object and its checked replay record; exit 2 on anything malformed.

    The file is read as every input is (a regular file of at most 64 MiB, nesting at most
    :data:`stacksim._io.MAX_DEPTH` levels below the record's scenario); every key of the replay
    record must have its documented type (``docs/reference/result-format.md``).
    """
    name = _shown(result_file)
    try:
        text = decode_text(read_input(result_file, "result"), result_file, "result")
        old = parse_json(text, result_file, "result", limit=MAX_DEPTH + 2)  # the scenario sits two levels down
    except InputError as exc:
        _fail(str(exc))
    if not isinstance(old, dict):
        _fail(f"{name}: is a JSON {_json_type(old)}, not a result (a result file is one JSON object with a 'replay' key)")
    record = old.get("replay")
    if not isinstance(record, dict):
        _fail(
            f"{name}: has no replay record (an object at key 'replay' with 'scenario', 'seed', 'batch' and 'plugins'); "
            "was it written by stacksim run --json?"
        )
    problems: list[tuple[str, str]] = []

    def want(key: str, ok: bool, allowed: str) -> None:
        if not ok:
            got = "missing" if key not in record else f"got {_json_type(record[key])} {shorten(repr(record[key]), 60)}"
            problems.append((f"replay.{key}", f"must be {allowed} ({got})"))

    seed = record.get("seed")
    want("scenario", isinstance(record.get("scenario"), dict), "an object (the scenario as parsed)")
    want("seed", type(seed) is int and 0 <= seed < 2**64, "an integer from 0 to 2**64 - 1")
    want("batch", isinstance(record.get("batch"), bool), "true or false")
    want("traced", isinstance(record.get("traced", False), bool), "true or false")
    want("plugins", isinstance(record.get("plugins"), list), "a list of objects")
    plugins: list[_PluginRecord] = []
    entries = record.get("plugins")
    for i, entry in enumerate(entries if isinstance(entries, list) else []):
        where = f"replay.plugins[{i}]"
        if not isinstance(entry, dict):
            problems.append((where, f"must be an object with service_name, origin and sha256 (got {_json_type(entry)})"))
            continue
        service, origin, digest = entry.get("service_name"), entry.get("origin"), entry.get("sha256")
        if not isinstance(service, str) or not service:
            problems.append((f"{where}.service_name", "must be a filter's service name (a string)"))
        if not isinstance(origin, str) or not origin:
            problems.append((f"{where}.origin", "must be a string such as 'plugin myflt.py'"))
        if not (digest is None or (isinstance(digest, str) and _SHA256.fullmatch(digest))):
            problems.append((f"{where}.sha256", "must be a SHA-256 as 64 lowercase hex digits, or null"))
        elif digest is None and isinstance(origin, str) and origin.startswith("plugin "):
            problems.append((f"{where}.sha256", "must be the plugin file's SHA-256 (a plugin file always has one)"))
        if isinstance(service, str) and service and isinstance(origin, str) and origin:
            plugins.append(_PluginRecord(service, origin, digest if isinstance(digest, str) else None))
    if problems:
        from stacksim.scenario import ScenarioError

        _fail(ScenarioError(str(result_file), problems).render())
    return (
        text,
        old,
        _ReplayRecord(record["scenario"], record["seed"], record["batch"], record.get("traced", False), tuple(plugins)),
    )


def _json_type(value: object) -> str:
    """The JSON name of *value*'s type."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    return {dict: "object", list: "list", str: "string", int: "integer", float: "number"}.get(type(value), type(value).__name__)


def _recorded_scenario(result_file: Path, record: _ReplayRecord, catalog: FilterCatalog) -> Scenario:
    """The scenario a result records, validated again as ``replay`` validates it (and its seed held against the record's)."""
    from stacksim.scenario import ScenarioError, validate_scenario

    try:
        s = validate_scenario(record.scenario, f"{result_file} (replay)", catalog)
    except ScenarioError as exc:
        _fail(str(exc))
    if s.scenario.seed != record.seed:
        _fail(
            f"{_shown(result_file)}: replay.seed is {record.seed}, but the recorded scenario's seed is {s.scenario.seed}; "
            "the record is inconsistent"
        )
    return s


def _replay_catalog(name: str, record: _ReplayRecord, given: list[Path], *, stand_ins: bool = False) -> FilterCatalog:
    """
    The filters a recorded run used, nothing else: every ``--plugin`` file is hashed before it runs.

    A file whose SHA-256 is not one the run recorded is refused without being executed; a
    plugin filter the run used and no ``--plugin`` provides is refused with the file to pass.
    Nothing named in the result is ever imported. Entry-point filters (installed packages, which
    every stacksim command imports) are loaded and compared with their recorded SHA-256.

    With *stand_ins* (``extract``, ``inspect``: they validate the scenario but run no filter),
    each plugin-file filter the run used is a :func:`stacksim.extract.stand_in_filter` instead:
    no plugin file is read or run, and its configuration is taken as recorded.
    """
    from stacksim.filters import FilterCatalog, PluginError, read_plugin

    catalog = FilterCatalog()
    try:
        catalog.load_entry_points()
        files = [read_plugin(p) for p in given]
    except PluginError as exc:
        _fail(str(exc))
    if stand_ins:
        from stacksim.extract import stand_in_filter

        for p in record.plugins:
            if p.file is not None and catalog.get(p.service_name) is None:
                try:
                    catalog.add(stand_in_filter(p.service_name), f"{p.origin} (stand-in: not run)", sha256=p.sha256)
                except PluginError as exc:
                    _fail(f"{name}: {exc}")
    recorded = {p.sha256: p for p in record.plugins if p.file is not None and p.sha256 is not None}
    loaded: set[str] = set()
    for f in files:
        if f.sha256 in loaded:
            continue
        if f.sha256 not in recorded:
            same = next((p for p in record.plugins if p.file == f.name), None)
            if same is not None:
                _fail(
                    f"--plugin {_shown(f.path)}: has changed since the run (SHA-256 {f.sha256[:16]}…, "
                    f"the run used {(same.sha256 or '?')[:16]}… for filter '{_shown(same.service_name, 60)}'); "
                    f"it was not run; pass the version of {_shown(f.name, 60)} the run used"
                )
            _fail(
                f"--plugin {_shown(f.path)}: is not a plugin the run in {name} used (no recorded SHA-256 matches); it was not run"
            )
        try:
            catalog.load_plugin(f)
        except PluginError as exc:
            _fail(str(exc))
        loaded.add(f.sha256)
    for p in record.plugins:
        service = _shown(p.service_name, 60)
        if p.file is not None and p.sha256 not in loaded and not stand_ins:
            _fail(
                f"{name}: the run used filter '{service}' from plugin {_shown(p.file, 60)} (SHA-256 {(p.sha256 or '?')[:16]}…); "
                f"replay runs no file named in a result: pass it again with --plugin PATH/{_shown(p.file, 60)}"
            )
        if catalog.get(p.service_name) is None:
            _fail(f"{name}: the run used filter '{service}' ({_shown(p.origin)}), which is not available now")
        if p.sha256 and catalog.digest(p.service_name) != p.sha256:
            _fail(f"{name}: filter '{service}' ({_shown(p.origin)}) has changed since the run (SHA-256 differs)")
    return catalog


@app.command()
def diff(
    result_a: Annotated[Path, typer.Argument(help="Result JSON of run A (from `stacksim run --json`).", show_default=False)],
    result_b: Annotated[Path, typer.Argument(help="Result JSON of run B, compared with A.", show_default=False)],
    json_out: Annotated[
        Path | None,
        typer.Option(
            "--json", parser=_output_path, help="Also write the comparison as JSON here ('-' for stdout).", show_default=False
        ),
    ] = None,
) -> None:
    """Say what changed between two runs: scenario keys, dump time, each layer's busy time and p50/p99, the bottleneck."""
    from stacksim.diff import ResultShapeError, compare, diff_json, render_diff

    _check_outputs([("--json", json_out)], [result_a, result_b])
    _, a, _ = _read_result(result_a)
    _, b, _ = _read_result(result_b)
    name_a, name_b = str(result_a), str(result_b)
    try:
        d = compare(a, b, name_a, name_b)
    except ResultShapeError as exc:
        _fail(f"{exc}; a result file is what stacksim run --json writes (docs/reference/result-format.md)")
    if json_out is not None:
        text = diff_json(d)
        if str(json_out) == "-":
            _print_json(text)
            return
        try:
            with atomic_writer(json_out, flag="--json") as f:
                f.write(text)
        except OutputError as exc:
            _fail(f"{exc}; no output file was written")
    render_diff(d, _console())


@app.command()
def check(trace: Annotated[Path, typer.Argument(help="Trace file (JSON lines) from `stacksim run --trace`.")]) -> None:
    """
    Check a trace against the dump path's invariants, independently of the simulator.

    Exit 0 when every rule holds, 1 when one does not (each violation is printed), 2 when the
    file cannot be read as a trace at all (not a regular file, too large, unreadable).
    """
    from stacksim._io import InputError, open_input, shorten, terminal_safe
    from stacksim.check import RULES, check_stream

    try:
        with open_input(trace, "trace") as stream:
            count, violations = check_stream(stream)
    except InputError as exc:
        _fail(str(exc))
    except OSError as exc:
        _fail(f"{terminal_safe(shorten(str(trace), 200))}: cannot read the trace file: {exc.strerror or exc}")
    name = terminal_safe(shorten(str(trace), 200))
    if not violations:
        typer.echo(f"{name}: {count:,} records; all {len(RULES)} rules hold ({', '.join(RULES)})")
        return
    for v in violations:
        typer.echo(terminal_safe(v.render(), keep_newlines=True))
    broken = [rule for rule in RULES if any(v.rule == rule for v in violations)]
    typer.echo(f"{name}: {count:,} records; rules broken: {', '.join(broken)}")
    raise typer.Exit(1)


@app.command("perfetto")
def perfetto_export(
    trace: Annotated[Path, typer.Argument(help="Trace file (JSON lines) from `stacksim run --trace`.", show_default=False)],
    out: Annotated[
        Path, typer.Option("--out", parser=_output_path, help="Write the Trace Event JSON here (open it at ui.perfetto.dev).")
    ],
    perfetto_limit: Annotated[
        str | None,
        typer.Option(
            "--perfetto-limit",
            metavar="N",
            help="Requests drawn in full on each stack, 0 to 1,000,000 (default 10,000); the rest as counters.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Turn a trace into Trace Event JSON for ui.perfetto.dev or chrome://tracing: a track per layer, a slice per request."""
    from stacksim._io import open_input
    from stacksim._log import configure_logging
    from stacksim.perfetto import convert

    configure_logging("warning")
    limit = _perfetto_limit(perfetto_limit)
    _check_outputs([("--out", out)], [trace])
    name = _shown(trace)
    try:
        with open_input(trace, "trace") as stream, atomic_writer(out, flag="--out") as f:
            stats = convert(stream, name, f, limit)
    except (InputError, OutputError) as exc:
        _fail(f"{exc}; no output file was written")
    size = os.stat(out).st_size
    drawn = "; ".join(f"{stack}: {min(n, limit):,} of {n:,} request{'s' * (n != 1)} in full" for stack, n, _ in stats.stacks if n)
    typer.echo(
        f"{_shown(out)}: {stats.events:,} events ({size:,} bytes) from {stats.records:,} records"
        + (f"; {drawn}" if drawn else "")
        + "; open it at https://ui.perfetto.dev"
    )


_PLOT_KINDS = {".json": "result", ".jsonl": "trace", ".csv": "sweep"}
"""An input's suffix → what ``plot`` reads it as."""


def _plot_targets(source: Path, out: str | None, kinds: tuple[str, ...]) -> dict[str, Path]:
    """
    The PNG file of each plot kind: PREFIX-KIND.png, PREFIX from ``--out`` (a folder: FOLDER/INPUT-STEM) or the input.

    *out* is the argument as given: one ending in a slash names a folder, which must exist (a Path
    would drop the slash and make ``missing/`` the prefix ``missing``, writing beside it).
    """
    if out is None:
        prefix = source.with_suffix("")
    elif names_a_folder(out):
        folder = Path(out)
        if not folder.is_dir():
            why = "that folder does not exist; create it first" if not folder.exists() else "it is not a folder"
            _fail(f"--out {_shown(out)}: names a folder (it ends in a slash), but {why}")
        prefix = folder / source.stem
    elif Path(out).is_dir():
        prefix = Path(out) / source.stem
    else:
        path = Path(out)
        prefix = path.with_name(path.name.removesuffix(".png"))
    return {kind: prefix.with_name(f"{prefix.name}-{kind}.png") for kind in kinds}


@app.command()
def plot(
    source: Annotated[
        Path,
        typer.Argument(
            metavar="INPUT", help="Result JSON (.json), trace (.jsonl) or sweep results (.csv) to plot.", show_default=False
        ),
    ],
    out: Annotated[
        str | None,
        typer.Option(
            "--out",
            metavar="DIR|PREFIX",
            help="Write PREFIX-KIND.png (in DIR: INPUT-STEM-KIND.png); default: beside INPUT.",
            show_default=False,
        ),
    ] = None,
    first: Annotated[
        str | None,
        typer.Option(
            "--first", metavar="N", help="Requests per stack in the Gantt chart, 1 to 1,000 (default 20).", show_default=False
        ),
    ] = None,
) -> None:
    """Draw PNG plots of a run (needs the plot extra): a Gantt chart, latency CDFs and throughput; dump time across a sweep."""
    from stacksim._io import open_input
    from stacksim.plot import (
        DEFAULT_FIRST,
        PlotUnavailableError,
        parse_first,
        read_sweep,
        render_result,
        render_sweep,
        render_trace,
        summarise_trace,
    )

    name = _shown(source)
    kind = _PLOT_KINDS.get(source.suffix.lower())
    if kind is None:
        _fail(
            f"{name}: plot reads a result (.json, from `stacksim run --json`), a trace (.jsonl, from `--trace`) "
            "or a sweep's results (.csv, from `stacksim sweep --out`); the file's suffix says which"
        )
    try:
        n = DEFAULT_FIRST if first is None else parse_first(first)
    except ValueError as exc:
        _fail(str(exc))
    kinds = {"result": ("quantiles", "busy"), "trace": ("gantt", "latency", "throughput"), "sweep": ("dump-time",)}[kind]
    targets = _plot_targets(source, out, kinds)
    _check_outputs([("--out", p) for p in targets.values()], [source])
    notes: list[str] = []
    try:
        if kind == "trace":
            with open_input(source, "trace") as stream:
                summary = summarise_trace(stream, name, n)
            pngs = render_trace(summary)
            missing = [k for k in kinds if k not in pngs]
            if missing:
                notes.append(f"the trace has nothing to draw for {', '.join(missing)} (no request records or completions)")
        elif kind == "sweep":
            pngs, notes = render_sweep(read_sweep(source, name))
        else:
            from stacksim.diff import ResultShapeError

            _, result, _ = _read_result(source)
            try:
                pngs, notes = render_result(result)
            except ResultShapeError as exc:
                _fail(f"{name}: {exc}; a result file is what stacksim run --json writes (docs/reference/result-format.md)")
    except PlotUnavailableError as exc:
        _fail(str(exc))
    except InputError as exc:
        _fail(f"{exc}; no plot was written")
    if not pngs:
        _fail(f"{name}: there is nothing to plot ({'; '.join(notes) or 'no records'}); no plot was written")
    written = []
    try:
        for k, data in pngs.items():
            with atomic_binary_writer(targets[k], flag="--out") as f:
                f.write(data)
            written.append(targets[k])
    except OutputError as exc:
        _fail(f"{exc}; {len(written)} of {len(pngs)} plots were written")
    for path in written:
        typer.echo(f"{_shown(path)}: {path.stat().st_size:,} bytes")
    for note in notes:
        typer.echo(f"note: {note}")


@app.command()
def validate(scenario: ScenarioArg, plugin: PluginOpt = None) -> None:
    """Check a scenario file without running it."""
    catalog = _catalog(plugin)
    s = _load_scenario(scenario, catalog)
    filters = _shown(", ".join(s.registry.dump_filters) or "none", 400)
    typer.echo(
        f"{_shown(scenario)}: valid ({s.scenario.event} scenario {_shown(repr(s.scenario.name), 100)}; DumpFilters: {filters})"
    )


@app.command()
def explain(
    scenario: ScenarioArg,
    mermaid_out: Annotated[
        Path | None,
        typer.Option(
            "--mermaid",
            parser=_output_path,
            help="Also write a Mermaid sequence diagram of the first requests of each path here.",
            show_default=False,
        ),
    ] = None,
    plugin: PluginOpt = None,
) -> None:
    """Show the normal storage stack and the crash dump stack side by side, with the scenario's numbers."""
    from stacksim.explain import explain as explain_scenario
    from stacksim.explain import mermaid, render_explanation

    _check_outputs([("--mermaid", mermaid_out)], [scenario, *(plugin or [])])
    catalog = _catalog(plugin)
    s = _load_scenario(scenario, catalog)
    render_explanation(explain_scenario(s, catalog), _console())
    if mermaid_out is not None:
        try:
            with atomic_writer(mermaid_out, flag="--mermaid") as f:
                f.write(mermaid(s, catalog))
        except OutputError as exc:
            _fail(str(exc))


@app.command()
def memory(
    scenario: ScenarioArg,
    out: Annotated[
        Path,
        typer.Option(
            "--out", parser=_output_path, help="Write physical memory here: a sparse file in which byte p is physical address p."
        ),
    ],
    classes_out: Annotated[
        Path | None,
        typer.Option(
            "--classes",
            parser=_output_path,
            help="Also write the page-class map here (JSON, run-length encoded).",
            show_default=False,
        ),
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option("--seed", min=0, max=INT64_MAX, help="Override the scenario's seed (0 to 2^63 - 1).", show_default=False),
    ] = None,
    plugin: PluginOpt = None,
) -> None:
    """Write the scenario's simulated physical memory (data mode's page contents) to a file."""
    from stacksim import physmem
    from stacksim.units import format_bytes

    _check_outputs([("--out", out), ("--classes", classes_out)], [scenario, *(plugin or [])])
    catalog = _catalog(plugin)
    s = _load_scenario(scenario, catalog, seed=seed)
    problem = physmem.data_mode_problem(s.memory)
    if problem is not None:
        _bad_scenario(scenario, problem)
    ram = physmem.PhysicalMemory.from_scenario(s)
    try:
        with contextlib.ExitStack() as stack:
            image = stack.enter_context(atomic_binary_writer(out, flag="--out"))
            classes = stack.enter_context(atomic_writer(classes_out, flag="--classes")) if classes_out is not None else None
            physmem.write_image(ram, image)
            if classes is not None:
                physmem.write_classes(ram, classes)
    except OutputError as exc:
        _fail(f"{exc}; no output file was written")
    runs = len(ram.map.runs)
    typer.echo(
        f"{_shown(out)}: {format_bytes(s.memory.ram)} of RAM ({ram.map.total_pages:,} pages) in {runs} run{'s' * (runs != 1)}; "
        f"a sparse file of {ram.map.max_pfn * 4096:,} bytes in which byte p is physical address p"
    )
    counts = ", ".join(f"{c.label} {n:,}" for c, n in ram.class_counts().items())
    typer.echo(f"pages by class (seed {ram.seed}): {counts}" + (f"; map in {_shown(classes_out)}" if classes_out else ""))


ImageArg = Annotated[Path, typer.Argument(help="Disk image written by `stacksim run --data --image`.", show_default=False)]
ResultOpt = Annotated[
    Path, typer.Option("--result", help="The result JSON of that run (`stacksim run --json`): it names the layout.")
]
KeyFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--key-file",
        help="The 64-byte volume key (default: the one the result names, if derived from the seed).",
        show_default=False,
    ),
]


@contextlib.contextmanager
def _located_dump(image: Path, result_file: Path, key_file: Path | None) -> Iterator[Located]:
    """
    The dump at the start of the target file on *image*, as the result names it; exit 2 on any bad input.

    The result is read and its scenario re-validated as ``replay`` does (no plugin is run:
    plugin filters are stand-ins), every key used is checked against that scenario, then the
    image is opened (a regular file of the recorded disk's size) and only the file's runs are read.
    """
    from stacksim.extract import ExtractError, locate, open_disk_file, recorded_run
    from stacksim.xts import read_key_file

    _, old, record = _read_result(result_file)
    name = _shown(result_file)
    s = _recorded_scenario(result_file, record, _replay_catalog(name, record, [], stand_ins=True))
    try:
        run = recorded_run(old, s, name)
        key = read_key_file(key_file) if key_file is not None else None
        with open_disk_file(image, run) as file:
            yield locate(file, run, key, f"key file {key_file.name}" if key_file is not None else None)
    except (InputError, ExtractError) as exc:
        _fail(str(exc))


@app.command()
def extract(
    image: ImageArg,
    result_file: ResultOpt,
    out: Annotated[
        Path,
        typer.Option("--out", parser=_output_path, help="Write the dump here (MEMORY.DMP): exactly RequiredDumpSpace bytes."),
    ],
    key_file: KeyFileOpt = None,
    allow_torn: Annotated[
        bool,
        typer.Option("--allow-torn", help="Write a torn dump too (missing parts read as zeros); it still needs a dump header."),
    ] = False,
) -> None:
    """Read the crash dump back out of a data-mode disk image, decrypt it, and write MEMORY.DMP (what the next boot does)."""
    from stacksim._log import configure_logging
    from stacksim.extract import ExtractError, refusal, survey
    from stacksim.summary import print_extracted

    configure_logging("warning")
    _check_outputs([("--out", out)], [image, result_file, *([key_file] if key_file is not None else [])])
    with _located_dump(image, result_file, key_file) as found:
        why = refusal(found, allow_torn=allow_torn)
        if why is not None:
            _fail(f"{_shown(image)}: {why}; no output file was written")
        try:
            with atomic_binary_writer(out, flag="--out") as stream:
                done = survey(found, stream)
                why = refusal(done, allow_torn=allow_torn)
                if why is not None:
                    raise ExtractError(f"{_shown(image)}: {why}; no output file was written")
        except OutputError as exc:
            _fail(f"{exc}; no output file was written")
        except (InputError, ExtractError) as exc:
            _fail(str(exc))
    print_extracted(done, _shown(out), _console())


@app.command()
def inspect(
    image: ImageArg,
    result_file: ResultOpt,
    key_file: KeyFileOpt = None,
    json_out: Annotated[
        Path | None,
        typer.Option(
            "--json", parser=_output_path, help="Also write the findings as JSON here ('-' for stdout).", show_default=False
        ),
    ] = None,
) -> None:
    """Say what is on a data-mode disk image: the dump header, its type, complete or torn, encrypted or plaintext."""
    from stacksim._log import configure_logging
    from stacksim.extract import ExtractError, survey
    from stacksim.summary import render_survey

    configure_logging("warning")
    _check_outputs([("--json", json_out)], [image, result_file, *([key_file] if key_file is not None else [])])
    with _located_dump(image, result_file, key_file) as found:
        try:
            found_all = survey(found)
        except (InputError, ExtractError) as exc:
            _fail(str(exc))
    text = json_safe(json.dumps(found_all.as_dict(), indent=2, ensure_ascii=False)) + "\n"
    if json_out is not None and str(json_out) == "-":
        _print_json(text)
        return
    if json_out is not None:
        try:
            with atomic_writer(json_out, flag="--json") as f:
                f.write(text)
        except OutputError as exc:
            _fail(f"{exc}; no output file was written")
    render_survey(found_all, _console())


@app.command("devices")
def list_devices(
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list instead of a table.")] = False,
) -> None:
    """List the device presets a scenario can name as its disk preset."""
    from stacksim.devices import DEVICE_PRESETS
    from stacksim.summary import print_devices

    presets = [p.as_dict() for p in DEVICE_PRESETS.values()]
    if as_json:
        sys.stdout.write(json.dumps(presets, indent=2) + "\n")
        return
    print_devices(_console())


@app.command("filters")
def list_filters(plugin: PluginOpt = None) -> None:
    """List the dump filters a scenario can name in DumpFilters."""
    from stacksim.summary import print_filters

    catalog = _catalog(plugin)
    print_filters(catalog, _console())


def result_json(result: RunResult) -> str:
    """The result as pretty, stable JSON text (:meth:`~stacksim.report.RunResult.to_json`)."""
    return result.to_json()


def _print_json(text: str) -> None:
    """Write JSON *text* to stdout; where stdout's encoding cannot hold it (ASCII), with every non-ASCII character escaped."""
    try:
        text.encode(sys.stdout.encoding or "utf-8")
    except (UnicodeEncodeError, LookupError):
        text = json_safe(text, ascii_only=True)
    sys.stdout.write(text)


class _Signals:
    """What the process was told: SIGTERM is turned into the Ctrl-C path, and remembered for the message."""

    terminated = False
    interrupted = False


_SIGNALS = _Signals()


def _on_sigterm(signum: int, frame: object) -> None:
    """
    SIGTERM: the same clean interruption as Ctrl-C (no temporary file left, exit status 1).

    The signal is re-delivered as SIGINT, so inside ``trio.run`` trio's own Ctrl-C handling
    raises KeyboardInterrupt where it is safe; outside it, Python's default SIGINT handler does.
    Where SIGINT is ignored (a background job of a script), see :func:`_interrupt_when_safe`.
    """
    _SIGNALS.terminated = True
    _SIGNALS.interrupted = True
    if callable(signal.getsignal(signal.SIGINT)):  # Python's default handler, or trio's during a run
        signal.raise_signal(signal.SIGINT)
    else:
        _interrupt_when_safe()


def _interrupt_when_safe(*_: object) -> None:
    """
    Raise KeyboardInterrupt as trio's SIGINT handler would: at once, unless trio protects the code it interrupts.

    Raising inside trio's own machinery would corrupt the run, so there the check is repeated
    every 5 ms (SIGALRM) until the run is in simulation code.
    """
    if _in_protected_trio_code():
        signal.signal(signal.SIGALRM, _interrupt_when_safe)
        signal.setitimer(signal.ITIMER_REAL, 0.005)
        return
    raise KeyboardInterrupt


def _in_protected_trio_code() -> bool:
    """Whether this runs inside a trio run, in code trio protects from KeyboardInterrupt."""
    if "trio" not in sys.modules:  # no simulation has started (trio is imported for one): no run to protect
        return False
    try:
        from trio.lowlevel import currently_ki_protected, in_trio_run
    except ImportError:  # trio is still being imported: no run has started either
        return False
    return in_trio_run() and currently_ki_protected()


def _on_sigint(signum: int, frame: object) -> None:
    """Ctrl-C outside a simulation: Python's own KeyboardInterrupt, remembered so a plugin error it causes is named as it."""
    _SIGNALS.interrupted = True
    raise KeyboardInterrupt


@contextlib.contextmanager
def _python_ctrl_c() -> Iterator[None]:
    """
    Python's own SIGINT handler for the block (a simulation): trio installs its safe Ctrl-C handling only over that one.

    :func:`_on_sigint` stands in for it elsewhere; a SIGINT during the block still marks the
    process as interrupted (trio raises KeyboardInterrupt, the command reports it).
    """
    if signal.getsignal(signal.SIGINT) is not _on_sigint:
        yield
        return
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    except KeyboardInterrupt:
        _SIGNALS.interrupted = True
        raise
    finally:
        signal.signal(signal.SIGINT, _on_sigint)


def _tolerant_streams() -> None:
    r"""Let stdout and stderr print what their encoding cannot hold as escapes (``\xb7``) instead of failing."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            with contextlib.suppress(Exception):  # a stream that cannot be reconfigured stays as it is
                reconfigure(errors="backslashreplace")


EXIT_BROKEN_PIPE = 128 + signal.SIGPIPE
"""Exit status when stdout is a pipe whose reader has gone (``stacksim run … | head -1``): 141, as a shell reports a
program that SIGPIPE ended."""


class StdoutFailed(Exception):
    """A write to stdout failed (a full disk, an I/O error, a closed pipe); raised past every command's own handlers."""

    def __init__(self, error: OSError) -> None:
        self.error = error
        super().__init__(str(error))


class _GuardedStdout(io.RawIOBase):
    """File descriptor 1 as a raw stream whose write errors are :class:`StdoutFailed`, so none is mistaken for another file's."""

    def __init__(self, fd: int) -> None:
        super().__init__()
        self._fd = fd
        self.failed = False

    def writable(self) -> bool:
        """Stdout is written, never read."""
        return True

    def fileno(self) -> int:
        """The descriptor (1)."""
        return self._fd

    def isatty(self) -> bool:
        """Whether stdout is a terminal (tables and colours depend on it)."""
        return os.isatty(self._fd)

    def write(self, data: Any) -> int:
        """
        Write what the descriptor takes; an OSError becomes :class:`StdoutFailed` (EAGAIN on a non-blocking pipe: wait).

        After a failure, everything is discarded: the command is ending, and flushing at exit must not fail again.
        """
        while not self.failed:
            try:
                return os.write(self._fd, data)
            except BlockingIOError:
                select.select([], [self._fd], [])
            except OSError as exc:
                self.failed = True
                raise StdoutFailed(exc) from None
        return len(data)


def _guard_stdout() -> None:
    """Replace ``sys.stdout`` by a stream over :class:`_GuardedStdout` with the same encoding and buffering."""
    old = sys.stdout
    try:
        fd = old.fileno()
    except (AttributeError, OSError, ValueError):  # not a real file (embedded use): leave it
        return
    old.flush()
    raw = _GuardedStdout(fd)
    sys.stdout = io.TextIOWrapper(
        io.BufferedWriter(raw),
        encoding=old.encoding,
        errors="backslashreplace",
        line_buffering=bool(old.line_buffering) or raw.isatty(),
    )


def _stdout_closed() -> bool:
    """Whether the process was started with stdout closed (``>&-``): Python then has no ``sys.stdout``."""
    if sys.stdout is None:
        return True
    try:
        os.fstat(sys.stdout.fileno())
    except (AttributeError, ValueError, io.UnsupportedOperation):
        return False
    except OSError:
        return True
    return False


def _stdout_failed(exc: StdoutFailed) -> NoReturn:
    """
    End the process after a failed write to stdout: quietly for a closed pipe, else exit 2 naming stdout and the reason.

    Stdout is pointed at the null device first (as Python's documentation of SIGPIPE advises), so
    flushing it at exit cannot fail again ("Exception ignored ...").
    """
    error = exc.error
    with contextlib.suppress(OSError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    if error.errno == errno.EPIPE:
        sys.exit(EXIT_BROKEN_PIPE)
    code = errno.errorcode.get(error.errno or 0, "")
    reason = f"{error.strerror or type(error).__name__}{f' ({code})' if code else ''}"
    with contextlib.suppress(Exception):
        sys.stderr.write(f"error: cannot write to stdout: {reason}; what was printed is incomplete\n")
        sys.stderr.flush()
    sys.exit(2)


def main() -> None:
    """
    Console-script entry point: signals first (SIGTERM ends a command as Ctrl-C does), then the command line.

    Nothing of stacksim runs before this: a signal while Python imports the command line (a
    few tenths of a second on a slow machine; each command imports the rest when it runs) ends
    the process the operating system's default way, before any file is opened. Where SIGINT is
    ignored (a script's background job), it stays ignored.

    Stdout is checked and guarded: started with stdout closed (``>&-``) is exit 2 before anything
    runs; a failed write to it (a full disk, an I/O error) is exit 2 with one line naming stdout
    and the reason; a pipe whose reader has gone (``| head``) ends the command quietly with
    :data:`EXIT_BROKEN_PIPE`.
    """
    signal.signal(signal.SIGTERM, _on_sigterm)
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _on_sigint)
    if _stdout_closed():
        with contextlib.suppress(Exception):
            sys.stderr.write(
                "error: stdout is closed (started with >&-); stacksim prints its results there: give it a file or >/dev/null\n"
            )
        sys.exit(2)
    _tolerant_streams()
    _guard_stdout()
    try:
        try:
            app()
        finally:
            sys.stdout.flush()  # what is still buffered: its failure is the command's, not the interpreter's at exit
    except StdoutFailed as exc:
        _stdout_failed(exc)
