"""
structlog set-up: phase events stamped with *simulated* time, never per-request chatter.

structlog's own ``TimeStamper`` reads the wall clock, the wrong clock here; :func:`add_sim_time`
adds ``sim_ns`` from the running engine instead. One JSON line costs ~7 µs, more than a
scheduler pass, so stacksim logs phases (run start and end, stack loads, failures) and keeps
per-request events in the trace.

structlog is imported only when an event may be shown: ``import structlog`` imports
``structlog.dev``, which imports rich (~50 ms). Until something imports structlog, nothing can
have configured it, so :func:`ensure_configured`'s default (warning level) holds and
:class:`PhaseLogger` drops debug and info events without it; the CLI configures structlog
before every command that runs the simulator, so there every event goes through structlog.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any, Final, TextIO

from stacksim._engine import current_engine
from stacksim._io import shorten, terminal_safe

__all__ = ["LOG_VALUE_CHARS", "PhaseLogger", "add_sim_time", "configure_logging", "ensure_configured", "safe_values"]

LOG_VALUE_CHARS = 300
"""The longest string value a log line shows; longer ones are cut, with their length."""


def add_sim_time(logger: Any, method_name: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: add ``sim_ns``, the simulated time, inside a run."""
    engine = current_engine()
    if engine is not None:
        event_dict["sim_ns"] = engine.now_ns
    return event_dict


def _safe(value: str) -> str:
    return terminal_safe(shorten(value, LOG_VALUE_CHARS))


def safe_values(logger: Any, method_name: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """
    structlog processor: every string value (and every string in a list or tuple value) escaped and shortened.

    Log values carry input text (scenario and filter names, messages): control and bidi
    characters are escaped (:func:`stacksim._io.terminal_safe`), so nothing from a scenario can
    drive the terminal, and a value longer than :data:`LOG_VALUE_CHARS` is cut with its length
    (:func:`stacksim._io.shorten`), for both the console and the JSON renderer.
    """
    for key, value in event_dict.items():
        if isinstance(value, str):
            event_dict[key] = _safe(value)
        elif type(value) in (list, tuple) and any(isinstance(v, str) for v in value):
            event_dict[key] = type(value)(_safe(v) if isinstance(v, str) else v for v in value)
    return event_dict


def configure_logging(level: str = "warning", *, json: bool = False, stream: TextIO | None = None) -> None:
    """Log to *stream* (default stderr) at *level*; JSON lines or a console renderer."""
    import structlog

    tty = (stream if stream is not None else sys.stderr).isatty()
    renderer: Any = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=tty)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            add_sim_time,
            safe_values,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper())),
        # Resolve sys.stderr when logging, not now: it may be replaced (tests, notebooks).
        logger_factory=lambda *_: structlog.WriteLogger(stream if stream is not None else sys.stderr),
        cache_logger_on_first_use=False,
    )


def ensure_configured() -> None:
    """
    Configure warning-level logging to stderr unless the application configured structlog.

    structlog's own default prints every level to stdout; a library run in a notebook or a sweep
    worker should not chatter unless asked to. Where structlog is not imported yet, nothing has
    configured it and there is nothing to do now: :class:`PhaseLogger` applies this default
    when an event first needs structlog.
    """
    if "structlog" not in sys.modules:
        return
    import structlog

    if not structlog.is_configured():
        configure_logging("warning")


_BELOW_DEFAULT: Final = frozenset({"debug", "info"})
"""The levels :func:`ensure_configured`'s default (warning) drops."""


class PhaseLogger:
    """
    ``structlog.get_logger(name, **initial)``, with structlog imported only for an event that may be shown.

    While structlog is not imported, nothing has configured it: :func:`ensure_configured`'s
    warning level applies, so a debug or info event is dropped at once, and a warning or an
    error imports structlog, configures that default and is logged. Once structlog is imported
    (the CLI's :func:`configure_logging`, an application, ``structlog.testing.capture_logs``),
    every event goes to ``structlog.get_logger(name, **initial)`` as it is.
    """

    __slots__ = ("_initial", "_name")

    def __init__(self, name: str, **initial: Any) -> None:
        self._name = name
        self._initial = initial

    def debug(self, event: str, /, **kw: Any) -> None:
        """Log *event* at debug level."""
        self._log("debug", event, kw)

    def info(self, event: str, /, **kw: Any) -> None:
        """Log *event* at info level."""
        self._log("info", event, kw)

    def warning(self, event: str, /, **kw: Any) -> None:
        """Log *event* at warning level."""
        self._log("warning", event, kw)

    def error(self, event: str, /, **kw: Any) -> None:
        """Log *event* at error level."""
        self._log("error", event, kw)

    def _log(self, method: str, event: str, kw: dict[str, Any]) -> None:
        if "structlog" not in sys.modules:
            if method in _BELOW_DEFAULT:
                return
            configure_logging("warning")  # imports structlog; nothing had configured it
        import structlog

        getattr(structlog.get_logger(self._name, **self._initial), method)(event, **kw)
