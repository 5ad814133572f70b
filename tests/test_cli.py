"""The stacksim command: output, exit codes, atomic files and bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import without_mode
from typer.testing import CliRunner

from stacksim.cli import app
from stacksim.trace import FIELDS

SMALL = """
[scenario]
name = "small"
bugcheck_at = "10 ms"
[registry]
DumpFilters = ["dumpfve.sys", "delayflt.sys"]
CrashDumpEnabled = 1
[memory]
ram = "2 MiB"
[filters."delayflt.sys"]
per_call = "2 us"
"""


@pytest.fixture
def small(tmp_path: Path) -> Path:
    p = tmp_path / "small.toml"
    p.write_text(SMALL)
    return p


def invoke(*args: str) -> tuple[int, str, str]:
    r = CliRunner(env={"COLUMNS": "120"}).invoke(app, list(args))
    return r.exit_code, r.stdout, r.stderr


def test_run_prints_a_table_with_units(small: Path) -> None:
    """`stacksim run` prints the status, dump time, bytes and a per-layer table with units."""
    code, out, _ = invoke("run", str(small))
    assert code == 0
    assert "status      ok: complete dump written" in out
    assert "dump time   " in out
    assert "(bugcheck → final flush)" in out
    for layer in ("crashdmp", "dumpfve.sys", "delayflt.sys", "miniport", "device"):
        assert layer in out
    assert "µs" in out


def test_run_writes_result_json(small: Path, tmp_path: Path) -> None:
    """--json writes the result with the documented keys."""
    out = tmp_path / "r.json"
    code, _, _ = invoke("run", str(small), "--json", str(out))
    assert code == 0
    result = json.loads(out.read_text())
    assert {"status", "dump_time_ns", "bytes_written", "write_requests", "max_pages_per_write", "layers"} <= set(result)
    assert list(result["layers"]["dumpfve.sys"]) == [
        *("calls", "busy_ns", "min_ns", "mean_ns", "stdev_ns", "p50_ns", "p90_ns", "p99_ns", "p99_9_ns", "max_ns"),
        *("iops", "bandwidth_bytes_per_s", "bandwidth_MB_per_s", "bandwidth_MiB_per_s"),
    ]
    assert result["write_requests"] == 1 + 1 + 32  # header, bitmap, body


def test_json_to_stdout(small: Path) -> None:
    """--json - prints the result JSON instead of the table."""
    code, out, _ = invoke("run", str(small), "--json", "-")
    assert code == 0
    assert json.loads(out)["status"] == "ok"


def test_trace_file_format(small: Path, tmp_path: Path) -> None:
    """--trace writes one JSON object per line with every documented field, sorted by (t_ns, seq)."""
    path = tmp_path / "t.jsonl"
    code, _, _ = invoke("run", str(small), "--trace", str(path))
    assert code == 0
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert all(tuple(r) == FIELDS for r in records)
    assert [(r["t_ns"], r["seq"]) for r in records] == sorted((r["t_ns"], r["seq"]) for r in records)
    assert {r["layer"] for r in records} == {"crashdmp", "dumpfve.sys", "delayflt.sys", "miniport", "device"}


def test_same_seed_gives_byte_identical_files(small: Path, tmp_path: Path) -> None:
    """The same scenario and seed give byte-identical trace and result files."""
    for n in (1, 2):
        assert (
            invoke("run", str(small), "--seed", "5", "--trace", str(tmp_path / f"t{n}"), "--json", str(tmp_path / f"r{n}"))[0]
            == 0
        )
    assert (tmp_path / "t1").read_bytes() == (tmp_path / "t2").read_bytes()
    assert (tmp_path / "r1").read_bytes() == (tmp_path / "r2").read_bytes()
    assert json.loads((tmp_path / "r1").read_text())["seed"] == 5


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('[scenario]\nname = "x"\n[disk]\nlatency = "fast"\n', "[disk] latency: 'fast' is not a duration"),
        ('[scenario]\nname = "x"\n[disk]\ncolour = "red"\n', "[disk] colour: unknown key"),
        ('[scenario]\nname = "x"\n[memory]\nram = -5\n', "[memory] ram: -5 is negative"),
        ('[scenario]\nname = "x"\n[registry]\nDumpFilters = ["x.sys"]\n', "unknown filter 'x.sys'"),
        ("[scenario\n", "not valid TOML"),
    ],
)
def test_bad_input_exits_2_without_output(tmp_path: Path, content: str, expected: str) -> None:
    """Bad scenarios exit 2 with a message naming file and key, and leave no output file."""
    p = tmp_path / "bad.toml"
    p.write_text(content)
    out = tmp_path / "r.json"
    code, stdout, stderr = invoke("run", str(p), "--json", str(out), "--trace", str(tmp_path / "t.jsonl"))
    assert code == 2
    assert expected in stderr
    assert "bad.toml" in stderr
    assert "Traceback" not in stderr + stdout
    assert sorted(x.name for x in tmp_path.iterdir()) == ["bad.toml"]


def test_missing_scenario_file(tmp_path: Path) -> None:
    """A missing scenario file exits 2 and names it."""
    code, _, stderr = invoke("run", str(tmp_path / "nope.toml"))
    assert code == 2
    assert "nope.toml: no such scenario file" in stderr


def test_output_folder_must_exist(small: Path, tmp_path: Path) -> None:
    """An output path in a missing folder exits 2 before running."""
    code, _, stderr = invoke("run", str(small), "--json", str(tmp_path / "no" / "r.json"))
    assert code == 2
    assert "does not exist" in stderr


def test_validate(small: Path) -> None:
    """`stacksim validate` checks a scenario without running it."""
    code, out, _ = invoke("validate", str(small))
    assert code == 0
    assert "valid (crash scenario 'small'; DumpFilters: dumpfve.sys, delayflt.sys)" in out


def test_plugin_file_provides_a_filter(small: Path, tmp_path: Path) -> None:
    """--plugin FILE.py loads DumpFilter subclasses; a scenario alone never imports code."""
    plugin = tmp_path / "myflt.py"
    plugin.write_text(
        "from stacksim import DumpFilter, spend\n"
        "class MyFlt(DumpFilter):\n"
        "    service_name = 'myflt.sys'\n"
        "    async def dump_write(self, extension, request):\n"
        "        spend(7000)\n"
        "        return 0\n"
    )
    scenario = tmp_path / "s.toml"
    scenario.write_text(
        SMALL.replace('DumpFilters = ["dumpfve.sys", "delayflt.sys"]', 'DumpFilters = ["dumpfve.sys", "myflt.sys"]')
    )
    assert invoke("run", str(scenario))[0] == 2
    code, out, _ = invoke("run", str(scenario), "--plugin", str(plugin), "--json", "-")
    assert code == 0
    assert json.loads(out)["layers"]["myflt.sys"]["busy_ns"] == (1 + 1 + 32) * 7000  # header, bitmap, body writes
    code, out, _ = invoke("run", str(scenario), "--plugin", str(plugin))
    assert code == 0
    assert "engine      request mode, one message per write: myflt.sys declares no write_cost" in " ".join(out.split("\n"))


def test_broken_plugin_is_a_clear_error(small: Path, tmp_path: Path) -> None:
    """A plugin that fails to import exits 2 naming the file."""
    plugin = tmp_path / "broken.py"
    plugin.write_text("import nosuchmodule\n")
    code, _, stderr = invoke("run", str(small), "--plugin", str(plugin))
    assert code == 2
    assert "broken.py: importing the plugin failed: ModuleNotFoundError" in stderr


def test_filters_command_lists_builtins() -> None:
    """`stacksim filters` lists the built-in filters."""
    code, out, _ = invoke("filters")
    assert code == 0
    for name in ("dumpfve.sys", "delayflt.sys", "faultflt.sys"):
        assert name in out


def test_console_script_end_to_end(small: Path) -> None:
    """The installed `stacksim` script runs, and bad input gives no traceback."""
    ok = subprocess.run([sys.executable, "-m", "stacksim", "run", str(small)], capture_output=True, text=True, check=False)
    assert ok.returncode == 0, ok.stderr
    bad = subprocess.run([sys.executable, "-m", "stacksim", "run", "missing.toml"], capture_output=True, text=True, check=False)
    assert bad.returncode == 2
    assert "Traceback" not in bad.stderr


def test_no_batch_gives_the_same_result(small: Path) -> None:
    """--no-batch forces request mode; only the record of the mode differs."""
    a = json.loads(invoke("run", str(small), "--json", "-")[1])
    b = json.loads(invoke("run", str(small), "--json", "-", "--no-batch")[1])
    assert (a["batched_messages"], b["batched_messages"]) == (3, 0)  # batched between sampled writes 0, 1, 3, 7, ...
    assert without_mode(a) == without_mode(b)


def test_output_files_get_the_usual_permissions(small: Path, tmp_path: Path) -> None:
    """Result files are created with the process umask, like any other file (not 0600)."""
    import os
    import stat

    out = tmp_path / "r.json"
    assert invoke("run", str(small), "--json", str(out))[0] == 0
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~mask


def test_version_works_alone() -> None:
    """`stacksim --version` prints the version and exits 0 without a command."""
    from stacksim import __version__

    code, out, _ = invoke("--version")
    assert (code, out) == (0, f"stacksim {__version__}\n")
    real = subprocess.run([sys.executable, "-m", "stacksim", "--version"], capture_output=True, text=True, check=False)
    assert (real.returncode, real.stdout) == (0, f"stacksim {__version__}\n")


def test_trace_into_missing_folders_names_the_missing_part(small: Path, tmp_path: Path) -> None:
    """--trace a/b/t.jsonl where a does not exist says which folder is missing, before running."""
    code, _, stderr = invoke("run", str(small), "--trace", str(tmp_path / "a" / "b" / "t.jsonl"))
    assert code == 2
    assert f"--trace {tmp_path}/a/b/t.jsonl: the folder {tmp_path}/a/b does not exist ({tmp_path}/a does not exist)" in stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["small.toml"]


def test_a_plugin_is_an_input_no_output_may_replace(small: Path, tmp_path: Path) -> None:
    """--json naming a --plugin file is refused before the plugin runs."""
    plugin = tmp_path / "p.py"
    plugin.write_text("raise SystemExit(3)\n")
    code, _, stderr = invoke("run", str(small), "--plugin", str(plugin), "--json", str(plugin))
    assert code == 2
    assert "is an input of this run" in stderr
    assert plugin.read_text() == "raise SystemExit(3)\n"
