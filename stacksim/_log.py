"""
structlog set-up: phase events stamped with *simulated* time, never per-request chatter.

structlog's own ``TimeStamper`` reads the wall clock, the wrong clock here; :func:`add_sim_time`
adds ``sim_ns`` from the running engine instead. One JSON line costs ~7 µs, more than a
scheduler pass, so stacksim logs phases (run start and end, stack loads, failures) and keeps
per-request events in the trace.

Inside a run, events go to the run's :class:`RunLog` and reach structlog when the attempt's
result stands: a pipelined attempt that is abandoned (and repeated one write at a time) logs
nothing, so every event is logged once. With ``run_log(phases=True)`` the engine's phase records
(:meth:`stacksim._engine.Engine.phase`: DriverEntry, Dump_Start, the reset, the flush, the end)
are logged too, at info, with the trace's time; :class:`LogTrace` logs every trace record, one
line per request per layer, at debug (``stacksim run --log-json FILE --log-json-level debug``).

structlog is imported only when an event may be shown: ``import structlog`` imports
``structlog.dev``, which imports rich (~50 ms). Until something imports structlog, nothing can
have configured it, so :func:`ensure_configured`'s default (warning level) holds and
:class:`PhaseLogger` drops debug and info events without it; the CLI configures structlog
before every command that runs the simulator, so there every event goes through structlog.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, MutableMapping
from typing import IO, Any, Final, TextIO

from stacksim._engine import current_engine
from stacksim._io import shorten, terminal_safe

__all__ = [
    "LEVELS",
    "LOG_VALUE_CHARS",
    "LogTrace",
    "PhaseLogger",
    "RunLog",
    "add_sim_time",
    "configure_logging",
    "ensure_configured",
    "safe_values",
]

LEVELS: Final = ("debug", "info", "warning", "error")
"""The log levels, most verbose first."""

LOG_VALUE_CHARS = 300
"""The longest string value a log line shows; longer ones are cut, with their length."""


def add_sim_time(logger: Any, method_name: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """
    structlog processor: add ``sim_ns``, the simulated time, inside a run (never the wall clock).

    An event that carries its own ``sim_ns`` keeps it: a trace record's start (``t_ns``), or the
    instant an event held by the :class:`RunLog` was logged.
    """
    if "sim_ns" not in event_dict:
        engine = current_engine()
        if engine is not None:
            event_dict["sim_ns"] = engine.now_ns
    return event_dict


_FIRST: Final = ("sim_ns", "level", "layer", "event")


def first_keys(logger: Any, method_name: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: ``sim_ns``, ``level``, ``layer`` and ``event`` first, the rest as given."""
    ordered = {k: event_dict[k] for k in _FIRST if k in event_dict}
    ordered.update((k, v) for k, v in event_dict.items() if k not in ordered)
    return ordered


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


class _Outputs:
    """
    structlog's last processor: render each event for every output whose level it reaches, then drop it.

    An output is (lowest level number, renderer, the stream to write to -- resolved when logging).
    """

    def __init__(self, outputs: list[tuple[int, Callable[..., Any], Callable[[], IO[str]]]]) -> None:
        self.outputs = outputs

    def __call__(self, logger: Any, method_name: str, event_dict: MutableMapping[str, Any]) -> Any:
        import structlog

        number = getattr(logging, str(event_dict.get("level", method_name)).upper(), logging.ERROR)
        for lowest, render, stream in self.outputs:
            if number >= lowest:
                out = stream()
                out.write(render(logger, method_name, dict(event_dict)) + "\n")
                out.flush()
        raise structlog.DropEvent


def configure_logging(
    level: str = "warning",
    *,
    json: bool = False,
    stream: TextIO | None = None,
    json_stream: IO[str] | None = None,
    json_level: str = "info",
) -> None:
    """
    Log to *stream* (default stderr) at *level* (JSON lines or a console renderer), and JSON lines to *json_stream*.

    *json_stream* gets the events at *json_level* and above. JSON lines have a fixed key order
    (:func:`first_keys`): ``sim_ns``,
    ``level``, ``layer``, ``event``, then the event's fields; no wall-clock time anywhere, so
    the same scenario and seed give the same lines byte for byte.
    """
    import structlog

    tty = (stream if stream is not None else sys.stderr).isatty()
    json_renderer = structlog.processors.JSONRenderer()

    def rendered_json(logger: Any, method_name: str, event_dict: MutableMapping[str, Any]) -> Any:
        return json_renderer(logger, method_name, first_keys(logger, method_name, event_dict))

    renderer: Any = rendered_json if json else structlog.dev.ConsoleRenderer(colors=tty)
    # Resolve sys.stderr when logging, not now: it may be replaced (tests, notebooks).
    outputs = [(getattr(logging, level.upper()), renderer, lambda: stream if stream is not None else sys.stderr)]
    if json_stream is not None:
        outputs.append((getattr(logging, json_level.upper()), rendered_json, lambda: json_stream))
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            add_sim_time,
            safe_values,
            _Outputs(outputs),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(min(lowest for lowest, _, _ in outputs)),
        logger_factory=lambda *_: structlog.WriteLogger(sys.stderr),  # (unused: _Outputs writes and drops every event)
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
        if "structlog" not in sys.modules and method in _BELOW_DEFAULT:
            return
        engine = current_engine()
        if engine is not None and isinstance(engine.run_log, RunLog):  # held until the attempt's result stands
            engine.run_log.add(method, self._name, self._initial, event, {"sim_ns": engine.now_ns, **kw})
            return
        _emit(method, self._name, self._initial, event, kw)


