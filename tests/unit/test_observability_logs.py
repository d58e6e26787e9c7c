"""Log lines: JSON that parses, with the context bound where the line was written."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from visionlog.observability.logs import (
    ContextThreadPoolExecutor,
    bind,
    bound,
    configure_logging,
    in_context,
    log_context,
    resolve_format,
    unbind,
)
from visionlog.settings import LoggingSettings, Settings

log = logging.getLogger("visionlog.test.observability")


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """configure_logging changes process-wide state: put the root logger back afterwards."""
    root = logging.getLogger()
    # pytest adds and removes its capture handlers around each phase itself.
    handlers = [h for h in root.handlers if not type(h).__module__.startswith("_pytest")]
    level = root.level
    levels = {name: logging.getLogger(name).level for name in ("aiokafka", "kafka", "urllib3")}
    hooks = (sys.excepthook, threading.excepthook)
    try:
        yield
    finally:
        for handler in list(root.handlers):
            if getattr(handler, "_visionlog_handler", False):
                handler.close()
            root.removeHandler(handler)
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)
        for name, old in levels.items():
            logging.getLogger(name).setLevel(old)
        logging.captureWarnings(False)
        sys.excepthook, threading.excepthook = hooks


def _settings(log_format: str = "json", **extra: Any) -> Settings:
    return Settings(logging=LoggingSettings(format=log_format, **extra))  # type: ignore[arg-type]


def _lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


@pytest.fixture
def json_stream() -> io.StringIO:
    stream = io.StringIO()
    configure_logging(_settings("json"), "worker-test", stream=stream)
    return stream


def test_json_line_has_the_fixed_fields_and_the_bound_context(json_stream: io.StringIO) -> None:
    with bound(worker="live", media_id="m-1", event_id="e-1"), bound(stage="detect"):
        log.warning("frame %d analysed", 7, extra={"detections": 3})
    log.info("after the block")

    first, second = _lines(json_stream)
    assert first["message"] == "frame 7 analysed"
    assert first["level"] == "WARNING"
    assert first["logger"] == "visionlog.test.observability"
    assert first["process"] == "worker-test"
    assert first["timestamp"].endswith("Z") and "T" in first["timestamp"]
    assert first["worker"] == "live"
    assert first["media_id"] == "m-1"
    assert first["event_id"] == "e-1"
    assert first["stage"] == "detect"
    assert first["detections"] == 3
    # The context ends with its block.
    assert "media_id" not in second and "stage" not in second
    assert list(first)[:5] == ["timestamp", "level", "logger", "message", "process"]


def test_exception_is_a_field_with_its_traceback(json_stream: io.StringIO) -> None:
    def render() -> None:
        raise ValueError("bad page")

    with bound(media_id="m-2"):
        try:
            render()
        except ValueError:
            log.exception("stage failed")
    (line,) = _lines(json_stream)
    assert line["error_type"] == "ValueError"
    assert "Traceback (most recent call last)" in line["exception"]
    assert "ValueError: bad page" in line["exception"]
    assert line["media_id"] == "m-2"


def test_context_reaches_an_executor_thread_through_in_context(json_stream: io.StringIO) -> None:
    def stage() -> str:
        log.info("in the stage thread")
        return threading.current_thread().name

    async def handle(media_id: str, pool: ThreadPoolExecutor) -> str:
        with bound(media_id=media_id, stage="ocr"):
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(pool, in_context(stage))

    async def main() -> list[str]:
        with ThreadPoolExecutor(2, thread_name_prefix="stage") as pool:
            # Two messages at once: each thread line must carry its own message's context.
            return list(await asyncio.gather(handle("m-a", pool), handle("m-b", pool)))

    threads = asyncio.run(main())
    assert all(name.startswith("stage") for name in threads)
    lines = _lines(json_stream)
    assert sorted(line["media_id"] for line in lines) == ["m-a", "m-b"]
    assert all(line["stage"] == "ocr" and line["thread"].startswith("stage") for line in lines)


def test_a_plain_executor_thread_does_not_see_the_context(json_stream: io.StringIO) -> None:
    """Why `in_context` exists: `run_in_executor` does not carry the context over."""

    async def main() -> None:
        with bound(media_id="m-lost"), ThreadPoolExecutor(1) as pool:
            await asyncio.get_running_loop().run_in_executor(pool, log.info, "plain")

    asyncio.run(main())
    (line,) = _lines(json_stream)
    assert "media_id" not in line


def test_context_thread_pool_carries_the_context(json_stream: io.StringIO) -> None:
    async def main() -> None:
        with bound(media_id="m-pool", event_id="e-pool"), ContextThreadPoolExecutor(1) as pool:
            await asyncio.get_running_loop().run_in_executor(pool, log.info, "pooled")

    asyncio.run(main())
    (line,) = _lines(json_stream)
    assert line["media_id"] == "m-pool" and line["event_id"] == "e-pool"


def test_bind_nests_removes_with_none_and_unbinds() -> None:
    outer = bind(media_id="m", stage="detect")
    try:
        with bound(stage="track", event_id="e"):
            assert log_context() == {"media_id": "m", "stage": "track", "event_id": "e"}
            with bound(stage=None):
                assert log_context() == {"media_id": "m", "event_id": "e"}
        assert log_context() == {"media_id": "m", "stage": "detect"}
    finally:
        unbind(outer)
    assert log_context() == {}


@pytest.mark.parametrize("key", ["message", "level", "timestamp", "process"])
def test_fixed_fields_cannot_be_bound(key: str) -> None:
    with pytest.raises(ValueError, match="fixed field"):
        bind(**{key: "x"})


def test_text_format_is_readable_with_its_context() -> None:
    stream = io.StringIO()
    configure_logging(_settings("text"), "cli", stream=stream)
    with bound(media_id="m-3", stage="ocr", trace_id="a" * 32):
        log.info("hello %s", "world")
    line = stream.getvalue().strip()
    assert "INFO [cli] visionlog.test.observability: hello world" in line
    assert line.endswith("media_id=m-3 stage=ocr")
    with pytest.raises(json.JSONDecodeError):
        json.loads(line)


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_auto_format_is_text_at_a_terminal_and_json_elsewhere() -> None:
    assert resolve_format("auto", _Terminal()) == "text"
    assert resolve_format("auto", io.StringIO()) == "json"
    assert resolve_format("json", _Terminal()) == "json"
    assert resolve_format("text", io.StringIO()) == "text"


def test_levels_and_a_second_call_replaces_the_handler() -> None:
    first = io.StringIO()
    configure_logging(_settings("json"), "p", stream=first)
    second = io.StringIO()
    configure_logging(
        _settings("json", level="WARNING", levels={"visionlog.test.chatty": "ERROR"}),
        "p",
        stream=second,
        force=False,
    )
    log.info("below the level")
    logging.getLogger("visionlog.test.chatty").warning("below its own level")
    log.warning("kept")
    assert first.getvalue() == ""
    assert [line["message"] for line in _lines(second)] == ["kept"]


def test_uncaught_exceptions_become_json_lines() -> None:
    """A crash in JSON mode (main thread or another) still writes parseable lines."""
    script = (
        "import threading\n"
        "from visionlog.observability.logs import configure_logging\n"
        "from visionlog.settings import LoggingSettings, Settings\n"
        "configure_logging(Settings(logging=LoggingSettings(format='json')), 'crashy')\n"
        "t = threading.Thread(target=lambda: 1 / 0, name='helper'); t.start(); t.join()\n"
        "raise RuntimeError('main loop died')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 1
    lines = [json.loads(line) for line in done.stderr.splitlines() if line.strip()]
    assert [line["error_type"] for line in lines] == ["ZeroDivisionError", "RuntimeError"]
    assert lines[0]["message"] == "uncaught exception in thread helper"
    assert all(line["process"] == "crashy" and line["level"] == "CRITICAL" for line in lines)
    assert "main loop died" in lines[1]["exception"]
