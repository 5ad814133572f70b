"""
Crash dump filters: the ntdddump interface, the built-in filters and plugin loading.

Built-in filters, by service name: ``dumpfve.sys`` (BitLocker-like encryption),
``delayflt.sys`` (pure cost) and ``faultflt.sys`` (misbehaves on demand). Other filters are
Python classes derived from :class:`DumpFilter`, found through the ``stacksim.filters``
entry-point group of installed packages or loaded from a file with ``--plugin FILE.py``. A
scenario file by itself never imports code.
"""

from __future__ import annotations

import hashlib
import inspect
import sys
import types
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path

from stacksim._io import InputError, read_input, shorten, terminal_safe
from stacksim.filters._base import (
    DUMP_FILTER_CRITICAL,
    DUMP_FILTER_FLAG_SYSTEM_SUPPORT_READ,
    DUMP_FILTER_MAJOR_VERSION,
    DUMP_FILTER_MAJOR_VERSION_1,
    DUMP_FILTER_MINOR_VERSION,
    DiskGeometry,
    DumpFilter,
    DumpType,
    FilterExtension,
    FilterInitializationData,
    NoConfig,
)
from stacksim.filters.delayflt import DelayFlt
from stacksim.filters.dumpfve import DumpFve
from stacksim.filters.faultflt import FaultFlt

__all__ = [
    "DUMP_FILTER_CRITICAL",
    "DUMP_FILTER_FLAG_SYSTEM_SUPPORT_READ",
    "DUMP_FILTER_MAJOR_VERSION",
    "DUMP_FILTER_MAJOR_VERSION_1",
    "DUMP_FILTER_MINOR_VERSION",
    "ENTRY_POINT_GROUP",
    "DelayFlt",
    "DiskGeometry",
    "DumpFilter",
    "DumpFve",
    "DumpType",
    "FaultFlt",
    "FilterCatalog",
    "FilterExtension",
    "FilterInitializationData",
    "NoConfig",
    "PluginError",
    "PluginFile",
    "read_plugin",
]

ENTRY_POINT_GROUP = "stacksim.filters"
"""Entry-point group an installed package uses to provide filters: ``name = "pkg.mod:Class"``."""

BUILTIN_FILTERS: tuple[type[DumpFilter], ...] = (DumpFve, DelayFlt, FaultFlt)


class PluginError(Exception):
    """A filter plugin that cannot be loaded; the message names the file and the problem."""


@dataclass(frozen=True, slots=True)
class PluginFile:
    """
    A plugin file as read, once: the bytes that are hashed are the bytes that are executed.

    Picklable, so a sweep hands each worker the very source the main process validated.
    """

    path: str
    """The path as given (for messages)."""
    source: bytes
    sha256: str

    @property
    def name(self) -> str:
        """The file name alone: what a result records, the same from any working directory."""
        return Path(self.path).name


def read_plugin(path: str | Path) -> PluginFile:
    """
    Read the plugin file at *path* (a regular file of at most 4 MiB) and hash it; nothing is executed.

    Raises:
        PluginError: the file is missing, not a regular file or too large.
    """
    try:
        source = read_input(path, "plugin")
    except InputError as exc:
        raise PluginError(str(exc)) from None
    return PluginFile(str(path), source, hashlib.sha256(source).hexdigest())


def _raised(exc: BaseException) -> str:
    """What a plugin raised, in words; a SystemExit's code is reported, never used."""
    if isinstance(exc, SystemExit):
        return f"it called sys.exit({exc.code!r})" if exc.code is not None else "it called sys.exit()"
    if isinstance(exc, KeyboardInterrupt):
        return "KeyboardInterrupt (raised by the plugin, or Ctrl-C while it was imported)"
    return f"{type(exc).__name__}: {exc}"


def _check_class(cls: object, origin: str) -> type[DumpFilter]:
    if not (inspect.isclass(cls) and issubclass(cls, DumpFilter)):
        raise PluginError(f"{origin}: {cls!r} is not a subclass of stacksim.DumpFilter")
    if not isinstance(cls.service_name, str) or not cls.service_name.strip():
        raise PluginError(f'{origin}: filter class {cls.__name__} has no service_name (e.g. service_name = "myflt.sys")')
    return cls


