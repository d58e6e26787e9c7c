"""The redrive ledger: which dead letters were redriven, by whom, when and to where.

One JSON record per redriven dead letter, ``analysis-artifacts/redrives/{dead letter id}.json``,
written only with conditional puts: ``If-None-Match: *`` claims a dead letter before anything
is published (of two concurrent redrives, one wins), and ``If-Match`` on the claim's ETag
turns it into ``redriven`` once the brokers acknowledged the re-published message; a failed
publish removes the claim (or restores the record it replaced), so it can be tried again. A
claim left ``pending`` longer than `PENDING_LEASE_S` (its process died between claim and
publish) may be taken over. The record is the audit trail of redrives.

Why the object store: Kafka has no conditional write, and a compacted topic would need a
reader to build its state before every decision; the store decides races durably in one
request.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal

from minio.error import S3Error

from processors.deadletter_log import DeadLetter, Position
from visionlog.blobstore import ARTIFACTS, BlobStore

LEDGER_PREFIX = "redrives/"
PENDING_LEASE_S = 300.0


@dataclass(frozen=True)
class RedriveRecord:
    """What the ledger holds for a dead letter that was (or is being) redriven."""

    dead_letter_id: str
    state: Literal["pending", "redriven"]
    requested_by: str
    requested_at: datetime
    count: int
    redriven_at: datetime | None = None
    target: Position | None = None
    etag: str = ""

    def as_json(self) -> bytes:
        body = {
            "dead_letter_id": self.dead_letter_id,
            "state": self.state,
            "requested_by": self.requested_by,
            "requested_at": self.requested_at.isoformat(),
            "count": self.count,
            "redriven_at": self.redriven_at.isoformat() if self.redriven_at else None,
            "target": (
                {
                    "topic": self.target.topic,
                    "partition": self.target.partition,
                    "offset": self.target.offset,
                }
                if self.target
                else None
            ),
        }
        return json.dumps(body, sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: dict[str, Any], etag: str) -> RedriveRecord:
        target = raw.get("target")
        redriven_at = raw.get("redriven_at")
        state: Literal["pending", "redriven"] = (
            "redriven" if raw.get("state") == "redriven" else "pending"
        )
        return cls(
            dead_letter_id=str(raw["dead_letter_id"]),
            state=state,
            requested_by=str(raw.get("requested_by") or ""),
            requested_at=datetime.fromisoformat(str(raw["requested_at"])),
            count=int(raw.get("count") or 1),
            redriven_at=datetime.fromisoformat(str(redriven_at)) if redriven_at else None,
            target=(
                Position(str(target["topic"]), int(target["partition"]), int(target["offset"]))
                if isinstance(target, dict)
                else None
            ),
            etag=etag,
        )

    def stale(self, now: datetime) -> bool:
        """A claim whose publisher never confirmed it (it died): may be taken over."""
        return self.state == "pending" and (now - self.requested_at).total_seconds() > (
            PENDING_LEASE_S
        )


# ---------------------------------------------------------------------------- the ledger


class RedriveLedger:
    """One JSON record per redriven dead letter in the object store (see the module doc)."""

    def __init__(
        self, blobs: BlobStore, bucket: str = ARTIFACTS, prefix: str = LEDGER_PREFIX
    ) -> None:
        self.blobs = blobs
        self.bucket = bucket
        self.prefix = prefix

    def key(self, dead_letter_id: str) -> str:
        return f"{self.prefix}{dead_letter_id}.json"

    def ids(self) -> set[str]:
        """Ids of every dead letter with a redrive record (one listing)."""
        return {
            name[len(self.prefix) : -len(".json")]
            for name in self.blobs.list_keys(self.bucket, self.prefix)
            if name.endswith(".json")
        }

    def get(self, dead_letter_id: str) -> RedriveRecord | None:
        try:
            response = self.blobs.client.get_object(self.bucket, self.key(dead_letter_id))
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchBucket", "NoSuchObject"):
                return None
            raise
        try:
            raw = json.load(io.BytesIO(response.read()))
            etag = str(response.headers.get("ETag") or "").strip('"')
        finally:
            response.close()
            response.release_conn()
        return RedriveRecord.from_json(raw, etag)

    def claim(
        self, letter: DeadLetter, requested_by: str, previous: RedriveRecord | None, now: datetime
    ) -> RedriveRecord | None:
        """Claim a dead letter for a redrive; None when another redrive got there first."""
        record = RedriveRecord(
            dead_letter_id=letter.event_id,
            state="pending",
            requested_by=requested_by,
            requested_at=now,
            count=(previous.count + 1) if previous and previous.state == "redriven" else 1,
        )
        etag = self.blobs.put_if(
            self.bucket,
            self.key(letter.event_id),
            record.as_json(),
            if_match=previous.etag if previous else None,
        )
        return replace(record, etag=etag) if etag is not None else None

    def confirm(self, claim: RedriveRecord, target: Position, now: datetime) -> RedriveRecord:
        record = replace(claim, state="redriven", redriven_at=now, target=target)
        etag = self.blobs.put_if(
            self.bucket, self.key(claim.dead_letter_id), record.as_json(), if_match=claim.etag
        )
        # Lost only to a takeover after the lease: the message went out all the same, and
        # the other redrive's record says so too.
        return replace(record, etag=etag or "")

    def release(self, claim: RedriveRecord, previous: RedriveRecord | None) -> None:
        """Undo a claim whose message was not published, so it can be redriven later."""
        key = self.key(claim.dead_letter_id)
        if previous is None:
            self.blobs.delete(self.bucket, key)
        else:
            self.blobs.put_if(self.bucket, key, previous.as_json(), if_match=claim.etag)
