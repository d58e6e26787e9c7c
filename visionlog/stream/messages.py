"""One message read from the log, independent of the client library that read it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

Headers = tuple[tuple[str, bytes], ...]


def normalise_headers(raw: Any) -> Headers:
    """Headers as (name, bytes) pairs from confluent-kafka's list, aiokafka's tuples or a dict."""
    if not raw:
        return ()
    items: Sequence[tuple[str, Any]] = list(raw.items()) if isinstance(raw, dict) else list(raw)
    pairs = []
    for name, value in items:
        if value is None:
            continue
        pairs.append((str(name), value if isinstance(value, bytes) else str(value).encode()))
    return tuple(pairs)


@dataclass(frozen=True)
class InboundMessage:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers = field(default=())
    # Kafka timestamp (create time) in milliseconds; 0 where unknown.
    timestamp_ms: int = 0

    @classmethod
    def from_kafka(cls, message: Any) -> InboundMessage:
        """From a confluent-kafka `Message`."""
        timestamp = message.timestamp()
        return cls(
            message.topic() or "",
            message.partition() or 0,
            message.offset() or 0,
            message.key(),
            message.value(),
            normalise_headers(message.headers()),
            int(timestamp[1]) if timestamp and timestamp[1] > 0 else 0,
        )

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key == name:
                return value.decode("utf-8", "replace")
        return None

    @property
    def key_text(self) -> str | None:
        return self.key.decode("utf-8", "replace") if self.key is not None else None

    @property
    def position(self) -> tuple[str, int]:
        return (self.topic, self.partition)
