"""
Hostile input to `stacksim explain` and its `--mermaid` output, and the outputs that cannot be stdout.

Each refused case asserts exit 2, one short message naming the flag or file, no traceback and
nothing written; an interrupted explain leaves no diagram and no temporary file.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
from conftest import assert_interrupted, assert_refused, invoke_cli, make_fifo, spawn_stacksim

pytestmark = pytest.mark.timeout(30)

SCENARIO = '[scenario]\nname = "x"\n[memory]\nram = "1 MiB"\n'


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """A folder holding a small scenario."""
    (tmp_path / "s.toml").write_text(SCENARIO)
    return tmp_path


@pytest.mark.parametrize(
    ("source", "named"),
    [("/dev/zero", "character device"), ("fifo", "FIFO"), (".", "directory")],
    ids=["dev-zero", "fifo", "folder"],
)
def test_explain_refuses_a_scenario_that_is_not_a_regular_file(work: Path, source: str, named: str) -> None:
    """`explain` of a device, FIFO or folder is exit 2 naming what it is, before a byte is read."""
    path = str(make_fifo(work / "p.toml")) if source == "fifo" else source
    assert_refused(invoke_cli("explain", path, cwd=work), named)


@pytest.mark.parametrize(
    ("target", "named"),
    [("/dev/null", "character device"), ("fifo", "FIFO"), (".", "folder"), ("s.toml", "input"), ("-", "not stdout")],
    ids=["dev-null", "fifo", "folder", "the-scenario", "stdout"],
)
def test_mermaid_refuses_a_target_that_is_not_a_new_or_regular_file(work: Path, target: str, named: str) -> None:
    """`--mermaid` to a device, FIFO, folder, the scenario itself or stdout is exit 2 before anything runs."""
    if target == "fifo":
        target = str(make_fifo(work / "d.mmd"))
    before = sorted(p.name for p in work.iterdir())
    assert_refused(invoke_cli("explain", "s.toml", "--mermaid", target, cwd=work), "--mermaid", named)
    assert sorted(p.name for p in work.iterdir()) == before
    assert (work / "s.toml").read_text() == SCENARIO


@pytest.mark.parametrize("flag", ["--trace", "--mermaid"])
def test_an_output_that_is_a_file_is_refused_as_stdout_with_the_same_words(work: Path, flag: str) -> None:
    """Only --json may be stdout: `--trace -` and `--mermaid -` say so alike, and no hint to use - is given for a device."""
    command = "explain" if flag == "--mermaid" else "run"
    assert_refused(invoke_cli(command, "s.toml", flag, "-", cwd=work), f"{flag} -: this output goes to a file, not stdout")
    device = invoke_cli(command, "s.toml", flag, "/dev/null", cwd=work)
    assert_refused(device, "character device")
    assert "use - for stdout" not in device.stderr


SLOW_PLUGIN = """
import pathlib, time
from typing import ClassVar
from stacksim import DumpFilter, NtStatus

class Slow(DumpFilter):
    service_name: ClassVar[str] = "slow.sys"

    async def dump_write(self, extension, request):
        pathlib.Path(__file__).with_suffix(".started").touch()
        time.sleep(0.05)  # real time: keeps explain's short crash run busy for seconds
        return NtStatus.SUCCESS
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_an_interrupted_explain_leaves_no_diagram(tmp_path: Path, sig: signal.Signals) -> None:
    """A signal while explain runs its short runs ends it with exit 1, no diagram and no temporary file."""
    (tmp_path / "slow.py").write_text(SLOW_PLUGIN)
    (tmp_path / "s.toml").write_text(
        '[scenario]\nname = "slow"\n[registry]\nDumpFilters = ["slow.sys"]\nCrashDumpEnabled = 1\n[memory]\nram = "16 MiB"\n'
    )
    proc = spawn_stacksim("explain", "s.toml", "--plugin", "slow.py", "--mermaid", "d.mmd", cwd=tmp_path)
    deadline = time.monotonic() + 20
    while not (tmp_path / "slow.started").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert_interrupted(proc, sig)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.toml", "slow.py", "slow.started"]


@pytest.mark.parametrize(
    ("workload", "key"),
    [
        ("requests = 0", "requests"),
        ("requests = 1152921504606846976", "requests"),
        ("queue_depth = 70000", "queue_depth"),
        ('region_size = "1 EiB"', "region"),
        ('read_fraction = 1.5\npattern = "mixed"', "read_fraction"),
        ('block_size = "1000 B"', "block_size"),
        ('pattern = "' + "x" * 100_000 + '"', "pattern"),
    ],
    ids=[
        "zero-requests",
        "2^60-requests",
        "huge-queue-depth",
        "region-past-the-disk",
        "fraction-over-1",
        "unaligned-block",
        "100k-pattern",
    ],
)
@pytest.mark.parametrize("command", ["run", "validate", "explain"])
def test_a_hostile_workload_is_refused_by_key(work: Path, workload: str, key: str, command: str) -> None:
    """A [workload] value out of bounds is exit 2 naming the key, from every command that reads the scenario."""
    (work / "io.toml").write_text(f'[scenario]\nname = "io"\nevent = "io"\n[workload]\n{workload}\n')
    assert_refused(invoke_cli(command, "io.toml", cwd=work), "io.toml", key)
