"""Scenario files: validation and the clear, one-paragraph errors bad input gets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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


FAULT = {"device_error": {"kind": "device_error"}, "power_loss": {"kind": "power_loss"}}
NUMBER_KEYS: list[tuple[str, ...]] = [
    ("scenario", "seed"),
    ("scenario", "bugcheck_at"),
    ("registry", "CrashDumpEnabled"),
    ("registry", "FilterPages"),
    ("memory", "ram"),
    ("memory", "kernel_fraction"),
    ("memory", "free_fraction"),
    ("memory", "file_cache_fraction"),
    ("memory", "guest_fraction"),
    ("memory", "secondary_data"),
    ("hibernation", "file_fraction"),
    ("hibernation", "compress_rate"),
    ("dump_driver", "integrity_check"),
    ("dump_driver", "per_request"),
    ("dump_driver", "write_retries"),
    ("dump_port", "max_transfer"),
    ("dump_port", "common_buffer"),
    ("dump_port", "per_request_overhead"),
    ("dump_port", "reset"),
    ("dump_port", "timeout"),
    ("disk", "latency"),
    ("disk", "bandwidth"),
    ("disk", "flush"),
    ("disk", "size"),
    ("disk:hdd", "media_bandwidth"),
    ("disk:hdd", "inner_media_bandwidth"),
    ("disk:hdd", "cache"),
    ("disk:hdd", "zones"),
    ("disk:hdd", "rpm"),
    ("disk:hdd", "seek"),
    ("disk:virtual", "iops_limit"),
    ("disk:virtual", "bandwidth_limit"),
    ("disk:virtual", "io_unit"),
    ("layout", "size"),
    ("layout", "runs"),
    ("layout", "partition_offset"),
    ("layout", "partition_size"),
    ("layout", "file_offset"),
    ("engine", "watchdog"),
    ("faults:device_error", "at_request"),
    ("faults:device_error", "at_offset"),
    ("faults:device_error", "status"),
    ("faults:power_loss", "at"),
]
"""Every key that takes a number (integer, quantity or fraction), with the table it lives in."""


def with_value(where: tuple[str, ...], value: object) -> tuple[dict[str, Any], str]:
    """BASE with *value* at the key *where*; and the key as messages name it."""
    table, _, variant = where[0].partition(":")
    key = where[1]
    if table == "faults":
        return merge(BASE, {"faults": [{**FAULT[variant], key: value}]}), f"[faults][0].{key}"
    section: dict[str, Any] = {key: value}
    if table == "disk" and variant:
        section["model"] = variant
    return merge(BASE, {table: section}), f"[{table}] {key}"


@pytest.mark.parametrize("where", NUMBER_KEYS, ids=[".".join(w) for w in NUMBER_KEYS])
def test_a_boolean_is_not_a_number(where: tuple[str, ...]) -> None:
    """true is refused wherever a number goes (CrashDumpEnabled = true is not 1), naming the key."""
    data, key = with_value(where, True)
    assert key in [k for k, _ in problems(data)]


@pytest.mark.parametrize("where", NUMBER_KEYS, ids=[".".join(w) for w in NUMBER_KEYS])
def test_a_4000_digit_integer_is_a_scenario_error(where: tuple[str, ...]) -> None:
    """10^4000 (from the Python API or a sweep --set) is refused by key, never an OverflowError or ValueError."""
    data, key = with_value(where, 10**4000)
    found = problems(data)
    assert key in [k for k, _ in found]
    assert all(len(msg) < 300 for _, msg in found)


@pytest.mark.parametrize("where", NUMBER_KEYS, ids=[".".join(w) for w in NUMBER_KEYS])
def test_a_negative_number_is_refused(where: tuple[str, ...]) -> None:
    """No number stacksim takes is negative."""
    data, key = with_value(where, -1)
    assert key in [k for k, _ in problems(data)]


@pytest.mark.parametrize("key", ["free_fraction", "file_cache_fraction", "guest_fraction"])
def test_zero_shares_agree(key: str) -> None:
    """A share of 0, 0.0, "0" and "0.0" is the same scenario."""
    plans = []
    for zero in (0, 0.0, "0", "0.0"):
        s = make_scenario(memory={key: zero}, registry={"CrashDumpEnabled": 1, "FilterPages": 1})
        plans.append((getattr(s.memory, key), s.dump_plan()))
    assert plans == [plans[0]] * 4
    assert plans[0][0] == 0


def test_a_bit_rate_bandwidth_is_bits() -> None:
    """[disk] bandwidth = "6 Gb/s" is 750,000,000 bytes per second."""
    assert make_scenario(disk={"bandwidth": "6 Gb/s"}).disk.resolved()[2]["bandwidth"] == 750_000_000


class TestLimits:
    """The documented limits that keep every number the simulation uses inside 64 bits."""

    def test_ram_beyond_4_pib(self) -> None:
        """RAM is at most 4 PiB, what x86-64's 52-bit physical addresses reach."""
        [(key, msg)] = problems(merge(BASE, {"memory": {"ram": 2**52 + 4096}}))
        assert (key, msg) == (
            "[memory] ram",
            "ram = 4,503,599,627,374,592 bytes is more than 4 PiB (2^52 bytes), the most x86-64 physical addresses reach",
        )

    def test_max_transfer_is_a_ulong(self) -> None:
        """The dump port's transfer limit is below 4 GiB (MaximumTransferLength is a ULONG)."""
        [(key, msg)] = problems(merge(BASE, {"dump_port": {"max_transfer": "4 GiB"}}))
        assert key == "[dump_port] max_transfer"
        assert "MaximumTransferLength is a ULONG" in msg

    def test_too_many_dump_filters(self) -> None:
        """DumpFilters lists at most 64 filters."""
        [(key, msg)] = problems(merge(BASE, {"registry": {"DumpFilters": [f"f{i}.sys" for i in range(65)]}}))
        assert key == "[registry] DumpFilters"
        assert "at most 64 items" in msg

    def test_too_many_runs(self) -> None:
        """A file has at most 1,000,000 runs."""
        [(key, msg)] = problems(merge(BASE, {"layout": {"runs": 1_000_001}}))
        assert (key, msg) == ("[layout] runs", "1000001: runs must be from 1 to 1,000,000 (or a list of {offset, length} tables)")

    def test_the_worst_case_must_fit_in_64_bits(self) -> None:
        """A dump whose worst case could pass 2^63 - 1 ns (292 years) is refused, blaming the largest term."""
        [(key, msg)] = problems(
            merge(
                BASE,
                {
                    "registry": {"CrashDumpEnabled": 1, "DumpFilters": ["dumpfve.sys"]},
                    "memory": {"ram": "4 PiB"},
                    "disk": {"size": "1 EiB"},
                },
            )
        )
        assert key == "[engine] watchdog"
        assert msg.startswith("the dump could run past the simulated-time limit of 2^63 - 1 ns (about 292 years): ")
        # the header, the bitmap (2^37 + 36 KiB for the 2^40 + 262,242 page frames of 4 PiB above the PCI hole: 2^21 + 1
        # writes of 64 KiB) and the 4 PiB body (2^36 writes)
        attempts = 1 + (2**21 + 1) + 2**36
        assert f"{attempts:,} write attempts of up to 60 s each (1 filter call of up to the 60 s watchdog" in msg

    def test_the_same_dump_fits_with_a_shorter_watchdog(self) -> None:
        """Lowering the watchdog lowers the worst case: the same 4 PiB dump is valid with a 100 ms watchdog."""
        s = make_scenario(
            registry={"CrashDumpEnabled": 1, "DumpFilters": ["dumpfve.sys"]},
            memory={"ram": "4 PiB"},
            disk={"size": "1 EiB"},
            engine={"watchdog": "100 ms"},
        )
        assert s.dump_plan().total_bytes == 8192 + (2**37 + 36864) + 2**52  # header, bitmap, body

    def test_deep_nesting_is_refused_by_key(self) -> None:
        """A value nested 600 arrays deep is refused, naming the key, without RecursionError."""
        value: Any = 1
        for _ in range(600):
            value = [value]
        [(key, msg)] = problems(merge(BASE, {"disk": {"latency": value}}))
        assert (key, msg) == ("[disk] latency", "tables and arrays are nested more than 64 levels deep")

    def test_deep_nesting_in_a_filter_table(self) -> None:
        """The same in a filter's table names the filter and the key."""
        value: Any = {}
        for _ in range(100_000):
            value = {"x": value}
        [(key, _)] = problems(merge(BASE, {"filters": {"delayflt.sys": {"per_call": value}}}))
        assert key == '[filters."delayflt.sys"] per_call'


