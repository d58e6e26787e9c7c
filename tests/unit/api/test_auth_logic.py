"""Passwords, the role matrix, cursors and problem documents (no servers)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from api.auth.passwords import hash_password, verify_password
from api.auth.roles import ROLE_PERMISSIONS, Permission, Principal, Role
from api.problems import ApiError, unauthorized
from api.readmodels import decode_cursor, encode_cursor


def test_argon2id_hashes_verify_only_the_right_password() -> None:
    hashed = hash_password("correct horse")
    assert hashed.startswith("$argon2id$") and "correct horse" not in hashed
    assert hash_password("correct horse") != hashed  # salted
    assert verify_password(hashed, "correct horse")
    assert not verify_password(hashed, "correct horsE")
    assert not verify_password(None, "correct horse")
    assert not verify_password("not-a-hash", "correct horse")


def test_role_matrix() -> None:
    assert ROLE_PERMISSIONS[Role.ADMIN] == frozenset(Permission)
    assert Permission.UPLOAD in ROLE_PERMISSIONS[Role.OPERATOR]
    assert Permission.UPLOAD in ROLE_PERMISSIONS[Role.USER]
    assert ROLE_PERMISSIONS[Role.VIEWER] == frozenset({Permission.READ})
    for role in (Role.OPERATOR, Role.USER, Role.VIEWER):
        assert Permission.REPLAY not in ROLE_PERMISSIONS[role]
        assert Permission.MANAGE_USERS not in ROLE_PERMISSIONS[role]


@pytest.mark.parametrize(
    ("role", "owner_filter"),
    [(Role.ADMIN, None), (Role.OPERATOR, None), (Role.USER, "u1"), (Role.VIEWER, "u1")],
)
def test_owner_scope_per_role(role: Role, owner_filter: str | None) -> None:
    principal = Principal(user_id="u1", username="x", role=role, tenant_id="t")
    assert principal.owner_filter == owner_filter


def test_cursor_round_trip_and_rejections() -> None:
    when = datetime(2026, 3, 1, 12, 30, tzinfo=UTC)
    cursor = encode_cursor([when.isoformat(), "media-1", 3])
    assert decode_cursor(cursor, (datetime, str, int)) == [when, "media-1", 3]
    for bad, kinds in (
        ("%%%", (str,)),
        (encode_cursor(["x"]), (datetime,)),
        (encode_cursor([True]), (int,)),
        (encode_cursor(["a", "b"]), (str,)),
        (encode_cursor({"a": 1}), (str,)),  # type: ignore[arg-type]
    ):
        with pytest.raises(ApiError) as raised:
            decode_cursor(bad, kinds)
        assert raised.value.status == 400


def test_unauthorized_problem_carries_a_bearer_challenge() -> None:
    response = unauthorized("the token has expired")
    rendered = response.response()
    assert rendered.status_code == 401
    assert rendered.headers["www-authenticate"] == 'Bearer realm="visionlog", error="invalid_token"'
    assert rendered.media_type == "application/problem+json"
    assert b'"reason":"unauthorized"' in rendered.body
