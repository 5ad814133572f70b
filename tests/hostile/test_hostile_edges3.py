"""
Hostile inputs from the second adversarial review of issue 10: each case failed before its fix.

Raw control characters in a sweep's CSV, a ``--set`` key or value given twice, a grid of a
billion points, a failing or closed stdout, and pydantic's internals in scenario messages
(union member tags, class names, Python's ``True``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import assert_refused, invoke_cli

from stacksim.sweep import MAX_GRID_POINTS, MAX_SET_VALUES, MAX_SETS, _finished, _line

pytestmark = pytest.mark.timeout(30)

CHECKOUT = str(Path(__file__).resolve().parents[2])

SMALL = '[scenario]\nname = "small"\nseed = 1\n[registry]\nDumpFilters = []\n[memory]\nram = "1 MiB"\n'


def _scenario(tmp: Path, extra: str = "") -> Path:
    path = tmp / "s.toml"
    path.write_text(SMALL + extra)
    return path


# -- 2. sweep CSV cells carry no raw control characters ------------------------------------------


def test_sweep_csv_cells_escape_control_and_bidi_characters(tmp_path: Path) -> None:
    """A value with ESC and U+202E is written to the CSV escaped as terminal_safe shows it; µ stays readable."""
    scenario = _scenario(tmp_path)
    out = tmp_path / "r.csv"
    r = invoke_cli(
        "sweep", str(scenario), "--set", 'scenario.name="a\\u001b[31mRED\\u202e µ","b"', "--workers", "1", "--out", str(out)
    )
    assert r.returncode == 0, r.stderr
    text = out.read_text(encoding="utf-8")
    assert "\x1b" not in text
    assert "\u202e" not in text
    assert "a\\x1b[31mRED\\u202e µ" in text


def test_an_escaped_csv_resumes_and_stays_in_grid_order(tmp_path: Path) -> None:
    """Running the same sweep again over an escaped CSV finds every point done and leaves the file unchanged."""
    scenario = _scenario(tmp_path)
    out = tmp_path / "r.csv"
    args = ("sweep", str(scenario), "--set", 'scenario.name="\\u001bx","\\u202ey"', "--workers", "1", "--out", str(out))
    assert invoke_cli(*args).returncode == 0
    before = out.read_bytes()
    again = invoke_cli(*args)
    assert again.returncode == 0, again.stderr
    assert "0 points run (0 failed), 2 already there" in again.stdout
    assert out.read_bytes() == before


def test_a_column_named_with_a_control_character_is_recognised_on_resume(tmp_path: Path) -> None:
    """A CSV header whose key path holds ESC is written escaped and still matches the sweep's columns."""
    out = tmp_path / "r.csv"
    columns = ["point_id", 'filters."e\x1b.sys".x', "status"]
    out.write_text(_line(dict(zip(columns, columns, strict=True)), columns, False), encoding="utf-8")
    assert "\x1b" not in out.read_text(encoding="utf-8")
    assert _finished(out, columns) == set()


def test_a_boolean_value_is_spelled_as_toml_in_the_csv(tmp_path: Path) -> None:
    """A boolean --set value is written to a CSV cell as true, not Python's True."""
    scenario = _scenario(tmp_path)
    out = tmp_path / "r.csv"
    r = invoke_cli("sweep", str(scenario), "--set", "normal_stack.bitlocker=true,false", "--workers", "1", "--out", str(out))
    assert r.returncode == 0, r.stderr
    cells = {line.split(",")[1] for line in out.read_text().splitlines()[1:]}
    assert cells == {"true", "false"}


# -- 4. a key or value given twice -------------------------------------------------------------

TWICE = {
    "same-key": (["--set", "scenario.seed=1,2", "--set", "scenario.seed=3,4"], ["scenario.seed=1,2", "scenario.seed=3,4"]),
    "prefix-key": (["--set", "disk={bandwidth=1}", "--set", "disk.bandwidth=2"], ["disk={bandwidth=1}", "disk.bandwidth=2"]),
    "same-value": (["--set", "memory.ram=64MiB,64MiB"], ["memory.ram=64MiB,64MiB", "64MiB", "twice"]),
    "same-list-value": (["--set", 'registry.DumpFilters=["a"],[],["a"]'], ['["a"]', "values 1 and 3"]),
}


@pytest.mark.parametrize("case", list(TWICE), ids=list(TWICE))
def test_a_key_or_value_given_twice_is_refused(tmp_path: Path, case: str) -> None:
    """A --set key given twice, a key inside another --set's key, or a value repeated in one --set is exit 2."""
    args, names = TWICE[case]
    out = tmp_path / "r.csv"
    r = invoke_cli("sweep", str(_scenario(tmp_path)), *args, "--workers", "1", "--out", str(out))
    assert_refused(r, *names)
    assert not out.exists()


# -- 8. the grid is bounded before it is built ---------------------------------------------------


