"""Erasure through the API: who may erase what, which blobs the MediaDeleted names, and
the item reading as gone once the read models applied it."""

from __future__ import annotations

import uuid

import pytest
from fastapi.testclient import TestClient
from qdrant_client import QdrantClient

from tests.integration.api.conftest import Account, new_account
from tests.integration.api.seeding import media_uploaded, project
from tests.integration.processors.conftest import TopicsUnderTest
from tests.processor_factories import new_media_id
from tests.projection_factories import projected
from visionlog.blobstore import ARTIFACTS, ORIGINALS, BlobStore
from visionlog.settings import Settings


@pytest.fixture
def api_settings(api_settings: Settings, topics_under_test: TopicsUnderTest) -> Settings:
    """The API publishes on the test's own topics, so its erasures can be read back."""
    return api_settings.model_copy(update={"kafka": topics_under_test.settings.kafka})


@pytest.mark.timeout(120)
def test_owners_and_admins_erase_items_and_shared_originals_stay(
    client: TestClient,
    admin: Account,
    api_settings: Settings,
    qdrant: QdrantClient,
    topics_under_test: TopicsUnderTest,
) -> None:
    owner = new_account(client, admin, "user", "eraser")
    bystander = new_account(client, admin, "user", "bystander")
    viewer = new_account(client, admin, "viewer", "onlooker")
    blobs = BlobStore.from_settings(api_settings.minio)
    solo, first, copy = new_media_id(), new_media_id(), new_media_id()
    own = blobs.put_bytes(ORIGINALS, f"tests/{solo}.png", uuid.uuid4().bytes, "image/png")
    shared = blobs.put_bytes(ORIGINALS, f"tests/{first}.png", uuid.uuid4().bytes, "image/png")
    project(
        api_settings,
        qdrant,
        [
            media_uploaded(solo, owner.user_id, own),
            media_uploaded(first, owner.user_id, shared, seconds=1),
            # Another owner uploaded the same bytes later: one blob for both items.
            media_uploaded(copy, bystander.user_id, shared, seconds=2),
        ],
    )

    assert client.delete(f"/v1/media/{solo}", headers=viewer.headers).status_code == 403
    # Another user's item does not exist for this caller.
    assert client.delete(f"/v1/media/{solo}", headers=bystander.headers).status_code == 404
    answer = client.delete(f"/v1/media/{solo}", headers=owner.headers)
    assert answer.status_code == 202, answer.text
    assert answer.json()["status"] == "deleting"
    assert answer.json()["blob_keys"] == [
        f"{ARTIFACTS}/orphans/{solo}.json",
        f"{ORIGINALS}/tests/{solo}.png",
    ]
    # The shared original stays while the bystander's item uses it.
    shared_answer = client.delete(f"/v1/media/{first}", headers=admin.headers)
    assert shared_answer.status_code == 202, shared_answer.text
    assert shared_answer.json()["blob_keys"] == [f"{ARTIFACTS}/orphans/{first}.json"]

    erasures = {
        event.record["media_id"]: event.record
        for event in topics_under_test.read_events("MediaDeleted", expected=2)
    }
    assert set(erasures) == {solo, first}
    assert erasures[solo]["requested_by"] == owner.username
    assert erasures[solo]["reason"] == "user_request"
    assert erasures[solo]["envelope"]["owner_id"] == owner.user_id
    assert erasures[first]["requested_by"] == admin.username
    assert erasures[solo]["envelope"]["event_id"] == answer.json()["event_id"]

    project(api_settings, qdrant, [projected("MediaDeleted", erasures[solo], topic="media")])
    assert client.get(f"/v1/media/{solo}", headers=owner.headers).json()["status"] == "deleted"
    # Erased is erased: a second request finds nothing to erase.
    assert client.delete(f"/v1/media/{solo}", headers=owner.headers).status_code == 404
    # Once the bystander's item is erased too, the last user of the bytes names them.
    project(api_settings, qdrant, [projected("MediaDeleted", erasures[first], topic="media")])
    last = client.delete(f"/v1/media/{copy}", headers=bystander.headers)
    assert last.status_code == 202, last.text
    assert f"{ORIGINALS}/tests/{first}.png" in last.json()["blob_keys"]
