r"""
Every file stacksim reads or writes goes through here: one reader, one writer, one escaper.

**Reading** (:func:`read_input`, :func:`open_input`): the path must name a *regular* file (a
symlink to one is followed; a device node, FIFO, socket, directory or symlink loop is refused at
once, before a byte is read), and the file must not exceed the cap for its kind
(:data:`INPUT_LIMITS`). A FIFO is opened non-blocking, so even a FIFO no one writes to is refused
in microseconds instead of hanging. :func:`decode_text` accepts a UTF-8 byte-order mark and names
any other encoding problem.

**Parsing** (:func:`parse_toml`, :func:`parse_json`, :func:`check_depth`): what the parsers
cannot take is an :class:`InputError`, not a traceback: an integer beyond Python's 4,300-digit
conversion limit (named with its line), nesting deep enough to exhaust the recursion limit, NaN
and infinities in JSON, and any nesting deeper than :data:`MAX_DEPTH` levels.

**Writing** (:func:`check_outputs`, :func:`atomic_writer`, :func:`atomic_binary_writer`,
:func:`open_append`): outputs are checked before anything runs: each must be in an existing
folder where a file can be created, must not exist as anything but a writable regular file (a
device node, FIFO, socket, directory, read-only or immutable file is refused: stdout is written
with ``-``), must not be one of the run's inputs, and no two outputs may name the same file. An output replaces its target only
when the whole file was written (a temporary file beside it, renamed at the end; removed on any
exception, Ctrl-C and SIGTERM included). A resumable output (a sweep's results) is appended in
place, opened so that a FIFO or device is refused without blocking.

**Showing** (:func:`terminal_safe`, :func:`shorten`, :func:`json_safe`): text that came from input
is escaped before it reaches a terminal (control and bidirectional-override characters become
``\xNN`` / ``\uNNNN``), and long values are cut to a readable length with a note of how long
they were. JSON that stacksim writes (results, traces, sweep rows) has the same characters as
``\uXXXX`` escapes, since people ``cat`` those files too.

Errors are :class:`InputError` / :class:`OutputError`: one short paragraph naming the file and
what is allowed. The command line turns them into exit status 2.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import re
import stat
import sys
import tempfile
import tomllib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any, BinaryIO, Final

__all__ = [
    "INPUT_LIMITS",
    "MAX_DEPTH",
    "CappedReader",
    "InputError",
    "OutputError",
    "atomic_binary_writer",
    "atomic_writer",
    "check_depth",
    "check_outputs",
    "decode_text",
    "json_safe",
    "names_a_folder",
    "open_append",
    "open_input",
    "output_file",
    "parse_json",
    "parse_toml",
    "read_input",
    "remove_temporaries",
    "shorten",
    "terminal_safe",
]

MiB: Final = 2**20

INPUT_LIMITS: Final[dict[str, int]] = {
    "scenario": 16 * MiB,
    "result": 64 * MiB,
    "trace": 64 * 1024 * MiB,
    "sweep": 1024 * MiB,
    "plugin": 4 * MiB,
    "key": 4096,
    "image": 2**60,
}
"""The largest file accepted for each kind of input, in bytes (``docs/reference/cli.md``).

