"""
What `stacksim run`, `stacksim devices` and `stacksim filters` print: units, widths, one share definition, escaped input.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest
from conftest import make_scenario
from rich.cells import cell_len
from rich.console import Console
from typer.testing import CliRunner

from stacksim import FilterCatalog, simulate
from stacksim.cli import app
from stacksim.devices import DEVICE_PRESETS
from stacksim.simulate import RunResult
from stacksim.summary import readable, render

ROOT = Path(__file__).parent.parent
SCENARIOS = sorted((ROOT / "scenarios").rglob("*.toml"))

HUNG = {
    "registry": {"DumpFilters": ["dumpfve.sys"], "CrashDumpEnabled": 3},
    "faults": [{"kind": "filter_hang", "filter": "dumpfve.sys", "callback": "dump_write", "at_request": 2}],
    "engine": {"watchdog": "1 s"},
}
"""A run the watchdog ends: the hung call is charged the watchdog period (docs/explanation/engine.md)."""

NO_WRITE = {
    "dump_disabled": {"registry": {"CrashDumpEnabled": 0}},
    "file_too_small": {"registry": {"CrashDumpEnabled": 1}, "memory": {"ram": "64 MiB"}, "layout": {"size": "1 MiB"}},
    "stack_init_failed": {
        "registry": {"DumpFilters": ["faultflt.sys"], "CrashDumpEnabled": 3},
        "filters": {"faultflt.sys": {"action": "fail_driver_entry", "critical": True}},
    },
}
"""One scenario for each outcome that writes nothing."""

UNITS = {
    *("ns", "µs", "ms", "s", "min", "B", "KiB", "MiB", "GiB", "TiB", "B/s", "kB/s", "MB/s", "GB/s", "MiB/s", "IOPS", "%"),
    *("bytes", "writes", "reads", "pages", "calls", "records", "requests", "request", "commands", "command"),
    *("channels", "channel"),
}
COUNT_COLUMNS = {"calls", "mean in flight", "max in flight"}
"""Table columns whose header names what the bare numbers in them count."""


def summary(result: RunResult, width: int) -> list[str]:
    """The lines `stacksim run` prints for *result* on a console *width* columns wide."""
    console = Console(width=width, record=True, highlight=False, no_color=True, file=open("/dev/null", "w"))  # noqa: SIM115
    render(result, console)
    console.file.close()
    return console.export_text().splitlines()


def run_cli(*args: str, columns: int = 80) -> str:
    """Stdout of the stacksim command at *columns* columns."""
    r = CliRunner(env={"COLUMNS": str(columns), "NO_COLOR": "1"}).invoke(app, list(args))
    assert r.exit_code == 0, r.output
    return r.stdout


def result_of(**sections: object) -> RunResult:
    catalog = FilterCatalog()
    return simulate(make_scenario(catalog, **sections), catalog)


def bare_numbers(lines: list[str]) -> list[str]:
    """Numbers in *lines* with no unit after them and no count label (table cells under a count column are labelled)."""
    found = []
    headers: list[str] = []
    for line in lines:
        if "┃" in line:
            headers = [h.strip() for h in line.split("┃")]
            continue
        cells = line.split("│") if "│" in line else [line]
        for i, cell in enumerate(cells):
            if i < len(headers) and headers[i] in COUNT_COLUMNS and "│" in line:
                continue
            tokens = cell.split()
            for j, token in enumerate(tokens):
                core = token.strip("()[],;:.")
                if not re.fullmatch(r"≤?\d[\d,]*(\.\d+)?[×%]?", core) or core.endswith(("×", "%")):
                    continue
                after = tokens[j + 1].strip("()[],;:.") if j + 1 < len(tokens) else ""
                if after in UNITS:
                    continue
                if after == "of" and j + 3 < len(tokens) and tokens[j + 3].strip("()[],;:.") in UNITS:
                    continue  # "670,666,752 of 3,435,978,752 bytes": both numbers share the unit
                if j and tokens[j - 1] in ("=", "Event", "depth"):
                    continue  # "CrashDumpEnabled = 0", "Event 49", "queue depth 32": a value or an identifier, named before it
                found.append(f"{token!r} in {line!r}")
    return found


def split_quantities(lines: list[str]) -> list[str]:
    """Lines that end in a number whose unit went to the next line, or start with a unit torn from its number."""
    units = "|".join(re.escape(u) for u in sorted(UNITS, key=len, reverse=True))
    bad = []
    for a, b in itertools.pairwise(lines):
        if re.search(r"(?<![\w.])\d[\d,.]*$", a.rstrip()) and re.match(rf"\s*[│ ]*({units})(?![\w/])", b):
            bad.append(f"{a!r} / {b!r}")
    return bad


def table_share(lines: list[str], layer: str) -> str:
    """The share cell of *layer*'s row in the layer table."""
    headers = [h.strip() for h in next(x for x in lines if "┃" in x).split("┃")]
    row = next(x for x in lines if x.startswith(layer + " ") and "│" in x)
    return row.split("│")[headers.index("share")].strip()


