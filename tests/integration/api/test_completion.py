"""Status, percent done and completion through the API, the final status over server-sent
events, and the combined report endpoint; read models seeded through the real projections."""

from __future__ import annotations

import json
import threading
import time
import uuid
from typing import Any

import cv2
import numpy as np
from fastapi.testclient import TestClient
from qdrant_client import QdrantClient

from processors.combined import keep_result
from processors.outputs.html_report import REPORT_CSP
from processors.outputs.report_view import report_key
from processors.stage import StageContext
from projections.runtime import ProjectedEvent
from tests.integration.api.conftest import Account, new_account
from tests.integration.api.seeding import media_uploaded, project, stamp
from tests.processor_factories import detections_event, item
from tests.projection_factories import projected
from tests.unit.processors.test_reports import decoded_images
from tests.unit.projections.completion_events import media_completed, media_progressed
from visionlog.blobstore import EXPORTS, ORIGINALS, BlobStore
from visionlog.settings import Settings


def _seed_upload(settings: Settings, qdrant: QdrantClient, owner: Account) -> str:
    media_id = str(uuid.uuid4())
    original = {
        "bucket": ORIGINALS,
        "key": f"tests/{media_id}/scan.png",
        "sha256": "0" * 64,
        "size_bytes": 1,
        "content_type": "image/png",
    }
    project(settings, qdrant, [media_uploaded(media_id, owner.user_id, original, kind="VIDEO")])
    return media_id


