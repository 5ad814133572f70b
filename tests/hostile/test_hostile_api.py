"""
Hostile input and output paths given to the Python API: refused at once with the CLI's message, nothing touched.

stacksim.simulate's ``trace=`` and stacksim.sweep's ``out=`` meet every output target the command
line's flags refuse (``test_hostile_outputs``); stacksim.read_trace and stacksim.simulate meet
every hostile input file the scenario reader refuses (``test_hostile_scenario_files``), plus
trace files too long for a DataFrame.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from test_hostile_outputs import _snapshot, _targets, work  # noqa: F401  # work: the fixture
from test_hostile_scenario_files import CASES

import stacksim

pytestmark = pytest.mark.timeout(60)

REFUSED_IN_S = 1.0
"""Wall-time bound for refusing a path (as the command line's hostile-file tests bound it)."""


SWEEP_REFUSED_IN_S = 5.0
"""sweep() imports pandas and scans entry points before it checks *out*: 1.5 s was measured under the full suite on 2 cores."""


def _refused(call: Callable[[], object], exc: type[Exception], *names: str, bound_s: float = REFUSED_IN_S) -> str:
    """Call *call*; it must raise *exc* within *bound_s*, with a short message naming each of *names*."""
    t = time.perf_counter()
    with pytest.raises(exc) as caught:
        call()
    assert time.perf_counter() - t < bound_s
    message = str(caught.value)
    assert len(message.splitlines()) <= 12, message
    assert len(message) <= 4000, message
    for name in names:
        assert name in message, (name, message)
    return message


@pytest.mark.parametrize("target", list(_targets("")))
def test_a_trace_target_is_refused(work: Path, target: str, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    """simulate(trace=TARGET) refuses what --trace refuses, as an OutputError naming the path; nothing in the folder changes."""
    monkeypatch.chdir(work)
    make, expected = _targets("s.toml")[target]
    path = make(work)
    before = _snapshot(work)
    _refused(lambda: stacksim.simulate("s.toml", plugins=["p.py"], trace=path), stacksim.OutputError, path, expected)
    assert _snapshot(work) == before


@pytest.mark.parametrize("target", list(_targets("")))
def test_a_sweep_out_target_is_refused(work: Path, target: str, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    """sweep(out=TARGET) refuses what --out refuses, as an OutputError naming the path, before any point runs; nothing changes."""
    monkeypatch.chdir(work)
    make, expected = _targets("s.toml")[target]
    path = make(work)
    before = _snapshot(work)
    sweep = lambda: stacksim.sweep("s.toml", {"disk.latency": ["1us"]}, out=path, plugins=["p.py"])  # noqa: E731
    _refused(sweep, stacksim.OutputError, path, expected, bound_s=SWEEP_REFUSED_IN_S)
    assert _snapshot(work) == before


def test_a_sweep_out_of_another_kind_is_refused(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    """sweep(out="r.txt") is a SweepError asking for .csv or .jsonl; no file is created."""
    monkeypatch.chdir(work)
    before = _snapshot(work)
    _refused(lambda: stacksim.sweep("s.toml", {"disk.latency": ["1us"]}, out="r.txt"), stacksim.SweepError, "r.txt", ".csv")
    assert _snapshot(work) == before


@pytest.mark.parametrize("case", list(CASES))
def test_a_hostile_scenario_path_is_refused(case: str, tmp_path: Path) -> None:
    """simulate(PATH) refuses every scenario file `stacksim run` refuses, as a ScenarioError with the same words."""
    make, expected = CASES[case]
    path = make(tmp_path)
    _refused(lambda: stacksim.simulate(path), stacksim.ScenarioError, str(path), expected)


TRACE_CASES = {k: v for k, v in CASES.items() if k not in ("over-16-MiB", "missing", "utf-16")}


def _over_64_gib(tmp: Path) -> Path:
    p = tmp / "big.jsonl"
    with p.open("wb") as f:
        f.truncate(64 * 2**30 + 1)  # sparse: costs no disk
    return p


@pytest.mark.parametrize("case", [*TRACE_CASES, "over-64-GiB", "missing"])
def test_a_hostile_trace_path_is_refused(case: str, tmp_path: Path) -> None:
    """read_trace refuses a path that is not a regular trace file of at most 64 GiB, as an InputError naming it."""
    if case == "over-64-GiB":
        path, expected = _over_64_gib(tmp_path), "68,719,476,736 bytes"
    elif case == "missing":
        path, expected = tmp_path / "missing.jsonl", "no such trace file"
    else:
        make, expected = TRACE_CASES[case]
        path = make(tmp_path)
        if case == "binary":
            expected = "not UTF-8"
    _refused(lambda: stacksim.read_trace(path), stacksim.InputError, str(path), expected)


def test_a_deep_trace_record_is_refused(tmp_path: Path) -> None:
    """A line nested thousands deep is an InputError naming the file, not a RecursionError."""
    path = tmp_path / "deep.jsonl"
    path.write_text("[" * 100_000 + "]" * 100_000 + "\n")
    _refused(lambda: stacksim.read_trace(path), stacksim.InputError, str(path))
