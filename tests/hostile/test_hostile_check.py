"""
Hostile trace files for ``stacksim check``: refused (exit 2) when they are not a file to read, judged (exit 1) when they are.

A path that is not a regular file (FIFO, device, directory, symlink loop) is refused at once with
a message naming it. A regular file of any content is read as a trace: garbage, deep nesting,
huge lines and keys written twice (however disguised) are ``format`` violations, an empty file a
``structure`` violation; never a traceback, never unbounded memory, and the output stays short.
"""

from __future__ import annotations

import random
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import assert_refused, invoke_cli, make_fifo, make_symlink_loop, run, stacksim_cli

pytestmark = pytest.mark.timeout(30)

REFUSED_IN_S = 1.0
"""Wall-time bound for refusing an input in process ("well under a second")."""

MAX_OUTPUT_LINES = 120
"""Twelve rules, each at most SHOWN_PER_RULE violations of a few lines: a hostile trace prints a page, not a flood."""


def _fifo(tmp: Path) -> Path:
    return make_fifo(tmp / "pipe.jsonl")


def _loop(tmp: Path) -> Path:
    return make_symlink_loop(tmp, ".jsonl")


def _to_zero(tmp: Path) -> Path:
    p = tmp / "zero.jsonl"
    p.symlink_to("/dev/zero")
    return p


