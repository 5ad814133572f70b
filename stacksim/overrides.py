"""
Overrides: a scenario's parsed TOML with values set at dotted key paths (``disk.bandwidth``).

One code path for every way of changing a parameter without editing the file: ``stacksim sweep
--set KEY=V1,V2`` (:mod:`stacksim.sweep`) and ``stacksim.simulate(..., overrides={KEY: V})``
(:mod:`stacksim.api`) both turn KEY into a path with :func:`parse_key` and set it with
:func:`apply`, so an override is exactly the same change made in the TOML file: the result,
its replay record included, is the same.
"""

from __future__ import annotations

import copy
import itertools
import re
import tomllib
from collections.abc import Iterable
from typing import Any

from stacksim._io import MAX_DEPTH, shorten, terminal_safe

__all__ = ["OverrideError", "apply", "check_distinct", "check_value", "label", "parse_key"]


class OverrideError(Exception):
    """A key that is not one TOML dotted key, or that goes through a value that is not a table; a None value; a key set twice."""


_KEY_PART = r"""(?:[A-Za-z0-9_-]+|"(?:[^"\\\x00-\x1f\x7f]|\\[^\x00-\x1f\x7f])*"|'[^'\x00-\x1f\x7f]*')"""
_DOTTED_KEY = re.compile(rf"[ \t]*{_KEY_PART}(?:[ \t]*\.[ \t]*{_KEY_PART})*[ \t]*")
"""One TOML dotted key: bare or quoted parts joined by dots, nothing else (no newline, bracket, ``=``, comment).

Each alternative starts with its own character and every repetition needs a dot, so matching is linear."""


def parse_key(key: str, setting: str) -> tuple[str, ...]:
    r"""
    The path of one TOML dotted key such as ``disk.bandwidth`` or ``filters."dumpfve.sys".per_byte``.

    Bare or quoted parts joined by dots; a newline, a bracket or a table header is refused, so
    ``[t]\nb`` is not read as ``t.b``. *setting* begins each message (``--set KEY=...``).

    Raises:
        OverrideError: not one dotted key, or more parts than a scenario nests.
    """
    not_a_key = OverrideError(
        f"{setting}: '{terminal_safe(shorten(key.strip(), 60))}' is not a key path such as disk.bandwidth "
        "(one TOML dotted key: bare or quoted names joined by dots, no newline, bracket or '=')"
    )
    if _DOTTED_KEY.fullmatch(key) is None:
        raise not_a_key
    try:
        tree = tomllib.loads(f"{key.strip()} = 0")
    except (ValueError, RecursionError):
        raise not_a_key from None
    path: list[str] = []
    node: Any = tree
    while isinstance(node, dict):
        if len(node) != 1:  # cannot happen for one dotted key; refused rather than unpacked blindly
            raise not_a_key
        ((name, node),) = node.items()
        path.append(name)
    if len(path) >= MAX_DEPTH:
        raise OverrideError(f"{setting}: the key has {len(path):,} parts; a scenario nests at most {MAX_DEPTH} levels")
    return tuple(path)


def label(path: tuple[str, ...]) -> str:
    """*path* spelled as a dotted key again, names holding a dot quoted (``filters."dumpfve.sys".per_byte``)."""
    return ".".join(f'"{p}"' if "." in p else p for p in path)


def check_value(value: Any, setting: str) -> None:
    """
    Refuse *value* if it is None or holds one (in a table or an array): TOML has no null.

    A None set at a key would read as the key left out, silently using its default.

    Raises:
        OverrideError: naming *setting* and where the None is.
    """
    todo: list[tuple[str, Any]] = [("", value)]
    while todo:
        where, node = todo.pop()
        if node is None:
            at = f" (at {terminal_safe(shorten(where, 80))})" if where else ""
            raise OverrideError(
                f"{setting}: None{at} is not a TOML value (TOML has no null); leave the key out to use its default"
            )
        if isinstance(node, dict):
            todo.extend((f"{where}.{k}" if where else str(k), v) for k, v in node.items())
        elif isinstance(node, list | tuple):
            todo.extend((f"{where}[{i}]", v) for i, v in enumerate(node))


def check_distinct(paths: Iterable[tuple[tuple[str, ...], str]]) -> None:
    """
    Refuse key *paths* ((path, setting) pairs) that overlap: the same key twice, or one a prefix of another.

    ``disk`` and ``disk.bandwidth`` would set a key inside the other's value or overwrite it; TOML
    refuses a key defined twice, and so do overrides.

    Raises:
        OverrideError: naming both settings.
    """
    ordered = sorted(paths)
    # if P is a prefix of Q, every path sorted between them has P as a prefix too: neighbours suffice
    for (short, a), (long, b) in itertools.pairwise(ordered):
        if long[: len(short)] == short:
            what = "the same key" if short == long else f"{label(short)} holds {label(long)}"
            raise OverrideError(
                f"{a} and {b}: {terminal_safe(shorten(what, 120))}; TOML refuses a key defined twice, so give each key once"
            )


def apply(data: dict[str, Any], overrides: Iterable[tuple[tuple[str, ...], Any]]) -> dict[str, Any]:
    """
    A copy of scenario *data* with each override set at its key path (missing tables are created).

    Raises:
        OverrideError: a part of a path names a value that is not a table.
    """
    out = copy.deepcopy(data)
    for path, value in overrides:
        node = out
        for name in path[:-1]:
            node = node.setdefault(name, {})
            if not isinstance(node, dict):
                raise OverrideError(
                    f"{terminal_safe(shorten(label(path), 100))}: "
                    f"{terminal_safe(shorten(name, 60))} is not a table in the scenario"
                )
        node[path[-1]] = copy.deepcopy(value)
    return out
