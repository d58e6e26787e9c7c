"""Processing profiles: which stages analyse an upload, a video's frames or a camera's frames.

An upload names its profile (`ocr`, `vision`, `full`); its pages and sampled frames follow
it. A camera names one of the live profiles; live analysis is kept small on purpose, since
every camera frame is analysed against a deadline (see `processors.admission`). Producers,
processors and the completion processor read the same table, so what is expected of an item
and what is done to it cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

UPLOAD_PROFILES = ("ocr", "vision", "full")
CAMERA_PROFILES = ("live", "live-anonymised", "live-full")
DEFAULT_UPLOAD_PROFILE = "full"
DEFAULT_CAMERA_PROFILE = "live"

_DOCUMENT = frozenset({"render", "ocr", "pii", "text-embedding"})
_VISION = frozenset({"render", "detection", "tracking", "scene"})
_SHARED = frozenset({"codes", "anonymise", "image-embedding", "outputs", "report"})
_LIVE = frozenset({"detection", "tracking", "scene"})

STAGES_BY_PROFILE: Mapping[str, frozenset[str]] = {
    "ocr": _DOCUMENT | _SHARED,
    "vision": _VISION | _SHARED,
    "full": _DOCUMENT | _VISION | _SHARED,
    "live": _LIVE,
    "live-anonymised": _LIVE | {"anonymise"},
    "live-full": _LIVE | {"codes", "anonymise", "image-embedding"},
}


class UnknownProfileError(ValueError):
    pass


def check_profile(profile: str, allowed: tuple[str, ...] = UPLOAD_PROFILES) -> str:
    if profile not in allowed:
        raise UnknownProfileError(
            f"unknown profile {profile!r}; choose one of {', '.join(allowed)}"
        )
    return profile


def event_profile(event: Mapping[str, Any]) -> str | None:
    """The profile an input event asks for, or None where the event carries none (pages
    and derived results follow their item, whose every stage decides by itself)."""
    event_type = event["envelope"]["event_type"]
    if event_type == "MediaUploaded":
        return str(event["profile"])
    if event_type == "FrameCaptured":
        chosen = event.get("profile")
        if chosen:
            return str(chosen)
        return DEFAULT_CAMERA_PROFILE if event.get("camera_id") else DEFAULT_UPLOAD_PROFILE
    return None


def stage_wanted(stage: str, event: Mapping[str, Any]) -> bool:
    """Whether the event's profile includes `stage` (always true where it has none)."""
    profile = event_profile(event)
    if profile is None:
        return True
    stages = STAGES_BY_PROFILE.get(profile)
    if stages is None:
        # An unknown profile on the log (a newer producer) gets everything, never nothing.
        return True
    return stage in stages


def is_live_frame(event: Mapping[str, Any]) -> bool:
    """A frame of a live camera: analysed against a deadline, newest frame first."""
    return event["envelope"]["event_type"] == "FrameCaptured" and bool(event.get("camera_id"))
