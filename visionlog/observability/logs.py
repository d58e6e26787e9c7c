"""Log lines of a process: JSON for collectors, text for people, with the message's context.

`configure_logging(settings, "worker-live")` replaces the root logger's handlers with one
handler on stderr. Each line carries the process name and whatever context is bound at the
moment of the call: the stream runtime binds the worker, media id, event id and event type
while it handles one message (`bound(...)`), tracing adds the trace and span ids, and a
stage adds its name. The context lives in a `contextvars.ContextVar`, so it follows the
asyncio task that handles the message; threads do not inherit it, so a callable handed
to an executor goes through `in_context` (or runs on a `ContextThreadPoolExecutor`) to keep
it.

JSON line (one object per line, keys in this order, absent context keys left out):

    {"timestamp": "2025-05-01T12:00:00.123Z", "level": "WARNING", "logger": "processors.worker",
     "message": "...", "process": "worker-live", "pid": 4711, "thread": "stage_0",
     "worker": "live", "media_id": "...", "event_id": "...", "stage": "detect",
     "trace_id": "...", "span_id": "...", <extra=... fields>,
     "error_type": "ValueError", "exception": "Traceback (most recent call last): ..."}
"""

from __future__ import annotations

import contextvars
import functools
import logging
import sys
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from types import MappingProxyType, TracebackType
from typing import IO, Any, Literal, ParamSpec, TypeVar

from pythonjsonlogger.json import JsonFormatter

from visionlog.settings import Settings

P = ParamSpec("P")
T = TypeVar("T")

ContextValue = str | int | float | bool
LogFormat = Literal["json", "text"]

_EMPTY: Mapping[str, ContextValue] = MappingProxyType({})
_CONTEXT: ContextVar[Mapping[str, ContextValue]] = ContextVar("visionlog_log_context")

# Where the filter leaves the context on a record. The leading underscore keeps
# python-json-logger from copying it as an "extra" field: the formatter flattens it itself.
_RECORD_ATTR = "_visionlog_context"
# Keys every JSON line has; bound context must not overwrite them.
_FIXED_KEYS = frozenset(
    {"timestamp", "level", "logger", "message", "process", "pid", "thread", "exception"}
)
# Marks the handlers configure_logging installed, so a second call replaces them.
_OURS = "_visionlog_handler"


# --- context ------------------------------------------------------------------------------


def log_context() -> dict[str, ContextValue]:
    """A copy of the context bound now (in this task or thread)."""
    return dict(_CONTEXT.get(_EMPTY))


def bind(**fields: ContextValue | None) -> Token[Mapping[str, ContextValue]]:
    """Adds fields to the current context until `unbind(token)`; None removes a field.

    Prefer `bound(...)` (a `with` block); `bind` is for code whose scope is not a block.
    """
    current = _CONTEXT.get(_EMPTY)
    merged = dict(current)
    for key, value in fields.items():
        if key in _FIXED_KEYS:
            raise ValueError(f"{key!r} is a fixed field of every log line and cannot be bound")
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    # A read-only mapping: a context captured by an executor thread cannot be changed
    # under it by the task that bound it.
    return _CONTEXT.set(MappingProxyType(merged))


def unbind(token: Token[Mapping[str, ContextValue]]) -> None:
    """Restores the context as it was before the `bind` that returned `token`."""
    _CONTEXT.reset(token)


class bound:  # noqa: N801 - used like a function: `with bound(media_id=...):`
    """Binds fields to the log context for the length of a `with` block."""

    __slots__ = ("_fields", "_token")

    def __init__(self, **fields: ContextValue | None) -> None:
        self._fields = fields
        self._token: Token[Mapping[str, ContextValue]] | None = None

    def __enter__(self) -> bound:
        self._token = bind(**self._fields)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._token is not None:
            _CONTEXT.reset(self._token)
            self._token = None


def in_context(fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Callable[[], T]:
    """`fn(*args, **kwargs)` as a no-argument callable that runs in a copy of the context
    current *now*: the log context and the OpenTelemetry span follow it into a thread.

        await loop.run_in_executor(pool, in_context(stage, event, ctx))

    (`loop.run_in_executor` does not copy the context; `asyncio.to_thread` does, but runs
    on the loop's default executor.) Call the result once: a context cannot be entered by
    two threads at the same time.
    """
    return functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)


class ContextThreadPoolExecutor(ThreadPoolExecutor):
    """A thread pool whose tasks run in the context of the code that submitted them.

    `loop.run_in_executor(pool, fn, *args)` on this pool keeps the message's log context
    and span without wrapping each callable in `in_context`.
    """

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        return super().submit(in_context(fn, *args, **kwargs))


# --- formatting ---------------------------------------------------------------------------


