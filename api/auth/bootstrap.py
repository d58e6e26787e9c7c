"""Creates the local admin on first start, so a fresh install can be logged into."""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

from api.auth.roles import Role
from api.auth.store import AuthStore, UserExistsError
from visionlog.settings import Settings

log = logging.getLogger(__name__)

ADMIN_PASSWORD_FILE = "admin-password"


class AdminBootstrapError(Exception):
    """The admin username is taken by a user who is not an admin."""


def admin_password_path(settings: Settings) -> Path:
    return settings.state_dir / "api" / ADMIN_PASSWORD_FILE


def _write_secret(path: Path, value: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    # An existing file keeps its mode through O_CREAT; tighten it explicitly.
    os.fchmod(descriptor, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(value + "\n")


def ensure_admin(settings: Settings, *, store: AuthStore | None = None) -> tuple[str, str | None]:
    """Creates the admin `settings.api.admin_username` when no admin exists.

    Returns the username and the password when one was generated (then also written to
    `state_dir/api/admin-password`, mode 0600); None when an admin existed or the password
    came from the settings.
    """
    store = store or AuthStore(settings)
    username = settings.api.admin_username
    if store.admin_exists():
        return username, None
    configured = settings.api.admin_password
    password = configured.get_secret_value() if configured else secrets.token_urlsafe(18)
    try:
        store.create_user(username, password, Role.ADMIN, settings.tenant_id)
    except UserExistsError as exc:
        if store.admin_exists():
            return username, None  # another process bootstrapped at the same moment
        raise AdminBootstrapError(
            f"no admin exists and the username {username!r} belongs to a non-admin user"
        ) from exc
    if configured is not None:
        return username, None
    path = admin_password_path(settings)
    _write_secret(path, password)
    log.warning("created the admin %r; its generated password is in %s", username, path)
    return username, password
