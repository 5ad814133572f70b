"""
Hostile numbers: values no scenario should hold are refused by `validate` and by `run` alike.

Each case is a scenario file whose one bad value must be refused with exit 2 and a short message
naming the file and the key, no traceback and no file created, in well under the per-test
timeout: booleans for integers, numbers past the documented limits (10^30 bytes, 5,000-digit
strings, 2^63), sizes in bits, wrong-case units, exponents that would expand forever, negative
numbers, deep nesting, huge lists, and layouts that do not fit (overlapping runs, a partition
past the disk, RAM beyond the disk).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import assert_refused, invoke_cli

pytestmark = pytest.mark.timeout(30)

HEAD = '[scenario]\nname = "hostile"\n'
"""Every case starts from a scenario that is valid on its own (all defaults)."""


def nested(depth: int) -> str:
    return "[" * depth + "1" + "]" * depth


def many_faults(n: int, last: str) -> str:
    body = "".join(f'[[faults]]\nkind = "device_error"\nat_request = {i + 1}\n' for i in range(n - 1))
    return body + f'[[faults]]\nkind = "device_error"\n{last}\n'


def many_runs(n: int) -> str:
    runs = ", ".join(f"{{offset = {2**30 + i * 8192}, length = 4096}}" for i in range(n))
    return f"[layout]\nruns = [{runs}, {{offset = {2**30}, length = 8192}}]\n"


CASES: dict[str, tuple[str, str]] = {
    # booleans are not integers
    "bool-CrashDumpEnabled": ("[registry]\nCrashDumpEnabled = true\n", "[registry] CrashDumpEnabled"),
    "bool-FilterPages": ("[registry]\nFilterPages = false\n", "[registry] FilterPages"),
    "bool-zones": ('[disk]\nmodel = "hdd"\nzones = true\n', "[disk] zones"),
    "bool-ram": ("[memory]\nram = true\n", "[memory] ram"),
    "bool-fraction": ("[memory]\nfree_fraction = false\n", "[memory] free_fraction"),
    "bool-runs": ("[layout]\nruns = true\n", "[layout] runs"),
    "bool-write_retries": ("[dump_driver]\nwrite_retries = true\n", "[dump_driver] write_retries"),
    "bool-filter-parameter": ('[filters."delayflt.sys"]\nper_call = true\n', '[filters."delayflt.sys"] per_call'),
    # past the limits
    "ram-1e30-bytes": ("[memory]\nram = 1000000000000000000000000000000\n", "[memory] ram"),
    "disk-1e30-bytes-string": ('[disk]\nsize = "1000000000000000000000000000000 B"\n', "[disk] size"),
    "ram-5000-digit-string": (f'[memory]\nram = "{"9" * 5000} GiB"\n', "[memory] ram"),
    "time-5000-digit-string": (f'[dump_port]\ntimeout = "{"1" * 5000} s"\n', "[dump_port] timeout"),
    "watchdog-past-2^60-ns": ('[engine]\nwatchdog = "100000000 min"\n', "[engine] watchdog"),
    "seed-2^63": ("[scenario]\nseed = 9223372036854775808\n", "[scenario] seed"),
    "ram-past-4-PiB": ('[memory]\nram = "5 PiB"\n', "[memory] ram"),
    "max_transfer-4-GiB": ('[dump_port]\nmax_transfer = "4 GiB"\n', "[dump_port] max_transfer"),
    "runs-ten-million": ("[layout]\nruns = 10000000\n", "[layout] runs"),
    "filter-at_request-2^64": (
        '[filters."faultflt.sys"]\nat_request = 18446744073709551616\n',
        '[filters."faultflt.sys"] at_request',
    ),
    "filter-per_byte-5000-digits": (
        f'[filters."dumpfve.sys"]\nper_byte = "0.{"0" * 5000}1 ns"\n',
        '[filters."dumpfve.sys"] per_byte',
    ),
    "at_request-2^64": ('[[faults]]\nkind = "device_error"\nat_request = 18446744073709551616\n', "[faults][0].at_request"),
    "worst-case-past-292-years": (
        '[registry]\nCrashDumpEnabled = 1\n[memory]\nram = "4 PiB"\n[disk]\nsize = "1 EiB"\n',
        "[engine] watchdog",
    ),
    "workload-past-292-years": (
        '[scenario]\nevent = "io"\n[disk]\nbandwidth = "1 B/s"\n'
        '[workload]\npattern = "sequential-write"\nblock_size = "1 GiB"\nregion_size = "16 GiB"\nrequests = 9\n',
        "[workload] requests",
    ),
    "workload-duration-past-292-years": (
        '[scenario]\nevent = "io"\n[disk]\nbandwidth = "1 B/s"\n'
        '[workload]\nblock_size = "1 GiB"\nregion_size = "16 GiB"\nqueue_depth = 9\nduration = "1 s"\n',
        "[workload] duration",
    ),
    # units are exact
    "size-in-gigabits": ('[disk]\nsize = "8 Gb"\n', "[disk] size"),
    "lower-case-rate": ('[disk]\nbandwidth = "6 gb/s"\n', "[disk] bandwidth"),
    "ambiguous-KB": ('[disk]\ncache = "64 KB"\n', "[disk] cache"),
    "upper-case-time": ('[disk]\nlatency = "1 MS"\n', "[disk] latency"),
    "bits-not-whole-bytes": ('[disk]\nbandwidth = "1 b/s"\n', "[disk] bandwidth"),
    # fractions and floats
    "fraction-1e-100000000-string": ('[memory]\nkernel_fraction = "1e-100000000"\n', "[memory] kernel_fraction"),
    "fraction-1e-100000000-float": ("[memory]\nkernel_fraction = 1e-100000000\n", "[memory] kernel_fraction"),
    "fraction-zero-string": ('[hibernation]\nfile_fraction = "0.0"\n', "[hibernation] file_fraction"),
    "decompress-rate-1-byte-a-second": ('[hibernation]\ndecompress_rate = "1 B/s"\n', "least rate allowed, 1 MB/s"),
    "compress-rate-below-1-mb-s": ('[hibernation]\ncompress_rate = "999 kB/s"\n', "[hibernation] compress_rate"),
    "resume-after-huge": ('[hibernation]\nresume_after = "1e10 s"\n', "[hibernation] resume_after"),
    "fraction-nan": ("[memory]\nguest_fraction = nan\n", "[memory] guest_fraction"),
    "fraction-huge-ratio": (f'[memory]\nkernel_fraction = "1/{"7" * 30}"\n', "[memory] kernel_fraction"),
    "float-size": ("[memory]\nram = 1.5e9\n", "[memory] ram"),
    "inf-duration": ("[disk]\nlatency = inf\n", "[disk] latency"),
    "float-exponent-duration": ('[disk]\nlatency = "1e9 ns"\n', "[disk] latency"),
    # negative and zero
    "negative-duration": ("[dump_driver]\nper_request = -1\n", "[dump_driver] per_request"),
    "negative-offset": ("[layout]\nfile_offset = -4096\n", "[layout] file_offset"),
    "zero-bandwidth": ("[disk]\nbandwidth = 0\n", "[disk] bandwidth"),
    "zero-timeout": ("[dump_port]\ntimeout = 0\n", "[dump_port] timeout"),
    # nesting and lists
    "nested-70-deep": (f"[disk]\nlatency = {nested(70)}\n", "latency"),
    "100k-faults-last-bad": (many_faults(100_000, "at_request = 0"), "[faults][99999].at_request"),
    "100k-runs-last-overlaps": (many_runs(100_000), "[layout] runs[100000]"),
    # layouts that do not fit: validate refuses what run would
    "overlapping-runs": (
        '[layout]\nruns = [{offset = "1 GiB", length = "1 MiB"}, {offset = "1 GiB", length = "4 KiB"}]\n',
        "[layout] runs[1]",
    ),
    "run-past-partition": (
        '[layout]\npartition_size = "2 GiB"\nruns = [{offset = "2 GiB", length = "1 GiB"}]\n',
        "[layout] runs[0]",
    ),
    "partition-past-disk": ('[disk]\nsize = "1 TB"\n[layout]\npartition_size = "1 TB"\n', "[layout] partition_size"),
    "partition-starts-past-disk": ('[disk]\nsize = "1 TB"\n[layout]\npartition_offset = "2 TB"\n', "[layout] partition_offset"),
    "ram-beyond-disk": ('[registry]\nCrashDumpEnabled = 1\n[memory]\nram = "4 TiB"\n[disk]\nsize = "1 TB"\n', "[memory] ram"),
    "file-beyond-partition": ('[disk]\nsize = "2 GiB"\n[layout]\nsize = "2 GiB"\n', "[layout] size"),
    "spread-runs-do-not-fit": ('[disk]\nsize = "1100 MiB"\n[layout]\nruns = 100000\nsize = "1 GiB"\n', "[layout] runs"),
}


def _scenario(snippet: str) -> str:
    """HEAD plus *snippet*; a snippet that sets [scenario] keys goes into HEAD's table."""
    if snippet.startswith("[scenario]\n"):
        return HEAD + snippet.removeprefix("[scenario]\n")
    return HEAD + snippet


@pytest.mark.parametrize("command", ["validate", "run"])
@pytest.mark.parametrize("case", list(CASES))
def test_hostile_number_refused(case: str, command: str, tmp_path: Path) -> None:
    """`validate` and `run` refuse the value alike: exit 2, the file and the key named, nothing written."""
    snippet, key = CASES[case]
    path = tmp_path / f"{case}.toml"
    path.write_text(_scenario(snippet), encoding="utf-8")
    before = sorted(os.listdir(tmp_path))
    proc = invoke_cli(command, str(path), cwd=tmp_path)
    assert_refused(proc, str(path), key)
    assert sorted(os.listdir(tmp_path)) == before
