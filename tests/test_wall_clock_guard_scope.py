"""Which runs start the wall-clock guard: those with plugin code in the stack (docs/explanation/engine.md)."""

from __future__ import annotations

from typing import ClassVar

from stacksim import FilterCatalog, validate_scenario
from stacksim.filters import DelayFlt
from stacksim.machine import assemble


class PluginDelay(DelayFlt):
    """A filter from outside stacksim (here: added by the test, as a plugin file or entry point would be)."""

    service_name: ClassVar[str] = "plugdelay.sys"


def _engine_limit(filters: list[str], catalog: FilterCatalog, limit: str = "10 s") -> int:
    data = {
        "scenario": {"name": "guard"},
        "registry": {"CrashDumpEnabled": 1, "DumpFilters": filters},
        "memory": {"ram": "1 MiB"},
        "engine": {"wall_clock_limit": limit},
    }
    return assemble(validate_scenario(data, "<test>", catalog), catalog).engine.wall_clock_limit_ns


def test_a_stack_of_only_built_in_filters_starts_no_guard() -> None:
    """The built-in filters never loop in Python, so their runs need no guard thread."""
    assert _engine_limit(["dumpfve.sys", "delayflt.sys"], FilterCatalog()) == 0


def test_a_stack_with_one_plugin_filter_is_guarded_at_the_scenario_limit() -> None:
    """One filter that is not built-in puts the whole run under [engine] wall_clock_limit."""
    catalog = FilterCatalog()
    catalog.add(PluginDelay, "plugin plugdelay.py")
    assert _engine_limit(["dumpfve.sys", "plugdelay.sys"], catalog, "2 s") == 2 * 10**9


def test_a_limit_of_zero_turns_the_guard_off_for_plugins_too() -> None:
    """wall_clock_limit = 0 still means no guard, plugin or not."""
    catalog = FilterCatalog()
    catalog.add(PluginDelay, "plugin plugdelay.py")
    assert _engine_limit(["plugdelay.sys"], catalog, "0 s") == 0
