"""
The stack builder: turn a :class:`~stacksim.scenario.Scenario` into running layers and a result.

It creates the engine, the memory plan, the target file's layout, the device, the dump port, one
:class:`~stacksim.filters._host.FilterLayer` per filter per stack, and the trio memory channels
between them::

    crashdmp ─► filter 1 ─► … ─► filter N ─► miniport ─► (device model)
        ▲                                        │
        └──────────────── completion ◄───────────┘

then runs the dump driver, every filter and the miniport as trio tasks under the virtual clock
and collects a :class:`RunResult`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
import trio

from stacksim._engine import Engine, SpeculationFailed, run
from stacksim._log import ensure_configured
from stacksim._version import __version__
from stacksim.devices import build_device
from stacksim.dump_driver import LAYER as DUMP_DRIVER_LAYER
from stacksim.dump_driver import DumpDriver
from stacksim.faults import DeviceFault, FaultPlan, FilterFault
from stacksim.filters import DiskGeometry, DumpType, FilterCatalog, FilterExtension
from stacksim.filters._host import FilterLayer
from stacksim.layout import FileLayout, LayoutError
from stacksim.memory import DumpPlan
from stacksim.metrics import LayerSummary
from stacksim.miniport import DumpPort
from stacksim.requests import Op
from stacksim.scenario import DeviceErrorFault, DeviceTimeoutFault, PowerLossFault, Scenario, ScenarioError, SlowFilterFault
from stacksim.scenario import FilterFault as FilterFaultSpec
from stacksim.trace import TraceSink
from stacksim.units import format_ns

__all__ = ["RunResult", "simulate"]

log = structlog.get_logger("stacksim")


@dataclass(frozen=True, slots=True)
class FilterReport:
    """What happened to one filter in the active stack."""

    name: str
    loaded: bool
    critical: bool
    supports_read: bool
    load_status: str
    load_error: str | None
    errors: dict[str, int]
    first_error: dict[str, str]

    def as_dict(self) -> dict[str, Any]:
        """JSON object."""
        return {
            "name": self.name,
            "loaded": self.loaded,
            "critical": self.critical,
            "supports_read": self.supports_read,
            "load_status": self.load_status,
            "load_error": self.load_error,
            "errors": self.errors,
            "first_error": self.first_error,
        }


@dataclass(frozen=True, slots=True)
class RunResult:
    """
    The outcome of one run; :meth:`as_dict` is the result JSON (``docs/reference/result-format.md``).

    ``dump_time_ns`` runs from the bugcheck (or the start of hibernation) to the completion of
    the final flush, or to the failure.
    """

    scenario: str
    event: str
    dump_type: str
    dump_kind: str
    seed: int
    status: str
    message: str
    dump_time_ns: int
    bytes_written: int
    write_requests: int
    dump_bytes: int
    max_pages_per_write: int
    parts: dict[str, int]
    layers: dict[str, LayerSummary]
    write_latency: LayerSummary
    filters: tuple[FilterReport, ...]
    images: tuple[str, ...]
    target: str
    warnings: tuple[str, ...] = field(default=())
    batched_messages: int = 0
    request_mode_reasons: tuple[str, ...] = ()
    header_written: bool = False
    write_retries: int = 0
    replay: dict[str, Any] = field(default_factory=dict)

    @property
    def bottleneck(self) -> str | None:
        """
        The layer that bounds throughput: on the serial crash path, the one with the most busy time.

        Ties go to the layer nearest the top of the stack. ``None`` when nothing ran.
        """
        busiest = max(self.layers.items(), key=lambda kv: kv[1].busy_ns, default=None)
        return busiest[0] if busiest is not None and busiest[1].busy_ns > 0 else None

    def share_percent(self, layer: str) -> float:
        """*layer*'s busy time as a percentage of the dump time (one decimal)."""
        if not self.dump_time_ns:
            return 0.0
        return round(100 * self.layers[layer].busy_ns / self.dump_time_ns, 1)

    @property
    def throughput_bytes_per_s(self) -> float:
        """Bytes written per second of dump time."""
        return self.bytes_written * 1e9 / self.dump_time_ns if self.dump_time_ns else 0.0

    def as_dict(self) -> dict[str, Any]:
        """The result JSON object, keys in a stable order."""
        return {
            "stacksim_version": __version__,
            "scenario": self.scenario,
            "event": self.event,
            "dump_type": self.dump_type,
            "dump_kind": self.dump_kind,
            "seed": self.seed,
            "status": self.status,
            "message": self.message,
            "dump_time_ns": self.dump_time_ns,
            "bytes_written": self.bytes_written,
            "write_requests": self.write_requests,
            "dump_bytes": self.dump_bytes,
            "throughput_bytes_per_s": math.floor(self.throughput_bytes_per_s),
            "max_pages_per_write": self.max_pages_per_write,
            "bottleneck": self.bottleneck,
            "bottleneck_share_percent": self.share_percent(self.bottleneck) if self.bottleneck else 0.0,
            "dump_time_without_bottleneck_ns": self.dump_time_ns - self.layers[self.bottleneck].busy_ns
            if self.bottleneck
            else self.dump_time_ns,
            "target": self.target,
            "parts": self.parts,
            "images": list(self.images),
            "layers": {name: s.as_dict() for name, s in self.layers.items()},
            "write_latency": self.write_latency.as_dict(),
            "filters": [f.as_dict() for f in self.filters],
            "warnings": list(self.warnings),
            "header_written": self.header_written,
            "write_retries": self.write_retries,
            "batched_messages": self.batched_messages,
            "request_mode_reasons": list(self.request_mode_reasons),
            "replay": self.replay,
        }


