"""Why an input was refused: one exception type with a stable machine-readable code."""

from __future__ import annotations

from enum import StrEnum

from visionlog.errors import PermanentError


class RejectReason(StrEnum):
    EMPTY = "empty"
    TOO_LARGE = "too_large"
    UNSUPPORTED_TYPE = "unsupported_type"
    EXTENSION_MISMATCH = "extension_mismatch"
    CORRUPT = "corrupt"
    DECOMPRESSION_BOMB = "decompression_bomb"
    DIMENSIONS_TOO_LARGE = "dimensions_too_large"
    ENCRYPTED = "encrypted"
    WRONG_PASSWORD = "wrong_password"
    TOO_MANY_PAGES = "too_many_pages"
    FETCH_FAILED = "fetch_failed"
    FORBIDDEN_URL = "forbidden_url"
    TIMEOUT = "timeout"


class MediaRejectedError(PermanentError, ValueError):
    """The input cannot be accepted; `reason` is stable, the message says exactly why.

    Permanent: the same bytes fail the same way every time, so a stage dead-letters them at
    once and a client gets a 4xx. Still a ValueError, which callers have always caught."""

    def __init__(self, reason: RejectReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message

    def __str__(self) -> str:
        return f"{self.reason.value}: {self.message}"
