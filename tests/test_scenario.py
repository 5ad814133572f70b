"""Scenario files: validation and the clear, one-paragraph errors bad input gets."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import BASE, make_scenario, merge

from stacksim import FilterCatalog, ScenarioError, load_scenario, validate_scenario


def problems(data: dict[str, object]) -> list[tuple[str, str]]:
    with pytest.raises(ScenarioError) as info:
        validate_scenario(data, "bad.toml", FilterCatalog())
    return info.value.problems


def test_defaults_fill_in() -> None:
    """A scenario needs only a name; everything else has a documented default."""
    s = validate_scenario({"scenario": {"name": "x"}}, "x.toml", FilterCatalog())
    assert s.registry.dump_filters == ("dumpfve.sys",)
    assert s.registry.crash_dump_enabled == 7
    assert s.dump_port.resolved().max_pages_per_write == 16


def test_wrong_type() -> None:
    """A wrong type names the key, the problem and the value given."""
    assert problems(merge(BASE, {"disk": {"latency": [1]}})) == [
        ("[disk] latency", "[1] is not a duration; give an integer (nanoseconds) or a string with a unit"),
    ]


def test_unknown_key_lists_the_allowed_ones() -> None:
    """An unknown key is named, with the keys that table allows."""
    assert problems(merge(BASE, {"disk": {"colour": "red"}})) == [
        (
            "[disk] colour",
            "unknown key; allowed keys: bandwidth, bandwidth_limit, cache, flush, inner_media_bandwidth, io_unit, "
            "iops_limit, latency, media_bandwidth, model, preset, rpm, seek, size, volatile_cache, zones",
        ),
    ]


def test_unknown_section() -> None:
    """An unknown table is named, with the tables allowed."""
    [(key, msg)] = problems(merge(BASE, {"disks": {}}))
    assert key == "[disks]"
    assert msg.startswith("unknown key; allowed keys: disk, dump_driver, dump_port, engine, faults, filters")


def test_negative_size() -> None:
    """A negative size is refused with what is allowed."""
    assert problems(merge(BASE, {"memory": {"ram": -64}})) == [("[memory] ram", "-64 is negative; a size must be ≥ 0")]


def test_bad_unit_string() -> None:
    """A unit the parser does not know is named with the units it does."""
    [(key, msg)] = problems(merge(BASE, {"disk": {"bandwidth": "3 furlongs/s"}}))
    assert key == "[disk] bandwidth"
    assert "allowed: a size unit per second (B/s, kB/s, MB/s, GB/s" in msg


def test_unknown_filter_name() -> None:
    """A DumpFilters entry nobody provides lists the known filters and how to add one."""
    [(key, msg)] = problems(merge(BASE, {"registry": {"DumpFilters": ["nosuch.sys"]}}))
    assert key == "[registry] DumpFilters[0]"
    assert "unknown filter 'nosuch.sys'; known filters: delayflt.sys, dumpfve.sys, faultflt.sys" in msg
    assert "--plugin" in msg


def test_filter_parameters_are_validated_by_the_filter() -> None:
    """A filter's table is checked against that filter's parameters."""
    [(key, msg)] = problems(merge(BASE, {"filters": {"delayflt.sys": {"per_cal": "2 us"}}}))
    assert key == '[filters."delayflt.sys"] per_cal'
    assert msg.startswith("unknown key; allowed keys: critical, finish, per_byte, per_call, read, start")


def test_crash_dump_enabled_values() -> None:
    """CrashDumpEnabled accepts only the values Windows defines."""
    [(key, msg)] = problems(merge(BASE, {"registry": {"CrashDumpEnabled": 5}}))
    assert key == "[registry] CrashDumpEnabled"
    assert "0, 1, 2, 3 or 7" in msg


def test_duplicate_filter() -> None:
    """A filter listed twice is refused."""
    [(_, msg)] = problems(merge(BASE, {"registry": {"DumpFilters": ["dumpfve.sys", "dumpfve.sys"]}}))
    assert "more than once" in msg


def test_event_time_must_match_event() -> None:
    """A crash scenario cannot set hibernate_at."""
    [(key, msg)] = problems(merge(BASE, {"scenario": {"hibernate_at": "1 s"}}))
    assert key == "[scenario]"
    assert "hibernate_at is for event" in msg


def test_all_problems_reported_at_once() -> None:
    """Several problems are all reported, each on its own line."""
    with pytest.raises(ScenarioError) as info:
        validate_scenario(merge(BASE, {"disk": {"latency": "x"}, "memory": {"ram": "1 parsec"}}), "bad.toml", FilterCatalog())
    text = str(info.value)
    assert text.startswith("bad.toml: 2 problems:\n  - [memory] ram:")


def test_malformed_toml(tmp_path: Path) -> None:
    """A TOML syntax error names the file, line and column."""
    p = tmp_path / "broken.toml"
    p.write_text("[scenario]\nname = \n")
    with pytest.raises(ScenarioError, match=r"broken.toml: not valid TOML: .*line 2"):
        load_scenario(p, FilterCatalog())


def test_missing_file(tmp_path: Path) -> None:
    """A missing scenario file is named."""
    with pytest.raises(ScenarioError, match=r"nope\.toml: no such scenario file"):
        load_scenario(tmp_path / "nope.toml", FilterCatalog())


def test_seed_override(tmp_path: Path) -> None:
    """--seed overrides the scenario's seed."""
    p = tmp_path / "s.toml"
    p.write_text('[scenario]\nname = "s"\nseed = 3\n')
    assert load_scenario(p, FilterCatalog(), seed=9).scenario.seed == 9


def test_make_scenario_helper_is_valid() -> None:
    """The suite's base scenario is itself valid."""
    assert make_scenario().scenario.name == "test"
