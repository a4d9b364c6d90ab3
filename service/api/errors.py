"""Every error leaves the service in OpenAI's shape: {"error": {message, type, param, code}}, built
by one function, `failure_response`, from its row of `service.errors.FAILURE_TABLE`: the routes'
errors, authentication, admission, the body cap, the drain, request validation and Starlette's own
(404, 405) alike, each counted in `loragate_error_responses_total{status,code}`."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pydantic import BaseModel

from service.api.limits import Refusal
from service.engine.types import EngineRequestError, EngineUnavailableError, GenerationFailedError
from service.errors import (
    AuthenticationError,
    ConflictError,
    ContextLengthExceededError,
    DependencyFailedError,
    EngineNotReadyError,
    Failure,
    InvalidRequestError,
    MethodNotAllowedError,
    ModelNotFoundError,
    NotFoundError,
    OverloadedError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RateLimitedError,
    RequestTimeoutError,
    ServiceError,
    UnrecognizedArgumentError,
    UnsupportedMediaTypeError,
    UpstreamGenerationError,
    as_service_error,
    failure_of,
    table_row,
)

logger = logging.getLogger(__name__)


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None

    @classmethod
    def of(cls, error: ServiceError) -> ErrorDetail:
        return cls(message=error.message, type=error.type, param=error.param, code=error.code)


class ErrorResponse(BaseModel):
    error: ErrorDetail


# ------------------------------------------------------------------ the OpenAPI document's error responses
_HEADER_SCHEMAS = {"retry-after": {"type": "string", "pattern": "^[0-9]+$"}, "www-authenticate": {"type": "string"}}


def _sent_headers(row: Failure) -> set[str]:
    """The documented headers a row always sends."""
    names = {name for name, _ in row.headers} | ({"retry-after"} if row.retry_after is not None else set())
    return names & set(_HEADER_SCHEMAS)


def error_response_doc(codes: list[str], headers: set[str]) -> dict[str, Any]:
    """One error response of the document: the ErrorResponse body, its codes (`x-error-codes`: the
    table's; a raise site may send a more specific one of the same row) and the headers it always has."""
    response: dict[str, Any] = {
        "model": ErrorResponse,  # FastAPI registers the schema; `service.api.openapi` drops the key
        "description": f"An error; `code`: {', '.join(codes)}.",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}},
        "x-error-codes": codes,
    }
    if headers:
        response["headers"] = {name.title(): {"required": True, "schema": _HEADER_SCHEMAS[name]}
                               for name in sorted(headers)}
    return response


def failures(*kinds: type[BaseException]) -> dict[int | str, dict[str, Any]]:
    """The `responses=` of a route that raises these kinds: one per status, from the kinds' rows of
    FAILURE_TABLE (their codes; the headers all of a status's rows send). 499 is never sent."""
    by_status: dict[int, list[Failure]] = {}
    for kind in kinds:
        row = table_row(kind)
        if row.status != 499:
            by_status.setdefault(row.status, []).append(row)
    return {status: error_response_doc(sorted({row.code for row in rows if row.code}),
                                       set.intersection(*(_sent_headers(row) for row in rows)))
            for status, rows in sorted(by_status.items())}


# What a generation (chat, completion, triage) may fail with, from admission to the engine's last token.
GENERATION_FAILURES: tuple[type[BaseException], ...] = (
    InvalidRequestError, ContextLengthExceededError, ModelNotFoundError, ConflictError, RateLimitedError,
    DependencyFailedError, UpstreamGenerationError, EngineNotReadyError, OverloadedError, RequestTimeoutError,
    EngineUnavailableError, EngineRequestError, GenerationFailedError, TimeoutError,
)

# Starlette's own errors (a path no route serves, a method a route does not take, ...) as table rows.
_HTTP_ERRORS: dict[int, type[ServiceError]] = {
    400: InvalidRequestError, 401: AuthenticationError, 403: PermissionDeniedError, 404: NotFoundError,
    405: MethodNotAllowedError, 409: ConflictError, 413: PayloadTooLargeError, 415: UnsupportedMediaTypeError,
    429: RateLimitedError,
}


def _validation_param(loc: tuple[int | str, ...]) -> str | None:
    # Drop the "body" prefix and pydantic's union-branch names so `param` reads like OpenAI's.
    location = loc[1:] if loc and loc[0] == "body" else loc
    parts = [str(part) for part in location
             if str(part) != "str" and not str(part).startswith(("function-", "list[", "dict[", "constrained"))]
    return ".".join(parts) or None


