"""
Hibernation and resume in data mode: a real compressed hiberfile on the image, read back, decrypted and compared byte for byte.

16 MiB of RAM (seed 1): the image keeps 2,048 kernel and user pages, compressed with zlib level 1
into a hiberfile of about 3.3 MiB; dumpfve.sys encrypts it with AES-256-XTS.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import make_scenario

from stacksim import FilterCatalog, simulate
from stacksim.datamode import DataMode
from stacksim.diskimage import DiskImage
from stacksim.xts import derive_key

pytestmark = pytest.mark.timeout(60)

RESUME: dict[str, Any] = {
    "scenario": {"name": "rd", "event": "hibernate-resume", "hibernate_at": "10 ms", "bugcheck_at": None, "seed": 1},
    "registry": {"DumpFilters": ["dumpfve.sys"]},
    "memory": {"ram": "16 MiB"},
}
PAGES = 2048
"""Kernel (⅓) and user (⅙) pages of 16 MiB: half the RAM."""


@pytest.fixture
def data(tmp_path: Path) -> Iterator[Any]:
    """A factory of data-mode settings over a fresh image file (closed afterwards)."""
    files: list[Any] = []

    def make() -> DataMode:
        f = (tmp_path / f"disk{len(files)}.img").open("w+b")
        files.append(f)
        return DataMode(DiskImage(f, 2 * 10**12), derive_key(1), "derived from the seed")

    yield make
    for f in files:
        f.close()


def resume_data(mode: DataMode | None, **over: Any) -> Any:
    """Run RESUME (with *over* merged into its tables) in data mode over *mode*, or in timing mode when None."""
    sections = {k: dict(v) for k, v in RESUME.items()}
    for key, value in over.items():
        sections[key] = {**sections.get(key, {}), **value}
    catalog = FilterCatalog()
    return simulate(make_scenario(catalog, **sections), catalog, data=mode)


def test_the_round_trip_restores_memory_byte_for_byte(data: Any) -> None:
    """Hibernate, resume through dumpfve.sys's dump_read, decompress: every one of the 2,048 pages equals the original."""
    result = resume_data(data())
    assert result.resume.status == "resumed"
    assert (result.resume.memory_matches, result.resume.mismatched_pages) == (True, 0)
    assert result.data["dump_pages"] == PAGES


def test_behind_dumpfve_no_page_and_no_header_is_readable_on_disk(data: Any) -> None:
    """The image holds no plaintext page marker, and its header does not parse without the key."""
    result = resume_data(data())
    assert result.data["plaintext_pages_on_disk"] == 0
    assert result.data["hiberfile_readable_without_key"] is False


def test_without_dumpfve_the_hiberfile_is_plaintext_on_disk(data: Any) -> None:
    """No encryption filter: the compressed image hides the markers, but its header parses, so every page is plaintext."""
    result = resume_data(data(), registry={"DumpFilters": []})
    assert result.data["hiberfile_readable_without_key"] is True
    assert result.data["plaintext_pages_on_disk"] == PAGES
    assert result.resume.memory_matches is True


def test_dump_read_is_called_once_per_read(data: Any) -> None:
    """dumpfve.sys's dump_read runs after every one of resume's reads."""
    result = resume_data(data())
    assert result.resume.layers["dumpfve.sys"].calls == result.resume.reads


def test_a_version_1_filter_leaves_the_image_undecryptable(data: Any) -> None:
    """dumpfve.sys without read support: the header read back is ciphertext, nothing is restored."""
    result = resume_data(data(), filters={"dumpfve.sys": {"read_support": False}})
    res = result.resume
    assert (res.status, res.undecryptable_by, res.memory_matches, res.mismatched_pages) == (
        "undecryptable",
        ("dumpfve.sys",),
        False,
        PAGES,
    )


def test_uncompressed_the_times_of_data_and_timing_mode_are_identical(data: Any) -> None:
    """compression = false (the hiberfile sized to hold it): the body's size is known exactly, so every time is equal."""
    over = {"hibernation": {"compression": False, "file_fraction": 0.75}}
    timed, real = resume_data(None, **over), resume_data(data(), **over)
    assert real.dump_time_ns == timed.dump_time_ns
    assert real.resume.time_ns == timed.resume.time_ns


def test_compressed_the_times_of_data_and_timing_mode_are_within_2_percent(data: Any) -> None:
    """Timing mode estimates the body from the compressed fractions: hibernate and resume times within 2 % of data mode's."""
    timed, real = resume_data(None), resume_data(data())
    assert abs(timed.dump_time_ns / real.dump_time_ns - 1) < 0.02
    assert abs(timed.resume.time_ns / real.resume.time_ns - 1) < 0.02


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "stacksim", *args], capture_output=True, text=True, timeout=120)


def _scenario_file(tmp_path: Path) -> Path:
    path = tmp_path / "rd.toml"
    path.write_text(
        '[scenario]\nname = "rd"\nevent = "hibernate-resume"\nseed = 1\nhibernate_at = "10 ms"\n'
        '[registry]\nDumpFilters = ["dumpfve.sys"]\n[memory]\nram = "16 MiB"\n'
    )
    return path


def test_replay_redoes_a_data_mode_hibernation_in_data_mode(tmp_path: Path) -> None:
    """Its body's size is what the compressor wrote: replay runs data mode again and matches byte for byte."""
    result = tmp_path / "r.json"
    run = _cli("run", str(_scenario_file(tmp_path)), "--data", "--image", str(tmp_path / "d.img"), "--json", str(result))
    assert run.returncode == 0, run.stderr
    replay = _cli("replay", str(result))
    assert replay.returncode == 0, replay.stderr + replay.stdout
    assert "replay matches, byte for byte" in replay.stdout


def test_inspect_and_extract_refuse_a_hiberfile_with_exit_2(tmp_path: Path) -> None:
    """A hibernation's image is no crash dump: inspect and extract say so in one paragraph, exit 2, and write nothing."""
    result, image = tmp_path / "r.json", tmp_path / "d.img"
    assert _cli("run", str(_scenario_file(tmp_path)), "--data", "--image", str(image), "--json", str(result)).returncode == 0
    for args in (
        ("inspect", str(image), "--result", str(result)),
        ("extract", str(image), "--result", str(result), "--out", str(tmp_path / "m.dmp")),
    ):
        proc = _cli(*args)
        assert proc.returncode == 2
        assert "hiberfile, not a crash dump" in proc.stderr
        assert "Traceback" not in proc.stderr
    assert not (tmp_path / "m.dmp").exists()
