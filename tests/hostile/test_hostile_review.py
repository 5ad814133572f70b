"""
Hostile inputs from the adversarial review of issue 10's first pass: each case failed before its fix.

Scenario values that JSON cannot hold, linear-time scans of huge input, read errors and files that
hold more than they report, a full disk during a sweep, malformed ``--set`` keys, mixed JSONL
sweeps, raw control characters in JSON and logs, replay messages, ``--seed`` bounds, signals
before the simulation starts, read-only outputs as root, and a non-UTF-8 terminal.
"""

from __future__ import annotations

import errno
import importlib
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import assert_refused, invoke_cli, stacksim_cli

from stacksim._io import InputError, decode_text, open_input, read_input
from stacksim.sweep import SweepError, parse_set

pytestmark = pytest.mark.timeout(30)

SMALL = '[scenario]\nname = "small"\nseed = 1\n[memory]\nram = "1 MiB"\n'

PLUGIN = """\
import datetime
from typing import Any, ClassVar
from pydantic import BaseModel, ConfigDict
from stacksim import DumpFilter, NtStatus


class C(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    when: Any = None
    gain: float = 1.0


class Dt(DumpFilter):
    service_name: ClassVar[str] = "dtflt.sys"
    Config: ClassVar[type[BaseModel]] = C

    async def dump_write(self, extension, request):
        return NtStatus.SUCCESS

    def write_cost(self, extension, length):
        return 0
"""
"""A filter whose Config takes any value at ``when`` and any float at ``gain`` (the reviewer's dtflt.py, widened)."""


def _plugin_scenario(tmp: Path, line: str) -> None:
    (tmp / "dtflt.py").write_text(PLUGIN)
    (tmp / "s.toml").write_text(
        '[scenario]\nname = "dt"\n[registry]\nDumpFilters = ["dtflt.sys"]\n[memory]\nram = "1 MiB"\n'
        f'[filters."dtflt.sys"]\n{line}\n'
    )


# -- 1. every scenario value must be JSON-representable ------------------------------------------

NOT_JSON = {
    "offset-datetime": ("when = 1979-05-27T07:32:00Z", "when", "date"),
    "local-datetime": ("when = 1979-05-27T07:32:00", "when", "date"),
    "local-date": ("when = 1979-05-27", "when", "date"),
    "local-time": ("when = 07:32:00", "when", "time"),
    "datetime-in-an-array": ("when = [[1, 1979-05-27]]", "when[0][1]", "date"),
    "inf": ("gain = inf", "gain", "finite"),
    "minus-inf": ("gain = -inf", "gain", "finite"),
    "nan": ("gain = nan", "gain", "finite"),
    "nan-in-a-table": ("when = {a = {b = nan}}", "when.a.b", "finite"),
}


@pytest.mark.parametrize("command", ["validate", "run"])
@pytest.mark.parametrize("case", list(NOT_JSON))
def test_a_value_json_cannot_hold_is_refused(tmp_path: Path, case: str, command: str) -> None:
    """A TOML date, time or datetime, or a non-finite float, anywhere in a scenario is exit 2 naming its key."""
    line, key, what = NOT_JSON[case]
    _plugin_scenario(tmp_path, line)
    proc = invoke_cli(command, "s.toml", "--plugin", "dtflt.py", cwd=tmp_path)
    assert_refused(proc, "s.toml", f'[filters."dtflt.sys"] {key}', what)


def test_a_datetime_in_a_built_in_section_is_refused_by_key(tmp_path: Path) -> None:
    """The rule holds in every section, not only plugin configurations."""
    (tmp_path / "s.toml").write_text('[scenario]\nname = "x"\ndescription = 1979-05-27\n')
    assert_refused(invoke_cli("validate", "s.toml", cwd=tmp_path), "s.toml", "[scenario] description", "date")


def test_result_json_never_writes_nan() -> None:
    """RunResult.to_json (the CLI's result_json) refuses a non-finite number instead of writing ``NaN`` (which is not JSON)."""
    from stacksim.report import RunResult

    class Fake:
        def as_dict(self) -> dict[str, Any]:
            return {"x": math.nan}

    with pytest.raises(ValueError, match="JSON"):
        RunResult.to_json(Fake())  # type: ignore[arg-type]


# -- 2. every scan of input is linear --------------------------------------------------------------

LINES = 2_000
"""Comment lines of 3,999 digits each: 8 MB, a quadratic scan of which takes about 40 s."""


