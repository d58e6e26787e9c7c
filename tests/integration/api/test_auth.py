"""Authentication and authorisation against the real PostgreSQL auth schema."""

from __future__ import annotations

import uuid

import jwt
from argon2 import PasswordHasher
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from fastapi import FastAPI
from fastapi.testclient import TestClient
from qdrant_client import QdrantClient

from api.auth.passwords import needs_rehash, verify_password
from api.context import ApiContext
from tests.integration.api.conftest import Account, login, new_account
from tests.integration.api.seeding import media_uploaded, project
from tests.processor_factories import blob
from tests.unit.api.forgery import claims_for, hmac_with_public_key, unsigned_token
from visionlog import stores
from visionlog.settings import Settings


def _context(app: FastAPI) -> ApiContext:
    context: ApiContext = app.state.context
    return context


def _assert_unauthorized(
    response_status: int, headers: dict[str, str], body: dict[str, object]
) -> None:
    assert response_status == 401
    assert headers["www-authenticate"].startswith("Bearer")
    assert body["status"] == 401 and body["reason"] == "unauthorized"


def test_passwords_are_argon2id_hashes_and_wrong_passwords_fail(
    client: TestClient, admin: Account, api_settings: Settings, auth_schema: str
) -> None:
    user = new_account(client, admin, "user", "hash-check")
    with stores.postgres_connect(api_settings) as conn:
        row = conn.execute(
            f'SELECT password_hash FROM "{auth_schema}".users WHERE username = %s', ("hash-check",)
        ).fetchone()
    assert row is not None
    stored = row["password_hash"]
    assert stored.startswith("$argon2id$") and user.password not in stored
    assert verify_password(stored, user.password)
    assert not verify_password(stored, user.password + "x")
    wrong = client.post("/v1/token", data={"username": "hash-check", "password": "nope-nope"})
    _assert_unauthorized(wrong.status_code, dict(wrong.headers), wrong.json())
    assert wrong.headers["content-type"] == "application/problem+json"
    # The form grant works as well as JSON.
    form = client.post("/v1/token", data={"username": "hash-check", "password": user.password})
    assert form.status_code == 200 and form.json()["token_type"] == "bearer"


def test_a_hash_of_older_parameters_is_upgraded_at_login(
    client: TestClient, admin: Account, api_settings: Settings, auth_schema: str
) -> None:
    user = new_account(client, admin, "user", "old-hash")
    weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(user.password)
    assert needs_rehash(weak)
    query = f'SELECT password_hash FROM "{auth_schema}".users WHERE username = %s'
    with stores.postgres_connect(api_settings) as conn:
        conn.execute(
            f'UPDATE "{auth_schema}".users SET password_hash = %s WHERE username = %s',
            (weak, "old-hash"),
        )
    # A wrong password changes nothing.
    refused = client.post("/v1/token", json={"username": "old-hash", "password": "not-it-at-all"})
    assert refused.status_code == 401

    def stored() -> str:
        with stores.postgres_connect(api_settings) as conn:
            row = conn.execute(query, ("old-hash",)).fetchone()
        assert row is not None
        return str(row["password_hash"])

    assert stored() == weak
    login(client, "old-hash", user.password)
    upgraded = stored()
    assert upgraded != weak and not needs_rehash(upgraded)
    assert verify_password(upgraded, user.password)
    login(client, "old-hash", user.password)


