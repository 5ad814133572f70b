"""Deterministic replay: same scenario and seed → byte-identical files, across processes; `stacksim replay`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from stacksim.cli import app

SCENARIO = """
[scenario]
name = "replay"
seed = 7
bugcheck_at = "1 ms"
[registry]
DumpFilters = ["dumpfve.sys", "faultflt.sys"]
CrashDumpEnabled = 1
[memory]
ram = "3 MiB"
[filters."faultflt.sys"]
action = "fail"
at_request = 9
[disk]
preset = "hdd-7200"
[layout]
runs = 3
"""


@pytest.fixture
def scenario(tmp_path: Path) -> Path:
    p = tmp_path / "s.toml"
    p.write_text(SCENARIO)
    return p


def stacksim(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stacksim", *args], capture_output=True, text=True, check=False, env={**os.environ, **(env or {})}
    )


def test_byte_identical_across_processes_and_hash_seeds(scenario: Path, tmp_path: Path) -> None:
    """Runs in fresh processes with different PYTHONHASHSEED give byte-identical result and trace files."""
    outputs = []
    for seed in ("0", "1", "4242"):
        r, t = tmp_path / f"r{seed}.json", tmp_path / f"t{seed}.jsonl"
        done = stacksim("run", str(scenario), "--json", str(r), "--trace", str(t), env={"PYTHONHASHSEED": seed})
        assert done.returncode == 0, done.stderr
        outputs.append((r.read_bytes(), t.read_bytes()))
    assert outputs[0] == outputs[1] == outputs[2]


def test_replay_reproduces_a_result(scenario: Path, tmp_path: Path) -> None:
    """`stacksim replay` reruns what a result records and confirms it byte for byte."""
    result = tmp_path / "r.json"
    assert CliRunner().invoke(app, ["run", str(scenario), "--json", str(result)]).exit_code == 0
    scenario.unlink()  # the result alone is enough
    r = CliRunner().invoke(app, ["replay", str(result), "--json", str(tmp_path / "again.json")])
    assert r.exit_code == 0, r.stderr
    assert "replay matches, byte for byte" in r.stderr
    assert (tmp_path / "again.json").read_bytes() == result.read_bytes()


def test_replay_says_when_a_result_differs(scenario: Path, tmp_path: Path) -> None:
    """A result that the recorded run does not reproduce is reported, with the keys that differ."""
    result = tmp_path / "r.json"
    assert CliRunner().invoke(app, ["run", str(scenario), "--json", str(result)]).exit_code == 0
    data = json.loads(result.read_text())
    data["dump_time_ns"] += 1
    result.write_text(json.dumps(data, indent=2) + "\n")
    r = CliRunner().invoke(app, ["replay", str(result)])
    assert r.exit_code == 1
    assert "replay differs in dump_time_ns" in r.stdout


def test_replay_checks_plugins(tmp_path: Path) -> None:
    """A plugin filter is reloaded from its recorded path and must be unchanged (SHA-256)."""
    plugin = tmp_path / "myflt.py"
    plugin.write_text(
        "from stacksim import DumpFilter, spend\n"
        "class MyFlt(DumpFilter):\n"
        "    service_name = 'myflt.sys'\n"
        "    async def dump_write(self, extension, request):\n"
        "        spend(3000)\n"
        "        return 0\n"
    )
    scenario = tmp_path / "s.toml"
    scenario.write_text('[scenario]\nname = "p"\n[registry]\nDumpFilters = ["myflt.sys"]\nCrashDumpEnabled = 3\n')
    result = tmp_path / "r.json"
    assert CliRunner().invoke(app, ["run", str(scenario), "--plugin", str(plugin), "--json", str(result)]).exit_code == 0
    assert CliRunner().invoke(app, ["replay", str(result)]).exit_code == 0
    plugin.write_text(plugin.read_text().replace("3000", "4000"))
    r = CliRunner().invoke(app, ["replay", str(result)])
    assert r.exit_code == 2
    assert "has changed since the run" in r.stderr


def test_replay_of_a_non_result_is_bad_input(tmp_path: Path) -> None:
    """Replaying something that is not a result exits 2 with a message."""
    bad = tmp_path / "x.json"
    bad.write_text("{}")
    r = CliRunner().invoke(app, ["replay", str(bad)])
    assert r.exit_code == 2
    assert "has no replay record" in r.stderr


def test_interrupted_run_leaves_no_files(tmp_path: Path) -> None:
    """Ctrl-C during a run exits non-zero with a message and leaves no half-written output."""
    scenario = tmp_path / "big.toml"
    scenario.write_text(
        '[scenario]\nname = "big"\n[registry]\nDumpFilters = []\nCrashDumpEnabled = 1\n[memory]\nram = "64 GiB"\n'
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "stacksim",
            "run",
            str(scenario),
            "--no-batch",
            "--json",
            str(tmp_path / "r.json"),
            "--trace",
            str(tmp_path / "t.jsonl"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not any(p.name.startswith(".t.jsonl") for p in tmp_path.iterdir()):  # the trace is being written
        assert time.monotonic() < deadline, "the run never started writing its trace"
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert "interrupted; no output file was written" in err
    assert "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.toml"]
