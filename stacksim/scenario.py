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
import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from stacksim._io import MAX_DEPTH, InputError, decode_text, parse_toml, read_input, shorten, terminal_safe
from stacksim.devices import DEFAULT_PRESET, DEVICE_PRESETS, FIXED_DEFAULTS, MODELS, build_device
from stacksim.filters import FilterCatalog
from stacksim.filters.dumpfve import DumpFveConfig
from stacksim.layout import MAX_RUNS, FileLayout, LayoutError, build_layout
from stacksim.memory import DumpPlan, plan_crash_dump, plan_hibernation
from stacksim.miniport import DEFAULT_PORT, PORT_PRESETS, PortPreset
from stacksim.physmem import memory_map, runs_problem
from stacksim.registry import CrashControl
from stacksim.requests import PAGE_SIZE
from stacksim.units import (
    INT64_MAX,
    describe,
    format_bytes,
    format_ns,
    parse_bandwidth,
    parse_fraction,
    parse_per_byte_ps,
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

PicosecondsPerByte = Annotated[int, BeforeValidator(parse_per_byte_ps)]
"""A per-byte cost: integer ns per byte or a string such as ``"0.3 ns"``; kept in picoseconds."""

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
    event: Literal["crash", "hibernate", "hibernate-resume", "io", "crash-during-io"] = "crash"
    seed: int = Field(default=0, ge=0, le=INT64_MAX)
    bugcheck_at: Nanoseconds | None = None
    hibernate_at: Nanoseconds | None = None
    bugcheck_code: int = Field(default=0xE2, ge=0, le=0xFFFF_FFFF)
    """The bug check code in the dump header (default 0xE2 MANUALLY_INITIATED_CRASH [DOC S64])."""
    bugcheck_parameters: list[Annotated[int, Field(ge=0, le=2**64 - 1)]] = Field(default=[0, 0, 0, 0], max_length=64)
    """Its four parameters (0xE2 has none: all zero [DOC S64])."""

    @field_validator("bugcheck_parameters")
    @classmethod
    def _four_parameters(cls, params: list[int]) -> list[int]:
        if len(params) != 4:
            raise ValueError(f"a bug check has exactly 4 parameters (each 0 to 2^64 - 1); {len(params)} given")
        return params

    @model_validator(mode="after")
    def _event_time(self) -> ScenarioSection:
        for key in ("bugcheck_code", "bugcheck_parameters"):
            if key in self.model_fields_set and not self.crashes:
                raise ValueError(f'{key} is for event = "crash" or "crash-during-io"; event = "{self.event}" does not crash')
        if not self.hibernates and self.hibernate_at is not None:
            raise ValueError(
                f'hibernate_at is for event = "hibernate" or "hibernate-resume"; event = "{self.event}" does not hibernate'
            )
        if not self.crashes and self.bugcheck_at is not None:
            raise ValueError(f'bugcheck_at is for event = "crash" or "crash-during-io"; event = "{self.event}" does not crash')
        if self.event == "crash-during-io" and not self.bugcheck_at:
            raise ValueError('event = "crash-during-io" needs bugcheck_at > 0: when the crash comes, while the workload runs')
        return self

    @property
    def crashes(self) -> bool:
        """Whether the event ends in a bugcheck and a crash dump (``crash``, ``crash-during-io``)."""
        return self.event in ("crash", "crash-during-io")

    @property
    def hibernates(self) -> bool:
        """Whether the event hibernates: the hibernation stack writes the hiberfile (``hibernate``, ``hibernate-resume``)."""
        return self.event in ("hibernate", "hibernate-resume")

    @property
    def runs_workload(self) -> bool:
        """Whether the event runs ``[workload]`` through the normal stack (``io``, ``crash-during-io``)."""
        return self.event in ("io", "crash-during-io")

    @property
    def event_at(self) -> int:
        """When the bugcheck or hibernation starts, ns after boot (0 for ``io``)."""
        return (self.hibernate_at if self.hibernates else self.bugcheck_at) or 0


class MemorySection(BaseModel):
    """``[memory]``: the machine's RAM and what each dump type takes of it."""

    model_config = _STRICT
    ram: Bytes = 8 * 2**30
    kernel_fraction: Ratio = Fraction(1, 3)
    free_fraction: Share = Fraction(1, 4)
    file_cache_fraction: Share = Fraction(1, 4)
    guest_fraction: Share = Fraction(0)
    secondary_data: Bytes = Field(default=0, le=256 * 2**20)
    map: Literal["realistic", "runs"] | None = None
    """The physical memory map: a typical PC's (default) or ``runs`` (:mod:`stacksim.physmem`)."""
    runs: tuple[tuple[int, int], ...] | None = None
    """Explicit memory runs ``[base_page, page_count]``, PFNs ascending."""

    @field_validator("ram")
    @classmethod
    def _ram(cls, ram: int) -> int:
        if ram <= 0 or ram % PAGE_SIZE:
            raise ValueError(f"ram = {ram:,} bytes must be a positive whole number of 4 KiB pages")
        if ram > MAX_RAM:
            raise ValueError(f"ram = {ram:,} bytes is more than 4 PiB (2^52 bytes), the most x86-64 physical addresses reach")
        return ram

    @field_validator("runs", mode="before")
    @classmethod
    def _runs(cls, value: object) -> object:
        shape = "runs is a list of [base_page, page_count] pairs of integers, e.g. [[1, 158], [256, 16226]]"
        if value is None:
            return value
        if not isinstance(value, list | tuple):
            raise ValueError(f"{describe(value)}: {shape}")
        runs = []
        for i, run in enumerate(value):
            if not (isinstance(run, list | tuple) and len(run) == 2 and all(type(v) is int for v in run)):
                raise ValueError(f"runs[{i}] is {describe(run)}; {shape}")
            runs.append((run[0], run[1]))
        problem = runs_problem(runs)
        if problem is not None:
            raise ValueError(problem)
        return tuple(runs)

    @model_validator(mode="after")
    def _shares(self) -> MemorySection:
        if self.free_fraction + self.file_cache_fraction + self.guest_fraction >= 1:
            raise ValueError("free_fraction + file_cache_fraction + guest_fraction must leave some memory (sum < 1)")
        if self.kernel_fraction > self.active_fraction:
            raise ValueError(
                f"kernel_fraction = {self.kernel_fraction} is more than the active share "
                f"1 - free_fraction - file_cache_fraction - guest_fraction = {self.active_fraction}: "
                "kernel memory is part of an active dump; lower kernel_fraction or the other three"
            )
        if self.map == "runs" and self.runs is None:
            raise ValueError('map = "runs" needs runs = [[base_page, page_count], ...]')
        if self.map == "realistic" and self.runs is not None:
            raise ValueError('map = "realistic" and runs describe the memory map twice; give one or the other')
        if self.runs is not None:
            pages = sum(count for _base, count in self.runs)
            if pages * PAGE_SIZE != self.ram:
                raise ValueError(
                    f"runs hold {pages:,} pages ({format_bytes(pages * PAGE_SIZE)}) but ram = {self.ram:,} bytes; "
                    f"the runs' pages × 4096 must equal ram: set ram = {pages * PAGE_SIZE} or change the runs"
                )
        return self

    @property
    def active_fraction(self) -> Fraction:
        """What an active dump keeps: RAM minus free/zeroed, file-cache and guest-VM pages."""
        return 1 - self.free_fraction - self.file_cache_fraction - self.guest_fraction


class CompressedFractions(BaseModel):
    """
    ``[hibernation.compressed_fraction]``: compressed ÷ uncompressed bytes per page class, for timing mode.

    Measured in data mode (zlib level 1 on stacksim's page contents, 64 KiB sets, seeds 1 and 7
    agree to 4 digits: ``docs/explanation/hibernation.md``); Windows' Xpress Huffman on real
    memory will differ (ASSUMPTION).
    """

    model_config = _STRICT
    kernel: Ratio = Fraction("0.3181")
    user: Ratio = Fraction("0.5842")
    file_cache: Ratio = Fraction("0.2843")


HIBERFILE_FRACTIONS: Final = {"full": Fraction(2, 5), "reduced": Fraction(1, 5)}
"""hiberfil.sys as a fraction of RAM by ``powercfg /h /type`` on Windows 10+ [ANEC S44]."""


class HibernationSection(BaseModel):
    """``[hibernation]``: what the mark-memory pass keeps, how it is compressed, and the hiberfile's size."""

    model_config = _STRICT
    mode: Literal["hibernate", "fast-startup"] = "hibernate"
    hiberfile_type: Literal["full", "reduced"] = "full"
    file_fraction: Ratio | None = None
    keep_file_cache: bool = False
    compression: bool = True
    compress_rate: BytesPerSecond = 120_000_000
    compress_overlap: bool = True
    compressed_fraction: CompressedFractions = CompressedFractions()
    resume_after: Nanoseconds = Field(default=5 * 10**9, le=10**18)
    decompress_rate: BytesPerSecond = 400_000_000

    @field_validator("compress_rate", "decompress_rate")
    @classmethod
    def _rate_at_least_1_mb_s(cls, value: int) -> int:
        if value < 10**6:
            raise ValueError(f"{value:,} B/s is below the least rate allowed, 1 MB/s (1,000,000 B/s)")
        return value

    @model_validator(mode="after")
    def _reduced_is_for_fast_startup(self) -> HibernationSection:
        if self.hiberfile_type == "reduced" and self.mode != "fast-startup":
            raise ValueError(
                'hiberfile_type = "reduced" holds a fast-startup image only (powercfg /h /type reduced [ANEC S44]); '
                'use mode = "fast-startup" or hiberfile_type = "full"'
            )
        return self

    @property
    def kept_classes(self) -> tuple[str, ...]:
        """The page classes the mark-memory pass keeps (ASSUMPTION: free and guest pages never; file cache on request)."""
        kept = ("kernel",) if self.mode == "fast-startup" else ("kernel", "user")
        return (*kept, "file_cache") if self.keep_file_cache else kept

    @property
    def hiberfile_fraction(self) -> Fraction:
        """The hiberfile's size as a fraction of RAM: ``file_fraction``, else what ``hiberfile_type`` reserves."""
        return self.file_fraction if self.file_fraction is not None else HIBERFILE_FRACTIONS[self.hiberfile_type]


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


MAX_QUEUE_DEPTH = 65_536
"""Deepest queue (application or storport): an NVMe queue holds at most 65,536 commands (NVMe base specification)."""

MAX_IO_REQUESTS = 10**9
"""Most requests one ``[workload]`` may issue (a guard against runaway runs, ASSUMPTION)."""

MAX_BLOCK = 2**30
"""Largest ``[workload] block_size`` (ASSUMPTION: the normal stack's splitting of large I/O is not modelled)."""

DEFAULT_IO_REQUESTS = 1_000
"""Requests a ``[workload]`` issues when it gives neither ``requests`` nor ``duration``."""


class WorkloadSection(BaseModel):
    """``[workload]``: the I/O the applications issue through the normal stack."""

    model_config = _STRICT
    pattern: Literal["sequential-write", "random-write", "random-read", "mixed"] = "random-write"
    block_size: Bytes = Field(default=4096, ge=512, le=MAX_BLOCK)
    queue_depth: int = Field(default=1, ge=1, le=MAX_QUEUE_DEPTH)
    requests: int | None = Field(default=None, ge=1, le=MAX_IO_REQUESTS)
    duration: Nanoseconds | None = Field(default=None, gt=0)
    read_fraction: Share = Fraction(1, 2)
    region_offset: Bytes = 2**20
    region_size: Bytes = Field(default=2**30, gt=0)

    @model_validator(mode="after")
    def _check(self) -> WorkloadSection:
        for key in ("block_size", "region_offset", "region_size"):
            if getattr(self, key) % 512:
                raise ValueError(f"{key} = {getattr(self, key):,} bytes must be a multiple of the 512-byte sector")
        if self.block_size > self.region_size:
            raise ValueError(f"block_size = {self.block_size:,} bytes is larger than region_size = {self.region_size:,} bytes")
        if "read_fraction" in self.model_fields_set and self.pattern != "mixed":
            raise ValueError(f'read_fraction is for pattern = "mixed"; pattern = "{self.pattern}" sets the operation')
        return self

    @property
    def request_limit(self) -> int | None:
        """``requests``; the default when neither ``requests`` nor ``duration`` is given; else ``None`` (no limit)."""
        if self.requests is None and self.duration is None:
            return DEFAULT_IO_REQUESTS
        return self.requests


_FVE = DumpFveConfig()


class NormalStackSection(BaseModel):
    """``[normal_stack]``: the runtime storage stack's costs (ASSUMPTIONS calibrated to whole-stack figures)."""

    model_config = _STRICT
    bitlocker: bool = False
    storport_queue_depth: int = Field(default=32, ge=1, le=MAX_QUEUE_DEPTH)
    isr: Nanoseconds = 1_000
    dpc: Nanoseconds = 1_000
    application_submit: Nanoseconds = 1_000
    application_complete: Nanoseconds = 500
    ntfs_submit: Nanoseconds = 800
    ntfs_complete: Nanoseconds = 300
    volsnap_submit: Nanoseconds = 150
    volsnap_complete: Nanoseconds = 100
    fvevol_submit: Nanoseconds = 150
    fvevol_complete: Nanoseconds = 100
    fvevol_crypto_dispatch: Nanoseconds = 8_760
    cipher_per_call: Nanoseconds = _FVE.per_call
    cipher_per_byte: PicosecondsPerByte = _FVE.per_byte
    volmgr_submit: Nanoseconds = 100
    volmgr_complete: Nanoseconds = 50
    partmgr_submit: Nanoseconds = 100
    partmgr_complete: Nanoseconds = 50
    disk_submit: Nanoseconds = 400
    disk_complete: Nanoseconds = 200
    storport_submit: Nanoseconds = 450
    storport_complete: Nanoseconds = 200
    miniport_submit: Nanoseconds = 350
    device_parallelism: int | None = Field(default=None, ge=1, le=MAX_QUEUE_DEPTH)
    device_read_latency: Nanoseconds | None = None
    device_read_bandwidth: BytesPerSecond | None = Field(default=None, gt=0)


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
    workload: WorkloadSection = WorkloadSection()
    normal_stack: NormalStackSection = NormalStackSection()
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
        if self.scenario.hibernates:
            return "hiberfile"
        return "dedicated" if self.registry.dedicated_dump_file else "pagefile"

    def dump_plan(self) -> DumpPlan:
        """What the event writes: the crash dump's or hiberfile image's parts (:mod:`stacksim.memory`)."""
        if self.scenario.hibernates:
            return self.hiber_plan()
        return plan_crash_dump(
            self.registry.crash_dump_enabled,
            self.registry.filter_pages,
            self.memory.ram,
            kernel_fraction=self.memory.kernel_fraction,
            active_fraction=self.memory.active_fraction,
            secondary=self.memory.secondary_data,
            top_pfn=memory_map(self.memory).max_pfn,
        )

    def hiber_plan(self, body_bytes: int | None = None) -> DumpPlan:
        """
        The hiberfile image (:func:`~stacksim.memory.plan_hibernation`): the kept pages, by class.

        *body_bytes*: the body's size when the compressor has written it (data mode); ``None``:
        the timing model's estimate from ``[hibernation.compressed_fraction]``.
        """
        from stacksim.physmem import PageClass, page_counts

        h = self.hibernation
        counts = page_counts(self.memory)
        pages = {name: counts[PageClass[name.upper()]] for name in h.kept_classes}
        fractions = dict(h.compressed_fraction) if h.compression else None
        return plan_hibernation(pages, mode=h.mode, compressed_fraction=fractions, body_bytes=body_bytes)

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
        if size is None and self.target == "hiberfile":  # Windows reserves a fraction of RAM
            h = self.hibernation
            size = max(-(-int(self.memory.ram * h.hiberfile_fraction) // PAGE_SIZE) * PAGE_SIZE, PAGE_SIZE)
            size_key = "[hibernation] file_fraction" if h.file_fraction is not None else "[hibernation] hiberfile_type"
            size_text = f", {float(h.hiberfile_fraction * 100):g} % of {format_bytes(self.memory.ram)} of RAM"
        elif size is None:  # sized to the dump
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
    def _workload_fits_the_disk(self) -> Scenario:
        if "workload" not in self.model_fields_set:
            if self.scenario.runs_workload:
                raise ValueError(f'[workload]: event = "{self.scenario.event}" runs the I/O of a [workload] section; add one')
            return self  # no I/O is run; a crash or hibernate scenario never sees the default region
        w = self.workload
        disk = self.disk.resolved()[3]
        if w.region_offset + w.region_size > disk:
            raise ValueError(
                f"[workload] region_offset + region_size = {w.region_offset + w.region_size:,} bytes is past the end of "
                f"the {disk:,}-byte disk"
            )
        return self

    @model_validator(mode="after")
    def _target_matches_event(self) -> Scenario:
        target = self.layout.target
        if target is None:
            return self
        if self.scenario.hibernates and target != "hiberfile":
            raise ValueError(f'[layout] target = "{target}": hibernation writes the hiberfile (target = "hiberfile")')
        if self.scenario.crashes and target == "hiberfile":
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


_T = typing.TypeVar("_T")


def _cached(fn: Callable[[Any], _T]) -> Callable[[Any], _T]:
    """*fn* of one type argument, remembered per type (the walk of 100,000 errors meets a handful of types)."""
    memo: dict[Any, _T] = {}

    def lookup(tp: Any) -> _T:
        try:
            return memo[tp]
        except KeyError:
            out = memo[tp] = fn(tp)
            return out
        except TypeError:  # an unhashable type argument
            return fn(tp)

    lookup.__doc__ = fn.__doc__
    return lookup


@_cached
def _allowed_keys(current: Any) -> str:
    """The keys allowed in the table *current* (a model class) describes, for unknown-key messages."""
    fields = getattr(current, "model_fields", None)
    if not fields:
        return ""
    names = sorted((f.alias or n) for n, f in fields.items() if not f.exclude)
    return "; allowed keys: " + ", ".join(names)


def _field_map(model: Any) -> dict[str, Any]:
    """A model's fields by name and by alias."""
    out: dict[str, Any] = {}
    for name, f in model.model_fields.items():
        out[name] = f
        if f.alias:
            out[f.alias] = f
    return out


@_cached
def _bare(tp: Any) -> Any:
    """*tp* without ``Annotated[...]`` and without ``None`` in an optional union."""
    while True:
        if typing.get_origin(tp) is Annotated:
            tp = typing.get_args(tp)[0]
            continue
        if typing.get_origin(tp) in (typing.Union, types.UnionType):
            members = [m for m in typing.get_args(tp) if m is not type(None)]
            if len(members) == 1:
                tp = members[0]
                continue
        return tp


@_cached
def _union_members(tp: Any) -> tuple[list[Any], str | None] | None:
    """The members of the union *tp* is (and its discriminator, if tagged by one), or None for any other type."""
    discriminator = None
    while typing.get_origin(tp) is Annotated:
        tp, *meta = typing.get_args(tp)
        discriminator = next((d for m in meta if isinstance(d := getattr(m, "discriminator", None), str)), discriminator)
    if typing.get_origin(tp) not in (typing.Union, types.UnionType):
        return None
    members = [m for m in typing.get_args(tp) if m is not type(None)]
    return (members, discriminator) if len(members) > 1 else None


def _type_kind(tp: Any) -> str | None:
    """What TOML value a type takes: ``list``, ``table``, ``bool``, ``int``, ``float`` or ``str`` (None: cannot tell)."""
    tp = _bare(tp)
    origin = typing.get_origin(tp) or tp
    if origin in (list, tuple, set, frozenset):
        return "list"
    if origin is dict or (isinstance(origin, type) and issubclass(origin, BaseModel)):
        return "table"
    if origin is Literal:
        return "str" if all(isinstance(a, str) for a in typing.get_args(tp)) else None
    return {bool: "bool", int: "int", float: "float", str: "str"}.get(origin)


def _value_kind(value: object) -> str | None:
    """The kind (as :func:`_type_kind` names it) of a parsed TOML value."""
    if isinstance(value, bool):
        return "bool"
    for kind, types_ in (("int", int), ("float", float), ("str", str), ("list", list | tuple), ("table", dict)):
        if isinstance(value, types_):
            return kind
    return None


def _member(tag: object, members: list[Any], discriminator: str | None) -> Any:
    """The union member pydantic's path tag *tag* names (``int``, ``list[RunSpec]``, a class or discriminator value), or None."""
    for m in members:
        base = _bare(m)
        if discriminator is not None:
            field = getattr(base, "model_fields", {}).get(discriminator)
            if field is not None and tag in typing.get_args(_bare(field.annotation)):
                return m
            continue
        origin = typing.get_origin(base) or base
        name = "literal" if origin is Literal else getattr(origin, "__name__", None)
        if isinstance(tag, str) and name is not None and tag.split("[", 1)[0] == name:
            return m
    return None


_MISSING = object()
_FIELDS = _cached(_field_map)


@dataclass(slots=True)
class _Walked:
    """One pydantic error's path, read against the model: the key path as the file spells it, and its union steps."""

    loc: tuple[int | str, ...]
    table: Any  # the model class of the table holding the last key (for unknown keys), or None
    unions: list[tuple[tuple[int | str, ...], object, bool | None]]  # (path of the union key, tag, member matches the input?)


def _walk(model: type[BaseModel], loc: tuple[int | str, ...], data: object) -> _Walked:
    """
    Read pydantic's error path *loc* against *model* and the input *data*.

    Pydantic puts a tag for the union member it tried into the path (``runs.int``,
    ``runs.list[RunSpec][0]``, a fault's ``kind``); these are not keys: they are taken out, and
    each is recorded with whether its member takes the kind of value the input holds there.
    """
    out: list[int | str] = []
    unions: list[tuple[tuple[int | str, ...], object, bool | None]] = []
    tp: Any = model
    table: Any = model
    node: object = data
    i = 0
    while i < len(loc):
        part = loc[i]
        union = _union_members(tp) if tp is not None else None
        if union is not None:
            members, discriminator = union
            member = _member(part, members, discriminator)
            kinds = {_type_kind(m) for m in members}
            if discriminator is not None or member is None or None in kinds:
                matches = None  # cannot tell which member the input was meant for: keep its errors
            else:
                want = _value_kind(node)
                if want == "int" and "int" not in kinds:
                    want = "float"  # an integer where a float is allowed
                matches = _type_kind(member) == want
            unions.append((tuple(out), part, matches))
            tp = member
            i += 1
            continue
        base = _bare(tp) if tp is not None else None
        origin = typing.get_origin(base) or base
        fields = _FIELDS(base) if isinstance(base, type) and issubclass(base, BaseModel) else None
        if fields is not None:
            table = base
            field = fields.get(part) if isinstance(part, str) else None
            tp = field.annotation if field is not None else None
        elif origin in (list, tuple, set, frozenset) and isinstance(part, int):
            args = [a for a in typing.get_args(base) if a is not Ellipsis]
            tp = args[0] if len(args) == 1 else args[part] if part < len(args) else None
        elif origin is dict:
            kv = typing.get_args(base)
            tp = kv[1] if len(kv) == 2 else None
        else:
            tp = None
        if fields is None:
            table = None
        node = (
            node.get(part, _MISSING)
            if isinstance(node, dict)
            else (
                node[part]
                if isinstance(node, list | tuple) and isinstance(part, int) and -len(node) <= part < len(node)
                else _MISSING
            )
        )
        out.append(part)
        i += 1
    return _Walked(tuple(out), table, unions)


_TYPE_MESSAGES = {
    "model_type": "must be a table",
    "model_attributes_type": "must be a table",
    "dict_type": "must be a table",
    "list_type": "must be a list",
    "tuple_type": "must be a list",
    "set_type": "must be a list",
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "int_from_float": "must be an integer",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "string_type": "must be a string",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
}
"""Pydantic's type errors in the words of a TOML file (pydantic's own name classes: "instance of ScenarioSection")."""

_CLASS_NAMED = re.compile(r" or (?:an )?instance of \w+")


def _message(err: Any, table: Any) -> str:
    """One pydantic error's message as a scenario file's reader needs it: TOML words, TOML values, no class names."""
    kind = err["type"]
    msg = str(err["msg"])
    if kind == "extra_forbidden":
        return "unknown key" + _allowed_keys(table)
    if kind == "missing":
        return "required key is missing"
    if kind == "value_error":
        return msg.removeprefix("Value error, ")
    ctx = err.get("ctx") or {}
    key = str(ctx.get("discriminator", "kind")).strip("'")
    if kind == "union_tag_invalid":
        return f"{key} = {describe(ctx.get('tag'))} is not one of {ctx.get('expected_tags')}"
    if kind == "union_tag_not_found":
        return f"has no {key} key (it says which kind of table this is)"
    return _TYPE_MESSAGES.get(kind) or _CLASS_NAMED.sub("", msg)


def _got(err: Any) -> str:
    """What a type or range error was given, as `` (got 1.5)`` (empty for a missing or unknown key and a validator's message)."""
    if err["type"] in ("extra_forbidden", "missing", "value_error", "union_tag_invalid", "union_tag_not_found"):
        return ""
    shown = err.get("input", _MISSING)
    return "" if shown is _MISSING else f" (got {describe(shown)})"


def _problems(
    exc: ValidationError, model: type[BaseModel], prefix: tuple[int | str, ...] = (), data: object = None
) -> list[tuple[str, str]]:
    """
    The (key, problem) pairs of a pydantic *exc* raised validating *data* as *model*, keys as the file spells them.

    Of a union-typed key (``runs``: a number or a list of tables) only the member that takes
    the kind of value given is reported (a list: the list's errors, not "should be an
    integer"); when no member takes it, the members' messages are joined with "or".
    """
    errors = exc.errors(include_url=False)
    walked = [_walk(model, tuple(err["loc"]), data) for err in errors]
    matched: set[tuple[int | str, ...]] = set()  # union keys where some member takes the input's kind
    for w in walked:
        matched.update(path for path, _, matches in w.unions if matches)
    out: list[tuple[str, str]] = []
    joined: dict[tuple[int | str, ...], list[tuple[str, str]]] = {}  # union keys no member takes: their members' messages
    for err, w in zip(errors, walked, strict=True):
        if any(path in matched and matches is False for path, _, matches in w.unions):
            continue  # the error of a member that does not take this kind of value
        msg = _message(err, w.table)
        if w.unions and w.unions[-1][2] is False and w.unions[-1][0] == w.loc:
            joined.setdefault(w.loc, []).append((msg, _got(err)))
            continue
        out.append((_key(prefix + w.loc), msg + _got(err)))
    for loc, msgs in joined.items():
        out.append((_key(prefix + loc), ", or ".join(dict.fromkeys(m for m, _ in msgs)) + msgs[0][1]))
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
    stacks = 2 if s.scenario.hibernates else 1
    terms = {
        f"[scenario] {'hibernate_at' if s.scenario.hibernates else 'bugcheck_at'}": s.scenario.event_at,
        "[engine] watchdog": attempts * filters * watchdog + (4 * stacks * filters + 1) * watchdog,
        "[dump_port] timeout": attempts * device + device_faults * (1 + retries) * timeout + timeout,
        "[dump_port] per_request_overhead": attempts * port.per_request_overhead + port.reset,
        "[dump_driver] per_request": attempts * s.dump_driver.per_request + s.dump_driver.integrity_check,
    }
    if plan.hiber is not None and plan.hiber.compressed:  # the compressor's time, each write's share rounded up
        terms["[hibernation] compress_rate"] = -(-plan.hiber.uncompressed_bytes * 10**9 // s.hibernation.compress_rate) + writes
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


def _workload_time_problem(s: Scenario) -> tuple[str, str] | None:
    """
    A problem when an ``event = "io"`` run could pass :data:`~stacksim.units.INT64_MAX` ns.

    One request brings at most :meth:`~stacksim.normal_stack.NormalStack.worst_request_ns` of
    work and the stack is work-conserving, so *n* requests end within *n* times that; a
    ``duration`` ends issuing, and the at most ``queue_depth`` requests then in flight end
    within ``queue_depth`` times it. (A ``crash-during-io`` run stops at ``bugcheck_at``.)
    """
    if s.scenario.event != "io":
        return None
    from stacksim.normal_stack import build_runtime_device, build_stack, workload_ops  # normal_stack imports this module

    w = s.workload
    device, parallelism = build_runtime_device(s)
    try:
        each = build_stack(s, device, parallelism).worst_request_ns(workload_ops(w), w.block_size)
    except ScenarioError:  # the region does not fit the disk: reported by its own check
        return None
    bounds = {}
    limit = w.request_limit
    if limit is not None or w.duration is None:
        bounds["[workload] requests"] = (limit or MAX_IO_REQUESTS) * each
    if w.duration is not None:
        bounds["[workload] duration"] = w.duration + w.queue_depth * each
        if limit is None:
            bounds["[workload] requests"] = MAX_IO_REQUESTS * each
    key = min(bounds, key=lambda k: bounds[k])
    if bounds[key] <= INT64_MAX:
        return None
    return (
        key,
        f"the workload could run past the simulated-time limit of 2^63 - 1 ns (about 292 years): requests of "
        f"{w.block_size:,} bytes take up to {format_ns(each)} each through the stack and the device; "
        "issue fewer requests, smaller blocks or use a faster disk",
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
        raise ScenarioError(source, _problems(exc, Scenario, data=data)) from None
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
            problems += _problems(exc, cls.Config, ("filters", name), table)
        except BaseException as exc:  # plugin code (a validator) raised: its error, never the process's exit
            problems.append((f'[filters."{name}"]', f"the filter's Config (plugin code) raised {_plugin_exception(exc)}"))
    try:
        layout = scenario.file_layout()
    except LayoutError as exc:
        problems += exc.problems
    else:
        if (limit := _time_limit_problem(scenario, layout) or _workload_time_problem(scenario)) is not None:
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
