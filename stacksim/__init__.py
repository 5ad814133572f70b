"""
stacksim: simulate the Windows crash-dump and hibernation I/O path in virtual time.

Layering (each layer imports only the layers below it, never the reverse, never skipping):

    cli            command line: run, sweep, replay, check, validate, explain, memory, inspect, extract,
                   devices, filters
    api            the Python API: simulate, load_scenario, read_trace, sweep (paths, overrides, plugins)
    summary        what the terminal shows: the run summary, the device and filter tables, inspect's findings
    extract        after the reboot: a data-mode image's dump read back, decrypted, checked (inspect, extract)
    sweep          grids of runs on an Executor (process pool, Dask)
    check          invariant checker over trace files (imports nothing from the simulator)
    perfetto       trace records as Trace Event JSON for ui.perfetto.dev (a sink of a run, or a trace file)
    overrides      dotted keys set in a scenario's TOML (sweep's --set, the API's overrides=)
    simulate       one run: assemble the machine, run the event's script, report
    report         RunResult: what a run did, built after the event
    events/        one short script per [scenario] event (crash, hibernate)
    machine        the machine, assembled once: engine, device, layout, dump port, stacks
    datamode       data mode: the dump's bytes (dumpfmt over physmem), the leak check
    diskimage      the sparse disk image the miniport writes in data mode
    scenario       TOML schema and validation          registry   CrashControl values
    normal_stack   the runtime stack (ntfs … storport, interrupts) on the queued-network engine
    dump_driver    crashdmp: stacks, Dump_Start, writes, Dump_Finish
    filters/       ntdddump interface, the filter host, built-in filters, plugins
    miniport       dump port + miniport (polled, one request outstanding)
    devices        device models                      layout     target file -> disk runs
    dumpfmt        the crash dump file: DUMP_HEADER64, bitmap, pages (on memory)
    hiberfile      the hiberfile: PO_MEMORY_IMAGE header (written last), compression sets (on physmem)
    memory         dump contents and sizes            requests   Mdl, DumpRequest, NTSTATUS
    physmem        simulated physical memory for data mode: memory map, page classes, page bytes, markers
    xts            AES-256-XTS for whole writes (dumpfve.sys in data mode; aes-xts-plain64)
    faults         fault plans (device, filter, power loss)
    metrics        streaming weighted histograms      trace      JSONL event records
    units          quantities with units
    _engine/       virtual clock, CPU accounting, sequence numbers, watchdog, wall-clock
                   guard, queued networks (knows no layer; uses only metrics, trace, units,
                   and _io to remove temporary files when the guard must end the process)

Source keys cited in the code (``[DOC S7]``) and the sections of the research notes it cites
(``fact sheet §1.6``) are listed in ``docs/explanation/sources.md``.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING

from stacksim._version import __version__

if TYPE_CHECKING:  # for mypy and readers; at run time each name is imported on first use (__getattr__ below)
    from stacksim._engine import Engine, SimTime, WatchdogExpired, now_ns, spend
    from stacksim._io import InputError, OutputError
    from stacksim.api import load_scenario, read_trace, simulate, sweep
    from stacksim.datamode import DataMode
    from stacksim.diskimage import DiskImage
    from stacksim.filters import (
        DUMP_FILTER_CRITICAL,
        DUMP_FILTER_FLAG_SYSTEM_SUPPORT_READ,
        DUMP_FILTER_MAJOR_VERSION,
        DUMP_FILTER_MAJOR_VERSION_1,
        DUMP_FILTER_MINOR_VERSION,
        DiskGeometry,
        DumpFilter,
        DumpType,
        FilterCatalog,
        FilterExtension,
        FilterInitializationData,
        PluginError,
    )
    from stacksim.metrics import LayerSummary
    from stacksim.requests import PAGE_SIZE, SECTOR_SIZE, DumpRequest, Mdl, NtStatus
    from stacksim.scenario import Scenario, ScenarioError, validate_scenario
    from stacksim.simulate import RunResult
    from stacksim.sweep import SweepError
    from stacksim.trace import JsonlTrace, ListTrace

__all__ = [
    "DUMP_FILTER_CRITICAL",
    "DUMP_FILTER_FLAG_SYSTEM_SUPPORT_READ",
    "DUMP_FILTER_MAJOR_VERSION",
    "DUMP_FILTER_MAJOR_VERSION_1",
    "DUMP_FILTER_MINOR_VERSION",
    "PAGE_SIZE",
    "SECTOR_SIZE",
    "DataMode",
    "DiskGeometry",
    "DiskImage",
    "DumpFilter",
    "DumpRequest",
    "DumpType",
    "Engine",
    "FilterCatalog",
    "FilterExtension",
    "FilterInitializationData",
    "InputError",
    "JsonlTrace",
    "LayerSummary",
    "ListTrace",
    "Mdl",
    "NtStatus",
    "OutputError",
    "PluginError",
    "RunResult",
    "Scenario",
    "ScenarioError",
    "SimTime",
    "SweepError",
    "WatchdogExpired",
    "__version__",
    "load_scenario",
    "now_ns",
    "read_trace",
    "simulate",
    "spend",
    "sweep",
    "validate_scenario",
]

_EXPORTS: dict[str, tuple[str, ...]] = {
    "stacksim._engine": ("Engine", "SimTime", "WatchdogExpired", "now_ns", "spend"),
    "stacksim._io": ("InputError", "OutputError"),
    "stacksim.api": ("load_scenario", "read_trace", "simulate", "sweep"),
    "stacksim.datamode": ("DataMode",),
    "stacksim.diskimage": ("DiskImage",),
    "stacksim.filters": (
        "DUMP_FILTER_CRITICAL",
        "DUMP_FILTER_FLAG_SYSTEM_SUPPORT_READ",
        "DUMP_FILTER_MAJOR_VERSION",
        "DUMP_FILTER_MAJOR_VERSION_1",
        "DUMP_FILTER_MINOR_VERSION",
        "DiskGeometry",
        "DumpFilter",
        "DumpType",
        "FilterCatalog",
        "FilterExtension",
        "FilterInitializationData",
        "PluginError",
    ),
    "stacksim.metrics": ("LayerSummary",),
    "stacksim.requests": ("PAGE_SIZE", "SECTOR_SIZE", "DumpRequest", "Mdl", "NtStatus"),
    "stacksim.scenario": ("Scenario", "ScenarioError", "validate_scenario"),
    "stacksim.simulate": ("RunResult",),
    "stacksim.sweep": ("SweepError",),
    "stacksim.trace": ("JsonlTrace", "ListTrace"),
}
"""The module each public name comes from (the imports under ``TYPE_CHECKING`` above, as data)."""

_HOME: dict[str, str] = {name: module for module, names in _EXPORTS.items() for name in names}

# Start-up (docs/explanation/performance.md, "Start-up"): ``import stacksim`` imports none of the
# modules above. Together they pull in trio, pydantic (and its schema building), structlog
# (whose ``structlog.dev`` imports rich), hdrhistogram and more: ~0.3 s before a command could
# print its help. A public name is imported the first time it is used (PEP 562), then kept here,
# so ``from stacksim import simulate`` and ``stacksim.Scenario`` work as if imported eagerly.


def __getattr__(name: str) -> object:
    """Import a public name's module on first use (``stacksim.Scenario``, ``from stacksim import simulate``)."""
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The module's names, the public ones not yet imported included."""
    return sorted({*globals(), *__all__})


class _Package(types.ModuleType):
    """
    The type of the ``stacksim`` module: a submodule named as a public function does not replace the function.

    Importing :mod:`stacksim.simulate` (the module) makes Python set the package's ``simulate``
    attribute to that module. Eager imports used to bind the function over it at once; here the
    module's binding is skipped, so ``stacksim.simulate`` is always :func:`simulate`, as before
    (and ``stacksim.sweep`` the function, not :mod:`stacksim.sweep`: import that module's names
    with ``from stacksim.sweep import ...``, or ``importlib.import_module("stacksim.sweep")``).
    """

    def __setattr__(self, name: str, value: object) -> None:
        """Set *name*, unless it is the import system binding a submodule over the public name it shares."""
        if name in _HOME and isinstance(value, types.ModuleType) and value.__name__ == f"{__name__}.{name}":
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
