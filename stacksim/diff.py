"""
What changed between two runs: ``stacksim diff A.json B.json``.

Two result files written by ``stacksim run --json`` are compared on what a reader of the two
summaries would look at: the scenario each records (``replay.scenario``, flattened into dotted
keys such as ``disk.bandwidth``), the dump time, status and throughput, each layer's busy time
and p50/p99 (``layers``), the bottleneck, and when present the normal stack's I/O (``io``: IOPS,
throughput, latency, each stage's busy time), the resume (``resume.time_ns``, ``resume.status``,
``resume.layers``) and the hibernation's numbers (``hibernation``). Every number has its unit
and a ratio B ÷ A; the layer whose busy time changed most is named (0 ns → busy, or back, is the
largest change; then the largest factor).

Pure functions: :func:`compare` turns two result objects into a :class:`Diff`,
:func:`render_diff` prints it with rich, :func:`diff_json` writes it as JSON. Reading the files
is the command line's job (:mod:`stacksim.cli`, through :mod:`stacksim._io`); anything in a
result this module uses is checked here and a bad value is a :class:`ResultShapeError`.

.. versionadded:: 0.5
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal, TypeAlias, TypeVar

from stacksim._io import json_safe, shorten, terminal_safe
from stacksim.units import INT64_MAX, format_bandwidth, format_bytes, format_ns, format_ns_pair

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["Diff", "Quantity", "ResultShapeError", "ScenarioChange", "compare", "diff_json", "flatten", "render_diff"]

T = TypeVar("T")

Unit: TypeAlias = Literal["ns", "bytes", "bytes_per_s", "writes", "requests", "per_s", "fraction", "text"]
"""How a :class:`Quantity`'s values are measured (``text``: a word such as a status, no ratio)."""

Value: TypeAlias = "int | float | str | None"
"""A quantity's value in one run; None when that run has none (a layer it did not have)."""

_BARE_KEY: Final = re.compile(r"[A-Za-z0-9_-]+")


class ResultShapeError(ValueError):
    """A result object lacks a key the comparison needs, or holds one of the wrong type; the message names the key."""


@dataclass(frozen=True, slots=True)
class ScenarioChange:
    """
    One dotted scenario key whose recorded value differs between the runs.

    *old* / *new* are the JSON values as recorded; *in_a* / *in_b* say whether each run has the key at all.
    """

    key: str
    old: object
    new: object
    in_a: bool = True
    in_b: bool = True


@dataclass(frozen=True, slots=True)
class Quantity:
    """One compared number (or word) of the two runs: its section, name, unit and the value in A and in B."""

    section: str
    name: str
    unit: Unit
    a: Value
    b: Value

    @property
    def changed(self) -> bool:
        """Whether the two runs differ here (a value present in one run only is a change)."""
        return self.a != self.b

    @property
    def ratio(self) -> float | None:
        """B ÷ A for numbers both runs have, with A non-zero and the ratio a finite float (None otherwise, and for text)."""
        if self.unit == "text" or not isinstance(self.a, int | float) or not isinstance(self.b, int | float) or self.a == 0:
            return None
        ratio = self.b / self.a
        return ratio if math.isfinite(ratio) else None  # 1e300 ÷ 1e-300 is inf, which JSON cannot hold


@dataclass(frozen=True, slots=True)
class Diff:
    """
    What changed between run A and run B.

    *rows* hold every compared quantity, changed or not, in display order; *scenario* only the
    keys that differ. *changed_most* is the layer busy-time row that changed most among layers
    both runs have: a layer idle (0 ns) in one run and busy in the other counts as the largest
    change (among several such, the one with the most busy time), then the largest factor between
    the runs either way; None when no layer's busy time changed.
    """

    a_name: str
    b_name: str
    a_scenario: str
    b_scenario: str
    scenario: tuple[ScenarioChange, ...]
    rows: tuple[Quantity, ...]
    changed_most: Quantity | None = field(default=None)

    @property
    def same(self) -> bool:
        """Whether nothing compared differs: the same scenario keys and every number and word equal."""
        return not self.scenario and not any(q.changed for q in self.rows)


