"""The Python API (stacksim.api): simulate from a path with overrides and plugins, DataFrames, event loops."""

from __future__ import annotations

import asyncio
import signal
import sys
import warnings
from pathlib import Path

import pytest
import trio

import stacksim
from stacksim.cli import app

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "scenarios" / "crash-nvme-bitlocker.toml"

SMALL = """\
[scenario]
name = "small"
[registry]
CrashDumpEnabled = 1
DumpFilters = ["dumpfve.sys"]
[memory]
ram = "4 MiB"
[disk]
preset = "nvme-pcie4"
"""


@pytest.fixture
def small(tmp_path: Path) -> Path:
    path = tmp_path / "small.toml"
    path.write_text(SMALL)
    return path


def test_simulate_takes_a_path() -> None:
    """stacksim.simulate(path) runs the file as `stacksim run` does: the README scenario's golden dump time."""
    result = stacksim.simulate(str(README))
    assert (result.status, result.dump_time_ns) == ("ok", 8_849_828_069)


def test_simulate_takes_a_pathlib_path_and_a_dict(small: Path) -> None:
    """A pathlib.Path and the parsed TOML table give the same result JSON but for the name of the source."""
    import tomllib

    assert stacksim.simulate(small).to_json() == stacksim.simulate(tomllib.loads(SMALL)).to_json()


def test_an_override_equals_the_same_change_in_the_toml(small: Path, tmp_path: Path) -> None:
    """overrides={"disk.bandwidth": "1 GB/s"} gives byte for byte the result JSON of the file with that line added."""
    edited = tmp_path / "edited.toml"
    edited.write_text(SMALL + 'bandwidth = "1 GB/s"\n')
    overridden = stacksim.simulate(small, overrides={"disk.bandwidth": "1 GB/s"})
    assert overridden.to_json() == stacksim.simulate(edited).to_json()
    assert overridden.dump_time_ns != stacksim.simulate(small).dump_time_ns


def test_a_quoted_filter_key_overrides_a_filter_parameter(small: Path, tmp_path: Path) -> None:
    """'filters."dumpfve.sys".per_byte' sets the filter's table, as the same [filters."dumpfve.sys"] in the file does."""
    edited = tmp_path / "edited.toml"
    edited.write_text(SMALL + '[filters."dumpfve.sys"]\nper_byte = "1 ns"\n')
    overridden = stacksim.simulate(small, overrides={'filters."dumpfve.sys".per_byte': "1 ns"})
    assert overridden.to_json() == stacksim.simulate(edited).to_json()


def test_the_json_is_what_run_writes(small: Path, tmp_path: Path) -> None:
    """result.to_json() is byte for byte the file `stacksim run --json` writes."""
    from typer.testing import CliRunner

    out = tmp_path / "r.json"
    assert CliRunner().invoke(app, ["run", str(small), "--json", str(out)]).exit_code == 0
    assert stacksim.simulate(small).to_json() == out.read_text()


def test_seed_overrides_the_scenario_seed(small: Path) -> None:
    """seed=7 is `--seed 7`: the result records seed 7."""
    assert stacksim.simulate(small, seed=7).seed == 7


def test_a_bad_key_is_the_validate_message(small: Path) -> None:
    """A misspelt override key raises ScenarioError with the one paragraph `stacksim validate` prints for the same TOML."""
    with pytest.raises(stacksim.ScenarioError) as caught:
        stacksim.simulate(small, overrides={"disk.bandwith": "1 GB/s"})
    assert str(caught.value).startswith(f"{small}: [disk] bandwith: unknown key; allowed keys: bandwidth, ")
    assert "\n" not in str(caught.value)


def test_a_key_that_is_not_a_dotted_key_is_a_scenario_error(small: Path) -> None:
    """An override key such as 'disk..x' is refused with the --set message, as a ScenarioError naming the file."""
    with pytest.raises(stacksim.ScenarioError, match=r"overrides\['disk\.\.x'\]: 'disk\.\.x' is not a key path such as"):
        stacksim.simulate(small, overrides={"disk..x": 1})


def test_an_override_through_a_value_is_a_scenario_error(small: Path) -> None:
    """'memory.ram.x' (ram is a value, not a table) is refused in words, not a TypeError."""
    with pytest.raises(stacksim.ScenarioError, match=r"memory\.ram\.x: ram is not a table in the scenario"):
        stacksim.simulate(small, overrides={"memory.ram.x": 1})


def test_a_bad_value_is_the_validate_message(small: Path) -> None:
    """A value with an unknown unit raises ScenarioError naming the key, as validate does."""
    with pytest.raises(stacksim.ScenarioError, match=r"\[disk\] bandwidth: "):
        stacksim.simulate(small, overrides={"disk.bandwidth": "1 parsec"})