def test_a_grid_of_a_billion_points_is_refused_before_it_is_built(tmp_path: Path) -> None:
    """Nine --set options of ten values (10^9 points) are refused at once, naming the options and the product."""
    values = ",".join(str(n) for n in range(10))
    sets = [a for k in range(9) for a in ("--set", f"scenario.s{k}={values}")]
    r = invoke_cli("sweep", str(_scenario(tmp_path)), *sets, "--workers", "1", "--out", str(tmp_path / "r.csv"))
    assert_refused(r, "--set scenario.s0", "1,000,000,000 points", f"{MAX_GRID_POINTS:,}")
    assert r.elapsed < 5  # type: ignore[attr-defined]


def test_too_many_values_in_one_set_are_refused(tmp_path: Path) -> None:
    """A --set of more than MAX_SET_VALUES values is refused before the values are parsed."""
    values = ",".join(str(n) for n in range(MAX_SET_VALUES + 1))
    r = invoke_cli("sweep", str(_scenario(tmp_path)), "--set", f"scenario.seed={values}", "--out", str(tmp_path / "r.csv"))
    assert_refused(r, "--set scenario.seed=", f"{MAX_SET_VALUES + 1:,} values", f"{MAX_SET_VALUES:,}")


def test_too_many_set_options_are_refused(tmp_path: Path) -> None:
    """More than MAX_SETS --set options are refused."""
    sets = [a for k in range(MAX_SETS + 1) for a in ("--set", f"scenario.s{k}=1")]
    r = invoke_cli("sweep", str(_scenario(tmp_path)), *sets, "--out", str(tmp_path / "r.csv"))
    assert_refused(r, f"{MAX_SETS + 1} --set options", str(MAX_SETS))


# -- 5. stdout that cannot be written ----------------------------------------------------------

SCENARIO = "scenarios/crash-no-filters.toml"


def _to_full_stdout(*args: str) -> subprocess.CompletedProcess[str]:
    """``python -m stacksim ARGS >/dev/full`` (stdout on a device that is always full), from the checkout."""
    return subprocess.run(
        ["sh", "-c", 'exec "$@" >/dev/full', "sh", sys.executable, "-m", "stacksim", *args],
        stderr=subprocess.PIPE,
        text=True,
        check=False,
        timeout=30,
        cwd=CHECKOUT,
        env={**os.environ, "PYTHONPATH": CHECKOUT},
    )


@pytest.mark.parametrize(
    "args",
    [["run", SCENARIO], ["run", SCENARIO, "--json", "-"], ["validate", SCENARIO], ["devices", "--json"]],
    ids=["run", "run-json", "validate", "devices-json"],
)
def test_a_full_stdout_is_exit_2_naming_stdout(args: list[str]) -> None:
    """Stdout on a full device (/dev/full) is exit 2 with one line naming stdout and ENOSPC, no traceback."""
    r = _to_full_stdout(*args)
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().splitlines() == [
        "error: cannot write to stdout: No space left on device (ENOSPC); what was printed is incomplete"
    ]


def test_check_to_a_full_stdout_is_exit_2(tmp_path: Path) -> None:
    """`stacksim check TRACE >/dev/full` is exit 2 naming stdout, not a traceback."""
    trace = tmp_path / "t.jsonl"
    env = {**os.environ, "PYTHONPATH": CHECKOUT}
    made = subprocess.run(
        [sys.executable, "-m", "stacksim", "run", SCENARIO, "--trace", str(trace)],
        capture_output=True,
        check=False,
        timeout=30,
        cwd=CHECKOUT,
        env=env,
    )
    assert made.returncode == 0
    r = _to_full_stdout("check", str(trace))
    assert r.returncode == 2, r.stderr
    assert "stdout" in r.stderr
    assert "ENOSPC" in r.stderr
    assert "Traceback" not in r.stderr


def test_an_io_error_on_stdout_is_exit_2_naming_eio() -> None:
    """An I/O error (EIO) writing stdout is exit 2 with one line naming stdout and EIO."""
    code = (
        "import errno, os, sys\n"
        "real = os.write\n"
        "def write(fd, data):\n"
        "    if fd == 1:\n"
        "        raise OSError(errno.EIO, os.strerror(errno.EIO))\n"
        "    return real(fd, data)\n"
        "os.write = write\n"
        "from stacksim.cli import main\n"
        "sys.argv = ['stacksim', 'validate', 'scenarios/crash-no-filters.toml']\n"
        "main()\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
        cwd=CHECKOUT,
        env={**os.environ, "PYTHONPATH": CHECKOUT},
    )
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().splitlines() == [
        "error: cannot write to stdout: Input/output error (EIO); what was printed is incomplete"
    ]


