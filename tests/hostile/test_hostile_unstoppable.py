"""
Plugin code that catches every stop: the wall-clock guard ends the process, cleanly, instead of hanging for ever.

A callback that wraps its busy loop in ``except BaseException: pass`` survives the guard's
asynchronous exception and a Ctrl-C's KeyboardInterrupt alike. The guard then ends the process
from its own thread: temporary output files removed, one line on stderr, exit 2 (the plugin's
fault) or 1 (an interruption).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import _CHECKOUT, assert_refused, stacksim_cli

pytestmark = pytest.mark.timeout(60)

SWALLOWER = """
import pathlib
from typing import ClassVar
from stacksim import DumpFilter, NtStatus

class Swallow(DumpFilter):
    service_name: ClassVar[str] = "swallow.sys"

    async def dump_write(self, extension, request):
        pathlib.Path(__file__).with_suffix(".started").touch()
        while True:
            try:
                while True:
                    pass
            except BaseException:
                pass
        return NtStatus.SUCCESS
"""


def scenario(tmp_path: Path, limit: str) -> tuple[Path, Path]:
    """A scenario with the swallowing filter and the given wall-clock limit, and the plugin file."""
    plugin = tmp_path / "swallow.py"
    plugin.write_text(SWALLOWER)
    path = tmp_path / "s.toml"
    path.write_text(
        '[scenario]\nname = "swallow"\nbugcheck_at = "1 ms"\n'
        '[registry]\nDumpFilters = ["swallow.sys"]\nCrashDumpEnabled = 3\n'
        f'[memory]\nram = "64 MiB"\n[engine]\nwall_clock_limit = "{limit}"\n'
    )
    return path, plugin


def test_a_callback_that_catches_every_stop_ends_the_process_with_exit_2(tmp_path: Path) -> None:
    """After two stops it survived, the guard ends the run: exit 2, a message, no output or temporary file."""
    path, plugin = scenario(tmp_path, "300 ms")
    out = tmp_path / "r.json"
    proc = stacksim_cli("run", str(path), "--plugin", str(plugin), "--json", str(out), "--trace", str(tmp_path / "t.jsonl"))
    assert_refused(proc, "wall-clock limit", "caught every stop")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.toml", "swallow.py", "swallow.started"]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_callback_that_swallows_the_interruption_still_ends_the_process(tmp_path: Path, sig: signal.Signals) -> None:
    """A signal the callback swallows ends the process about a second later: exit 1, interrupted, no files left."""
    path, plugin = scenario(tmp_path, "60 s")
    proc = subprocess.Popen(
        [sys.executable, "-m", "stacksim", "run", str(path), "--plugin", str(plugin), "--json", str(tmp_path / "r.json")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "100", "PYTHONPATH": _CHECKOUT},
    )
    started = tmp_path / "swallow.started"
    deadline = time.monotonic() + 30
    while not started.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert started.exists(), "the callback never started"
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=15)
    assert proc.returncode == 1, err
    assert "interrupted" in err
    assert "plugin code went on running" in err
    assert "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.toml", "swallow.py", "swallow.started"]