def test_a_none_override_is_refused_not_the_default(small: Path) -> None:
    """overrides={"disk.bandwidth": None} is a ScenarioError naming the key (TOML has no null), not a run with the default."""
    expected = r"overrides\['disk\.bandwidth'\]: None is not a TOML value \(TOML has no null\)"
    with pytest.raises(stacksim.ScenarioError, match=expected):
        stacksim.load_scenario(small, overrides={"disk.bandwidth": None})


def test_a_none_inside_an_override_table_is_refused(small: Path) -> None:
    """overrides={"disk": {"bandwidth": None}}: the None inside the table is refused too, with where it is."""
    with pytest.raises(stacksim.ScenarioError, match=r"overrides\['disk'\]: None \(at bandwidth\) is not a TOML value"):
        stacksim.simulate(small, overrides={"disk": {"bandwidth": None}})


def test_a_none_inside_an_override_array_is_refused(small: Path) -> None:
    """overrides={"registry.DumpFilters": ["dumpfve.sys", None]}: refused, naming the item."""
    with pytest.raises(stacksim.ScenarioError, match=r"overrides\['registry\.DumpFilters'\]: None \(at \[1\]\)"):
        stacksim.simulate(small, overrides={"registry.DumpFilters": ["dumpfve.sys", None]})


def test_overlapping_override_keys_are_refused(small: Path) -> None:
    """{"disk.bandwidth": ..., "disk": {...}} sets one key inside the other's table: refused, as TOML refuses a duplicate key."""
    expected = r"overrides\['disk'\] and overrides\['disk\.bandwidth'\]: disk holds disk\.bandwidth"
    with pytest.raises(stacksim.ScenarioError, match=expected):
        stacksim.simulate(small, overrides={"disk.bandwidth": "1 GB/s", "disk": {"latency": "1 us"}})


def test_one_key_spelt_two_ways_is_refused(small: Path) -> None:
    """'disk.bandwidth' and 'disk."bandwidth"' are the same key: refused rather than one silently winning."""
    with pytest.raises(stacksim.ScenarioError, match="the same key; TOML refuses a key defined twice"):
        stacksim.simulate(small, overrides={"disk.bandwidth": "1 GB/s", 'disk."bandwidth"': "2 GB/s"})


def test_sibling_override_keys_are_not_an_overlap(small: Path) -> None:
    """disk.bandwidth and disk.latency share a table but not a key: both are set."""
    s = stacksim.load_scenario(small, overrides={"disk.bandwidth": "1 GB/s", "disk.latency": "3 us"})
    assert (s.disk.bandwidth, s.disk.latency) == (1_000_000_000, 3000)


def test_a_none_sweep_value_is_refused(small: Path) -> None:
    """stacksim.sweep's axes refuse None as a value, as overrides do (was: the point ran with the default)."""
    pytest.importorskip("pandas")
    from stacksim.sweep import SweepError

    with pytest.raises(SweepError, match=r"axes\['disk\.bandwidth'\]: None is not a TOML value"):
        stacksim.sweep(small, {"disk.bandwidth": [None, "1 GB/s"]}, workers=1)


def test_a_missing_file_is_a_scenario_error(tmp_path: Path) -> None:
    """A scenario path that does not exist raises ScenarioError: 'no such scenario file'."""
    with pytest.raises(stacksim.ScenarioError, match="no such scenario file"):
        stacksim.simulate(tmp_path / "nope.toml")


def test_a_plugin_file_is_loaded_as_with_dash_dash_plugin(small: Path, tmp_path: Path) -> None:
    """plugins=[path] loads the file's filters (and nothing else), as --plugin does; the result records its hash."""
    plugin = tmp_path / "myflt.py"
    plugin.write_text(
        "from stacksim import DumpFilter\n"
        "class MyFlt(DumpFilter):\n"
        "    service_name = 'myflt.sys'\n"
        "    async def dump_write(self, extension, request):\n"
        "        return 0\n"
    )
    result = stacksim.simulate(small, overrides={"registry.DumpFilters": ["myflt.sys"]}, plugins=[plugin])
    assert [f.name for f in result.filters] == ["myflt.sys"]
    assert result.replay["plugins"][0]["origin"] == "plugin myflt.py"


def test_a_bad_plugin_is_a_plugin_error(small: Path, tmp_path: Path) -> None:
    """A plugin that raises on import is a PluginError naming the file, as --plugin reports it."""
    plugin = tmp_path / "bad.py"
    plugin.write_text("raise SystemExit(3)\n")
    with pytest.raises(stacksim.PluginError, match=r"bad\.py: importing the plugin failed: it called sys\.exit\(3\)"):
        stacksim.simulate(small, plugins=[plugin])