def _layout(s: Scenario) -> FileLayout:
    """The target file's layout; :func:`~stacksim.scenario.validate_scenario` has checked it already."""
    try:
        return s.file_layout()
    except LayoutError as exc:  # only for a Scenario built without validate_scenario
        raise ScenarioError("scenario " + s.scenario.name, exc.problems) from None


def _fault_plan(s: Scenario) -> FaultPlan:
    """The scenario's ``[[faults]]`` as the layers apply them."""
    plan = FaultPlan()
    for f in s.faults:
        if isinstance(f, FilterFaultSpec):
            action = {"filter_raise": "raise", "filter_hang": "hang", "filter_error_status": "error_status"}[f.kind]
            fault = FilterFault(action, f.callback, f.at_request, f.status, f.dump_type)
            plan.filters.setdefault(f.filter, []).append(fault)
        elif isinstance(f, SlowFilterFault):
            plan.filters.setdefault(f.filter, []).append(FilterFault("slow", f.callback, extra_ns=f.extra))
        elif isinstance(f, DeviceErrorFault):
            plan.device.append(DeviceFault("error", f.at_request, f.at_offset, f.persistent, f.status))
        elif isinstance(f, DeviceTimeoutFault):
            plan.device.append(DeviceFault("timeout", f.at_request, None, f.persistent))
        else:
            plan.power_loss_after_ns = f.at
    return plan


def simulate(
    scenario: Scenario,
    catalog: FilterCatalog,
    *,
    trace: TraceSink | None = None,
    batch: bool = True,
    progress: Callable[[int, int], None] | None = None,
    pipeline: bool = True,
) -> RunResult:
    """
    Run *scenario* in virtual time and return its result. Deterministic for a given scenario.

    With *batch* (the default) a run of identical writes may travel as one message when every
    filter declares its cost; the result is identical to request mode (``batch=False``). A
    *trace* has one record per request, so tracing always runs in request mode. *progress*, if
    given, is called as ``progress(bytes written, bytes to write)`` now and then during the
    writes (for a progress bar).

    Request mode keeps several writes in flight when nothing can fail (pipelined request mode,
    ``docs/explanation/engine.md``); if something does, the run is repeated one write at a
    time, so the result is always that of the one-at-a-time run. ``pipeline=False`` runs one
    write at a time from the start (for tests and for debugging a filter).
    """
    if not pipeline:
        return _simulate(scenario, catalog, trace, batch, progress, pipeline=False)
    if progress is not None:
        progress = _never_backwards(progress)  # a repeated run starts again from zero
    try:
        return _simulate(scenario, catalog, trace, batch, progress, pipeline=True)
    except BaseExceptionGroup as group:
        if group.subgroup(SpeculationFailed) is None:
            raise
        log.debug("run.pipeline_abandoned", reason=str(group.exceptions[0]))
    return _simulate(scenario, catalog, trace, batch, progress, pipeline=False)


