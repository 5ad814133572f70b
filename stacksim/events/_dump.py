"""
The dump path both events share: crashdmp, each filter and the dump port as trio tasks.

The tasks are joined by trio memory channels, top to bottom in registry order, with one
completion channel back to crashdmp::

    crashdmp ─► filter 1 ─► … ─► filter N ─► dump port + miniport ─► (device model)
        ▲                                              │
        └──────────────────── completion ◄─────────────┘

crashdmp (:class:`~stacksim.dump_driver.DumpDriver`) runs the event; the engine supervises all
tasks (its watchdog turns a task that never returns into a ``hung`` or ``deadlock`` outcome).
"""

from __future__ import annotations

import math

import trio

from stacksim._engine import bound
from stacksim.dump_driver import LAYER, DumpDriver
from stacksim.machine import Machine
from stacksim.requests import Op

__all__ = ["write_dump"]


async def write_dump(m: Machine) -> DumpDriver:
    """Run crashdmp over the machine's active stack until the dump is written (or fails); return it."""
    s, active, faults = m.scenario, m.active, m.faults
    power_loss = faults.power_loss_after_ns
    channels = [trio.open_memory_channel[Op](math.inf) for _ in range(len(active) + 1)]
    complete_send, complete_recv = trio.open_memory_channel[Op](math.inf)
    driver = DumpDriver(
        m.engine,
        event="hibernate" if s.scenario.hibernates else "crash",
        event_at_ns=s.scenario.event_at,
        crash_dump_enabled=s.registry.crash_dump_enabled,
        plan=m.plan,
        layout=m.layout,
        max_pages_per_write=m.max_pages_per_write,
        crash_filters=m.crash_filters,
        hiber_filters=m.hiber_filters,
        down=channels[0][0],
        complete=complete_recv,
        integrity_check_ns=s.dump_driver.integrity_check,
        too_small=m.too_small,
        full_bytes=m.full_plan.total_bytes,
        per_request_ns=s.dump_driver.per_request,
        batch=m.batch and power_loss is None,
        write_retries=s.dump_driver.write_retries,
        power_loss_after_ns=power_loss,
        device_faults=faults.device,
        progress=m.progress,
        # several writes in flight only where nothing can fail mid-way (engine.md: pipelined request mode)
        pipeline=m.pipeline and power_loss is None and not faults.device,
        unbatchable=m.port.may_time_out,
        disk_size=m.disk_size,
        port_timeout_ns=s.dump_port.timeout,
        contents=m.contents,
        compressor=m.compressor,
        traced=m.trace is not None,
    )
    tasks = [bound(layer.run, channels[i][1], channels[i + 1][0], complete_send) for i, layer in enumerate(active)]
    tasks.append(bound(m.port.run, channels[-1][1], complete_send))
    m.engine.describe_state = lambda: f"{len(active)} filter tasks and the miniport are waiting for work"
    engine = m.engine
    await engine.supervise(driver.run, *tasks)
    if driver.outcome.status == "power_lost" and driver.power_loss_at is not None:
        driver.lost_in_cache = m.port.power_lost(driver.power_loss_at)
    if engine.failure is not None:  # the watchdog stopped the run: crashdmp never returned
        out = driver.outcome
        out.status = "hung" if engine.failure.layer is not None else "deadlock"
        out.message = str(engine.failure)
        out.done_ns = engine.now_ns + engine.failure.waited_ns
        # end the trace where the watchdog ended the run (or the power failed)
        end = out.done_ns if engine.trace_until_ns is None else min(out.done_ns, engine.trace_until_ns)
        engine.phase(end, LAYER, "dump_failed", 0, dump_type=m.dump_type.label)
    return driver
