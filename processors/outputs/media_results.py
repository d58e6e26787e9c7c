"""Accumulates every stored result of one media item for the combined report.

`add` is idempotent (an event id seen before changes nothing) and independent of arrival
order: per item and event type the latest result wins (by occurred_at, then event id), so
a reprocessed item shows the newest model's results. Track updates fold into one row per
track. The state round-trips through JSON.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from processors.outputs.items import (
    box_tuple,
    event_id,
    event_type,
    item_sort_key,
    item_title,
)
from processors.outputs.summaries import ITEM_RESULT_TYPES, RESULT_TYPES, Summary, summarise
from processors.stage import item_label

_STATE_VERSION = 1
# What a result tells about its item; `image` (the BlobRef) lets a report show a thumbnail.
_REF_FIELDS = ("page_number", "frame_index", "frame_timestamp_ms", "camera_id", "image")


@dataclass(frozen=True)
class ItemResults:
    """The latest result of each kind for one page, frame or the original."""

    label: str
    title: str
    ref: dict[str, Any]
    results: dict[str, Summary]


def _newer(candidate: Mapping[str, Any], current: Mapping[str, Any]) -> bool:
    return (candidate["occurred_at_ms"], candidate["event_id"]) > (
        current["occurred_at_ms"],
        current["event_id"],
    )


class MediaResults:
    def __init__(self, media_id: str) -> None:
        if not media_id:
            raise ValueError("media_id is required")
        self.media_id = media_id
        self._seen: set[str] = set()
        self._items: dict[str, dict[str, Any]] = {}
        self._tracks: dict[int, dict[str, Any]] = {}

    def add(self, event: Mapping[str, Any]) -> bool:
        """Folds one result event in; returns False when it was seen before."""
        kind = event_type(event)
        if kind not in RESULT_TYPES:
            raise ValueError(f"{kind} is not a result event; expected one of {RESULT_TYPES}")
        if str(event["media_id"]) != self.media_id:
            raise ValueError(
                f"event {event_id(event)} belongs to media {event['media_id']}, not {self.media_id}"
            )
        identifier = event_id(event)
        if identifier in self._seen:
            return False
        self._seen.add(identifier)
        if kind == "TrackUpdated":
            self._add_tracks(event)
            return True
        item = event["item"]
        label = item_label(item)
        entry = self._items.setdefault(
            label, {"ref": {name: item.get(name) for name in _REF_FIELDS}, "results": {}}
        )
        summary = summarise(event)
        current = entry["results"].get(kind)
        if current is None or _newer(summary, current):
            entry["results"][kind] = summary
        return True

    def _add_tracks(self, event: Mapping[str, Any]) -> None:
        frame = event["item"].get("frame_index")
        frame_index = int(frame) if frame is not None else 0
        for track in event["tracks"]:
            track_id = int(track["track_id"])
            update = {
                "track_id": track_id,
                "class_name": str(track["class_name"]),
                "state": str(getattr(track["state"], "value", track["state"])),
                "box": [round(value, 1) for value in box_tuple(track["box"])],
                "last_frame_index": frame_index,
                "event_id": event_id(event),
            }
            row = self._tracks.get(track_id)
            if row is None:
                row = {**update, "first_frame_index": int(track["first_frame_index"]), "hits": 0}
                self._tracks[track_id] = row
            row["first_frame_index"] = min(
                row["first_frame_index"], int(track["first_frame_index"])
            )
            row["hits"] = max(row["hits"], int(track["hits"]))
            if (frame_index, update["event_id"]) >= (row["last_frame_index"], row["event_id"]):
                row.update(update)

    def items(self) -> list[ItemResults]:
        """Items in document order: the original, then pages, then frames."""
        ordered = sorted(self._items.items(), key=lambda pair: item_sort_key(pair[1]["ref"]))
        return [
            ItemResults(
                label=label,
                title=item_title(entry["ref"]),
                ref=dict(entry["ref"]),
                results={
                    kind: entry["results"][kind]
                    for kind in ITEM_RESULT_TYPES
                    if kind in entry["results"]
                },
            )
            for label, entry in ordered
        ]

    def tracks(self) -> list[dict[str, Any]]:
        return [dict(self._tracks[track_id]) for track_id in sorted(self._tracks)]

    def source_event_ids(self) -> list[str]:
        """Ids of the events the current state shows (latest results and track updates)."""
        ids = {
            summary["event_id"]
            for entry in self._items.values()
            for summary in entry["results"].values()
        }
        ids.update(row["event_id"] for row in self._tracks.values())
        return sorted(ids)

    def seen_count(self) -> int:
        return len(self._seen)

    def to_json(self) -> bytes:
        state = {
            "version": _STATE_VERSION,
            "media_id": self.media_id,
            "seen": sorted(self._seen),
            "items": self._items,
            "tracks": [self._tracks[track_id] for track_id in sorted(self._tracks)],
        }
        return json.dumps(state, sort_keys=True, separators=(",", ":")).encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes | str) -> MediaResults:
        state = json.loads(data)
        if not isinstance(state, dict) or state.get("version") != _STATE_VERSION:
            raise ValueError(f"unsupported MediaResults state (expected version {_STATE_VERSION})")
        results = cls(str(state["media_id"]))
        results._seen = set(state["seen"])
        results._items = dict(state["items"])
        results._tracks = {int(row["track_id"]): dict(row) for row in state["tracks"]}
        return results

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MediaResults):
            return NotImplemented
        return self.to_json() == other.to_json()

    __hash__ = None  # type: ignore[assignment]
