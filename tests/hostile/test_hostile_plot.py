"""
Hostile inputs and outputs for ``stacksim plot``: refused (exit 2, naming the file) or drawn, never a traceback.

Its three inputs get the corpus the other readers of the same files get: a result file the
table ``replay`` and ``diff`` refuse, a trace the table ``perfetto`` refuses, and a sweep's CSV
its own. Its PNG files refuse every hostile target the other outputs refuse. Text from the input
(layer names, swept values) is drawn without mathtext, terminal escapes or missing glyphs, and
numbers at the ends of their ranges are drawn.
"""

from __future__ import annotations

import json
import os
import socket
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import assert_refused, invoke_cli
from test_hostile_outputs import _chattr_immutable, _snapshot
from test_hostile_perfetto import MALFORMED, REFUSED, line, record
from test_hostile_replay import FILES

pytest.importorskip("matplotlib", reason="the plot extra (matplotlib) is not installed")

pytestmark = pytest.mark.timeout(60)

REFUSED_IN_S = 2.0
"""Wall-time bound for refusing an input in process."""


def _as(path: str, suffix: str, tmp: Path) -> str:
    """*path* itself when it ends in *suffix*, else a symlink to it that does (plot goes by the suffix)."""
    if path.endswith(suffix):
        return path
    link = tmp / f"link{suffix}"
    link.symlink_to(Path(path) if os.path.isabs(path) else (tmp / path).resolve())
    return link.name


@pytest.mark.parametrize("case", list(FILES))
def test_a_result_file_replay_refuses_plot_refuses(tmp_path: Path, case: str) -> None:
    """Every result file `replay` and `diff` refuse, `plot` refuses alike: exit 2 naming the file, fast, nothing written."""
    make, expected = FILES[case]
    name = _as(make(tmp_path), ".json", tmp_path)
    before = sorted(os.listdir(tmp_path))
    proc = invoke_cli("plot", name, cwd=tmp_path)
    assert_refused(proc, name, expected)
    assert proc.elapsed < REFUSED_IN_S  # type: ignore[attr-defined]
    assert sorted(os.listdir(tmp_path)) == before


@pytest.mark.parametrize("case", list(MALFORMED))
def test_a_trace_perfetto_refuses_plot_refuses(case: str, tmp_path: Path) -> None:
    """Each malformed trace is exit 2 naming the file and the line, as for `perfetto`; no PNG or temporary file is left."""
    make, expected = MALFORMED[case]
    (tmp_path / "t.jsonl").write_bytes(make())
    proc = invoke_cli("plot", "t.jsonl", cwd=tmp_path)
    assert_refused(proc, "t.jsonl", expected, "no plot was written")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.jsonl"]


@pytest.mark.parametrize("case", list(REFUSED))
def test_a_trace_path_that_is_not_a_regular_file_is_refused_at_once(case: str, tmp_path: Path) -> None:
    """A trace that is a device, FIFO, folder, symlink loop or missing is exit 2 within the bound, nothing written."""
    make, expected = REFUSED[case]
    path = _as(str(make(tmp_path)), ".jsonl", tmp_path)
    before = sorted(os.listdir(tmp_path))
    proc = invoke_cli("plot", path, cwd=tmp_path)
    assert_refused(proc, expected)
    assert proc.elapsed < REFUSED_IN_S  # type: ignore[attr-defined]
    assert sorted(os.listdir(tmp_path)) == before


HEADER = "point_id,disk.bandwidth,status,error,dump_time_ns,bytes_written\n"


def _csv(text: str | bytes) -> Callable[[Path], str]:
    def make(tmp: Path) -> str:
        (tmp / "s.csv").write_bytes(text.encode() if isinstance(text, str) else text)
        return "s.csv"

    return make


def _two_gib(tmp: Path) -> str:
    with (tmp / "s.csv").open("wb") as f:
        f.truncate(2**31)  # sparse
    return "s.csv"


