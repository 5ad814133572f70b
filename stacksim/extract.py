"""
After the reboot: the crash dump read back out of the target file's disk runs, checked, decrypted and written as ``MEMORY.DMP``.

On the boot after a crash, Windows' session manager finds the dump where crashdmp left it, at the
start of the page file (or the dedicated dump file), checks its header ('PAGE' 'DU64' and the
``DumpType``) and copies ``RequiredDumpSpace`` bytes out into ``MEMORY.DMP`` [RE S63]. It reads
the file through the normal storage stack, so on a BitLocker volume the volume filter
(``fvevol.sys``) decrypts what ``dumpfve.sys`` encrypted on the way out [DOC S6c, S47]. This
module does the same to a data-mode disk image (``stacksim run --data --image``):

* **Where.** The file's disk runs come from the run's scenario (:meth:`Scenario.file_layout`, as
  the file system would map the file) and are the only part of the image read; a 2 TB sparse
  image holding a 64 MiB dump costs 64 MiB of reads.
* **Encrypted or not.** The first sector of the file says: 'PAGE' 'DU64' there is a plaintext
  dump; otherwise, when the result says ``dumpfve.sys`` loaded (it loads only with BitLocker on),
  the sector is decrypted with the volume key (AES-256-XTS, ``aes-xts-plain64``, tweak = the
  partition-relative sector number; ``docs/reference/encryption.md``) and must then start with
  the signature, or the key is wrong. A key given for a plaintext dump is named as such.
* **Complete or torn.** The header is parsed (:func:`stacksim.dumpfmt.parse_dump_header`) and
  checked against the run (its size, memory runs and page count), then every page the header
  promises is looked for at its place in the file: a page is present when it starts with its own
  marker (``STKSIMPG`` and the PFN the header puts there, :mod:`stacksim.physmem`) and, in an
  encrypted dump, none of its sectors reads as zeros on the disk (ciphertext of a written sector
  is never all zeros; an unwritten sector is a hole). Secondary data (never zero when written)
  is present sector by sector the same way.

Everything streams through one buffer of :data:`CHUNK` bytes: memory does not grow with the dump.
``stacksim inspect`` reports what :func:`survey` finds; ``stacksim extract`` writes the plaintext
while surveying and refuses (:func:`refusal`) a dump that is not whole unless asked to keep it.

The result file is input like any other: every key read from it is type-checked and compared
with the re-validated scenario (:func:`recorded_run`), so an edited result is refused rather
than believed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Final, Literal

from pydantic import BaseModel, ConfigDict

from stacksim._io import CappedReader, open_input, shorten, terminal_safe
from stacksim.dumpfmt import (
    DUMP_TYPE_BITMAP_FULL,
    DUMP_TYPE_BITMAP_KERNEL,
    DUMP_TYPE_FULL,
    DUMP_TYPE_HEADER,
    DUMP_TYPE_TRIAGE,
    FULL_SIGNATURE,
    HEADER64_SIZE,
    SIGNATURE,
    SUMMARY_HEADER_SIZE,
    SUMMARY_SIGNATURE,
    VALID_DUMP64,
    DumpFormatError,
    ParsedDump,
    bitmap_bits,
    header_bytes_needed,
    parse_dump_header,
)
from stacksim.filters import DumpFilter
from stacksim.requests import PAGE_SIZE, SECTOR_SIZE
from stacksim.units import with_article

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from stacksim.layout import FileLayout
    from stacksim.scenario import Scenario
    from stacksim.xts import XtsCipher

__all__ = [
    "CHUNK",
    "SEED_KEY",
    "DiskFile",
    "Encryption",
    "ExtractError",
    "Located",
    "RecordedRun",
    "Survey",
    "dump_kind",
    "locate",
    "open_disk_file",
    "recorded_run",
    "refusal",
    "stand_in_filter",
    "survey",
]

CHUNK: Final = 4 * 2**20
"""Bytes of the file read, decrypted, checked and written at a time (the memory the commands use, give or take)."""

SEED_KEY: Final = "derived from the seed"
"""The result's ``data.key`` when the run derived the volume key from the seed (``stacksim.xts.derive_key``)."""

KEY_FILE_PREFIX: Final = "key file "
"""The result's ``data.key`` when the run read the key from ``--key-file``: this, then the file's name."""

