"""
Hostile content for the parsers: what TOML or JSON parsers choke on, and messages that would flood a terminal.

An integer of thousands of digits (Python refuses to convert it), arrays or tables nested hundreds
deep (the parser recurses) and nesting beyond 64 levels are refused with exit 2 and a message,
never a ValueError or RecursionError traceback. A 100 KB value or 100k unknown keys give a
summary of at most 12 lines and 4,000 characters. Control and bidi characters from the input
reach the terminal escaped.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import assert_refused, invoke_cli

pytestmark = pytest.mark.timeout(30)

HEAD = '[scenario]\nname = "p"\n'

SCENARIOS: dict[str, tuple[str, tuple[str, ...]]] = {
    "4400-digit-int": (HEAD + "seed = " + "1" * 4400 + "\n", ("line 3", "integer of 4,400 digits")),
    "4400-digit-int-with-underscores": (HEAD + "[disk]\nlatency = " + "1_000" * 1100 + "\n", ("line 4", "digits")),
    "600-deep-arrays": (HEAD + "x = " + "[" * 600 + "]" * 600 + "\n", ("nests tables or arrays too deeply", "64 levels")),
    "600-deep-inline-tables": (HEAD + "x = " + "{a = " * 600 + "1" + "}" * 600 + "\n", ("too deeply",)),
    "100-deep-arrays": (HEAD + "x = " + "[" * 100 + "]" * 100 + "\n", ("nested more than 64 levels deep (at scenario.x[0]",)),
    "100-part-table-header": (HEAD + "[" + ".".join(["t"] * 100) + "]\n", ("nested more than 64 levels deep (at t.t.t",)),
    "100-KB-value": (HEAD + '[disk]\nlatency = "' + "slow " * 20_000 + '"\n', ("[disk] latency", "characters")),
    "100-KB-key": (HEAD + '[disk]\n"' + "k" * 100_000 + '" = 1\n', ("[disk] kkk", "unknown key")),
    "100k-unknown-keys": (
        HEAD + "[disk]\n" + "".join(f"k{i} = 1\n" for i in range(100_000)),
        ("100,000 problems", "99,995 more"),
    ),
    "100k-bad-values": (
        HEAD + "[[faults]]\n" + "".join(f'[[faults]]\nkind = "x{i}"\n' for i in range(20_000)),
        ("problems", "more problems"),
    ),
}


@pytest.mark.parametrize("command", ["run", "validate"])
@pytest.mark.parametrize("case", list(SCENARIOS))
def test_hostile_scenario_content(tmp_path: Path, case: str, command: str) -> None:
    """Content the parser or the validator would choke on or echo at length: exit 2, a short message, named."""
    text, expected = SCENARIOS[case]
    (tmp_path / "s.toml").write_text(text)
    proc = invoke_cli(command, "s.toml", cwd=tmp_path)
    assert_refused(proc, "s.toml", *expected)
    assert os.listdir(tmp_path) == ["s.toml"]


def test_hostile_sweep_scenario(tmp_path: Path) -> None:
    """`sweep` reads its scenario as `run` does: a 4,400-digit integer is exit 2 with the line, not a traceback."""
    (tmp_path / "s.toml").write_text(SCENARIOS["4400-digit-int"][0])
    proc = invoke_cli("sweep", "s.toml", "--set", "disk.latency=1us", "--out", "r.csv", cwd=tmp_path)
    assert_refused(proc, "s.toml", "line 3", "integer of 4,400 digits")
    assert os.listdir(tmp_path) == ["s.toml"]


SETS: dict[str, tuple[str, tuple[str, ...]]] = {
    "4400-digit-int": ("disk.latency=" + "1" * 4400, ("--set disk.latency=111", "integer of 4,400 digits")),
    "600-deep-arrays": ("registry.DumpFilters=" + "[" * 600 + "]" * 600, ("nested too deeply",)),
    "100-deep-arrays": ("registry.DumpFilters=" + "[" * 100 + "]" * 100, ("nested more than 63 levels deep",)),
    "100-part-key": (".".join(["k"] * 100) + "=1", ("the key has 100 parts",)),
    "100-KB-key": ("k" * 100_000 + "x=", ("--set kkk", "characters")),
    "not-a-key": ("disk..latency=1", ("is not a key path",)),
}


@pytest.mark.parametrize("case", list(SETS))
def test_hostile_set(tmp_path: Path, case: str) -> None:
    """A --set value or key the parser would choke on is exit 2 with a short message; nothing is written."""
    setting, expected = SETS[case]
    (tmp_path / "s.toml").write_text(HEAD)
    proc = invoke_cli("sweep", "s.toml", "--set", setting, "--out", "r.csv", cwd=tmp_path)
    assert_refused(proc, *expected)
    assert os.listdir(tmp_path) == ["s.toml"]


def test_control_and_bidi_characters_are_escaped(tmp_path: Path) -> None:
    """Terminal escapes and bidi overrides in keys, values and the file name reach stderr escaped."""
    name = "s\x1b[31m\u202e.toml"
    (tmp_path / name).write_text(HEAD + '[disk]\n"\\u001b]0;title\\u0007k\u202e" = 1\nlatency = "\\u001b[2J fast"\n')
    proc = invoke_cli("validate", name, cwd=tmp_path)
    assert_refused(proc, "s\\x1b[31m\\u202e.toml", "\\x1b]0;title\\x07k\\u202e", "\\x1b[2J fast")
    assert "\x1b" not in proc.stderr
    assert "\u202e" not in proc.stderr
    assert "\x07" not in proc.stderr


def test_a_scenario_name_with_escapes_is_escaped_when_valid(tmp_path: Path) -> None:
    """`validate` echoes a valid scenario's name with its control characters escaped."""
    (tmp_path / "s.toml").write_text('[scenario]\nname = "x\\u001b[2J\u202ey"\n')
    proc = invoke_cli("validate", "s.toml", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "\x1b" not in proc.stdout
    assert "\u202e" not in proc.stdout
    assert "x\\\\x1b[2J" in proc.stdout or "x\\x1b[2J" in proc.stdout
