"""
``stacksim plot`` (``stacksim/plot.py``): PNG files of a result, a trace and a sweep's CSV.

Each plot is checked as a file a reader opens: the PNG signature, the width and height its IHDR
chunk records (the figure's size in inches × 100 dpi) and a size no empty figure has. The same
input gives the same bytes. The images of ``docs/how-to/plot-a-run.md`` are regenerated here by
the commands the page shows (``STACKSIM_UPDATE_GOLDEN=1`` writes them into ``docs/images/``).
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import sys
import zlib
from pathlib import Path

import pytest
from conftest import assert_refused, invoke_cli

pytest.importorskip("matplotlib", reason="the plot extra (matplotlib) is not installed")  # it is in dev: CI runs these

from stacksim._io import open_input
from stacksim.plot import MAX_FIRST, parse_first, read_sweep, render_sweep, render_trace, summarise_trace

pytestmark = pytest.mark.timeout(300)

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = "scenarios/crash-during-io.toml"
"""A shipped scenario with both stacks: the normal stack's I/O until the bugcheck, then the crash dump."""

SWEEP = ("--set", "disk.bandwidth=1GB/s,3GB/s,7GB/s", "--set", "memory.ram=1GiB,4GiB")

MIN_BYTES = 15_000
"""Smaller than any plot drawn here: a figure with axes, labels and data is tens of kilobytes."""


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) in pixels from a PNG's IHDR chunk, after checking the signature and the chunk's CRC."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    length, kind = struct.unpack(">I4s", data[8:16])
    assert (length, kind) == (13, b"IHDR")
    body = data[16 : 16 + length]
    (crc,) = struct.unpack(">I", data[16 + length : 20 + length])
    assert zlib.crc32(kind + body) == crc
    width, height = struct.unpack(">II", body[:8])
    assert data.endswith(b"IEND\xaeB`\x82")
    return width, height


def assert_plot(path: Path, width: int | None = None) -> tuple[int, int]:
    """*path* is a PNG of more than :data:`MIN_BYTES`, at least 600 × 300 pixels (and *width* wide, when given)."""
    data = path.read_bytes()
    w, h = png_size(data)
    assert len(data) > MIN_BYTES, (path, len(data))
    assert w >= 600
    assert h >= 300
    if width is not None:
        assert w == width
    return w, h


