"""Parameter sweeps: grids, streaming output, resume, failing points, the CLI."""

from __future__ import annotations

import csv
import importlib
import io
import json
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from stacksim.cli import app
from stacksim.filters import read_plugin
from stacksim.scenario import ScenarioError
from stacksim.sweep import SweepError, grid, parse_set, run_sweep

BASE: dict[str, Any] = {
    "scenario": {"name": "sw"},
    "registry": {"DumpFilters": ["dumpfve.sys"], "CrashDumpEnabled": 1},
    "memory": {"ram": "1 MiB"},
}


def rows(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


def test_parse_set_keys_and_values() -> None:
    """--set takes TOML dotted keys (quotes for dotted names) and TOML or bare values."""
    a = parse_set('filters."dumpfve.sys".per_byte=0.3ns,"1 ns",2')
    assert a.path == ("filters", "dumpfve.sys", "per_byte")
    assert a.values == ("0.3ns", "1 ns", 2)
    b = parse_set('registry.DumpFilters=["dumpfve.sys", "delayflt.sys"],[]')
    assert b.values == (["dumpfve.sys", "delayflt.sys"], [])


@pytest.mark.parametrize("bad", ["disk.bandwidth", "=1,2", "disk..x=1", "disk.latency="])
def test_parse_set_rejects(bad: str) -> None:
    """A --set without KEY=VALUES is refused with an example."""
    with pytest.raises(SweepError, match="--set"):
        parse_set(bad)


def test_grid_is_the_ordered_product_with_stable_ids() -> None:
    """The grid is every combination, last axis fastest; ids depend only on the values."""
    g = grid([parse_set("disk.bandwidth=1GB/s,3GB/s"), parse_set("memory.ram=1MiB,2MiB,4MiB")])
    assert [tuple(p.labels.values()) for p in g][:4] == [
        ("1GB/s", "1MiB"),
        ("1GB/s", "2MiB"),
        ("1GB/s", "4MiB"),
        ("3GB/s", "1MiB"),
    ]
    assert len({p.point_id for p in g}) == 6
    assert [p.point_id for p in g] == [
        p.point_id for p in grid([parse_set("disk.bandwidth=1GB/s,3GB/s"), parse_set("memory.ram=1MiB,2MiB,4MiB")])
    ]


def test_sweep_streams_rows_and_resumes(tmp_path: Path) -> None:
    """Each point becomes a row; rerunning skips finished points and drops a torn last line."""
    out = tmp_path / "r.csv"
    axes = [parse_set("disk.bandwidth=1GB/s,3GB/s"), parse_set("memory.ram=1MiB,2MiB")]
    with ThreadPoolExecutor(2) as ex:
        assert run_sweep("s.toml", BASE, axes, out, ex) == (4, 0, 0)
    first = rows(out)
    assert sorted((r["disk.bandwidth"], r["memory.ram"]) for r in first) == [
        ("1GB/s", "1MiB"),
        ("1GB/s", "2MiB"),
        ("3GB/s", "1MiB"),
        ("3GB/s", "2MiB"),
    ]
    assert {r["status"] for r in first} == {"ok"}
    by_point = {(r["disk.bandwidth"], r["memory.ram"]): int(r["dump_time_ns"]) for r in first}
    assert by_point[("1GB/s", "2MiB")] > by_point[("3GB/s", "2MiB")]
    # Simulate an interruption: the last row was half written, and one row is missing.
    text = out.read_text().splitlines(keepends=True)
    out.write_text("".join(text[:-2]) + text[-1][:10])
    with ThreadPoolExecutor(2) as ex:
        assert run_sweep("s.toml", BASE, axes, out, ex) == (2, 2, 0)
    assert sorted(r["point_id"] for r in rows(out)) == sorted(r["point_id"] for r in first)


class ReversedExecutor(ThreadPoolExecutor):
    """Finishes the points in the reverse of the order they were submitted."""

    def __init__(self) -> None:
        super().__init__(1)
        self.pending: list[Any] = []

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        from concurrent.futures import Future

        fut: Future[Any] = Future()
        self.pending.append((fut, fn, args, kwargs))
        if len(self.pending) == 6:  # the whole grid is in: run it backwards
            for f, g, a, k in reversed(self.pending):
                f.set_result(g(*a, **k))
        return fut


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_finished_sweep_is_written_in_grid_order(tmp_path: Path, suffix: str) -> None:
    """Rows stream in completion order; the finished file is in grid order, the same every run."""
    out = tmp_path / f"r{suffix}"
    axes = [parse_set("disk.bandwidth=1GB/s,3GB/s"), parse_set("memory.ram=1MiB,2MiB,4MiB")]
    with ReversedExecutor() as ex:
        assert run_sweep("s.toml", BASE, axes, out, ex) == (6, 0, 0)
    reference = tmp_path / f"ref{suffix}"
    with ThreadPoolExecutor(1) as ex:
        run_sweep("s.toml", BASE, axes, reference, ex)
    assert out.read_bytes() == reference.read_bytes()
    if suffix == ".csv":
        ids = [r["point_id"] for r in rows(out)]
    else:
        ids = [json.loads(line)["point_id"] for line in out.read_text().splitlines()]
    assert ids == [p.point_id for p in grid(axes)]


def test_failing_point_is_recorded_and_others_run(tmp_path: Path) -> None:
    """A point whose run fails is recorded with its status and message; the other points still run."""
    out = tmp_path / "r.csv"
    with ThreadPoolExecutor(2) as ex:
        ran = run_sweep("s.toml", BASE, [parse_set("layout.size=512KiB,2MiB")], out, ex)
    assert ran == (2, 0, 0)
    result = {r["layout.size"]: r for r in rows(out)}
    assert result["512KiB"]["status"] == "file_too_small"
    assert "holds 524,288 bytes" in result["512KiB"]["error"]
    assert result["2MiB"]["status"] == "ok"


def test_a_point_past_the_disk_is_refused_before_anything_runs(tmp_path: Path) -> None:
    """A point whose layout does not fit its disk is invalid, like any other bad value: nothing runs."""
    out = tmp_path / "r.csv"
    with ThreadPoolExecutor(1) as ex, pytest.raises(ScenarioError, match=r"disk.size=1MiB.*\[layout\] partition_offset"):
        run_sweep("s.toml", BASE, [parse_set("disk.size=2TB,1MiB")], out, ex)
    assert not out.exists()


def test_invalid_point_fails_before_anything_runs(tmp_path: Path) -> None:
    """A typo or bad value fails the sweep at once, naming the point and key; nothing is written."""
    out = tmp_path / "r.csv"
    with ThreadPoolExecutor(1) as ex, pytest.raises(ScenarioError, match=r"disk.bandwidth=fast.*\[disk\] bandwidth"):
        run_sweep("s.toml", BASE, [parse_set("disk.bandwidth=1GB/s,fast")], out, ex)
    assert not out.exists()


def test_output_of_another_sweep_is_refused(tmp_path: Path) -> None:
    """Resuming into a file with other columns is refused instead of mixing results."""
    out = tmp_path / "r.csv"
    out.write_text("point_id,other\nabc,1\n")
    with ThreadPoolExecutor(1) as ex, pytest.raises(SweepError, match="different sweep"):
        run_sweep("s.toml", BASE, [parse_set("memory.ram=1MiB")], out, ex)


def test_cli_sweep_with_worker_processes(tmp_path: Path) -> None:
    """`stacksim sweep` runs the grid in worker processes and streams a CSV and a JSONL file."""
    scenario = tmp_path / "s.toml"
    scenario.write_text('[scenario]\nname = "sw"\n[registry]\nCrashDumpEnabled = 1\n[memory]\nram = "1 MiB"\n')
    out = tmp_path / "r.jsonl"
    r = CliRunner().invoke(
        app, ["sweep", str(scenario), "--set", "dump_port.max_transfer=4KiB,64KiB", "--out", str(out), "--workers", "2"]
    )
    assert r.exit_code == 0, r.stderr
    assert "2 points run (0 failed), 0 already there, 2 in the grid" in r.stdout
    assert len(out.read_text().splitlines()) == 2
    again = CliRunner().invoke(app, ["sweep", str(scenario), "--set", "dump_port.max_transfer=4KiB,64KiB", "--out", str(out)])
    assert "0 points run (0 failed), 2 already there" in again.stdout


def test_cli_sweep_bad_set_exits_2(tmp_path: Path) -> None:
    """A malformed --set exits 2 with a message and writes nothing."""
    scenario = tmp_path / "s.toml"
    scenario.write_text('[scenario]\nname = "sw"\n')
    r = CliRunner().invoke(app, ["sweep", str(scenario), "--set", "disk.bandwidth", "--out", str(tmp_path / "r.csv")])
    assert r.exit_code == 2
    assert "write KEY=V1,V2" in r.stderr
    assert not (tmp_path / "r.csv").exists()


def test_cli_sweep_on_a_local_dask_cluster(tmp_path: Path) -> None:
    """`--dask local` runs the same grid on a Dask LocalCluster through its Executor."""
    scenario = tmp_path / "s.toml"
    scenario.write_text('[scenario]\nname = "sw"\n[registry]\nCrashDumpEnabled = 3\n')
    out = tmp_path / "r.csv"
    r = CliRunner().invoke(
        app, ["sweep", str(scenario), "--set", "disk.latency=10us,20us", "--out", str(out), "--dask", "local", "--workers", "1"]
    )
    assert r.exit_code == 0, r.stderr + r.stdout
    assert sorted(row["status"] for row in rows(out)) == ["ok", "ok"]


def test_plugins_start_afresh_for_every_point(tmp_path: Path) -> None:
    """Entry points are scanned once per worker; plugin files run again, so no state carries over."""
    sweep = importlib.import_module("stacksim.sweep")  # stacksim.sweep is the API function

    plugin = tmp_path / "myflt.py"
    plugin.write_text(
        "from stacksim import DumpFilter\n"
        "class MyFlt(DumpFilter):\n"
        "    service_name = 'myflt.sys'\n"
        "    calls = 0\n"
        "    async def dump_write(self, extension, request):\n"
        "        type(self).calls += 1\n"
        "        return 0\n"
    )
    source = (read_plugin(plugin),)
    first = sweep._catalog(source)
    scanned = sweep._ENTRY_POINTS
    first_cls = first.get("myflt.sys")
    assert first_cls is not None
    first_cls.calls = 5  # type: ignore[attr-defined]  # state a point left behind
    second = sweep._catalog(source)
    second_cls = second.get("myflt.sys")
    assert second_cls is not first_cls
    assert second_cls.calls == 0  # type: ignore[union-attr]
    assert sweep._ENTRY_POINTS is scanned
    assert "dumpfve.sys" in second.names()


def test_awkward_text_in_cells_survives_the_rewrite(tmp_path: Path) -> None:
    """Error messages with commas, quotes, CR/LF and U+2028 stay one row each, in CSV and JSONL; the CSV escapes U+2028."""
    from stacksim.sweep import _in_grid_order, _line

    points = grid([parse_set("memory.ram=1MiB,2MiB,4MiB")])
    columns = ["point_id", "memory.ram", "status", "error"]
    messages = ['a, "quoted"\r\nline', "bare\rcarriage", "sep\u2028arator"]
    for suffix in (".csv", ".jsonl"):
        out = tmp_path / f"r{suffix}"
        jsonl = suffix == ".jsonl"
        rows_out = [
            {"point_id": p.point_id, "memory.ram": "x", "status": "error", "error": m}
            for p, m in zip(points, messages, strict=True)
        ]
        header = "" if jsonl else _line(dict(zip(columns, columns, strict=True)), columns, False)
        out.write_bytes((header + "".join(_line(r, columns, jsonl) for r in reversed(rows_out))).encode())
        _in_grid_order(out, points, columns, jsonl)
        text = out.read_bytes().decode()
        if jsonl:
            got = [json.loads(line)["error"] for line in text.split("\n") if line]
        else:
            got = [r["error"] for r in csv.DictReader(io.StringIO(text))]
        # a CSV cell shows U+2028 escaped, as a terminal message does (JSONL escapes it as JSON: \u2028)
        assert got == ['a, "quoted"\nline', "bare\ncarriage", "sep\\u2028arator"] if not jsonl else messages


def test_resuming_a_file_with_only_a_header_writes_no_second_header(tmp_path: Path) -> None:
    """A sweep interrupted before its first point keeps one header row."""
    out = tmp_path / "r.csv"
    axes = [parse_set("memory.ram=1MiB,2MiB")]
    with ThreadPoolExecutor(1) as ex:
        run_sweep("s.toml", BASE, axes, out, ex)
    out.write_text(out.read_text().splitlines(keepends=True)[0])  # only the header is left
    with ThreadPoolExecutor(1) as ex:
        assert run_sweep("s.toml", BASE, axes, out, ex) == (2, 0, 0)
    lines = out.read_text().splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("point_id,")


def test_local_workers_ignore_ctrl_c() -> None:
    """Pool workers ignore SIGINT (the main process stops them), so Ctrl-C prints no worker tracebacks."""
    import signal

    from stacksim.sweep import local_executor

    with local_executor(1) as ex:
        assert ex.submit(signal.getsignal, signal.SIGINT).result(timeout=60) == signal.SIG_IGN


@pytest.mark.parametrize(
    ("suffix", "content", "expected"),
    [
        (".jsonl", b"not json\n", "line 1 is not a row of a sweep's results (not JSON)"),
        (".jsonl", b"[1, 2]\n", "line 1 is not a row of a sweep's results (not an object)"),
        (".jsonl", b'{"x": 1}\n', "line 1 is not a row of a sweep's results (no point_id)"),
        (".jsonl", b'{"point_id": "a"}\n', "holds results of a different sweep (line 1 has the keys point_id"),
        (".jsonl", b"[" * 100_000 + b"]" * 100_000 + b"\n", "line 1 is not a row of a sweep's results (not JSON)"),
        (".csv", b"\xff\xfe\x00p\x00", "UTF-16"),
        (".csv", b"point_id,x\n" + b"a," + b"y" * 200_000 + b"\n", "is not a sweep's CSV results"),
    ],
    ids=["jsonl-garbage", "jsonl-array", "jsonl-no-id", "jsonl-other-sweep", "jsonl-deep", "csv-utf16", "csv-huge-cell"],
)
def test_resuming_into_a_file_that_is_not_results_is_refused(tmp_path: Path, suffix: str, content: bytes, expected: str) -> None:
    """A --out that is not a sweep's results file is refused with the file and line, and left as it was."""
    out = tmp_path / f"r{suffix}"
    out.write_bytes(content)
    with ThreadPoolExecutor(1) as ex, pytest.raises(SweepError, match=re.escape(expected)):
        run_sweep("s.toml", BASE, [parse_set("memory.ram=1MiB")], out, ex)
    assert out.read_bytes() == content


def test_values_with_units_get_a_number_column_beside_them(tmp_path: Path) -> None:
    """Each value given with a unit has its number beside it (bytes, ns, bytes/s, ps per byte); a count has none."""
    out = tmp_path / "r.csv"
    axes = [
        parse_set("disk.bandwidth=1GB/s"),
        parse_set("memory.ram=1MiB"),
        parse_set("disk.latency=20us"),
        parse_set('filters."dumpfve.sys".per_byte=0.3ns'),
        parse_set("scenario.seed=3"),
    ]
    with ThreadPoolExecutor(1) as ex:
        run_sweep("s.toml", BASE, axes, out, ex)
    (row,) = rows(out)
    assert list(row)[:10] == [
        "point_id",
        "disk.bandwidth",
        "disk.bandwidth_Bps",
        "memory.ram",
        "memory.ram_bytes",
        "disk.latency",
        "disk.latency_ns",
        'filters."dumpfve.sys".per_byte',
        'filters."dumpfve.sys".per_byte_ps_per_byte',
        "scenario.seed",
    ]
    assert [row[k] for k in list(row)[1:10]] == ["1GB/s", "1000000000", "1MiB", "1048576", "20us", "20000", "0.3ns", "300", "3"]


def test_each_layer_has_its_own_columns(tmp_path: Path) -> None:
    """The per-layer statistics are columns (device_busy_ns, dumpfve.sys_p99_ns, ...) equal to the run's, not JSON in a cell."""
    from stacksim.api import simulate

    out = tmp_path / "r.csv"
    with ThreadPoolExecutor(1) as ex:
        run_sweep("s.toml", BASE, [parse_set("disk.bandwidth=1GB/s")], out, ex)
    (row,) = rows(out)
    result = simulate(BASE, overrides={"disk.bandwidth": "1GB/s"})
    layer_cells = {k: float(v) for k, v in row.items() if k.startswith(("crashdmp_", "dumpfve.sys_", "miniport_", "device_"))}
    as_json = result.as_dict()["layers"]
    expected = {f"{layer}_{k}": v for layer, s in as_json.items() for k, v in s.items()}
    assert layer_cells == expected
    assert len(expected) == 4 * 14
    assert list(row)[-56:] == list(expected)
    assert "layers" not in row


def test_a_point_without_a_layer_leaves_its_cells_empty(tmp_path: Path) -> None:
    """Sweeping DumpFilters gives every filter any point has its columns; a point without that filter leaves them empty."""
    out = tmp_path / "r.csv"
    with ThreadPoolExecutor(1) as ex:
        run_sweep("s.toml", BASE, [parse_set('registry.DumpFilters=[],["dumpfve.sys"]')], out, ex)
    without, with_filter = rows(out)
    assert (without["dumpfve.sys_busy_ns"], with_filter["dumpfve.sys_calls"] != "") == ("", True)


SHIPPED = sorted((Path(__file__).parents[1] / "scenarios").glob("*.toml"))


@pytest.mark.parametrize(
    ("name", "overrides"),
    [(p.stem, {}) for p in SHIPPED]
    + [("crash-nvme-bitlocker", {"registry.CrashDumpEnabled": 0}), ("hibernate-basic", {"hibernation.compression": False})],
    ids=[p.stem for p in SHIPPED] + ["crash-dump-disabled", "hibernate-uncompressed"],
)
def test_the_predicted_layers_are_the_result_layers(name: str, overrides: dict[str, Any]) -> None:
    """layers_of(scenario), which names a sweep's per-layer columns before anything runs, is the run's list of layers."""
    from stacksim.api import load_scenario, simulate
    from stacksim.sweep import layers_of

    s = load_scenario(Path(__file__).parents[1] / "scenarios" / f"{name}.toml", overrides=overrides)
    assert layers_of(s) == list(simulate(s).layers)
