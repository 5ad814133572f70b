"""
Physical-memory benchmark: how fast data mode generates page bytes (``stacksim.physmem``).

Generates the RAM of a scenario (default 1 GiB, the default class mix: 1/3 kernel, 1/6 user,
1/4 file cache, 1/4 free) five ways, each repeated, and prints the median rate in MB/s of wall
and of CPU time (this machine is shared and noisy: CPU time is the steadier figure):

* ``read_pages_into`` in 4 MiB buffers (what ``stacksim memory`` does);
* ``read_pages_into`` in 64 KiB buffers (one dump write of a 64 KiB dump port);
* ``read_pages`` in 4 MiB requests (a new ``bytes`` each time);
* ``read_pfns_into`` of a kernel dump's pages (a third of RAM, scattered) in 1 MiB writes;
* ``stacksim memory`` writing the sparse file (generation plus the file system).

Run on demand, not in the test suite:

    PYTHONPATH=. python3 benchmarks/bench_physmem.py              # 1 GiB, 3 repetitions
    PYTHONPATH=. python3 benchmarks/bench_physmem.py --ram "256 MiB" --repeat 1
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from stacksim import FilterCatalog, validate_scenario
from stacksim.physmem import PageClass, PhysicalMemory, write_image
from stacksim.units import parse_size

GOAL_MB_S = 500
"""The issue's target for read_pages over 1 GiB."""


def _each_chunk(memory: PhysicalMemory, pages: int, step: Callable[[int, int], None]) -> None:
    """Call *step(pfn, n)* for every piece of at most *pages* pages of every run."""
    for base, count in memory.map.runs:
        for offset in range(0, count, pages):
            step(base + offset, min(pages, count - offset))


def _into(memory: PhysicalMemory, pages: int) -> None:
    buffer = bytearray(pages * 4096)

    def step(pfn: int, n: int) -> None:
        memory.read_pages_into(pfn, memoryview(buffer)[: n * 4096])

    _each_chunk(memory, pages, step)


def _bytes(memory: PhysicalMemory, pages: int) -> None:
    _each_chunk(memory, pages, lambda pfn, n: memory.read_pages(pfn, n) and None)


def _kernel_pages(memory: PhysicalMemory, pfns: np.ndarray, pages: int) -> None:
    buffer = bytearray(pages * 4096)
    for start in range(0, pfns.size, pages):
        piece = pfns[start : start + pages]
        memory.read_pfns_into(piece, memoryview(buffer)[: piece.size * 4096])


def _file(memory: PhysicalMemory) -> None:
    with tempfile.TemporaryDirectory() as folder, (Path(folder) / "ram.bin").open("wb") as f:
        write_image(memory, f)
        f.flush()
        os.fsync(f.fileno())


def measure(name: str, ram: int, repeat: int, run: Callable[[], None]) -> None:
    """Print the median MB/s of *run* over *repeat* runs, by wall and by CPU time."""
    walls, cpus = [], []
    for _ in range(repeat):
        w0, c0 = time.perf_counter(), time.process_time()
        run()
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
    wall, cpu = statistics.median(walls), statistics.median(cpus)
    print(f"{name:<36} {ram / wall / 1e6:>8,.0f} MB/s wall {ram / cpu / 1e6:>8,.0f} MB/s CPU")


def main() -> None:
    """Run the five measurements."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ram", default="1 GiB")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    ram = parse_size(args.ram)
    data = {"scenario": {"name": "bench", "seed": 1}, "registry": {"CrashDumpEnabled": 3}, "memory": {"ram": ram}}
    memory = PhysicalMemory.from_scenario(validate_scenario(data, "<bench>", FilterCatalog()))
    print(f"{args.ram} of RAM, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; goal ≥ {GOAL_MB_S} MB/s")
    measure("read_pages_into, 4 MiB buffers", ram, args.repeat, lambda: _into(memory, 1024))
    measure("read_pages_into, 64 KiB buffers", ram, args.repeat, lambda: _into(memory, 16))
    measure("read_pages, 4 MiB requests", ram, args.repeat, lambda: _bytes(memory, 1024))
    kernel = np.concatenate(list(memory.pfns_of({PageClass.KERNEL})))
    measure("read_pfns_into, kernel pages, 1 MiB", kernel.size * 4096, args.repeat, lambda: _kernel_pages(memory, kernel, 256))
    measure("write_image (sparse file, fsync)", ram, args.repeat, lambda: _file(memory))


if __name__ == "__main__":
    main()