class ContextFilter(logging.Filter):
    """Stamps each record with the context bound where it was logged.

    On the handler rather than in the formatter, so the context is taken in the thread that
    logged even where formatting happens later or elsewhere (a QueueHandler).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, _RECORD_ATTR):
            setattr(record, _RECORD_ATTR, _CONTEXT.get(_EMPTY))
        return True


def _record_context(record: logging.LogRecord) -> Mapping[str, ContextValue]:
    context = getattr(record, _RECORD_ATTR, None)
    return context if context is not None else _CONTEXT.get(_EMPTY)


def _timestamp(created: float) -> str:
    # RFC 3339 in UTC with milliseconds: sorts as text and every collector parses it.
    moment = datetime.fromtimestamp(created, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class JsonLineFormatter(JsonFormatter):
    """One JSON object per record: fixed fields, bound context, extras, the exception."""

    def __init__(self, process: str) -> None:
        # ensure_ascii off: media names and OCR text in messages stay readable.
        super().__init__(json_ensure_ascii=False)
        self.process = process

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        log_data["timestamp"] = _timestamp(record.created)
        log_data["level"] = record.levelname
        log_data["logger"] = record.name
        log_data["message"] = record.message
        log_data["process"] = self.process
        log_data["pid"] = record.process
        log_data["thread"] = record.threadName
        log_data.update(_record_context(record))
        exception = message_dict.pop("exc_info", None)
        stack = message_dict.pop("stack_info", None)
        # `logger.info("...", extra={...})` fields, and the keys of a dict logged as message.
        super().add_fields(log_data, record, message_dict)
        if record.exc_info and record.exc_info[0] is not None:
            log_data["error_type"] = record.exc_info[0].__name__
        if exception:
            log_data["exception"] = exception
        if stack:
            log_data["stack"] = stack


class TextFormatter(logging.Formatter):
    """`2025-05-01 12:00:00,123 WARNING [worker-live] processors.worker: msg  stage=detect`."""

    def __init__(self, process: str) -> None:
        super().__init__(f"%(asctime)s %(levelname)s [{process}] %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - stdlib name
        line = super().formatMessage(record)
        context = _record_context(record)
        if not context:
            return line
        # Trace and span ids are long and only useful to a trace viewer: leave them to JSON.
        pairs = " ".join(
            f"{key}={value}" for key, value in context.items() if key not in ("trace_id", "span_id")
        )
        return f"{line}  {pairs}" if pairs else line


# --- set-up -------------------------------------------------------------------------------


def resolve_format(setting: str, stream: IO[str]) -> LogFormat:
    """The format for `setting` ("auto", "json", "text") when writing to `stream`."""
    if setting == "json":
        return "json"
    if setting == "text":
        return "text"
    try:
        interactive = stream.isatty()
    except (AttributeError, ValueError):  # a closed or unusual stream: no person reads it
        interactive = False
    return "text" if interactive else "json"


def configure_logging(
    settings: Settings,
    process: str,
    *,
    stream: IO[str] | None = None,
    force: bool = True,
) -> logging.Handler:
    """Sends every log record of this process to `stream` (stderr) as JSON lines or text.

    `process` names the process on every line ("worker-live", "api", "projections").
    With `force` (the default, for a process's entry point) every handler the root logger
    had is removed, as `logging.basicConfig(force=True)` does; otherwise only the one an
    earlier call installed. In JSON mode uncaught exceptions, in the main thread and in
    others, are logged as JSON lines too, so a crash does not break the collector's parsing.

    A faust worker must then be told to leave logging alone:
    `faust.Worker(app, ..., override_logging=False)`; otherwise mode replaces the root
    handlers with its coloured console handler when the worker starts.
    """
    config = settings.logging
    target = stream if stream is not None else sys.stderr
    log_format = resolve_format(config.format, target)

    handler = logging.StreamHandler(target)
    handler.addFilter(ContextFilter())
    handler.setFormatter(
        JsonLineFormatter(process) if log_format == "json" else TextFormatter(process)
    )
    setattr(handler, _OURS, True)

    root = logging.getLogger()
    for old in list(root.handlers):
        if force or getattr(old, _OURS, False):
            root.removeHandler(old)
            if getattr(old, _OURS, False):
                old.close()
    root.addHandler(handler)
    root.setLevel(config.level.upper())
    for name, level in config.levels.items():
        logging.getLogger(name).setLevel(level.upper())
    # warnings.warn(...) from libraries becomes a record of the `py.warnings` logger.
    logging.captureWarnings(True)
    if log_format == "json":
        _log_uncaught_exceptions()
    return handler


def _log_uncaught_exceptions() -> None:
    crash = logging.getLogger("visionlog.crash")

    def on_main(
        exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None
    ) -> None:
        if issubclass(exc_type, KeyboardInterrupt):
            sys.__excepthook__(exc_type, exc, tb)
            return
        crash.critical("uncaught exception", exc_info=(exc_type, exc, tb))

    def on_thread(args: threading.ExceptHookArgs) -> None:
        if args.exc_value is None:
            return
        thread = args.thread.name if args.thread is not None else "?"
        crash.critical(
            "uncaught exception in thread %s",
            thread,
            exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
        )

    sys.excepthook = on_main
    threading.excepthook = on_thread
