"""
Scenario files: TOML in, a validated, frozen :class:`Scenario` out -- or a clear error.

Every key, its unit, default and allowed range is listed in ``docs/reference/scenario.md``.
Sizes and times take integers (bytes, nanoseconds, bytes per second) or strings with units
(``"16 GiB"``, ``"20 us"``, ``"3 GB/s"``). Every table forbids unknown keys.

Validation never raises a traceback at the user: :class:`ScenarioError` carries the file and a
list of (key, problem) pairs and renders them as one paragraph each.
"""

from __future__ import annotations

import datetime
import math
from fractions import Fraction
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from stacksim._io import MAX_DEPTH, InputError, decode_text, parse_toml, read_input, shorten, terminal_safe
from stacksim.devices import DEFAULT_PRESET, DEVICE_PRESETS, FIXED_DEFAULTS, MODELS, build_device
from stacksim.filters import FilterCatalog
from stacksim.layout import MAX_RUNS, FileLayout, LayoutError, build_layout
from stacksim.memory import DumpPlan, plan_crash_dump, plan_hibernation
from stacksim.miniport import DEFAULT_PORT, PORT_PRESETS, PortPreset
from stacksim.registry import CrashControl
from stacksim.requests import PAGE_SIZE
from stacksim.units import (
    INT64_MAX,
    describe,
    format_bytes,
    format_ns,
    parse_bandwidth,
    parse_fraction,
    parse_size,
    parse_time_ns,
)

__all__ = ["Scenario", "ScenarioError", "load_scenario", "read_scenario_data", "validate_scenario"]

Nanoseconds = Annotated[int, BeforeValidator(parse_time_ns)]
"""A duration: integer ns or a string with a unit, at most 2^60 ns."""
Bytes = Annotated[int, BeforeValidator(parse_size)]
"""A size: integer bytes or a string with a unit, at most 2^60 bytes."""
BytesPerSecond = Annotated[int, BeforeValidator(parse_bandwidth)]
"""A rate: integer bytes per second or a string with a unit (bytes or bits per second), at most 2^60 B/s."""

Ratio = Annotated[Fraction, BeforeValidator(parse_fraction)]
"""A fraction in (0, 1]."""

Share = Annotated[Fraction, BeforeValidator(lambda value: parse_fraction(value, zero=True))]
"""A fraction in [0, 1]."""

MAX_RAM = 2**52
"""Largest RAM: 4 PiB, what x86-64's widest (52-bit) physical addresses reach."""

MAX_TRANSFER = 2**32 - PAGE_SIZE
"""Largest dump-port transfer: MaximumTransferLength is a ULONG (below 4 GiB), in whole pages."""

MAX_FAULTS = 1_000_000
"""Most ``[[faults]]`` tables a scenario may have (a guard against runaway input, ASSUMPTION)."""


_STRICT = ConfigDict(extra="forbid", strict=True, frozen=True, arbitrary_types_allowed=True)


class ScenarioSection(BaseModel):
    """``[scenario]``: what happens."""

    model_config = _STRICT
    name: str = Field(min_length=1)
    description: str = ""
    event: Literal["crash", "hibernate"] = "crash"
    seed: int = Field(default=0, ge=0, le=INT64_MAX)
    bugcheck_at: Nanoseconds | None = None
    hibernate_at: Nanoseconds | None = None

    @model_validator(mode="after")
    def _event_time(self) -> ScenarioSection:
        if self.event == "crash" and self.hibernate_at is not None:
            raise ValueError('hibernate_at is for event = "hibernate"; a crash scenario sets bugcheck_at')
        if self.event == "hibernate" and self.bugcheck_at is not None:
            raise ValueError('bugcheck_at is for event = "crash"; a hibernate scenario sets hibernate_at')
        return self

    @property
    def event_at(self) -> int:
        """When the bugcheck or hibernation starts, ns after boot."""
        return (self.bugcheck_at if self.event == "crash" else self.hibernate_at) or 0


