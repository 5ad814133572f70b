"""
The machine: everything a run drives, assembled once from a :class:`~stacksim.scenario.Scenario`.

:func:`assemble` builds the engine, the memory plan, the target file's layout, the disk device,
the dump port (the ``dump_`` / ``hiber_`` copy of the boot disk's port and miniport) one
:class:`~stacksim.filters._host.FilterLayer` per filter per stack -- the crash dump stack (when
``CrashDumpEnabled``) and the hibernation stack (loaded when hibernation starts) -- and, for the
events that run a ``[workload]``, the normal storage stack over the same device
(:mod:`stacksim.normal_stack`). It wires nothing: an event script (:mod:`stacksim.events`) decides what runs, and
:mod:`stacksim.report` turns what happened into the result. ::

    crashdmp ─► filter 1 ─► … ─► filter N ─► dump port + miniport ─► (device model)
        ▲                                              │
        └──────────────────── completion ◄─────────────┘

The machine holds state for one run; assemble a new one for each run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from stacksim._engine import Engine
from stacksim.compressor import Compressor
from stacksim.datamode import DataMode, DumpBytes, HiberfileBytes, dump_bytes
from stacksim.devices import DeviceBase, build_device
from stacksim.faults import DeviceFault, FaultPlan, FilterFault
from stacksim.filters import DiskGeometry, DumpType, FilterCatalog, FilterExtension
from stacksim.filters._host import FilterLayer
from stacksim.layout import FileLayout, LayoutError
from stacksim.memory import DumpPlan
from stacksim.miniport import DumpPort
from stacksim.normal_stack import NormalStack, build_runtime_device, build_stack
from stacksim.scenario import DeviceErrorFault, DeviceTimeoutFault, Scenario, ScenarioError, SlowFilterFault
from stacksim.scenario import FilterFault as FilterFaultSpec
from stacksim.trace import TraceSink

__all__ = ["Machine", "assemble"]

VOLUME_NAME = r"\Device\HarddiskVolume3"
"""The boot volume's device name the filters' FILTER_EXTENSION carries (an example name: ASSUMPTION)."""


@dataclass(slots=True)
class Machine:
    """One run's machine: the parts, and how the run was asked for (batched, traced, pipelined)."""

    scenario: Scenario
    catalog: FilterCatalog
    engine: Engine
    dump_type: DumpType
    plan: DumpPlan
    """What crashdmp writes (truncated to the file when ``on_too_small = "truncate"``)."""
    full_plan: DumpPlan
    """What the dump type asks for, before any truncation."""
    too_small: str | None
    """``None`` when the dump fits its file; else ``"refuse"`` or ``"truncate"``."""
    layout: FileLayout
    disk_size: int
    max_pages_per_write: int
    device: DeviceBase
    port: DumpPort
    crash_filters: list[FilterLayer]
    """The crash dump stack's filters (empty when crash dumps are disabled)."""
    hiber_filters: list[FilterLayer]
    """The hibernation stack's filters (built only for a hibernation: they load when it starts)."""
    faults: FaultPlan
    normal: NormalStack | None
    """The normal (runtime) storage stack over the same device, for events that run ``[workload]``."""
    trace: TraceSink | None
    batch: bool
    pipeline: bool
    progress: Callable[[int, int], None] | None
    data: DataMode | None = None
    """Data mode: the disk image and the volume key (``None``: timing mode, no bytes)."""
    contents: DumpBytes | HiberfileBytes | None = None
    """Data mode: the dump file's bytes, which crashdmp hands down write by write."""
    compressor: Compressor | None = None
    """Hibernation with compression: the compressor that paces the body's writes."""

    @property
    def active(self) -> list[FilterLayer]:
        """The filters of the stack this run's event writes through."""
        return self.crash_filters if self.dump_type is DumpType.CRASHDUMP else self.hiber_filters

    @property
    def prefix(self) -> str:
        """The image prefix of the dump stack's copies: ``dump_`` for a crash, ``hiber_`` for hibernation."""
        return "dump_" if self.dump_type is DumpType.CRASHDUMP else "hiber_"


