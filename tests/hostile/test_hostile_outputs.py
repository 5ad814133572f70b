"""
Hostile output paths: an output never replaces what is not a regular file, an input, or another output.

Each case gives `run --json`, `run --trace`, `run --perfetto`, `perfetto --out`, `sweep --out` or
`replay --json` a target that must be refused before anything runs, and asserts exit 2, a message naming the flag and the path, no
traceback, the target untouched and no temporary file left in the folder.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import assert_refused, invoke_cli

pytestmark = pytest.mark.timeout(30)

SCENARIO = '[scenario]\nname = "out"\n[memory]\nram = "1 MiB"\n'
PLUGIN = "from stacksim import DumpFilter\nclass P(DumpFilter):\n    service_name = 'p.sys'\n"


@pytest.fixture
def work(tmp_path: Path) -> Iterator[Path]:
    """A folder with a scenario, a plugin, a finished run's result file and a trace."""
    (tmp_path / "s.toml").write_text(SCENARIO)
    (tmp_path / "p.py").write_text(PLUGIN)
    assert invoke_cli("run", "s.toml", "--json", "r.json", cwd=tmp_path).returncode == 0
    assert invoke_cli("run", "s.toml", "--trace", "trace.jsonl", cwd=tmp_path).returncode == 0
    yield tmp_path
    for p in tmp_path.iterdir():  # undo chattr +i, so pytest can clean up
        with contextlib.suppress(OSError):
            subprocess.run(["chattr", "-i", str(p)], check=False, capture_output=True)


def _chattr_immutable(path: Path) -> bool:
    """Make *path* immutable; False where chattr does not work (not root, no support)."""
    try:
        done = subprocess.run(["chattr", "+i", str(path)], check=False, capture_output=True)
    except FileNotFoundError:
        return False
    return done.returncode == 0


def _fifo(work: Path) -> str:
    os.mkfifo(work / "fifo.json")
    return "fifo.json"


def _socket(work: Path) -> str:
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(work / "sock.json"))
    sock.close()  # the socket file stays
    return "sock.json"


def _folder(work: Path) -> str:
    (work / "out.json").mkdir()
    return "out.json"


def _read_only_folder(work: Path) -> str:
    folder = work / "ro"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
    elif not _chattr_immutable(folder):
        pytest.skip("running as root and chattr +i does not work here: no folder is read-only to root")
    return "ro/r.json"


def _immutable_file(work: Path) -> str:
    target = work / "old.json"
    target.write_text("{}\n")
    if os.geteuid() != 0:
        target.chmod(0o444)
    elif not _chattr_immutable(target):
        pytest.skip("running as root and chattr +i does not work here")
    return "old.json"


def _symlink_to(name: str) -> Callable[[Path], str]:
    def make(work: Path) -> str:
        (work / "link.json").symlink_to(work / name)
        return "link.json"

    return make


def _hard_link_to(name: str) -> Callable[[Path], str]:
    def make(work: Path) -> str:
        os.link(work / name, work / "hard.json")
        return "hard.json"

    return make


def _targets(main_input: str) -> dict[str, tuple[Callable[[Path], str], str]]:
    """The hostile targets for a command whose main input (scenario or result file) is *main_input*."""
    return {
        "dev-null": (lambda w: "/dev/null", "character device"),
        "dev-full": (lambda w: "/dev/full", "character device"),
        "fifo": (_fifo, "FIFO"),
        "socket": (_socket, "socket"),
        "folder": (_folder, "is a folder"),
        "the-input": (lambda w: main_input, "is an input of this run"),
        "a-symlink-to-the-input": (_symlink_to(main_input), "is an input of this run"),
        "a-hard-link-to-the-input": (_hard_link_to(main_input), "is an input of this run"),
        "the-plugin": (lambda w: "p.py", "is an input of this run"),
        "proc": (lambda w: "/proc/x", "cannot create a file in the folder /proc"),
        "read-only-folder": (_read_only_folder, "cannot create a file in the folder ro"),
        "read-only-file": (_immutable_file, "is read-only"),
        "missing-parent": (lambda w: "no/such/r.json", "the folder no/such does not exist (no does not exist)"),
        # a trailing slash says "a folder"; the path type would drop it and write a file of that name
        "missing-folder-with-a-slash": (lambda w: "nodir/", "names a folder (it ends in a slash)"),
        "existing-folder-with-a-slash": (lambda w: _folder(w) + "/", "names a folder (it ends in a slash)"),
    }


