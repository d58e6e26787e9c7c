"""Roles, permissions and how far a principal sees into its tenant's media."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    ADMIN = "admin"
    OPERATOR = "operator"
    USER = "user"
    VIEWER = "viewer"


class Permission(StrEnum):
    UPLOAD = "upload"
    READ = "read"
    # Originals and outputs that show them; without it a reader gets anonymised copies only.
    READ_ORIGINALS = "read_originals"
    MANAGE_USERS = "manage_users"
    REPLAY = "replay"


ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.ADMIN: frozenset(Permission),
    Role.OPERATOR: frozenset({Permission.UPLOAD, Permission.READ, Permission.READ_ORIGINALS}),
    Role.USER: frozenset({Permission.UPLOAD, Permission.READ, Permission.READ_ORIGINALS}),
    # Viewers see anonymised media only: no original, no output showing it.
    Role.VIEWER: frozenset({Permission.READ}),
}

# Roles that read every media item of their tenant; the others read only their own.
TENANT_WIDE_ROLES = frozenset({Role.ADMIN, Role.OPERATOR})


@dataclass(frozen=True)
class Principal:
    """Who is calling: from a verified access token or an API key."""

    user_id: str
    username: str
    role: Role
    tenant_id: str
    # The access token's id (None for API keys), so logout can revoke it.
    token_id: str | None = None
    token_expires_at: int | None = None
    api_key_id: str | None = None

    def can(self, permission: Permission) -> bool:
        return permission in ROLE_PERMISSIONS[self.role]

    @property
    def owner_filter(self) -> str | None:
        """The owner every media query is narrowed to; None where the tenant is visible."""
        return None if self.role in TENANT_WIDE_ROLES else self.user_id
