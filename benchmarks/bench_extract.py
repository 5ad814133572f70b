"""
Extract benchmark: ``stacksim inspect`` and ``stacksim extract`` on a 64 MiB complete dump encrypted by dumpfve.sys.

One data-mode run writes the disk image (sparse, in a temporary folder), then each row is timed
on the same image, best of the repetitions:

* **inspect**: :func:`stacksim.extract.survey` without an output: read the file's runs, count the
  markers, decrypt, check every page.
* **extract**: the same writing ``MEMORY.DMP`` (a temporary file renamed at the end, as the
  command does).
* **read only**, **decrypt only**, **write only**: the three costs alone over the same bytes, in
  4 MiB chunks (pread from the image, ``XtsCipher.decrypt_into`` in place, write to a file).

Wall time (``time.perf_counter``: the disk's time counts) and CPU time of this process. MB/s is
10^6 bytes per second of the dump's size. Run on demand, not in the test suite:

    PYTHONPATH=. python3 benchmarks/bench_extract.py             # ~15 s
    PYTHONPATH=. python3 benchmarks/bench_extract.py --ram "256 MiB"
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from typer.testing import CliRunner

from stacksim import extract as ex
from stacksim._io import atomic_binary_writer
from stacksim.cli import app
from stacksim.filters import FilterCatalog
from stacksim.scenario import validate_scenario
from stacksim.xts import XtsCipher, derive_key

SCENARIO = """\
[scenario]
name = "bench-extract"
event = "crash"
seed = 1
bugcheck_at = "10 ms"
[registry]
DumpFilters = ["dumpfve.sys"]
CrashDumpEnabled = 1
[memory]
ram = "{ram}"
[disk]
model = "fixed"
size = "{disk}"
[layout]
file_offset = "16 MiB"
"""


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Best wall and CPU seconds of *repeat* calls of *fn*."""
    wall, cpu = [], []
    for _ in range(repeat):
        w, c = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - w)
        cpu.append(time.process_time() - c)
    return min(wall), min(cpu)


def main() -> None:
    """Run the data-mode crash once, then time each row on its image."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ram", default="64 MiB", help="RAM of the machine (the dump's size), e.g. '64 MiB'")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        (tmp / "s.toml").write_text(SCENARIO.format(ram=args.ram, disk="64 GiB"))
        old = os.getcwd()
        os.chdir(tmp)
        try:
            result = CliRunner().invoke(app, ["run", "s.toml", "--data", "--image", "disk.img", "--json", "result.json"])
        finally:
            os.chdir(old)
        assert result.exit_code == 0, result.output
        data = json.loads((tmp / "result.json").read_text())
        s = validate_scenario(data["replay"]["scenario"], "bench", FilterCatalog())
        run = ex.recorded_run(data, s, "result.json")
        size = run.dump_bytes
        rows: list[tuple[str, float, float]] = []
        with ex.open_disk_file(tmp / "disk.img", run) as file:
            loc = ex.locate(file, run)

            def extract() -> None:
                with atomic_binary_writer(tmp / "MEMORY.DMP") as out:
                    ex.survey(loc, out)

            rows.append(("inspect", *timed(lambda: ex.survey(loc), args.repeat)))
            rows.append(("extract", *timed(extract, args.repeat)))
            buf = memoryview(bytearray(ex.CHUNK))
            cipher = XtsCipher(derive_key(run.seed))

            def read_only() -> None:
                for pos in range(0, size, ex.CHUNK):
                    file.read_into(pos, buf[: min(ex.CHUNK, size - pos)])

            def decrypt_only() -> None:
                for pos in range(0, size, ex.CHUNK):
                    cipher.decrypt_into(buf, pos // 512, buf)

            def write_only() -> None:
                with open(tmp / "w.bin", "wb") as f:
                    for pos in range(0, size, ex.CHUNK):
                        f.write(buf[: min(ex.CHUNK, size - pos)])

            rows.append(("read only", *timed(read_only, args.repeat)))
            rows.append(("decrypt only", *timed(decrypt_only, args.repeat)))
            rows.append(("write only", *timed(write_only, args.repeat)))
        assert (tmp / "MEMORY.DMP").read_bytes()[:8] == b"PAGEDU64"
    print(f"{size:,} bytes ({args.ram} of RAM, complete dump, dumpfve.sys), best of {args.repeat}")
    print(f"{'row':<14}{'wall':>10}{'MB/s':>10}{'CPU':>10}{'MB/s':>10}")
    for name, wall, cpu in rows:
        rate, cpu_rate = size / wall / 1e6, size / max(cpu, 1e-9) / 1e6
        print(f"{name:<14}{wall * 1e3:>8.0f} ms{rate:>10.0f}{cpu * 1e3:>8.0f} ms{cpu_rate:>10.0f}")


if __name__ == "__main__":
    main()