REFUSED: dict[str, tuple[Callable[[Path], Path], str]] = {
    "dev-zero": (lambda tmp: Path("/dev/zero"), "character device"),
    "dev-urandom": (lambda tmp: Path("/dev/urandom"), "character device"),
    "symlink-to-dev-zero": (_to_zero, "character device"),
    "fifo": (_fifo, "FIFO"),
    "directory": (lambda tmp: tmp, "directory"),
    "symlink-loop": (_loop, "symlink loop"),
    "missing": (lambda tmp: tmp / "missing.jsonl", "no such trace file"),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_trace_path_refused(case: str, tmp_path: Path) -> None:
    """`check` refuses a trace path that is not a regular file: exit 2, the path named, at once."""
    make, expected = REFUSED[case]
    path = make(tmp_path)
    proc = invoke_cli("check", str(path), cwd=tmp_path)
    assert_refused(proc, str(path), expected)
    assert proc.elapsed < REFUSED_IN_S  # type: ignore[attr-defined]


def test_fifo_refused_in_a_subprocess(tmp_path: Path) -> None:
    """As a user runs it: a FIFO no one writes to is refused, not waited on."""
    path = _fifo(tmp_path)
    proc = stacksim_cli("check", str(path), timeout=20)
    assert_refused(proc, str(path), "FIFO")


def _genuine(tmp: Path) -> list[bytes]:
    import json

    _, trace = run()
    return [json.dumps(r, separators=(",", ":")).encode() for r in trace.records]


def _disguised_repeat(tmp: Path) -> bytes:
    """A genuine trace whose first record names a second layer under an escaped key, spaced, beside colons in a string."""
    lines = _genuine(tmp)
    lines[0] = b'{"la\\u0079er" : "evil.sys:::",' + lines[0][1:]
    return b"\n".join(lines) + b"\n"


def _binary(tmp: Path) -> bytes:
    return random.Random(1).randbytes(2**20)


JUDGED: dict[str, tuple[Callable[[Path], bytes], str]] = {
    "empty": (lambda tmp: b"", "[structure] the trace has no records"),
    "binary": (_binary, "[format] line 1 "),
    "nul-bytes": (lambda tmp: b"\x00" * 100_000 + b"\n", "[format] line 1 is not JSON"),
    "invalid-utf8": (lambda tmp: b"\xff\xfe\xfd\n" * 10, "[format] line 1 is not UTF-8 text (byte 1 is 0xFF)"),
    "utf16": (lambda tmp: '{"t_ns": 0}\n'.encode("utf-16"), "[format] line 1 is not UTF-8"),
    "deep-arrays": (
        lambda tmp: b"[" * 1_000_000 + b"]" * 1_000_000 + b"\n",
        "[format] line 1 nests arrays or objects too deeply",
    ),
    "deep-objects": (lambda tmp: b'{"a":' * 300_000 + b"1" + b"}" * 300_000 + b"\n", "[format] line 1 nests"),
    "huge-integers": (lambda tmp: b'{"t_ns":' + b"9" * 100_000 + b"}\n", "[format] line 1 "),
    "many-garbage-lines": (lambda tmp: b"garbage\n" * 200_000, "… and 199,980 more format violations"),
    "genuine-then-garbage": (lambda tmp: b"\n".join([*_genuine(tmp), b"\x1b[31mred"]) + b"\n", "[format] line 15 is not JSON"),
    "repeated-key-disguised": (_disguised_repeat, "[format] line 1 has the key 'layer' twice in one object"),
}


@pytest.mark.parametrize("case", list(JUDGED))
def test_hostile_trace_judged(case: str, tmp_path: Path) -> None:
    """A regular file of hostile content is judged: exit 1, a rule-named violation, short output, no traceback."""
    make, expected = JUDGED[case]
    path = tmp_path / "t.jsonl"
    path.write_bytes(make(tmp_path))
    proc = invoke_cli("check", str(path), cwd=tmp_path)
    assert proc.returncode == 1, (proc.stdout[-2000:], proc.stderr[-2000:])
    assert "Traceback" not in proc.stdout + proc.stderr
    assert expected in proc.stdout
    assert len(proc.stdout.splitlines()) <= MAX_OUTPUT_LINES
    assert "\x1b" not in proc.stdout
    assert max(len(line) for line in proc.stdout.splitlines()) < 600


def _rss_of_check(path: Path) -> tuple[int, str]:
    """
    Run the checker on *path* in a fresh process; what its peak RSS grew by while checking (KiB) and what it printed.

    The growth is measured against the same process just before the check (interpreter, stacksim
    and orjson imported, a small trace checked once), so it does not depend on how large the
    installed libraries are.
    """
    code = (
        "import resource, sys\n"
        "from stacksim.check import check_trace_file\n"
        "check_trace_file(sys.argv[2])\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "n, v = check_trace_file(sys.argv[1])\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)\n"
        "print(v[0].render() if v else 'clean')\n"
    )
    small = path.with_name("small.jsonl")
    small.write_text('{"not": "a record"}\n')
    proc = subprocess.run(
        [sys.executable, "-c", code, str(path), str(small)], capture_output=True, text=True, timeout=25, check=True
    )
    rss, first = proc.stdout.split("\n", 1)
    return int(rss), first


def test_one_huge_line_is_skipped_in_bounded_memory(tmp_path: Path) -> None:
    """A single 100 MB line is a `format` violation, read in chunks: the checker's memory stays far below the file."""
    path = tmp_path / "huge.jsonl"
    with path.open("wb") as f:
        block = b"a" * 2**20
        for _ in range(100):
            f.write(block)
        f.write(b"\n")
    rss_kib, first = _rss_of_check(path)
    assert first.startswith("[format] line 1 is 104,857,600 bytes long; a record line is at most 16,777,216 bytes")
    assert rss_kib < 40 * 1024  # a chunk or two and the 16 MiB line cap, not the 100 MB line


def test_one_huge_line_via_the_command(tmp_path: Path) -> None:
    """The same through `stacksim check` as a user runs it: exit 1, the rule and the line named, no traceback."""
    path = tmp_path / "huge.jsonl"
    with path.open("wb") as f:
        f.truncate(100 * 2**20)  # 100 MB of NUL bytes, no newline (sparse: costs no disk)
    proc = stacksim_cli("check", str(path), timeout=25)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "Traceback" not in proc.stdout + proc.stderr
    assert "[format] line 1 is 104,857,600 bytes long" in proc.stdout
