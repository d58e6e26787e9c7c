"""The read endpoints over read models seeded through the real projections."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass

import httpx
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from qdrant_client import QdrantClient

from api.app import create_app
from processors.embeddings.text import get_text_embedder
from projections.postgres.projection import PostgresProjection
from tests.integration.api.conftest import Account, new_account
from tests.integration.api.seeding import (
    embedding,
    media_uploaded,
    objects_detected,
    output_generated,
    project,
    text_recognized,
)
from tests.integration.processors.conftest import TopicsUnderTest
from tests.processor_factories import new_media_id
from tests.unit.projections import test_postgres_rows
from visionlog.blobstore import ARTIFACTS, ORIGINALS, BlobStore
from visionlog.settings import Settings

ENGLISH = "The invoices were paid in full"
GERMAN = "Die Rechnungen wurden gestern bezahlt"
STREET = "A red car parked on the street"


@dataclass(frozen=True)
class Scenario:
    owner: Account
    invoice: str
    german: str
    street: str
    original_bytes: bytes
    output_bytes: bytes


@pytest.fixture
def scenario(
    client: TestClient, admin: Account, api_settings: Settings, qdrant: QdrantClient
) -> Scenario:
    owner = new_account(client, admin, "user", "reader")
    invoice, german, street = (str(uuid.uuid4()) for _ in range(3))
    blobs = BlobStore.from_settings(api_settings.minio)
    original_bytes = b"original-" + uuid.uuid4().bytes
    output_bytes = json.dumps({"media": invoice}).encode()
    original = blobs.put_bytes(ORIGINALS, f"tests/{invoice}/scan.png", original_bytes, "image/png")
    output = blobs.put_bytes(
        ARTIFACTS, f"tests/{invoice}/report.json", output_bytes, "application/json"
    )
    texts = get_text_embedder().embed([ENGLISH, STREET])
    events = [
        media_uploaded(invoice, owner.user_id, original, seconds=0),
        media_uploaded(german, owner.user_id, original, seconds=1, filename="brief.png"),
        media_uploaded(street, owner.user_id, original, seconds=2, kind="VIDEO"),
        text_recognized(invoice, owner.user_id, ENGLISH, version="ocr==1", seconds=10),
        text_recognized(invoice, owner.user_id, ENGLISH + " today", version="ocr==2", seconds=11),
        text_recognized(german, owner.user_id, GERMAN, seconds=12),
        text_recognized(street, owner.user_id, STREET, seconds=13),
        objects_detected(invoice, owner.user_id, [("person", 0.9), ("car", 0.4)], camera_id="gate"),
        objects_detected(german, owner.user_id, [("person", 0.6)], camera_id="yard", seconds=25),
        output_generated(invoice, owner.user_id, output),
        embedding(invoice, owner.user_id, "IMAGE", [1.0, 0.0, 0.0, 0.0]),
        embedding(german, owner.user_id, "IMAGE", [0.9, 0.1, 0.0, 0.0]),
        embedding(street, owner.user_id, "IMAGE", [0.0, 0.0, 1.0, 0.0]),
        embedding(invoice, owner.user_id, "TEXT_BLOCK", texts[0].tolist(), text=ENGLISH),
        embedding(street, owner.user_id, "TEXT_BLOCK", texts[1].tolist(), text=STREET),
    ]
    project(api_settings, qdrant, events)
    return Scenario(owner, invoice, german, street, original_bytes, output_bytes)


def test_media_list_filters_and_pages(client: TestClient, scenario: Scenario) -> None:
    headers = scenario.owner.headers
    everything = client.get("/v1/media", headers=headers).json()
    # Newest upload first.
    assert [item["media_id"] for item in everything["items"]] == [
        scenario.street,
        scenario.german,
        scenario.invoice,
    ]
    assert everything["next_cursor"] is None
    videos = client.get("/v1/media", params={"kind": "VIDEO"}, headers=headers).json()
    assert [item["media_id"] for item in videos["items"]] == [scenario.street]
    window = client.get(
        "/v1/media",
        params={"from": "2026-03-01T00:00:01Z", "to": "2026-03-01T00:00:02Z"},
        headers=headers,
    ).json()
    assert [item["media_id"] for item in window["items"]] == [scenario.german]
    assert (
        client.get("/v1/media", params={"status": "deleted"}, headers=headers).json()["items"] == []
    )

    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, str | int] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = client.get("/v1/media", params=params, headers=headers).json()
        seen.extend(item["media_id"] for item in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [scenario.street, scenario.german, scenario.invoice]
    bad = client.get("/v1/media", params={"cursor": "not-a-cursor"}, headers=headers)
    assert bad.status_code == 400 and bad.json()["reason"] == "bad_request"


def test_media_detail_has_status_and_stage_progress(client: TestClient, scenario: Scenario) -> None:
    detail = client.get(f"/v1/media/{scenario.invoice}", headers=scenario.owner.headers)
    assert detail.status_code == 200, detail.text
    body = detail.json()
    assert body["media_id"] == scenario.invoice
    assert body["owner_id"] == scenario.owner.user_id
    assert body["kind"] == "IMAGE" and body["status"] in ("uploaded", "processing")
    assert body["original"]["key"] == f"tests/{scenario.invoice}/scan.png"
    stages = {stage["stage"]: stage for stage in body["stages"]}
    assert stages["ocr"]["done"] == 2
    assert stages["detection"]["done"] == 1
    missing = client.get(f"/v1/media/{uuid.uuid4()}", headers=scenario.owner.headers)
    assert missing.status_code == 404


def test_results_of_two_model_versions_side_by_side(client: TestClient, scenario: Scenario) -> None:
    url = f"/v1/media/{scenario.invoice}/results"
    body = client.get(url, params={"stage": "ocr"}, headers=scenario.owner.headers).json()
    assert body["model_versions"] == {"ocr": ["ocr==1", "ocr==2"]}
    versions = [result["model_version"] for result in body["results"]]
    assert sorted(versions) == ["ocr==1", "ocr==2"]
    only_new = client.get(
        url, params={"stage": "ocr", "model_version": "ocr==2"}, headers=scenario.owner.headers
    ).json()
    assert [result["model_version"] for result in only_new["results"]] == ["ocr==2"]
    everything = client.get(url, headers=scenario.owner.headers).json()
    assert set(everything["model_versions"]) >= {"ocr", "detection"}


def test_full_text_search_in_english_and_german(client: TestClient, scenario: Scenario) -> None:
    headers = scenario.owner.headers
    english = client.get(
        "/v1/search/text", params={"q": "invoice paid", "lang": "en"}, headers=headers
    )
    assert english.status_code == 200, english.text
    hits = english.json()["hits"]
    assert {hit["media_id"] for hit in hits} == {scenario.invoice}
    assert all("<mark>" in hit["snippet"] for hit in hits)
    # German stemming finds "Rechnungen" from "Rechnung"; the English stemmer does not.
    german = client.get("/v1/search/text", params={"q": "Rechnung", "lang": "de"}, headers=headers)
    assert [hit["media_id"] for hit in german.json()["hits"]] == [scenario.german]
    assert (
        client.get(
            "/v1/search/text", params={"q": "Rechnung", "lang": "en"}, headers=headers
        ).json()["hits"]
        == []
    )
    excluded = client.get(
        "/v1/search/text", params={"q": "invoice -street", "lang": "en"}, headers=headers
    ).json()
    assert {hit["media_id"] for hit in excluded["hits"]} == {scenario.invoice}
    invalid = client.get("/v1/search/text", params={"q": "x", "lang": "fr"}, headers=headers)
    assert invalid.status_code == 422 and invalid.json()["reason"] == "validation_error"


def test_detections_filters(client: TestClient, scenario: Scenario) -> None:
    headers = scenario.owner.headers

    def classes(**params: str | float) -> list[tuple[str, str]]:
        response = client.get("/v1/detections", params=params, headers=headers)
        assert response.status_code == 200, response.text
        return [(item["media_id"], item["class_name"]) for item in response.json()["items"]]

    assert sorted(classes()) == sorted(
        [(scenario.invoice, "person"), (scenario.invoice, "car"), (scenario.german, "person")]
    )
    assert sorted(classes(class_name="person")) == sorted(
        [(scenario.invoice, "person"), (scenario.german, "person")]
    )
    assert classes(min_confidence=0.8) == [(scenario.invoice, "person")]
    assert classes(camera_id="yard") == [(scenario.german, "person")]
    assert sorted(classes(media_id=scenario.invoice)) == [
        (scenario.invoice, "car"),
        (scenario.invoice, "person"),
    ]
    assert classes(**{"from": "2026-03-01T00:00:21Z"}) == [(scenario.german, "person")]
    first = client.get("/v1/detections", params={"limit": 2}, headers=headers).json()
    second = client.get(
        "/v1/detections", params={"limit": 2, "cursor": first["next_cursor"]}, headers=headers
    ).json()
    assert len(first["items"]) == 2 and len(second["items"]) == 1
    assert second["next_cursor"] is None


def test_similar_images_and_images_by_text(client: TestClient, scenario: Scenario) -> None:
    headers = scenario.owner.headers
    similar = client.get(f"/v1/search/similar/{scenario.invoice}", headers=headers)
    assert similar.status_code == 200, similar.text
    assert [hit["media_id"] for hit in similar.json()["hits"]] == [scenario.german, scenario.street]
    by_text = client.get("/v1/search/images", params={"q": "payment of the bill"}, headers=headers)
    assert by_text.status_code == 200, by_text.text
    hits = by_text.json()["hits"]
    assert [hit["media_id"] for hit in hits] == [scenario.invoice, scenario.street]
    assert hits[0]["text"] == ENGLISH and hits[0]["score"] > hits[1]["score"]
    vehicles = client.get("/v1/search/images", params={"q": "automobile"}, headers=headers).json()
    assert vehicles["hits"][0]["media_id"] == scenario.street


def test_presigned_urls_download_the_blobs(client: TestClient, scenario: Scenario) -> None:
    response = client.get(f"/v1/media/{scenario.invoice}/downloads", headers=scenario.owner.headers)
    assert response.status_code == 200, response.text
    links = {link["kind"]: link for link in response.json()["downloads"]}
    assert set(links) == {"original", "JSON"}
    assert links["original"]["expires_in"] == 120
    assert httpx.get(links["original"]["url"]).content == scenario.original_bytes
    assert httpx.get(links["JSON"]["url"]).content == scenario.output_bytes
    tampered = links["original"]["url"].replace("scan.png", "other.png")
    assert httpx.get(tampered).status_code == 403


def test_server_sent_events_report_status(client: TestClient, scenario: Scenario) -> None:
    url = f"/v1/media/{scenario.invoice}/events"
    with client.stream(
        "GET", url, params={"once": "true"}, headers=scenario.owner.headers
    ) as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in stream.iter_lines() if line]
    assert "event: status" in lines
    data = json.loads(next(line for line in lines if line.startswith("data: "))[6:])
    assert data["media_id"] == scenario.invoice
    assert data["status"] in ("uploaded", "processing")
    assert {stage["stage"] for stage in data["stages"]} >= {"ocr", "detection"}
    # Without `once` the stream polls until its maximum duration and then ends.
    with client.stream(
        "GET", url, params={"max_duration_s": "0.3"}, headers=scenario.owner.headers
    ) as stream:
        events = [line for line in stream.iter_lines() if line.startswith("event:")]
    assert events == ["event: status"]


def test_readyz_metrics_and_healthz(client: TestClient, scenario: Scenario) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert {name for name, check in ready.json()["checks"].items() if check["ok"]} == {
        "postgres",
        "mongo",
        "minio",
        "qdrant",
    }
    client.get(f"/v1/media/{scenario.invoice}", headers=scenario.owner.headers)
    metrics = client.get("/metrics")
    assert metrics.status_code == 200
    assert (
        'visionlog_api_requests_total{method="GET",route="/v1/media/{media_id}",status="200"}'
        in metrics.text
    )
    assert "visionlog_api_request_duration_seconds_bucket" in metrics.text


def test_readyz_reports_an_unreachable_store(api_settings: Settings, qdrant: QdrantClient) -> None:
    broken = api_settings.model_copy(
        update={"postgres": api_settings.postgres.model_copy(update={"port": 1})}
    )
    broken_app = create_app(broken, qdrant=qdrant, auth_schema="unused")
    # No lifespan: startup would fail on the unreachable PostgreSQL, readiness must not.
    response = TestClient(broken_app).get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["reason"] == "not_ready" and "postgres" in body["detail"]
    assert body["checks"]["postgres"]["ok"] is False
    assert body["checks"]["minio"]["ok"] is True


def test_unexpected_errors_answer_a_problem(api_settings: Settings, qdrant: QdrantClient) -> None:
    settings = api_settings.model_copy(
        update={"api": api_settings.api.model_copy(update={"admin_password": SecretStr("x" * 12)})}
    )
    broken_app = create_app(settings, qdrant=qdrant, auth_schema="unused")

    @broken_app.get("/boom")
    def boom() -> None:
        raise RuntimeError("kaboom")

    response = TestClient(broken_app).get("/boom")
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["reason"] == "internal_error"
    assert "kaboom" not in response.text


@pytest.mark.timeout(120)
def test_readyz_is_not_ready_while_a_read_model_is_behind_the_log(
    api_settings: Settings,
    qdrant: QdrantClient,
    topics_under_test: TopicsUnderTest,
    auth_schema: str,
) -> None:
    topics = topics_under_test
    settings = api_settings.model_copy(
        update={
            "kafka": topics.settings.kafka,
            "projections": api_settings.projections.model_copy(update={"ready_max_lag": 3}),
        }
    )
    PostgresProjection(settings).close()  # the read model exists and has applied nothing
    with TestClient(create_app(settings, qdrant=qdrant, auth_schema=auth_schema)) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["lag"] == {"postgres": 0, "mongo": 0, "qdrant": 0}
        assert ready.json()["max_lag"] == 3

        for _ in range(5):
            record = test_postgres_rows.media_uploaded(new_media_id())
            topics.publisher.publish("MediaUploaded", record)
        topics.publisher.flush()
        deadline = time.monotonic() + 30  # the lag is measured at most every 5 s
        answer = client.get("/readyz")
        while answer.status_code == 200 and time.monotonic() < deadline:
            time.sleep(0.5)
            answer = client.get("/readyz")
        assert answer.status_code == 503, answer.text
        body = answer.json()
        # Each projection reads the media topic (Qdrant's for MediaDeleted): all are behind.
        assert body["lag"] == {"postgres": 5, "mongo": 5, "qdrant": 5}
        assert body["detail"] == (
            "read models behind: mongo 5 messages, postgres 5 messages, qdrant 5 messages (> 3)"
        )
        assert all(check["ok"] for check in body["checks"].values())
