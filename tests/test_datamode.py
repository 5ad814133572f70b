"""
Data mode: real bytes through the filters onto a disk image, at exactly timing mode's simulated times.

Each run here writes a small dump (16 MiB of RAM) into a sparse image in a temporary folder; the
image is read back with plain ``os.pread`` and ``cryptography``, not with stacksim's own reader.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from conftest import invoke_cli, make_scenario
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from stacksim import FilterCatalog, ListTrace, simulate
from stacksim.check import check_records
from stacksim.cli import result_json
from stacksim.datamode import DataMode
from stacksim.diskimage import DiskImage
from stacksim.filters import DumpFilter, FilterExtension
from stacksim.requests import DumpRequest, Mdl
from stacksim.xts import derive_key

pytestmark = pytest.mark.timeout(60)

RAM = "16 MiB"
PAGES = 16 * 2**20 // 4096
FVE = {"registry": {"DumpFilters": ["dumpfve.sys"], "CrashDumpEnabled": 1}, "memory": {"ram": RAM}}
PLAIN = {"registry": {"DumpFilters": [], "CrashDumpEnabled": 1}, "memory": {"ram": RAM}}
KEY = derive_key(0)


@pytest.fixture
def image(tmp_path: Path) -> Iterator[Any]:
    """A factory of data-mode settings over a fresh image file in *tmp_path* (closed afterwards)."""
    files: list[Any] = []

    def make(size: int = 2 * 10**12) -> DataMode:
        f = (tmp_path / f"disk{len(files)}.img").open("w+b")
        files.append(f)
        return DataMode(DiskImage(f, size), KEY, "derived from the seed")

    yield make
    for f in files:
        f.close()


def timing_keys(result: Any) -> dict[str, Any]:
    """The result JSON minus what only data mode fills in and what records the engine mode."""
    d = json.loads(result_json(result))
    for key in ("data", "batched_messages", "request_mode_reasons"):
        d.pop(key)
    d["replay"].pop("batch")
    return d


@pytest.mark.parametrize(
    "sections",
    [
        FVE,
        PLAIN,
        {**FVE, "registry": {"DumpFilters": ["delayflt.sys", "dumpfve.sys"], "CrashDumpEnabled": 2}},
        {**FVE, "registry": {"DumpFilters": ["dumpfve.sys"], "CrashDumpEnabled": 1, "FilterPages": 1}},
        {**FVE, "faults": [{"kind": "device_error", "at_request": 7}], "dump_driver": {"write_retries": 1}},
        {**FVE, "layout": {"size": "8 MiB", "on_too_small": "truncate"}},
    ],
    ids=["dumpfve", "no-filter", "kernel-two-filters", "active", "device-error-retried", "truncated"],
)
def test_data_mode_gives_the_simulated_times_of_timing_mode(sections: dict[str, Any], image: Any) -> None:
    """Every number of the result but the data section is the timing run's, to the nanosecond."""
    s = make_scenario(**sections)
    assert timing_keys(simulate(s, FilterCatalog(), data=image())) == timing_keys(simulate(s, FilterCatalog()))


def test_a_timing_run_has_no_data_section() -> None:
    """Without data mode the result's data is null."""
    assert simulate(make_scenario(**FVE), FilterCatalog()).data is None


def test_with_dumpfve_no_page_reaches_the_disk_in_plaintext(image: Any) -> None:
    """dumpfve.sys encrypts every write: the leak check finds no page marker on the image."""
    r = simulate(make_scenario(**FVE), FilterCatalog(), data=image())
    assert r.data is not None
    assert (r.data["dump_pages"], r.data["plaintext_pages_on_disk"]) == (PAGES, 0)


def test_without_an_encryption_filter_every_dump_page_is_on_the_disk_in_plaintext(image: Any) -> None:
    """No filter: the marker of every page of the complete dump is found on the image."""
    r = simulate(make_scenario(**PLAIN), FilterCatalog(), data=image())
    assert r.data is not None
    assert r.data["plaintext_pages_on_disk"] == r.data["dump_pages"] == PAGES


