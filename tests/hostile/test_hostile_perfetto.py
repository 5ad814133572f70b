"""
Hostile trace files for ``stacksim perfetto``: refused (exit 2, naming the file and the line) or drawn, never a traceback.

A path that is not a regular file is refused at once. A regular file is read line by line: a line
that is not one well-formed record (not JSON, not an object, a field missing, unknown or of the
wrong type, too long, too deep) is exit 2 naming the file and the line, and no output file or
temporary file is left. Well-formed records in any order or combination are drawn: the output is
always JSON. Text from the trace reaches the output escaped.
"""

from __future__ import annotations

import io
import json
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import assert_interrupted, assert_refused, invoke_cli, make_fifo, make_symlink_loop, run, spawn_stacksim
from hypothesis import given
from hypothesis import strategies as st

from stacksim.perfetto import MAX_LINE_BYTES, PerfettoTrace

pytestmark = pytest.mark.timeout(60)

REFUSED_IN_S = 1.0
"""Wall-time bound for refusing an input in process."""


def record(**over: Any) -> dict[str, Any]:
    """A well-formed dump-path record (a write's issue), with *over* replacing fields."""
    base = {
        "t_ns": 1000,
        "seq": 1,
        "layer": "crashdmp",
        "event": "issue_write",
        "dur_ns": 0,
        "request": 1,
        "offset": 0,
        "length": 4096,
        "dump_type": "crashdump",
        "status": None,
        "detail": None,
    }
    return {**base, **over}


def line(rec: object) -> bytes:
    return json.dumps(rec).encode() + b"\n"


def _genuine() -> list[bytes]:
    _, trace = run()
    return [line(r) for r in trace.records]


def _without(key: str) -> bytes:
    rec = record()
    del rec[key]
    return line(rec)


