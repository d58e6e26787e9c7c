"""The dead-letter admin endpoints on the real broker and MinIO: an admin lists, reads and
redrives dead letters of its tenant; other roles get 403; errors are problem+json."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from qdrant_client import QdrantClient

from api.app import create_app
from processors.deadletters import REDRIVE_OF, RedriveLedger
from stack.initialise import InitReport
from tests.integration.api.conftest import Account, new_account
from tests.integration.deadletter_lab import T0, DeadLetterLab, open_lab, read_topic
from visionlog.errors import OutageError, PermanentError
from visionlog.settings import KafkaSettings, Settings
from visionlog.stream.messages import InboundMessage

PROBLEM = "application/problem+json"
ROOT = "/v1/admin/deadletters"


@pytest.fixture
def lab(
    initialised: InitReport, isolated_kafka: KafkaSettings, settings: Settings
) -> Iterator[DeadLetterLab]:
    with open_lab(settings, isolated_kafka) as opened:
        yield opened


@pytest.fixture
def app(
    api_settings: Settings, auth_schema: str, qdrant: QdrantClient, lab: DeadLetterLab
) -> FastAPI:
    """The API on this test's own topics (the conftest's `client` and `admin` use it)."""
    return create_app(
        api_settings.model_copy(update={"kafka": lab.kafka}), qdrant=qdrant, auth_schema=auth_schema
    )


def test_admin_lists_filters_pages_and_reads_dead_letters(
    client: TestClient, admin: Account, lab: DeadLetterLab
) -> None:
    outage, failed = lab.stage_failure("ocr", OutageError("MinIO did not answer for 25 s"))
    corrupt, _ = lab.stage_failure("detection", PermanentError("truncated JPEG"))
    page = lab.page_failure()
    foreign, _ = lab.stage_failure("ocr", OutageError("elsewhere"), tenant="another-tenant")

    listed = client.get(ROOT, headers=admin.headers)
    assert listed.status_code == 200, listed.text
    body = listed.json()
    # Newest first; another tenant's dead letter is not shown.
    assert [item["event_id"] for item in body["items"]] == [page, corrupt, outage]
    assert foreign not in listed.text
    assert (body["total"], body["next_cursor"]) == (3, None)
    first = body["items"][-1]
    assert first["stage"] == "ocr" and first["error_type"] == "OutageError"
    assert first["retryable"] is True and first["attempts"] == 3
    assert (first["failed_topic"], first["failed_partition"], first["failed_offset"]) == (
        failed.topic,
        failed.partition,
        failed.offset,
    )
    assert first["failed_value_bytes"] == len(failed.value or b"")
    assert first["failed_event_type"] == "MediaUploaded" and first["redrive"] is None
    assert body["items"][0]["failed_value_bytes"] is None  # the part failure

    def ids(**params: str) -> list[str]:
        answer = client.get(ROOT, params=params, headers=admin.headers)
        assert answer.status_code == 200, answer.text
        return [item["event_id"] for item in answer.json()["items"]]

    assert ids(stage="ocr") == [outage]
    assert ids(retryable="false") == [corrupt]
    assert ids(error_type="OutageError") == [page, outage]
    assert ids(since=(T0 + timedelta(minutes=2)).isoformat()) == [page, corrupt]
    assert ids(until=(T0 + timedelta(minutes=2)).isoformat()) == [outage]

    paged = client.get(ROOT, params={"limit": 2}, headers=admin.headers).json()
    assert [item["event_id"] for item in paged["items"]] == [page, corrupt]
    rest = client.get(
        ROOT, params={"limit": 2, "cursor": paged["next_cursor"]}, headers=admin.headers
    ).json()
    assert [item["event_id"] for item in rest["items"]] == [outage]

    bad = client.get(ROOT, params={"cursor": "nonsense"}, headers=admin.headers)
    assert bad.status_code == 400 and bad.headers["content-type"] == PROBLEM

    detail = client.get(f"{ROOT}/{outage}", headers=admin.headers)
    assert detail.status_code == 200, detail.text
    assert "OutageError: MinIO did not answer" in detail.json()["traceback"]
    assert detail.json()["failed_key"] == (failed.key or b"").decode()
    for unknown in ("no-such-dead-letter", foreign):
        missing = client.get(f"{ROOT}/{unknown}", headers=admin.headers)
        assert missing.status_code == 404 and missing.headers["content-type"] == PROBLEM


def test_admin_redrives_once_and_is_told_what_was_skipped(
    client: TestClient, admin: Account, lab: DeadLetterLab
) -> None:
    outage, failed = lab.stage_failure("ocr", OutageError("MinIO did not answer for 25 s"))
    page = lab.page_failure()
    before = lab.end_offsets("media")

    dry = client.post(
        f"{ROOT}/redrive", json={"all_retryable": True, "dry_run": True}, headers=admin.headers
    )
    assert dry.status_code == 200, dry.text
    assert dry.json()["dry_run"] is True
    assert [(r["event_id"], r["target"]) for r in dry.json()["redriven"]] == [(outage, None)]
    assert [(s["event_id"], s["reason"]) for s in dry.json()["skipped"]] == [(page, "part_failure")]
    assert lab.end_offsets("media") == before
    assert RedriveLedger(lab.blobs).get(outage) is None

    done = client.post(f"{ROOT}/redrive", json={"event_ids": [outage, page]}, headers=admin.headers)
    assert done.status_code == 200, done.text
    (redriven,) = done.json()["redriven"]
    assert redriven["event_id"] == outage and redriven["target"]["topic"] == failed.topic
    (skipped,) = done.json()["skipped"]
    assert skipped["reason"] == "part_failure" and "page-0003" in skipped["detail"]
    copies = [
        InboundMessage.from_kafka(m)
        # Two uploads, then the redrive's copy.
        for m in read_topic(lab.kafka, failed.topic, 3)
        if m.offset() != failed.offset and m.key() == failed.key
    ]
    (copy,) = copies
    assert copy.value == failed.value and copy.header(REDRIVE_OF) == outage
    record = RedriveLedger(lab.blobs).get(outage)
    assert record is not None and record.requested_by == admin.username

    listed = client.get(ROOT, params={"stage": "ocr"}, headers=admin.headers).json()
    assert listed["items"][0]["redrive"]["state"] == "redriven"
    assert listed["items"][0]["redrive"]["requested_by"] == admin.username

    again = client.post(f"{ROOT}/redrive", json={"event_ids": [outage]}, headers=admin.headers)
    assert again.status_code == 200 and again.json()["redriven"] == []
    assert again.json()["skipped"][0]["reason"] == "already_redriven"

    empty = client.post(f"{ROOT}/redrive", json={}, headers=admin.headers)
    assert empty.status_code == 422 and empty.headers["content-type"] == PROBLEM
    assert empty.json()["reason"] == "invalid_selection"


@pytest.mark.parametrize("role", ["operator", "user", "viewer"])
def test_only_admins_may_browse_or_redrive(
    client: TestClient, admin: Account, lab: DeadLetterLab, role: str
) -> None:
    outage, _ = lab.stage_failure("ocr", OutageError("MinIO did not answer"))
    other = new_account(client, admin, role, f"dl-{role}")
    for answer in (
        client.get(ROOT, headers=other.headers),
        client.get(f"{ROOT}/{outage}", headers=other.headers),
        client.post(f"{ROOT}/redrive", json={"event_ids": [outage]}, headers=other.headers),
    ):
        assert answer.status_code == 403, answer.text
        assert answer.headers["content-type"] == PROBLEM
    assert client.get(ROOT).status_code == 401
    assert RedriveLedger(lab.blobs).get(outage) is None
