"""POST /ingest through FastAPI's TestClient against the real stack."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import datetime

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from producers.http import current_owner, get_ingestor, router
from producers.ingest import Ingestor
from tests.integration.producers import samples
from tests.integration.producers.conftest import EventLog, IngestorFactory, originals_on
from visionlog.blobstore import BlobStore


def client_for(ingestor: Ingestor) -> TestClient:
    app = FastAPI()
    app.include_router(router)
    app.dependency_overrides[get_ingestor] = lambda: ingestor
    app.dependency_overrides[current_owner] = lambda: "owner-42"
    return TestClient(app)


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


def test_pdf_answer_counts_pages(client: TestClient) -> None:
    response = client.post(
        "/ingest", files={"file": ("doc.pdf", samples.pdf([(300, 300)] * 2), "application/pdf")}
    )
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["page_count"] == 2 and len(body["page_event_ids"]) == 2
    assert body["frame_count"] == 0


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