def validation_error(exc: RequestValidationError) -> InvalidRequestError:
    """The 400 for a body, query or header FastAPI could not validate; a field a nested object does
    not declare is OpenAI's `unrecognized_argument`, like an unknown top-level one."""
    errors = exc.errors()
    if not errors:
        return InvalidRequestError("Invalid request.")
    first = errors[0]
    if first.get("type") == "json_invalid":
        return InvalidRequestError("We could not parse the JSON body of your request: it is not valid JSON.")
    param = _validation_param(tuple(first.get("loc", ())))
    if first.get("type") in ("model_attributes_type", "dict_type") and param is None:
        return InvalidRequestError("The request body must be a JSON object.")
    # A union (`content`: a string or parts) reports every branch; an unknown field is the news.
    unknown = next((e for e in errors if e.get("type") == "extra_forbidden"), None)
    unknown_param = _validation_param(tuple(unknown.get("loc", ()))) if unknown is not None else None
    if unknown_param:
        return UnrecognizedArgumentError(unknown_param)
    message = first.get("msg", "Invalid value")
    if param:
        message = f"Invalid value for '{param}': {message}"
    extra = len(errors) - 1
    if extra > 0:
        message += f" (and {extra} more problem{'s' if extra > 1 else ''})"
    return InvalidRequestError(message, param=param)


def http_error(exc: StarletteHTTPException) -> ServiceError:
    """Starlette's own errors as the table's: a status without a row of its own is a bare one's."""
    kind = _HTTP_ERRORS.get(exc.status_code)
    if kind is not None:
        return kind(str(exc.detail))
    return ServiceError(str(exc.detail), failure=replace(table_row(ServiceError), status=exc.status_code,
                                                         outcome=str(exc.status_code)))


def count_failure(failure: Failure, app: Any) -> None:
    """`loragate_error_responses_total{status,code}` of the running app (none in bare test apps)."""
    metrics = getattr(getattr(getattr(app, "state", None), "services", None), "metrics", None)
    if metrics is not None and hasattr(metrics, "error_responses"):
        metrics.error_responses.labels(status=str(failure.status), code=failure.code or "").inc()


def failure_response(failure: Failure, message: str, param: str | None = None,
                     headers: Mapping[str, str] | None = None, app: Any = None) -> JSONResponse:
    """Every error response the service writes: the table row's status, type, code and headers
    (`Retry-After` from the row, or the error's own wait), the message and param, the call's own
    headers (a 401's precise challenge, a 405's `Allow`, a 429's `x-ratelimit-*`); counted."""
    body = ErrorResponse(error=ErrorDetail(message=message, type=failure.type, param=param, code=failure.code))
    sent = dict(failure.headers)
    if failure.retry_after is not None:
        sent["retry-after"] = str(failure.retry_after)
    sent.update(headers or {})
    count_failure(failure, app)
    return JSONResponse(body.model_dump(), status_code=failure.status, headers=sent or None)


def service_error_response(exc: BaseException, app: Any = None,
                           headers: Mapping[str, str] | None = None) -> JSONResponse:
    """Any failure as the client sees it, mapped once by `service.errors.failure_of`."""
    failure = failure_of(exc)
    return failure_response(failure, failure.message or failure.type, getattr(exc, "param", None), headers, app)


def count_refusal(refusal: Refusal, app: Any) -> None:
    """`loragate_rejected_requests_total{reason}` of the running app (none in bare test apps)."""
    metrics = getattr(getattr(getattr(app, "state", None), "services", None), "metrics", None)
    if metrics is not None:
        metrics.rejected.labels(reason=refusal.reason).inc()


def refusal_response(refusal: Refusal, app: Any) -> JSONResponse:
    """The reply to a request refused at the door (auth, body size, admission), counted."""
    count_refusal(refusal, app)
    return service_error_response(refusal.error, app, refusal.headers)


class UnexpectedErrorMiddleware:
    """An exception nothing else handled becomes the OpenAI-shaped 500 (or whatever `failure_of`
    maps it to) here, inside the access log, so that reply carries the request id and is logged
    like any other. Re-raised afterwards, as Starlette's ServerErrorMiddleware does, for the
    server's own log (that middleware, outermost, then finds the reply sent)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def sending(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception as exc:
            if as_service_error(exc).status >= 500:
                logger.exception("request failed")
            if not started:
                await service_error_response(exc, scope.get("app"))(scope, receive, send)
            raise


def install_error_handlers(app: FastAPI) -> None:
    """The handlers of FastAPI's exception middleware; `UnexpectedErrorMiddleware` answers the rest."""
    @app.exception_handler(ServiceError)
    async def _service_error(request: Request, exc: ServiceError) -> JSONResponse:
        if exc.status >= 500:
            logger.warning("request failed: %s", exc.message)
        return service_error_response(exc, request.app)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return service_error_response(validation_error(exc), request.app)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405:  # Starlette names the first matching route's methods; the path has more
            headers["Allow"] = ", ".join(allowed_methods(request.app, request.scope))
        return service_error_response(http_error(exc), request.app, headers)

    @app.exception_handler(Refusal)
    async def _refused(request: Request, exc: Refusal) -> JSONResponse:
        return refusal_response(exc, request.app)


def allowed_methods(app: Any, scope: Scope) -> list[str]:
    """Every method some route serves at this path (the `Allow` of a 405)."""
    methods: set[str] = set()
    for route in app.router.routes:
        match, _ = route.matches({**scope, "method": "GET"})
        route_methods = getattr(route, "methods", None)
        if match is not Match.NONE and route_methods:
            methods |= set(route_methods)
    return sorted(methods)
