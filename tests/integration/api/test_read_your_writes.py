"""An upload answered 202 is readable at once: `accepted` until the PostgreSQL projection
applied its MediaUploaded, then the read model's status; never 404 in between."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from psycopg import sql
from qdrant_client import QdrantClient

from api.accepted import ACCEPTED_TABLE, AcceptedUploads
from api.app import create_app
from producers.ingest import Ingestor
from projections.postgres.migrate import READMODEL_MIGRATIONS, apply_migrations
from projections.runtime import ProjectedEvent
from tests.integration.api.conftest import ADMIN_PASSWORD, Account, login, new_account
from tests.integration.api.seeding import TENANT, project
from tests.integration.producers import samples
from tests.integration.producers.conftest import (
    EventLog,
    blobs,
    codec,
    event_log,
    ingest_kafka,
    upload_day,
)
from visionlog.blobstore import BlobStore
from visionlog.codec import AvroCodec
from visionlog.kafka import EventPublisher
from visionlog.settings import KafkaSettings, Settings
from visionlog.stores import postgres_connect

__all__ = ["blobs", "codec", "event_log", "ingest_kafka", "upload_day"]


@pytest.fixture
def tenant_ingestor(
    api_settings: Settings, ingest_kafka: KafkaSettings, codec: AvroCodec, upload_day: datetime
) -> Iterator[Ingestor]:
    """An ingestor of the API's tenant on this module's own topics."""
    ingestor = Ingestor(
        api_settings,
        BlobStore.from_settings(api_settings.minio),
        EventPublisher(ingest_kafka, codec),
        clock=lambda: upload_day,
    )
    yield ingestor
    ingestor.close()


@pytest.fixture
def uploads_client(
    api_settings: Settings, auth_schema: str, qdrant: QdrantClient, tenant_ingestor: Ingestor
) -> Iterator[TestClient]:
    app = create_app(api_settings, qdrant=qdrant, ingestor=tenant_ingestor, auth_schema=auth_schema)
    with TestClient(app) as client:
        yield client


@pytest.fixture
def read_model(api_settings: Settings) -> None:
    """The read model's schema, migrated as `visionlog migrate` does before the API starts
    (empty: nothing projected)."""
    with postgres_connect(api_settings, autocommit=True) as conn:
        apply_migrations(conn, api_settings.projections.postgres_schema, READMODEL_MIGRATIONS)


@pytest.fixture
def admin_account(uploads_client: TestClient, api_settings: Settings) -> Account:
    tokens = login(uploads_client, api_settings.api.admin_username, ADMIN_PASSWORD)
    return Account("", "admin", ADMIN_PASSWORD, "admin", tokens["access_token"], "")


def accepted_uploads(client: TestClient) -> AcceptedUploads:
    uploads: AcceptedUploads = client.app.state.context.accepted  # type: ignore[attr-defined]
    return uploads


def upload(
    client: TestClient, account: Account, data: bytes, name: str = "receipt.png", **headers: str
) -> Any:
    response = client.post(
        "/v1/ingest",
        files={"file": (name, data, "application/octet-stream")},
        data={"profile": "ocr", "labels": '{"case": "ryw"}'},
        headers={**account.headers, **headers},
    )
    assert response.status_code == 202, response.text
    return response


def project_upload(
    event_log: EventLog, settings: Settings, qdrant: QdrantClient, media_id: str
) -> ProjectedEvent:
    """Projects the item's real MediaUploaded, read back from the log, as the projection
    runner would hand it over."""
    (message,) = event_log.everything_for(media_id)
    decoded = event_log.codec.decode(message.value())
    event = ProjectedEvent(
        event_type=decoded.event_type,
        record=decoded.record,
        topic=message.topic() or "",
        partition=message.partition() or 0,
        offset=message.offset() or 0,
        key=media_id,
        timestamp_ms=message.timestamp()[1],
    )
    project(settings, qdrant, [event])
    return event


class Poller:
    """GETs one item over and over in a thread, keeping every answer's status code and
    status, from the moment it is started until stopped."""

    def __init__(self, client: TestClient, account: Account, media_id: str) -> None:
        self.client = client
        self.account = account
        self.media_id = media_id
        self.seen: list[tuple[int, str | None]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            response = self.client.get(f"/v1/media/{self.media_id}", headers=self.account.headers)
            status = response.json().get("status") if response.status_code == 200 else None
            self.seen.append((response.status_code, status))
            time.sleep(0.005)

    def start(self) -> None:
        self._thread.start()

    def wait_for(self, status: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(seen == status for _, seen in self.seen[-5:]):
                return
            time.sleep(0.02)
        raise AssertionError(f"{status!r} not seen within {timeout}s: {self.seen[-5:]}")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def _statuses_in_order(seen: list[tuple[int, str | None]]) -> list[str]:
    order: list[str] = []
    for _, status in seen:
        if status is not None and (not order or order[-1] != status):
            order.append(status)
    return order


def test_an_upload_reads_accepted_then_the_read_models_status_never_404(
    uploads_client: TestClient,
    admin_account: Account,
    api_settings: Settings,
    qdrant: QdrantClient,
    event_log: EventLog,
) -> None:
    client = uploads_client
    owner = new_account(client, admin_account, "user", "ryw-owner")
    accepted = upload(client, owner, samples.png(), name="receipt.png").json()
    media_id = accepted["media_id"]
    poller = Poller(client, owner, media_id)
    poller.start()
    try:
        poller.wait_for("accepted")
        detail = client.get(f"/v1/media/{media_id}", headers=owner.headers).json()
        assert detail["status"] == "accepted"
        assert (detail["owner_id"], detail["tenant_id"]) == (owner.user_id, TENANT)
        assert (detail["filename"], detail["kind"], detail["profile"]) == (
            "receipt.png",
            "IMAGE",
            "ocr",
        )
        assert detail["labels"] == {"case": "ryw"} and detail["stages"] == []
        assert detail["accepted_at"] is not None and detail["duplicate_of"] is None
        assert detail["original"]["content_type"] == "image/png"
        assert detail["log_position"] == accepted["log_position"]

        event = project_upload(event_log, api_settings, qdrant, media_id)
        # The answer's position is where the event really is.
        assert accepted["log_position"] == {
            "topic": event.topic,
            "partition": event.partition,
            "offset": event.offset,
        }
        poller.wait_for("uploaded")
    finally:
        poller.stop()
    assert all(code == 200 for code, _ in poller.seen), poller.seen
    assert _statuses_in_order(poller.seen) == ["accepted", "uploaded"]
    projected = client.get(f"/v1/media/{media_id}", headers=owner.headers).json()
    assert projected["accepted_at"] is None and projected["log_position"] is None
    assert projected["filename"] == "receipt.png"
    # The read model has it now: cleaning removes the accepted row, nothing changes outside.
    assert accepted_uploads(client).clean() >= 1
    assert client.get(f"/v1/media/{media_id}", headers=owner.headers).json() == projected


def test_someone_elses_accepted_upload_is_hidden_like_in_the_read_model(
    read_model: None, uploads_client: TestClient, admin_account: Account
) -> None:
    client = uploads_client
    owner = new_account(client, admin_account, "user", "ryw-uploader")
    media_id = upload(client, owner, samples.png()).json()["media_id"]
    for role in ("user", "viewer"):
        other = new_account(client, admin_account, role, f"ryw-other-{role}")
        response = client.get(f"/v1/media/{media_id}", headers=other.headers)
        assert response.status_code == 404, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
    operator = new_account(client, admin_account, "operator", "ryw-operator")
    for reader in (operator, admin_account):
        response = client.get(f"/v1/media/{media_id}", headers=reader.headers)
        assert response.status_code == 200 and response.json()["status"] == "accepted"
    anonymous = client.get(f"/v1/media/{media_id}")
    assert anonymous.status_code == 401


def test_duplicates_and_idempotent_replays_answer_as_before(
    read_model: None,
    uploads_client: TestClient,
    admin_account: Account,
    api_settings: Settings,
    auth_schema: str,
) -> None:
    client = uploads_client
    owner = new_account(client, admin_account, "user", "ryw-dupes")
    data = samples.png()
    first = upload(client, owner, data, **{"Idempotency-Key": "ryw-first"})
    replay = upload(client, owner, data, **{"Idempotency-Key": "ryw-first"})
    assert replay.headers.get("Idempotent-Replayed") == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert replay.json() == first.json()
    assert first.json()["log_position"] is not None

    second = upload(client, owner, data, name="again.png").json()
    assert second["duplicate_of"] == first.json()["media_id"]
    assert second["log_position"]["offset"] != first.json()["log_position"]["offset"] or (
        second["log_position"]["partition"] != first.json()["log_position"]["partition"]
    )
    detail = client.get(f"/v1/media/{second['media_id']}", headers=owner.headers).json()
    assert (detail["status"], detail["duplicate_of"]) == ("accepted", first.json()["media_id"])
    assert detail["filename"] == "again.png"

    accepted_table = sql.Identifier(auth_schema, ACCEPTED_TABLE)
    with postgres_connect(api_settings) as conn:
        rows = conn.execute(
            sql.SQL("SELECT media_id FROM {} WHERE owner_id = %s").format(accepted_table),
            (owner.user_id,),
        ).fetchall()
    assert sorted(row["media_id"] for row in rows) == sorted(
        [first.json()["media_id"], second["media_id"]]
    )


def test_expired_accepted_rows_are_cleaned(
    uploads_client: TestClient, admin_account: Account, api_settings: Settings, auth_schema: str
) -> None:
    client = uploads_client
    owner = new_account(client, admin_account, "user", "ryw-expired")
    kept = upload(client, owner, samples.png()).json()["media_id"]
    expired = upload(client, owner, samples.png()).json()["media_id"]
    accepted_table = sql.Identifier(auth_schema, ACCEPTED_TABLE)
    with postgres_connect(api_settings, autocommit=True) as conn:
        conn.execute(
            sql.SQL(
                "UPDATE {} SET accepted_at = now() - interval '2 days' WHERE media_id = %s"
            ).format(accepted_table),
            (expired,),
        )
    # Nothing was projected in this test, not even the read model's schema: age decides.
    assert accepted_uploads(client).clean() == 1
    with postgres_connect(api_settings) as conn:
        rows = conn.execute(sql.SQL("SELECT media_id FROM {}").format(accepted_table)).fetchall()
    assert [row["media_id"] for row in rows] == [kept]
    assert client.get(f"/v1/media/{kept}", headers=owner.headers).json()["status"] == "accepted"
