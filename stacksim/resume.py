"""
Resume from hibernation: the hiberfile read back through the hibernation stack, and Dump_Unload.

What Windows does (fact sheet §3.2, §6) and what this module does in the same order:

1. **Power on.** The boot manager starts the resume loader (winresume) [DOC S45], which reads the
   hiberfile's header; a header without a valid signature means the hibernation never completed
   (its header is written last: ASSUMPTION, :mod:`stacksim.memory`), and Windows boots afresh.
   stacksim starts resume ``[hibernation] resume_after`` after the hibernation ended (ASSUMPTION:
   power-off, firmware and boot manager together).
2. **Reads.** The image is read through the ``hiber_`` port in resume mode (``DUMP_MODE_RESUME``
   [DOC S12]), one request at a time, polled, in the same pieces it was written in (the
   hiberfile's runs, ``MaxPagesPerWrite``). Windows splits the image into a boot section the
   loader reads with firmware services and a kernel section the resumed kernel reads through the
   dump stack [RE S42, INF]; stacksim reads all of it through the dump stack (ASSUMPTION: the
   boot section's reads are not modelled apart).
3. **Dump_Read.** After each read, every filter of the hibernation stack that supports reads
   (major version 2, the read flag, a callback [DOC S1, S9]) gets ``dump_read``, in the reverse of
   the write order: the filter nearest the disk undoes its change first (ASSUMPTION: the natural
   order; not documented [INF]). They are the instances loaded when hibernation started, with
   ``DumpType`` hibernation: the hibernation stack is part of the memory the image restores. A
   filter that changed the bytes on the way out (:meth:`~stacksim.filters.DumpFilter.changes_data`)
   but cannot read leaves the image undecryptable: resume fails, naming it.
4. **Decompression** overlaps the reads: Windows 8's multi-phase resume splits "reading from the
   hiberfile and decompressing the contents" over the cores [DOC-blog S43]. stacksim decompresses
   each body read as it arrives, one read after another, at ``[hibernation] decompress_rate`` bytes
   of memory per second (ASSUMPTION, default 400 MB/s: zlib inflate on one core of the project
   machine, 370-490 MB/s by class), while the next read goes out; resume ends when the last read
   is decompressed.
5. **Dump_Unload** on every loaded filter of the hibernation stack: "after the system resumes"
   [DOC S10].

The layers are the same trio tasks as for the writes, chained the other way: the loader sends
each read to the port's task, then up through the filters' tasks from the one nearest the disk.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, BinaryIO, Final

import trio

from stacksim._engine import bound
from stacksim.compressor import share_ns
from stacksim.metrics import LayerStats, LayerSummary
from stacksim.requests import DumpRequest, Mdl, Op, OpKind

if TYPE_CHECKING:
    from stacksim.dump_driver import DumpDriver
    from stacksim.machine import Machine

__all__ = ["DECOMPRESSOR", "LOADER", "ResumeResult", "resume"]

LOADER: Final = "winresume"
"""The resume loader's name in results."""
DECOMPRESSOR: Final = "decompressor"
"""The decompression stage's name in results."""


@dataclass(slots=True)
class ResumeResult:
    """How resume went (``docs/reference/result-format.md``, ``resume``)."""

    status: str
    """``resumed``, ``refused`` (no valid header), ``undecryptable``, ``failed`` or ``not_attempted``."""
    message: str
    start_ns: int = 0
    time_ns: int = 0
    reads: int = 0
    bytes_read: int = 0
    layers: dict[str, LayerSummary] = field(default_factory=dict)
    read_by: tuple[str, ...] = ()
    """The filters whose dump_read ran, in call order."""
    undecryptable_by: tuple[str, ...] = ()
    memory_matches: bool | None = None
    """Data mode: whether every restored page equals the original; ``None`` in timing mode (no bytes)."""
    mismatched_pages: int | None = None
    restored: BinaryIO | None = None
    """Data mode: the hiberfile as read back, after every ``dump_read`` (a temporary file)."""

    def as_dict(self) -> dict[str, Any]:
        """The result JSON's ``resume`` object."""
        return {
            "status": self.status,
            "message": self.message,
            "start_ns": self.start_ns,
            "time_ns": self.time_ns,
            "reads": self.reads,
            "bytes_read": self.bytes_read,
            "layers": {name: s.as_dict() for name, s in self.layers.items()},
            "read_by": list(self.read_by),
            "undecryptable_by": list(self.undecryptable_by),
            "memory_matches": self.memory_matches,
            "mismatched_pages": self.mismatched_pages,
        }


