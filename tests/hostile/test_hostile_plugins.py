"""
Hostile plugin files: a plugin cannot choose stacksim's exit status, and what is not a Python file is refused.

Plugin code that calls ``sys.exit(7)`` or raises ``KeyboardInterrupt`` or a bare ``BaseException``
while it is imported is a plugin error naming the file (exit 2). A plugin path that is a FIFO, a
folder, a 5 MB file or not text is refused before anything is executed. One case runs the real
command, where a plugin's ``SystemExit`` would otherwise really end the process with its code.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import assert_refused, invoke_cli, stacksim_cli

from stacksim.filters import FilterCatalog, PluginError

pytestmark = pytest.mark.timeout(30)

SCENARIO = '[scenario]\nname = "pl"\n[memory]\nram = "1 MiB"\n'

RAISING: dict[str, tuple[str, str]] = {
    "sys.exit(7)": ("import sys\nsys.exit(7)\n", "it called sys.exit(7)"),
    "sys.exit()": ("import sys\nsys.exit()\n", "it called sys.exit()"),
    "SystemExit-message": ("raise SystemExit('bye')\n", "it called sys.exit('bye')"),
    "KeyboardInterrupt": ("raise KeyboardInterrupt\n", "KeyboardInterrupt"),
    "BaseException": ("raise BaseException('boom')\n", "BaseException: boom"),
    "BaseException-subclass": ("class Odd(BaseException): pass\nraise Odd('x')\n", "Odd: x"),
    "GeneratorExit": ("raise GeneratorExit\n", "GeneratorExit"),
    "100-KB-message": ("raise ValueError('x' * 100_000)\n", "ValueError: xxx"),
    "control-characters": ("raise ValueError('\\x1b[2J\\u202e')\n", "ValueError: \\x1b[2J\\u202e"),
    "syntax-error": ("def (:\n", "not a Python file that can be imported"),
    "null-bytes": ("x = 1\0\n", "not a Python file that can be imported"),
}


@pytest.mark.parametrize("command", ["run", "validate", "filters"])
@pytest.mark.parametrize("case", list(RAISING))
def test_plugin_raising_at_import_is_a_plugin_error(tmp_path: Path, case: str, command: str) -> None:
    """Whatever a plugin raises while it is imported, the command exits 2 naming the file and what happened."""
    source, expected = RAISING[case]
    (tmp_path / "s.toml").write_text(SCENARIO)
    (tmp_path / "bad.py").write_text(source)
    args = ["filters"] if command == "filters" else [command, "s.toml"]
    proc = invoke_cli(*args, "--plugin", "bad.py", cwd=tmp_path)
    assert_refused(proc, "bad.py", expected)
    assert "\x1b" not in proc.stderr
    assert sorted(os.listdir(tmp_path)) == ["bad.py", "s.toml"]


def test_sys_exit_in_a_plugin_does_not_choose_the_exit_status(tmp_path: Path) -> None:
    """In a real process, a plugin's sys.exit(7) at import ends in exit 2 with a message, not exit 7."""
    (tmp_path / "s.toml").write_text(SCENARIO)
    (tmp_path / "bad.py").write_text("import sys\nsys.exit(7)\n")
    proc = stacksim_cli("run", "s.toml", "--plugin", "bad.py", cwd=tmp_path)
    assert_refused(proc, "bad.py: importing the plugin failed: it called sys.exit(7)")


def test_sys_exit_in_a_sweep_plugin_is_exit_2(tmp_path: Path) -> None:
    """`sweep --plugin` with a plugin that exits at import is refused before any worker starts."""
    (tmp_path / "s.toml").write_text(SCENARIO)
    (tmp_path / "bad.py").write_text("import sys\nsys.exit(7)\n")
    proc = invoke_cli("sweep", "s.toml", "--set", "disk.latency=1us", "--out", "r.csv", "--plugin", "bad.py", cwd=tmp_path)
    assert_refused(proc, "bad.py", "sys.exit(7)")
    assert not (tmp_path / "r.csv").exists()


