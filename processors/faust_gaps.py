"""Messages a faust worker's consumer skipped, read again (see visionlog.stream.delivery_gaps)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import faust

from visionlog.stream.checkpoint import TopicPartitionKey
from visionlog.stream.delivery_gaps import DeliveryGaps


def when_revoked(app: faust.App, forget: Callable[[list[TopicPartitionKey]], None]) -> None:
    """Calls `forget` with the partitions each rebalance takes from this worker."""

    def on_revoked(_sender: Any, /, *args: Any, **_kwargs: Any) -> None:
        revoked: Iterable[Any] = args[0] if args else ()
        forget([(tp.topic, tp.partition) for tp in revoked])

    app.on_partitions_revoked.connect(on_revoked)


class SkippedMessages:
    """Checks each message an agent takes; on a skip, seeks its partition back."""

    def __init__(self, app: faust.App) -> None:
        self.app = app
        self.gaps = DeliveryGaps(self._committed)
        when_revoked(app, self.gaps.forget)

    def _committed(self, position: TopicPartitionKey) -> int | None:
        # faust's own record of each partition's committed position (the next offset to
        # read), filled when partitions are assigned and after each commit.
        offsets = getattr(self.app.consumer, "_committed_offset", {})
        value = offsets.get(position)
        return int(value) if value is not None else None

    async def take(self, message: Any) -> bool:
        """True when the agent should process `message`; False when it comes again later."""
        verdict = self.gaps.check((message.topic, message.partition), message.offset)
        if verdict.seek_to is not None:
            await self.app.consumer.seek(message.tp, verdict.seek_to)
        return verdict.process