@pytest.fixture(scope="module")
def shipped(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with the shipped scenario's result (run.json) and trace (trace.jsonl), and a 6-point sweep (sweep.csv)."""
    work = tmp_path_factory.mktemp("plot")
    shutil.copytree(ROOT / "scenarios", work / "scenarios")
    assert invoke_cli("run", SHIPPED, "--json", "run.json", "--trace", "trace.jsonl", cwd=work).returncode == 0
    proc = invoke_cli("sweep", "scenarios/crash-no-filters.toml", *SWEEP, "--workers", "1", "--out", "sweep.csv", cwd=work)
    assert proc.returncode == 0, proc.stderr
    return work


def test_a_result_gives_its_quantiles_and_busy_time(shipped: Path, tmp_path: Path) -> None:
    """`plot run.json` writes run-quantiles.png (1,100 px wide) and run-busy.png (900 px) and prints each with its size."""
    shutil.copy(shipped / "run.json", tmp_path)
    proc = invoke_cli("plot", "run.json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert_plot(tmp_path / "run-quantiles.png", 1100)
    assert_plot(tmp_path / "run-busy.png", 900)
    size = (tmp_path / "run-busy.png").stat().st_size
    assert f"run-busy.png: {size:,} bytes" in proc.stdout


def test_a_result_says_it_holds_only_five_quantiles(shipped: Path) -> None:
    """The result's latency plot is five points per layer, and the command says so (a trace has the whole distribution)."""
    proc = invoke_cli("plot", "run.json", "--out", "r", cwd=shipped)
    assert "note: the result keeps p50, p90, p99, p99.9 and max per layer" in proc.stdout


def test_the_result_plot_reads_p50_p90_p99_p99_9_and_max(shipped: Path) -> None:
    """Each layer's points are the result's p50, p90, p99, p99.9 and max, in that order."""
    from stacksim.plot import _quantiles

    result = json.loads((shipped / "run.json").read_text())
    rows = dict(_quantiles(result))
    keys = ("p50_ns", "p90_ns", "p99_ns", "p99_9_ns", "max_ns")
    assert {k: rows["device"][k] for k in keys} == {k: result["layers"]["device"][k] for k in keys}


def test_an_older_result_without_p90_and_p99_9_still_plots(shipped: Path, tmp_path: Path) -> None:
    """A result written before p90 and p99.9 existed plots its p50, p99 and max."""
    result = json.loads((shipped / "run.json").read_text())
    for node in [*result["layers"].values(), result["write_latency"]]:
        del node["p90_ns"], node["p99_9_ns"]
    (tmp_path / "old.json").write_text(json.dumps(result))
    proc = invoke_cli("plot", "old.json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert_plot(tmp_path / "old-quantiles.png", 1100)


def test_a_trace_gives_a_gantt_chart_latency_cdfs_and_throughput(shipped: Path, tmp_path: Path) -> None:
    """`plot trace.jsonl --out DIR` writes DIR/trace-gantt.png, -latency.png and -throughput.png, each a real PNG."""
    proc = invoke_cli("plot", "trace.jsonl", "--out", str(tmp_path), cwd=shipped)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["trace-gantt.png", "trace-latency.png", "trace-throughput.png"]
    assert_plot(tmp_path / "trace-gantt.png", 1100)
    assert_plot(tmp_path / "trace-latency.png", 1100)
    assert_plot(tmp_path / "trace-throughput.png", 1000)


def test_a_trace_of_two_stacks_gives_a_panel_each(shipped: Path, tmp_path: Path) -> None:
    """crash-during-io's trace has the normal stack and the crash dump stack: the throughput plot is two panels tall (740 px)."""
    invoke_cli("plot", "trace.jsonl", "--out", str(tmp_path / "x"), cwd=shipped)
    assert png_size((tmp_path / "x-throughput.png").read_bytes()) == (1000, 1 * 100 + 40 + 2 * 320)


def test_a_sweep_gives_dump_time_against_each_parameter(shipped: Path, tmp_path: Path) -> None:
    """`plot sweep.csv` writes sweep-dump-time.png: one 320-px panel per swept parameter (2 here), 1,050 px wide."""
    proc = invoke_cli("plot", "sweep.csv", "--out", str(tmp_path / "s.png"), cwd=shipped)
    assert proc.returncode == 0, proc.stderr
    assert assert_plot(tmp_path / "s-dump-time.png") == (1050, 100 + 2 * 320)


def test_the_same_trace_gives_the_same_bytes(shipped: Path) -> None:
    """Two renderings of one trace are byte-identical (no time or software version in the PNG)."""
    with open_input(shipped / "trace.jsonl", "trace") as f:
        summary = summarise_trace(f, "trace.jsonl", 5)
    first, second = render_trace(summary), render_trace(summary)
    assert first == second
    assert b"Software" not in first["gantt"]
    assert b"matplotlib" not in first["gantt"]


def test_the_same_sweep_gives_the_same_bytes_in_another_process(shipped: Path, tmp_path: Path) -> None:
    """A fresh interpreter draws the sweep's plot byte for byte as this one does."""
    proc = invoke_cli("plot", "sweep.csv", "--out", str(tmp_path / "a"), cwd=shipped)
    assert proc.returncode == 0
    here, _ = render_sweep(read_sweep(shipped / "sweep.csv", "sweep.csv"))
    assert (tmp_path / "a-dump-time.png").read_bytes() == here["dump-time"]


def test_a_user_matplotlibrc_changes_nothing(shipped: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Plots use matplotlib's default style, not the user's rcParams (a dark background, a huge font)."""
    import matplotlib

    before, _ = render_sweep(read_sweep(shipped / "sweep.csv", "sweep.csv"))
    monkeypatch.setitem(matplotlib.rcParams, "axes.facecolor", "black")
    monkeypatch.setitem(matplotlib.rcParams, "font.size", 30.0)
    after, _ = render_sweep(read_sweep(shipped / "sweep.csv", "sweep.csv"))
    assert after == before
    assert matplotlib.rcParams["font.size"] == 30.0


def test_first_sets_how_many_requests_the_gantt_chart_draws(shipped: Path, tmp_path: Path) -> None:
    """--first 3 and --first 40 give different Gantt charts of the same size."""
    for n in ("3", "40"):
        assert invoke_cli("plot", "trace.jsonl", "--first", n, "--out", str(tmp_path / n), cwd=shipped).returncode == 0
    a, b = (tmp_path / "3-gantt.png").read_bytes(), (tmp_path / "40-gantt.png").read_bytes()
    assert a != b
    assert png_size(a) == png_size(b)


@pytest.mark.parametrize("text", ["0", "-1", "1001", "many", "1.5", "", "99999999"])
def test_first_out_of_range_is_refused(text: str) -> None:
    """--first takes a whole number from 1 to 1,000."""
    with pytest.raises(ValueError, match="a whole number from 1 to 1,000"):
        parse_first(text)


def test_first_accepts_its_bounds() -> None:
    """1 and 1,000 (with a thousands separator) are accepted."""
    assert (parse_first("1"), parse_first("1,000")) == (1, MAX_FIRST)


def test_a_bad_first_is_exit_2(shipped: Path) -> None:
    """`--first 0` is refused before anything is read."""
    assert_refused(invoke_cli("plot", "trace.jsonl", "--first", "0", cwd=shipped), "--first '0'", "from 1 to 1,000")


def test_an_input_of_another_kind_is_refused(tmp_path: Path) -> None:
    """A file whose suffix is not .json, .jsonl or .csv is exit 2 naming the three kinds."""
    (tmp_path / "x.txt").write_text("{}")
    assert_refused(invoke_cli("plot", "x.txt", cwd=tmp_path), "x.txt", "a result (.json", "a trace (.jsonl", ".csv")


def test_without_matplotlib_plot_says_to_install_the_extra(
    shipped: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """With matplotlib not importable, `plot` is exit 2 saying to install stacksim[plot]; nothing is written."""
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    proc = invoke_cli("plot", "run.json", "--out", str(tmp_path / "r"), cwd=shipped)
    assert_refused(proc, "install stacksim[plot]")
    assert list(tmp_path.iterdir()) == []


def test_help_does_not_import_matplotlib() -> None:
    """`stacksim plot --help` imports no matplotlib: it is imported when a plot is drawn."""
    from test_startup import CLI_HELP, modules_after

    mods = modules_after(CLI_HELP.replace('"--help"', '"plot", "--help"'))
    assert "stacksim.cli" in mods
    assert not [m for m in mods if m.split(".")[0] == "matplotlib"]


# -- the how-to's images --------------------------------------------------------------------------

PAGE = ROOT / "docs" / "how-to" / "plot-a-run.md"
IMAGES = ROOT / "docs" / "images"
DOC_COMMANDS = (
    "stacksim run scenarios/crash-during-io.toml --json run.json --trace trace.jsonl",
    "stacksim plot trace.jsonl --first 8",
    "stacksim plot run.json",
    "stacksim sweep scenarios/crash-no-filters.toml --set disk.bandwidth=1GB/s,3GB/s,7GB/s --set memory.ram=1GiB,4GiB "
    "--out sweep.csv",
    "stacksim plot sweep.csv",
)
"""The page's commands, in order: their PNGs are the page's images (docs/images/plot-NAME)."""

DOC_IMAGES = (
    "trace-gantt.png",
    "trace-latency.png",
    "trace-throughput.png",
    "run-quantiles.png",
    "run-busy.png",
    "sweep-dump-time.png",
)


def test_the_how_to_shows_the_commands_that_make_its_images() -> None:
    """Each command is on the page (a backslash-continued line counts as one) and each image is shown."""
    text = PAGE.read_text(encoding="utf-8").replace("\\\n    ", "")
    for command in DOC_COMMANDS:
        assert command in text, command
    for name in DOC_IMAGES:
        assert f"](../images/plot-{name})" in text, name


@pytest.mark.timeout(600)
def test_the_how_to_images_are_what_the_commands_draw(tmp_path: Path) -> None:
    """The commands run; their PNGs are valid and of the committed images' sizes (STACKSIM_UPDATE_GOLDEN=1 replaces those)."""
    import shlex

    shutil.copytree(ROOT / "scenarios", tmp_path / "scenarios")
    for command in DOC_COMMANDS:
        proc = invoke_cli(*shlex.split(command)[1:], cwd=tmp_path)
        assert proc.returncode == 0, (command, proc.stderr)
    for name in DOC_IMAGES:
        made = tmp_path / name
        size = assert_plot(made)
        committed = IMAGES / f"plot-{name}"
        if os.environ.get("STACKSIM_UPDATE_GOLDEN"):
            shutil.copy(made, committed)
        assert png_size(committed.read_bytes()) == size, name
