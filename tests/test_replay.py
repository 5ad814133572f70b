"""Deterministic replay: same scenario and seed → byte-identical files, across processes; `stacksim replay`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
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


def stacksim(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    src = str(Path(__file__).resolve().parents[1])  # this checkout's stacksim, whatever the working directory
    return subprocess.run(
        [sys.executable, "-m", "stacksim", *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": src, **(env or {})},
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


PLUGIN = """\
import pathlib
from stacksim import DumpFilter, spend
pathlib.Path(__file__).with_name("imported-" + pathlib.Path(__file__).name + ".marker").touch()
class MyFlt(DumpFilter):
    service_name = 'myflt.sys'
    async def dump_write(self, extension, request):
        spend(3000)
        return 0
"""
"""A plugin that leaves a marker file beside itself when it is executed, so a test can tell."""


def _marker(plugin: Path) -> Path:
    return plugin.with_name(f"imported-{plugin.name}.marker")


@pytest.fixture
def plugin_run(tmp_path: Path) -> tuple[Path, Path]:
    """A run made with the plugin myflt.py: (the plugin, the result file); the plugin's marker is removed."""
    plugin = tmp_path / "myflt.py"
    plugin.write_text(PLUGIN)
    scenario = tmp_path / "s.toml"
    scenario.write_text('[scenario]\nname = "p"\n[registry]\nDumpFilters = ["myflt.sys"]\nCrashDumpEnabled = 3\n')
    result = tmp_path / "r.json"
    r = CliRunner().invoke(app, ["run", str(scenario), "--plugin", str(plugin), "--json", str(result)])
    assert r.exit_code == 0, r.stderr
    _marker(plugin).unlink()
    return plugin, result


def test_replay_with_the_plugin_passed_again_matches(plugin_run: tuple[Path, Path]) -> None:
    """A run that used a plugin replays byte for byte when the same file is passed with --plugin."""
    plugin, result = plugin_run
    r = CliRunner().invoke(app, ["replay", str(result), "--plugin", str(plugin)])
    assert r.exit_code == 0, r.stderr
    assert "replay matches, byte for byte" in r.stdout


def test_replay_without_the_plugin_names_what_to_pass(plugin_run: tuple[Path, Path]) -> None:
    """Replay never loads a plugin by itself: without --plugin it exits 2 naming the filter and the file to pass."""
    plugin, result = plugin_run
    r = CliRunner().invoke(app, ["replay", str(result)])
    assert r.exit_code == 2
    assert "'myflt.sys' from plugin myflt.py" in r.stderr
    assert "--plugin PATH/myflt.py" in r.stderr
    assert not _marker(plugin).exists()


def test_replay_refuses_a_changed_plugin_before_running_it(plugin_run: tuple[Path, Path]) -> None:
    """A plugin whose SHA-256 differs from the recorded one is refused without being executed."""
    plugin, result = plugin_run
    plugin.write_text(plugin.read_text().replace("3000", "4000"))
    r = CliRunner().invoke(app, ["replay", str(result), "--plugin", str(plugin)])
    assert r.exit_code == 2
    assert "has changed since the run" in r.stderr
    assert "it was not run" in r.stderr
    assert not _marker(plugin).exists()


def test_replay_refuses_a_plugin_the_run_did_not_use(plugin_run: tuple[Path, Path], tmp_path: Path) -> None:
    """A --plugin file that matches no recorded digest is refused, and not executed."""
    _, result = plugin_run
    other = tmp_path / "other.py"
    other.write_text(PLUGIN.replace("myflt.sys", "other.sys"))
    r = CliRunner().invoke(app, ["replay", str(result), "--plugin", str(other)])
    assert r.exit_code == 2
    assert "is not a plugin the run in" in r.stderr
    assert not _marker(other).exists()


def test_replay_never_imports_a_file_named_in_the_result(plugin_run: tuple[Path, Path], tmp_path: Path) -> None:
    """A result whose record names another file (an edited origin) cannot make replay import that file."""
    plugin, result = plugin_run
    evil = tmp_path / "evil.py"
    evil.write_text(PLUGIN)
    data = json.loads(result.read_text())
    data["replay"]["plugins"][0]["origin"] = f"plugin {evil}"
    result.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    r = CliRunner().invoke(app, ["replay", str(result)])
    assert r.exit_code == 2
    assert "pass it again with --plugin PATH/evil.py" in r.stderr
    assert not _marker(evil).exists()
    assert not _marker(plugin).exists()


