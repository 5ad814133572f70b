"""structlog: phase events are stamped with simulated time, not wall time."""

from __future__ import annotations

import structlog
from conftest import run

from stacksim._log import add_sim_time


def test_phase_logs_carry_simulated_time() -> None:
    """crashdmp logs the stack load, the event start and its end, each with sim_ns."""
    with structlog.testing.capture_logs(processors=[add_sim_time]) as logs:
        result, _ = run(registry={"DumpFilters": ["delayflt.sys"]})
    phases = [(e["event"], e.get("sim_ns")) for e in logs if e.get("layer") == "crashdmp"]
    assert phases == [("stack.loaded", 0), ("event.start", 10_000_000), ("event.end", 10_000_000 + result.dump_time_ns)]
