"""The reference docs say what the code does: every key, field and export is documented."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import BaseModel

import stacksim
from stacksim.filters import BUILTIN_FILTERS
from stacksim.scenario import Scenario
from stacksim.trace import FIELDS

DOCS = Path(__file__).parent.parent / "docs"


def documented_keys(text: str, heading: str) -> set[str]:
    """Backticked keys in the first column of the table under *heading*."""
    section = text.split(heading, 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([^`]+)` \|", section, flags=re.MULTILINE))


@pytest.mark.parametrize("section", [n for n in Scenario.model_fields if n not in ("filters", "faults")])
def test_every_scenario_key_is_documented(section: str) -> None:
    """docs/reference/scenario.md lists exactly the keys each table accepts."""
    model = Scenario.model_fields[section].annotation
    assert isinstance(model, type)
    assert issubclass(model, BaseModel)
    keys = {f.alias or n for n, f in model.model_fields.items()}
    text = (DOCS / "reference" / "scenario.md").read_text()
    assert documented_keys(text, f"## `[{section}]`") == keys


@pytest.mark.parametrize("cls", BUILTIN_FILTERS, ids=[c.service_name for c in BUILTIN_FILTERS])
def test_every_builtin_filter_parameter_is_documented(cls: type[stacksim.DumpFilter]) -> None:
    """docs/reference/filters.md lists exactly each built-in filter's parameters."""
    text = (DOCS / "reference" / "filters.md").read_text()
    section = text.split(f"## `{cls.service_name}`", 1)[1].split("\n## ", 1)[0]
    table = section.split("| key |", 1)[1].split("\n\n", 1)[0]
    assert set(re.findall(r"^\| `([^`]+)` \|", table, flags=re.MULTILINE)) == set(cls.Config.model_fields)


def test_every_fault_kind_and_key_is_documented() -> None:
    """docs/reference/faults.md names every fault kind and every key a fault table takes."""
    from stacksim import scenario as sc

    text = (DOCS / "reference" / "faults.md").read_text()
    models = [sc.DeviceErrorFault, sc.DeviceTimeoutFault, sc.PowerLossFault, sc.FilterFault, sc.SlowFilterFault]
    kinds = {k for m in models for k in m.model_fields["kind"].annotation.__args__}  # type: ignore[union-attr]
    keys = {k for m in models for k in m.model_fields if k != "kind"}
    assert set(re.findall(r"^### `([a-z_]+)`", text, flags=re.MULTILINE)) == kinds
    assert documented_keys(text, "## Keys") == keys


def test_every_trace_field_is_documented() -> None:
    """docs/reference/trace-format.md lists exactly the trace fields."""
    text = (DOCS / "reference" / "trace-format.md").read_text()
    assert documented_keys(text, "| field |") == set(FIELDS)


def test_every_result_key_is_documented() -> None:
    """docs/reference/result-format.md lists exactly the result JSON keys."""
    from conftest import run

    result, _ = run()
    text = (DOCS / "reference" / "result-format.md").read_text()
    assert documented_keys(text, "| key |") == set(result.as_dict())


def test_public_api_is_exported_once_and_documented() -> None:
    """Every name in stacksim.__all__ exists, is listed once and in order, and is documented if callable."""
    names = stacksim.__all__
    assert len(names) == len(set(names))
    assert names == sorted(names, key=lambda n: (0 if n.isupper() else 1 if n[0].isupper() else 2, n))  # isort style
    for name in names:
        obj = getattr(stacksim, name)
        if callable(obj):
            assert obj.__doc__, name
