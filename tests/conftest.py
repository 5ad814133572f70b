"""
Shared helpers for the suite.

Rules of this suite: time is virtual and asserted exactly (``==`` on nanoseconds, never wall
time); a hang is a bug the engine's watchdog must turn into a result, so no test needs a real
timeout; each test states one behaviour in its docstring.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator
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
