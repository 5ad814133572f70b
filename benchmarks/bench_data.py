"""
Data-mode benchmark: a complete dump through ``dumpfve.sys`` beside the machine's limit for the same bytes.

The scenario: a complete crash dump (``CrashDumpEnabled = 1``) of 1 GiB of RAM (the realistic
memory map, seed 1), ``DumpFilters = ["dumpfve.sys"]``, the ``nvme-pcie3`` disk preset and the
default dump port (64 KiB writes); then the same with 1 MiB writes (``max_transfer = "1 MiB"`` and
``common_buffer = "512 KiB"``: a write is limited by both, ``stacksim.miniport.max_pages_per_write``).
Rows, side by side in one run, each repeated and interleaved with the others:

* **limit** (a bare loop, no simulation): generate the RAM's page bytes with
  ``PhysicalMemory.read_pages_into`` in 4 MiB windows, run each write-sized piece through one
  ``cryptography`` AES-256 ECB ``update_into`` call into a buffer allocated once (what the cipher
  allows: XTS is this plus the tweak masks), and ``os.pwrite`` it into a sparse file. The bytes the
  machine must generate, encrypt and write: the limit data mode is measured against.
* **data mode**: ``simulate(scenario, data=DataMode(...))`` onto a sparse image, timed around
  ``simulate()`` alone (no process start-up, no scenario parsing): the dump file's bytes (header,
  bitmap, pages), the filter host's checks, ``dumpfve.sys``'s AES-256-XTS, the miniport's
  ``pwrite``, and the leak check that reads the dump back from the image; in pipelined request
  mode, as ``stacksim run --data`` runs it.
* **timing mode, one write at a time**: ``simulate(scenario, batch=False, pipeline=False)``
  without bytes: the simulation's own cost one write at a time.
* **timing mode, request mode**: ``simulate(scenario, batch=False)``: pipelined, as data mode runs.
* **timing mode, batched**: ``simulate(scenario)``: what ``stacksim run`` does without ``--data``.

Then, for each write size, one more run of the limit and of data mode with their steps wrapped in
CPU timers (``time.process_time`` around ``read_pages_into``, the ECB or ``XtsCipher``'s mask window
and ``encrypt_into``, ``pwrite`` / ``DiskImage.write``, the host's snapshot, byte check and copy of
the bytes in flight, the leak check): where the time goes, in µs per write. "The rest" is data
mode's total minus those steps: the simulation (pipelined request mode: the last line gives it
alone, in timing mode), crashdmp's copy into its buffer, and glue. The wrappers add about 1 µs
per call, so that run is a little slower than the table's.

**Warm and cold pages.** This VM hands memory that is freed back to the hypervisor (virtio-balloon
free page reporting) about 2 s after it is freed; the first write into such a page faults it back
in, so a ``pwrite`` into page-cache pages the file never had costs about 150 us per 64 KiB here
instead of about 10-15 us -- at random, depending on what was freed how long before. Measured
apart (256 MiB in 64 KiB ``pwrite`` calls, CPU s): a new file 0.45-0.75 s when the memory had
been free for 2 s or more, 0.05-0.07 s when it had been freed just before, and 0.034 s into the
same file a second time. So the rows are measured twice:

* **warm pages** (the headline): the limit and data mode each write into one file of their own,
  kept for every repetition (``DiskImage`` and ``ftruncate`` set it to the disk's size again,
  which keeps its pages) after one untimed run that brings those pages into the page cache;
* **cold pages**: each run writes into a new file after a :data:`COLD_PAUSE` of 3 s (so the
  memory freed before it has been handed back), deleted after it.

Each ratio compares data mode with the limit of its own set. Every figure is the best of the
repetitions, in wall seconds and in CPU seconds of this process (``time.process_time``, user +
system: ``pwrite``'s copy into the page cache counts); the machine is shared, so CPU time is the
steadier figure and the ratio to the limit is given in both. MB/s is 10^6 bytes per second, each
row over its own bytes (the dump file is the RAM plus 12 KiB of header and bitmap). The
instrumented runs write into the warm files.

Run on demand, not in the test suite:

    PYTHONPATH=. python3 benchmarks/bench_data.py            # 1 GiB, 3 repetitions (~4-6 minutes)
    PYTHONPATH=. python3 benchmarks/bench_data.py --quick    # 256 MiB, 2 repetitions

Results on the project machine (2 shared cores; ``docs/explanation/performance.md`` has a full run
and reads it), CPU time, warm pages, two runs: with numba's compiled masks (``stacksim[fast]``)
data mode reached 0.50-0.52x the limit at 64 KiB writes and 0.54-0.56x at 1 MiB; with numpy's
masks (the row that sets STACKSIM_XTS=numpy) 0.39x and 0.48x. Cold pages: 0.50-0.55x and
1.05-1.14x. At 1 GiB the limit took 0.95-1.02 CPU seconds. At 64 KiB the goal is met by a few
per cent: what is left is the simulation's glue per write and the checks' passes over memory.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import IO, Any, TypeVar

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from stacksim import FilterCatalog, report, simulate, validate_scenario
from stacksim.datamode import DataMode
from stacksim.diskimage import DiskImage
from stacksim.filters._host import FilterLayer
from stacksim.physmem import PhysicalMemory
from stacksim.scenario import Scenario
from stacksim.xts import XtsCipher, derive_key

WINDOW = 4 * 2**20
"""Bytes of pages the bare loop generates at a time (what bench_physmem calls bulk)."""
PORTS: tuple[dict[str, str], ...] = ({}, {"max_transfer": "1 MiB", "common_buffer": "512 KiB"})
"""The two ports: the default (64 KiB writes), and one that moves 1 MiB per write."""
GOAL = 0.5
"""The issue's goal: data mode at half the limit or more."""
COLD_PAUSE = 3.0
"""Seconds each cold row waits first: this VM hands freed pages back to the hypervisor about 2 s after they are freed."""
LIMIT = "limit: generate + ECB + pwrite"
DATA = "data mode (dumpfve.sys)"
COLD = " (cold pages)"


