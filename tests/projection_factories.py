"""Wraps contract records as the events a projection receives from the log."""

from __future__ import annotations

import itertools
from typing import Any

from projections.runtime import ProjectedEvent

_offsets = itertools.count()


def projected(
    event_type: str,
    record: dict[str, Any],
    *,
    topic: str = "test.topic",
    partition: int = 0,
    offset: int | None = None,
) -> ProjectedEvent:
    """A ProjectedEvent as the runner would hand it over; offsets increase unless given."""
    return ProjectedEvent(
        event_type=event_type,
        record=record,
        topic=topic,
        partition=partition,
        offset=next(_offsets) if offset is None else offset,
        key=str(record.get("media_id") or record["envelope"]["correlation_id"]),
        timestamp_ms=int(record["envelope"]["occurred_at"].timestamp() * 1000)
        if hasattr(record["envelope"]["occurred_at"], "timestamp")
        else int(record["envelope"]["occurred_at"]),
    )