@pytest.mark.timeout(8)
def test_a_huge_integer_after_megabytes_of_digits_is_refused_fast(tmp_path: Path) -> None:
    """A scenario of megabytes of long digit runs and then a 4,400-digit integer is refused in seconds, naming the line."""
    body = ("# " + "1" * 3_999 + "\n") * LINES + "x = " + "9" * 4_400 + "\n"
    (tmp_path / "s.toml").write_text(body)
    proc = invoke_cli("validate", "s.toml", cwd=tmp_path)
    assert_refused(proc, "s.toml", f"line {LINES + 1:,}", "4,400 digits")


@pytest.mark.timeout(8)
def test_a_huge_integer_in_a_result_after_megabytes_of_digits_is_refused_fast(tmp_path: Path) -> None:
    """The same holds for a result file: the scan for the long integer is linear."""
    body = "[\n" + ('"' + "1" * 3_999 + '",\n') * LINES + "9" * 4_400 + "]\n"
    (tmp_path / "r.json").write_text(body)
    proc = invoke_cli("replay", "r.json", cwd=tmp_path)
    assert_refused(proc, "r.json", f"line {LINES + 2:,}", "4,400 digits")


# -- 3. read errors, and files that hold more than they report ---------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ("validate", "/proc/self/mem"),
        ("replay", "/proc/self/mem"),
        ("run", "s.toml", "--plugin", "/proc/self/mem"),
        ("sweep", "/proc/self/mem", "--set", "disk.latency=1us", "--out", "o.csv"),
    ],
    ids=["validate", "replay", "plugin", "sweep"],
)
def test_a_read_error_is_exit_2(tmp_path: Path, args: tuple[str, ...]) -> None:
    """A file that fails to read (EIO from /proc/self/mem) is exit 2 naming it, not a traceback."""
    (tmp_path / "s.toml").write_text(SMALL)
    proc = invoke_cli(*args, cwd=tmp_path)
    assert_refused(proc, "/proc/self/mem")
    assert not (tmp_path / "o.csv").exists()


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    "args",
    [("validate", "/proc/self/status"), ("replay", "/proc/self/status"), ("check", "/proc/self/pagemap")],
    ids=["scenario", "result", "trace"],
)
def test_a_file_that_holds_more_than_it_reports_is_refused(args: tuple[str, ...]) -> None:
    """A /proc file reports 0 bytes but holds more: refused at once (reading /proc/self/pagemap whole would be 20 GB)."""
    proc = invoke_cli(*args)
    assert_refused(proc, args[1], "reports 0 bytes but holds more")
    assert proc.elapsed < 2.0  # type: ignore[attr-defined]


def test_a_file_that_grows_while_it_is_read_is_refused(tmp_path: Path) -> None:
    """Bytes beyond the size reported at open (a file still being written) are refused."""
    path = tmp_path / "s.toml"
    path.write_text(SMALL)
    with open_input(path, "scenario") as stream:
        with path.open("a") as f:
            f.write("# more\n")
        with pytest.raises(InputError, match=f"reports {len(SMALL)} bytes but holds more"):
            stream.read()


def test_a_file_read_to_its_reported_size_is_whole(tmp_path: Path) -> None:
    """A regular file is read exactly to the size reported at open."""
    path = tmp_path / "s.toml"
    path.write_text(SMALL)
    assert read_input(path, "scenario") == SMALL.encode()


# -- 4. a full disk during a sweep --------------------------------------------------------------


