"""
``stacksim explain``: both stacks side by side, every normal layer with its crash-time stand-in and the scenario's numbers.

The golden files ``tests/golden/explain-<scenario>.out`` are ``stacksim explain`` at 100 columns;
regenerate with ``STACKSIM_UPDATE_GOLDEN=1 python3 -m pytest tests/test_explain.py`` and review.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import make_scenario
from rich.cells import cell_len
from typer.testing import CliRunner

from stacksim import FilterCatalog
from stacksim.cli import app
from stacksim.explain import explain
from stacksim.normal_stack import LAYERS

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).parent.parent
GOLDEN = ROOT / "tests" / "golden"
SHOWN = ["crash-during-io", "io-nvme-qd32", "crash-nvme-bitlocker"]


def explain_cli(path: Path, columns: int = 100) -> str:
    """What ``stacksim explain PATH`` prints at *columns*."""
    result = CliRunner(env={"COLUMNS": str(columns), "NO_COLOR": "1"}).invoke(app, ["explain", str(path)])
    assert result.exit_code == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize("name", SHOWN)
def test_explain_matches_its_golden_output(name: str) -> None:
    """The explanation of a shipped scenario equals its golden file."""
    text = explain_cli(ROOT / "scenarios" / f"{name}.toml")
    golden = GOLDEN / f"explain-{name}.out"
    if os.environ.get("STACKSIM_UPDATE_GOLDEN"):
        golden.write_text(text, encoding="utf-8")
    assert text == golden.read_text(encoding="utf-8")


@pytest.mark.parametrize("columns", [80, 60])
def test_explain_fits_the_console(columns: int) -> None:
    """Every line of the explanation fits the console width."""
    lines = explain_cli(ROOT / "scenarios" / "crash-during-io.toml", columns).splitlines()
    assert [x for x in lines if cell_len(x.rstrip()) > columns] == []


def test_every_normal_layer_has_a_row_and_a_stand_in() -> None:
    """The rows are the normal stack's layers top down, then the miniport and the device, each with a stand-in."""
    e = explain(make_scenario(disk={"preset": "nvme-pcie4"}), FilterCatalog())
    assert [r.layer for r in e.rows] == [*LAYERS, "stornvme.sys", "device"]
    assert all(r.stand_in for r in e.rows)


def test_bitlocker_without_a_dump_filter_is_named_as_plaintext() -> None:
    """BitLocker on at run time with no encrypting dump filter: fvevol's stand-in and a warning say plaintext."""
    e = explain(make_scenario(normal_stack={"bitlocker": True}), FilterCatalog())
    fve = next(r for r in e.rows if r.layer == "fvevol.sys")
    assert "plaintext" in fve.stand_in
    assert any("plaintext" in w for w in e.warnings)


def test_the_dump_filter_stands_in_for_fvevol_with_its_cost() -> None:
    """With dumpfve.sys encrypting, fvevol's stand-in is the filter and its per-write time is the filter's p50."""
    e = explain(
        make_scenario(
            registry={"DumpFilters": ["dumpfve.sys"]},
            filters={"dumpfve.sys": {"bitlocker": True}},
            normal_stack={"bitlocker": True},
        ),
        FilterCatalog(),
    )
    fve = next(r for r in e.rows if r.layer == "fvevol.sys")
    assert fve.stand_in.startswith("dumpfve.sys")
    assert fve.dump_ns == e.dump.layers["dumpfve.sys"].p50_ns
    assert e.warnings == ()


def test_the_mermaid_diagram_matches_its_golden_file(tmp_path: Path) -> None:
    """--mermaid writes the sequence diagram of the first requests of each path, as the golden file has it."""
    out = tmp_path / "d.mmd"
    result = CliRunner(env={"COLUMNS": "100"}).invoke(
        app, ["explain", str(ROOT / "scenarios" / "crash-during-io.toml"), "--mermaid", str(out)]
    )
    assert result.exit_code == 0, result.stderr
    golden = GOLDEN / "explain-crash-during-io.mmd"
    if os.environ.get("STACKSIM_UPDATE_GOLDEN"):
        golden.write_text(out.read_text(encoding="utf-8"), encoding="utf-8")
    assert out.read_text(encoding="utf-8") == golden.read_text(encoding="utf-8")


def test_the_mermaid_diagram_shows_both_paths_from_their_traces() -> None:
    """The diagram has every normal layer and the dump stack's images, and the bugcheck note between the paths."""
    from stacksim.explain import mermaid

    s = make_scenario(
        registry={"DumpFilters": ["dumpfve.sys"]}, filters={"dumpfve.sys": {"bitlocker": True}}, disk={"preset": "nvme-pcie4"}
    )
    text = mermaid(s, FilterCatalog())
    assert text.startswith("sequenceDiagram\n")
    for name in (*LAYERS, "stornvme.sys", "device", "crashdmp.sys", "dump_dumpfve.sys", "dump_stornvme.sys"):
        assert f" as {name}\n" in text
    assert text.index("bugcheck") < text.index("(Dump_Write)")


def test_mermaid_to_an_input_is_refused(tmp_path: Path) -> None:
    """--mermaid naming the scenario itself is refused before anything runs (exit 2)."""
    path = tmp_path / "s.toml"
    path.write_text((ROOT / "scenarios" / "crash-no-filters.toml").read_text())
    result = CliRunner().invoke(app, ["explain", str(path), "--mermaid", str(path)])
    assert result.exit_code == 2
    assert "input" in result.stderr


def test_a_compressed_hibernation_names_the_compressor_as_its_bound() -> None:
    """The short crash run has no compressor: for a hibernation it bounds, the caution says so with its per-write time."""
    s = make_scenario(
        scenario={"event": "hibernate", "hibernate_at": "1 s", "bugcheck_at": None},
        memory={"ram": "1 GiB"},
        hibernation={"compress_rate": "100 MB/s"},
    )
    e = explain(s, FilterCatalog())
    assert e.dump_caveat is not None
    assert "compressor bounds the hibernation" in e.dump_caveat


def test_a_hibernation_whose_compressor_keeps_up_has_no_compressor_caution() -> None:
    """At 100 GB/s the compressor is faster than the dump path: no caution about it."""
    s = make_scenario(
        scenario={"event": "hibernate", "hibernate_at": "1 s", "bugcheck_at": None},
        memory={"ram": "1 GiB"},
        hibernation={"compress_rate": "100 GB/s"},
    )
    e = explain(s, FilterCatalog())
    assert e.dump_caveat is None or "compress" not in e.dump_caveat
