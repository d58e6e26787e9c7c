"""Uploads through the API carry the caller as owner; the admin is bootstrapped once."""

from __future__ import annotations

import stat

from fastapi.testclient import TestClient
from qdrant_client import QdrantClient

from api.app import create_app
from api.auth.bootstrap import admin_password_path, ensure_admin
from api.auth.roles import Role
from api.auth.store import AuthStore
from producers.ingest import Ingestor
from tests.integration.api.conftest import ADMIN_PASSWORD, Account, login, new_account
from tests.integration.producers import samples
from tests.integration.producers.conftest import (
    EventLog,
    blobs,
    codec,
    event_log,
    ingest_kafka,
    ingestor,
    make_ingestor,
    upload_day,
)
from visionlog.settings import Settings

__all__ = ["blobs", "codec", "event_log", "ingest_kafka", "ingestor", "make_ingestor", "upload_day"]


def test_upload_is_owned_by_the_authenticated_user(
    api_settings: Settings,
    auth_schema: str,
    qdrant: QdrantClient,
    ingestor: Ingestor,
    event_log: EventLog,
) -> None:
    app = create_app(api_settings, qdrant=qdrant, ingestor=ingestor, auth_schema=auth_schema)
    with TestClient(app) as client:
        tokens = login(client, api_settings.api.admin_username, ADMIN_PASSWORD)
        admin = Account("", "admin", ADMIN_PASSWORD, "admin", tokens["access_token"], "")
        uploader = new_account(client, admin, "user", "uploader")
        upload = {"file": ("receipt.png", samples.png(), "application/octet-stream")}
        anonymous = client.post("/v1/ingest", files=upload)
        assert anonymous.status_code == 401
        response = client.post("/v1/ingest", files=upload, headers=uploader.headers)
        assert response.status_code == 202, response.text
        (event,) = event_log.events_for(response.json()["media_id"], 1)
        assert event.record["envelope"]["owner_id"] == uploader.user_id
        assert event.record["envelope"]["tenant_id"] == api_settings.tenant_id

        # The tenant comes from the caller's token, not from the API's settings.
        elsewhere = AuthStore(api_settings, auth_schema).create_user(
            "elsewhere", "pw-elsewhere-secret", Role.USER, "other-tenant"
        )
        tokens = login(client, "elsewhere", "pw-elsewhere-secret")
        theirs = client.post(
            "/v1/ingest",
            files=upload,
            headers={"Authorization": f"Bearer {tokens['access_token']}"},
        )
        assert theirs.status_code == 202, theirs.text
        (other,) = event_log.events_for(theirs.json()["media_id"], 1)
        assert other.record["envelope"]["tenant_id"] == "other-tenant"
        assert other.record["envelope"]["owner_id"] == elsewhere.user_id
        # The same bytes in another tenant are stored on their own, never a duplicate.
        assert other.record["duplicate_of"] is None
        assert other.record["original"]["key"] != event.record["original"]["key"]


def test_admin_bootstrap_generates_a_password_once(
    api_settings: Settings, auth_schema: str
) -> None:
    settings = api_settings.model_copy(
        update={"api": api_settings.api.model_copy(update={"admin_password": None})}
    )
    store = AuthStore(settings, auth_schema)
    assert store.migrate() == ["0001_auth", "0002_accepted_uploads"]
    assert store.migrate() == []
    username, password = ensure_admin(settings, store=store)
    assert username == settings.api.admin_username and password
    path = admin_password_path(settings)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().strip() == password
    admin = store.authenticate(username, password)
    assert admin is not None and admin.role == "admin"
    assert store.authenticate(username, password + "!") is None
    # An admin exists now: nothing is created or generated again.
    assert ensure_admin(settings, store=store) == (username, None)
    assert path.read_text().strip() == password
