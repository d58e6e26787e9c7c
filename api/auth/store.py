"""Users, refresh tokens, revoked access tokens and API keys in PostgreSQL.

Secrets are never stored: passwords as argon2id hashes, refresh tokens and API keys as
SHA-256 digests (both are high-entropy, so a fast digest suffices for lookup).
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg_pool import ConnectionPool

from api.auth.passwords import hash_password, needs_rehash, verify_password
from api.auth.roles import Role
from projections.postgres.migrate import apply_migrations
from visionlog import stores
from visionlog.settings import Settings

AUTH_MIGRATIONS: Path = Path(__file__).resolve().parent.parent / "migrations"
# The PostgreSQL schema of users, keys and tokens; tests use their own beside it.
AUTH_SCHEMA = "auth"
API_KEY_PREFIX = "vlk_"


class UserExistsError(Exception):
    """A user with this username already exists."""


class RefreshOutcome(StrEnum):
    ROTATED = "rotated"
    UNKNOWN = "unknown"
    REUSED = "reused"
    EXPIRED = "expired"


@dataclass(frozen=True)
class UserRecord:
    user_id: str
    username: str
    role: Role
    tenant_id: str
    disabled: bool
    password_hash: str

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> UserRecord:
        return cls(
            user_id=row["user_id"],
            username=row["username"],
            role=Role(row["role"]),
            tenant_id=row["tenant_id"],
            disabled=row["disabled"],
            password_hash=row["password_hash"],
        )


@dataclass(frozen=True)
class ApiKeyRecord:
    key_id: str
    name: str
    user_id: str
    created_at: datetime
    revoked_at: datetime | None


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


class AuthStore:
    def __init__(
        self,
        settings: Settings,
        schema: str = AUTH_SCHEMA,
        pool: ConnectionPool[stores.PgConnection] | None = None,
    ) -> None:
        self.settings = settings
        self.schema = schema
        self.pool = pool
        self._schema_id = sql.Identifier(schema)

    def _q(self, text: str) -> sql.Composed:
        """A statement whose `{s}` placeholders are the auth schema."""
        return sql.SQL(text).format(s=self._schema_id)

    def connect(self) -> AbstractContextManager[stores.PgConnection]:
        if self.pool is not None:
            return self.pool.connection()
        return stores.postgres_connect(self.settings)

    def migrate(self) -> list[str]:
        with stores.postgres_connect(self.settings, autocommit=True) as conn:
            return apply_migrations(conn, self.schema, AUTH_MIGRATIONS)

    def ping(self) -> None:
        with self.connect() as conn:
            conn.execute("SELECT 1")

    # -- users -----------------------------------------------------------------------

    def create_user(self, username: str, password: str, role: Role, tenant_id: str) -> UserRecord:
        user_id = uuid.uuid4().hex
        password_hash = hash_password(password)
        try:
            with self.connect() as conn:
                row = conn.execute(
                    self._q(
                        "INSERT INTO {s}.users (user_id, username, password_hash, role, tenant_id)"
                        " VALUES (%s, %s, %s, %s, %s) RETURNING *"
                    ),
                    (user_id, username, password_hash, role.value, tenant_id),
                ).fetchone()
        except psycopg.errors.UniqueViolation as exc:
            raise UserExistsError(f"the username {username!r} is taken") from exc
        assert row is not None
        return UserRecord.from_row(row)

    def user_by_name(self, username: str) -> UserRecord | None:
        with self.connect() as conn:
            row = conn.execute(
                self._q("SELECT * FROM {s}.users WHERE username = %s"), (username,)
            ).fetchone()
        return UserRecord.from_row(row) if row else None

    def user_by_id(self, user_id: str) -> UserRecord | None:
        with self.connect() as conn:
            row = conn.execute(
                self._q("SELECT * FROM {s}.users WHERE user_id = %s"), (user_id,)
            ).fetchone()
        return UserRecord.from_row(row) if row else None

    def authenticate(self, username: str, password: str) -> UserRecord | None:
        user = self.user_by_name(username)
        # Verify even for unknown users, so timing does not tell which names exist.
        valid = verify_password(user.password_hash if user else None, password)
        if user is None or not valid or user.disabled:
            return None
        if user.password_hash and needs_rehash(user.password_hash):
            # Hashed with older parameters: the password is at hand now, so it is hashed
            # again with today's, and the old hash goes.
            self._rehash(user.user_id, user.password_hash, password)
        return user

    def _rehash(self, user_id: str, old_hash: str, password: str) -> None:
        with self.connect() as conn:
            conn.execute(
                self._q(
                    "UPDATE {s}.users SET password_hash = %s"
                    " WHERE user_id = %s AND password_hash = %s"
                ),
                (hash_password(password), user_id, old_hash),
            )

    def admin_exists(self) -> bool:
        with self.connect() as conn:
            row = conn.execute(
                self._q("SELECT 1 FROM {s}.users WHERE role = 'admin' AND NOT disabled LIMIT 1")
            ).fetchone()
        return row is not None

    # -- refresh tokens ----------------------------------------------------------------

    def store_refresh(
        self, jti: str, token: str, family_id: str, user_id: str, expires_at: int
    ) -> None:
        with self.connect() as conn:
            conn.execute(
                self._q(
                    "INSERT INTO {s}.refresh_tokens"
                    " (jti, token_hash, family_id, user_id, expires_at)"
                    " VALUES (%s, %s, %s, %s, to_timestamp(%s))"
                ),
                (jti, digest(token), family_id, user_id, expires_at),
            )

    def rotate_refresh(
        self, old_token: str, new_jti: str, new_token: str, expires_at: int
    ) -> tuple[RefreshOutcome, str | None]:
        """Marks `old_token` used and stores its successor, in one transaction.

        A token that was already used (or revoked) revokes its whole family: whoever holds
        it replayed a stolen or leaked token. Returns the outcome and the user id.
        """
        with self.connect() as conn, conn.transaction():
            row = conn.execute(
                self._q(
                    "SELECT jti, family_id, user_id, replaced_by, revoked_at,"
                    " expires_at < now() AS expired"
                    " FROM {s}.refresh_tokens WHERE token_hash = %s FOR UPDATE"
                ),
                (digest(old_token),),
            ).fetchone()
            if row is None:
                return RefreshOutcome.UNKNOWN, None
            if row["replaced_by"] is not None or row["revoked_at"] is not None:
                self._revoke_family(conn, row["family_id"])
                return RefreshOutcome.REUSED, row["user_id"]
            if row["expired"]:
                return RefreshOutcome.EXPIRED, row["user_id"]
            conn.execute(
                self._q("UPDATE {s}.refresh_tokens SET replaced_by = %s WHERE jti = %s"),
                (new_jti, row["jti"]),
            )
            conn.execute(
                self._q(
                    "INSERT INTO {s}.refresh_tokens"
                    " (jti, token_hash, family_id, user_id, expires_at)"
                    " VALUES (%s, %s, %s, %s, to_timestamp(%s))"
                ),
                (new_jti, digest(new_token), row["family_id"], row["user_id"], expires_at),
            )
            return RefreshOutcome.ROTATED, row["user_id"]

    def _revoke_family(self, conn: stores.PgConnection, family_id: str) -> None:
        conn.execute(
            self._q(
                "UPDATE {s}.refresh_tokens SET revoked_at = now()"
                " WHERE family_id = %s AND revoked_at IS NULL"
            ),
            (family_id,),
        )

    def revoke_refresh_family_of(self, token: str, user_id: str) -> bool:
        """Revokes the family of a refresh token the user presents at logout."""
        with self.connect() as conn:
            row = conn.execute(
                self._q(
                    "SELECT family_id FROM {s}.refresh_tokens"
                    " WHERE token_hash = %s AND user_id = %s"
                ),
                (digest(token), user_id),
            ).fetchone()
            if row is None:
                return False
            self._revoke_family(conn, row["family_id"])
            return True

    # -- access tokens -----------------------------------------------------------------

    def revoke_access(self, jti: str, expires_at: int) -> None:
        with self.connect() as conn:
            conn.execute(
                self._q(
                    "INSERT INTO {s}.revoked_access_tokens (jti, expires_at)"
                    " VALUES (%s, to_timestamp(%s)) ON CONFLICT (jti) DO NOTHING"
                ),
                (jti, expires_at),
            )
            # Entries past their token's expiry protect nothing any more.
            conn.execute(self._q("DELETE FROM {s}.revoked_access_tokens WHERE expires_at < now()"))

    def user_for_access_token(self, user_id: str, jti: str) -> tuple[UserRecord | None, bool]:
        """The token's user and whether the token was revoked, in one round trip."""
        with self.connect() as conn:
            row = conn.execute(
                self._q(
                    "SELECT u.*, EXISTS (SELECT 1 FROM {s}.revoked_access_tokens r"
                    " WHERE r.jti = %s) AS revoked"
                    " FROM (SELECT 1) AS one LEFT JOIN {s}.users u ON u.user_id = %s"
                ),
                (jti, user_id),
            ).fetchone()
        assert row is not None
        user = UserRecord.from_row(row) if row["user_id"] is not None else None
        return user, bool(row["revoked"])

    def access_revoked(self, jti: str) -> bool:
        with self.connect() as conn:
            row = conn.execute(
                self._q("SELECT 1 FROM {s}.revoked_access_tokens WHERE jti = %s"), (jti,)
            ).fetchone()
        return row is not None

    # -- API keys ----------------------------------------------------------------------

    def create_api_key(self, user_id: str, name: str, created_by: str) -> tuple[str, str]:
        """Returns the key id and the key itself, which is shown once and never stored."""
        key_id = uuid.uuid4().hex
        secret = API_KEY_PREFIX + secrets.token_urlsafe(32)
        with self.connect() as conn:
            conn.execute(
                self._q(
                    "INSERT INTO {s}.api_keys (key_id, key_hash, name, user_id, created_by)"
                    " VALUES (%s, %s, %s, %s, %s)"
                ),
                (key_id, digest(secret), name, user_id, created_by),
            )
        return key_id, secret

    def user_for_api_key(self, secret: str) -> tuple[UserRecord, str] | None:
        with self.connect() as conn:
            row = conn.execute(
                self._q(
                    "SELECT u.*, k.key_id FROM {s}.api_keys k"
                    " JOIN {s}.users u USING (user_id)"
                    " WHERE k.key_hash = %s AND k.revoked_at IS NULL AND NOT u.disabled"
                ),
                (digest(secret),),
            ).fetchone()
        return (UserRecord.from_row(row), row["key_id"]) if row else None

    def revoke_api_key(self, key_id: str, tenant_id: str) -> bool:
        """Revokes a key of a user in `tenant_id`; False when there is no such active key."""
        with self.connect() as conn:
            row = conn.execute(
                self._q(
                    "UPDATE {s}.api_keys k SET revoked_at = now() FROM {s}.users u"
                    " WHERE k.key_id = %s AND k.user_id = u.user_id AND u.tenant_id = %s"
                    " AND k.revoked_at IS NULL RETURNING k.key_id"
                ),
                (key_id, tenant_id),
            ).fetchone()
        return row is not None
