"""
Signals: Ctrl-C and SIGTERM end a run or a sweep cleanly, with no temporary file and no process left.

These tests start the real command in a subprocess, wait until it is in the middle of its work
(a temporary output file exists, or the sweep's workers are up), signal it, and check what is
left behind: the exit status, the message, the folder's contents, and every process the command
had started.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest
from conftest import _CHECKOUT

pytestmark = pytest.mark.timeout(120)

BIG = '[scenario]\nname = "big"\n[registry]\nDumpFilters = []\nCrashDumpEnabled = 1\n[memory]\nram = "64 GiB"\n'
"""A request-mode dump of a million writes: with --trace, minutes of work, long enough to be interrupted."""


def _start(
    args: list[str], cwd: Path, *, sigint: signal.Handlers = signal.SIG_DFL, session: bool = False
) -> subprocess.Popen[str]:
    """``python -m stacksim ARGS`` in *cwd*, with SIGINT's disposition set to *sigint* (SIG_IGN: a script's background job)."""

    def child_setup() -> None:
        signal.signal(signal.SIGINT, sigint)

    return subprocess.Popen(
        [sys.executable, "-m", "stacksim", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": _CHECKOUT},
        preexec_fn=child_setup,  # a test harness: no threads that fork could break
        start_new_session=session,
    )


def _wait_for(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _writing_trace(tmp_path: Path) -> bool:
    return any(p.name.startswith(".t.jsonl.") and p.stat().st_size > 0 for p in tmp_path.iterdir())


@pytest.mark.parametrize(
    ("sig", "sigint", "message"),
    [
        (signal.SIGINT, signal.SIG_DFL, "error: interrupted; no output file was written"),
        (signal.SIGTERM, signal.SIG_DFL, "error: interrupted (SIGTERM); no output file was written"),
        (signal.SIGTERM, signal.SIG_IGN, "error: interrupted (SIGTERM); no output file was written"),
    ],
    ids=["SIGINT", "SIGTERM", "SIGTERM-with-SIGINT-ignored"],
)
def test_a_signalled_run_leaves_no_file(tmp_path: Path, sig: signal.Signals, sigint: signal.Handlers, message: str) -> None:
    """SIGINT or SIGTERM mid-run: exit 1, one line saying so, no traceback, no result, trace, log or temporary file."""
    (tmp_path / "big.toml").write_text(BIG)
    args = ["run", "big.toml", "--no-batch", "--json", "r.json", "--trace", "t.jsonl", "--log-json", "l.jsonl"]
    proc = _start([*args, "--log-json-level", "debug"], tmp_path, sigint=sigint)
    _wait_for(lambda: _writing_trace(tmp_path), "the run to write its trace")
    time.sleep(0.3)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err
    assert err.strip() == message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.toml"]


SWEEP_POINT = '[scenario]\nname = "sw"\n[registry]\nCrashDumpEnabled = 1\n[memory]\nram = "16 GiB"\n'
"""Each point a request-mode dump of 16 GiB: seconds per point."""


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.mark.parametrize("how", ["SIGINT-to-the-group", "SIGTERM", "SIGKILL"])
def test_a_killed_sweep_leaves_no_process(tmp_path: Path, how: str) -> None:
    """A sweep signalled mid-run leaves no worker, fork server or other child process behind; workers print nothing."""
    (tmp_path / "s.toml").write_text(SWEEP_POINT)
    args = ["sweep", "s.toml", "--set", "disk.latency=10us,20us,30us,40us", "--out", "r.csv", "--workers", "2", "--no-batch"]
    proc = _start(args, tmp_path, session=True)
    main = psutil.Process(proc.pid)

    def workers_running() -> bool:
        busy = 0
        for c in main.children(recursive=True):
            try:
                busy += c.cpu_times().user > 0.5
            except psutil.NoSuchProcess:  # a short-lived child (multiprocessing's helpers) ended between the two calls
                continue
        return busy >= 2

    _wait_for(workers_running, "two busy workers")
    children = [c.pid for c in main.children(recursive=True)]
    assert len(children) >= 3  # two workers, the fork server (and multiprocessing's resource tracker)
    if how == "SIGINT-to-the-group":
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    else:
        proc.send_signal(signal.SIGTERM if how == "SIGTERM" else signal.SIGKILL)
    _, err = proc.communicate(timeout=60)
    _wait_for(lambda: all(_gone(pid) for pid in children), "every child of the sweep to end", timeout=15)
    if how == "SIGKILL":
        assert proc.returncode == -signal.SIGKILL
        return
    assert proc.returncode == 1, err
    assert "Traceback" not in err
    assert "interrupted" in err
    assert "run the same command again to resume" in err
