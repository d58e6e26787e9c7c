"""POST /ingest through FastAPI's TestClient against the real stack."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from datetime import datetime

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from producers.http import Uploader, current_owner, get_ingestor, router
from producers.ingest import Ingestor
from tests.integration.producers import samples
from tests.integration.producers.conftest import EventLog, IngestorFactory, originals_on
from visionlog.blobstore import BlobStore


def client_for(ingestor: Ingestor, owner: str = "owner-42") -> TestClient:
    app = FastAPI()
    app.include_router(router)
    app.dependency_overrides[get_ingestor] = lambda: ingestor
    app.dependency_overrides[current_owner] = lambda: Uploader(owner_id=owner)
    return TestClient(app)


def client_for_owner(client: TestClient, owner: str) -> TestClient:
    """Another client of the same app's ingestor, authenticated as `owner`."""
    app = client.app
    assert isinstance(app, FastAPI)
    return client_for(app.dependency_overrides[get_ingestor](), owner)


@pytest.fixture
def client(ingestor: Ingestor) -> TestClient:
    return client_for(ingestor)


def test_upload_is_accepted_with_its_ids(client: TestClient, event_log: EventLog) -> None:
    response = client.post(
        "/ingest",
        files={"file": ("receipt.png", samples.png(), "application/octet-stream")},
        data={"profile": "ocr", "labels": json.dumps({"site": "Köln"})},
    )
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["media_type"] == "png" and body["duplicate_of"] is None
    (event,) = event_log.events_for(body["media_id"], 1)
    record = event.record
    assert record["envelope"]["event_id"] == body["event_id"]
    assert record["source"] == "HTTP" and record["profile"] == "ocr"
    assert record["envelope"]["owner_id"] == "owner-42"
    assert record["labels"] == {"site": "Köln"}
    assert record["original_filename"] == "receipt.png"


def test_pdf_answer_counts_pages(client: TestClient, event_log: EventLog) -> None:
    response = client.post(
        "/ingest", files={"file": ("doc.pdf", samples.pdf([(300, 300)] * 2), "application/pdf")}
    )
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["page_count"] == 2 and body["media_kind"] == "PDF"
    # The pages come later, from the document worker: the answer promises none.
    assert "page_event_ids" not in body and "frame_count" not in body
    kinds = [e.event_type for e in event_log.decoded_for(body["media_id"])]
    assert kinds == ["MediaUploaded"]


def test_giant_pages_are_accepted_at_once_not_rendered_in_the_request(
    client: TestClient, event_log: EventLog
) -> None:
    """The fault test's document: four 14,400-pt pages in 2.6 KB took 33 s inside the
    upload request and took the API to 2.1 GB. The request now only checks and announces."""
    data = samples.pdf([(14_400, 14_400)] * 4)
    assert len(data) < 4096
    client.post("/ingest", files={"file": ("warm.png", samples.png(), "image/png")})
    started = time.monotonic()
    response = client.post("/ingest", files={"file": ("poster.pdf", data, "application/pdf")})
    elapsed = time.monotonic() - started
    assert response.status_code == 202, response.text
    assert response.json()["page_count"] == 4
    assert elapsed < 1.0, f"the upload took {elapsed:.2f}s"
    kinds = [e.event_type for e in event_log.decoded_for(response.json()["media_id"])]
    assert kinds == ["MediaUploaded"]
    print(f"giant-page upload answered in {elapsed * 1000:.0f} ms")


def test_traceparent_is_continued_and_a_new_trace_made_without_it(
    client: TestClient, event_log: EventLog
) -> None:
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    continued = client.post(
        "/ingest",
        files={"file": ("a.png", samples.png())},
        headers={"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"},
    )
    assert continued.status_code == 202, continued.text
    assert continued.json()["trace_id"] == trace_id
    (event,) = event_log.decoded_for(continued.json()["media_id"])
    assert event.record["envelope"]["trace_id"] == trace_id
    fresh = client.post(
        "/ingest", files={"file": ("b.png", samples.png())}, headers={"traceparent": "garbage"}
    )
    assert fresh.status_code == 202
    assert re.fullmatch(r"[0-9a-f]{32}", fresh.json()["trace_id"])
    assert fresh.json()["trace_id"] != trace_id


def test_idempotency_key_returns_the_first_answer_and_makes_one_item(
    client: TestClient, event_log: EventLog, blobs: BlobStore, upload_day: datetime
) -> None:
    key = f"order-{uuid.uuid4()}"
    data = samples.png()
    form = {"file": ("scan.png", data, "image/png")}
    first = client.post("/ingest", files=form, headers={"Idempotency-Key": key})
    assert first.status_code == 202, first.text
    assert "Idempotent-Replayed" not in first.headers
    again = client.post("/ingest", files=form, headers={"Idempotency-Key": key})
    assert again.status_code == 202, again.text
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    media_id = first.json()["media_id"]
    assert [e.event_type for e in event_log.decoded_for(media_id)] == ["MediaUploaded"]
    assert originals_on(blobs, upload_day) == [f"{upload_day:%Y/%m/%d}/{media_id}.png"]
    # The same key with other content is a conflict, and stores nothing.
    other = client.post(
        "/ingest",
        files={"file": ("scan.png", samples.png(), "image/png")},
        headers={"Idempotency-Key": key},
    )
    assert other.status_code == 409, other.text
    assert other.headers["content-type"] == "application/problem+json"
    problem = other.json()
    assert problem["reason"] == "idempotency_key_reused"
    assert media_id in problem["detail"] and "content" in problem["detail"]
    assert originals_on(blobs, upload_day) == [f"{upload_day:%Y/%m/%d}/{media_id}.png"]
    # Another owner may use the same key for its own upload.
    stranger = client_for_owner(client, "someone-else").post(
        "/ingest", files=form, headers={"Idempotency-Key": key}
    )
    assert stranger.status_code == 202
    assert stranger.json()["media_id"] != media_id
    # A malformed key is refused before the body is read.
    bad = client.post("/ingest", files=form, headers={"Idempotency-Key": " padded "})
    assert bad.status_code == 400 and "idempotency key" in bad.json()["detail"]


