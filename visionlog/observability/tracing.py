"""Traces of the processors: one span per handled message, a child span per stage.

The trace id is set at ingest (the envelope's `trace_id`) and every derived event carries it
on, in its envelope and in the W3C `traceparent` Kafka header. A worker continues the trace
of each message it handles: its message span is a child of the event's `traceparent` (or,
for an event without that header, of the envelope's trace id), its stage spans are children
of the message span, and the events a stage derives carry a `traceparent` naming that stage
span, so the next worker's span hangs under it. One trace shows an item's whole path.

Export is OpenTelemetry over OTLP/HTTP with a batch span processor, and only when
`settings.tracing.otlp_endpoint` is set. Without it `configure_tracing` returns the no-op
tracer: no SDK is imported, no span object is made, and the handles below still answer the
trace id and the outgoing `traceparent` (the incoming span id passed through, so a traced
worker further down still finds a parent). An unreachable collector costs nothing on the
hot path either: the batch processor exports from its own thread and drops spans when its
queue is full.

    tracer = configure_tracing(settings, "worker-vision")     # once, at start-up
    with tracer.message(worker="vision", event_type=..., event_id=..., media_id=...,
                        traceparent=inbound.header(TRACEPARENT), trace_id=envelope["trace_id"],
                        topic=inbound.topic, partition=..., offset=...) as handling:
        with handling.stage("detect") as stage:
            outgoing = await loop.run_in_executor(pool, in_context(run_stage, event, ctx))
        headers = stage.headers("ObjectsDetected")           # event type + traceparent
    tracer.shutdown()                                         # at exit: flush the batch

Entering a handle also binds `trace_id`, `span_id` (and `stage`) to the log context, and the
handle is the *current* trace (`current_trace()`), in the asyncio task and, through
`in_context`, in the executor thread that runs the stage.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import uuid
from contextvars import ContextVar, Token
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from visionlog.observability.logs import ContextValue, bind, unbind
from visionlog.settings import Settings
from visionlog.stream.headers import (
    EVENT_TYPE,
    TRACEPARENT,
    new_span_id,
    parse_traceparent,
)
from visionlog.stream.headers import traceparent as format_traceparent
from visionlog.stream.messages import Headers

if TYPE_CHECKING:
    from collections.abc import Mapping

    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Span
    from opentelemetry.trace import Tracer as OtelTracer

log = logging.getLogger(__name__)

INSTRUMENTATION_NAME = "visionlog.processors"
_TRACE_ID = re.compile(r"^[0-9a-f]{32}$")
_ZERO_TRACE = "0" * 32
_ACTIVE: ContextVar[TraceHandle | None] = ContextVar("visionlog_active_trace", default=None)


def _sampled_flag(value: str | None) -> bool:
    # parse_traceparent checked the form; the last two hex digits are the flags, bit 0 sampled.
    return value is None or int(value.strip()[-2:], 16) & 1 == 1


def _synthetic_parent_span_id(event_id: str) -> str:
    """A stand-in parent span id for an event that carries a trace id but no traceparent.

    Derived from the event id, so every worker (and every redelivery) that handles the event
    names the same parent: their spans stay siblings under one node of the trace.
    """
    try:
        value = uuid.UUID(event_id).hex[:16]
    except ValueError:
        value = uuid.uuid5(uuid.NAMESPACE_OID, event_id).hex[:16]
    return value if value != "0" * 16 else "1" * 16


class TraceHandle:
    """A message or stage span as the runtime sees it, recording or not.

    `trace_id` and `span_id` name the span (with no tracer: the trace id carried in and the
    incoming parent's span id, passed through). They stay valid after the block ends, so the
    events derived inside it can be published afterwards with `headers(...)`.
    """

    __slots__ = (
        "_active_token",
        "_log_token",
        "_otel_token",
        "sampled",
        "span",
        "span_id",
        "trace_id",
    )

    def __init__(self, trace_id: str | None, span_id: str | None, sampled: bool) -> None:
        self.trace_id = trace_id
        self.span_id = span_id
        self.sampled = sampled
        self.span: Span | None = None
        self._log_token: Token[Mapping[str, ContextValue]] | None = None
        self._active_token: Token[TraceHandle | None] | None = None
        self._otel_token: Token[Context] | None = None

    @property
    def recording(self) -> bool:
        """True while the span is open and sampled (OpenTelemetry's `is_recording`)."""
        return self.span is not None and self.span.is_recording()

    def traceparent(self) -> str | None:
        """The `traceparent` for an event derived here; None when there is no trace at all."""
        if self.trace_id is None:
            return None
        if self.span_id is None:
            # Nothing recorded and no parent to pass on: one made-up id, the same for every
            # event derived here.
            self.span_id = new_span_id()
        return format_traceparent(self.trace_id, self.span_id, self.sampled)

    def headers(self, event_type: str) -> Headers:
        """Kafka headers of an event derived here: its type and the trace context."""
        value = self.traceparent()
        if value is None:
            return ((EVENT_TYPE, event_type.encode()),)
        return ((EVENT_TYPE, event_type.encode()), (TRACEPARENT, value.encode()))

    def set_attribute(self, key: str, value: str | int | float | bool) -> None:
        if self.span is not None:
            self.span.set_attribute(key, value)

    def set_outcome(self, outcome: str, reason: str | None = None) -> None:
        """The work report's status of this message or stage (`done`, `skipped`, `failed`...);
        `failed` marks the span as an error."""
        if self.span is None:
            return
        self.span.set_attribute("visionlog.outcome", outcome)
        if reason:
            self.span.set_attribute("visionlog.outcome_reason", reason)
        if outcome == "failed":
            from opentelemetry.trace import Status, StatusCode

            self.span.set_status(Status(StatusCode.ERROR, reason or outcome))

    def record_error(self, error: BaseException) -> None:
        """A failure that was handled (retried, dead-lettered) rather than raised."""
        if self.span is None:
            return
        from opentelemetry.trace import Status, StatusCode

        self.span.record_exception(error)
        self.span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))

    # -- the `with` block --

    def _activate(self, otel_context: Context | None, log_fields: dict[str, ContextValue]) -> None:
        if otel_context is not None:
            from opentelemetry import context as otel_context_api

            self._otel_token = otel_context_api.attach(otel_context)
        self._log_token = bind(**log_fields)
        self._active_token = _ACTIVE.set(self)

    def _deactivate(self, error: BaseException | None) -> None:
        if self._active_token is not None:
            _ACTIVE.reset(self._active_token)
            self._active_token = None
        if self._log_token is not None:
            unbind(self._log_token)
            self._log_token = None
        if self.span is not None:
            if isinstance(error, Exception):
                self.record_error(error)
            elif error is not None:
                # Cancelled (the worker stops) or interrupted: not a failure of the input.
                self.span.set_attribute("visionlog.interrupted", type(error).__name__)
            if self._otel_token is not None:
                from opentelemetry import context as otel_context_api

                otel_context_api.detach(self._otel_token)
                self._otel_token = None
            self.span.end()


