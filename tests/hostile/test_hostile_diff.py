"""
Hostile result files for ``stacksim diff``: numbers at and past the ends of their ranges are refused
(exit 2, one message naming the file and the key) or compared, never a traceback.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import assert_refused, invoke_cli

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parent.parent.parent


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with ok.json, a result of scenarios/crash-nvme-bitlocker.toml."""
    d = tmp_path_factory.mktemp("runs")
    proc = invoke_cli("run", str(ROOT / "scenarios" / "crash-nvme-bitlocker.toml"), "--json", str(d / "ok.json"))
    assert proc.returncode == 0, proc.stderr
    return d


def _edited(runs: Path, name: str, edit: Callable[[dict[str, Any]], None]) -> str:
    """ok.json with *edit* applied, written as *name* in *runs*; returns *name*."""
    data = json.loads((runs / "ok.json").read_text())
    edit(data)
    (runs / name).write_text(json.dumps(data))
    return name


TOO_LARGE: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "busy-10^400": (lambda r: r["layers"]["device"].update(busy_ns=10**400), "key 'layers.device.busy_ns' must be below 2^63"),
    "p99-10^400": (lambda r: r["layers"]["device"].update(p99_ns=10**400), "key 'layers.device.p99_ns' must be below 2^63"),
    "p50-2^63": (lambda r: r["layers"]["device"].update(p50_ns=2**63), "key 'layers.device.p50_ns' must be below 2^63"),
    "dump-time-10^400": (lambda r: r.update(dump_time_ns=10**400), "key 'dump_time_ns' must be below 2^63"),
    "throughput-10^400": (lambda r: r.update(throughput_bytes_per_s=10**400), "key 'throughput_bytes_per_s' must be below 2^63"),
}


@pytest.mark.parametrize("case", list(TOO_LARGE))
def test_an_integer_too_large_for_a_float_is_exit_2_naming_the_key(runs: Path, case: str) -> None:
    """An integer of 2^63 or more (10**400 is too large for a float) is exit 2 naming file and key (was: OverflowError)."""
    edit, expected = TOO_LARGE[case]
    name = _edited(runs, f"{case}.json", edit)
    assert_refused(invoke_cli("diff", "ok.json", name, cwd=runs), name, expected)


def test_the_largest_integer_a_run_writes_is_compared(runs: Path) -> None:
    """A dump time of 2^63 - 1 ns is within range: compared, exit 0."""
    name = _edited(runs, "max.json", lambda r: r.update(dump_time_ns=2**63 - 1))
    proc = invoke_cli("diff", "ok.json", name, "--json", "-", cwd=runs)
    assert proc.returncode == 0, proc.stderr
    row = next(r for r in json.loads(proc.stdout)["rows"] if r["name"] == "dump time")
    assert row["b"] == 2**63 - 1


def test_a_ratio_beyond_a_float_has_no_ratio_and_the_json_still_parses(runs: Path) -> None:
    """Throughput 1e-300 → 1e300 B/s: B ÷ A is inf, so the row's ratio is null in JSON and '(beyond a float)' on screen."""
    a = _edited(runs, "tiny.json", lambda r: r.update(throughput_bytes_per_s=1e-300))
    b = _edited(runs, "vast.json", lambda r: r.update(throughput_bytes_per_s=1e300))
    proc = invoke_cli("diff", a, b, "--json", "-", cwd=runs)
    assert proc.returncode == 0, proc.stderr
    row = next(r for r in json.loads(proc.stdout)["rows"] if r["name"] == "throughput")
    assert row["ratio"] is None
    assert "(beyond a float)" in invoke_cli("diff", a, b, cwd=runs).stdout
