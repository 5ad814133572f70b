"""
Hostile input to `stacksim memory`: bad memory maps, too much RAM for data mode, outputs that must not be written.

Each refused case asserts exit 2, one short message naming the file and the key (or the flag),
no traceback and nothing written; an interrupted write leaves no file and no temporary file.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
from conftest import assert_interrupted, assert_refused, invoke_cli, make_fifo, spawn_stacksim

pytestmark = pytest.mark.timeout(30)

SMALL = '[scenario]\nname = "m"\n[memory]\nram = "1 MiB"\n'


def write(folder: Path, memory: str) -> Path:
    """A scenario file in *folder* whose [memory] table is *memory*."""
    path = folder / "s.toml"
    path.write_text(f'[scenario]\nname = "m"\n[memory]\n{memory}\n')
    return path


def files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize(
    ("memory", "named"),
    [
        ("ram = 16384\nruns = [[10, 2], [1, 2]]", "sorted"),
        ("ram = 16384\nruns = [[1, 3], [2, 1]]", "overlap"),
        ("ram = 16384\nruns = [[1, 2], [3, 2]]", "touch"),
        ("ram = 4096\nruns = [[1, 0], [5, 1]]", "page count > 0"),
        ("ram = 4096\nruns = [[-1, 1]]", "≥ 0"),
        ("ram = 4096\nruns = [[0x10000000000, 1]]", "52-bit"),
        ("ram = 4096\nruns = [[1, 2, 3]]", "base_page, page_count"),
        ('ram = 4096\nruns = [["1", 1]]', "base_page, page_count"),
        ("ram = 4096\nruns = [[true, 1]]", "base_page, page_count"),
        ('ram = 4096\nruns = "all of it"', "base_page, page_count"),
        ("ram = 4096\nruns = []", "no memory"),
        ("ram = 176128\nruns = [" + ", ".join(f"[{2 * i}, 1]" for i in range(43)) + "]", "at most 42"),
        ("ram = 4096\nruns = [[1, 1000000000000000000000]]", "runs"),
    ],
    ids=[
        "unsorted",
        "overlapping",
        "adjacent",
        "zero-pages",
        "negative",
        "past-52-bits",
        "triple",
        "string",
        "bool",
        "not-a-list",
        "empty",
        "44-runs",
        "huge-count",
    ],
)
def test_bad_runs_are_refused(tmp_path: Path, memory: str, named: str) -> None:
    """A broken explicit memory map is exit 2 naming [memory] runs and the rule, before anything is written."""
    write(tmp_path, memory)
    assert_refused(invoke_cli("memory", "s.toml", "--out", "ram.bin", cwd=tmp_path), "s.toml", "[memory] runs", named)
    assert files(tmp_path) == ["s.toml"]


def test_runs_that_do_not_hold_the_ram_are_refused(tmp_path: Path) -> None:
    """Runs of 3 pages with ram = 1 MiB are refused, saying the rule and the ram that would fit."""
    write(tmp_path, 'ram = "1 MiB"\nruns = [[1, 3]]')
    assert_refused(invoke_cli("memory", "s.toml", "--out", "ram.bin", cwd=tmp_path), "[memory]", "must equal ram", "ram = 12288")
    assert files(tmp_path) == ["s.toml"]


@pytest.mark.parametrize(
    ("memory", "named"),
    [('map = "runs"', 'map = "runs" needs runs'), ('ram = 4096\nmap = "realistic"\nruns = [[1, 1]]', "one or the other")],
    ids=["runs-without-runs", "both"],
)
def test_map_and_runs_must_agree(tmp_path: Path, memory: str, named: str) -> None:
    """map = "runs" needs runs, and map = "realistic" cannot have them."""
    write(tmp_path, memory)
    assert_refused(invoke_cli("validate", "s.toml", cwd=tmp_path), "[memory]", named)


def test_an_unknown_map_is_refused(tmp_path: Path) -> None:
    """map takes "realistic" or "runs" only."""
    write(tmp_path, 'map = "e820"')
    assert_refused(invoke_cli("validate", "s.toml", cwd=tmp_path), "[memory] map", "realistic")


def test_kernel_memory_larger_than_an_active_dump_is_refused(tmp_path: Path) -> None:
    """kernel_fraction above the active share is exit 2 naming kernel_fraction and why."""
    write(tmp_path, "kernel_fraction = 0.6\nfree_fraction = 0.5")
    assert_refused(invoke_cli("validate", "s.toml", cwd=tmp_path), "[memory]", "kernel_fraction", "part of an active dump")


def test_too_much_ram_for_data_mode_is_refused_at_once(tmp_path: Path) -> None:
    """128 GiB of RAM is exit 2 naming [memory] ram and the 64 GiB cap, without generating a byte."""
    (tmp_path / "s.toml").write_text('[scenario]\nname = "m"\n[registry]\nCrashDumpEnabled = 3\n[memory]\nram = "128 GiB"\n')
    proc = invoke_cli("memory", "s.toml", "--out", "ram.bin", cwd=tmp_path)
    assert_refused(proc, "s.toml", "[memory] ram", "64 GiB", "timing mode")
    assert proc.elapsed < 10  # type: ignore[attr-defined]
    assert files(tmp_path) == ["s.toml"]


def test_an_address_space_past_1_tib_is_refused(tmp_path: Path) -> None:
    """One page at 2 TiB would make a 2 TiB file: exit 2 naming [memory] runs."""
    write(tmp_path, "ram = 4096\nruns = [[0x20000000, 1]]")
    assert_refused(invoke_cli("memory", "s.toml", "--out", "ram.bin", cwd=tmp_path), "[memory] runs", "1 TiB")
    assert files(tmp_path) == ["s.toml"]


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--out", "s.toml"], "input"),
        (["--out", "ram.bin", "--classes", "s.toml"], "input"),
        (["--out", "x.bin", "--classes", "x.bin"], "also the --out output"),
        (["--out", "/dev/null"], "character device"),
        (["--out", "."], "folder"),
        (["--out", "-"], "not stdout"),
        (["--out", "missing/ram.bin"], "does not exist"),
        (["--out", "fifo"], "FIFO"),
    ],
    ids=["out-is-the-scenario", "classes-is-the-scenario", "same-file", "dev-null", "folder", "stdout", "no-folder", "fifo"],
)
def test_outputs_that_must_not_be_written_are_refused(tmp_path: Path, args: list[str], named: str) -> None:
    """--out and --classes onto the scenario, onto one file, a device, a folder, stdout or a FIFO: exit 2, nothing written."""
    (tmp_path / "s.toml").write_text(SMALL)
    if "fifo" in args:
        make_fifo(tmp_path / "fifo")
    before = files(tmp_path)
    assert_refused(invoke_cli("memory", "s.toml", *args, cwd=tmp_path), named)
    assert files(tmp_path) == before
    assert (tmp_path / "s.toml").read_text() == SMALL


def test_out_is_required(tmp_path: Path) -> None:
    """`stacksim memory s.toml` without --out is a usage error (exit 2) naming --out."""
    (tmp_path / "s.toml").write_text(SMALL)
    proc = invoke_cli("memory", "s.toml", cwd=tmp_path)
    assert proc.returncode == 2
    assert "--out" in proc.stderr


@pytest.mark.parametrize("seed", ["-1", str(2**63), "x"])
def test_a_seed_out_of_range_is_refused(tmp_path: Path, seed: str) -> None:
    """--seed takes 0 to 2^63 - 1."""
    (tmp_path / "s.toml").write_text(SMALL)
    proc = invoke_cli("memory", "s.toml", "--out", "ram.bin", "--seed", seed, cwd=tmp_path)
    assert proc.returncode == 2
    assert "--seed" in proc.stderr
    assert files(tmp_path) == ["s.toml"]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_an_interrupted_write_leaves_nothing(tmp_path: Path, sig: signal.Signals) -> None:
    """A signal while the memory file is written ends the command with exit 1, no file and no temporary file."""
    (tmp_path / "s.toml").write_text('[scenario]\nname = "m"\n[memory]\nram = "2 GiB"\n')
    proc = spawn_stacksim("memory", "s.toml", "--out", "ram.bin", "--classes", "c.json", cwd=tmp_path)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not any(
        p.name.startswith(".ram.bin.") and p.stat().st_size for p in tmp_path.iterdir()
    ):
        time.sleep(0.02)
    assert_interrupted(proc, sig)
    assert files(tmp_path) == ["s.toml"]