class MessageTrace(TraceHandle):
    """The span of one message being handled; `stage(name)` opens its children."""

    __slots__ = ("_attributes", "_tracer", "_worker")

    def __init__(
        self,
        tracer: OtelTracer | None,
        *,
        worker: str,
        event_type: str,
        event_id: str,
        media_id: str | None,
        traceparent_header: str | None,
        trace_id: str | None,
        topic: str | None,
        partition: int | None,
        offset: int | None,
    ) -> None:
        parent = parse_traceparent(traceparent_header)
        if parent is not None:
            super().__init__(parent[0], parent[1], _sampled_flag(traceparent_header))
        else:
            # No (valid) header: the envelope's trace id alone, no parent span to name.
            valid = trace_id is not None and _TRACE_ID.match(trace_id) and trace_id != _ZERO_TRACE
            super().__init__(trace_id if valid else None, None, True)
        self._tracer = tracer
        self._worker = worker
        self._attributes: dict[str, Any] = {
            "worker": worker,
            "event_type": event_type,
            "event_id": event_id,
            "media_id": media_id,
            "topic": topic,
            "partition": partition,
            "offset": offset,
        }

    def __enter__(self) -> MessageTrace:
        a = self._attributes
        otel_context = None
        if self._tracer is not None:
            otel_context = self._start_span(a)
        fields: dict[str, ContextValue] = {"worker": a["worker"], "event_type": a["event_type"]}
        fields["event_id"] = a["event_id"]
        if a["media_id"]:
            fields["media_id"] = a["media_id"]
        if self.trace_id:
            fields["trace_id"] = self.trace_id
        if self.recording and self.span_id:
            fields["span_id"] = self.span_id
        self._activate(otel_context, fields)
        return self

    def _start_span(self, a: dict[str, Any]) -> Context:
        from opentelemetry import trace as otel_trace
        from opentelemetry.trace import SpanContext, SpanKind, TraceFlags

        assert self._tracer is not None
        parent_context = None
        if self.trace_id is not None:
            parent_span_id = self.span_id or _synthetic_parent_span_id(a["event_id"])
            remote = SpanContext(
                trace_id=int(self.trace_id, 16),
                span_id=int(parent_span_id, 16),
                is_remote=True,
                trace_flags=TraceFlags(TraceFlags.SAMPLED if self.sampled else 0),
            )
            parent_context = otel_trace.set_span_in_context(otel_trace.NonRecordingSpan(remote))
        attributes: dict[str, str | int] = {
            "visionlog.worker": a["worker"],
            "visionlog.event_type": a["event_type"],
            "visionlog.event_id": a["event_id"],
            "messaging.system": "kafka",
            "messaging.operation.type": "process",
            "messaging.message.id": a["event_id"],
        }
        if a["media_id"]:
            attributes["visionlog.media_id"] = a["media_id"]
        if a["topic"]:
            attributes["messaging.destination.name"] = a["topic"]
        if a["partition"] is not None:
            attributes["messaging.destination.partition.id"] = str(a["partition"])
        if a["offset"] is not None:
            attributes["messaging.kafka.offset"] = a["offset"]
        span = self._tracer.start_span(
            f"process {a['event_type']}",
            context=parent_context,
            kind=SpanKind.CONSUMER,
            attributes=attributes,
        )
        self._adopt(span)
        return otel_trace.set_span_in_context(span)

    def _adopt(self, span: Span) -> None:
        self.span = span
        ids = span.get_span_context()
        if ids.is_valid:
            self.trace_id = f"{ids.trace_id:032x}"
            self.span_id = f"{ids.span_id:016x}"
            self.sampled = ids.trace_flags.sampled

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._deactivate(exc)

    def stage(self, name: str) -> StageTrace:
        """The child span of one stage: `with handling.stage("detect") as stage: ...`."""
        return StageTrace(self, name)


