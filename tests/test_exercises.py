"""The answers the bypass tutorial gives to its exercises hold (docs/tutorial/watch-the-dump-bypass-the-stack.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from stacksim import FilterCatalog, load_scenario, simulate
from stacksim.explain import explain

pytestmark = pytest.mark.timeout(120)

EXERCISES = Path(__file__).parent.parent / "scenarios" / "exercises"


def test_a_failed_non_critical_encryption_filter_leaves_a_plaintext_dump() -> None:
    """Exercise 1: the filter is skipped, the whole dump is written, and explain names it plaintext."""
    catalog = FilterCatalog()
    s = load_scenario(EXERCISES / "plaintext-dump.toml", catalog)
    r = simulate(s, catalog)
    assert (r.status, r.bytes_written) == ("ok", r.dump_bytes)
    assert [f.loaded for f in r.filters] == [False]
    assert any("plaintext" in w for w in explain(s, catalog).warnings)


def test_a_failed_critical_encryption_filter_writes_no_dump() -> None:
    """Exercise 1, second half: with critical = true the dump stack does not initialise and nothing is written."""
    catalog = FilterCatalog()
    s = load_scenario(EXERCISES / "plaintext-dump.toml", catalog)
    data = {**s.source_data, "filters": {"faultflt.sys": {"action": "fail_driver_entry", "critical": True}}}
    from stacksim import validate_scenario

    r = simulate(validate_scenario(data, "<exercise>", catalog), catalog)
    assert (r.status, r.bytes_written) == ("stack_init_failed", 0)


def test_the_slow_filter_is_the_bottleneck() -> None:
    """Exercise 2: delayflt.sys's 150 µs per write bounds the dump."""
    catalog = FilterCatalog()
    r = simulate(load_scenario(EXERCISES / "slow-filter.toml", catalog), catalog)
    assert r.bottleneck == "delayflt.sys"
    assert r.layers["delayflt.sys"].p50_ns == 150_000


def test_a_fragmented_page_file_on_an_hdd_is_slower_than_one_run() -> None:
    """Exercise 3: the same kernel dump in 2,000 runs takes longer than in one run, by the seeks at run boundaries."""
    catalog = FilterCatalog()
    s = load_scenario(EXERCISES / "fragmented-hdd.toml", catalog)
    from stacksim import validate_scenario

    one = validate_scenario({**s.source_data, "layout": {"runs": 1}}, "<exercise>", catalog)
    fragmented, contiguous = simulate(s, catalog), simulate(one, catalog)
    assert fragmented.bytes_written == contiguous.bytes_written
    assert fragmented.parts["bitmap"] == 69_632  # 17 pages for 2 GiB of RAM: 2 writes between the header and the body
    assert (fragmented.dump_time_ns, contiguous.dump_time_ns) == (29_737_760_911, 3_422_510_204)  # 8.7× longer
    assert fragmented.layers["device"].max_ns > contiguous.layers["device"].p99_ns
