"""
Hostile inputs for `stacksim extract` and `stacksim inspect`: images, results and keys that must be refused.

Each case asserts exit 2, a short message naming the file and the problem, no traceback, and
that no file is created. The run they start from (a 16 MiB kernel dump encrypted by dumpfve.sys
on a 40 MiB disk) is made once per module and never changed: each case edits a copy.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import assert_refused, invoke_cli, make_fifo

from stacksim._io import InputError, open_input

pytestmark = pytest.mark.timeout(30)

SCENARIO = """\
[scenario]
name = "hx"
event = "crash"
seed = 5
bugcheck_at = "10 ms"
[registry]
DumpFilters = ["dumpfve.sys"]
CrashDumpEnabled = 2
[memory]
ram = "16 MiB"
[disk]
model = "fixed"
size = "40 MiB"
[layout]
file_offset = "1 MiB"
"""

EVIL = 'import pathlib\npathlib.Path(__file__).with_name("IMPORTED").touch()\n'
"""A plugin that proves it ran by leaving a file named IMPORTED beside itself."""


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding the run's disk.img and result.json."""
    folder = tmp_path_factory.mktemp("hostile-extract")
    (folder / "s.toml").write_text(SCENARIO)
    proc = invoke_cli("run", "s.toml", "--data", "--image", "disk.img", "--json", "result.json", cwd=folder)
    assert proc.returncode == 0, proc.stderr
    return folder


@pytest.fixture
def case(made: Path, tmp_path: Path) -> Path:
    """A fresh folder with a copy of the run's result and image."""
    shutil.copyfile(made / "result.json", tmp_path / "result.json")
    shutil.copyfile(made / "disk.img", tmp_path / "disk.img")
    return tmp_path


def extract(folder: Path, *args: str, image: str = "disk.img", result: str = "result.json") -> Any:
    """Run extract in *folder*; return the process, after checking no new file appeared."""
    before = sorted(os.listdir(folder))
    proc = invoke_cli("extract", image, "--result", result, "--out", "MEMORY.DMP", *args, cwd=folder)
    assert sorted(os.listdir(folder)) == before, proc.stderr
    return proc