MALFORMED: dict[str, tuple[Callable[[], bytes], str]] = {
    "garbage": (lambda: b"not json at all\n", "line 1 is not JSON"),
    "an-array": (lambda: b"[1, 2]\n", "line 1 is an array, not a record"),
    "a-string": (lambda: b'"x"\n', "line 1 is a string, not a record"),
    "blank-line": (lambda: line(record()) + b"\n" + line(record()), "line 2 is blank"),
    "missing-field": (lambda: _without("detail"), "line 1 lacks detail"),
    "unknown-key": (lambda: line({**record(), "colour": "red"}), "line 1 has unknown key colour"),
    "t_ns-float": (lambda: line(record(t_ns=1.5)), "line 1 has t_ns a number 1.5"),
    "t_ns-bool": (lambda: line(record(t_ns=True)), "line 1 has t_ns a boolean"),
    "t_ns-2^64": (lambda: line(record(t_ns=2**64)), "line 1 has t_ns a number"),
    "t_ns-2^63": (lambda: line(record(t_ns=2**63)), "line 1 has t_ns an integer 9223372036854775808"),
    "dur-negative": (lambda: line(record(dur_ns=-1)), "line 1 has dur_ns an integer -1"),
    "end-past-int64": (lambda: line(record(t_ns=2**63 - 1, dur_ns=1)), "line 1 ends after 2^63 - 1 ns"),
    "request-string": (lambda: line(record(request="1")), "line 1 has request a string"),
    "layer-empty": (lambda: line(record(layer="")), "line 1 has layer a string; it is a string of 1 to 256 characters"),
    "layer-null": (lambda: line(record(layer=None)), "line 1 has layer null"),
    "dump-type-unknown": (lambda: line(record(dump_type="kernel")), "line 1 has dump_type 'kernel'"),
    "dump-type-list": (lambda: line(record(dump_type=["crashdump"])), "line 1 has dump_type ['crashdump']"),
    "keys-in-another-order": (lambda: line(dict(reversed(record(t_ns=-5).items()))), "line 1 has t_ns an integer -5"),
    "status-number": (lambda: line(record(status=5)), "line 1 has status an integer"),
    "detail-list": (lambda: line(record(detail=[1])), "line 1 has detail an array"),
    "not-utf8": (lambda: b'{"t_ns": "\xff"}\n', "line 1 is not JSON"),
    "utf16": (lambda: line(record()).decode().encode("utf-16"), "line 1 is not JSON"),
    "nan": (lambda: line(record()).replace(b'"length": 4096', b'"length": NaN'), "line 1 is not JSON"),
    "huge-integer": (lambda: line(record()).replace(b"4096", b"9" * 5000), "line 1 is not JSON"),
    "deep-nesting": (
        lambda: line(record(detail=None)).replace(b'"detail": null', b'"detail": {"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}"),
        "line 1 nests arrays or objects too deeply",
    ),
    "cut-short": (lambda: b"".join(_genuine())[:-40], "is not JSON"),
    "fifth-line-garbled": (lambda: b"".join(r if i != 4 else b"{oops\n" for i, r in enumerate(_genuine())), "line 5 is not JSON"),
    "empty": (lambda: b"", "the trace file is empty"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_a_malformed_trace_is_exit_2_naming_the_file_and_line(case: str, tmp_path: Path) -> None:
    """Each malformed trace is refused with one paragraph naming it and the line; no output or temporary file is left."""
    make, expected = MALFORMED[case]
    (tmp_path / "t.jsonl").write_bytes(make())
    proc = invoke_cli("perfetto", "t.jsonl", "--out", "p.json", cwd=tmp_path)
    assert_refused(proc, "t.jsonl", expected, "no output file was written")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.jsonl"]


def test_a_line_over_the_cap_is_refused_without_being_parsed(tmp_path: Path) -> None:
    """A line longer than 16 MiB is exit 2 naming its number and the cap."""
    (tmp_path / "t.jsonl").write_bytes(line(record()) + b"x" * (MAX_LINE_BYTES + 1) + b"\n")
    proc = invoke_cli("perfetto", "t.jsonl", "--out", "p.json", cwd=tmp_path)
    assert_refused(proc, "t.jsonl", "line 2 is", "a trace line is at most 16,777,216 bytes")
    assert not (tmp_path / "p.json").exists()


def test_a_utf8_byte_order_mark_before_the_first_line_is_accepted(tmp_path: Path) -> None:
    """A trace saved with a UTF-8 BOM converts exactly as without it."""
    body = b"".join(_genuine())
    (tmp_path / "a.jsonl").write_bytes(body)
    (tmp_path / "b.jsonl").write_bytes(b"\xef\xbb\xbf" + body)
    assert invoke_cli("perfetto", "a.jsonl", "--out", "a.json", cwd=tmp_path).returncode == 0
    assert invoke_cli("perfetto", "b.jsonl", "--out", "b.json", cwd=tmp_path).returncode == 0
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()


def _to_zero(tmp: Path) -> Path:
    p = tmp / "zero.jsonl"
    p.symlink_to("/dev/zero")
    return p


REFUSED: dict[str, tuple[Callable[[Path], Path], str]] = {
    "dev-zero": (lambda tmp: Path("/dev/zero"), "character device"),
    "symlink-to-dev-zero": (_to_zero, "character device"),
    "fifo": (lambda tmp: make_fifo(tmp / "pipe.jsonl"), "FIFO"),
    "directory": (lambda tmp: tmp, "directory"),
    "symlink-loop": (lambda tmp: make_symlink_loop(tmp, ".jsonl"), "symlink loop"),
    "missing": (lambda tmp: tmp / "missing.jsonl", "no such trace file"),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_a_trace_path_that_is_not_a_regular_file_is_refused_at_once(case: str, tmp_path: Path) -> None:
    """`perfetto` refuses a trace that is not a regular file: exit 2, the path named, within a second, no output."""
    make, expected = REFUSED[case]
    path = make(tmp_path)
    proc = invoke_cli("perfetto", str(path), "--out", str(tmp_path / "p.json"), cwd=tmp_path)
    assert_refused(proc, str(path), expected)
    assert proc.elapsed < REFUSED_IN_S  # type: ignore[attr-defined]
    assert not (tmp_path / "p.json").exists()


def test_the_output_may_not_be_the_trace(tmp_path: Path) -> None:
    """`perfetto t.jsonl --out t.jsonl` is refused before reading: it would destroy the input."""
    (tmp_path / "t.jsonl").write_bytes(b"".join(_genuine()))
    before = (tmp_path / "t.jsonl").read_bytes()
    proc = invoke_cli("perfetto", "t.jsonl", "--out", "./t.jsonl", cwd=tmp_path)
    assert_refused(proc, "--out", "t.jsonl", "is an input of this run")
    assert (tmp_path / "t.jsonl").read_bytes() == before


def test_more_layers_than_tracks_is_exit_2_naming_the_line(tmp_path: Path) -> None:
    """A trace naming 10,000 filters on one stack cannot be drawn: exit 2 at the line of the first too many."""
    lines = [line(record(layer=f"f{i}.sys", event="driver_entry", request=None, offset=None, length=None)) for i in range(10_000)]
    (tmp_path / "t.jsonl").write_bytes(b"".join(lines))
    proc = invoke_cli("perfetto", "t.jsonl", "--out", "p.json", cwd=tmp_path)
    assert_refused(proc, "t.jsonl", "line 9,998 cannot be drawn", "crash dump stack has more layers")


def test_text_from_the_trace_reaches_the_output_escaped(tmp_path: Path) -> None:
    """Control and bidi characters in a layer name are \\u escapes in the file, never raw."""
    name = "evil\x1b[31m\u202e.sys"
    (tmp_path / "t.jsonl").write_bytes(line(record(layer=name, event="driver_entry", request=None, status="\x07")))
    assert invoke_cli("perfetto", "t.jsonl", "--out", "p.json", cwd=tmp_path).returncode == 0
    text = (tmp_path / "p.json").read_text(encoding="utf-8")
    assert not {"\x1b", "\u202e", "\x07"} & set(text)
    assert "\\u001b[31m\\u202e.sys" in text
    assert name in {e["args"].get("name") for e in json.loads(text)["traceEvents"]}


def test_a_shuffled_genuine_trace_is_drawn(tmp_path: Path) -> None:
    """Records out of order break the dump path's rules but not the export: it draws what it is given (exit 0, JSON)."""
    lines = _genuine()
    (tmp_path / "t.jsonl").write_bytes(b"".join(reversed(lines)))
    assert invoke_cli("perfetto", "t.jsonl", "--out", "p.json", cwd=tmp_path).returncode == 0
    assert json.loads((tmp_path / "p.json").read_text())["otherData"]["records"] == len(lines)


_LAYERS = st.sampled_from(["crashdmp", "miniport", "device", "a.sys", "application", "storport.sys", "ntoskrnl.exe", "x"])
_EVENTS = st.sampled_from(
    [
        *("issue_write", "write_complete", "write_failed", "dump_write", "device_write", "io_submit", "io_device", "io_complete"),
        *("io_wait", "io_queue", "io_context", "dump_context", "flush", "bugcheck", "other"),
    ]
)
_SMALL = st.integers(0, 2**62)
_DETAIL = st.none() | st.dictionaries(
    st.sampled_from(["dump_bytes", "issued", "block_size", "layers", "op", "x"]),
    st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=5) | st.lists(st.text(max_size=3), max_size=4),
    max_size=4,
)
_RECORD = st.tuples(
    _SMALL,
    st.integers(0, 10),
    _LAYERS,
    _EVENTS,
    st.integers(0, 2**61),
    st.none() | st.integers(0, 40),
    st.none() | _SMALL,
    st.none() | _SMALL,
    st.sampled_from([None, "crashdump", "hibernation"]),
    st.none() | st.text(max_size=5),
    _DETAIL,
)


@given(records=st.lists(_RECORD, max_size=40), limit=st.integers(0, 5))
def test_any_sequence_of_well_formed_records_exports_to_json(records: list[tuple[Any, ...]], limit: int) -> None:
    """Whatever well-formed records come, in whatever order, the export finishes and is one JSON object."""
    out = io.StringIO()
    writer = PerfettoTrace(out, limit)
    for r in records:
        writer.emit(*r)
    stats = writer.close()
    doc = json.loads(out.getvalue())
    assert len(doc["traceEvents"]) == stats.events
    assert doc["otherData"]["records"] == len(records)


def _big_trace(path: Path, requests: int) -> None:
    """A well-formed trace of *requests* writes (issue and completion of each), some 50 MB for 150,000."""
    with path.open("wb") as f:
        for n in range(1, requests + 1):
            t = 1000 * n
            f.write(line(record(t_ns=t, seq=2 * n - 1, request=n, offset=4096 * n)))
            f.write(line(record(t_ns=t + 500, seq=2 * n, request=n, offset=4096 * n, event="write_complete")))


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_conversion_leaves_no_output_and_no_temporary_file(sig: int, tmp_path: Path) -> None:
    """Ctrl-C or SIGTERM while a trace is converted: exit 1, "interrupted", nothing written beside the trace."""
    _big_trace(tmp_path / "t.jsonl", 150_000)
    proc = spawn_stacksim("perfetto", "t.jsonl", "--out", "p.json", "--perfetto-limit", "1000000", cwd=tmp_path)
    deadline = time.monotonic() + 20
    while not any(p.name.startswith(".p.json.") for p in tmp_path.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert_interrupted(proc, sig)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.jsonl"]


def test_a_records_keys_may_come_in_any_order(tmp_path: Path) -> None:
    """A JSON object's key order carries no meaning: a trace whose records list their keys reversed converts to the same bytes."""
    lines = _genuine()
    (tmp_path / "a.jsonl").write_bytes(b"".join(lines))
    (tmp_path / "b.jsonl").write_bytes(b"".join(line(dict(reversed(json.loads(r).items()))) for r in lines))
    assert invoke_cli("perfetto", "a.jsonl", "--out", "a.json", cwd=tmp_path).returncode == 0
    assert invoke_cli("perfetto", "b.jsonl", "--out", "b.json", cwd=tmp_path).returncode == 0
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
