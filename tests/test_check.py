"""The invariant checker, tested on hand-made traces that break each rule once."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from conftest import run
from typer.testing import CliRunner

from stacksim.check import RULES, check_records, check_trace_file
from stacksim.cli import app


def good() -> list[dict[str, Any]]:
    """A valid trace: one filter (start, write, finish), two writes, from a real run."""
    _, trace = run(registry={"DumpFilters": ["delayflt.sys"]}, filters={"delayflt.sys": {"start": 10, "finish": 10}})
    return trace.records


def rules_broken(records: list[dict[str, Any]]) -> list[str]:
    return [v.rule for v in check_records(records)]


def find(records: list[dict[str, Any]], layer: str, event: str, n: int = 0) -> dict[str, Any]:
    return [r for r in records if r["layer"] == layer and r["event"] == event][n]


def test_the_real_trace_is_clean() -> None:
    """A simulated trace passes every rule."""
    assert rules_broken(good()) == []


def test_order() -> None:
    """Records out of (t_ns, seq) order, or a repeated seq, break `order`."""
    recs = good()
    recs[3], recs[4] = recs[4], recs[3]
    assert "order" in rules_broken(recs)
    recs = good()
    recs[5]["seq"] = recs[4]["seq"]
    assert "order" in rules_broken(recs)


def test_qd1_second_request_issued_early() -> None:
    """Issuing a write while another is outstanding breaks `qd1`."""
    recs = good()
    done = find(recs, "crashdmp", "write_complete")
    recs.remove(done)
    assert rules_broken(recs) == ["qd1"]


def test_qd1_port_overtakes_device() -> None:
    """A port command that starts before the device finished the previous one breaks `qd1`."""
    recs = good()
    find(recs, "device", "device_write")["dur_ns"] += 10**9
    assert "qd1" in rules_broken(recs)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"offset": 1}, "not sector aligned"),
        ({"length": 10**9}, "over MaxPagesPerWrite"),
        ({"offset": 0}, "not inside one disk run"),
    ],
)
def test_placement(change: dict[str, int], message: str) -> None:
    """Misaligned, oversized or out-of-file writes break `placement`."""
    recs = good()
    find(recs, "miniport", "miniport_write").update(change)
    violations = [v for v in check_records(recs) if v.rule == "placement"]
    assert any(message in v.message for v in violations)


def test_placement_overlap() -> None:
    """Two writes to overlapping bytes break `placement`."""
    recs = good()
    second = find(recs, "miniport", "miniport_write", 1)
    second["offset"] = find(recs, "miniport", "miniport_write", 0)["offset"]
    assert any("overlap" in v.message for v in check_records(recs))


def test_start_finish() -> None:
    """A missing dump_start or a dump_finish before the last completion breaks `start_finish`."""
    recs = good()
    recs.remove(find(recs, "delayflt.sys", "dump_start"))
    assert rules_broken(recs) == ["start_finish"]
    recs = good()
    finish = find(recs, "delayflt.sys", "dump_finish")
    recs.remove(finish)
    recs.insert(3, finish)
    assert "start_finish" in rules_broken(recs)


def test_filter_order() -> None:
    """A request that skips a filter on its way to the port breaks `filter_order`."""
    recs = good()
    recs.remove(find(recs, "delayflt.sys", "dump_write", 1))
    assert rules_broken(recs) == ["filter_order"]


def test_frozen_stack() -> None:
    """A normal-stack layer active after the bugcheck breaks `frozen_stack`."""
    recs = good()
    intruder = copy.deepcopy(find(recs, "device", "device_write"))
    intruder.update(layer="fvevol.sys", event="write", seq=10**6, t_ns=recs[-1]["t_ns"])
    recs.append(intruder)
    assert rules_broken(recs) == ["frozen_stack"]


def test_dump_type() -> None:
    """A dump-path record with the other stack's dump type breaks `dump_type`."""
    recs = good()
    find(recs, "delayflt.sys", "dump_write")["dump_type"] = "hibernation"
    assert rules_broken(recs) == ["dump_type"]


def test_cli_check(tmp_path: Path) -> None:
    """`stacksim check` exits 0 on a clean trace and 1, printing the records, on a broken one."""
    path = tmp_path / "t.jsonl"
    recs = good()
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    r = CliRunner().invoke(app, ["check", str(path)])
    assert r.exit_code == 0
    assert f"all {len(RULES)} rules hold" in r.stdout
    recs.remove(find(recs, "delayflt.sys", "dump_write", 1))
    path.write_text("".join(json.dumps(r) + "\n" for r in recs) + "not json\n")
    r = CliRunner().invoke(app, ["check", str(path)])
    assert r.exit_code == 1
    assert "[filter_order] request 2 went through ['miniport']" in r.stdout
    assert "is not JSON" in r.stdout
    assert check_trace_file(str(path))[0] == len(recs)