def test_a_non_critical_encryption_filter_that_fails_to_load_leaks_the_dump(image: Any) -> None:
    """An encryption filter whose DriverEntry fails is skipped: the dump is written, every page in plaintext."""
    fails = {"action": "fail_driver_entry", "critical": False}
    registry = {"DumpFilters": ["faultflt.sys"], "CrashDumpEnabled": 2}
    s = make_scenario(registry=registry, memory={"ram": RAM}, filters={"faultflt.sys": fails})
    r = simulate(s, FilterCatalog(), data=image())
    assert r.status == "ok"
    assert r.data is not None
    assert r.data["plaintext_pages_on_disk"] == r.data["dump_pages"] > 0


def test_the_same_filter_marked_critical_writes_no_dump_at_all(image: Any) -> None:
    """Critical and failing: the dump stack does not load, nothing reaches the image."""
    fails = {"action": "fail_driver_entry", "critical": True}
    registry = {"DumpFilters": ["faultflt.sys"], "CrashDumpEnabled": 2}
    s = make_scenario(registry=registry, memory={"ram": RAM}, filters={"faultflt.sys": fails})
    r = simulate(s, FilterCatalog(), data=image())
    assert r.status == "stack_init_failed"
    assert r.data is not None
    assert (r.data["image_bytes_written"], r.data["plaintext_pages_on_disk"]) == (0, 0)