class MemorySection(BaseModel):
    """``[memory]``: the machine's RAM and what each dump type takes of it."""

    model_config = _STRICT
    ram: Bytes = 8 * 2**30
    kernel_fraction: Ratio = Fraction(1, 3)
    free_fraction: Share = Fraction(1, 4)
    file_cache_fraction: Share = Fraction(1, 4)
    guest_fraction: Share = Fraction(0)
    secondary_data: Bytes = Field(default=0, le=256 * 2**20)

    @field_validator("ram")
    @classmethod
    def _ram(cls, ram: int) -> int:
        if ram <= 0 or ram % PAGE_SIZE:
            raise ValueError(f"ram = {ram:,} bytes must be a positive whole number of 4 KiB pages")
        if ram > MAX_RAM:
            raise ValueError(f"ram = {ram:,} bytes is more than 4 PiB (2^52 bytes), the most x86-64 physical addresses reach")
        return ram

    @model_validator(mode="after")
    def _shares(self) -> MemorySection:
        if self.free_fraction + self.file_cache_fraction + self.guest_fraction >= 1:
            raise ValueError("free_fraction + file_cache_fraction + guest_fraction must leave some memory (sum < 1)")
        return self

    @property
    def active_fraction(self) -> Fraction:
        """What an active dump keeps: RAM minus free/zeroed, file-cache and guest-VM pages."""
        return 1 - self.free_fraction - self.file_cache_fraction - self.guest_fraction


class HibernationSection(BaseModel):
    """``[hibernation]``: the hiberfile image."""

    model_config = _STRICT
    image_fraction: Ratio = Fraction(2, 5)


class DumpDriverSection(BaseModel):
    """``[dump_driver]``: crashdmp's own costs (assumptions; no published figures)."""

    model_config = _STRICT
    integrity_check: Nanoseconds = 0
    per_request: Nanoseconds = 0
    write_retries: int = Field(default=0, ge=0, le=100)
    """Times crashdmp re-issues a write the device failed (ASSUMPTION: no documented policy)."""


