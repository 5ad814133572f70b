"""
Every scenario in scenarios/ runs through the CLI and prints exactly its golden summary.

The golden file ``scenarios/<name>.out`` is the output of ``stacksim run scenarios/<name>.toml``
at 100 columns. After an intended change, regenerate with
``STACKSIM_UPDATE_GOLDEN=1 python3 -m pytest tests/test_scenarios.py`` and review the diff.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from stacksim import FilterCatalog, ListTrace, load_scenario, simulate
from stacksim.check import check_records
from stacksim.cli import app

SCENARIOS = sorted((Path(__file__).parent.parent / "scenarios").rglob("*.toml"))
NORMAL_STACK_EVENTS = ("io", "crash-during-io")


def test_there_are_scenarios() -> None:
    """The repository ships the scenarios the README and docs name."""
    names = {p.stem for p in SCENARIOS}
    assert {"crash-nvme-bitlocker", "crash-no-filters", "hibernate-basic", "critical-filter-fails"} <= names


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_scenario_matches_golden_output(path: Path) -> None:
    """The scenario runs and its printed summary equals the golden .out file."""
    result = CliRunner(env={"COLUMNS": "100", "NO_COLOR": "1"}).invoke(app, ["run", str(path)])
    assert result.exit_code == 0, result.stderr
    golden = path.with_suffix(".out")
    if os.environ.get("STACKSIM_UPDATE_GOLDEN"):
        golden.write_text(result.stdout, encoding="utf-8")
    assert result.stdout == golden.read_text(encoding="utf-8")


def test_there_are_normal_stack_scenarios() -> None:
    """The repository ships an io scenario and a crash-during-io scenario."""
    normal = {p.stem for p in SCENARIOS if tomllib.loads(p.read_text())["scenario"].get("event") in NORMAL_STACK_EVENTS}
    assert {"io-nvme-qd32", "crash-during-io"} <= normal


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_scenario_trace_passes_the_invariant_checker(path: Path) -> None:
    """Each scenario, shrunk to 16 MiB of RAM so its request-mode trace stays small, passes every rule (a resume's too)."""
    catalog = FilterCatalog()
    s = load_scenario(path, catalog)
    s = s.model_copy(update={"memory": s.memory.model_copy(update={"ram": min(s.memory.ram, 16 * 2**20)})})
    trace = ListTrace()
    simulate(s, catalog, trace=trace)
    assert [v.render() for v in check_records(trace.records)] == []
