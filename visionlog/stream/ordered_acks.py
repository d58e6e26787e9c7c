"""Acknowledgements handed to a consumer in each partition's log order.

A worker finishes messages out of order (several in flight, live frames ahead of batch
work), but a consumer that commits "the highest acknowledged offset" must never be told
of a message while an earlier one of its partition is still running. faust's consumer
(0.15) does not guarantee that on its own: before its first commit on a partition, and
when exactly one offset is missing after the committed one, it commits past the hole, so
a crash loses the message in the hole (measured: one upload of 80 never detected after a
worker was killed mid-batch with two messages in flight).

`OrderedAcks` keeps, per partition, the messages in the order they were admitted and
releases a message only when it and every message admitted before it are finished. A
partition taken away (revoked) or read again from an earlier position (a new assignment)
drops its old entries unreleased: the next owner reads them again.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from visionlog.stream.checkpoint import TopicPartitionKey

T = TypeVar("T")


@dataclass
class _Entry(Generic[T]):
    offset: int
    item: T
    finished: bool = False


@dataclass
class _Lane(Generic[T]):
    entries: deque[_Entry[T]] = field(default_factory=deque)
    last_offset: int = -1


class AckTicket(Generic[T]):
    """One admitted message; give it back to `OrderedAcks.finish`."""

    __slots__ = ("_entry", "_lane", "position")

    def __init__(self, position: TopicPartitionKey, lane: _Lane[T], entry: _Entry[T]) -> None:
        self.position = position
        self._lane = lane
        self._entry = entry


class OrderedAcks(Generic[T]):
    """Per partition, releases finished messages only as a contiguous prefix of admission."""

    def __init__(self) -> None:
        self._lanes: dict[TopicPartitionKey, _Lane[T]] = {}

    def admit(self, position: TopicPartitionKey, offset: int, item: T) -> AckTicket[T]:
        """Register a message as it is read; messages of a partition arrive in log order."""
        lane = self._lanes.get(position)
        if lane is None or offset <= lane.last_offset:
            # First message, or the partition is read again from an earlier position
            # (reassigned after a rebalance): what was admitted before is not ours to ack.
            lane = _Lane()
            self._lanes[position] = lane
        lane.last_offset = offset
        entry = _Entry(offset, item)
        lane.entries.append(entry)
        return AckTicket(position, lane, entry)

    def finish(self, ticket: AckTicket[T]) -> list[T]:
        """Mark a message finished; returns the messages now releasable, in log order."""
        ticket._entry.finished = True
        lane = ticket._lane
        if self._lanes.get(ticket.position) is not lane:
            return []  # admitted under an assignment that has ended
        released: list[T] = []
        while lane.entries and lane.entries[0].finished:
            released.append(lane.entries.popleft().item)
        return released

    def revoke(self, positions: Iterable[TopicPartitionKey]) -> None:
        """Forget partitions this consumer no longer owns."""
        for position in positions:
            self._lanes.pop(position, None)

    def waiting(self) -> int:
        """Messages admitted and not yet released, over all partitions."""
        return sum(len(lane.entries) for lane in self._lanes.values())