class DumpPortSection(BaseModel):
    """``[dump_port]``: the dump-mode port/miniport: a ``preset`` and/or its parameters."""

    model_config = _STRICT
    preset: str | None = None
    driver: str | None = Field(default=None, min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    max_transfer: Bytes | None = Field(default=None, ge=PAGE_SIZE)
    common_buffer: Bytes | None = Field(default=None, ge=PAGE_SIZE)
    per_request_overhead: Nanoseconds | None = None
    reset: Nanoseconds | None = None
    timeout: Nanoseconds = Field(default=10 * 10**9, gt=0)
    """How long the port polls a command before giving up (ASSUMPTION)."""

    @field_validator("max_transfer", "common_buffer")
    @classmethod
    def _pages(cls, value: int | None) -> int | None:
        if value is not None and value % PAGE_SIZE:
            raise ValueError(f"{value:,} bytes is not a whole number of 4 KiB pages")
        if value is not None and value > MAX_TRANSFER:
            raise ValueError(f"{value:,} bytes is more than a dump port moves at once (MaximumTransferLength is a ULONG)")
        return value

    @model_validator(mode="after")
    def _preset(self) -> DumpPortSection:
        self.resolved()
        return self

    def resolved(self) -> PortPreset:
        """The port's parameters after applying the preset and the overrides."""
        if self.preset is not None and self.preset not in PORT_PRESETS:
            raise ValueError(f"preset {self.preset!r} is unknown; presets: {', '.join(PORT_PRESETS)}")
        base = PORT_PRESETS[self.preset] if self.preset is not None else DEFAULT_PORT
        overrides = {k: getattr(self, k) for k in ("driver", "max_transfer", "common_buffer", "per_request_overhead", "reset")}
        return base.with_(**{k: v for k, v in overrides.items() if v is not None})


class DiskSection(BaseModel):
    """
    ``[disk]``: the device: a ``preset`` and/or a ``model`` with its parameters.

    Keys given beside a preset override it; a bare model starts from its default preset
    (``fixed`` from :data:`~stacksim.devices.FIXED_DEFAULTS`).
    """

    model_config = _STRICT
    preset: str | None = None
    model: Literal["fixed", "ssd", "hdd", "virtual", "ram"] | None = None
    latency: Nanoseconds | None = None
    bandwidth: BytesPerSecond | None = None
    media_bandwidth: BytesPerSecond | None = None
    inner_media_bandwidth: BytesPerSecond | None = None
    cache: Bytes | None = None
    volatile_cache: bool | None = None
    zones: int | None = Field(default=None, ge=1, le=1000)
    rpm: int | None = Field(default=None, ge=1000, le=30_000)
    seek: Nanoseconds | None = None
    iops_limit: int | None = Field(default=None, ge=1, le=10**9)
    bandwidth_limit: BytesPerSecond | None = None
    io_unit: Bytes | None = Field(default=None, ge=512)
    flush: Nanoseconds | None = None
    size: Bytes | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _resolve(self) -> DiskSection:
        self.resolved()
        return self

    def resolved(self) -> tuple[str, str, dict[str, int], int]:
        """(kind, model, parameters, size) after applying the preset and the overrides."""
        if self.preset is not None:
            preset = DEVICE_PRESETS.get(self.preset)
            if preset is None:
                raise ValueError(
                    f"preset {self.preset!r} is unknown; presets: {', '.join(DEVICE_PRESETS)} (see `stacksim devices`)"
                )
            if self.model is not None and self.model != preset.model:
                raise ValueError(f"preset {self.preset!r} is a {preset.model!r} device, but model = {self.model!r}")
            kind, model, params, size = preset.kind, preset.model, dict(preset.params), preset.size
        elif self.model in (None, "fixed"):
            kind, model, params, size = "fixed", "fixed", dict(FIXED_DEFAULTS), 2 * 10**12
        else:
            base = DEVICE_PRESETS[DEFAULT_PRESET[self.model]]
            kind, model, params, size = base.kind, base.model, dict(base.params), base.size
        for key in dict.fromkeys(k for keys in MODELS.values() for k in keys):
            value = getattr(self, key)
            if value is None:
                continue
            if key not in MODELS[model]:
                takes = ", ".join(MODELS[model])
                raise ValueError(f"{key} does not apply to model = {model!r}, which takes: {takes}")
            params[key] = int(value)
        return kind, model, params, self.size if self.size is not None else size


class RunSpec(BaseModel):
    """One explicit disk run of the target file: partition-relative offset and length."""

    model_config = _STRICT
    offset: Bytes
    length: Bytes = Field(gt=0)


class LayoutSection(BaseModel):
    """``[layout]``: where the target file lies and how big it is."""

    model_config = _STRICT
    target: Literal["pagefile", "dedicated", "hiberfile"] | None = None
    size: Bytes | None = Field(default=None, gt=0)
    runs: int | list[RunSpec] = 1
    partition_offset: Bytes = 2**20
    partition_size: Bytes | None = Field(default=None, gt=0)
    file_offset: Bytes = 2**30
    on_too_small: Literal["refuse", "truncate"] = "refuse"

    @field_validator("runs", mode="before")
    @classmethod
    def _runs(cls, value: object) -> object:
        if isinstance(value, bool) or not isinstance(value, int | list):
            raise ValueError(f"{describe(value)}: runs is a number (1 to {MAX_RUNS:,}) or a list of {{offset, length}} tables")
        if isinstance(value, int) and not 1 <= value <= MAX_RUNS:
            raise ValueError(f"{describe(value)}: runs must be from 1 to {MAX_RUNS:,} (or a list of {{offset, length}} tables)")
        if isinstance(value, list) and len(value) > MAX_RUNS:
            raise ValueError(f"a list of {len(value):,} runs; a file may have at most {MAX_RUNS:,}")
        return value

    @model_validator(mode="after")
    def _check(self) -> LayoutSection:
        for key in ("partition_offset", "file_offset", "size", "partition_size"):
            value = getattr(self, key)
            if value is not None and value % 512:
                raise ValueError(f"{key} = {value} must be a multiple of the 512-byte sector")
        if not isinstance(self.runs, int):
            if not self.runs:
                raise ValueError("runs = [] lists no disk runs")
            for i, run in enumerate(self.runs):
                if run.offset % 512 or run.length % 512:
                    raise ValueError(f"runs[{i}] = {{offset = {run.offset}, length = {run.length}}} is not sector aligned")
            if self.size is not None and self.size != sum(r.length for r in self.runs):
                raise ValueError("size differs from the sum of the explicit runs' lengths; give one or the other")
        return self


Callback = Literal["dump_start", "dump_write", "dump_read", "dump_finish", "dump_unload"]


class _FaultBase(BaseModel):
    model_config = _STRICT


class DeviceErrorFault(_FaultBase):
    """The device completes a write with an error."""

    kind: Literal["device_error"]
    at_request: int | None = Field(default=None, ge=1, le=INT64_MAX)
    at_offset: Bytes | None = None
    persistent: bool = True
    status: int = Field(default=0xC0000185, ge=0xC0000000, le=0xFFFFFFFF)

    @model_validator(mode="after")
    def _where(self) -> DeviceErrorFault:
        if (self.at_request is None) == (self.at_offset is None):
            raise ValueError("a device_error needs exactly one of at_request (a write number) or at_offset (a partition offset)")
        return self


class DeviceTimeoutFault(_FaultBase):
    """The device never completes a write; the dump port gives up after its timeout."""

    kind: Literal["device_timeout"]
    at_request: int = Field(ge=1, le=INT64_MAX)
    persistent: bool = True


class PowerLossFault(_FaultBase):
    """Power fails at a time after the bugcheck (or the start of hibernation)."""

    kind: Literal["power_loss"]
    at: Nanoseconds


class FilterFault(_FaultBase):
    """A filter's callback raises, hangs or returns an error status."""

    kind: Literal["filter_raise", "filter_hang", "filter_error_status"]
    filter: str
    callback: Callback = "dump_write"
    at_request: int | None = Field(default=None, ge=1, le=INT64_MAX)
    status: int = Field(default=0xC0000001, ge=0xC0000000, le=0xFFFFFFFF)
    dump_type: Literal["any", "crashdump", "hibernation"] = "any"


class SlowFilterFault(_FaultBase):
    """Every call of a filter's callback (or of all its callbacks) takes longer."""

    kind: Literal["slow_filter"]
    filter: str
    extra: Nanoseconds
    callback: Callback | Literal["any"] = "any"


Fault = Annotated[
    DeviceErrorFault | DeviceTimeoutFault | PowerLossFault | FilterFault | SlowFilterFault,
    Field(discriminator="kind"),
]


_FAULT_KINDS = frozenset(
    k
    for m in (DeviceErrorFault, DeviceTimeoutFault, PowerLossFault, FilterFault, SlowFilterFault)
    for k in m.model_fields["kind"].annotation.__args__  # type: ignore[union-attr]
)


class EngineSection(BaseModel):
    """``[engine]``: simulator settings."""

    model_config = _STRICT
    watchdog: Nanoseconds = Field(default=60 * 10**9, gt=0)
    wall_clock_limit: Nanoseconds = Field(default=10 * 10**9, ge=0)
    """Real time a filter callback may run before the wall-clock guard stops it (0: no guard)."""


class Scenario(BaseModel):
    """A whole scenario file, validated. Filter tables are validated by each filter's Config."""

    model_config = _STRICT
    scenario: ScenarioSection
    registry: CrashControl = CrashControl()
    memory: MemorySection = MemorySection()
    hibernation: HibernationSection = HibernationSection()
    filters: dict[str, dict[str, Any]] = Field(default_factory=dict)
    dump_driver: DumpDriverSection = DumpDriverSection()
    dump_port: DumpPortSection = DumpPortSection()
    disk: DiskSection = DiskSection()
    layout: LayoutSection = LayoutSection()
    engine: EngineSection = EngineSection()
    faults: list[Fault] = Field(default_factory=list, max_length=MAX_FAULTS)
    _filter_configs: dict[str, Any] = PrivateAttr(default_factory=dict)
    _source_data: dict[str, Any] = PrivateAttr(default_factory=dict)
    _layout: FileLayout | None = PrivateAttr(default=None)

    @property
    def filter_configs(self) -> dict[str, Any]:
        """Validated filter configurations by service name (filled by :func:`validate_scenario`)."""
        return self._filter_configs

    @property
    def source_data(self) -> dict[str, Any]:
        """The scenario as written (parsed TOML), recorded in results so a run can be replayed."""
        return self._source_data

    @property
    def target(self) -> str:
        """The file the dump goes to: ``[layout] target``, else what the event and registry imply."""
        if self.layout.target is not None:
            return self.layout.target
        if self.scenario.event == "hibernate":
            return "hiberfile"
        return "dedicated" if self.registry.dedicated_dump_file else "pagefile"

    def dump_plan(self) -> DumpPlan:
        """What the event writes: the crash dump's or hiberfile image's parts (:mod:`stacksim.memory`)."""
        if self.scenario.event == "hibernate":
            return plan_hibernation(self.memory.ram, image_fraction=self.hibernation.image_fraction)
        return plan_crash_dump(
            self.registry.crash_dump_enabled,
            self.registry.filter_pages,
            self.memory.ram,
            kernel_fraction=self.memory.kernel_fraction,
            active_fraction=self.memory.active_fraction,
            secondary=self.memory.secondary_data,
        )

    def file_layout(self) -> FileLayout:
        """
        The target file's disk runs (``[layout]``), checked against the partition and the disk.

        :func:`validate_scenario` has built it already (so a scenario it accepted always has
        one); otherwise it is built here.

        Raises:
            LayoutError: the layout does not fit, with the keys to blame.
        """
        if self._layout is None:
            self._layout = self._build_layout()
        return self._layout

    def _build_layout(self) -> FileLayout:
        lay = self.layout
        if isinstance(lay.runs, list):
            runs: int | list[tuple[int, int]] = [(r.offset, r.length) for r in lay.runs]
        else:
            runs = lay.runs
        size, size_key, size_text = lay.size, "[layout] size", ""
        if size is None:  # sized to the dump
            plan = self.dump_plan()
            size = max(-(-plan.total_bytes // PAGE_SIZE) * PAGE_SIZE, PAGE_SIZE)
            size_key = "[memory] ram"
            what = "the hiberfile image" if plan.kind == "hibernation" else f"the {plan.kind} dump"
            size_text = f", the size of {what} of {format_bytes(self.memory.ram)} of RAM"
        return build_layout(
            self.target,
            disk_size=self.disk.resolved()[3],
            partition_offset=lay.partition_offset,
            partition_size=lay.partition_size,
            file_offset=lay.file_offset,
            size=size,
            runs=runs,
            size_key=size_key,
            size_text=size_text,
        )

    @model_validator(mode="after")
    def _faults_name_listed_filters(self) -> Scenario:
        for i, fault in enumerate(self.faults):
            name = getattr(fault, "filter", None)
            if name is not None and name not in self.registry.dump_filters:
                listed = ", ".join(self.registry.dump_filters) or "none"
                raise ValueError(f"[[faults]] #{i + 1}: filter {name!r} is not in DumpFilters (listed: {listed})")
        if sum(isinstance(f, PowerLossFault) for f in self.faults) > 1:
            raise ValueError("[[faults]]: at most one power_loss")
        return self

    @model_validator(mode="after")
    def _target_matches_event(self) -> Scenario:
        target = self.layout.target
        if target is None:
            return self
        if self.scenario.event == "hibernate" and target != "hiberfile":
            raise ValueError(f'[layout] target = "{target}": hibernation writes the hiberfile (target = "hiberfile")')
        if self.scenario.event == "crash" and target == "hiberfile":
            raise ValueError('[layout] target = "hiberfile": a crash dump goes to the page file or a dedicated dump file')
        return self


class ScenarioError(Exception):
    """A scenario that cannot be used: the file and every problem found, by key."""

    def __init__(self, source: str, problems: list[tuple[str, str]]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(self.render())

    def render(self) -> str:
        """
        One paragraph: the file, then each problem with its key.

        Problems with the same message are listed once with their keys (``[disk] a, [disk] b
        and 3 more: unknown key``), at most :data:`MAX_PROBLEMS_SHOWN` lines, the rest counted.
        Text from the input is escaped for the terminal and long keys, values and messages are
        shortened, so a 100 KB value or 100k unknown keys still give a message of a few lines.
        """
        source = terminal_safe(shorten(self.source, 200))
        if len(self.problems) == 1:
            key, msg = (terminal_safe(shorten(text, limit)) for text, limit in zip(self.problems[0], (100, 300), strict=True))
            text = f"{key}: {msg}" if key else msg
            return f"{source}: {text}" if source else text
        groups: dict[str, list[str]] = {}
        for key, msg in self.problems:
            groups.setdefault(msg, []).append(key)
        lines = [f"{source}: {len(self.problems):,} problems:"]
        shown = 0
        for msg, keys in list(groups.items())[:MAX_PROBLEMS_SHOWN]:
            names = ", ".join(terminal_safe(shorten(k, 100)) for k in keys[:5] if k)
            if len(keys) > 5:
                names += f" and {len(keys) - 5:,} more"
            text = terminal_safe(shorten(msg, 300))
            lines.append(f"  - {names}: {text}" if names else f"  - {text}")
            shown += len(keys)
        if shown < len(self.problems):
            lines.append(f"  … and {len(self.problems) - shown:,} more problems")
        return "\n".join(lines)


MAX_PROBLEMS_SHOWN = 10
"""How many problems a :class:`ScenarioError` lists; the rest are counted."""


def _key(loc: tuple[int | str, ...]) -> str:
    if not loc:
        return ""
    head, rest = str(loc[0]), loc[1:]
    if head == "filters" and rest:
        table, rest = f'[filters."{rest[0]}"]', rest[1:]
    else:
        table = f"[{head}]"
    out = table
    for part in rest:
        out += f"[{part}]" if isinstance(part, int) else f" {part}" if out == table else f".{part}"
    return out


def _allowed(model: type[BaseModel], loc: tuple[int | str, ...]) -> str:
    """The keys allowed at the table *loc* points into (for unknown-key messages)."""
    current: Any = model
    for part in loc[:-1]:
        fields = getattr(current, "model_fields", None)
        if fields is None:
            return ""
        field = next((f for n, f in fields.items() if part in (n, f.alias)), None)
        if field is None:
            return ""
        current = field.annotation
    fields = getattr(current, "model_fields", None)
    if not fields:
        return ""
    names = sorted((f.alias or n) for n, f in fields.items() if not f.exclude)
    return "; allowed keys: " + ", ".join(names)


def _problems(exc: ValidationError, model: type[BaseModel], prefix: tuple[int | str, ...] = ()) -> list[tuple[str, str]]:
    out = []
    for err in exc.errors(include_url=False):
        loc = prefix + tuple(err["loc"])
        if len(loc) > 2 and loc[0] == "faults" and isinstance(loc[1], int) and loc[2] in _FAULT_KINDS:
            loc = loc[:2] + loc[3:]  # the fault's kind, which pydantic adds to the path, is not a key
        msg = str(err["msg"])
        kind = err["type"]
        if kind == "extra_forbidden":
            msg = "unknown key" + _allowed(model, tuple(err["loc"]))
        elif kind == "missing":
            msg = "required key is missing"
        elif kind == "value_error":
            msg = msg.removeprefix("Value error, ")
        else:
            shown = err.get("input")
            if not isinstance(shown, dict | list | tuple):
                msg += f" (got {describe(shown)})"
        out.append((_key(loc), msg))
    return out


def _plugin_exception(exc: BaseException) -> str:
    """What plugin code raised, in one line of at most 200 characters (a KeyboardInterrupt too is the plugin's)."""
    text = " ".join(str(exc).split())
    if len(text) > 200:
        text = text[:197] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


_CONTAINERS = (dict, list, tuple)

_AS_JSON = "the scenario is recorded as JSON in the result, for replay"


def _not_json(value: object) -> str | None:
    """Why the scalar *value* cannot be recorded as JSON, or None when it can (a string, integer, finite float, bool)."""
    if isinstance(value, str | int) or value is None:  # bool is an int
        return None
    if isinstance(value, float):
        if math.isfinite(value):
            return None
        return f"{value!r} is not a finite number; numbers must be finite ({_AS_JSON})"
    if isinstance(value, datetime.date | datetime.time):  # a datetime is a date
        kind = (
            "datetime" if isinstance(value, datetime.datetime) else "date" if isinstance(value, datetime.date) else "time of day"
        )
        return (
            f"a TOML {kind} ({shorten(value.isoformat(), 40)}) is not allowed: {_AS_JSON}, and JSON has no dates or times; "
            "write it as a string"
        )
    return f"a {type(value).__name__} is not allowed: values are strings, numbers, booleans, arrays and tables ({_AS_JSON})"


def _plain_copy(data: dict[str, Any]) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """
    A copy of parsed TOML *data* (tables, arrays, scalars), and a problem for each value that cannot be used.

    Iterative, so a 100,000-deep array costs no recursion: the value is refused (past
    :data:`stacksim._io.MAX_DEPTH` levels, the root table being level 1, as for files) instead of
    raising RecursionError in a copy or a validator. Every value must be one JSON can hold,
    because the copy is recorded in the result for ``stacksim replay``: a TOML date, time or
    datetime, ``inf`` or ``nan``, a table key that is not a string (the Python API) and any other
    Python object are refused by key, wherever they are (a plugin's configuration included).
    """
    problems: list[tuple[str, str]] = []
    root: dict[str, Any] = {}
    stack: list[tuple[Any, Any, tuple[int | str, ...]]] = [(data, root, ())]
    while stack:
        src, dst, path = stack.pop()
        for k, v in src.items() if isinstance(src, dict) else enumerate(src):
            if isinstance(src, dict) and not isinstance(k, str):
                problems.append((_key(path), f"the key {shorten(repr(k), 60)} is not a string ({_AS_JSON})"))
                continue
            if isinstance(v, _CONTAINERS):
                here = (*path, k)
                values = v.values() if isinstance(v, dict) else v
                if len(here) + 1 > MAX_DEPTH:
                    table = 3 if here[0] == "filters" else 2
                    problems.append((_key(here[:table]), f"tables and arrays are nested more than {MAX_DEPTH} levels deep"))
                    v = None
                elif not any(isinstance(x, _CONTAINERS) for x in values):  # a leaf table or array: check and copy at once
                    items = v.items() if isinstance(v, dict) else enumerate(v)
                    for kk, x in items:
                        if (why := _not_json(x)) is not None:
                            problems.append((_key((*here, kk)), why))
                        elif isinstance(v, dict) and not isinstance(kk, str):
                            problems.append((_key(here), f"the key {shorten(repr(kk), 60)} is not a string ({_AS_JSON})"))
                    v = dict(v) if isinstance(v, dict) else list(v)
                else:
                    child: Any = {} if isinstance(v, dict) else [None] * len(v)
                    stack.append((v, child, here))
                    v = child
            elif (why := _not_json(v)) is not None:
                problems.append((_key((*path, k)), why))
            dst[k] = v
    return root, problems


def _time_limit_problem(s: Scenario, layout: FileLayout) -> tuple[str, str] | None:
    """
    A problem when the worst case of the dump could pass :data:`~stacksim.units.INT64_MAX` ns.

    Every time stacksim reports (dump time, trace timestamps) is a signed 64-bit integer of
    nanoseconds; this proves the bound before anything runs. The worst case of one write: the
    dump driver's and port's costs, each filter's call running up to the watchdog (a longer one
    ends the run as ``hung``), and the device up to the port's timeout or its own slowest write,
    whichever is shorter (a ``device_timeout`` fault: the timeout); times every write and every
    retry, plus the event time, start-up and the final flush (which also times out). That a call
    never runs past the watchdog (the run ends as ``hung``) is the engine's part of the bound.
    """
    plan = s.dump_plan()
    port = s.dump_port.resolved()
    chunk = port.max_pages_per_write * PAGE_SIZE
    placed = plan.placed() if plan.total_bytes <= layout.size else plan.truncated(layout.size).placed()
    writes = sum(layout.pieces(pos, part.bytes, chunk) for part, pos in placed)
    kind, model, params, disk_size = s.disk.resolved()
    worst = build_device(model, params, disk_size, kind).worst_write_ns(chunk, chunk)
    timeout = s.dump_port.timeout
    device = min(worst, timeout)
    watchdog = s.engine.watchdog
    filters = len(s.registry.dump_filters)
    retries = s.dump_driver.write_retries
    device_faults = sum(isinstance(f, DeviceErrorFault | DeviceTimeoutFault) for f in s.faults)
    attempts = writes * (1 + retries) if worst > timeout else writes + retries * (device_faults + 1)
    stacks = 2 if s.scenario.event == "hibernate" else 1
    terms = {
        f"[scenario] {'hibernate_at' if s.scenario.event == 'hibernate' else 'bugcheck_at'}": s.scenario.event_at,
        "[engine] watchdog": attempts * filters * watchdog + (4 * stacks * filters + 1) * watchdog,
        "[dump_port] timeout": attempts * device + device_faults * (1 + retries) * timeout + timeout,
        "[dump_port] per_request_overhead": attempts * port.per_request_overhead + port.reset,
        "[dump_driver] per_request": attempts * s.dump_driver.per_request + s.dump_driver.integrity_check,
    }
    total = sum(terms.values())
    if total <= INT64_MAX:
        return None
    key = max(terms, key=lambda k: terms[k])
    each = s.dump_driver.per_request + port.per_request_overhead + filters * watchdog + device
    how = f"{filters} filter call{'s' if filters != 1 else ''} of up to the {format_ns(watchdog)} watchdog, " if filters else ""
    return (
        key,
        f"the dump could run past the simulated-time limit of 2^63 - 1 ns (about 292 years): {attempts:,} write attempts "
        f"of up to {format_ns(each)} each ({how}the device up to {format_ns(device)}); lower this value or write less",
    )


def validate_scenario(data: dict[str, Any], source: str, catalog: FilterCatalog) -> Scenario:
    """
    Validate parsed TOML *data*; raise :class:`ScenarioError` listing every problem.

    Beyond each key's own range this checks what only the whole scenario shows, so that a
    scenario it accepts runs without a scenario error: the target file's layout against the
    partition and the disk (overlapping runs, runs or a file past the partition, a partition past
    the disk, a dump bigger than the disk), and that no time the run reports can pass 2^63 - 1 ns.
    """
    if not isinstance(data, dict):
        raise ScenarioError(source, [("", f"a scenario is a table of tables, not {describe(data)}")])
    source_data, problems = _plain_copy(data)
    if problems:
        raise ScenarioError(source, problems)
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(source, _problems(exc, Scenario)) from None
    known = ", ".join(catalog.names())
    for i, name in enumerate(scenario.registry.dump_filters):
        if catalog.get(name) is None:
            problems.append(
                (
                    f"[registry] DumpFilters[{i}]",
                    f"unknown filter {name!r}; known filters: {known}. Load others with --plugin FILE.py "
                    "or an installed package's 'stacksim.filters' entry point",
                )
            )
    configs: dict[str, Any] = {}
    for name, table in scenario.filters.items():
        cls = catalog.get(name)
        if cls is None:
            problems.append((f'[filters."{name}"]', f"configures unknown filter {name!r}; known filters: {known}"))
            continue
        try:
            configs[name] = cls.Config.model_validate(table)
        except ValidationError as exc:
            problems += _problems(exc, cls.Config, ("filters", name))
        except BaseException as exc:  # plugin code (a validator) raised: its error, never the process's exit
            problems.append((f'[filters."{name}"]', f"the filter's Config (plugin code) raised {_plugin_exception(exc)}"))
    try:
        layout = scenario.file_layout()
    except LayoutError as exc:
        problems += exc.problems
    else:
        if (limit := _time_limit_problem(scenario, layout)) is not None:
            problems.append(limit)
    if problems:
        raise ScenarioError(source, problems)
    for name in scenario.registry.dump_filters:
        if name not in configs:
            cls = catalog.get(name)
            assert cls is not None
            try:
                configs[name] = cls.Config()
            except BaseException as exc:  # a plugin whose defaults do not validate, or whose validator raises
                problems.append((f'[filters."{name}"]', f"the filter's Config (plugin code) raised {_plugin_exception(exc)}"))
    if problems:
        raise ScenarioError(source, problems)
    scenario._filter_configs = configs
    scenario._source_data = source_data
    return scenario


def read_scenario_data(path: str | Path) -> dict[str, Any]:
    """
    The parsed TOML of the scenario file at *path*, not yet validated.

    The file is read as :func:`stacksim._io.read_input` reads every input: a regular file of at
    most 16 MiB (a FIFO, device or directory is refused before a byte is read); a UTF-8 BOM is
    accepted. What the TOML parser cannot take (an integer of thousands of digits, arrays nested
    hundreds deep) and nesting beyond :data:`stacksim._io.MAX_DEPTH` levels are refused.

    Raises:
        ScenarioError: naming the file and the problem.
    """
    try:
        return parse_toml(decode_text(read_input(path, "scenario"), path, "scenario"), path, "scenario")
    except InputError as exc:
        raise ScenarioError("", [("", str(exc))]) from None


def load_scenario(path: str | Path, catalog: FilterCatalog, *, seed: int | None = None) -> Scenario:
    """Read (as :func:`read_scenario_data` does) and validate a scenario file; *seed* overrides ``[scenario] seed``."""
    data = read_scenario_data(path)
    if seed is not None:
        data.setdefault("scenario", {})
        if isinstance(data["scenario"], dict):
            data["scenario"]["seed"] = seed
    return validate_scenario(data, str(path), catalog)