def test_an_unknown_filter_names_the_plugin_option(small: Path) -> None:
    """A filter no catalog has is the validate message (which says how to load others)."""
    with pytest.raises(stacksim.ScenarioError, match=r"unknown filter 'myflt\.sys'"):
        stacksim.simulate(small, overrides={"registry.DumpFilters": ["myflt.sys"]})


def test_the_old_signature_still_runs() -> None:
    """simulate(scenario, catalog) with a validated Scenario runs as before (the CLI's and tests' call)."""
    catalog = stacksim.FilterCatalog()
    s = stacksim.load_scenario(README, catalog)
    assert stacksim.simulate(s, catalog).dump_time_ns == 8_849_828_069


def test_a_scenario_object_takes_overrides(small: Path) -> None:
    """A validated Scenario with overrides is validated again from its TOML, with the change made."""
    s = stacksim.load_scenario(small)
    assert stacksim.simulate(s, overrides={"memory.ram": "8 MiB"}).dump_bytes > stacksim.simulate(s).dump_bytes


def test_typed_fields_and_layer_attributes(small: Path) -> None:
    """The result's fields are typed: dump time in ns (int), status (str), each layer's LayerSummary with attributes."""
    result = stacksim.simulate(small)
    device = result.layers["device"]
    assert isinstance(device, stacksim.LayerSummary)
    assert (type(result.dump_time_ns), type(device.busy_ns), type(device.p99_ns)) == (int, int, int)
    assert device.busy_ns == result.as_dict()["layers"]["device"]["busy_ns"]


def test_layers_frame_holds_the_result_layers(small: Path) -> None:
    """layers_frame() has one row per layer, top down, with the result JSON's numbers and the share of the dump time."""
    result = stacksim.simulate(small)
    frame = result.layers_frame()
    assert list(frame.index) == ["crashdmp", "dumpfve.sys", "miniport", "device"]
    assert list(frame.columns) == [
        *("calls", "busy_ns", "min_ns", "mean_ns", "stdev_ns", "p50_ns", "p90_ns", "p99_ns", "p99_9_ns", "max_ns"),
        "share_percent",
    ]
    assert int(frame.loc["device", "busy_ns"]) == result.layers["device"].busy_ns
    assert float(frame.loc["device", "share_percent"]) == result.share_percent("device")


def test_frames_without_pandas_name_the_extra(small: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without pandas, layers_frame() raises ImportError naming stacksim[pandas]."""
    result = stacksim.simulate(small)
    monkeypatch.setitem(sys.modules, "pandas", None)  # import pandas now raises ImportError
    with pytest.raises(ImportError, match=r"RunResult\.layers_frame\(\) returns a pandas DataFrame .* 'stacksim\[pandas\]'"):
        result.layers_frame()
    with pytest.raises(ImportError, match=r"stacksim\.read_trace\(\) .*stacksim\[pandas\]"):
        stacksim.read_trace(small)


def test_a_trace_path_is_written_and_read_back(small: Path, tmp_path: Path) -> None:
    """trace=path writes the JSON-lines trace; read_trace gives one row per record with the trace's fields."""
    from stacksim.trace import FIELDS

    trace = tmp_path / "t.jsonl"
    result = stacksim.simulate(small, trace=trace)
    frame = stacksim.read_trace(trace)
    assert list(frame.columns) == list(FIELDS)
    assert len(frame) == len(trace.read_text().splitlines())
    writes = frame[(frame.layer == "device") & (frame.event == "dump_write")]
    assert int(writes.dur_ns.sum()) == result.layers["device"].busy_ns - int(
        frame[(frame.layer == "device") & (frame.event != "dump_write")].dur_ns.sum()
    )
    assert str(frame.request.dtype) == "Int64"


def test_a_trace_onto_the_scenario_is_refused(small: Path) -> None:
    """trace= naming the scenario file is an OutputError, and the scenario is untouched."""
    with pytest.raises(stacksim.OutputError):
        stacksim.simulate(small, trace=small)
    assert small.read_text() == SMALL


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not json\n", "not a JSON trace file"),
        (b"[1, 2]\n", "line 1 is not a trace record"),
        (b'{"t_ns": 0}\n', "line 1 is not a trace record"),
        (b"\xff\xfe\n", "line 1 is not UTF-8 text"),
    ],
    ids=["not-json", "array", "missing-fields", "not-utf8"],
)
def test_read_trace_refuses_what_is_not_a_trace(tmp_path: Path, content: bytes, message: str) -> None:
    """A line that is not a trace record is an InputError naming the file and the line."""
    path = tmp_path / "t.jsonl"
    path.write_bytes(content)
    with pytest.raises(stacksim.InputError, match=message):
        stacksim.read_trace(path)


