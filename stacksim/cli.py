"""
The ``stacksim`` command: ``run``, ``validate``, ``filters``.

Exit status: 0 when the simulation produced a result (whatever the simulated dump's status),
2 for bad input (scenario, flags, plugins) with a one-paragraph message and no output file,
1 when a run is interrupted. Tables go to stdout; ``--json -`` prints the result JSON instead.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tomllib
from collections.abc import Callable, Iterator
from concurrent.futures import Executor
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from stacksim._io import atomic_writer
from stacksim._log import configure_logging
from stacksim._version import __version__
from stacksim.filters import FilterCatalog, PluginError
from stacksim.scenario import Scenario, ScenarioError, load_scenario, validate_scenario
from stacksim.simulate import RunResult, simulate
from stacksim.summary import print_devices, print_filters, render
from stacksim.trace import JsonlTrace

__all__ = ["app", "main"]

app = typer.Typer(
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
    """Print a one-paragraph error to stderr and exit."""
    Console(stderr=True, highlight=False, soft_wrap=True).print(f"[bold red]error:[/] {escape(message)}", markup=True)
    raise typer.Exit(code)


def _catalog(plugins: list[Path] | None) -> FilterCatalog:
    catalog = FilterCatalog()
    try:
        catalog.load_entry_points()
        for plugin in plugins or []:
            catalog.load_file(plugin)
    except PluginError as exc:
        _fail(str(exc))
    return catalog


def _check_output(path: Path | None, flag: str) -> None:
    if path is None or str(path) == "-":
        return
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        _fail(f"{flag} {path}: the folder {parent} does not exist")
    if path.is_dir():
        _fail(f"{flag} {path}: is a folder; give a file name")


def _check_outputs(json_out: Path | None, trace_out: Path | None) -> None:
    """Refuse output paths that cannot be written, before anything runs."""
    _check_output(json_out, "--json")
    _check_output(trace_out, "--trace")
    if trace_out is not None and str(trace_out) == "-":
        _fail("--trace -: traces go to a file, not stdout")


def _simulate_to_files(
    s: Scenario, catalog: FilterCatalog, *, batch: bool, json_out: Path | None, trace_out: Path | None
) -> tuple[RunResult, str]:
    """Run *s*, streaming the trace and writing the result JSON atomically; return the result and its JSON."""
    try:
        with contextlib.ExitStack() as stack:
            trace = JsonlTrace(stack.enter_context(atomic_writer(trace_out))) if trace_out is not None else None
            result = simulate(s, catalog, trace=trace, batch=batch, progress=_progress_bar(stack))
            text = result_json(result)
            if json_out is not None and str(json_out) != "-":
                with atomic_writer(json_out) as f:
                    f.write(text)
    except ScenarioError as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        _fail("interrupted; no output file was written", code=1)
    return result, text


def _progress_bar(stack: contextlib.ExitStack) -> Callable[[int, int], None] | None:
    """A bar on stderr for a long run (a request-mode dump), when stderr is a terminal; it vanishes at the end."""
    console = Console(stderr=True, highlight=False)
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


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
) -> None:
    """Simulate the Windows crash-dump and hibernation I/O path in virtual time."""
    if version:
        typer.echo(f"stacksim {__version__}")
        raise typer.Exit(0)


@app.command()
def run(
    scenario: ScenarioArg,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write the result JSON here ('-' for stdout).", show_default=False)
    ] = None,
    trace_out: Annotated[
        Path | None, typer.Option("--trace", help="Write the event trace (JSON lines) here.", show_default=False)
    ] = None,
    seed: Annotated[int | None, typer.Option("--seed", min=0, help="Override the scenario's seed.", show_default=False)] = None,
    plugin: PluginOpt = None,
    batch: Annotated[
        bool,
        typer.Option("--batch/--no-batch", help="Batched mode (default) or request mode: one message per write; same results."),
    ] = True,
    log_level: Annotated[str, typer.Option("--log-level", help="debug, info, warning or error (stderr).")] = "warning",
) -> None:
    """Run a scenario and print where the time went."""
    if log_level.lower() not in ("debug", "info", "warning", "error"):
        _fail(f"--log-level {log_level!r}: allowed values are debug, info, warning, error")
    configure_logging(log_level.lower())
    catalog = _catalog(plugin)
    _check_outputs(json_out, trace_out)
    try:
        s = load_scenario(scenario, catalog, seed=seed)
    except ScenarioError as exc:
        _fail(str(exc))
    result, text = _simulate_to_files(s, catalog, batch=batch, json_out=json_out, trace_out=trace_out)
    if json_out is not None and str(json_out) == "-":
        sys.stdout.write(text)
    else:
        render(result, Console(highlight=False))


@app.command()
def sweep(
    scenario: ScenarioArg,
    sets: Annotated[
        list[str],
        typer.Option("--set", help='KEY=V1,V2,... e.g. disk.bandwidth=1GB/s,3GB/s or filters."dumpfve.sys".per_byte=1ns'),
    ],
    out: Annotated[Path, typer.Option("--out", help="Results file: .csv (default) or .jsonl; appended as points finish.")],
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
    from stacksim import sweep as sw

    configure_logging("warning")
    catalog = _catalog(plugin)
    _check_output(out, "--out")
    if out.suffix not in (".csv", ".jsonl"):
        _fail(f"--out {out}: use a .csv or .jsonl file name")
    try:
        axes = [sw.parse_set(s) for s in sets]
    except sw.SweepError as exc:
        _fail(str(exc))
    try:
        data = tomllib.loads(Path(scenario).read_text(encoding="utf-8"))
    except FileNotFoundError:
        _fail(f"{scenario}: no such scenario file")
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        _fail(f"{scenario}: not valid TOML: {exc}")
    plugins = tuple(str(p.resolve()) for p in plugin or [])
    n_points = len(sw.grid(axes))
    console = Console(stderr=True, highlight=False)
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
        except ScenarioError as exc:
            _fail(str(exc))
        except sw.SweepError as exc:
            _fail(str(exc))
        except KeyboardInterrupt:
            _fail(f"interrupted; finished points are in {out}; run the same command again to resume", code=1)
        progress.update(task, completed=n_points)
    typer.echo(f"{out}: {ran} points run ({failed} failed), {skipped} already there, {n_points} in the grid")


@contextlib.contextmanager
def _executor(dask: str | None, workers: int, console: Console) -> Iterator[Executor]:
    """A local process pool, or a Dask cluster's Executor."""
    if dask is None:
        from stacksim.sweep import local_executor

        with local_executor(workers) as ex:
            yield ex
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
        Path | None, typer.Option("--json", help="Write the new result JSON here ('-' for stdout).", show_default=False)
    ] = None,
    trace_out: Annotated[Path | None, typer.Option("--trace", help="Write the new event trace here.", show_default=False)] = None,
) -> None:
    """Rerun the run a result file records and say whether the new result matches it."""
    configure_logging("warning")
    _check_outputs(json_out, trace_out)
    try:
        old_text = result_file.read_text(encoding="utf-8")
        old = json.loads(old_text)
        record = old["replay"]
        data, batch = record["scenario"], bool(record["batch"])
    except FileNotFoundError:
        _fail(f"{result_file}: no such result file")
    except (json.JSONDecodeError, UnicodeDecodeError):
        _fail(f"{result_file}: not a result JSON file")
    except (KeyError, TypeError):
        _fail(
            f"{result_file}: has no replay record (key 'replay' with 'scenario' and 'batch'); was it written by stacksim ≥ 0.1?"
        )
    catalog = _replay_catalog(result_file, record.get("plugins", []))
    try:
        s = validate_scenario(data, f"{result_file} (replay)", catalog)
    except ScenarioError as exc:
        _fail(str(exc))
    new, new_text = _simulate_to_files(s, catalog, batch=batch, json_out=json_out, trace_out=trace_out)
    if json_out is not None and str(json_out) == "-":
        sys.stdout.write(new_text)
    if new_text == old_text:
        typer.echo(
            f"{result_file}: replay matches, byte for byte (status {new.status}, {new.dump_time_ns:,} ns)",
            err=json_out is not None,
        )
        return
    new_d = json.loads(new_text)
    differ = [k for k in sorted(set(old) | set(new_d)) if old.get(k) != new_d.get(k)]
    if old.get("stacksim_version") != new_d.get("stacksim_version"):
        typer.echo(f"note: recorded with stacksim {old.get('stacksim_version')}, replayed with {__version__}", err=True)
    typer.echo(f"{result_file}: replay differs in {', '.join(differ)}", err=json_out is not None)
    raise typer.Exit(1)


