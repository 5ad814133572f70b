"""
The report: what a run did, from the machine and the dump driver that ran, as a :class:`RunResult`.

:func:`build_result` reads the dump driver's outcome, every layer's statistics, the filters'
load results and errors, and the warnings (faults that never fired and why), and records what
``stacksim replay`` needs. It runs after the event; nothing here drives the simulation.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from stacksim._io import json_safe
from stacksim._pandas import require_pandas
from stacksim._version import __version__
from stacksim.compressor import LAYER as COMPRESSOR_LAYER
from stacksim.datamode import HiberfileBytes, hiberfile_header_on_disk, leak_check
from stacksim.dump_driver import LAYER as DUMP_DRIVER_LAYER
from stacksim.dump_driver import DumpDriver
from stacksim.events import EventRun
from stacksim.faults import FaultPlan
from stacksim.filters._host import FilterLayer
from stacksim.layout import TARGET_NAMES, FileLayout
from stacksim.machine import Machine
from stacksim.memory import DumpPlan
from stacksim.metrics import LAYER_KEYS, LayerSummary
from stacksim.miniport import DumpPort
from stacksim.normal_stack import WRITE, IoRequest, IoResult, workload_ops
from stacksim.resume import ResumeResult
from stacksim.scenario import PowerLossFault, Scenario
from stacksim.units import format_ns

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["MAX_FAULT_WARNINGS", "FilterReport", "RunResult", "build_result"]


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
class LostRequest:
    """A normal-stack request the bugcheck caught in flight: where it was, and what became of it."""

    request: int
    """Its request number, 1 = the workload's first (as in the trace)."""
    layer: str
    stage: str
    state: str
    op: str
    offset: int
    length: int
    fate: str

    def as_dict(self) -> dict[str, Any]:
        """JSON object."""
        return {
            "request": self.request,
            "layer": self.layer,
            "stage": self.stage,
            "state": self.state,
            "op": self.op,
            "offset": self.offset,
            "length": self.length,
            "fate": self.fate,
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
    io: IoResult | None = None
    """The normal stack's I/O (``io`` and ``crash-during-io``; before the bugcheck for the latter)."""
    lost: tuple[LostRequest, ...] = ()
    """``crash-during-io``: every request the bugcheck caught in flight, in request order."""
    data: dict[str, Any] | None = None
    """Data mode: the disk image and what the leak check found on it (:mod:`stacksim.datamode`); else ``None``."""
    hibernation: dict[str, Any] | None = None
    """``hibernate``: what the image holds and what compressing it cost (:func:`_hibernation`); else ``None``."""
    resume: ResumeResult | None = None
    """``hibernate-resume``: how resume from the hiberfile went (:mod:`stacksim.resume`); else ``None``."""

    def time_without(self, layer: str) -> int:
        """
        The dump time had *layer* cost nothing: the dump time minus its busy time on the serial path.

        The compressor overlaps the writes (:mod:`stacksim.compressor`), so only the time crashdmp
        waited for it comes off.
        """
        if layer == COMPRESSOR_LAYER and self.hibernation is not None:
            return self.dump_time_ns - int(self.hibernation["compress_wait_ns"])
        return self.dump_time_ns - self.layers[layer].busy_ns

    def lost_by_layer(self) -> dict[str, dict[str, int]]:
        """Per layer (top down, as a request meets them): how many requests and bytes the bugcheck caught there."""
        out: dict[str, dict[str, int]] = {}
        for x in self.lost:
            entry = out.setdefault(x.layer, {"requests": 0, "bytes": 0})
            entry["requests"] += 1
            entry["bytes"] += x.length
        rank = {layer: k for k, layer in enumerate(self.io.layer_order())} if self.io is not None else {}
        return dict(sorted(out.items(), key=lambda kv: rank.get(kv[0], len(rank))))

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

    def layer_rates(self, layer: str) -> dict[str, int | float]:
        """
        *layer*'s IOPS and bandwidth over the dump time, as the result JSON names them (:meth:`rates` of its calls).

        ``iops`` = the layer's calls ÷ the dump time; ``bandwidth_bytes_per_s`` = the bytes the run
        wrote ÷ the dump time (every byte written crosses every layer of the serial dump path
        once; a layer's calls that move no data, such as a flush, count as I/Os but add no
        bytes), floored to whole bytes per second; ``bandwidth_MB_per_s`` (10^6 bytes) and
        ``bandwidth_MiB_per_s`` (2^20 bytes) the same rate to 3 decimals.
        """
        return self.rates(self.layers[layer].calls)

    def rates(self, calls: int) -> dict[str, int | float]:
        """
        *calls* I/Os and the bytes written over the dump time: ``iops``, ``bandwidth_bytes_per_s``, ``_MB_per_s``, ``_MiB_per_s``.

        Exact rationals rounded once (IOPS and MB/s to 3 decimals, bytes per second floored), so
        the same run prints the same digits; all 0 when the dump took no time or *calls* is 0.
        """
        t = self.dump_time_ns
        if not t or not calls:  # a layer never called (a filter that did not load) carried no bytes
            return {"iops": 0.0, "bandwidth_bytes_per_s": 0, "bandwidth_MB_per_s": 0.0, "bandwidth_MiB_per_s": 0.0}
        rate = Fraction(self.bytes_written * 10**9, t)
        return {
            "iops": float(round(Fraction(calls * 10**9, t), 3)),
            "bandwidth_bytes_per_s": math.floor(rate),
            "bandwidth_MB_per_s": float(round(rate / 10**6, 3)),
            "bandwidth_MiB_per_s": float(round(rate / 2**20, 3)),
        }

    def to_json(self) -> str:
        """
        The result JSON as ``stacksim run --json`` writes it: pretty, stable, invisible characters escaped.

        A number JSON cannot hold (NaN, infinity) raises ValueError instead of being written as
        ``NaN``, which no JSON reader (``replay`` included) accepts; the scenario's values are
        checked when it is validated, so a run never gets here with one.
        """
        return json_safe(json.dumps(self.as_dict(), indent=2, ensure_ascii=False, allow_nan=False)) + "\n"

    def layers_frame(self) -> pd.DataFrame:
        """
        The per-layer statistics as a pandas DataFrame: one row per layer, top down, indexed by its name.

        Columns: ``calls``, ``busy_ns``, ``min_ns``, ``mean_ns``, ``stdev_ns``, ``p50_ns``,
        ``p90_ns``, ``p99_ns``, ``p99_9_ns``, ``max_ns`` (integers, ns) and ``share_percent`` (the
        layer's busy time as a percentage of the dump time). Needs the
        ``pandas`` extra.

        Raises:
            ImportError: pandas is not installed (the message names ``stacksim[pandas]``).
        """
        pd = require_pandas("RunResult.layers_frame()")
        rows = [[name, *s.as_dict().values(), self.share_percent(name)] for name, s in self.layers.items()]
        frame = pd.DataFrame(rows, columns=["layer", *LAYER_KEYS, "share_percent"])
        return frame.astype(dict.fromkeys(LAYER_KEYS, "int64")).set_index("layer")

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
            "dump_time_without_bottleneck_ns": self.time_without(self.bottleneck) if self.bottleneck else self.dump_time_ns,
            "target": self.target,
            "parts": self.parts,
            "images": list(self.images),
            "layers": {name: {**s.as_dict(), **self.layer_rates(name)} for name, s in self.layers.items()},
            "write_latency": self.write_latency.as_dict(),
            "filters": [f.as_dict() for f in self.filters],
            "warnings": list(self.warnings),
            "header_written": self.header_written,
            "write_retries": self.write_retries,
            "batched_messages": self.batched_messages,
            "request_mode_reasons": list(self.request_mode_reasons),
            "io": self.io.as_dict() if self.io is not None else None,
            "lost": self.lost_by_layer(),
            "lost_requests": [x.as_dict() for x in self.lost],
            "data": self.data,
            "hibernation": self.hibernation,
            "resume": self.resume.as_dict() if self.resume is not None else None,
            "replay": self.replay,
        }