class StageTrace(TraceHandle):
    """The span of one stage on one message, a child of the message span."""

    __slots__ = ("_message", "_name")

    def __init__(self, message: MessageTrace, name: str) -> None:
        super().__init__(message.trace_id, message.span_id, message.sampled)
        self._message = message
        self._name = name

    def __enter__(self) -> StageTrace:
        otel_context = None
        message = self._message
        fields: dict[str, ContextValue] = {"stage": self._name}
        if message.span is not None and message._tracer is not None:
            from opentelemetry import trace as otel_trace

            span = message._tracer.start_span(
                f"stage {self._name}",
                # Explicitly under the message span, whatever is current in this task.
                context=otel_trace.set_span_in_context(message.span),
                attributes={"visionlog.stage": self._name, "visionlog.worker": message._worker},
            )
            self.span = span
            ids = span.get_span_context()
            if ids.is_valid:
                self.span_id = f"{ids.span_id:016x}"
                self.sampled = ids.trace_flags.sampled
                if span.is_recording():
                    fields["span_id"] = self.span_id
            otel_context = otel_trace.set_span_in_context(span)
        self._activate(otel_context, fields)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._deactivate(exc)


class Tracer:
    """Starts message spans; a no-op (ids carried, nothing recorded) without a provider."""

    def __init__(
        self, otel_tracer: OtelTracer | None = None, provider: TracerProvider | None = None
    ) -> None:
        self._tracer = otel_tracer
        self._provider = provider

    @classmethod
    def from_provider(cls, provider: TracerProvider) -> Tracer:
        """A tracer writing to `provider` (a test's, with an in-memory exporter)."""
        return cls(provider.get_tracer(INSTRUMENTATION_NAME), provider)

    @property
    def enabled(self) -> bool:
        return self._tracer is not None

    def message(
        self,
        *,
        worker: str,
        event_type: str,
        event_id: str,
        media_id: str | None = None,
        traceparent: str | None = None,
        trace_id: str | None = None,
        topic: str | None = None,
        partition: int | None = None,
        offset: int | None = None,
    ) -> MessageTrace:
        """The span of handling one message, for a `with` block.

        `traceparent` is the message's header (`InboundMessage.header(TRACEPARENT)`), and
        `trace_id` the envelope's: the header wins when both are given and valid.
        """
        return MessageTrace(
            self._tracer,
            worker=worker,
            event_type=event_type,
            event_id=event_id,
            media_id=media_id,
            traceparent_header=traceparent,
            trace_id=trace_id,
            topic=topic,
            partition=partition,
            offset=offset,
        )

    def force_flush(self, timeout_s: float = 5.0) -> bool:
        if self._provider is None:
            return True
        return self._provider.force_flush(int(timeout_s * 1000))

    def shutdown(self) -> None:
        """Exports what is queued (bounded by the exporter's timeout) and stops exporting."""
        if self._provider is not None:
            self._provider.shutdown()


