"""The OpenAPI document states every error response an operation can give, derived from
`service.errors.FAILURE_TABLE` so the two cannot drift.

Two sources, one rendering (`failures`):
- what a route itself raises: declared on the route, `responses=failures(NotFoundError, ...)`;
- what the layers around every route add, computed here from the same facts the middlewares act
  on (`document_failures`): 401 (and 403 for admin routes) from the key a route declares
  (`declared_role`), 503 `shutting_down` for every path the drain refuses (not the probes nor
  /metrics), 413 for every method the body cap reads (not GET), 400 for an operation with
  parameters or a body (request validation), 500 for every operation (a bug).
Every error response names its `code`s (`x-error-codes`) and the headers its rows always send
(`WWW-Authenticate` on 401, `Retry-After` on 429 and 503). FastAPI's own 422 is removed: the
service answers validation errors with 400. 499 is never sent (the client has gone), so never listed.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from service.api.auth import Auth, declared_role
from service.api.body_limit import BODYLESS_METHODS
from service.api.errors import ErrorResponse, error_response_doc, failures
from service.api.keys import Role
from service.api.lifecycle import OPEN_WHILE_DRAINING
from service.generation import GenerationSettings
from service.errors import (
    AuthenticationError,
    InvalidRequestError,
    PayloadTooLargeError,
    PermissionDeniedError,
    ShuttingDownError,
    UnrecognizedArgumentError,
)

SECURITY_SCHEME = "bearerAuth"
BUG = BaseException  # the table's last row: anything unexpected is a 500 that says nothing


def _has_parameters(dependant: Dependant) -> bool:
    """Whether the route (or a dependency, e.g. admission's, which carries the body) reads input."""
    if dependant.body_params or dependant.query_params or dependant.header_params or dependant.path_params:
        return True
    return any(_has_parameters(dep) for dep in dependant.dependencies)


def layer_failures(route: APIRoute, method: str, auth: Auth) -> list[type[BaseException]]:
    """What the layers around a route add to its own errors (see the module's docstring)."""
    kinds: list[type[BaseException]] = [BUG]
    role = declared_role(route, auth)
    if role >= Role.API:
        kinds.append(AuthenticationError)
    if role >= Role.ADMIN:
        kinds.append(PermissionDeniedError)
    if route.path not in OPEN_WHILE_DRAINING:
        kinds.append(ShuttingDownError)
    if method.upper() not in BODYLESS_METHODS:
        kinds.append(PayloadTooLargeError)
    if _has_parameters(route.dependant):
        kinds += [InvalidRequestError, UnrecognizedArgumentError]
    return kinds


def _merge(into: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """Two error responses of one status: the union of codes, the headers both always send."""
    if "x-error-codes" not in into:  # a route's own non-error reply (a probe's 503): left as it is
        return into
    codes = sorted({*into["x-error-codes"], *new["x-error-codes"]})
    headers = {name.lower() for name in into.get("headers", {})} & {name.lower() for name in new.get("headers", {})}
    return error_response_doc(codes, headers)


def document_failures(app: FastAPI, schema: dict[str, Any], auth: Auth) -> dict[str, Any]:
    """Every operation's error responses (its own and its layers'), FastAPI's 422 dropped, and
    the bearer key scheme on the operations that need a key."""
    components = schema.setdefault("components", {})
    components.setdefault("securitySchemes", {})[SECURITY_SCHEME] = {
        "type": "http", "scheme": "bearer", "description": "An API key (an admin key for /admin)."}
    schemas = components.setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    schemas.setdefault("ErrorResponse", ErrorResponse.model_json_schema(ref_template="#/components/schemas/{model}"))
    for route in app.routes:
        if not isinstance(route, APIRoute) or not route.include_in_schema:
            continue
        for method in route.methods:
            operation = schema["paths"].get(route.path_format, {}).get(method.lower())
            if operation is None:
                continue
            responses: dict[str, Any] = operation.setdefault("responses", {})
            responses.pop("422", None)
            for status, response in failures(*layer_failures(route, method, auth)).items():
                key = str(status)
                responses[key] = _merge(responses[key], response) if key in responses else response
            for response in responses.values():
                response.pop("model", None)
            operation["responses"] = dict(sorted(responses.items()))
            if declared_role(route, auth) >= Role.API:
                operation["security"] = [{SECURITY_SCHEME: []}]
    return schema


def document_limits(schema: dict[str, Any], limits: GenerationSettings) -> dict[str, Any]:
    """The configured caps the service refuses past with 400 (`max_tokens_limit`, `max_n`) as the
    generation requests' `maximum`, so a client (or a fuzzer) reads them from the document."""
    schemas = schema.get("components", {}).get("schemas", {})
    for model in ("ChatCompletionRequest", "CompletionRequest"):
        properties = schemas.get(model, {}).get("properties", {})
        for name, cap in (("max_tokens", limits.max_tokens_limit), ("max_completion_tokens", limits.max_tokens_limit),
                          ("n", limits.max_n)):
            prop = properties.get(name)
            for branch in (prop.get("anyOf", [prop]) if prop else []):
                if branch.get("type") == "integer":
                    branch["maximum"] = cap
    return schema


def install_openapi(app: FastAPI, auth: Auth, limits: GenerationSettings) -> None:
    """`app.openapi()` (and /openapi.json) with `document_failures` and `document_limits` applied, built once."""
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description,
                                 routes=app.routes)
            app.openapi_schema = document_limits(document_failures(app, schema, auth), limits)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
