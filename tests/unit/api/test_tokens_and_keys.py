"""Token signing and verification, and the signing key's storage (no servers)."""

from __future__ import annotations

import stat
import time
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from api.auth.keys import SigningKeyError, key_path, load_signing_key
from api.auth.tokens import InvalidTokenError, TokenService
from tests.unit.api.forgery import claims_for, hmac_with_public_key, unsigned_token
from visionlog.settings import Settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(state_dir=tmp_path / "state")


@pytest.fixture
def service(settings: Settings) -> TokenService:
    return TokenService(load_signing_key(settings), settings.api)


def _issue(service: TokenService, token_type: str = "access", now: int | None = None) -> str:
    issued = service.issue(
        "access" if token_type == "access" else "refresh",
        subject="u1",
        username="alice",
        role="user",
        tenant="t1",
        family=None if token_type == "access" else "fam-1",
        now=now,
    )
    return issued.token


def test_generated_key_is_private_to_the_owner_and_reused(settings: Settings) -> None:
    first = load_signing_key(settings)
    path = key_path(settings)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert first.algorithm == "EdDSA"
    assert isinstance(first.private_key, ed25519.Ed25519PrivateKey)
    second = load_signing_key(settings)
    raw = serialization.Encoding.Raw, serialization.PublicFormat.Raw
    assert first.public_key.public_bytes(*raw) == second.public_key.public_bytes(*raw)


def test_configured_key_must_fit_the_algorithm(settings: Settings, tmp_path: Path) -> None:
    pem = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    configured = tmp_path / "key.pem"
    configured.write_bytes(pem)
    rsa_settings = settings.model_copy(
        update={
            "api": settings.api.model_copy(
                update={"jwt_private_key_path": configured, "jwt_algorithm": "RS256"}
            )
        }
    )
    with pytest.raises(SigningKeyError, match="RS256"):
        load_signing_key(rsa_settings)
    es_settings = settings.model_copy(
        update={"api": settings.api.model_copy(update={"jwt_algorithm": "ES256"})}
    )
    es_service = TokenService(load_signing_key(es_settings), es_settings.api)
    assert es_service.decode(_issue(es_service), "access").subject == "u1"


def test_round_trip_carries_every_claim(service: TokenService) -> None:
    token = _issue(service)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert set(claims) >= {"iss", "aud", "exp", "iat", "jti", "sub", "role", "tenant"}
    decoded = service.decode(token, "access")
    assert (decoded.subject, decoded.role, decoded.tenant) == ("u1", "user", "t1")
    assert decoded.expires_at == claims["exp"]
    assert jwt.get_unverified_header(token)["alg"] == "EdDSA"


def test_expired_tokens_are_refused(service: TokenService) -> None:
    token = _issue(service, now=int(time.time()) - 10 * 3600)
    with pytest.raises(InvalidTokenError, match="expired"):
        service.decode(token, "access")


def test_forgeries_are_refused(service: TokenService, settings: Settings) -> None:
    api = settings.api
    claims = claims_for("u1", issuer=api.jwt_issuer, audience=api.jwt_audience)
    public_pem = service.key.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    forged = jwt.encode(claims, ed25519.Ed25519PrivateKey.generate(), algorithm="EdDSA")
    for token in (forged, unsigned_token(claims), hmac_with_public_key(claims, public_pem)):
        with pytest.raises(InvalidTokenError):
            service.decode(token, "access")


def test_wrong_audience_issuer_type_or_missing_claims_are_refused(
    service: TokenService, settings: Settings
) -> None:
    key = service.key.private_key
    api = settings.api
    good = claims_for("u1", issuer=api.jwt_issuer, audience=api.jwt_audience)
    variants = [
        {**good, "aud": "someone-else"},
        {**good, "iss": "someone-else"},
        {key: value for key, value in good.items() if key != "tenant"},
    ]
    for claims in variants:
        token = jwt.encode(claims, key, algorithm="EdDSA")  # type: ignore[arg-type]
        with pytest.raises(InvalidTokenError):
            service.decode(token, "access")
    with pytest.raises(InvalidTokenError, match="access"):
        service.decode(_issue(service, "refresh"), "access")
    with pytest.raises(InvalidTokenError, match="refresh"):
        service.decode(_issue(service, "access"), "refresh")
