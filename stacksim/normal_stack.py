"""
The normal (runtime) storage stack: the path a crash dump bypasses, with many requests in flight.

At run time a write travels ``application → ntfs.sys → volsnap.sys → fvevol.sys → volmgr.sys →
partmgr.sys → disk.sys → storport.sys → miniport → device`` and its completion comes back up
through an interrupt, a DPC and every layer's completion routine. The dump path replaces all of
it with crashdmp, the dump filters and a polled dump port at queue depth 1 (fact sheet §3.6,
[DOC S6c, S6d, S13]; ``docs/explanation/normal-stack.md``).

Each layer is a stage of :mod:`stacksim._engine.pipeline` named after its driver: one stage for
its dispatch work on the way down (``ntfs.sys:submit``) and one for its completion routine on the
way up (``ntfs.sys:complete``); storport's queue (``storport.sys:queue``, at most
``storport_queue_depth`` commands outstanding at the device) and the device (``device``, serving
as many commands at once as its internal parallelism) form the engine's port; the interrupt
stage (``storport.sys:interrupt``) charges the miniport's ISR and storport's DPC to one CPU.

What is modelled, every cost an ASSUMPTION (no per-layer figure is published; the defaults are
split so that the whole-stack figures come out, ``docs/explanation/normal-stack.md``):

* every layer is a single FIFO server with a fixed cost per request on each path (ASSUMPTION:
  the real stack runs on the issuing threads' CPUs in parallel; a single server per layer caps
  a layer at 1 / cost requests per second -- ≥ 1 M/s for most layers, but about 90k IOPS for
  ``fvevol.sys`` encrypting 4 KiB writes, where it becomes the bottleneck: one crypto worker);
* ``fvevol.sys`` with ``bitlocker = true`` encrypts a write at submission and decrypts a read
  at completion with the same cipher model as the ``dumpfve.sys`` dump filter (``per_call +
  per_byte × length``, :mod:`stacksim.filters.dumpfve`), plus ``fvevol_crypto_dispatch``, the
  hand-off to its crypto worker (calibrated to the BitLocker figures);
* the device's commands share the host link: command starts are spaced by the link time of the
  previous one (:meth:`~stacksim.devices.DeviceBase.link_ns`), so parallel commands never move
  data faster than the interface; at queue depth 1 this never delays anything;
* one CPU takes the interrupts (ASSUMPTION: spreading them over several CPUs is not modelled).
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Final

from stacksim._engine import run
from stacksim._engine.pipeline import Frozen, NetworkResult, Port, Stage, run_network
from stacksim.devices import CachedDevice, DeviceBase, build_device, runtime_preset
from stacksim.metrics import LATENCY_KEYS, LatencyHistogram, LayerSummary
from stacksim.scenario import MAX_IO_REQUESTS, NormalStackSection, Scenario, ScenarioError, WorkloadSection
from stacksim.trace import HeldRecord
from stacksim.units import bytes_time_ns

__all__ = [
    "LAYERS",
    "IoRequest",
    "IoResult",
    "LayerIo",
    "NormalStack",
    "TraceRecord",
    "build_runtime_device",
    "build_stack",
    "run_io",
    "run_workload",
    "trace_records",
    "workload",
    "workload_ops",
]

LAYERS: Final = (
    "application",
    "ntfs.sys",
    "volsnap.sys",
    "fvevol.sys",
    "volmgr.sys",
    "partmgr.sys",
    "disk.sys",
    "storport.sys",
)
"""The layers above the miniport, top down (the miniport is named by ``[dump_port] driver``)."""

MAX_TRACED_REQUESTS: Final = 100_000
"""Most requests a traced workload may issue: a trace's records are sorted after the run, so they are held in
memory (about 7 KB per request; ASSUMPTION: a guard until traces stream, 100,000 requests ≈ 0.7 GB)."""

READ: Final = "read"
WRITE: Final = "write"

KERNEL: Final = "ntoskrnl.exe"
"""The layer of the trace's ``io_freeze`` record: the kernel's bugcheck stops the normal stack."""


@dataclass(frozen=True, slots=True)
class IoRequest:
    """One application request: ``read`` or ``write`` of *length* bytes at the absolute disk byte *offset*."""

    op: str
    offset: int
    length: int


TraceRecord = tuple[int, str, str, int, int, int, int]
"""``(t_ns, stage, event, dur_ns, request, offset, length)``; ``event`` is ``queue`` (waiting) or ``service``."""


def workload(w: WorkloadSection, seed: int) -> Iterator[IoRequest]:
    """
    The requests of ``[workload]`` in issue order; randomness only from ``random.Random(seed)``.

    A ``duration`` without ``requests`` still issues at most :data:`~stacksim.scenario.MAX_IO_REQUESTS`
    (the result says when that cap, not the duration, ended the run). Offsets are whole blocks
    inside the region: sequential writes walk it from the start and
    wrap around; random ones draw a block uniformly; ``mixed`` draws the operation first
    (a read with probability ``read_fraction``), then the block.
    """
    rng = random.Random(seed)
    blocks = w.region_size // w.block_size
    base, size = w.region_offset, w.block_size
    limit = w.request_limit if w.request_limit is not None else MAX_IO_REQUESTS
    i = 0
    while i < limit:
        if w.pattern == "sequential-write":
            yield IoRequest(WRITE, base + (i % blocks) * size, size)
        elif w.pattern == "random-write":
            yield IoRequest(WRITE, base + rng.randrange(blocks) * size, size)
        elif w.pattern == "random-read":
            yield IoRequest(READ, base + rng.randrange(blocks) * size, size)
        else:
            op = READ if Fraction(rng.random()) < w.read_fraction else WRITE
            yield IoRequest(op, base + rng.randrange(blocks) * size, size)
        i += 1


def workload_ops(w: WorkloadSection) -> tuple[str, ...]:
    """The operations ``[workload]`` issues: ``("read",)``, ``("write",)`` or both (``mixed`` with a share of each)."""
    if w.pattern == "random-read":
        return (READ,)
    if w.pattern == "mixed":
        return tuple(op for op, share in ((READ, w.read_fraction), (WRITE, 1 - w.read_fraction)) if share)
    return (WRITE,)


class _DeviceService:
    """
    The miniport's hand-off to the device: the model's service time, command starts spaced by the host link.

    With :attr:`freeze_at` set (the bugcheck), a command that would not complete before it is
    one the dump port's reset drops: the device is put back to its state before the command, so
    a dropped command charges no cache fill, head movement or throttle budget to the dump that
    follows (ASSUMPTION: the reset aborts it as if it had never been sent;
    ``docs/explanation/normal-stack.md``).
    """

    __slots__ = ("device", "freeze_at", "next_start")

    def __init__(self, device: DeviceBase) -> None:
        self.device = device
        self.next_start = 0
        self.freeze_at: int | None = None

    def __call__(self, req: IoRequest, start: int) -> int:
        begin = start if start > self.next_start else self.next_start
        device = self.device
        self.next_start = begin + device.link_ns(req.length, req.op)
        freeze = self.freeze_at
        saved = device.save_state() if freeze is not None else ()
        if req.op == READ:
            dur = begin - start + device.read_ns(req.offset, req.length, begin)
        else:
            dur = begin - start + device.write_ns(req.offset, req.length, begin)
        if freeze is not None and start + dur >= freeze:  # a tie goes to the bugcheck, as in the engine
            device.restore_state(saved)
        return dur


class NormalStack:
    """
    The runtime stack's stages for one run, built from ``[normal_stack]``, the miniport's name and a device.

    Args:
        cfg: the ``[normal_stack]`` section.
        miniport: the miniport's driver file (``stornvme.sys``).
        device: the device model (with its runtime read parameters set).
        parallelism: commands the device serves at once.
        ops: the operations the workload issues (for the guaranteed minimum costs).
        block_size: the workload's request size.
    """

    def __init__(
        self, cfg: NormalStackSection, miniport: str, device: DeviceBase, parallelism: int, ops: tuple[str, ...], block_size: int
    ) -> None:
        self.cfg = cfg
        self.miniport = miniport
        self.device = device
        c = cfg
        crypt = c.fvevol_crypto_dispatch + c.cipher_per_call
        per_byte = c.cipher_per_byte

        submit_fve: Callable[[IoRequest, int], int] | int = c.fvevol_submit
        complete_fve: Callable[[IoRequest, int], int] | int = c.fvevol_complete
        if c.bitlocker:  # encrypt writes on the way down, decrypt reads on the way up

            def submit_fve(req: IoRequest, _start: int) -> int:
                return c.fvevol_submit + (crypt + bytes_time_ns(req.length, per_byte) if req.op == WRITE else 0)

            def complete_fve(req: IoRequest, _start: int) -> int:
                return c.fvevol_complete + (crypt + bytes_time_ns(req.length, per_byte) if req.op == READ else 0)

        sample = [IoRequest(op, 0, block_size) for op in ops]

        def stage(name: str, service: Callable[[IoRequest, int], int] | int) -> Stage[IoRequest]:
            if isinstance(service, int):
                return Stage(name, service)
            return Stage(name, service, min(service(r, 0) for r in sample))

        self.submit = [
            stage("application:submit", c.application_submit),
            stage("ntfs.sys:submit", c.ntfs_submit),
            stage("volsnap.sys:submit", c.volsnap_submit),
            stage("fvevol.sys:submit", submit_fve),
            stage("volmgr.sys:submit", c.volmgr_submit),
            stage("partmgr.sys:submit", c.partmgr_submit),
            stage("disk.sys:submit", c.disk_submit),
            stage("storport.sys:submit", c.storport_submit),
            stage(f"{miniport}:submit", c.miniport_submit),
        ]
        self.device_service = _DeviceService(device)
        self.port = Port[IoRequest](
            "storport.sys:queue",
            "device",
            c.storport_queue_depth,
            parallelism,
            self.device_service,
            min(device.min_service_ns(block_size, op) for op in ops),
        )
        self.complete = [
            stage("storport.sys:interrupt", c.isr + c.dpc),
            stage("storport.sys:complete", c.storport_complete),
            stage("disk.sys:complete", c.disk_complete),
            stage("partmgr.sys:complete", c.partmgr_complete),
            stage("volmgr.sys:complete", c.volmgr_complete),
            stage("fvevol.sys:complete", complete_fve),
            stage("volsnap.sys:complete", c.volsnap_complete),
            stage("ntfs.sys:complete", c.ntfs_complete),
            stage("application:complete", c.application_complete),
        ]

    def worst_request_ns(self, ops: tuple[str, ...], block_size: int) -> int:
        """
        An upper bound on the work one request of *block_size* bytes brings: every stage's cost, the link and the device's worst.

        The network is work-conserving (while a request is anywhere, some stage or the device is
        busy with one), so *n* requests take at most *n* times this -- the bound validation uses
        to keep every reported time below 2^63 ns.
        """
        sample = [IoRequest(op, 0, block_size) for op in ops]
        stages = 0
        for st in self.submit + self.complete:
            svc = st.service
            stages += svc if isinstance(svc, int) else max(svc(r, 0) for r in sample)
        d = self.device
        worst = {READ: d.worst_read_ns, WRITE: d.worst_write_ns}
        device = max(d.link_ns(block_size, op) + worst[op](block_size, block_size) for op in ops)
        return stages + device

    def stage_names(self) -> list[str]:
        """Every stage, in the order a request meets them (the trace's layer rank)."""
        return [s.name for s in self.submit] + [self.port.name, self.port.device] + [s.name for s in self.complete]

    def layer_io(self, end_ns: int) -> list[LayerIo]:
        """Per-stage statistics, in the order a request meets them."""
        out = [LayerIo.of_stage(s, end_ns) for s in self.submit]
        p = self.port
        out.append(
            LayerIo(p.name, p.waits.count, 0, p.waits.total, p.queue_residence_ns, p.max_queue, end_ns, None, p.queue_frozen_ns)
        )
        d = p.device_stats
        out.append(
            LayerIo(
                p.device,
                d.calls,
                d.busy_ns,
                p.device_residence_ns - d.busy_ns,
                p.device_residence_ns,
                p.max_outstanding,
                end_ns,
                d.summary(),
                p.device_frozen_ns,
            )
        )
        out += [LayerIo.of_stage(s, end_ns) for s in self.complete]
        return out


@dataclass(frozen=True, slots=True)
class LayerIo:
    """
    One stage's statistics over an I/O run (ns).

    ``residence_ns`` is Σ (departure − arrival) over the requests that passed: with no freeze it
    is the integral of the requests in the stage over time, so ``mean_in_flight = residence_ns /
    end_ns`` and, by Little's law, that equals ``throughput × mean latency`` = ``(calls / end_ns)
    × (residence_ns / calls)`` -- exact as fractions. ``frozen_residence_ns`` is the time the
    requests a bugcheck caught spent in the stage until it: it counts in ``mean_in_flight`` (they
    were in the stage) but not in the mean time per request (they never left).
    """

    name: str
    calls: int
    busy_ns: int
    wait_ns: int
    residence_ns: int
    max_in_flight: int
    end_ns: int
    service: LayerSummary | None
    frozen_residence_ns: int = 0

    @classmethod
    def of_stage(cls, stage: Stage[IoRequest], end_ns: int) -> LayerIo:
        """The statistics a pipeline stage kept."""
        st = stage.stats
        return cls(
            stage.name,
            st.calls,
            st.busy_ns,
            stage.wait_ns,
            stage.residence_ns,
            stage.max_in_flight,
            end_ns,
            st.summary(),
            stage.frozen_residence_ns,
        )

    @property
    def mean_in_flight(self) -> Fraction:
        """Time-averaged requests in the stage over the run."""
        return Fraction(self.residence_ns + self.frozen_residence_ns, self.end_ns) if self.end_ns else Fraction(0)

    def as_dict(self) -> dict[str, object]:
        """The JSON object for this stage."""
        return {
            "name": self.name,
            "calls": self.calls,
            "busy_ns": self.busy_ns,
            "wait_ns": self.wait_ns,
            "residence_ns": self.residence_ns,
            "frozen_residence_ns": self.frozen_residence_ns,
            "mean_in_flight": round(float(self.mean_in_flight), 6),
            "max_in_flight": self.max_in_flight,
            "service": self.service.as_dict() if self.service is not None else None,
        }


@dataclass(slots=True)
class IoResult:
    """What an ``event = "io"`` run did (times in ns, sizes in bytes)."""

    issued: int
    completed: int
    end_ns: int
    bytes_done: int
    latency: LatencyHistogram
    layers: list[LayerIo]
    storport_max_queue: int
    device_max_outstanding: int
    frozen: list[Frozen]
    device_parallelism: int
    storport_queue_depth: int
    queue_depth: int = 1
    """The workload's queue depth: requests the application keeps outstanding."""
    capped: bool = False
    """A ``duration`` workload stopped issuing at :data:`~stacksim.scenario.MAX_IO_REQUESTS`, before its duration."""
    trace: list[TraceRecord] = field(default_factory=list)

    @property
    def iops(self) -> Fraction:
        """Completed requests per second of simulated time."""
        return Fraction(self.completed * 10**9, self.end_ns) if self.end_ns else Fraction(0)

    @property
    def throughput(self) -> Fraction:
        """Completed bytes per second of simulated time."""
        return Fraction(self.bytes_done * 10**9, self.end_ns) if self.end_ns else Fraction(0)

    def layer_order(self) -> list[str]:
        """The Windows layers, in the order a request meets them (a stage ``ntfs.sys:submit`` is layer ``ntfs.sys``)."""
        return list(dict.fromkeys(x.name.partition(":")[0] for x in self.layers))

    def layer(self, name: str) -> LayerIo:
        """The statistics of the stage called *name*."""
        return next(x for x in self.layers if x.name == name)

    def as_dict(self) -> dict[str, object]:
        """The result as JSON-ready values."""
        latency = LayerSummary.of(self.latency)
        return {
            "issued": self.issued,
            "completed": self.completed,
            "end_ns": self.end_ns,
            "bytes": self.bytes_done,
            "iops": round(float(self.iops), 3),
            "throughput_bytes_per_s": round(float(self.throughput), 3),
            # issue -> completion: a layer's latency keys, without its calls and busy time
            "latency": {k: getattr(latency, k) for k in LATENCY_KEYS},
            "queue_depth": self.queue_depth,
            "stopped_at_request_cap": self.capped,
            "storport_queue_depth": self.storport_queue_depth,
            "storport_max_queue": self.storport_max_queue,
            "device_parallelism": self.device_parallelism,
            "device_max_outstanding": self.device_max_outstanding,
            "layers": [x.as_dict() for x in self.layers],
            "frozen": [{"request": f.index + 1, "stage": f.stage, "state": f.state} for f in self.frozen],
        }


def build_runtime_device(s: Scenario) -> tuple[DeviceBase, int]:
    """The ``[disk]`` device with its runtime read parameters set, and its internal parallelism."""
    kind, model, params, size = s.disk.resolved()
    device = build_device(model, params, size, kind)
    rt = runtime_preset(s.disk.preset, model)
    n = s.normal_stack
    if isinstance(device, CachedDevice):
        if rt.read_latency is not None:
            device.read_latency_ns = rt.read_latency
        if rt.read_bandwidth is not None:
            device.read_bandwidth = rt.read_bandwidth
        if n.device_read_latency is not None:
            device.read_latency_ns = n.device_read_latency
        if n.device_read_bandwidth is not None:
            device.read_bandwidth = n.device_read_bandwidth
    return device, n.device_parallelism or rt.parallelism


def run_io(s: Scenario, *, freeze_at: int | None = None, trace: bool = False) -> IoResult:
    """
    Run ``[workload]`` through the normal stack on the ``[disk]`` device; return the result.

    *freeze_at* stops the stack at that time (the bugcheck): the result's ``frozen`` lists every
    request in flight with the stage it was in. With *trace*, the result carries every
    completed service as :data:`TraceRecord` tuples sorted by ``(t, stage rank, request)``
    (stages run ahead of each other in wall-clock time, so the records are merged after the run).

    Raises:
        ScenarioError: the scenario has no ``[workload]`` and the default region does not fit its disk.
    """
    device, parallelism = build_runtime_device(s)
    stack = build_stack(s, device, parallelism)
    return run(lambda: run_workload(s, stack, freeze_at=freeze_at, trace=trace))


def build_stack(s: Scenario, device: DeviceBase, parallelism: int) -> NormalStack:
    """
    The normal stack of scenario *s* over *device* (see :func:`build_runtime_device`).

    Raises:
        ScenarioError: the scenario has no ``[workload]`` and the default region does not fit its disk.
    """
    w = s.workload
    if w.region_offset + w.region_size > device.size:  # validated when [workload] is given; its defaults are not
        raise ScenarioError("", [("[workload] region_size", f"the default region ends past the {device.size:,}-byte disk")])
    miniport = f"{s.dump_port.resolved().driver}.sys"
    return NormalStack(s.normal_stack, miniport, device, parallelism, workload_ops(w), w.block_size)


async def run_workload(s: Scenario, stack: NormalStack, *, freeze_at: int | None = None, trace: bool = False) -> IoResult:
    """Run ``[workload]`` through *stack* in the caller's trio run (any clock: the network never sleeps); see :func:`run_io`."""
    w = s.workload
    records: list[TraceRecord] = []
    hook = None
    if trace:

        def hook(stage: str, index: int, arrival: int, start: int, end: int, req: IoRequest) -> None:
            if index >= MAX_TRACED_REQUESTS:
                raise ScenarioError(
                    f"scenario {s.scenario.name}",
                    [
                        (
                            "[workload] requests",
                            f"a traced workload may issue at most {MAX_TRACED_REQUESTS:,} requests (its records are held in "
                            "memory to be sorted, about 7 KB each); set requests lower or run without --trace",
                        )
                    ],
                )
            if start > arrival:
                records.append((arrival, stage, "queue", start - arrival, index, req.offset, req.length))
            if end > start or stage != stack.port.name:
                records.append((start, stage, "service", end - start, index, req.offset, req.length))

    stack.device_service.freeze_at = freeze_at
    result: NetworkResult = await run_network(
        stack.submit,
        stack.port,
        stack.complete,
        workload(w, s.scenario.seed),
        window=w.queue_depth,
        duration_ns=w.duration,
        freeze_at=freeze_at,
        on_service=hook,
    )
    rank = {name: k for k, name in enumerate(stack.stage_names())}
    records.sort(key=lambda r: (r[0], rank[r[1]], r[4]))
    return IoResult(
        issued=result.issued,
        completed=result.completed,
        end_ns=result.end_ns,
        bytes_done=result.completed * w.block_size,
        latency=result.latency,
        layers=stack.layer_io(result.end_ns),
        storport_max_queue=stack.port.max_queue,
        device_max_outstanding=stack.port.max_outstanding,
        frozen=result.frozen,
        device_parallelism=stack.port.channels,
        storport_queue_depth=s.normal_stack.storport_queue_depth,
        queue_depth=w.queue_depth,
        capped=w.requests is None and result.issued >= MAX_IO_REQUESTS,
        trace=records,
    )


def trace_records(s: Scenario, stack: NormalStack, io: IoResult, *, freeze_at: int | None = None) -> list[HeldRecord]:
    """
    The normal stack's trace records (``docs/reference/trace-format.md``), sorted by time, without seq numbers.

    First an ``io_context`` at 0 (the workload and the stack the checker needs), then each
    completed service of *io*'s trace (*io* ran with ``trace=True``): a layer's dispatch work
    on the way down is ``io_submit``, its completion routine on the way up ``io_complete``, the
    interrupt + DPC ``io_interrupt`` (storport.sys), the device's service ``io_device`` (with
    ``{"op": "read"|"write"}``), a wait for a busy layer or device channel ``io_wait``, and a
    wait in storport's queue for a slot at the device ``io_queue``. Requests are numbered from 1
    in issue order (``io.frozen``'s index + 1). With *freeze_at* (the bugcheck), an
    ``io_freeze`` at that instant ends them: how many requests were issued, completed and lost,
    and per layer (top down) where the lost ones were.
    """
    w = s.workload
    layers = [s_.name.partition(":")[0] for s_ in stack.submit]
    kinds = workload_ops(w)
    stages = (*stack.submit, *stack.complete)  # every stage but the device's: each costs the same per request of one op
    costs = {
        op: [x.service if isinstance(x.service, int) else x.service(IoRequest(op, 0, w.block_size), 0) for x in stages]
        for op in kinds
    }
    out: list[HeldRecord] = [
        (
            0,
            LAYERS[0],
            "io_context",
            0,
            None,
            None,
            None,
            None,
            None,
            {
                "event": s.scenario.event,
                "pattern": w.pattern,
                "ops": list(kinds),
                "layers": layers,
                "block_size": w.block_size,
                "region_offset": w.region_offset,
                "region_size": w.region_size,
                "sector_size": 512,  # [workload] offsets and sizes are whole 512-byte sectors
                "disk_size": stack.device.size,
                "queue_depth": w.queue_depth,
                "storport_queue_depth": stack.cfg.storport_queue_depth,
                "device_parallelism": stack.port.channels,
                "service_ns": costs,
                "issued": io.issued,
                "completed": io.completed,
                "lost": len(io.frozen),
                "bugcheck_ns": freeze_at,
            },
        )
    ]
    ops = [r.op for r in itertools.islice(workload(w, s.scenario.seed), io.issued)]
    names: dict[tuple[str, str], tuple[str, str]] = {}
    for name in stack.stage_names():
        layer, _, path = name.partition(":")
        if name == stack.port.name:
            names[name, "queue"] = (layer, "io_queue")
        else:
            names[name, "queue"] = (layer, "io_wait")
            names[name, "service"] = (
                layer,
                {"submit": "io_submit", "complete": "io_complete", "interrupt": "io_interrupt"}.get(path, "io_device"),
            )
    device = stack.port.device
    for t, stage, kind, dur, index, offset, length in io.trace:
        layer, event = names[stage, kind]
        detail: dict[str, Any] | None = {"op": ops[index]} if stage == device and kind == "service" else None
        out.append((t, layer, event, dur, index + 1, offset, length, None, None, detail))
    if freeze_at is not None:
        by_layer = dict.fromkeys(io.layer_order(), 0)
        for f in io.frozen:
            by_layer[f.stage.partition(":")[0]] += 1
        lost = {k: v for k, v in by_layer.items() if v}
        detail = {"issued": io.issued, "completed": io.completed, "lost": len(io.frozen), "by_layer": lost}
        out.append((freeze_at, KERNEL, "io_freeze", 0, None, None, None, None, None, detail))
    return out
