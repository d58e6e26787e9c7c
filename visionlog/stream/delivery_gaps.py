"""Messages a consumer skipped, found by their offsets, so they can be read again.

A consumer reads each partition in order from its committed position, so the offsets it
delivers are consecutive: the first one after an assignment is the committed offset and
each next one is one more. Measured with faust 0.15 under `bench/faults.py`: after the
processors were killed, the restarted completion worker's first message of a partition
was two past the committed offset. The two uploads in between were never read, their
items never completed, and the partition's commits stopped there for good (faust keeps
them behind the hole). Topics here are neither compacted nor transactional, so such a
jump is a skip, not a gap in the log.

`DeliveryGaps` watches the offsets: on a jump it names the offset to seek back to, and
until that offset arrives the messages after it are passed over (they come again after
the seek). Each target is tried once: when the partition is read again from past it (the
log's start moved past it, retention), the log is taken as it is.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from visionlog.stream.checkpoint import TopicPartitionKey

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Verdict:
    """What to do with one delivered message."""

    process: bool
    # Where to seek the partition back to, when the message showed that some were skipped.
    seek_to: int | None = None


PROCESS = Verdict(True)


class DeliveryGaps:
    """Per partition, the offset the next delivered message should have."""

    def __init__(self, committed: Callable[[TopicPartitionKey], int | None]) -> None:
        # The consumer's committed position (the next offset to read), None when unknown.
        self._committed = committed
        self._next: dict[TopicPartitionKey, int] = {}
        # Per partition being read again: the offset sought and the highest passed over.
        self._seeking: dict[TopicPartitionKey, tuple[int, int]] = {}
        self._tried: set[tuple[TopicPartitionKey, int]] = set()

    def check(self, position: TopicPartitionKey, offset: int) -> Verdict:
        seeking = self._seeking.get(position)
        if seeking is not None:
            target, passed_over = seeking
            if target < offset <= passed_over:
                # Read again from past the target: the seek took effect and the log no
                # longer holds it (retention). Take the log as it is.
                log.warning(
                    "%s/%d: offset %d is no longer in the log; going on from %d",
                    position[0],
                    position[1],
                    target,
                    offset,
                )
            elif offset > target:
                self._seeking[position] = (target, offset)
                return Verdict(False)  # fetched before the seek: it comes again
            del self._seeking[position]
        expected = self._next.get(position)
        if expected is None:
            expected = self._committed(position)
        if expected is not None and offset > expected and (position, expected) not in self._tried:
            self._tried.add((position, expected))
            self._seeking[position] = (expected, offset)
            log.warning(
                "%s/%d: offsets %d-%d were skipped by the consumer; reading them again",
                position[0],
                position[1],
                expected,
                offset - 1,
            )
            return Verdict(False, seek_to=expected)
        # In order, or read again from an earlier position (a seek, a new assignment).
        self._next[position] = offset + 1
        return PROCESS

    def forget(self, positions: Iterable[TopicPartitionKey]) -> None:
        """Partitions revoked: their next assignment starts from the committed position."""
        for position in positions:
            self._next.pop(position, None)
            self._seeking.pop(position, None)
