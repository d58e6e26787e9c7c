"""Answers serialised once, by the response model's own (compiled) serializer.

A handler that returns a model makes FastAPI validate it against the response model again
before serialising it; for pages of rows that doubled the work. A handler that built its
model from the rows returns `model_response(model)` instead: the same JSON, once.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable

from fastapi import Response
from pydantic import BaseModel

JSON = "application/json"


def model_json(model: BaseModel) -> bytes:
    """The JSON FastAPI would send for `model` as its response model (by alias)."""
    return model.__pydantic_serializer__.to_json(model, by_alias=True)


def model_response(model: BaseModel, status_code: int = 200) -> Response:
    return Response(content=model_json(model), status_code=status_code, media_type=JSON)


class TtlCache:
    """A small thread-safe map whose entries are fresh for `ttl_s` seconds, least recently
    used dropped beyond `size`. A ttl of 0 keeps nothing.

    When an entry goes stale, the first reader is told to refresh it (`get` answers None)
    while the others keep getting the stale value until it is put again or `ttl_s` more
    seconds pass: under load one request reads the stores, not every request that comes
    in meanwhile (those would all miss at once and queue behind each other)."""

    def __init__(
        self, ttl_s: float, size: int = 1024, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl_s = ttl_s
        self.size = size
        self._clock = clock
        # key -> (fresh until, value, refreshing since or None)
        self._entries: OrderedDict[Hashable, tuple[float, bytes, float | None]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> bytes | None:
        now = self._clock()
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            fresh_until, value, refreshing_since = entry
            if now < fresh_until:
                self._entries.move_to_end(key)
                return value
            if refreshing_since is not None and now < refreshing_since + self.ttl_s:
                return value  # another request is reading it again
            if now >= fresh_until + self.ttl_s and refreshing_since is None:
                del self._entries[key]  # long stale: nobody refreshes, read it again
                return None
            self._entries[key] = (fresh_until, value, now)
            return None

    def put(self, key: Hashable, value: bytes) -> None:
        if self.ttl_s <= 0 or self.size <= 0:
            return
        with self._lock:
            self._entries[key] = (self._clock() + self.ttl_s, value, None)
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def discard(self, key: Hashable) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def __len__(self) -> int:
        return len(self._entries)