def _multipart_chunks(boundary: str, filename: str, data: bytes) -> Iterator[bytes]:
    yield (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
        f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'
    ).encode()
    for start in range(0, len(data), 4096):
        yield data[start : start + 4096]
    yield f"\r\n--{boundary}--\r\n".encode()


def test_size_limit_holds_while_streaming(
    make_ingestor: IngestorFactory,
    event_log: EventLog,
    blobs: BlobStore,
    upload_day: datetime,
) -> None:
    client = client_for(make_ingestor(max_upload_bytes=20_000))
    before = event_log.total()
    data = samples.png(300, 300)
    assert len(data) > 100_000
    # Announced size over the limit (plus framing allowance): refused before reading.
    announced = client.post("/ingest", files={"file": ("big.png", data * 3, "image/png")})
    assert announced.status_code == 413
    # Chunked body without a length: refused once the streamed bytes cross the limit.
    boundary = uuid.uuid4().hex
    streamed = client.post(
        "/ingest",
        content=_multipart_chunks(boundary, "big.png", data),
        headers={"content-type": f"multipart/form-data; boundary={boundary}"},
    )
    assert streamed.status_code == 413
    assert streamed.headers["content-type"] == "application/problem+json"
    problem = streamed.json()
    assert problem["reason"] == "too_large" and problem["status"] == 413
    assert "exceeds 20,000 bytes" in problem["detail"]
    assert originals_on(blobs, upload_day) == []
    assert event_log.total() == before


@pytest.mark.parametrize(
    ("filename", "payload", "status", "reason"),
    [
        ("notes.txt", b"just text, not media\n", 415, "unsupported_type"),
        ("photo.pdf", None, 415, "extension_mismatch"),
        ("cut.jpg", b"truncated", 422, "corrupt"),
        ("empty.png", b"", 422, "empty"),
    ],
)
def test_refused_media_get_problem_details(
    client: TestClient,
    blobs: BlobStore,
    upload_day: datetime,
    filename: str,
    payload: bytes | None,
    status: int,
    reason: str,
) -> None:
    if payload is None:
        payload = samples.png()
    elif payload == b"truncated":
        whole = samples.jpeg(300, 200)
        payload = whole[: len(whole) // 2]
    response = client.post("/ingest", files={"file": (filename, payload, "image/jpeg")})
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"] == f"urn:visionlog:problem:{reason}"
    assert problem["reason"] == reason and problem["detail"]
    assert originals_on(blobs, upload_day) == []


def test_extension_can_be_ignored_on_request(client: TestClient) -> None:
    response = client.post(
        "/ingest",
        files={"file": ("photo.pdf", samples.png(), "application/pdf")},
        data={"ignore_extension": "true"},
    )
    assert response.status_code == 202, response.text
    assert response.json()["media_type"] == "png"


def test_malformed_requests_are_bad_requests(client: TestClient) -> None:
    no_file = client.post("/ingest", data={"profile": "ocr"}, files={"other": ("x", b"1")})
    assert no_file.status_code == 400
    assert "no part named 'file'" in no_file.json()["detail"]
    bad_profile = client.post(
        "/ingest", files={"file": ("a.png", samples.png())}, data={"profile": "everything"}
    )
    assert bad_profile.status_code == 400
    assert "unknown profile" in bad_profile.json()["detail"]
    bad_labels = client.post(
        "/ingest", files={"file": ("a.png", samples.png())}, data={"labels": "[1, 2]"}
    )
    assert bad_labels.status_code == 400
    assert "JSON object" in bad_labels.json()["detail"]
    # The ingest library refuses blank keys: the endpoint must answer 400, not fail with 500.
    blank_key = client.post(
        "/ingest", files={"file": ("a.png", samples.png())}, data={"labels": '{" ": "x"}'}
    )
    assert blank_key.status_code == 400
    assert "label keys must be non-empty" in blank_key.json()["detail"]
    number_value = client.post(
        "/ingest", files={"file": ("a.png", samples.png())}, data={"labels": '{"case": 7}'}
    )
    assert number_value.status_code == 400
    assert "'case' must have a string value" in number_value.json()["detail"]
    broken_body = client.post(
        "/ingest",
        content=b"this is not multipart framing",
        headers={"content-type": "multipart/form-data; boundary=xyz"},
    )
    assert broken_body.status_code == 400
    assert broken_body.headers["content-type"] == "application/problem+json"
    assert "multipart body is malformed" in broken_body.json()["detail"]
