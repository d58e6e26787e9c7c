"""The envelope every event carries, and deterministic event ids."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from visionlog import contracts
from visionlog.schemas import get_catalog

# Fixed namespace for UUIDv5 event ids: the same inputs give the same id on every run,
# so a reprocessed event can be recognised downstream as the one seen before.
EVENT_ID_NAMESPACE = uuid.UUID("6f1b7a52-3c8e-5d0f-9a41-2b7c0e9d4f13")

_TRACE_ID = re.compile(r"^[0-9a-f]{32}$")


def deterministic_event_id(event_type: str, *parts: object) -> str:
    """UUIDv5 over the event type and the identity of its inputs (e.g. causation id, model)."""
    if not parts:
        raise ValueError("a deterministic event id needs at least one identifying part")
    name = "\x1f".join([event_type, *(str(part) for part in parts)])
    return str(uuid.uuid5(EVENT_ID_NAMESPACE, name))


def now_millis() -> datetime:
    """Current UTC time truncated to milliseconds, the resolution of occurred_at."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


@dataclass(frozen=True)
class Envelope:
    event_type: str
    schema_version: int
    producer: str
    correlation_id: str
    tenant_id: str
    event_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    occurred_at: datetime = field(default_factory=now_millis)
    causation_id: str | None = None
    owner_id: str | None = None
    trace_id: str | None = None

    def __post_init__(self) -> None:
        uuid.UUID(self.event_id)  # raises ValueError on a malformed id
        if self.occurred_at.tzinfo is None:
            raise ValueError("occurred_at must be timezone-aware (UTC)")
        if self.trace_id is not None and not _TRACE_ID.match(self.trace_id):
            raise ValueError(f"trace_id must be 32 lower-case hex digits, got {self.trace_id!r}")
        if not self.correlation_id:
            raise ValueError("correlation_id (the media id) is required")

    def as_record(self) -> contracts.Envelope:
        """The envelope as the `Envelope` record every event carries."""
        return {
            "event_id": self.event_id,
            "event_type": self.event_type,
            "schema_version": self.schema_version,
            "occurred_at": self.occurred_at,
            "producer": self.producer,
            "correlation_id": self.correlation_id,
            "causation_id": self.causation_id,
            "tenant_id": self.tenant_id,
            "owner_id": self.owner_id,
            "trace_id": self.trace_id,
        }

    def derive(
        self,
        event_type: str,
        schema_version: int,
        producer: str,
        *identity: object,
    ) -> Envelope:
        """Envelope for an event caused by this one, with a deterministic id."""
        return Envelope(
            event_type=event_type,
            schema_version=schema_version,
            producer=producer,
            correlation_id=self.correlation_id,
            tenant_id=self.tenant_id,
            owner_id=self.owner_id,
            trace_id=self.trace_id,
            causation_id=self.event_id,
            event_id=deterministic_event_id(event_type, self.event_id, *identity),
        )

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Envelope:
        """The envelope of a record; `occurred_at` may also be epoch milliseconds."""
        occurred = record["occurred_at"]
        if isinstance(occurred, int):
            occurred = datetime.fromtimestamp(occurred / 1000, UTC)
        return cls(**{**record, "occurred_at": occurred})


def envelope_caused_by(
    source: Mapping[str, Any], event_type: str, producer: str, *identity: object
) -> contracts.Envelope:
    """Envelope record of an event caused by the event record `source`.

    Its id is deterministic in the source event and the identity parts (model version,
    page number, ...), so reprocessing the same input yields the same id; its schema
    version is the contract's current one.
    """
    parent = Envelope.from_record(source["envelope"])
    version = get_catalog().event(event_type).version
    return parent.derive(event_type, version, producer, *identity).as_record()
