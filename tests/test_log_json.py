"""`stacksim run --log-json FILE`: structlog JSON lines stamped with simulated time, equal to the trace's times."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import pytest
import structlog
import trio
from conftest import invoke_cli, make_scenario

from stacksim import FilterCatalog
from stacksim._log import add_sim_time
from stacksim.filters import DumpFilter, FilterExtension
from stacksim.requests import DumpRequest, NtStatus
from stacksim.simulate import simulate

SHIPPED = Path(__file__).resolve().parents[1] / "scenarios" / "crash-nvme-bitlocker.toml"
SCENARIO = "s.toml"
"""The shipped BitLocker crash scenario with 64 MiB of RAM (1,026 writes), written into each test's folder."""
PHASE_KEYS = ("sim_ns", "level", "layer", "event", "dur_ns")


@pytest.fixture(autouse=True)
def _scenario(tmp_path: Path) -> None:
    (tmp_path / SCENARIO).write_text(SHIPPED.read_text().replace('ram = "8 GiB"', 'ram = "64 MiB"'))


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _run(tmp_path: Path, *extra: str, scenario: str = SCENARIO) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    proc = invoke_cli("run", scenario, "--log-json", "log.jsonl", "--trace", "t.jsonl", *extra, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    return _lines(tmp_path / "log.jsonl"), _records(tmp_path / "t.jsonl")


def test_every_phase_record_of_the_trace_is_a_log_line_at_the_same_time(tmp_path: Path) -> None:
    """Each record of no request but the checker's dump_context is one info line: same layer, event, start and duration."""
    log, trace = _run(tmp_path)
    phases = [
        (r["t_ns"], r["layer"], r["event"], r["dur_ns"]) for r in trace if r["request"] is None and r["event"] != "dump_context"
    ]
    assert [(e["sim_ns"], e["layer"], e["event"], e["dur_ns"]) for e in log if "dur_ns" in e] == phases
    assert phases[0] == (0, "dumpfve.sys", "driver_entry", 0)
    assert phases[-1][2] == "dump_complete"


def test_lines_carry_simulated_time_first_and_no_wall_clock(tmp_path: Path) -> None:
    """Every line starts with sim_ns, level, layer and event; there is no timestamp of the wall clock."""
    log, _ = _run(tmp_path)
    assert all(list(e)[:4] == ["sim_ns", "level", "layer", "event"] for e in log)
    assert not any("timestamp" in e for e in log)
    assert [e["event"] for e in log if "dur_ns" not in e] == ["stack.loaded", "event.start", "event.end"]
    assert [e["sim_ns"] for e in log] == sorted(e["sim_ns"] for e in log)


def test_the_crashdmp_phase_events_share_the_trace_times(tmp_path: Path) -> None:
    """event.start is logged at the bugcheck record's time, event.end at dump_complete's."""
    log, trace = _run(tmp_path)
    at = {r["event"]: r["t_ns"] for r in trace if r["request"] is None}
    events = {e["event"]: e["sim_ns"] for e in log}
    assert (events["event.start"], events["event.end"]) == (at["bugcheck"], at["dump_complete"]) == (10_000_000, 80_386_952)


def test_info_logs_leave_the_run_batched(tmp_path: Path) -> None:
    """Phases only: a run logged at info (without --trace) keeps batched mode and its result."""
    plain = invoke_cli("run", SCENARIO, "--json", "a.json", cwd=tmp_path)
    logged = invoke_cli("run", SCENARIO, "--json", "b.json", "--log-json", "log.jsonl", cwd=tmp_path)
    assert plain.returncode == logged.returncode == 0, logged.stderr
    a, b = (json.loads((tmp_path / n).read_text()) for n in ("a.json", "b.json"))
    assert a == b
    assert b["request_mode_reasons"] == []
    assert len(_lines(tmp_path / "log.jsonl")) == 9


def test_debug_logs_one_line_per_request_per_layer_in_trace_order(tmp_path: Path) -> None:
    """--log-json-level debug: every trace record but dump_context is a line, in the trace's order and times."""
    log, trace = _run(tmp_path, "--log-json-level", "debug")
    expected = [
        (r["t_ns"], r["layer"], r["event"], r["dur_ns"], r["request"], r["offset"], r["length"])
        for r in trace
        if r["event"] != "dump_context"
    ]
    got = [
        (e["sim_ns"], e["layer"], e["event"], e["dur_ns"], e.get("request"), e.get("offset"), e.get("length"))
        for e in log
        if "dur_ns" in e
    ]
    assert got == expected
    assert {e["level"] for e in log if "request" in e} == {"debug"}
    assert len([e for e in log if e["event"] == "device_write"]) == 1_026


def test_the_same_scenario_gives_the_same_log_bytes(tmp_path: Path) -> None:
    """Two runs of one scenario and seed write byte-identical logs."""
    for name in ("a.jsonl", "b.jsonl"):
        assert invoke_cli("run", SCENARIO, "--log-json", name, cwd=tmp_path).returncode == 0
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()


def test_an_abandoned_pipelined_attempt_logs_nothing() -> None:
    """A run repeated one write at a time logs each event once: the abandoned attempt's events are dropped with it."""

    class LateAwait(DumpFilter):
        service_name: ClassVar[str] = "late.sys"

        async def dump_write(self, extension: FilterExtension, request: DumpRequest) -> int:
            if request.number == 20:
                await trio.lowlevel.checkpoint()  # observable overlap: the pipelined attempt is abandoned
            return NtStatus.SUCCESS

    catalog = FilterCatalog()
    catalog.add(LateAwait, "test")
    s = make_scenario(catalog, registry={"CrashDumpEnabled": 1, "DumpFilters": ["late.sys"]}, memory={"ram": "64 MiB"})
    with structlog.testing.capture_logs(processors=[add_sim_time]) as logs:
        result = simulate(s, catalog, batch=False, log_phases=True)
    events = [e["event"] for e in logs]
    assert result.status == "ok"
    assert events.count("run.pipeline_abandoned") == 1
    assert events.count("driver_entry") == events.count("event.start") == events.count("dump_complete") == 1


def test_log_json_level_needs_log_json(tmp_path: Path) -> None:
    """--log-json-level alone is refused: exit 2, naming both options."""
    proc = invoke_cli("run", SCENARIO, "--log-json-level", "debug", cwd=tmp_path)
    assert proc.returncode == 2
    assert "--log-json-level goes with --log-json" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_bad_log_json_level_is_refused(tmp_path: Path) -> None:
    """An unknown level: exit 2 with the allowed values; no log file is written."""
    proc = invoke_cli("run", SCENARIO, "--log-json", "l.jsonl", "--log-json-level", "loud", cwd=tmp_path)
    assert proc.returncode == 2
    assert "allowed values are debug, info, warning, error" in proc.stderr
    assert not (tmp_path / "l.jsonl").exists()


def test_a_failed_run_leaves_no_log_file(tmp_path: Path) -> None:
    """A scenario that does not load: exit 2, and the log (an output, written atomically) is not there."""
    (tmp_path / "bad.toml").write_text('[scenario]\nname = "x"\nevent = "nope"\n')
    proc = invoke_cli("run", "bad.toml", "--log-json", "l.jsonl", cwd=tmp_path)
    assert proc.returncode == 2
    assert not (tmp_path / "l.jsonl").exists()