SWEEPS: dict[str, tuple[Callable[[Path], str], str]] = {
    "empty": (_csv(""), "the sweep results file is empty"),
    "2-GiB": (_two_gib, "1,073,741,824 bytes"),
    "utf16": (_csv((HEADER + "a,1GB/s,ok,,5,1\n").encode("utf-16")), "UTF-16"),
    "binary": (_csv(b"point_id,\xff\xfe\x80\n"), "not UTF-8"),
    "no-point-id": (_csv("a,b,c\n1,2,3\n"), "line 1 is not a sweep's header"),
    "no-dump-time": (_csv("point_id,x,status\n1,2,ok\n"), "line 1 is not a sweep's header"),
    "no-parameter": (_csv("point_id,status,dump_time_ns\n1,ok,5\n"), "names no swept parameter"),
    "short-row": (_csv(HEADER + "a,1GB/s,ok\n"), "row 2 has 3 cells; the header has 6"),
    "dump-time-negative": (_csv(HEADER + "a,1GB/s,ok,,-5,1\n"), "row 2 has dump_time_ns '-5'"),
    "dump-time-float": (_csv(HEADER + "a,1GB/s,ok,,1.5,1\n"), "row 2 has dump_time_ns '1.5'"),
    "dump-time-2^63": (_csv(HEADER + f"a,1GB/s,ok,,{2**63},1\n"), "it is empty or an integer from 0 to 2^63 - 1"),
    "dump-time-5000-digits": (_csv(HEADER + "a,1GB/s,ok,," + "9" * 5000 + ",1\n"), "row 2 has dump_time_ns '999"),
    "dump-time-unicode-digits": (_csv(HEADER + "a,1GB/s,ok,,\u0665,1\n"), "row 2 has dump_time_ns"),
    "every-point-failed": (_csv(HEADER + "a,1GB/s,error,boom,,\n"), "no row has a dump time (1 failed points)"),
    "field-over-csv-limit": (_csv(HEADER + 'a,"' + "x" * 200_000 + '",ok,,5,1\n'), "is not CSV (field larger than field limit"),
}


