"""Hostile values for ``run``'s choice options: refused in one short paragraph, whatever their size."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import assert_refused, invoke_cli

pytestmark = pytest.mark.timeout(30)

SMALL = '[scenario]\nname = "small"\n[memory]\nram = "1 MiB"\n'


@pytest.mark.parametrize("flag", ["--output-format", "--log-level", "--log-json-level"])
@pytest.mark.parametrize("value", ["a" * 2**20, "x\n\x1b[31my", ""])
def test_a_choice_option_refuses_any_other_value_briefly(tmp_path: Path, flag: str, value: str) -> None:
    """A megabyte, control characters or nothing: exit 2, the flag and the allowed values named, the value shortened."""
    (tmp_path / "s.toml").write_text(SMALL)
    extra = ["--log-json", "log.jsonl"] if flag == "--log-json-level" else []
    proc = invoke_cli("run", "s.toml", *extra, flag, value, cwd=tmp_path)
    assert_refused(proc, flag, "allowed values are", max_lines=3)
    assert "\x1b" not in proc.stderr
    assert not (tmp_path / "log.jsonl").exists()
