"""
After the reboot: ``stacksim extract`` and ``stacksim inspect`` read a data-mode disk image back.

The checks are independent of stacksim's own reading code where the issue asks for it:
``MEMORY.DMP`` is opened with kdmp-parser (from PyPI) and compared with ``stacksim memory``'s
output, and the disk image is decrypted here with a few lines of ``cryptography`` under the
documented key and convention (``docs/reference/encryption.md``). Every image is built once per
module, with small RAM (16-32 MiB) on a small sparse disk.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kdmp_parser
import pytest
from conftest import invoke_cli
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

MiB = 2**20
PAGE = 4096
PARTITION_OFFSET = MiB
RUNS = [(64 * MiB, 5 * MiB + 1536), (300 * MiB + 512, 6 * MiB), (100 * MiB, 20 * MiB)]
"""The page file's disk runs (partition offset, length), in file order: out of disk order, and cut mid-page."""

RUNS_TOML = ", ".join(f"{{offset = {o}, length = {n}}}" for o, n in RUNS)
LAYOUT = f"[layout]\npartition_offset = {PARTITION_OFFSET}\nruns = [{RUNS_TOML}]\n"


def scenario_text(name: str, *, seed: int, kind: int, ram: str, filters: bool, extra: str = "", memory: str = "") -> str:
    """A crash scenario on a 512 MiB disk with the page file in :data:`RUNS`; *memory* and *extra* add TOML."""
    dump_filters = json.dumps(["dumpfve.sys"] if filters else [])
    return (
        f'[scenario]\nname = "{name}"\nevent = "crash"\nseed = {seed}\nbugcheck_at = "10 ms"\n'
        f"[registry]\nDumpFilters = {dump_filters}\nCrashDumpEnabled = {kind}\n"
        f'[memory]\nram = "{ram}"\n{memory}[disk]\nmodel = "fixed"\nsize = "512 MiB"\n{LAYOUT}{extra}'
    )


@dataclass(frozen=True)
class Run:
    """A data-mode run in its own folder: scenario, image, result, and what extract and memory wrote."""

    folder: Path
    seed: int

    def path(self, name: str) -> str:
        """A file of the run, as an absolute path string."""
        return str(self.folder / name)

    @property
    def result(self) -> dict[str, Any]:
        """The result JSON."""
        data: dict[str, Any] = json.loads((self.folder / "result.json").read_text())
        return data

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run stacksim in the run's folder."""
        return invoke_cli(*args, cwd=self.folder)

    def inspect(self, *args: str) -> dict[str, Any]:
        """``stacksim inspect --json -`` of the run's image, parsed."""
        proc = self.cli("inspect", "disk.img", "--result", "result.json", "--json", "-", *args)
        assert proc.returncode == 0, proc.stderr
        data: dict[str, Any] = json.loads(proc.stdout)
        return data


def make_run(factory: pytest.TempPathFactory, name: str, *, extract: bool = True, key: bytes | None = None, **kw: Any) -> Run:
    """Run the scenario in data mode (and, with *extract*, extract MEMORY.DMP and write its memory)."""
    folder = factory.mktemp(name)
    (folder / "s.toml").write_text(scenario_text(name, **kw))
    keyargs: list[str] = []
    if key is not None:
        (folder / "volume.key").write_bytes(key)
        keyargs = ["--key-file", "volume.key"]
    run = Run(folder, kw["seed"])
    proc = run.cli("run", "s.toml", "--data", "--image", "disk.img", "--json", "result.json", *keyargs)
    assert proc.returncode == 0, proc.stderr
    if extract:
        proc = run.cli("extract", "disk.img", "--result", "result.json", "--out", "MEMORY.DMP", *keyargs)
        assert proc.returncode == 0, proc.stderr
        proc = run.cli("memory", "s.toml", "--out", "ram.bin", "--classes", "classes.json")
        assert proc.returncode == 0, proc.stderr
    return run


