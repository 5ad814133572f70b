"""Dump contents and sizes per CrashDumpEnabled value."""

from __future__ import annotations

from fractions import Fraction

from stacksim.memory import bitmap_part_bytes, plan_crash_dump, plan_hibernation

GiB = 2**30
ARGS = {"kernel_fraction": Fraction(1, 3), "active_fraction": Fraction(1, 2), "secondary": 0, "top_pfn": 8 * GiB // 4096}
BITMAP = 65 * 4096  # the 0x38-byte summary header and 2 Mi bits (256 KiB), padded to whole pages


def parts(plan: object) -> list[tuple[str, int]]:
    return [(p.name, p.bytes) for p in plan.parts]  # type: ignore[attr-defined]


def test_complete_is_header_plus_ram() -> None:
    """A complete dump is a 2-page header and the bitmap, followed by all of RAM."""
    assert parts(plan_crash_dump(1, 0, 8 * GiB, **ARGS)) == [("header", 8192), ("bitmap", BITMAP), ("body", 8 * GiB)]


def test_active_filters_pages() -> None:
    """FilterPages = 1 turns a complete dump into an active dump of active_fraction of RAM."""
    plan = plan_crash_dump(1, 1, 8 * GiB, **ARGS)
    assert plan.kind == "active"
    assert parts(plan) == [("header", 8192), ("bitmap", BITMAP), ("body", 4 * GiB)]


def test_kernel_and_automatic_are_a_third_page_rounded() -> None:
    """Kernel (2) and automatic (7) dumps take kernel_fraction of RAM, rounded up to pages."""
    for value in (2, 7):
        body = dict(parts(plan_crash_dump(value, 0, 4 * GiB, **ARGS)))["body"]
        assert body == 1431658496  # ceil(4 GiB / 3 / 4096) pages
        assert body % 4096 == 0


def test_small_dump_is_exactly_64_kib() -> None:
    """A small dump is exactly 64 KiB, header included."""
    plan = plan_crash_dump(3, 0, 8 * GiB, **ARGS)
    assert plan.total_bytes == 65536


def test_secondary_data_follows_the_body() -> None:
    """Secondary data is written after the body."""
    plan = plan_crash_dump(1, 0, GiB, **{**ARGS, "secondary": 1_000_000})
    assert parts(plan)[-1] == ("secondary", 1_003_520)


def test_the_bitmap_covers_the_address_space_not_the_dump() -> None:
    """The bitmap part holds one bit per page frame up to the highest one, in 32-bit words, after a 0x38-byte header."""
    assert bitmap_part_bytes(8 * GiB // 4096) == BITMAP
    assert bitmap_part_bytes(1) == 4096  # 0x38 + 4 bytes: one page
    assert bitmap_part_bytes(32 * 8 * (4096 - 0x38) // 32) == 4096  # exactly fills the first page


def test_hibernation_image_uncompressed() -> None:
    """Uncompressed, the body is the kept pages plus 12 bytes per 16-page set, in whole pages, after a header written last."""
    plan = plan_hibernation({"kernel": 1000, "user": 600}, mode="hibernate", compressed_fraction=None)
    body = 1600 * 4096 + 100 * 12  # 100 sets
    assert [(p.name, p.bytes, offset) for p, offset in plan.placed()] == [
        ("body", -(-body // 4096) * 4096, 4096),
        ("header", 4096, 0),
    ]
    assert plan.hiber is not None
    assert (plan.hiber.kept_pages, plan.hiber.uncompressed_bytes, plan.hiber.sets) == (1600, 1600 * 4096, 100)


def test_hibernation_image_compressed() -> None:
    """Compressed, each class's pages count at its compressed fraction: the timing model's estimate of the body."""
    plan = plan_hibernation(
        {"kernel": 1600, "user": 160}, mode="hibernate", compressed_fraction={"kernel": Fraction(1, 4), "user": Fraction(1, 2)}
    )
    body = 1600 * 1024 + 160 * 2048 + 110 * 12  # 110 sets of 16 pages
    assert plan.parts[0].bytes == -(-body // 4096) * 4096
    assert plan.hiber is not None
    assert plan.hiber.compressed


def test_hibernation_image_of_known_size() -> None:
    """Data mode gives the body's size as the compressor wrote it; the estimate is not used."""
    plan = plan_hibernation({"kernel": 16}, mode="fast-startup", compressed_fraction={"kernel": Fraction(1, 2)}, body_bytes=8192)
    assert plan.parts[0].bytes == 8192
