"""
Shared helpers for the suite.

Rules of this suite: time is virtual and asserted exactly (``==`` on nanoseconds, never wall
time); a hang is a bug the engine's watchdog must turn into a result, and pytest-timeout fails any
test that still hangs (120 s by default, tighter where a test says so); each test states one
behaviour in its docstring. Hostile inputs live in ``tests/hostile/`` and go through
:func:`stacksim_cli` and :func:`assert_refused`.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from hypothesis import settings

from stacksim import FilterCatalog, ListTrace, RunResult, Scenario, simulate, validate_scenario
from stacksim.check import check_records

BASE: dict[str, Any] = {
    "scenario": {"name": "test", "event": "crash", "bugcheck_at": "10 ms"},
    "registry": {"DumpFilters": [], "CrashDumpEnabled": 3},
    "dump_port": {"max_transfer": "64 KiB", "per_request_overhead": "5 us", "reset": "1 ms"},
    "disk": {"model": "fixed", "latency": "20 us", "bandwidth": "3 GB/s", "flush": "200 us"},
}


def without_mode(result: dict[str, Any]) -> dict[str, Any]:
    """A result JSON object minus what records the engine mode (batched or request)."""
    out = {k: v for k, v in result.items() if k not in ("batched_messages", "request_mode_reasons")}
    out["replay"] = {k: v for k, v in result["replay"].items() if k != "batch"}
    return out


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def make_scenario(catalog: FilterCatalog | None = None, **sections: Any) -> Scenario:
    """
    A scenario: the small-dump, no-filter BASE with *sections* merged in.

    A section that names a ``preset`` replaces BASE's section instead of merging into it.
    """
    base = {k: v for k, v in BASE.items() if not (isinstance(sections.get(k), dict) and "preset" in sections[k])}
    return validate_scenario(merge(base, sections), "<test>", catalog or FilterCatalog())


def run(catalog: FilterCatalog | None = None, *, check: bool = True, **sections: Any) -> tuple[RunResult, ListTrace]:
    """
    Run a scenario built by :func:`make_scenario`; return the result and its trace.

    Unless *check* is false, the trace must pass the independent invariant checker.
    """
    catalog = catalog or FilterCatalog()
    trace = ListTrace()
    result = simulate(make_scenario(catalog, **sections), catalog, trace=trace)
    if check:
        violations = check_records(trace.records)
        assert not violations, "\n".join(v.render() for v in violations)
    return result, trace


def make_fifo(path: Path) -> Path:
    """A FIFO at *path* (a special file every reader must refuse without blocking)."""
    os.mkfifo(path)
    return path


def make_symlink_loop(folder: Path, suffix: str) -> Path:
    """Two symlinks ``a<suffix>`` and ``b<suffix>`` in *folder* pointing at each other; returns the first."""
    a, b = folder / f"a{suffix}", folder / f"b{suffix}"
    a.symlink_to(b)
    b.symlink_to(a)
    return a


_CHECKOUT = str(Path(__file__).resolve().parents[1])
"""The folder holding this checkout's ``stacksim`` package."""


def stacksim_cli(
    *args: str, cwd: str | os.PathLike[str] | None = None, timeout: float = 30, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """
    Run ``python -m stacksim ARGS`` in a subprocess (as a user would); ``elapsed`` is its wall time.

    The subprocess imports this checkout's stacksim whatever *cwd* is (``PYTHONPATH``), not the
    installed one, so a worktree's tests test the worktree.
    """
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "stacksim", *args],
        capture_output=True,
        text=True,
        errors="replace",
        check=False,
        cwd=cwd,
        timeout=timeout,
        env={**os.environ, "COLUMNS": "100", "PYTHONPATH": _CHECKOUT, **(env or {})},
    )
    proc.elapsed = time.monotonic() - t0  # type: ignore[attr-defined]
    return proc


def spawn_stacksim(*args: str, cwd: str | os.PathLike[str]) -> subprocess.Popen[str]:
    """Start ``python -m stacksim ARGS`` in *cwd* (this checkout's stacksim; stderr piped, stdout dropped), to be interrupted."""
    return subprocess.Popen(
        [sys.executable, "-m", "stacksim", *args],
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": _CHECKOUT},
    )


def assert_interrupted(proc: subprocess.Popen[str], sig: int) -> None:
    """Send *sig* to *proc*: it must end with exit 1 and the word "interrupted", no traceback."""
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 1, err
    assert "interrupted" in err
    assert "Traceback" not in err


def invoke_cli(*args: str, cwd: str | os.PathLike[str] | None = None) -> subprocess.CompletedProcess[str]:
    """
    Run the ``stacksim`` command in this process (fast; for the hostile corpus) as :func:`stacksim_cli` would.

    An exception escaping the command becomes exit 1 with its traceback on stderr, so
    :func:`assert_refused` catches it exactly as it would catch a real traceback.
    """
    import traceback

    from typer.testing import CliRunner

    from stacksim.cli import app

    old = os.getcwd()
    t0 = time.monotonic()
    try:
        if cwd is not None:
            os.chdir(cwd)
        r = CliRunner(env={"COLUMNS": "100"}).invoke(app, list(args))
    finally:
        os.chdir(old)
    err = r.stderr
    code = r.exit_code
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        err += "".join(traceback.format_exception(r.exception))
        code = 1
    proc = subprocess.CompletedProcess(list(args), code, r.stdout, err)
    proc.elapsed = time.monotonic() - t0  # type: ignore[attr-defined]
    return proc


def assert_refused(proc: subprocess.CompletedProcess[str], *names: str, code: int = 2, max_lines: int = 12) -> None:
    """
    *proc* was refused as bad input should be: exit *code*, a short message naming *names*, no traceback.

    The message is one paragraph (at most *max_lines* lines on stderr) and each of *names* (the
    file, the key) appears in it.
    """
    err = proc.stderr
    assert proc.returncode == code, (proc.returncode, proc.stdout[-2000:], err[-2000:])
    assert "Traceback" not in err, err[-4000:]
    assert len(err.strip().splitlines()) <= max_lines, err[-4000:]
    assert len(err) <= 4000, err[:4000]
    for name in names:
        assert name in err, (name, err)


@pytest.fixture
def catalog() -> FilterCatalog:
    return FilterCatalog()


@pytest.fixture(autouse=True)
def _reset_structlog() -> Iterator[None]:
    """The CLI configures structlog globally; give every test the defaults back."""
    yield
    structlog.reset_defaults()


settings.register_profile("default", max_examples=25)
settings.register_profile("deep", max_examples=500)
settings.load_profile(os.environ.get("STACKSIM_HYPOTHESIS_PROFILE", "default"))