def test_missing_expired_forged_and_confused_tokens_are_refused(
    client: TestClient, app: FastAPI, admin: Account, api_settings: Settings
) -> None:
    missing = client.get("/v1/me")
    _assert_unauthorized(missing.status_code, dict(missing.headers), missing.json())

    context = _context(app)
    expired = context.tokens.issue(
        "access",
        subject=admin.user_id,
        username=admin.username,
        role="admin",
        tenant="tests",
        now=1_000_000,
    )
    response = client.get("/v1/me", headers={"Authorization": f"Bearer {expired.token}"})
    _assert_unauthorized(response.status_code, dict(response.headers), response.json())
    assert "expired" in response.json()["detail"]

    api = api_settings.api
    claims = claims_for(admin.user_id, issuer=api.jwt_issuer, audience=api.jwt_audience)
    other_key = ed25519.Ed25519PrivateKey.generate()
    forged = jwt.encode(claims, other_key, algorithm="EdDSA")
    public_pem = context.tokens.key.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    for token in (forged, unsigned_token(claims), hmac_with_public_key(claims, public_pem)):
        response = client.get("/v1/me", headers={"Authorization": f"Bearer {token}"})
        _assert_unauthorized(response.status_code, dict(response.headers), response.json())

    # A refresh token is not an access token.
    response = client.get("/v1/me", headers={"Authorization": f"Bearer {admin.refresh_token}"})
    assert response.status_code == 401
    # The genuine token still works, so the refusals above are about the tokens.
    assert client.get("/v1/me", headers=admin.headers).json()["role"] == "admin"


def test_logout_revokes_the_access_token_and_the_refresh_session(
    client: TestClient, admin: Account
) -> None:
    user = new_account(client, admin, "user", "leaving")
    assert client.get("/v1/me", headers=user.headers).status_code == 200
    logout = client.post(
        "/v1/logout", json={"refresh_token": user.refresh_token}, headers=user.headers
    )
    assert logout.status_code == 204
    revoked = client.get("/v1/me", headers=user.headers)
    _assert_unauthorized(revoked.status_code, dict(revoked.headers), revoked.json())
    assert "revoked" in revoked.json()["detail"]
    refreshed = client.post("/v1/token/refresh", json={"refresh_token": user.refresh_token})
    assert refreshed.status_code == 401


def test_refresh_rotates_and_reuse_revokes_the_family(client: TestClient, admin: Account) -> None:
    user = new_account(client, admin, "viewer", "rotator")
    first = client.post("/v1/token/refresh", json={"refresh_token": user.refresh_token})
    assert first.status_code == 200, first.text
    rotated = first.json()
    assert rotated["refresh_token"] != user.refresh_token
    assert (
        client.get("/v1/me", headers={"Authorization": f"Bearer {rotated['access_token']}"}).json()[
            "username"
        ]
        == "rotator"
    )

    reuse = client.post("/v1/token/refresh", json={"refresh_token": user.refresh_token})
    _assert_unauthorized(reuse.status_code, dict(reuse.headers), reuse.json())
    # Reuse revoked the whole family: the successor no longer refreshes either.
    successor = client.post("/v1/token/refresh", json={"refresh_token": rotated["refresh_token"]})
    assert successor.status_code == 401
    # A fresh login starts a new, working session.
    again = login(client, "rotator", user.password)
    assert (
        client.post("/v1/token/refresh", json={"refresh_token": again["refresh_token"]}).status_code
        == 200
    )


def test_roles_without_the_permission_get_403(client: TestClient, admin: Account) -> None:
    viewer = new_account(client, admin, "viewer", "looker")
    operator = new_account(client, admin, "operator", "runner")
    user = new_account(client, admin, "user", "plain")
    attempts = [
        (viewer, "POST", "/v1/users", {"username": "x1", "password": "long-enough"}),
        (operator, "POST", "/v1/api-keys", {"user_id": user.user_id, "name": "k"}),
        (user, "POST", "/v1/admin/replay/rebuild", {"store": "postgres"}),
        (operator, "POST", "/v1/admin/replay/reprocess", {"stages": ["ocr"], "all": True}),
        (viewer, "GET", "/v1/admin/replay/jobs/some-job", None),
        (user, "GET", "/v1/admin/replay/diff?stage=ocr&old=a&new=b", None),
        (operator, "DELETE", "/v1/api-keys/some-key", None),
    ]
    for account, method, path, body in attempts:
        response = client.request(method, path, json=body, headers=account.headers)
        assert response.status_code == 403, (account.role, path, response.text)
        assert response.json()["reason"] == "forbidden"
    upload = client.post(
        "/v1/ingest", files={"file": ("a.png", b"\x89PNG")}, headers=viewer.headers
    )
    assert upload.status_code == 403