def _replay_catalog(result_file: Path, plugins: list[dict[str, object]]) -> FilterCatalog:
    """The filters a recorded run used, each checked against the SHA-256 recorded with it."""
    catalog = FilterCatalog()
    try:
        catalog.load_entry_points()
        for plugin in plugins:
            origin = str(plugin.get("origin", ""))
            if origin.startswith("plugin "):
                catalog.load_file(origin.removeprefix("plugin "))
    except PluginError as exc:
        _fail(f"{result_file}: cannot load a plugin the run used: {exc}")
    for plugin in plugins:
        name = str(plugin.get("service_name"))
        if catalog.get(name) is None:
            _fail(f"{result_file}: the run used filter {name!r} ({plugin.get('origin')}), which is not available now")
        if plugin.get("sha256") and catalog.digest(name) != plugin.get("sha256"):
            _fail(f"{result_file}: filter {name!r} ({plugin.get('origin')}) has changed since the run (SHA-256 differs)")
    return catalog


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


@app.command()
def validate(scenario: ScenarioArg, plugin: PluginOpt = None) -> None:
    """Check a scenario file without running it."""
    catalog = _catalog(plugin)
    try:
        s = load_scenario(scenario, catalog)
    except ScenarioError as exc:
        _fail(str(exc))
    filters = ", ".join(s.registry.dump_filters) or "none"
    typer.echo(f"{scenario}: valid ({s.scenario.event} scenario {s.scenario.name!r}; DumpFilters: {filters})")


@app.command("devices")
def list_devices(
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list instead of a table.")] = False,
) -> None:
    """List the device presets a scenario can name as its disk preset."""
    from stacksim.devices import DEVICE_PRESETS

    presets = [p.as_dict() for p in DEVICE_PRESETS.values()]
    if as_json:
        sys.stdout.write(json.dumps(presets, indent=2) + "\n")
        return
    print_devices(Console(highlight=False))


@app.command("filters")
def list_filters(plugin: PluginOpt = None) -> None:
    """List the dump filters a scenario can name in DumpFilters."""
    catalog = _catalog(plugin)
    print_filters(catalog, Console(highlight=False))


def result_json(result: RunResult) -> str:
    """The result as pretty, stable JSON text (sorted only where order carries no meaning)."""
    return json.dumps(result.as_dict(), indent=2, ensure_ascii=False) + "\n"


def main() -> None:
    """Console-script entry point."""
    app()