def test_share_column_and_bottleneck_line_use_the_dump_time() -> None:
    """The share column, the bottleneck line and the JSON all give busy time ÷ dump time, also when busy times add up to more."""
    result = result_of(faults=[{"kind": "power_loss", "at": "1.05 ms"}])  # the write in flight is counted whole
    assert result.status == "power_lost"
    assert result.dump_time_ns == 1_050_000
    assert sum(layer.busy_ns for layer in result.layers.values()) == 1_071_846
    assert (result.bottleneck, result.layers["miniport"].busy_ns) == ("miniport", 1_010_000)
    lines = summary(result, 100)
    assert table_share(lines, "miniport") == "96.2 %"
    assert table_share(lines, "device") == "5.9 %"
    assert "bottleneck  miniport: 96.2 % of the dump time; without it 40 µs (26.2× faster)" in lines
    assert result.as_dict()["bottleneck_share_percent"] == 96.2


def test_a_hung_filter_is_the_bottleneck() -> None:
    """A run the watchdog ends charges the hung filter the watchdog period: it is the bottleneck, by the same share."""
    result = result_of(**HUNG)
    assert result.status == "hung"
    assert result.dump_time_ns == 1_001_031_189
    assert (result.bottleneck, result.layers["dumpfve.sys"].busy_ns) == ("dumpfve.sys", 1_000_003_458)
    lines = summary(result, 100)
    assert table_share(lines, "dumpfve.sys") == "99.9 %"
    assert table_share(lines, "miniport") == "0.1 %"
    assert result.as_dict()["bottleneck_share_percent"] == 99.9


def test_the_table_says_what_share_means() -> None:
    """Below the throughput table a caption defines share as busy time ÷ dump time, and IOPS and MB/s by the dump time too."""
    lines = [x.rstrip() for x in summary(result_of(), 80)]
    assert "share = busy ÷ dump time; IOPS = calls ÷ dump time;" in lines
    assert "MB/s (10^6 B/s), MiB/s (2^20 B/s): bytes written ÷ dump time" in lines


def test_dump_time_line_is_in_readable_units_only() -> None:
    """The dump time line shows the time in a readable unit and no raw nanoseconds."""
    lines = summary(result_of(), 80)
    assert "dump time   1.27 ms (bugcheck → final flush)" in lines
    assert not any(re.search(r"\d{4,} ns", x) for x in lines)


def test_raw_nanoseconds_in_messages_are_shown_in_readable_units() -> None:
    """A message that gives a duration in raw ns (the watchdog's) is printed with a readable unit."""
    text = " ".join(x.strip() for x in summary(result_of(**HUNG), 100))
    assert "within the watchdog period (1 s of simulated time)" in text
    assert "1000000000" not in text


