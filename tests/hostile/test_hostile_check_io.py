"""
Hostile normal-stack traces for ``stacksim check``: real io and crash-during-io traces, corrupted, each caught by rule and line.

The traces come from the shipped scenarios run through the CLI (``stacksim run … --trace``), cut
small: io-nvme-qd32 with 40 requests (4 KiB random writes, BitLocker, QD32), the same workload
as sequential writes over a 64 KiB region (it wraps twice) and as random reads, and
crash-during-io with the bugcheck at 300 µs and 1 MiB of RAM (64 KiB mixed I/O, BitLocker: 44
requests issued, 12 completed, 32 lost). Each test corrupts one of them in one way a reviewer
found accepted — an ``io_device`` op flipped, the ``io_context``'s pattern edited, a request moved
off the sector grid or past the disk's end at every layer, whole requests deleted, everything but
the ``io_context`` deleted — and holds that ``stacksim check`` exits 1 naming the rule, the line
and the reason.
"""

from __future__ import annotations

import copy
import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import invoke_cli

from stacksim.check import RULES, check_records

pytestmark = pytest.mark.timeout(30)

ROOT = Path(__file__).resolve().parents[2]
Records = list[dict[str, Any]]

SMALL: dict[str, tuple[str, tuple[tuple[str, str], ...]]] = {
    "io": ("io-nvme-qd32.toml", (("requests = 20000", "requests = 40"),)),
    "sequential": (
        "io-nvme-qd32.toml",
        (
            ("requests = 20000", "requests = 40"),
            ('pattern = "random-write"', 'pattern = "sequential-write"\nregion_size = "64 KiB"'),
        ),
    ),
    "random-read": (
        "io-nvme-qd32.toml",
        (("requests = 20000", "requests = 40"), ('pattern = "random-write"', 'pattern = "random-read"')),
    ),
    "crash": ("crash-during-io.toml", (('bugcheck_at = "20 ms"', 'bugcheck_at = "300 us"'), ('ram = "4 GiB"', 'ram = "1 MiB"'))),
}
"""Each small trace: the shipped scenario it is cut from, and the (old, new) lines that cut it."""


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Records]:
    """A fresh copy of the records of one of the SMALL traces, each run once through ``stacksim run --trace``."""
    folder = tmp_path_factory.mktemp("real")
    cache: dict[str, Records] = {}

    def get(name: str) -> Records:
        if name not in cache:
            source, edits = SMALL[name]
            text = (ROOT / "scenarios" / source).read_text(encoding="utf-8")
            for old, new in edits:
                assert text.count(old) == 1, old
                text = text.replace(old, new)
            scenario, trace = folder / f"{name}.toml", folder / f"{name}.jsonl"
            scenario.write_text(text, encoding="utf-8")
            proc = invoke_cli("run", str(scenario), "--trace", str(trace))
            assert proc.returncode == 0, proc.stderr
            cache[name] = [json.loads(line) for line in trace.read_text(encoding="utf-8").splitlines()]
        return copy.deepcopy(cache[name])

    return get