def test_the_image_holds_the_dump_encrypted_with_aes_xts_at_its_disk_offset(image: Any) -> None:
    """The header's first sector on the image decrypts, with the key and its partition-relative sector as tweak, to 'PAGEDU64'."""
    s = make_scenario(**FVE)
    mode = image()
    simulate(s, FilterCatalog(), data=mode)
    layout = s.file_layout()
    first = layout.runs[0].offset  # the dump file's first byte, partition-relative
    sector = mode.image.read(layout.partition_offset + first, 512)
    tweak = (first // 512).to_bytes(16, "little")
    plain = Cipher(algorithms.AES(KEY), modes.XTS(tweak)).decryptor().update(sector)
    assert plain[:8] == b"PAGEDU64"
    assert sector[:8] != b"PAGEDU64"


def test_the_image_holds_nothing_outside_the_dump(image: Any) -> None:
    """Every byte written lands inside the target file's runs: the image holds exactly the dump's bytes."""
    s = make_scenario(**PLAIN)
    mode = image()
    r = simulate(s, FilterCatalog(), data=mode)
    assert mode.image.bytes_written == r.bytes_written == r.dump_bytes


def test_a_data_mode_trace_is_the_timing_trace_and_passes_the_checker(image: Any) -> None:
    """Data mode adds no record and moves none: the trace equals timing mode's and passes stacksim check."""
    s = make_scenario(**FVE)
    data_trace, timing_trace = ListTrace(), ListTrace()
    simulate(s, FilterCatalog(), trace=data_trace, data=image())
    simulate(s, FilterCatalog(), trace=timing_trace)
    assert data_trace.records == timing_trace.records
    assert check_records(data_trace.records) == []


# -- filters that break the rules on the bytes ------------------------------------------------


class _Scribbler(DumpFilter):
    """Writes into the caller's buffer behind the MDL's back (through the bytearray itself)."""

    service_name: ClassVar[str] = "scribble.sys"

    def write_cost(self, extension: FilterExtension | None, length: int) -> int:
        return 0

    async def dump_write(self, extension: FilterExtension, request: DumpRequest) -> int:
        data = request.mdl.data
        if data is not None:
            memoryview(data)[0] ^= 0xFF
        return 0


class _Shrinker(DumpFilter):
    """Hands down an MDL of the right length whose buffer is one sector short."""

    service_name: ClassVar[str] = "shrink.sys"

    async def dump_write(self, extension: FilterExtension, request: DumpRequest) -> int:
        data = request.mdl.data
        if data is not None:
            request.mdl = Mdl(self.service_name, request.length, bytearray(data[:-512]))
        return 0


class _Emptier(DumpFilter):
    """Swaps in an MDL of its own with no bytes at all."""

    service_name: ClassVar[str] = "empty.sys"

    async def dump_write(self, extension: FilterExtension, request: DumpRequest) -> int:
        request.mdl = Mdl(self.service_name, request.length)
        return 0


def run_with(cls: type[DumpFilter], image: Any) -> Any:
    """A data-mode complete dump of 16 MiB through the one filter *cls*."""
    catalog = FilterCatalog()
    catalog.add(cls, "test")
    s = make_scenario(catalog, registry={"DumpFilters": [cls.service_name], "CrashDumpEnabled": 1}, memory={"ram": RAM})
    return simulate(s, catalog, data=image())


def test_a_filter_that_writes_into_the_callers_buffer_is_reported_by_name(image: Any) -> None:
    """Changing the caller's bytes, whatever the API, ends the dump as a filter violation naming the filter."""
    r = run_with(_Scribbler, image)
    assert r.status == "filter_violation"
    assert r.message.startswith("scribble.sys: dump_write changed the bytes of the buffer it was given (request #1")


def test_a_filter_whose_buffer_does_not_match_its_length_is_reported(image: Any) -> None:
    """An MDL whose bytes are fewer than its length is a violation: the size must not change."""
    r = run_with(_Shrinker, image)
    assert r.status == "filter_violation"
    assert "shrink.sys: dump_write handed down request #1 with an MDL of 8,192 bytes whose buffer holds 7,680 bytes" in r.message


def test_a_filter_that_hands_down_an_mdl_without_bytes_is_reported(image: Any) -> None:
    """In data mode every MDL carries its bytes: one without any is a violation."""
    r = run_with(_Emptier, image)
    assert r.status == "filter_violation"
    assert "empty.sys: dump_write handed down request #1 with an MDL of 8,192 bytes whose buffer holds None" in r.message


class _Strider(DumpFilter):
    """Hands down a buffer of the right length that is every other byte of a larger one (not contiguous)."""

    service_name: ClassVar[str] = "stride.sys"

    async def dump_write(self, extension: FilterExtension, request: DumpRequest) -> int:
        data = request.mdl.data
        if data is not None:
            spread = bytearray(2 * request.length)
            spread[::2] = data
            request.mdl = Mdl(self.service_name, request.length, memoryview(spread)[::2])
        return 0


class _Words(DumpFilter):
    """Hands down a copy of the pages as a view of 8-byte words (as many bytes, an eighth as many items)."""

    service_name: ClassVar[str] = "words.sys"

    async def dump_write(self, extension: FilterExtension, request: DumpRequest) -> int:
        data = request.mdl.data
        if data is not None:
            request.mdl = Mdl(self.service_name, request.length, memoryview(bytearray(data)).cast("Q"))
        return 0


def run_chain(image: Any, *classes: type[DumpFilter], names: tuple[str, ...] = ()) -> Any:
    """A data-mode complete dump of 16 MiB through the filters *names* (built-ins) and *classes*, in that order."""
    catalog = FilterCatalog()
    for cls in classes:
        catalog.add(cls, "test")
    filters = [*names, *(c.service_name for c in classes)]
    s = make_scenario(catalog, registry={"DumpFilters": filters, "CrashDumpEnabled": 1}, memory={"ram": RAM})
    return simulate(s, catalog, data=image())


def test_a_filter_that_writes_into_an_upper_filters_buffer_is_reported_by_name(image: Any) -> None:
    """Below dumpfve.sys the caller's buffer is dumpfve's own (a memoryview): changing it is a violation all the same."""
    r = run_chain(image, _Scribbler, names=("dumpfve.sys",))
    assert r.status == "filter_violation"
    assert r.message.startswith(
        "scribble.sys: dump_write changed the bytes of the buffer it was given (request #1, owned by dumpfve.sys)"
    )


def test_a_filter_that_hands_down_a_buffer_that_is_not_contiguous_is_reported(image: Any) -> None:
    """A scattered buffer handed down is itself a violation: the port writes every MDL in one piece."""
    r = run_chain(image, _Strider)
    assert r.status == "filter_violation"
    assert "stride.sys: dump_write handed down request #1 with an MDL of 8,192 bytes" in r.message
    assert "whose buffer holds 8,192 bytes that are not contiguous in memory" in r.message


def test_a_view_of_words_is_written_as_its_bytes(image: Any) -> None:
    """A buffer handed down as 8-byte items of the right byte length is accepted and lands on the disk byte for byte."""
    r = run_chain(image, _Words)
    assert r.status == "ok"
    assert r.data is not None
    assert (r.data["image_bytes_written"], r.data["plaintext_pages_on_disk"]) == (r.dump_bytes, PAGES)


class _Reader(DumpFilter):
    """Reads the caller's bytes and changes nothing."""

    service_name: ClassVar[str] = "reader.sys"

    async def dump_write(self, extension: FilterExtension, request: DumpRequest) -> int:
        data = request.mdl.data
        return 0 if data is not None and len(bytes(data)) == request.length else 0xC0000001


def test_a_view_of_words_read_by_the_filter_below_is_no_change(image: Any) -> None:
    """A view of 8-byte words handed to a filter that only reads it is compared as bytes: unchanged, the dump is ok."""
    r = run_chain(image, _Words, _Reader)
    assert r.status == "ok"
    assert r.data is not None
    assert (r.data["image_bytes_written"], r.data["plaintext_pages_on_disk"]) == (r.dump_bytes, PAGES)


def test_a_filter_that_changes_a_view_of_words_below_it_is_reported(image: Any) -> None:
    """Changing a caller's buffer of 8-byte items is caught too (compared as bytes)."""
    r = run_chain(image, _Words, _Scribbler)
    assert r.status == "filter_violation"
    assert r.message.startswith(
        "scribble.sys: dump_write changed the bytes of the buffer it was given (request #1, owned by words.sys)"
    )


class _Mover(DumpFilter):
    """Moves the third write 100 MiB past the end of the dump (the port honours a moved offset)."""

    service_name: ClassVar[str] = "move.sys"

    async def dump_write(self, extension: FilterExtension, request: DumpRequest) -> int:
        if request.number == 3:
            request.offset += 100 * 2**20
        return 0


def test_the_leak_check_counts_plaintext_wherever_a_filter_moved_it(image: Any) -> None:
    """A write moved out of the page file still lands on the disk: its pages count as plaintext on disk."""
    r = run_with(_Mover, image)
    assert r.data is not None
    assert r.data["plaintext_pages_on_disk"] == r.data["dump_pages"] == PAGES


# -- what data mode refuses -------------------------------------------------------------------


def test_data_mode_refuses_a_run_that_writes_no_dump(tmp_path: Path) -> None:
    """event = "io" in data mode (it writes no dump) is refused with exit 2, naming [scenario] event; no image is left."""
    sc = tmp_path / "io.toml"
    sc.write_text('[scenario]\nname = "io"\nevent = "io"\n[workload]\nrequests = 10\n', encoding="utf-8")
    proc = invoke_cli("run", str(sc), "--data", "--image", str(tmp_path / "io.img"), cwd=tmp_path)
    assert proc.returncode == 2
    assert "[scenario] event: data mode writes crash dumps and hiberfiles" in proc.stderr
    assert not (tmp_path / "io.img").exists()


def test_data_needs_an_image(tmp_path: Path) -> None:
    """--data without --image is refused before anything runs."""
    sc = tmp_path / "c.toml"
    sc.write_text('[scenario]\nname = "c"\n', encoding="utf-8")
    proc = invoke_cli("run", str(sc), "--data", cwd=tmp_path)
    assert proc.returncode == 2
    assert "--data and --image go together" in proc.stderr


def test_the_cli_writes_the_image_and_reports_the_leak_check(tmp_path: Path) -> None:
    """stacksim run --data --image writes a sparse image as long as the disk and the data section in the result."""
    sc = tmp_path / "c.toml"
    text = '[scenario]\nname = "c"\n[registry]\nDumpFilters = []\nCrashDumpEnabled = 1\n[memory]\nram = "16 MiB"\n'
    sc.write_text(text, encoding="utf-8")
    image, result = str(tmp_path / "c.img"), str(tmp_path / "c.json")
    proc = invoke_cli("run", str(sc), "--data", "--image", image, "--json", result, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    data = json.loads((tmp_path / "c.json").read_text())["data"]
    assert data["plaintext_pages_on_disk"] == PAGES
    st = (tmp_path / "c.img").stat()
    assert st.st_size == 2 * 10**12  # the default disk: 2 TB
    assert st.st_blocks * 512 < 64 * 2**20  # sparse: about the dump's 16 MiB


def test_a_data_mode_result_replays_in_timing_mode(tmp_path: Path) -> None:
    """stacksim replay of a data-mode result matches every simulated number and says the image was not redone."""
    sc = tmp_path / "c.toml"
    sc.write_text(
        '[scenario]\nname = "c"\n[registry]\nDumpFilters = ["dumpfve.sys"]\nCrashDumpEnabled = 1\n[memory]\nram = "16 MiB"\n'
    )
    result = str(tmp_path / "c.json")
    assert (
        invoke_cli("run", str(sc), "--data", "--image", str(tmp_path / "c.img"), "--json", result, cwd=tmp_path).returncode == 0
    )
    proc = invoke_cli("replay", result, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "replay matches a data-mode run's every simulated number" in proc.stdout


def test_a_power_loss_takes_what_a_volatile_cache_held_off_the_image(image: Any) -> None:
    """On hdd-7200 (a 64 MB DRAM cache), power lost mid-dump: the image lacks the last bytes the cache still held."""
    catalog = FilterCatalog()
    s = make_scenario(
        catalog,
        registry={"DumpFilters": [], "CrashDumpEnabled": 1},
        memory={"ram": "256 MiB"},
        disk={"preset": "hdd-7200"},
        faults=[{"kind": "power_loss", "at": "500 ms"}],
    )
    result = simulate(s, catalog, data=image())
    lost = result.data["lost_in_volatile_cache_bytes"]
    assert result.status == "power_lost"
    assert 0 < lost <= 64 * 10**6
    # every completed page but those the cache lost is on the disk in plaintext (after the header and the bitmap)
    on_disk = result.bytes_written - lost - result.parts["header"] - result.parts["bitmap"]
    assert result.data["plaintext_pages_on_disk"] == on_disk // 4096


def test_an_ssd_cache_loses_nothing(image: Any) -> None:
    """nvme-pcie3's SLC cache is NAND: the same power loss leaves every completed write on the image."""
    catalog = FilterCatalog()
    s = make_scenario(
        catalog,
        registry={"DumpFilters": [], "CrashDumpEnabled": 1},
        memory={"ram": RAM},
        disk={"preset": "nvme-pcie3"},
        faults=[{"kind": "power_loss", "at": "3 ms"}],
    )
    result = simulate(s, catalog, data=image())
    assert (result.status, result.data["lost_in_volatile_cache_bytes"]) == ("power_lost", 0)
    assert result.bytes_written > 0
    front = result.parts["header"] + result.parts["bitmap"]
    assert result.data["plaintext_pages_on_disk"] == (result.bytes_written - front) // 4096
