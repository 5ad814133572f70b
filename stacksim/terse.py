"""
``stacksim run --output-format terse``: one semicolon-separated line per layer, for scripts (like fio's terse output).

Each line is one layer of the dump path, top down, then a last line ``write`` (one dump write
from issue to completion, through every layer). The fields are numbered in
``docs/reference/cli.md`` ("Terse output"); field 1 is the version of that list,
:data:`TERSE_VERSION`, which changes whenever a field is added, removed or moved, so a script
checks it first. Numbers are the result JSON's (``docs/reference/result-format.md``), with
their units in the field names of :data:`FIELDS`; text fields (scenario, status, layer) have
``%``, ``;`` and control characters percent-encoded (``%25``, ``%3B``, ``%0A``), so a line
always splits into exactly ``len(FIELDS)`` fields. An ``io`` run writes no dump and prints no line.
"""

from __future__ import annotations

import re
from typing import Final

from stacksim._version import __version__
from stacksim.metrics import LAYER_KEYS, LAYER_RATE_KEYS, LayerSummary
from stacksim.report import RunResult

__all__ = ["FIELDS", "TERSE_VERSION", "terse_lines"]

TERSE_VERSION: Final = 1
"""The version of the field list (field 1 of every line)."""

FIELDS: Final = ("terse_version", "stacksim_version", "scenario", "status", "layer", *LAYER_KEYS, *LAYER_RATE_KEYS)
"""The fields of a terse line, in order (field 1 is ``terse_version``)."""

_UNSAFE = re.compile(r"[%;\x00-\x1f\x7f]")


def _text(value: str) -> str:
    """*value* with ``%``, ``;`` and control characters percent-encoded."""
    return _UNSAFE.sub(lambda m: f"%{ord(m.group()):02X}", value)


def _line(r: RunResult, name: str, s: LayerSummary) -> str:
    head = [str(TERSE_VERSION), _text(__version__), _text(r.scenario), _text(r.status), _text(name)]
    numbers = [*s.as_dict().values(), *r.rates(s.calls).values()]
    return ";".join([*head, *(str(n) for n in numbers)])


def terse_lines(r: RunResult) -> list[str]:
    """The terse lines of *r*: one per layer, top down, then ``write``; none for a run that wrote no dump layers."""
    lines = [_line(r, name, s) for name, s in r.layers.items()]
    if r.write_latency.calls:
        lines.append(_line(r, "write", r.write_latency))
    return lines
