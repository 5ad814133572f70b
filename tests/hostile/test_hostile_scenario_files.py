"""
Hostile scenario files: what is not a regular, reasonably sized UTF-8 TOML file is refused at once.

Each case runs the command line (in this process, one case in a subprocess as a user would) and
asserts exit 2, a one-paragraph message naming the file, no traceback, no file created, and a
wall-time bound.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import assert_refused, invoke_cli, make_fifo, make_symlink_loop, stacksim_cli

pytestmark = pytest.mark.timeout(30)

REFUSED_IN_S = 1.0
"""Wall-time bound for refusing an input in process ("well under a second")."""


def _fifo(tmp: Path) -> Path:
    return make_fifo(tmp / "pipe.toml")


def _loop(tmp: Path) -> Path:
    return make_symlink_loop(tmp, ".toml")


def _big(tmp: Path) -> Path:
    p = tmp / "big.toml"
    with p.open("wb") as f:
        f.truncate(16 * 2**20 + 1)  # sparse: costs no disk
    return p


def _utf16(tmp: Path) -> Path:
    p = tmp / "u16.toml"
    p.write_bytes('[scenario]\nname = "x"\n'.encode("utf-16"))
    return p


def _binary(tmp: Path) -> Path:
    p = tmp / "bin.toml"
    p.write_bytes(b"\x00\xff\xfe\x80" * 100)
    return p


CASES: dict[str, tuple[Callable[[Path], Path], str]] = {
    "dev-zero": (lambda tmp: Path("/dev/zero"), "character device"),
    "dev-urandom": (lambda tmp: Path("/dev/urandom"), "character device"),
    "fifo": (_fifo, "FIFO"),
    "directory": (lambda tmp: tmp, "directory"),
    "symlink-loop": (_loop, "symlink loop"),
    "over-16-MiB": (_big, "16,777,216 bytes"),
    "utf-16": (_utf16, "UTF-16"),
    "binary": (_binary, "not UTF-8"),
    "missing": (lambda tmp: tmp / "missing.toml", "no such scenario file"),
}


@pytest.mark.parametrize("command", ["run", "validate"])
@pytest.mark.parametrize("case", list(CASES))
def test_scenario_file_refused(case: str, command: str, tmp_path: Path) -> None:
    """`run` and `validate` refuse a scenario path that is not a usable file: exit 2, named, fast."""
    make, expected = CASES[case]
    path = make(tmp_path)
    before = sorted(os.listdir(tmp_path))
    proc = invoke_cli(command, str(path), cwd=tmp_path)
    assert_refused(proc, str(path), expected)
    assert proc.elapsed < REFUSED_IN_S  # type: ignore[attr-defined]
    assert sorted(os.listdir(tmp_path)) == before


def test_dev_zero_refused_by_the_real_command(tmp_path: Path) -> None:
    """The installed command refuses /dev/zero at once (it used to read it until memory ran out)."""
    proc = stacksim_cli("run", "/dev/zero", cwd=tmp_path)
    assert_refused(proc, "/dev/zero", "character device")
    assert os.listdir(tmp_path) == []


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    """A scenario saved with a UTF-8 byte-order mark (as Windows Notepad does) is read normally."""
    p = tmp_path / "bom.toml"
    p.write_bytes(b"\xef\xbb\xbf" + b'[scenario]\nname = "bom"\n[memory]\nram = "1 MiB"\n')
    proc = invoke_cli("validate", str(p))
    assert proc.returncode == 0, proc.stderr
    assert "valid" in proc.stdout
