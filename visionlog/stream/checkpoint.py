"""Checkpoints: when a consumer may commit its position.

An offset may be committed only after the message and every message before it on its
partition are finished, and "finished" means every event derived from it was acknowledged
by the brokers. Messages finish out of order when they are processed concurrently, so the
tracker keeps, per partition, the offsets handed out and the ones finished, and the
committable position is the first offset not yet finished. Commits are batched by a
policy (every N messages or T seconds), never one per message.

The faust workers commit through faust's consumer (acknowledged offsets after a producer
flush, on the same policy), and hand it their acknowledgements in log order
(`visionlog.stream.ordered_acks`), since faust alone may commit past one unfinished
message; projections and replay jobs use this tracker with confluent-kafka consumers.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable
from dataclasses import dataclass, field

TopicPartitionKey = tuple[str, int]


@dataclass(frozen=True)
class CommitPolicy:
    every_messages: int = 500
    every_s: float = 1.0


@dataclass
class _Partition:
    # Offsets handed out and not yet finished, as a heap; and finished ones beyond the
    # lowest unfinished offset.
    pending: list[int] = field(default_factory=list)
    finished: set[int] = field(default_factory=set)
    next_offset: int | None = None


class OffsetTracker:
    """Per-partition positions of concurrently processed messages."""

    def __init__(
        self, policy: CommitPolicy | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.policy = policy or CommitPolicy()
        self.clock = clock
        self._partitions: dict[TopicPartitionKey, _Partition] = {}
        self._committed: dict[TopicPartitionKey, int] = {}
        self._since_commit = 0
        self._last_commit = clock()

    def started(self, position: TopicPartitionKey, offset: int) -> None:
        heapq.heappush(self._partitions.setdefault(position, _Partition()).pending, offset)

    def finished(self, position: TopicPartitionKey, offset: int) -> None:
        partition = self._partitions.setdefault(position, _Partition())
        partition.finished.add(offset)
        # Advance past every finished offset at the head of the pending heap.
        while partition.pending and partition.pending[0] in partition.finished:
            head = heapq.heappop(partition.pending)
            partition.finished.discard(head)
            partition.next_offset = head + 1
        if not partition.pending and partition.finished:
            # Everything handed out is done (also offsets never handed out in between,
            # such as transaction markers): the position is past the highest one.
            partition.next_offset = max(partition.finished) + 1
            partition.finished.clear()
        self._since_commit += 1

    def committable(self) -> dict[TopicPartitionKey, int]:
        """Next offsets that may be committed and differ from the last commit."""
        out: dict[TopicPartitionKey, int] = {}
        for position, partition in self._partitions.items():
            offset = partition.next_offset
            if offset is not None and self._committed.get(position) != offset:
                out[position] = offset
        return out

    def due(self) -> bool:
        """Whether the policy says it is time to commit."""
        if self._since_commit >= self.policy.every_messages:
            return True
        return self._since_commit > 0 and self.clock() - self._last_commit >= self.policy.every_s

    def committed(self, offsets: dict[TopicPartitionKey, int]) -> None:
        self._committed.update(offsets)
        self._since_commit = 0
        self._last_commit = self.clock()

    def in_flight(self) -> int:
        return sum(len(p.pending) for p in self._partitions.values())

    def forget(self, position: TopicPartitionKey) -> None:
        """Drop a partition (revoked from this consumer)."""
        self._partitions.pop(position, None)
        self._committed.pop(position, None)