NOOP_TRACER = Tracer()
_configured: Tracer = NOOP_TRACER


def get_tracer() -> Tracer:
    """The tracer `configure_tracing` set up in this process (the no-op one before)."""
    return _configured


def current_trace() -> TraceHandle | None:
    """The message or stage span being handled in this task or thread, if any."""
    return _ACTIVE.get()


def current_traceparent() -> str | None:
    """The `traceparent` for an event derived right here (None outside a message)."""
    handle = _ACTIVE.get()
    return handle.traceparent() if handle is not None else None


def traces_url(endpoint: str) -> str:
    """The OTLP/HTTP traces URL: a bare collector address gets the standard path."""
    parts = urlsplit(endpoint)
    if parts.path in ("", "/"):
        return endpoint.rstrip("/") + "/v1/traces"
    return endpoint


def configure_tracing(settings: Settings, service_name: str) -> Tracer:
    """The process's tracer: exporting over OTLP/HTTP when `settings.tracing.otlp_endpoint`
    is set, the no-op tracer otherwise (and when the SDK is not installed, with a warning).

    Call once at start-up; the tracer also becomes OpenTelemetry's global provider (unless
    one is set already), so instrumented libraries join the same traces.
    """
    global _configured
    config = settings.tracing
    if not config.otlp_endpoint:
        _configured = NOOP_TRACER
        return _configured
    try:
        from opentelemetry import trace as otel_trace
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
    except ImportError as exc:
        log.warning("tracing endpoint set but OpenTelemetry is not installed (%s): no export", exc)
        _configured = NOOP_TRACER
        return _configured

    from importlib.metadata import PackageNotFoundError, version

    try:
        service_version = version("visionlog")
    except PackageNotFoundError:
        service_version = "unknown"
    resource = Resource.create(
        {
            "service.name": service_name,
            "service.namespace": "visionlog",
            "service.version": service_version,
            "service.instance.id": f"{socket.gethostname()}-{os.getpid()}",
            "deployment.environment.name": settings.environment,
        }
    )
    provider = TracerProvider(
        resource=resource, sampler=ParentBased(TraceIdRatioBased(config.sample_ratio))
    )
    exporter = OTLPSpanExporter(
        endpoint=traces_url(config.otlp_endpoint),
        headers={key: value.get_secret_value() for key, value in config.otlp_headers.items()},
        timeout=config.export_timeout_s,
    )
    provider.add_span_processor(BatchSpanProcessor(exporter))
    if isinstance(otel_trace.get_tracer_provider(), otel_trace.ProxyTracerProvider):
        otel_trace.set_tracer_provider(provider)
    _configured = Tracer.from_provider(provider)
    log.info("tracing: exporting spans of %s to %s", service_name, traces_url(config.otlp_endpoint))
    return _configured
