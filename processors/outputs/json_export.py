"""All results of one item as one JSON document with a stable key order."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from enum import Enum
from typing import Any

from processors.outputs.items import event_id, event_type
from processors.stage import item_label


def _json_default(value: object) -> object:
    # Decoded Avro records hold datetimes (timestamp-millis), enums may arrive as Enum
    # members and bytes never should, but must not break the export when they do.
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    raise TypeError(f"cannot serialise {type(value).__name__} to JSON")


def dumps_stable(document: object) -> bytes:
    """UTF-8 JSON with sorted keys, so the same results always give the same bytes."""
    text = json.dumps(
        document,
        sort_keys=True,
        indent=2,
        ensure_ascii=False,
        allow_nan=False,
        default=_json_default,
    )
    return (text + "\n").encode("utf-8")


def render_json(results: Sequence[Mapping[str, Any]]) -> bytes:
    """One document for one item: its ref and every result event, ordered by type and id."""
    if not results:
        raise ValueError("render_json needs at least one result event")
    first = results[0]
    media_ids = {str(result["media_id"]) for result in results}
    labels = {item_label(result["item"]) for result in results}
    if len(media_ids) != 1 or len(labels) != 1:
        raise ValueError(
            f"results of one item expected, got media {sorted(media_ids)} items {sorted(labels)}"
        )
    ordered = sorted(results, key=lambda result: (event_type(result), event_id(result)))
    document: dict[str, Any] = {
        "media_id": first["media_id"],
        "item": item_label(first["item"]),
        "item_ref": first["item"],
        "results": [dict(result) for result in ordered],
    }
    return dumps_stable(document)
