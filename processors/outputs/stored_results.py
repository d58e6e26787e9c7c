"""The results behind a media item's report, one immutable object per result event.

`analysis-artifacts/{media_id}/results/{event_id}.json` holds the event as JSON (times as
epoch milliseconds, bytes as hex). The key is the event id, so storing an event again
writes the same bytes to the same key: idempotent, whichever worker or run does it, with
no shared state to race on. They are read only when a report is rendered.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from processors.outputs.items import event_id
from processors.outputs.media_results import MediaResults
from processors.outputs.summaries import RESULT_TYPES
from visionlog.blobstore import ARTIFACTS, BlobNotFoundError, BlobStore

log = logging.getLogger(__name__)

# Reads of stored results in flight while a report is rendered.
READ_CONCURRENCY = 8
# A safety valve for items with an extreme number of results (many hours of video): the
# report is then built from this many of them, and says so.
LOAD_LIMIT = 50_000


def results_prefix(media_id: str) -> str:
    return f"{media_id}/results/"


def result_key(media_id: str, identifier: str) -> str:
    return f"{results_prefix(media_id)}{identifier}.json"


def json_safe(value: Any) -> Any:
    if isinstance(value, datetime):
        return int(value.timestamp() * 1000)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, Mapping):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    # Enum members (fastavro gives symbols as strings; typed records may give enums).
    return getattr(value, "value", value)


def store_result(blobs: BlobStore, event: Mapping[str, Any]) -> str:
    """Stores one result event under its id; returns the key."""
    key = result_key(str(event["media_id"]), event_id(event))
    body = json.dumps(json_safe(event), sort_keys=True).encode()
    blobs.put_bytes(ARTIFACTS, key, body, "application/json")
    return key


class LoadedResults:
    """What `load_results` found: the folded results and how many were left out."""

    def __init__(self, results: MediaResults, stored: int, skipped: int) -> None:
        self.results = results
        self.stored = stored
        self.skipped = skipped

    def notes(self) -> list[str]:
        notes = []
        if self.stored > LOAD_LIMIT:
            notes.append(f"Built from {LOAD_LIMIT} of {self.stored} stored results.")
        if self.skipped:
            notes.append(f"{self.skipped} stored result(s) could not be read and are left out.")
        return notes


def _read(blobs: BlobStore, key: str) -> dict[str, Any] | None:
    try:
        record = json.loads(blobs.get_object_bytes(ARTIFACTS, key))
    except BlobNotFoundError:
        return None  # erased meanwhile
    except ValueError:
        log.warning("stored result %s is not JSON; left out of the report", key)
        return None
    return record if isinstance(record, dict) else None


def load_results(blobs: BlobStore, media_id: str) -> LoadedResults:
    """Every stored result of `media_id`, folded into one MediaResults (one listing, then
    parallel reads; memory holds compact summaries, not the events)."""
    keys = blobs.list_keys(ARTIFACTS, results_prefix(media_id))
    results = MediaResults(media_id)
    skipped = 0
    with ThreadPoolExecutor(max_workers=READ_CONCURRENCY) as pool:
        for record in pool.map(lambda key: _read(blobs, key), keys[:LOAD_LIMIT]):
            if record is None:
                skipped += 1
                continue
            try:
                kind = str(record["envelope"]["event_type"])
                if kind in RESULT_TYPES:
                    results.add(record)
            except (KeyError, TypeError, ValueError) as error:
                log.warning("stored result of media %s left out of the report: %s", media_id, error)
                skipped += 1
    return LoadedResults(results, len(keys), skipped)
