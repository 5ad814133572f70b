"""
fio-grade per-layer statistics (issue 15): min, mean, stdev, p50 … p99.9, max, IOPS and MB/s / MiB/s.

The tiny scenario is conftest's BASE: a small crash dump of two writes (the 8 KiB header and a
56 KiB body) on a fixed disk (20 µs + bytes at 3 GB/s, flush 200 µs), so the device's three
calls take 22,731 ns, 39,115 ns and 200,000 ns and the dump takes 1,271,846 ns.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest
from conftest import run
from rich.cells import cell_len
from rich.console import Console
from typer.testing import CliRunner

from stacksim.cli import app
from stacksim.metrics import EXACT_DISTINCT_LIMIT, LatencyHistogram, nearest_rank
from stacksim.summary import render
from stacksim.terse import FIELDS, TERSE_VERSION, terse_lines

ROOT = Path(__file__).resolve().parent.parent

SMALL = """
[scenario]
name = "small"
bugcheck_at = "10 ms"
[registry]
DumpFilters = ["dumpfve.sys"]
CrashDumpEnabled = 1
[memory]
ram = "2 MiB"
"""


def hist(values: list[int]) -> LatencyHistogram:
    """A histogram holding *values*."""
    h = LatencyHistogram()
    for v in values:
        h.record(v)
    return h


class TestPercentiles:
    def test_thousand_samples_give_the_nearest_rank_order_statistics(self) -> None:
        """Of 1 … 1,000: p50 = 500, p90 = 900, p99 = 990, p99.9 = 999 (rank 999, not 1,000), p100 = 1,000."""
        h = hist(list(range(1, 1001)))
        assert [h.percentile(p) for p in (50, 90, 99, 99.9, 100)] == [500, 900, 990, 999, 1000]

    def test_one_sample_is_every_percentile(self) -> None:
        """With one sample, min, mean, every percentile and max are that sample; stdev is 0."""
        h = hist([7_000])
        assert [h.percentile(p) for p in (0, 50, 90, 99, 99.9, 100)] == [7_000] * 6
        assert (h.min, h.mean, h.stdev, h.max) == (7_000, 7_000, 0, 7_000)

    def test_p99_9_of_ten_samples_is_the_largest(self) -> None:
        """ceil(99.9 / 100 × 10) = 10: p99.9 of ten samples is the tenth."""
        assert hist(list(range(10, 110, 10))).percentile(99.9) == 100

    def test_the_rank_is_exact_where_float_arithmetic_overshoots(self) -> None:
        """99.9 / 100 × 1,000 is 999.0000000000001 in floats; the rank is 999."""
        assert (nearest_rank(99.9, 1000), nearest_rank(99.9, 10_000), nearest_rank(90, 10), nearest_rank(0, 5)) == (
            999,
            9990,
            9,
            1,
        )

    def test_a_percentile_outside_0_to_100_is_refused(self) -> None:
        """p = 100.1 is no percentile."""
        with pytest.raises(ValueError, match="not between 0 and 100"):
            nearest_rank(100.1, 10)


class TestMeanAndStdev:
    def test_mean_and_stdev_round_halves_up(self) -> None:
        """Of 1 and 2 the mean 1.5 shows as 2 and the population stdev 0.5 as 1."""
        h = hist([1, 2])
        assert (h.mean, h.stdev) == (2, 1)

    def test_stdev_is_the_population_standard_deviation(self) -> None:
        """Of 22,731, 39,115 and 200,000 ns the stdev is 79,984 ns (79,983.83 rounded)."""
        assert hist([22_731, 39_115, 200_000]).stdev == 79_984 == round(statistics.pstdev([22_731, 39_115, 200_000]))

    def test_weighted_merged_and_folded_histograms_agree(self) -> None:
        """Weighted adds, merges and the fold into HdrHistogram keep the exact sums: the same mean and stdev."""
        values = [3 * v + 1 for v in range(EXACT_DISTINCT_LIMIT + 11)]  # mean 6,160: no half to round
        one, other, merged = hist(values), LatencyHistogram(), hist(values[:100])
        for v in values:
            other.record(v, 1)
        merged.merge(hist(values[100:]))
        assert not one.exact
        expected = (round(statistics.fmean(values)), round(statistics.pstdev(values)))
        assert (one.mean, one.stdev) == (other.mean, other.stdev) == (merged.mean, merged.stdev) == expected


class TestResult:
    def test_a_layer_reports_min_mean_stdev_percentiles_max_and_rates(self) -> None:
        """The device's three calls: every statistic exact, IOPS = 3 ÷ 1,271,846 ns, bytes = 65,536 ÷ 1,271,846 ns."""
        result, _ = run()
        assert result.dump_time_ns == 1_271_846
        assert result.as_dict()["layers"]["device"] == {
            "calls": 3,
            "busy_ns": 261_846,
            "min_ns": 22_731,
            "mean_ns": 87_282,
            "stdev_ns": 79_984,
            "p50_ns": 39_115,
            "p90_ns": 200_000,
            "p99_ns": 200_000,
            "p99_9_ns": 200_000,
            "max_ns": 200_000,
            "iops": 2358.776,
            "bandwidth_bytes_per_s": 51_528_251,
            "bandwidth_MB_per_s": 51.528,
            "bandwidth_MiB_per_s": 49.141,
        }

    def test_write_latency_has_the_same_statistics_without_rates(self) -> None:
        """write_latency (issue → done of each write) carries every latency key, and no rates."""
        result, _ = run()
        latency = {"calls": 2, "busy_ns": 71_846, "min_ns": 27_731, "mean_ns": 35_923, "stdev_ns": 8_192}
        latency |= {"p50_ns": 27_731, "p90_ns": 44_115, "p99_ns": 44_115, "p99_9_ns": 44_115, "max_ns": 44_115}
        assert result.as_dict()["write_latency"] == latency

    def test_summary_shows_a_latency_table_and_a_throughput_table_within_80_columns(self) -> None:
        """At 80 columns: the latency row and the throughput row of the device, every number with its unit."""
        result, _ = run()
        console = Console(width=80, record=True, no_color=True, file=open("/dev/null", "w"))  # noqa: SIM115
        render(result, console)
        console.file.close()
        lines = [x.rstrip() for x in console.export_text().splitlines()]
        assert [x for x in lines if cell_len(x) > 80] == []
        assert "layer        min    mean   stdev     p50     p90     p99   p99.9     max" in lines
        assert "device   22.7 µs 87.3 µs   80 µs 39.1 µs  200 µs  200 µs  200 µs  200 µs" in lines
        assert "device   │     3 │  262 µs │ 20.6 % │ 2,359 IOPS │ 51.5 MB/s │ 49.1 MiB/s" in lines
        assert "write    │     2 │         │        │ 1,573 IOPS │ 51.5 MB/s │ 49.1 MiB/s" in lines


