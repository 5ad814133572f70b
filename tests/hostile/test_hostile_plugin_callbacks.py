"""
Hostile plugin callbacks: plugin code cannot take over the process, hang it, or choose its exit code.

Each case writes a plugin file and a scenario into ``tmp_path`` and runs ``stacksim run SCENARIO
--plugin FILE --json -`` (in this process, or as a real subprocess where the process itself is
at stake: a busy loop, ``sys.exit``, Ctrl-C). A plugin's misbehaviour is a *result*: exit 0, a
failed status naming the filter and the callback in the JSON, no traceback, within a wall-time
bound. A real Ctrl-C stays an interruption (exit 1).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import assert_refused, invoke_cli, stacksim_cli

pytestmark = pytest.mark.timeout(30)

HEADER = """
from typing import ClassVar
import sys
import trio
from stacksim import DumpFilter, NtStatus, spend


class Plug(DumpFilter):
    service_name: ClassVar[str] = "plug.sys"
"""

SCENARIO = """
[scenario]
name = "hostile plugin"
bugcheck_at = "10 ms"
[registry]
CrashDumpEnabled = 3
DumpFilters = ["plug.sys"]
[memory]
ram = "1 MiB"
[engine]
watchdog = "1 s"
wall_clock_limit = "{limit}"
"""

CALLBACK = "\n    async def {name}(self, extension, *request):\n{body}\n        return 0\n"


def plugin(tmp: Path, body: str, callback: str = "dump_write", limit: str = "0.5 s", extra: str = "") -> tuple[Path, Path]:
    """A plugin whose *callback* runs *body* (indented 8 spaces), and a scenario listing it."""
    code = HEADER + CALLBACK.format(name=callback, body="\n".join("        " + line for line in body.splitlines())) + extra
    (tmp / "plug.py").write_text(code)
    (tmp / "s.toml").write_text(SCENARIO.format(limit=limit))
    return tmp / "s.toml", tmp / "plug.py"


def result_of(proc: subprocess.CompletedProcess[str]) -> dict[str, object]:
    """The result JSON of a run that must have produced one: exit 0, no traceback."""
    assert proc.returncode == 0, (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr, proc.stderr[-4000:]
    result: dict[str, object] = json.loads(proc.stdout)
    return result


def test_a_busy_loop_in_dump_write_is_stopped_by_the_wall_clock_guard(tmp_path: Path) -> None:
    """`while True: pass` in dump_write: the process does not hang; the run ends as wall_clock_limit, naming it."""
    scenario, plug = plugin(tmp_path, "while True:\n    pass")
    proc = stacksim_cli("run", str(scenario), "--plugin", str(plug), "--json", "-", timeout=20)
    result = result_of(proc)
    assert result["status"] == "wall_clock_limit"
    assert str(result["message"]).startswith("plug.sys ran dump_write on request #1 for more than 500 ms of real time")
    assert proc.elapsed < 15  # type: ignore[attr-defined]


def test_an_endless_checkpoint_loop_is_stopped_too(tmp_path: Path) -> None:
    """A callback that awaits forever at one instant (no simulated time passes) is stopped by the guard."""
    scenario, plug = plugin(tmp_path, "while True:\n    await trio.lowlevel.checkpoint()")
    result = result_of(invoke_cli("run", str(scenario), "--plugin", str(plug), "--json", "-"))
    assert result["status"] == "wall_clock_limit"


def test_a_busy_loop_that_swallows_the_stop_is_still_stopped(tmp_path: Path) -> None:
    """Catching BaseException around the loop and returning success does not escape the guard."""
    scenario, plug = plugin(tmp_path, "try:\n    while True:\n        pass\nexcept BaseException:\n    return 0")
    result = result_of(invoke_cli("run", str(scenario), "--plugin", str(plug), "--json", "-"))
    assert result["status"] == "wall_clock_limit"


def test_a_busy_loop_in_driver_entry_is_stopped(tmp_path: Path) -> None:
    """DriverEntry is plain plugin code too: a busy loop there ends the run as wall_clock_limit."""
    entry = "\n    def driver_entry(self, extension, init):\n        while True:\n            pass\n"
    scenario, plug = plugin(tmp_path, "pass", extra=entry)
    result = result_of(invoke_cli("run", str(scenario), "--plugin", str(plug), "--json", "-"))
    assert result["status"] == "wall_clock_limit"
    assert str(result["message"]).startswith("plug.sys ran driver_entry for more than 500 ms of real time")


def test_sys_exit_in_dump_write_is_a_failed_run_not_the_exit_code(tmp_path: Path) -> None:
    """sys.exit(3) in dump_write: exit 0 and filter_crashed naming filter, callback and exception, never exit 3."""
    scenario, plug = plugin(tmp_path, "sys.exit(3)")
    result = result_of(stacksim_cli("run", str(scenario), "--plugin", str(plug), "--json", "-"))
    assert (result["status"], result["message"]) == ("filter_crashed", "plug.sys: dump_write raised SystemExit: 3 on request #1")


@pytest.mark.parametrize(
    ("raise_", "shown"),
    [
        ("raise KeyboardInterrupt", "KeyboardInterrupt"),
        ("raise GeneratorExit", "GeneratorExit"),
        ("raise BaseException('bare')", "BaseException: bare"),
        ("raise SystemExit('bye')", "SystemExit: bye"),
    ],
)
@pytest.mark.parametrize("callback", ["dump_start", "dump_write", "dump_finish"])
def test_base_exceptions_in_callbacks_are_named_plugin_errors(tmp_path: Path, raise_: str, shown: str, callback: str) -> None:
    """KeyboardInterrupt, GeneratorExit, a bare BaseException or SystemExit raised by a callback is filter_crashed, named."""
    scenario, plug = plugin(tmp_path, raise_, callback=callback)
    result = result_of(invoke_cli("run", str(scenario), "--plugin", str(plug), "--json", "-"))
    where = " on request #1" if callback == "dump_write" else ""
    assert (result["status"], result["message"]) == ("filter_crashed", f"plug.sys: {callback} raised {shown}{where}")


def test_sys_exit_in_driver_entry_is_a_failed_load(tmp_path: Path) -> None:
    """sys.exit(4) in DriverEntry is a failed DriverEntry named in the result: the dump goes on without the filter."""
    entry = "\n    def driver_entry(self, extension, init):\n        sys.exit(4)\n"
    scenario, plug = plugin(tmp_path, "pass", extra=entry)
    result = result_of(stacksim_cli("run", str(scenario), "--plugin", str(plug), "--json", "-"))
    assert result["status"] == "ok"
    assert result["filters"] == [
        {
            "name": "plug.sys",
            "loaded": False,
            "critical": False,
            "supports_read": False,
            "load_status": "0xC0000001",
            "load_error": "driver_entry raised SystemExit: 4",
            "errors": {},
            "first_error": {},
        }
    ]


def test_sys_exit_in_write_cost_is_a_failed_run(tmp_path: Path) -> None:
    """A declaration is plugin code: sys.exit in write_cost is filter_crashed, naming write_cost."""
    cost = "\n    def write_cost(self, extension, length):\n        sys.exit(6)\n"
    scenario, plug = plugin(tmp_path, "pass", extra=cost)
    result = result_of(invoke_cli("run", str(scenario), "--plugin", str(plug), "--json", "-"))
    assert (result["status"], result["message"]) == (
        "filter_crashed",
        "plug.sys: write_cost raised SystemExit: 6 (for 8192-byte writes)",
    )


def test_spending_two_minutes_under_a_one_second_watchdog_is_hung(tmp_path: Path) -> None:
    """spend() of 2 min in dump_write with a 1 s watchdog is hung at 1 s, naming filter, callback and request."""
    scenario, plug = plugin(tmp_path, "spend(120 * 10**9)")
    result = result_of(invoke_cli("run", str(scenario), "--plugin", str(plug), "--json", "-"))
    assert result["status"] == "hung"
    assert result["message"] == (
        "plug.sys did not return from dump_write on request #1 within the watchdog period "
        "(1 s of simulated time; it charged 120 s); on Windows the machine would hang here"
    )


@pytest.mark.parametrize(
    ("signum", "sigint", "says"),
    [
        (signal.SIGINT, signal.SIG_DFL, "interrupted"),
        (signal.SIGTERM, signal.SIG_DFL, "interrupted (SIGTERM)"),
        (signal.SIGTERM, signal.SIG_IGN, "interrupted (SIGTERM)"),  # a script's background job ignores SIGINT
    ],
    ids=["ctrl-c", "sigterm", "sigterm-background"],
)
def test_a_real_signal_during_a_busy_callback_interrupts_the_run(
    tmp_path: Path, signum: signal.Signals, sigint: signal.Handlers, says: str
) -> None:
    """Ctrl-C or SIGTERM while a callback spins is the user's: exit 1, "interrupted", no traceback, no result."""
    marker = tmp_path / "spinning"
    body = f"open({str(marker)!r}, 'w').close()\nwhile True:\n    pass"
    scenario, plug = plugin(tmp_path, body, limit="60 s")

    def child_setup() -> None:
        signal.signal(signal.SIGINT, sigint)

    proc = subprocess.Popen(
        [sys.executable, "-m", "stacksim", "run", str(scenario), "--plugin", str(plug), "--json", "-"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=child_setup,  # only sets a signal disposition
    )
    try:
        deadline = time.monotonic() + 20
        while not marker.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.02)
        assert marker.exists(), proc.communicate(timeout=5)
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:  # pragma: no cover - only when the test fails
            proc.kill()
            proc.communicate()
    assert proc.returncode == 1, (out, err)
    assert says in err
    assert "Traceback" not in err
    assert out == ""


