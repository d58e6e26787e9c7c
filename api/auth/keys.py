"""The asymmetric key that signs the API's tokens.

From `settings.api.jwt_private_key_path` when set; otherwise generated on first use and
kept under the state directory (mode 0600), so every process of one install signs and
verifies with the same key.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import (
    PrivateKeyTypes,
    PublicKeyTypes,
)

from visionlog.settings import Settings

KEY_FILE_NAME = "jwt-signing-key.pem"


class SigningKeyError(Exception):
    """The configured key cannot be used with the configured algorithm."""


@dataclass(frozen=True)
class SigningKey:
    algorithm: str
    private_key: PrivateKeyTypes
    public_key: PublicKeyTypes


def _generate(algorithm: str) -> PrivateKeyTypes:
    if algorithm == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    if algorithm == "RS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=3072)
    if algorithm == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    raise SigningKeyError(f"unsupported JWT algorithm {algorithm!r}")


def _matches(algorithm: str, key: PrivateKeyTypes) -> bool:
    if algorithm == "EdDSA":
        return isinstance(key, ed25519.Ed25519PrivateKey)
    if algorithm == "RS256":
        return isinstance(key, rsa.RSAPrivateKey)
    if algorithm == "ES256":
        return isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1)
    return False


def _write_private(path: Path, key: PrivateKeyTypes) -> None:
    """Create the file with mode 0600 atomically; a concurrent creator wins, we reuse it."""
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(pem)


def _read_private(path: Path) -> PrivateKeyTypes:
    try:
        return serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        raise SigningKeyError(f"{path} is not an unencrypted PEM private key: {exc}") from exc


def key_path(settings: Settings) -> Path:
    return settings.api.jwt_private_key_path or settings.state_dir / "api" / KEY_FILE_NAME


def load_signing_key(settings: Settings) -> SigningKey:
    algorithm = settings.api.jwt_algorithm
    path = key_path(settings)
    if settings.api.jwt_private_key_path is None and not path.exists():
        # Another process may generate it first; then its key is read below.
        with contextlib.suppress(FileExistsError):
            _write_private(path, _generate(algorithm))
    private = _read_private(path)
    if not _matches(algorithm, private):
        raise SigningKeyError(f"the key in {path} does not fit the JWT algorithm {algorithm}")
    return SigningKey(algorithm, private, private.public_key())
