"""Routes of another router with some of their dependencies replaced, without
`app.dependency_overrides`.

With any override registered, FastAPI rebuilds the dependency tree of every sub-dependency
of every request (`get_dependant`, signature inspection included): under load that was a
seventh of the API's CPU. The API replaces the ingest router's placeholders (owner,
ingestor, listener) once, at startup, by giving each endpoint a signature whose `Depends`
name the API's own callables; the OpenAPI stays the same.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Annotated, Any, get_args, get_origin, get_type_hints

from fastapi import APIRouter, Depends
from fastapi import params as fastapi_params
from fastapi.routing import APIRoute

Replacements = Mapping[Callable[..., Any], Callable[..., Any]]


def _replace(metadata: Any, replacements: Replacements) -> Any:
    if isinstance(metadata, fastapi_params.Depends):
        dependency = metadata.dependency
        if dependency is not None and dependency in replacements:
            return Depends(replacements[dependency], use_cache=metadata.use_cache)
    return metadata


def rebind(endpoint: Callable[..., Any], replacements: Replacements) -> Callable[..., Any]:
    """`endpoint` with the dependencies in `replacements` swapped in its signature."""
    hints = get_type_hints(endpoint, include_extras=True)
    signature = inspect.signature(endpoint)
    parameters = []
    for parameter in signature.parameters.values():
        annotation = hints.get(parameter.name, parameter.annotation)
        default = _replace(parameter.default, replacements)
        if get_origin(annotation) is Annotated:
            base, *metadata = get_args(annotation)
            annotation = Annotated.__class_getitem__(
                (base, *(_replace(item, replacements) for item in metadata))
            )
        parameters.append(parameter.replace(annotation=annotation, default=default))

    if inspect.iscoroutinefunction(endpoint):

        @functools.wraps(endpoint)
        async def rebound(*args: Any, **kwargs: Any) -> Any:
            return await endpoint(*args, **kwargs)

    else:

        @functools.wraps(endpoint)
        def rebound(*args: Any, **kwargs: Any) -> Any:
            return endpoint(*args, **kwargs)

    rebound.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=parameters,
        return_annotation=hints.get("return", signature.return_annotation),
    )
    return rebound


def rebound_router(source: APIRouter, replacements: Replacements) -> APIRouter:
    """A router with `source`'s routes, their dependencies replaced."""
    router = APIRouter()
    for route in source.routes:
        if not isinstance(route, APIRoute):
            raise TypeError(f"cannot rebind {route!r}: only API routes are supported")
        router.add_api_route(
            route.path,
            rebind(route.endpoint, replacements),
            methods=sorted(route.methods or ()),
            status_code=route.status_code,
            response_model=route.response_model,
            responses=route.responses,
            tags=route.tags,
            dependencies=route.dependencies,
            summary=route.summary,
            description=route.description,
            response_description=route.response_description,
            deprecated=route.deprecated,
            name=route.name,
            operation_id=route.operation_id,
            include_in_schema=route.include_in_schema,
            response_class=route.response_class,
            openapi_extra=route.openapi_extra,
            response_model_include=route.response_model_include,
            response_model_exclude=route.response_model_exclude,
            response_model_by_alias=route.response_model_by_alias,
            response_model_exclude_unset=route.response_model_exclude_unset,
            response_model_exclude_defaults=route.response_model_exclude_defaults,
            response_model_exclude_none=route.response_model_exclude_none,
        )
    return router
