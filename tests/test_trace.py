"""The trace sinks: records as dicts, as JSON lines, and the merge of records held ahead of time into a stream."""

from __future__ import annotations

from stacksim.trace import HeldRecord, ListTrace, MergingTrace


def held(t: int, event: str) -> HeldRecord:
    """A normal-stack-like record at *t* called *event*."""
    return (t, "ntfs.sys", event, 10, 1, 0, 4096, None, None, None)


def emit(sink: MergingTrace, t: int, event: str, seq: int = 99) -> None:
    """A dump-path-like record at *t* called *event*, with the emitter's own (ignored) *seq*."""
    sink.emit(t, seq, "crashdmp", event, 0, None, None, None, "crashdump", None, None)


def test_held_records_go_before_the_first_emitted_record_after_them() -> None:
    """Each held record is written just before the first emitted record that starts after it."""
    out = ListTrace()
    sink = MergingTrace(out)
    sink.hold([held(5, "a"), held(20, "b")])
    emit(sink, 10, "x")
    emit(sink, 30, "y")
    assert out.timeline() == [(5, "ntfs.sys", "a"), (10, "crashdmp", "x"), (20, "ntfs.sys", "b"), (30, "crashdmp", "y")]


def test_a_held_record_at_the_same_instant_goes_first() -> None:
    """The tie rule: at the same t_ns the held record precedes the emitted one."""
    out = ListTrace()
    sink = MergingTrace(out)
    sink.hold([held(10, "a")])
    emit(sink, 10, "x")
    assert out.timeline("event") == [("a",), ("x",)]


def test_the_merged_stream_is_numbered_by_the_merge() -> None:
    """Every record gets seq 1, 2, 3, … in merged order, whatever seq the emitter passed."""
    out = ListTrace()
    sink = MergingTrace(out)
    sink.hold([held(0, "a"), held(50, "b")])
    emit(sink, 10, "x", seq=1)
    sink.close()
    assert out.timeline("seq", "event") == [(1, "a"), (2, "x"), (3, "b")]


def test_close_writes_the_records_still_held() -> None:
    """With nothing emitted after them, held records are written when the sink closes."""
    out = ListTrace()
    sink = MergingTrace(out)
    sink.hold([held(0, "a"), held(7, "b")])
    assert out.records == []
    sink.close()
    assert out.timeline("t_ns", "event") == [(0, "a"), (7, "b")]