def _simulate(
    scenario: Scenario,
    catalog: FilterCatalog,
    trace: TraceSink | None,
    batch: bool,
    progress: Callable[[int, int], None] | None,
    *,
    pipeline: bool,
) -> RunResult:
    """One attempt of :func:`simulate`."""
    ensure_configured()
    s = scenario
    plan = s.dump_plan()
    dump_type = DumpType.CRASHDUMP if s.scenario.event == "crash" else DumpType.HIBERNATION
    kind, model, params, disk_size = s.disk.resolved()
    port_cfg = s.dump_port.resolved()
    mppw = port_cfg.max_pages_per_write
    layout = _layout(s)
    too_small: str | None = None
    full_plan = plan
    if plan.total_bytes > layout.size:
        # a hiberfile too small for the image is always fatal (bug check 0xA0/0xB): never truncated
        too_small = "refuse" if dump_type is DumpType.HIBERNATION else s.layout.on_too_small
        if too_small == "truncate":
            plan = plan.truncated(layout.size)
    plan_faults = _fault_plan(s)
    engine = Engine(seed=s.scenario.seed, watchdog_ns=s.engine.watchdog, wall_clock_limit_ns=s.engine.wall_clock_limit)
    engine.trace = trace
    device = build_device(model, params, disk_size, kind)
    geometry = DiskGeometry(cylinders=disk_size // (255 * 63 * 512))
    prefix = "dump_" if dump_type is DumpType.CRASHDUMP else "hiber_"
    port = DumpPort(
        engine,
        device,
        layout,
        max_transfer=mppw * 4096,
        per_request_overhead_ns=port_cfg.per_request_overhead,
        reset_ns=port_cfg.reset,
        image=f"{prefix}{port_cfg.driver}.sys",
        dump_type=dump_type.label,
        faults=plan_faults.device,
        timeout_ns=s.dump_port.timeout,
    )

    def layers_for(kind: DumpType) -> list[FilterLayer]:
        out = []
        for name in s.registry.dump_filters:
            cls = catalog.get(name)
            assert cls is not None  # validate_scenario checked every name
            ext = FilterExtension(kind, r"\Device\HarddiskVolume3", geometry, disk_size, s.layout.partition_offset)
            layer = FilterLayer(engine, cls, s.filter_configs[name], ext, mppw)
            layer.faults = list(plan_faults.filters.get(name, []))
            out.append(layer)
        return out

    crash_layers = layers_for(DumpType.CRASHDUMP) if s.registry.crash_dump_enabled else []
    hiber_layers = layers_for(DumpType.HIBERNATION) if dump_type is DumpType.HIBERNATION else []
    active = crash_layers if dump_type is DumpType.CRASHDUMP else hiber_layers

    async def main() -> DumpDriver:
        channels = [trio.open_memory_channel[Op](math.inf) for _ in range(len(active) + 1)]
        complete_send, complete_recv = trio.open_memory_channel[Op](math.inf)
        driver = DumpDriver(
            engine,
            event=s.scenario.event,
            event_at_ns=s.scenario.event_at,
            crash_dump_enabled=s.registry.crash_dump_enabled,
            plan=plan,
            layout=layout,
            max_pages_per_write=mppw,
            crash_filters=crash_layers,
            hiber_filters=hiber_layers,
            down=channels[0][0],
            complete=complete_recv,
            integrity_check_ns=s.dump_driver.integrity_check,
            too_small=too_small,
            full_bytes=full_plan.total_bytes,
            per_request_ns=s.dump_driver.per_request,
            batch=batch and trace is None and plan_faults.power_loss_after_ns is None,
            write_retries=s.dump_driver.write_retries,
            power_loss_after_ns=plan_faults.power_loss_after_ns,
            device_faults=plan_faults.device,
            progress=progress,
            pipeline=pipeline and trace is None and plan_faults.power_loss_after_ns is None and not plan_faults.device,
            unbatchable=port.may_time_out,
            disk_size=disk_size,
            port_timeout_ns=s.dump_port.timeout,
        )
        tasks = []
        for i, layer in enumerate(active):
            tasks.append(_bind(layer.run, channels[i][1], channels[i + 1][0], complete_send))
        tasks.append(_bind(port.run, channels[-1][1], complete_send))
        engine.describe_state = lambda: f"{len(active)} filter tasks and the miniport are waiting for work"
        await engine.supervise(driver.run, *tasks)
        return driver

    log.debug("run.start", scenario=s.scenario.name, seed=s.scenario.seed)
    driver = run(main, engine)
    out = driver.outcome
    warnings = [w for layer in active for w in layer.warnings] + port.warnings
    if engine.failure is not None:
        out.status = "hung" if engine.failure.layer is not None else "deadlock"
        out.message = str(engine.failure)
        out.done_ns = engine.now_ns + engine.failure.waited_ns
        # the dump driver never returned: end the trace where the watchdog ended the run (or the power failed)
        end = out.done_ns if engine.trace_until_ns is None else min(out.done_ns, engine.trace_until_ns)
        engine.emit(end, DUMP_DRIVER_LAYER, "dump_failed", 0, dump_type=dump_type.label)
    dump_time = out.done_ns - out.event_ns if out.done_ns else 0
    warnings += _unfired(s, plan, layout, port, active, mppw * 4096, out.status, dump_time)
    layers: dict[str, LayerSummary] = {DUMP_DRIVER_LAYER: driver.stats.summary()}
    for layer in active:
        layers[layer.name] = layer.stats.summary()
    layers["miniport"] = port.stats.summary()
    layers["device"] = device.stats.summary()
    h = driver.write_latency
    images = ("crashdmp.sys", *(f"{prefix}{n}" for n in s.registry.dump_filters), f"{prefix}storport.sys", port.image)
    result = RunResult(
        scenario=s.scenario.name,
        event=s.scenario.event,
        dump_type=dump_type.label,
        dump_kind=plan.kind,
        seed=s.scenario.seed,
        status=out.status,
        message=out.message,
        dump_time_ns=dump_time,
        bytes_written=out.bytes_written,
        write_requests=out.write_requests,
        dump_bytes=full_plan.total_bytes,
        max_pages_per_write=mppw,
        parts={p.name: p.bytes for p in full_plan.parts},
        layers=layers,
        write_latency=LayerSummary(h.count, h.total, h.percentile(50), h.percentile(99), h.max),
        filters=tuple(
            FilterReport(
                layer.name,
                layer.attempted and layer.load_error is None,
                layer.init.critical,
                layer.init.supports_read,
                f"0x{layer.load_status:08X}",
                layer.load_error,
                dict(layer.errors),
                dict(layer.first_error),
            )
            for layer in active
        ),
        images=images,
        target=layout.target,
        warnings=tuple(warnings),
        batched_messages=driver.batched_messages,
        request_mode_reasons=_request_mode_reasons(batch, trace is not None, plan_faults, driver),
        header_written=driver.header_complete(),
        write_retries=driver.retries,
        replay={
            "scenario": s.source_data,
            "seed": s.scenario.seed,
            "batch": batch,
            "traced": trace is not None,
            "plugins": [
                {"service_name": name, "origin": catalog.origin(name), "sha256": catalog.digest(name)}
                for name in s.registry.dump_filters
                if catalog.origin(name) != "built-in"
            ],
        },
    )
    log.debug("run.end", scenario=s.scenario.name, status=result.status, dump_time_ns=result.dump_time_ns)
    return result


MAX_FAULT_WARNINGS = 20
"""Faults that never fired listed one by one in the warnings; the rest are counted."""


def _unfired(
    s: Scenario,
    plan: DumpPlan,
    layout: FileLayout,
    port: DumpPort,
    filters: list[FilterLayer],
    chunk: int,
    status: str,
    dump_time: int,
) -> list[str]:
    """Warnings for the filter faults, device faults and power loss that never happened, and why when it could not."""
    out: list[str] = []
    placed = plan.placed() if plan.total_bytes <= layout.size else []
    writes = sum(layout.pieces(pos, part.bytes, chunk) for part, pos in placed)
    unfired = [w for layer in filters for w in layer.unfired_faults(writes)]
    out += unfired[:MAX_FAULT_WARNINGS]
    if len(unfired) > MAX_FAULT_WARNINGS:
        out.append(f"and {len(unfired) - MAX_FAULT_WARNINGS:,} more filter faults never fired")
    if port.faults and len(port.fired) < len(port.faults):
        unfired = port.unfired_faults(writes, plan.total_bytes if placed else 0)
        out += unfired[:MAX_FAULT_WARNINGS]
        if len(unfired) > MAX_FAULT_WARNINGS:
            out.append(f"and {len(unfired) - MAX_FAULT_WARNINGS:,} more device faults never fired")
    at = next((f.at for f in s.faults if isinstance(f, PowerLossFault)), None)
    if at is not None and status != "power_lost":
        event = "bugcheck" if s.scenario.event == "crash" else "start of hibernation"
        out.append(f"fault power_loss at {format_ns(at)} never fired: the run ended {format_ns(dump_time)} after the {event}")
    return out


def _never_backwards(progress: Callable[[int, int], None]) -> Callable[[int, int], None]:
    """*progress*, called only when the count passes the highest one reported so far."""
    high = -1

    def report(done: int, total: int) -> None:
        nonlocal high
        if done > high:
            high = done
            progress(done, total)

    return report


def _request_mode_reasons(batch: bool, traced: bool, faults: FaultPlan, driver: DumpDriver) -> tuple[str, ...]:
    """Why writes went one message per write (empty when every run that could be batched was)."""
    if not driver.outcome.write_requests:
        return ()
    reasons = []
    if not batch:
        reasons.append("request mode was asked for (--no-batch)")
    if traced:
        reasons.append("a trace was asked for (it has one record per request)")
    if faults.power_loss_after_ns is not None:
        reasons.append("a power_loss fault is planned (the instant power fails decides which write is torn)")
    return tuple(reasons) if reasons else tuple(driver.unbatched)


def _bind(fn: Any, *args: Any) -> Any:
    async def task() -> None:
        await fn(*args)

    return task
