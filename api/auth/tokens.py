"""Signed access and refresh tokens (JWT, asymmetric).

Decoding pins the one configured algorithm, so `alg=none` tokens and HMAC tokens keyed with
the public key are refused before any signature check could be fooled.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import jwt

from api.auth.keys import SigningKey
from visionlog.settings import ApiSettings

TokenType = Literal["access", "refresh"]
_REQUIRED_CLAIMS = ["iss", "aud", "exp", "iat", "jti", "sub", "role", "tenant", "typ"]
# Seconds of clock skew allowed on exp, nbf and iat.
LEEWAY_S = 5
# Verified tokens kept in memory, so a client's every request does not verify the same
# signature again (the most recent ones; each at most until it expires).
VERIFIED_CACHE_SIZE = 4096


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


class VerifiedTokens:
    """Claims of tokens whose signature and claims checked out, until they expire: a bounded
    LRU keyed by the token string itself (thread-safe). Revocation is not its business:
    the caller still checks it on every request."""

    def __init__(
        self, size: int = VERIFIED_CACHE_SIZE, clock: Callable[[], float] = time.time
    ) -> None:
        self.size = size
        self._clock = clock
        self._entries: OrderedDict[tuple[str, TokenType], TokenClaims] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, token: str, token_type: TokenType) -> TokenClaims | None:
        """The cached claims; None when unknown. An expired entry raises, as decoding would."""
        key = (token, token_type)
        with self._lock:
            claims = self._entries.get(key)
            if claims is None:
                return None
            # PyJWT's rule: expired once exp <= now - leeway.
            if claims.expires_at <= self._clock() - LEEWAY_S:
                del self._entries[key]
                raise InvalidTokenError("the token has expired")
            self._entries.move_to_end(key)
            return claims

    def put(self, token: str, token_type: TokenType, claims: TokenClaims) -> None:
        if self.size <= 0:
            return
        with self._lock:
            self._entries[(token, token_type)] = claims
            self._entries.move_to_end((token, token_type))
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


class TokenService:
    def __init__(
        self, key: SigningKey, settings: ApiSettings, verified: VerifiedTokens | None = None
    ) -> None:
        self.key = key
        self.settings = settings
        self.verified = verified if verified is not None else VerifiedTokens()

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
        """The token's claims once its signature and claims check out (each token string is
        verified once, then served from `verified` until it expires)."""
        cached = self.verified.get(token, expected_type)
        if cached is not None:
            return cached
        claims = self._verify(token, expected_type)
        self.verified.put(token, expected_type, claims)
        return claims

    def _verify(self, token: str, expected_type: TokenType) -> TokenClaims:
        try:
            claims = jwt.decode(
                token,
                self.key.public_key,  # type: ignore[arg-type]
                algorithms=[self.key.algorithm],
                audience=self.settings.jwt_audience,
                issuer=self.settings.jwt_issuer,
                options={"require": _REQUIRED_CLAIMS},
                leeway=LEEWAY_S,
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