class FilterCatalog:
    """The filters a run may load, by service name."""

    def __init__(self, classes: tuple[type[DumpFilter], ...] = BUILTIN_FILTERS) -> None:
        self._classes: dict[str, type[DumpFilter]] = {}
        self._origin: dict[str, str] = {}
        self._digest: dict[str, str] = {}
        for cls in classes:
            self.add(cls, "built-in")

    def add(self, cls: type[DumpFilter], origin: str, *, sha256: str | None = None) -> None:
        """Register *cls* under its service name; two filters may not share a name. *sha256*: of its plugin file."""
        cls = _check_class(cls, origin)
        name = cls.service_name
        if name in self._classes and self._classes[name] is not cls:
            raise PluginError(f"{origin}: filter {name!r} is already provided by {self._origin[name]}")
        self._classes[name] = cls
        self._origin[name] = origin
        if sha256 is not None:
            self._digest[name] = sha256

    def copy(self) -> FilterCatalog:
        """A new catalog with the same filters, to which more can be added."""
        other = FilterCatalog(())
        other._classes = dict(self._classes)
        other._origin = dict(self._origin)
        other._digest = dict(self._digest)
        return other

    def get(self, name: str) -> type[DumpFilter] | None:
        """The class registered as *name*, if any."""
        return self._classes.get(name)

    def names(self) -> list[str]:
        """All service names, sorted."""
        return sorted(self._classes)

    def origin(self, name: str) -> str:
        """
        Where *name* came from: ``built-in``, ``entry point NAME = module:Class`` or ``plugin FILE.py``.

        A plugin file is named without its folder, so the origin a result records is the same
        whatever the working directory or the path the file was given by.
        """
        return self._origin[name]

    def digest(self, name: str) -> str | None:
        """
        SHA-256 of the source that defines *name*'s class (None if it has no file).

        For a plugin file, the hash of the bytes that were read and executed (recorded at load
        time, never re-read); for an entry point, of its module's source file now.
        """
        if name in self._digest:
            return self._digest[name]
        cls = self._classes[name]
        try:
            source = inspect.getsourcefile(cls)
        except TypeError:
            return None
        if source is None:
            return None
        try:
            return hashlib.sha256(read_input(source, "plugin")).hexdigest()
        except InputError:
            return None

    def load_entry_points(self) -> None:
        """Add filters that installed packages declare in the ``stacksim.filters`` group."""
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            origin = f"entry point {ep.name} = {ep.value}"
            try:
                cls = ep.load()
            except BaseException as exc:  # sys.exit() or Ctrl-C in a plugin: a plugin error, never our exit
                raise PluginError(f"{origin}: cannot be imported: {_raised(exc)}") from None
            self.add(cls, origin)

    def load_file(self, path: str | Path) -> list[str]:
        """Read, hash and execute a plugin file; add every DumpFilter subclass it defines; return their names."""
        return self.load_plugin(read_plugin(path))

    def load_plugin(self, plugin: PluginFile) -> list[str]:
        """
        Execute *plugin*'s bytes as a module and add every DumpFilter subclass it defines; return their names.

        The module is compiled from the bytes that were hashed, so :meth:`digest` describes
        exactly the code that ran. Anything the plugin raises while it is executed, including
        ``SystemExit`` (``sys.exit()``), ``KeyboardInterrupt`` and other ``BaseException``
        subclasses, becomes a :class:`PluginError` naming the file.

        Raises:
            PluginError: the plugin does not compile, raises, or defines no filter.
        """
        p = Path(plugin.path)
        shown = terminal_safe(shorten(plugin.path, 200))
        stem = "".join(c if c.isalnum() else "_" for c in p.stem)[:40]
        mod_name = f"stacksim_plugin_{stem}_{plugin.sha256[:16]}"
        try:
            code = compile(plugin.source, str(p), "exec", dont_inherit=True)
        except (SyntaxError, ValueError) as exc:
            reason = terminal_safe(shorten(str(exc), 200))
            raise PluginError(f"{shown}: not a Python file that can be imported: {reason}") from None
        module = types.ModuleType(mod_name)
        module.__file__ = str(p.absolute())
        sys.modules[mod_name] = module
        try:
            exec(code, module.__dict__)
        except BaseException as exc:  # the plugin's sys.exit() or KeyboardInterrupt must not end stacksim
            sys.modules.pop(mod_name, None)
            reason = terminal_safe(shorten(_raised(exc), 300))
            raise PluginError(f"{shown}: importing the plugin failed: {reason}") from None
        found = [
            obj
            for obj in vars(module).values()
            if inspect.isclass(obj) and issubclass(obj, DumpFilter) and obj.__module__ == mod_name and obj.service_name
        ]
        if not found:
            raise PluginError(f"{shown}: defines no DumpFilter subclass with a service_name")
        for cls in found:
            self.add(cls, f"plugin {terminal_safe(plugin.name)}", sha256=plugin.sha256)
        return [cls.service_name for cls in found]
