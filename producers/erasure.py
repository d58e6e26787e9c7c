"""Erasure requests: one `MediaDeleted` per media item, keyed by its media id.

The event names the blobs the requester knows belong to the item (its original, unless
another live item shares those bytes). On the log it reaches every read model (each removes
the item's rows, documents and points and keeps a tombstone) and the erasure stage of the
processors (`processors.erasure`), which deletes those blobs and everything stored under the
item's own prefix in the derived buckets.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from producers.ingest import PRODUCER_VERSION
from visionlog.contracts import MediaDeleted
from visionlog.envelope import Envelope
from visionlog.kafka import EventPublisher
from visionlog.schemas import get_catalog

PRODUCER = f"producers.erasure/{PRODUCER_VERSION}"
ErasureReason = Literal["user_request", "owner_erasure", "retention_expired"]


@dataclass(frozen=True)
class ErasureRequest:
    media_id: str
    tenant_id: str
    owner_id: str | None
    requested_by: str
    reason: ErasureReason = "user_request"
    # "bucket/key" of each blob to delete besides the item's own prefixes.
    blob_keys: Sequence[str] = field(default_factory=tuple)


def erasure_record(request: ErasureRequest) -> MediaDeleted:
    envelope = Envelope(
        event_type="MediaDeleted",
        schema_version=get_catalog().event("MediaDeleted").version,
        producer=PRODUCER,
        correlation_id=request.media_id,
        tenant_id=request.tenant_id,
        owner_id=request.owner_id,
    )
    return {
        "envelope": envelope.as_record(),
        "media_id": request.media_id,
        "reason": request.reason,
        "requested_by": request.requested_by,
        "blob_keys": sorted(set(request.blob_keys)),
    }


def request_erasure(publisher: EventPublisher, request: ErasureRequest) -> str:
    """Publish the item's `MediaDeleted` (acknowledged by the brokers); returns its event id."""
    record = erasure_record(request)
    publisher.publish("MediaDeleted", dict(record), key=request.media_id)
    publisher.flush()
    return str(record["envelope"]["event_id"])