@pytest.mark.parametrize("case", list(SWEEPS))
def test_a_sweep_file_that_is_not_a_sweeps_csv_is_refused(case: str, tmp_path: Path) -> None:
    """A CSV that is not `stacksim sweep`'s (or too large, or not UTF-8) is exit 2 naming it; nothing is written."""
    make, expected = SWEEPS[case]
    name = make(tmp_path)
    before = sorted(os.listdir(tmp_path))
    proc = invoke_cli("plot", name, cwd=tmp_path)
    assert_refused(proc, name, expected)
    assert proc.elapsed < 10  # type: ignore[attr-defined]
    assert sorted(os.listdir(tmp_path)) == before


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A genuine result of a 1 MiB crash dump."""
    tmp = tmp_path_factory.mktemp("result")
    (tmp / "s.toml").write_text('[scenario]\nname = "pl"\n[memory]\nram = "1 MiB"\n')
    proc = invoke_cli("run", "s.toml", "--json", "-", cwd=tmp)
    data: dict[str, Any] = json.loads(proc.stdout)
    return data


SHAPES: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "layers-a-list": (lambda r: r.update(layers=[1]), "key 'layers' must be an object"),
    "layer-a-number": (lambda r: r["layers"].update(device=5), "key 'layers.device' must be an object"),
    "p50-a-string": (lambda r: r["layers"]["device"].update(p50_ns="5 us"), "key 'layers.device.p50_ns' must be a non-negative"),
    "p99-negative": (lambda r: r["layers"]["device"].update(p99_ns=-1), "key 'layers.device.p99_ns' must be a non-negative"),
    "max-2^70": (lambda r: r["layers"]["device"].update(max_ns=2**70), "key 'layers.device.max_ns' must be below 2^63"),
    "busy-10^400": (lambda r: r["layers"]["device"].update(busy_ns=10**400), "key 'layers.device.busy_ns' must be below 2^63"),
    "p99-10^400": (lambda r: r["layers"]["device"].update(p99_ns=10**400), "key 'layers.device.p99_ns' must be below 2^63"),
    "calls-missing": (lambda r: r["layers"]["device"].pop("calls"), "key 'layers.device.calls' is missing"),
    "dump-time-a-float": (lambda r: r.update(dump_time_ns=1.5), "key 'dump_time_ns' must be a non-negative integer"),
    "dump-time-2^64": (lambda r: r.update(dump_time_ns=2**64), "key 'dump_time_ns' must be below 2^63"),
    "dump-time-10^400": (lambda r: r.update(dump_time_ns=10**400), "key 'dump_time_ns' must be below 2^63"),
    "write-latency-a-string": (lambda r: r.update(write_latency="fast"), "key 'write_latency' must be an object"),
}


@pytest.mark.parametrize("case", list(SHAPES))
def test_a_result_with_a_key_of_the_wrong_type_is_refused(case: str, result: dict[str, Any], tmp_path: Path) -> None:
    """A key the plots need, missing or of the wrong type, is exit 2 naming the file and the key."""
    edit, expected = SHAPES[case]
    data = json.loads(json.dumps(result))
    edit(data)
    (tmp_path / "r.json").write_text(json.dumps(data))
    proc = invoke_cli("plot", "r.json", cwd=tmp_path)
    assert_refused(proc, "r.json", expected)
    assert sorted(os.listdir(tmp_path)) == ["r.json"]


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """A folder with a small well-formed trace (two requests through one layer)."""
    records = [record(t_ns=1000 * n, seq=n, request=n, layer="device", event="device_write", dur_ns=400 + n) for n in (1, 2)] + [
        record(t_ns=2000, seq=3, request=2, event="write_complete")
    ]
    (tmp_path / "trace.jsonl").write_bytes(b"".join(map(line, records)))
    return tmp_path


def _read_only(path: Path) -> None:
    if os.geteuid() != 0:
        path.chmod(0o555 if path.is_dir() else 0o444)
    elif not _chattr_immutable(path):
        pytest.skip("running as root and chattr +i does not work here")


def _socket(path: Path) -> None:
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(path))
    sock.close()  # the socket file stays


def _read_only_file(path: Path) -> None:
    path.write_bytes(b"old")
    _read_only(path)


def _read_only_folder(work: Path) -> None:
    (work / "ro").mkdir()
    _read_only(work / "ro")


PNG_TARGETS: dict[str, tuple[str, Callable[[Path], object], str]] = {
    "fifo": ("o", lambda w: os.mkfifo(w / "o-gantt.png"), "FIFO"),
    "socket": ("o", lambda w: _socket(w / "o-gantt.png"), "socket"),
    "folder": ("o", lambda w: (w / "o-gantt.png").mkdir(), "is a folder"),
    "a-symlink-to-the-trace": ("o", lambda w: (w / "o-latency.png").symlink_to(w / "trace.jsonl"), "is an input of this run"),
    "a-hard-link-to-the-trace": ("o", lambda w: os.link(w / "trace.jsonl", w / "o-throughput.png"), "is an input of this run"),
    "read-only-file": ("o", lambda w: _read_only_file(w / "o-gantt.png"), "is read-only"),
    "read-only-folder": ("ro/o", _read_only_folder, "cannot create a file in the folder ro"),
    "missing-parent": ("no/such/o", lambda w: None, "the folder no/such does not exist (no does not exist)"),
    "proc": ("/proc/x", lambda w: None, "cannot create a file in the folder /proc"),
    "missing-folder-by-its-slash": ("no/", lambda w: None, "names a folder (it ends in a slash), but that folder does not exist"),
    "a-file-by-its-slash": ("trace.jsonl/", lambda w: None, "names a folder (it ends in a slash), but it is not a folder"),
}


@pytest.mark.parametrize("target", list(PNG_TARGETS))
def test_a_plot_file_refuses_what_every_output_refuses(work: Path, target: str) -> None:
    """A PNG target that is a FIFO, socket, folder, the trace (a link), read-only or in a missing folder: exit 2, untouched."""
    prefix, make, expected = PNG_TARGETS[target]
    make(work)
    before = _snapshot(work)
    proc = invoke_cli("plot", "trace.jsonl", "--out", prefix, cwd=work)
    assert_refused(proc, "--out", prefix, expected)
    assert _snapshot(work) == before


def test_a_missing_folder_by_its_slash_writes_nothing_beside_it(work: Path) -> None:
    """--out /abs/missing/ is refused; nothing is written as /abs/missing-KIND.png (was: the slash dropped, written beside)."""
    proc = invoke_cli("plot", "trace.jsonl", "--out", f"{work / 'missing'}/", cwd=work)
    assert_refused(proc, "--out", "that folder does not exist")
    assert not list(work.glob("missing*"))


def test_an_existing_folder_by_its_slash_is_written_into(work: Path) -> None:
    """--out DIR/ for an existing folder writes DIR/trace-KIND.png, as --out DIR does."""
    (work / "d").mkdir()
    proc = invoke_cli("plot", "trace.jsonl", "--out", "d/", cwd=work)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (work / "d").iterdir()) == ["trace-gantt.png", "trace-latency.png", "trace-throughput.png"]


def test_a_prefix_naming_the_trace_itself_is_refused(work: Path) -> None:
    """A symlink named as a plot file, pointing at the trace, would destroy it: refused as an input."""
    (work / "x-latency.png").symlink_to(work / "trace.jsonl")
    before = (work / "trace.jsonl").read_bytes()
    proc = invoke_cli("plot", "trace.jsonl", "--out", "x", cwd=work)
    assert_refused(proc, "--out", "x-latency.png", "is an input of this run")
    assert (work / "trace.jsonl").read_bytes() == before


HOSTILE_NAMES = [
    "$\\frac{1}{$",
    "a\\$b$c",
    "$x^2$",
    "evil\x1b[31m\u202e.sys",
    "漢字.sys",
    "\U0001f4a5.sys",
    "a" * 5000,
    "\\n\\t{}",
]


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=range(len(HOSTILE_NAMES)))
def test_hostile_layer_names_are_drawn_escaped(name: str, tmp_path: Path) -> None:
    """Mathtext, terminal escapes, characters the font lacks and 5,000-character names plot without a warning or traceback."""
    records = [
        record(t_ns=1000 * n, seq=n, request=n, layer=name[:256], event="dump_write", dur_ns=300 * n) for n in (1, 2, 3)
    ] + [record(t_ns=5000, seq=4, request=3, event="write_complete")]
    (tmp_path / "t.jsonl").write_bytes(b"".join(map(line, records)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        proc = invoke_cli("plot", "t.jsonl", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t-gantt.png", "t-latency.png", "t-throughput.png", "t.jsonl"]


@pytest.mark.parametrize("value", ["$1$", "\\x1b[2J", "漢字", "\U0001f4a5", "x" * 300])
def test_hostile_swept_values_are_drawn_escaped(value: str, tmp_path: Path) -> None:
    """Swept values with mathtext, escapes or glyphs the font lacks are drawn: exit 0, no warning."""
    text = HEADER + f'a,"{value}",ok,,5000,1\nb,"{value}2",ok,,7000,1\n'
    (tmp_path / "s.csv").write_text(text, encoding="utf-8")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        proc = invoke_cli("plot", "s.csv", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert (tmp_path / "s-dump-time.png").stat().st_size > 5000


def test_times_at_the_ends_of_their_range_are_drawn(tmp_path: Path) -> None:
    """A completion at 0 ns and one just below 2^63 ns, a call of 2^62 - 1 ns: drawn (the throughput bins double to fit)."""
    records = [
        record(t_ns=0, seq=1, request=1, layer="device", event="device_write", dur_ns=1),
        record(t_ns=0, seq=2, request=1, event="write_complete", length=2**40),
        record(t_ns=2**62, seq=3, request=2, layer="device", event="device_write", dur_ns=2**62 - 1),
        record(t_ns=2**63 - 1, seq=4, request=2, event="write_complete", length=2**62),
    ]
    (tmp_path / "t.jsonl").write_bytes(b"".join(map(line, records)))
    proc = invoke_cli("plot", "t.jsonl", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "t-throughput.png").stat().st_size > 5000


def test_a_trace_with_no_request_records_is_refused(tmp_path: Path) -> None:
    """A trace of records that belong to no request (a boot, a bugcheck) has nothing to plot: exit 2 saying so."""
    (tmp_path / "t.jsonl").write_bytes(line(record(request=None, event="bugcheck")))
    proc = invoke_cli("plot", "t.jsonl", cwd=tmp_path)
    assert_refused(proc, "t.jsonl", "there is nothing to plot", "no plot was written")
    assert sorted(os.listdir(tmp_path)) == ["t.jsonl"]


def test_many_distinct_durations_are_rounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Past MAX_DISTINCT distinct durations a layer's are kept to 3 significant digits: memory stays bounded."""
    import stacksim.plot
    from stacksim._io import open_input

    monkeypatch.setattr(stacksim.plot, "MAX_DISTINCT", 100)
    records = [
        record(t_ns=10_000 * n, seq=n, request=n, layer="device", event="device_write", dur_ns=5000 + n) for n in range(1, 500)
    ]
    (tmp_path / "t.jsonl").write_bytes(b"".join(map(line, records)))
    with open_input(tmp_path / "t.jsonl", "trace") as f:
        summary = stacksim.plot.summarise_trace(f, "t.jsonl")
    stack = summary.stacks["crashdump"]
    assert stack.rounded == {"device"}
    assert sorted(stack.durations["device"]) == list(range(5000, 5501, 10))
    assert sum(stack.durations["device"].values()) == 499
