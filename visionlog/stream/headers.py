"""Kafka headers every event carries: its type, and the W3C trace context.

The type header lets a consumer pass over events it does not handle without decoding them;
`traceparent` carries the trace of the upload (or camera frame) across every derived event,
so one trace shows an item's whole path through the workers.
"""

from __future__ import annotations

import os
import re

from visionlog.stream.messages import Headers

EVENT_TYPE = "event-type"
TRACEPARENT = "traceparent"
# A redriven dead letter names itself and the stage that failed, so a worker reruns only
# that stage (and what follows it) rather than every stage the event feeds.
REDRIVE_OF = "redrive-of"
REDRIVE_STAGE = "redrive-stage"
_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


def new_trace_id() -> str:
    """A random W3C trace id: 32 lower-case hex digits, not all zero."""
    while True:
        value = os.urandom(16).hex()
        if value != "0" * 32:
            return value


def new_span_id() -> str:
    while True:
        value = os.urandom(8).hex()
        if value != "0" * 16:
            return value


def traceparent(trace_id: str, span_id: str | None = None, sampled: bool = True) -> str:
    return f"00-{trace_id}-{span_id or new_span_id()}-{'01' if sampled else '00'}"


def parse_traceparent(value: str | None) -> tuple[str, str] | None:
    """(trace id, parent span id) of a valid W3C traceparent, None otherwise."""
    if not value:
        return None
    match = _TRACEPARENT.match(value.strip().lower())
    if match is None or match.group(1) == "0" * 32 or match.group(2) == "0" * 16:
        return None
    return match.group(1), match.group(2)


def event_headers(event_type: str, trace_id: str | None, span_id: str | None = None) -> Headers:
    headers: list[tuple[str, bytes]] = [(EVENT_TYPE, event_type.encode())]
    if trace_id:
        headers.append((TRACEPARENT, traceparent(trace_id, span_id).encode()))
    return tuple(headers)