_DUMP_SIGNATURE: Final = SIGNATURE + VALID_DUMP64
"""'PAGE' 'DU64': the first 8 bytes of a 64-bit dump."""

Encryption = Literal["plaintext", "encrypted", "wrong key", "key needed", "unwritten", "unreadable"]
"""
What the first sector of the file says: ``plaintext`` (the signature is there), ``encrypted``
(the key decrypts it to the signature), ``wrong key`` (the run encrypted it and the key does not
decrypt it), ``key needed`` (the run encrypted it with a key file that was not given),
``unwritten`` (it reads as zeros: never written), ``unreadable`` (none of these).
"""

_EXPECTED_LAYOUT: Final[dict[str, tuple[int, bytes]]] = {
    "complete": (DUMP_TYPE_BITMAP_FULL, FULL_SIGNATURE),
    "active": (DUMP_TYPE_BITMAP_FULL, FULL_SIGNATURE),
    "kernel": (DUMP_TYPE_BITMAP_FULL, SUMMARY_SIGNATURE),
    "automatic": (DUMP_TYPE_BITMAP_FULL, SUMMARY_SIGNATURE),
    "small": (DUMP_TYPE_TRIAGE, b""),
}
"""The ``DumpType`` and summary signature stacksim writes for each kind of dump (``stacksim.dumpfmt``)."""


class ExtractError(Exception):
    """A result, image or dump that cannot be used as asked: one paragraph naming the file and the problem (exit 2)."""


def _shown(text: object, limit: int = 200) -> str:
    """Input-derived text for a message: integers with thousands separators, the rest shortened and escaped."""
    if isinstance(text, int) and not isinstance(text, bool):
        return shorten(f"{text:,}", limit)
    return terminal_safe(shorten(str(text), limit))


