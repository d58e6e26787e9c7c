"""Signed access and refresh tokens (JWT, asymmetric).

Decoding pins the one configured algorithm, so `alg=none` tokens and HMAC tokens keyed with
the public key are refused before any signature check could be fooled.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any, Literal

import jwt

from api.auth.keys import SigningKey
from visionlog.settings import ApiSettings

TokenType = Literal["access", "refresh"]
_REQUIRED_CLAIMS = ["iss", "aud", "exp", "iat", "jti", "sub", "role", "tenant", "typ"]


class InvalidTokenError(Exception):
    """The token is malformed, forged, expired or of the wrong type."""


@dataclass(frozen=True)
class IssuedToken:
    token: str
    jti: str
    expires_at: int


@dataclass(frozen=True)
class TokenClaims:
    subject: str
    role: str
    tenant: str
    jti: str
    expires_at: int
    family: str | None
    username: str


class TokenService:
    def __init__(self, key: SigningKey, settings: ApiSettings) -> None:
        self.key = key
        self.settings = settings

    def issue(
        self,
        token_type: TokenType,
        *,
        subject: str,
        username: str,
        role: str,
        tenant: str,
        family: str | None = None,
        now: int | None = None,
    ) -> IssuedToken:
        issued_at = int(time.time()) if now is None else now
        ttl = (
            self.settings.access_token_ttl_s
            if token_type == "access"
            else self.settings.refresh_token_ttl_s
        )
        jti = uuid.uuid4().hex
        claims: dict[str, Any] = {
            "iss": self.settings.jwt_issuer,
            "aud": self.settings.jwt_audience,
            "iat": issued_at,
            "nbf": issued_at,
            "exp": issued_at + ttl,
            "jti": jti,
            "sub": subject,
            "name": username,
            "role": role,
            "tenant": tenant,
            "typ": token_type,
        }
        if family is not None:
            claims["fam"] = family
        token = jwt.encode(claims, self.key.private_key, algorithm=self.key.algorithm)  # type: ignore[arg-type]
        return IssuedToken(token, jti, issued_at + ttl)

    def decode(self, token: str, expected_type: TokenType) -> TokenClaims:
        try:
            claims = jwt.decode(
                token,
                self.key.public_key,  # type: ignore[arg-type]
                algorithms=[self.key.algorithm],
                audience=self.settings.jwt_audience,
                issuer=self.settings.jwt_issuer,
                options={"require": _REQUIRED_CLAIMS},
                leeway=5,
            )
        except jwt.ExpiredSignatureError as exc:
            raise InvalidTokenError("the token has expired") from exc
        except jwt.PyJWTError as exc:
            raise InvalidTokenError(f"the token is invalid: {exc}") from exc
        if claims.get("typ") != expected_type:
            raise InvalidTokenError(f"expected a {expected_type} token")
        family = claims.get("fam")
        if expected_type == "refresh" and not isinstance(family, str):
            raise InvalidTokenError("the refresh token has no family")
        return TokenClaims(
            subject=str(claims["sub"]),
            role=str(claims["role"]),
            tenant=str(claims["tenant"]),
            jti=str(claims["jti"]),
            expires_at=int(claims["exp"]),
            family=family if isinstance(family, str) else None,
            username=str(claims.get("name", "")),
        )
