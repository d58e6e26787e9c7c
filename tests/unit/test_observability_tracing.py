"""Message and stage spans: children of the event's traceparent, exported when configured,
free (and still carrying the trace id on) when not."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from tests.ports import free_port
from visionlog.observability.logs import configure_logging, in_context
from visionlog.observability.tracing import (
    NOOP_TRACER,
    MessageTrace,
    Tracer,
    configure_tracing,
    current_trace,
    current_traceparent,
    traces_url,
)
from visionlog.settings import LoggingSettings, Settings, TracingSettings
from visionlog.stream.headers import EVENT_TYPE, TRACEPARENT, parse_traceparent

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
HEADER = f"00-{TRACE}-{PARENT}-01"
EVENT_ID = "6f1b7a52-3c8e-5d0f-9a41-2b7c0e9d4f13"


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def tracer(exporter: InMemorySpanExporter) -> Iterator[Tracer]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = Tracer.from_provider(provider)
    yield tracer
    tracer.shutdown()


def _by_name(spans: tuple[ReadableSpan, ...]) -> dict[str, ReadableSpan]:
    return {span.name: span for span in spans}


def _message(
    tracer: Tracer, *, traceparent: str | None = HEADER, trace_id: str | None = TRACE
) -> MessageTrace:
    return tracer.message(
        worker="vision",
        event_type="FrameCaptured",
        event_id=EVENT_ID,
        media_id="media-1",
        traceparent=traceparent,
        trace_id=trace_id,
        topic="media.frames",
        partition=2,
        offset=41,
    )


def test_message_span_is_a_child_of_the_traceparent_and_stages_of_it(
    tracer: Tracer, exporter: InMemorySpanExporter
) -> None:
    with tracer.message(
        worker="vision",
        event_type="FrameCaptured",
        event_id=EVENT_ID,
        media_id="media-1",
        traceparent=HEADER,
        trace_id=TRACE,
        topic="media.frames",
        partition=2,
        offset=41,
    ) as handling:
        with handling.stage("detect") as detect:
            detect.set_outcome("done")
        with handling.stage("track"):
            pass
    spans = _by_name(exporter.get_finished_spans())
    message = spans["process FrameCaptured"]
    assert message.context is not None and message.parent is not None
    assert f"{message.context.trace_id:032x}" == TRACE
    assert f"{message.parent.span_id:016x}" == PARENT
    assert message.parent.is_remote
    assert message.kind is SpanKind.CONSUMER
    attributes = dict(message.attributes or {})
    assert attributes["visionlog.media_id"] == "media-1"
    assert attributes["visionlog.event_id"] == EVENT_ID
    assert attributes["visionlog.event_type"] == "FrameCaptured"
    assert attributes["visionlog.worker"] == "vision"
    assert attributes["messaging.destination.name"] == "media.frames"
    assert attributes["messaging.kafka.offset"] == 41

    for name in ("stage detect", "stage track"):
        stage = spans[name]
        assert stage.parent is not None and stage.context is not None
        assert stage.parent.span_id == message.context.span_id
        assert stage.context.trace_id == message.context.trace_id
    assert dict(spans["stage detect"].attributes or {})["visionlog.stage"] == "detect"
    assert dict(spans["stage detect"].attributes or {})["visionlog.outcome"] == "done"
    # The handle names the span it stands for.
    assert handling.trace_id == TRACE
    assert handling.span_id == f"{message.context.span_id:016x}"


def test_derived_events_carry_the_trace_and_the_stage_span(
    tracer: Tracer, exporter: InMemorySpanExporter
) -> None:
    with _message(tracer) as handling, handling.stage("detect") as stage:
        inside = current_traceparent()
    headers = dict(stage.headers("ObjectsDetected"))
    assert headers[EVENT_TYPE] == b"ObjectsDetected"
    value = headers[TRACEPARENT].decode()
    assert value == inside
    assert parse_traceparent(value) == (TRACE, stage.span_id)
    assert value.endswith("-01")
    detect = _by_name(exporter.get_finished_spans())["stage detect"]
    assert detect.context is not None and stage.span_id == f"{detect.context.span_id:016x}"
    # After the block nothing is current any more.
    assert current_trace() is None and current_traceparent() is None


def test_stages_on_executor_threads_at_once_are_all_children_of_the_message(
    tracer: Tracer, exporter: InMemorySpanExporter
) -> None:
    seen: dict[str, str | None] = {}

    def run_stage(name: str) -> None:
        handle = current_trace()
        seen[name] = handle.span_id if handle is not None else None
        time.sleep(0.01)

    async def stage(handling: MessageTrace, name: str, pool: ThreadPoolExecutor) -> str | None:
        with handling.stage(name) as span:
            await asyncio.get_running_loop().run_in_executor(pool, in_context(run_stage, name))
            return span.span_id

    async def main() -> list[str | None]:
        with ThreadPoolExecutor(3) as pool, _message(tracer) as handling:
            return list(
                await asyncio.gather(*(stage(handling, n, pool) for n in ("detect", "ocr", "qr")))
            )

    ids = asyncio.run(main())
    spans = _by_name(exporter.get_finished_spans())
    message = spans["process FrameCaptured"]
    assert message.context is not None
    for name, span_id in zip(("detect", "ocr", "qr"), ids, strict=True):
        stage_span = spans[f"stage {name}"]
        assert stage_span.parent is not None and stage_span.context is not None
        assert stage_span.parent.span_id == message.context.span_id
        # The thread saw its own stage as the current span.
        assert seen[name] == span_id == f"{stage_span.context.span_id:016x}"


def test_without_a_header_the_envelope_trace_id_is_continued(
    tracer: Tracer, exporter: InMemorySpanExporter
) -> None:
    for header in (None, "not-a-traceparent", f"00-{'0' * 32}-{PARENT}-01"):
        with _message(tracer, traceparent=header) as handling:
            assert handling.trace_id == TRACE
    spans = exporter.get_finished_spans()
    assert len(spans) == 3
    parents = set()
    for span in spans:
        assert span.context is not None and span.parent is not None
        assert f"{span.context.trace_id:032x}" == TRACE
        parents.add(span.parent.span_id)
    # Every worker handling the same event names the same stand-in parent.
    assert len(parents) == 1


def test_without_any_trace_a_new_one_starts(tracer: Tracer, exporter: InMemorySpanExporter) -> None:
    with _message(tracer, traceparent=None, trace_id=None) as handling:
        pass
    (span,) = exporter.get_finished_spans()
    assert span.parent is None and span.context is not None
    assert handling.trace_id == f"{span.context.trace_id:032x}"
    assert handling.traceparent() == f"00-{handling.trace_id}-{handling.span_id}-01"


def test_an_unsampled_parent_is_followed(tracer: Tracer, exporter: InMemorySpanExporter) -> None:
    header = f"00-{TRACE}-{PARENT}-00"
    with _message(tracer, traceparent=header) as handling, handling.stage("detect") as stage:
        assert not stage.recording
    assert exporter.get_finished_spans() == ()
    value = stage.traceparent()
    assert value is not None and value.startswith(f"00-{TRACE}-") and value.endswith("-00")


def test_a_failing_stage_marks_its_span_and_the_message(
    tracer: Tracer, exporter: InMemorySpanExporter
) -> None:
    with (
        pytest.raises(ValueError, match="corrupt"),
        _message(tracer) as handling,
        handling.stage("render"),
    ):
        raise ValueError("corrupt page")
    spans = _by_name(exporter.get_finished_spans())
    for name in ("stage render", "process FrameCaptured"):
        assert spans[name].status.status_code is StatusCode.ERROR
        assert [event.name for event in spans[name].events] == ["exception"]

    exporter.clear()
    with _message(tracer) as handling:
        with handling.stage("ocr") as stage:
            stage.record_error(TimeoutError("engine"))
        handling.set_outcome("failed", "ocr: engine")
    spans = _by_name(exporter.get_finished_spans())
    assert spans["stage ocr"].status.status_code is StatusCode.ERROR
    assert spans["process FrameCaptured"].status.status_code is StatusCode.ERROR
    attributes = dict(spans["process FrameCaptured"].attributes or {})
    assert attributes["visionlog.outcome_reason"] == "ocr: engine"


def test_log_lines_inside_carry_the_trace_and_span(tracer: Tracer) -> None:
    stream = io.StringIO()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        configure_logging(
            Settings(logging=LoggingSettings(format="json")), "worker-vision", stream=stream
        )
        logger = logging.getLogger("visionlog.test.tracing")
        with (
            _message(tracer) as handling,
            handling.stage("detect") as stage,
            ThreadPoolExecutor(1) as pool,
        ):
            pool.submit(in_context(logger.info, "from the stage thread")).result()
        logger.info("outside")
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in handlers:
            if not type(handler).__module__.startswith("_pytest"):
                root.addHandler(handler)
        root.setLevel(level)
        logging.captureWarnings(False)
    inside, outside = (json.loads(line) for line in stream.getvalue().splitlines())
    assert inside["trace_id"] == TRACE
    assert inside["span_id"] == stage.span_id
    assert inside["stage"] == "detect"
    assert inside["media_id"] == "media-1" and inside["event_id"] == EVENT_ID
    assert inside["worker"] == "vision" and inside["event_type"] == "FrameCaptured"
    assert "trace_id" not in outside and "stage" not in outside


# --- without an endpoint ------------------------------------------------------------------


def test_no_endpoint_means_the_no_op_tracer_that_still_carries_the_trace() -> None:
    tracer = configure_tracing(Settings(tracing=TracingSettings()), "worker-live")
    assert tracer is NOOP_TRACER and not tracer.enabled
    with _message(tracer) as handling, handling.stage("detect") as stage:
        assert not stage.recording and stage.span is None
        assert current_traceparent() == HEADER
    # The incoming parent is passed through: a traced worker downstream still finds it.
    assert stage.traceparent() == HEADER
    assert dict(stage.headers("ObjectsDetected"))[TRACEPARENT] == HEADER.encode()
    # From the envelope's trace id alone: same trace, some span id.
    with _message(tracer, traceparent=None) as handling:
        pass
    made_up = handling.traceparent()
    assert parse_traceparent(made_up) is not None and handling.trace_id == TRACE
    # Every event derived there names the same (made-up) parent.
    assert handling.traceparent() == made_up
    # A malformed trace id in the envelope is no trace at all, not a crash.
    with _message(tracer, traceparent=None, trace_id="NOT-HEX") as handling:
        pass
    assert handling.trace_id is None
    # No trace at all: the headers carry the type only.
    with _message(tracer, traceparent=None, trace_id=None) as handling:
        pass
    assert handling.traceparent() is None
    assert handling.headers("ObjectsDetected") == ((EVENT_TYPE, b"ObjectsDetected"),)


def test_the_no_op_tracer_costs_nothing_measurable() -> None:
    tracer = NOOP_TRACER
    rounds = 20_000
    started = time.perf_counter()
    for _ in range(rounds):
        with tracer.message(
            worker="live",
            event_type="FrameCaptured",
            event_id=EVENT_ID,
            media_id="m",
            traceparent=HEADER,
            trace_id=TRACE,
        ) as handling:
            with handling.stage("detect") as stage:
                pass
            stage.headers("ObjectsDetected")
    per_message_us = (time.perf_counter() - started) / rounds * 1e6
    # About 5 µs here, against a detection of tens of milliseconds; the bound leaves room
    # for a loaded CI machine.
    assert per_message_us < 100, per_message_us


def test_the_no_op_tracer_loads_no_sdk() -> None:
    script = (
        "import sys\n"
        "from visionlog.observability.tracing import configure_tracing\n"
        "from visionlog.settings import Settings\n"
        "tracer = configure_tracing(Settings(), 'worker-live')\n"
        f"with tracer.message(worker='live', event_type='T', event_id='{EVENT_ID}',\n"
        f"                    traceparent='{HEADER}') as m, m.stage('detect'):\n"
        "    pass\n"
        "print(sorted(name for name in sys.modules if name.startswith('opentelemetry')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={**os.environ, "VISIONLOG_TRACING__OTLP_ENDPOINT": ""},
    )
    assert done.stdout.strip() == "[]"


def test_an_unreachable_collector_neither_blocks_nor_fails_the_work() -> None:
    """Exporting to a closed port: spans are handled as usual, shutdown is bounded."""
    port = free_port()
    script = (
        "import time\n"
        "from visionlog.observability.tracing import configure_tracing\n"
        "from visionlog.settings import Settings, TracingSettings\n"
        f"settings = Settings(tracing=TracingSettings(otlp_endpoint='http://127.0.0.1:{port}',\n"
        "                                             export_timeout_s=1.0))\n"
        "tracer = configure_tracing(settings, 'worker-test')\n"
        "assert tracer.enabled\n"
        "started = time.perf_counter()\n"
        "for i in range(1000):\n"
        f"    with tracer.message(worker='live', event_type='T', event_id='{EVENT_ID}',\n"
        f"                        traceparent='{HEADER}') as m, m.stage('detect') as s:\n"
        "        pass\n"
        "    assert s.span is not None and s.sampled and s.trace_id == '" + TRACE + "'\n"
        "print(round((time.perf_counter() - started) / 1000 * 1e6, 1))\n"
        "stopping = time.perf_counter()\n"
        "tracer.shutdown()\n"
        "print(round(time.perf_counter() - stopping, 1))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    per_message_us, shutdown_s = (float(x) for x in done.stdout.split())
    assert per_message_us < 1000, per_message_us
    assert shutdown_s < 30, shutdown_s


def test_traces_url_gets_the_standard_path_only_when_it_has_none() -> None:
    assert traces_url("http://collector:4318") == "http://collector:4318/v1/traces"
    assert traces_url("http://collector:4318/") == "http://collector:4318/v1/traces"
    assert traces_url("https://otlp.example/api/v1/traces") == "https://otlp.example/api/v1/traces"
