"""JsonlTrace.emit_held writes exactly what emit writes record by record: hostile values and records that raise (review cases)."""

from __future__ import annotations

import decimal
import io
from typing import Any

import pytest

from stacksim.trace import JsonlTrace


def _per_record(records: list[tuple[Any, ...]], start: int, seq: int) -> tuple[str, object]:
    """What emit writes, one record at a time (timed and numbered as Engine.release does), and the last seq or the error type."""
    out, t = io.StringIO(), start
    trace = JsonlTrace(out)
    try:
        for t0, *rest in records:
            t0 = t if t0 < 0 else t0
            t = t0 + rest[2]
            seq += 1
            trace.emit(t0, seq, *rest)
    except Exception as e:
        return out.getvalue(), type(e)
    return out.getvalue(), seq


def _held(records: list[tuple[Any, ...]], start: int, seq: int) -> tuple[str, object]:
    """What emit_held writes, and the last seq it returns or the error type."""
    out = io.StringIO()
    try:
        last = JsonlTrace(out).emit_held(records, start, seq)
    except Exception as e:
        return out.getvalue(), type(e)
    return out.getvalue(), last


def _rec(**changes: Any) -> tuple[Any, ...]:
    """A held record (t_ns -1), with *changes*."""
    base = {"t0": -1, "layer": "L", "event": "E", "dur": 5, "request": 1, "offset": 2, "length": 3}
    base |= {"dump_type": None, "status": None, "detail": None}
    base |= changes
    return tuple(base.values())


@pytest.mark.parametrize(
    "records",
    [
        [_rec(), _rec(layer=b"x"), _rec()],  # msgspec would write "eA==" (base64); emit raises TypeError
        [_rec(length=decimal.Decimal("1.5"))],  # msgspec would write the string "1.5"
        [_rec(dump_type={1})],  # msgspec would write [1]
        [_rec(), _rec(detail="not a dict")],  # the first record is written before the second raises
        [_rec(), _rec(t0="x")],  # the same: t0 < 0 raises, the record before it stands
    ],
)
def test_emit_held_writes_and_raises_as_emit_does(records: list[tuple[Any, ...]]) -> None:
    """A value msgspec would encode but json refuses goes through emit; a record that raises leaves the earlier ones written."""
    assert _held(records, 100, 10) == _per_record(records, 100, 10)