def test_readable_rewrites_only_nanosecond_counts() -> None:
    """readable() turns '<n> ns' into format_ns(n), with or without digit grouping, and leaves everything else alone."""
    assert (
        readable("after 3,000,000,000 ns, 1500000 ns or 850 ns; 12 ms; v1.5 ns") == "after 3 s, 1.5 ms or 850 ns; 12 ms; v1.5 ns"
    )


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
@pytest.mark.parametrize("columns", [80, 60, 40])
def test_scenario_summary_fits_the_console_and_keeps_units(path: Path, columns: int) -> None:
    """At 80, 60 and 40 columns every line fits and no number is torn from its unit."""
    lines = run_cli("run", str(path), columns=columns).splitlines()
    assert [x for x in lines if cell_len(x.rstrip()) > columns] == []
    assert split_quantities(lines) == []


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_every_printed_number_in_a_scenario_summary_has_a_unit(path: Path) -> None:
    """Each number the summary of a shipped scenario prints has a unit or names what it counts."""
    assert bare_numbers(run_cli("run", str(path), columns=100).splitlines()) == []


@pytest.mark.parametrize("outcome", NO_WRITE)
def test_every_printed_number_of_a_no_write_outcome_has_a_unit(outcome: str) -> None:
    """Outcomes that write nothing print no bare numbers either."""
    result = result_of(**NO_WRITE[outcome])
    assert result.status == outcome
    assert bare_numbers(summary(result, 100)) == []


def test_crash_dump_disabled_says_no_stack_was_loaded() -> None:
    """CrashDumpEnabled = 0 prints that no dump stack was loaded, and no written, parts or path line."""
    assert summary(result_of(**NO_WRITE["dump_disabled"]), 100) == [
        "stacksim 0.1.0 · scenario test · no crash dump",
        "status      dump_disabled: CrashDumpEnabled = 0: no crash dump stack is loaded, nothing is written",
        "stack       none loaded (CrashDumpEnabled = 0): no filter ran, nothing was written",
    ]


def test_a_dump_that_writes_nothing_says_so_instead_of_zero_counts() -> None:
    """A stack that failed to initialise prints 'nothing of the … dump' with its parts, and no layer table."""
    lines = summary(result_of(**NO_WRITE["stack_init_failed"]), 100)
    assert "written     nothing of the 64 KiB dump (header 8 KiB · body 56 KiB)" in lines
    assert not any(x.startswith(("parts", "dump time", "layer", "bottleneck")) for x in lines)
    text = re.sub(r"\s+", " ", " ".join(lines))
    assert "path crashdmp.sys → dump_faultflt.sys → dump_storport.sys → dump_stornvme.sys → disk (pagefile)" in text


def test_a_target_file_too_small_prints_what_the_dump_would_have_been() -> None:
    """file_too_small names both sizes with units and prints no zero-filled table."""
    lines = summary(result_of(**NO_WRITE["file_too_small"]), 100)
    text = " ".join(x.strip() for x in lines)
    assert "holds 1,048,576 bytes but the complete dump needs 67,121,152 bytes" in text  # 8 KiB + 4 KiB + 64 MiB
    assert "written     nothing of the 64.0 MiB dump (header 8 KiB · bitmap 4 KiB · body 64 MiB)" in lines
    assert not any("│" in x for x in lines)


def test_narrow_rich_console_keeps_lines_and_units_whole() -> None:
    """render() on a Console(width=80) keeps every line within 80 columns and every quantity whole."""
    lines = summary(result_of(**HUNG), 80)
    assert [x for x in lines if cell_len(x.rstrip()) > 80] == []
    assert split_quantities(lines) == []


