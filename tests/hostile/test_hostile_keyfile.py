"""
Hostile key files for ``--key-file`` (stacksim.xts.read_key_file).

Special files (a device, a FIFO no one writes to, a folder, a symlink loop, a /proc file that
reports 0 bytes), a huge sparse file, text in other encodings and near-miss hex are each refused
at once with one short line naming the file and what a key file may hold. The message never
shows the file's contents (it is a key), and a file name with control or bidi characters is
shown escaped.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import make_fifo, make_symlink_loop

from stacksim._io import InputError
from stacksim.xts import read_key_file

pytestmark = pytest.mark.timeout(10)

KEY = bytes(range(64))
FORMS = "a key file holds exactly 64 raw bytes, or 128 hex digits"


def written(content: bytes) -> Callable[[Path], Path]:
    """A maker of a key file holding *content*."""

    def make(folder: Path) -> Path:
        path = folder / "k.key"
        path.write_bytes(content)
        return path

    return make


def sparse(size: int) -> Callable[[Path], Path]:
    """A maker of a sparse file of *size* bytes (nothing is written, so it costs no disk)."""

    def make(folder: Path) -> Path:
        path = folder / "huge.key"
        with path.open("wb") as f:
            f.truncate(size)
        return path

    return make


SPECIAL: dict[str, tuple[Callable[[Path], Path], str]] = {
    "dev-zero": (lambda _: Path("/dev/zero"), "is a character device, not a regular key file"),
    "fifo": (lambda tmp: make_fifo(tmp / "k.key"), "is a FIFO (named pipe), not a regular key file"),
    "folder": (lambda tmp: tmp, "is a directory, not a regular key file"),
    "symlink-loop": (lambda tmp: make_symlink_loop(tmp, ".key"), "symlink loop"),
    "proc-file": (lambda _: Path("/proc/self/status"), "reports 0 bytes but holds more"),
    "1-GiB-sparse": (sparse(2**30), "the key file is 1,073,741,824 bytes; stacksim reads key files of at most 4,096 bytes"),
}


@pytest.mark.parametrize("case", list(SPECIAL))
def test_special_and_huge_files_are_refused_at_once(tmp_path: Path, case: str) -> None:
    """A device, FIFO, folder, symlink loop, /proc file or 1 GiB file is refused, named, without being read."""
    make, says = SPECIAL[case]
    path = make(tmp_path)
    with pytest.raises(InputError) as caught:
        read_key_file(path)
    assert str(caught.value).startswith(str(path))
    assert says in str(caught.value)


CONTENT: dict[str, tuple[bytes, str]] = {
    "utf-16-hex": (KEY.hex().encode("utf-16"), "is 258 bytes and not hex text"),
    "utf-8-bom-hex": (b"\xef\xbb\xbf" + KEY.hex().encode(), "is 131 bytes and not hex text"),
    "fullwidth-digits": (("０" * 128).encode(), "is 384 bytes and not hex text"),
    "hex-then-nul": (KEY.hex().encode() + b"\x00", "is 129 bytes and not hex text"),
    "raw-key-that-is-all-hex-digits": (b"0123456789abcdef" * 4, "64 hex digits (a 256-bit key)"),
    "4-KiB-of-hex": (b"ab" * 2048, "4,096 hex digits (a 16,384-bit key)"),
    "hex-with-a-line-break-inside": (KEY.hex()[:64].encode() + b"\n" + KEY.hex()[64:].encode(), "whitespace between them"),
    "all-whitespace": (b" \n\t" * 100, "the key file holds only whitespace"),
}


@pytest.mark.parametrize("case", list(CONTENT))
def test_near_misses_are_refused_with_the_allowed_forms(tmp_path: Path, case: str) -> None:
    """Other encodings, stray bytes and wrong-sized hex are refused with what was found and what is allowed."""
    content, says = CONTENT[case]
    path = written(content)(tmp_path)
    with pytest.raises(InputError) as caught:
        read_key_file(path)
    message = str(caught.value)
    assert says in message
    assert FORMS in message
    assert len(message.splitlines()) == 1
    assert len(message) < 300


def test_the_message_never_shows_the_key(tmp_path: Path) -> None:
    """A refused key file's digits do not appear in the message: a key must not reach a terminal or a log."""
    digits = KEY.hex()[:126]
    with pytest.raises(InputError) as caught:
        read_key_file(written(digits.encode())(tmp_path))
    assert digits[:16] not in str(caught.value)


def test_a_file_name_with_control_and_bidi_characters_is_shown_escaped(tmp_path: Path) -> None:
    """The file is named with its escape and bidi-override characters escaped, so the message cannot drive the terminal."""
    path = tmp_path / "k\x1b[2J\u202e.key"
    path.write_bytes(b"short")
    with pytest.raises(InputError) as caught:
        read_key_file(path)
    message = str(caught.value)
    assert "\x1b" not in message
    assert "\u202e" not in message
    assert "k\\x1b[2J\\u202e.key" in message


def test_a_symlink_to_a_key_file_is_followed(tmp_path: Path) -> None:
    """A symlink to a good key file reads the key (only special files are refused, not links to regular ones)."""
    target = written(KEY.hex().encode())(tmp_path)
    link = tmp_path / "link.key"
    link.symlink_to(target)
    assert read_key_file(link) == KEY
    assert os.path.islink(link)