def assemble(
    scenario: Scenario,
    catalog: FilterCatalog,
    *,
    trace: TraceSink | None = None,
    batch: bool = True,
    pipeline: bool = True,
    progress: Callable[[int, int], None] | None = None,
    data: DataMode | None = None,
) -> Machine:
    """
    The machine for one run of *scenario* (validated: every filter name is in *catalog*).

    With *data* the machine runs in data mode (:mod:`stacksim.datamode`): the dump's bytes are
    built from the simulated memory, every filter's extension carries the volume key, and the
    dump port writes each completed write into the disk image.
    """
    s = scenario
    hiber_bytes = HiberfileBytes(s) if data is not None and s.scenario.hibernates else None
    # data mode compresses the hiberfile before the run: its plan has the body's real size
    plan = s.hiber_plan(hiber_bytes.summary.body_bytes) if hiber_bytes is not None else s.dump_plan()
    dump_type = DumpType.HIBERNATION if s.scenario.hibernates else DumpType.CRASHDUMP
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
    faults = fault_plan(s)
    # The wall-clock guard watches plugin code; the built-in filters never loop, so a stack of only
    # them needs no guard thread (a run is byte-identical with and without one; ≈ 0.3 ms saved a run).
    plugin_code = any(catalog.origin(name) != "built-in" for name in s.registry.dump_filters)
    guard_ns = s.engine.wall_clock_limit if plugin_code else 0
    engine = Engine(seed=s.scenario.seed, watchdog_ns=s.engine.watchdog, wall_clock_limit_ns=guard_ns)
    engine.trace = trace
    normal: NormalStack | None = None
    if s.scenario.runs_workload:  # the normal stack and the dump stack share the one device (and its cache)
        device, parallelism = build_runtime_device(s)
        normal = build_stack(s, device, parallelism)
    else:
        device = build_device(model, params, disk_size, kind)
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
        faults=faults.device,
        timeout_ns=s.dump_port.timeout,
        disk_image=data.image if data is not None else None,
    )
    geometry = DiskGeometry(cylinders=disk_size // (255 * 63 * 512))

    def stack(kind: DumpType) -> list[FilterLayer]:
        out = []
        for name in s.registry.dump_filters:
            cls = catalog.get(name)
            assert cls is not None  # validate_scenario checked every name
            ext = FilterExtension(kind, VOLUME_NAME, geometry, disk_size, s.layout.partition_offset)
            ext.volume_key = data.key if data is not None else None
            layer = FilterLayer(engine, cls, s.filter_configs[name], ext, mppw)
            layer.faults = list(faults.filters.get(name, []))
            out.append(layer)
        return out

    return Machine(
        scenario=s,
        catalog=catalog,
        engine=engine,
        dump_type=dump_type,
        plan=plan,
        full_plan=full_plan,
        too_small=too_small,
        layout=layout,
        disk_size=disk_size,
        max_pages_per_write=mppw,
        device=device,
        port=port,
        crash_filters=stack(DumpType.CRASHDUMP) if s.registry.crash_dump_enabled else [],
        hiber_filters=stack(DumpType.HIBERNATION) if dump_type is DumpType.HIBERNATION else [],
        faults=faults,
        normal=normal,
        trace=trace,
        batch=batch,
        pipeline=pipeline,
        progress=progress,
        data=data,
        contents=hiber_bytes if hiber_bytes is not None else dump_bytes(s, full_plan) if data is not None else None,
        compressor=_compressor(s, plan),
    )


def _compressor(s: Scenario, plan: DumpPlan) -> Compressor | None:
    """The hiberfile's compressor (``[hibernation] compression``), or None when nothing is compressed."""
    image = plan.hiber
    if image is None or not image.compressed:
        return None
    h = s.hibernation
    return Compressor(
        uncompressed_bytes=image.uncompressed_bytes, body_bytes=image.body_bytes, rate=h.compress_rate, overlap=h.compress_overlap
    )


def _layout(s: Scenario) -> FileLayout:
    """The target file's layout; :func:`~stacksim.scenario.validate_scenario` has checked it already."""
    try:
        return s.file_layout()
    except LayoutError as exc:  # only for a Scenario built without validate_scenario
        raise ScenarioError("scenario " + s.scenario.name, exc.problems) from None


def fault_plan(s: Scenario) -> FaultPlan:
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