def _hibernation(m: Machine, driver: DumpDriver) -> dict[str, Any] | None:
    """A hibernation's image: the pages the mark-memory pass kept, the body as written, and the compressor's time."""
    image = m.full_plan.hiber
    if image is None:
        return None
    c = m.compressor
    return {
        "mode": image.mode,
        "pages_kept": dict(image.pages),
        "uncompressed_bytes": image.uncompressed_bytes,
        "compressed": image.compressed,
        "body_bytes": image.body_bytes,
        "body_estimated": m.data is None,
        "compression_ratio": round(image.body_bytes / image.uncompressed_bytes, 4) if image.uncompressed_bytes else 0.0,
        "hiberfile_bytes": m.layout.size,
        "compress_ns": c.stats.busy_ns if c is not None else 0,
        "compress_wait_ns": c.waited_ns if c is not None else 0,
    }


def _data(m: Machine, lost: int = 0) -> dict[str, Any] | None:
    """Data mode: the image's numbers and the leak check over every extent the run wrote."""
    if m.data is None or m.contents is None:
        return None
    leak = leak_check(m.data.image, m.contents.body_pages).as_dict()
    out: dict[str, Any] = {"key": m.data.key_source, "image_bytes_written": m.data.image.bytes_written, **leak}
    out["lost_in_volatile_cache_bytes"] = lost
    if isinstance(m.contents, HiberfileBytes):
        # compressed pages hide their markers: a header readable without the key means the image is plaintext too
        header = hiberfile_header_on_disk(m.data.image, m.layout)
        out["hiberfile_readable_without_key"] = header is not None
        if header is not None:
            out["plaintext_pages_on_disk"] = max(leak["plaintext_pages_on_disk"], header.pages)
    return out


