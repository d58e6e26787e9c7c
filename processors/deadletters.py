"""Dead letters: browse the `deadletter` topic and redrive what failed.

A `ProcessingFailed` record keeps the failed message's raw key and value and where it was
read, so once the cause is gone (a store is back, a bug is fixed) the same bytes can go back
onto the same topic: every consumer group of that topic reads them again and, as derived
event ids are deterministic, whatever had already been stored deduplicates.

Browsing (`processors.deadletter_log` reads the topic) orders matching records newest first
by their `occurred_at` (then partition and offset); only the requested page is held in
memory, and an opaque cursor (the sort key of the page's last record) continues below it,
stable while new dead letters arrive.

Redriving claims each dead letter in the redrive ledger (`processors.redrive_ledger`) before
it publishes anything, so it is redriven once, even by two admins at the same moment; again
only when forced. Permanent failures are refused unless asked for; part failures (a page of
a document) and rejected inputs have no message to re-publish and are skipped, each with
the precise reason.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from confluent_kafka import KafkaException

from processors.deadletter_log import (
    SCAN_TIMEOUT_S,
    UNKNOWN_TENANT,
    CursorError,
    DeadLetter,
    DeadLetterError,
    DeadLetterFilter,
    DeadLetterLog,
    DeadLetterLogUnavailableError,
    Position,
    ScanStats,
    decode_cursor,
    encode_cursor,
    parse_time,
    utc_stamp,
)
from processors.redrive_ledger import RedriveLedger, RedriveRecord
from visionlog.blobstore import BlobStore
from visionlog.codec import AvroCodec
from visionlog.errors import PermanentError
from visionlog.kafka import EventPublisher, admin_client
from visionlog.settings import KafkaSettings
from visionlog.stream.headers import REDRIVE_OF, REDRIVE_STAGE, event_headers, traceparent

__all__ = [
    "MAX_LIMIT",
    "REDRIVE_OF",
    "REDRIVE_STAGE",
    "UNKNOWN_TENANT",
    "CursorError",
    "DeadLetter",
    "DeadLetterError",
    "DeadLetterFilter",
    "DeadLetterLog",
    "DeadLetterLogUnavailableError",
    "DeadLetters",
    "Listed",
    "Page",
    "Position",
    "RedriveLedger",
    "RedriveRecord",
    "RedriveReport",
    "RedriveSelection",
    "Redriven",
    "SkipReason",
    "Skipped",
    "parse_time",
    "summarise_skips",
]

MAX_LIMIT = 500


@dataclass(frozen=True)
class Listed:
    letter: DeadLetter
    redrive: RedriveRecord | None


@dataclass
class Page:
    items: list[Listed]
    next_cursor: str | None
    # Records read, records matching the filter (on every page), records that would not decode.
    scanned: int = 0
    total: int = 0
    unreadable: int = 0


# ---------------------------------------------------------------------------- redrive


@dataclass(frozen=True)
class RedriveSelection:
    """Dead letters to redrive: by id, by filter, or every retryable one (explicit consent)."""

    event_ids: tuple[str, ...] = ()
    stages: frozenset[str] = frozenset()
    media_ids: frozenset[str] = frozenset()
    all_retryable: bool = False
    include_permanent: bool = False
    force: bool = False
    tenants: frozenset[str] | None = None

    def validate(self) -> None:
        if not (self.event_ids or self.stages or self.media_ids or self.all_retryable):
            raise DeadLetterError(
                "choose the dead letters to redrive: name their event ids, filter by stage "
                "or media id, or select every retryable one (all-retryable)"
            )
        if self.all_retryable and self.include_permanent:
            raise DeadLetterError(
                "all-retryable selects retryable dead letters only; to redrive permanent ones, "
                "name them by id, stage or media id with include-permanent"
            )

    def filter(self) -> DeadLetterFilter:
        return DeadLetterFilter(
            event_ids=frozenset(self.event_ids),
            stages=self.stages,
            media_ids=self.media_ids,
            retryable=True if self.all_retryable else None,
            tenants=self.tenants,
        )


SkipReason = Literal[
    "not_found",
    "part_failure",
    "rejected_input",
    "permanent",
    "already_redriven",
    "in_progress",
    "topic_missing",
    "publish_failed",
]


@dataclass(frozen=True)
class Skipped:
    event_id: str
    reason: SkipReason
    detail: str
    media_id: str | None = None
    stage: str | None = None


@dataclass(frozen=True)
class Redriven:
    event_id: str
    media_id: str | None
    stage: str
    event_type: str | None
    # Where the bytes went; None on a dry run.
    target: Position | None
    key: bytes
    headers: tuple[tuple[str, bytes], ...]


@dataclass
class RedriveReport:
    dry_run: bool
    redriven: list[Redriven] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    scanned: int = 0


class DeadLetters:
    """Browse and redrive: the dead-letter topic, the redrive ledger and a publisher."""

    def __init__(
        self,
        log: DeadLetterLog,
        ledger: RedriveLedger,
        publisher: EventPublisher | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.log = log
        self.ledger = ledger
        self.publisher = publisher
        self._clock: Callable[[], datetime] = clock or (lambda: datetime.now(UTC))

    @classmethod
    def create(
        cls,
        kafka: KafkaSettings,
        codec: AvroCodec,
        blobs: BlobStore,
        publisher: EventPublisher | None = None,
        timeout_s: float = SCAN_TIMEOUT_S,
    ) -> DeadLetters:
        return cls(DeadLetterLog(kafka, codec, timeout_s), RedriveLedger(blobs), publisher)

    def now(self) -> datetime:
        return self._clock()

    # ------------------------------------------------------------ browse

    def browse(
        self, selected: DeadLetterFilter, limit: int = 50, cursor: str | None = None
    ) -> Page:
        """One page of matching dead letters, newest first."""
        if not 1 <= limit <= MAX_LIMIT:
            raise DeadLetterError(f"limit must be between 1 and {MAX_LIMIT}, got {limit}")
        below = decode_cursor(cursor) if cursor else None
        stats = ScanStats()
        # A min-heap of the newest limit + 1 (one more tells whether a next page exists).
        newest: list[tuple[tuple[int, int, int], str, DeadLetter]] = []
        seen: set[str] = set()
        total = 0
        for letter in self.log.scan(selected.since, stats):
            # A redelivered failure dead-letters again under the same id: show it once.
            if letter.event_id in seen or not selected.matches(letter):
                continue
            seen.add(letter.event_id)
            total += 1
            key = letter.sort_key
            if below is not None and key >= below:
                continue
            entry = (key, letter.event_id, letter)
            if len(newest) <= limit:
                heapq.heappush(newest, entry)
            elif key > newest[0][0]:
                heapq.heapreplace(newest, entry)
        ordered = [entry[2] for entry in sorted(newest, key=lambda e: e[0], reverse=True)]
        more = len(ordered) > limit
        ordered = ordered[:limit]
        redriven = self.ledger.ids() if ordered else set()
        items = [
            Listed(
                letter, self.ledger.get(letter.event_id) if letter.event_id in redriven else None
            )
            for letter in ordered
        ]
        return Page(
            items=items,
            next_cursor=encode_cursor(ordered[-1].sort_key) if more and ordered else None,
            scanned=stats.scanned,
            total=total,
            unreadable=stats.unreadable,
        )

    def find(self, event_id: str, tenants: frozenset[str] | None = None) -> Listed | None:
        """One dead letter by its event id (the first record under it), with its redrive."""
        for letter in self.log.scan():
            if letter.event_id == event_id:
                if tenants is not None and letter.tenant_id not in tenants:
                    return None
                return Listed(letter, self.ledger.get(event_id))
        return None

    # ------------------------------------------------------------ redrive

    def redrive(
        self, selection: RedriveSelection, requested_by: str, dry_run: bool = False
    ) -> RedriveReport:
        """Re-publish the selected dead letters' failed messages to their topics, oldest first."""
        selection.validate()
        if not dry_run and self.publisher is None:
            raise DeadLetterError("a redrive needs a publisher")
        chosen = selection.filter()
        report = RedriveReport(dry_run=dry_run)
        stats = ScanStats()
        letters: dict[str, DeadLetter] = {}
        for letter in self.log.scan(None, stats):
            if chosen.matches(letter) and letter.event_id not in letters:
                letters[letter.event_id] = letter
        report.scanned = stats.scanned
        for event_id in selection.event_ids:
            if event_id not in letters:
                report.skipped.append(
                    Skipped(
                        event_id, "not_found", f"no dead letter {event_id!r} in {self.log.topic}"
                    )
                )
        topics = self._topics() if letters else set()
        for letter in sorted(letters.values(), key=lambda item: item.sort_key):
            refused = self._refusal(letter, selection)
            if refused is not None:
                report.skipped.append(refused)
                continue
            self._redrive_one(letter, selection, requested_by, dry_run, topics, report)
        return report

    def _topics(self) -> set[str]:
        try:
            return set(admin_client(self.log.kafka).list_topics(timeout=10).topics)
        except KafkaException as exc:
            raise DeadLetterLogUnavailableError(f"the brokers did not answer: {exc}") from exc

    def _refusal(self, letter: DeadLetter, selection: RedriveSelection) -> Skipped | None:
        def skip(reason: SkipReason, detail: str) -> Skipped:
            return Skipped(letter.event_id, reason, detail, letter.media_id, letter.stage)

        if letter.failed_value is None or letter.failed_topic is None:
            if letter.failed_event_type is not None:
                cause = letter.causation_id or "its input event"
                return skip(
                    "part_failure",
                    f"a part failure of stage {letter.stage} ({letter.error_message}): the stage "
                    f"processed its input {letter.failed_event_type} {cause} and only this part "
                    f"failed, so there is no failed message to re-publish; {_retry_hint(letter)}",
                )
            return skip(
                "rejected_input",
                f"an input rejected by {letter.processor} before any event existed "
                f"({letter.error_type}: {letter.error_message}); there is nothing to "
                "re-publish: submit the input again",
            )
        if not letter.retryable and not selection.include_permanent:
            return skip(
                "permanent",
                f"a permanent failure ({letter.error_type}: {letter.error_message}) that "
                "would fail the same way again; redrive it with include-permanent once its "
                "cause is fixed",
            )
        return None

    def _redrive_one(
        self,
        letter: DeadLetter,
        selection: RedriveSelection,
        requested_by: str,
        dry_run: bool,
        topics: set[str],
        report: RedriveReport,
    ) -> None:
        def skip(reason: SkipReason, detail: str) -> None:
            report.skipped.append(
                Skipped(letter.event_id, reason, detail, letter.media_id, letter.stage)
            )

        assert letter.failed_topic is not None and letter.failed_value is not None
        now = self.now()
        previous = self.ledger.get(letter.event_id)
        if previous is not None and not selection.force:
            if previous.state == "redriven":
                where = f" to {previous.target}" if previous.target else ""
                when = utc_stamp(previous.redriven_at or previous.requested_at)
                skip(
                    "already_redriven",
                    f"redriven{where} at {when} by {previous.requested_by or 'unknown'}; "
                    "force a redrive to send it again",
                )
                return
            if not previous.stale(now):
                skip(
                    "in_progress",
                    f"a redrive by {previous.requested_by or 'unknown'} claimed it at "
                    f"{utc_stamp(previous.requested_at)} and has not confirmed it yet",
                )
                return
        event_type, headers = self._headers(letter)
        key = (
            letter.failed_key if letter.failed_key is not None else (letter.media_id or "").encode()
        )
        if letter.failed_topic not in topics:
            skip("topic_missing", f"its topic {letter.failed_topic} does not exist any more")
            return
        if dry_run:
            report.redriven.append(
                Redriven(
                    letter.event_id, letter.media_id, letter.stage, event_type, None, key, headers
                )
            )
            return
        claim = self.ledger.claim(letter, requested_by, previous, now)
        if claim is None:
            skip("in_progress", "another redrive claimed it at the same moment")
            return
        assert self.publisher is not None
        try:
            self.publisher.publish_bytes(letter.failed_topic, key, letter.failed_value, headers)
            delivered = self.publisher.flush()
        except Exception as exc:  # any failure to publish: undo the claim, report, go on
            self.ledger.release(claim, previous)
            skip("publish_failed", f"{type(exc).__name__}: {exc}")
            return
        mine = [item for item in delivered if item.topic == letter.failed_topic]
        target = (
            Position(mine[-1].topic, mine[-1].partition, mine[-1].offset)
            if mine
            else Position(letter.failed_topic, -1, -1)
        )
        self.ledger.confirm(claim, target, self.now())
        report.redriven.append(
            Redriven(
                letter.event_id, letter.media_id, letter.stage, event_type, target, key, headers
            )
        )

    def _headers(self, letter: DeadLetter) -> tuple[str | None, tuple[tuple[str, bytes], ...]]:
        """The failed event's type and trace (from the dead letter, else from the bytes),
        and which dead letter this redrive is of."""
        event_type, trace_id = letter.failed_event_type, letter.trace_id
        if event_type is None or trace_id is None:
            try:
                decoded = self.log.codec.decode(letter.failed_value)
            except PermanentError:
                decoded = None
            if decoded is not None:
                event_type = event_type or decoded.event_type
                trace = (decoded.record.get("envelope") or {}).get("trace_id")
                trace_id = trace_id or (str(trace) if trace else None)
        headers: list[tuple[str, bytes]] = []
        if event_type is not None:
            headers.extend(event_headers(event_type, trace_id))
        elif trace_id is not None:
            headers.append(("traceparent", traceparent(trace_id).encode()))
        headers.append((REDRIVE_OF, letter.event_id.encode()))
        headers.append((REDRIVE_STAGE, letter.stage.encode()))
        return event_type, tuple(headers)


def _retry_hint(letter: DeadLetter) -> str:
    """How to retry a part failure instead: reprocess its item where its stage can be."""
    from processors.reprocess.request import reprocessable_stages

    media = letter.media_id or "(unknown)"
    if letter.stage in reprocessable_stages():
        return (
            f"retry it by reprocessing media item {media} "
            f"(visionlog replay reprocess --stage {letter.stage} --media {media})"
        )
    return f"stage {letter.stage} cannot be reprocessed; upload the item again (media item {media})"


def summarise_skips(skipped: Iterable[Skipped]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for item in skipped:
        counts[item.reason] = counts.get(item.reason, 0) + 1
    return counts