async def resume(m: Machine, driver: DumpDriver) -> ResumeResult:
    """Resume from the hiberfile *driver* wrote on machine *m* (see the module docstring)."""
    out = driver.outcome
    if out.status == "power_lost" and not driver.header_complete():
        return ResumeResult(
            "refused",
            "the hiberfile header, written last, is missing: the hibernation did not complete, so Windows boots afresh "
            "(the image is not resumed)",
        )
    if out.status not in ("ok", "power_lost"):
        return ResumeResult("not_attempted", f"the hibernation ended as {out.status}: there is no image to resume from")
    loaded = [layer for layer in m.hiber_filters if layer.loaded]
    blocked = tuple(x.name for x in loaded if x.filter is not None and x.filter.changes_data() and not x.init.supports_read)
    engine = m.engine
    start = out.done_ns + m.scenario.hibernation.resume_after
    engine.advance_to(start)
    engine.trace_until_ns = None  # the power is back (a power loss ended the hibernation, not this boot)
    port, device = m.port, m.device
    holders: list[Any] = [port, device, *loaded]  # each keeps its hibernation statistics in .stats
    saved = [(x, x.stats) for x in holders]
    for x, stats in saved:
        x.stats = LayerStats(stats.name)
    loader, decompress = LayerStats(LOADER), LayerStats(DECOMPRESSOR)
    result = ResumeResult("resumed", "", start_ns=start)
    if m.data is not None:
        result.restored = tempfile.TemporaryFile(prefix="stacksim-resume-")  # noqa: SIM115 - _compare closes it
    try:
        await _read_image(m, driver, loaded, loader, decompress, result, header_only=bool(blocked))
    finally:
        layers = {LOADER: loader.summary(), DECOMPRESSOR: decompress.summary()}
        for x, stats in saved:
            layers[x.stats.name] = x.stats.summary()
            x.stats = stats
        result.layers = {name: layers[name] for name in (LOADER, DECOMPRESSOR, *result.read_by, "miniport", "device")}
    result.time_ns = engine.now_ns - start
    if result.status == "resumed" and blocked:
        result.status = "undecryptable"
        names = ", ".join(blocked)
        result.message = (
            f"the image could not be decrypted: {names} changed every write on the way out but has no read support "
            "(DUMP_FILTER_MAJOR_VERSION, the read flag and a Dump_Read callback), so resume cannot call it and the "
            "header it read holds no valid signature; Windows discards the image and boots afresh (the hibernation "
            "stack is not unloaded: it was never restored)"
        )
        result.undecryptable_by = blocked
    if result.restored is not None:
        _compare(m, result, blocked)
    if result.status == "resumed":
        result.message = (
            f"image read back: {result.bytes_read:,} bytes in {result.reads:,} reads, then the hibernation stack unloaded"
        )
    return result


