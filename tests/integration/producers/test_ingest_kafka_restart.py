"""Kafka restarted during uploads: no false error to the client, no duplicate item.

The fault test behind issue 12: during a Kafka restart an upload was answered 503 although
it had been published (the late delivery report of the first attempt arrived with the
retry's), the client retried, and a second item appeared. This restarts the stack's real
broker (with the stack's own service manager, as tests/integration/test_stack.py does) while
uploads are in flight, and brings it back whatever happens: other people use it.
"""

from __future__ import annotations

import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from producers.ingest import Ingestor
from stack import manager
from tests.integration.producers import samples
from tests.integration.producers.conftest import EventLog, IngestorFactory, originals_on
from tests.integration.producers.test_http_ingest import client_for
from visionlog.blobstore import BlobStore
from visionlog.settings import Settings


@dataclass(frozen=True)
class Answer:
    status_code: int
    body: dict[str, Any]
    headers: dict[str, str]


def _post(ingestor: Ingestor, data: bytes, key: str | None) -> Answer:
    # One client per caller, as separate HTTP clients would be; one shared ingestor, as in
    # the API process.
    headers = {"Idempotency-Key": key} if key else {}
    response = client_for(ingestor).post(
        "/ingest", files={"file": ("scan.png", data, "image/png")}, headers=headers
    )
    return Answer(response.status_code, response.json(), dict(response.headers))


def test_uploads_during_a_kafka_restart_are_answered_truthfully_once(
    settings: Settings,
    make_ingestor: IngestorFactory,
    event_log: EventLog,
    blobs: BlobStore,
    upload_day: datetime,
) -> None:
    # Long enough to wait out a broker restart on a busy two-core machine.
    ingestor = make_ingestor(publish_timeout_s=110.0)
    # Connected, and the contract registered under this module's topics, before the outage.
    warm_up = _post(ingestor, samples.png(), None)
    assert warm_up.status_code == 202, warm_up.body
    keyed, plain = samples.png(), samples.png()
    key = f"restart-{uuid.uuid4()}"
    with ThreadPoolExecutor(3) as pool:
        assert manager.down(settings, ["kafka"]) == ["kafka"]
        try:
            first: Future[Answer] = pool.submit(_post, ingestor, keyed, key)
            unkeyed = pool.submit(_post, ingestor, plain, None)
            time.sleep(1.5)
            # The client gave up waiting for `first` and sends the same upload again.
            retry = pool.submit(_post, ingestor, keyed, key)
            time.sleep(1.5)
            assert not first.done() and not retry.done(), "answered while Kafka was down"
        finally:
            (row,) = manager.up(settings, ["kafka"])
        assert row.health.ok
        answers = [future.result(timeout=150) for future in (first, retry, unkeyed)]
    # No false error: every upload was published, and every client is told so.
    assert [a.status_code for a in answers] == [202, 202, 202], [a.body for a in answers]
    first_body, retry_body, unkeyed_body = (a.body for a in answers)
    assert retry_body == first_body
    media_id = first_body["media_id"]
    # No duplicate: one item, one original, one MediaUploaded for the keyed upload.
    assert [e.event_type for e in event_log.decoded_for(media_id)] == ["MediaUploaded"]
    assert [e.event_type for e in event_log.decoded_for(unkeyed_body["media_id"])] == [
        "MediaUploaded"
    ]
    items = (warm_up.body["media_id"], media_id, unkeyed_body["media_id"])
    assert sorted(originals_on(blobs, upload_day)) == sorted(
        f"{upload_day:%Y/%m/%d}/{item}.png" for item in items
    )
    # Once Kafka is back, a late retry gets the recorded answer and publishes nothing.
    late = _post(ingestor, keyed, key)
    assert late.status_code == 202 and late.body == first_body
    assert late.headers["idempotent-replayed"] == "true"
    assert len(event_log.decoded_for(media_id)) == 1