def _snapshot(work: Path) -> dict[str, tuple[int, bytes | None]]:
    """Every entry of *work*: its inode and, for a regular file, its bytes."""
    out = {}
    for p in sorted(work.rglob("*")):
        st = p.lstat()
        out[str(p.relative_to(work))] = (st.st_ino, p.read_bytes() if p.is_file() and not p.is_symlink() else None)
    return out


COMMANDS: dict[str, tuple[str, str, Callable[[str], list[str]]]] = {
    "run --json": ("--json", "s.toml", lambda t: ["run", "s.toml", "--plugin", "p.py", "--json", t]),
    "run --trace": ("--trace", "s.toml", lambda t: ["run", "s.toml", "--plugin", "p.py", "--trace", t]),
    "run --perfetto": ("--perfetto", "s.toml", lambda t: ["run", "s.toml", "--plugin", "p.py", "--perfetto", t]),
    "run --log-json": ("--log-json", "s.toml", lambda t: ["run", "s.toml", "--plugin", "p.py", "--log-json", t]),
    "sweep --out": (
        "--out",
        "s.toml",
        lambda t: ["sweep", "s.toml", "--plugin", "p.py", "--set", "disk.latency=1us", "--out", t],
    ),
    "replay --json": ("--json", "r.json", lambda t: ["replay", "r.json", "--plugin", "p.py", "--json", t]),
    "replay --trace": ("--trace", "r.json", lambda t: ["replay", "r.json", "--plugin", "p.py", "--trace", t]),
}


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("target", list(_targets("")))
def test_output_target_refused(work: Path, target: str, command: str) -> None:
    """Each output flag refuses a target that is not a writable regular file of its own: exit 2, nothing touched."""
    flag, main_input, args = COMMANDS[command]
    make, expected = _targets(main_input)[target]
    path = make(work)
    before = _snapshot(work)
    proc = invoke_cli(*args(path), cwd=work)
    assert_refused(proc, flag, path, expected)
    assert _snapshot(work) == before


@pytest.mark.parametrize("target", [t for t in _targets("") if t != "the-plugin"])
def test_perfetto_out_target_refused(work: Path, target: str) -> None:
    """`perfetto --out` refuses what the other outputs refuse (the trace is its one input): exit 2, nothing touched."""
    make, expected = _targets("trace.jsonl")[target]
    path = make(work)
    before = _snapshot(work)
    proc = invoke_cli("perfetto", "trace.jsonl", "--out", path, cwd=work)
    assert_refused(proc, "--out", path, expected)
    assert _snapshot(work) == before


def test_trace_and_perfetto_may_not_be_one_file(work: Path) -> None:
    """--trace and --perfetto naming the same file are refused before the run."""
    proc = invoke_cli("run", "s.toml", "--trace", "x.json", "--perfetto", "./x.json", cwd=work)
    assert_refused(proc, "--perfetto", "x.json", "is also the --trace output")
    assert not (work / "x.json").exists()


def test_trace_and_log_json_may_not_be_one_file(work: Path) -> None:
    """--trace and --log-json naming the same file are refused before the run."""
    proc = invoke_cli("run", "s.toml", "--trace", "x.jsonl", "--log-json", "./x.jsonl", cwd=work)
    assert_refused(proc, "--log-json", "x.jsonl", "is also the --trace output")
    assert not (work / "x.jsonl").exists()