class TestValidateEqualsRun:
    """What run would refuse about the layout, validate refuses, naming the key to change."""

    def test_overlapping_runs(self) -> None:
        """Two runs that share bytes: the later one is named, with the bytes they share."""
        runs = [
            {"offset": "2 GiB", "length": "64 KiB"},
            {"offset": "1 GiB", "length": "1 MiB"},
            {"offset": 2**30 + 4096, "length": 4096},
        ]
        assert problems(merge(BASE, {"layout": {"runs": runs}})) == [
            (
                "[layout] runs[2]",
                "overlaps runs[1]: partition bytes 1,073,745,920..1,073,750,016 and 1,073,741,824..1,074,790,400 "
                "share 4,096 bytes",
            ),
        ]

    def test_many_overlaps_are_counted(self) -> None:
        """Three overlaps are named; the rest are counted in one line."""
        runs = [{"offset": 0, "length": 8192}] + [{"offset": 512 * i, "length": 512} for i in range(1, 11)]
        found = problems(merge(BASE, {"layout": {"runs": runs}}))
        assert [k for k, _ in found] == ["[layout] runs[1]", "[layout] runs[2]", "[layout] runs[3]", "[layout] runs"]
        assert found[-1][1] == "and 7 more overlapping runs"

    def test_a_run_past_the_partition(self) -> None:
        """A run that ends past the partition names the run."""
        found = problems(merge(BASE, {"layout": {"partition_size": "2 GiB", "runs": [{"offset": "2 GiB", "length": "64 KiB"}]}}))
        assert found == [
            (
                "[layout] runs[0]",
                "{offset = 2,147,483,648, length = 65,536} ends at partition offset 2,147,549,184, past the end of the "
                "2,147,483,648-byte partition",
            )
        ]

    def test_a_partition_past_the_disk(self) -> None:
        """A partition that ends past the disk names partition_size."""
        [(key, msg)] = problems(merge(BASE, {"disk": {"size": "1 TB"}, "layout": {"partition_size": "1 TB"}}))
        assert key == "[layout] partition_size"
        assert msg == (
            "partition_offset + partition_size = 1,000,001,048,576 bytes, past the end of the 1,000,000,000,000-byte disk "
            "([disk] size)"
        )

    def test_a_partition_that_starts_past_the_disk(self) -> None:
        """A partition offset past the end of the disk names partition_offset."""
        [(key, _)] = problems(merge(BASE, {"disk": {"size": "1 GiB"}, "layout": {"partition_offset": "2 GiB"}}))
        assert key == "[layout] partition_offset"

    def test_ram_beyond_the_disk(self) -> None:
        """A 4 TiB complete dump on a 1 TB disk (file sized to the dump) blames [memory] ram, not [disk] size."""
        [(key, msg)] = problems(
            merge(BASE, {"registry": {"CrashDumpEnabled": 1}, "memory": {"ram": "4 TiB"}, "disk": {"size": "1 TB"}})
        )
        assert key == "[memory] ram"
        dump = 8192 + (2**27 + 36864) + 2**42  # header, bitmap (2^30 + 262,242 page frames), body
        assert msg.startswith(f"the pagefile ({dump:,} bytes, the size of the complete dump of 4 TiB of RAM) from file_offset")

    def test_a_file_size_beyond_the_partition(self) -> None:
        """An explicit [layout] size that does not fit blames size."""
        [(key, _)] = problems(merge(BASE, {"disk": {"size": "2 GiB"}, "layout": {"size": "2 GiB"}}))
        assert key == "[layout] size"

    def test_spread_runs_that_do_not_fit(self) -> None:
        """Runs that cannot be spread between file_offset and the partition's end blame runs."""
        [(key, msg)] = problems(merge(BASE, {"disk": {"size": "1100 MiB"}, "layout": {"runs": 100_000, "size": "1 GiB"}}))
        assert key == "[layout] runs"
        assert msg.startswith("100,000 runs of 12,288 bytes (1,073,741,824 bytes) do not fit between file_offset 1,073,741,824")

    def test_file_offset_past_the_partition(self) -> None:
        """A file_offset at or past the partition's end is named."""
        [(key, _)] = problems(merge(BASE, {"disk": {"size": "1 GiB"}}))
        assert key == "[layout] file_offset"

    def test_the_validated_layout_is_what_runs(self) -> None:
        """simulate() uses the layout validate_scenario built: the very same object."""
        s = make_scenario(layout={"runs": 7, "partition_size": "1 TiB"})
        assert s.file_layout() is s.file_layout()
        assert len(s.file_layout().runs) == 6  # the 64 KiB small dump in runs of 12 KiB: the 7th is not needed
