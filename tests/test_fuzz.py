"""
Fuzzing: random valid scenarios must run clean; random invalid ones must fail cleanly.

Example counts are small by default so CI stays fast; run a deeper search with
``STACKSIM_HYPOTHESIS_PROFILE=deep python3 -m pytest tests/test_fuzz.py``.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from conftest import make_scenario
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_batching import scenarios
from typer.testing import CliRunner

from stacksim import FilterCatalog, ListTrace, simulate
from stacksim.check import check_records
from stacksim.cli import app

FUZZ = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@FUZZ
@given(scenarios())
def test_valid_scenarios_run_clean(sections: dict[str, Any]) -> None:
    """Any valid scenario finishes, its trace passes every invariant, and its numbers add up."""
    catalog = FilterCatalog()
    trace = ListTrace()
    result = simulate(make_scenario(catalog, **sections), catalog, trace=trace)
    violations = check_records(trace.records)
    if any("moved request" in w for w in result.warnings):
        # a filter moved a write (honoured, as on Windows): overlapping writes are its real consequence
        violations = [v for v in violations if v.rule != "placement"]
    assert [v.render() for v in violations] == []
    completes = [r for r in trace.records if r["event"] == "write_complete"]
    assert result.write_requests == len(completes)
    assert result.bytes_written == sum(r["length"] for r in completes)
    assert result.bytes_written <= result.dump_bytes
    busy = sum(s.busy_ns for s in result.layers.values())
    for layer in result.layers.values():
        assert 0 <= layer.busy_ns <= max(result.dump_time_ns, busy)
        assert layer.p50_ns <= layer.p99_ns <= layer.max_ns
    if result.event == "crash" and result.status in ("ok", "io_error", "filter_violation", "filter_crashed", "io_timeout"):
        assert busy == result.dump_time_ns  # the crash path is serial: every nanosecond belongs to a layer
    if result.status == "ok":
        assert result.bytes_written == result.dump_bytes


def toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(v)


def to_toml(data: dict[str, Any]) -> str:
    """A small TOML writer for scenario dicts (tables, filter tables, arrays of fault tables)."""
    lines = []
    for table, body in data.items():
        if table == "faults":
            for fault in body:
                lines.append("[[faults]]")
                lines += [f"{k} = {toml_value(v)}" for k, v in fault.items()]
        elif table == "filters":
            for name, params in body.items():
                lines.append(f'[filters."{name}"]')
                lines += [f"{k} = {toml_value(v)}" for k, v in params.items()]
        else:
            lines.append(f"[{table}]")
            lines += [f"{k} = {toml_value(v)}" for k, v in body.items() if v is not None]
    return "\n".join(lines) + "\n"


MUTATIONS = {
    "unknown_key": lambda d, n: d.setdefault("disk", {}).update({f"zz_unknown_{n}": 1}),
    "wrong_type": lambda d, n: d["memory"].update({"ram": [n]}),
    "bool_for_size": lambda d, n: d["dump_port"].update({"max_transfer": True}),
    "negative_size": lambda d, n: d["memory"].update({"ram": -1 - n}),
    "bad_unit": lambda d, n: d["memory"].update({"ram": f"{n} parsecs"}),
    "unaligned_ram": lambda d, n: d["memory"].update({"ram": 4096 * (n + 1) + 1}),
    "unknown_filter": lambda d, n: d["registry"].update({"DumpFilters": [f"nosuch{n}.sys"]}),
    "bad_enum": lambda d, n: d["registry"].update({"CrashDumpEnabled": 4 + n % 2}),
    "zero_bandwidth": lambda d, n: d["disk"].update({"bandwidth": 0}),
    "unknown_section": lambda d, n: d.update({f"section{n}": {"x": 1}}),
    "bad_fault": lambda d, n: d.setdefault("faults", []).append({"kind": "meteor", "at": n}),
}


@FUZZ
@given(scenarios(), st.sampled_from(sorted(MUTATIONS)), st.integers(0, 1000), st.booleans())
def test_invalid_scenarios_fail_cleanly(sections: dict[str, Any], mutation: str, n: int, broken_toml: bool) -> None:
    """A broken scenario exits 2 with a one-paragraph error naming the file, no traceback, no output file."""
    data = json.loads(json.dumps(sections))  # deep copy
    data["dump_port"] = dict(data.get("dump_port", {}))
    data.setdefault("disk", {})
    MUTATIONS[mutation](data, n)
    text = to_toml(data)
    if broken_toml:
        text += "\n[scenario\n"
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d)
        path = folder / "fuzzed.toml"
        path.write_text(text)
        r = CliRunner().invoke(app, ["run", str(path), "--json", str(folder / "r.json"), "--trace", str(folder / "t.jsonl")])
        assert r.exit_code == 2, (mutation, r.stdout, r.stderr)
        assert r.stderr.startswith("error: ")
        assert "fuzzed.toml" in r.stderr
        assert "Traceback" not in r.stderr + r.stdout
        assert sorted(p.name for p in folder.iterdir()) == ["fuzzed.toml"]