def flatten(scenario: dict[str, Any], prefix: str = "") -> dict[str, object]:
    """
    A recorded scenario as dotted keys: tables nest with ``.``, lists of tables with ``[i]``, other values are leaves.

    A key that is not a bare TOML key is quoted, as TOML writes it (``filters."dumpfve.sys".per_byte``).

    >>> flatten({"disk": {"bandwidth": "3 GB/s"}, "filters": {"dumpfve.sys": {"per_call": "1 us"}}})
    {'disk.bandwidth': '3 GB/s', 'filters."dumpfve.sys".per_call': '1 us'}
    """
    out: dict[str, object] = {}
    for key, value in scenario.items():
        part = key if _BARE_KEY.fullmatch(key) else json.dumps(key, ensure_ascii=False)
        name = f"{prefix}.{part}" if prefix else part
        if isinstance(value, dict) and value:
            out.update(flatten(value, name))
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            for i, item in enumerate(value):
                out.update(flatten(item, f"{name}[{i}]") if item else {f"{name}[{i}]": item})
        else:
            out[name] = value
    return out


def _get(result: dict[str, Any], path: str, kind: Literal["int", "number", "str", "object"], *, optional: bool = False) -> Any:
    """
    The value at dotted *path* of *result*, checked to be of *kind*; None when *optional* and absent or null.

    An integer (of kind ``int`` or ``number``) must also be below 2^63, as every number a run writes is.
    """
    node: Any = result
    parts = path.split(".")
    for i, part in enumerate(parts):
        if not isinstance(node, dict):
            raise ResultShapeError(f"key '{'.'.join(parts[:i])}' must be an object")
        if part not in node or node[part] is None:
            if optional:
                return None
            raise ResultShapeError(f"key '{path}' is missing; was the file written by stacksim run --json?")
        node = node[part]
    if kind == "int":
        ok = type(node) is int and node >= 0
    elif kind == "number":  # an int is checked before math.isfinite, which cannot take one too large for a float
        ok = (type(node) is int and node >= 0) or (type(node) is float and math.isfinite(node) and node >= 0)
    elif kind == "str":
        ok = isinstance(node, str)
    else:
        ok = isinstance(node, dict)
    if not ok:
        allowed = {"int": "a non-negative integer", "number": "a non-negative number", "str": "a string", "object": "an object"}
        got = shorten(json.dumps(node, ensure_ascii=False), 60)
        raise ResultShapeError(f"key '{path}' must be {allowed[kind]} (got {got})")
    if type(node) is int and node > INT64_MAX:
        raise ResultShapeError(f"key '{path}' must be below 2^63 (got {shorten(str(node), 30)})")
    return node


_LAYER_FIELDS: Final = (("busy", "busy_ns"), ("p50", "p50_ns"), ("p99", "p99_ns"))
_HIBERNATION: Final[tuple[tuple[str, str, Unit], ...]] = (
    ("uncompressed", "uncompressed_bytes", "bytes"),
    ("body", "body_bytes", "bytes"),
    ("compression ratio", "compression_ratio", "fraction"),
    ("hiberfile", "hiberfile_bytes", "bytes"),
    ("compress time", "compress_ns", "ns"),
    ("compress wait", "compress_wait_ns", "ns"),
)


def _layers(result: dict[str, Any], path: str = "layers") -> dict[str, dict[str, int]]:
    """Each layer's busy time and percentiles at *path* (``layers``, or ``resume.layers``: absent is none)."""
    layers = _get(result, path, "object", optional=path != "layers") or {}
    out: dict[str, dict[str, int]] = {}
    for name, stats in layers.items():
        if not isinstance(stats, dict):
            raise ResultShapeError(f"key '{path}.{shorten(name, 60)}' must be an object of per-layer numbers")
        try:
            out[name] = {key: _get(stats, key, "int") for _, key in _LAYER_FIELDS}
        except ResultShapeError as exc:
            raise ResultShapeError(str(exc).replace("key '", f"key '{path}.{shorten(name, 60)}.", 1)) from None
    return out


