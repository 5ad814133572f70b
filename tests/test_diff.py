"""`stacksim diff A.json B.json`: what changed between two runs (stacksim/diff.py and its command)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import invoke_cli

from stacksim.diff import compare

ROOT = Path(__file__).parent.parent
SCENARIO = ROOT / "scenarios" / "crash-nvme-bitlocker.toml"


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """
    A folder with a.json (the README's scenario), slow.json (its disk at 1 GB/s), none.json (crash-no-filters)
    and failed.json (critical-filter-fails: refused before the first write, every layer 0 ns busy).
    """
    d = tmp_path_factory.mktemp("runs")
    (d / "slow.toml").write_text(SCENARIO.read_text().replace('bandwidth = "3 GB/s"', 'bandwidth = "1 GB/s"'))
    for scenario, out in (
        (SCENARIO, "a.json"),
        (d / "slow.toml", "slow.json"),
        (ROOT / "scenarios" / "crash-no-filters.toml", "none.json"),
        (ROOT / "scenarios" / "critical-filter-fails.toml", "failed.json"),
    ):
        proc = invoke_cli("run", str(scenario), "--json", str(d / out))
        assert proc.returncode == 0, proc.stderr
    return d


def _last_line(runs: Path, a: str, b: str) -> str:
    """The last line ``stacksim diff a b`` prints (it must exit 0)."""
    proc = invoke_cli("diff", a, b, cwd=runs)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()[-1]


def test_a_run_against_itself_is_no_difference(runs: Path) -> None:
    """Diffing a result with itself (the same file twice) says "no difference" and exits 0."""
    assert _last_line(runs, "a.json", "a.json") == "no difference: the same scenario and the same numbers"


def test_a_slower_disk_names_the_device_as_changed_most(runs: Path) -> None:
    """Against the same run with a 1 GB/s disk, the device is the layer that changed most, with its busy ratio and times."""
    assert _last_line(runs, "a.json", "slow.json") == "changed most: device (busy 2.04×, 5.49 s → 11.2 s)"


def test_the_changed_most_ratio_is_b_over_a_exactly(runs: Path) -> None:
    """The JSON's changed_most ratio is B's device busy_ns divided by A's."""
    a, b = (json.loads((runs / n).read_text()) for n in ("a.json", "slow.json"))
    d = compare(a, b)
    assert d.changed_most is not None
    assert d.changed_most.name == "device busy"
    assert d.changed_most.ratio == b["layers"]["device"]["busy_ns"] / a["layers"]["device"]["busy_ns"]
    assert (a["layers"]["device"]["busy_ns"], b["layers"]["device"]["busy_ns"]) == (5485261315, 11212001792)


def test_a_layer_that_went_from_idle_to_busy_is_changed_most(runs: Path) -> None:
    """failed.json → a.json: every layer was 0 ns busy; the device, busiest of those now busy, changed most (was: none named)."""
    assert _last_line(runs, "failed.json", "a.json") == "changed most: device (busy from 0, 0 ns → 5.49 s)"


def test_a_layer_that_went_from_busy_to_idle_is_changed_most(runs: Path) -> None:
    """a.json → failed.json: the other way round the line says 'to 0'."""
    assert _last_line(runs, "a.json", "failed.json") == "changed most: device (busy to 0, 5.49 s → 0 ns)"


def test_the_json_changed_most_names_a_layer_that_went_from_idle_to_busy(runs: Path) -> None:
    """In JSON, changed_most is the device's busy row: a 0, b its busy time, ratio null (B ÷ 0 has none)."""
    proc = invoke_cli("diff", "failed.json", "a.json", "--json", "-", cwd=runs)
    assert proc.returncode == 0, proc.stderr
    most = json.loads(proc.stdout)["changed_most"]
    busy = json.loads((runs / "a.json").read_text())["layers"]["device"]["busy_ns"]
    assert (most["layer"], most["a"], most["b"], most["ratio"]) == ("device", 0, busy, None)


def test_a_change_from_idle_outranks_any_factor(runs: Path) -> None:
    """A layer going 0 → 1 ns changed more than one going 1 ns → 5 s: a change from 0 is the largest of all."""
    a = json.loads((runs / "a.json").read_text())
    b = json.loads(json.dumps(a))
    a["layers"]["crashdmp"]["busy_ns"], b["layers"]["crashdmp"]["busy_ns"] = 0, 1
    a["layers"]["device"]["busy_ns"], b["layers"]["device"]["busy_ns"] = 1, 5_000_000_000
    most = compare(a, b).changed_most
    assert most is not None
    assert most.name == "crashdmp busy"


def test_among_layers_that_went_from_idle_the_busiest_is_changed_most(runs: Path) -> None:
    """Two layers idle in A: the one with more busy time in B is named (here the miniport's 7 ns over crashdmp's 3 ns)."""
    a = json.loads((runs / "a.json").read_text())
    b = json.loads(json.dumps(a))
    a["layers"]["crashdmp"]["busy_ns"], b["layers"]["crashdmp"]["busy_ns"] = 0, 3
    a["layers"]["miniport"]["busy_ns"], b["layers"]["miniport"]["busy_ns"] = 0, 7
    most = compare(a, b).changed_most
    assert most is not None
    assert most.name == "miniport busy"


def test_scenario_keys_that_differ_are_listed_old_and_new(runs: Path) -> None:
    """Only the dotted scenario key that changed is listed, with its value in A and in B."""
    a, b = (json.loads((runs / n).read_text()) for n in ("a.json", "slow.json"))
    assert [(c.key, c.old, c.new) for c in compare(a, b).scenario] == [("disk.bandwidth", "3 GB/s", "1 GB/s")]


def test_a_key_in_one_scenario_only_is_listed_as_absent_in_the_other(runs: Path) -> None:
    """A filter table one scenario has and the other lacks is a change whose other side is absent (quoted as TOML quotes it)."""
    a, b = (json.loads((runs / n).read_text()) for n in ("a.json", "none.json"))
    changes = {c.key: (c.in_a, c.in_b) for c in compare(a, b).scenario}
    assert changes['filters."dumpfve.sys".per_call'] == (True, False)


def test_a_layer_in_one_run_only_is_new_or_gone(runs: Path) -> None:
    """dumpfve.sys, in A and not in B, has no value in B and a ratio of "gone"; the other way round it is "new"."""
    proc = invoke_cli("diff", "a.json", "none.json", cwd=runs)
    assert proc.returncode == 0, proc.stderr
    row = next(line for line in proc.stdout.splitlines() if "dumpfve.sys busy" in line)
    assert [cell.strip() for cell in row.split("│")[2:5]] == ["2.71 s", "—", "gone"]
    back = invoke_cli("diff", "none.json", "a.json", cwd=runs)
    assert "new" in next(line for line in back.stdout.splitlines() if "dumpfve.sys busy" in line)


def test_json_output_parses_and_holds_the_same_facts(runs: Path) -> None:
    """--json OUT writes the comparison as JSON: the changed key, the device row with its ratio, and changed_most."""
    proc = invoke_cli("diff", "a.json", "slow.json", "--json", "d.json", cwd=runs)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads((runs / "d.json").read_text())
    assert doc["same"] is False
    assert doc["scenario"] == [{"key": "disk.bandwidth", "a": "3 GB/s", "b": "1 GB/s"}]
    assert doc["changed_most"]["layer"] == "device"
    assert (doc["changed_most"]["a"], doc["changed_most"]["b"], doc["changed_most"]["unit"]) == (5485261315, 11212001792, "ns")


def test_json_to_stdout_prints_only_json(runs: Path) -> None:
    """--json - prints the JSON and no table; a self-diff's says same."""
    proc = invoke_cli("diff", "a.json", "a.json", "--json", "-", cwd=runs)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["same"] is True


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("not json {", "bad.json"),
        ("[1, 2]", "is a JSON list, not a result"),
        ('{"status": "ok"}', "has no replay record"),
        ('{"replay": {"scenario": {}, "seed": 1, "batch": true, "plugins": []}}', "key 'status' is missing"),
    ],
    ids=["not-json", "a-list", "no-replay", "no-numbers"],
)
def test_a_bad_result_file_is_exit_2_naming_it(runs: Path, content: str, expected: str) -> None:
    """A file that is not JSON, not an object, has no replay record or lacks the numbers is exit 2, one message, no traceback."""
    (runs / "bad.json").write_text(content)
    proc = invoke_cli("diff", "a.json", "bad.json", cwd=runs)
    assert proc.returncode == 2
    assert "bad.json" in proc.stderr
    assert expected in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_layer_number_of_the_wrong_type_is_exit_2_naming_the_key(runs: Path) -> None:
    """A result whose layers.device.busy_ns is a string is exit 2 naming the file and the key."""
    a = json.loads((runs / "a.json").read_text())
    a["layers"]["device"]["busy_ns"] = "5"
    (runs / "typed.json").write_text(json.dumps(a))
    proc = invoke_cli("diff", "a.json", "typed.json", cwd=runs)
    assert proc.returncode == 2
    assert "typed.json: key 'layers.device.busy_ns' must be a non-negative integer" in proc.stderr


