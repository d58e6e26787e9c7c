"""Login, token refresh, logout, the caller's identity, and admin user and key management."""

from __future__ import annotations

import json
import uuid
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from api.auth.dependencies import Admin, CurrentPrincipal
from api.auth.roles import Role
from api.auth.store import RefreshOutcome, UserExistsError, UserRecord
from api.auth.tokens import InvalidTokenError, IssuedToken
from api.context import ApiContext, get_context
from api.params import NO_NUL, PathId
from api.problems import ApiError, bad_request, not_found, problem_responses, unauthorized

router = APIRouter(prefix="/v1", tags=["auth"])

Context = Annotated[ApiContext, Depends(get_context)]
_MAX_CREDENTIAL_BODY = 16 * 1024
ModelT = TypeVar("ModelT", bound=BaseModel)


class PasswordGrant(BaseModel):
    grant_type: Literal["password"] = "password"
    username: str = Field(min_length=1, max_length=200, pattern=NO_NUL)
    password: str = Field(min_length=1, max_length=1024, pattern=NO_NUL)


class RefreshRequest(BaseModel):
    refresh_token: str = Field(min_length=1, max_length=8192, pattern=NO_NUL)


class LogoutRequest(BaseModel):
    refresh_token: str | None = Field(default=None, max_length=8192, pattern=NO_NUL)


class TokenResponse(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int
    refresh_token: str
    refresh_expires_in: int


class UserOut(BaseModel):
    user_id: str
    username: str
    role: Role
    tenant_id: str


class MeOut(UserOut):
    authenticated_by: Literal["token", "api_key"]


class UserCreate(BaseModel):
    username: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.@-]+$")
    password: str = Field(min_length=8, max_length=1024)
    role: Role = Role.USER


class ApiKeyCreate(BaseModel):
    user_id: str = Field(min_length=1, max_length=200, pattern=NO_NUL)
    name: str = Field(min_length=1, max_length=200, pattern=NO_NUL)


class ApiKeyCreated(BaseModel):
    key_id: str
    name: str
    user_id: str
    role: Role
    api_key: str = Field(description="The key itself; shown only in this response.")


def _user_out(user: UserRecord) -> UserOut:
    return UserOut(
        user_id=user.user_id, username=user.username, role=user.role, tenant_id=user.tenant_id
    )