def _io_stages(result: dict[str, Any]) -> dict[str, int]:
    """The normal stack's busy time per stage (``io.layers``: a list of objects with ``name`` and ``busy_ns``)."""
    io = result.get("io")
    stages = io.get("layers") if isinstance(io, dict) else None
    if stages is None:
        return {}
    if not isinstance(stages, list):
        raise ResultShapeError("key 'io.layers' must be a list of stages")
    out: dict[str, int] = {}
    for i, stage in enumerate(stages):
        if not isinstance(stage, dict):
            raise ResultShapeError(f"key 'io.layers[{i}]' must be an object")
        name = _get(stage, "name", "str")
        try:
            out[name] = _get(stage, "busy_ns", "int")
        except ResultShapeError as exc:
            raise ResultShapeError(str(exc).replace("key '", f"key 'io.layers[{i}].", 1)) from None
    return out


def _rows(a: dict[str, Any], b: dict[str, Any], which: tuple[str, str]) -> list[Quantity]:
    def both(path: str, kind: Literal["int", "number", "str", "object"], *, optional: bool = False) -> tuple[Any, Any]:
        values = []
        for name, result in zip(which, (a, b), strict=True):
            try:
                values.append(_get(result, path, kind, optional=optional))
            except ResultShapeError as exc:
                raise ResultShapeError(f"{name}: {exc}") from None
        return values[0], values[1]

    rows = [
        Quantity("run", "status", "text", *both("status", "str")),
        Quantity("run", "dump time", "ns", *both("dump_time_ns", "int")),
        Quantity("run", "bytes written", "bytes", *both("bytes_written", "int")),
        Quantity("run", "writes", "writes", *both("write_requests", "int")),
        Quantity("run", "throughput", "bytes_per_s", *both("throughput_bytes_per_s", "number")),
        Quantity("run", "bottleneck", "text", *both("bottleneck", "str", optional=True)),
    ]

    def each(read: Callable[[dict[str, Any]], T]) -> tuple[T, T]:
        """*read* of A and of B; a shape error names the run."""
        out = []
        for name, result in zip(which, (a, b), strict=True):
            try:
                out.append(read(result))
            except ResultShapeError as exc:
                raise ResultShapeError(f"{name}: {exc}") from None
        return out[0], out[1]

    rows += _layer_rows("layers", *each(_layers))
    io = both("io", "object", optional=True)
    if io != (None, None):
        rows.append(Quantity("io", "requests completed", "requests", *both("io.completed", "int", optional=True)))
        rows.append(Quantity("io", "IOPS", "per_s", *both("io.iops", "number", optional=True)))
        rows.append(Quantity("io", "throughput", "bytes_per_s", *both("io.throughput_bytes_per_s", "number", optional=True)))
        for label in ("p50", "p99"):
            rows.append(Quantity("io", f"latency {label}", "ns", *both(f"io.latency.{label}_ns", "int", optional=True)))
        sa, sb = each(_io_stages)
        for stage in [*sa, *(n for n in sb if n not in sa)]:
            rows.append(Quantity("io layers", f"{stage} busy", "ns", sa.get(stage), sb.get(stage)))
    resume = both("resume", "object", optional=True)
    if resume != (None, None):
        rows.append(Quantity("resume", "status", "text", *both("resume.status", "str", optional=True)))
        rows.append(Quantity("resume", "time", "ns", *both("resume.time_ns", "int", optional=True)))
        rows += _layer_rows("resume layers", *each(lambda result: _layers(result, "resume.layers")))
    hibernation = both("hibernation", "object", optional=True)
    if hibernation != (None, None):
        for label, key, unit in _HIBERNATION:
            rows.append(Quantity("hibernation", label, unit, *both(f"hibernation.{key}", "number", optional=True)))
    return rows


def _layer_rows(section: str, la: dict[str, dict[str, int]], lb: dict[str, dict[str, int]]) -> list[Quantity]:
    """Busy time, p50 and p99 of every layer either run has, in A's order, then B's new ones."""
    return [
        Quantity(section, f"{layer} {label}", "ns", la.get(layer, {}).get(key), lb.get(layer, {}).get(key))
        for layer in [*la, *(n for n in lb if n not in la)]
        for label, key in _LAYER_FIELDS
    ]