def test_a_full_disk_during_a_sweep_is_exit_2_and_resumable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ENOSPC while a finished point is flushed is exit 2, saying the finished points are kept and how to resume."""
    sw = importlib.import_module("stacksim.sweep")  # stacksim.sweep is the API function

    (tmp_path / "s.toml").write_text(SMALL)
    calls = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        calls.append(fd)
        if len(calls) >= 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    monkeypatch.setattr(sw.os, "fsync", fsync)
    args = ("sweep", "s.toml", "--set", "disk.latency=1us,2us,3us", "--out", "o.csv", "--workers", "1")
    proc = invoke_cli(*args, cwd=tmp_path)
    assert_refused(proc, "--out o.csv", "No space left on device", "finished points are kept", "same command again")
    monkeypatch.setattr(sw.os, "fsync", real_fsync)
    again = invoke_cli(*args, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "3 in the grid" in again.stdout
    assert len((tmp_path / "o.csv").read_text().splitlines()) == 4


# -- 5. --set KEY must be one plain dotted key ----------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["[t]\n[u]\nb=1", "[t]\nb=1", "disk\n.latency=1us", "disk.[latency]=1us", "disk.latency\r=1us", "[[t]]\nb=1"],
)
def test_a_set_key_that_is_not_one_dotted_key_is_refused(text: str) -> None:
    """A KEY with newlines, brackets or a table header is not read as some other key."""
    with pytest.raises(SweepError, match=r"not a key path such as disk\.bandwidth"):
        parse_set(text)


@pytest.mark.parametrize("text", ["disk.latency=1\nb=2", "disk.latency=1\n[t]\nb=2", 'disk.latency="1us"\n[x]'])
def test_a_set_value_that_smuggles_more_toml_is_refused(text: str) -> None:
    """A value followed by more TOML (another key, a table) is not silently read as its first value."""
    with pytest.raises(SweepError, match="not one value"):
        parse_set(text)


def test_a_multi_line_array_value_still_works() -> None:
    """A TOML value may span lines (an array), as long as it is one value."""
    assert parse_set("registry.DumpFilters=[\n'dumpfve.sys'\n]").values == (["dumpfve.sys"],)


def test_a_table_header_set_key_is_exit_2(tmp_path: Path) -> None:
    """On the command line the same is exit 2 with a message, not a ValueError traceback."""
    (tmp_path / "s.toml").write_text(SMALL)
    proc = invoke_cli("sweep", "s.toml", "--set", "[t]\n[u]\nb=1", "--out", "a.csv", cwd=tmp_path)
    assert_refused(proc, "--set", "not a key path")
    assert not (tmp_path / "a.csv").exists()


def test_quoted_set_keys_still_work() -> None:
    """Quoted parts and spaces around the dots stay allowed."""
    assert parse_set('filters."dumpfve.sys" . per_byte=1ns').path == ("filters", "dumpfve.sys", "per_byte")
    assert parse_set("filters.'a b'.x=1").path == ("filters", "a b", "x")


# -- 6. a JSONL sweep file holds one sweep --------------------------------------------------------


def _sweep(tmp: Path, *sets: str, out: str = "o.jsonl") -> subprocess.CompletedProcess[str]:
    args = [a for s in sets for a in ("--set", s)]
    return invoke_cli("sweep", "s.toml", *args, "--out", out, "--workers", "1", cwd=tmp)


def test_a_jsonl_file_of_another_sweep_is_refused(tmp_path: Path) -> None:
    """Resuming into a JSONL file whose records have other keys is refused, as a CSV file's header is."""
    (tmp_path / "s.toml").write_text(SMALL)
    assert _sweep(tmp_path, "disk.latency=1us").returncode == 0
    before = (tmp_path / "o.jsonl").read_bytes()
    proc = _sweep(tmp_path, "memory.ram=1MiB,2MiB")
    assert_refused(proc, "o.jsonl", "different sweep")
    assert (tmp_path / "o.jsonl").read_bytes() == before


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ('"point_id"', "not an object"),
        ("[1, 2]", "not an object"),
        ('{"point_id": 5}', "point_id is not a string"),
        ("{}", "no point_id"),
    ],
)
def test_a_jsonl_line_that_is_not_a_record_is_refused(tmp_path: Path, line: str, why: str) -> None:
    """Every JSONL line must be an object with a string point_id."""
    (tmp_path / "s.toml").write_text(SMALL)
    (tmp_path / "o.jsonl").write_text(line + "\n")
    assert_refused(_sweep(tmp_path, "disk.latency=1us"), "o.jsonl", "line 1", why)
    assert (tmp_path / "o.jsonl").read_text() == line + "\n"


# -- 7. no raw control characters in JSON or logs -------------------------------------------------

ESC = """\
[scenario]
name = "\\u001b[31mRED\\u001b]0;pwned\\u0007\\u202eevil\\u009b2J\\u2028µs"
description = "\\u001b[2Jdesc"
[memory]
ram = "1 MiB"
"""

RAW = ("\x1b", "\x07", "\u202e", "\x9b", "\u2028")


