"""
Start-up: ``import stacksim`` and ``stacksim --help`` import only what they use.

Each test starts a fresh interpreter (this process has imported everything already) and looks
at ``sys.modules``; nothing here measures time (``benchmarks/bench_startup.py`` does). What is
deferred and why: ``docs/explanation/performance.md``, "Start-up".
"""

from __future__ import annotations

import ast
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import stacksim_cli

import stacksim

ROOT = Path(__file__).resolve().parents[1]

HEAVY = ("cryptography", "hdrh", "matplotlib", "numpy", "pydantic", "pytest", "rich", "structlog", "trio")
"""Third-party packages stacksim defers: none is imported before a command or a run uses it."""


def fresh(code: str) -> subprocess.CompletedProcess[str]:
    """A fresh ``python3 -c CODE`` with this checkout's stacksim, in the repository (it must exit 0)."""
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "100"},
    )


def modules_after(code: str) -> list[str]:
    """The sorted ``sys.modules`` keys after a fresh interpreter ran *code* (see :func:`fresh`)."""
    proc = fresh(f"import sys\n{code}\nmods = sorted(sys.modules)\nimport json\nsys.stderr.write(json.dumps(mods))\n")
    mods: list[str] = json.loads(proc.stderr)
    return mods


def heavy(mods: list[str]) -> list[str]:
    """The :data:`HEAVY` packages imported, by their top-level names: a submodule counts as its package."""
    return sorted({m.split(".")[0] for m in mods} & set(HEAVY))


def stacksims(mods: list[str]) -> list[str]:
    """stacksim's own modules among *mods*."""
    return [m for m in mods if m.split(".")[0] == "stacksim"]


CLI_HELP = """\
from stacksim.cli import main
sys.argv = ["stacksim", "--help"]
try:
    main()
except SystemExit:
    pass
"""


def test_import_stacksim_imports_only_the_package_and_its_version() -> None:
    """`import stacksim` imports stacksim and stacksim._version, and none of trio, pydantic, structlog, rich, numpy, ..."""
    mods = modules_after("import stacksim")
    assert stacksims(mods) == ["stacksim", "stacksim._version"]
    assert heavy(mods) == []


def test_help_imports_the_command_line_only() -> None:
    """`stacksim --help` imports the CLI, _io and units, and no trio, pydantic, structlog, numpy, cryptography or pytest."""
    mods = modules_after(CLI_HELP)
    assert stacksims(mods) == ["stacksim", "stacksim._io", "stacksim._version", "stacksim.cli", "stacksim.units"]
    assert heavy(mods) == ["rich"]  # typer renders its help with rich


def test_version_imports_no_rich() -> None:
    """`stacksim --version` imports none of the deferred packages, rich included (nothing is rendered)."""
    mods = modules_after(CLI_HELP.replace("--help", "--version"))
    assert heavy(mods) == []


def test_help_still_prints_every_command() -> None:
    """`python3 -m stacksim --help` exits 0 and lists each command."""
    proc = stacksim_cli("--help")
    assert proc.returncode == 0, proc.stderr
    commands = ("run", "sweep", "replay", "check", "validate", "explain", "memory", "extract", "inspect", "devices", "filters")
    assert [c for c in commands if f" {c} " not in proc.stdout] == []


def test_a_library_run_imports_only_trio_and_pydantic() -> None:
    """simulate() of the README's scenario (no summary, no log configuration) imports trio and pydantic, not structlog or rich."""
    mods = modules_after(
        "from stacksim import FilterCatalog, load_scenario, simulate\n"
        "catalog = FilterCatalog()\n"
        "assert simulate(load_scenario('scenarios/crash-nvme-bitlocker.toml', catalog), catalog).status == 'ok'\n"
    )
    assert heavy(mods) == ["pydantic", "trio"]


def test_phase_events_below_warning_need_no_structlog() -> None:
    """Before anything imports structlog, a phase logger drops an info event without importing it."""
    mods = modules_after("from stacksim._log import PhaseLogger\nPhaseLogger('stacksim', layer='crashdmp').info('event.start')\n")
    assert "structlog" not in mods