def _emit(method: str, name: str, context: dict[str, Any], event: str, kw: dict[str, Any]) -> None:
    """Log one event through structlog (configuring the warning-level default if nothing configured it)."""
    if "structlog" not in sys.modules:
        configure_logging("warning")  # imports structlog; nothing had configured it
    import structlog

    getattr(structlog.get_logger(name, **context), method)(event, **kw)


class RunLog:
    """
    One attempt's log events, held until the attempt's result stands, then logged (:meth:`flush`).

    :func:`stacksim.simulate.simulate` gives each attempt one (``engine.run_log``); an abandoned
    pipelined attempt's events are dropped with it, so each event is logged once. *live*: log at
    once instead (an attempt one write at a time is never abandoned; :class:`LogTrace` then logs
    the records as they come, and the events must interleave with them). *phases*: the engine's
    phase records (:meth:`stacksim._engine.Engine.phase`) are logged too, at info, as events
    named like the trace's (``driver_entry``, ``dump_start``, ``port_init``, ``flush``,
    ``dump_complete``, ...), ``sim_ns`` the trace's ``t_ns``.
    """

    __slots__ = ("_events", "live", "phases")

    def __init__(self, *, phases: bool, live: bool) -> None:
        self.phases = phases
        self.live = live
        self._events: list[tuple[str, str, dict[str, Any], str, dict[str, Any]]] = []

    def add(self, method: str, name: str, context: dict[str, Any], event: str, kw: dict[str, Any]) -> None:
        """Hold (or, live, log) one event."""
        if self.live:
            _emit(method, name, context, event, kw)
        else:
            self._events.append((method, name, context, event, kw))

    def phase(
        self,
        t_ns: int,
        layer: str,
        event: str,
        dur_ns: int,
        dump_type: str | None,
        status: str | None,
        detail: dict[str, Any] | None,
    ) -> None:
        """A phase record of the engine's: an info event of *layer* at *t_ns* (the engine sends them only when :attr:`phases`)."""
        self.add("info", "stacksim", {"layer": layer}, event, _record_fields(t_ns, dur_ns, dump_type, status, detail))

    def flush(self) -> None:
        """Log the held events, in the order they came."""
        events, self._events = self._events, []
        for method, name, context, event, kw in events:
            _emit(method, name, context, event, kw)


def _record_fields(t_ns: int, dur_ns: int, dump_type: str | None, status: str | None, detail: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {"sim_ns": t_ns, "dur_ns": dur_ns}
    if dump_type is not None:
        fields["dump_type"] = dump_type
    if status is not None:
        fields["status"] = status
    if detail is not None:
        fields["detail"] = detail
    return fields


class LogTrace:
    """
    A trace sink that logs every record of a request at debug: one line per request per layer.

    ``sim_ns`` is the record's ``t_ns``, ``layer`` its layer (bound as context), the event its
    event, with ``request``, ``offset`` and ``length``. Records of no request are the run log's
    phases (:class:`RunLog`, live beside this). Being a trace, it puts the run in traced request
    mode; the CLI runs it one write at a time (``stacksim run --log-json-level debug``), as its
    lines must interleave with the live run log's events.
    """

    def emit(
        self,
        t_ns: int,
        seq: int,
        layer: str,
        event: str,
        dur_ns: int,
        request: int | None,
        offset: int | None,
        length: int | None,
        dump_type: str | None,
        status: str | None,
        detail: dict[str, Any] | None,
    ) -> None:
        """Log one record of a request at debug (a phase record is the run log's)."""
        if request is None:
            return
        fields = _record_fields(t_ns, dur_ns, dump_type, status, detail)
        fields.update(request=request, offset=offset, length=length)
        _emit("debug", "stacksim", {"layer": layer}, event, fields)