def test_a_long_filter_name_folds_in_its_column_and_leaves_quantities_whole(tmp_path: Path) -> None:
    """A 60-character service name folds inside the layer column; the time columns stay on one line each."""
    name = "a" * 56 + ".sys"
    plugin = tmp_path / "longflt.py"
    plugin.write_text(
        "from stacksim import DumpFilter, spend\n"
        "class Long(DumpFilter):\n"
        f"    service_name = {name!r}\n"
        "    async def dump_write(self, extension, request):\n"
        "        spend(7000)\n"
        "        return 0\n"
        "    def write_cost(self, extension, length):\n"
        "        return 7000\n"
    )
    scenario = tmp_path / "s.toml"
    scenario.write_text(f'[scenario]\nname = "long"\n[registry]\nDumpFilters = ["{name}"]\nCrashDumpEnabled = 3\n')
    lines = run_cli("run", str(scenario), "--plugin", str(plugin), columns=80).splitlines()
    assert [x for x in lines if cell_len(x.rstrip()) > 80] == []
    assert split_quantities(lines) == []
    assert any(re.search(r" +7 µs +7 µs +0 ns +7 µs +7 µs +7 µs +7 µs +7 µs$", x.rstrip()) for x in lines)


@pytest.mark.parametrize("columns", [80, 40])
def test_every_device_preset_name_is_printed_whole(columns: int) -> None:
    """`stacksim devices` prints each preset's name whole at 80 and at 40 columns, and every line fits."""
    lines = run_cli("devices", columns=columns).splitlines()
    assert [x for x in lines if cell_len(x.rstrip()) > columns] == []
    words = {w.strip(":") for x in lines for w in x.split()}
    assert set(DEVICE_PRESETS) <= words


@pytest.mark.parametrize("columns", [80, 40])
def test_device_quantities_stay_whole(columns: int) -> None:
    """No bandwidth, latency, cache size or IOPS cap in `stacksim devices` is split from its unit."""
    lines = run_cli("devices", columns=columns).splitlines()
    assert split_quantities(lines) == []
    assert bare_numbers(lines) == []


def test_filters_table_fits_80_columns() -> None:
    """`stacksim filters` fits 80 columns and names every built-in filter whole."""
    lines = run_cli("filters", columns=80).splitlines()
    assert [x for x in lines if cell_len(x.rstrip()) > 80] == []
    words = {w.strip(",") for x in lines for w in x.split()}
    assert {"dumpfve.sys", "delayflt.sys", "faultflt.sys", "offset_delta"} <= words


def test_text_from_input_is_escaped_and_not_markup() -> None:
    """A scenario name with a terminal escape and rich markup prints escaped and literally."""
    result = result_of(scenario={"name": "evil\x1b]0;title\x07[bold red]x[/]\u202e"})
    lines = summary(result, 100)
    assert lines[0] == r"stacksim 0.1.0 · scenario evil\x1b]0;title\x07[bold red]x[/]\u202e · small crash dump"


def test_plugin_error_text_is_escaped(tmp_path: Path) -> None:
    """A plugin's DriverEntry exception text reaches the terminal escaped, its markup printed literally."""
    plugin = tmp_path / "evilflt.py"
    plugin.write_text(
        "from stacksim import DumpFilter\n"
        "class Evil(DumpFilter):\n"
        "    service_name = 'evilflt.sys'\n"
        "    def driver_entry(self, extension, init):\n"
        "        raise RuntimeError('\\x1b[2J[link=http://x]boom[/link]')\n"
    )
    scenario = tmp_path / "s.toml"
    scenario.write_text('[scenario]\nname = "evil"\n[registry]\nDumpFilters = ["evilflt.sys"]\nCrashDumpEnabled = 3\n')
    out = run_cli("run", str(scenario), "--plugin", str(plugin), columns=200)
    assert "\x1b" not in out
    assert r"\x1b[2J[link=http://x]boom[/link]" in out


@pytest.mark.parametrize(
    ("ratio", "text"),
    [(2.61, "2.6× faster"), (99.94, "99.9× faster"), (60001.0, "60,001× faster"), (2e13, "> 1,000,000× faster")],
)
def test_speedup_is_readable_at_any_size(ratio: float, text: str) -> None:
    """The bottleneck line's "N× faster" keeps one decimal below 100×, none above, and caps absurd ratios."""
    from stacksim.summary import _times_faster

    assert _times_faster(ratio) == text