def _round_up(n: int, unit: int) -> int:
    return -(-n // unit) * unit


# --------------------------------------------------------------------------------------------
# What the result says about the run
# --------------------------------------------------------------------------------------------


class _AnyConfig(BaseModel):
    """A stand-in filter's configuration: any table (the plugin's own Config is plugin code, which is never run)."""

    model_config = ConfigDict(extra="allow")


def stand_in_filter(service_name: str) -> type[DumpFilter]:
    """
    A filter class named *service_name* that takes any configuration and is never run.

    ``extract`` and ``inspect`` re-validate the scenario a result records without running any
    plugin: a filter the run loaded from a plugin file is replaced by this stand-in, so the
    scenario validates (its layout does not depend on filter code) while the plugin's own
    ``Config`` is not checked.
    """
    doc = f"Stand-in for the plugin filter {service_name!r}: never run."
    return type("StandInFilter", (DumpFilter,), {"service_name": service_name, "Config": _AnyConfig, "__doc__": doc})


@dataclass(frozen=True, slots=True)
class RecordedRun:
    """What a data-mode result says about its run, checked against the re-validated scenario it records."""

    name: str
    """The result file, as shown in messages."""
    layout: FileLayout
    """The target file's disk runs (the scenario's ``[layout]``)."""
    disk_size: int
    """The disk's capacity in bytes: the image is exactly this long."""
    status: str
    message: str
    kind: str
    """The dump kind of the run's plan (``complete``, ``kernel``, ...)."""
    dump_bytes: int
    """The bytes the whole dump takes: its ``RequiredDumpSpace``."""
    body_pages: int
    """Physical pages the dump holds."""
    bytes_written: int
    """Bytes the device completed (``bytes_written``)."""
    encrypted: bool
    """Whether ``dumpfve.sys`` loaded, and so encrypted every write."""
    key_source: str
    """Where the run's volume key came from: :data:`SEED_KEY` or ``key file NAME``."""
    seed: int
    memory_runs: tuple[tuple[int, int], ...]
    """The machine's physical memory runs: the header's ``PhysicalMemoryBlock``."""


def recorded_run(result: dict[str, Any], scenario: Scenario, name: str) -> RecordedRun:
    """
    The run *result* (a result JSON object) records, its keys type-checked and held against *scenario*.

    *scenario* is the result's replay scenario, re-validated (``stacksim replay``'s checks); *name*
    the result file as shown.

    Raises:
        ExtractError: a key missing or of the wrong type, a result of a timing-mode run, or a key
            that contradicts the scenario (the result was edited), naming the file and the key.
    """
    from stacksim.datamode import data_mode_problem
    from stacksim.physmem import memory_map

    if (problem := data_mode_problem(scenario)) is not None:
        raise ExtractError(f"{name}: the recorded scenario has no data-mode dump to read back: {problem[0]}: {problem[1]}")
    problems: list[str] = []

    def get(key: str, kind: type, allowed: str) -> Any:
        value = result.get(key)
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            got = "missing" if key not in result else f"got {shorten(repr(value), 60)}"
            problems.append(f"{key} must be {allowed} ({got})")
            return None
        return value

    data = result.get("data")
    if data is None and "data" in result:
        raise ExtractError(
            f"{name}: is the result of a timing-mode run ('data' is null): no disk image was written; "
            "run the scenario with --data --image disk.img --json result.json"
        )
    if not isinstance(data, dict):
        problems.append("data must be the object a data-mode run writes (with 'key')")
        data = {}
    key_source = data.get("key")
    if not isinstance(key_source, str) or not (key_source == SEED_KEY or key_source.startswith(KEY_FILE_PREFIX)):
        problems.append(f"data.key must be {SEED_KEY!r} or 'key file NAME' (got {shorten(repr(key_source), 60)})")
    status = get("status", str, "a string")
    message = get("message", str, "a string")
    bytes_written = get("bytes_written", int, "an integer")
    dump_bytes = get("dump_bytes", int, "an integer")
    kind = get("dump_kind", str, "a string")
    target = get("target", str, "a string")
    seed = get("seed", int, "an integer")
    filters = get("filters", list, "a list of objects with 'name' and 'loaded'")
    encrypted = False
    for i, entry in enumerate(filters or []):
        if not (isinstance(entry, dict) and isinstance(entry.get("name"), str) and isinstance(entry.get("loaded"), bool)):
            problems.append(f"filters[{i}] must be an object with 'name' (a string) and 'loaded' (true or false)")
            continue
        if entry["name"] not in scenario.registry.dump_filters:
            problems.append(f"filters[{i}] names {_shown(entry['name'], 60)!r}, which the recorded scenario's DumpFilters do not")
        encrypted |= entry["name"] == "dumpfve.sys" and entry["loaded"]
    if problems:
        raise ExtractError(f"{name}: not a result of stacksim run --data: " + "; ".join(problems))
    if scenario.scenario.hibernates:
        raise ExtractError(
            f"{name}: the run hibernated (event = {_shown(scenario.scenario.event, 40)}): its image is a hiberfile, "
            "not a crash dump; inspect and extract read crash dumps, and a hiberfile is read back by resume "
            '(event = "hibernate-resume": the result\'s resume.memory_matches)'
        )
    plan = scenario.dump_plan()
    layout = scenario.file_layout()
    body = next((p.bytes for p in plan.parts if p.name == "body"), 0)
    recorded = {
        "dump_kind": (kind, plan.kind),
        "dump_bytes": (dump_bytes, plan.total_bytes),
        "target": (target, layout.target),
        "seed": (seed, scenario.scenario.seed),
    }
    for key, (got, want) in recorded.items():
        if got != want:
            problems.append(f"{key} is {_shown(got, 60)}, but the recorded scenario's is {_shown(want, 60)}")
    if not 0 <= bytes_written < 2**63:
        problems.append(f"bytes_written = {bytes_written:,} must be 0 ... 2^63 - 1")
    config = scenario.filter_configs.get("dumpfve.sys")
    if encrypted and config is not None and not getattr(config, "bitlocker", True):
        problems.append("filters says dumpfve.sys loaded, but the recorded scenario turns BitLocker off (bitlocker = false)")
    if problems:
        raise ExtractError(f"{name}: the result contradicts the scenario it records (was it edited?): " + "; ".join(problems))
    return RecordedRun(
        name=name,
        layout=layout,
        disk_size=scenario.disk.resolved()[3],
        status=status,
        message=message,
        kind=plan.kind,
        dump_bytes=dump_bytes,
        body_pages=body // PAGE_SIZE if plan.kind != "small" else 0,
        bytes_written=bytes_written,
        encrypted=encrypted,
        key_source=str(key_source),
        seed=seed,
        memory_runs=tuple(memory_map(scenario.memory).runs),
    )


# --------------------------------------------------------------------------------------------
# The target file on the image
# --------------------------------------------------------------------------------------------


class DiskFile:
    """The target file of a run, read out of its disk image through the file's disk runs (:func:`open_disk_file`)."""

    def __init__(self, image: CappedReader, name: str, layout: FileLayout) -> None:
        self.image = image
        self.name = name
        self.layout = layout

    def read_into(self, file_offset: int, view: memoryview) -> list[tuple[int, int, int]]:
        """
        Fill *view* with the file's bytes from *file_offset*; past the file's end, zeros.

        Returns the pieces read, ``(offset in view, partition offset, length)`` in file order:
        each lies in one disk run (a sector's tweak is its partition-relative number).
        """
        inside = max(0, min(len(view), self.layout.size - file_offset))
        pieces = []
        at = 0
        for offset, length, _ in self.layout.map_runs(file_offset, inside, 2**62):
            self.image.pread_into(view[at : at + length], self.layout.partition_offset + offset)
            pieces.append((at, offset, length))
            at += length
        view[inside:] = bytes(len(view) - inside)
        return pieces


@contextlib.contextmanager
def open_disk_file(path: str | Path, run: RecordedRun) -> Iterator[DiskFile]:
    """
    Open the disk image at *path* (checked as every input is) as the run's target file.

    The image must be exactly the recorded disk's size, as ``run --data`` writes it (sparse);
    only the file's runs are ever read.

    Raises:
        stacksim._io.InputError: not a regular file, unreadable.
        ExtractError: the image is not the disk's size (truncated, or another disk's).
    """
    name = _shown(path)
    with open_input(path, "image") as image:
        if image.size != run.disk_size:
            what = "truncated" if image.size < run.disk_size else "longer than the disk"
            raise ExtractError(
                f"{name}: the image is {image.size:,} bytes, but the disk of the run in {run.name} is {run.disk_size:,} bytes "
                f"([disk] size); a run's image is exactly its disk's size (sparse), so this one is {what} or another run's"
            )
        yield DiskFile(image, name, run.layout)


# --------------------------------------------------------------------------------------------
# The header: where it is, whether it is encrypted, what it says
# --------------------------------------------------------------------------------------------


def dump_kind(header: ParsedDump) -> str:
    """The kind of dump a header describes: ``complete``, ``active``, ``kernel``, ``small`` or ``header only``."""
    if header.dump_type == DUMP_TYPE_TRIAGE:
        return "small"
    if header.dump_type == DUMP_TYPE_HEADER:
        return "header only"
    if header.dump_type == DUMP_TYPE_FULL or header.signature == FULL_SIGNATURE:
        return "complete" if header.page_count == sum(c for _, c in header.runs) else "active"
    return "kernel"


@dataclass(frozen=True)
class Located:
    """What the start of the target file holds: the first sector's verdict and, if it is readable, the header."""

    file: DiskFile
    run: RecordedRun
    encryption: Encryption
    key: bytes | None = field(repr=False)
    """The key that decrypts the dump (given, or derived from the seed for a seed-keyed run); None unless encrypted."""
    key_label: str | None
    """Where the key tried came from, in words: ``derived from the seed`` or ``key file NAME``; None if none was."""
    key_given: bool
    raw_signature: bool
    """'PAGE' 'DU64' at the first sector as it is on the disk."""
    header: ParsedDump | None
    header_problem: str | None
    """Why there is no header (the first sector's verdict, or what the parser said)."""
    mismatches: tuple[str, ...]
    """How the header contradicts the run the result describes (another run's image)."""

    @property
    def decrypting(self) -> bool:
        """Whether the file's bytes are decrypted on the way out."""
        return self.encryption == "encrypted"

    @property
    def extent(self) -> int:
        """Bytes of the file that make up the dump: ``RequiredDumpSpace``, or the run's dump size without a header."""
        return self.header.required_dump_space if self.header is not None else self.run.dump_bytes

    def torn_before_reading(self) -> list[str]:
        """Why the dump is torn, as far as the result and the header tell without reading the pages."""
        run, reasons = self.run, []
        if run.status != "ok":
            reasons.append(f"the run's status is {_shown(run.status, 40)}, not ok")
        if self.header is None:
            return reasons
        required = self.header.required_dump_space
        if run.bytes_written < required:
            reasons.append(f"the run wrote {run.bytes_written:,} bytes, fewer than RequiredDumpSpace = {required:,} bytes")
        if required > run.layout.size:
            reasons.append(f"RequiredDumpSpace = {required:,} bytes, more than the {run.layout.size:,}-byte {run.layout.target}")
        return reasons


def locate(file: DiskFile, run: RecordedRun, key: bytes | None = None, key_name: str | None = None) -> Located:
    """
    Read the first sector and the header of the dump in *file*, decrypting them when the run encrypted it.

    *key* (from ``--key-file``, named *key_name*) is tried whatever the result says; without
    it, a run that encrypted with the seed-derived key gets that key. Reads at most the header
    and the bitmap of the recorded machine (its bitmap size is checked before it is read).
    """
    from stacksim.xts import XtsCipher, derive_key

    first = bytearray(SECTOR_SIZE)
    file.read_into(0, memoryview(first))
    raw_signature = first[:8] == _DUMP_SIGNATURE
    applied = key
    label = key_name
    if applied is None and run.encrypted and run.key_source == SEED_KEY:
        applied, label = derive_key(run.seed), SEED_KEY
    cipher = XtsCipher(applied) if applied is not None else None
    first_sector = run.layout.runs[0].offset // SECTOR_SIZE
    state: Encryption
    if raw_signature:
        state = "plaintext"
    elif not any(first):
        state = "unwritten"
    elif cipher is None:
        state = "key needed" if run.encrypted else "unreadable"
    elif cipher.decrypt(first, first_sector)[:8] == _DUMP_SIGNATURE:
        state = "encrypted"
    else:
        state = "wrong key" if run.encrypted else "unreadable"

    def located(header: ParsedDump | None, problem: str | None, mismatches: tuple[str, ...] = ()) -> Located:
        kept = applied if state == "encrypted" else None
        return Located(
            file, run, state, kept, label if applied is not None else None, key is not None, raw_signature,
            header, problem, mismatches,
        )  # fmt: skip

    if state not in ("plaintext", "encrypted"):
        return located(None, _verdict(state, run, label))
    decrypt = cipher if state == "encrypted" else None
    try:
        prefix = _read_plain(file, 0, HEADER64_SIZE + SUMMARY_HEADER_SIZE, decrypt)
        need = header_bytes_needed(prefix)
        if need > HEADER64_SIZE:  # a bitmap dump: its bitmap must be the recorded machine's before it is read
            expected = HEADER64_SIZE + SUMMARY_HEADER_SIZE + bitmap_bits(run.memory_runs) // 8
            if need != expected:
                bits = (need - HEADER64_SIZE - SUMMARY_HEADER_SIZE) * 8
                raise DumpFormatError(
                    f"its bitmap has {bits:,} bits, but the recorded machine's has {bitmap_bits(run.memory_runs):,}"
                    " (one per page up to its highest PFN, in whole ULONGs)"
                )
        header = parse_dump_header(_read_plain(file, 0, need, decrypt))
    except DumpFormatError as exc:
        return located(None, f"the dump header does not parse: {exc}")
    return located(header, None, _mismatches(header, run))


def _read_plain(file: DiskFile, offset: int, length: int, cipher: XtsCipher | None) -> bytes:
    """*length* bytes of the file from sector-aligned *offset*, decrypted by *cipher* unless None."""
    buf = bytearray(_round_up(length, SECTOR_SIZE))
    view = memoryview(buf)
    for at, part_offset, n in file.read_into(offset, view):
        if cipher is not None:
            cipher.decrypt_into(view[at : at + n], part_offset // SECTOR_SIZE, view[at : at + n])
    return bytes(buf[:length])


def _verdict(state: Encryption, run: RecordedRun, key_label: str | None) -> str:
    """Why the first sector holds no readable header, in words."""
    where = f"the first sector of the {run.layout.target} (partition offset {run.layout.runs[0].offset:,} bytes)"
    if state == "unwritten":
        return f"no dump header: {where} reads as zeros, it was never written"
    if state == "wrong key":
        return (
            f"wrong key: the dump was encrypted by dumpfve.sys, and {where} does not decrypt to the 'PAGE' 'DU64' "
            f"signature with the key ({_shown(key_label, 100)}); the run's key: {_shown(run.key_source, 100)}"
        )
    if state == "key needed":
        return (
            f"the dump was encrypted by dumpfve.sys with the run's {_shown(run.key_source, 100)}: "
            "pass that file with --key-file to decrypt it"
        )
    tried = f"; the key {_shown(key_label, 100)} does not decrypt it either" if key_label else ""
    return (
        f"no dump header: {where} does not start with the 'PAGE' 'DU64' signature, and the run did not encrypt it "
        f"(dumpfve.sys did not load){tried}"
    )


def _mismatches(header: ParsedDump, run: RecordedRun) -> tuple[str, ...]:
    """How *header* contradicts the run the result describes."""
    out = []
    if header.required_dump_space != run.dump_bytes:
        out.append(f"RequiredDumpSpace is {header.required_dump_space:,} bytes, the run's dump {run.dump_bytes:,} bytes")
    want_type, want_sig = _EXPECTED_LAYOUT.get(run.kind, (None, None))
    types = (DUMP_TYPE_BITMAP_FULL, DUMP_TYPE_BITMAP_KERNEL) if want_type == DUMP_TYPE_BITMAP_FULL else (want_type,)
    if header.dump_type not in types or header.signature != want_sig:
        out.append(
            f"DumpType {header.dump_type} {header.signature.decode('latin-1')!r} is not what {with_article(run.kind)} dump is"
        )
    if header.runs and header.runs != run.memory_runs:
        out.append(f"its {len(header.runs):,} memory runs are not the recorded machine's {len(run.memory_runs):,}")
    if run.kind != "small" and header.page_count != run.body_pages:
        out.append(f"it holds {header.page_count:,} pages, the run's dump {run.body_pages:,} pages")
    return tuple(out)


# --------------------------------------------------------------------------------------------
# The whole dump, streamed
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Survey:
    """What the file holds, read to the dump's end (``stacksim inspect``; ``extract`` writes as it reads)."""

    located: Located
    scanned_bytes: int
    """Bytes of the file read (the dump's extent inside the file, in whole sectors)."""
    raw_markers: int
    """Page markers (at sector boundaries) readable in the file as it is on the disk."""
    decrypted_markers: int | None
    """Page markers after decryption (None when nothing was decrypted)."""
    unwritten_sectors: int | None
    """Sectors of an encrypted dump that read as zeros on the disk: never written (None for plaintext)."""
    pages_present: int | None
    bytes_present: int | None
    """Bytes of ``RequiredDumpSpace`` on the disk: header and bitmap, pages present, secondary data present."""

    @property
    def torn(self) -> list[str]:
        """Every reason the dump is not whole; empty for a complete dump."""
        loc, reasons = self.located, self.located.torn_before_reading()
        header = loc.header
        if header is None:
            return [loc.header_problem or "no dump header", *reasons]
        if self.pages_present is not None and self.pages_present < header.page_count:
            missing = header.page_count - self.pages_present
            reasons.append(f"{missing:,} of the {header.page_count:,} pages the header promises are not on the disk")
        if self.bytes_present is not None and self.bytes_present < header.required_dump_space:
            reasons.append(f"{self.bytes_present:,} of the {header.required_dump_space:,} bytes of RequiredDumpSpace are present")
        return reasons

    @property
    def complete(self) -> bool:
        """Whether the whole dump is on the disk."""
        return not self.torn

    def as_dict(self) -> dict[str, Any]:
        """The JSON object ``stacksim inspect --json`` writes (``docs/reference/cli.md``)."""
        loc, h, run = self.located, self.located.header, self.located.run
        return {
            "image": loc.file.name,
            "result": run.name,
            "target": run.layout.target,
            "partition_offset": run.layout.partition_offset,
            "file_bytes": run.layout.size,
            "file_runs": len(run.layout.runs),
            "header": h is not None,
            "header_problem": loc.header_problem,
            "dump_type": h.dump_type if h else None,
            "signature": h.signature.decode("latin-1") if h else None,
            "kind": dump_kind(h) if h else None,
            "bugcheck_code": h.bugcheck_code if h else None,
            "bugcheck_parameters": list(h.bugcheck_parameters) if h else None,
            "required_dump_space": h.required_dump_space if h else None,
            "bytes_present": self.bytes_present,
            "pages": h.page_count if h else None,
            "pages_present": self.pages_present,
            "complete": self.complete,
            "torn": self.torn,
            "encryption": loc.encryption,
            "key": loc.key_label if loc.decrypting else None,
            "on_disk": {"header_signature": loc.raw_signature, "page_markers": self.raw_markers},
            "decrypted": (
                {"header_signature": True, "page_markers": self.decrypted_markers} if self.decrypted_markers is not None else None
            ),
            "unwritten_sectors": self.unwritten_sectors,
            "mismatches": list(loc.mismatches),
            "scanned_bytes": self.scanned_bytes,
            "run": {
                "status": run.status,
                "bytes_written": run.bytes_written,
                "dump_bytes": run.dump_bytes,
                "encrypted_by_dumpfve": run.encrypted,
                "key": run.key_source,
            },
        }


def survey(loc: Located, out: IO[bytes] | None = None, *, chunk: int = CHUNK) -> Survey:
    """
    Read the dump *loc* found to its end, *chunk* bytes at a time; with *out*, write its plaintext there.

    *out* receives exactly ``RequiredDumpSpace`` bytes, in order: the file's bytes, decrypted when
    the dump is encrypted, with sectors that were never written (and bytes past the end of the
    file) as zeros. Without a header only the markers are counted (over the run's dump size).
    """
    import numpy as np

    from stacksim.physmem import MAGIC, count_markers
    from stacksim.xts import XtsCipher

    if chunk <= 0 or chunk % PAGE_SIZE:
        raise ValueError(f"chunk = {chunk:,} bytes must be a positive multiple of {PAGE_SIZE:,}")
    header = loc.header
    run = loc.run
    extent = loc.extent
    end = min(_round_up(extent, SECTOR_SIZE), run.layout.size)
    cipher = XtsCipher(loc.key) if loc.decrypting and loc.key is not None else None
    buf = bytearray(min(chunk, max(end, SECTOR_SIZE)))
    magic = np.uint64(int.from_bytes(MAGIC, "little"))
    raw_markers = decrypted = unwritten = pages = tail = 0
    first_page = header.first_page_offset if header is not None else 0
    body_end = header.body_end if header is not None else 0
    tail_is_filler = header is not None and header.dump_type in (DUMP_TYPE_FULL, DUMP_TYPE_BITMAP_FULL, DUMP_TYPE_BITMAP_KERNEL)
    for pos in range(0, end, len(buf)):
        n = min(len(buf), end - pos)
        view = memoryview(buf)[:n]
        pieces = loc.file.read_into(pos, view)
        raw_markers += count_markers(view)
        sectors = np.frombuffer(view, dtype="<u8").reshape(-1, SECTOR_SIZE // 8)
        zero = _zero_sectors(sectors) if cipher is not None else None
        if cipher is not None and zero is not None:
            for at, offset, length in pieces:
                cipher.decrypt_into(view[at : at + length], offset // SECTOR_SIZE, view[at : at + length])
            sectors[zero] = 0
            unwritten += int(np.count_nonzero(zero[: _round_up(min(n, extent - pos), SECTOR_SIZE) // SECTOR_SIZE]))
            decrypted += count_markers(view)
        if header is not None:
            pages += _pages_present(header, pos, sectors, zero, magic)
            tail += _tail_present(pos, n, extent, body_end, sectors, zero, filler=tail_is_filler)
        if out is not None:
            out.write(view[: max(0, min(n, extent - pos))])
    if out is not None:
        for pos in range(end, extent, len(buf)):  # past the end of the file: never written
            out.write(bytes(min(len(buf), extent - pos)))
    present = None if header is None else first_page + pages * PAGE_SIZE + tail
    return Survey(
        loc,
        scanned_bytes=end,
        raw_markers=raw_markers,
        decrypted_markers=decrypted if cipher is not None else None,
        unwritten_sectors=unwritten if cipher is not None else None,
        pages_present=pages if header is not None else None,
        bytes_present=present,
    )


def _zero_sectors(sectors: npt.NDArray[np.uint64]) -> npt.NDArray[np.bool_]:
    """Which rows (sectors of 64 words) are all zeros."""
    import numpy as np

    zero: npt.NDArray[np.bool_] = np.bitwise_or.reduce(sectors, axis=1) == 0  # twice as fast as np.any here
    return zero


def _pages_present(
    header: ParsedDump,
    pos: int,
    sectors: npt.NDArray[np.uint64],
    zero: npt.NDArray[np.bool_] | None,
    magic: np.uint64,
) -> int:
    """How many of the dump's pages in the chunk at file offset *pos* start with their own marker (and are whole on the disk)."""
    import numpy as np

    n = sectors.size * 8
    start, stop = header.first_page_offset, header.body_end
    lo, hi = max(pos, start), min(pos + n, stop)
    if lo >= hi:
        return 0
    k0, k1 = (lo - start) // PAGE_SIZE, (hi - start) // PAGE_SIZE
    if k1 <= k0:
        return 0
    words = sectors.reshape(-1)
    at = (start + np.arange(k0, k1, dtype=np.int64) * PAGE_SIZE - pos) // 8
    ok = (words[at] == magic) & (words[at + 1] == header.pfns_at(k0, k1 - k0).astype(np.uint64))
    if zero is not None:
        per_page = PAGE_SIZE // SECTOR_SIZE
        first_sector = at // (SECTOR_SIZE // 8)
        ok &= ~zero[first_sector[:, None] + np.arange(per_page)].any(axis=1)
    return int(np.count_nonzero(ok))


def _tail_present(
    pos: int,
    n: int,
    extent: int,
    body_end: int,
    sectors: npt.NDArray[np.uint64],
    zero: npt.NDArray[np.bool_] | None,
    *,
    filler: bool,
) -> int:
    """
    Bytes after the pages (secondary data; a small dump's body) in the chunk at *pos* that are on the disk.

    Encrypted: the sectors that do not read as zeros on the disk. Plaintext: secondary data is
    never zero when written, so a zero sector is missing; a small dump's body is zeros by design,
    and a missing zero cannot be told from a written one, so it counts as present.
    """
    import numpy as np

    lo, hi = max(pos, body_end), min(pos + n, extent)
    if lo >= hi:
        return 0
    s0, s1 = (lo - pos) // SECTOR_SIZE, -(-(hi - pos) // SECTOR_SIZE)
    if zero is not None:
        written = ~zero[s0:s1]
    elif filler:
        written = ~_zero_sectors(sectors[s0:s1])
    else:
        return hi - lo
    sizes = np.full(s1 - s0, SECTOR_SIZE, dtype=np.int64)
    sizes[-1] = hi - pos - (s1 - 1) * SECTOR_SIZE
    sizes[0] -= lo - pos - s0 * SECTOR_SIZE
    return int(sizes[written].sum())


def refusal(found: Located | Survey, *, allow_torn: bool = False) -> str | None:
    """
    Why ``stacksim extract`` must not write ``MEMORY.DMP`` from *found*, or None.

    Always refused: a key given for a plaintext dump ("not encrypted"), a wrong or missing key,
    no readable header, a header that is another run's, a plaintext dump the result says was
    encrypted. A torn dump (:attr:`Survey.torn`, or what :meth:`Located.torn_before_reading`
    shows) is refused unless *allow_torn*.
    """
    loc = found.located if isinstance(found, Survey) else found
    if loc.encryption == "plaintext" and loc.key_given:
        return (
            "not encrypted: the dump on the disk is plaintext (its first sector starts with 'PAGE' 'DU64'; "
            f"dumpfve.sys {'loaded' if loc.run.encrypted else 'did not load'}); --key-file is only for an "
            "encrypted dump: run without it"
        )
    if loc.encryption == "plaintext" and loc.run.encrypted:
        return (
            f"the result says dumpfve.sys encrypted the dump, but the image holds it in plaintext: "
            f"the image is not the one of the run in {loc.run.name}"
        )
    if loc.encryption == "encrypted" and not loc.run.encrypted:
        return (
            f"the key decrypts the dump, but the result says dumpfve.sys did not load: "
            f"the image is not the one of the run in {loc.run.name}"
        )
    if loc.header is None:
        return loc.header_problem or "no dump header"
    if loc.mismatches:
        return f"the dump on the disk is not the one {loc.run.name} describes: " + "; ".join(loc.mismatches)
    if allow_torn:
        return None
    torn = found.torn if isinstance(found, Survey) else loc.torn_before_reading()
    if torn:
        return "the dump is torn: " + "; ".join(torn) + "; --allow-torn writes what is there"
    return None