def test_a_warning_before_structlog_is_imported_is_logged_at_the_default_level() -> None:
    """A phase logger's warning, with structlog not imported yet, configures the warning-level default and reaches stderr."""
    proc = fresh(
        "from stacksim._log import PhaseLogger\n"
        "log = PhaseLogger('stacksim', layer='crashdmp')\n"
        "log.warning('filter.slow', filter='x.sys')\n"
        "log.info('event.end')\n"
    )
    assert [line.split() for line in proc.stderr.splitlines()] == [
        ["[warning", "]", "filter.slow", "filter=x.sys", "layer=crashdmp"]
    ]


def test_run_in_a_fresh_process_prints_the_golden_summary() -> None:
    """`python3 -m stacksim run` of the README's scenario, in a fresh process, prints exactly its golden summary."""
    scenario = ROOT / "scenarios" / "crash-nvme-bitlocker.toml"
    proc = stacksim_cli("run", str(scenario), env={"NO_COLOR": "1"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == scenario.with_suffix(".out").read_text(encoding="utf-8")


def test_simulate_stays_the_function_when_its_module_is_imported_first() -> None:
    """After `import stacksim.simulate` (the module), `stacksim.simulate` and `from stacksim import simulate` are the API's."""
    mods = modules_after(
        "import stacksim.simulate\n"
        "import stacksim\n"
        "from stacksim import simulate\n"
        "function = sys.modules['stacksim.api'].simulate\n"
        "assert stacksim.simulate is function and simulate is function, (stacksim.simulate, simulate)\n"
    )
    assert "stacksim.simulate" in mods


def test_sweep_stays_the_function_when_its_module_is_imported_first() -> None:
    """After `from stacksim.sweep import grid` (the module), `stacksim.sweep` is still the API function."""
    modules_after(
        "from stacksim.sweep import grid\n"
        "import stacksim\n"
        "assert stacksim.sweep is sys.modules['stacksim.api'].sweep, stacksim.sweep\n"
    )


def test_a_path_run_imports_no_pandas() -> None:
    """stacksim.simulate('scenario.toml') imports trio and pydantic, and not pandas (only the DataFrame methods do)."""
    mods = modules_after("import stacksim\nassert stacksim.simulate('scenarios/crash-nvme-bitlocker.toml').status == 'ok'\n")
    assert heavy(mods) == ["pydantic", "trio"]
    assert "pandas" not in mods


def test_every_public_name_is_the_object_its_module_defines() -> None:
    """Each name in stacksim.__all__ (but __version__) comes from the module stacksim._HOME names, and is that object."""
    assert sorted([*stacksim._HOME, "__version__"]) == sorted(stacksim.__all__)
    assert [
        n for n, home in stacksim._HOME.items() if getattr(stacksim, n) is not getattr(importlib.import_module(home), n)
    ] == []


def test_the_type_checking_imports_match_the_lazy_table() -> None:
    """The names stacksim/__init__.py imports under TYPE_CHECKING (for mypy) are exactly the table __getattr__ uses."""
    tree = ast.parse((ROOT / "stacksim" / "__init__.py").read_text(encoding="utf-8"))
    block = next(n for n in tree.body if isinstance(n, ast.If) and ast.unparse(n.test) == "TYPE_CHECKING")
    imported = {alias.name: node.module for node in block.body if isinstance(node, ast.ImportFrom) for alias in node.names}
    assert imported == stacksim._HOME


def test_an_unknown_attribute_is_an_attribute_error() -> None:
    """`stacksim.nonexistent` raises AttributeError naming the module and the attribute."""
    with pytest.raises(AttributeError, match=r"^module 'stacksim' has no attribute 'nonexistent'$"):
        stacksim.nonexistent  # noqa: B018


def test_dir_lists_every_public_name() -> None:
    """dir(stacksim) includes every name in __all__, imported yet or not."""
    assert [n for n in stacksim.__all__ if n not in dir(stacksim)] == []
