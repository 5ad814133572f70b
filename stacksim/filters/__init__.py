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
import importlib.util
import inspect
import sys
from importlib.metadata import entry_points
from pathlib import Path

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
]

ENTRY_POINT_GROUP = "stacksim.filters"
"""Entry-point group an installed package uses to provide filters: ``name = "pkg.mod:Class"``."""

BUILTIN_FILTERS: tuple[type[DumpFilter], ...] = (DumpFve, DelayFlt, FaultFlt)


class PluginError(Exception):
    """A filter plugin that cannot be loaded; the message names the file and the problem."""


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
        for cls in classes:
            self.add(cls, "built-in")

    def add(self, cls: type[DumpFilter], origin: str) -> None:
        """Register *cls* under its service name; two filters may not share a name."""
        cls = _check_class(cls, origin)
        name = cls.service_name
        if name in self._classes and self._classes[name] is not cls:
            raise PluginError(f"{origin}: filter {name!r} is already provided by {self._origin[name]}")
        self._classes[name] = cls
        self._origin[name] = origin

    def copy(self) -> FilterCatalog:
        """A new catalog with the same filters, to which more can be added."""
        other = FilterCatalog(())
        other._classes = dict(self._classes)
        other._origin = dict(self._origin)
        return other

    def get(self, name: str) -> type[DumpFilter] | None:
        """The class registered as *name*, if any."""
        return self._classes.get(name)

    def names(self) -> list[str]:
        """All service names, sorted."""
        return sorted(self._classes)

    def origin(self, name: str) -> str:
        """Where *name* came from: ``built-in``, an entry point, or a plugin file."""
        return self._origin[name]

    def digest(self, name: str) -> str | None:
        """SHA-256 of the source file that defines *name*'s class (None if it has no file)."""
        cls = self._classes[name]
        try:
            source = inspect.getsourcefile(cls)
        except TypeError:
            return None
        if source is None or not Path(source).is_file():
            return None
        return hashlib.sha256(Path(source).read_bytes()).hexdigest()

    def load_entry_points(self) -> None:
        """Add filters that installed packages declare in the ``stacksim.filters`` group."""
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            origin = f"entry point {ep.name} = {ep.value}"
            try:
                cls = ep.load()
            except Exception as exc:
                raise PluginError(f"{origin}: cannot be imported ({type(exc).__name__}: {exc})") from None
            self.add(cls, origin)

    def load_file(self, path: str | Path) -> list[str]:
        """Import a plugin file and add every DumpFilter subclass it defines; return their names."""
        p = Path(path)
        if not p.is_file():
            raise PluginError(f"{p}: plugin file not found")
        mod_name = f"stacksim_plugin_{p.stem}_{abs(hash(str(p.resolve())))}"
        spec = importlib.util.spec_from_file_location(mod_name, p)
        if spec is None or spec.loader is None:
            raise PluginError(f"{p}: not a Python file that can be imported")
        module = importlib.util.module_from_spec(spec)
        sys.modules[mod_name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            del sys.modules[mod_name]
            raise PluginError(f"{p}: importing the plugin failed: {type(exc).__name__}: {exc}") from None
        found = [
            obj
            for obj in vars(module).values()
            if inspect.isclass(obj) and issubclass(obj, DumpFilter) and obj.__module__ == mod_name and obj.service_name
        ]
        if not found:
            raise PluginError(f"{p}: defines no DumpFilter subclass with a service_name")
        for cls in found:
            self.add(cls, f"plugin {p}")
        return [cls.service_name for cls in found]