def _progressed(media_id: str, owner: Account, percent: float, seconds: int) -> ProjectedEvent:
    record = media_progressed(
        media_id, percent, completed=int(percent // 10), expected=10, seconds=seconds
    )
    return projected("MediaProgressed", stamp(record, owner.user_id, seconds), topic="processing")


def _completed(
    media_id: str, owner: Account, seconds: int, run_id: str | None = None, status: str = ""
) -> ProjectedEvent:
    record = media_completed(
        media_id,
        status or "COMPLETED_WITH_ERRORS",
        expected=10,
        completed=9,
        failed=1,
        errors=[("ocr", "frame-00000003", "frame-00000003: not a decodable image")],
        run_id=run_id,
        seconds=seconds,
    )
    return projected("MediaCompleted", stamp(record, owner.user_id, seconds), topic="media")


def test_detail_shows_percent_then_the_completion_summary(
    client: TestClient, admin: Account, api_settings: Settings, qdrant: QdrantClient
) -> None:
    owner = new_account(client, admin, "user", "progress-reader")
    media_id = _seed_upload(api_settings, qdrant, owner)
    project(api_settings, qdrant, [_progressed(media_id, owner, 40.0, 10)])
    detail = client.get(f"/v1/media/{media_id}", headers=owner.headers).json()
    assert detail["status"] == "processing" and detail["percent"] == 40.0
    assert (detail["items_expected"], detail["items_completed"]) == (10, 4)
    assert detail["completion"] is None and detail["reprocess_runs"] == []
    listed = client.get("/v1/media", headers=owner.headers).json()["items"]
    assert [(m["media_id"], m["percent"]) for m in listed] == [(media_id, 40.0)]

    events = [
        _completed(media_id, owner, 30),
        # Progress read after the completion and a reprocess run: the item stays completed.
        _progressed(media_id, owner, 90.0, 40),
        _completed(media_id, owner, 90, run_id="rerun-1", status="FAILED"),
    ]
    project(api_settings, qdrant, events)
    detail = client.get(f"/v1/media/{media_id}", headers=owner.headers).json()
    assert detail["status"] == "completed_with_errors" and detail["percent"] == 100.0
    completion = detail["completion"]
    assert completion["run_id"] is None and completion["status"] == "completed_with_errors"
    assert (completion["items_expected"], completion["items_completed"]) == (10, 9)
    assert completion["items_failed"] == 1 and completion["duration_ms"] == 30_000
    assert completion["errors"] == [
        {
            "stage": "ocr",
            "item_label": "frame-00000003",
            "message": "frame-00000003: not a decodable image",
        }
    ]
    assert [run["run_id"] for run in detail["reprocess_runs"]] == ["rerun-1"]
    assert detail["reprocess_runs"][0]["status"] == "failed"
    stages = {stage["stage"]: stage for stage in detail["stages"]}
    assert stages["ocr"]["last_error"]["error_message"] == "frame-00000003: not a decodable image"
    by_status = client.get(
        "/v1/media", params={"status": "completed_with_errors"}, headers=owner.headers
    ).json()
    assert [m["media_id"] for m in by_status["items"]] == [media_id]


def _events(
    client: TestClient, url: str, owner: Account, **params: str
) -> list[tuple[str, dict[str, Any]]]:
    with client.stream("GET", url, params=params, headers=owner.headers) as stream:
        assert stream.status_code == 200
        lines = [line for line in stream.iter_lines() if line]
    names = [line[7:] for line in lines if line.startswith("event: ")]
    data = [json.loads(line[6:]) for line in lines if line.startswith("data: ")]
    return list(zip(names, data, strict=True))


def test_the_event_stream_sends_progress_and_the_final_status_then_ends(
    client: TestClient, admin: Account, api_settings: Settings, qdrant: QdrantClient
) -> None:
    owner = new_account(client, admin, "user", "stream-reader")
    media_id = _seed_upload(api_settings, qdrant, owner)
    project(api_settings, qdrant, [_progressed(media_id, owner, 20.0, 10)])

    def later() -> None:
        time.sleep(0.4)
        project(api_settings, qdrant, [_progressed(media_id, owner, 60.0, 20)])
        time.sleep(0.4)
        project(api_settings, qdrant, [_completed(media_id, owner, 30)])

    writer = threading.Thread(target=later)
    writer.start()
    started = time.monotonic()
    events = _events(client, f"/v1/media/{media_id}/events", owner, max_duration_s="60")
    writer.join()
    # It ended on the final status, long before its maximum duration.
    assert time.monotonic() - started < 30
    assert {name for name, _ in events} == {"status"}
    percents = [data["percent"] for _, data in events]
    assert percents[0] == 20.0 and 60.0 in percents and percents[-1] == 100.0
    assert percents == sorted(percents)
    final = events[-1][1]
    assert final["final"] is True and final["status"] == "completed_with_errors"
    assert final["completion"]["items_failed"] == 1
    assert all(not data["final"] for _, data in events[:-1])
    # A finished item's stream sends its final status once and ends at once.
    again = _events(client, f"/v1/media/{media_id}/events", owner, max_duration_s="60")
    assert [(name, data["status"]) for name, data in again] == [("status", "completed_with_errors")]


def _stored_result(settings: Settings, media_id: str) -> None:
    """One detection of the item, stored for its report, on a real stored image."""
    blobs = BlobStore.from_settings(settings.minio)
    image = np.full((240, 320, 3), (40, 160, 220), np.uint8)
    ok, jpeg = cv2.imencode(".jpg", image)
    assert ok
    ref = blobs.put_bytes(ORIGINALS, f"tests/{media_id}/photo.jpg", jpeg.tobytes(), "image/jpeg")
    event = detections_event(
        media_id, item(media_id, image=dict(ref)), [("giraffe", 0.9, (5, 5, 90, 90), None)]
    )
    keep_result(event, StageContext(settings=settings, blobs=blobs))


def test_the_report_endpoint_renders_stores_and_keeps_access_rules(
    client: TestClient, admin: Account, api_settings: Settings, qdrant: QdrantClient
) -> None:
    owner = new_account(client, admin, "user", "report-reader")
    other = new_account(client, admin, "user", "report-stranger")
    media_id = _seed_upload(api_settings, qdrant, owner)
    _stored_result(api_settings, media_id)
    blobs = BlobStore.from_settings(api_settings.minio)
    url = f"/v1/media/{media_id}/report"

    # Still processing: rendered from the results so far, not stored.
    project(api_settings, qdrant, [_progressed(media_id, owner, 50.0, 10)])
    response = client.get(url, headers=owner.headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["content-security-policy"] == REPORT_CSP
    assert b"giraffe" in response.content and b"so far" in response.content
    (picture,) = decoded_images(response.content)
    assert picture.shape[:2] == (120, 160)
    assert not blobs.exists(EXPORTS, report_key(media_id))

    # Complete: rendered once more and stored; later requests get the stored page.
    project(api_settings, qdrant, [_completed(media_id, owner, 30)])
    final = client.get(url, headers=owner.headers)
    assert final.status_code == 200 and b"Completed with errors" in final.content
    assert blobs.get_object_bytes(EXPORTS, report_key(media_id)) == final.content
    blobs.put_bytes(EXPORTS, report_key(media_id), b"<!DOCTYPE html>stored", "text/html")
    assert client.get(url, headers=owner.headers).content == b"<!DOCTYPE html>stored"
    refreshed = client.get(url, params={"refresh": "true"}, headers=owner.headers)
    assert refreshed.content == final.content

    assert client.get(url, headers=other.headers).status_code == 404
    assert client.get(f"/v1/media/{uuid.uuid4()}/report", headers=owner.headers).status_code == 404
    assert client.get(url).status_code == 401
    blobs.delete(EXPORTS, report_key(media_id))