def test_replay_from_another_directory_with_a_relative_plugin_path(tmp_path: Path) -> None:
    """A run made with a relative --plugin path replays from another directory: the record holds no path."""
    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    work.mkdir()
    elsewhere.mkdir()
    (work / "myflt.py").write_text(PLUGIN)
    (work / "s.toml").write_text('[scenario]\nname = "p"\n[registry]\nDumpFilters = ["myflt.sys"]\nCrashDumpEnabled = 3\n')
    made = stacksim("run", "s.toml", "--plugin", "myflt.py", "--json", "r.json", cwd=work)
    assert made.returncode == 0, made.stderr
    assert json.loads((work / "r.json").read_text())["replay"]["plugins"][0]["origin"] == "plugin myflt.py"
    again = stacksim("replay", "../work/r.json", "--plugin", "../work/myflt.py", cwd=elsewhere)
    assert again.returncode == 0, again.stderr + again.stdout
    assert "replay matches, byte for byte" in again.stdout


@pytest.mark.parametrize("replay_trace", [False, True])
def test_replay_of_a_traced_run_matches(scenario: Path, tmp_path: Path, replay_trace: bool) -> None:
    """A run made with --trace records that it was traced; replay reproduces it with or without its own --trace."""
    result, trace = tmp_path / "r.json", tmp_path / "t.jsonl"
    assert CliRunner().invoke(app, ["run", str(scenario), "--json", str(result), "--trace", str(trace)]).exit_code == 0
    assert json.loads(result.read_text())["replay"]["traced"] is True
    args = ["replay", str(result), "--json", str(tmp_path / "again.json")]
    if replay_trace:
        args += ["--trace", str(tmp_path / "again.jsonl")]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.stderr + r.stdout
    assert (tmp_path / "again.json").read_bytes() == result.read_bytes()
    if replay_trace:
        assert (tmp_path / "again.jsonl").read_bytes() == trace.read_bytes()


def test_replay_with_a_trace_of_an_untraced_run_matches(scenario: Path, tmp_path: Path) -> None:
    """Replaying a run made without a trace, with --trace, reproduces the result and writes the run's trace."""
    result, trace = tmp_path / "r.json", tmp_path / "t.jsonl"
    assert CliRunner().invoke(app, ["run", str(scenario), "--json", str(result)]).exit_code == 0
    assert (
        CliRunner().invoke(app, ["run", str(scenario), "--json", str(tmp_path / "x.json"), "--trace", str(trace)]).exit_code == 0
    )
    r = CliRunner().invoke(app, ["replay", str(result), "--trace", str(tmp_path / "again.jsonl")])
    assert r.exit_code == 0, r.stderr + r.stdout
    assert "replay matches, byte for byte" in r.stdout
    assert (tmp_path / "again.jsonl").read_bytes() == trace.read_bytes()


def test_replay_of_a_non_result_is_bad_input(tmp_path: Path) -> None:
    """Replaying something that is not a result exits 2 with a message."""
    bad = tmp_path / "x.json"
    bad.write_text("{}")
    r = CliRunner().invoke(app, ["replay", str(bad)])
    assert r.exit_code == 2
    assert "has no replay record" in r.stderr


def test_every_replay_key_is_documented(scenario: Path) -> None:
    """docs/reference/result-format.md lists exactly the keys of the replay record."""
    import re

    r = CliRunner().invoke(app, ["run", str(scenario), "--json", "-"])
    text = (Path(__file__).parent.parent / "docs" / "reference" / "result-format.md").read_text()
    table = text.split("| replay key |", 1)[1].split("\n\n", 1)[0]
    assert set(re.findall(r"^\| `([^`]+)` \|", table, flags=re.MULTILINE)) == set(json.loads(r.stdout)["replay"])


def test_a_result_without_traced_replays_as_untraced(scenario: Path, tmp_path: Path) -> None:
    """A result written before replay.traced existed replays as a run without a trace."""
    result = tmp_path / "r.json"
    assert CliRunner().invoke(app, ["run", str(scenario), "--json", str(result)]).exit_code == 0
    data = json.loads(result.read_text())
    del data["replay"]["traced"]
    result.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    r = CliRunner().invoke(app, ["replay", str(result)])
    assert r.exit_code == 1  # only the record itself differs
    assert "replay differs in replay" in r.stdout
