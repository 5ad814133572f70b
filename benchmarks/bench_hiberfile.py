"""
Hiberfile benchmark: how well and how fast ``stacksim.hiberfile`` compresses each page class, and reads it back.

For each seed, writes the body of each class's pages alone (kernel, user, file cache) at 256 MiB
of RAM by default, with raw deflate at level 1, and prints per class:

* the ratio ``bytes_out / bytes_in`` (set data only; set headers and descriptors add 12–20
  bytes per 64 KiB set);
* compress: MB/s of uncompressed bytes through ``zlib.compress`` alone on the class's 64 KiB
  sets (the figure a timing model needs), by CPU time;
* write: MB/s of ``write_body`` as a whole (page generation + compression + framing), by CPU time;
* decompress: MB/s through ``zlib.decompressobj(-15).decompress`` alone, and read: MB/s of
  ``read_sets`` as a whole (framing, validation, CRC-32), by CPU time.

``--levels`` adds a table of ratio and compress rate per deflate level (and ``wbits`` −12 and
``memLevel`` 9 at level 1) on the first seed. This machine is shared and noisy: CPU time is the
steadier figure, and rates are medians of ``--repeat`` runs.

Run on demand, not in the test suite:

    PYTHONPATH=. python3 benchmarks/bench_hiberfile.py
    PYTHONPATH=. python3 benchmarks/bench_hiberfile.py --ram "64 MiB" --seeds 1 --repeat 1 --levels
"""

from __future__ import annotations

import argparse
import functools
import io
import os
import statistics
import time
import zlib
from collections.abc import Callable

import numpy as np

from stacksim import FilterCatalog, validate_scenario
from stacksim.hiberfile import HEADER_SIZE, build_header, parse_header, read_sets, write_body
from stacksim.physmem import PageClass, PhysicalMemory
from stacksim.units import parse_size

CLASSES = (PageClass.KERNEL, PageClass.USER, PageClass.FILE_CACHE)
SET_BYTES = 16 * 4096


def _cpu(repeat: int, run: Callable[[], object]) -> float:
    """Median CPU seconds of *run* over *repeat* runs."""
    times = []
    for _ in range(repeat):
        c0 = time.process_time()
        run()
        times.append(time.process_time() - c0)
    return statistics.median(times)


def _pages(memory: PhysicalMemory, pfns: np.ndarray) -> bytearray:
    buffer = bytearray(pfns.size * 4096)
    memory.read_pfns_into(pfns, buffer)
    return buffer


def _compress_all(raw: memoryview, level: int, wbits: int = -15, mem_level: int = 8) -> list[bytes]:
    out = []
    for at in range(0, len(raw), SET_BYTES):
        c = zlib.compressobj(level, zlib.DEFLATED, wbits, mem_level)
        out.append(c.compress(raw[at : at + SET_BYTES]) + c.flush())
    return out


def _inflate_all(packed: list[bytes]) -> None:
    for piece in packed:
        zlib.decompressobj(-15).decompress(piece, SET_BYTES)


def _memory(ram: int, seed: int) -> PhysicalMemory:
    data = {"scenario": {"name": "bench", "seed": seed}, "memory": {"ram": ram}}
    return PhysicalMemory.from_scenario(validate_scenario(data, "<bench>", FilterCatalog()))


def measure_class(memory: PhysicalMemory, cls: PageClass, repeat: int) -> None:
    """One row: ratio and rates for *cls*'s pages."""
    pfns = np.concatenate(list(memory.pfns_of({cls})))
    raw = memoryview(_pages(memory, pfns))
    n = len(raw)
    packed = _compress_all(raw, 1)
    compress = _cpu(repeat, lambda: _compress_all(raw, 1))
    inflate = _cpu(repeat, lambda: _inflate_all(packed))
    body = io.BytesIO()
    summary = write_body(memory, [pfns], body)
    write = _cpu(repeat, lambda: write_body(memory, [pfns], io.BytesIO()))
    file = build_header(summary, fast_startup=False, system_time_ns=0) + body.getvalue()
    header = parse_header(file)
    read = _cpu(repeat, lambda: sum(1 for _ in read_sets(io.BytesIO(file), header)))
    ratio = summary.per_class[cls].ratio or 0.0
    print(
        f"{cls.label:<11} {pfns.size:>8,} pages {ratio:>7.3f} {n / compress / 1e6:>9,.0f} {n / write / 1e6:>9,.0f}"
        f" {n / inflate / 1e6:>9,.0f} {n / read / 1e6:>9,.0f}   ({compress:.2f}, {write:.2f}, {inflate:.2f}, {read:.2f} s CPU)"
    )
    assert len(file) == HEADER_SIZE + summary.body_bytes


def measure_levels(memory: PhysicalMemory, repeat: int) -> None:
    """Ratio and compress rate per level (and two zlib parameters at level 1) for each class."""
    print("\nlevel / parameters        " + "".join(f"{c.label:>22}" for c in CLASSES))
    raws = {c: memoryview(_pages(memory, np.concatenate(list(memory.pfns_of({c}))))) for c in CLASSES}
    variants = [(f"level {lv}", lv, -15, 8) for lv in (1, 2, 3, 6, 9)]
    variants += [("level 1, wbits -12", 1, -12, 8), ("level 1, memLevel 9", 1, -15, 9)]
    for name, level, wbits, mem_level in variants:
        cells = []
        for c in CLASSES:
            raw = raws[c]
            ratio = sum(map(len, _compress_all(raw, level, wbits, mem_level))) / len(raw)
            cpu = _cpu(repeat, functools.partial(_compress_all, raw, level, wbits, mem_level))
            cells.append(f"{ratio:>8.3f} {len(raw) / cpu / 1e6:>7,.0f} MB/s")
        print(f"{name:<26}" + "".join(f"{cell:>22}" for cell in cells))


def main() -> None:
    """Run the measurements."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ram", default="256 MiB")
    parser.add_argument("--seeds", default="1,7", help="comma-separated scenario seeds")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--levels", action="store_true", help="also compare deflate levels and parameters")
    args = parser.parse_args()
    ram = parse_size(args.ram)
    seeds = [int(s) for s in args.seeds.split(",")]
    print(f"{args.ram} of RAM, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}, zlib {zlib.ZLIB_RUNTIME_VERSION}")
    for seed in seeds:
        memory = _memory(ram, seed)
        print(
            f"\nseed {seed}, level 1    pages   ratio  compress     write  inflate      read  (MB/s of uncompressed bytes, CPU)"
        )
        for cls in CLASSES:
            measure_class(memory, cls, args.repeat)
    if args.levels:
        measure_levels(_memory(ram, seeds[0]), args.repeat)


if __name__ == "__main__":
    main()