def test_read_trace_refuses_a_fifo_and_caps_the_records(small: Path, tmp_path: Path) -> None:
    """A FIFO is refused without blocking; a trace longer than max_records is refused with the cap."""
    import os

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(stacksim.InputError, match="FIFO"):
        stacksim.read_trace(fifo)
    trace = tmp_path / "t.jsonl"
    stacksim.simulate(small, trace=trace)
    with pytest.raises(stacksim.InputError, match="has more than 10 records; read_trace loads at most 10"):
        stacksim.read_trace(trace, max_records=10)


def test_simulate_inside_a_running_asyncio_loop(small: Path) -> None:
    """Inside asyncio.run (Jupyter's loop), with an asyncio signal handler installed, simulate runs and warns of nothing."""
    expected = stacksim.simulate(small).to_json()

    async def cell() -> str:
        asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, lambda: None)  # asyncio owns the wake-up fd
        try:
            return stacksim.simulate(small).to_json()
        finally:
            asyncio.get_running_loop().remove_signal_handler(signal.SIGUSR1)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert asyncio.run(cell()) == expected


def test_simulate_inside_a_trio_run(small: Path) -> None:
    """Called from trio code, simulate runs on a worker thread (trio.run refuses to nest) and gives the same result."""
    expected = stacksim.simulate(small).dump_time_ns

    async def main() -> int:
        return stacksim.simulate(small).dump_time_ns

    assert trio.run(main) == expected


def test_a_scenario_of_the_wrong_type_is_a_type_error() -> None:
    """simulate(42) raises TypeError saying what a scenario may be."""
    with pytest.raises(TypeError, match=r"a scenario is a file's path, a table \(dict\) or a stacksim\.Scenario, not int"):
        stacksim.simulate(42)  # type: ignore[arg-type]


@pytest.mark.timeout(300)
def test_sweep_returns_the_rows_as_a_frame(small: Path) -> None:
    """stacksim.sweep runs the grid on worker processes: one row per point in grid order, with typed numbers."""
    frame = stacksim.sweep(small, {"disk.bandwidth": ["1GB/s", "3GB/s"], "memory.ram": ["4MiB", "8MiB"]}, workers=2)
    assert list(frame["disk.bandwidth"]) == ["1GB/s", "1GB/s", "3GB/s", "3GB/s"]
    assert list(frame["disk.bandwidth_Bps"]) == [10**9, 10**9, 3 * 10**9, 3 * 10**9]
    assert list(frame["memory.ram_bytes"]) == [4 * 2**20, 8 * 2**20] * 2
    one = stacksim.simulate(small, overrides={"disk.bandwidth": "3GB/s", "memory.ram": "8MiB"})
    last = frame.iloc[3]
    assert (last["status"], int(last["dump_time_ns"])) == ("ok", one.dump_time_ns)
    assert int(last["device_busy_ns"]) == one.layers["device"].busy_ns
    assert int(last["dumpfve.sys_p99_ns"]) == one.layers["dumpfve.sys"].p99_ns


@pytest.mark.timeout(300)
@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_sweep_with_out_writes_the_file(small: Path, tmp_path: Path, suffix: str) -> None:
    """With out=, the sweep's file is written as `stacksim sweep --out` writes it, and the frame is read from it."""
    from typer.testing import CliRunner

    out = tmp_path / f"api{suffix}"
    frame = stacksim.sweep(small, {"disk.latency": ["10us", "20us"]}, out=out, workers=1)
    cli = tmp_path / f"cli{suffix}"
    r = CliRunner().invoke(app, ["sweep", str(small), "--set", "disk.latency=10us,20us", "--out", str(cli), "--workers", "1"])
    assert r.exit_code == 0, r.stderr
    assert out.read_bytes() == cli.read_bytes()
    assert list(frame["disk.latency_ns"]) == [10_000, 20_000]


def test_sweep_refuses_a_repeated_value(small: Path) -> None:
    """An axis listing a value twice is a SweepError, as a --set doing so is."""
    with pytest.raises(stacksim.SweepError, match=r"axes\['memory\.ram'\]: the value 4MiB is given twice"):
        stacksim.sweep(small, {"memory.ram": ["4MiB", "4MiB"]})


def test_sweep_refuses_a_bad_point_before_running(small: Path) -> None:
    """A point that is not a valid scenario is a ScenarioError naming the point, before any worker starts."""
    with pytest.raises(stacksim.ScenarioError, match=r"with disk\.bandwidth=fast: \[disk\] bandwidth"):
        stacksim.sweep(small, {"disk.bandwidth": ["1GB/s", "fast"]})