def _scenario_warnings(m: Machine) -> list[str]:
    """
    What the scenario asks for that this run cannot honour or that no real system would do.

    A ``[workload]`` or ``[normal_stack]`` on an event that runs no workload is ignored; a
    workload that writes into the disk runs of the dump's target file would overwrite the page
    file (or dump file, or hiberfile), which the file system never lets an application do.
    """
    s = m.scenario
    out = []
    if not s.scenario.runs_workload:
        for key in ("workload", "normal_stack"):
            if key in s.source_data:
                out.append(
                    f'[{key}] is ignored by this run: event = "{s.scenario.event}" runs no workload (use event = "io" or '
                    '"crash-during-io"; stacksim explain shows the normal stack beside the dump path)'
                )
        return out
    if s.scenario.event == "io":
        for key in ("registry", "memory", "hibernation", "filters", "dump_driver", "faults"):
            if key in s.source_data:
                out.append(f'[{key}] is ignored by this run: event = "io" writes no dump (use event = "crash-during-io")')
    w = s.workload
    if m.normal is not None and WRITE not in workload_ops(w):
        return out
    start, end = w.region_offset, w.region_offset + w.region_size
    base = m.layout.partition_offset
    hits = [r for r in m.layout.runs if base + r.offset < end and start < base + r.offset + r.length]
    if hits:
        first = hits[0]
        target = TARGET_NAMES[m.layout.target]
        out.append(
            f"[workload] region ({start:,} to {end:,} bytes on the disk) overlaps {len(hits):,} disk run(s) of the "
            f"{target} (the first at {base + first.offset:,} bytes): the workload writes into the file the dump "
            "goes to, which the file system never lets an application do"
        )
    return out


def build_result(m: Machine, ran: EventRun) -> RunResult:
    """The result of the run the machine *m* just made (*ran*: what the event script ran)."""
    if ran.driver is None:
        assert ran.io is not None  # an event runs a dump, a workload or both
        return _io_result(m, ran.io)
    driver = ran.driver
    s, port, device, active, layout = m.scenario, m.port, m.device, m.active, m.layout
    plan, full_plan, dump_type, prefix, mppw = m.plan, m.full_plan, m.dump_type, m.prefix, m.max_pages_per_write
    batch, plan_faults = m.batch, m.faults
    out = driver.outcome
    warnings = [w for layer in active for w in layer.warnings] + port.warnings
    dump_time = out.done_ns - out.event_ns if out.done_ns else 0
    warnings += _unfired(s, plan, layout, port, active, mppw * 4096, out.status, dump_time)
    warnings += _scenario_warnings(m)
    io = ran.io
    if io is not None and not io.frozen and io.issued:
        warnings.append(
            f"the workload ended at {format_ns(io.end_ns)}, before the bugcheck at {format_ns(out.event_ns)}: "
            "nothing was in flight, so nothing was lost (raise its requests or duration, or bring the bugcheck forward)"
        )
    layers: dict[str, LayerSummary] = {}
    if m.compressor is not None:
        layers[m.compressor.stats.name] = m.compressor.stats.summary()
    layers[DUMP_DRIVER_LAYER] = driver.stats.summary()
    for layer in active:
        layers[layer.name] = layer.stats.summary()
    layers["miniport"] = port.stats.summary()
    layers["device"] = device.stats.summary()
    h = driver.write_latency
    images = ("crashdmp.sys", *(f"{prefix}{n}" for n in s.registry.dump_filters), f"{prefix}storport.sys", port.image)
    return RunResult(
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
        write_latency=LayerSummary.of(h),
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
        request_mode_reasons=(("data mode",) if m.data is not None else ()) + _request_mode_reasons(batch, plan_faults, driver),
        header_written=driver.header_complete(),
        write_retries=driver.retries,
        io=ran.io,
        lost=_lost(ran.io) if ran.io is not None else (),
        data=_data(m, driver.lost_in_cache),
        hibernation=_hibernation(m, driver),
        resume=ran.resume,
        replay=_replay(m),
    )