def test_result_json_escapes_controls_and_keeps_other_text_readable(tmp_path: Path) -> None:
    """`run --json -` escapes C1 controls, bidi controls and U+2028 as \\uXXXX; µ stays as it is."""
    (tmp_path / "s.toml").write_text(ESC)
    proc = invoke_cli("run", "s.toml", "--json", "-", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert not [c for c in RAW if c in proc.stdout]
    assert "\\u202eevil\\u009b2J\\u2028µs" in proc.stdout
    assert json.loads(proc.stdout)["scenario"] == "\x1b[31mRED\x1b]0;pwned\x07\u202eevil\x9b2J\u2028µs"


def test_a_trace_escapes_controls() -> None:
    """The trace writer escapes the same characters (people `cat` traces), and keeps µ."""
    import io

    from stacksim.trace import JsonlTrace

    buf = io.StringIO()
    JsonlTrace(buf).emit(0, 0, "x\u202e", "e", 0, None, None, None, None, None, {"m": "\x9b\u2029\x7fµ"})
    text = buf.getvalue()
    assert not [c for c in (*RAW, "\u2029", "\x7f") if c in text]
    assert '"x\\u202e"' in text
    assert '"\\u009b\\u2029\\u007fµ"' in text
    assert json.loads(text)["detail"] == {"m": "\x9b\u2029\x7fµ"}


def test_sweep_jsonl_escapes_controls(tmp_path: Path) -> None:
    """A sweep's JSONL rows escape them too."""
    (tmp_path / "s.toml").write_text(SMALL)
    assert _sweep(tmp_path, 'scenario.description="\\u202e\\u009b"').returncode == 0
    text = (tmp_path / "o.jsonl").read_text()
    assert "\u202e" not in text
    assert "\\u202e\\u009b" in text


def test_log_lines_escape_input_text(tmp_path: Path) -> None:
    """`--log-level debug` shows the scenario name escaped: no terminal escape or bidi control reaches stderr."""
    (tmp_path / "s.toml").write_text(ESC)
    proc = invoke_cli("run", "s.toml", "--log-level", "debug", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "\\u202eevil" in proc.stderr
    assert not [c for c in RAW if c in proc.stderr]


def test_a_long_name_is_shortened_in_log_lines(tmp_path: Path) -> None:
    """A 100 KB scenario name is logged shortened, with its length."""
    (tmp_path / "s.toml").write_text(f'[scenario]\nname = "{"n" * 100_000}"\n[memory]\nram = "1 MiB"\n')
    proc = invoke_cli("run", "s.toml", "--log-level", "debug", "--json", "-", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "(100,000 characters)" in proc.stderr
    assert len(proc.stderr) < 20_000


# -- 8. replay messages ----------------------------------------------------------------------------


@pytest.fixture
def result(tmp_path: Path) -> Path:
    """A result file of a small run."""
    (tmp_path / "s.toml").write_text(SMALL)
    assert invoke_cli("run", "s.toml", "--json", "r.json", cwd=tmp_path).returncode == 0
    return tmp_path / "r.json"


def test_replay_of_a_reformatted_result_says_only_the_text_differs(result: Path) -> None:
    """A result re-indented by hand replays to the same values: replay says so instead of listing no keys."""
    result.write_text(json.dumps(json.loads(result.read_text()), indent=4))
    proc = invoke_cli("replay", "r.json", cwd=result.parent)
    assert proc.returncode == 1
    assert "the values match but the file's text differs (formatting or key order)" in proc.stdout
    assert "differs in \n" not in proc.stdout


def test_replay_with_a_duplicate_key_says_only_the_text_differs(result: Path) -> None:
    """A duplicate key (the last one wins, and it is right) is reported the same way."""
    text = result.read_text()
    result.write_text(text.replace('"event": "crash"', '"event": "hibernate",\n  "event": "crash"', 1))
    proc = invoke_cli("replay", "r.json", cwd=result.parent)
    assert proc.returncode == 1
    assert "the values match but the file's text differs" in proc.stdout


def test_a_matching_replay_prints_the_dump_time_in_readable_units(result: Path) -> None:
    """The success line gives the dump time as format_ns prints it, not raw nanoseconds."""
    from stacksim.units import format_ns

    ns = json.loads(result.read_text())["dump_time_ns"]
    proc = invoke_cli("replay", "r.json", cwd=result.parent)
    assert proc.returncode == 0, proc.stderr
    assert f"replay matches, byte for byte (status ok, dump time {format_ns(ns)})" in proc.stdout
    assert " ns)" not in proc.stdout


# -- 9. --seed is the flag's fault ----------------------------------------------------------------


@pytest.mark.parametrize("seed", ["9223372036854775808", "-1", "1" * 5_000])
def test_an_out_of_range_seed_names_the_flag(tmp_path: Path, seed: str) -> None:
    """`--seed` outside 0 .. 2^63 - 1 is exit 2 naming --seed, not the file's [scenario] seed."""
    (tmp_path / "s.toml").write_text(SMALL)
    proc = invoke_cli("run", "s.toml", "--seed", seed, cwd=tmp_path)
    assert_refused(proc, "--seed")
    assert "[scenario] seed" not in proc.stderr


def test_the_largest_seed_runs(tmp_path: Path) -> None:
    """--seed 2^63 - 1 is accepted."""
    (tmp_path / "s.toml").write_text(SMALL)
    proc = invoke_cli("run", "s.toml", "--seed", str(2**63 - 1), "--json", "-", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["seed"] == 2**63 - 1


# -- 10. signals before the simulation starts -----------------------------------------------------

SIGNAL_DURING_LOAD = """\
import os, signal, sys, time
import stacksim.cli as cli
import stacksim.scenario

def load(*args, **kwargs):
    os.kill(os.getpid(), signal.{sig})
    time.sleep(10)  # the signal interrupts this
    raise AssertionError("not interrupted")

stacksim.scenario.load_scenario = load  # the CLI imports it when the command runs
sys.argv = ["stacksim", "run", "s.toml", "--json", "r.json"]
cli.main()
"""


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT"])
def test_a_signal_while_the_scenario_loads_is_the_interrupted_message(tmp_path: Path, sig: str) -> None:
    """SIGTERM or SIGINT while the scenario is read and validated is exit 1 with the documented message, no file."""
    (tmp_path / "s.toml").write_text(SMALL)
    (tmp_path / "go.py").write_text(SIGNAL_DURING_LOAD.format(sig=sig))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.run(
        [sys.executable, "go.py"], cwd=tmp_path, capture_output=True, text=True, timeout=20, env=env, check=False
    )
    assert proc.returncode == 1, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr
    expected = "interrupted (SIGTERM)" if sig == "SIGTERM" else "interrupted"
    assert f"error: {expected}; no output file was written" in proc.stderr
    assert sorted(os.listdir(tmp_path)) == ["go.py", "s.toml"]


def test_ctrl_c_in_validate_is_the_interrupted_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A KeyboardInterrupt anywhere in a command (here `validate`) is exit 1 and "interrupted", not exit 130."""
    import stacksim.scenario

    def load(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(stacksim.scenario, "load_scenario", load)  # the CLI imports it when a command runs
    (tmp_path / "s.toml").write_text(SMALL)
    proc = invoke_cli("validate", "s.toml", cwd=tmp_path)
    assert_refused(proc, "interrupted", code=1)


# -- 11. read-only outputs, as root too -------------------------------------------------------------


def test_a_mode_0444_output_is_refused_even_for_root(tmp_path: Path) -> None:
    """A --json target with no write bit is refused (os.access says yes to root; the mode bits decide)."""
    (tmp_path / "s.toml").write_text(SMALL)
    target = tmp_path / "r.json"
    target.write_text("keep")
    target.chmod(0o444)
    proc = invoke_cli("run", "s.toml", "--json", "r.json", cwd=tmp_path)
    assert_refused(proc, "--json r.json", "read-only")
    assert target.read_text() == "keep"


# -- 12. a terminal that is not UTF-8, and UTF-32 files --------------------------------------------


@pytest.mark.timeout(60)
def test_run_on_an_ascii_terminal_prints_escapes(tmp_path: Path) -> None:
    """With PYTHONIOENCODING=ascii, `run` prints its summary with non-ASCII characters escaped, exit 0."""
    (tmp_path / "s.toml").write_text(SMALL)
    proc = stacksim_cli("run", "s.toml", cwd=tmp_path, env={"PYTHONIOENCODING": "ascii"})
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "\\xb7" in proc.stdout  # the · of the title line


@pytest.mark.timeout(60)
def test_an_error_on_an_ascii_terminal_is_escaped(tmp_path: Path) -> None:
    """An error message naming a non-ASCII file on an ASCII stderr is exit 2, escaped, not a traceback."""
    proc = stacksim_cli("validate", "µ.toml", cwd=tmp_path, env={"PYTHONIOENCODING": "ascii"})
    assert_refused(proc, "\\xb5.toml")


@pytest.mark.parametrize("bom", [b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff"], ids=["le", "be"])
def test_a_utf32_file_is_named_utf32(tmp_path: Path, bom: bytes) -> None:
    """A UTF-32 byte-order mark is reported as UTF-32, not UTF-16."""
    codec = "utf-32-le" if bom[0] == 0xFF else "utf-32-be"
    raw = bom + SMALL.encode(codec)
    with pytest.raises(InputError, match="is UTF-32"):
        decode_text(raw, "s.toml", "scenario")


def test_a_utf32_scenario_is_exit_2_naming_utf32(tmp_path: Path) -> None:
    """On the command line a UTF-32 scenario is exit 2 naming UTF-32."""
    (tmp_path / "s.toml").write_bytes(SMALL.encode("utf-32"))
    assert_refused(invoke_cli("validate", "s.toml", cwd=tmp_path), "s.toml", "UTF-32")
