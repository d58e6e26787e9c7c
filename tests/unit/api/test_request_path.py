"""The API's per-request shortcuts: verified-token cache, TTL cache, rebound ingest
dependencies, the Mongo scope check and the worker count (no servers)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import pytest
from fastapi import APIRouter, Depends, FastAPI
from fastapi.testclient import TestClient

from api.auth.keys import load_signing_key
from api.auth.roles import Principal, Role
from api.auth.tokens import InvalidTokenError, TokenService, VerifiedTokens
from api.readmodels import in_scope_mongo, scope_mongo
from api.rebind import rebound_router
from api.responses import TtlCache
from api.serve import worker_count
from visionlog.settings import QdrantSettings, Settings


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(state_dir=tmp_path / "state")


def test_a_token_is_verified_once_and_served_until_it_expires(settings: Settings) -> None:
    clock = Clock()
    service = TokenService(load_signing_key(settings), settings.api, VerifiedTokens(clock=clock))
    issued = service.issue("access", subject="u1", username="a", role="user", tenant="t1")
    clock.now = issued.expires_at - 100
    first = service.decode(issued.token, "access")
    assert len(service.verified) == 1
    assert service.decode(issued.token, "access") is first
    # The type is part of the key: an access token is no refresh token, cached or not.
    with pytest.raises(InvalidTokenError, match="expected a refresh token"):
        service.decode(issued.token, "refresh")
    # Within the leeway it still passes; past it the cache refuses as PyJWT would.
    clock.now = issued.expires_at + 4
    assert service.decode(issued.token, "access") is first
    clock.now = issued.expires_at + 5
    with pytest.raises(InvalidTokenError, match="expired"):
        service.decode(issued.token, "access")
    assert len(service.verified) == 0


def test_forged_tokens_are_never_cached(settings: Settings) -> None:
    service = TokenService(load_signing_key(settings), settings.api)
    issued = service.issue("access", subject="u1", username="a", role="user", tenant="t1")
    forged = issued.token[:-4] + ("AAAA" if not issued.token.endswith("AAAA") else "BBBB")
    for _ in range(2):
        with pytest.raises(InvalidTokenError):
            service.decode(forged, "access")
    assert len(service.verified) == 0


def test_the_verified_token_cache_is_bounded() -> None:
    from api.auth.tokens import TokenClaims

    cache = VerifiedTokens(size=2, clock=Clock(0))
    claims = TokenClaims("u", "user", "t", "j", 10**9, None, "a")
    for token in ("a", "b", "c"):
        cache.put(token, "access", claims)
    assert len(cache) == 2
    assert cache.get("a", "access") is None
    assert cache.get("c", "access") is claims


def test_ttl_cache_expires_and_evicts() -> None:
    clock = Clock()
    cache = TtlCache(ttl_s=1.0, size=2, clock=clock)
    cache.put("a", b"1")
    cache.put("b", b"2")
    assert cache.get("a") == b"1"
    cache.put("c", b"3")  # "b" is the least recently used
    assert cache.get("b") is None
    clock.now += 2.0  # long stale, nobody refreshing: gone
    assert cache.get("a") is None
    assert cache.get("a") is None
    off = TtlCache(ttl_s=0)
    off.put("a", b"1")
    assert off.get("a") is None


def test_ttl_cache_lets_one_reader_refresh_a_stale_entry() -> None:
    clock = Clock()
    cache = TtlCache(ttl_s=1.0, clock=clock)
    cache.put("a", b"old")
    clock.now += 1.0
    assert cache.get("a") is None  # the first reader refreshes it
    assert cache.get("a") == b"old"  # the others get the stale value meanwhile
    cache.put("a", b"new")
    assert cache.get("a") == b"new"
    clock.now += 1.0
    assert cache.get("a") is None
    cache.discard("a")  # the refresh found it changed: nobody gets the old value
    assert cache.get("a") is None
    cache.put("a", b"x")
    clock.now += 1.0
    assert cache.get("a") is None
    clock.now += 1.0  # the refresher never came back: the next reader tries
    assert cache.get("a") is None


def placeholder() -> str:
    return "placeholder"


def replacement() -> str:
    return "replaced"


def test_rebound_routes_use_the_replacement_without_overrides() -> None:
    source = APIRouter()

    @source.get("/who", summary="Who answers")
    async def who(name: Annotated[str, Depends(placeholder)], n: int = 1) -> dict[str, str]:
        """Says who answers."""
        return {"name": name * n}

    app = FastAPI()
    app.include_router(rebound_router(source, {placeholder: replacement}), prefix="/v1")
    assert not app.dependency_overrides
    with TestClient(app) as client:
        assert client.get("/v1/who", params={"n": 2}).json() == {"name": "replacedreplaced"}
    operation = app.openapi()["paths"]["/v1/who"]["get"]
    assert operation["summary"] == "Who answers"
    assert operation["description"] == "Says who answers."
    assert operation["operationId"] == "who_v1_who_get"


def test_mongo_scope_check_matches_the_filter() -> None:
    admin = Principal("u1", "a", Role.ADMIN, "t1")
    user = Principal("u1", "a", Role.USER, "t1")
    mine = {"_id": "m", "tenant_id": "t1", "owner_id": "u1"}
    theirs = {"_id": "m", "tenant_id": "t1", "owner_id": "u2"}
    other_tenant = {"_id": "m", "tenant_id": "t2", "owner_id": "u1"}
    for principal in (admin, user):
        for document in (mine, theirs, other_tenant):
            matches = all(document.get(k) == v for k, v in scope_mongo(principal).items())
            assert in_scope_mongo(document, principal) is matches
    assert in_scope_mongo(theirs, admin) and not in_scope_mongo(theirs, user)
    assert not in_scope_mongo(other_tenant, admin)


def test_workers_only_with_a_qdrant_server(settings: Settings) -> None:
    several = settings.model_copy(update={"api": settings.api.model_copy(update={"workers": 3})})
    assert worker_count(several) == 1  # embedded Qdrant: one process
    server = several.model_copy(update={"qdrant": QdrantSettings(url="http://qdrant:6333")})
    assert worker_count(server) == 3
    hosting = server.model_copy(
        update={"projections": server.projections.model_copy(update={"qdrant_in_api": True})}
    )
    assert worker_count(hosting) == 1
    elsewhere = server.model_copy(
        update={"projections": server.projections.model_copy(update={"qdrant_in_api": False})}
    )
    assert worker_count(elsewhere) == 3