def check(records: Records, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """``stacksim check`` on *records*, written as a trace file (seq renumbered 1, 2, … as a careful forger would)."""
    path = tmp_path / "t.jsonl"
    lines = (json.dumps({**r, "seq": n}, separators=(",", ":"), ensure_ascii=False) for n, r in enumerate(records, start=1))
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return invoke_cli("check", str(path))


def broken(proc: subprocess.CompletedProcess[str]) -> list[str]:
    """The rules ``stacksim check`` says are broken (its last line), in RULES order; exit 1 and no traceback."""
    assert proc.returncode == 1, (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr
    return proc.stdout.strip().splitlines()[-1].split("rules broken: ")[1].split(", ")


def line_of(records: Records, event: str, request: int, layer: str | None = None) -> int:
    """The line (1-based) of *request*'s *event* (at *layer*, if given)."""
    return next(
        n
        for n, r in enumerate(records, start=1)
        if r["event"] == event and r["request"] == request and (layer is None or r["layer"] == layer)
    )


def of_request(records: Records, request: int) -> list[int]:
    """The indexes of every record of normal-stack request *request*."""
    return [i for i, r in enumerate(records) if r["event"].startswith("io_") and r["request"] == request]


def context(records: Records) -> dict[str, Any]:
    """The io_context's detail (the trace's first record)."""
    assert records[0]["event"] == "io_context"
    detail: dict[str, Any] = records[0]["detail"]
    return detail


def op_of(records: Records, request: int) -> str:
    """The op *request*'s io_device record says."""
    op: str = records[line_of(records, "io_device", request) - 1]["detail"]["op"]
    return op


# -- real traces pass ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(SMALL))
def test_a_real_normal_stack_trace_passes(name: str, real: Callable[[str], Records], tmp_path: Path) -> None:
    """Each small real trace (io, sequential, random-read, crash-during-io) passes every rule: exit 0."""
    proc = check(real(name), tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert f"all {len(RULES)} rules hold" in proc.stdout


def test_the_io_context_counts_the_requests_the_trace_has(real: Callable[[str], Records]) -> None:
    """The io_context of the 40-request io trace counts 40 issued, 40 completed, 0 lost: requests 1 to 40, each completed."""
    records = real("io")
    assert (context(records)["issued"], context(records)["completed"], context(records)["lost"]) == (40, 40, 0)
    assert sorted({r["request"] for r in records[1:]}) == list(range(1, 41))


def test_the_io_context_of_a_crash_counts_what_the_freeze_counts(real: Callable[[str], Records]) -> None:
    """The crash-during-io trace's io_context counts the requests issued, completed and lost exactly as its io_freeze."""
    records = real("crash")
    (freeze,) = [r for r in records if r["event"] == "io_freeze"]
    d = context(records)
    assert (d["issued"], d["completed"], d["lost"]) == (freeze["detail"]["issued"], 12, 32) == (44, 12, 32)


def test_the_sequential_trace_wraps_around_its_region(real: Callable[[str], Records]) -> None:
    """In the sequential trace request n writes block (n − 1) mod 16 of the 64 KiB region: request 17 is at its start again."""
    records = real("sequential")
    start = context(records)["region_offset"]
    offsets = {r["request"]: r["offset"] for r in records[1:]}
    assert offsets[1] == offsets[17] == offsets[33] == start
    assert offsets[16] == start + 15 * 4096


# -- every small edit of the io_context --------------------------------------------------------

ALLOWED_CONTEXT_EDITS: dict[str, str] = {
    "region_size": "no request used the region's last block: 512 bytes more or less leave every offset inside it",
    "sector_size": "every offset is a multiple of 1,024 too: a disk of 1,024-byte sectors could have taken the same requests",
    "disk_size": "the region ends far before the disk does",
    "storport_queue_depth": "no more than 16 commands were ever at the device: a depth of 31 or 33 is never reached",
    "device_parallelism": "the device never served its full 8 commands at once in these short runs",
    "pattern=mixed": "a mixed workload with read_fraction 0 issues only writes (its ops say so)",
}
"""The io_context edits that leave a trace a run could have written, and why: the whole allow-list."""


def context_edits(detail: dict[str, Any]) -> list[tuple[str, str, object]]:
    """Every small edit of an io_context detail: (what, key, new value); each integer ±1 and ±512, each cost ±1, each pattern."""
    out: list[tuple[str, str, object]] = []
    for key, value in detail.items():
        if type(value) is int:
            out += [(key, key, value + d) for d in (1, -1, 512, -512) if value + d >= 0]
    for op, costs in detail["service_ns"].items():
        for i in range(len(costs)):
            for d in (1, -1):
                changed = list(costs)
                changed[i] += d
                out.append((f"service_ns.{op}[{i}]", "service_ns", {**detail["service_ns"], op: changed}))
    out += [(f"pattern={p}", "pattern", p) for p in ("sequential-write", "random-write", "random-read", "mixed")]
    return [(what, key, value) for what, key, value in out if value != detail[key]]


@pytest.mark.parametrize("name", ["io", "crash"])
def test_every_small_edit_of_the_io_context_is_caught(name: str, real: Callable[[str], Records]) -> None:
    """Each integer of the io_context ±1 and ±512, each cost ±1 and each other pattern breaks a rule, bar the allow-list."""
    records = real(name)
    missed = []
    for what, key, value in context_edits(context(records)):
        edited = copy.deepcopy(records)
        context(edited)[key] = value
        if not check_records(edited) and what not in ALLOWED_CONTEXT_EDITS:
            missed.append(what)
    assert missed == []


# -- 1. an io_device's op flipped ---------------------------------------------------------------


def test_a_read_in_a_random_write_trace_breaks_io_workload(real: Callable[[str], Records], tmp_path: Path) -> None:
    """Request 7's io_device flipped to a read, in a trace whose pattern issues only writes, is caught at its line."""
    records = real("io")
    n = line_of(records, "io_device", 7)
    records[n - 1]["detail"]["op"] = "read"
    proc = check(records, tmp_path)
    assert broken(proc) == ["io_workload"]
    assert (
        f"[io_workload] line {n}: request 7's io_device is a read, but the io_context's pattern random-write issues "
        in proc.stdout
    )


def test_a_write_in_a_random_read_trace_breaks_io_workload(real: Callable[[str], Records], tmp_path: Path) -> None:
    """Request 7's io_device flipped to a write, in a trace whose pattern issues only reads, is caught at its line."""
    records = real("random-read")
    n = line_of(records, "io_device", 7)
    records[n - 1]["detail"]["op"] = "write"
    proc = check(records, tmp_path)
    assert broken(proc) == ["io_workload"]
    assert f"[io_workload] line {n}: request 7's io_device is a write, but the io_context's pattern random-read" in proc.stdout


def test_a_write_flipped_to_a_read_where_fvevol_encrypted_it_breaks_io_costs(
    real: Callable[[str], Records], tmp_path: Path
) -> None:
    """A mixed write flipped to a read at the device is caught: fvevol.sys's dispatch lasted what encrypting a write costs."""
    records = real("crash")
    assert op_of(records, 3) == "write"
    n, fve = line_of(records, "io_device", 3), line_of(records, "io_submit", 3, "fvevol.sys")
    records[n - 1]["detail"]["op"] = "read"
    costs = context(records)["service_ns"]
    proc = check(records, tmp_path)
    assert broken(proc) == ["io_costs"]
    assert (
        f"[io_costs] line {n}: request 3's io_device is a read, but its fvevol.sys io_submit (line {fve}) lasted "
        f"{costs['write'][3]:,} ns, what a write costs there; a read costs {costs['read'][3]:,} ns"
    ) in proc.stdout


def test_a_read_flipped_to_a_write_where_fvevol_did_not_encrypt_it_breaks_io_costs(
    real: Callable[[str], Records], tmp_path: Path
) -> None:
    """A mixed read flipped to a write at the device is caught: fvevol.sys's dispatch lasted a read's cost, no encryption."""
    records = real("crash")
    assert op_of(records, 1) == "read"
    n, fve = line_of(records, "io_device", 1), line_of(records, "io_submit", 1, "fvevol.sys")
    records[n - 1]["detail"]["op"] = "write"
    proc = check(records, tmp_path)
    assert broken(proc) == ["io_costs"]
    assert (
        f"[io_costs] line {n}: request 1's io_device is a write, but its fvevol.sys io_submit (line {fve}) lasted" in proc.stdout
    )


def test_a_service_that_lasts_other_than_its_cost_breaks_io_costs(real: Callable[[str], Records], tmp_path: Path) -> None:
    """The last step of a request the freeze caught, 1 ns longer (nothing after it starts when it ends), is caught by its cost."""
    records = real("crash")
    last = max(of_request(records, 44))
    records[last]["dur_ns"] += 1
    r = records[last]
    proc = check(records, tmp_path)
    assert broken(proc) == ["io_costs"]
    cost = r["dur_ns"] - 1
    assert (
        f"[io_costs] line {last + 1}: request 44's {r['layer']} {r['event']} lasts {r['dur_ns']:,} ns, but it costs {cost:,} ns "
        "for a read or a write there"
    ) in proc.stdout


# -- 2. the io_context's pattern edited ---------------------------------------------------------


def test_a_sequential_write_trace_relabelled_random_read_breaks_io_workload(
    real: Callable[[str], Records], tmp_path: Path
) -> None:
    """pattern sequential-write → random-read: the io_context's own ops (writes) and each io_device (a write) disagree with it."""
    records = real("sequential")
    context(records)["pattern"] = "random-read"
    proc = check(records, tmp_path)
    assert broken(proc) == ["io_workload"]
    assert (
        "[io_workload] line 1: the io_context says a workload no run issues: its ops are ['write'], but pattern " in proc.stdout
    )
    n = line_of(records, "io_device", 1)
    assert f"[io_workload] line {n}: request 1's io_device is a write, but the io_context's pattern random-read" in proc.stdout


def test_a_random_write_trace_relabelled_sequential_write_breaks_io_workload(
    real: Callable[[str], Records], tmp_path: Path
) -> None:
    """pattern random-write → sequential-write: request 1 is not at the start of the region, where a sequential walk begins."""
    records = real("io")
    context(records)["pattern"] = "sequential-write"
    start, offset = context(records)["region_offset"], records[1]["offset"]
    assert records[1]["request"] == 1
    assert offset != start
    proc = check(records, tmp_path)
    assert broken(proc) == ["io_workload"]
    assert (
        f"[io_workload] line 2: request 1 at offset {offset:,} is not where a sequential-write puts request 1: at {start:,}"
    ) in proc.stdout


def test_a_mixed_trace_relabelled_random_write_breaks_io_workload(real: Callable[[str], Records], tmp_path: Path) -> None:
    """pattern mixed → random-write: its reads (request 1's io_device the first) are reads a random-write never issues."""
    records = real("crash")
    context(records)["pattern"] = "random-write"
    proc = check(records, tmp_path)
    assert broken(proc) == ["io_workload"]
    n = line_of(records, "io_device", 1)
    assert f"[io_workload] line {n}: request 1's io_device is a read, but the io_context's pattern random-write" in proc.stdout


def test_a_sequential_request_out_of_its_place_breaks_io_workload(real: Callable[[str], Records], tmp_path: Path) -> None:
    """Request 5 of the sequential trace moved to request 6's block at every layer is caught: block 4 is its place."""
    records = real("sequential")
    start = context(records)["region_offset"]
    for i in of_request(records, 5):
        records[i]["offset"] = start + 5 * 4096
    proc = check(records, tmp_path)
    assert broken(proc) == ["io_workload"]
    n = of_request(records, 5)[0] + 1
    assert (
        f"[io_workload] line {n}: request 5 at offset {start + 5 * 4096:,} is not where a sequential-write puts request 5: "
        f"at {start + 4 * 4096:,}"
    ) in proc.stdout


@pytest.mark.parametrize(
    ("name", "pattern"),
    [("sequential", "random-write"), ("random-read", "mixed")],
    ids=["sequential-as-random-write", "random-read-as-mixed"],
)
def test_a_relabelling_a_run_could_have_written_passes(
    name: str, pattern: str, real: Callable[[str], Records], tmp_path: Path
) -> None:
    """The checker's limit: a sequential walk is one random draw, all reads a mixed one; it does not replay the seed's draws."""
    records = real(name)
    context(records)["pattern"] = pattern
    assert check(records, tmp_path).returncode == 0


# -- 3. offsets off the sector grid, off the region or past the disk ----------------------------


def move(records: Records, request: int, offset: int) -> int:
    """Put every record of *request* at *offset* (consistent across its layers); return the line of its first record."""
    indexes = of_request(records, request)
    for i in indexes:
        records[i]["offset"] = offset
    return indexes[0] + 1


def test_an_unaligned_request_breaks_io_workload(real: Callable[[str], Records], tmp_path: Path) -> None:
    """Request 9 moved 1 byte at every layer is caught at its first record: its offset is not on the 512-byte sector grid."""
    records = real("io")
    offset = records[of_request(records, 9)[0]]["offset"] + 1
    n = move(records, 9, offset)
    proc = check(records, tmp_path)
    assert broken(proc) == ["io_workload"]
    assert (
        f"[io_workload] line {n}: request 9 at offset {offset:,} is not sector aligned (not a multiple of the io_context's "
        "512-byte sector_size)"
    ) in proc.stdout


def test_a_request_past_the_disk_s_end_breaks_io_workload(real: Callable[[str], Records], tmp_path: Path) -> None:
    """Request 9 moved, aligned, to the last sector of the disk at every layer is caught: its 4 KiB end past the disk's end."""
    records = real("io")
    disk = context(records)["disk_size"]
    n = move(records, 9, disk - 512)
    proc = check(records, tmp_path)
    assert broken(proc) == ["io_workload"]
    assert (
        f"[io_workload] line {n}: request 9 at offset {disk - 512:,} ends at byte {disk - 512 + 4096:,}, past the end of the "
        f"disk (the io_context's disk_size, {disk:,})"
    ) in proc.stdout


def test_a_request_off_the_block_grid_breaks_io_workload(real: Callable[[str], Records], tmp_path: Path) -> None:
    """Request 9 moved one sector at every layer is caught: sector aligned, but not a whole 4 KiB block of the region."""
    records = real("io")
    offset = records[of_request(records, 9)[0]]["offset"] + 512
    n = move(records, 9, offset)
    proc = check(records, tmp_path)
    assert broken(proc) == ["io_workload"]
    assert f"[io_workload] line {n}: request 9 at offset {offset:,} is not a whole 4,096-byte block of the workload's region" in (
        proc.stdout
    )


def test_a_request_before_the_region_breaks_io_workload(real: Callable[[str], Records], tmp_path: Path) -> None:
    """Request 9 moved to disk offset 0 (aligned, on the disk, before the region) at every layer is caught."""
    records = real("io")
    n = move(records, 9, 0)
    proc = check(records, tmp_path)
    assert broken(proc) == ["io_workload"]
    assert (
        f"[io_workload] line {n}: request 9 at offset 0 is not a whole 4,096-byte block of the workload's region" in proc.stdout
    )


def test_a_region_past_the_disk_s_end_breaks_io_workload(real: Callable[[str], Records], tmp_path: Path) -> None:
    """An io_context whose disk ends before its region does (the disk shrunk to the region's first byte) is caught at line 1."""
    records = real("io")
    context(records)["disk_size"] = context(records)["region_offset"]
    proc = check(records, tmp_path)
    assert "io_workload" in broken(proc)
    assert "[io_workload] line 1: the io_context says a workload no run issues: its region 1,048,576+1,073,741,824 ends" in (
        proc.stdout
    )


# -- 4. whole requests deleted ------------------------------------------------------------------


def delete(records: Records, *requests: int) -> Records:
    """*records* without any record of the normal-stack *requests*."""
    gone = {i for q in requests for i in of_request(records, q)}
    return [r for i, r in enumerate(records) if i not in gone]


def test_the_last_request_deleted_from_an_io_trace_breaks_io_workload(real: Callable[[str], Records], tmp_path: Path) -> None:
    """Every record of request 40, the last, deleted: the io_context (line 1) counts 40 issued, the trace ends after 39."""
    proc = check(delete(real("io"), 40), tmp_path)
    assert broken(proc) == ["io_workload"]
    assert (
        "[io_workload] line 1: the io_context says 40 requests were issued, but the trace ends after request 39: request 40 "
        "never appears"
    ) in proc.stdout


def test_the_last_five_requests_deleted_from_an_io_trace_break_io_workload(
    real: Callable[[str], Records], tmp_path: Path
) -> None:
    """Every record of requests 36 to 40 deleted: the message names the missing range."""
    proc = check(delete(real("io"), 36, 37, 38, 39, 40), tmp_path)
    assert broken(proc) == ["io_workload"]
    assert "the trace ends after request 35: requests 36 to 40 never appear" in proc.stdout


def test_a_request_deleted_from_the_middle_of_an_io_trace_breaks_io_path(real: Callable[[str], Records], tmp_path: Path) -> None:
    """Every record of request 20 deleted: the first record of request 21 is caught, once, as a gap in the numbering."""
    records = delete(real("io"), 20)
    proc = check(records, tmp_path)
    assert broken(proc) == ["io_path"]
    n = of_request(records, 21)[0] + 1
    assert (
        f"[io_path] line {n}: 'application''s io_wait of request 21, but request 20 never appeared before it: requests are "
        "numbered 1, 2, 3, … in issue order"
    ) in proc.stdout
    assert proc.stdout.count("[io_path]") == 1


def test_a_request_deleted_and_the_rest_renumbered_breaks_io_path_and_io_queues(
    real: Callable[[str], Records], tmp_path: Path
) -> None:
    """Request 20 deleted, 21 to 40 renumbered 20 to 39 and the counts lowered to 39: the closed loop's issue times betray it."""
    records = delete(real("io"), 20)
    for r in records[1:]:
        if r["request"] > 20:
            r["request"] -= 1
    d = context(records)
    d["issued"] = d["completed"] = 39
    proc = check(records, tmp_path)
    assert broken(proc) == ["io_path", "io_queues"]  # and the window: one request too many outstanding
    n = of_request(records, 32)[0] + 1
    assert f"[io_path] line {n}: request 32 starts at " in proc.stdout
    assert "ns: the application issues its first queue_depth = 32 requests at 0 ns" in proc.stdout


def test_a_request_more_than_the_io_context_counts_breaks_io_workload(real: Callable[[str], Records], tmp_path: Path) -> None:
    """An io_context that counts 39 issued (and completed) where the trace has request 40 is caught at request 40's first line."""
    records = real("io")
    d = context(records)
    d["issued"] = d["completed"] = 39
    proc = check(records, tmp_path)
    assert broken(proc) == ["io_workload"]
    n = of_request(records, 40)[0] + 1
    assert f"[io_workload] line {n}: request 40, but the io_context (line 1) says 39 requests were issued" in proc.stdout


def test_counts_that_do_not_add_up_break_io_workload(real: Callable[[str], Records], tmp_path: Path) -> None:
    """An io_context whose completed + lost is not its issued (40 + 1 ≠ 40) is caught at line 1."""
    records = real("io")
    context(records)["lost"] = 1
    proc = check(records, tmp_path)
    assert broken(proc) == ["io_workload"]
    assert (
        "[io_workload] line 1: the io_context says a workload no run issues: it counts 40 completed + 1 lost requests, but 40"
        in (proc.stdout)
    )


def test_a_completed_request_deleted_from_a_crash_trace_breaks_io_path_and_freeze(
    real: Callable[[str], Records], tmp_path: Path
) -> None:
    """Every record of request 13 (completed before the bugcheck) deleted: a gap in the numbering; the freeze counts 12 done."""
    proc = check(delete(real("crash"), 13), tmp_path)
    assert broken(proc) == ["io_path", "freeze"]
    assert "of request 14, but request 13 never appeared before it" in proc.stdout
    assert "the io_freeze says 12 requests completed, but the trace completes 11" in proc.stdout


def test_a_crash_trace_whose_io_context_counts_another_run_breaks_freeze(real: Callable[[str], Records], tmp_path: Path) -> None:
    """An io_context that counts one request more issued and lost than the io_freeze does is caught at the freeze."""
    records = real("crash")
    d = context(records)
    d["issued"], d["lost"] = 45, 33
    proc = check(records, tmp_path)
    assert broken(proc) == ["freeze"]
    assert (
        "the io_freeze says 44 requests issued, 12 completed, 32 lost, but the io_context (line 1) counts 45, 12, 33"
        in proc.stdout
    )


# -- 5. the io_context alone --------------------------------------------------------------------


def test_an_io_context_alone_breaks_io_workload(real: Callable[[str], Records], tmp_path: Path) -> None:
    """An io trace cut to its io_context: the context counts 40 requests issued, the trace has none of them."""
    proc = check(real("io")[:1], tmp_path)
    assert broken(proc) == ["io_workload"]
    assert (
        "[io_workload] line 1: the io_context says 40 requests were issued, but the trace has none of them: requests 1 to 40 "
        "never appear"
    ) in proc.stdout


def test_an_io_context_that_counts_no_request_is_a_format_violation(real: Callable[[str], Records], tmp_path: Path) -> None:
    """An io_context alone that counts 0 requests issued is a format violation (a workload issues at least one request)."""
    records = real("io")[:1]
    d = context(records)
    d["issued"] = d["completed"] = 0
    proc = check(records, tmp_path)
    assert broken(proc) == ["format", "structure"]  # without a context it can read, a trace is a dump's, here cut short
    assert (
        "line 1: the io_context its detail.issued is 0: it is an integer from 1 to 2**63 - 1 (a workload issues at least one"
        in (proc.stdout)
    )


def test_a_crash_trace_cut_to_its_io_context_breaks_structure_and_freeze(real: Callable[[str], Records], tmp_path: Path) -> None:
    """A crash-during-io trace cut to its io_context: no io_freeze, no bugcheck, no dump."""
    proc = check(real("crash")[:1], tmp_path)
    assert broken(proc) == ["structure", "freeze"]
    assert "[freeze] the trace of a crash during I/O has no io_freeze (and no bugcheck)" in proc.stdout
