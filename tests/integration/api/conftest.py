"""An API on the real stores with its own auth schema, read models and state directory."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr
from qdrant_client import QdrantClient

from api.app import create_app
from stack.initialise import InitReport
from tests.integration.api.seeding import TENANT
from tests.integration.processors.conftest import topics_under_test
from visionlog.settings import Settings

ADMIN_PASSWORD = "admin-password-for-tests"

# The whole topic catalogue under a test's own prefix (readiness against a real log).
__all__ = ["topics_under_test"]


@dataclass(frozen=True)
class Account:
    user_id: str
    username: str
    password: str
    role: str
    access_token: str
    refresh_token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


@pytest.fixture
def api_settings(
    pg_schema: Settings, mongo_database: Settings, unique_name: str, tmp_path: Path
) -> Settings:
    return pg_schema.model_copy(
        update={
            "mongo": mongo_database.mongo,
            "state_dir": tmp_path / "state",
            "tenant_id": TENANT,
            "api": pg_schema.api.model_copy(
                update={
                    "admin_password": SecretStr(ADMIN_PASSWORD),
                    "sse_poll_interval_s": 0.05,
                    "presigned_url_ttl_s": 120,
                }
            ),
            # These tests write their read models directly, not from the session's topics,
            # which other tests fill: by the log those read models are always behind.
            "projections": pg_schema.projections.model_copy(update={"ready_max_lag": 10**9}),
        }
    )


@pytest.fixture
def auth_schema(unique_name: str) -> str:
    # Starts with the pg_schema name, so the fixture drops it afterwards.
    return f"{unique_name}_auth"


@pytest.fixture
def app(
    api_settings: Settings, auth_schema: str, qdrant: QdrantClient, initialised: InitReport
) -> FastAPI:
    return create_app(api_settings, qdrant=qdrant, auth_schema=auth_schema)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client


def login(client: TestClient, username: str, password: str) -> dict[str, str]:
    response = client.post("/v1/token", json={"username": username, "password": password})
    assert response.status_code == 200, response.text
    body: dict[str, str] = response.json()
    return body


@pytest.fixture
def admin(client: TestClient, api_settings: Settings) -> Account:
    tokens = login(client, api_settings.api.admin_username, ADMIN_PASSWORD)
    me = client.get("/v1/me", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert me.status_code == 200, me.text
    return Account(
        me.json()["user_id"],
        api_settings.api.admin_username,
        ADMIN_PASSWORD,
        "admin",
        tokens["access_token"],
        tokens["refresh_token"],
    )


def new_account(client: TestClient, admin: Account, role: str, username: str) -> Account:
    password = f"pw-{username}-secret"
    created = client.post(
        "/v1/users",
        json={"username": username, "password": password, "role": role},
        headers=admin.headers,
    )
    assert created.status_code == 201, created.text
    tokens = login(client, username, password)
    return Account(
        created.json()["user_id"],
        username,
        password,
        role,
        tokens["access_token"],
        tokens["refresh_token"],
    )
