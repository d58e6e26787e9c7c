"""FastAPI dependencies resolving the caller (bearer token or API key) and its rights."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from api.auth.roles import Permission, Principal, Role
from api.auth.tokens import InvalidTokenError
from api.context import ApiContext, get_context
from api.problems import forbidden, unauthorized

bearer_scheme = HTTPBearer(auto_error=False, scheme_name="bearerAuth")
api_key_scheme = APIKeyHeader(name="X-API-Key", auto_error=False, scheme_name="apiKeyAuth")


def current_principal(
    context: Annotated[ApiContext, Depends(get_context)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer_scheme)],
    api_key: Annotated[str | None, Security(api_key_scheme)],
) -> Principal:
    if credentials is not None:
        try:
            claims = context.tokens.decode(credentials.credentials, "access")
        except InvalidTokenError as exc:
            raise unauthorized(str(exc)) from exc
        user, revoked = context.auth.user_for_access_token(claims.subject, claims.jti)
        if revoked:
            raise unauthorized("the token has been revoked")
        if user is None or user.disabled:
            raise unauthorized("the token's user no longer exists or is disabled")
        # Role and tenant come from the user row, so a role change applies at once.
        return Principal(
            user_id=user.user_id,
            username=user.username,
            role=user.role,
            tenant_id=user.tenant_id,
            token_id=claims.jti,
            token_expires_at=claims.expires_at,
        )
    if api_key:
        found = context.auth.user_for_api_key(api_key)
        if found is None:
            raise unauthorized("the API key is unknown or revoked", error="invalid_token")
        user, key_id = found
        return Principal(
            user_id=user.user_id,
            username=user.username,
            role=user.role,
            tenant_id=user.tenant_id,
            api_key_id=key_id,
        )
    raise unauthorized("send a bearer token or an X-API-Key header", error="invalid_request")


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def require(permission: Permission) -> Callable[[Principal], Awaitable[Principal]]:
    """A dependency that answers 403 unless the principal's role grants `permission`."""

    # Async: a check this small costs less on the event loop than a trip to a thread.
    async def check(principal: CurrentPrincipal) -> Principal:
        if not principal.can(permission):
            raise forbidden(f"the role {principal.role.value!r} may not {permission.value}")
        return principal

    return check


Reader = Annotated[Principal, Depends(require(Permission.READ))]
Uploader = Annotated[Principal, Depends(require(Permission.UPLOAD))]
Admin = Annotated[Principal, Depends(require(Permission.MANAGE_USERS))]
Replayer = Annotated[Principal, Depends(require(Permission.REPLAY))]

__all__ = ["Admin", "CurrentPrincipal", "Reader", "Replayer", "Role", "Uploader", "require"]
