"""What a long-running process tells its operators: metrics, log lines and traces.

- `metrics`: the processors' Prometheus series, declared once, behind a small facade
  (`ProcessorMetrics`) the stream runtime calls on its hot path.
- `logs`: `configure_logging` (JSON lines or readable text) and the per-message log
  context (media id, event id, stage, worker, trace id) that follows a message into the
  threads its stages run on (`in_context`).
- `tracing`: OpenTelemetry spans for each message and stage, children of the event's
  `traceparent`; exported over OTLP/HTTP only when an endpoint is configured, otherwise a
  no-op that still carries the trace id on to derived events.
"""

from __future__ import annotations

from visionlog.observability.logs import bind, bound, configure_logging, in_context, log_context
from visionlog.observability.metrics import ProcessorMetrics
from visionlog.observability.tracing import Tracer, configure_tracing

__all__ = [
    "ProcessorMetrics",
    "Tracer",
    "bind",
    "bound",
    "configure_logging",
    "configure_tracing",
    "in_context",
    "log_context",
]