@pytest.fixture(scope="module")
def complete(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """A complete dump of 16 MiB, encrypted by dumpfve.sys with the seed's key."""
    return make_run(tmp_path_factory, "complete", seed=11, kind=1, ram="16 MiB", filters=True)


@pytest.fixture(scope="module")
def kernel(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """A kernel dump of a 32 MiB machine, encrypted by dumpfve.sys with the seed's key."""
    return make_run(tmp_path_factory, "kernel", seed=12, kind=2, ram="32 MiB", filters=True)


@pytest.fixture(scope="module")
def plaintext(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """A complete dump of 16 MiB and 100 KiB of secondary data with no dump filter: plaintext on the disk."""
    secondary = 'secondary_data = "100 KiB"\n'
    return make_run(tmp_path_factory, "plain", seed=13, kind=1, ram="16 MiB", filters=False, memory=secondary)


KEY = bytes(range(64))
"""A key file's 64 raw bytes (halves differ)."""


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """A kernel dump of a 16 MiB machine encrypted with the key in volume.key."""
    return make_run(tmp_path_factory, "keyed", seed=14, kind=2, ram="16 MiB", filters=True, key=KEY, extract=False)


@pytest.fixture(scope="module")
def torn(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """A complete dump of 16 MiB, encrypted, cut by a power loss 8 ms after the bugcheck."""
    power = '[[faults]]\nkind = "power_loss"\nat = "8 ms"\n'
    return make_run(tmp_path_factory, "torn", seed=15, kind=1, ram="16 MiB", filters=True, extra=power, extract=False)


def pages_of(run: Run) -> dict[int, bytes]:
    """Every physical page kdmp-parser reads from the run's MEMORY.DMP, by PFN."""
    parser = kdmp_parser.KernelDumpParser(Path(run.path("MEMORY.DMP")))
    return {pa // PAGE: bytes(data) for pa, data in parser.pages.items()}


def classes(run: Run, *wanted: str) -> set[int]:
    """The PFNs of the given classes in ``stacksim memory --classes`` output."""
    data = json.loads((run.folder / "classes.json").read_text())
    return {p for r in data["classes"] if r["class"] in wanted for p in range(r["first_pfn"], r["first_pfn"] + r["pages"])}


def documented_key(seed: int) -> bytes:
    """The seed-derived key as docs/reference/encryption.md defines it, recomputed here."""
    label = b"stacksim aes-256-xts-plain64 simulation key v1\x00"
    for counter in range(256):
        key = hashlib.sha512(label + seed.to_bytes(8, "little") + bytes([counter])).digest()
        if key[:32] != key[32:]:
            return key
    raise AssertionError("no key")


def decrypted_file(run: Run, key: bytes, size: int) -> bytes:
    """The first *size* bytes of the page file, read from the image run by run and decrypted sector by sector."""
    out = bytearray()
    with open(run.path("disk.img"), "rb") as image:
        for offset, length in RUNS:
            image.seek(PARTITION_OFFSET + offset)
            data = image.read(length)
            for i in range(0, length, 512):
                tweak = (offset // 512 + i // 512).to_bytes(16, "little")
                out += Cipher(algorithms.AES(key), modes.XTS(tweak)).decryptor().update(data[i : i + 512])
            if len(out) >= size:
                break
    return bytes(out[:size])


class TestEncryptedDumpsOpenInKdmpParser:
    """MEMORY.DMP of an encrypted complete or kernel dump opens in kdmp-parser and holds the machine's memory."""

    @pytest.mark.parametrize("name", ["complete", "kernel"])
    def test_every_page_equals_the_memory_at_its_address(self, name: str, request: pytest.FixtureRequest) -> None:
        """Each page kdmp-parser reads equals the bytes `stacksim memory` wrote at that physical address."""
        run: Run = request.getfixturevalue(name)
        ram = Path(run.path("ram.bin")).read_bytes()
        pages = pages_of(run)
        assert [pfn for pfn, data in pages.items() if data != ram[pfn * PAGE : (pfn + 1) * PAGE]] == []

    def test_a_complete_dump_holds_every_page_of_ram(self, complete: Run) -> None:
        """The complete dump's pages are every page of every class."""
        assert set(pages_of(complete)) == classes(complete, "kernel", "user", "file_cache", "free", "guest")

    def test_a_kernel_dump_holds_exactly_the_kernel_pages(self, kernel: Run) -> None:
        """The kernel dump's pages are exactly the kernel-class pages of the class map."""
        assert set(pages_of(kernel)) == classes(kernel, "kernel")

    @pytest.mark.parametrize("name", ["complete", "kernel"])
    def test_the_header_carries_the_scenario_bugcheck(self, name: str, request: pytest.FixtureRequest) -> None:
        """kdmp-parser reads the bugcheck code of the scenario (the default 0xE2) and RequiredDumpSpace = the run's dump size."""
        run: Run = request.getfixturevalue(name)
        parser = kdmp_parser.KernelDumpParser(Path(run.path("MEMORY.DMP")))  # the header lives as long as the parser
        assert (parser.header.BugCheckCode, parser.header.RequiredDumpSpace) == (0xE2, run.result["dump_bytes"])

    @pytest.mark.parametrize("name", ["complete", "kernel"])
    def test_memory_dmp_is_exactly_required_dump_space(self, name: str, request: pytest.FixtureRequest) -> None:
        """MEMORY.DMP is RequiredDumpSpace bytes long: the run's dump size."""
        run: Run = request.getfixturevalue(name)
        assert os.path.getsize(run.path("MEMORY.DMP")) == run.result["dump_bytes"]


class TestIndependentDecryption:
    """The image, decrypted with the documented key and convention by cryptography alone, is MEMORY.DMP."""

    @pytest.mark.parametrize("name", ["complete", "kernel"])
    def test_the_decrypted_page_file_starts_with_memory_dmp(self, name: str, request: pytest.FixtureRequest) -> None:
        """AES-256-XTS per 512-byte sector, tweak = partition-relative sector, key = SHA-512 of the seed: the same bytes."""
        run: Run = request.getfixturevalue(name)
        dump = Path(run.path("MEMORY.DMP")).read_bytes()
        assert decrypted_file(run, documented_key(run.seed), len(dump)) == dump

    def test_the_image_itself_holds_no_plaintext(self, complete: Run) -> None:
        """The page file's first sector on the disk is not the dump's (it starts with 'PAGE' only once decrypted)."""
        with open(complete.path("disk.img"), "rb") as image:
            image.seek(PARTITION_OFFSET + RUNS[0][0])
            assert image.read(8) != b"PAGEDU64"


class TestInspect:
    """inspect says what the disk holds: header, type, complete or torn, encrypted or plaintext."""

    def test_an_encrypted_complete_dump(self, complete: Run) -> None:
        """A complete encrypted dump: header found, DumpType 5 'FDMP', every byte and page present, no plaintext marker."""
        got = complete.inspect()
        n = complete.result["data"]["dump_pages"]
        assert {k: got[k] for k in ("header", "dump_type", "signature", "kind", "complete", "encryption", "key")} == {
            "header": True,
            "dump_type": 5,
            "signature": "FDMP",
            "kind": "complete",
            "complete": True,
            "encryption": "encrypted",
            "key": "derived from the seed",
        }
        assert (got["bytes_present"], got["pages_present"], got["pages"]) == (complete.result["dump_bytes"], n, n)
        assert (got["on_disk"], got["decrypted"]) == (
            {"header_signature": False, "page_markers": 0},
            {"header_signature": True, "page_markers": n},
        )

    def test_a_kernel_dump_is_named_by_its_summary_signature(self, kernel: Run) -> None:
        """A kernel dump: DumpType 5 with 'SDMP', every kernel page present."""
        got = kernel.inspect()
        assert (got["kind"], got["signature"], got["pages_present"], got["complete"]) == (
            "kernel",
            "SDMP",
            len(classes(kernel, "kernel")),
            True,
        )

    def test_the_bugcheck_is_reported(self, complete: Run) -> None:
        """The bugcheck code and its four parameters come from the header."""
        got = complete.inspect()
        assert (got["bugcheck_code"], got["bugcheck_parameters"]) == (0xE2, [0, 0, 0, 0])

    def test_the_terminal_report_names_each_finding_with_units(self, complete: Run) -> None:
        """The table says found, encrypted and complete, with bytes and pages counted."""
        proc = complete.cli("inspect", "disk.img", "--result", "result.json")
        assert proc.returncode == 0, proc.stderr
        text = " ".join(proc.stdout.split())
        n = complete.result["data"]["dump_pages"]
        size = complete.result["dump_bytes"]
        for piece in ("header found: DumpType 5 'FDMP', a complete dump", "encryption encrypted with AES-256-XTS"):
            assert piece in text
        assert f"dump complete: {size:,} of {size:,} bytes (RequiredDumpSpace) and {n:,} of {n:,} pages present" in text

    def test_json_to_a_file_and_the_report_to_stdout(self, complete: Run) -> None:
        """--json FILE writes the same object as --json - and still prints the report."""
        proc = complete.cli("inspect", "disk.img", "--result", "result.json", "--json", "found.json")
        assert proc.returncode == 0, proc.stderr
        assert "header" in proc.stdout
        assert json.loads((complete.folder / "found.json").read_text()) == complete.inspect()


class TestPlaintext:
    """Without dumpfve.sys the dump is plaintext: no key is needed, and a key given is named as not needed."""

    def test_extract_needs_no_key_and_gives_the_disk_bytes(self, plaintext: Run) -> None:
        """MEMORY.DMP is the page file's bytes as they are on the disk."""
        dump = Path(plaintext.path("MEMORY.DMP")).read_bytes()
        with open(plaintext.path("disk.img"), "rb") as image:
            image.seek(PARTITION_OFFSET + RUNS[0][0])
            assert image.read(RUNS[0][1])[: len(dump)] == dump[: RUNS[0][1]]

    def test_every_page_equals_the_memory(self, plaintext: Run) -> None:
        """kdmp-parser reads every page of RAM, each equal to the memory at its address."""
        ram = Path(plaintext.path("ram.bin")).read_bytes()
        pages = pages_of(plaintext)
        assert len(pages) == plaintext.result["data"]["dump_pages"]
        assert [pfn for pfn, data in pages.items() if data != ram[pfn * PAGE : (pfn + 1) * PAGE]] == []

    def test_inspect_says_plaintext_with_every_marker_readable(self, plaintext: Run) -> None:
        """On the disk: the header signature and one marker per page; nothing decrypted."""
        got = plaintext.inspect()
        n = plaintext.result["data"]["dump_pages"]
        assert (got["encryption"], got["on_disk"], got["decrypted"], got["complete"]) == (
            "plaintext",
            {"header_signature": True, "page_markers": n},
            None,
            True,
        )

    def test_extract_with_a_key_says_not_encrypted(self, plaintext: Run) -> None:
        """A key given for a plaintext dump is refused: 'not encrypted', exit 2, no file written."""
        (plaintext.folder / "some.key").write_bytes(KEY)
        proc = plaintext.cli("extract", "disk.img", "--result", "result.json", "--out", "k.dmp", "--key-file", "some.key")
        assert (proc.returncode, "not encrypted" in proc.stderr, (plaintext.folder / "k.dmp").exists()) == (2, True, False)

    def test_inspect_with_a_key_says_it_is_not_needed(self, plaintext: Run) -> None:
        """inspect reports plaintext and that the key given is not needed."""
        (plaintext.folder / "some.key").write_bytes(KEY)
        proc = plaintext.cli("inspect", "disk.img", "--result", "result.json", "--key-file", "some.key")
        assert proc.returncode == 0, proc.stderr
        assert "the key given is not needed: the dump is not encrypted" in " ".join(proc.stdout.split())


class TestKeys:
    """The key: the seed's by default, a key file's when the run used one, and a wrong one is named."""

    def test_a_key_file_run_needs_the_key_file(self, keyed: Run) -> None:
        """Without --key-file, a dump encrypted with a key file is refused, naming the file to pass."""
        proc = keyed.cli("extract", "disk.img", "--result", "result.json", "--out", "x.dmp")
        assert proc.returncode == 2
        assert "key file volume.key" in proc.stderr
        assert "--key-file" in proc.stderr

    def test_the_right_key_file_extracts_it(self, keyed: Run) -> None:
        """With the run's key file the dump extracts, and the cryptography decryption with that key gives the same bytes."""
        proc = keyed.cli("extract", "disk.img", "--result", "result.json", "--out", "x.dmp", "--key-file", "volume.key")
        assert proc.returncode == 0, proc.stderr
        dump = Path(keyed.path("x.dmp")).read_bytes()
        assert decrypted_file(keyed, KEY, len(dump)) == dump

    def test_extract_with_a_wrong_key_says_wrong_key(self, keyed: Run) -> None:
        """Another key file is refused as 'wrong key', exit 2, and nothing is written."""
        (keyed.folder / "other.key").write_bytes(bytes(range(1, 65)))
        proc = keyed.cli("extract", "disk.img", "--result", "result.json", "--out", "w.dmp", "--key-file", "other.key")
        assert (proc.returncode, "wrong key" in proc.stderr, (keyed.folder / "w.dmp").exists()) == (2, True, False)

    def test_inspect_with_a_wrong_key_says_wrong_key(self, keyed: Run) -> None:
        """inspect reports 'wrong key' and no header, and still counts the (zero) plaintext markers on the disk."""
        (keyed.folder / "other.key").write_bytes(bytes(range(1, 65)))
        got = keyed.inspect("--key-file", "other.key")
        found = (got["encryption"], got["header"], got["on_disk"]["page_markers"], got["complete"])
        assert found == ("wrong key", False, 0, False)
        assert got["header_problem"].startswith("wrong key")


class TestTorn:
    """A dump cut short: inspect counts what is there; extract refuses it unless --allow-torn."""

    def test_inspect_counts_the_whole_pages_written(self, torn: Run) -> None:
        """Bytes present = header, bitmap and every page the completed writes carried whole (a page the tear cut is not)."""
        got = torn.inspect()
        written = torn.result["bytes_written"]
        header = got["required_dump_space"] - got["pages"] * PAGE
        assert got["complete"] is False
        assert (got["bytes_present"], got["pages_present"] * PAGE + header) == (written - (written - header) % PAGE,) * 2

    def test_inspect_counts_the_sectors_never_written(self, torn: Run) -> None:
        """Every sector of RequiredDumpSpace past the bytes written reads as zeros on the disk, and is counted."""
        got = torn.inspect()
        assert got["unwritten_sectors"] == (got["required_dump_space"] - torn.result["bytes_written"]) // 512

    def test_inspect_names_why(self, torn: Run) -> None:
        """The reasons name the run's status and the missing pages."""
        reasons = " ".join(torn.inspect()["torn"])
        assert "power_lost" in reasons
        assert "pages the header promises are not on the disk" in reasons

    def test_extract_refuses_it(self, torn: Run) -> None:
        """extract exits 2 saying the dump is torn, and writes nothing."""
        proc = torn.cli("extract", "disk.img", "--result", "result.json", "--out", "t.dmp")
        assert (proc.returncode, "torn" in proc.stderr, (torn.folder / "t.dmp").exists()) == (2, True, False)

    @pytest.fixture(scope="class")
    def kept(self, torn: Run) -> tuple[Run, dict[int, bytes], bytes]:
        """The torn dump extracted with --allow-torn: the run, the pages kdmp-parser reads, the memory."""
        proc = torn.cli("extract", "disk.img", "--result", "result.json", "--out", "t.dmp", "--allow-torn")
        assert proc.returncode == 0, proc.stderr
        assert "torn, written anyway" in proc.stdout
        proc = torn.cli("memory", "s.toml", "--out", "ram.bin")
        assert proc.returncode == 0, proc.stderr
        return torn, pages_of_file(torn.path("t.dmp")), Path(torn.path("ram.bin")).read_bytes()

    def test_allow_torn_writes_required_dump_space(self, kept: tuple[Run, dict[int, bytes], bytes]) -> None:
        """--allow-torn writes RequiredDumpSpace bytes, and kdmp-parser finds every page the header promises."""
        run, pages, _ = kept
        assert (os.path.getsize(run.path("t.dmp")), len(pages)) == (run.result["dump_bytes"], run.result["data"]["dump_pages"])

    def test_allow_torn_keeps_each_written_sector_and_zeros_the_rest(self, kept: tuple[Run, dict[int, bytes], bytes]) -> None:
        """Each sector of each page is the memory's (written) or zeros (not); the whole pages are those inspect counts."""
        run, pages, ram = kept

        def sectors(data: bytes) -> list[bytes]:
            return [data[i : i + 512] for i in range(0, PAGE, 512)]

        zero = bytes(512)

        def mixed(p: int, data: bytes) -> bool:
            return any(s not in (m, zero) for s, m in zip(sectors(data), sectors(ram[p * PAGE : (p + 1) * PAGE]), strict=True))

        whole = [p for p, data in pages.items() if data == ram[p * PAGE : (p + 1) * PAGE]]
        assert ([p for p, data in pages.items() if mixed(p, data)], len(whole)) == ([], run.inspect()["pages_present"])


def pages_of_file(path: str) -> dict[int, bytes]:
    """Every physical page kdmp-parser reads from the dump at *path*, by PFN."""
    parser = kdmp_parser.KernelDumpParser(Path(path))
    return {pa // PAGE: bytes(data) for pa, data in parser.pages.items()}


@contextmanager
def zeroed_sector(run: Run, file_offset: int) -> Iterator[None]:
    """The sector at *file_offset* of the run's page file reads as zeros (a hole) inside the block; restored after."""
    for offset, length in RUNS:
        if file_offset < length:
            where = PARTITION_OFFSET + offset + file_offset
            break
        file_offset -= length
    else:
        raise AssertionError("past the page file")
    with open(run.path("disk.img"), "r+b") as image:
        image.seek(where)
        saved = image.read(512)
        image.seek(where)
        image.write(bytes(512))
    try:
        yield
    finally:
        with open(run.path("disk.img"), "r+b") as image:
            image.seek(where)
            image.write(saved)


class TestDamage:
    """A sector missing from an otherwise whole dump is found: in a page, in the secondary data, encrypted or not."""

    def test_a_missing_sector_inside_an_encrypted_page(self, complete: Run) -> None:
        """Encrypted: a page whose third sector reads as zeros on the disk is missing, though its marker decrypts."""
        got = complete.inspect()
        page = got["required_dump_space"] - got["pages"] * PAGE + 100 * PAGE  # the 101st page
        with zeroed_sector(complete, page + 1024):
            damaged = complete.inspect()
        assert (damaged["pages_present"], damaged["bytes_present"], damaged["unwritten_sectors"], damaged["complete"]) == (
            got["pages"] - 1,
            got["required_dump_space"] - PAGE,
            1,
            False,
        )

    def test_a_missing_page_start_in_plaintext(self, plaintext: Run) -> None:
        """Plaintext: a page whose first sector (its marker) reads as zeros is missing."""
        got = plaintext.inspect()
        first_page = got["required_dump_space"] - got["pages"] * PAGE - 100 * 1024
        with zeroed_sector(plaintext, first_page + 7 * PAGE):
            damaged = plaintext.inspect()
        assert (damaged["pages_present"], damaged["complete"]) == (got["pages"] - 1, False)

    def test_a_missing_sector_of_secondary_data_in_plaintext(self, plaintext: Run) -> None:
        """Plaintext: secondary data is never zero when written, so a zero sector of it is 512 bytes missing."""
        got = plaintext.inspect()
        size = got["required_dump_space"]
        with zeroed_sector(plaintext, size - 512):
            damaged = plaintext.inspect()
        assert (damaged["pages_present"], damaged["bytes_present"]) == (got["pages"], size - 512)
        assert damaged["torn"] == [f"{size - 512:,} of the {size:,} bytes of RequiredDumpSpace are present"]


class TestSmallDump:
    """A small dump (the header alone in 64 KiB) extracts and inspects as such."""

    def test_inspect_says_small(self, tmp_path_factory: pytest.TempPathFactory) -> None:
        """DumpType 4, kind 'small', complete, 64 KiB extracted."""
        run = make_run(tmp_path_factory, "small", seed=16, kind=3, ram="16 MiB", filters=True, extract=False)
        got = run.inspect()
        assert (got["dump_type"], got["kind"], got["complete"], got["required_dump_space"]) == (4, "small", True, 65536)
        proc = run.cli("extract", "disk.img", "--result", "result.json", "--out", "Mini.dmp")
        assert proc.returncode == 0, proc.stderr
        assert os.path.getsize(run.path("Mini.dmp")) == 65536


class TestHowTo:
    """docs/how-to/data-mode.md: its commands and its kdmp-parser script run as shown."""

    def test_the_kdmp_parser_script_runs_after_the_commands(self, tmp_path: Path) -> None:
        """The page's stacksim commands, then its Python file, run beside each other; the script prints what the page says."""
        from test_docs import DOCS, documented_commands, files_shown

        page = DOCS / "how-to" / "data-mode.md"
        files = files_shown(page)
        for name, body in files.items():
            (tmp_path / name).write_text(body, encoding="utf-8")
        for argv, code, line in documented_commands(page):
            proc = invoke_cli(*argv[1:], cwd=tmp_path)
            assert proc.returncode == code, f"{line}: {shlex.join(argv)}\n{proc.stderr}"
        scripts = [name for name in files if name.endswith(".py")]
        assert scripts == ["open_dump.py"]
        proc = subprocess.run(
            [sys.executable, "open_dump.py"], cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False
        )
        assert proc.returncode == 0, proc.stderr
        quoted = re.search(r"it prints\s+`([^`]+)`", page.read_text(encoding="utf-8"))
        assert quoted is not None
        assert proc.stdout.strip() == quoted[1]