@dataclass(frozen=True)
class Sample:
    """One timed run: the bytes it moved, its wall and CPU seconds."""

    nbytes: int
    wall: float
    cpu: float


def scenario(ram: str, port: dict[str, str]) -> Scenario:
    """The benchmark's scenario (module docstring) with *ram* and the ``[dump_port]`` keys *port*."""
    sections: dict[str, Any] = {
        "scenario": {"name": "bench-data", "event": "crash", "seed": 1, "bugcheck_at": "10 ms"},
        "registry": {"DumpFilters": ["dumpfve.sys"], "CrashDumpEnabled": 1},
        "memory": {"ram": ram},
        "disk": {"preset": "nvme-pcie3"},
    }
    if port:
        sections["dump_port"] = port
    return validate_scenario(sections, "<bench>", FilterCatalog())


def timed(call: Callable[[], int]) -> Sample:
    """Run *call* (which returns the bytes it moved) once, timed."""
    t0, c0 = time.perf_counter(), time.process_time()
    nbytes = call()
    return Sample(nbytes, time.perf_counter() - t0, time.process_time() - c0)


F = TypeVar("F", bound=Callable[..., Any])


def clocked(call: F, label: str, spent: dict[str, float] | None) -> F:
    """*call* itself, or (with *spent*) a wrapper adding its CPU seconds to ``spent[label]``."""
    if spent is None:
        return call
    spent.setdefault(label, 0.0)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t0 = time.process_time()
        try:
            return call(*args, **kwargs)
        finally:
            spent[label] += time.process_time() - t0

    return wrapper  # type: ignore[return-value]


