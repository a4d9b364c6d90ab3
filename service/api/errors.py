"""Every error leaves the service in OpenAI's shape: {"error": {message, type, param, code}}."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pydantic import BaseModel

from service.api.limits import Refusal
from service.errors import ServiceError, as_service_error

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


# Every error status a route may answer with, for the OpenAPI document.
ERROR_RESPONSES = {code: {"model": ErrorResponse} for code in (400, 404, 409, 413, 415, 424, 429, 502, 503, 504)}

_HTTP_ERROR_TYPES = {
    400: ("invalid_request_error", "invalid_value"),
    401: ("authentication_error", "invalid_api_key"),
    403: ("permission_error", "forbidden"),
    404: ("invalid_request_error", "not_found"),
    405: ("invalid_request_error", "method_not_allowed"),
    413: ("invalid_request_error", "payload_too_large"),
    415: ("invalid_request_error", "unsupported_media_type"),
    429: ("rate_limit_error", "rate_limit_exceeded"),
}


def error_response(
    status: int, message: str, type_: str, param: str | None = None, code: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = ErrorResponse(error=ErrorDetail(message=message, type=type_, param=param, code=code))
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


def _validation_param(loc: tuple[int | str, ...]) -> str | None:
    # Drop the "body" prefix and pydantic's union-branch names so `param` reads like OpenAI's.
    location = loc[1:] if loc and loc[0] == "body" else loc
    parts = [str(part) for part in location if not str(part).startswith(("function-", "list[", "str", "constrained"))]
    return ".".join(parts) or None


def _validation_message(exc: RequestValidationError) -> tuple[str, str | None]:
    errors = exc.errors()
    if not errors:
        return "Invalid request.", None
    first = errors[0]
    if first.get("type") == "json_invalid":
        return "We could not parse the JSON body of your request: it is not valid JSON.", None
    param = _validation_param(tuple(first.get("loc", ())))
    if first.get("type") in ("model_attributes_type", "dict_type") and param is None:
        return "The request body must be a JSON object.", None
    message = first.get("msg", "Invalid value")
    if param:
        message = f"Invalid value for '{param}': {message}"
    extra = len(errors) - 1
    if extra > 0:
        message += f" (and {extra} more problem{'s' if extra > 1 else ''})"
    return message, param


def service_error_response(exc: BaseException) -> JSONResponse:
    """Any failure as the client sees it, mapped once by `service.errors.failure_of`."""
    error = as_service_error(exc)
    headers = {"retry-after": str(error.retry_after)} if error.retry_after is not None else None
    return JSONResponse(ErrorResponse(error=ErrorDetail.of(error)).model_dump(), status_code=error.status,
                        headers=headers)


def count_refusal(refusal: Refusal, app: Any) -> None:
    """`loragate_rejected_requests_total{reason}` of the running app (none in bare test apps)."""
    metrics = getattr(getattr(getattr(app, "state", None), "services", None), "metrics", None)
    if metrics is not None:
        metrics.rejected.labels(reason=refusal.reason).inc()


def refusal_response(refusal: Refusal, app: Any) -> JSONResponse:
    """The reply to a request refused at the door (auth, body size, admission), counted."""
    count_refusal(refusal, app)
    response = service_error_response(refusal.error)
    response.headers.update(refusal.headers)
    return response


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
                await service_error_response(exc)(scope, receive, send)
            raise


def install_error_handlers(app: FastAPI) -> None:
    """The handlers of FastAPI's exception middleware; `UnexpectedErrorMiddleware` answers the rest."""
    @app.exception_handler(ServiceError)
    async def _service_error(_: Request, exc: ServiceError) -> JSONResponse:
        if exc.status >= 500:
            logger.warning("request failed: %s", exc.message)
        return service_error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        message, param = _validation_message(exc)
        return error_response(400, message, "invalid_request_error", param, "invalid_value")

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        type_, code = _HTTP_ERROR_TYPES.get(exc.status_code, ("server_error", None))
        return error_response(exc.status_code, str(exc.detail), type_, None, code, getattr(exc, "headers", None))

    @app.exception_handler(Refusal)
    async def _refused(request: Request, exc: Refusal) -> JSONResponse:
        return refusal_response(exc, request.app)
