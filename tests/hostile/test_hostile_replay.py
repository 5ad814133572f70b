"""
Hostile result files for `stacksim replay`: nothing but a well-formed record is replayed, and nothing it names is run.

Each case asserts exit 2, a message naming the file (and the key, where there is one), no
traceback, a wall-time bound, and that no file is created; the plugin cases assert that a
Python file named in the result is never imported (it would leave a marker file).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import assert_refused, invoke_cli

pytestmark = pytest.mark.timeout(30)

REFUSED_IN_S = 2.0
"""Wall-time bound for refusing a result file in process."""

SCENARIO = '[scenario]\nname = "rp"\nseed = 3\n[memory]\nram = "1 MiB"\n'

EVIL = 'import pathlib\npathlib.Path(__file__).with_name("IMPORTED").touch()\n'
"""A plugin that proves it ran by leaving a file named IMPORTED beside itself."""


@pytest.fixture
def good(tmp_path: Path) -> dict[str, Any]:
    """A real result's JSON object, from a run in *tmp_path*."""
    (tmp_path / "s.toml").write_text(SCENARIO)
    proc = invoke_cli("run", "s.toml", "--json", "-", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    (tmp_path / "s.toml").unlink()
    data: dict[str, Any] = json.loads(proc.stdout)
    return data


def _write(tmp: Path, data: object) -> str:
    (tmp / "r.json").write_text(json.dumps(data))
    return "r.json"


def _replay_file(tmp: Path, good: dict[str, Any], edit: Callable[[dict[str, Any]], None]) -> str:
    data = json.loads(json.dumps(good))
    edit(data["replay"])
    return _write(tmp, data)


def _set(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(record: dict[str, Any]) -> None:
        record[key] = value

    return edit


def _drop(key: str) -> Callable[[dict[str, Any]], None]:
    def edit(record: dict[str, Any]) -> None:
        del record[key]

    return edit


WRONG_TYPES: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "scenario-list": (_set("scenario", []), "replay.scenario"),
    "scenario-string": (_set("scenario", "s.toml"), "replay.scenario"),
    "scenario-missing": (_drop("scenario"), "replay.scenario: must be an object (the scenario as parsed) (missing)"),
    "seed-string": (_set("seed", "3"), "replay.seed"),
    "seed-bool": (_set("seed", True), "replay.seed"),
    "seed-negative": (_set("seed", -1), "replay.seed"),
    "seed-2**64": (_set("seed", 2**64), "replay.seed"),
    "seed-4000-digits": (_set("seed", int("9" * 4000)), "replay.seed"),
    "seed-float": (_set("seed", 3.0), "replay.seed"),
    "seed-differs": (_set("seed", 4), "replay.seed is 4, but the recorded scenario's seed is 3"),
    "batch-string": (_set("batch", "yes"), "replay.batch: must be true or false"),
    "batch-int": (_set("batch", 1), "replay.batch"),
    "batch-null": (_set("batch", None), "replay.batch"),
    "traced-string": (_set("traced", "no"), "replay.traced"),
    "plugins-object": (_set("plugins", {}), "replay.plugins: must be a list"),
    "plugins-of-ints": (_set("plugins", [1]), "replay.plugins[0]: must be an object"),
    "plugin-name-int": (
        _set("plugins", [{"service_name": 5, "origin": "plugin x.py", "sha256": None}]),
        "replay.plugins[0].service_name",
    ),
    "plugin-origin-list": (
        _set("plugins", [{"service_name": "x.sys", "origin": [], "sha256": None}]),
        "replay.plugins[0].origin",
    ),
    "plugin-sha-not-hex": (
        _set("plugins", [{"service_name": "x.sys", "origin": "plugin x.py", "sha256": "xyz"}]),
        "replay.plugins[0].sha256",
    ),
    "plugin-file-sha-null": (
        _set("plugins", [{"service_name": "x.sys", "origin": "plugin x.py", "sha256": None}]),
        "replay.plugins[0].sha256: must be the plugin file's SHA-256",
    ),
    "scenario-invalid": (_set("scenario", {"scenario": {"name": 5}}), "[scenario] name"),
}


@pytest.mark.parametrize("case", list(WRONG_TYPES))
def test_wrong_type_in_the_replay_record(tmp_path: Path, good: dict[str, Any], case: str) -> None:
    """Every key of the replay record is checked: a wrong type or value is exit 2 naming the file and the key."""
    edit, expected = WRONG_TYPES[case]
    name = _replay_file(tmp_path, good, edit)
    before = sorted(os.listdir(tmp_path))
    proc = invoke_cli("replay", name, cwd=tmp_path)
    assert_refused(proc, "r.json", expected)
    assert sorted(os.listdir(tmp_path)) == before


def _fifo(tmp: Path) -> str:
    os.mkfifo(tmp / "r.json")
    return "r.json"


def _one_gib(tmp: Path) -> str:
    with (tmp / "r.json").open("wb") as f:
        f.truncate(2**30)  # sparse
    return "r.json"


def _text(text: str | bytes) -> Callable[[Path], str]:
    def make(tmp: Path) -> str:
        data = text.encode() if isinstance(text, str) else text
        (tmp / "r.json").write_bytes(data)
        return "r.json"

    return make


FILES: dict[str, tuple[Callable[[Path], str], str]] = {
    "fifo": (_fifo, "FIFO"),
    "dev-zero": (lambda tmp: "/dev/zero", "character device"),
    "folder": (lambda tmp: ".", "directory"),
    "missing": (lambda tmp: "nope.json", "no such result file"),
    "1-GiB": (_one_gib, "67,108,864 bytes"),
    "not-utf8": (_text(b"\xff\xfe\x00{}"), "UTF-16"),
    "binary": (_text(b"{\x80\x81}"), "not UTF-8"),
    "not-json": (_text("{'replay': 1}"), "not a JSON result file"),
    "a-list": (_text("[1, 2, 3]"), "is a JSON list, not a result"),
    "a-string": (_text('"replay"'), "is a JSON string, not a result"),
    "no-replay-key": (_text("{}"), "has no replay record"),
    "replay-a-list": (_text('{"replay": []}'), "has no replay record"),
    "deep-nesting-100k": (_text("[" * 100_000 + "]" * 100_000), "nests tables or arrays too deeply"),
    "deep-nesting-600": (_text('{"replay": ' + "[" * 600 + "]" * 600 + "}"), "nested more than 66 levels deep (at replay[0][0]"),
    "deep-nesting-in-the-scenario": (
        _text('{"replay": {"scenario": {"a": ' + "[" * 80 + "]" * 80 + "}}}"),
        "nested more than 66 levels deep (at replay.scenario.a[0]",
    ),
    "huge-int": (_text('{"replay": {"seed": ' + "7" * 5000 + "}}"), "integer of 5,000 digits"),
    "1e400": (_text('{"replay": {"seed": 1e400}}'), "numbers must be finite"),
    "NaN": (_text('{"replay": {"seed": NaN}}'), "numbers must be finite"),
}


@pytest.mark.parametrize("command", ["replay", "diff"])
@pytest.mark.parametrize("case", list(FILES))
def test_result_file_refused(tmp_path: Path, case: str, command: str) -> None:
    """A result path that is not a small, well-formed JSON object is refused fast, naming the file (replay and diff alike)."""
    make, expected = FILES[case]
    name = make(tmp_path)
    before = sorted(os.listdir(tmp_path))
    proc = invoke_cli(*(["replay", name] if command == "replay" else ["diff", name, name]), cwd=tmp_path)
    assert_refused(proc, name, expected)
    assert proc.elapsed < REFUSED_IN_S  # type: ignore[attr-defined]
    assert sorted(os.listdir(tmp_path)) == before


def _plugin_record(path: str) -> dict[str, Any]:
    return {"service_name": "evil.sys", "origin": f"plugin {path}", "sha256": "0" * 64}


@pytest.mark.parametrize("where", ["absolute", "relative", "entry-point-like"])
def test_a_plugin_named_in_the_result_is_never_imported(tmp_path: Path, good: dict[str, Any], where: str) -> None:
    """A result naming a plugin file (by any path) cannot make replay import it: exit 2, the file never ran."""
    evil = tmp_path / "evil.py"
    evil.write_text(EVIL)
    origin = {"absolute": str(evil), "relative": "evil.py", "entry-point-like": "evil:Evil"}[where]
    record = _plugin_record(origin)
    if where == "entry-point-like":
        record["origin"] = f"entry point evil = {origin}"
    name = _replay_file(tmp_path, good, _set("plugins", [record]))
    proc = invoke_cli("replay", name, cwd=tmp_path)
    assert_refused(proc, "r.json", "evil.sys")
    assert not (tmp_path / "IMPORTED").exists()


def test_a_plugin_passed_with_the_wrong_digest_is_not_run(tmp_path: Path, good: dict[str, Any]) -> None:
    """--plugin FILE whose SHA-256 is not the recorded one is refused before a line of it runs."""
    evil = tmp_path / "evil.py"
    evil.write_text(EVIL)
    name = _replay_file(tmp_path, good, _set("plugins", [_plugin_record("evil.py")]))
    proc = invoke_cli("replay", name, "--plugin", "evil.py", cwd=tmp_path)
    assert_refused(proc, "--plugin evil.py", "has changed since the run", "it was not run")
    assert not (tmp_path / "IMPORTED").exists()


def test_a_recorded_scenario_with_100k_unknown_keys_is_summarised(tmp_path: Path, good: dict[str, Any]) -> None:
    """A record whose scenario has 100k unknown keys gives a message of a few lines, not 100k."""

    def edit(record: dict[str, Any]) -> None:
        record["scenario"]["disk"] = {f"k{i}": 1 for i in range(100_000)}

    name = _replay_file(tmp_path, good, edit)
    proc = invoke_cli("replay", name, cwd=tmp_path)
    assert_refused(proc, "r.json (replay)", "[disk] k0", "and 99,995 more: unknown key")


def test_control_characters_in_a_result_are_escaped(tmp_path: Path, good: dict[str, Any]) -> None:
    """Terminal escapes and bidi overrides in a recorded filter name reach stderr escaped, never raw."""
    record = {"service_name": "\x1b[2J\x1b]0;pwned\x07\u202eevil.sys", "origin": "plugin evil.py", "sha256": "0" * 64}
    name = _replay_file(tmp_path, good, _set("plugins", [record]))
    proc = invoke_cli("replay", name, cwd=tmp_path)
    assert_refused(proc, "r.json", "\\x1b[2J", "\\u202e")
    assert "\x1b" not in proc.stderr
    assert "\u202e" not in proc.stderr