def bare_loop(s: Scenario, write: int, f: IO[bytes], spent: dict[str, float] | None = None) -> Sample:
    """The limit: generate, ECB-encrypt and pwrite the RAM's pages into *f*, *write* bytes at a time (*spent*: per step)."""
    memory = PhysicalMemory.from_scenario(s)
    ecb = Cipher(algorithms.AES(derive_key(s.scenario.seed)[:32]), modes.ECB()).encryptor()
    window = bytearray(WINDOW)
    out = bytearray(write + 16)  # update_into wants room for a block more
    generate = clocked(memory.read_pages_into, "generate the page bytes", spent)
    encrypt = clocked(ecb.update_into, "AES (ECB; XTS: the rest of encrypt_into)", spent)
    put = clocked(os.pwrite, "pwrite", spent)
    fd = f.fileno()
    os.ftruncate(fd, s.disk.resolved()[3])

    def loop() -> int:
        position = 2**30  # anywhere on the disk
        for base, count in memory.map.runs:
            for offset in range(0, count, WINDOW // 4096):
                view = memoryview(window)[: min(WINDOW // 4096, count - offset) * 4096]
                generate(base + offset, view)
                for i in range(0, len(view), write):
                    n = encrypt(view[i : i + write], out)
                    done = 0
                    while done < n:
                        done += put(fd, memoryview(out)[done:n], position + done)
                    position += n
        return memory.map.total_pages * 4096

    return timed(loop)


def data_mode(s: Scenario, f: IO[bytes]) -> Sample:
    """stacksim's data mode onto a sparse image in *f*: ``simulate()`` alone, the leak check included."""
    catalog = FilterCatalog()
    mode = DataMode(DiskImage(f, s.disk.resolved()[3]), derive_key(s.scenario.seed), "derived from the seed")

    def run() -> int:
        result = simulate(s, catalog, data=mode)
        assert result.status == "ok", result.status
        assert result.data is not None
        assert result.data["plaintext_pages_on_disk"] == 0
        return result.dump_bytes

    return timed(run)


NUMPY_MASKS = "data mode, numpy masks (without stacksim[fast])"
"""The same data mode with ``STACKSIM_XTS=numpy``: what a core install (no numba) gets."""


def numpy_masks(s: Scenario, f: IO[bytes]) -> Sample:
    """:func:`data_mode` with the numpy mask window instead of numba's kernel."""
    os.environ["STACKSIM_XTS"] = "numpy"
    try:
        return data_mode(s, f)
    finally:
        del os.environ["STACKSIM_XTS"]


def cold(run: Callable[[IO[bytes]], Sample], folder: str) -> Sample:
    """*run* into a new file in *folder* after :data:`COLD_PAUSE` (its page-cache pages are new; deleted after)."""
    time.sleep(COLD_PAUSE)
    with tempfile.TemporaryFile(dir=folder) as f:
        return run(f)


STAGES: tuple[tuple[str, object, str], ...] = (
    ("generate the page bytes", PhysicalMemory, "read_pages_into"),
    ("XTS masks (a window of 2,048 sectors at a time)", XtsCipher, "_fill_window"),
    ("AES (ECB; XTS: the rest of encrypt_into)", XtsCipher, "encrypt_into"),
    ("pwrite", DiskImage, "write"),
    ("the host's snapshot of the caller's bytes", FilterLayer, "_snapshot"),
    ("the host's byte check after dump_write", FilterLayer, "_check_bytes"),
    ("the host's copy of the bytes in flight", FilterLayer, "_hold"),
    ("the leak check (the image mapped and scanned)", report, "leak_check"),
)
"""What the data-mode breakdown times: (label, owner, attribute), wrapped for one run."""


@contextmanager
def stages_clocked() -> Iterator[dict[str, float]]:
    """CPU seconds of each of :data:`STAGES` while the block runs (each wrapped, then restored)."""
    spent: dict[str, float] = {}
    saved = [(owner, name, getattr(owner, name)) for _, owner, name in STAGES]
    for (label, owner, name), (_, _, real) in zip(STAGES, saved, strict=True):
        setattr(owner, name, clocked(real, label, spent))
    try:
        yield spent
    finally:
        for owner, name, real in saved:
            setattr(owner, name, real)


def breakdown(s: Scenario, warm: dict[str, IO[bytes]]) -> tuple[dict[str, float], dict[str, float], int]:
    """CPU seconds per step of one instrumented run of the limit and of data mode (into *warm* files), and the writes."""
    write = s.dump_port.resolved().max_pages_per_write * 4096
    limit: dict[str, float] = {}
    limit["total"] = bare_loop(s, write, warm[LIMIT], limit).cpu
    with stages_clocked() as data:
        total = data_mode(s, warm[DATA]).cpu
    masks = data.get(STAGES[1][0], 0.0)
    data[STAGES[2][0]] -= masks  # encrypt_into includes the masks it built
    data["the rest: the simulation (pipelined), crashdmp's copy, glue"] = total - sum(data.values())
    data["total"] = total
    data["(timing mode, request mode: the simulation alone)"] = timing_mode(s, batch=False).cpu
    return limit, data, simulate(s, FilterCatalog()).write_requests


def timing_mode(s: Scenario, *, batch: bool, pipeline: bool = True) -> Sample:
    """Timing mode (no bytes): batched, request mode (pipelined), or one write at a time as data mode runs."""

    def run() -> int:
        result = simulate(s, FilterCatalog(), batch=batch, pipeline=pipeline)
        assert result.status == "ok", result.status
        return result.dump_bytes

    return timed(run)


def measure(s: Scenario, reps: int, folder: str, warm: dict[str, IO[bytes]]) -> dict[str, Sample]:
    """
    Best wall and best CPU seconds of each row over *reps* interleaved repetitions.

    The limit and data mode write into their *warm* file (one each, kept: its pages stay in the
    page cache), after one untimed run each that brings those pages in; their cold rows write
    into a new file each time, after :data:`COLD_PAUSE` (module docstring).
    """
    write = s.dump_port.resolved().max_pages_per_write * 4096
    rows: dict[str, Callable[[], Sample]] = {
        LIMIT: lambda: bare_loop(s, write, warm[LIMIT]),
        DATA: lambda: data_mode(s, warm[DATA]),
        NUMPY_MASKS: lambda: numpy_masks(s, warm[NUMPY_MASKS]),
        "timing mode, one write at a time": lambda: timing_mode(s, batch=False, pipeline=False),
        "timing mode, request mode": lambda: timing_mode(s, batch=False),
        "timing mode, batched": lambda: timing_mode(s, batch=True),
        LIMIT + COLD: lambda: cold(lambda f: bare_loop(s, write, f), folder),
        DATA + COLD: lambda: cold(lambda f: data_mode(s, f), folder),
    }
    rows[LIMIT]()  # the warm files' pages: written once before anything is timed
    rows[DATA]()
    rows[NUMPY_MASKS]()
    best: dict[str, Sample] = {}
    for _ in range(reps):
        for name, row in rows.items():
            got = row()
            old = best.get(name)
            best[name] = got if old is None else Sample(got.nbytes, min(old.wall, got.wall), min(old.cpu, got.cpu))
    return best


def ratio(best: dict[str, Sample], cold: str = "") -> float:
    """Data mode's speed over the limit's in CPU time, both with warm pages or (*cold* = :data:`COLD`) both cold."""
    data, limit = best[DATA + cold], best[LIMIT + cold]
    return (data.nbytes / data.cpu) / (limit.nbytes / limit.cpu)


def print_table(best: dict[str, Sample]) -> None:
    """The rows and their ratios to the limit (a cold row to the cold limit)."""
    print("| row | bytes | wall s | CPU s | MB/s (wall) | MB/s (CPU) | ÷ limit (wall) | ÷ limit (CPU) |")
    print("|---|---|---|---|---|---|---|---|")
    for name, got in best.items():
        limit = best[LIMIT + COLD] if name.endswith(COLD) else best[LIMIT]
        wall, cpu = got.nbytes / got.wall / 1e6, got.nbytes / got.cpu / 1e6
        ratio_wall = wall / (limit.nbytes / limit.wall / 1e6)
        ratio_cpu = cpu / (limit.nbytes / limit.cpu / 1e6)
        print(
            f"| {name} | {got.nbytes:,} | {got.wall:.2f} | {got.cpu:.2f} | {wall:,.0f} | {cpu:,.0f} | "
            f"{ratio_wall:.2f} | {ratio_cpu:.2f} |"
        )


def print_breakdown(limit: dict[str, float], data: dict[str, float], writes: int) -> None:
    """The two instrumented runs, in µs of CPU per write."""
    print(f"\nwhere the CPU time goes, µs per write ({writes:,} writes), one instrumented run of each:\n")
    print("| step | limit | data mode |")
    print("|---|---|---|")
    for label in dict.fromkeys([*(label for label, _, _ in STAGES), *data]):
        shown = [f"{d[label] / writes * 1e6:,.0f}" if label in d else "" for d in (limit, data)]
        print(f"| {label} | {shown[0]} | {shown[1]} |")


def main() -> None:
    """Measure and print one table per write size."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help='256 MiB and 2 repetitions instead of "1 GiB" and 3')
    ap.add_argument("--ram", help='RAM to dump (default "1 GiB", with --quick "256 MiB")')
    ap.add_argument("--reps", type=int, help="repetitions (default 3, with --quick 2)")
    ap.add_argument("--dir", default=None, help="folder for the sparse files (default: the temporary folder)")
    args = ap.parse_args()
    ram = args.ram or ("256 MiB" if args.quick else "1 GiB")
    reps = args.reps or (2 if args.quick else 3)
    folder = args.dir or tempfile.gettempdir()
    with tempfile.TemporaryFile(dir=folder) as f:
        data_mode(scenario("16 MiB", {}), f)  # warm-up: every lazy import before the first timed run
    with tempfile.TemporaryFile(dir=folder) as f:
        numpy_masks(scenario("16 MiB", {}), f)
    print(f"complete dump of {ram} through dumpfve.sys; best of {reps} interleaved repetitions; files in {folder}")
    backend = XtsCipher(derive_key(1)).backend
    print(f"data mode's XTS masks: {backend} (numba's kernel: stacksim[fast]); the numpy row sets STACKSIM_XTS=numpy")
    print("MB/s = 10^6 bytes per second of wall time / of CPU time (time.process_time: user + system)")
    print(f"warm rows write into page-cache pages they wrote before; cold rows into new ones, after a {COLD_PAUSE:.0f} s pause")
    for port in PORTS:
        s = scenario(ram, port)
        write = s.dump_port.resolved().max_pages_per_write * 4096
        keys = ", ".join(f'{k} = "{v}"' for k, v in port.items()) or "the default port"
        print(f"\n{write // 1024:,} KiB writes ({keys}):\n")
        with ExitStack() as files:
            warm = {row: files.enter_context(tempfile.TemporaryFile(dir=folder)) for row in (LIMIT, DATA, NUMPY_MASKS)}
            best = measure(s, reps, folder, warm)
            print_table(best)
            got, got_cold = ratio(best), ratio(best, COLD)
            verdict = "meets" if got >= GOAL else "misses"
            print(f"\ndata mode ÷ limit = {got:.3f} (CPU, warm pages): {verdict} the goal of {GOAL}; cold pages: {got_cold:.3f}")
            print_breakdown(*breakdown(s, warm))


if __name__ == "__main__":
    main()