@pytest.mark.parametrize("raise_", ["sys.exit(3)", "raise KeyboardInterrupt", "raise BaseException('bare')"])
@pytest.mark.parametrize("table", [True, False])
def test_a_config_validator_that_raises_is_bad_input_naming_the_filter(tmp_path: Path, raise_: str, table: bool) -> None:
    """A plugin's Config validator raising SystemExit, KeyboardInterrupt or BaseException is exit 2 naming the table."""
    config = f"""

from pydantic import BaseModel, ConfigDict, model_validator


class PlugConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    level: int = 1

    @model_validator(mode="after")
    def _check(self):
        {raise_}


Plug.Config = PlugConfig
"""
    scenario, plug = plugin(tmp_path, "pass", extra=config)
    if table:
        scenario.write_text(scenario.read_text() + '[filters."plug.sys"]\nlevel = 2\n')
    proc = invoke_cli("run", str(scenario), "--plugin", str(plug), "--json", "-")
    assert_refused(proc, str(scenario), '[filters."plug.sys"]', "the filter's Config (plugin code) raised")


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ("with trio.CancelScope(shield=True):\n    await trio.sleep_forever()", "hung", "did not return from dump_write"),
        ("await trio.sleep(float('inf'))", "hung", "did not return from dump_write"),
        ("await trio.sleep(1e300)", "hung", "did not return from dump_write"),
        ("async with trio.open_nursery() as n:\n    n.start_soon(trio.sleep_forever)", "hung", "did not return"),
        ("await trio.sleep(float('nan'))", "filter_crashed", "dump_write raised ValueError"),
        ("raise trio.Cancelled._create()", "filter_crashed", "dump_write raised Cancelled"),
    ],
    ids=["shielded-forever", "sleep-inf", "sleep-1e300", "nursery-forever", "sleep-nan", "fake-cancelled"],
)
def test_hostile_awaits_end_as_a_result(tmp_path: Path, body: str, status: str, says: str) -> None:
    """A callback that shields itself, sleeps forever, absurdly long or NaN, or fakes trio's Cancelled ends with a status."""
    scenario, plug = plugin(tmp_path, body)
    result = result_of(invoke_cli("run", str(scenario), "--plugin", str(plug), "--json", "-"))
    assert result["status"] == status
    assert says in str(result["message"])


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ("request[0].mdl = None", "replaced the MDL of request #1 with None, not an Mdl"),
        ("del request[0].mdl", "replaced the MDL of request #1 with None, not an Mdl"),
        ("request[0].offset = 'x'", "moved request #1 from offset 1073741824 to 'x', which is not a byte offset"),
        ("request[0].offset = -512", "moved request #1 from offset 1073741824 to -512, which is not a byte offset"),
        ("request[0].offset = 2**70", "which is not a byte offset in the partition"),
        ("request[0].offset = 1.5", "to 1.5, which is not a byte offset"),
        ("request[0].mdl.length = 'big'", "changed the length of request #1 from 8192 to 'big' bytes"),
        ("request[0].count = 5", "changed the simulator's bookkeeping of request #1"),
        ("request[0].number = 99", "changed the simulator's bookkeeping of request #1"),
    ],
)
def test_a_request_mangled_by_a_filter_is_a_named_violation(tmp_path: Path, body: str, says: str) -> None:
    """Whatever a dump_write does to its request (non-MDL, non-number offsets, its number or count), it is a violation."""
    scenario, plug = plugin(tmp_path, body)
    proc = invoke_cli("run", str(scenario), "--plugin", str(plug), "--json", "-", "--trace", str(tmp_path / "t.jsonl"))
    result = result_of(proc)
    assert result["status"] == "filter_violation"
    assert str(result["message"]).startswith("plug.sys: dump_write ")
    assert says in str(result["message"])
    records = [json.loads(line) for line in (tmp_path / "t.jsonl").read_text().splitlines()]
    write = next(r for r in records if r["event"] == "dump_write")
    assert isinstance(write["offset"], int)  # the trace stays well-typed
    assert isinstance(write["length"], int)


def test_writing_the_requests_upstream_time_changes_nothing(tmp_path: Path) -> None:
    """upstream_ns is the simulator's: what a dump_write writes there is overwritten, and the result is the plain run's."""
    scenario, plug = plugin(tmp_path, "request[0].upstream_ns = -10**12")
    tampered = result_of(invoke_cli("run", str(scenario), "--plugin", str(plug), "--json", "-"))
    scenario, plug = plugin(tmp_path, "pass")
    plain = result_of(invoke_cli("run", str(scenario), "--plugin", str(plug), "--json", "-"))
    assert {k: v for k, v in tampered.items() if k != "replay"} == {k: v for k, v in plain.items() if k != "replay"}