def _replay(m: Machine) -> dict[str, Any]:
    """What ``stacksim replay`` needs to run the same again."""
    s, catalog = m.scenario, m.catalog
    return {
        "scenario": s.source_data,
        "seed": s.scenario.seed,
        "batch": m.batch,
        "traced": m.trace is not None,
        "plugins": [
            {"service_name": name, "origin": catalog.origin(name), "sha256": catalog.digest(name)}
            for name in s.registry.dump_filters
            if catalog.origin(name) != "built-in"
        ],
    }


def _io_result(m: Machine, io: IoResult) -> RunResult:
    """The result of an ``io`` run: the workload's I/O, no dump (the dump fields are empty)."""
    s = m.scenario
    w = s.workload
    done = f"{io.completed:,} of {io.issued:,} requests completed" if io.completed < io.issued else f"{io.completed:,} requests"
    message = (
        f"workload done: {done} ({w.pattern}, {w.block_size:,} bytes each, queue depth {w.queue_depth}) in {format_ns(io.end_ns)}"
    )
    if io.capped:
        message += f"; it stopped at the cap of {io.issued:,} requests, before its duration"
    return RunResult(
        scenario=s.scenario.name,
        event=s.scenario.event,
        dump_type="none",
        dump_kind="none",
        seed=s.scenario.seed,
        status="ok",
        message=message,
        dump_time_ns=0,
        bytes_written=0,
        write_requests=0,
        dump_bytes=0,
        max_pages_per_write=0,  # no dump: the dump port never ran
        parts={},
        layers={},
        write_latency=LayerSummary(0, 0, 0, 0, 0),
        filters=(),
        images=(),
        target="none",
        warnings=tuple(_scenario_warnings(m)),
        io=io,
        replay=_replay(m),
    )


def _lost(io: IoResult) -> tuple[LostRequest, ...]:
    """
    Every request the freeze caught, with its layer and its fate.

    A request still on its way down never reached the device; one the device held (waiting for
    a channel or being served) is dropped by the dump port's controller reset; one on its way
    up was done on the device but its completion never reached the application (interrupts
    are off after the bugcheck).
    """
    out = []
    for f in sorted(io.frozen, key=lambda f: f.index):
        layer, _, path = f.stage.partition(":")
        req = f.item
        assert isinstance(req, IoRequest)  # the normal stack's network carries IoRequests
        if layer == "device":
            fate = "held by the device: dropped by the dump port's controller reset"
        elif path == "queue" or path == "submit":
            fate = "never reached the device"
        else:
            fate = "done on the device; its completion never reached the application"
        out.append(LostRequest(f.index + 1, layer, f.stage, f.state, req.op, req.offset, req.length, fate))
    return tuple(out)


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
        event = "bugcheck" if s.scenario.crashes else "start of hibernation"
        out.append(f"fault power_loss at {format_ns(at)} never fired: the run ended {format_ns(dump_time)} after the {event}")
    return out


def _request_mode_reasons(batch: bool, faults: FaultPlan, driver: DumpDriver) -> tuple[str, ...]:
    """Why writes went one message per write (empty when every run that could be batched was; a trace is named by the driver)."""
    if not driver.outcome.write_requests:
        return ()
    reasons = []
    if not batch:
        reasons.append("request mode was asked for (--no-batch)")
    if faults.power_loss_after_ns is not None:
        reasons.append("a power_loss fault is planned (the instant power fails decides which write is torn)")
    if driver.compressor is not None:
        reasons.append("the hiberfile is compressed (the compressor paces each write)")
    return tuple(reasons) if reasons else tuple(driver.unbatched)