def test_admin_reaches_the_replay_handlers(client: TestClient, admin: Account) -> None:
    job = client.get("/v1/admin/replay/jobs/no-such-job", headers=admin.headers)
    assert job.status_code == 404 and "no-such-job" in job.json()["detail"]
    diff = client.get(
        "/v1/admin/replay/diff",
        params={"stage": "not-a-stage", "old": "a", "new": "b"},
        headers=admin.headers,
    )
    assert diff.status_code == 422 and diff.json()["reason"] == "invalid_diff"
    rebuild = client.post(
        "/v1/admin/replay/rebuild", json={"store": "nowhere"}, headers=admin.headers
    )
    assert rebuild.status_code == 422 and rebuild.json()["reason"] == "validation_error"


def test_other_owners_media_is_invisible(
    client: TestClient, admin: Account, api_settings: Settings, qdrant: QdrantClient
) -> None:
    alice = new_account(client, admin, "user", "alice")
    bob = new_account(client, admin, "viewer", "bob")
    operator = new_account(client, admin, "operator", "ops")
    alice_media, bob_media = str(uuid.uuid4()), str(uuid.uuid4())
    project(
        api_settings,
        qdrant,
        [
            media_uploaded(alice_media, alice.user_id, blob(f"{alice_media}/o.png")),
            media_uploaded(bob_media, bob.user_id, blob(f"{bob_media}/o.png"), seconds=5),
        ],
    )
    assert client.get(f"/v1/media/{alice_media}", headers=alice.headers).status_code == 200
    for path in ("", "/results", "/downloads", "/events?once=true"):
        hidden = client.get(f"/v1/media/{bob_media}{path}", headers=alice.headers)
        assert hidden.status_code == 404, (path, hidden.text)
        assert hidden.json()["reason"] == "not_found"
    assert client.get(f"/v1/search/similar/{bob_media}", headers=alice.headers).status_code == 404

    def listed(account: Account) -> set[str]:
        response = client.get("/v1/media", headers=account.headers)
        assert response.status_code == 200, response.text
        return {item["media_id"] for item in response.json()["items"]}

    assert listed(alice) == {alice_media}
    assert listed(bob) == {bob_media}
    assert listed(operator) == {alice_media, bob_media}
    assert listed(admin) == {alice_media, bob_media}


def test_api_keys_work_until_revoked(client: TestClient, admin: Account) -> None:
    camera = new_account(client, admin, "user", "camera-7")
    created = client.post(
        "/v1/api-keys",
        json={"user_id": camera.user_id, "name": "gate camera"},
        headers=admin.headers,
    )
    assert created.status_code == 201, created.text
    key = created.json()
    assert key["role"] == "user" and key["api_key"].startswith("vlk_")
    me = client.get("/v1/me", headers={"X-API-Key": key["api_key"]})
    assert me.status_code == 200
    assert me.json() | {} == {
        "user_id": camera.user_id,
        "username": "camera-7",
        "role": "user",
        "tenant_id": "tests",
        "authenticated_by": "api_key",
    }
    # An API key of a non-admin cannot manage keys.
    assert (
        client.post(
            "/v1/api-keys",
            json={"user_id": camera.user_id, "name": "x"},
            headers={"X-API-Key": key["api_key"]},
        ).status_code
        == 403
    )
    revoked = client.delete(f"/v1/api-keys/{key['key_id']}", headers=admin.headers)
    assert revoked.status_code == 204
    after = client.get("/v1/me", headers={"X-API-Key": key["api_key"]})
    _assert_unauthorized(after.status_code, dict(after.headers), after.json())
    assert client.delete(f"/v1/api-keys/{key['key_id']}", headers=admin.headers).status_code == 404
    wrong = client.get("/v1/me", headers={"X-API-Key": key["api_key"] + "x"})
    assert wrong.status_code == 401