_BUSY_SECTIONS: Final = ("layers", "resume layers", "io layers")
"""The sections whose ``… busy`` rows :func:`_changed_most` compares: the dump's layers, the resume's, the normal stack's."""


def _changed_most(rows: list[Quantity]) -> Quantity | None:
    """
    The layer busy-time row that changed most: a layer busy in one run and idle (0 ns) in the other first.

    A change to or from 0 ns is a factor larger than any other; among several, the one busiest in the
    run it was busy in. Otherwise the largest factor B ÷ A or A ÷ B. Ties keep the first in stack order.
    """
    best: Quantity | None = None
    best_key = (False, 1.0)
    for q in rows:
        busy = q.section in _BUSY_SECTIONS and q.name.endswith(" busy")
        if not busy or not isinstance(q.a, int) or not isinstance(q.b, int):
            continue
        if q.a == q.b:
            continue
        if not q.a or not q.b:
            key = (True, float(max(q.a, q.b)))
        else:
            ratio = q.ratio
            assert ratio is not None  # both below 2^63 and non-zero
            key = (False, max(ratio, 1 / ratio))
        if key > best_key:
            best, best_key = q, key
    return best


def compare(a: dict[str, Any], b: dict[str, Any], a_name: str = "A", b_name: str = "B") -> Diff:
    """
    Compare result objects *a* and *b* (as ``stacksim run --json`` writes them); *a_name* / *b_name* name them in errors.

    Raises:
        ResultShapeError: a key the comparison uses is missing or of the wrong type (the message names the run and the key).
    """
    scenarios = []
    for name, result in ((a_name, a), (b_name, b)):
        try:
            scenarios.append(_get(result, "replay.scenario", "object"))
        except ResultShapeError as exc:
            raise ResultShapeError(f"{name}: {exc}") from None
    fa, fb = flatten(scenarios[0]), flatten(scenarios[1])
    changes = [
        ScenarioChange(k, fa.get(k), fb.get(k), k in fa, k in fb)
        for k in [*fa, *(k for k in fb if k not in fa)]
        if (k in fa) != (k in fb) or fa[k] != fb[k]
    ]
    rows = _rows(a, b, (a_name, b_name))
    names = [str(s.get("scenario", {}).get("name", "")) if isinstance(s.get("scenario"), dict) else "" for s in scenarios]
    return Diff(a_name, b_name, names[0], names[1], tuple(changes), tuple(rows), _changed_most(rows))


def format_value(unit: Unit, value: Value) -> str:
    """*value* with its unit (``—`` when the run has none)."""
    if value is None:
        return "—"
    if unit == "text":
        return str(value)
    assert isinstance(value, int | float)
    if unit == "ns":
        return format_ns(value)
    if unit == "bytes":
        return format_bytes(value)
    if unit == "bytes_per_s":
        return format_bandwidth(value)
    if unit == "fraction":
        return f"{value * 100:.3g} %"
    if unit == "per_s":
        return f"{value:,.0f} IOPS"
    if unit == "requests":
        return f"{value:,} requests"
    return f"{value:,} writes"


def format_ratio(q: Quantity) -> str:
    """B ÷ A as a factor (``2.04×``); ``new`` / ``gone`` for a value one run lacks, empty when there is no ratio."""
    if q.a is None and q.b is not None:
        return "new"
    if q.b is None and q.a is not None:
        return "gone"
    if not q.changed:
        return "1×" if q.unit != "text" else ""
    r = q.ratio
    if r is None:
        if q.unit == "text":
            return "changed"
        return "(was 0)" if q.a == 0 else "(beyond a float)"
    text = f"{r:.3g}×"
    return "≈1×" if text == "1×" else text