def test_a_closed_pipe_ends_quietly_with_141() -> None:
    """Stdout a pipe whose reader has gone (`| head`) ends the command with exit 141 and nothing on stderr."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "stacksim", "run", SCENARIO],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=CHECKOUT,
        env={**os.environ, "PYTHONPATH": CHECKOUT},
    )
    assert proc.stdout is not None
    assert proc.stderr is not None
    proc.stdout.close()  # before the command has printed anything: its first write meets EPIPE
    with proc.stderr:
        err = proc.stderr.read()
    assert proc.wait(timeout=30) == 141
    assert err == b""


def test_a_closed_stdout_is_exit_2() -> None:
    """Started with stdout closed (`>&-`), a command refuses to run: exit 2 with a message."""
    r = subprocess.run(
        ["sh", "-c", 'exec "$@" >&-', "sh", sys.executable, "-m", "stacksim", "run", SCENARIO],
        stderr=subprocess.PIPE,
        text=True,
        check=False,
        timeout=30,
        cwd=CHECKOUT,
        env={**os.environ, "PYTHONPATH": CHECKOUT},
    )
    assert r.returncode == 2
    assert "stdout is closed" in r.stderr
    assert "Traceback" not in r.stderr


# -- 9. scenario messages in the file's terms -----------------------------------------------------

RUNS = {
    "zero-length": ("runs = [{offset = 1073741824, length = 0}]", "[layout] runs[0].length: Input should be greater than 0"),
    "missing-length": ("runs = [{offset = 1073741824}]", "[layout] runs[0].length: required key is missing"),
    "not-a-table": ("runs = [1]", "[layout] runs[0]: must be a table (got 1)"),
}


@pytest.mark.parametrize("case", list(RUNS), ids=list(RUNS))
def test_a_bad_explicit_run_is_named_by_its_key_path(tmp_path: Path, case: str) -> None:
    """A list given for runs reports only the list's problem, at `[layout] runs[0]…`, without union tags."""
    line, expected = RUNS[case]
    r = invoke_cli("validate", str(_scenario(tmp_path, f"[layout]\n{line}\n")))
    assert_refused(r, expected)
    assert "runs.int" not in r.stderr
    assert "list[RunSpec]" not in r.stderr
    assert "valid integer" not in r.stderr
    assert "1 problems" not in r.stderr
    assert "2 problems" not in r.stderr


def test_a_table_given_a_number_names_no_class(tmp_path: Path) -> None:
    """`--set scenario=1` says the key must be a table, never the model's class name."""
    r = invoke_cli("sweep", str(_scenario(tmp_path)), "--set", "scenario=1", "--workers", "1", "--out", str(tmp_path / "r.csv"))
    assert_refused(r, "[scenario]: must be a table (got 1)")
    assert "ScenarioSection" not in r.stderr
    assert "instance of" not in r.stderr


def test_a_sweep_point_is_shown_in_toml_spelling(tmp_path: Path) -> None:
    """A refused sweep point shows a boolean value as TOML's true, not Python's True."""
    r = invoke_cli("sweep", str(_scenario(tmp_path)), "--set", "registry.CrashDumpEnabled=true", "--out", str(tmp_path / "r.csv"))
    assert_refused(r, "with registry.CrashDumpEnabled=true:", "CrashDumpEnabled")
    assert "True" not in r.stderr


PLUGIN = """\
from typing import ClassVar
from pydantic import BaseModel, ConfigDict
from stacksim import DumpFilter, NtStatus


class C(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    a: int | str = 1


class U(DumpFilter):
    service_name: ClassVar[str] = "uflt.sys"
    Config: ClassVar[type[BaseModel]] = C

    async def dump_write(self, extension, request):
        return NtStatus.SUCCESS
"""


def test_a_value_no_union_member_takes_is_one_problem(tmp_path: Path) -> None:
    """A plugin key typed int | str given 1.5 is one problem naming both kinds, without member tags."""
    (tmp_path / "uflt.py").write_text(PLUGIN)
    scenario = tmp_path / "s.toml"
    scenario.write_text('[scenario]\nname = "u"\n[registry]\nDumpFilters = ["uflt.sys"]\n[filters."uflt.sys"]\na = 1.5\n')
    r = invoke_cli("validate", str(scenario), "--plugin", str(tmp_path / "uflt.py"))
    assert_refused(r, '[filters."uflt.sys"] a: must be an integer, or must be a string (got 1.5)')
    assert "a.int" not in r.stderr
    assert "a.str" not in r.stderr


def test_minus_zero_is_zero(tmp_path: Path) -> None:
    """`free_fraction = -0.0` is the number zero (as TOML's -0 is the integer 0), so it is accepted as 0 is."""
    from stacksim.filters import FilterCatalog
    from stacksim.scenario import load_scenario

    s = load_scenario(_scenario(tmp_path, "free_fraction = -0.0\nguest_fraction = -0\n"), FilterCatalog())
    assert s.memory.free_fraction == 0
    assert s.memory.guest_fraction == 0