def edited(folder: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    """Rewrite the folder's result.json with *edit* applied to its object."""
    data = json.loads((folder / "result.json").read_text())
    edit(data)
    (folder / "result.json").write_text(json.dumps(data))


def test_the_untouched_copy_extracts(case: Path) -> None:
    """The starting point works: the copy of the run extracts (so every refusal below is the edit's doing)."""
    proc = invoke_cli("extract", "disk.img", "--result", "result.json", "--out", "MEMORY.DMP", cwd=case)
    assert proc.returncode == 0, proc.stderr


class TestImage:
    """The image must be a regular file of exactly the recorded disk's size, and hold the dump where the layout says."""

    def test_a_fifo(self, case: Path) -> None:
        """A FIFO is refused at once, without blocking."""
        make_fifo(case / "pipe.img")
        assert_refused(extract(case, image="pipe.img"), "pipe.img", "FIFO")

    def test_a_directory(self, case: Path) -> None:
        """A folder is refused."""
        (case / "d.img").mkdir()
        assert_refused(extract(case, image="d.img"), "d.img", "directory")

    def test_a_device(self, case: Path) -> None:
        """/dev/zero is refused (it would read as an endless disk of zeros)."""
        assert_refused(extract(case, image="/dev/zero"), "/dev/zero", "character device")

    def test_missing(self, case: Path) -> None:
        """A missing image is named."""
        assert_refused(extract(case, image="none.img"), "none.img", "no such image file")

    def test_truncated(self, case: Path) -> None:
        """An image shorter than the disk is refused as truncated, with both sizes."""
        os.truncate(case / "disk.img", 20 * 2**20)
        assert_refused(extract(case), "disk.img", "truncated", "20,971,520 bytes", "41,943,040 bytes")

    def test_longer_than_the_disk(self, case: Path) -> None:
        """An image longer than the recorded disk is not this run's."""
        os.truncate(case / "disk.img", 41 * 2**20)
        assert_refused(extract(case), "disk.img", "longer than the disk")

    def test_the_header_sector_never_written(self, case: Path) -> None:
        """A page file whose first sector is zeros has no dump header: refused, even with --allow-torn."""
        with open(case / "disk.img", "r+b") as f:
            f.seek(2 * 2**20)  # partition at 1 MiB, page file 1 MiB into it
            f.write(bytes(512))
        assert_refused(extract(case, "--allow-torn"), "disk.img", "no dump header", "never written")

    def test_a_corrupted_header(self, case: Path) -> None:
        """A first sector of garbage does not decrypt to the signature: named as the wrong key, since the result names the key."""
        with open(case / "disk.img", "r+b") as f:
            f.seek(2 * 2**20)
            f.write(b"\x5a" * 512)
        assert_refused(extract(case), "disk.img", "wrong key")


class TestResult:
    """The result names the layout and the key; an edited result is refused, never believed."""

    def test_layout_moved_to_where_there_is_no_dump(self, case: Path) -> None:
        """A page file moved elsewhere on the disk holds no dump header there."""
        edited(case, lambda d: d["replay"]["scenario"]["layout"].update(file_offset="8 MiB"))
        assert_refused(extract(case), "disk.img", "no dump header")

    def test_layout_moved_past_the_disk(self, case: Path) -> None:
        """A layout the disk cannot hold is a scenario error naming the result file and the key."""
        edited(case, lambda d: d["replay"]["scenario"]["layout"].update(file_offset="1 GiB"))
        assert_refused(extract(case), "result.json", "[layout] file_offset")

    def test_replay_seed_differs(self, case: Path) -> None:
        """replay.seed must equal the recorded scenario's seed, as replay checks."""
        edited(case, lambda d: d["replay"].update(seed=6))
        assert_refused(extract(case), "result.json", "replay.seed is 6")

    def test_plugin_digest_not_hex(self, case: Path) -> None:
        """A malformed plugin record is refused as replay refuses it."""
        edited(case, lambda d: d["replay"].update(plugins=[{"service_name": "x.sys", "origin": "plugin x.py", "sha256": "no"}]))
        assert_refused(extract(case), "result.json", "replay.plugins[0].sha256")

    def test_builtin_claimed_by_a_plugin_with_another_digest(self, case: Path) -> None:
        """A record saying dumpfve.sys came from a plugin file whose digest the built-in does not have is refused."""
        plugin = {"service_name": "dumpfve.sys", "origin": "plugin dumpfve.py", "sha256": "0" * 64}
        edited(case, lambda d: d["replay"].update(plugins=[plugin]))
        assert_refused(extract(case), "result.json", "dumpfve.sys", "has changed since the run")

    def test_a_plugin_named_in_the_result_is_never_run(self, case: Path) -> None:
        """A plugin filter the record names is a stand-in: the file beside the result is not imported, and extract works."""
        (case / "evil.py").write_text(EVIL)
        plugin = {"service_name": "evil.sys", "origin": "plugin evil.py", "sha256": "1" * 64}

        def edit(d: dict[str, Any]) -> None:
            d["replay"]["plugins"] = [plugin]
            d["replay"]["scenario"]["registry"]["DumpFilters"] = ["dumpfve.sys", "evil.sys"]

        edited(case, edit)
        proc = invoke_cli("inspect", "disk.img", "--result", "result.json", cwd=case)
        assert (proc.returncode, (case / "IMPORTED").exists()) == (0, False), proc.stderr

    def test_dump_bytes_edited(self, case: Path) -> None:
        """dump_bytes must be the recorded scenario's dump size."""
        edited(case, lambda d: d.update(dump_bytes=4096))
        assert_refused(extract(case), "result.json", "dump_bytes is 4,096")

    def test_ram_edited_in_the_scenario(self, case: Path) -> None:
        """Another RAM size in the recorded scenario contradicts the recorded dump size."""
        edited(case, lambda d: d["replay"]["scenario"]["memory"].update(ram="32 MiB"))
        assert_refused(extract(case), "result.json", "dump_bytes")

    def test_status_edited(self, case: Path) -> None:
        """A status other than ok makes the dump torn: refused without --allow-torn."""
        edited(case, lambda d: d.update(status="io_error"))
        assert_refused(extract(case), "disk.img", "torn", "io_error", "--allow-torn")

    def test_data_null(self, case: Path) -> None:
        """A timing-mode result has no image to read."""
        edited(case, lambda d: d.update(data=None))
        assert_refused(extract(case), "result.json", "timing-mode")

    def test_data_key_not_a_string(self, case: Path) -> None:
        """data.key must say where the key came from."""
        edited(case, lambda d: d["data"].update(key=5))
        assert_refused(extract(case), "result.json", "data.key")

    def test_filter_unloaded(self, case: Path) -> None:
        """A result saying dumpfve.sys did not load: the image's ciphertext is then no dump header at all."""
        edited(case, lambda d: d["filters"][0].update(loaded=False))
        assert_refused(extract(case), "disk.img", "no dump header", "did not encrypt it")

    def test_filter_not_in_dump_filters(self, case: Path) -> None:
        """A filter record the scenario's DumpFilters do not list is refused."""
        edited(case, lambda d: d["filters"][0].update(name="other.sys"))
        assert_refused(extract(case), "result.json", "filters[0]")

    def test_bytes_written_a_string(self, case: Path) -> None:
        """bytes_written must be an integer."""
        edited(case, lambda d: d.update(bytes_written="all"))
        assert_refused(extract(case), "result.json", "bytes_written")

    def test_a_list(self, case: Path) -> None:
        """A JSON list is not a result."""
        (case / "result.json").write_text("[]")
        assert_refused(extract(case), "result.json", "not a result")

    def test_a_fifo(self, case: Path) -> None:
        """A FIFO as the result is refused at once."""
        make_fifo(case / "r.json")
        assert_refused(extract(case, result="r.json"), "r.json", "FIFO")


class TestOutputs:
    """MEMORY.DMP and inspect's JSON never go onto an input."""

    @pytest.mark.parametrize("target", ["disk.img", "result.json"])
    def test_extract_onto_an_input(self, case: Path, target: str) -> None:
        """--out onto the image or the result is refused before anything is read."""
        proc = invoke_cli("extract", "disk.img", "--result", "result.json", "--out", target, cwd=case)
        assert_refused(proc, "--out", target, "is an input")

    def test_extract_onto_the_key_file(self, case: Path) -> None:
        """--out onto the --key-file is refused."""
        (case / "k.key").write_bytes(bytes(range(64)))
        proc = invoke_cli("extract", "disk.img", "--result", "result.json", "--out", "k.key", "--key-file", "k.key", cwd=case)
        assert_refused(proc, "--out", "k.key", "is an input")

    def test_inspect_json_onto_the_image(self, case: Path) -> None:
        """inspect --json onto the image is refused."""
        proc = invoke_cli("inspect", "disk.img", "--result", "result.json", "--json", "disk.img", cwd=case)
        assert_refused(proc, "--json", "disk.img", "is an input")

    def test_extract_into_a_missing_folder(self, case: Path) -> None:
        """--out in a folder that does not exist is named."""
        proc = invoke_cli("extract", "disk.img", "--result", "result.json", "--out", "no/M.DMP", cwd=case)
        assert_refused(proc, "--out", "does not exist")


class TestKeyFile:
    """--key-file is read as every key file: a regular file holding 64 bytes or 128 hex digits."""

    def test_a_fifo(self, case: Path) -> None:
        """A FIFO key file is refused at once."""
        make_fifo(case / "k.key")
        assert_refused(extract(case, "--key-file", "k.key"), "k.key", "FIFO")

    def test_a_short_key(self, case: Path) -> None:
        """A 32-byte key file is refused naming its size."""
        (case / "k.key").write_bytes(bytes(range(32)))
        assert_refused(extract(case, "--key-file", "k.key"), "k.key", "32 bytes")

    def test_a_wrong_key(self, case: Path) -> None:
        """A valid key that is not the run's is 'wrong key', naming the file and the run's key."""
        (case / "k.key").write_bytes(bytes(range(64)))
        assert_refused(extract(case, "--key-file", "k.key"), "disk.img", "wrong key", "key file k.key", "derived from the seed")


class TestRandomAccess:
    """The image is read with pread inside the size it had when opened, and a file that shrinks is named."""

    def test_an_image_that_shrinks_while_read(self, tmp_path: Path) -> None:
        """Bytes that were there at open and are gone at the read are an InputError naming the file, not zeros."""
        path = tmp_path / "shrinks.img"
        path.write_bytes(bytes(8192))
        with open_input(path, "image") as image:
            os.truncate(path, 1024)
            with pytest.raises(InputError, match=r"shrinks.img: the image file ends at byte 1,024, but was 8,192 bytes"):
                image.pread_into(bytearray(4096), 0)

    def test_a_read_past_the_size_at_open(self, tmp_path: Path) -> None:
        """A range outside the size reported at open is refused before any read."""
        path = tmp_path / "small.img"
        path.write_bytes(bytes(4096))
        with open_input(path, "image") as image, pytest.raises(ValueError, match="outside the 4,096-byte file"):
            image.pread_into(bytearray(512), 3840)