A scenario is a few kilobytes; 16 MiB leaves room for 100k-run layouts and fault lists. A result
JSON is small whatever the dump size. A trace is streamed (never held in memory), so its cap only
stops a runaway input. A sweep results file is read back in full to resume and to sort it. A key
file (``--key-file``) is 64 raw bytes or 128 hex digits: 4 KiB leaves room for whitespace. A disk
image (``extract``, ``inspect``) is as large as the simulated disk and sparse; it is never read
whole, only where the target file's runs lie, and its cap is the largest size a scenario takes
(the commands also require it to be exactly the recorded disk's size)."""


class InputError(Exception):
    """An input file that cannot be used; the message names the file and the problem."""


class OutputError(Exception):
    """An output path that cannot or must not be written; the message names the flag and path."""


_KINDS: Final = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _kind(mode: int) -> str:
    """What a non-regular file is, in words."""
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def _os_reason(exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return "a symlink loop (too many levels of symbolic links)"
    if exc.errno == errno.ENOENT:
        return "no such file"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if exc.errno == errno.ENOTDIR:
        return "a part of the path is not a directory"
    if exc.errno == errno.ENAMETOOLONG:
        return "the path is too long"
    return exc.strerror or type(exc).__name__


def _describe(path: str | Path) -> str:
    return terminal_safe(shorten(str(path), 200))


@contextlib.contextmanager
def open_input(path: str | Path, what: str, limit: int | None = None) -> Iterator[CappedReader]:
    """
    Open *path* for reading as a *what* file (a key of :data:`INPUT_LIMITS`), checked first.

    Yields a binary stream. Reading more than the cap from it is impossible by construction:
    the file's size is checked on the open descriptor, and the stream delivers exactly that
    size (a byte more is an :class:`InputError`: see :class:`CappedReader`).

    Raises:
        InputError: missing, unreadable, not a regular file, over the cap, a read error, or
            holding more than its reported size (from the stream's reads).
    """
    cap = INPUT_LIMITS[what] if limit is None else limit
    name = _describe(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise InputError(f"{name}: no such {what} file") from None
    except OSError as exc:
        raise InputError(f"{name}: cannot read the {what} file: {_os_reason(exc)}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise InputError(f"{name}: is {_kind(st.st_mode)}, not a regular {what} file")
        if st.st_size > cap:
            raise InputError(
                f"{name}: the {what} file is {st.st_size:,} bytes; stacksim reads {what} files of at most {cap:,} bytes"
            )
        stream = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with stream:
        yield CappedReader(stream, st.st_size, name, what)


class CappedReader:
    """
    A read-only binary stream of exactly the *size* bytes the file reported when it was opened.

    A byte beyond *size* is refused: the file is one whose size says nothing (a ``/proc`` or
    ``/sys`` file reports 0 bytes and may hold gigabytes: ``/proc/self/pagemap``) or one still
    being written, and either way not an input stacksim can trust. An error from the operating
    system while reading (EIO) is an :class:`InputError` too.
    """

    def __init__(self, stream: BinaryIO, size: int, name: str, what: str) -> None:
        self._stream = stream
        self._left = size
        self._name = name
        self._what = what
        self._size = size

    def _more(self) -> InputError:
        return InputError(
            f"{self._name}: the {self._what} file reports {self._size:,} bytes but holds more: "
            "a /proc or /sys file, or a file still being written; stacksim reads only regular files of a fixed size"
        )

    def _failed(self, exc: OSError) -> InputError:
        return InputError(f"{self._name}: cannot read the {self._what} file: {_os_reason(exc)}")

    def _take(self, step: Callable[[int], bytes], n: int) -> bytes:
        """*step* (read or readline) of at most *n* bytes (all when negative), one more than is left at most."""
        want = self._left + 1 if n < 0 else min(n, self._left + 1)
        try:
            data = step(want)
        except OSError as exc:
            raise self._failed(exc) from None
        self._left -= len(data)
        if self._left < 0:
            raise self._more()
        return data

    @property
    def size(self) -> int:
        """The file's size when it was opened, in bytes: what the stream delivers."""
        return self._size

    def read(self, n: int = -1) -> bytes:
        return self._take(self._stream.read, n)

    def pread_into(self, buffer: bytearray | memoryview, offset: int) -> None:
        """
        Fill *buffer* with the file's bytes from *offset* (random access; the stream's position stays).

        The range must lie inside the size reported at open. A file that ends sooner (it shrank
        since) or a read error is an :class:`InputError` naming the file.
        """
        view = memoryview(buffer).cast("B")
        if offset < 0 or offset + len(view) > self._size:
            raise ValueError(f"bytes {offset:,} ... {offset + len(view):,} are outside the {self._size:,}-byte file")
        fd = self._stream.fileno()
        while view:
            try:
                n = os.preadv(fd, [view], offset)
            except OSError as exc:
                raise self._failed(exc) from None
            if n == 0:
                raise InputError(
                    f"{self._name}: the {self._what} file ends at byte {offset:,}, but was {self._size:,} bytes when opened; "
                    "stacksim reads only regular files of a fixed size"
                )
            view, offset = view[n:], offset + n

    def __iter__(self) -> Iterator[bytes]:
        while True:
            line = self.readline()
            if not line:
                return
            yield line

    def readline(self, n: int = -1) -> bytes:
        return self._take(self._stream.readline, n)


def read_input(path: str | Path, what: str, limit: int | None = None) -> bytes:
    """The whole *what* file at *path*, checked as :func:`open_input` checks it."""
    with open_input(path, what, limit) as f:
        return f.read()


_BOMS: Final = (
    (b"\xff\xfe\x00\x00", "UTF-32"),  # before UTF-16: the UTF-32-LE mark starts with the UTF-16-LE one
    (b"\x00\x00\xfe\xff", "UTF-32"),
    (b"\xff\xfe", "UTF-16"),
    (b"\xfe\xff", "UTF-16"),
)
"""Byte-order marks of encodings other than UTF-8, checked in this order."""


def decode_text(raw: bytes, path: str | Path, what: str) -> str:
    """
    *raw* as UTF-8 text; a leading UTF-8 byte-order mark is accepted and dropped.

    Raises:
        InputError: a UTF-16/32 byte-order mark, or bytes that are not UTF-8 (with the offset).
    """
    for bom, encoding in _BOMS:
        if raw.startswith(bom):
            raise InputError(
                f"{_describe(path)}: the {what} file is {encoding} (it starts with a {encoding} byte-order mark); "
                "save it as UTF-8"
            )
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{_describe(path)}: the {what} file is not UTF-8 text (byte {exc.start:,} is 0x{raw[exc.start]:02X})"
        ) from None


# -- parsing ---------------------------------------------------------------------------------

MAX_DEPTH: Final = 64
"""The deepest nesting of tables and arrays stacksim accepts in parsed input (the root table is level 1).

A scenario needs 5 levels (``[filters."x.sys"]`` holding a list of tables); 64 leaves room for
plugin configurations and stays far from Python's recursion limit, which a deeper structure
would hit in validation and copying."""

_DIGIT_RUN: Final = re.compile(r"[0-9][0-9_]*")
"""A run of digits (and TOML's underscores): each match consumes the whole run, so a scan is linear."""


def _long_integer(text: str) -> re.Match[str] | None:
    """
    The first run of more digits than Python converts to an int, else the longest run; linear in *text*.

    A pattern such as ``[0-9]{4000,}`` is quadratic when searched over many shorter runs (each
    start re-reads its run); :data:`_DIGIT_RUN` never backtracks and resumes after each run.
    """
    limit = sys.get_int_max_str_digits() or 4300
    longest: re.Match[str] | None = None
    for m in _DIGIT_RUN.finditer(text):
        size = m.end() - m.start()
        if size <= limit:
            continue
        if size - m.group().count("_") > limit:
            return m
        if longest is None or size > longest.end() - longest.start():
            longest = m
    return longest


class _NotFinite(ValueError):
    """A JSON number that is NaN or infinite (``NaN``, ``Infinity``, ``1e400``)."""


def _where(path: tuple[object, ...]) -> str:
    """A key path as ``a.b[0][1]``: the first six steps, then an ellipsis."""
    out = "".join(f"[{p}]" if isinstance(p, int) else f".{shorten(str(p), 40)}" for p in path[:6]).removeprefix(".")
    return terminal_safe(out + "…" if len(path) > 6 else out or "the top level")


def check_depth(data: object, name: str, limit: int = MAX_DEPTH) -> None:
    """
    Refuse *data* (parsed TOML or JSON) if its tables and arrays nest deeper than *limit* levels.

    The walk is iterative, so a structure too deep for Python's recursion limit is measured, not
    crashed on. *name* is the file as shown in the message.

    Raises:
        InputError: naming the file, the key path where the limit is crossed and the limit.
    """
    stack: list[tuple[object, int, tuple[object, ...]]] = [(data, 1, ())]
    while stack:
        node, depth, path = stack.pop()
        if isinstance(node, dict):
            items: Iterable[tuple[object, object]] = node.items()
        elif isinstance(node, list):
            items = enumerate(node)
        else:
            continue
        if depth > limit:
            raise InputError(
                f"{name}: tables and arrays are nested more than {limit} levels deep (at {_where(path)}); "
                f"stacksim accepts at most {limit}"
            )
        stack.extend((v, depth + 1, (*path, k)) for k, v in items if isinstance(v, dict | list))


def _parse_failure(exc: BaseException, text: str, name: str, what: str) -> InputError:
    """The message for a parser failure that is not a syntax error: a huge integer or deep nesting."""
    if isinstance(exc, RecursionError):
        return InputError(
            f"{name}: the {what} file nests tables or arrays too deeply to be read; stacksim accepts at most {MAX_DEPTH} levels"
        )
    if isinstance(exc, _NotFinite):
        return InputError(f"{name}: the {what} file holds the number {shorten(str(exc), 40)}; numbers must be finite")
    long = _long_integer(text)
    if long is not None:
        line = text.count("\n", 0, long.start()) + 1
        digits = sum(c.isdigit() for c in long.group())
        return InputError(
            f"{name}: line {line:,} holds an integer of {digits:,} digits; "
            f"stacksim reads integers of at most {sys.get_int_max_str_digits():,} digits (and accepts far fewer)"
        )
    return InputError(f"{name}: the {what} file cannot be read: {terminal_safe(shorten(str(exc), 200))}")


def parse_toml(text: str, path: str | Path, what: str) -> dict[str, Any]:
    """
    Parse TOML *text* read from *path*, refusing what the parser cannot take and nesting beyond :data:`MAX_DEPTH`.

    Raises:
        InputError: a syntax error (with tomllib's line and column), an integer too long for
            Python to convert, nesting too deep for the parser or beyond the limit.
    """
    name = _describe(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{name}: not valid TOML: {terminal_safe(shorten(str(exc), 200))}") from None
    except (ValueError, RecursionError) as exc:
        raise _parse_failure(exc, text, name, what) from None
    check_depth(data, name)
    return data


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NotFinite(text)
    return value


def _no_constant(text: str) -> float:
    raise _NotFinite(text)


def parse_json(text: str, path: str | Path, what: str, limit: int = MAX_DEPTH) -> Any:
    """
    Parse JSON *text* read from *path*; NaN, infinities and nesting beyond *limit* levels are refused.

    Raises:
        InputError: not JSON (with the line and column), an integer too long for Python to
            convert, a non-finite number, nesting too deep.
    """
    name = _describe(path)
    try:
        data = json.loads(text, parse_float=_finite, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise InputError(f"{name}: not a JSON {what} file: {exc.msg} (line {exc.lineno:,}, column {exc.colno:,})") from None
    except (ValueError, RecursionError) as exc:
        raise _parse_failure(exc, text, name, what) from None
    check_depth(data, name, limit)
    return data


# -- output ------------------------------------------------------------------------------------


def _identity(path: Path) -> tuple[int, int] | None:
    """(device, inode) of the file *path* names, following symlinks, or None if it does not exist."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _missing_part(path: Path) -> Path:
    """The first folder of *path*'s parents that does not exist (or is not a folder)."""
    parts = path.parent.parts
    for n in range(1, len(parts) + 1):
        part = Path(*parts[:n])
        if not part.is_dir():
            return part
    return path.parent


def _check_folder(flag: str, name: str, parent: Path) -> None:
    """*parent* exists, is a folder, and a file can be created in it (probed with a file removed at once)."""
    try:
        pst = os.stat(parent)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            missing = _missing_part(parent / "x")
            detail = "" if missing == parent else f" ({_describe(missing)} does not exist)"
            raise OutputError(f"{flag} {name}: the folder {_describe(parent)} does not exist{detail}; create it first") from None
        raise OutputError(f"{flag} {name}: the folder {_describe(parent)} cannot be used: {_os_reason(exc)}") from None
    if not stat.S_ISDIR(pst.st_mode):
        raise OutputError(f"{flag} {name}: {_describe(parent)} is not a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=".stacksim-probe.", suffix=".tmp", dir=parent)
    except OSError as exc:
        reason = "it does not accept new files" if exc.errno == errno.ENOENT else _os_reason(exc)
        raise OutputError(f"{flag} {name}: cannot create a file in the folder {_describe(parent)}: {reason}") from None
    try:
        os.close(fd)
    finally:
        os.unlink(probe)


STDOUT_FLAGS: Final = frozenset({"--json"})
"""The outputs that may be stdout (``-``); every other output is written to a file."""


def names_a_folder(text: str) -> bool:
    """Whether the path *text*, as typed, ends in a separator (``out/``): it names a folder, which a ``Path`` forgets."""
    return text.endswith(tuple(sep for sep in (os.sep, os.altsep) if sep))


def output_file(value: str | os.PathLike[str], flag: str | None = None) -> Path:
    """
    An output's file as given; a name ending in a slash is refused (:class:`OutputError`, naming *flag* if given).

    The slash says "a folder", but :class:`~pathlib.Path` drops it (``out/`` becomes ``out``), and
    the file would be written under the folder's name. (A ``Path`` given already has no slash.)
    """
    text = os.fspath(value)
    if isinstance(text, str) and names_a_folder(text):
        shown = terminal_safe(shorten(text, 200))
        named, option = (f"{flag} {shown}", flag) if flag else (shown, "this option")
        raise OutputError(f"{named}: names a folder (it ends in a slash), but {option} writes a file; give its name")
    return Path(text)


def check_outputs(outputs: Iterable[tuple[str, Path | None]], inputs: Iterable[Path] = ()) -> None:
    """
    Refuse output paths that cannot be written or would destroy something, before anything runs.

    *outputs* are ``(flag, path)`` pairs (``None``: not asked for; ``-``: stdout, for the flags in
    :data:`STDOUT_FLAGS` only). Each must be in an
    existing folder where a file can be created, must not exist as anything but a writable
    regular file (a device node, FIFO, socket, folder, read-only or immutable file is refused),
    must not be one of *inputs* (compared by device and inode, so a symlink or hard link to an
    input is caught too), and no two may name the same file.

    Raises:
        OutputError: naming the flag, the path and the reason.
    """
    seen: dict[tuple[int, int] | str, str] = {}
    inputs = list(inputs)
    ins = {ident for p in inputs if (ident := _identity(p)) is not None}
    ins_real = {os.path.realpath(p) for p in inputs}
    for flag, path in outputs:
        if path is None:
            continue
        if str(path) == "-":
            if flag in STDOUT_FLAGS:
                continue
            raise OutputError(f"{flag} -: this output goes to a file, not stdout; give a file name")
        name = _describe(path)
        try:
            st = os.stat(path)
        except FileNotFoundError:
            st = None
        except OSError as exc:
            if exc.errno == errno.ENOTDIR:
                _check_folder(flag, name, path.parent)
            raise OutputError(f"{flag} {name}: cannot be written: {_os_reason(exc)}") from None
        if st is not None and stat.S_ISDIR(st.st_mode):
            if str(path) == ".":  # also what an empty argument (--image "") becomes
                raise OutputError(f"{flag} is empty or '.', the current folder; give a file name")
            raise OutputError(f"{flag} {name}: is a folder; give a file name")
        if st is not None and not stat.S_ISREG(st.st_mode):
            raise OutputError(
                f"{flag} {name}: is {_kind(st.st_mode)}; stacksim writes output only to regular files"
                + (" (use - for stdout)" if flag in STDOUT_FLAGS else "")
            )
        real = os.path.realpath(path)
        key: tuple[int, int] | str = (st.st_dev, st.st_ino) if st is not None else real
        if key in ins or real in ins_real:
            raise OutputError(f"{flag} {name}: is an input of this run; writing it would destroy the input")
        if key in seen or real in seen:
            raise OutputError(f"{flag} {name}: is also the {seen.get(key) or seen[real]} output; give each output its own file")
        if st is not None and (not st.st_mode & 0o222 or not os.access(path, os.W_OK)):
            # the mode bits too: os.access says yes to root whatever they are
            raise OutputError(f"{flag} {name}: is read-only (or immutable); stacksim does not replace it")
        # the folder the file will be created in: the link's target's for a symlink, else as the user wrote it
        _check_folder(flag, name, Path(real).parent if st is not None or path.is_symlink() else path.parent)
        seen[key] = flag
        seen[real] = flag


@contextlib.contextmanager
def atomic_writer(path: str | Path, *, flag: str = "output") -> Iterator[IO[str]]:
    """
    Yield a text stream whose contents replace *path* only if the block finishes.

    On any exception (Ctrl-C and SIGTERM included) the temporary file is removed and *path* is
    untouched, so a reader never sees a half-written result or trace. A symlink is followed:
    the file it points to is replaced and the link stays. A target that exists and is not a
    regular file is refused. A full disk or an I/O error while writing is an :class:`OutputError`.

    Raises:
        OutputError: the target is not a regular file, its folder cannot be written, the disk
            is full, or the rename fails.
    """
    with _replacing(path, flag) as fd, os.fdopen(fd, "w", encoding="utf-8", newline="\n") as stream:
        yield stream


@contextlib.contextmanager
def atomic_binary_writer(path: str | Path, *, flag: str = "output") -> Iterator[BinaryIO]:
    """
    Yield a binary stream whose contents replace *path* only if the block finishes, as :func:`atomic_writer` does.

    The stream is the temporary file itself, so it seeks and truncates: a seek past the end
    followed by a write leaves a hole, which file systems that support sparse files do not
    allocate (``stacksim memory`` writes physical memory this way, holes as gaps).

    Raises:
        OutputError: as :func:`atomic_writer`.
    """
    with _replacing(path, flag) as fd, os.fdopen(fd, "wb") as stream:
        yield stream


@contextlib.contextmanager
def _replacing(path: str | Path, flag: str) -> Iterator[int]:
    """
    The descriptor of a temporary file beside *path* that is renamed over *path* if the block finishes.

    The block must close the descriptor (the writers wrap it in a stream). On any exception the
    temporary file is removed; an OSError that is the output's fault (:data:`_WRITE_ERRNOS`)
    becomes an :class:`OutputError` naming *flag* and *path*.
    """
    target = Path(os.path.realpath(path))
    name = _describe(path)
    try:
        st = os.stat(target)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise OutputError(f"{flag} {name}: cannot be written: {_os_reason(exc)}") from None
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise OutputError(f"{flag} {name}: is {_kind(st.st_mode)}; stacksim writes output only to regular files")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name[:64]}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        raise OutputError(f"{flag} {name}: cannot be written in {_describe(target.parent)}: {_os_reason(exc)}") from None
    _TEMPORARIES.add(tmp)
    try:
        try:
            yield fd
        except OSError as exc:
            if exc.errno not in _WRITE_ERRNOS:
                raise
            raise OutputError(f"{flag} {name}: writing failed: {_os_reason(exc)}") from None
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual mode
        try:
            os.replace(tmp, target)
        except OSError as exc:
            raise OutputError(f"{flag} {name}: cannot be replaced: {_os_reason(exc)}") from None
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    finally:
        _TEMPORARIES.discard(tmp)


_TEMPORARIES: Final[set[str]] = set()
"""Temporary files :func:`atomic_writer` has open, for :func:`remove_temporaries`."""


def remove_temporaries() -> None:
    """
    Remove every temporary output file still open: for a process that must end at once (``os._exit``).

    The wall-clock guard calls it, from its own thread, before it ends a process whose plugin
    code cannot be stopped; nothing half-written is left behind.
    """
    for tmp in list(_TEMPORARIES):
        with contextlib.suppress(OSError):
            os.unlink(tmp)


_WRITE_ERRNOS: Final = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EFBIG, errno.EROFS})
"""OSErrors that, raised while an output is written, are the output's fault (disk full, I/O error)."""


@contextlib.contextmanager
def open_append(path: str | Path, *, flag: str = "output") -> Iterator[IO[str]]:
    """
    Open *path* to append text to it in place (created if missing), refusing anything but a regular file.

    For outputs that are resumable by design (a sweep's results file). The file is opened
    non-blocking and checked on the open descriptor, so a FIFO or device swapped in after
    :func:`check_outputs` is still refused and never blocks.

    Raises:
        OutputError: naming the flag, the path and the reason.
    """
    name = _describe(path)
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags, 0o666)
    except OSError as exc:
        raise OutputError(f"{flag} {name}: cannot be written: {_os_reason(exc)}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OutputError(f"{flag} {name}: is {_kind(st.st_mode)}; stacksim writes output only to regular files")
        os.set_blocking(fd, True)
        stream = os.fdopen(fd, "a", encoding="utf-8", newline="")
    except BaseException:
        os.close(fd)
        raise
    with stream:
        yield stream


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# -- showing input on a terminal ---------------------------------------------------------------

_BIDI: Final = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _escape_char(ch: str) -> str:
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def terminal_safe(text: str, *, keep_newlines: bool = False) -> str:
    r"""
    *text* with every control, bidirectional-override and other invisible formatting character escaped.

    C0 and C1 controls (ESC included, so no terminal escape sequence survives), DEL, the Unicode
    bidi controls (Trojan Source, CVE-2021-42574), line and paragraph separators, and any other
    non-printable character become ``\xNN`` / ``\uNNNN``. With *keep_newlines*, ``\n`` stays.
    """
    if text.isprintable() and not _BIDI.intersection(text):
        return text
    out = []
    for ch in text:
        if ch == "\n" and keep_newlines:
            out.append(ch)
        elif ch in _BIDI or not ch.isprintable():
            out.append(_escape_char(ch))
        else:
            out.append(ch)
    return "".join(out)


_JSON_SUSPECT: Final = re.compile("[^\x00-\x7e]")
r"""What :func:`json_safe` looks at: DEL and every non-ASCII character (JSON escapes C0 controls itself).

Written as the complement of ``\x00``-``\x7e``: the same set as ``[\x7f-\U0010ffff]``, which
takes ~4 ms to compile, a tenth of ``import stacksim.cli``."""


def _json_escape(m: re.Match[str]) -> str:
    ch = m.group()
    if ch.isprintable() and ch not in _BIDI:
        return ch
    return _json_escape_all(m)


def _json_escape_all(m: re.Match[str]) -> str:
    code = ord(m.group())
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000  # JSON has no escape beyond the BMP: a surrogate pair
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def json_safe(text: str, *, ascii_only: bool = False) -> str:
    r"""
    JSON *text* (from ``json.dumps(..., ensure_ascii=False)``) with every invisible character escaped as ``\uXXXX``.

    C1 controls, DEL, the Unicode bidi controls, line and paragraph separators, lone surrogates
    and every other non-printable character are written as JSON escapes, so a result, trace or
    sweep file shown with ``cat`` cannot move the cursor or reorder text; ordinary non-ASCII text
    (``µs``) stays readable. The JSON's value is unchanged: outside strings JSON text is ASCII,
    so only string contents are touched. With *ascii_only*, every non-ASCII character is escaped
    (for a stream whose encoding is ASCII).
    """
    if text.isascii() and "\x7f" not in text:
        return text
    return _JSON_SUSPECT.sub(_json_escape_all if ascii_only else _json_escape, text)


def shorten(text: str, limit: int = 120) -> str:
    """*text* if it is at most *limit* characters, else its start, an ellipsis and its length."""
    if len(text) <= limit:
        return text
    return f"{text[: max(limit - 30, 10)]}… ({len(text):,} characters)"