async def _read_image(
    m: Machine,
    driver: DumpDriver,
    loaded: Sequence[Any],
    loader: LayerStats,
    decompress: LayerStats,
    result: ResumeResult,
    *,
    header_only: bool,
) -> None:
    """Reinitialise the port, read the header and the body, decompress, and unload the hibernation stack.

    *header_only*: the header cannot be decrypted, so the loader stops after reading it.
    """
    engine = m.engine
    readers = [layer for layer in reversed(loaded) if layer.init.supports_read]  # nearest the disk first
    result.read_by = tuple(layer.name for layer in readers)
    to_port_send, to_port_recv = trio.open_memory_channel[Op](math.inf)
    from_port_send, from_port_recv = trio.open_memory_channel[Op](math.inf)
    chain = [trio.open_memory_channel[Op](math.inf) for _ in range(len(readers) + 1)]
    plan, layout = m.full_plan, m.layout
    image = plan.hiber
    uncompressed = image.uncompressed_bytes if image is not None and image.compressed else 0
    body_bytes = image.body_bytes if image is not None else 0
    rate = m.scenario.hibernation.decompress_rate
    chunk = driver.max_chunk
    restored = result.restored

    traced = engine.trace is not None
    kind = "hibernation"

    def emit(event: str, dur: int = 0, request: DumpRequest | None = None) -> None:
        layer = DECOMPRESSOR if event == "decompress_wait" else LOADER
        if request is None:
            engine.phase(engine.now_ns, layer, event, dur, dump_type=kind)
        elif traced:
            engine.emit(engine.now_ns, layer, event, dur, request.number, request.offset, request.length, kind)

    async def loader_task() -> None:
        emit("resume")
        await _call(to_port_send, from_port_recv, Op(OpKind.START))  # the port's reset, in resume mode
        number, ready = 0, 0
        for part, file_pos in sorted(plan.placed(), key=lambda placed: placed[1]):  # header first: it says what follows
            pos = file_pos
            for offset, length, count in layout.map_runs(file_pos, part.bytes, chunk):
                for i in range(count):
                    number += 1
                    data = bytearray(length) if m.data is not None else None
                    request = DumpRequest(number, offset + i * length, Mdl(LOADER, length, data), part.name, engine.now_ns)
                    loader.record(0)
                    emit("issue_read", 0, request)
                    op = await _call(to_port_send, from_port_recv, Op(OpKind.READ, request))
                    if op.error is None and readers:
                        failed_before = [layer.errors["dump_read"] for layer in readers]
                        op = await _call(chain[0][0], chain[-1][1], op)
                        for layer, before in zip(readers, failed_before, strict=True):
                            if op.error is None and layer.errors["dump_read"] > before:
                                # ASSUMPTION: what Windows does with a failing Dump_Read is not documented; the
                                # read's bytes cannot be trusted, so resume stops and Windows boots afresh
                                op.error = f"{layer.name}'s dump_read {layer.first_error['dump_read']}"
                    if op.error is not None:
                        result.status, result.message = "failed", f"resume stopped at read #{number}: {op.error}"
                        emit("resume_failed")
                        return
                    emit("read_complete", 0, request)
                    result.reads += 1
                    result.bytes_read += length
                    if restored is not None and data is not None:  # data mode: the bytes as the filters left them
                        os.pwrite(restored.fileno(), data, pos)
                    pos += length
                    if header_only:  # its signature is ciphertext: nothing more is read, nothing unloaded
                        emit("resume_failed")
                        return
                    if part.name == "body" and uncompressed:  # decompressed behind the reads
                        spent = share_ns(length, uncompressed, body_bytes, rate)
                        ready = max(ready, engine.now_ns) + spent
                        decompress.record(spent)
        if ready > engine.now_ns:  # the last reads' decompression, after the reads
            emit("decompress_wait", ready - engine.now_ns)
            engine.now_ns = ready
        for layer in loaded:
            await layer.dump_unload()
        emit("resume_complete")

    tasks = [bound(m.port.run, to_port_recv, from_port_send)]
    tasks += [bound(layer.run, chain[i][1], chain[i + 1][0], chain[-1][0]) for i, layer in enumerate(readers)]
    engine.describe_state = lambda: f"the resume loader, the miniport and {len(readers)} filter task(s) are waiting for work"
    await engine.supervise(loader_task, *tasks)
    if engine.failure is not None:
        result.status, result.message = "failed", f"resume stopped: {engine.failure}"


def _compare(m: Machine, result: ResumeResult, blocked: tuple[str, ...]) -> None:
    """
    Data mode: decompress the image as read back and compare every page with the memory it came from.

    What the resumed kernel would find: the header checked, every set inflated and checked, then
    each restored page against the original (:func:`stacksim.hiberfile.compare_memory`).
    """
    from stacksim.datamode import HiberfileBytes
    from stacksim.hiberfile import HEADER_SIZE, HiberfileError, compare_memory, parse_header, read_sets

    contents, restored = m.contents, result.restored
    assert isinstance(contents, HiberfileBytes)
    assert restored is not None
    expected = contents.summary.pages
    try:
        with restored:
            header = parse_header(os.pread(restored.fileno(), HEADER_SIZE, 0))
            if result.status != "resumed":
                return
            comparison = compare_memory(
                contents.memory, read_sets(restored, header), expected=contents.memory.pfns_of(contents.classes)
            )
    except HiberfileError as exc:
        result.memory_matches, result.mismatched_pages = False, expected
        if not blocked and result.status == "resumed":
            result.status, result.message = "failed", f"the image read back is not a valid hiberfile: {exc}"
        return
    finally:
        result.restored = None
    result.memory_matches = comparison.matches
    result.mismatched_pages = comparison.mismatched_pages + comparison.missing_pages
    if not comparison.matches and result.status == "resumed":
        result.status = "failed"
        result.message = (
            f"the restored memory differs from the original: {comparison.mismatched_pages:,} page(s) differ, "
            f"{comparison.missing_pages:,} missing, {comparison.extra_pages:,} not expected"
        )


async def _call(send: trio.MemorySendChannel[Op], receive: trio.MemoryReceiveChannel[Op], op: Op) -> Op:
    """Send *op* and wait for it to come back (one request at a time: resume is polled, like the dump)."""
    send.send_nowait(op)
    return await receive.receive()