async def _credential_body(request: Request) -> dict[str, Any]:
    """The body as a dict, from JSON or an urlencoded form (OAuth 2 clients send forms)."""
    raw = await request.body()
    if len(raw) > _MAX_CREDENTIAL_BODY:
        raise bad_request("the request body is too large")
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/x-www-form-urlencoded":
        try:
            fields = parse_qs(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
        except UnicodeDecodeError as exc:
            raise bad_request("the form is not UTF-8") from exc
        return {name: values[-1] for name, values in fields.items()}
    if content_type in ("application/json", ""):
        try:
            body = json.loads(raw or b"null")
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise bad_request(f"the body is not JSON: {exc}") from exc
        if not isinstance(body, dict):
            raise bad_request("the body must be a JSON object")
        return body
    raise ApiError(
        415,
        "unsupported_media_type",
        "Unsupported media type",
        "send application/json or application/x-www-form-urlencoded",
    )


def _parse(model: type[ModelT], body: dict[str, Any]) -> ModelT:
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        errors = [
            {"loc": [str(p) for p in e["loc"]], "msg": e["msg"], "type": e["type"]}
            for e in exc.errors()
        ]
        detail = "; ".join(f"{'.'.join(e['loc'])}: {e['msg']}" for e in errors[:5])
        raise ApiError(
            422, "validation_error", "Request validation failed", detail, extra={"errors": errors}
        ) from exc


def _body_schema(*models: type[BaseModel], form: bool = True) -> dict[str, Any]:
    schema = models[0].model_json_schema()
    content: dict[str, Any] = {"application/json": {"schema": schema}}
    if form:
        content["application/x-www-form-urlencoded"] = {"schema": schema}
    return {"requestBody": {"required": True, "content": content}}


def _issue_pair(
    context: ApiContext, user: UserRecord, family: str | None = None
) -> tuple[TokenResponse, IssuedToken]:
    """A new access and refresh token; a new family (a new session) unless one is given."""
    api = context.settings.api
    family_id = family or uuid.uuid4().hex
    access = context.tokens.issue(
        "access",
        subject=user.user_id,
        username=user.username,
        role=user.role.value,
        tenant=user.tenant_id,
    )
    refresh = context.tokens.issue(
        "refresh",
        subject=user.user_id,
        username=user.username,
        role=user.role.value,
        tenant=user.tenant_id,
        family=family_id,
    )
    if family is None:
        context.auth.store_refresh(
            refresh.jti, refresh.token, family_id, user.user_id, refresh.expires_at
        )
    pair = TokenResponse(
        access_token=access.token,
        expires_in=api.access_token_ttl_s,
        refresh_token=refresh.token,
        refresh_expires_in=api.refresh_token_ttl_s,
    )
    return pair, refresh


@router.post(
    "/token",
    response_model=TokenResponse,
    summary="Log in with username and password (OAuth 2 password grant)",
    openapi_extra=_body_schema(PasswordGrant),
    responses=problem_responses(400, 401, 415, 422),
)
async def token(request: Request, context: Context) -> TokenResponse:
    grant = _parse(PasswordGrant, await _credential_body(request))
    user = await run_in_threadpool(context.auth.authenticate, grant.username, grant.password)
    if user is None:
        raise unauthorized("wrong username or password", error="invalid_grant")
    pair, _ = await run_in_threadpool(_issue_pair, context, user)
    return pair


def _refresh(context: ApiContext, refresh_token: str) -> TokenResponse:
    try:
        claims = context.tokens.decode(refresh_token, "refresh")
    except InvalidTokenError as exc:
        raise unauthorized(str(exc)) from exc
    user = context.auth.user_by_id(claims.subject)
    if user is None or user.disabled:
        raise unauthorized("the token's user no longer exists or is disabled")
    pair, successor = _issue_pair(context, user, family=claims.family)
    outcome, _ = context.auth.rotate_refresh(
        refresh_token, successor.jti, successor.token, successor.expires_at
    )
    if outcome is RefreshOutcome.REUSED:
        raise unauthorized("the refresh token was already used; its session is revoked")
    if outcome is not RefreshOutcome.ROTATED:
        raise unauthorized(f"the refresh token is {outcome.value}")
    return pair


@router.post(
    "/token/refresh",
    response_model=TokenResponse,
    summary="Exchange a refresh token for a new pair (the old one is used up)",
    openapi_extra=_body_schema(RefreshRequest),
    responses=problem_responses(400, 401, 415, 422),
)
async def refresh(request: Request, context: Context) -> TokenResponse:
    body = _parse(RefreshRequest, await _credential_body(request))
    return await run_in_threadpool(_refresh, context, body.refresh_token)


@router.post(
    "/logout",
    status_code=204,
    response_class=Response,
    summary="Revoke the access token and, when given, the refresh token's session",
    responses=problem_responses(401, 422),
)
def logout(
    principal: CurrentPrincipal, context: Context, body: LogoutRequest | None = None
) -> Response:
    if principal.token_id is not None and principal.token_expires_at is not None:
        context.auth.revoke_access(principal.token_id, principal.token_expires_at)
    if body is not None and body.refresh_token:
        context.auth.revoke_refresh_family_of(body.refresh_token, principal.user_id)
    return Response(status_code=204)


@router.get("/me", response_model=MeOut, responses=problem_responses(401))
def me(principal: CurrentPrincipal) -> MeOut:
    return MeOut(
        user_id=principal.user_id,
        username=principal.username,
        role=principal.role,
        tenant_id=principal.tenant_id,
        authenticated_by="api_key" if principal.api_key_id else "token",
    )


@router.post(
    "/users",
    status_code=201,
    response_model=UserOut,
    tags=["admin"],
    summary="Create a user in the admin's tenant",
    responses=problem_responses(401, 403, 409, 422),
)
def create_user(body: UserCreate, principal: Admin, context: Context) -> UserOut:
    try:
        user = context.auth.create_user(
            body.username, body.password, body.role, principal.tenant_id
        )
    except UserExistsError as exc:
        raise ApiError(409, "conflict", "User exists", str(exc)) from exc
    return _user_out(user)


@router.post(
    "/api-keys",
    status_code=201,
    response_model=ApiKeyCreated,
    tags=["admin"],
    summary="Create an API key acting as a user (with that user's role)",
    responses=problem_responses(401, 403, 404, 422),
)
def create_api_key(body: ApiKeyCreate, principal: Admin, context: Context) -> ApiKeyCreated:
    user = context.auth.user_by_id(body.user_id)
    if user is None or user.tenant_id != principal.tenant_id:
        raise not_found(f"no user {body.user_id!r}")
    key_id, secret = context.auth.create_api_key(user.user_id, body.name, principal.user_id)
    return ApiKeyCreated(
        key_id=key_id, name=body.name, user_id=user.user_id, role=user.role, api_key=secret
    )


@router.delete(
    "/api-keys/{key_id}",
    status_code=204,
    response_class=Response,
    tags=["admin"],
    summary="Revoke an API key",
    responses=problem_responses(401, 403, 404, 422),
)
def revoke_api_key(key_id: PathId, principal: Admin, context: Context) -> Response:
    if not context.auth.revoke_api_key(key_id, principal.tenant_id):
        raise not_found(f"no active API key {key_id!r}")
    return Response(status_code=204)
