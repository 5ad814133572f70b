"""
Outputs the docs quote are real: every ```output block is what the command just before it prints.

A page may follow a ```sh block holding one ``stacksim`` command with an ```output block; the
suite runs the command (at 100 columns, beside the shipped scenarios) and the block must equal its
stdout. After an intended change, regenerate the blocks with
``STACKSIM_UPDATE_GOLDEN=1 python3 -m pytest tests/test_docs_outputs.py`` and review the diff.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from stacksim.cli import app

ROOT = Path(__file__).parent.parent
PAGES = sorted(p for p in (ROOT / "docs").rglob("*.md") if "```output" in p.read_text(encoding="utf-8"))
PAIR = re.compile(r"```sh\n(?P<command>stacksim [^\n]*)\n```\n\n```output\n(?P<output>.*?)```", re.DOTALL)


def test_there_are_pages_with_checked_outputs() -> None:
    """The bypass tutorial quotes checked outputs."""
    assert ROOT / "docs" / "tutorial" / "watch-the-dump-bypass-the-stack.md" in PAGES


def test_every_output_block_follows_one_command() -> None:
    """Each ```output block comes right after a ```sh block of exactly one stacksim command."""
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        assert text.count("```output") == len(PAIR.findall(text)), page


@pytest.mark.timeout(300)
@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_quoted_outputs_are_what_the_commands_print(page: Path, tmp_path: Path) -> None:
    """Each quoted output equals the stdout of its command, run as shown."""
    shutil.copytree(ROOT / "scenarios", tmp_path / "scenarios")
    text = page.read_text(encoding="utf-8")
    runner = CliRunner(env={"COLUMNS": "100", "NO_COLOR": "1"})
    old = os.getcwd()
    os.chdir(tmp_path)
    try:
        new = text
        for m in PAIR.finditer(text):
            result = runner.invoke(app, shlex.split(m["command"])[1:])
            assert result.exit_code == 0, f"{page.name}: {m['command']}\n{result.stderr}"
            if os.environ.get("STACKSIM_UPDATE_GOLDEN"):
                new = new.replace(m.group(0), f"```sh\n{m['command']}\n```\n\n```output\n{result.stdout}```", 1)
            else:
                assert result.stdout == m["output"], f"{page.name}: the output of {m['command']} changed"
    finally:
        os.chdir(old)
    if new != text:
        page.write_text(new, encoding="utf-8")
