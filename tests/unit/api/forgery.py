"""Hand-built JWTs that a correct verifier must refuse (no tests here)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def claims_for(subject: str, *, issuer: str, audience: str, role: str = "admin") -> dict[str, Any]:
    now = int(time.time())
    return {
        "iss": issuer,
        "aud": audience,
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "jti": "forged-jti",
        "sub": subject,
        "name": "forger",
        "role": role,
        "tenant": "tests",
        "typ": "access",
    }


def unsigned_token(claims: dict[str, Any]) -> str:
    """`alg: none`: no signature at all."""
    header = b64url(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    return f"{header}.{b64url(json.dumps(claims).encode())}."


def hmac_with_public_key(claims: dict[str, Any], public_pem: bytes) -> str:
    """HS256 keyed with the verifier's public key: the classic algorithm confusion."""
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    signing_input = f"{header}.{b64url(json.dumps(claims).encode())}"
    signature = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"