@pytest.mark.parametrize("name", ["missing.json", "."], ids=["missing", "directory"])
def test_a_missing_file_or_a_directory_is_exit_2(runs: Path, name: str) -> None:
    """A result path that does not exist or is a directory is exit 2 with a message, no traceback."""
    proc = invoke_cli("diff", name, "a.json", cwd=runs)
    assert proc.returncode == 2
    assert "error:" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.fixture(scope="module")
def io_runs() -> tuple[dict[str, object], dict[str, object]]:
    """The shipped QD32 workload, and the same at queue depth 1 (the Python API's overrides)."""
    from stacksim.api import simulate

    path = ROOT / "scenarios" / "io-nvme-qd32.toml"
    qd1 = {"workload.queue_depth": 1, "normal_stack.storport_queue_depth": 1}
    return simulate(path).as_dict(), simulate(path, overrides=qd1).as_dict()


def test_a_workload_runs_iops_throughput_and_latency_are_compared(io_runs: tuple[dict[str, object], dict[str, object]]) -> None:
    """The normal stack's I/O: requests, IOPS, throughput and latency p50/p99 are rows of section io, with B ÷ A."""
    rows = {q.name: q for q in compare(*io_runs).rows if q.section == "io"}
    assert list(rows) == ["requests completed", "IOPS", "throughput", "latency p50", "latency p99"]
    iops = rows["IOPS"]
    assert (iops.a, iops.b) == (io_runs[0]["io"]["iops"], io_runs[1]["io"]["iops"])  # type: ignore[index]
    assert iops.ratio is not None
    assert iops.ratio < 0.5


def test_a_workload_runs_stages_busy_time_is_compared(io_runs: tuple[dict[str, object], dict[str, object]]) -> None:
    """Each normal-stack stage's busy time is a row of section io layers, in the stack's order."""
    rows = [q for q in compare(*io_runs).rows if q.section == "io layers"]
    assert rows[0].name == "application:submit busy"
    assert [q.name for q in rows] == [f"{s['name']} busy" for s in io_runs[0]["io"]["layers"]]  # type: ignore[index]


def test_a_resumes_layers_are_compared_and_can_be_changed_most() -> None:
    """A faster decompressor: the resume's layers are compared, and the one that changed most is named."""
    from stacksim.api import simulate

    path = ROOT / "scenarios" / "hibernate-resume-bitlocker.toml"
    a, b = simulate(path).as_dict(), simulate(path, overrides={"hibernation.decompress_rate": "1 GB/s"}).as_dict()
    d = compare(a, b)
    resume_rows = [q for q in d.rows if q.section == "resume layers"]
    assert {q.name.rsplit(" ", 1)[0] for q in resume_rows} == set(a["resume"]["layers"])
    assert d.changed_most is not None
    assert d.changed_most.section == "resume layers"