def test_json_and_trace_may_not_be_one_file(work: Path) -> None:
    """--json and --trace naming the same file are refused before the run."""
    proc = invoke_cli("run", "s.toml", "--json", "x.json", "--trace", "./x.json", cwd=work)
    assert_refused(proc, "--trace", "x.json", "is also the --json output")
    assert not (work / "x.json").exists()


def test_trace_to_stdout_is_refused(work: Path) -> None:
    """--trace - is refused: stdout carries the summary or the result JSON."""
    assert_refused(invoke_cli("run", "s.toml", "--trace", "-", cwd=work), "--trace -", "not stdout")


def test_replay_output_may_not_be_its_result_file(work: Path) -> None:
    """replay --json naming the result file it replays is refused (it would destroy the record)."""
    before = (work / "r.json").read_bytes()
    assert_refused(invoke_cli("replay", "r.json", "--json", "r.json", cwd=work), "--json", "r.json", "is an input")
    assert (work / "r.json").read_bytes() == before


def test_a_failing_rename_is_exit_2_and_leaves_no_temporary_file(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """When the final rename fails (an immutable target, a read-only mount), the run exits 2 and removes its temporary file."""
    import stacksim._io

    def refuse(src: object, dst: object) -> None:
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(stacksim._io.os, "replace", refuse)
    before = _snapshot(work)
    proc = invoke_cli("run", "s.toml", "--json", "r.json", cwd=work)
    assert_refused(proc, "--json", "r.json", "cannot be replaced: permission denied", "no output file was written")
    assert _snapshot(work) == before


def test_a_folder_that_refuses_temporary_files_is_exit_2(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """When no temporary file can be created beside the target, the run exits 2 before it starts."""
    import stacksim._io

    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(stacksim._io.tempfile, "mkstemp", refuse)
    proc = invoke_cli("run", "s.toml", "--trace", "t.jsonl", cwd=work)
    assert_refused(proc, "--trace", "t.jsonl", "cannot create a file in the folder", "permission denied")
    assert not (work / "t.jsonl").exists()


def test_a_full_disk_while_writing_is_exit_2(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ENOSPC while the result is written is exit 2 naming the flag; the old file stays and no temporary file is left."""
    import io

    import stacksim._io

    real_fdopen = os.fdopen

    class Full(io.StringIO):
        def write(self, text: str) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

    def fdopen(fd: int, *args: object, **kwargs: object) -> object:
        if args and args[0] == "w":
            os.close(fd)
            return Full()
        return real_fdopen(fd, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(stacksim._io.os, "fdopen", fdopen)
    before = _snapshot(work)
    proc = invoke_cli("run", "s.toml", "--json", "r.json", cwd=work)
    assert_refused(proc, "--json", "r.json", "writing failed", "no output file was written")
    assert _snapshot(work) == before


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("target", ["", "."])
def test_an_empty_or_dot_output_says_so(work: Path, target: str, command: str) -> None:
    """An empty argument becomes '.', the current folder: the message says it is empty or '.', not 'is a folder' about '.'."""
    flag, _, args = COMMANDS[command]
    before = _snapshot(work)
    proc = invoke_cli(*args(target), cwd=work)
    assert_refused(proc, flag, "is empty or '.', the current folder")
    assert _snapshot(work) == before


@pytest.mark.parametrize("target", [t for t in _targets("") if t != "the-plugin"])
def test_diff_json_target_refused(work: Path, target: str) -> None:
    """`stacksim diff r.json r.json --json T` refuses every hostile target as the other outputs do (it takes no plugin)."""
    make, expected = _targets("r.json")[target]
    path = make(work)
    before = _snapshot(work)
    proc = invoke_cli("diff", "r.json", "r.json", "--json", path, cwd=work)
    assert_refused(proc, "--json", path, expected)
    assert _snapshot(work) == before
