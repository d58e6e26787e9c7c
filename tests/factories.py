"""Valid sample events for any contract, generated from the schema itself."""

from __future__ import annotations

import uuid
from typing import Any

from fastavro.utils import generate_one

from visionlog.envelope import Envelope
from visionlog.schemas import SchemaCatalog


def sample_event(catalog: SchemaCatalog, name: str, **fields: Any) -> dict[str, Any]:
    schema = catalog.event(name)
    record: dict[str, Any] = generate_one(schema.parsed)
    media_id = str(fields.get("media_id") or uuid.uuid4())
    if "media_id" in record:
        record["media_id"] = media_id
    record.update(fields)
    record["envelope"] = Envelope(
        event_type=name,
        schema_version=schema.version,
        producer="tests/0",
        correlation_id=media_id,
        tenant_id="tests",
    ).as_record()
    return record
