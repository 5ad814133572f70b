"""
Hostile data-mode command lines: `stacksim run --data --image` refuses what it cannot honour.

Each case is refused with exit 2 and one short paragraph naming the option or key, before a
byte of the image is written: an image onto the scenario or onto another output, an image that
is a folder or a FIFO, a key file that is not one, data mode on an event that writes no crash
dump, RAM past data mode's cap, and options that belong together given alone.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import assert_refused, invoke_cli, make_fifo

pytestmark = pytest.mark.timeout(30)

SCENARIO = '[scenario]\nname = "d"\n[registry]\nDumpFilters = ["dumpfve.sys"]\nCrashDumpEnabled = 1\n[memory]\nram = "16 MiB"\n'


@pytest.fixture
def scenario(tmp_path: Path) -> Path:
    """A small complete-dump scenario through dumpfve.sys."""
    path = tmp_path / "d.toml"
    path.write_text(SCENARIO, encoding="utf-8")
    return path


def refused(tmp_path: Path, *args: str, names: tuple[str, ...]) -> None:
    """`stacksim run` with *args* is refused naming *names*, and the folder gains no file."""
    before = sorted(os.listdir(tmp_path))
    proc = invoke_cli("run", *args, cwd=tmp_path)
    assert_refused(proc, *names)
    assert sorted(os.listdir(tmp_path)) == before


def test_an_image_onto_the_scenario_is_refused(tmp_path: Path, scenario: Path) -> None:
    """The image may not replace the scenario it is made from."""
    refused(tmp_path, str(scenario), "--data", "--image", str(scenario), names=("--image",))
    assert scenario.read_text(encoding="utf-8") == SCENARIO


def test_an_image_onto_the_result_is_refused(tmp_path: Path, scenario: Path) -> None:
    """Two outputs of one run may not name one file."""
    out = str(tmp_path / "same")
    refused(tmp_path, str(scenario), "--data", "--image", out, "--json", out, names=("--image", "--json"))


def test_an_image_that_is_a_folder_is_refused(tmp_path: Path, scenario: Path) -> None:
    """A folder is not a place for an image."""
    (tmp_path / "dir").mkdir()
    refused(tmp_path, str(scenario), "--data", "--image", str(tmp_path / "dir"), names=("--image",))


def test_an_image_that_is_a_fifo_is_refused(tmp_path: Path, scenario: Path) -> None:
    """A FIFO would block the run (and cannot be sparse): refused at once."""
    fifo = make_fifo(tmp_path / "fifo")
    refused(tmp_path, str(scenario), "--data", "--image", str(fifo), names=("--image",))


def test_a_key_file_of_the_wrong_length_is_refused(tmp_path: Path, scenario: Path) -> None:
    """A 32-byte key is not an AES-256-XTS key: refused, naming the file, without the image."""
    key = tmp_path / "k.key"
    key.write_bytes(bytes(range(32)))
    refused(tmp_path, str(scenario), "--data", "--image", str(tmp_path / "d.img"), "--key-file", str(key), names=("k.key",))


def test_a_key_file_that_is_a_fifo_is_refused(tmp_path: Path, scenario: Path) -> None:
    """A FIFO no one writes to is refused before it is opened for reading."""
    fifo = make_fifo(tmp_path / "k.fifo")
    refused(tmp_path, str(scenario), "--data", "--image", str(tmp_path / "d.img"), "--key-file", str(fifo), names=("k.fifo",))


def test_a_key_file_with_equal_halves_is_refused(tmp_path: Path, scenario: Path) -> None:
    """XTS needs two different keys: a 64-byte key whose halves are equal is refused."""
    key = tmp_path / "k.key"
    key.write_bytes(bytes(32) * 2)
    refused(tmp_path, str(scenario), "--data", "--image", str(tmp_path / "d.img"), "--key-file", str(key), names=("k.key",))


def test_a_key_file_without_data_mode_is_refused(tmp_path: Path, scenario: Path) -> None:
    """--key-file alone does nothing: refused, saying what it is for."""
    key = tmp_path / "k.key"
    key.write_bytes(bytes(range(64)))
    refused(tmp_path, str(scenario), "--key-file", str(key), names=("--key-file",))


def test_an_image_without_data_is_refused(tmp_path: Path, scenario: Path) -> None:
    """--image without --data is refused: the two go together."""
    refused(tmp_path, str(scenario), "--image", str(tmp_path / "d.img"), names=("--data", "--image"))


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('[scenario]\nname = "s"\nevent = "io"\n[workload]\nrequests = 10\n', "[scenario] event"),
        ('[scenario]\nname = "s"\n[memory]\nram = "65 GiB"\n', "[memory] ram"),
    ],
    ids=["io-event", "ram-past-the-cap"],
)
def test_data_mode_refuses_what_it_cannot_write(tmp_path: Path, text: str, key: str) -> None:
    """An io event (no dump) or more RAM than data mode generates: exit 2 naming the key, no image."""
    path = tmp_path / "s.toml"
    path.write_text(text, encoding="utf-8")
    refused(tmp_path, str(path), "--data", "--image", str(tmp_path / "s.img"), names=(key,))


def test_a_bugcheck_with_two_parameters_is_refused(tmp_path: Path) -> None:
    """bugcheck_parameters holds exactly four numbers: two are refused, naming the key and the count."""
    path = tmp_path / "b.toml"
    path.write_text('[scenario]\nname = "b"\nbugcheck_parameters = [1, 2]\n', encoding="utf-8")
    refused(tmp_path, str(path), names=("[scenario] bugcheck_parameters", "exactly 4 parameters", "2 given"))