class TestTerse:
    def test_one_line_per_layer_then_write_each_with_every_field(self) -> None:
        """Terse v1: one line per layer, top down, then write; each splits into the documented 19 fields."""
        result, _ = run()
        lines = terse_lines(result)
        assert [x.split(";")[4] for x in lines] == ["crashdmp", "miniport", "device", "write"]
        assert {len(x.split(";")) for x in lines} == {len(FIELDS)} == {19}
        assert FIELDS[:6] == ("terse_version", "stacksim_version", "scenario", "status", "layer", "calls")

    def test_the_fields_are_the_result_json_numbers(self) -> None:
        """Field by field, the device line is the version, the run and the JSON's device object."""
        result, _ = run()
        device = dict(zip(FIELDS, terse_lines(result)[2].split(";"), strict=True))
        assert device["terse_version"] == str(TERSE_VERSION) == "1"
        assert (device["scenario"], device["status"], device["layer"]) == ("test", "ok", "device")
        layer = result.as_dict()["layers"]["device"]
        assert {k: device[k] for k in layer} == {k: str(v) for k, v in layer.items()}

    def test_a_semicolon_in_the_scenario_name_is_percent_encoded(self) -> None:
        """A scenario named 'a;b%c' is written 'a%3Bb%25c': the line keeps its 19 fields."""
        result, _ = run(scenario={"name": "a;b%c"})
        line = terse_lines(result)[0].split(";")
        assert (len(line), line[2]) == (19, "a%3Bb%25c")


def invoke(*args: str) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of the stacksim command."""
    r = CliRunner(env={"COLUMNS": "80"}).invoke(app, list(args))
    return r.exit_code, r.stdout, r.stderr


@pytest.fixture
def small(tmp_path: Path) -> Path:
    """The SMALL scenario as a file."""
    p = tmp_path / "small.toml"
    p.write_text(SMALL)
    return p


class TestOutputFormat:
    def test_json_prints_exactly_what_json_writes(self, small: Path, tmp_path: Path) -> None:
        """--output-format json puts on stdout the same text --json writes to its file."""
        out = tmp_path / "r.json"
        code, stdout, _ = invoke("run", str(small), "--output-format", "json", "--json", str(out))
        assert code == 0
        assert stdout == out.read_text()
        assert json.loads(stdout)["layers"]["dumpfve.sys"]["p99_9_ns"] > 0

    def test_terse_prints_the_terse_lines_only(self, small: Path) -> None:
        """--output-format terse prints one line per layer and the write line, nothing else."""
        code, stdout, _ = invoke("run", str(small), "--output-format", "terse")
        assert code == 0
        lines = stdout.splitlines()
        assert [x.split(";")[4] for x in lines] == ["crashdmp", "dumpfve.sys", "miniport", "device", "write"]
        assert all(x.startswith("1;") and len(x.split(";")) == 19 for x in lines)

    def test_normal_is_the_summary(self, small: Path) -> None:
        """--output-format normal prints the same as no option."""
        assert invoke("run", str(small), "--output-format", "normal") == invoke("run", str(small))

    def test_an_unknown_format_exits_2_with_one_line(self, small: Path) -> None:
        """--output-format xml exits 2 naming the allowed values."""
        code, stdout, stderr = invoke("run", str(small), "--output-format", "xml")
        assert (code, stdout) == (2, "")
        assert stderr.strip() == "error: --output-format 'xml': allowed values are normal, json, terse"

    def test_terse_and_json_to_stdout_refuse_each_other(self, small: Path) -> None:
        """--json - with --output-format terse exits 2: both would write stdout."""
        code, _, stderr = invoke("run", str(small), "--output-format", "terse", "--json", "-")
        assert code == 2
        assert "both write stdout" in stderr


def test_the_normal_stacks_io_latency_has_every_statistic_of_a_layer() -> None:
    """A workload run's io.latency (issue -> completion) carries min, mean, stdev and the four percentiles, as a layer's."""
    from stacksim.api import simulate as api_simulate

    result = api_simulate(ROOT / "scenarios" / "io-nvme-qd32.toml").as_dict()
    latency = result["io"]["latency"]
    assert list(latency) == ["min_ns", "mean_ns", "stdev_ns", "p50_ns", "p90_ns", "p99_ns", "p99_9_ns", "max_ns"]
    order = [latency[k] for k in ("min_ns", "p50_ns", "p90_ns", "p99_ns", "p99_9_ns", "max_ns")]
    assert order == sorted(order)
    assert latency["stdev_ns"] > 0
    assert (latency["min_ns"], latency["p90_ns"], latency["p99_9_ns"]) == (35_809, 356_448, 356_448)