def _fifo(tmp: Path) -> str:
    os.mkfifo(tmp / "p.py")
    return "p.py"


def _big(tmp: Path) -> str:
    (tmp / "p.py").write_bytes(b"# padding\n" * 500_000)  # 5 MB
    return "p.py"


def _folder(tmp: Path) -> str:
    (tmp / "p.py").mkdir()
    return "p.py"


def _latin1(tmp: Path) -> str:
    (tmp / "p.py").write_bytes(b"name = '\xe9t\xe9'\n")
    return "p.py"


FILES: dict[str, tuple[Callable[[Path], str], str]] = {
    "fifo": (_fifo, "FIFO"),
    "folder": (_folder, "directory"),
    "5-MB": (_big, "4,194,304 bytes"),
    "dev-zero": (lambda tmp: "/dev/zero", "character device"),
    "missing": (lambda tmp: "nope.py", "no such plugin file"),
    "not-utf8": (_latin1, "not a Python file that can be imported"),
}


@pytest.mark.parametrize("case", list(FILES))
def test_plugin_file_refused(tmp_path: Path, case: str) -> None:
    """A plugin path that is not a regular Python file of at most 4 MiB is refused fast, naming the file."""
    make, expected = FILES[case]
    (tmp_path / "s.toml").write_text(SCENARIO)
    name = make(tmp_path)
    proc = invoke_cli("run", "s.toml", "--plugin", name, cwd=tmp_path)
    assert_refused(proc, name, expected)
    assert proc.elapsed < 2.0  # type: ignore[attr-defined]


def test_the_digest_is_of_the_bytes_that_ran(tmp_path: Path) -> None:
    """A plugin's recorded SHA-256 is that of the bytes executed, even if the file changes afterwards."""
    plugin = tmp_path / "p.py"
    source = b"from stacksim import DumpFilter\nclass P(DumpFilter):\n    service_name = 'p.sys'\n"
    plugin.write_bytes(source)
    catalog = FilterCatalog()
    catalog.load_file(plugin)
    plugin.write_bytes(source + b"# edited\n")
    assert catalog.digest("p.sys") == hashlib.sha256(source).hexdigest()
    assert catalog.origin("p.sys") == "plugin p.py"


def test_an_entry_point_calling_sys_exit_is_a_plugin_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """An installed entry point whose import calls sys.exit() is a PluginError naming the entry point."""
    import stacksim.filters

    class ExitingEntryPoint:
        name = "bad"
        value = "bad_pkg:Filter"

        def load(self) -> object:
            raise SystemExit(7)

    monkeypatch.setattr(stacksim.filters, "entry_points", lambda group: [ExitingEntryPoint()])
    with pytest.raises(PluginError, match=r"entry point bad = bad_pkg:Filter: cannot be imported: it called sys.exit\(7\)"):
        FilterCatalog().load_entry_points()


def test_the_bytes_that_were_hashed_are_the_bytes_that_run(tmp_path: Path) -> None:
    """A plugin file swapped between reading and executing cannot run other code: the read bytes are executed."""
    from stacksim.filters import read_plugin

    plugin = tmp_path / "p.py"
    plugin.write_text("from stacksim import DumpFilter\nclass P(DumpFilter):\n    service_name = 'p.sys'\n    version = 1\n")
    read = read_plugin(plugin)
    plugin.write_text(EVIL_SWAP)
    catalog = FilterCatalog()
    catalog.load_plugin(read)
    cls = catalog.get("p.sys")
    assert cls is not None
    assert cls.version == 1  # type: ignore[attr-defined]
    assert not (tmp_path / "SWAPPED").exists()


EVIL_SWAP = 'import pathlib\npathlib.Path(__file__).with_name("SWAPPED").touch()\n'