def _pair(q: Quantity) -> tuple[str, str]:
    if q.unit == "ns" and isinstance(q.a, int) and isinstance(q.b, int):
        return format_ns_pair(q.a, q.b)
    fa, fb = format_value(q.unit, q.a), format_value(q.unit, q.b)
    if fa == fb and q.a != q.b and isinstance(q.a, int | float) and isinstance(q.b, int | float):
        suffix = {"bytes": " B", "bytes_per_s": " B/s", "writes": " writes"}.get(q.unit, "")
        return f"{q.a:,}{suffix}", f"{q.b:,}{suffix}"
    return fa, fb


def changed_most_line(d: Diff) -> str | None:
    """
    The ``changed most: LAYER (busy 2.04×, 5.49 s → 11.2 s)`` sentence, or None when no layer's busy time changed.

    A layer idle in one run says ``busy from 0`` (A idle) or ``busy to 0`` (B idle) instead of a factor.
    """
    q = d.changed_most
    if q is None:
        return None
    a, b = _pair(q)
    factor = "from 0" if q.a == 0 else "to 0" if q.b == 0 else format_ratio(q)
    return f"changed most: {q.name.removesuffix(' busy')} (busy {factor}, {a} → {b})"


def _safe(text: object, limit: int = 80) -> str:
    from rich.markup import escape

    return escape(terminal_safe(shorten(str(text), limit)))


def _scenario_value(present: bool, value: object) -> str:
    if not present:
        return "(absent)"
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def render_diff(d: Diff, console: Console) -> None:
    """Print *d*: the two runs, the scenario keys that changed, every compared quantity with B ÷ A, what changed most."""
    from rich.table import Table

    console.print(f"A: {_safe(d.a_name)} (scenario {_safe(d.a_scenario)})")
    console.print(f"B: {_safe(d.b_name)} (scenario {_safe(d.b_scenario)})")
    if d.same:
        console.print("no difference: the same scenario and the same numbers")
        return
    if d.scenario:
        keys = Table(title="scenario keys that differ", title_justify="left")
        keys.add_column("key")
        keys.add_column("A")
        keys.add_column("B")
        for c in d.scenario:
            keys.add_row(_safe(c.key), _safe(_scenario_value(c.in_a, c.old)), _safe(_scenario_value(c.in_b, c.new)))
        console.print(keys)
    else:
        console.print("scenario: the same keys and values")
    table = Table(title="what changed (B ÷ A)", title_justify="left")
    table.add_column("")
    table.add_column("A", justify="right")
    table.add_column("B", justify="right")
    table.add_column("B ÷ A", justify="right")
    section = None
    for q in d.rows:
        if q.section != section and section is not None:
            table.add_section()
        section = q.section
        a, b = _pair(q)
        name = q.name if q.section == "run" else f"{q.section}: {q.name}" if q.section != "layers" else q.name
        style = "bold" if q.changed else "dim"
        table.add_row(_safe(name), _safe(a), _safe(b), _safe(format_ratio(q)), style=style)
    console.print(table)
    line = changed_most_line(d)
    console.print(_safe(line, 300) if line is not None else "changed most: no layer's busy time changed")


def diff_json(d: Diff) -> str:
    """*d* as pretty JSON text (the same facts as :func:`render_diff`, values in their base units)."""

    def change(c: ScenarioChange) -> dict[str, object]:
        out: dict[str, object] = {"key": c.key}
        if c.in_a:
            out["a"] = c.old
        if c.in_b:
            out["b"] = c.new
        return out

    def row(q: Quantity) -> dict[str, object]:
        return {"section": q.section, "name": q.name, "unit": q.unit, "a": q.a, "b": q.b, "ratio": q.ratio, "changed": q.changed}

    most = d.changed_most
    doc = {
        "a": {"file": d.a_name, "scenario": d.a_scenario},
        "b": {"file": d.b_name, "scenario": d.b_scenario},
        "same": d.same,
        "scenario": [change(c) for c in d.scenario],
        "rows": [row(q) for q in d.rows],
        "changed_most": None if most is None else {"layer": most.name.removesuffix(" busy"), **row(most)},
    }
    return json_safe(json.dumps(doc, indent=2, ensure_ascii=False, allow_nan=False)) + "\n"
